//! `strata run`: cgroup limits (--memory, --pids, --cpus). This machine is cgroup v1
//! hybrid, so these exercise the v1 backend; rootless runs get a delegated (chowned)
//! subtree, as root would prepare it, and without one they must warn.

mod support;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use support::*;

const HOG: &str = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived ${#x}";

/// Root: nothing; rootless: a delegated subtree for `ctls` that strata starts in.
fn delegate(mode: Mode, ctls: &[&str], cmd: &mut Command) -> Option<Delegation> {
    (mode == Mode::Rootless).then(|| {
        let d = Delegation::new(ctls);
        d.enter(cmd);
        d
    })
}

fn rootfs_args(env: &Env, extra: &[&str], script: &str) -> Vec<String> {
    let mut v = vec![
        "--rootfs".to_string(),
        env.rootfs.to_str().unwrap().to_string(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v.extend(["--".into(), "sh".into(), "-c".into(), script.into()]);
    v
}

fn strata(env: &Env, args: &[String]) -> Command {
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    env.strata(&a)
}

both_modes!(memory_hog_is_killed, |mode| {
    let env = Env::new(mode);
    let mut cmd = strata(&env, &rootfs_args(&env, &["--memory", "32M"], HOG));
    let _d = delegate(mode, &["memory"], &mut cmd);
    let o = run_within(&mut cmd, DEADLINE);
    assert_eq!(
        o.status.code(),
        Some(137),
        "stdout: {} stderr: {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(!text(&o.stdout).contains("survived"));
    assert!(
        text(&o.stderr).is_empty(),
        "no warning expected: {}",
        text(&o.stderr)
    );
});

#[test]
fn rootless_without_delegation_warns() {
    let env = Env::new(Mode::Rootless);
    let o = env.sh(&["--memory", "32M", "--pids", "64"], "echo ran");
    assert_eq!(ok(&o), "ran\n", "the command still runs");
    let err = text(&o.stderr);
    assert!(err.contains("warning: --memory not applied"), "{err}");
    assert!(err.contains("warning: --pids not applied"), "{err}");
    assert!(
        err.contains("Permission denied") && err.contains("delegated"),
        "says why: {err}"
    );
}

both_modes!(pids_limit_stops_forks, |mode| {
    let env = Env::new(mode);
    let script = "for i in $(seq 40); do sleep 30 & done; echo looped";
    let mut cmd = strata(&env, &rootfs_args(&env, &["--pids", "12"], script));
    let _d = delegate(mode, &["pids"], &mut cmd);
    let o = run_within(&mut cmd, DEADLINE);
    let err = text(&o.stderr);
    assert!(
        err.contains("can't fork"),
        "forks beyond --pids must fail: {err}"
    );
    // Without the limit, all 40 sleeps start quietly.
    let o = env.sh(&[], script);
    assert_eq!(ok(&o), "looped\n");
    assert!(!text(&o.stderr).contains("can't fork"));
});

both_modes!(cpu_quota_is_set_and_throttles, |mode| {
    let env = Env::new(mode);
    let script = "echo ready; while :; do :; done";
    let mut cmd = strata(&env, &rootfs_args(&env, &["--cpus", "0.2"], script));
    cmd.stdout(Stdio::piped());
    let d = delegate(mode, &["cpu"], &mut cmd);
    let base: PathBuf = match &d {
        Some(d) => d.dirs[0].clone(),
        None => v1_dir("cpu").expect("cgroup v1 cpu hierarchy"),
    };
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let cg = base.join(format!("strata-{}", child.0.id()));
    let read = |f: &str| std::fs::read_to_string(cg.join(f)).unwrap_or_default();
    assert_eq!(read("cpu.cfs_quota_us").trim(), "20000");
    assert_eq!(read("cpu.cfs_period_us").trim(), "100000");
    assert!(
        !read("cgroup.procs").trim().is_empty(),
        "the container is in its cgroup"
    );
    // The busy loop is throttled by the kernel (counted in cpu.stat).
    wait_for("cpu.stat nr_throttled > 0", DEADLINE, || {
        read("cpu.stat")
            .lines()
            .any(|l| l.starts_with("nr_throttled ") && l != "nr_throttled 0")
    });
    // SAFETY: plain kill of our child; PID 1 ignores TERM, so end it with KILL.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGKILL) };
    let _ = child.0.wait();
    wait_for("cgroup removed after SIGKILL", DEADLINE, || !cg.exists());
});
