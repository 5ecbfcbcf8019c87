//! Reading a container's counters from its cgroups (v1 or v2 per controller) into the
//! inputs of `compute`.

use super::compute::{self, CpuUsage, IoMap, Memory};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One cgroup directory and its hierarchy's version.
#[derive(Debug, Clone, PartialEq)]
pub struct Dir {
    pub v2: bool,
    pub path: PathBuf,
}

/// Where each counter of the container is read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sources {
    pub memory: Option<Dir>,
    /// The CPU limit (quota and period).
    pub cpu: Option<Dir>,
    /// CPU usage: v1 cpuacct, or v2's `cpu.stat` (present in every v2 cgroup).
    pub cpuacct: Option<Dir>,
    pub cpuset: Option<Dir>,
    pub blkio: Option<Dir>,
    /// The file listing the container's threads (v1 `tasks`, v2 `cgroup.threads`).
    pub tasks: Option<PathBuf>,
}

/// Reads a counter file through a descriptor kept open (pread at 0 regenerates a
/// seq_file, as procps rereads /proc/meminfo): a view's files are read on every open,
/// and opening is half the cost. At most `MAX_OPEN` files are kept.
pub fn read(p: &Path) -> io::Result<String> {
    use std::os::unix::fs::FileExt;
    static OPEN: Mutex<Option<HashMap<PathBuf, std::fs::File>>> = Mutex::new(None);
    const MAX_OPEN: usize = 64;
    let mut guard = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    let open = guard.get_or_insert_with(HashMap::new);
    if !open.contains_key(p) {
        let f = std::fs::File::open(p)?;
        if open.len() >= MAX_OPEN {
            open.clear();
        }
        open.insert(p.to_path_buf(), f);
    }
    let f = &open[p];
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match f.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                open.remove(p);
                return Err(e);
            }
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn num(text: &str) -> Option<u64> {
    match text.trim() {
        "max" => Some(u64::MAX),
        t => t.parse().ok(),
    }
}

/// The smallest value of `file` in `dir` and its ancestors (as far as they have it).
fn min_along_path(dir: &Path, file: &str) -> Option<u64> {
    let mut best: Option<u64> = None;
    let mut cur = Some(dir);
    while let Some(d) = cur {
        let Ok(t) = read(&d.join(file)) else { break };
        if let Some(v) = num(&t) {
            best = Some(best.map_or(v, |b| b.min(v)));
        }
        cur = d.parent();
    }
    best
}

/// The smallest memory (and v1 memory+swap, or v2 swap) limits of the ancestors of
/// `d`: they seldom change, so the view reads them every few seconds, not per open.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ancestors {
    pub memory: Option<u64>,
    pub swap: Option<u64>,
}

fn files(d: &Dir) -> (&'static str, &'static str) {
    match d.v2 {
        true => ("memory.max", "memory.swap.max"),
        false => ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"),
    }
}

pub fn ancestors(d: &Dir) -> Ancestors {
    let (mem, swap) = files(d);
    let parent = d.path.parent();
    Ancestors {
        memory: parent.and_then(|p| min_along_path(p, mem)),
        swap: parent.and_then(|p| min_along_path(p, swap)),
    }
}

fn min2(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The container's memory counters: its own files, and `anc` for the path above it.
/// Without `swap` (the host has none) the swap files are not read.
pub fn memory(d: &Dir, anc: &Ancestors, swap: bool) -> io::Result<Memory> {
    let p = &d.path;
    let get = |f: &str| read(&p.join(f)).map(|t| num(&t).unwrap_or(0));
    let (mem_f, swap_f) = files(d);
    let limit = min2(get(mem_f).ok(), anc.memory).unwrap_or(u64::MAX);
    let own_swap = || min2(get(swap_f).ok(), anc.swap);
    if d.v2 {
        Ok(Memory {
            limit,
            usage: get("memory.current")?,
            swap_limit: if swap { own_swap() } else { Some(0) },
            swap_usage: if swap {
                get("memory.swap.current").unwrap_or(0)
            } else {
                0
            },
            stat: compute::parse_kv(&read(&p.join("memory.stat"))?),
        })
    } else {
        let usage = get("memory.usage_in_bytes")?;
        let memsw = if swap { own_swap() } else { None };
        let memsw_usage = if swap {
            get("memory.memsw.usage_in_bytes").ok()
        } else {
            None
        };
        Ok(Memory {
            limit,
            usage,
            swap_limit: memsw.map(|m| m.saturating_sub(limit)),
            swap_usage: memsw_usage.map_or(0, |u| u.saturating_sub(usage)),
            stat: compute::memstat_v1(&read(&p.join("memory.stat"))?),
        })
    }
}

/// The cgroup's cpuset, if it has one.
pub fn cpuset(d: &Dir) -> Option<Vec<u32>> {
    let file = if d.v2 {
        "cpuset.cpus.effective"
    } else {
        "cpuset.effective_cpus"
    };
    let v = compute::parse_cpulist(&read(&d.path.join(file)).ok()?);
    (!v.is_empty()).then_some(v)
}

pub fn quota(d: &Dir) -> Option<(u64, u64)> {
    if d.v2 {
        compute::parse_cpu_max(&read(&d.path.join("cpu.max")).ok()?)
    } else {
        compute::parse_quota(
            &read(&d.path.join("cpu.cfs_quota_us")).ok()?,
            &read(&d.path.join("cpu.cfs_period_us")).ok()?,
        )
    }
}

pub fn usage(d: &Dir) -> Option<CpuUsage> {
    if d.v2 {
        Some(compute::parse_cpu_stat_v2(
            &read(&d.path.join("cpu.stat")).ok()?,
        ))
    } else {
        Some(compute::parse_usage_all(
            &read(&d.path.join("cpuacct.usage_all")).ok()?,
        ))
    }
}

pub fn io(d: &Dir) -> Option<IoMap> {
    if d.v2 {
        return Some(compute::parse_io_stat(&read(&d.path.join("io.stat")).ok()?));
    }
    // The kernel keeps the throttle counters only for queues with a throttle rule, the
    // bfq ones only under that scheduler, the plain ones (CFQ, before 5.0) no more: the
    // first family that counted anything is used.
    let mut first = None;
    for family in ["blkio.throttle.", "blkio.bfq.", "blkio."] {
        let file = |f: &str| read(&d.path.join(format!("{family}{f}_recursive"))).ok();
        let Some(serviced) = file("io_serviced") else {
            continue;
        };
        let mut m = IoMap::new();
        compute::add_blkio(&mut m, &serviced, |io, r, v| match r {
            true => io.reads = v,
            false => io.writes = v,
        });
        let bytes = file("io_service_bytes").unwrap_or_default();
        compute::add_blkio(&mut m, &bytes, |io, r, v| match r {
            true => io.read_bytes = v,
            false => io.write_bytes = v,
        });
        let merged = file("io_merged").unwrap_or_default();
        compute::add_blkio(&mut m, &merged, |io, r, v| match r {
            true => io.reads_merged = v,
            false => io.writes_merged = v,
        });
        // Nanoseconds in these files, milliseconds in diskstats.
        let service = file("io_service_time").unwrap_or_default();
        compute::add_blkio(&mut m, &service, |io, r, v| match r {
            true => io.read_ms = v / 1_000_000,
            false => io.write_ms = v / 1_000_000,
        });
        let wait = file("io_wait_time").unwrap_or_default();
        compute::add_blkio(&mut m, &wait, |io, _, v| io.wait_ms += v / 1_000_000);
        if m.values().any(|io| io.reads + io.writes > 0) {
            return Some(m);
        }
        first.get_or_insert(m);
    }
    first
}

/// The thread ids listed in a `tasks` or `cgroup.threads` file.
pub fn tasks(file: &Path) -> Vec<u32> {
    read(file)
        .map(|t| {
            t.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(d: &Path, f: &str, s: &str) {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join(f), s).unwrap();
    }

    /// A fake cgroup v2 tree: the parent limits memory harder than the container.
    #[test]
    fn v2_tree() {
        let t = tempfile::tempdir().unwrap();
        let parent = t.path().join("user.slice");
        let c = parent.join("strata-1");
        write(&parent, "memory.max", "200000000\n");
        write(&parent, "memory.swap.max", "max\n");
        write(&c, "memory.max", "268435456\n");
        write(&c, "memory.current", "50000000\n");
        write(&c, "memory.swap.max", "0\n");
        write(&c, "memory.swap.current", "0\n");
        write(
            &c,
            "memory.stat",
            "anon 30000000\nfile 20000000\nshmem 1000000\nactive_file 8192000\n\
             inactive_file 4096000\nactive_anon 1024000\ninactive_anon 29000000\n",
        );
        write(&c, "cpu.max", "150000 100000\n");
        write(&c, "cpuset.cpus.effective", "0-3\n");
        write(
            &c,
            "cpu.stat",
            "usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n",
        );
        write(
            &c,
            "io.stat",
            "8:0 rbytes=1048576 wbytes=4096 rios=10 wios=1 dbytes=0 dios=0\n",
        );
        write(&c, "cgroup.threads", "12\n13\n");
        let d = Dir {
            v2: true,
            path: c.clone(),
        };
        let m = memory(&d, &ancestors(&d), true).unwrap();
        assert_eq!(m.limit, 200000000, "the smallest along the path");
        assert_eq!(m.usage, 50000000);
        assert_eq!(m.swap_limit, Some(0));
        assert_eq!(m.stat["active_file"], 8192000);
        let host = "MemTotal:       24684092 kB\nMemFree:        20000000 kB\n\
                    MemAvailable:   22000000 kB\nCached:          1000000 kB\n\
                    SwapTotal:       1000000 kB\nSwapFree:        1000000 kB\nHugePages_Total:       0\n";
        let text = compute::meminfo(host, &m);
        assert!(text.starts_with("MemTotal:         195312 kB\n"), "{text}");
        assert!(text.contains("MemFree:          146484 kB\n"), "{text}");
        assert!(text.contains("MemAvailable:     158484 kB\n"), "{text}");
        assert!(text.contains("Cached:            18555 kB\n"), "{text}");
        assert!(text.contains("SwapTotal:             0 kB\n"), "{text}");
        assert!(
            text.contains("HugePages_Total:       0\n"),
            "host lines stay: {text}"
        );
        let set = cpuset(&d).unwrap();
        assert_eq!(set, vec![0, 1, 2, 3]);
        let vis = compute::visible_cpus(&set, quota(&d));
        assert_eq!(vis, vec![0, 1], "ceil(1.5) CPUs");
        let u = usage(&d).unwrap();
        assert_eq!(u.total_ns(), 3_000_000_000);
        assert_eq!(u.fold(&set, 2), vec![(1_000_000_000, 500_000_000); 2]);
        let io = io(&d).unwrap();
        let disk = compute::diskstats(
            "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n   8      16 sdb 1 2 3 4 5 6 7 8 9 10 11\n",
            &io,
        );
        assert_eq!(disk, "   8       0 sda 10 0 2048 0 1 0 8 0 0 0 0\n");
        assert_eq!(tasks(&c.join("cgroup.threads")), vec![12, 13]);
    }

    #[test]
    fn v1_dirs() {
        let t = tempfile::tempdir().unwrap();
        let mem = t.path().join("memory/strata-1");
        write(
            t.path().join("memory").as_path(),
            "memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        write(&mem, "memory.limit_in_bytes", "268435456\n");
        write(&mem, "memory.memsw.limit_in_bytes", "268435456\n");
        write(&mem, "memory.usage_in_bytes", "104857600\n");
        write(&mem, "memory.memsw.usage_in_bytes", "104857600\n");
        write(
            &mem,
            "memory.stat",
            "cache 1\nrss 2\ntotal_cache 4194304\ntotal_rss 100663296\ntotal_shmem 0\n\
             total_active_anon 100663296\ntotal_inactive_anon 0\ntotal_active_file 2097152\n\
             total_inactive_file 2097152\n",
        );
        let md = Dir {
            v2: false,
            path: mem,
        };
        let m = memory(&md, &ancestors(&md), true).unwrap();
        assert_eq!(
            (m.limit, m.usage, m.swap_limit, m.swap_usage),
            (268435456, 104857600, Some(0), 0)
        );
        assert_eq!(m.stat["file"], 4194304);
        let text = compute::meminfo(
            "MemTotal: 24684092 kB\nMemFree: 1 kB\nMemAvailable: 1 kB\nActive: 1 kB\n",
            &m,
        );
        assert_eq!(
            text,
            "MemTotal:         262144 kB\nMemFree:          159744 kB\n\
             MemAvailable:     163840 kB\nActive:           100352 kB\n"
        );
        let cpu = t.path().join("cpu/strata-1");
        write(&cpu, "cpu.cfs_quota_us", "100000\n");
        write(&cpu, "cpu.cfs_period_us", "100000\n");
        let cd = Dir {
            v2: false,
            path: cpu,
        };
        assert_eq!(quota(&cd), Some((100000, 100000)));
        write(&cd.path, "cpu.cfs_quota_us", "-1\n");
        assert_eq!(quota(&cd), None);
        let acct = t.path().join("cpuacct/strata-1");
        write(
            &acct,
            "cpuacct.usage_all",
            "cpu user system\n0 3000000000 1000000000\n1 1000000000 0\n",
        );
        let u = usage(&Dir {
            v2: false,
            path: acct,
        })
        .unwrap();
        assert_eq!(u.fold(&[0, 1], 1), vec![(4_000_000_000, 1_000_000_000)]);
        let blk = t.path().join("blkio/strata-1");
        // No throttle rule on the queue: the kernel kept no throttle counts; bfq did.
        write(&blk, "blkio.throttle.io_serviced_recursive", "Total 0\n");
        write(
            &blk,
            "blkio.throttle.io_service_bytes_recursive",
            "Total 0\n",
        );
        write(
            &blk,
            "blkio.bfq.io_serviced_recursive",
            "8:0 Read 7\n8:0 Write 2\n8:0 Total 9\nTotal 9\n",
        );
        write(
            &blk,
            "blkio.bfq.io_wait_time_recursive",
            "8:0 Read 3000000\n8:0 Write 0\n",
        );
        write(
            &blk,
            "blkio.bfq.io_service_bytes_recursive",
            "8:0 Read 4096\n8:0 Write 1024\nTotal 5120\n",
        );
        let io = io(&Dir {
            v2: false,
            path: blk,
        })
        .unwrap();
        let d = io[&(8, 0)];
        assert_eq!(
            (d.reads, d.writes, d.read_bytes, d.write_bytes, d.wait_ms),
            (7, 2, 4096, 1024, 3)
        );
    }
}
