//! What to run, parsed and checked: the command-line arguments turned into a `Spec`.
//!
//! Everything here is pure (no syscalls beyond `stat` in `Spec::check_paths`), so the
//! parsers are unit tested below.

use super::error::{Error, Result};
use super::RunOptions;
use std::path::{Path, PathBuf};

/// Where the container's `/` comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum RootSource {
    /// Lower layers, top first, merged by `strata mount`.
    Layers(Vec<PathBuf>),
    /// One directory, bind-mounted (or used as the single lower layer with `--upper`).
    Rootfs(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// New network namespace with only `lo`, brought up.
    None,
    /// Share the host's network namespace.
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub src: PathBuf,
    /// Absolute path inside the container.
    pub dst: PathBuf,
    pub read_only: bool,
}

/// Resource limits; `None` means "not asked for".
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    /// CFS quota in microseconds per `CPU_PERIOD_US`.
    pub cpu_quota_us: Option<u64>,
    pub pids: Option<u64>,
}

/// CFS period used for `--cpus` (the kernel and Docker default).
pub const CPU_PERIOD_US: u64 = 100_000;

impl Limits {
    pub fn any(&self) -> bool {
        self.memory_bytes.is_some() || self.cpu_quota_us.is_some() || self.pids.is_some()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub root: RootSource,
    pub upper: Option<PathBuf>,
    pub work: Option<PathBuf>,
    pub volatile: bool,
    pub limits: Limits,
    pub hostname: String,
    pub net: Net,
    pub binds: Vec<BindMount>,
    pub tmpfs: Vec<PathBuf>,
    /// Extra environment, applied over the defaults.
    pub env: Vec<(String, String)>,
    pub workdir: PathBuf,
    pub user: Option<(u32, u32)>,
    pub read_only: bool,
    pub init: bool,
    /// Force the MS_MOVE + chroot fallback instead of pivot_root.
    pub no_pivot: bool,
    pub command: Vec<String>,
}

impl Spec {
    /// Does the root need the FUSE union (as opposed to a plain bind of `--rootfs`)?
    pub fn needs_union(&self) -> bool {
        match self.root {
            RootSource::Layers(_) => true,
            RootSource::Rootfs(_) => self.upper.is_some(),
        }
    }

    /// Builds a spec from the arguments; `no_pivot_env` is `STRATA_NO_PIVOT`.
    pub fn from_args(a: RunOptions, no_pivot_env: Option<&str>) -> Result<Spec> {
        if let Some(image) = &a.image {
            if a.layers.is_some() || a.rootfs.is_some() {
                return Err(Error::usage(format!(
                    "unexpected argument '{image}': put the command after `--`"
                )));
            }
            return Err(Error::usage(format!(
                "IMAGE ('{image}') is not supported yet: give --layers L1:L2:... or --rootfs DIR"
            )));
        }
        let root = match (&a.layers, &a.rootfs) {
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
            limits,
            hostname,
            net,
            binds: a
                .binds
                .iter()
                .map(|b| parse_bind(b))
                .collect::<Result<_>>()?,
            tmpfs,
            env: a.env.iter().map(|e| parse_env(e)).collect::<Result<_>>()?,
            workdir,
            user: a.user.as_deref().map(parse_user).transpose()?,
            read_only: a.read_only,
            init: a.init,
            no_pivot: a.no_pivot || matches!(no_pivot_env, Some(v) if !v.is_empty() && v != "0"),
            command: a.command,
        })
    }

    /// Checks that every host path exists and makes them absolute, so that a
    /// mistake is reported before anything is created.
    pub fn check_paths(&mut self) -> Result<()> {
        match &mut self.root {
            RootSource::Layers(layers) => {
                for l in layers.iter_mut() {
                    *l = existing_dir("layer", l)?;
                }
            }
            RootSource::Rootfs(r) => *r = existing_dir("rootfs", r)?,
        }
        for b in &mut self.binds {
            b.src = std::fs::canonicalize(&b.src)
                .map_err(|e| Error::io(format!("bind source {}", b.src.display()), e))?;
        }
        for dir in [&mut self.upper, &mut self.work].into_iter().flatten() {
            if !dir.exists() {
                std::fs::create_dir_all(&*dir)
                    .map_err(|e| Error::usage(format!("cannot create {}: {e}", dir.display())))?;
            }
            *dir = existing_dir("directory", dir)?;
        }
        Ok(())
    }
}

fn existing_dir(what: &str, p: &Path) -> Result<PathBuf> {
    let abs =
        std::fs::canonicalize(p).map_err(|e| Error::io(format!("{what} {}", p.display()), e))?;
    if !abs.is_dir() {
        return Err(Error::usage(format!(
            "{what} {}: not a directory",
            p.display()
        )));
    }
    Ok(abs)
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
pub fn parse_memory(s: &str) -> Result<u64> {
    let bad = || {
        Error::usage(format!(
            "--memory {s}: expected a size like 256M, 1G or 65536"
        ))
    };
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
        return Err(bad());
    }
    let n: u64 = num.parse().map_err(|_| bad())?;
    let bytes = n.checked_mul(mult).ok_or_else(bad)?;
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
    let quota = (v * CPU_PERIOD_US as f64).round() as u64;
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

/// A small spec for unit tests elsewhere in the launcher.
#[cfg(test)]
pub fn test_spec() -> Spec {
    Spec {
        root: RootSource::Rootfs("/r".into()),
        upper: None,
        work: None,
        volatile: false,
        limits: Limits::default(),
        hostname: "h".into(),
        net: Net::None,
        binds: vec![],
        tmpfs: vec![],
        env: vec![],
        workdir: "/".into(),
        user: None,
        read_only: false,
        init: false,
        no_pivot: false,
        command: vec!["sh".into()],
    }
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
    fn spec_from_args() {
        let s = Spec::from_args(
            args(&["--rootfs", "/r", "--memory", "64M", "--", "sh", "-c", "x"]),
            None,
        )
        .unwrap();
        assert_eq!(s.root, RootSource::Rootfs("/r".into()));
        assert_eq!(s.limits.memory_bytes, Some(64 << 20));
        assert_eq!(s.command, vec!["sh", "-c", "x"]);
        assert!(!s.needs_union());
        assert!(!s.no_pivot);
        let s = Spec::from_args(args(&["--layers", "/a:/b", "--", "true"]), Some("1")).unwrap();
        assert!(s.needs_union());
        assert!(s.no_pivot);
    }

    #[test]
    fn spec_rejects_image_and_missing_parts() {
        let e = Spec::from_args(args(&["busybox", "--", "sh"]), None).unwrap_err();
        assert!(e.msg.contains("IMAGE"), "{}", e.msg);
        assert!(Spec::from_args(args(&["--", "sh"]), None).is_err());
        assert!(Spec::from_args(args(&["--rootfs", "/r"]), None).is_err());
        assert!(
            Spec::from_args(args(&["--rootfs", "/r", "--pids", "x", "--", "sh"]), None).is_err()
        );
        assert!(Spec::from_args(
            args(&["--rootfs", "/r", "--net", "bridge", "--", "sh"]),
            None
        )
        .is_err());
    }
}
