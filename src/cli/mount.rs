//! `strata mount` and `strata umount`.

use super::options::MountOptions;
use crate::daemon;
use crate::union::{fs::StrataFs, layers, Union};
use clap::Args;
use fuser::{Config, MountOption, SessionACL};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Unescapes a /proc/self/mountinfo path field (\040 and friends).
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push(u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| Path::new(&unescape_mountinfo(mp)) == path)
}

fn check_mountpoint(mp: &Path) -> Result<PathBuf, String> {
    let resolved = std::fs::canonicalize(mp).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => format!("mountpoint {}: does not exist", mp.display()),
        _ => format!("mountpoint {}: {e}", mp.display()),
    })?;
    if !resolved.is_dir() {
        return Err(format!("mountpoint {}: is not a directory", mp.display()));
    }
    if is_mount_point(&resolved) {
        return Err(format!(
            "mountpoint {}: is already in use (something is mounted there)",
            mp.display()
        ));
    }
    Ok(resolved)
}

/// Checks that /dev/fuse can be used, with advice when it can't.
fn check_dev_fuse() -> Result<(), String> {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        Ok(_) => Ok(()),
        Err(e) => Err(match e.raw_os_error() {
            Some(libc::ENOENT) => {
                "/dev/fuse: does not exist: load the module (modprobe fuse) and install fuse3 (apt-get install fuse3)".into()
            }
            Some(libc::EACCES) | Some(libc::EPERM) => format!(
                "/dev/fuse: permission denied for uid {}: it must be mode 0666 (as root: chmod 0666 /dev/fuse), \
                 as Debian's udev rules set it",
                crate::sys::geteuid()
            ),
            _ => format!("/dev/fuse: {e}"),
        }),
    }
}

fn fuser_config(opts: &MountOptions, read_only: bool) -> Config {
    let root = crate::sys::geteuid() == 0;
    let mut mo = vec![
        MountOption::FSName(opts.fsname.clone().unwrap_or_else(|| "strata".into())),
        MountOption::Subtype("strata".into()),
        MountOption::DefaultPermissions,
    ];
    if read_only {
        mo.push(MountOption::RO);
    }
    match opts.suid {
        Some(true) => mo.push(MountOption::Suid),
        Some(false) => mo.push(MountOption::NoSuid),
        None if root => mo.push(MountOption::Suid),
        None => {}
    }
    // As root, like a kernel overlayfs mount: device nodes and set-id
    // programs in the image work (a container rootfs needs both).
    match opts.dev {
        Some(true) => mo.push(MountOption::Dev),
        Some(false) => mo.push(MountOption::NoDev),
        None if root => mo.push(MountOption::Dev),
        None => {}
    }
    match opts.exec {
        Some(true) => mo.push(MountOption::Exec),
        Some(false) => mo.push(MountOption::NoExec),
        None => {}
    }
    if opts.noatime {
        mo.push(MountOption::NoAtime);
    }
    let mut config = Config::default();
    config.mount_options = mo;
    config.acl = if opts.allow_other || (root && !opts.allow_root) {
        SessionACL::All
    } else if opts.allow_root {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    config.n_threads = Some(opts.threads.unwrap_or(cpus.clamp(2, 8)));
    config.clone_fd = true;
    config
}

pub fn mount_main(args: MountArgs) -> i32 {
    super::init_logging(args.log_level.as_deref());
    let opts = match MountOptions::parse(&args.options) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("strata mount: {e}");
            return 2;
        }
    };
    let checked = check_mountpoint(&args.mountpoint)
        .and_then(|mp| check_dev_fuse().map(|_| mp))
        .and_then(|mp| layers::open(&opts).map(|l| (mp, l)));
    let checked =
        checked.and_then(|(mp, mut layers)| layers.cover_mountpoint(&mp).map(|_| (mp, layers)));
    let (mountpoint, layers) = match checked {
        Ok(v) => v,
        Err(msg) => {
            eprintln!("strata mount: {msg}");
            return 1;
        }
    };
    let mut report = if args.foreground {
        daemon::foreground()
    } else {
        match daemon::background(&mountpoint) {
            Ok(r) => r,
            Err(code) => return code,
        }
    };
    // What the daemon creates gets exactly the mode the kernel asked for.
    unsafe { libc::umask(0) };
    let union = match Union::new(layers, &opts) {
        Ok(u) => Arc::new(u),
        Err(e) => {
            report.failed(&format!("{}: {e}", args.mountpoint.display()));
            return 1;
        }
    };
    let config = fuser_config(&opts, union.read_only);
    let fs = StrataFs {
        union: union.clone(),
        negative_ttl: true,
    };
    let session = match fuser::Session::new(fs, &mountpoint, &config) {
        Ok(s) => s,
        Err(e) => {
            report.failed(&format!(
                "mountpoint {}: mount failed: {e}",
                args.mountpoint.display()
            ));
            return 1;
        }
    };
    // In the background the watchdog is our parent already.
    let watchdog = if args.foreground {
        match daemon::start_watchdog(&mountpoint) {
            Ok(w) => Some(w),
            Err(e) => {
                report.failed(&format!("watchdog: {e}"));
                let _ = daemon::unmount(&mountpoint, true);
                return 1;
            }
        }
    } else {
        None
    };
    let mp = mountpoint.clone();
    let mut session = session;
    let _ = union.notifier.set(session.notifier());
    let mut unmounter = session.unmount_callable();
    if let Err(e) = daemon::spawn_signal_thread(move |_| {
        if let Err(e) = unmounter.unmount() {
            log::warn!("unmount failed ({e}); detaching lazily");
            let _ = daemon::unmount(&mp, true);
        }
        // The session ends once the kernel drops the connection; should a
        // process still pin a detached mount, do not linger for it.
        std::thread::sleep(std::time::Duration::from_secs(2));
        log::info!("session still open 2 s after unmount; exiting");
        std::process::exit(0);
    }) {
        report.failed(&format!("signal thread: {e}"));
        let _ = daemon::unmount(&mountpoint, true);
        return 1;
    }
    log::info!(
        "mounted {} ({} lower layers)",
        mountpoint.display(),
        union.layers.lowers.len()
    );
    report.ready();
    let result = session.run();
    drop(watchdog);
    match result {
        Ok(()) => {
            log::info!("unmounted {}", mountpoint.display());
            0
        }
        Err(e) => {
            log::error!("{}: session ended: {e}", mountpoint.display());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
