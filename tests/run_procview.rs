//! `strata run`'s /proc view (issue 14): with limits, the container's /proc/meminfo,
//! cpuinfo, stat, uptime, loadavg, swaps, diskstats and /sys/devices/system/cpu/online
//! come from its cgroups, and so does sysinfo(2). This machine runs the cgroup v1 controllers, so these exercise
//! the v1 sources (the v2 ones are unit tested on a fake tree); rootless runs get a
//! delegated (chowned) subtree, as in run_limits.rs.

mod support;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::*;

const LIMITS: [&str; 4] = ["--memory", "256M", "--cpus", "1"];
/// The hierarchies the view reads; strata makes a group in each.
const CTLS: [&str; 4] = ["memory", "cpu", "cpuacct", "blkio"];

fn delegate(mode: Mode, cmd: &mut Command) -> Option<Delegation> {
    (mode == Mode::Rootless).then(|| {
        let d = Delegation::new(&CTLS);
        d.enter(cmd);
        d
    })
}

/// Where strata makes its cgroups for `mode` (the delegated dirs rootless).
fn bases(d: &Option<Delegation>) -> Vec<PathBuf> {
    match d {
        Some(d) => d.dirs.clone(),
        None => CTLS.iter().filter_map(|c| v1_dir(c)).collect(),
    }
}

/// `strata run ROOT_ARGS EXTRA -- sh -c SCRIPT`, in the delegated cgroups rootless.
fn run_sh(env: &Env, root: &[&str], extra: &[&str], script: &str) -> (CmdOut, Vec<PathBuf>) {
    let mut args: Vec<&str> = root.to_vec();
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    let mut cmd = env.strata(&args);
    let d = delegate(env.mode, &mut cmd);
    let o = run_within(&mut cmd, DEADLINE);
    (o, bases(&d))
}

fn field_kb(meminfo: &str, name: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in {meminfo}"))
}

fn host_cpus() -> usize {
    std::thread::available_parallelism().unwrap().get()
}

const CHECK: &str = "head -1 /proc/meminfo; nproc; cat /sys/devices/system/cpu/online; \
    grep -c ^processor /proc/cpuinfo; grep -c '^cpu[0-9]' /proc/stat; cat /proc/uptime; \
    cat /proc/loadavg; head -1 /proc/swaps";

/// Checks CHECK's output for a 256 MiB, 1 CPU view.
fn assert_view(out: &str) {
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "MemTotal:         262144 kB", "{out}");
    assert_eq!(l[1], "1", "nproc: {out}");
    assert_eq!(l[2], "0", "cpu/online: {out}");
    assert_eq!(l[3], "1", "cpuinfo processors: {out}");
    assert_eq!(l[4], "1", "/proc/stat cpuN lines: {out}");
    let up: f64 = l[5].split(' ').next().unwrap().parse().unwrap();
    assert!((0.0..10.0).contains(&up), "uptime starts near 0: {out}");
    assert_eq!(l[6].split(' ').count(), 5, "loadavg: {out}");
    assert!(l[7].starts_with("Filename"), "swaps: {out}");
}

fn assert_no_cgroups_left(bases: &[PathBuf]) {
    for b in bases {
        // Rootless, the delegated directory is removed at the end of the run: gone
        // means empty, so nothing of strata's was left in it.
        let Ok(dir) = std::fs::read_dir(b) else {
            continue;
        };
        let left: Vec<_> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("strata-") && !n.starts_with("strata-test-"))
            .collect();
        // Other suites may run strata at the same time: only ours (none alive) count.
        let ours: Vec<_> = left
            .iter()
            .filter(|n| {
                n.trim_start_matches("strata-")
                    .parse::<u32>()
                    .is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists())
            })
            .collect();
        assert!(ours.is_empty(), "cgroups left in {}: {ours:?}", b.display());
    }
}

both_modes!(rootfs_view_shows_the_limits, |mode| {
    let env = Env::new(mode);
    let root = env.rootfs.to_str().unwrap().to_string();
    let (o, bases) = run_sh(&env, &["--rootfs", &root], &LIMITS, CHECK);
    assert_view(&ok(&o));
    assert!(
        text(&o.stderr).is_empty(),
        "no warning: {}",
        text(&o.stderr)
    );
    env.assert_clean();
    assert_no_cgroups_left(&bases);
});

both_modes!(layers_view_shows_the_limits, |mode| {
    let env = Env::new(mode);
    let root = env.rootfs.to_str().unwrap().to_string();
    let (o, bases) = run_sh(&env, &["--layers", &root], &LIMITS, CHECK);
    assert_view(&ok(&o));
    env.assert_clean();
    assert_no_cgroups_left(&bases);
});

both_modes!(without_limits_or_with_no_proc_view_the_host_shows, |mode| {
    let env = Env::new(mode);
    let host = std::fs::read_to_string("/proc/meminfo").unwrap();
    let host_total = field_kb(&host, "MemTotal");
    let script = "head -1 /proc/meminfo; nproc; grep -c ^processor /proc/cpuinfo";
    let want = format!(
        "MemTotal:       {host_total:>8} kB\n{n}\n{n}\n",
        n = host_cpus()
    );
    let o = env.sh(&[], script);
    assert_eq!(ok(&o), want, "no limits: the host's values");
    let root = env.rootfs.to_str().unwrap().to_string();
    let mut extra = LIMITS.to_vec();
    extra.push("--no-proc-view");
    let (o, _) = run_sh(&env, &["--rootfs", &root], &extra, script);
    assert_eq!(ok(&o), want, "--no-proc-view: the host's values");
});

// After the container allocates memory, its /proc/meminfo agrees with its memory
// cgroup's own counters, read from the host at the same moment; a reader outside
// the container (through /proc/PID/root) sees the host's file.
both_modes!(meminfo_follows_the_cgroup_counters, |mode| {
    let env = Env::new(mode);
    let root = env.rootfs.to_str().unwrap().to_string();
    let script = "x=$(head -c 60000000 /dev/zero | tr '\\0' a); \
                  cat /proc/meminfo; echo ready; sleep 60; echo ${#x}";
    let mut args = vec!["--rootfs", root.as_str()];
    args.extend_from_slice(&LIMITS);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    let mut cmd = env.strata(&args);
    cmd.stdout(Stdio::piped());
    let d = delegate(mode, &mut cmd);
    let mem_base = match &d {
        Some(d) => d.dirs[0].clone(),
        None => v1_dir("memory").unwrap(),
    };
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let cg = mem_base.join(format!("strata-{}", child.0.id()));
    let mut meminfo = String::new();
    let mut r = BufReader::new(child.0.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "ended early: {meminfo}"
        );
        if line == "ready\n" {
            break;
        }
        meminfo.push_str(&line);
    }
    let read = |f: &str| std::fs::read_to_string(cg.join(f)).unwrap();
    let usage: u64 = read("memory.usage_in_bytes").trim().parse().unwrap();
    let stat = read("memory.stat");
    let st = |k: &str| -> u64 {
        stat.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(' ')?.parse().ok())
            .unwrap()
    };
    let kb = |n: &str| field_kb(&meminfo, n);
    let close = |a: u64, b: u64, what: &str| {
        let tol = 8 * 1024; // 8 MiB: the shell keeps running between the two reads
        assert!(
            a.abs_diff(b) <= tol,
            "{what}: {a} kB vs cgroup {b} kB\n{meminfo}"
        );
    };
    assert_eq!(kb("MemTotal"), 262144);
    close(
        kb("MemFree"),
        262144 - usage / 1024,
        "MemFree = limit - usage",
    );
    assert!(
        kb("MemTotal") - kb("MemFree") >= 55_000,
        "the 60 MB string counts as used: {meminfo}"
    );
    close(
        kb("AnonPages"),
        st("total_rss") / 1024,
        "AnonPages = total_rss",
    );
    close(
        kb("Active(anon)") + kb("Inactive(anon)"),
        (st("total_active_anon") + st("total_inactive_anon")) / 1024,
        "anon = total_active_anon + total_inactive_anon",
    );
    close(
        kb("Cached"),
        st("total_cache") / 1024,
        "Cached = total_cache",
    );
    assert!(kb("MemAvailable") >= kb("MemFree") && kb("MemAvailable") <= 262144);
    assert_eq!(kb("SwapTotal"), 0, "memsw = memory limit: no swap");
    // A reader outside the container gets the host's file through the same mount.
    let pid1: u32 = read("cgroup.procs")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let outside = std::fs::read_to_string(format!("/proc/{pid1}/root/proc/meminfo"));
    if let Ok(outside) = outside {
        let host = std::fs::read_to_string("/proc/meminfo").unwrap();
        assert_eq!(field_kb(&outside, "MemTotal"), field_kb(&host, "MemTotal"));
    } else {
        // Rootless: the kernel refuses FUSE access from outside the user namespace.
        assert_eq!(mode, Mode::Rootless, "{outside:?}");
    }
    // SAFETY: plain kill of our child; PID 1 ignores TERM, so end it with KILL.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGKILL) };
    let _ = child.0.wait();
    wait_for("cgroup removed after SIGKILL", DEADLINE, || !cg.exists());
});

/// A layer with the host's procps `free` and the libraries it links (ldd).
fn procps_layer(env: &Env) -> Option<PathBuf> {
    let free = Path::new("/usr/bin/free");
    if !free.exists() {
        return None;
    }
    let layer = env.mkdir("procps");
    let ldd = Command::new("ldd").arg(free).output().ok()?;
    let mut files = vec![free.to_path_buf()];
    for l in text(&ldd.stdout).lines() {
        if let Some(p) = l.split_whitespace().find(|w| w.starts_with('/')) {
            files.push(PathBuf::from(p));
        }
    }
    for f in files {
        let real = std::fs::canonicalize(&f).ok()?;
        let dst = layer.join(f.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&real, &dst).unwrap();
    }
    chown_tree(&layer, env.owner.0, env.owner.1);
    Some(layer)
}

both_modes!(procps_free_shows_the_limit, |mode| {
    let env = Env::new(mode);
    let Some(layer) = procps_layer(&env) else {
        eprintln!("skipped: no /usr/bin/free (procps) on this host");
        return;
    };
    let layers = format!("{}:{}", layer.display(), env.rootfs.display());
    let (o, _) = run_sh(&env, &["--layers", &layers], &LIMITS, "/usr/bin/free -m");
    let out = ok(&o);
    let mem: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .unwrap_or_else(|| panic!("{out}"))
        .split_whitespace()
        .collect();
    assert_eq!(mem[1], "256", "free -m total: {out}");
    // Without the view, procps free shows the host's total.
    let mut extra = LIMITS.to_vec();
    extra.push("--no-proc-view");
    let (o, _) = run_sh(&env, &["--layers", &layers], &extra, "/usr/bin/free -m");
    assert!(!ok(&o).contains("Mem:            256"), "{}", ok(&o));
});

fn free_total(out: &str) -> u64 {
    out.lines()
        .find(|l| l.starts_with("Mem:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("{out}"))
}

// busybox `free` takes its total from sysinfo(2), which strata answers for the
// container (seccomp user notification): 256 MiB, also under `--init` and as another
// user; without the view, the host's. `uptime` (sysinfo too) starts near 0.
both_modes!(busybox_free_sees_the_limit_through_sysinfo, |mode| {
    let env = Env::new(mode);
    let root = env.rootfs.to_str().unwrap().to_string();
    for extra in [&[][..], &["--init"], &["--user", "1000"]] {
        let mut args = LIMITS.to_vec();
        args.extend_from_slice(extra);
        let (o, _) = run_sh(&env, &["--rootfs", &root], &args, "free -m; uptime");
        let out = ok(&o);
        assert_eq!(free_total(&out), 256, "{extra:?}: {out}");
        assert!(out.contains(" up 0 min"), "{extra:?}: {out}");
    }
    let mut args = LIMITS.to_vec();
    args.push("--no-proc-view");
    let (o, _) = run_sh(&env, &["--rootfs", &root], &args, "free -m");
    assert!(free_total(&ok(&o)) > 256, "the host's: {}", ok(&o));
});

/// 10,000 reads of /proc/meminfo (one busybox cat, 10,000 opens) through the view and
/// of the real file in the same container: the costs are printed (README.md quotes
/// them). The bound is a guard against a regression (say, a view that recomputes per
/// read, or waits), not the measure: a shared 2-CPU machine makes each FUSE round trip
/// wait for the server thread to be scheduled.
#[test]
fn read_cost_of_meminfo() {
    let env = Env::new(Mode::Root);
    let root = env.rootfs.to_str().unwrap().to_string();
    let script = "f=$(yes /proc/meminfo | head -10000); time -f %e cat $f 2>&1 >/dev/null";
    let time = |extra: &[&str]| -> u64 {
        let (o, _) = run_sh(&env, &["--rootfs", &root], extra, script);
        let secs: f64 = ok(&o).trim().parse().unwrap();
        (secs * 1e6) as u64
    };
    let mut no_view = LIMITS.to_vec();
    no_view.push("--no-proc-view");
    // Best of three of each, against the noise of a shared machine.
    let view = (0..3).map(|_| time(&LIMITS)).min().unwrap();
    let host = (0..3).map(|_| time(&no_view)).min().unwrap();
    eprintln!(
        "10,000 reads of /proc/meminfo: view {} ms ({} us each), host file {} ms ({} us each), ratio {:.1}",
        view / 1000,
        view / 10_000,
        host / 1000,
        host / 10_000,
        view as f64 / host as f64
    );
    assert!(view < host * 60, "view {view} us vs host {host} us");
}
