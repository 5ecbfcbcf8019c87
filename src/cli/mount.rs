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
  timeout=SECS         kernel cache timeout for entries and attributes (default 1)
  threads=N            request-serving threads (default: number of CPUs)
  passthrough=on|off   FUSE passthrough for file I/O (default on where the kernel
                       allows it: as real root, Linux 6.9+)
  writeback=on|off     the kernel's writeback cache when passthrough is off (default on)
  metacopy=on|off      chmod/chown/utimens/xattr changes copy up metadata only; the
                       data follows on the first open for write (default off: kernel
                       overlayfs reads such an upper only with metacopy=on)
  allow_other          let other users in (default when root)
  allow_root           let root in as well as the mounting user
  default_permissions  accepted; permissions are always checked by the kernel
  ro, rw, suid, nosuid, dev, nodev, exec, noexec, noatime, atime
                       as for any mount (as root: suid and dev are the default)
  fsname=NAME          source name shown in /proc/mounts (default strata)
  context=LABEL        accepted and ignored (podman passes it)
An unknown option is an error (exit 2).";

#[derive(Args, Debug)]
pub struct UmountArgs {
    /// Detach now and clean up when no longer busy (umount -l)
    #[arg(short = 'l', long = "lazy")]
    pub lazy: bool,
    /// The mount point to unmount
    pub mountpoint: PathBuf,
}

pub fn mount_main(args: MountArgs) -> i32 {
    super::init_logging(args.log_level.as_deref());
    let config = match options::parse(&args.options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("strata mount: {e}");
            return 2;
        }
    };
    match daemon::serve(&config, &args.mountpoint, args.foreground) {
        Ok(Served::Launched | Served::Unmounted) => 0,
        Err(daemon::Error::Reported) => 1,
        Err(daemon::Error::Failed(msg)) => {
            eprintln!("strata mount: {msg}");
            1
        }
    }
}

pub fn umount_main(args: UmountArgs) -> i32 {
    match daemon::unmount(&args.mountpoint, args.lazy) {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("strata umount: {msg}");
            1
        }
    }
}
