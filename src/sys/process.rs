//! Processes and signals: fork/clone, wait, pipes, descriptors passed over a socket
//! pair, poll, prctl, signal masks.
//!
//! Used by the mount daemon (going to the background, the watchdog) and by the
//! launcher (namespaces, PID 1). Errors are plain `io::Error`s; callers add context.

use super::cvt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The errno of the last failed call.
pub fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A pipe with both ends close-on-exec: (read, write).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds has room for two descriptors.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: the kernel just gave us these two descriptors.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A connected pair of unix sockets (SOCK_SEQPACKET: one message per send), both
/// close-on-exec, to pass descriptors between two processes.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    let ty = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC;
    // SAFETY: fds has room for two descriptors.
    cvt(unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()) })?;
    // SAFETY: the kernel just gave us these two descriptors.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Room for the control message of `MAX_FDS` descriptors.
const MAX_FDS: usize = 4;
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// Sends copies of `fds` (at most 4) over the socket `sock`, with one byte of data
/// (SCM_RIGHTS).
pub fn send_fds(sock: BorrowedFd, fds: &[BorrowedFd]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let payload_len = std::mem::size_of_val(raw.as_slice());
    let mut data = [b'T'];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = CmsgBuf([0; 64]);
    // SAFETY: msghdr is plain data; the CMSG macros stay inside cbuf, which is large
    // and aligned enough for MAX_FDS descriptors.
    unsafe {
        let space = libc::CMSG_SPACE(payload_len as u32) as usize;
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(payload_len as u32) as _;
        std::ptr::copy_nonoverlapping(
            raw.as_ptr().cast::<u8>(),
            libc::CMSG_DATA(cmsg),
            payload_len,
        );
        loop {
            let r = libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL);
            if r >= 0 {
                return Ok(());
            }
            if last_errno() != libc::EINTR {
                return Err(io::Error::last_os_error());
            }
        }
    }
}

/// Receives the descriptors of one `send_fds` message (close-on-exec); an empty list
/// when the peer closed its end without sending. With `wait == false`, EAGAIN when no
/// message is there yet.
pub fn recv_fds(sock: BorrowedFd, wait: bool) -> io::Result<Vec<OwnedFd>> {
    let mut data = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = CmsgBuf([0; 64]);
    let mut flags = libc::MSG_CMSG_CLOEXEC;
    if !wait {
        flags |= libc::MSG_DONTWAIT;
    }
    // SAFETY: msghdr is plain data pointing at live buffers; the kernel writes at most
    // msg_controllen bytes of control data, which the CMSG macros then walk.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        msg.msg_controllen = cbuf.0.len() as _;
        let n = loop {
            let r = libc::recvmsg(sock.as_raw_fd(), &mut msg, flags);
            if r >= 0 {
                break r;
            }
            if last_errno() != libc::EINTR {
                return Err(io::Error::last_os_error());
            }
        };
        let mut out = Vec::new();
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let count = len / std::mem::size_of::<RawFd>();
                let p = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..count {
                    out.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(p.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        if n == 0 && out.is_empty() {
            return Ok(Vec::new());
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        Ok(out)
    }
}

/// `poll(2)`; an interruption by a signal counts as "nothing ready" (Ok(0)).
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: fds is a valid array of pollfd of the given length.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n == -1 {
        if last_errno() == libc::EINTR {
            return Ok(0);
        }
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// `dup2(2)`: makes `target` a copy of `fd` (without close-on-exec).
pub fn dup2(fd: BorrowedFd, target: RawFd) -> io::Result<()> {
    // SAFETY: plain syscall; target is replaced atomically.
    cvt(unsafe { libc::dup2(fd.as_raw_fd(), target) }).map(drop)
}

/// Caps glibc's malloc arenas at `n` (`mallopt(M_ARENA_MAX)`); call it before
/// threads start. Threads beyond `n` share arenas.
pub fn set_malloc_arenas(n: usize) {
    let n = n.clamp(1, libc::c_int::MAX as usize) as libc::c_int;
    // SAFETY: mallopt only sets an allocator parameter; an unknown one is ignored.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, n) };
}

/// `fork(2)`: 0 in the child. Only safe to use from a single-threaded process
/// (or with nothing but async-signal-safe calls before exec/_exit in the child).
pub fn fork() -> io::Result<libc::pid_t> {
    // SAFETY: see above; the callers are single-threaded at this point.
    cvt(unsafe { libc::fork() })
}

/// `clone(2)` without a new stack, i.e. `fork` that also creates namespaces.
/// Returns 0 in the child. The caller must be single-threaded.
pub fn clone_fork(flags: libc::c_int) -> io::Result<libc::pid_t> {
    // SAFETY: with a NULL stack the child runs on a copy of the parent's stack, like
    // fork(2); with a single thread no lock can be held by another thread.
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
        return Err(io::Error::last_os_error());
    }
    Ok(r as libc::pid_t)
}

/// `waitpid`, retrying EINTR. `None` with WNOHANG when the child is still running.
pub fn waitpid(pid: libc::pid_t, flags: libc::c_int) -> io::Result<Option<(libc::pid_t, i32)>> {
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == -1 {
            if last_errno() == libc::EINTR {
                continue;
            }
            return Err(io::Error::last_os_error());
        }
        if r == 0 {
            return Ok(None);
        }
        return Ok(Some((r, status)));
    }
}

/// A wait status as a shell reports it: the exit code, or 128+N when killed by
/// signal N; `None` for a status that is neither (stopped, continued).
pub fn status_to_code(status: i32) -> Option<i32> {
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Some(128 + libc::WTERMSIG(status))
    } else {
        None
    }
}

pub fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    cvt(unsafe { libc::prctl(option, arg, 0, 0, 0) }).map(drop)
}

/// Sets this process's name as `ps` and `pgrep` show it (at most 15 bytes).
pub fn set_name(name: &std::ffi::CStr) {
    // SAFETY: name is a valid C string; PR_SET_NAME copies it.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

/// Sets the signal mask, returning the previous one.
pub fn sigmask(how: libc::c_int, set: &libc::sigset_t) -> io::Result<libc::sigset_t> {
    // SAFETY: both pointers are valid sigset_t.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::sigprocmask(how, set, &mut old) })?;
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

/// Sets these signals to be ignored.
pub fn ignore_signals(signals: &[libc::c_int]) {
    for &sig in signals {
        // SAFETY: SIG_IGN is a valid disposition for these signals.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
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

/// Sends a signal; a process already gone is not an error worth reporting.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: plain syscall.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// `_exit` without running destructors or atexit handlers (the parent owns those).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: terminates the process.
    unsafe { libc::_exit(code) }
}

/// Points stdin, stdout and stderr at /dev/null.
pub fn detach_stdio() {
    // SAFETY: a valid C string; dup2/close on descriptors we own.
    unsafe {
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if fd >= 0 {
            for target in 0..3 {
                libc::dup2(fd, target);
            }
            if fd > 2 {
                libc::close(fd);
            }
        }
    }
}

/// Writes all of `buf`, ignoring errors (used on the way to `_exit`).
pub fn write_all_raw(fd: libc::c_int, buf: &[u8]) {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: the slice is valid for the given length.
        let n = unsafe { libc::write(fd, buf[off..].as_ptr().cast(), buf.len() - off) };
        if n <= 0 {
            if n == -1 && last_errno() == libc::EINTR {
                continue;
            }
            return;
        }
        off += n as usize;
    }
}

/// Reads exactly `buf.len()` bytes, retrying EINTR; `None` on EOF or error.
pub fn read_exact_raw(fd: libc::c_int, buf: &mut [u8]) -> Option<()> {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: the slice is valid for writes of its length.
        let n = unsafe { libc::read(fd, buf[off..].as_mut_ptr().cast(), buf.len() - off) };
        if n == -1 && last_errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return None;
        }
        off += n as usize;
    }
    Some(())
}

/// Reads until EOF; EINTR is retried.
pub fn read_to_end_raw(fd: libc::c_int) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n == -1 && last_errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

/// The supplementary groups of process `pid` (the `Groups:` line of its
/// /proc status).
pub fn supplementary_groups(pid: u32) -> io::Result<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default())
}

/// USER_HZ: the unit of the times in /proc/stat and /proc/PID/stat.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let r = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if r > 0 {
        r as u64
    } else {
        100
    }
}

/// The CPUs this thread may run on (sched_getaffinity).
pub fn affinity() -> io::Result<Vec<u32>> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the kernel fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        cvt(libc::sched_getaffinity(
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &mut set,
        ))?;
        let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
        Ok((0..max)
            .filter(|c| libc::CPU_ISSET(*c, &set))
            .map(|c| c as u32)
            .collect())
    }
}

/// Restricts this thread (and what it execs or forks) to `cpus` (sched_setaffinity).
pub fn set_affinity(cpus: &[u32]) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, filled below within its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
        for c in cpus.iter().map(|c| *c as usize).filter(|c| *c < max) {
            libc::CPU_SET(c, &mut set);
        }
        cvt(libc::sched_setaffinity(
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        ))
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn descriptors_pass_over_a_socketpair() {
        let (a, b) = socketpair().unwrap();
        assert_eq!(
            recv_fds(b.as_fd(), false).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let (r, w) = pipe().unwrap();
        send_fds(a.as_fd(), &[r.as_fd(), w.as_fd()]).unwrap();
        let got = recv_fds(b.as_fd(), true).unwrap();
        assert_eq!(got.len(), 2);
        // The received write end feeds the original read end.
        write_all_raw(got[1].as_raw_fd(), b"hi");
        drop((w, got));
        assert_eq!(read_to_end_raw(r.as_raw_fd()), b"hi");
        drop(a);
        assert!(recv_fds(b.as_fd(), true).unwrap().is_empty(), "EOF");
    }

    #[test]
    fn status_codes() {
        // exit(3): status word is 3 << 8; killed by SIGKILL: status word is 9.
        assert_eq!(status_to_code(3 << 8), Some(3));
        assert_eq!(status_to_code(9), Some(137));
        assert_eq!(status_to_code(15), Some(143));
        // Stopped by SIGSTOP (0x137f): neither exited nor killed.
        assert_eq!(status_to_code(0x137f), None);
    }
}
