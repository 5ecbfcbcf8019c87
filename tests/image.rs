//! `strata image` and `strata commit` end to end, with the real tools on both sides:
//! images built by umoci (and a hand-made OCI whiteout layer), imported, run, changed,
//! committed, exported and read back by skopeo and umoci. Each case runs as root and
//! as the ordinary user strata-ci (its store and rootless ownership records).

mod support;

// The registry harness of tests/image_registry.rs: a docker-registry per test.
#[allow(dead_code)]
#[path = "image_registry/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

fn tool(cmd: &mut Command) -> String {
    ok(&run_within(cmd, DEADLINE))
}

/// An OCI layout at `dir` built by umoci as root: tag `v1` is one layer (a busybox
/// rootfs with files of several owners and modes), `v2` adds a layer with OCI
/// whiteouts (a deleted file, an opaque directory) and a config with Env, Cmd and
/// WorkingDir.
fn build_layout(work: &Path) -> PathBuf {
    let layout = work.join("layout");
    let l = layout.to_str().unwrap();
    tool(Command::new("umoci").args(["init", "--layout", l]));
    tool(Command::new("umoci").args(["new", "--image", &format!("{l}:base")]));
    let bundle = work.join("bundle");
    tool(
        Command::new("umoci")
            .args(["unpack", "--image", &format!("{l}:base")])
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    busybox_rootfs(&rootfs);
    std::fs::write(rootfs.join("etc/data.txt"), "data-v1\n").unwrap();
    for d in ["srv/keep", "opq/sub"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::write(rootfs.join("srv/keep/a"), "a\n").unwrap();
    std::fs::write(rootfs.join("srv/gone.txt"), "gone\n").unwrap();
    std::fs::write(rootfs.join("opq/x"), "x\n").unwrap();
    std::fs::write(rootfs.join("opq/sub/deep"), "deep\n").unwrap();
    std::fs::write(rootfs.join("srv/owned"), "owned\n").unwrap();
    sh_ok(&format!(
        "cd {r} && chown 1234:5678 srv/owned && chmod 0640 srv/owned && \
         install -m 4755 /dev/null srv/setuid && ln srv/keep/a srv/hardlink && \
         ln -s keep/a srv/symlink && mkdir -m 0700 srv/private && chown 42:43 srv/private",
        r = rootfs.display()
    ));
    tool(
        Command::new("umoci")
            .args(["repack", "--image", &format!("{l}:v1")])
            .arg(&bundle),
    );
    // The second layer by hand, as OCI spells deletions.
    let top = work.join("top");
    for d in ["srv", "opq"] {
        std::fs::create_dir_all(top.join(d)).unwrap();
    }
    std::fs::write(top.join("srv/.wh.gone.txt"), "").unwrap();
    std::fs::write(top.join("opq/.wh..wh..opq"), "").unwrap();
    std::fs::write(top.join("opq/y"), "y\n").unwrap();
    let layer = work.join("top.tar");
    sh_ok(&format!(
        "tar -C {t} --numeric-owner --owner=0 --group=0 -cf {o} srv opq",
        t = top.display(),
        o = layer.display()
    ));
    tool(
        Command::new("umoci")
            .args([
                "raw",
                "add-layer",
                "--image",
                &format!("{l}:v1"),
                "--tag",
                "v2",
            ])
            .arg(&layer),
    );
    tool(Command::new("umoci").args([
        "config",
        "--image",
        &format!("{l}:v2"),
        "--config.env",
        "FOO=bar",
        "--config.cmd",
        "sh",
        "--config.cmd",
        "-c",
        "--config.cmd",
        "echo FOO=$FOO; pwd",
        "--config.workingdir",
        "/srv",
    ]));
    layout
}

fn sh_ok(script: &str) -> String {
    ok(&sh(script))
}

/// A test's world: an Env (as root or strata-ci), a layout built as root, a store.
struct World {
    env: Env,
    layout: PathBuf,
    store: PathBuf,
}

impl World {
    fn new(mode: Mode) -> World {
        let env = Env::new(mode);
        let work = env.mkdir("build");
        let layout = build_layout(&work);
        // The ordinary user imports a layout it owns, as it would one it built.
        chown_tree(&layout, env.owner.0, env.owner.1);
        let store = env.mkdir("store");
        World { env, layout, store }
    }

    /// `strata ARGS --store STORE`.
    fn strata(&self, args: &[&str]) -> Command {
        let mut c = self.env.strata_cmd(args);
        c.arg("--store").arg(&self.store);
        c
    }

    fn image(&self, args: &[&str]) -> CmdOut {
        let mut v = vec!["image"];
        v.extend_from_slice(args);
        run_within(&mut self.strata(&v), DEADLINE)
    }

    fn import(&self, tag: &str, name: &str) -> String {
        let src = format!("oci:{}:{tag}", self.layout.display());
        ok(&self.image(&["import", &src, name]))
    }

    /// `strata run --store STORE EXTRA NAME -- sh -c SCRIPT`.
    fn run_sh(&self, extra: &[&str], name: &str, script: &str) -> CmdOut {
        let store = self.store.to_str().unwrap().to_string();
        let mut args = vec!["--store", &store];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[name, "--", "sh", "-c", script]);
        run_within(&mut self.env.strata(&args), DEADLINE)
    }

    /// `skopeo copy` of the layout's `tag` to `HOST/NAME` (plain HTTP).
    fn copy_to(&self, host: &str, tag: &str, name: &str, extra: &[&str]) {
        let src = format!("oci:{}:{tag}", self.layout.display());
        let dst = format!("docker://{host}/{name}");
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&src, &dst]);
        tool(Command::new("skopeo").args(args));
    }

    /// Nothing half-written: the staging directory is empty once a command ran.
    fn assert_no_staging(&self) {
        let left: Vec<_> = std::fs::read_dir(self.store.join("staging"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left in staging: {left:?}");
    }

    fn layer_dirs(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.store.join("layers"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        v.sort();
        v
    }
}

/// What an image shows: contents, deletions, opaque directories, owners and modes.
const SHOW: &str = "cat /etc/data.txt; ls /srv; ls /opq; stat -c '%n %u:%g %a' /srv/owned \
                    /srv/setuid /srv/private; readlink /srv/symlink; \
                    stat -c %h /srv/hardlink";

/// The view of v2 once `changed_and_committed` changed it.
const AFTER: &str = "cat /etc/data.txt; ls /srv; ls -A /opq; ls /srv/moved; \
                     stat -c '%n %u:%g %a' /new/f /srv/owned /srv/setuid; cat /new/f";
const AFTER_WANT: &str = "changed\nmoved\nowned\nprivate\nsetuid\nsymlink\n/new/f 4321:8765 644\n\
                          /srv/owned 1234:5678 640\n/srv/setuid 0:0 4755\nn\n";

/// Runs a container of `from` that changes it, and commits its upper as `to`.
/// (Root in the container has the OCI default capabilities, without CAP_CHOWN: the
/// owner of /new/f is set in the upper from outside, as a chown through the union
/// records it: the inode's owner as root, the override record rootless.)
fn changed_and_committed(w: &World, mode: Mode, from: &str, to: &str) {
    let upper = w
        .env
        .mkdir(&format!("upper-{}", to.replace(['/', ':'], "-")));
    let u = upper.to_str().unwrap();
    ok(&w.run_sh(
        &["--upper", u],
        from,
        "echo changed > /etc/data.txt && rm /srv/keep/a /srv/hardlink && \
         mv /srv/keep /srv/moved && mkdir /new && echo n > /new/f && \
         rm -rf /opq/y && touch /srv/setuid",
    ));
    let f = upper.join("new/f");
    match mode {
        Mode::Root => sh_ok(&format!("chown 4321:8765 {}", f.display())),
        _ => sh_ok(&format!(
            "setfattr -n user.containers.override_stat -v 4321:8765:0644 {}",
            f.display()
        )),
    };
    ok(&run_within(
        &mut w.strata(&["commit", "--upper", u, "--from", from, to, "-m", "changed"]),
        DEADLINE,
    ));
}

/// An image changed by `changed_and_committed`, unpacked by umoci (as root) at `r`.
fn assert_committed_tree(r: &Path) {
    assert_eq!(
        std::fs::read_to_string(r.join("etc/data.txt")).unwrap(),
        "changed\n"
    );
    for gone in [
        "srv/keep",
        "srv/gone.txt",
        "srv/hardlink",
        "opq/x",
        "opq/sub",
        "opq/y",
    ] {
        assert!(
            std::fs::symlink_metadata(r.join(gone)).is_err(),
            "{gone} should be deleted"
        );
    }
    assert!(r.join("srv/moved").is_dir());
    assert_eq!(
        sh_ok(&format!(
            "stat -c '%u:%g %a' {0}/new/f {0}/srv/owned {0}/srv/private {0}/srv/setuid",
            r.display()
        )),
        "4321:8765 644\n1234:5678 640\n42:43 700\n0:0 4755\n"
    );
}

fn assert_v2_view(out: &str) {
    let want = "data-v1\nhardlink\nkeep\nowned\nprivate\nsetuid\nsymlink\ny\n\
                /srv/owned 1234:5678 640\n/srv/setuid 0:0 4755\n/srv/private 42:43 700\n\
                keep/a\n2\n";
    assert_eq!(out, want);
}

both_modes!(import_run_commit_export, |mode| {
    let w = World::new(mode);
    let id = w.import("v2", "local/app:2");
    assert!(id.trim().starts_with("sha256:"), "{id}");
    // The layers' own modes (a 1777 /tmp) are reachable by nobody else.
    for d in ["layers", "blobs", "staging"] {
        assert_eq!(
            sh_ok(&format!("stat -c %a {}/{d}", w.store.display())),
            "700\n",
            "{d}"
        );
    }
    // The image's own Env, Cmd and WorkingDir.
    let store = w.store.to_str().unwrap();
    let o = ok(&run_within(
        &mut w.env.strata(&["--store", store, "local/app:2"]),
        DEADLINE,
    ));
    assert_eq!(o, "FOO=bar\n/srv\n");
    // Deletions as deletions, the opaque dir without its lower contents, owners as
    // the image has them (rootless: from the store's override records).
    assert_v2_view(&ok(&w.run_sh(&[], "local/app:2", SHOW)));
    let o = ok(&w.run_sh(&[], "localhost/local/app:2", "ls -ln / | grep -c ' 0 *0 '"));
    assert!(
        o.trim().parse::<u32>().unwrap() >= 5,
        "root-owned dirs: {o}"
    );

    // A container changes it; commit keeps the change as a new layer.
    changed_and_committed(&w, mode, "local/app:2", "local/app:3");
    assert_eq!(ok(&w.run_sh(&[], "local/app:3", AFTER)), AFTER_WANT);
    // The parent image is unchanged.
    assert_v2_view(&ok(&w.run_sh(&[], "local/app:2", SHOW)));

    // ls and inspect.
    let ls = ok(&w.image(&["ls"]));
    assert!(
        ls.contains("localhost/local/app:2") && ls.contains("localhost/local/app:3"),
        "{ls}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&w.image(&["inspect", "local/app:3"]))).unwrap();
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 3);
    assert_eq!(inspect["Config"]["Env"][0], "FOO=bar");
    assert_eq!(inspect["Config"]["WorkingDir"], "/srv");

    // Export to an OCI layout and a docker-archive; read back by skopeo and umoci (as root).
    let out = w.env.mkdir("out");
    let oci = format!("oci:{}/oci:v3", out.display());
    ok(&w.image(&["export", "local/app:3", &oci]));
    let dar = format!("docker-archive:{}/app.tar", out.display());
    ok(&w.image(&["export", "local/app:3", &dar]));
    for src in [&oci, &dar] {
        let info: serde_json::Value =
            serde_json::from_str(&tool(Command::new("skopeo").args(["inspect", src]))).unwrap();
        assert_eq!(info["Layers"].as_array().unwrap().len(), 3, "{src}: {info}");
        assert!(
            info["Env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "FOO=bar"),
            "{src}: {info}"
        );
    }
    let unpacked = out.join("unpacked");
    tool(
        Command::new("umoci")
            .args(["unpack", "--image", &format!("{}/oci:v3", out.display())])
            .arg(&unpacked),
    );
    assert_committed_tree(&unpacked.join("rootfs"));

    // The docker-archive imports back (here) to the same view.
    ok(&w.image(&["import", &dar, "again:3"]));
    assert_eq!(ok(&w.run_sh(&[], "again:3", AFTER)), AFTER_WANT);
    w.assert_no_staging();
    w.env.assert_clean();
});

both_modes!(unchanged_image_exports_byte_identical, |mode| {
    let w = World::new(mode);
    w.import("v2", "app");
    let out = w.env.mkdir("out");
    ok(&w.image(&["export", "app", &format!("oci:{}/copy:v2", out.display())]));
    // The same manifest digest, and every blob the same bytes.
    let manifest_of = |dir: &Path| -> String {
        let idx: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        idx["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "v2")
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let copy = out.join("copy");
    assert_eq!(manifest_of(&w.layout), manifest_of(&copy));
    for e in std::fs::read_dir(copy.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let orig = std::fs::read(w.layout.join("blobs/sha256").join(e.file_name())).unwrap();
        assert_eq!(
            std::fs::read(e.path()).unwrap(),
            orig,
            "{:?}",
            e.file_name()
        );
    }
});

both_modes!(rootfs_tarball_is_one_layer, |mode| {
    let w = World::new(mode);
    let rootfs = w.env.dir.path().join("rootfs");
    let tgz = w.env.dir.path().join("rootfs.tar.gz");
    sh_ok(&format!(
        "echo hi > {r}/etc/hello && tar -C {r} --numeric-owner -czf {o} .",
        r = rootfs.display(),
        o = tgz.display()
    ));
    chown_tree(&tgz, w.env.owner.0, w.env.owner.1);
    ok(&w.image(&["import", &format!("tar:{}", tgz.display()), "plain"]));
    assert_eq!(ok(&w.run_sh(&[], "plain", "cat /etc/hello")), "hi\n");
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&w.image(&["inspect", "plain"]))).unwrap();
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(
        inspect["Layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
});

both_modes!(tag_rm_and_prune, |mode| {
    let w = World::new(mode);
    w.import("v1", "one");
    w.import("v2", "two");
    // v2 shares v1's layer: stored once.
    assert_eq!(w.layer_dirs().len(), 2);
    ok(&w.image(&["tag", "two", "127.0.0.1:5000/two:x"]));
    assert!(ok(&w.image(&["ls"])).contains("127.0.0.1:5000/two:x"));
    // Removing one of two names keeps the image.
    assert!(ok(&w.image(&["rm", "two"])).contains("untagged"));
    assert_eq!(w.layer_dirs().len(), 2);
    ok(&w.image(&["rm", "127.0.0.1:5000/two:x"]));
    assert_eq!(
        w.layer_dirs().len(),
        1,
        "the top layer went with its last image"
    );
    let o = w.image(&["inspect", "two"]);
    assert!(!o.ok());
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(
        o.stderr.contains("two") && o.stderr.contains("not in the store"),
        "{}",
        o.stderr
    );
    ok(&w.image(&["rm", "one"]));
    assert!(w.layer_dirs().is_empty());
    ok(&w.image(&["prune"]));
    let blobs = std::fs::read_dir(w.store.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "prune leaves no blob without an image");
});

both_modes!(rm_while_a_container_runs, |mode| {
    let w = World::new(mode);
    w.import("v2", "busy");
    let store = w.store.to_str().unwrap().to_string();
    let mut c = w.env.strata(&[
        "--store",
        &store,
        "busy",
        "--",
        "sh",
        "-c",
        "echo started; sleep 3; cat /etc/data.txt; ls /opq",
    ]);
    c.stdout(Stdio::piped());
    let mut child = KillOnDrop(c.spawn().unwrap());
    let mut line = String::new();
    use std::io::BufRead;
    let mut stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "started\n");
    ok(&w.image(&["rm", "busy"]));
    // The layers stay while the container runs on them.
    assert_eq!(w.layer_dirs().len(), 2);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(child.0.wait().unwrap().success());
    assert_eq!(rest, "data-v1\ny\n");
    ok(&w.image(&["prune"]));
    assert!(w.layer_dirs().is_empty());
    w.env.assert_clean();
});

both_modes!(concurrent_imports_share_a_layer, |mode| {
    let w = World::new(mode);
    let spawn = |tag: &str, name: &str| {
        let src = format!("oci:{}:{tag}", w.layout.display());
        let mut c = w.strata(&["image", "import", &src, name]);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    for round in 0..3 {
        let a = spawn("v1", &format!("a{round}"));
        let b = spawn("v2", &format!("b{round}"));
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        assert_eq!(w.layer_dirs().len(), 2);
    }
    assert_v2_view(&ok(&w.run_sh(&[], "b2", SHOW)));
    w.assert_no_staging();
});

both_modes!(import_killed_at_random_points, |mode| {
    let w = World::new(mode);
    let mut rng = Rng::new(time_seed());
    let src = format!("oci:{}:v2", w.layout.display());
    for i in 0..8 {
        let mut c = w.strata(&["image", "import", &src, "victim"]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        let _ = child.kill();
        let _ = child.wait();
        // The next command cleans up; the image is either absent or complete.
        let ls = ok(&w.image(&["ls"]));
        w.assert_no_staging();
        if ls.contains("victim") {
            assert_v2_view(&ok(&w.run_sh(&[], "victim", SHOW)));
            ok(&w.image(&["rm", "victim"]));
        }
        for l in w.layer_dirs() {
            // A layer dir is complete: its image's view proves the rest, here its
            // files are all there (the lower layer has the busybox binary).
            let p = w.store.join("layers").join(&l);
            assert!(
                std::fs::read_dir(&p).unwrap().count() > 0,
                "round {i}: empty layer {l}"
            );
        }
    }
    w.import("v2", "victim");
    assert_v2_view(&ok(&w.run_sh(&[], "victim", SHOW)));
});

both_modes!(bad_input_is_one_line_and_changes_nothing, |mode| {
    let w = World::new(mode);
    let one_line = |o: &CmdOut, needle: &str| {
        assert!(!o.ok(), "should fail: {}", o.stdout);
        assert_eq!(o.stderr.trim_end().lines().count(), 1, "{}", o.stderr);
        assert!(o.stderr.contains(needle), "want {needle:?} in {}", o.stderr);
    };
    one_line(&w.image(&["inspect", "nosuch"]), "nosuch");
    let store = w.store.to_str().unwrap();
    one_line(
        &run_within(
            &mut w.env.strata(&["--store", store, "nosuch", "--", "true"]),
            DEADLINE,
        ),
        "nosuch",
    );
    one_line(&w.image(&["import", "zip:/x", "a"]), "unknown transport");
    one_line(
        &w.image(&["import", &format!("oci:{}:nope", w.layout.display()), "a"]),
        "nope",
    );
    one_line(
        &w.image(&[
            "import",
            &format!("oci:{}:v2", w.layout.display()),
            "Bad Name",
        ]),
        "Bad Name",
    );
    // A layer blob that does not match its digest: named, and nothing stored.
    let blobs = w.layout.join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&biggest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&biggest, &bytes).unwrap();
    let name = biggest.file_name().unwrap().to_string_lossy().to_string();
    one_line(
        &w.image(&["import", &format!("oci:{}:v2", w.layout.display()), "a"]),
        &name,
    );
    assert!(w.layer_dirs().is_empty());
    assert!(!ok(&w.image(&["ls"])).contains("localhost/a"));
    // A truncated docker-archive.
    let tarf = w.env.dir.path().join("trunc.tar");
    std::fs::write(&tarf, &bytes[..1000.min(bytes.len())]).unwrap();
    chown_tree(&tarf, w.env.owner.0, w.env.owner.1);
    let o = w.image(&["import", &format!("docker-archive:{}", tarf.display()), "a"]);
    assert!(!o.ok());
    assert_eq!(o.stderr.trim_end().lines().count(), 1, "{}", o.stderr);
    w.assert_no_staging();
});

/// GET requests for blobs the registry answered.
fn blob_gets(reg: &harness::Registry) -> usize {
    reg.responses()
        .iter()
        .filter(|l| l.contains("GET") && l.contains("/blobs/sha256:"))
        .count()
}

fn skopeo_raw(host: &str, name: &str) -> String {
    tool(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/{name}"),
    ]))
}

both_modes!(pull_run_commit_push, |mode| {
    let w = World::new(mode);
    let reg = harness::Registry::start(harness::Config::default());
    let host = reg.host();
    w.copy_to(&host, "v2", "app:v2", &[]);
    // Plain HTTP needs --tls-verify=false, as in skopeo and podman.
    let r = format!("{host}/app:v2");
    let o = w.image(&["pull", &r]);
    assert!(!o.ok(), "https to a plain-http registry must fail");
    assert_eq!(o.stderr.trim_end().lines().count(), 1, "{}", o.stderr);
    let id = ok(&w.image(&["pull", "--tls-verify=false", &r]));
    assert!(id.starts_with("sha256:"), "{id}");
    assert!(
        ok(&w.image(&["ls"])).contains(&r),
        "named as podman names it"
    );
    assert_v2_view(&ok(&w.run_sh(&[], &r, SHOW)));
    // Pulled again: the layers are in the store, no blob is fetched.
    let gets = blob_gets(&reg);
    assert!(gets >= 3, "config and two layers were fetched: {gets}");
    ok(&w.image(&["pull", "--tls-verify=false", &r]));
    assert_eq!(blob_gets(&reg), gets, "a second pull fetched blobs");

    // Pushed back unchanged under another name: the same manifest, byte for byte.
    ok(&w.image(&["push", "--tls-verify=false", &r, &format!("{host}/copy:v2")]));
    assert_eq!(skopeo_raw(&host, "app:v2"), skopeo_raw(&host, "copy:v2"));

    // Changed, committed, pushed; skopeo and umoci see the deletions as deletions.
    changed_and_committed(&w, mode, &r, "app:v3");
    ok(&w.image(&[
        "push",
        "--tls-verify=false",
        "app:v3",
        &format!("{host}/app:v3"),
    ]));
    let info: serde_json::Value = serde_json::from_str(&tool(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host}/app:v3"),
    ])))
    .unwrap();
    assert_eq!(info["Layers"].as_array().unwrap().len(), 3, "{info}");
    let out = w.env.mkdir("pulled-back");
    let layout = format!("{}/oci", out.display());
    tool(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/app:v3"),
        &format!("oci:{layout}:v3"),
    ]));
    let unpacked = out.join("unpacked");
    tool(
        Command::new("umoci")
            .args(["unpack", "--image", &format!("{layout}:v3")])
            .arg(&unpacked),
    );
    assert_committed_tree(&unpacked.join("rootfs"));
    w.assert_no_staging();
    w.env.assert_clean();
});

both_modes!(pull_with_credentials, |mode| {
    let w = World::new(mode);
    let reg = harness::Registry::start(harness::Config {
        htpasswd: true,
        ..Default::default()
    });
    let host = reg.host();
    let creds = format!("--dest-creds={}:{}", harness::USER, harness::PASS);
    w.copy_to(&host, "v1", "private:v1", &[&creds]);
    let r = format!("{host}/private:v1");
    let runtime = w.env.mkdir("runtime");
    let pull = |extra: &[&str]| {
        let mut args = vec!["image", "pull", "--tls-verify=false"];
        args.extend_from_slice(extra);
        args.push(&r);
        let mut c = w.strata(&args);
        c.env("XDG_RUNTIME_DIR", &runtime)
            .env("HOME", w.env.dir.path());
        run_within(&mut c, DEADLINE)
    };
    // Each failure is one line that says what is wrong with the credentials.
    let o = pull(&[]);
    assert!(!o.ok());
    assert_eq!(o.stderr.trim_end().lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.contains("missing"), "{}", o.stderr);
    let wrong = format!("{}:nope", harness::USER);
    let o = pull(&["--creds", &wrong]);
    assert!(!o.ok());
    assert_eq!(o.stderr.trim_end().lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.contains("wrong"), "{}", o.stderr);
    assert!(w.layer_dirs().is_empty(), "nothing stored on failure");
    let right = format!("{}:{}", harness::USER, harness::PASS);
    ok(&pull(&["--creds", &right]));
    ok(&w.image(&["rm", &r]));
    // The containers auth file under $XDG_RUNTIME_DIR, as podman login writes it.
    std::fs::create_dir_all(runtime.join("containers")).unwrap();
    let auth = harness::b64(right.as_bytes(), false);
    std::fs::write(
        runtime.join("containers/auth.json"),
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    chown_tree(&runtime, w.env.owner.0, w.env.owner.1);
    ok(&pull(&[]));
    assert_eq!(ok(&w.run_sh(&[], &r, "cat /etc/data.txt")), "data-v1\n");
});

both_modes!(registry_errors_are_one_line, |mode| {
    let w = World::new(mode);
    let reg = harness::Registry::start(harness::Config::default());
    let host = reg.host();
    let one_line = |o: &CmdOut, needle: &str| {
        assert!(!o.ok(), "should fail: {}", o.stdout);
        assert_eq!(o.stderr.trim_end().lines().count(), 1, "{}", o.stderr);
        assert!(o.stderr.contains(needle), "want {needle:?} in {}", o.stderr);
    };
    let closed = format!("127.0.0.1:{}/app:v1", harness::closed_port());
    one_line(
        &w.image(&["pull", "--tls-verify=false", &closed]),
        "127.0.0.1",
    );
    one_line(
        &w.image(&["pull", "--tls-verify=false", &format!("{host}/nosuch:v1")]),
        "nosuch",
    );
    one_line(
        &w.image(&["pull", "--tls-verify=false", "Not/A Ref"]),
        "Not/A Ref",
    );
    one_line(
        &w.image(&[
            "push",
            "--tls-verify=false",
            "nosuch",
            &format!("{host}/x:1"),
        ]),
        "nosuch",
    );
    assert!(w.layer_dirs().is_empty());
    w.assert_no_staging();
});

/// A filesystem mounted (as root) for one test, owned by the test's user, unmounted
/// on drop.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn mount(w: &World, name: &str, fstype: &str, opts: &str) -> Scratch {
        let dir = w.env.mkdir(name);
        sh_ok(&format!(
            "mount -t {fstype} -o {opts} {fstype} {}",
            dir.display()
        ));
        let s = Scratch { dir };
        chown_tree(&s.dir, w.env.owner.0, w.env.owner.1);
        s
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

both_modes!(store_without_xattrs_is_refused, |mode| {
    let w = World::new(mode);
    let fs = Scratch::mount(&w, "ramfs", "ramfs", "mode=0755");
    let store = fs.dir.join("store");
    let src = format!("oci:{}:v2", w.layout.display());
    let s = store.to_str().unwrap();
    let mut c = w
        .env
        .strata_cmd(&["image", "import", "--store", s, &src, "app"]);
    let o = run_within(&mut c, DEADLINE);
    assert!(!o.ok());
    assert_eq!(o.stderr.trim_end().lines().count(), 1, "{}", o.stderr);
    assert!(
        o.stderr.contains("cannot hold") && o.stderr.contains("xattrs"),
        "{}",
        o.stderr
    );
});

both_modes!(full_disk_stores_nothing_half, |mode| {
    let w = World::new(mode);
    let fs = Scratch::mount(&w, "small", "tmpfs", "size=1536k,mode=0755");
    let store = fs.dir.join("store");
    let s = store.to_str().unwrap();
    let src = format!("oci:{}:v2", w.layout.display());
    let o = run_within(
        &mut w
            .env
            .strata_cmd(&["image", "import", "--store", s, &src, "big"]),
        DEADLINE,
    );
    assert!(!o.ok(), "a 1.5 MiB store cannot hold the image");
    assert_eq!(o.stderr.trim_end().lines().count(), 1, "{}", o.stderr);
    assert!(
        o.stderr.to_lowercase().contains("no space left"),
        "{}",
        o.stderr
    );
    let ls = ok(&run_within(
        &mut w.env.strata_cmd(&["image", "ls", "--store", s]),
        DEADLINE,
    ));
    assert!(!ls.contains("big"), "{ls}");
    let layers: Vec<_> = std::fs::read_dir(store.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(layers.is_empty(), "{layers:?}");
    assert_eq!(std::fs::read_dir(store.join("staging")).unwrap().count(), 0);
});

both_modes!(pull_and_commit_killed_at_random_points, |mode| {
    let w = World::new(mode);
    let reg = harness::Registry::start(harness::Config::default());
    let host = reg.host();
    w.copy_to(&host, "v2", "app:v2", &[]);
    let r = format!("{host}/app:v2");
    let mut rng = Rng::new(time_seed());
    let kill_after = |c: &mut Command, ms: u64| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
    };
    for _ in 0..6 {
        kill_after(
            &mut w.strata(&["image", "pull", "--tls-verify=false", &r]),
            rng.below(300),
        );
        let ls = ok(&w.image(&["ls"]));
        w.assert_no_staging();
        if ls.contains(&r) {
            assert_v2_view(&ok(&w.run_sh(&[], &r, SHOW)));
            ok(&w.image(&["rm", &r]));
        }
    }
    ok(&w.image(&["pull", "--tls-verify=false", &r]));
    assert_v2_view(&ok(&w.run_sh(&[], &r, SHOW)));
    // A commit killed at any point: no image, or the whole one.
    let upper = w.env.mkdir("upper");
    let u = upper.to_str().unwrap();
    ok(&w.run_sh(&["--upper", u], &r, "echo changed > /etc/data.txt"));
    for _ in 0..6 {
        kill_after(
            &mut w.strata(&["commit", "--upper", u, "--from", &r, "c:1"]),
            rng.below(150),
        );
        let ls = ok(&w.image(&["ls"]));
        w.assert_no_staging();
        if ls.contains("localhost/c:1") {
            assert_eq!(ok(&w.run_sh(&[], "c:1", "cat /etc/data.txt")), "changed\n");
            ok(&w.image(&["rm", "c:1"]));
        }
    }
});

both_modes!(concurrent_pulls_share_a_layer, |mode| {
    let w = World::new(mode);
    let reg = harness::Registry::start(harness::Config::default());
    let host = reg.host();
    for tag in ["v1", "v2"] {
        w.copy_to(&host, tag, &format!("app:{tag}"), &[]);
    }
    let spawn = |tag: &str| {
        let mut c = w.strata(&[
            "image",
            "pull",
            "--tls-verify=false",
            &format!("{host}/app:{tag}"),
        ]);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let (a, b) = (spawn("v1"), spawn("v2"));
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert_eq!(w.layer_dirs().len(), 2, "the shared layer is stored once");
    assert_v2_view(&ok(&w.run_sh(&[], &format!("{host}/app:v2"), SHOW)));
    w.assert_no_staging();
});

both_modes!(hostile_tarball_writes_nothing_outside, |mode| {
    let w = World::new(mode);
    let outside = w.env.mkdir("outside");
    let tarf = w.env.dir.path().join("evil.tar");
    // A symlink out of the layer, then an entry through it; then `..` escapes.
    let script = format!(
        "import tarfile, io\n\
         t = tarfile.open('{tar}', 'w')\n\
         s = tarfile.TarInfo('link'); s.type = tarfile.SYMTYPE; s.linkname = '{out}'; t.addfile(s)\n\
         f = tarfile.TarInfo('link/pwned'); f.size = 3; t.addfile(f, io.BytesIO(b'bad'))\n\
         g = tarfile.TarInfo('../../pwned2'); g.size = 3; t.addfile(g, io.BytesIO(b'bad'))\n\
         t.close()\n",
        tar = tarf.display(),
        out = outside.display()
    );
    ok(&run(Command::new("python3").args(["-c", &script])));
    chown_tree(&tarf, w.env.owner.0, w.env.owner.1);
    let o = w.image(&["import", &format!("tar:{}", tarf.display()), "evil"]);
    assert!(!o.ok());
    assert_eq!(o.stderr.trim_end().lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.contains("link/pwned"), "{}", o.stderr);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(w.layer_dirs().is_empty());
    assert!(!ok(&w.image(&["ls"])).contains("evil"));
    w.assert_no_staging();
});

both_modes!(docker_archive_written_by_skopeo_imports, |mode| {
    // skopeo's docker-archive transport is containers/image's, the one `podman save`
    // writes with.
    let w = World::new(mode);
    let tarf = w.env.dir.path().join("saved.tar");
    let src = format!("oci:{}:v2", w.layout.display());
    tool(Command::new("skopeo").args([
        "copy",
        &src,
        &format!("docker-archive:{}:saved/app:v2", tarf.display()),
    ]));
    chown_tree(&tarf, w.env.owner.0, w.env.owner.1);
    ok(&w.image(&[
        "import",
        &format!("docker-archive:{}", tarf.display()),
        "saved:2",
    ]));
    assert_v2_view(&ok(&w.run_sh(&[], "saved:2", SHOW)));
    let o = ok(&run_within(
        &mut w
            .env
            .strata(&["--store", w.store.to_str().unwrap(), "saved:2"]),
        DEADLINE,
    ));
    assert_eq!(o, "FOO=bar\n/srv\n");
});
