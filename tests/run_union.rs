//! `strata run` on strata's own FUSE union (`--layers`, `--rootfs` + `--upper`).

mod support;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use support::*;

/// Two layers: `top` (holding /etc/top) over the busybox rootfs.
fn layers(env: &Env) -> String {
    let top = env.mkdir("top");
    std::fs::create_dir(top.join("etc")).unwrap();
    std::fs::write(top.join("etc/top"), "from-top\n").unwrap();
    if env.mode == Mode::Rootless {
        chown_tree(&top, env.owner.0, env.owner.1);
    }
    format!("{}:{}", top.display(), env.rootfs.display())
}

fn sh(env: &Env, extra: &[&str], script: &str) -> CmdOut {
    let mut args: Vec<&str> = extra.to_vec();
    args.extend_from_slice(&["--", "sh", "-c", script]);
    run_within(&mut env.strata(&args), DEADLINE)
}

both_modes!(layers_merge_with_throwaway_upper, |mode| {
    let env = Env::new(mode);
    let l = layers(&env);
    let out = ok(&sh(
        &env,
        &["--layers", &l],
        "cat /etc/top; head -1 /etc/passwd; echo new > /etc/new; cat /etc/new; mount | head -1",
    ));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("from-top"));
    assert_eq!(lines.next(), Some("root:x:0:0:root:/root:/bin/sh"));
    assert_eq!(lines.next(), Some("new"));
    let root_line = lines.next().unwrap();
    assert!(
        root_line.contains(" on / type fuse"),
        "the union is /: {root_line}"
    );
    // The write went to a throwaway upper: gone next time, lowers untouched.
    let o = sh(&env, &["--layers", &l], "cat /etc/new");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(!env.rootfs.join("etc/new").exists());
    env.assert_clean();
});

both_modes!(upper_persists, |mode| {
    let env = Env::new(mode);
    let l = layers(&env);
    let upper = env.dir.path().join("upper");
    let up = upper.to_str().unwrap();
    ok(&sh(
        &env,
        &["--layers", &l, "--upper", up],
        "echo kept > /etc/kept; rm /etc/top",
    ));
    assert_eq!(
        std::fs::read_to_string(upper.join("etc/kept")).unwrap(),
        "kept\n"
    );
    let out = ok(&sh(
        &env,
        &["--layers", &l, "--upper", up],
        "cat /etc/kept; test -e /etc/top || echo top-deleted",
    ));
    assert_eq!(out, "kept\ntop-deleted\n");
    // --rootfs with --upper is the same union with one lower.
    let root = env.rootfs.to_str().unwrap().to_string();
    let up2 = env.dir.path().join("upper2");
    let out = ok(&sh(
        &env,
        &["--rootfs", &root, "--upper", up2.to_str().unwrap()],
        "echo x > /etc/y; mount | head -1",
    ));
    assert!(out.contains(" on / type fuse"), "{out}");
    assert!(up2.join("etc/y").exists() && !env.rootfs.join("etc/y").exists());
    env.assert_clean();
});

both_modes!(read_only_merge, |mode| {
    let env = Env::new(mode);
    let l = layers(&env);
    let o = sh(
        &env,
        &["--layers", &l, "--read-only"],
        "cat /etc/top; echo x > /etc/z && echo wrote",
    );
    assert_eq!(text(&o.stdout), "from-top\n");
    assert!(
        text(&o.stderr).contains("Read-only file system"),
        "{}",
        text(&o.stderr)
    );
});

both_modes!(union_with_chroot_fallback, |mode| {
    let env = Env::new(mode);
    let l = layers(&env);
    let mut cmd = env.strata(&["--layers", &l, "--", "sh", "-c", "cat /etc/top; echo $$"]);
    cmd.env("STRATA_NO_PIVOT", "1");
    assert_eq!(ok(&run_within(&mut cmd, DEADLINE)), "from-top\n1\n");
    env.assert_clean();
});

/// The FUSE daemon stays outside the container's memory cgroup: an OOM kill inside
/// cannot take the root filesystem down.
#[test]
fn daemon_outside_memory_cgroup_survives_oom() {
    let env = Env::new(Mode::Root);
    let l = layers(&env);
    let script = "(x=$(head -c 200000000 /dev/zero | tr '\\0' a)); echo hog=$?; cat /etc/top; echo ready; read x || true";
    let mut cmd = env.strata(&["--layers", &l, "--memory", "32M", "--", "sh", "-c", script]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut got = String::new();
    for _ in 0..3 {
        out.read_line(&mut got).unwrap();
    }
    assert_eq!(
        got, "hog=137\nfrom-top\nready\n",
        "the hog is killed, the union still serves"
    );
    let cg = format!("strata-{}", child.0.id());
    let daemons: Vec<u32> = processes_with(&format!("lowerdir={}", l.split(':').next().unwrap()));
    assert!(!daemons.is_empty(), "the strata mount daemon runs");
    for d in daemons {
        let daemon_cg = std::fs::read_to_string(format!("/proc/{d}/cgroup")).unwrap();
        assert!(
            !daemon_cg.contains(&cg),
            "daemon inside the container cgroup: {daemon_cg}"
        );
    }
    drop(child.0.stdin.take());
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
    wait_for("daemon gone", DEADLINE, || {
        processes_with(&format!("lowerdir={}", l.split(':').next().unwrap())).is_empty()
    });
    env.assert_clean();
}

both_modes!(no_leftovers_after_sigkill_with_union, |mode| {
    let env = Env::new(mode);
    let l = layers(&env);
    let mut cmd = env.strata(&["--layers", &l, "--", "sh", "-c", "echo ready; sleep 1000"]);
    cmd.stdout(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let top = l.split(':').next().unwrap().to_string();
    assert!(
        !processes_with(&format!("lowerdir={top}")).is_empty(),
        "daemon running"
    );
    assert_eq!(
        std::fs::read_dir(&env.tmp).unwrap().count(),
        1,
        "state dir exists while running"
    );
    // SAFETY: plain kill of our child.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGKILL) };
    let _ = child.0.wait();
    wait_for("daemon and container gone", DEADLINE, || {
        processes_with(&top).is_empty()
    });
    wait_for("state dir removed", DEADLINE, || {
        std::fs::read_dir(&env.tmp).unwrap().count() == 0
    });
    env.assert_clean();
});

both_modes!(no_leftovers_after_failure_with_union, |mode| {
    let env = Env::new(mode);
    let l = layers(&env);
    let top = l.split(':').next().unwrap().to_string();
    let o = run_within(
        &mut env.strata(&["--layers", &l, "--", "no-such-tool"]),
        DEADLINE,
    );
    assert_eq!(o.status.code(), Some(127), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr),
        "strata run: no-such-tool: command not found\n"
    );
    // Synchronous clean-up: the daemon is gone and the state directory removed on exit.
    assert!(processes_with(&format!("lowerdir={top}")).is_empty());
    env.assert_clean();
});
