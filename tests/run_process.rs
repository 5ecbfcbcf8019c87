//! `strata run`: exit status, signal forwarding, `--init` (PID 1, reaping), bad input.

mod support;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::*;

both_modes!(exit_status_passes_through, |mode| {
    let env = Env::new(mode);
    assert_eq!(env.sh(&[], "exit 7").status.code(), Some(7));
    assert_eq!(env.sh(&[], "true").status.code(), Some(0));
    // Killed by a signal: 128 + N (the command is not PID 1 with --init, so it can die of it).
    assert_eq!(
        env.sh(&["--init"], "kill -KILL $$").status.code(),
        Some(137)
    );
    assert_eq!(
        env.sh(&["--init"], "kill -TERM $$").status.code(),
        Some(143)
    );
});

/// Starts strata with `args`, waits for the container to print "ready", sends `sig` to
/// strata, and returns (exit code, the rest of stdout).
fn signal_roundtrip(env: &Env, args: &[&str], sig: libc::c_int) -> (Option<i32>, String) {
    let mut cmd = env.strata(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n", "container did not start");
    // With setpriv in front (rootless), strata is setpriv's exec'd image: same pid.
    // SAFETY: plain kill of our child.
    unsafe { libc::kill(child.0.id() as i32, sig) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.0.wait().unwrap();
    (status.code(), rest)
}

both_modes!(signals_forwarded_to_pid1, |mode| {
    let env = Env::new(mode);
    let root = env.rootfs.to_str().unwrap().to_string();
    for (sig, name, code) in [
        (libc::SIGTERM, "TERM", 40),
        (libc::SIGINT, "INT", 41),
        (libc::SIGHUP, "HUP", 42),
    ] {
        let script = format!(
            "trap 'echo got-{name}; exit {code}' {name}; echo ready; while :; do sleep 0.05; done"
        );
        let (c, rest) =
            signal_roundtrip(&env, &["--rootfs", &root, "--", "sh", "-c", &script], sig);
        assert_eq!(c, Some(code), "after SIG{name}: {rest}");
        assert_eq!(rest, format!("got-{name}\n"));
    }
    // SIGWINCH is forwarded too (its default action is to ignore it, so trap it).
    let script = "trap 'echo winch; exit 3' WINCH; echo ready; while :; do sleep 0.05; done";
    let (c, rest) = signal_roundtrip(
        &env,
        &["--rootfs", &root, "--", "sh", "-c", script],
        libc::SIGWINCH,
    );
    assert_eq!((c, rest.as_str()), (Some(3), "winch\n"));
});

both_modes!(init_forwards_signals, |mode| {
    let env = Env::new(mode);
    let root = env.rootfs.to_str().unwrap().to_string();
    // sleep has no handler: as PID 1 it would ignore SIGTERM; under --init it dies of it.
    let (c, _) = signal_roundtrip(
        &env,
        &[
            "--rootfs",
            &root,
            "--init",
            "--",
            "sh",
            "-c",
            "echo ready; exec sleep 1000",
        ],
        libc::SIGTERM,
    );
    assert_eq!(c, Some(143));
    let (c, _) = signal_roundtrip(
        &env,
        &[
            "--rootfs",
            &root,
            "--init",
            "--",
            "sh",
            "-c",
            "echo ready; exec sleep 1000",
        ],
        libc::SIGINT,
    );
    assert_eq!(c, Some(130));
});

both_modes!(init_is_pid1_and_reaps_zombies, |mode| {
    let env = Env::new(mode);
    // Each subshell exits at once, orphaning its sleep; the orphans are reparented to
    // PID 1 and stay zombies unless PID 1 reaps them. Wait until every orphan has exited
    // (gone or zombie), then give PID 1 a moment to reap; what is left is printed.
    let out = ok(&env.sh(
        &["--init"],
        "echo cmd-pid=$$; for i in 1 2 3 4 5; do (sleep 0.05 &); done; \
         while ps -o stat,comm | grep -v '^Z' | grep -q 'sleep$'; do usleep 10000; done; \
         i=0; while [ $i -lt 300 ] && ps -o stat | grep -q '^Z'; do usleep 10000; i=$((i+1)); done; \
         ps -o pid,stat,comm | grep -v ' ps$'; cat /proc/1/cmdline | tr '\\0' ' '; echo",
    ));
    assert!(
        out.starts_with("cmd-pid=2\n"),
        "the command is PID 1's child: {out}"
    );
    let table: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .collect();
    assert!(
        !table.iter().any(|l| l
            .split_whitespace()
            .nth(1)
            .is_some_and(|s| s.starts_with('Z'))),
        "zombies: {table:?}"
    );
    assert!(
        table.iter().any(|l| l.trim_start().starts_with("1 ")),
        "{table:?}"
    );
    assert!(
        out.lines().last().unwrap().contains("strata"),
        "PID 1 is strata's init: {out}"
    );
});

both_modes!(bad_input_errors, |mode| {
    let env = Env::new(mode);
    let root = env.rootfs.to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec![
                "--rootfs".into(),
                root.clone(),
                "--".into(),
                "no-such-cmd".into(),
            ],
            127,
            "no-such-cmd: command not found",
        ),
        (
            vec![
                "--rootfs".into(),
                format!("{root}/missing"),
                "--".into(),
                "sh".into(),
            ],
            125,
            "rootfs",
        ),
        (
            vec![
                "--layers".into(),
                format!("{root}:{root}/missing"),
                "--".into(),
                "sh".into(),
            ],
            125,
            "layer",
        ),
        (
            vec![
                "--rootfs".into(),
                root.clone(),
                "--memory".into(),
                "lots".into(),
                "--".into(),
                "sh".into(),
            ],
            125,
            "--memory lots",
        ),
        (
            vec![
                "--rootfs".into(),
                root.clone(),
                "--cpus".into(),
                "-1".into(),
                "--".into(),
                "sh".into(),
            ],
            125,
            "--cpus -1",
        ),
        (
            vec![
                "--rootfs".into(),
                root.clone(),
                "--bind".into(),
                "/no/such/src:/x".into(),
                "--".into(),
                "sh".into(),
            ],
            125,
            "bind source /no/such/src",
        ),
        (
            vec![
                "--store".into(),
                env.dir
                    .path()
                    .join("no-store")
                    .to_string_lossy()
                    .into_owned(),
                "busybox".into(),
                "--".into(),
                "sh".into(),
            ],
            125,
            "image busybox: not in the store",
        ),
    ];
    for (args, code, needle) in cases {
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let o = run_within(&mut env.strata(&a), DEADLINE);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{a:?}: {err}");
        assert!(err.contains(needle), "{a:?}: {err}");
        let store = env.dir.path().join("no-store");
        assert!(!store.exists(), "a run of a missing image made a store");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one line expected: {err}"
        );
        env.assert_clean();
    }
});

both_modes!(stdin_passes_through, |mode| {
    let env = Env::new(mode);
    let root = env.rootfs.to_str().unwrap().to_string();
    let mut cmd = env.strata(&["--rootfs", &root, "-i", "--", "sh"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    std::io::Write::write_all(
        child.0.stdin.as_mut().unwrap(),
        b"echo from-stdin $((6*7))\nexit 5\n",
    )
    .unwrap();
    drop(child.0.stdin.take());
    let mut out = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert_eq!(out, "from-stdin 42\n");
    assert_eq!(child.0.wait().unwrap().code(), Some(5));
});

both_modes!(terminal_passes_through, |mode| {
    let env = Env::new(mode);
    let root = env.rootfs.to_str().unwrap().to_string();
    // script(1) gives strata a pseudo-terminal; an interactive shell inside reads from it.
    let inner = format!("{} run --rootfs {root} -- sh -i", strata_bin());
    let mut cmd = match mode.user() {
        None => {
            let mut c = Command::new("script");
            c.args(["-qec", &inner, "/dev/null"]);
            c
        }
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid",
                u,
                "--regid",
                u,
                "--init-groups",
                "script",
                "-qec",
                &inner,
                "/dev/null",
            ]);
            c
        }
    };
    cmd.env("TMPDIR", &env.tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    std::io::Write::write_all(
        child.0.stdin.as_mut().unwrap(),
        b"test -t 0 && test -t 1 && echo TTY-$((40+2)); echo PID-$$; exit 9\n",
    )
    .unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        out.contains("TTY-42"),
        "stdin/stdout are the terminal: {out}"
    );
    assert!(out.contains("PID-1\r\n"), "{out}");
    assert_eq!(child.0.wait().unwrap().code(), Some(9), "{out}");
});
