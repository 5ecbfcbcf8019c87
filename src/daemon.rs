//! Process plumbing for the mount daemon: going to the background only once
//! the mount is live, the auto-unmount watchdog, signals, and unmounting.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn fork() -> io::Result<libc::pid_t> {
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid)
    }
}

/// Points stdin, stdout and stderr at /dev/null.
fn detach_stdio() {
    let null = CString::new("/dev/null").unwrap_or_default();
    let fd = unsafe { libc::open(null.as_ptr(), libc::O_RDWR) };
    if fd >= 0 {
        for target in 0..3 {
            unsafe { libc::dup2(fd, target) };
        }
        if fd > 2 {
            unsafe { libc::close(fd) };
        }
    }
}

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

    /// Tells the waiting parent why mounting failed (or prints it in the foreground).
    pub fn failed(&mut self, msg: &str) {
        match self.writer.take() {
            Some(mut w) => {
                let _ = w.write_all(format!("ERR {msg}\n").as_bytes());
            }
            None => eprintln!("strata mount: {msg}"),
        }
    }
}

/// Goes to the background. The calling process waits for the daemon's
/// report and gets Err(exit code) to exit with. In between sits the watchdog:
/// it is the daemon's parent, reaps it, and detaches the mount if the daemon
/// dies without unmounting (SIGKILL, OOM). The daemon gets Ok(report).
pub fn background(mountpoint: &Path) -> Result<StartupReport, i32> {
    let (r, w) = pipe().map_err(|e| {
        eprintln!("strata mount: pipe: {e}");
        1
    })?;
    match fork() {
        Err(e) => {
            eprintln!("strata mount: fork: {e}");
            Err(1)
        }
        Ok(0) => {
            drop(r);
            unsafe { libc::setsid() };
            let _ = std::env::set_current_dir("/");
            match fork() {
                Ok(0) => Ok(StartupReport {
                    writer: Some(std::fs::File::from(w)),
                }),
                Ok(daemon) => {
                    drop(w);
                    watch_child(daemon, mountpoint)
                }
                Err(_) => unsafe { libc::_exit(1) },
            }
        }
        Ok(watchdog) => {
            drop(w);
            let mut msg = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut msg);
            if msg.starts_with("OK") {
                Err(0)
            } else {
                let line = msg
                    .strip_prefix("ERR ")
                    .unwrap_or("the mount daemon exited before the mount was live");
                eprintln!("strata mount: {}", line.trim_end());
                let mut status = 0;
                unsafe { libc::waitpid(watchdog, &mut status, 0) };
                Err(1)
            }
        }
    }
}

fn name_process(name: &std::ffi::CStr) {
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

/// The watchdog's life in background mode: wait for the daemon, then make
/// sure its mount does not outlive it.
fn watch_child(daemon: libc::pid_t, mountpoint: &Path) -> ! {
    name_process(c"strata-watchdog");
    detach_stdio();
    unsafe {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
            libc::signal(sig, libc::SIG_IGN);
        }
        let mut status = 0;
        while libc::waitpid(daemon, &mut status, 0) < 0 && *libc::__errno_location() == libc::EINTR
        {
        }
    }
    if is_fuse_mount(mountpoint) {
        let _ = unmount(mountpoint, true);
    }
    unsafe { libc::_exit(0) }
}

/// Is a FUSE filesystem mounted exactly at `path`?
pub fn is_fuse_mount(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.as_os_str().as_bytes();
    info.lines().any(|l| {
        let mut f = l.split(' ');
        let mp = f.nth(4).unwrap_or("");
        let fstype = l
            .split(" - ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or("");
        fstype.starts_with("fuse") && crate::cli::mount::unescape_mountinfo(mp).as_bytes() == want
    })
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
            name_process(c"strata-watchdog");
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
