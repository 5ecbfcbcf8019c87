//! Process plumbing for the mount daemon: going to the background only once
//! the mount is live, the auto-unmount watchdog, signals, and unmounting.

use super::Error;
use crate::sys::mount;
use crate::sys::process::{self, detach_stdio, fork, pipe};
use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

/// The parent's end of the start-up report: "OK" or the error line.
pub struct StartupReport {
    writer: Option<std::fs::File>,
    /// In the background: where stderr goes once stdio is detached.
    log: Option<std::fs::File>,
}

/// Points stderr at `file` (the log goes where stderr goes).
pub fn redirect_stderr(file: &std::fs::File) {
    // SAFETY: dup2 of a valid fd onto stderr.
    unsafe { libc::dup2(file.as_raw_fd(), 2) };
}

impl StartupReport {
    /// Tells the waiting parent that the mount is live, then detaches stdio
    /// (stderr goes to the log file, when there is one).
    pub fn ready(&mut self) {
        if let Some(mut w) = self.writer.take() {
            let _ = w.write_all(b"OK\n");
            detach_stdio();
            if let Some(log) = self.log.take() {
                redirect_stderr(&log);
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
/// report: `Launched` once the mount is live, the daemon's error otherwise.
/// The daemon starts its watchdog itself once it has mounted (`start_watchdog`).
pub fn background(log: Option<std::fs::File>) -> Result<Role, Error> {
    let (r, w) = pipe().map_err(|e| Error::Failed(format!("pipe: {e}")))?;
    match fork() {
        Err(e) => Err(Error::Failed(format!("fork: {e}"))),
        Ok(0) => {
            drop(r);
            // SAFETY: setsid cannot fail in a fresh child (it is no group leader).
            unsafe { libc::setsid() };
            let _ = std::env::set_current_dir("/");
            Ok(Role::Daemon(StartupReport {
                writer: Some(std::fs::File::from(w)),
                log,
            }))
        }
        Ok(daemon) => {
            drop(w);
            let mut msg = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut msg);
            if msg.starts_with("OK") {
                Ok(Role::Launched)
            } else {
                let line = msg
                    .strip_prefix("ERR ")
                    .unwrap_or("the mount daemon exited before the mount was live");
                let _ = process::waitpid(daemon, 0);
                Err(Error::Failed(line.trim_end().to_string()))
            }
        }
    }
}

pub fn foreground() -> StartupReport {
    StartupReport {
        writer: None,
        log: None,
    }
}

/// Which mount at a path is this daemon's.
#[derive(Clone, Copy, PartialEq, Eq)]
struct MountIdentity {
    /// From statx (never reused), where the kernel has it (6.8+).
    unique: Option<u64>,
    /// From mountinfo: reused by the next mount once this one is gone.
    reusable: u64,
}

/// The mount id (in mountinfo) of the mount on top at `mountpoint`, if it is FUSE.
fn top_fuse_mount(mountpoint: &Path) -> Option<u64> {
    mount::mounts()
        .into_iter()
        .rev()
        .find(|m| Path::new(&m.point) == mountpoint)
        .filter(|m| m.fstype == "fuse" || m.fstype.starts_with("fuse."))
        .map(|m| m.mount_id)
}

impl MountIdentity {
    /// Is the mount on top at `mountpoint` this one? Without a unique id (old
    /// kernel, or a dead FUSE mount that fails even a cached statx), the reusable
    /// id has to do.
    fn is_top(&self, mountpoint: &Path) -> bool {
        if top_fuse_mount(mountpoint) != Some(self.reusable) {
            return false;
        }
        match (self.unique, mount::mount_id_unique(mountpoint)) {
            (Some(ours), Ok(top)) => ours == top,
            _ => true,
        }
    }
}

/// The daemon the watchdog forwards SIGTERM to (set in the watchdog only).
static DAEMON_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_to_daemon(_sig: libc::c_int) {
    // SAFETY: kill is async-signal-safe.
    unsafe { libc::kill(DAEMON_PID.load(Ordering::Relaxed), libc::SIGTERM) };
}

/// Starts the watchdog, right after mounting: a small child that waits for the
/// daemon to go away (for whatever reason, SIGKILL included) and then detaches
/// the mount, so users get an empty directory instead of a dead FUSE mount.
///
/// It detaches only the mount this daemon made, known by its unique mount id:
/// after a clean unmount a new mount may already sit at the same path (with the
/// same mountinfo id and device number, which the kernel reuses), and it must
/// not be touched. SIGTERM, SIGINT or SIGHUP to the watchdog asks the daemon to
/// unmount. Must be called before any thread is started. The daemon keeps the
/// returned fd open for as long as it serves.
pub fn start_watchdog(mountpoint: &Path) -> io::Result<OwnedFd> {
    let reusable = top_fuse_mount(mountpoint).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{}: the new mount is not in /proc/self/mountinfo",
                mountpoint.display()
            ),
        )
    })?;
    let path = CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: getpid cannot fail.
    let daemon = unsafe { libc::getpid() };
    let (r, w) = pipe()?;
    if fork()? != 0 {
        return Ok(w);
    }
    drop(w);
    // In the child: should the statx reach the daemon after all, the daemon is
    // free to answer it.
    let ours = MountIdentity {
        unique: mount::mount_id_unique(mountpoint).ok(),
        reusable,
    };
    let keep = r.as_raw_fd();
    process::set_name(c"strata-watchdog");
    detach_stdio();
    DAEMON_PID.store(daemon, Ordering::Relaxed);
    process::ignore_signals(&[libc::SIGPIPE]);
    // SAFETY: a handler that only calls kill; the watchdog is single-threaded, and
    // from here on it makes only raw syscalls, reads mountinfo, and execs or _exits.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = forward_to_daemon as *const () as usize;
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
        // Hold nothing of the daemon's: above all not /dev/fuse.
        if keep > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, (keep - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
        let mut b = [0u8; 1];
        while libc::read(keep, b.as_mut_ptr().cast(), 1) != 0 {
            if process::last_errno() != libc::EINTR {
                break;
            }
        }
    }
    // The daemon is gone. Its mount is still there if it did not unmount
    // (killed). umount2 acts on the top mount at the path, so only when that
    // is ours (a mount stacked over it is left alone, and so is ours under it).
    if !ours.is_top(mountpoint) {
        process::exit_now(0);
    }
    if mount::umount(mountpoint, libc::MNT_DETACH).is_err() {
        let argv = [
            c"fusermount3".as_ptr(),
            c"-u".as_ptr(),
            c"-z".as_ptr(),
            c"-q".as_ptr(),
            path.as_ptr(),
            std::ptr::null(),
        ];
        // SAFETY: argv is a NULL-terminated array of valid C strings.
        unsafe { libc::execvp(argv[0], argv.as_ptr()) };
    }
    process::exit_now(0)
}

/// The filesystem type strata's mounts show in /proc/mounts.
pub const FSTYPE: &str = "fuse.strata";

/// `strata umount`: unmounts the strata mount at `mountpoint`. Anything else
/// mounted there (or nothing) is refused, unless `force`.
pub fn unmount_strata(mountpoint: &Path, lazy: bool, force: bool) -> Result<(), String> {
    // A dead FUSE mount fails even a stat: then take the path as it is.
    let path = std::fs::canonicalize(mountpoint)
        .or_else(|_| std::path::absolute(mountpoint))
        .map_err(|e| format!("{}: {e}", mountpoint.display()))?;
    let top = mount::mounts()
        .into_iter()
        .rev()
        .find(|m| Path::new(&m.point) == path);
    match top {
        None => Err(format!(
            "{}: nothing is mounted there",
            mountpoint.display()
        )),
        Some(m) if m.fstype != FSTYPE && !force => Err(format!(
            "{}: is a {} mount, not a strata mount (--force unmounts it anyway)",
            mountpoint.display(),
            m.fstype
        )),
        Some(_) => unmount(&path, lazy),
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
