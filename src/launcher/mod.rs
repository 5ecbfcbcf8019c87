//! `strata run`: the launcher. A container is an ordinary process that the kernel fences
//! in; this module puts the command inside the layers, in new namespaces, under cgroup
//! limits, with pivot_root.
//!
//! Processes (rootless adds the user namespace to strata itself):
//!
//! ```text
//! strata (parent: signals, exit status, clean-up;      [user ns + outer mount ns]
//!         with limits, threads serving the /proc view)
//!  ├─ guardian       (removes cgroups if strata is killed)   [host namespaces]
//!  ├─ strata mount -f (FUSE daemon for the union)            [outer mount ns, own cgroup]
//!  └─ container: PID 1 in new mount/pid/uts/ipc/net/cgroup ns, joins the limit cgroups,
//!       pivots into the union, execs the command (or, with --init, runs it as a child)
//! ```
//!
//! With `-t` the container opens a pty of its own devpts and sends the master to strata,
//! which relays it to its own terminal (`tty`).
//!
//! One module per kernel concept: `userns`, `namespaces`, `cgroups`, `rootfs`, `union`,
//! `init` (signals, reaping), `exec` (credentials, caps, execve), `tty` (the terminal,
//! stdin), `procview` (/proc files from the container's cgroups), `cleanup`, `spec`.
//!
//! It takes a `Spec` and returns the command's status or an `Error`; it never parses
//! argv or prints (warnings go to the caller's `warn`), and it reaches the union
//! only by starting `strata mount -f`, never by linking `union`.

mod cgroups;
mod cleanup;
pub mod error;
mod exec;
mod init;
mod mounts;
mod namespaces;
mod procview;
mod rootfs;
pub mod spec;
mod tty;
mod union;
mod userns;

use crate::sys;
pub use error::Error;
use error::{Context, Result};
use mounts::{mount, remount_ro, umount_detach};
pub use spec::{BindMount, Limits, Net, RootSource, Spec};
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What has to be undone at the end, in order.
#[derive(Default)]
struct Resources {
    guardian: Option<cleanup::Guardian>,
    cgroups: Option<cgroups::Cgroups>,
    state_dir: Option<PathBuf>,
    state_mounted: bool,
    union: Option<union::UnionMount>,
}

impl Resources {
    fn release(mut self) {
        if let Some(mut u) = self.union.take() {
            u.stop();
        }
        if let Some(s) = &self.state_dir {
            if self.state_mounted {
                let _ = umount_detach(s);
            }
            if let Err(e) = std::fs::remove_dir(s) {
                log::warn!("cannot remove {}: {e}", s.display());
            }
        }
        if let Some(c) = &self.cgroups {
            c.remove();
        }
        if let Some(g) = self.guardian.take() {
            g.release();
        }
    }
}

/// Runs the container the spec describes and waits for it; returns its exit
/// status as a shell reports it (128+N when killed by signal N). What can't be
/// honoured but need not stop the container (rootless limits) goes to `warn`.
pub fn run(spec: Spec, warn: &dyn Fn(&str)) -> Result<i32> {
    // SAFETY: geteuid cannot fail.
    let rootless = unsafe { libc::geteuid() } != 0;
    init::block_signals()?;
    let mut res = Resources {
        cgroups: cgroups::setup(&spec.limits, spec.proc_view, rootless, warn)?,
        ..Default::default()
    };
    let result = (|| {
        if spec.needs_union() {
            res.state_dir = Some(cleanup::make_state_dir()?);
        }
        if res.cgroups.is_some() || res.state_dir.is_some() {
            let dirs = res.cgroups.as_ref().map(|c| c.dirs()).unwrap_or_default();
            let home = res.cgroups.as_ref().and_then(|c| c.home_procs());
            res.guardian = Some(cleanup::Guardian::spawn(dirs, home, res.state_dir.clone())?);
        }
        start(&spec, rootless, &mut res)
    })();
    res.release();
    result
}

fn start(spec: &Spec, rootless: bool, res: &mut Resources) -> Result<i32> {
    if rootless && spec.needs_union() {
        // SAFETY: access with a valid C string.
        if unsafe { libc::access(c"/dev/fuse".as_ptr(), libc::R_OK | libc::W_OK) } != 0 {
            return Err(Error::last_os(
                "the union needs /dev/fuse, which this user cannot open (rootless FUSE needs \
                 mode 0666: chmod 0666 /dev/fuse as root)",
            ));
        }
    }
    if rootless {
        userns::enter()?;
    }
    let root = match (&spec.root, res.state_dir.clone()) {
        (RootSource::Rootfs(dir), _) if !spec.needs_union() => dir.clone(),
        (_, Some(state)) => mount_union(spec, &state, res)?,
        (_, None) => return Err(Error::new("internal: union without a state directory")),
    };
    let (err_r, err_w) = sys::process::pipe().context(|| "pipe2".into())?;
    let (go_r, go_w) = sys::process::pipe().context(|| "pipe2".into())?;
    let procs = res
        .cgroups
        .as_ref()
        .map(|c| c.procs_files())
        .unwrap_or_default();
    let guardian_fd = res.guardian.as_ref().and_then(|g| g.fd());
    let (tty_inside, relay) = match spec.tty {
        true => tty::channel(spec.interactive).map(|(i, r)| (Some(i), Some(r)))?,
        false => (None, None),
    };
    // The /proc view: its sources, the CPUs to pin the container to when the view
    // shows fewer than it may use (so that nproc agrees), and a socket pair for the
    // /dev/fuse descriptor the container mounts it with.
    let view = match (&res.cgroups, spec.proc_view) {
        (Some(c), true) => {
            let src = c.view_sources();
            let (_, visible) = procview::cpus(&src);
            let now = sys::process::affinity().map(|a| a.len()).unwrap_or(0);
            let pin = (visible.len() < now).then(|| visible.clone());
            let (ours, theirs) = sys::process::socketpair().context(|| "socketpair".into())?;
            Some((src, ours, theirs, pin))
        }
        _ => None,
    };
    let pid =
        sys::process::clone_fork(namespaces::clone_flags(spec.net)).context(|| "clone".into())?;
    if pid == 0 {
        drop((err_r, go_w, relay));
        if let Some(fd) = guardian_fd {
            // SAFETY: our copy of the guardian's pipe; the container must not hold it.
            unsafe { libc::close(fd) };
        }
        let view = view.map(|(_, ours, theirs, pin)| {
            drop(ours);
            (theirs, pin)
        });
        container(spec, &root, rootless, &procs, go_r, err_w, tty_inside, view);
    }
    drop((err_w, go_r, tty_inside));
    if let Some((src, ours, theirs, _)) = view {
        drop(theirs);
        // Threads only after the fork: the child must not inherit locks held by them.
        if let Err(e) = procview::serve(procview::View::new(src, pid as u32), ours) {
            log::warn!("proc view not served: {e}");
        }
    }
    sys::process::write_all_raw(go_w.as_raw_fd(), b"g");
    drop(go_w);
    init::supervise(pid, err_r, relay)
}

/// Mounts the union at STATE/merged, in a new private mount namespace of strata's own.
fn mount_union(spec: &Spec, state: &Path, res: &mut Resources) -> Result<PathBuf> {
    sys::mount::unshare(libc::CLONE_NEWNS).context(|| "unshare(CLONE_NEWNS)".into())?;
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    let tmpfs = Some(OsStr::new("tmpfs"));
    mount(
        tmpfs,
        state,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0700"),
    )?;
    res.state_mounted = true;
    let mkdir = |p: PathBuf| {
        std::fs::create_dir_all(&p)
            .map(|_| p.clone())
            .map_err(|e| Error::io(format!("create {}", p.display()), e))
    };
    let merged = mkdir(state.join("merged"))?;
    let lowers = match &spec.root {
        RootSource::Layers(l) => l.clone(),
        RootSource::Rootfs(r) => vec![r.clone()],
    };
    let upper_work = match (&spec.upper, &spec.work) {
        (Some(u), Some(w)) => Some((u.clone(), w.clone())),
        (Some(u), None) => {
            let mut w = u.clone().into_os_string();
            w.push(".work");
            Some((u.clone(), mkdir(PathBuf::from(w))?))
        }
        // Throwaway, also for a read-only root: mount points the layers lack
        // are made there; the root is then remounted read-only.
        (None, _) => Some((mkdir(state.join("upper"))?, mkdir(state.join("work"))?)),
    };
    let opts = union::options(
        &lowers,
        upper_work.as_ref().map(|(u, w)| (u.as_path(), w.as_path())),
        spec.volatile,
        spec.override_stat,
    );
    let exe = std::env::current_exe().map_err(|e| Error::io("find the strata binary", e))?;
    let mount = union::UnionMount::start(&exe, &opts, &merged)?;
    if let (Some(g), Some(pid)) = (&res.guardian, mount.pid()) {
        g.kill_on_death(pid);
    }
    res.union = Some(mount);
    Ok(merged)
}

/// The container process, from clone to exec. Never returns: errors go to the error pipe.
/// `view`: the socket to hand the /proc view's /dev/fuse to strata over, and the CPUs
/// to pin to.
#[allow(clippy::too_many_arguments)]
fn container(
    spec: &Spec,
    root: &Path,
    rootless: bool,
    procs: &[PathBuf],
    go: OwnedFd,
    err: OwnedFd,
    tty: Option<tty::Inside>,
    view: Option<(OwnedFd, Option<Vec<u32>>)>,
) -> ! {
    let err_fd = err.as_raw_fd();
    std::mem::forget(err); // stays open until exec (close-on-exec)
    let setup = || -> Result<()> {
        sys::process::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
            .context(|| "prctl(PR_SET_PDEATHSIG)".into())?;
        // strata may have died before PDEATHSIG was set: then the pipe is closed unwritten.
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into a valid buffer.
        if unsafe { libc::read(go.as_raw_fd(), b.as_mut_ptr().cast(), 1) } != 1 {
            sys::process::exit_now(error::EXIT_LAUNCHER);
        }
        drop(go);
        cgroups::join(procs)?;
        sys::mount::unshare(libc::CLONE_NEWCGROUP).context(|| "unshare(CLONE_NEWCGROUP)".into())?;
        namespaces::set_hostname(&spec.hostname)?;
        if spec.net == spec::Net::None {
            namespaces::loopback_up()?;
        }
        rootfs::prepare_root(root)?;
        rootfs::apply(root, &rootfs::plan(spec), rootless)?;
        if let Some((sock, pin)) = view {
            attach_view(root, sock, pin.as_deref());
        }
        let wd = rootfs::secure_join(root, &spec.workdir)?;
        if !wd.exists() {
            std::fs::create_dir_all(&wd)
                .map_err(|e| Error::io(format!("--workdir {}", spec.workdir.display()), e))?;
        }
        if spec.read_only {
            remount_ro(root)?;
        }
        rootfs::switch_root(root, spec.no_pivot)?;
        match tty {
            Some(t) => t.attach(spec.user),
            None if !spec.interactive => tty::stdin_null(),
            None => Ok(()),
        }
    };
    if let Err(e) = setup() {
        init::fail(err_fd, &e);
    }
    if spec.init {
        sys::process::prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
            .context(|| "prctl(PR_SET_NO_NEW_PRIVS)".into())
            .and_then(|_| exec::drop_bounding_caps())
            .unwrap_or_else(|e| init::fail(err_fd, &e));
        init::pid1(err_fd, || exec::exec_command(spec));
    }
    init::fail(err_fd, &exec::exec_command(spec))
}

/// Puts the /proc view over the container's files. Whatever fails, the container
/// keeps the real files: the reason is logged, never an error.
fn attach_view(root: &Path, sock: OwnedFd, pin: Option<&[u32]>) {
    match procview::attach(root, &sock) {
        Ok(n) => log::debug!("proc view: {n} files bound"),
        Err(e) if e.msg.starts_with("open /dev/fuse") => {
            return log::info!("proc view not attached: {e}")
        }
        Err(e) => {
            return log::warn!("proc view not attached, the container sees the host's files: {e}")
        }
    }
    // Only with the view: then nproc (sched_getaffinity) agrees with /proc/cpuinfo.
    if let Some(cpus) = pin {
        if let Err(e) = sys::process::set_affinity(cpus) {
            log::warn!("cannot pin the container to CPUs {cpus:?}: {e}");
        }
    }
    if let Err(e) = procview::intercept_sysinfo(sock) {
        log::info!("sysinfo(2) shows the host's values: {e}");
    }
}
