//! Serving a union on a mount point: the checks before mounting, the FUSE
//! session, going to the background, the watchdog, signals and unmounting.
//!
//! It owns the kernel-facing mount options (`SessionOptions`: allow_other, suid,
//! fsname, threads...) and the daemon's process life. It never parses argv, prints
//! or picks an exit code: `Error` says what failed, the caller shows it.

mod process;

pub use process::{unmount, unmount_strata, FSTYPE};

use crate::sys;
use crate::union::{fs::StrataFs, layers, Atime, Config, Union};
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
    /// The superblock's `lazytime`, `sync` and `dirsync` flags.
    pub lazytime: bool,
    pub sync: bool,
    pub dirsync: bool,
    /// Request-serving threads (default: CPUs, clamped to 2..=8).
    pub threads: Option<usize>,
}

/// The daemon process's own files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaemonOptions {
    /// Where the daemon's stderr (its log) goes: from the start in the
    /// foreground, once the mount is live in the background. Appended to.
    pub log_file: Option<PathBuf>,
    /// Written with the serving process's pid once the mount is live, removed
    /// when it ends.
    pub pid_file: Option<PathBuf>,
}

/// Everything one mount needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MountConfig {
    pub union: Config,
    pub session: SessionOptions,
    pub daemon: DaemonOptions,
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
    let log = match &config.daemon.log_file {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| Error::Failed(format!("log file {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let mut report = if foreground {
        if let Some(log) = &log {
            process::redirect_stderr(log);
        }
        process::foreground()
    } else {
        match process::background(log)? {
            process::Role::Daemon(report) => report,
            process::Role::Launched => return Ok(Served::Launched),
        }
    };
    // What the daemon creates gets exactly the mode the kernel asked for.
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
    // An arena per request-serving thread at most, the other threads sharing
    // them. With glibc's default (8 per CPU: one per thread here) the memory of
    // forgotten nodes stayed in the arenas: 10 to 19 MB after drop_caches
    // against 8 MB with this, for the same walk and no slower.
    sys::process::set_malloc_arenas(config.session.threads.unwrap_or_else(default_threads));
    let union = match Union::new(layers, &config.union) {
        Ok(u) => Arc::new(u),
        Err(e) => return Err(report.failed(format!("{}: {e}", mountpoint.display()))),
    };
    let fuse_config = fuser_config(&config.session, &config.union, union.read_only);
    let fs = StrataFs {
        union: union.clone(),
        negative_ttl: true,
        opendir_unasked: false,
    };
    let session = match fuser::Session::new(fs, &mountpoint, &fuse_config) {
        Ok(s) => s,
        Err(e) => {
            return Err(report.failed(format!(
                "mountpoint {}: mount failed: {e}",
                mountpoint.display()
            )))
        }
    };
    if let Err(e) = set_flags_after_mount(&config.session, &config.union, &mountpoint) {
        let _ = unmount(&mountpoint, true);
        return Err(report.failed(format!(
            "mountpoint {}: setting the mount's flags: {e}",
            mountpoint.display()
        )));
    }
    let watchdog = match process::start_watchdog(&mountpoint) {
        Ok(w) => w,
        Err(e) => {
            let _ = unmount(&mountpoint, true);
            return Err(report.failed(format!("watchdog: {e}")));
        }
    };
    let _ = union.notifier.set(session.notifier());
    let mp = mountpoint.clone();
    if let Err(e) = process::spawn_signal_thread(move |_| {
        // Signals come while we serve, so the mount on top at the path is ours.
        if let Err(e) = unmount(&mp, false) {
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
    if let Some(p) = &config.daemon.pid_file {
        if let Err(e) = write_pid_file(p) {
            let _ = unmount(&mountpoint, true);
            return Err(report.failed(format!("pid file {}: {e}", p.display())));
        }
    }
    report.ready();
    let result = serve_until_unmounted(session);
    if let Some(p) = &config.daemon.pid_file {
        let _ = std::fs::remove_file(p);
    }
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

/// Sets the flags fuser's own mount(2) cannot (`strictatime`, `nodiratime`,
/// `lazytime`) with a remount, which gives the mount all its flags anew. Only
/// where the daemon mounted directly (as root, or root of a user namespace):
/// fusermount3 (3.14) refuses them, and an ordinary user's mount goes without
/// (the union keeps the atime rule either way).
fn set_flags_after_mount(
    opts: &SessionOptions,
    union: &Config,
    mountpoint: &Path,
) -> std::io::Result<()> {
    let wanted = union.atime == Atime::Always || !union.dir_atime || opts.lazytime;
    if sys::geteuid() != 0 || !wanted {
        return Ok(());
    }
    let flag = |on: bool, flag: libc::c_ulong| if on { flag } else { 0 };
    // As root, suid and dev are on unless asked off (see `fuser_config`).
    let flags = libc::MS_REMOUNT
        | flag(union.read_only, libc::MS_RDONLY)
        | flag(opts.sync, libc::MS_SYNCHRONOUS)
        | flag(opts.lazytime, libc::MS_LAZYTIME)
        | flag(opts.suid == Some(false), libc::MS_NOSUID)
        | flag(opts.dev == Some(false), libc::MS_NODEV)
        | flag(opts.exec == Some(false), libc::MS_NOEXEC)
        | flag(!union.dir_atime, libc::MS_NODIRATIME)
        | match union.atime {
            Atime::Never => libc::MS_NOATIME,
            Atime::Relative => libc::MS_RELATIME,
            Atime::Always => libc::MS_STRICTATIME,
        };
    sys::mount::mount(None, mountpoint, None, flags, None)
}

/// Runs the session until the kernel ends it, and then leaves the mount alone.
///
/// fuser unmounts by path when its session (or the `Mount` it holds) is
/// dropped, and it does so after the kernel's FUSE_DESTROY, before the
/// connection is marked dead: by then `strata umount` has returned and a new
/// mount may sit at the path. So the session runs on fuser's own thread with
/// its `Mount` kept aside, and that is never dropped. Should our mount still be
/// there (the session failed), the watchdog detaches it once we exit, having
/// checked that it is ours.
fn serve_until_unmounted(session: fuser::Session<StrataFs>) -> std::io::Result<()> {
    let background = std::mem::ManuallyDrop::new(session.spawn()?);
    // Joined, not polled: an idle daemon does not wake up. SAFETY: `guard` is
    // moved out once, and `background` is never dropped nor used again, so
    // nothing is dropped twice.
    let guard = unsafe { std::ptr::read(&background.guard) };
    guard
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the FUSE session thread panicked")))
}

/// Writes our pid to `path` atomically (a staged file renamed into place).
fn write_pid_file(path: &Path) -> std::io::Result<()> {
    let mut staged = path.as_os_str().to_owned();
    staged.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&staged, format!("{}\n", std::process::id()))?;
    std::fs::rename(&staged, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&staged);
    })
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

fn fuser_config(opts: &SessionOptions, union: &Config, read_only: bool) -> fuser::Config {
    let root = sys::geteuid() == 0;
    let atime = union.atime;
    let mut mo = vec![
        MountOption::FSName(opts.fsname.clone().unwrap_or_else(|| "strata".into())),
        MountOption::Subtype("strata".into()),
        MountOption::DefaultPermissions,
    ];
    // fuser's own mount(2) (as root, or root in a user namespace) passes the
    // type as plain "fuse" and leaves the subtype to fusermount3; the kernel
    // takes it as a mount option too, so `findmnt -t fuse.strata` finds both.
    if root {
        mo.push(MountOption::CUSTOM("subtype=strata".into()));
    }
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
    // strictatime, nodiratime and lazytime: fuser has no flag for them, and
    // fusermount3 (3.14) refuses them; as root `set_flags_after_mount` sets
    // them. The union keeps the atime rule itself either way.
    if atime == Atime::Never {
        mo.push(MountOption::NoAtime);
    }
    if opts.sync {
        mo.push(MountOption::Sync);
    }
    if opts.dirsync {
        mo.push(MountOption::DirSync);
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
