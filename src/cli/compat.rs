//! The argv forms other programs use to start a mount, all parsed into the same
//! `strata mount` (and so the same `daemon::MountConfig`):
//!
//! - fuse-overlayfs' form, as containers-storage runs a `mount_program`:
//!   `strata -o OPTS MERGED` (no subcommand);
//! - mount.fuse3's form, for mount(8) with `-t fuse.strata`:
//!   `strata SOURCE MOUNTPOINT -o OPTS`;
//! - the mount(8) helper protocol, when strata is run as `mount.fuse.strata` (the
//!   link that `scripts/install` puts in /sbin): `SOURCE MOUNTPOINT [-sfnv] -o OPTS
//!   [-t TYPE]`.
//!
//! Each of them goes to the background and exits 0 only once the mount is live, as
//! `strata mount` does.

use super::mount::{self, MountArgs};
use clap::{Args, Parser};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The top-level arguments of `strata` without a subcommand.
#[derive(Args, Debug)]
pub struct CompatArgs {
    /// Mount options, comma separated (repeatable), as for `strata mount -o`
    #[arg(short = 'o', value_name = "OPTIONS", required = true)]
    pub options: Vec<String>,
    /// Stay in the foreground instead of going to the background once mounted
    #[arg(short = 'f', long = "foreground")]
    pub foreground: bool,
    /// MOUNTPOINT, or SOURCE MOUNTPOINT (as mount.fuse3 passes them): where to
    /// mount the union; SOURCE names the mount in /proc/mounts
    #[arg(value_name = "MOUNTPOINT", num_args = 1..=2, required = true)]
    pub paths: Vec<PathBuf>,
}

/// `strata -o OPTS MERGED` and `strata SOURCE MOUNTPOINT -o OPTS`.
pub fn compat_main(args: CompatArgs) -> i32 {
    let (source, mountpoint) = match <[PathBuf; 2]>::try_from(args.paths.clone()) {
        Ok([source, mountpoint]) => (Some(source), mountpoint),
        Err(mut one) => match one.pop() {
            Some(mountpoint) => (None, mountpoint),
            None => {
                eprintln!("strata: no mount point given");
                return 2;
            }
        },
    };
    let options = if source.is_some() {
        strip_mount8_options(&args.options)
    } else {
        args.options
    };
    let args = MountArgs {
        options,
        foreground: args.foreground,
        log_level: None,
        log_file: None,
        pid_file: None,
        mountpoint,
    };
    let source = source.map(|s| s.to_string_lossy().into_owned());
    mount::mount_as("strata", args, source)
}

/// The program names under which strata speaks the mount(8) helper protocol.
const HELPER_NAMES: [&str; 2] = ["mount.fuse.strata", "mount.strata"];

/// Whether strata was started as a mount(8) helper (`/sbin/mount.fuse.strata`).
pub fn is_mount_helper(argv: &[OsString]) -> bool {
    argv.first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .is_some_and(|n| HELPER_NAMES.contains(&n))
}

/// mount(8)'s helper arguments: `SOURCE MOUNTPOINT [-s] [-f] [-n] [-v] [-o OPTS] [-t TYPE]`.
#[derive(Parser, Debug)]
#[command(
    name = "mount.fuse.strata",
    version,
    about = "mount(8) helper for -t fuse.strata: mounts a strata union (see strata mount --help)"
)]
struct HelperArgs {
    /// The mount's source: any name, shown in /proc/mounts
    source: String,
    /// Where to mount the union
    mountpoint: PathBuf,
    /// Mount options, as for `strata mount -o`; mount(8)'s own (noauto, user,
    /// _netdev, nofail...) are dropped
    #[arg(short = 'o', value_name = "OPTIONS")]
    options: Vec<String>,
    /// The filesystem type (fuse.strata)
    #[arg(short = 't', value_name = "TYPE")]
    fstype: Option<String>,
    /// Sloppy: accepted (mount -s)
    #[arg(short = 's')]
    sloppy: bool,
    /// Fake: do everything but mount (mount -f)
    #[arg(short = 'f')]
    fake: bool,
    /// Do not write /etc/mtab: accepted (there is none to write)
    #[arg(short = 'n')]
    no_mtab: bool,
    /// Verbose: accepted
    #[arg(short = 'v')]
    verbose: bool,
}

/// strata run as `mount.fuse.strata SOURCE MOUNTPOINT -o OPTS`.
pub fn helper_main(argv: Vec<OsString>) -> i32 {
    let args = HelperArgs::parse_from(argv);
    if let Some(t) = args.fstype.as_deref() {
        if !["fuse.strata", "strata", "fuse"].contains(&t) {
            eprintln!("mount.fuse.strata: -t {t}: not a strata mount (expected fuse.strata)");
            return 2;
        }
    }
    let options = strip_mount8_options(&args.options);
    if args.fake {
        // mount -f: check the options, mount nothing.
        return match super::options::parse(&options) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("mount.fuse.strata: {e}");
                2
            }
        };
    }
    let margs = MountArgs {
        options,
        foreground: false,
        log_level: None,
        log_file: None,
        pid_file: None,
        mountpoint: args.mountpoint,
    };
    mount::mount_as("mount.fuse.strata", margs, Some(args.source))
}

/// Whether `opt` is one of mount(8)'s and fstab's own options, which say when and by
/// whom a mount is made and never reach the filesystem (mount.fuse3 drops them too).
fn is_mount8_option(opt: &str) -> bool {
    let key = opt.split_once('=').map_or(opt, |(k, _)| k);
    matches!(
        key,
        "defaults"
            | "auto"
            | "noauto"
            | "user"
            | "nouser"
            | "users"
            | "owner"
            | "group"
            | "_netdev"
            | "nofail"
            | "comment"
    ) || key.starts_with("x-")
}

/// `groups` without mount(8)'s own options; a backslash-escaped comma stays inside
/// its option, as the option parser reads it.
fn strip_mount8_options(groups: &[String]) -> Vec<String> {
    groups
        .iter()
        .map(|g| {
            split_keeping_escapes(g)
                .into_iter()
                .filter(|o| !o.is_empty() && !is_mount8_option(o))
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|g| !g.is_empty())
        .collect()
}

/// Splits at commas that no backslash escapes, keeping the escapes.
fn split_keeping_escapes(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let cur = parts.last_mut().expect("parts is never empty");
        match c {
            '\\' => {
                cur.push(c);
                if let Some(next) = chars.next() {
                    cur.push(next);
                }
            }
            ',' => parts.push(String::new()),
            _ => cur.push(c),
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(s: &str) -> Vec<String> {
        strip_mount8_options(&[s.to_string()])
    }

    #[test]
    fn mount8_options_are_dropped() {
        assert_eq!(
            strip("rw,noauto,user,lowerdir=/a\\,b,_netdev,nofail,x-systemd.automount,user=u1,dev"),
            vec!["rw,lowerdir=/a\\,b,dev".to_string()]
        );
        assert_eq!(strip("defaults,users"), Vec::<String>::new());
        // what mount(8) and mount.fuse3 passed for a `noauto,user` fstab entry
        let o = strip("rw,noexec,nosuid,nodev,lowerdir=/a,upperdir=/u,workdir=/w");
        let c = crate::cli::options::parse(&o).expect("mount.fuse3's options parse");
        assert_eq!(c.session.exec, Some(false));
        assert_eq!(c.session.suid, Some(false));
        assert_eq!(c.session.dev, Some(false));
    }

    #[test]
    fn helper_is_known_by_its_name() {
        let argv = |a: &str| vec![OsString::from(a), OsString::from("x")];
        assert!(is_mount_helper(&argv("/sbin/mount.fuse.strata")));
        assert!(is_mount_helper(&argv("mount.fuse.strata")));
        assert!(!is_mount_helper(&argv("/usr/local/bin/strata")));
        assert!(!is_mount_helper(&[]));
    }

    #[test]
    fn helper_argv_as_mount8_passes_it() {
        let a = HelperArgs::try_parse_from([
            "/sbin/mount.fuse.strata",
            "strata",
            "/m",
            "-n",
            "-o",
            "rw,lowerdir=/l",
            "-t",
            "fuse.strata",
        ])
        .expect("parses");
        assert_eq!(a.source, "strata");
        assert_eq!(a.mountpoint, PathBuf::from("/m"));
        assert_eq!(a.options, vec!["rw,lowerdir=/l".to_string()]);
        assert_eq!(a.fstype.as_deref(), Some("fuse.strata"));
        assert!(a.no_mtab && !a.fake);
    }
}
