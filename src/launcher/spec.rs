//! What to run: the `Spec` of one container, whoever built it (`strata run`'s
//! argument parser in `cli::run` today; an OCI bundle's config.json later).
//!
//! Nothing here touches the system except `Spec::check_paths` (stat, and creating
//! a missing upper or work directory).

use super::error::{Error, Result};
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
    /// The layers record owners and modes in `user.containers.override_stat` (an
    /// image unpacked by an ordinary user): the union shows those.
    pub override_stat: bool,
    pub limits: Limits,
    /// Show the container /proc files computed from its cgroups (when it has limits).
    pub proc_view: bool,
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
    /// Set by `check_paths`: a read-only `--rootfs` lacks mount points, which are
    /// then made in a throwaway layer of the union instead of in the directory.
    pub private_mount_points: bool,
    /// Give the command a terminal of the container's own (a pty from its devpts),
    /// relayed to strata's stdin and stdout.
    pub tty: bool,
    /// Pass strata's stdin on (relayed to the terminal with `tty`); else the command's
    /// stdin is /dev/null (without `tty`) or nothing is typed into the terminal.
    pub interactive: bool,
    pub command: Vec<String>,
}

impl Spec {
    /// Does the root need the FUSE union (as opposed to a plain bind of `--rootfs`)?
    pub fn needs_union(&self) -> bool {
        match self.root {
            RootSource::Layers(_) => true,
            RootSource::Rootfs(_) => self.upper.is_some() || self.private_mount_points,
        }
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
        // A read-only root stays unchanged on the host: what the container
        // needs to mount on is made in a throwaway layer.
        if let (RootSource::Rootfs(r), true, None) = (&self.root, self.read_only, &self.upper) {
            let missing = super::rootfs::missing_mount_points(r, self)?;
            if !missing.is_empty() {
                log::info!(
                    "read-only rootfs {} lacks {missing:?}: they go in a throwaway layer",
                    r.display()
                );
            }
            self.private_mount_points = !missing.is_empty();
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

/// A small spec for unit tests elsewhere in the launcher.
#[cfg(test)]
pub fn test_spec() -> Spec {
    Spec {
        root: RootSource::Rootfs("/r".into()),
        upper: None,
        work: None,
        volatile: false,
        override_stat: false,
        limits: Limits::default(),
        proc_view: true,
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
        private_mount_points: false,
        tty: false,
        interactive: false,
        command: vec!["sh".into()],
    }
}
