//! `strata run`: its arguments, and their parsing into a `launcher::Spec`.
//!
//! Everything here is pure, so the parsers are unit tested below; the launcher
//! itself never sees argv.

use crate::image::archive::Ownership;
use crate::image::local::{self, RunImage};
use crate::image::store::Store;
use crate::launcher::error::{Error, Result};
use crate::launcher::{self, BindMount, Limits, Net, RootSource, Spec};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;

/// `strata run` arguments. Boxed so the CLI's subcommand enum stays small.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub opts: Box<RunOptions>,
}

#[derive(Args, Debug)]
pub struct RunOptions {
    /// Lower layers, top first, colon separated (merged with strata's union filesystem)
    #[arg(long, value_name = "L1:L2:...")]
    pub layers: Option<String>,
    /// A directory to use as the root (bind-mounted; merged when --upper is given)
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Keep changes in DIR (default: a throwaway upper deleted at the end)
    #[arg(long, value_name = "DIR")]
    pub upper: Option<PathBuf>,
    /// Work directory for --upper (default: DIR.work next to it)
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
    /// Do not sync the upper layer (faster, not crash safe)
    #[arg(long)]
    pub volatile: bool,
    /// Memory limit, e.g. 256M or 1G
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// CPU limit in CPUs, e.g. 1.5
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// Maximum number of processes
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids: Option<String>,
    /// Show the host's /proc/meminfo, cpuinfo, stat, uptime, loadavg, swaps, diskstats
    /// (by default, with a limit, the container sees them computed from its cgroups)
    #[arg(long)]
    pub no_proc_view: bool,
    /// Host name inside the container (default: strata)
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Network: none (own namespace with lo only) or host
    #[arg(long, value_name = "none|host", default_value = "none")]
    pub net: String,
    /// Bind mount SRC (host) onto DST (container), optionally read-only
    #[arg(long = "bind", value_name = "SRC:DST[:ro]")]
    pub binds: Vec<String>,
    /// Mount an empty tmpfs on DST
    #[arg(long = "tmpfs", value_name = "DST")]
    pub tmpfs: Vec<String>,
    /// Set an environment variable
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory inside the container (default: /)
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Run the command as UID[:GID] (numeric)
    #[arg(long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Mount the root read-only
    #[arg(long)]
    pub read_only: bool,
    /// Run a tiny init as PID 1 that reaps zombies and forwards signals
    #[arg(long)]
    pub init: bool,
    /// Give the command a terminal of its own, relayed to this one [default: true when
    /// stdin is a terminal]
    #[arg(short = 't', long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tty: Option<bool>,
    /// Keep stdin open for the command [default: as --tty]; without it and without a
    /// terminal the command's stdin is /dev/null
    #[arg(short = 'i', long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub interactive: Option<bool>,
    /// Use MS_MOVE + chroot instead of pivot_root (also: STRATA_NO_PIVOT=1)
    #[arg(long, hide = true)]
    pub no_pivot: bool,
    /// An image of the store to run (strata image ls); with no command after `--`,
    /// its Entrypoint + Cmd, with its Env, WorkingDir and User
    #[arg(value_name = "IMAGE")]
    pub image: Option<String>,
    /// The image store [default: $STRATA_STORE, /var/lib/strata for root, else
    /// $XDG_DATA_HOME/strata]
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Command and arguments to run inside the container, after `--`
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub fn run_main(args: RunArgs) -> i32 {
    // The /proc view's FUSE session (a thread of strata run) answers requests of
    // container processes that may be gone when it replies: fuser logs each such reply
    // (ENOENT from /dev/fuse) as an error, which is none for the container.
    super::init_logging_quiet(None, &["fuser::reply"]);
    let no_pivot = std::env::var("STRATA_NO_PIVOT").ok();
    let stdin_tty = std::io::stdin().is_terminal();
    let opts = *args.opts;
    // Held until the container is gone: `image rm` leaves its layers alone.
    let image = match opts.image.as_deref() {
        Some(name) if opts.layers.is_none() && opts.rootfs.is_none() => {
            match super::image::open_existing_store(opts.store.as_deref())
                .and_then(|store| local::for_run(&store, name).map(|img| (store, img)))
            {
                Ok(x) => Some(x),
                Err(e) => {
                    eprintln!("strata run: {e}");
                    // Bad input before anything is created, as for any other root.
                    return 125;
                }
            }
        }
        _ => None,
    };
    let result = spec_from_args(
        opts,
        no_pivot.as_deref(),
        stdin_tty,
        image.as_ref().map(|(s, i)| (s, i)),
    )
    .and_then(|mut spec| {
        spec.check_paths()?;
        launcher::run(spec, &|msg| eprintln!("strata run: warning: {msg}"))
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("strata run: {}", e.msg);
            e.code
        }
    }
}

/// Builds a spec from the arguments; `no_pivot_env` is `STRATA_NO_PIVOT`, `stdin_tty`
/// whether strata's stdin is a terminal (the default of `--tty`), `image` the store
/// and image of `strata run IMAGE`.
pub fn spec_from_args(
    mut a: RunOptions,
    no_pivot_env: Option<&str>,
    stdin_tty: bool,
    image: Option<(&Store, &RunImage)>,
) -> Result<Spec> {
    if let Some(name) = &a.image {
        if a.layers.is_some() || a.rootfs.is_some() {
            return Err(Error::usage(format!(
                "unexpected argument '{name}': put the command after `--`"
            )));
        }
    }
    let mut image_env = Vec::new();
    let mut override_stat = false;
    let mut image_layers = None;
    if let (Some(name), Some((store, img))) = (&a.image, image) {
        let c = &img.config;
        let mut command = c.entrypoint.clone();
        if a.command.is_empty() {
            command.extend(c.cmd.iter().cloned());
        } else {
            command.append(&mut a.command);
        }
        if command.is_empty() {
            return Err(Error::usage(format!(
                "image {name} has no Entrypoint or Cmd: give the command after `--`"
            )));
        }
        a.command = command;
        if a.workdir.is_none() {
            a.workdir = c.working_dir.clone();
        }
        if a.user.is_none() {
            if let Some(u) = &c.user {
                let (uid, gid) =
                    local::resolve_user(&img.lowers, u).map_err(|e| Error::usage(e.msg))?;
                a.user = Some(format!("{uid}:{gid}"));
            }
        }
        image_env = c
            .env
            .iter()
            .map(|e| parse_env(e))
            .collect::<Result<Vec<_>>>()?;
        override_stat = store.ownership == Ownership::Recorded;
        image_layers = Some(img.lowers.clone());
    } else if let Some(name) = &a.image {
        return Err(Error::usage(format!(
            "unexpected argument '{name}': put the command after `--`"
        )));
    }
    let root = match (&a.layers, &a.rootfs) {
        _ if image_layers.is_some() => RootSource::Layers(image_layers.unwrap_or_default()),
        (Some(_), Some(_)) => {
            return Err(Error::usage("--layers and --rootfs are exclusive"));
        }
        (Some(l), None) => RootSource::Layers(parse_layers(l)?),
        (None, Some(r)) => RootSource::Rootfs(r.clone()),
        (None, None) => {
            return Err(Error::usage(
                "no root filesystem: give --layers L1:L2:... or --rootfs DIR",
            ))
        }
    };
    if a.command.is_empty() {
        return Err(Error::usage("no command: put it after `--`"));
    }
    if a.work.is_some() && a.upper.is_none() {
        return Err(Error::usage("--work needs --upper"));
    }
    let limits = Limits {
        memory_bytes: a.memory.as_deref().map(parse_memory).transpose()?,
        cpu_quota_us: a.cpus.as_deref().map(parse_cpus).transpose()?,
        pids: a.pids.as_deref().map(parse_pids).transpose()?,
    };
    let net = match a.net.as_str() {
        "none" => Net::None,
        "host" => Net::Host,
        other => {
            return Err(Error::usage(format!(
                "--net {other}: expected none or host"
            )))
        }
    };
    let hostname = a.hostname.unwrap_or_else(|| "strata".to_string());
    if hostname.is_empty() || hostname.len() > 64 {
        return Err(Error::usage(format!(
            "--hostname '{hostname}': must be 1 to 64 bytes"
        )));
    }
    let workdir = PathBuf::from(a.workdir.unwrap_or_else(|| "/".into()));
    if !workdir.is_absolute() {
        return Err(Error::usage(format!(
            "--workdir {}: must be an absolute path",
            workdir.display()
        )));
    }
    let tty = a.tty.unwrap_or(stdin_tty);
    let tmpfs = a
        .tmpfs
        .iter()
        .map(|t| absolute_dst("--tmpfs", t))
        .collect::<Result<Vec<_>>>()?;
    Ok(Spec {
        root,
        upper: a.upper,
        work: a.work,
        volatile: a.volatile,
        override_stat,
        limits,
        proc_view: !a.no_proc_view,
        hostname,
        net,
        binds: a
            .binds
            .iter()
            .map(|b| parse_bind(b))
            .collect::<Result<_>>()?,
        tmpfs,
        env: image_env
            .into_iter()
            .map(Ok)
            .chain(a.env.iter().map(|e| parse_env(e)))
            .collect::<Result<_>>()?,
        workdir,
        user: a.user.as_deref().map(parse_user).transpose()?,
        read_only: a.read_only,
        init: a.init,
        no_pivot: a.no_pivot || matches!(no_pivot_env, Some(v) if !v.is_empty() && v != "0"),
        private_mount_points: false,
        tty,
        interactive: a.interactive.unwrap_or(tty),
        command: a.command,
    })
}

fn absolute_dst(flag: &str, s: &str) -> Result<PathBuf> {
    let p = PathBuf::from(s);
    if !p.is_absolute() {
        return Err(Error::usage(format!(
            "{flag} {s}: the destination must be an absolute path"
        )));
    }
    Ok(p)
}

/// `L1:L2:...`, top first; `\:` escapes a colon inside a path.
pub fn parse_layers(s: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.extend(chars.next()),
            ':' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    if out.iter().any(|l| l.is_empty()) {
        return Err(Error::usage(format!("--layers {s}: empty layer path")));
    }
    Ok(out.into_iter().map(PathBuf::from).collect())
}

/// `256M`, `1G`, `512k`, `1048576`, `64MiB`: binary multiples, like Docker.
/// A size in bytes: `256M`, `1G`, `512k`, `1048576`, `64MiB`, with binary multiples
/// (K, M, G, T; an optional `B` or `iB`), like Docker's.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix(['b', 'B']))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        Some('t' | 'T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(mult)
}

pub fn parse_memory(s: &str) -> Result<u64> {
    let bad = || {
        Error::usage(format!(
            "--memory {s}: expected a size like 256M, 1G or 65536"
        ))
    };
    let bytes = parse_bytes(s).ok_or_else(bad)?;
    if bytes < 1 << 20 {
        return Err(Error::usage(format!(
            "--memory {s}: too small (at least 1M, or nothing could start)"
        )));
    }
    Ok(bytes)
}

/// `1.5` CPUs → a CFS quota of 150000 µs per 100000 µs period.
pub fn parse_cpus(s: &str) -> Result<u64> {
    let bad = || {
        Error::usage(format!(
            "--cpus {s}: expected a positive number like 0.5 or 2"
        ))
    };
    let t = s.trim();
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    let v: f64 = t.parse().map_err(|_| bad())?;
    if !v.is_finite() || v <= 0.0 || v > 4096.0 {
        return Err(bad());
    }
    let quota = (v * launcher::spec::CPU_PERIOD_US as f64).round() as u64;
    // The kernel refuses quotas under 1 ms.
    if quota < 1000 {
        return Err(Error::usage(format!(
            "--cpus {s}: too small (at least 0.01)"
        )));
    }
    Ok(quota)
}

pub fn parse_pids(s: &str) -> Result<u64> {
    match s.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Error::usage(format!(
            "--pids {s}: expected a positive whole number"
        ))),
    }
}

/// `SRC:DST[:ro|:rw]`.
pub fn parse_bind(s: &str) -> Result<BindMount> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, read_only) = match parts.as_slice() {
        [src, dst] => (*src, *dst, false),
        [src, dst, "ro"] => (*src, *dst, true),
        [src, dst, "rw"] => (*src, *dst, false),
        _ => {
            return Err(Error::usage(format!(
                "--bind {s}: expected SRC:DST or SRC:DST:ro"
            )))
        }
    };
    if src.is_empty() {
        return Err(Error::usage(format!("--bind {s}: empty source")));
    }
    Ok(BindMount {
        src: PathBuf::from(src),
        dst: absolute_dst("--bind", dst)?,
        read_only,
    })
}

/// `K=V`; a bare `K` takes the value from strata's own environment (like Docker).
pub fn parse_env(s: &str) -> Result<(String, String)> {
    let (k, v) = match s.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => (s.to_string(), std::env::var(s).unwrap_or_default()),
    };
    if k.is_empty() || k.contains('\0') || v.contains('\0') {
        return Err(Error::usage(format!("--env {s}: expected K=V")));
    }
    Ok((k, v))
}

/// `UID[:GID]`, numeric; the group defaults to the uid.
pub fn parse_user(s: &str) -> Result<(u32, u32)> {
    let bad = || Error::usage(format!("--user {s}: expected UID or UID:GID (numbers)"));
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid: u32 = u.parse().map_err(|_| bad())?;
    let gid: u32 = match g {
        Some(g) => g.parse().map_err(|_| bad())?,
        None => uid,
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("256M").unwrap(), 256 << 20);
        assert_eq!(parse_memory("256m").unwrap(), 256 << 20);
        assert_eq!(parse_memory("1G").unwrap(), 1 << 30);
        assert_eq!(parse_memory("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_memory("2048k").unwrap(), 2 << 20);
        assert_eq!(parse_memory("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_memory("1mb").unwrap(), 1 << 20);
    }

    #[test]
    fn memory_rejects_garbage() {
        for bad in [
            "",
            "M",
            "12X",
            "-1M",
            "1.5G",
            "abc",
            "10",
            "99999999999999999999T",
        ] {
            assert!(parse_memory(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn cpus_to_quota() {
        assert_eq!(parse_cpus("1.5").unwrap(), 150_000);
        assert_eq!(parse_cpus("0.5").unwrap(), 50_000);
        assert_eq!(parse_cpus("2").unwrap(), 200_000);
        assert_eq!(parse_cpus("0.01").unwrap(), 1_000);
        for bad in ["0", "-1", "abc", "", "0.001", "1e3", "nan", "inf"] {
            assert!(parse_cpus(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn pids_positive() {
        assert_eq!(parse_pids("512").unwrap(), 512);
        assert!(parse_pids("0").is_err());
        assert!(parse_pids("-3").is_err());
        assert!(parse_pids("ten").is_err());
    }

    #[test]
    fn binds() {
        let b = parse_bind("/src:/dst:ro").unwrap();
        assert_eq!(b.src, PathBuf::from("/src"));
        assert_eq!(b.dst, PathBuf::from("/dst"));
        assert!(b.read_only);
        assert!(!parse_bind("rel:/dst").unwrap().read_only);
        assert!(parse_bind("/src").is_err());
        assert!(parse_bind("/src:dst").is_err());
        assert!(parse_bind("/a:/b:rx").is_err());
        assert!(parse_bind(":/b").is_err());
    }

    #[test]
    fn layers_with_escapes() {
        assert_eq!(
            parse_layers("/a:/b\\:c").unwrap(),
            vec![PathBuf::from("/a"), PathBuf::from("/b:c")]
        );
        assert!(parse_layers("/a::/b").is_err());
    }

    #[test]
    fn users_and_env() {
        assert_eq!(parse_user("1000").unwrap(), (1000, 1000));
        assert_eq!(parse_user("5:7").unwrap(), (5, 7));
        assert!(parse_user("bob").is_err());
        assert_eq!(
            parse_env("A=b=c").unwrap(),
            ("A".to_string(), "b=c".to_string())
        );
        assert!(parse_env("=x").is_err());
    }

    fn args(extra: &[&str]) -> RunOptions {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            a: RunOptions,
        }
        let mut v = vec!["t"];
        v.extend_from_slice(extra);
        T::try_parse_from(v).expect("clap parse").a
    }

    #[test]
    fn spec_from_arguments() {
        let s = spec_from_args(
            args(&["--rootfs", "/r", "--memory", "64M", "--", "sh", "-c", "x"]),
            None,
            false,
            None,
        )
        .unwrap();
        assert_eq!(s.root, RootSource::Rootfs("/r".into()));
        assert_eq!(s.limits.memory_bytes, Some(64 << 20));
        assert_eq!(s.command, vec!["sh", "-c", "x"]);
        assert!(!s.needs_union());
        assert!(!s.no_pivot);
        let s = spec_from_args(
            args(&["--layers", "/a:/b", "--", "true"]),
            Some("1"),
            false,
            None,
        )
        .unwrap();
        assert!(s.needs_union());
        assert!(s.no_pivot);
    }

    #[test]
    fn spec_rejects_image_and_missing_parts() {
        let e = spec_from_args(
            args(&["--rootfs", "/r", "busybox", "--", "sh"]),
            None,
            false,
            None,
        )
        .unwrap_err();
        assert!(e.msg.contains("put the command after"), "{}", e.msg);
        assert!(spec_from_args(args(&["--", "sh"]), None, false, None).is_err());
        assert!(spec_from_args(args(&["--rootfs", "/r"]), None, false, None).is_err());
        assert!(spec_from_args(
            args(&["--rootfs", "/r", "--pids", "x", "--", "sh"]),
            None,
            false,
            None
        )
        .is_err());
        assert!(spec_from_args(
            args(&["--rootfs", "/r", "--net", "bridge", "--", "sh"]),
            None,
            false,
            None
        )
        .is_err());
    }

    #[test]
    fn tty_and_interactive() {
        let spec = |extra: &[&str], stdin_tty: bool| {
            let mut v = vec!["--rootfs", "/r"];
            v.extend_from_slice(extra);
            v.extend_from_slice(&["--", "sh"]);
            let s = spec_from_args(args(&v), None, stdin_tty, None).unwrap();
            (s.tty, s.interactive)
        };
        // Defaults follow strata's stdin: a terminal gets one, a pipe gets /dev/null.
        assert_eq!(spec(&[], true), (true, true));
        assert_eq!(spec(&[], false), (false, false));
        assert_eq!(spec(&["-t"], false), (true, true));
        assert_eq!(spec(&["--tty"], false), (true, true));
        assert_eq!(spec(&["--tty=false"], true), (false, false));
        assert_eq!(spec(&["-t=false", "-i"], true), (false, true));
        assert_eq!(spec(&["-i"], false), (false, true));
        assert_eq!(spec(&["--interactive"], false), (false, true));
        assert_eq!(spec(&["-it"], false), (true, true));
        assert_eq!(spec(&["-ti"], false), (true, true));
        assert_eq!(spec(&["-t", "--interactive=false"], false), (true, false));
        // `-t` takes its value only with `=`: the next word is not eaten.
        let s = spec_from_args(
            args(&["--rootfs", "/r", "-t", "--", "true"]),
            None,
            false,
            None,
        )
        .unwrap();
        assert_eq!(s.command, vec!["true"]);
    }
}
