//! Real podman and buildah (Debian 12: podman 4.3, buildah 1.28) with strata as
//! containers-storage's `mount_program`, as root and rootless (as `strata-ci`, with its
//! /etc/subuid range, through podman's own user namespace).
//!
//! Every test has a private world: its own containers.conf and storage.conf (graphroot,
//! runroot, tmp dirs under a `TestDir`), `netns = "none"` (never a network, netavark
//! never runs) and `pull_policy = "never"`; the only image is imported from a local
//! busybox-static tar. `World` cleans up also when a test fails: `podman rm -af`,
//! `podman system reset -f`, leftover conmon/catatonit/FUSE daemons of the world,
//! mounts under it, then the directory. `World::finish` asserts that nothing was left.
//!
//! A missing tool (podman, buildah, runc, conmon, catatonit, fuse-overlayfs, uidmap) or
//! test user fails the test with what to install; nothing is skipped.

mod support;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

const FUSE_OVERLAYFS: &str = "/usr/bin/fuse-overlayfs";
const IMG: &str = "localhost/bb:latest";
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Bounds one podman/buildah command (a hang guard: builds on a loaded machine are slow).
const LIMIT: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mp {
    Strata,
    FuseOverlayfs,
}

impl Mp {
    fn path(self) -> &'static str {
        match self {
            Mp::Strata => strata_bin(),
            Mp::FuseOverlayfs => FUSE_OVERLAYFS,
        }
    }
    /// The container's root file system type.
    fn fstype(self) -> &'static str {
        match self {
            Mp::Strata => "fuse.strata",
            Mp::FuseOverlayfs => "fuse.fuse-overlayfs",
        }
    }
}

/// The listing every view of /data is compared by (busybox's own find/stat/md5sum/sort,
/// inside the container and on the host alike): names, types, modes, owners, file
/// sizes and contents. `$1` is the root to list.
const LIST_DATA: &str = r#"#!/bin/sh
cd "$1" || exit 1
{ busybox find data -type d -exec busybox stat -c '%n|%F|%a|%u:%g' {} +
  busybox find data ! -type d -exec busybox stat -c '%n|%F|%a|%u:%g|%s' {} +
  busybox find data -type f -exec busybox md5sum {} +; } | busybox sort
"#;

/// The changes of a container: write a file (chowned), delete a lower file, rename a
/// lower directory, append to a lower file.
const MODIFY: &str = "echo new > /data/new.txt && rm /data/del.txt && mv /data/dir1 /data/dir2 \
     && chown 1234:5678 /data/new.txt && echo upd >> /data/lower.txt";

/// A container command that does one stage per `podman start`, each checking what the
/// previous stage wrote (possibly under the other mount_program) and changing more.
const STAGES: &str = r#"#!/bin/sh
set -e
s=$(cat /stage 2>/dev/null || echo 0)
case $s in
0) echo new > /data/new.txt; rm /data/del.txt; mv /data/dir1 /data/dir2
   chown 1234:5678 /data/new.txt; echo upd >> /data/lower.txt ;;
1) test "$(cat /data/new.txt)" = new; test ! -e /data/del.txt; test ! -e /data/dir1
   test "$(cat /data/dir2/sub/f.txt)" = indir; test "$(stat -c %u:%g /data/new.txt)" = 1234:5678
   test "$(cat /data/lower.txt)" = "$(printf 'lowerfile\nupd')"
   rm /data/dir2/sub/f.txt /data/lower.txt; mkdir /data/dir1; echo back > /data/dir1/again
   echo two > /data/new2.txt ;;
2) test ! -e /data/dir2/sub/f.txt; test -d /data/dir2/sub; test ! -e /data/lower.txt
   test "$(cat /data/dir1/again)" = back; test ! -e /data/dir1/sub; test "$(cat /data/new2.txt)" = two
   test ! -e /data/del.txt ;;
*) exit 3 ;;
esac
echo $((s+1)) > /stage
echo "stage $s ok on $(busybox awk '$2 == "/" { t = $3 } END { print t }' /proc/mounts)"
"#;

/// RUN steps that create, delete and rename files of earlier layers and chown.
const CONTAINERFILE: &str = r#"FROM localhost/bb:latest
RUN echo one > /data/layer1.txt && mkdir -p /data/d1/deep && echo deep > /data/d1/deep/x && echo gone > /data/gone.txt && ln -s layer1.txt /data/link && mkdir /data/many && for i in $(seq 1 50); do echo $i > /data/many/f$i; done
RUN rm /data/del.txt /data/gone.txt && mv /data/dir1 /data/dir1-renamed && mv /data/d1 /data/d1-renamed && echo two >> /data/layer1.txt && rm /data/many/f7 && mv /data/many/f8 /data/many/g8
RUN chown 1234:5678 /data/layer1.txt && chmod 640 /data/layer1.txt && rm -r /data/d1-renamed/deep && chown -h 1234:5678 /data/link && chown -R 4321:8765 /data/many
RUN test ! -e /data/del.txt && test ! -e /data/gone.txt && test ! -e /data/dir1 && test -f /data/dir1-renamed/sub/f.txt && test ! -e /data/d1-renamed/deep && test "$(cat /data/layer1.txt | tr '\n' ,)" = one,two, && test "$(stat -c %u:%g:%a /data/layer1.txt)" = 1234:5678:640 && test "$(ls /data/many | wc -l)" = 49 && echo BUILD-STATE-OK
"#;

fn require_tools(mode: Mode) {
    require_root();
    let dirs = [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/libexec/podman",
    ];
    let found = |t: &str| dirs.iter().any(|d| Path::new(d).join(t).exists());
    let mut missing = Vec::new();
    for (tool, pkg) in [
        ("podman", "podman"),
        ("buildah", "buildah"),
        ("runc", "runc"),
        ("conmon", "conmon"),
        ("catatonit", "catatonit"),
        ("fuse-overlayfs", "fuse-overlayfs"),
        ("fusermount3", "fuse3"),
        ("newuidmap", "uidmap"),
        ("newgidmap", "uidmap"),
        ("busybox", "busybox-static"),
        ("runuser", "util-linux"),
    ] {
        if !found(tool) {
            missing.push(format!("{tool} (package {pkg})"));
        }
    }
    assert!(
        missing.is_empty(),
        "the podman suite needs {}: apt-get install podman buildah runc conmon catatonit uidmap fuse-overlayfs fuse3 busybox-static (as .ci/run does)",
        missing.join(", ")
    );
    if let Some(user) = mode.user() {
        user_id(user);
        for f in ["/etc/subuid", "/etc/subgid"] {
            let text = fs::read_to_string(f).unwrap_or_default();
            assert!(
                text.lines().any(|l| l.starts_with(&format!("{user}:"))),
                "{user} has no range in {f}: run scripts/setup as root (it gives {user} a subordinate range)"
            );
        }
        let mode = fs::metadata("/dev/fuse")
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap_or(0);
        assert_eq!(
            mode, 0o666,
            "/dev/fuse must be 0666 for rootless FUSE: run scripts/setup"
        );
    }
}

/// The first host uid of `user`'s /etc/subuid range.
fn subuid_start(user: &str) -> u32 {
    let text = fs::read_to_string("/etc/subuid").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap();
    line.split(':').nth(1).unwrap().parse().unwrap()
}

/// One private podman world: configuration, storage, the imported image.
struct World {
    mode: Mode,
    /// (name, uid, gid) when rootless.
    user: Option<(&'static str, u32, u32)>,
    dir: TestDir,
    /// The mount_program storage.conf names now.
    mp: std::cell::Cell<Option<Mp>>,
    done: bool,
}

impl World {
    fn new(mode: Mode, mp: Option<Mp>) -> World {
        require_tools(mode);
        let dir = TestDir::tagged("podman");
        let user = mode.user().map(|u| {
            let (uid, gid) = user_id(u);
            (u, uid, gid)
        });
        let w = World {
            mode,
            user,
            dir,
            mp: std::cell::Cell::new(mp),
            done: false,
        };
        for d in ["tmp", "vartmp", "net", "home", "xdg", "ctx", "out"] {
            w.dir.dir(d);
        }
        set_mode(w.dir.join("xdg"), 0o700);
        w.set_mount_program(mp);
        w.write_containers_conf();
        w.make_image_tar();
        fs::write(w.dir.join("list-data"), LIST_DATA).unwrap();
        fs::write(w.dir.join("ctx/Containerfile"), CONTAINERFILE).unwrap();
        if let Some((_, uid, gid)) = w.user {
            chown_tree(w.dir.path(), uid, gid);
        }
        w.ok(&["import", "-q", &w.path("rootfs.tar"), IMG]);
        w
    }

    fn path(&self, rel: &str) -> String {
        self.dir.join(rel).to_string_lossy().into_owned()
    }
    fn graphroot(&self) -> String {
        self.path("root")
    }

    fn write_containers_conf(&self) {
        let d = self.dir.path().display();
        let text = format!(
            r#"[containers]
netns = "none"
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
# not "file": a --rm container's asynchronous `podman container cleanup` writes tmp/events
# while `system reset` removes it, and reset then fails ("directory not empty")
events_logger = "none"
runtime = "runc"
pull_policy = "never"
tmp_dir = "{d}/tmp"
volume_path = "{d}/root/volumes"
[network]
network_config_dir = "{d}/net"
"#
        );
        self.write_owned("containers.conf", &text);
    }

    /// (Re)writes storage.conf: the same graphroot with another mount_program (None:
    /// kernel overlayfs).
    fn set_mount_program(&self, mp: Option<Mp>) {
        self.mp.set(mp);
        let d = self.dir.path().display();
        let mut text = format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/runroot\"\n\
             rootless_storage_path = \"{d}/root\"\n[storage.options.overlay]\n"
        );
        if let Some(mp) = mp {
            text += &format!("mount_program = \"{}\"\n", mp.path());
        }
        self.write_owned("storage.conf", &text);
    }

    fn write_owned(&self, rel: &str, text: &str) {
        let p = self.dir.join(rel);
        fs::write(&p, text).unwrap();
        if let Some((_, uid, gid)) = self.user {
            lchown(&p, uid, gid).unwrap();
        }
    }

    /// busybox-static plus /data/{lower.txt,del.txt,dir1/sub/f.txt}, /etc/motd and the
    /// helper scripts, as a tar owned by 0:0.
    fn make_image_tar(&self) {
        let r = self.dir.join("rootfs");
        busybox_rootfs(&r);
        set_mode(r.join("tmp"), 0o1777);
        fs::write(r.join("etc/motd"), "hello\n").unwrap();
        fs::create_dir_all(r.join("data/dir1/sub")).unwrap();
        fs::write(r.join("data/lower.txt"), "lowerfile\n").unwrap();
        fs::write(r.join("data/del.txt"), "todelete\n").unwrap();
        fs::write(r.join("data/dir1/sub/f.txt"), "indir\n").unwrap();
        fs::write(r.join("bin/list-data"), LIST_DATA).unwrap();
        fs::write(r.join("bin/stages"), STAGES).unwrap();
        set_mode(r.join("bin/list-data"), 0o755);
        set_mode(r.join("bin/stages"), 0o755);
        let out = run(Command::new("tar")
            .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
            .arg(&r)
            .arg("-cf")
            .arg(self.dir.join("rootfs.tar"))
            .arg("."));
        assert!(out.ok(), "tar: {}", out.stderr);
        fs::remove_dir_all(&r).unwrap();
    }

    /// `prog args` with the world's private environment, as the world's user.
    fn cmd(&self, prog: &str, args: &[&str]) -> Command {
        let mut c = match self.user {
            None => Command::new("env"),
            Some((name, _, _)) => {
                let mut c = Command::new("runuser");
                c.args(["-u", name, "--", "env"]);
                c
            }
        };
        c.arg("-i")
            .arg(format!("PATH={PATH}"))
            .arg(format!("HOME={}", self.path("home")))
            .arg(format!("TMPDIR={}", self.path("vartmp")))
            .arg(format!("CONTAINERS_CONF={}", self.path("containers.conf")))
            .arg(format!(
                "CONTAINERS_STORAGE_CONF={}",
                self.path("storage.conf")
            ));
        if let Some((name, _, _)) = self.user {
            c.arg(format!("USER={name}"))
                .arg(format!("XDG_RUNTIME_DIR={}", self.path("xdg")));
        }
        c.arg(prog).args(args).current_dir(self.dir.path());
        c
    }

    fn podman(&self, args: &[&str]) -> CmdOut {
        run_within(&mut self.cmd("podman", args), LIMIT)
    }

    /// podman ARGS, which must succeed; its stdout.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let o = self.podman(args);
        assert!(
            o.ok(),
            "podman {args:?} ({:?}, {:?}) failed: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.mode,
            fs::read_to_string(self.dir.join("storage.conf")).unwrap_or_default(),
            o.status,
            o.stdout,
            o.stderr
        );
        o.stdout
    }

    /// A shell script where podman's mounts are visible: `podman unshare sh -c` rootless
    /// (the mounts live in podman's user and mount namespaces), plain `sh -c` as root.
    /// `$0`.. are `args`.
    #[track_caller]
    fn in_ns(&self, script: &str, args: &[&str]) -> String {
        let mut a: Vec<&str> = Vec::new();
        let prog = if self.user.is_some() {
            a.extend(["unshare", "sh", "-c", script]);
            "podman"
        } else {
            a.extend(["-c", script]);
            "sh"
        };
        a.extend(args);
        let o = run_within(&mut self.cmd(prog, &a), LIMIT);
        assert!(
            o.ok(),
            "{prog} {a:?} failed: {:?}\nstdout:\n{}\nstderr:\n{}",
            o.status,
            o.stdout,
            o.stderr
        );
        o.stdout
    }

    /// The /data listing of a container (`podman mount`) or image (`podman image
    /// mount`) as the host sees it through the mount_program's mount, which must be the
    /// one storage.conf names.
    fn mounted_listing(&self, what: &str, name: &str) -> String {
        let (mount, umount) = match what {
            "container" => ("mount", "umount"),
            _ => ("image mount", "image unmount"),
        };
        let script = format!(
            r#"M=$(podman {mount} "$1") || exit 1
grep -F " $M " /proc/self/mountinfo | sed 's/.* - //; s/ .*//'
busybox sh "$2" "$M"; rc=$?
podman {umount} "$1" >/dev/null || rc=1
exit $rc"#
        );
        let out = self.in_ns(&script, &["sh", name, &self.path("list-data")]);
        let (fstype, listing) = out.split_once('\n').unwrap_or((&out, ""));
        let want = self.mp.get().map_or("overlay", Mp::fstype);
        assert_eq!(
            fstype, want,
            "the mount of podman {what} mount {name}:\n{out}"
        );
        listing.to_string()
    }

    fn pause_pid(&self) -> Option<i32> {
        fs::read_to_string(self.dir.join("tmp/pause.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Live processes (not zombies) that name a path of this world.
    fn live_procs(&self) -> Vec<i32> {
        let marker = format!("{}/", self.dir.path().display());
        processes_with(&marker)
            .into_iter()
            .map(|p| p as i32)
            .filter(|&p| alive(p))
            .collect()
    }

    /// Tears the world down; returns what had to be forced.
    fn cleanup(&mut self) -> Vec<String> {
        self.done = true;
        let mut problems = Vec::new();
        let pause = self.pause_pid();
        let _ = self.podman(&["rm", "-af", "-t", "0"]);
        let o = self.podman(&["system", "reset", "-f"]);
        if !o.ok() {
            problems.push(format!(
                "podman system reset -f: {:?}: {}",
                o.status, o.stderr
            ));
        }
        // FUSE daemons and conmon exit asynchronously; the pause process dies with reset.
        let settled = wait_until_for(Duration::from_secs(10), || {
            self.live_procs().is_empty() && pause.is_none_or(|p| !is_pause(p))
        });
        if !settled {
            for p in self.live_procs() {
                problems.push(format!("process {p} left: {}", cmdline(p)));
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            if let Some(p) = pause.filter(|&p| is_pause(p)) {
                // Rootless mounts live in its mount namespace, not in ours.
                let ns = fs::read_to_string(format!("/proc/{p}/mountinfo")).unwrap_or_default();
                let marker = format!(" {}/", self.dir.path().display());
                for l in ns.lines().filter(|l| l.contains(&marker)) {
                    problems.push(format!("mount left in the pause process' namespace: {l}"));
                }
                problems.push(format!("pause process {p} left: {}", cmdline(p)));
                // Its namespaces, and the mounts in them, go with it.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        for m in mounts_under(self.dir.path()).iter().rev() {
            problems.push(format!("mount left: {}", m.mount_point.display()));
            lazy_umount(&m.mount_point);
        }
        if self.dir.join("root/overlay").exists() {
            problems.push("system reset left the graphroot".to_string());
        }
        problems
    }

    /// Cleans up and asserts that nothing had to be forced.
    fn finish(mut self) {
        let problems = self.cleanup();
        assert!(
            problems.is_empty(),
            "cleanup of {}:\n{}",
            self.dir.path().display(),
            problems.join("\n")
        );
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if !self.done {
            let problems = self.cleanup();
            if !problems.is_empty() {
                eprintln!("[podman] forced cleanup: {}", problems.join("; "));
            }
        }
        // then TestDir's drop unmounts whatever is left below it and removes it
    }
}

fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The rootless pause process (catatonit -P), alive.
fn is_pause(pid: i32) -> bool {
    alive(pid)
        && fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "catatonit")
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[track_caller]
fn assert_has(out: &str, line: &str, what: &str) {
    assert!(
        out.lines().any(|l| l == line),
        "{what}: no line {line:?} in:\n{out}"
    );
}

/// The listing after MODIFY on the base image, as far as it is fixed (modes come from
/// the image, sizes from the data).
fn assert_modified_listing(l: &str, what: &str) {
    let mut names: Vec<&str> = l
        .lines()
        .filter(|x| x.contains('|'))
        .map(|x| x.split('|').next().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "data",
            "data/dir2",
            "data/dir2/sub",
            "data/dir2/sub/f.txt",
            "data/lower.txt",
            "data/new.txt"
        ],
        "{what}: the names under /data after write, delete, rename:\n{l}"
    );
    assert_has(l, "data/new.txt|regular file|644|1234:5678|4", what);
    assert_has(l, "data/lower.txt|regular file|644|0:0|14", what);
    assert_has(l, "data/dir2/sub/f.txt|regular file|644|0:0|6", what);
    assert_has(l, "data/dir2|directory|755|0:0", what);
}

// ---------------------------------------------------------------------------------
// image layers
// ---------------------------------------------------------------------------------

/// `podman save` of `image` as a docker-archive, each layer extracted (as root, owners
/// kept) into `<dir>/<tag>/layer<N>`, bottom first.
fn save_layers(w: &World, image: &str, tag: &str) -> Vec<PathBuf> {
    let archive = w.path(&format!("out/{tag}.tar"));
    w.ok(&[
        "save",
        "-q",
        "--format",
        "docker-archive",
        "-o",
        &archive,
        image,
    ]);
    let x = w.dir.dir(format!("layers-{tag}"));
    let o = run(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&x));
    assert!(o.ok(), "untar {archive}: {}", o.stderr);
    let manifest = fs::read_to_string(x.join("manifest.json")).unwrap();
    let layers = json_string_array(&manifest, "Layers");
    let diff_ids = w.ok(&[
        "image",
        "inspect",
        "--format",
        "{{range .RootFS.Layers}}{{println .}}{{end}}",
        image,
    ]);
    assert_eq!(
        layers.len(),
        diff_ids.lines().filter(|l| !l.is_empty()).count(),
        "layers in the archive's manifest.json vs. podman image inspect:\n{manifest}\n{diff_ids}"
    );
    let mut out = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let d = w.dir.dir(format!("layers-{tag}/layer{i}"));
        let o = run(Command::new("tar")
            .args(["--numeric-owner", "-xpf"])
            .arg(x.join(l))
            .arg("-C")
            .arg(&d));
        assert!(o.ok(), "untar layer {l}: {}", o.stderr);
        out.push(d);
    }
    out
}

/// The strings of `"key":[...]` in a small JSON document.
fn json_string_array(json: &str, key: &str) -> Vec<String> {
    let start = json
        .find(&format!("\"{key}\":["))
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + key.len()
        + 4;
    let end = start + json[start..].find(']').unwrap();
    json[start..end]
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Layer by layer: the same entries, types, modes, owners, sizes and contents.
fn assert_same_layers(a_name: &str, a: &[PathBuf], b_name: &str, b: &[PathBuf]) {
    assert_eq!(
        a.len(),
        b.len(),
        "number of layers: {a_name} {} vs {b_name} {}",
        a.len(),
        b.len()
    );
    for (i, (la, lb)) in a.iter().zip(b).enumerate() {
        assert_same_tree(
            &format!("{a_name} layer {i}"),
            &snapshot(la),
            &format!("{b_name} layer {i}"),
            &snapshot(lb),
        );
    }
}

/// `rel` in layer `l`: (kind, mode, uid, gid) from lstat.
fn entry(l: &Path, rel: &str) -> Option<(char, u32, u32, u32)> {
    lstat(l.join(rel)).ok().map(|st| {
        (
            kind_of(st.st_mode),
            st.st_mode & 0o7777,
            st.st_uid,
            st.st_gid,
        )
    })
}

// ---------------------------------------------------------------------------------
// the tests
// ---------------------------------------------------------------------------------

// Run, change, commit: the container, its mount, the committed image and its mount
// all show exactly the changes.
both_modes!(run_change_commit, |mode| {
    let t0 = Instant::now();
    let w = World::new(mode, Some(Mp::Strata));
    let root = w.graphroot();

    // podman info runs `mount_program --version`: no warning, and the private store.
    let o = w.podman(&[
        "info",
        "--format",
        "{{.Store.GraphDriverName}} {{.Store.GraphRoot}}",
    ]);
    assert!(o.ok(), "podman info: {}", o.stderr);
    assert_eq!(o.stdout.trim(), format!("overlay {root}"));
    assert!(
        !o.stderr.contains("Failed to retrieve program version"),
        "`strata --version` as podman runs it: {}",
        o.stderr
    );

    assert_eq!(w.ok(&["run", "--rm", IMG, "cat", "/etc/motd"]), "hello\n");
    let fstype = w.ok(&[
        "run",
        "--rm",
        IMG,
        "busybox",
        "awk",
        "$2 == \"/\" { print $3 }",
        "/proc/mounts",
    ]);
    assert_eq!(
        fstype.lines().last(),
        Some(Mp::Strata.fstype()),
        "the container's root is strata's mount: {fstype}"
    );

    let seen = w.ok(&[
        "run",
        "--name",
        "c1",
        IMG,
        "sh",
        "-c",
        &format!("{MODIFY} && list-data /"),
    ]);
    assert_modified_listing(&seen, "inside the container");

    let diff = w.ok(&["diff", "c1"]);
    for l in [
        "A /data/new.txt",
        "D /data/del.txt",
        "D /data/dir1",
        "A /data/dir2",
        "C /data/lower.txt",
    ] {
        assert_has(&diff, l, "podman diff c1");
    }

    // The container's upper, as podman mount shows it through strata.
    assert_eq!(
        lines(&w.mounted_listing("container", "c1")),
        lines(&seen),
        "podman mount c1 vs. what the container saw"
    );
    // ...and on disk: the chowned file belongs to container uid 1234 mapped to the host.
    let want_uid = match w.user {
        None => 1234,
        Some((name, _, _)) => subuid_start(name) + 1233,
    };
    let o = run(Command::new("find").arg(format!("{root}/overlay")).args([
        "-path",
        "*/diff/data/new.txt",
        "-printf",
        "%U\n",
    ]));
    assert_eq!(
        o.stdout.trim(),
        want_uid.to_string(),
        "owner on disk of the container's new.txt (container uid 1234)"
    );

    w.ok(&["commit", "-q", "c1", "localhost/bb:c1"]);
    let committed = w.ok(&["run", "--rm", "localhost/bb:c1", "list-data", "/"]);
    assert_eq!(
        lines(&committed),
        lines(&seen),
        "a container of the committed image vs. the original container"
    );
    assert_eq!(
        lines(&w.mounted_listing("image", "localhost/bb:c1")),
        lines(&seen),
        "podman image mount of the committed image vs. the container"
    );
    // The base image is untouched.
    let base = w.ok(&[
        "run",
        "--rm",
        IMG,
        "sh",
        "-c",
        "cat /data/del.txt /data/dir1/sub/f.txt /data/lower.txt",
    ]);
    assert_eq!(base, "todelete\nindir\nlowerfile\n");
    w.finish();
    report(
        "podman",
        &format!(
            "run_change_commit {mode:?}: {:.1}s",
            t0.elapsed().as_secs_f64()
        ),
    );
});

// A build whose RUN steps create, delete, rename and chown files of earlier layers gives
// the same layers with strata as with fuse-overlayfs; buildah bud gives them too.
both_modes!(build_layers_match_fuse_overlayfs, |mode| {
    let t0 = Instant::now();
    let build = |mp: Mp| {
        let w = World::new(mode, Some(mp));
        let ctx = w.path("ctx");
        let out = w.ok(&[
            "build",
            "--layers",
            "--no-cache",
            "--network",
            "none",
            "-t",
            "localhost/bb:built",
            &ctx,
        ]);
        assert!(
            out.contains("BUILD-STATE-OK"),
            "podman build with {mp:?}:\n{out}"
        );
        let layers = save_layers(&w, "localhost/bb:built", "podman-build");
        (w, layers)
    };
    let ((ws, strata), (wf, fo)) = std::thread::scope(|s| {
        let a = s.spawn(|| build(Mp::Strata));
        let b = s.spawn(|| build(Mp::FuseOverlayfs));
        (a.join().unwrap(), b.join().unwrap())
    });

    // Base + one layer per RUN.
    assert_eq!(strata.len(), 5, "layers of the strata build");
    // Not trivially equal: the layers hold the whiteouts, renames and owners.
    let (l1, l2, l3) = (&strata[1], &strata[2], &strata[3]);
    assert_eq!(entry(l1, "data/layer1.txt").map(|e| e.0), Some('f'));
    assert_eq!(entry(l1, "data/many/f50").map(|e| e.0), Some('f'));
    for wh in [
        "data/.wh.del.txt",
        "data/.wh.gone.txt",
        "data/.wh.dir1",
        "data/.wh.d1",
        "data/many/.wh.f7",
    ] {
        assert_eq!(
            entry(l2, wh).map(|e| e.0),
            Some('f'),
            "{wh} in the second RUN's layer"
        );
    }
    assert_eq!(
        entry(l2, "data/dir1-renamed/sub/f.txt").map(|e| e.0),
        Some('f')
    );
    assert_eq!(entry(l2, "data/d1-renamed/deep/x").map(|e| e.0), Some('f'));
    assert_eq!(entry(l2, "data/many/g8").map(|e| e.0), Some('f'));
    assert_eq!(entry(l3, "data/layer1.txt"), Some(('f', 0o640, 1234, 5678)));
    assert_eq!(entry(l3, "data/link"), Some(('l', 0o777, 1234, 5678)));
    assert_eq!(
        entry(l3, "data/many/f1").map(|e| (e.2, e.3)),
        Some((4321, 8765))
    );
    assert_eq!(
        entry(l3, "data/d1-renamed/.wh.deep").map(|e| e.0),
        Some('f')
    );

    assert_same_layers("strata", &strata, "fuse-overlayfs", &fo);

    // buildah bud (OCI isolation, no network) on the strata store: the same layers.
    let ctx = ws.path("ctx");
    let b = run_within(
        &mut ws.cmd(
            "buildah",
            &[
                "bud",
                "--layers",
                "--no-cache",
                "--isolation",
                "oci",
                "--network",
                "none",
                "-t",
                "localhost/bb:buildah",
                &ctx,
            ],
        ),
        LIMIT,
    );
    assert!(
        b.ok() && b.stdout.contains("BUILD-STATE-OK"),
        "buildah bud:\n{}\n{}",
        b.stdout,
        b.stderr
    );
    let bud = save_layers(&ws, "localhost/bb:buildah", "buildah");
    assert_same_layers("strata podman build", &strata, "strata buildah bud", &bud);

    ws.finish();
    wf.finish();
    report(
        "podman",
        &format!(
            "build_layers_match_fuse_overlayfs {mode:?}: {:.1}s",
            t0.elapsed().as_secs_f64()
        ),
    );
});

// One store, one container, the mount_program switched between fuse-overlayfs and
// strata: each reads what the other wrote (whiteouts, a renamed directory, an opaque
// directory over a whiteout, chowned files), in both directions.
both_modes!(store_shared_with_fuse_overlayfs, |mode| {
    let t0 = Instant::now();
    let w = World::new(mode, Some(Mp::FuseOverlayfs));
    w.ok(&["create", "--name", "c1", IMG, "stages"]);

    // fuse-overlayfs writes: new file, lower file deleted, lower dir renamed, chown.
    assert_eq!(
        w.ok(&["start", "-a", "c1"]),
        "stage 0 ok on fuse.fuse-overlayfs\n"
    );
    let by_fo = w.mounted_listing("container", "c1");
    assert_modified_listing(&by_fo, "podman mount c1 through fuse-overlayfs");

    // strata reads fuse-overlayfs' upper.
    w.set_mount_program(Some(Mp::Strata));
    assert_eq!(
        lines(&w.mounted_listing("container", "c1")),
        lines(&by_fo),
        "podman mount c1: strata vs. fuse-overlayfs on fuse-overlayfs' upper"
    );
    w.ok(&["commit", "-q", "c1", "localhost/bb:stage1"]);
    let img = w.ok(&["run", "--rm", "localhost/bb:stage1", "list-data", "/"]);
    assert_eq!(
        lines(&img),
        lines(&by_fo),
        "image committed from fuse-overlayfs' upper, run with strata"
    );
    // The container checks fuse-overlayfs' changes through strata, then strata writes:
    // deletes (a copied-up file, a lower file), a directory over a whiteout, a new file.
    assert_eq!(w.ok(&["start", "-a", "c1"]), "stage 1 ok on fuse.strata\n");
    let by_strata = w.mounted_listing("container", "c1");
    assert_has(
        &by_strata,
        "data/dir1/again|regular file|644|0:0|5",
        "after strata's stage",
    );
    assert!(!by_strata.contains("data/lower.txt"), "{by_strata}");
    assert!(!by_strata.contains("data/dir2/sub/f.txt"), "{by_strata}");

    // fuse-overlayfs reads strata's upper.
    w.set_mount_program(Some(Mp::FuseOverlayfs));
    assert_eq!(
        lines(&w.mounted_listing("container", "c1")),
        lines(&by_strata),
        "podman mount c1: fuse-overlayfs vs. strata on strata's upper"
    );
    assert_eq!(
        w.ok(&["start", "-a", "c1"]),
        "stage 2 ok on fuse.fuse-overlayfs\n"
    );
    w.ok(&["commit", "-q", "c1", "localhost/bb:stage2"]);
    let img = w.ok(&["run", "--rm", "localhost/bb:stage2", "list-data", "/"]);
    assert_eq!(
        lines(&img),
        lines(&by_strata),
        "image committed from strata's upper, run with fuse-overlayfs"
    );

    // And the image committed under fuse-overlayfs, read by strata.
    w.set_mount_program(Some(Mp::Strata));
    assert_eq!(
        lines(&w.mounted_listing("image", "localhost/bb:stage2")),
        lines(&by_strata),
        "podman image mount through strata"
    );
    w.finish();
    report(
        "podman",
        &format!(
            "store_shared_with_fuse_overlayfs {mode:?}: {:.1}s",
            t0.elapsed().as_secs_f64()
        ),
    );
});
