//! `strata run` leaves nothing behind: no cgroup, mount, state directory or process,
//! after a normal exit, after a failure, and after strata itself is SIGKILLed.

mod support;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use support::*;

const CTLS: [&str; 3] = ["memory", "cpu", "pids"];
const LIMITS: [&str; 6] = ["--memory", "64M", "--cpus", "1", "--pids", "64"];

/// The cgroup bases strata will create in, and (rootless) the delegation that backs them.
fn bases(mode: Mode, cmd: &mut Command) -> (Vec<PathBuf>, Option<Delegation>) {
    match mode {
        Mode::Root => (
            CTLS.iter().map(|c| v1_dir(c).expect("cgroup v1")).collect(),
            None,
        ),
        Mode::Rootless | Mode::RootlessSingleId => {
            assert_eq!(mode, Mode::Rootless, "delegations are made for {CI_USER}");
            let d = Delegation::new(&CTLS);
            d.enter(cmd);
            (d.dirs.clone(), Some(d))
        }
    }
}

fn args(env: &Env, extra: &[&str], cmd: &[&str]) -> Vec<String> {
    let mut v = vec![
        "--rootfs".to_string(),
        env.rootfs.to_str().unwrap().to_string(),
    ];
    v.extend(LIMITS.iter().map(|s| s.to_string()));
    v.extend(extra.iter().map(|s| s.to_string()));
    v.push("--".into());
    v.extend(cmd.iter().map(|s| s.to_string()));
    v
}

fn command(env: &Env, a: &[String]) -> Command {
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    env.strata(&a)
}

fn check_case(mode: Mode, extra: &[&str], cmd: &[&str], expect_code: i32) {
    let env = Env::new(mode);
    let mut c = command(&env, &args(&env, extra, cmd));
    let (bases, _d) = bases(mode, &mut c);
    let mut child = KillOnDrop({
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        c.spawn().unwrap()
    });
    let pid = child.0.id();
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(expect_code), "{extra:?} {cmd:?}");
    // Synchronous: strata removes everything before it exits.
    assert_eq!(strata_cgroups(pid, &bases), Vec::<PathBuf>::new());
    env.assert_clean();
}

both_modes!(no_leftovers_after_normal_exit, |mode| check_case(
    mode,
    &["--init"],
    &["sh", "-c", "exit 3"],
    3
));
both_modes!(no_leftovers_after_command_not_found, |mode| check_case(
    mode,
    &[],
    &["not-there"],
    127
));
both_modes!(no_leftovers_after_setup_failure, |mode| check_case(
    mode,
    &["--workdir", "/bin/busybox/sub"],
    &["true"],
    125
));

both_modes!(no_leftovers_after_sigkill, |mode| {
    let env = Env::new(mode);
    let marker = format!("strata-marker-{}-{}", std::process::id(), unique());
    let script = format!("echo ready; sleep 1000; : {marker}");
    let mut c = command(&env, &args(&env, &[], &["sh", "-c", &script]));
    let (bases, _d) = bases(mode, &mut c);
    c.stdout(Stdio::piped());
    let mut child = KillOnDrop(c.spawn().unwrap());
    let pid = child.0.id();
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    assert_eq!(
        strata_cgroups(pid, &bases).len(),
        3,
        "cgroups exist while running"
    );
    assert!(!processes_with(&marker).is_empty());
    // SAFETY: plain kill of our child.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let _ = child.0.wait();
    wait_for("container processes gone", DEADLINE, || {
        processes_with(&marker).is_empty()
    });
    wait_for("cgroups removed by the guardian", DEADLINE, || {
        strata_cgroups(pid, &bases).is_empty()
    });
    wait_for("no guardian or daemon left", DEADLINE, || {
        processes_with(env.rootfs.to_str().unwrap()).is_empty()
    });
    env.assert_clean();
});
