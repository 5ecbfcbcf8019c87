//! sysinfo(2) for the container: the supervisor of the seccomp user-notification filter
//! the container installs (`intercept_sysinfo`). Each call is answered with the host's
//! struct sysinfo with the container's memory, swap, uptime, load and task count, written
//! into the caller's buffer; when that cannot be done the kernel runs the real call.

use super::View;
use crate::sys;
use crate::sys::seccomp::{notif_id_valid, notif_recv, notif_respond, write_process_memory};
use std::os::fd::{AsFd, OwnedFd};

/// Answers the container's sysinfo calls until the filter has no more users.
pub fn supervise(view: &View, listener: OwnedFd) {
    let fd = listener.as_fd();
    loop {
        let n = match notif_recv(fd) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return log::debug!("proc view: sysinfo supervisor ends: {e}"),
        };
        let answered = sys::seccomp::sysinfo()
            .ok()
            .map(|host| container_sysinfo(view, host));
        let written = answered.is_some_and(|s| {
            // The pid names the caller only while its call waits: check, then write.
            notif_id_valid(fd, n.id)
                && write_process_memory(n.pid, n.args[0], sys::seccomp::sysinfo_bytes(&s))
                    .map_err(|e| log::debug!("proc view: write sysinfo to {}: {e}", n.pid))
                    .is_ok()
        });
        let _ = notif_respond(fd, n.id, 0, 0, !written);
    }
}

/// The host's sysinfo with the container's values put in.
// The fields are c_ulong: u64 here, u32 on 32-bit targets.
#[allow(clippy::useless_conversion)]
fn container_sysinfo(view: &View, host: libc::sysinfo) -> libc::sysinfo {
    let mut s = host;
    let unit = u64::from(s.mem_unit.max(1));
    let meminfo = super::read_kept("/proc/meminfo").unwrap_or_default();
    if let Some(m) = view.memory(&meminfo) {
        let host_ram = u64::from(s.totalram) * unit;
        let total = m.limit.min(host_ram);
        let used = m.usage.min(total);
        s.totalram = (total / unit) as _;
        s.freeram = ((total - used) / unit) as _;
        s.sharedram = (m.stat.get("shmem").copied().unwrap_or(0) / unit) as _;
        s.bufferram = 0;
        let host_swap = u64::from(s.totalswap) * unit;
        let swap = m.swap_limit.map_or(host_swap, |l| l.min(host_swap));
        s.totalswap = (swap / unit) as _;
        s.freeswap = ((swap - m.swap_usage.min(swap)) / unit) as _;
    }
    if let Some(age) = view.age() {
        s.uptime = age.max(0.0) as _;
    }
    // sysinfo's loads are fixed point with 16 bits (SI_LOAD_SHIFT), the kernel's 11.
    let load = view.load();
    for (dst, src) in s.loads.iter_mut().zip(load.avg) {
        *dst = (src << (16 - super::compute::FSHIFT)) as _;
    }
    s.procs = view.tasks().len().min(u16::MAX as usize) as u16;
    s
}
