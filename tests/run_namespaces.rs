//! `strata run`: namespaces, the root switch, and the /proc, /dev, /sys contents.

mod support;
use support::*;

fn ns_ids(prefix: &str) -> Vec<(String, String)> {
    ["mnt", "pid", "uts", "ipc", "net", "cgroup"]
        .iter()
        .map(|n| {
            (
                n.to_string(),
                std::fs::read_link(format!("{prefix}/{n}"))
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            )
        })
        .collect()
}

both_modes!(namespaces, |mode| {
    let env = Env::new(mode);
    let out = ok(&env.sh(
        &["--hostname", "box-7"],
        "echo pid=$$; hostname; id -u; ip -o link; for n in mnt pid uts ipc net cgroup; do echo ns $n $(readlink /proc/self/ns/$n); done; ps -o pid,comm; true",
    ));
    assert!(out.contains("pid=1\n"), "{out}");
    assert!(out.contains("\nbox-7\n"), "{out}");
    assert!(
        out.contains("\n0\n"),
        "id -u should be 0 (root in the container): {out}"
    );
    let links: Vec<&str> = out.lines().filter(|l| l.contains("link/")).collect();
    assert_eq!(links.len(), 1, "only lo expected: {links:?}");
    assert!(
        links[0].contains("lo:") && links[0].contains(",UP"),
        "lo must be up: {links:?}"
    );
    for (name, host) in ns_ids("/proc/self/ns") {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("ns {name} ")))
            .unwrap();
        assert!(
            !line.ends_with(&host),
            "{name} namespace is shared with the host: {line}"
        );
    }
    // ps sees only the container: PID 1 (sh) and ps itself.
    let procs: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.contains("PID"))
        .skip(1)
        .collect();
    assert_eq!(procs.len(), 2, "{procs:?}");
    env.assert_clean();
});

both_modes!(mount_table_is_separate, |mode| {
    let env = Env::new(mode);
    std::fs::write(env.rootfs.join("marker"), "inside").unwrap();
    let out = ok(&env.sh(&[], "cat /marker; echo; cat /proc/self/mountinfo"));
    assert!(out.starts_with("inside\n"), "{out}");
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount_points: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split(' ').nth(4))
        .collect();
    let d = env.dir.path().to_str().unwrap();
    assert!(
        !mount_points.iter().any(|m| m.contains(d)),
        "host paths visible:\n{out}"
    );
    for l in host
        .lines()
        .filter(|l| l.contains(" /work") || l.contains(" /boot"))
    {
        let mp = l.split(' ').nth(4).unwrap();
        assert!(
            !mount_points.contains(&mp),
            "host mount {mp} visible inside:\n{out}"
        );
    }
    for mp in ["/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/sys", "/tmp"] {
        assert!(mount_points.contains(&mp), "missing mount {mp} in:\n{out}");
    }
});

fn root_switch(mode: Mode, force_chroot: bool) {
    let env = Env::new(mode);
    std::fs::write(env.rootfs.join("marker"), "rootfs").unwrap();
    let root = env.rootfs.to_str().unwrap().to_string();
    let mut cmd = env.strata(&[
        "--rootfs",
        &root,
        "--",
        "sh",
        "-c",
        "cat /marker; echo; echo pid=$$; ls /proc/self/ns >/dev/null && echo proc-ok",
    ]);
    cmd.env("RUST_LOG", "strata=debug");
    if force_chroot {
        cmd.env("STRATA_NO_PIVOT", "1");
    }
    let o = run_within(&mut cmd, DEADLINE);
    let out = ok(&o);
    assert_eq!(out, "rootfs\npid=1\nproc-ok\n");
    let err = text(&o.stderr);
    if force_chroot {
        assert!(err.contains("MS_MOVE + chroot"), "{err}");
        assert!(!err.contains("with pivot_root"), "{err}");
    } else {
        assert!(err.contains("root switched with pivot_root"), "{err}");
    }
    env.assert_clean();
}

both_modes!(pivot_root, |mode| root_switch(mode, false));
both_modes!(chroot_fallback_when_forced, |mode| root_switch(mode, true));

both_modes!(proc_masked_and_readonly, |mode| {
    let env = Env::new(mode);
    // Each masked file that exists on this kernel must read as empty (it is /dev/null).
    let masked: Vec<&str> = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
    ]
    .into_iter()
    .filter(|p| std::path::Path::new(p).exists())
    .collect();
    assert!(
        !masked.is_empty(),
        "no maskable /proc file on this kernel: the test would be vacuous"
    );
    let mut script = String::new();
    for m in &masked {
        script += &format!("echo {m} $(wc -c < {m}); ");
    }
    script += "ls /proc/acpi | wc -l; echo 1 > /proc/sys/kernel/ns_last_pid && echo sys-writable; cat /proc/1/status | grep -c Name";
    let o = env.sh(&[], &script);
    let out = text(&o.stdout);
    for m in &masked {
        assert!(out.contains(&format!("{m} 0\n")), "{m} not masked:\n{out}");
    }
    assert!(
        !out.contains("sys-writable"),
        "/proc/sys must be read-only:\n{out}"
    );
    assert!(
        text(&o.stderr).contains("Read-only file system"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        out.ends_with("0\n1\n"),
        "/proc/acpi must be empty and /proc usable:\n{out}"
    );
});

both_modes!(dev_contents, |mode| {
    let env = Env::new(mode);
    let out = ok(&env.sh(
        &[],
        "ls /dev | tr '\\n' ' '; echo; for l in ptmx fd stdin; do readlink /dev/$l; done; \
         echo hi > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c; \
         echo x > /dev/shm/f && cat /dev/shm/f; test -c /dev/pts/ptmx && echo pts-ok; \
         grep -c ' /sys sysfs ro\\| /sys .* ro,' /proc/self/mountinfo; touch /sys/x 2>/dev/null || echo sys-ro",
    ));
    let first = out.lines().next().unwrap();
    for d in [
        "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
        "urandom", "zero",
    ] {
        assert!(
            first.split(' ').any(|x| x == d),
            "/dev/{d} missing: {first}"
        );
    }
    assert!(
        out.contains("pts/ptmx\n/proc/self/fd\n/proc/self/fd/0\n"),
        "{out}"
    );
    assert!(out.contains("4\n4\nx\npts-ok\n"), "{out}");
    assert!(out.ends_with("sys-ro\n"), "{out}");
});

both_modes!(binds_tmpfs_env_workdir_readonly, |mode| {
    let env = Env::new(mode);
    let data = env.mkdir("data");
    std::fs::write(data.join("f"), "from-host").unwrap();
    let rw = env.mkdir("rw");
    let bind_ro = format!("{}:/data:ro", data.display());
    let bind_rw = format!("{}:/mnt/rw", rw.display());
    let out = ok(&env.sh(
        &["--bind", &bind_ro, "--bind", &bind_rw, "--tmpfs", "/scratch", "--env", "FOO=bar", "--workdir", "/work/dir", "--read-only"],
        "cat /data/f; echo; echo $FOO; pwd; touch /data/x 2>/dev/null || echo data-ro; \
         echo out > /mnt/rw/g; touch /scratch/y && echo scratch-ok; touch /newfile 2>/dev/null || echo root-ro; \
         touch /tmp/t && echo tmp-ok",
    ));
    assert_eq!(
        out,
        "from-host\nbar\n/work/dir\ndata-ro\nscratch-ok\nroot-ro\ntmp-ok\n"
    );
    assert_eq!(std::fs::read_to_string(rw.join("g")).unwrap(), "out\n");
    assert!(!env.rootfs.join("newfile").exists());
    // A read-only root stays unchanged on the host: the mount points and the
    // working directory it lacked were made in a throwaway layer.
    for made in ["data", "mnt", "scratch", "work"] {
        assert!(
            !env.rootfs.join(made).exists(),
            "--read-only created /{made} in the host rootfs"
        );
    }
});

#[test]
fn user_option_as_root() {
    let env = Env::new(Mode::Root);
    let out = ok(&env.sh(
        &["--user", "1000:1001"],
        "id -u; id -g; cat /proc/self/status | grep -E '^(CapBnd|NoNewPrivs)'",
    ));
    let mut l = out.lines();
    assert_eq!(l.next(), Some("1000"));
    assert_eq!(l.next(), Some("1001"));
    let rest: Vec<&str> = l.collect();
    // OCI default bounding set: KILL (5), NET_BIND_SERVICE (10), AUDIT_WRITE (29).
    assert!(
        rest.iter().any(|x| x.ends_with("0000000020000420")),
        "{rest:?}"
    );
    assert!(
        rest.iter()
            .any(|x| x.starts_with("NoNewPrivs:") && x.ends_with('1')),
        "{rest:?}"
    );
}

both_modes!(net_host, |mode| {
    let env = Env::new(mode);
    let out = ok(&env.sh(
        &["--net", "host"],
        "ip -o link | wc -l; readlink /proc/self/ns/net; awk '$5 ~ /^[/]sys/ {print $6}' /proc/self/mountinfo | grep -c '^rw'; touch /sys/x 2>/dev/null || echo sys-ro",
    ));
    let host_links = std::fs::read_dir("/sys/class/net").unwrap().count();
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(
        out,
        format!("{host_links}\n{}\n0\nsys-ro\n", host_ns.display()),
        "host network, /sys fully read-only"
    );
});

/// A user without /etc/subuid ranges gets a single-id map: root inside, nothing else.
#[test]
fn rootless_single_id_map() {
    let env = Env::new(Mode::RootlessSingleId);
    let (uid, _) = user_id(CI_USER_SINGLE);
    let out = ok(&env.sh(&["--hostname", "single"], "echo $$; id -u; hostname; cat /proc/self/uid_map /proc/self/setgroups; touch /tmp/f && echo ok"));
    let lines: Vec<&str> = out.lines().map(|l| l.trim()).collect();
    assert_eq!(&lines[..3], &["1", "0", "single"]);
    let map: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(map, ["0", &uid.to_string(), "1"], "{out}");
    assert_eq!(&lines[4..], &["deny", "ok"], "{out}");
    // uid 1000 does not exist in a single-id namespace: a clear error, not a silent run.
    let o = env.sh(&["--user", "1000"], "id");
    assert_eq!(o.status.code(), Some(125));
    assert!(
        text(&o.stderr).contains("--user: setgid 1000"),
        "{}",
        text(&o.stderr)
    );
    env.assert_clean();
}

/// With subordinate ranges, the container has 65536 ids: other users exist inside.
#[test]
fn rootless_subid_map() {
    let env = Env::new(Mode::Rootless);
    let (uid, _) = ci_user();
    let out = ok(&env.sh(
        &["--user", "1000:1000"],
        "cat /proc/self/uid_map; id -u; touch /tmp/f; stat -c %u /tmp/f",
    ));
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", &uid.to_string(), "1"]);
    assert_eq!(lines[1][0], "1", "{out}");
    assert_eq!(lines[1][2], "65536", "{out}");
    assert_eq!(lines[2], ["1000"]);
    assert_eq!(lines[3], ["1000"]);
}

both_modes!(privileges_dropped_and_own_session, |mode| {
    let env = Env::new(mode);
    let out = ok(&env.sh(
        &[],
        "grep -E '^(CapBnd|CapEff|NoNewPrivs)' /proc/self/status; cut -d' ' -f6 /proc/$$/stat",
    ));
    let lines: Vec<&str> = out.lines().collect();
    // OCI default: KILL (5), NET_BIND_SERVICE (10), AUDIT_WRITE (29); root gets them all.
    assert_eq!(lines[0], "CapEff:\t0000000020000420", "{out}");
    assert_eq!(lines[1], "CapBnd:\t0000000020000420", "{out}");
    assert_eq!(lines[2], "NoNewPrivs:\t1", "{out}");
    assert_eq!(lines[3], "1", "the command leads its own session: {out}");
});
