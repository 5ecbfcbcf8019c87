//! Times: access times and the mount's generic flags (noatime, relatime,
//! strictatime, nodiratime, lazytime, sync, dirsync), each checked against
//! kernel overlayfs on the same layers (which objects a read updates, that
//! ctime stays, what /proc/self/mountinfo shows), and mtime and ctime after
//! writes through a shared mapping.

use crate::support::*;
use std::collections::BTreeMap;
use std::path::Path;

const DAY: i64 = 24 * 60 * 60;

/// The objects read: files and directories from the lower, from the upper,
/// and a directory merged from both.
const FILES: [&str; 2] = ["lf", "uf"];
const DIRS: [&str; 3] = ["ld", "ud", "md"];

fn layout() -> Layout {
    let lay = Layout::new(1);
    write(lay.l(0, "lf"), "lower");
    write(lay.u("uf"), "upper");
    for d in ["ld", "md"] {
        mkdirs(lay.l(0, d));
        write(lay.l(0, format!("{d}/x")), "x");
    }
    for d in ["ud", "md"] {
        mkdirs(lay.u(d));
        write(lay.u(format!("{d}/y")), "y");
    }
    lay
}

/// The layer object behind a merged name (upper first, as a lookup finds it).
fn layer_path(lay: &Layout, name: &str) -> std::path::PathBuf {
    if lay.u(name).exists() {
        lay.u(name)
    } else {
        lay.l(0, name)
    }
}

/// Sets every object's atime: `fresh` puts it after mtime and ctime (only
/// strictatime updates it then), else two days back (relatime updates it too).
fn set_atimes(lay: &Layout, fresh: bool) {
    let now = now_secs();
    for name in FILES.iter().chain(DIRS.iter()) {
        for p in [lay.u(name), lay.l(0, name)] {
            if p.exists() {
                let (a, m) = if fresh {
                    ((now + 30, 0), (now - 100, 0))
                } else {
                    ((now - 2 * DAY, 0), (now - 3 * DAY, 0))
                };
                utimensat(&p, a, m, 0).unwrap();
            }
        }
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// (atime, ctime) of each layer object, by "upper/NAME" or "lower/NAME".
type LayerTimes = BTreeMap<String, ((i64, i64), (i64, i64))>;

fn layer_times(lay: &Layout) -> LayerTimes {
    let mut out = BTreeMap::new();
    for name in FILES.iter().chain(DIRS.iter()) {
        for (tag, p) in [("upper", lay.u(name)), ("lower", lay.l(0, name))] {
            if let Ok(st) = lstat(&p) {
                out.insert(
                    format!("{tag}/{name}"),
                    (
                        (st.st_atime, st.st_atime_nsec),
                        (st.st_ctime, st.st_ctime_nsec),
                    ),
                );
            }
        }
    }
    out
}

/// Reads every file and lists every directory under `root`; returns which
/// layer objects got a new atime, and checks that the merged view shows the
/// layer's atime and (`ctime_kept`) that no ctime changed. (Kernel overlayfs
/// itself marks a merged upper directory with an xattr at its first lookup.)
fn read_all(lay: &Layout, root: &Path, what: &str, ctime_kept: bool) -> Vec<String> {
    let before = layer_times(lay);
    for f in FILES {
        read(root.join(f));
    }
    for d in DIRS {
        list_dir(root.join(d)).unwrap();
    }
    let after = layer_times(lay);
    let mut changed = Vec::new();
    for (k, (a0, c0)) in &before {
        let (a1, c1) = after[k];
        if ctime_kept {
            assert_eq!(*c0, c1, "{what}: ctime of {k} changed by a read");
        }
        if *a0 != a1 {
            changed.push(k.clone());
        }
    }
    for name in FILES.iter().chain(DIRS.iter()) {
        let merged = stat(root.join(name)).unwrap();
        let layer = lstat(layer_path(lay, name)).unwrap();
        assert_eq!(
            (merged.st_atime, merged.st_atime_nsec),
            (layer.st_atime, layer.st_atime_nsec),
            "{what}: atime of {name} in the merged view differs from its layer's"
        );
    }
    changed
}

fn check_rule(opts: &str) {
    for fresh in [false, true] {
        let lay = layout();
        let what = format!(
            "-o {opts:?}, atimes {}",
            if fresh { "fresh" } else { "old" }
        );
        set_atimes(&lay, fresh);
        let k = if opts.is_empty() {
            lay.kernel_mount()
        } else {
            lay.kernel_mount_with(opts)
        };
        let kernel = read_all(&lay, &k.mnt, &format!("kernel {what}"), false);
        k.umount();
        set_atimes(&lay, fresh);
        let m = if opts.is_empty() {
            lay.mount()
        } else {
            lay.mount_with(opts)
        };
        let strata = read_all(&lay, &m.path(""), &format!("strata {what}"), true);
        m.umount();
        assert_eq!(strata, kernel, "{what}: objects whose atime a read updated");
    }
}

#[test]
fn relatime_is_the_default_and_matches_the_kernel() {
    check_rule("");
    check_rule("relatime");
}

#[test]
fn noatime_reads_change_no_atime() {
    check_rule("noatime");
}

#[test]
fn strictatime_updates_on_every_read() {
    check_rule("strictatime");
}

#[test]
fn nodiratime_leaves_directories_alone() {
    check_rule("nodiratime");
    check_rule("strictatime,nodiratime");
}

/// The generic flags a mount shows, per mount and per superblock.
fn shown_flags(mnt: &Path) -> Vec<String> {
    let e = mount_entry(mnt).unwrap_or_else(|| panic!("{} is not mounted", mnt.display()));
    let known = [
        "noatime",
        "relatime",
        "nodiratime",
        "sync",
        "dirsync",
        "lazytime",
        "nosuid",
        "nodev",
        "noexec",
        "ro",
    ];
    let mut out: Vec<String> = e
        .opts
        .split(',')
        .chain(e.super_opts.split(','))
        .filter(|o| known.contains(o))
        .map(String::from)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn generic_mount_flags_are_accepted_and_shown_as_the_kernel_shows_them() {
    for opts in [
        "nodiratime",
        "diratime",
        "strictatime",
        "relatime",
        "noatime",
        "atime",
        "lazytime",
        "sync",
        "dirsync",
        "sync,nolazytime,noatime,nodiratime",
        "strictatime,noatime",
        "noatime,strictatime",
    ] {
        let lay = layout();
        let k = lay.kernel_mount_with(opts);
        let kernel = shown_flags(&k.mnt);
        k.umount();
        let m = lay.mount_with(opts);
        let strata = shown_flags(&m.path(""));
        // The union still works with the flags on (with sync and dirsync
        // every change of names also syncs the upper directory).
        write(m.path("new"), "data");
        assert_eq!(read_string(m.path("new")), "data");
        mkdir(m.path("md/sub"), 0o755).unwrap();
        rename(m.path("new"), m.path("md/sub/moved")).unwrap();
        link(m.path("md/sub/moved"), m.path("ud/linked")).unwrap();
        symlink("moved", m.path("md/sub/sym")).unwrap();
        unlink(m.path("lf")).unwrap();
        rename(m.path("ld"), m.path("ld2")).unwrap();
        assert_eq!(read_string(m.path("ud/linked")), "data");
        assert_eq!(ls(m.path("md/sub")), strs(&["moved", "sym"]));
        m.umount();
        // Kernel overlayfs mounts nosuid/nodev as the caller asks; strata as
        // root is suid,dev by default too.
        assert_eq!(strata, kernel, "-o {opts}: flags shown in mountinfo");
    }
}

/// mtime and ctime as stat(1) shows them: its statx asks for just the fields
/// it prints, which the kernel may answer from its cache where a full stat
/// would not.
fn mc_times(p: &Path) -> ((i64, i64), (i64, i64)) {
    let out = run(std::process::Command::new("stat")
        .args(["-c", "%.9Y %.9Z"])
        .arg(p));
    assert!(out.ok(), "stat {}: {}", p.display(), out.stderr);
    let parse = |s: &str| -> (i64, i64) {
        let (secs, nanos) = s.split_once('.').unwrap_or((s, "0"));
        (secs.parse().unwrap_or(0), nanos.parse().unwrap_or(0))
    };
    let mut it = out.stdout.split_whitespace();
    let m = parse(it.next().unwrap_or(""));
    let c = parse(it.next().unwrap_or(""));
    (m, c)
}

/// Python, as a separate process, as programs that use the file do.
fn python(code: &str) {
    let out = run(std::process::Command::new("python3").arg("-c").arg(code));
    assert!(out.ok(), "python3 -c {code:?}: {}", out.stderr);
}

#[test]
fn a_write_through_a_shared_mapping_updates_mtime_and_ctime() {
    let lay = layout();
    write(lay.l(0, "lower4k"), vec![b'l'; 4096]);
    let m = lay.mount();
    python(&format!(
        "import os; fd = os.open({:?}, os.O_CREAT | os.O_RDWR, 0o644); \
         os.write(fd, b'u' * 4096); os.fsync(fd)",
        m.path("upper4k")
    ));
    for name in ["upper4k", "lower4k", "upper4k"] {
        for exit_mapped in [true, false] {
            let p = m.path(name);
            // The kernel caches the attributes.
            let before = mc_times(&p);
            std::thread::sleep(std::time::Duration::from_millis(30));
            // A shared, writable (and executable, as xfs_io maps) mapping,
            // written once; the process then exits with it still mapped and
            // the file open, or unmaps and closes first.
            let end = if exit_mapped {
                "os._exit(0)"
            } else {
                "m.close(); os.close(fd)"
            };
            python(&format!(
                "import os, mmap; fd = os.open({p:?}, os.O_RDWR); \
                 m = mmap.mmap(fd, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC); \
                 m[100] = ord('x'); {end}"
            ));
            let after = mc_times(&p);
            assert!(
                after.0 > before.0 && after.1 > before.1,
                "{name} (exit with the mapping: {exit_mapped}): mtime and ctime \
                 {before:?} -> {after:?} after a write through a shared mapping"
            );
            assert_eq!(
                read(&p)[100],
                b'x',
                "{name}: the mapped write is not in the file"
            );
            let upper = lstat(lay.u(name)).unwrap();
            assert_eq!(
                after.0,
                (upper.st_mtime, upper.st_mtime_nsec),
                "{name}: mtime differs from the upper file's"
            );
        }
    }
}
