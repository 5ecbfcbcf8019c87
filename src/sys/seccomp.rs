//! seccomp user notification for one system call: the filter that sends it to a
//! supervisor, and the supervisor's side (receive, check, answer, write the result into
//! the caller's memory).

use super::cvt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: BPF_JEQ_K,
        jt,
        jf,
        k,
    }
}

/// Installs, on this thread and what it starts, a filter that hands system call `nr`
/// (of the native ABI) to a supervisor; returns the listener descriptor. Needs
/// no_new_privs or CAP_SYS_ADMIN in the user namespace.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn notify_filter(nr: libc::c_long) -> io::Result<OwnedFd> {
    // seccomp_data: nr at offset 0, arch at offset 4.
    let prog = [
        stmt(BPF_LD_W_ABS, 4),
        jeq(AUDIT_ARCH, 0, 3),
        stmt(BPF_LD_W_ABS, 0),
        jeq(nr as u32, 0, 1),
        stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF),
        stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: fprog points at `prog`, alive for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn notify_filter(_nr: libc::c_long) -> io::Result<OwnedFd> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// One intercepted call: its id, the caller's pid (in our PID namespace), its arguments.
pub struct Notif {
    pub id: u64,
    pub pid: u32,
    pub args: [u64; 6],
}

/// Waits for the next intercepted call. ENOENT: the caller died meanwhile (try again).
pub fn notif_recv(fd: BorrowedFd) -> io::Result<Notif> {
    // SAFETY: a zeroed seccomp_notif is what the kernel expects; it fills it in.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes a seccomp_notif into `n`.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) })?;
    Ok(Notif {
        id: n.id,
        pid: n.pid,
        args: n.data.args,
    })
}

/// Is the call `id` still waiting (its caller alive, so its pid still names it)?
pub fn notif_id_valid(fd: BorrowedFd, id: u64) -> bool {
    // SAFETY: the ioctl reads the u64.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
}

/// Answers call `id`: returns `val` (or fails with `errno`), or with `cont` lets the
/// kernel run the real system call.
pub fn notif_respond(fd: BorrowedFd, id: u64, val: i64, errno: i32, cont: bool) -> io::Result<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val,
        error: -errno,
        flags: if cont {
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        } else {
            0
        },
    };
    // SAFETY: the ioctl reads the response.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) }).map(drop)
}

/// Writes `data` at address `addr` of process `pid` (process_vm_writev).
pub fn write_process_memory(pid: u32, addr: u64, data: &[u8]) -> io::Result<()> {
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: both iovecs describe `data.len()` bytes; the kernel checks the remote one.
    let n = unsafe { libc::process_vm_writev(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    match n {
        n if n < 0 => Err(io::Error::last_os_error()),
        n if n as usize != data.len() => Err(io::Error::from_raw_os_error(libc::EFAULT)),
        _ => Ok(()),
    }
}

/// sysinfo(2) of this process.
pub fn sysinfo() -> io::Result<libc::sysinfo> {
    // SAFETY: a zeroed struct sysinfo is valid; the kernel fills it in.
    let mut s: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: the call writes one struct sysinfo.
    cvt(unsafe { libc::sysinfo(&mut s) })?;
    Ok(s)
}

/// The bytes of a struct sysinfo, to write into another process.
pub fn sysinfo_bytes(s: &libc::sysinfo) -> &[u8] {
    // SAFETY: a plain C struct viewed as its bytes.
    unsafe {
        std::slice::from_raw_parts(
            (s as *const libc::sysinfo).cast::<u8>(),
            std::mem::size_of::<libc::sysinfo>(),
        )
    }
}
