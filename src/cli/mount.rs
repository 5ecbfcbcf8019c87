//! `strata mount` and `strata umount`.

use super::options;
use crate::daemon::{self, Served};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = OPTIONS_HELP)]
pub struct MountArgs {
    /// Mount options, comma separated (repeatable); see below
    #[arg(short = 'o', value_name = "OPTIONS", required = true)]
    pub options: Vec<String>,
    /// Stay in the foreground instead of going to the background once mounted
    #[arg(short = 'f', long = "foreground")]
    pub foreground: bool,
    /// Log filter (error, warn, info, debug, trace); overrides RUST_LOG
    #[arg(long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Append the daemon's log to FILE (a background daemon's log is discarded
    /// otherwise); default $STRATA_LOG_FILE
    #[arg(long = "log-file", value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Write the daemon's pid to FILE once the mount is live (removed at unmount)
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Where to mount the union
    pub mountpoint: PathBuf,
}

const OPTIONS_HELP: &str = "\
Options (-o, comma separated; a backslash escapes ',' and ':' in paths):
  lowerdir=L1:L2:...   read-only layers, leftmost on top
  upperdir=DIR         writable layer (without it the mount is read-only)
  workdir=DIR          empty directory on the upper's filesystem, for staging
  dirs=RW:RO1:RO2...   aufs form: the first branch is the upper; the workdir
                       is PARENT/.NAME.strata-work next to it
  userxattr            write overlay marks as user.overlay.* (default when not root)
  redirect_dir=on|off  rename merged directories via overlay.redirect (on) or EXDEV (off)
  volatile             never fsync the upper (like overlayfs volatile)
  fsync=0|1            fsync=0 is volatile (fuse-overlayfs' spelling)
  timeout=SECS         kernel cache timeout for entries and attributes (default 3600)
  threads=N            request-serving threads (default: number of CPUs, 2 to 8)
  passthrough=on|off   FUSE passthrough for file I/O (default on where the kernel
                       allows it: as real root, Linux 6.9+)
  writeback=on|off     the kernel's writeback cache when passthrough is off (default on)
  metacopy=on|off      chmod/chown/utimens/xattr changes copy up metadata only; the
                       data follows on the first open for write (default off: kernel
                       overlayfs reads such an upper only with metacopy=on)
  allow_other          let other users in (default when root)
  allow_root           let root in as well as the mounting user
  default_permissions  accepted; permissions are always checked by the kernel
  ro, rw, suid, nosuid, dev, nodev, exec, noexec
                       as for any mount (as root: suid and dev are the default)
  relatime, noatime, strictatime, atime, nostrictatime, diratime, nodiratime
                       when a read updates atime of upper objects (default relatime)
  sync, async, dirsync, lazytime, nolazytime
                       as for any mount; with sync or dirsync strata also syncs the
                       upper directory after each change of names in it
  fsname=NAME          source name shown in /proc/mounts (default strata)
  context=LABEL        accepted and ignored (podman passes it)
fuse-overlayfs' options, as containers-storage passes them:
  uidmapping=L:M:N[:L:M:N...], gidmapping=...
                       ids L..L+N-1 in the layers show as M..M+N-1 (stat, ACLs),
                       shifted back on writes; others show as 65534
  squash_to_root, squash_to_uid=N, squash_to_gid=N
                       every object shows that owner
  xattr_permissions=0|1|2
                       owner and mode in an override_stat xattr: 1 security.*,
                       2 user.containers.* (and user.fuseoverlayfs.*)
  noacl                the kernel does not enforce ACLs (they are plain xattrs)
  static_nlink         directories report one link
  threaded=0|1         threaded=0 is threads=1
  xino=on|off|auto     accepted: st_ino is always xino-like
An unknown option is an error (exit 2), and so are ino32_t, fast_ino=1,
noxattrs=1 and plugins=.";

#[derive(Args, Debug)]
pub struct UmountArgs {
    /// Detach now and clean up when no longer busy (umount -l)
    #[arg(short = 'l', long = "lazy")]
    pub lazy: bool,
    /// Unmount whatever is mounted there, not only a strata mount
    #[arg(long = "force")]
    pub force: bool,
    /// The mount point to unmount
    pub mountpoint: PathBuf,
}

pub fn mount_main(args: MountArgs) -> i32 {
    mount_as("strata mount", args, None)
}

/// Mounts as `strata mount` does; errors are prefixed with `prog`, and `source`
/// (the SOURCE of mount(8)'s forms) names the mount in /proc/mounts unless an
/// `fsname=` option does.
pub fn mount_as(prog: &str, args: MountArgs, source: Option<String>) -> i32 {
    super::init_logging(args.log_level.as_deref());
    let config = match options::parse(&args.options) {
        Ok(mut c) => {
            if c.session.fsname.is_none() {
                c.session.fsname = source;
            }
            c.daemon.log_file = args
                .log_file
                .or_else(|| std::env::var_os("STRATA_LOG_FILE").map(PathBuf::from))
                .map(|p| std::path::absolute(&p).unwrap_or(p));
            // The background daemon works from /.
            c.daemon.pid_file = args.pid_file.map(|p| std::path::absolute(&p).unwrap_or(p));
            c
        }
        Err(e) => {
            eprintln!("{prog}: {e}");
            return 2;
        }
    };
    match daemon::serve(&config, &args.mountpoint, args.foreground) {
        Ok(Served::Launched | Served::Unmounted) => 0,
        Err(daemon::Error::Reported) => 1,
        Err(daemon::Error::Failed(msg)) => {
            eprintln!("{prog}: {msg}");
            1
        }
    }
}

pub fn umount_main(args: UmountArgs) -> i32 {
    match daemon::unmount_strata(&args.mountpoint, args.lazy, args.force) {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("strata umount: {msg}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OPTIONS_HELP;

    /// The option names of the README's option reference table.
    fn readme_options() -> Vec<String> {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("### Option reference")
            .nth(1)
            .and_then(|t| t.split("\n#").next())
            .expect("README has an option reference");
        let mut names = Vec::new();
        for row in table.lines().filter(|l| l.starts_with("| `")) {
            let first = row.split('|').nth(1).unwrap_or("");
            for code in first.split('`').skip(1).step_by(2) {
                names.push(code.split('=').next().unwrap_or("").to_string());
            }
        }
        names
    }

    /// The option names in the first column of `strata mount --help`.
    fn help_options() -> Vec<String> {
        OPTIONS_HELP
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
            .flat_map(|l| l[2..].split("  ").next().unwrap_or("").split(", "))
            .map(|o| o.split('=').next().unwrap_or("").trim().to_string())
            .filter(|o| !o.is_empty())
            .collect()
    }

    #[test]
    fn help_readme_and_parser_name_the_same_options() {
        let (mut readme, mut help) = (readme_options(), help_options());
        readme.sort();
        readme.dedup();
        help.sort();
        help.dedup();
        assert!(readme.len() > 20, "{readme:?}");
        assert_eq!(readme, help, "README's option table and --help differ");
        for name in &readme {
            let opt = format!("lowerdir=/l,{name}");
            if let Err(e) = super::options::parse(&[opt]) {
                assert!(!e.0.contains("unknown option"), "{name}: {e}");
            }
        }
    }

    #[test]
    fn help_states_the_real_defaults() {
        let ttl = crate::union::DEFAULT_TTL.as_secs();
        assert!(
            OPTIONS_HELP.contains(&format!("(default {ttl})")),
            "timeout default"
        );
        assert!(
            OPTIONS_HELP.contains("number of CPUs, 2 to 8"),
            "threads default"
        );
        assert!(
            !crate::union::Config::default().metacopy && OPTIONS_HELP.contains("(default off"),
            "metacopy default"
        );
    }
}
