//! The computations of the view, as lxcfs does them (`proc_fuse.c`, `proc_cpuview.c`,
//! `proc_loadavg.c`): pure functions from the host's file and the cgroup's counters to
//! the text the container reads. Nothing here touches the system.

use std::collections::HashMap;

/// `memory.stat`, keyed by the cgroup v2 names (v1's `total_*` names are mapped to them).
pub type MemStat = HashMap<String, u64>;

/// A cgroup's memory counters, in bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memory {
    /// The smallest limit along the cgroup path (`u64::MAX` if none).
    pub limit: u64,
    pub usage: u64,
    /// The swap the cgroup may use on top of `limit`, if the kernel accounts it.
    pub swap_limit: Option<u64>,
    pub swap_usage: u64,
    pub stat: MemStat,
}

/// Parses `name value` lines (memory.stat, cpu.stat, cpuacct.stat).
pub fn parse_kv(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.parse().ok()?))
        })
        .collect()
}

/// Maps a v1 `memory.stat` to the v2 names (the hierarchical `total_*` counters).
pub fn memstat_v1(text: &str) -> MemStat {
    const PAIRS: [(&str, &str); 12] = [
        ("total_cache", "file"),
        ("total_rss", "anon"),
        ("total_shmem", "shmem"),
        ("total_mapped_file", "file_mapped"),
        ("total_dirty", "file_dirty"),
        ("total_writeback", "file_writeback"),
        ("total_active_anon", "active_anon"),
        ("total_inactive_anon", "inactive_anon"),
        ("total_active_file", "active_file"),
        ("total_inactive_file", "inactive_file"),
        ("total_unevictable", "unevictable"),
        ("total_rss_huge", "anon_thp"),
    ];
    // Only the lines wanted (memory.stat has some 70): this runs on every open.
    let mut m = MemStat::with_capacity(PAIRS.len());
    for l in text.lines().filter(|l| l.starts_with("total_")) {
        let Some((k, v)) = l.split_once(' ') else {
            continue;
        };
        if let Some((_, v2)) = PAIRS.iter().find(|(v1, _)| *v1 == k) {
            m.insert(v2.to_string(), v.trim().parse().unwrap_or(0));
        }
    }
    m
}

/// A `kB` value of a /proc/meminfo text.
pub fn meminfo_kb(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn kb_line(name: &str, kb: u64) -> String {
    format!("{:<16}{kb:>8} kB\n", format!("{name}:"))
}

/// /proc/meminfo: the host's lines, with those the cgroup knows replaced.
pub fn meminfo(host: &str, m: &Memory) -> String {
    let host_total = meminfo_kb(host, "MemTotal").unwrap_or(u64::MAX);
    let host_swap = meminfo_kb(host, "SwapTotal").unwrap_or(0);
    let s = |k: &str| m.stat.get(k).copied().unwrap_or(0) / 1024;
    let total = (m.limit / 1024).min(host_total);
    let used = (m.usage / 1024).min(total);
    let free = total - used;
    let reclaimable = s("active_file") + s("inactive_file") + s("slab_reclaimable");
    let available = (free + reclaimable).min(total);
    let swap_total = match m.swap_limit {
        Some(l) => (l / 1024).min(host_swap),
        None => host_swap,
    };
    let swap_free = swap_total - (m.swap_usage / 1024).min(swap_total);
    let mut out = String::with_capacity(host.len());
    for line in host.lines() {
        let name = line.split(':').next().unwrap_or("");
        let v = match name {
            "MemTotal" => total,
            "MemFree" => free,
            "MemAvailable" => available,
            "Buffers" | "SwapCached" | "ShmemPmdMapped" | "FilePmdMapped" => 0,
            "Cached" => s("file").saturating_sub(s("shmem")),
            "Active" => s("active_anon") + s("active_file"),
            "Inactive" => s("inactive_anon") + s("inactive_file"),
            "Active(anon)" => s("active_anon"),
            "Inactive(anon)" => s("inactive_anon"),
            "Active(file)" => s("active_file"),
            "Inactive(file)" => s("inactive_file"),
            "Unevictable" => s("unevictable"),
            "SwapTotal" => swap_total,
            "SwapFree" => swap_free,
            "Dirty" => s("file_dirty"),
            "Writeback" => s("file_writeback"),
            "AnonPages" => s("anon"),
            "Mapped" => s("file_mapped"),
            "Shmem" => s("shmem"),
            "KReclaimable" | "SReclaimable" => s("slab_reclaimable"),
            "Slab" => s("slab_reclaimable") + s("slab_unreclaimable"),
            "SUnreclaim" => s("slab_unreclaimable"),
            "AnonHugePages" => s("anon_thp"),
            "ShmemHugePages" => s("shmem_thp"),
            "FileHugePages" => s("file_thp"),
            _ => {
                out.push_str(line);
                out.push('\n');
                continue;
            }
        };
        out.push_str(&kb_line(name, v));
    }
    out
}

/// Parses a cpu list such as `0-3,8,10-11`.
pub fn parse_cpulist(s: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    v.extend(a..=b);
                }
            }
            None => v.extend(part.parse::<u32>().ok()),
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// The host CPUs the container is shown: the first of its cpuset, as many as
/// ceil(quota/period) of its CPU limit allows (at least one).
pub fn visible_cpus(cpuset: &[u32], quota: Option<(u64, u64)>) -> Vec<u32> {
    let mut n = cpuset.len();
    if let Some((q, p)) = quota.filter(|(q, p)| *q > 0 && *p > 0) {
        n = n.min(q.div_ceil(p) as usize);
    }
    cpuset[..n.max(1).min(cpuset.len())].to_vec()
}

/// Parses cgroup v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us` or v2 `cpu.max` text
/// into (quota, period); `None` means no limit.
pub fn parse_quota(quota: &str, period: &str) -> Option<(u64, u64)> {
    let q: i64 = quota.trim().parse().ok()?;
    let p: u64 = period.trim().parse().ok()?;
    (q > 0).then_some((q as u64, p))
}

pub fn parse_cpu_max(text: &str) -> Option<(u64, u64)> {
    let mut f = text.split_whitespace();
    let (q, p) = (f.next()?, f.next().unwrap_or("100000"));
    parse_quota(q, p)
}

/// /sys/devices/system/cpu/online for `n` CPUs.
pub fn cpu_online(n: usize) -> String {
    match n {
        0 | 1 => "0\n".into(),
        n => format!("0-{}\n", n - 1),
    }
}

/// /proc/cpuinfo: the host's blocks of the visible CPUs, renumbered from 0.
pub fn cpuinfo(host: &str, visible: &[u32]) -> String {
    let blocks: Vec<&str> = host
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .collect();
    let cpu_of = |b: &str| -> Option<u32> {
        b.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "processor").then(|| v.trim().parse().ok())?
        })
    };
    if !blocks.iter().any(|b| cpu_of(b).is_some()) {
        return host.to_string(); // a format without per-CPU blocks
    }
    let mut out = String::with_capacity(host.len());
    let mut shown = 0;
    for b in blocks {
        match cpu_of(b) {
            Some(c) if visible.contains(&c) => {
                for l in b.lines() {
                    match l.split_once(':') {
                        Some((k, _)) if k.trim() == "processor" => {
                            out.push_str(&format!("{k}: {shown}\n"))
                        }
                        _ => {
                            out.push_str(l);
                            out.push('\n');
                        }
                    }
                }
                out.push('\n');
                shown += 1;
            }
            Some(_) => {}
            None => {
                out.push_str(b);
                out.push_str("\n\n");
            }
        }
    }
    out
}

/// CPU time of the cgroup, in nanoseconds: per host CPU (v1 `cpuacct.usage_all`) or,
/// on cgroup v2 (`cpu.stat`), only the sums.
#[derive(Debug, Clone, PartialEq)]
pub enum CpuUsage {
    /// (host cpu, user ns, system ns)
    PerCpu(Vec<(u32, u64, u64)>),
    Total {
        user: u64,
        system: u64,
    },
}

impl CpuUsage {
    pub fn total_ns(&self) -> u64 {
        match self {
            CpuUsage::PerCpu(v) => v.iter().map(|(_, u, s)| u + s).sum(),
            CpuUsage::Total { user, system } => user + system,
        }
    }

    /// (user ns, system ns) per visible CPU: the time of each cgroup CPU goes to the
    /// visible CPU of its rank modulo the count; totals are spread evenly.
    pub fn fold(&self, cpuset: &[u32], visible: usize) -> Vec<(u64, u64)> {
        let n = visible.max(1);
        let mut out = vec![(0u64, 0u64); n];
        match self {
            CpuUsage::PerCpu(v) => {
                for (cpu, u, s) in v {
                    let rank = cpuset.iter().position(|c| c == cpu);
                    if let Some(r) = rank {
                        out[r % n].0 += u;
                        out[r % n].1 += s;
                    }
                }
            }
            CpuUsage::Total { user, system } => {
                for o in &mut out {
                    *o = (user / n as u64, system / n as u64);
                }
            }
        }
        out
    }
}

/// Parses v1 `cpuacct.usage_all` (`cpu user system` in ns per line, after a header).
pub fn parse_usage_all(text: &str) -> CpuUsage {
    CpuUsage::PerCpu(
        text.lines()
            .filter_map(|l| {
                let f: Vec<u64> = l
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                (f.len() == 3).then(|| (f[0] as u32, f[1], f[2]))
            })
            .collect(),
    )
}

/// Parses v2 `cpu.stat` (microseconds).
pub fn parse_cpu_stat_v2(text: &str) -> CpuUsage {
    let kv = parse_kv(text);
    let us = |k: &str| kv.get(k).copied().unwrap_or(0) * 1000;
    CpuUsage::Total {
        user: us("user_usec"),
        system: us("system_usec"),
    }
}

/// /proc/stat: the visible CPUs' lines renumbered, their times from the cgroup's usage
/// (idle is the rest of that host CPU's time); `cpu` sums them; other lines stay.
/// `hz` is USER_HZ. Without usage, the host's times of the visible CPUs are shown.
pub fn stat(host: &str, visible: &[u32], usage: Option<&[(u64, u64)]>, hz: u64) -> String {
    let ticks = |ns: u64| ns / (1_000_000_000 / hz.max(1));
    let mut rows: Vec<Vec<u64>> = Vec::new();
    for (i, cpu) in visible.iter().enumerate() {
        let name = format!("cpu{cpu}");
        let Some(line) = host
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
        else {
            continue;
        };
        let mut f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        f.resize(10, 0);
        if let Some(u) = usage.and_then(|u| u.get(i)) {
            // user..steal; guest and guest_nice are already inside user.
            let host_total: u64 = f[..8].iter().sum();
            let (user, system) = (ticks(u.0), ticks(u.1));
            let idle = host_total.saturating_sub(user + system);
            f = vec![user, 0, system, idle, 0, 0, 0, 0, 0, 0];
        }
        rows.push(f);
    }
    let fmt = |name: &str, f: &[u64]| {
        let nums: Vec<String> = f.iter().map(|x| x.to_string()).collect();
        format!("{name} {}\n", nums.join(" "))
    };
    let mut sum = vec![0u64; 10];
    for r in &rows {
        for (s, x) in sum.iter_mut().zip(r) {
            *s += x;
        }
    }
    let mut out = fmt("cpu ", &sum);
    for (i, r) in rows.iter().enumerate() {
        out.push_str(&fmt(&format!("cpu{i}"), r));
    }
    for l in host.lines().filter(|l| !l.starts_with("cpu")) {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// /proc/uptime: the container's age, and idle time = age × CPUs − CPU usage.
pub fn uptime(age_secs: f64, cpus: usize, usage_secs: f64) -> String {
    let idle = (age_secs * cpus as f64 - usage_secs).max(0.0);
    format!("{:.2} {idle:.2}\n", age_secs.max(0.0))
}

/// The kernel's load average arithmetic (kernel/sched/loadavg.c), fixed point 11 bits.
pub const FSHIFT: u32 = 11;
pub const FIXED_1: u64 = 1 << FSHIFT;
pub const EXP: [u64; 3] = [1884, 2014, 2037];
/// Sampling interval of `EXP` (LOAD_FREQ), seconds.
pub const LOAD_FREQ_SECS: u64 = 5;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadAvg {
    pub avg: [u64; 3],
}

impl LoadAvg {
    /// One LOAD_FREQ step with `active` runnable (or uninterruptible) tasks.
    pub fn update(&mut self, active: u64) {
        let active = active * FIXED_1;
        for (a, e) in self.avg.iter_mut().zip(EXP) {
            let mut n = *a * e + active * (FIXED_1 - e);
            if active >= *a {
                n += FIXED_1 - 1;
            }
            *a = n / FIXED_1;
        }
    }

    pub fn render(&self, running: usize, total: usize, last_pid: u64) -> String {
        let f = |x: u64| {
            format!(
                "{}.{:02}",
                x >> FSHIFT,
                ((x & (FIXED_1 - 1)) * 100) >> FSHIFT
            )
        };
        format!(
            "{} {} {} {running}/{total} {last_pid}\n",
            f(self.avg[0]),
            f(self.avg[1]),
            f(self.avg[2])
        )
    }
}

/// /proc/swaps from the cgroup's swap (kB).
pub fn swaps(total_kb: u64, used_kb: u64) -> String {
    let mut s = String::from("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
    if total_kb > 0 {
        s.push_str(&format!(
            "none\t\t\t\t\tvirtual\t\t{total_kb}\t\t{}\t\t0\n",
            used_kb.min(total_kb)
        ));
    }
    s
}

/// I/O of one device in a cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Io {
    pub reads: u64,
    pub reads_merged: u64,
    pub read_bytes: u64,
    pub read_ms: u64,
    pub writes: u64,
    pub writes_merged: u64,
    pub write_bytes: u64,
    pub write_ms: u64,
    pub wait_ms: u64,
}

pub type IoMap = HashMap<(u32, u32), Io>;

fn dev(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Parses v2 `io.stat` (`8:0 rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..`).
pub fn parse_io_stat(text: &str) -> IoMap {
    let mut m = IoMap::new();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some(d) = f.next().and_then(dev) else {
            continue;
        };
        let io = m.entry(d).or_default();
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let v: u64 = v.parse().unwrap_or(0);
            match k {
                "rbytes" => io.read_bytes = v,
                "wbytes" => io.write_bytes = v,
                "rios" => io.reads = v,
                "wios" => io.writes = v,
                _ => {}
            }
        }
    }
    m
}

/// Adds one v1 blkio file (`8:0 Read N` lines) to `m` through `set(io, read?, value)`.
pub fn add_blkio(m: &mut IoMap, text: &str, set: fn(&mut Io, bool, u64)) {
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [d, op, v] = f[..] else { continue };
        let (Some(d), Ok(v)) = (dev(d), v.parse::<u64>()) else {
            continue;
        };
        match op {
            "Read" => set(m.entry(d).or_default(), true, v),
            "Write" => set(m.entry(d).or_default(), false, v),
            _ => {}
        }
    }
}

/// /proc/diskstats: the host's devices the cgroup did I/O on, with the cgroup's counts.
pub fn diskstats(host: &str, io: &IoMap) -> String {
    let mut out = String::new();
    for l in host.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let (Ok(ma), Ok(mi)) = (f[0].parse::<u32>(), f[1].parse::<u32>()) else {
            continue;
        };
        let Some(d) = io.get(&(ma, mi)).filter(|d| d.reads + d.writes > 0) else {
            continue;
        };
        out.push_str(&format!(
            "{ma:>4} {mi:>7} {} {} {} {} {} {} {} {} {} 0 {} {}\n",
            f[2],
            d.reads,
            d.reads_merged,
            d.read_bytes / 512,
            d.read_ms,
            d.writes,
            d.writes_merged,
            d.write_bytes / 512,
            d.write_ms,
            d.read_ms + d.write_ms,
            d.wait_ms
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_count_is_cpuset_capped_by_quota() {
        assert_eq!(parse_cpulist("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        let set = parse_cpulist("2-5");
        assert_eq!(visible_cpus(&set, None), vec![2, 3, 4, 5]);
        assert_eq!(visible_cpus(&set, Some((100_000, 100_000))), vec![2]);
        assert_eq!(visible_cpus(&set, Some((150_000, 100_000))), vec![2, 3]);
        assert_eq!(
            visible_cpus(&set, Some((1_000, 100_000))),
            vec![2],
            "at least one"
        );
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("50000 100000\n"), Some((50_000, 100_000)));
        assert_eq!(cpu_online(1), "0\n");
        assert_eq!(cpu_online(3), "0-2\n");
    }

    #[test]
    fn cpuinfo_keeps_the_visible_blocks_renumbered() {
        let host = "processor\t: 0\nmodel name\t: A\n\nprocessor\t: 1\nmodel name\t: B\n\n\
                    processor\t: 2\nmodel name\t: C\n\n";
        assert_eq!(
            cpuinfo(host, &[1, 2]),
            "processor\t: 0\nmodel name\t: B\n\nprocessor\t: 1\nmodel name\t: C\n\n"
        );
        assert_eq!(cpuinfo("Hardware: x\n", &[0]), "Hardware: x\n");
    }

    #[test]
    fn stat_times_come_from_the_cgroup() {
        let host = "cpu  30 0 30 300 0 0 0 0 0 0\ncpu0 10 0 10 100 0 0 0 0 0 0\n\
                    cpu1 20 0 20 200 0 0 0 0 0 0\nintr 5\nctxt 9\nbtime 1\n";
        // 1 s user and 0.5 s system at USER_HZ 100 on the one visible CPU (host cpu1).
        let t = stat(host, &[1], Some(&[(1_000_000_000, 500_000_000)]), 100);
        assert_eq!(
            t,
            "cpu  100 0 50 90 0 0 0 0 0 0\ncpu0 100 0 50 90 0 0 0 0 0 0\nintr 5\nctxt 9\nbtime 1\n"
        );
        let t = stat(host, &[0, 1], None, 100);
        assert!(
            t.starts_with("cpu  30 0 30 300 0 0 0 0 0 0\ncpu0 10"),
            "{t}"
        );
    }

    #[test]
    fn loadavg_decays_like_the_kernel() {
        let mut l = LoadAvg::default();
        assert_eq!(l.render(0, 1, 7), "0.00 0.00 0.00 0/1 7\n");
        // One task running for a minute (12 samples): 1 - e^-1 ≈ 0.63 for the 1-minute average.
        for _ in 0..12 {
            l.update(1);
        }
        assert!(
            l.render(1, 1, 7).starts_with("0.63 0.1"),
            "{}",
            l.render(1, 1, 7)
        );
        for _ in 0..1000 {
            l.update(2);
        }
        assert!(
            l.render(2, 2, 7).starts_with("2.00 2.00 2.00"),
            "{}",
            l.render(2, 2, 7)
        );
    }

    #[test]
    fn uptime_and_swaps() {
        assert_eq!(uptime(10.0, 2, 5.0), "10.00 15.00\n");
        assert_eq!(uptime(1.0, 1, 5.0), "1.00 0.00\n");
        assert_eq!(swaps(0, 0).lines().count(), 1);
        assert!(swaps(1024, 10).contains("\t1024\t\t10\t"));
    }
}
