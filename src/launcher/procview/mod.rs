//! The container's /proc view (issue 14, what lxcfs does, built in): /proc/meminfo,
//! cpuinfo, stat, uptime, loadavg, swaps, diskstats and /sys/devices/system/cpu/online
//! computed from the container's cgroups instead of the host's counters.
//!
//! Mechanics: a thread of the `strata run` process serves a small FUSE filesystem
//! (`fuse`), so the view lives and dies with its container. The container mounts it
//! privately in its own mount namespace, before pivot_root, on a directory of its new
//! /dev, binds its files over the real ones, then detaches the mount and removes the
//! directory (`attach`); the server thread lives in strata's mount namespace, never the
//! one that pivots (see launcher-notes, the pivot_root deadlock). The container sends
//! the /dev/fuse descriptor to strata over a socket pair; strata serves it (`serve`).
//!
//! Each file is generated once per open (`View::render`) from `cgroup` readings and
//! the `compute` functions. A reader outside the container's PID namespace, and any
//! failure to compute, gets the real file's text; if the view cannot be attached at
//! all the container keeps the real files.

mod cgroup;
pub mod compute;
mod fuse;
mod sysinfo;

use super::error::{Context, Error, Result};
use super::mounts::{bind, mount, umount_detach};
use super::rootfs::secure_join;
use crate::sys;
pub use cgroup::{Dir, Sources};
use compute::LoadAvg;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

/// A virtualized file: its name in the view and its path (the same inside and outside).
pub struct FileDef {
    pub name: &'static str,
    pub path: &'static str,
}

pub const FILES: [FileDef; 8] = [
    FileDef {
        name: "meminfo",
        path: "/proc/meminfo",
    },
    FileDef {
        name: "cpuinfo",
        path: "/proc/cpuinfo",
    },
    FileDef {
        name: "stat",
        path: "/proc/stat",
    },
    FileDef {
        name: "uptime",
        path: "/proc/uptime",
    },
    FileDef {
        name: "loadavg",
        path: "/proc/loadavg",
    },
    FileDef {
        name: "swaps",
        path: "/proc/swaps",
    },
    FileDef {
        name: "diskstats",
        path: "/proc/diskstats",
    },
    FileDef {
        name: "online",
        path: "/sys/devices/system/cpu/online",
    },
];

/// The state of one container's view, shared by the FUSE thread and the load sampler.
pub struct View {
    src: Sources,
    /// When its PID 1 started, in clock ticks since boot.
    start_ticks: u64,
    hz: u64,
    load: Mutex<LoadAvg>,
    /// The limits above the container's memory cgroup, and when they were read.
    ancestors: Mutex<Option<(std::time::Instant, cgroup::Ancestors)>>,
}

/// How long the ancestors' memory limits are reused.
const ANCESTORS_TTL: std::time::Duration = std::time::Duration::from_secs(2);

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

/// A file read on every open of the view (kept open).
fn read_kept(p: &str) -> Option<String> {
    cgroup::read(Path::new(p)).ok()
}

/// The CPUs the container is shown, from its cpuset (else strata's affinity) and quota:
/// (the cpuset, the visible CPUs).
pub fn cpus(src: &Sources) -> (Vec<u32>, Vec<u32>) {
    let affinity = sys::process::affinity().ok().filter(|v| !v.is_empty());
    let mut set = src
        .cpuset
        .as_ref()
        .and_then(cgroup::cpuset)
        .or_else(|| affinity.clone())
        .unwrap_or_else(|| compute::parse_cpulist(&read(FILES[7].path).unwrap_or_default()));
    // strata started under taskset: the container may use no more than that either.
    if let Some(a) = &affinity {
        let both: Vec<u32> = set.iter().copied().filter(|c| a.contains(c)).collect();
        if !both.is_empty() {
            set = both;
        }
    }
    let quota = src.cpu.as_ref().and_then(cgroup::quota);
    let visible = compute::visible_cpus(&set, quota);
    (set, visible)
}

/// Field 22 of /proc/PID/stat (starttime), after the command name.
fn start_ticks(pid: u32) -> Option<u64> {
    let s = read(&format!("/proc/{pid}/stat"))?;
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The state letter of /proc/TID/stat.
fn task_state(tid: u32) -> Option<char> {
    let s = read(&format!("/proc/{tid}/stat"))?;
    s[s.rfind(')')? + 2..].chars().next()
}

impl View {
    /// The view of the container whose PID 1 is `pid1` (a host pid).
    pub fn new(src: Sources, pid1: u32) -> View {
        View {
            src,
            start_ticks: start_ticks(pid1).unwrap_or(0),
            hz: sys::process::clock_ticks(),
            load: Mutex::new(LoadAvg::default()),
            ancestors: Mutex::new(None),
        }
    }

    /// The memory counters, with swap only when the host has some.
    pub(super) fn memory(&self, host_meminfo: &str) -> Option<compute::Memory> {
        let d = self.src.memory.as_ref()?;
        let anc = {
            let mut a = self.ancestors.lock().unwrap_or_else(|e| e.into_inner());
            match *a {
                Some((t, anc)) if t.elapsed() < ANCESTORS_TTL => anc,
                _ => {
                    let anc = cgroup::ancestors(d);
                    *a = Some((std::time::Instant::now(), anc));
                    anc
                }
            }
        };
        let swap = compute::meminfo_kb(host_meminfo, "SwapTotal").unwrap_or(0) > 0;
        cgroup::memory(d, &anc, swap).ok()
    }

    /// Is the reader of FUSE request pid `pid` in the container? The kernel gives pids
    /// in the PID namespace of the process that mounted the view (the container's own),
    /// and 0 for a process outside it (say, the host reading /proc/PID/root/proc/meminfo).
    fn inside(&self, pid: u32) -> bool {
        pid > 0
    }

    /// The text of `FILES[i]` for a reader `pid`: the container's, or the real file's
    /// for a reader outside it or when it cannot be computed.
    pub fn render(&self, i: usize, pid: u32) -> Vec<u8> {
        if self.inside(pid) {
            let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.generate(i)));
            match made {
                Ok(Some(t)) => return t.into_bytes(),
                Ok(None) => log::debug!("proc view: {} falls back to the host's", FILES[i].path),
                Err(_) => log::warn!("proc view: computing {} panicked", FILES[i].path),
            }
        }
        std::fs::read(FILES[i].path).unwrap_or_default()
    }

    /// The container's age in seconds (the age of its PID 1).
    pub(super) fn age(&self) -> Option<f64> {
        let host: f64 = read_kept("/proc/uptime")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(host - self.start_ticks as f64 / self.hz as f64)
    }

    pub(super) fn load(&self) -> LoadAvg {
        *self.load.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn usage(&self) -> Option<compute::CpuUsage> {
        self.src.cpuacct.as_ref().and_then(cgroup::usage)
    }

    pub(super) fn tasks(&self) -> Vec<u32> {
        self.src
            .tasks
            .as_deref()
            .map(cgroup::tasks)
            .unwrap_or_default()
    }

    fn generate(&self, i: usize) -> Option<String> {
        match FILES[i].name {
            "meminfo" => {
                let host = read_kept("/proc/meminfo")?;
                let m = self.memory(&host)?;
                Some(compute::meminfo(&host, &m))
            }
            "swaps" => {
                let host = read_kept("/proc/meminfo")?;
                let m = self.memory(&host)?;
                let host_swap = compute::meminfo_kb(&host, "SwapTotal").unwrap_or(0);
                let total = m
                    .swap_limit
                    .map_or(host_swap, |l| (l / 1024).min(host_swap));
                Some(compute::swaps(total, m.swap_usage / 1024))
            }
            "cpuinfo" => Some(compute::cpuinfo(
                &read_kept("/proc/cpuinfo")?,
                &cpus(&self.src).1,
            )),
            "online" => Some(compute::cpu_online(cpus(&self.src).1.len())),
            "stat" => {
                let (set, vis) = cpus(&self.src);
                let folded = self.usage().map(|u| u.fold(&set, vis.len()));
                Some(compute::stat(
                    &read_kept("/proc/stat")?,
                    &vis,
                    folded.as_deref(),
                    self.hz,
                ))
            }
            "uptime" => {
                let age = self.age()?;
                let used = self.usage().map_or(0.0, |u| u.total_ns() as f64 / 1e9);
                Some(compute::uptime(age, cpus(&self.src).1.len(), used))
            }
            "loadavg" => {
                self.src.tasks.as_ref()?;
                let tasks = self.tasks();
                let running = tasks
                    .iter()
                    .filter(|t| task_state(**t) == Some('R'))
                    .count();
                let last_pid = read_kept("/proc/loadavg")?
                    .split_whitespace()
                    .nth(4)?
                    .parse()
                    .ok()?;
                let load = *self.load.lock().unwrap_or_else(|e| e.into_inner());
                Some(load.render(running, tasks.len(), last_pid))
            }
            "diskstats" => {
                let io = cgroup::io(self.src.blkio.as_ref()?)?;
                Some(compute::diskstats(&read_kept("/proc/diskstats")?, &io))
            }
            _ => None,
        }
    }

    /// One LOAD_FREQ step: counts the container's runnable and uninterruptible tasks.
    fn sample(&self) {
        let active = self
            .tasks()
            .into_iter()
            .filter(|t| matches!(task_state(*t), Some('R' | 'D')))
            .count();
        self.load
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .update(active as u64);
    }
}

/// Serves the view on the /dev/fuse descriptor the container sends over `sock`, in
/// threads of this process (the FUSE session, the load sampler every 5 s, and the
/// sysinfo(2) supervisor on the seccomp listener the container sends next, if any); they
/// end with the container (its mount namespace going away ends the FUSE connection).
pub fn serve(view: View, sock: OwnedFd) -> Result<()> {
    let view = Arc::new(view);
    let weak: Weak<View> = Arc::downgrade(&view);
    std::thread::Builder::new()
        .name("procview".into())
        .spawn(move || {
            let fd = match sys::process::recv_fds(sock.as_fd(), true) {
                Ok(mut fds) if !fds.is_empty() => fds.swap_remove(0),
                Ok(_) => return log::debug!("proc view: the container did not mount it"),
                Err(e) => return log::warn!("proc view: receive /dev/fuse: {e}"),
            };
            let mut config = fuser::Config::default();
            config.acl = fuser::SessionACL::All;
            // Two threads: a NOTIFY_STORE may wait for a page that a reader holds
            // locked while its READ waits to be served.
            config.n_threads = Some(2);
            let fs = fuse::ViewFs::new(view.clone());
            let notifier = fs.notifier.clone();
            let session = match fuser::Session::from_fd(fs, fd, fuser::SessionACL::All, config) {
                Ok(s) => s,
                Err(e) => return log::warn!("proc view: FUSE handshake: {e}"),
            };
            let _ = notifier.set(session.notifier());
            let run = std::thread::Builder::new()
                .name("procview-fuse".into())
                .spawn(move || {
                    if let Err(e) = session.run() {
                        log::debug!("proc view: session ended: {e}");
                    }
                });
            if let Err(e) = run {
                return log::warn!("proc view: spawn the FUSE thread: {e}");
            }
            match sys::process::recv_fds(sock.as_fd(), true) {
                Ok(mut fds) if !fds.is_empty() => sysinfo::supervise(&view, fds.swap_remove(0)),
                Ok(_) => log::debug!("proc view: no sysinfo interception"),
                Err(e) => log::warn!("proc view: receive the seccomp listener: {e}"),
            }
        })
        .context(|| "spawn the proc view thread".into())?;
    std::thread::Builder::new()
        .name("procview-load".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(compute::LOAD_FREQ_SECS));
            match weak.upgrade() {
                Some(v) => v.sample(),
                None => return,
            }
        })
        .context(|| "spawn the load average thread".into())?;
    Ok(())
}

/// In the container, before pivot_root: mounts the view on a fresh directory of the
/// container's /dev, hands its /dev/fuse descriptor to strata over `sock`, binds each
/// file over the real one under `root` (when that exists), then detaches the view's own
/// mount. Returns how many files were bound. On error the container sees the real
/// files (all of them when strata does not serve the view: one read checks it first).
pub fn attach(root: &Path, sock: &OwnedFd) -> Result<usize> {
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(|e| Error::io("open /dev/fuse", e))?;
    let dir = secure_join(root, Path::new("/dev/.strata-procview"))?;
    std::fs::create_dir(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let opts = format!(
        "fd={},rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions",
        dev.as_raw_fd()
    );
    let fl = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY;
    let src = Some(std::ffi::OsStr::new("strata-procview"));
    let result = mount(src, &dir, Some("fuse.strata-procview"), fl, Some(&opts))
        .and_then(|_| {
            sys::process::send_fds(sock.as_fd(), &[dev.as_fd()])
                .context(|| "send the proc view's /dev/fuse to strata".into())
        })
        .and_then(|_| {
            drop(dev);
            // One read proves strata serves it before anything is hidden behind it.
            std::fs::read(dir.join("meminfo")).map_err(|e| Error::io("read the proc view", e))?;
            let mut n = 0;
            for f in &FILES {
                let target = secure_join(root, Path::new(f.path))?;
                if target.is_file() {
                    bind(&dir.join(f.name), &target, false)?;
                    n += 1;
                }
            }
            Ok(n)
        });
    let _ = umount_detach(&dir);
    let _ = std::fs::remove_dir(&dir);
    result
}

/// In the container, after `attach`: hands sysinfo(2) to strata (seccomp user
/// notification, as LXD does), so that busybox `free` sees the container's memory too.
/// The filter stays on what the container runs; the listener goes to strata over `sock`
/// and is closed here, so that the calls fail (ENOSYS) rather than hang if strata is gone.
pub fn intercept_sysinfo(sock: OwnedFd) -> Result<()> {
    let listener = sys::seccomp::notify_filter(libc::SYS_sysinfo)
        .context(|| "seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER) for sysinfo".into())?;
    sys::process::send_fds(sock.as_fd(), &[listener.as_fd()])
        .context(|| "send the seccomp listener to strata".into())
}
