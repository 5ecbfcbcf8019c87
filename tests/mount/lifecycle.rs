//! The daemon's life: foreground mode, signals, SIGKILL and the watchdog, logging.

use crate::support::*;
use std::fs;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

struct Foreground {
    child: Child,
    stderr_file: std::path::PathBuf,
    guard: Option<Mount>,
}

impl Foreground {
    fn start(lay: &Layout, extra_args: &[&str], env: &[(&str, &str)]) -> Foreground {
        let stderr_file = lay.dir.join("daemon.stderr");
        let f = fs::File::create(&stderr_file).unwrap();
        let mut cmd = strata();
        cmd.arg("mount").arg("-f");
        cmd.args(extra_args);
        cmd.arg("-o").arg(config_opts(&lay.opts())).arg(&lay.mnt);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(f))
            .spawn()
            .unwrap();
        let mut fg = Foreground {
            child,
            stderr_file,
            guard: None,
        };
        let mnt = lay.mnt.clone();
        let up = wait_until(|| {
            is_mounted(&mnt) || fg.child.try_wait().map(|s| s.is_some()).unwrap_or(true)
        });
        fg.guard = Some(Mount::guard(&lay.mnt));
        assert!(
            up && is_mounted(&lay.mnt),
            "strata mount -f did not mount: {:?}; stderr: {}",
            fg.child.try_wait(),
            fs::read_to_string(&fg.stderr_file).unwrap_or_default()
        );
        assert!(
            fg.child.try_wait().unwrap().is_none(),
            "strata mount -f exited although it should stay in the foreground"
        );
        fg
    }

    fn signal_and_wait(&mut self, sig: libc::c_int) -> std::process::ExitStatus {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit after signal {sig}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        drop(self.guard.take());
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn foreground_signal(sig: libc::c_int) {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "lower");
    let mut fg = Foreground::start(&lay, &[], &[]);
    write(lay.m("new"), "written before the signal");
    assert_eq!(read_string(lay.m("f")), "lower");
    let st = fg.signal_and_wait(sig);
    assert!(
        !is_mounted(&lay.mnt),
        "the mount is still there after the daemon exited on signal {sig}"
    );
    assert_eq!(
        st.code(),
        Some(0),
        "daemon exit status after signal {sig}: {st:?}"
    );
    assert_eq!(read_string(lay.u("new")), "written before the signal");
    let mnt = lay.mnt.clone();
    assert!(
        wait_until(|| procs_with_arg(&mnt).is_empty()),
        "processes left: {:?}",
        procs_with_arg(&mnt)
    );
    fg.guard.take().unwrap().forget();
}

#[test]
fn foreground_sigterm_unmounts_cleanly() {
    foreground_signal(libc::SIGTERM);
}

#[test]
fn foreground_sigint_unmounts_cleanly() {
    foreground_signal(libc::SIGINT);
}

#[test]
fn background_daemon_sigterm_unmounts() {
    let lay = Layout::new(1);
    let m = lay.mount();
    write(lay.m("x"), "x");
    let daemons = fuse_daemons(&lay.mnt);
    assert!(
        !daemons.is_empty(),
        "no process with {} in its arguments holds /dev/fuse",
        lay.mnt.display()
    );
    for p in &daemons {
        unsafe {
            libc::kill(*p, libc::SIGTERM);
        }
    }
    let mnt = lay.mnt.clone();
    assert!(
        wait_until(|| !is_mounted(&mnt)),
        "still mounted after SIGTERM to the daemon"
    );
    assert!(
        wait_until(|| procs_with_arg(&mnt).is_empty()),
        "processes left after SIGTERM: {:?}",
        procs_with_arg(&mnt)
    );
    assert_eq!(read_string(lay.u("x")), "x");
    m.forget();
}

#[test]
fn sigkilled_daemon_mount_goes_away_by_itself() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "lower");
    let m = lay.mount();
    assert_eq!(read_string(lay.m("f")), "lower");
    let daemons = fuse_daemons(&lay.mnt);
    assert!(
        !daemons.is_empty(),
        "no process with {} in its arguments holds /dev/fuse",
        lay.mnt.display()
    );
    for p in &daemons {
        unsafe {
            libc::kill(*p, libc::SIGKILL);
        }
    }
    let mnt = lay.mnt.clone();
    assert!(
        wait_until(|| !is_mounted(&mnt)),
        "the mount of a SIGKILLed daemon was not detached by the watchdog"
    );
    // an ordinary empty directory again, no ENOTCONN
    assert_eq!(ls(&lay.mnt), Vec::<String>::new());
    assert!(
        wait_until(|| procs_with_arg(&mnt).is_empty()),
        "processes left after the watchdog ran: {:?}",
        procs_with_arg(&mnt)
    );
    m.forget();
}

#[test]
fn strata_umount_stops_the_daemon() {
    let lay = Layout::new(1);
    let m = lay.mount();
    let daemons = fuse_daemons(&lay.mnt);
    assert!(!daemons.is_empty(), "no daemon found holding /dev/fuse");
    m.umount(); // asserts the processes are gone too
    for p in daemons {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists()
                || fs::read_to_string(format!("/proc/{p}/stat"))
                    .map(|s| s.contains(") Z"))
                    .unwrap_or(true),
            "daemon {p} still alive"
        );
    }
}

#[test]
fn remount_after_umount_works() {
    let lay = Layout::new(1);
    let m = lay.mount();
    write(lay.m("a"), "1");
    m.umount();
    let m = lay.mount();
    assert_eq!(read_string(lay.m("a")), "1");
    m.umount();
}

#[test]
fn log_level_debug_logs_to_stderr_in_foreground() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "x");
    let mut fg = Foreground::start(&lay, &["--log-level", "debug"], &[]);
    let _ = ls(&lay.mnt);
    let _ = read(lay.m("f"));
    fg.signal_and_wait(libc::SIGTERM);
    let log = fs::read_to_string(&fg.stderr_file).unwrap();
    assert!(
        log.contains("DEBUG"),
        "--log-level debug produced no debug lines on stderr: {log:?}"
    );
    fg.guard.take().unwrap().forget();
}

#[test]
fn rust_log_debug_logs_to_stderr_in_foreground() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "x");
    let mut fg = Foreground::start(&lay, &[], &[("RUST_LOG", "debug")]);
    let _ = ls(&lay.mnt);
    fg.signal_and_wait(libc::SIGTERM);
    let log = fs::read_to_string(&fg.stderr_file).unwrap();
    assert!(
        log.contains("DEBUG"),
        "RUST_LOG=debug produced no debug lines on stderr: {log:?}"
    );
    fg.guard.take().unwrap().forget();
}

#[test]
fn busy_mount_umount_fails_and_lazy_umount_detaches() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "still readable");
    let m = lay.mount();
    let mut f = fs::File::open(lay.m("f")).unwrap();
    let out = run(strata().arg("umount").arg(&lay.mnt));
    assert!(!out.ok(), "strata umount of a busy mount succeeded");
    assert!(
        is_mounted(&lay.mnt),
        "a failed umount must leave the mount alone"
    );
    assert_eq!(read_string(lay.m("f")), "still readable");
    let out = run(strata().arg("umount").arg("-l").arg(&lay.mnt));
    assert!(out.ok(), "strata umount -l: {}", out.stderr);
    assert!(!is_mounted(&lay.mnt), "umount -l must detach at once");
    let mut s = String::new();
    use std::io::Read;
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "still readable", "open file after a lazy umount");
    drop(f);
    let mnt = lay.mnt.clone();
    assert!(
        wait_until(|| procs_with_arg(&mnt).is_empty()),
        "daemon still running after the last user of a lazily unmounted mount left: {:?}",
        procs_with_arg(&mnt)
    );
    m.forget();
}

#[test]
fn sigkilled_daemon_of_a_busy_mount_is_detached_too() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "x");
    let m = lay.mount();
    // a process sitting in the mount, and an open file
    let mut sitter = std::process::Command::new("sleep")
        .arg("300")
        .current_dir(&lay.mnt)
        .spawn()
        .unwrap();
    let f = fs::File::open(lay.m("f")).unwrap();
    let daemons = fuse_daemons(&lay.mnt);
    assert!(!daemons.is_empty(), "no daemon found");
    for p in &daemons {
        unsafe {
            libc::kill(*p, libc::SIGKILL);
        }
    }
    let mnt = lay.mnt.clone();
    let gone = wait_until(|| !is_mounted(&mnt));
    let _ = sitter.kill();
    let _ = sitter.wait();
    drop(f);
    assert!(gone, "a busy mount of a SIGKILLed daemon was not detached");
    assert!(
        wait_until(|| procs_with_arg(&mnt).is_empty()),
        "processes left: {:?}",
        procs_with_arg(&mnt)
    );
    m.forget();
}
