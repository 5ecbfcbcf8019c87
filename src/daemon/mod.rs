//! Serving a union on a mount point: the checks before mounting, the FUSE
//! session, going to the background, the watchdog, signals and unmounting.
//!
//! It owns the kernel-facing mount options (`SessionOptions`: allow_other, suid,
//! fsname, threads...) and the daemon's process life. It never parses argv, prints
//! or picks an exit code: `Error` says what failed, the caller shows it.

mod process;

pub use process::unmount;

use crate::sys;
use crate::union::{fs::StrataFs, layers, Config, Union};
use fuser::{MountOption, SessionACL};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Options of the FUSE mount itself, as opposed to the union's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionOptions {
    /// The source shown in /proc/mounts (default `strata`).
    pub fsname: Option<String>,
    pub allow_other: bool,
    pub allow_root: bool,
    /// `None`: the default (on as root, as for a kernel overlayfs mount).
    pub suid: Option<bool>,
    pub dev: Option<bool>,
    pub exec: Option<bool>,
    pub noatime: bool,
    /// Request-serving threads (default: CPUs, clamped to 2..=8).
    pub threads: Option<usize>,
}

/// Everything one mount needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MountConfig {
    pub union: Config,
    pub session: SessionOptions,
}

/// Why a mount failed or ended badly.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A one-line reason, naming the path or layer, for the caller to show.
    Failed(String),
    /// A daemon's failure already sent to the process waiting for it.
    Reported,
}

/// How `serve` returned without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The union was mounted and has been unmounted again.
    Unmounted,
    /// This is the launching process: the daemon in the background reported the
    /// mount live.
    Launched,
}

/// Checks everything, mounts `config` on `mountpoint`, and serves it until it is
/// unmounted. With `foreground` false the daemon goes to the background first, and
/// the calling process returns `Launched` as soon as the mount is live.
pub fn serve(config: &MountConfig, mountpoint: &Path, foreground: bool) -> Result<Served, Error> {
    let (mountpoint, layers) = check_mountpoint(mountpoint)
        .and_then(|mp| check_dev_fuse().map(|_| mp))
        .and_then(|mp| layers::open(&config.union).map(|l| (mp, l)))
        .and_then(|(mp, mut layers)| layers.cover_mountpoint(&mp).map(|_| (mp, layers)))
        .map_err(Error::Failed)?;
    let mut report = if foreground {
        process::foreground()
    } else {
        match process::background(&mountpoint)? {
            process::Role::Daemon(report) => report,
            process::Role::Launched => return Ok(Served::Launched),
        }
    };
    // What the daemon creates gets exactly the mode the kernel asked for.
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
    let union = match Union::new(layers, &config.union) {
        Ok(u) => Arc::new(u),
        Err(e) => return Err(report.failed(format!("{}: {e}", mountpoint.display()))),
    };
    let fuse_config = fuser_config(&config.session, union.read_only);
    let fs = StrataFs {
        union: union.clone(),
        negative_ttl: true,
    };
    let mut session = match fuser::Session::new(fs, &mountpoint, &fuse_config) {
        Ok(s) => s,
        Err(e) => {
            return Err(report.failed(format!(
                "mountpoint {}: mount failed: {e}",
                mountpoint.display()
            )))
        }
    };
    // In the background the watchdog is our parent already.
    let watchdog = if foreground {
        match process::start_watchdog(&mountpoint) {
            Ok(w) => Some(w),
            Err(e) => {
                let _ = unmount(&mountpoint, true);
                return Err(report.failed(format!("watchdog: {e}")));
            }
        }
    } else {
        None
    };
    let _ = union.notifier.set(session.notifier());
    let mut unmounter = session.unmount_callable();
    let mp = mountpoint.clone();
    if let Err(e) = process::spawn_signal_thread(move |_| {
        if let Err(e) = unmounter.unmount() {
            log::warn!("unmount failed ({e}); detaching lazily");
            let _ = unmount(&mp, true);
        }
        // The session ends once the kernel drops the connection; should a
        // process still pin a detached mount, do not linger for it.
        std::thread::sleep(std::time::Duration::from_secs(2));
        log::info!("session still open 2 s after unmount; exiting");
        sys::process::exit_now(0);
    }) {
        let _ = unmount(&mountpoint, true);
        return Err(report.failed(format!("signal thread: {e}")));
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
            Ok(Served::Unmounted)
        }
        Err(e) => {
            // A background daemon's stderr is gone by now: the log keeps it.
            let msg = format!("{}: session ended: {e}", mountpoint.display());
            log::error!("{msg}");
            Err(Error::Failed(msg))
        }
    }
}

fn check_mountpoint(mp: &Path) -> Result<PathBuf, String> {
    let resolved = std::fs::canonicalize(mp).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => format!("mountpoint {}: does not exist", mp.display()),
        _ => format!("mountpoint {}: {e}", mp.display()),
    })?;
    if !resolved.is_dir() {
        return Err(format!("mountpoint {}: is not a directory", mp.display()));
    }
    if sys::mount::is_mount_point(&resolved) {
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
                sys::geteuid()
            ),
            _ => format!("/dev/fuse: {e}"),
        }),
    }
}

/// The default number of request-serving threads.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
}

fn fuser_config(opts: &SessionOptions, read_only: bool) -> fuser::Config {
    let root = sys::geteuid() == 0;
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
    let mut config = fuser::Config::default();
    config.mount_options = mo;
    config.acl = if opts.allow_other || (root && !opts.allow_root) {
        SessionACL::All
    } else if opts.allow_root {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(opts.threads.unwrap_or_else(default_threads));
    config.clone_fd = true;
    config
}
