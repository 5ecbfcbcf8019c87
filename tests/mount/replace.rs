//! A file that loses its name while it is open: an atomic replace (write
//! `NAME.tmp`, rename it over `NAME`, as editors, apt, dpkg and git save
//! files), an unlink, hard links. And chown: to -1, -1, and of the mount root.
//!
//! Every test runs with the root default (FUSE passthrough) and with
//! `passthrough=off`, where the kernel's writeback cache is on, as in every
//! mount made by an ordinary user; the atomic replace also as a real mount made
//! by one (strata-u1). With the writeback cache the kernel writes an inode's
//! times back with a SETATTR right after the rename or unlink that changed its
//! ctime, and at fsync and close; for the replaced file that SETATTR must act
//! on the open object, never on the name (another file has it now).

use crate::support::*;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

/// The root default (passthrough) and the writeback cache.
const CONFIGS: [&str; 2] = ["", "passthrough=off"];

/// The mtime a new version gets before it is renamed into place.
const NEW_MTIME: i64 = 1_500_000_000;

fn mount(lay: &Layout, extra: &str) -> Mount {
    if extra.is_empty() {
        lay.mount()
    } else {
        lay.mount_with(extra)
    }
}

/// close(2) with its result (dropping a File ignores it).
fn close(f: File) -> io::Result<()> {
    let fd = f.into_raw_fd();
    cvt(unsafe { libc::close(fd) }).map(drop)
}

fn errno<T>(r: io::Result<T>) -> Result<T, String> {
    r.map_err(|e| errname(e.raw_os_error().unwrap_or(-1)))
}

fn fchmod(f: &File, mode: u32) -> io::Result<()> {
    cvt(unsafe { libc::fchmod(f.as_raw_fd(), mode) }).map(drop)
}

fn fchown(f: &File, uid: u32, gid: u32) -> io::Result<()> {
    cvt(unsafe { libc::fchown(f.as_raw_fd(), uid, gid) }).map(drop)
}

/// Writes `NAME.tmp` with `data` (mtime NEW_MTIME) and renames it over `NAME`.
fn replace(dir: &Path, name: &str, data: &str) {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut t = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .unwrap_or_else(|e| panic!("create {}: {e}", tmp.display()));
    t.write_all(data.as_bytes()).unwrap();
    t.sync_all().unwrap();
    t.set_modified(UNIX_EPOCH + Duration::from_secs(NEW_MTIME as u64))
        .unwrap();
    close(t).unwrap_or_else(|e| panic!("close of {}: {e}", tmp.display()));
    fs::rename(&tmp, dir.join(name)).unwrap_or_else(|e| panic!("rename over {name}: {e}"));
}

/// The editor's save: `NAME` open read-only, a new version renamed over it,
/// then the old fd is read (optionally fsynced) and closed. Returns what was
/// wrong, as text.
fn save_with_old_fd_open(dir: &Path, name: &str, old: &str, new: &str, fsync: bool) -> Vec<String> {
    let mut bad = Vec::new();
    let p = dir.join(name);
    let ro = File::open(&p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    replace(dir, name, new);
    let mut buf = vec![0; 64];
    match ro.read_at(&mut buf, 0) {
        Ok(n) if &buf[..n] == old.as_bytes() => {}
        r => bad.push(format!(
            "{name}: old fd reads {:?}, not {old:?}",
            r.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
        )),
    }
    if fsync {
        if let Err(e) = errno(ro.sync_all()) {
            bad.push(format!("{name}: fsync of the old fd: {e}"));
        }
    }
    if let Err(e) = errno(close(ro)) {
        bad.push(format!("{name}: close of the old fd: {e}"));
    }
    match fs::read_to_string(&p) {
        Ok(s) if s == new => {}
        r => bad.push(format!("{name}: reads {r:?} after the save, not {new:?}")),
    }
    match fs::metadata(&p) {
        Ok(st) if st.mtime() == NEW_MTIME && st.mode() & 0o7777 == 0o600 => {}
        Ok(st) => bad.push(format!(
            "{name}: new file has mtime {} mode {:o} (expected {NEW_MTIME}, 600)",
            st.mtime(),
            st.mode() & 0o7777
        )),
        Err(e) => bad.push(format!("{name}: stat after the save: {e}")),
    }
    bad
}

/// Lower and upper files saved over while open read-only, through the
/// mount at `mnt`; what went wrong.
fn saves(mnt: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    write(mnt.join("upper"), "upper data");
    write(mnt.join("upper-fsync"), "upper data");
    for (name, old, fsync) in [
        ("lower", "lower data", false),
        ("lower-fsync", "lower data", true),
        ("upper", "upper data", false),
        ("upper-fsync", "upper data", true),
    ] {
        bad.extend(save_with_old_fd_open(mnt, name, old, "new version", fsync));
    }
    // Saved again: the replaced file is now one the mount made.
    bad.extend(save_with_old_fd_open(
        mnt,
        "lower",
        "new version",
        "third",
        false,
    ));
    bad
}

fn saves_layout() -> Layout {
    let lay = Layout::new(1);
    write(lay.l(0, "lower"), "lower data");
    write(lay.l(0, "lower-fsync"), "lower data");
    lay
}

fn check_saved_upper(lay: &Layout, what: &str) {
    assert_eq!(read_string(lay.u("lower")), "third", "{what}: upper lower");
    for name in ["lower-fsync", "upper", "upper-fsync"] {
        assert_eq!(
            read_string(lay.u(name)),
            "new version",
            "{what}: upper {name}"
        );
        assert_eq!(
            lstat_meta(lay.u(name)).mtime(),
            NEW_MTIME,
            "{what}: upper {name} mtime"
        );
    }
    assert_eq!(
        read_string(lay.l(0, "lower")),
        "lower data",
        "{what}: lower changed"
    );
    let mut left: Vec<String> = ls(&lay.upper);
    left.retain(|n| n.ends_with(".tmp"));
    assert!(left.is_empty(), "{what}: temporary files left: {left:?}");
}

#[test]
fn close_of_a_read_only_fd_after_an_atomic_replace_succeeds() {
    let klay = saves_layout();
    let k = klay.kernel_mount();
    let kbad = saves(&k.mnt);
    assert!(kbad.is_empty(), "kernel overlayfs: {kbad:#?}");
    for extra in CONFIGS {
        let lay = saves_layout();
        let m = mount(&lay, extra);
        let bad = saves(&m.mnt);
        assert!(bad.is_empty(), "[{extra}] {bad:#?}");
        m.umount();
        check_saved_upper(&lay, extra);
    }
}

fn user(name: &str) -> (u32, u32) {
    let id = |flag: &str| {
        let out = run(Command::new("id").arg(flag).arg(name));
        assert!(
            out.ok(),
            "id {flag} {name}: {} (run scripts/setup)",
            out.stderr
        );
        out.stdout.trim().parse::<u32>().unwrap()
    };
    (id("-u"), id("-g"))
}

#[test]
fn close_after_an_atomic_replace_in_a_mount_made_by_an_ordinary_user() {
    let (uid, gid) = user("strata-u1");
    let lay = saves_layout();
    chown_tree(lay.dir.path(), uid, gid);
    lchown(lay.dir.path(), 0, 0).unwrap();
    let out = run(strata()
        .uid(uid)
        .gid(gid)
        .env("HOME", "/")
        .arg("mount")
        .arg("-o")
        .arg(lay.opts())
        .arg(&lay.mnt));
    let m = Mount::adopt(out, &lay.mnt, "strata mount (as strata-u1)");
    let bad = as_user(&Creds::user(uid, gid), || {
        let mut bad = saves(&lay.mnt);
        // and an unlinked one
        write(lay.m("gone"), "x");
        let ro = File::open(lay.m("gone")).unwrap();
        fs::remove_file(lay.m("gone")).unwrap();
        if let Err(e) = errno(close(ro)) {
            bad.push(format!("close after unlink: {e}"));
        }
        bad
    });
    assert!(bad.is_empty(), "[strata-u1] {bad:#?}");
    m.umount();
    check_saved_upper(&lay, "strata-u1");
}

#[test]
fn fsync_and_close_of_a_read_only_fd_after_unlink_succeed() {
    for extra in CONFIGS {
        let lay = Layout::new(1);
        write(lay.l(0, "lower"), "lower data");
        write(lay.l(0, "lower-fsync"), "lower data");
        let m = mount(&lay, extra);
        write(lay.m("upper"), "upper data");
        write(lay.m("upper-fsync"), "upper data");
        for (name, data, fsync) in [
            ("lower", "lower data", false),
            ("lower-fsync", "lower data", true),
            ("upper", "upper data", false),
            ("upper-fsync", "upper data", true),
        ] {
            let what = format!("[{extra}] {name}");
            let ro = File::open(lay.m(name)).unwrap();
            fs::remove_file(lay.m(name)).unwrap();
            let mut buf = vec![0; 64];
            let n = ro.read_at(&mut buf, 0).unwrap();
            assert_eq!(&buf[..n], data.as_bytes(), "{what}: read after unlink");
            if fsync {
                errno(ro.sync_all()).unwrap_or_else(|e| panic!("{what}: fsync after unlink: {e}"));
            }
            errno(close(ro)).unwrap_or_else(|e| panic!("{what}: close after unlink: {e}"));
            assert!(!exists(lay.m(name)), "{what}: back");
        }
        m.umount();
        assert_eq!(
            ls(&lay.upper),
            strs(&["lower", "lower-fsync"]),
            "[{extra}] whiteouts only"
        );
        assert!(is_whiteout(lay.u("lower")), "[{extra}] lower whiteout");
    }
}

/// A file opened read-write and written, replaced, written again and closed:
/// the writes and times set through the old fd stay on the old object.
#[test]
fn writes_through_the_old_fd_after_a_replace_stay_on_the_old_file() {
    for extra in CONFIGS {
        let lay = Layout::new(1);
        write(lay.l(0, "lower"), "lower data");
        let m = mount(&lay, extra);
        write(lay.m("upper"), "upper data");
        for name in ["lower", "upper"] {
            let what = format!("[{extra}] {name}");
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(lay.m(name))
                .unwrap();
            f.write_all_at(b"DIRTY", 0).unwrap();
            replace(&lay.mnt, name, "new version");
            f.write_all_at(b"+after", 10).unwrap();
            f.set_modified(UNIX_EPOCH + Duration::from_secs(1_000_000_000))
                .unwrap_or_else(|e| panic!("{what}: futimens of the old fd: {e}"));
            errno(f.sync_all()).unwrap_or_else(|e| panic!("{what}: fsync of the old fd: {e}"));
            let st = f.metadata().unwrap();
            assert_eq!(st.mtime(), 1_000_000_000, "{what}: old fd mtime");
            let mut buf = vec![0; 64];
            let n = f.read_at(&mut buf, 0).unwrap();
            assert_eq!(&buf[..n], b"DIRTY data+after", "{what}: old fd data");
            errno(close(f)).unwrap_or_else(|e| panic!("{what}: close of the old fd: {e}"));
            assert_eq!(read_string(lay.m(name)), "new version", "{what}: new file");
            assert_eq!(
                lstat_meta(lay.m(name)).mtime(),
                NEW_MTIME,
                "{what}: new mtime"
            );
        }
        m.umount();
        for name in ["lower", "upper"] {
            assert_eq!(
                read_string(lay.u(name)),
                "new version",
                "[{extra}] upper {name}"
            );
            assert_eq!(
                lstat_meta(lay.u(name)).mtime(),
                NEW_MTIME,
                "[{extra}] upper {name} mtime"
            );
        }
        assert_eq!(read_string(lay.l(0, "lower")), "lower data");
    }
}

/// Metadata changes through a read-only fd of a replaced file: on an upper
/// file they change the old object only; a lower file has no name left to be
/// copied up to, and the kernel fails them with EEXIST.
#[test]
fn metadata_changes_through_the_old_fd_after_a_replace() {
    let run_on = |mnt: &Path| -> Vec<(String, Result<(), String>)> {
        write(mnt.join("upper"), "upper data");
        let mut out = Vec::new();
        for name in ["lower", "upper"] {
            let ro = File::open(mnt.join(name)).unwrap();
            replace(mnt, name, "new version");
            out.push((format!("{name} fchmod"), errno(fchmod(&ro, 0o640))));
            out.push((
                format!("{name} fchown -1 -1"),
                errno(fchown(&ro, u32::MAX, u32::MAX)),
            ));
            out.push((
                format!("{name} futimens"),
                errno(ro.set_modified(UNIX_EPOCH + Duration::from_secs(1_000_000_000))),
            ));
            let st = ro.metadata().unwrap();
            let changed = st.mode() & 0o7777 == 0o640 && st.mtime() == 1_000_000_000;
            out.push((
                format!("{name} old fd changed"),
                if changed { Ok(()) } else { Err("no".into()) },
            ));
            out.push((format!("{name} close"), errno(close(ro))));
            let st = fs::metadata(mnt.join(name)).unwrap();
            let kept = st.permissions().mode() & 0o7777 == 0o600 && st.mtime() == NEW_MTIME;
            out.push((
                format!("{name} new file kept"),
                if kept {
                    Ok(())
                } else {
                    Err(format!("{:o} {}", st.mode(), st.mtime()))
                },
            ));
            assert_eq!(read_string(mnt.join(name)), "new version");
        }
        out
    };
    let klay = Layout::new(1);
    write(klay.l(0, "lower"), "lower data");
    let k = klay.kernel_mount();
    let expected = run_on(&k.mnt);
    assert!(
        expected
            .iter()
            .any(|(w, r)| w == "upper fchmod" && r.is_ok()),
        "kernel: {expected:?}"
    );
    for extra in CONFIGS {
        let lay = Layout::new(1);
        write(lay.l(0, "lower"), "lower data");
        let m = mount(&lay, extra);
        let got = run_on(&m.mnt);
        assert_eq!(
            got, expected,
            "[{extra}] strata (left) vs kernel overlayfs (right)"
        );
        m.umount();
        assert_eq!(ls(&lay.upper), ls(&klay.upper), "[{extra}] upper entries");
        assert_eq!(read_string(lay.l(0, "lower")), "lower data");
    }
}

/// Hard links: the name that is left keeps the old file, its times included;
/// the other name of a lower hard-linked file is not copied up (the kernel's
/// time write-back is no change to it).
#[test]
fn replace_and_unlink_of_hard_linked_files() {
    let prepare = |lay: &Layout| {
        for (a, b) in [("r1", "r2"), ("k1", "k2")] {
            write(lay.l(0, a), "lower link");
            fs::hard_link(lay.l(0, a), lay.l(0, b)).unwrap();
        }
    };
    let run_on = |mnt: &Path| -> Vec<String> {
        let mut bad = Vec::new();
        write(mnt.join("u1"), "upper link");
        fs::hard_link(mnt.join("u1"), mnt.join("u2")).unwrap();
        lutimens(mnt.join("u1"), (1_000_000_000, 0), (1_100_000_000, 0)).unwrap();
        for n in ["u1", "u2", "r1", "r2", "k1", "k2"] {
            lstat_meta(mnt.join(n));
        }
        // atomic replace of one name of an upper and of a lower hard link
        for (a, b, data) in [("u1", "u2", "upper link"), ("r1", "r2", "lower link")] {
            let mtime = lstat_meta(mnt.join(b)).mtime();
            bad.extend(save_with_old_fd_open(mnt, a, data, "new version", false));
            if read_string(mnt.join(b)) != data {
                bad.push(format!("{b}: {:?}", read_string(mnt.join(b))));
            }
            if lstat_meta(mnt.join(b)).mtime() != mtime {
                bad.push(format!("{b}: mtime changed"));
            }
        }
        // unlink of one name while the other is open
        let ro = File::open(mnt.join("k1")).unwrap();
        fs::remove_file(mnt.join("k2")).unwrap();
        if let Err(e) = errno(close(ro)) {
            bad.push(format!("k1: close after unlinking k2: {e}"));
        }
        if read_string(mnt.join("k1")) != "lower link" {
            bad.push("k1 changed".into());
        }
        bad
    };
    let klay = Layout::new(1);
    prepare(&klay);
    let k = klay.kernel_mount();
    let kbad = run_on(&k.mnt);
    assert!(kbad.is_empty(), "kernel overlayfs: {kbad:#?}");
    k.umount();
    for extra in CONFIGS {
        let lay = Layout::new(1);
        prepare(&lay);
        let m = mount(&lay, extra);
        let bad = run_on(&m.mnt);
        assert!(bad.is_empty(), "[{extra}] {bad:#?}");
        m.umount();
        assert_eq!(
            ls(&lay.upper),
            ls(&klay.upper),
            "[{extra}] upper entries, strata (left) vs kernel overlayfs (right)"
        );
        assert_eq!(read_string(lay.u("u2")), "upper link");
    }
}

/// chown(path, -1, -1) changes no owner, but it is a change: the kernel copies
/// a lower object up and updates its ctime.
#[test]
fn chown_to_minus_one_copies_up_and_updates_ctime() {
    let prepare = |lay: &Layout| {
        write(lay.l(0, "f"), "lower file");
        ln_s("target", lay.l(0, "s"));
        mkdirs(lay.l(0, "d"));
        write(lay.l(0, "d/x"), "x");
        write(lay.l(0, "g"), "lower file");
    };
    let run_on = |mnt: &Path, upper: &Path| -> Vec<String> {
        let mut bad = Vec::new();
        write(mnt.join("u"), "upper file");
        let names = ["f", "s", "d", "u", "g", ""];
        let before: Vec<(i64, i64)> = names
            .iter()
            .map(|n| {
                let st = lstat_meta(mnt.join(n));
                (st.ctime(), st.ctime_nsec())
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        for n in names {
            let p = mnt.join(n);
            let r = match n {
                "s" => lchown(&p, u32::MAX, u32::MAX),
                "g" => File::open(&p).and_then(|f| fchown(&f, u32::MAX, u32::MAX)),
                _ => chown(&p, u32::MAX, u32::MAX),
            };
            if let Err(e) = errno(r) {
                bad.push(format!("chown {n:?} -1 -1: {e}"));
            }
        }
        for (n, b) in names.iter().zip(&before) {
            for (view, p) in [("merged", mnt.join(n)), ("upper", upper.join(n))] {
                match fs::symlink_metadata(&p) {
                    Ok(st) if (st.ctime(), st.ctime_nsec()) > *b => {}
                    Ok(_) => bad.push(format!("{n:?}: {view} ctime not updated")),
                    Err(e) => bad.push(format!("{n:?}: no {view} object: {e}")),
                }
            }
        }
        let st = lstat_meta(mnt.join("f"));
        if (st.uid(), st.gid(), st.mode() & 0o7777) != (0, 0, 0o644) {
            bad.push(format!("f: owner or mode changed: {st:?}"));
        }
        for p in [mnt.join("f"), upper.join("f")] {
            if fs::read_to_string(&p).ok().as_deref() != Some("lower file") {
                bad.push(format!("{}: data", p.display()));
            }
        }
        if fs::read_link(upper.join("s")).ok() != Some("target".into()) {
            bad.push("s: upper target".into());
        }
        if ls(mnt.join("d")) != strs(&["x"]) {
            bad.push("d: listing".into());
        }
        bad
    };
    let klay = Layout::new(1);
    prepare(&klay);
    let k = klay.kernel_mount();
    let kbad = run_on(&k.mnt, &klay.upper);
    assert!(kbad.is_empty(), "kernel overlayfs: {kbad:#?}");
    k.umount();
    for extra in CONFIGS {
        let lay = Layout::new(1);
        prepare(&lay);
        let m = mount(&lay, extra);
        let bad = run_on(&m.mnt, &lay.upper);
        assert!(bad.is_empty(), "[{extra}] {bad:#?}");
        m.umount();
        assert_eq!(
            ls(&lay.upper),
            ls(&klay.upper),
            "[{extra}] upper entries, strata (left) vs kernel overlayfs (right)"
        );
        assert_eq!(ls(lay.u("d")), ls(klay.u("d")), "[{extra}] upper d");
    }
}

/// chown of the mount root (the upper root directory is reached through an
/// O_PATH fd).
#[test]
fn chown_of_the_mount_root() {
    for extra in CONFIGS {
        let lay = Layout::new(1);
        let m = mount(&lay, extra);
        let (uid, gid) = (lstat_meta(&lay.mnt).uid(), lstat_meta(&lay.mnt).gid());
        errno(chown(&lay.mnt, uid, gid))
            .unwrap_or_else(|e| panic!("[{extra}] chown of the mount root: {e}"));
        errno(chown(&lay.mnt, 4242, 4343))
            .unwrap_or_else(|e| panic!("[{extra}] chown of the mount root: {e}"));
        let st = lstat_meta(&lay.mnt);
        assert_eq!((st.uid(), st.gid()), (4242, 4343), "[{extra}]");
        m.umount();
        let st = lstat_meta(&lay.upper);
        assert_eq!((st.uid(), st.gid()), (4242, 4343), "[{extra}] upper root");
    }
}
