//! Thin wrappers over the syscalls the launcher makes: each turns errno into an
//! `Error` that names the operation and the path, so every failure is one clear line.

use super::error::{Error, Result};
use std::ffi::{CString, OsStr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

pub fn cstr(s: impl AsRef<OsStr>) -> Result<CString> {
    CString::new(s.as_ref().as_bytes())
        .map_err(|_| Error::new(format!("{:?}: contains a NUL byte", s.as_ref())))
}

/// Returns `ret`, or the error `what: strerror(errno)` when `ret` is -1.
pub fn check(ret: libc::c_int, what: impl FnOnce() -> String) -> Result<libc::c_int> {
    if ret == -1 {
        Err(Error::last_os(what()))
    } else {
        Ok(ret)
    }
}

pub fn mount(
    src: Option<&OsStr>,
    dst: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    let c_src = src.map(cstr).transpose()?;
    let c_dst = cstr(dst)?;
    let c_type = fstype.map(cstr).transpose()?;
    let c_data = data.map(cstr).transpose()?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: all pointers are NUL-terminated strings that outlive the call, or null.
    let r = unsafe {
        libc::mount(
            p(&c_src),
            c_dst.as_ptr(),
            p(&c_type),
            flags,
            p(&c_data) as *const libc::c_void,
        )
    };
    check(r, || {
        format!(
            "mount {} on {} (type {}, options {})",
            src.map_or("none".into(), |s| s.to_string_lossy()),
            dst.display(),
            fstype.unwrap_or("none"),
            data.unwrap_or("")
        )
    })
    .map(drop)
}

pub fn bind(src: &Path, dst: &Path, recursive: bool) -> Result<()> {
    let flags = libc::MS_BIND | if recursive { libc::MS_REC } else { 0 };
    mount(Some(src.as_os_str()), dst, None, flags, None)
}

/// Remounts the bind mount at `path` read-only, keeping the flags the kernel
/// insists on keeping (nosuid/nodev/noexec/atime flags are locked in a user namespace).
pub fn remount_ro(path: &Path) -> Result<()> {
    let c = cstr(path)?;
    // SAFETY: statvfs fills a plain struct; c is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, || {
        format!("statvfs {}", path.display())
    })?;
    let keep = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    let mut flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
    for (st_flag, ms_flag) in keep {
        if st.f_flag & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    mount(None, path, None, flags, None)
}

pub fn umount_detach(path: &Path) -> Result<()> {
    let c = cstr(path)?;
    // SAFETY: c is a valid C string.
    check(
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) },
        || format!("umount {}", path.display()),
    )
    .map(drop)
}

pub fn unshare(flags: libc::c_int, what: &str) -> Result<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::unshare(flags) }, || {
        format!("unshare({what})")
    })
    .map(drop)
}

/// `f_type` of the filesystem holding `path`.
pub fn statfs_type(path: &Path) -> Result<i64> {
    let c = cstr(path)?;
    // SAFETY: statfs fills a plain struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::statfs(c.as_ptr(), &mut st) }, || {
        format!("statfs {}", path.display())
    })?;
    Ok(st.f_type as i64)
}

pub fn write_file(path: &Path, data: &str) -> Result<()> {
    std::fs::write(path, data)
        .map_err(|e| Error::io(format!("write {:?} to {}", data.trim(), path.display()), e))
}

/// A pipe with both ends close-on-exec: (read, write).
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    check(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        || "pipe2".into(),
    )?;
    // SAFETY: the kernel just gave us these two descriptors.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Writes all of `buf`, ignoring errors (used on the way to `_exit`).
pub fn write_all_raw(fd: libc::c_int, buf: &[u8]) {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: the slice is valid for the given length.
        let n = unsafe { libc::write(fd, buf[off..].as_ptr().cast(), buf.len() - off) };
        if n <= 0 {
            if n == -1 && errno() == libc::EINTR {
                continue;
            }
            return;
        }
        off += n as usize;
    }
}

/// Reads until EOF; EINTR is retried.
pub fn read_to_end_raw(fd: libc::c_int) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n == -1 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

/// `clone(2)` without a new stack, i.e. `fork` that also creates namespaces.
/// Returns 0 in the child. The launcher is single-threaded when it calls this.
pub fn clone_fork(flags: libc::c_int) -> Result<libc::pid_t> {
    // SAFETY: with a NULL stack the child runs on a copy of the parent's stack, like
    // fork(2). strata has a single thread here, so no lock can be held by another thread.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    if r == -1 {
        return Err(Error::last_os("clone"));
    }
    Ok(r as libc::pid_t)
}

/// `waitpid`, retrying EINTR. `None` with WNOHANG when the child is still running.
pub fn waitpid(pid: libc::pid_t, flags: libc::c_int) -> Result<Option<(libc::pid_t, i32)>> {
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == -1 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(Error::last_os(format!("waitpid {pid}")));
        }
        if r == 0 {
            return Ok(None);
        }
        return Ok(Some((r, status)));
    }
}

/// A wait status as a shell reports it: the exit code, or 128+N when killed by signal N.
pub fn status_to_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        super::error::EXIT_LAUNCHER
    }
}

pub fn prctl(option: libc::c_int, arg: libc::c_ulong, what: &str) -> Result<()> {
    // SAFETY: plain syscall with integer arguments.
    check(unsafe { libc::prctl(option, arg, 0, 0, 0) }, || {
        format!("prctl({what})")
    })
    .map(drop)
}

/// Sets the signal mask, returning the previous one.
pub fn sigmask(how: libc::c_int, set: &libc::sigset_t) -> Result<libc::sigset_t> {
    // SAFETY: both pointers are valid sigset_t.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::sigprocmask(how, set, &mut old) };
    check(r, || "sigprocmask".into())?;
    Ok(old)
}

pub fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set; sigaddset with valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Clears the signal mask and restores default dispositions (Rust ignores SIGPIPE,
/// and an ignored disposition survives execve). Called just before exec.
pub fn reset_signals() {
    // SAFETY: resetting dispositions and the mask of the current process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let empty = sigset(&[]);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

pub fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: plain syscall; failure (already gone) is fine.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// `_exit` without running destructors or atexit handlers (the parent owns those).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: terminates the process.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        // exit(3): status word is 3 << 8; killed by SIGKILL: status word is 9.
        assert_eq!(status_to_code(3 << 8), 3);
        assert_eq!(status_to_code(9), 137);
        assert_eq!(status_to_code(15), 143);
    }
}
