//! Process plumbing for the mount daemon: going to the background only once
//! the mount is live, the auto-unmount watchdog, signals, and unmounting.

use super::Error;
use crate::sys::mount::is_fuse_mount;
use crate::sys::process::{detach_stdio, fork, pipe};
use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

/// The parent's end of the start-up report: "OK" or the error line.
pub struct StartupReport {
    writer: Option<std::fs::File>,
}

impl StartupReport {
    /// Tells the waiting parent that the mount is live, then detaches stdio
    /// (the log goes to $STRATA_LOG_FILE when that is set).
    pub fn ready(&mut self) {
        if let Some(mut w) = self.writer.take() {
            let _ = w.write_all(b"OK\n");
            detach_stdio();
            if let Some(path) = std::env::var_os("STRATA_LOG_FILE") {
                if let Ok(f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                {
                    unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&f), 2) };
                }
            }
        }
    }

    /// Tells the waiting parent why mounting failed; in the foreground, the
    /// error is for the caller to show.
    pub fn failed(&mut self, msg: String) -> Error {
        match self.writer.take() {
            Some(mut w) => {
                let _ = w.write_all(format!("ERR {msg}\n").as_bytes());
                Error::Reported
            }
            None => Error::Failed(msg),
        }
    }
}

/// Where `background` leaves the calling process.
pub enum Role {
    /// The daemon: mount, then tell the waiting parent with the report.
    Daemon(StartupReport),
    /// The process that was called: the daemon reported the mount live.
    Launched,
}

/// Goes to the background. The calling process waits for the daemon's
/// report: `Launched` once the mount is live, the daemon's error otherwise. In
/// between sits the watchdog: it is the daemon's parent, reaps it, and detaches
/// the mount if the daemon dies without unmounting (SIGKILL, OOM).
pub fn background(mountpoint: &Path) -> Result<Role, Error> {
    let (r, w) = pipe().map_err(|e| Error::Failed(format!("pipe: {e}")))?;
    match fork() {
        Err(e) => Err(Error::Failed(format!("fork: {e}"))),
        Ok(0) => {
            drop(r);
            unsafe { libc::setsid() };
            let _ = std::env::set_current_dir("/");
            match fork() {
                Ok(0) => Ok(Role::Daemon(StartupReport {
                    writer: Some(std::fs::File::from(w)),
                })),
                Ok(daemon) => {
                    drop(w);
                    watch_child(daemon, mountpoint)
                }
                Err(_) => crate::sys::process::exit_now(1),
            }
        }
        Ok(watchdog) => {
            drop(w);
            let mut msg = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut msg);
            if msg.starts_with("OK") {
                Ok(Role::Launched)
            } else {
                let line = msg
                    .strip_prefix("ERR ")
                    .unwrap_or("the mount daemon exited before the mount was live");
                let _ = crate::sys::process::waitpid(watchdog, 0);
                Err(Error::Failed(line.trim_end().to_string()))
            }
        }
    }
}

/// The watchdog's life in background mode: wait for the daemon, then make
/// sure its mount does not outlive it.
fn watch_child(daemon: libc::pid_t, mountpoint: &Path) -> ! {
    crate::sys::process::set_name(c"strata-watchdog");
    detach_stdio();
    crate::sys::process::ignore_signals(&[
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGPIPE,
    ]);
    let _ = crate::sys::process::waitpid(daemon, 0);
    if is_fuse_mount(mountpoint) {
        let _ = unmount(mountpoint, true);
    }
    crate::sys::process::exit_now(0)
}

pub fn foreground() -> StartupReport {
    StartupReport { writer: None }
}

/// In the foreground, starts the watchdog: a small child that waits for the daemon to go away
/// (for whatever reason, SIGKILL included) and then detaches the mount, so
/// users get ENOENT-free, non-hanging paths instead of a dead FUSE mount.
/// Must be called before any thread is started.
pub fn start_watchdog(mountpoint: &Path) -> io::Result<OwnedFd> {
    let (r, w) = pipe()?;
    let path = CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    match fork()? {
        0 => {
            let keep = r.as_raw_fd();
            crate::sys::process::set_name(c"strata-watchdog");
            detach_stdio();
            unsafe {
                for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
                    libc::signal(sig, libc::SIG_IGN);
                }
                // Hold nothing of the daemon's: above all not /dev/fuse.
                if keep > 3 {
                    libc::syscall(libc::SYS_close_range, 3u32, (keep - 1) as u32, 0u32);
                }
                libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
                let mut b = [0u8; 1];
                while libc::read(keep, b.as_mut_ptr().cast(), 1) != 0 {
                    if *libc::__errno_location() != libc::EINTR {
                        break;
                    }
                }
                if libc::umount2(path.as_ptr(), libc::MNT_DETACH) != 0 {
                    let argv = [
                        c"fusermount3".as_ptr(),
                        c"-u".as_ptr(),
                        c"-z".as_ptr(),
                        c"-q".as_ptr(),
                        path.as_ptr(),
                        std::ptr::null(),
                    ];
                    libc::execvp(argv[0], argv.as_ptr());
                }
                libc::_exit(0);
            }
        }
        _ => Ok(w),
    }
}

/// Unmounts a FUSE mount: umount2 when we may, else fusermount3.
pub fn unmount(mountpoint: &Path, lazy: bool) -> Result<(), String> {
    let c = CString::new(mountpoint.as_os_str().as_bytes()).map_err(|_| "bad path".to_string())?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EPERM) {
        return Err(format!("{}: {e}", mountpoint.display()));
    }
    let mut cmd = Command::new("fusermount3");
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    cmd.arg(mountpoint);
    match cmd.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Err(format!(
            "{}: {e} (and fusermount3 could not run: {e})",
            mountpoint.display()
        )),
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (and every thread it
/// starts afterwards) and returns a thread that waits for them.
pub fn spawn_signal_thread(on_signal: impl FnOnce(i32) + Send + 'static) -> io::Result<()> {
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut sig: libc::c_int = 0;
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                log::info!("signal {sig}: unmounting");
                on_signal(sig);
            }
        })?;
    Ok(())
}
