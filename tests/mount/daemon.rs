//! The daemon touches only its own mount. Unmounting and mounting again on the
//! same path: each daemon's watchdog detaches only the mount its daemon made
//! (known by its unique mount id), and the daemon never unmounts by path when its
//! session ends (fuser did, after `strata umount` had already returned). Before,
//! a new mount vanished 5 to 9 times in 100, and later writes landed in the bare
//! directory under it. Also: `strata umount` refuses other mounts, the fstype,
//! the watchdog's name and signals, the log and pid files.

use crate::support::*;
use std::fs;
use std::os::unix::process::CommandExt;
use std::time::Duration;

fn cycles(default: usize) -> usize {
    std::env::var("STRATA_REMOUNT_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes `value` through the mount and checks it reached this mount's upper.
#[track_caller]
fn write_through(lay: &Layout, cycle: usize) {
    let value = format!("cycle {cycle}");
    fs::write(lay.m("f"), &value).unwrap_or_else(|e| panic!("cycle {cycle}: write: {e}"));
    assert_eq!(read_string(lay.m("f")), value, "cycle {cycle}: read back");
    assert_eq!(
        fs::read_to_string(lay.u("f")).unwrap_or_default(),
        value,
        "cycle {cycle}: the write did not reach the upper: the mount was gone"
    );
}

/// `strata` as root, or as nobody (the rootless path: fusermount3 mounts and unmounts).
fn strata_as(rootless: bool) -> std::process::Command {
    let mut c = strata();
    if rootless {
        c.uid(NOBODY).gid(NOGROUP).env("HOME", "/");
    }
    c
}

/// Mount, write through, unmount, and mount again at once, `n` times: the old
/// daemon and its watchdog are still on their way out while the new mount comes up.
fn remount_cycles(rootless: bool, n: usize) {
    let lay = Layout::new(1);
    write(lay.l(0, "base"), "lower");
    if rootless {
        chown_tree(lay.dir.path(), NOBODY, NOGROUP);
        lchown(lay.dir.path(), 0, 0).unwrap();
    }
    let mount = |cycle: usize| {
        let out = run(strata_as(rootless)
            .arg("mount")
            .arg("-o")
            .arg(lay.opts())
            .arg(&lay.mnt));
        Mount::adopt(out, &lay.mnt, &format!("cycle {cycle}: strata mount"))
    };
    let write_as = |cycle: usize| {
        if rootless {
            as_user(&Creds::user(NOBODY, NOGROUP), || write_through(&lay, cycle));
        } else {
            write_through(&lay, cycle);
        }
    };
    let mut m = mount(0);
    for cycle in 0..n {
        write_as(cycle);
        let out = run_retry_busy(|| {
            let mut c = strata_as(rootless);
            c.arg("umount").arg(&lay.mnt);
            c
        });
        assert!(
            out.ok(),
            "cycle {cycle}: strata umount failed (the mount was gone?): {}",
            out.stderr
        );
        m.forget();
        m = mount(cycle + 1);
    }
    // Every stale watchdog has had its chance.
    std::thread::sleep(Duration::from_millis(300));
    assert!(is_mounted(&lay.mnt), "the last mount vanished");
    write_as(n);
    m.umount();
    assert!(
        ls(&lay.mnt).is_empty(),
        "writes landed in the bare mount point: {:?}",
        ls(&lay.mnt)
    );
}

#[test]
fn unmount_then_mount_again_keeps_every_new_mount() {
    remount_cycles(false, cycles(1000));
}

#[test]
fn unmount_then_mount_again_keeps_every_new_mount_rootless() {
    remount_cycles(true, cycles(300));
}

#[test]
fn a_killed_daemons_watchdog_leaves_the_next_mount_alone() {
    let lay = Layout::new(1);
    write(lay.l(0, "base"), "lower");
    for cycle in 0..cycles(30) {
        let old = lay.mount();
        // An open file keeps the old mount (and its daemon) alive after a lazy unmount.
        let held = fs::File::open(lay.m("base")).unwrap();
        let daemons = fuse_daemons(&lay.mnt);
        assert!(!daemons.is_empty(), "cycle {cycle}: no daemon found");
        let out = run(strata().arg("umount").arg("-l").arg(&lay.mnt));
        assert!(out.ok(), "cycle {cycle}: umount -l: {}", out.stderr);
        old.forget();
        let new = lay.mount();
        // The old daemon dies while the new mount is live: its watchdog wakes up.
        for pid in &daemons {
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        assert!(
            wait_until(|| daemons.iter().all(|p| !fuse_daemons(&lay.mnt).contains(p))),
            "cycle {cycle}: the killed daemon is still there"
        );
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            is_mounted(&lay.mnt),
            "cycle {cycle}: the old watchdog unmounted the new mount"
        );
        write_through(&lay, cycle);
        drop(held);
        new.umount();
    }
}

#[test]
fn sigterm_to_the_watchdog_unmounts_cleanly() {
    let lay = Layout::new(1);
    write(lay.l(0, "base"), "lower");
    let m = lay.mount();
    let daemons = fuse_daemons(&lay.mnt);
    let watchdogs: Vec<i32> = procs_with_arg(&lay.mnt)
        .into_iter()
        .filter(|p| !daemons.contains(p))
        .collect();
    assert_eq!(
        watchdogs.len(),
        1,
        "one watchdog: {watchdogs:?} (daemons {daemons:?})"
    );
    let comm = fs::read_to_string(format!("/proc/{}/comm", watchdogs[0])).unwrap_or_default();
    assert_eq!(comm.trim(), "strata-watchdog");
    write(lay.m("kept"), "data");
    unsafe { libc::kill(watchdogs[0], libc::SIGTERM) };
    assert!(
        wait_until(|| !is_mounted(&lay.mnt) && procs_with_arg(&lay.mnt).is_empty()),
        "SIGTERM to the watchdog did not unmount: mounted {}, processes {:?}",
        is_mounted(&lay.mnt),
        procs_with_arg(&lay.mnt)
    );
    m.forget();
    assert_eq!(read_string(lay.u("kept")), "data");
}

#[test]
fn strata_umount_refuses_what_is_not_a_strata_mount() {
    let d = TestDir::new();
    let plain = d.dir("plain");
    let out = run(strata().arg("umount").arg(&plain));
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr.trim(),
        format!(
            "strata umount: {}: nothing is mounted there",
            plain.display()
        )
    );
    let t = Tmpfs::new(&d.join("tmpfs"));
    write(t.path.join("kept"), "data");
    let out = run(strata().arg("umount").arg(&t.path));
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("is a tmpfs mount, not a strata mount"),
        "{}",
        out.stderr
    );
    assert!(is_mounted(&t.path), "a refused umount unmounted the tmpfs");
    assert_eq!(read_string(t.path.join("kept")), "data");
    let out = run(strata().arg("umount").arg("--force").arg(&t.path));
    assert!(out.ok(), "--force: {}", out.stderr);
    assert!(!is_mounted(&t.path));
}

#[test]
fn mounts_show_as_fuse_strata_as_root_and_rootless() {
    let lay = Layout::new(1);
    let m = lay.mount();
    let e = mount_entry(&lay.mnt).expect("mounted");
    assert_eq!(e.fstype, "fuse.strata", "as root");
    m.umount();
    chown_tree(lay.dir.path(), NOBODY, NOGROUP);
    lchown(lay.dir.path(), 0, 0).unwrap();
    let out = run(strata_as(true)
        .arg("mount")
        .arg("-o")
        .arg(lay.opts())
        .arg(&lay.mnt));
    let m = Mount::adopt(out, &lay.mnt, "strata mount (as nobody)");
    let e = mount_entry(&lay.mnt).expect("mounted");
    assert_eq!(e.fstype, "fuse.strata", "rootless");
    let out = run(strata_as(true).arg("umount").arg(&lay.mnt));
    assert!(out.ok(), "{}", out.stderr);
    m.forget();
}

#[test]
fn log_file_and_pid_file_of_a_background_daemon() {
    let lay = Layout::new(1);
    let log = lay.dir.join("daemon.log");
    let pid_file = lay.dir.join("daemon.pid");
    let out = run(strata()
        .arg("mount")
        .arg("--log-level")
        .arg("debug")
        .arg("--log-file")
        .arg(&log)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg("-o")
        .arg(lay.opts())
        .arg(&lay.mnt));
    let m = Mount::adopt(out, &lay.mnt, "strata mount --log-file --pid-file");
    let pid: i32 = read_string(&pid_file).trim().parse().expect("a pid");
    assert_eq!(
        fuse_daemons(&lay.mnt),
        vec![pid],
        "the pid file names the daemon"
    );
    write(lay.m("f"), "x");
    assert!(
        wait_until(|| fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("create ")),
        "the log has no FUSE op: {}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    m.umount();
    assert!(!pid_file.exists(), "the pid file outlived the daemon");
    assert!(
        read_string(&log).contains("unmounted"),
        "{}",
        read_string(&log)
    );
    // A log file that can't be opened: one line, nothing mounted.
    let out = run(strata()
        .arg("mount")
        .arg("--log-file")
        .arg(lay.dir.join("no/such/dir/log"))
        .arg("-o")
        .arg(lay.opts())
        .arg(&lay.mnt));
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.starts_with("strata mount: log file "),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(!is_mounted(&lay.mnt));
}
