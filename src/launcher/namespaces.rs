//! Namespaces of the container process: which ones it is cloned into, and what is set
//! up in them right away (hostname, loopback).

use super::error::check;
use super::error::{Error, Result};
use super::spec::Net;

/// New mount, PID, UTS and IPC namespaces (+ network with `--net none`). The cgroup
/// namespace comes later: the child first joins its cgroups, then unshares it, so that
/// its cgroup becomes the root of its view.
pub fn clone_flags(net: Net) -> libc::c_int {
    let mut f = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if net == Net::None {
        f |= libc::CLONE_NEWNET;
    }
    f
}

pub fn set_hostname(name: &str) -> Result<()> {
    // SAFETY: the buffer is valid for its length.
    let r = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    check(r, || format!("sethostname {name}")).map(drop)
}

/// `struct ifreq` with the flags member (40 bytes on Linux).
#[repr(C)]
struct IfreqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Brings `lo` up in the (new) network namespace.
pub fn loopback_up() -> Result<()> {
    // SAFETY: plain socket; closed below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(sock, || "socket(AF_INET) for lo".into())?;
    let mut req = IfreqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    // SAFETY: req is a valid ifreq-sized buffer for SIOCGIFFLAGS/SIOCSIFFLAGS.
    let res = unsafe {
        if libc::ioctl(sock, libc::SIOCGIFFLAGS as _, &mut req) == -1 {
            Err(Error::last_os("SIOCGIFFLAGS lo"))
        } else {
            req.flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &req) == -1 {
                Err(Error::last_os("bring lo up"))
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: sock is ours.
    unsafe { libc::close(sock) };
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_none_adds_netns() {
        assert_ne!(clone_flags(Net::None) & libc::CLONE_NEWNET, 0);
        assert_eq!(clone_flags(Net::Host) & libc::CLONE_NEWNET, 0);
        assert_ne!(clone_flags(Net::Host) & libc::CLONE_NEWPID, 0);
        assert_eq!(std::mem::size_of::<IfreqFlags>(), 40);
    }
}
