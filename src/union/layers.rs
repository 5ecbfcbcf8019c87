//! The layer stack: the upper, the lowers and the workdir, each held open as a
//! directory fd. All later access to layer contents goes through these fds.

use super::Config;
use crate::sys;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One branch of the union.
#[derive(Debug)]
pub struct Layer {
    /// The resolved path (symlinks followed once, at mount time).
    pub path: PathBuf,
    pub fd: OwnedFd,
    pub dev: u64,
    pub ino: u64,
    /// Our own mount point when it lies inside this layer: its path in the
    /// layer and the directory under it, opened before mounting.
    pub covered: Option<(PathBuf, OwnedFd)>,
}

impl Layer {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Where a walk to `path` inside the layer starts: the layer root, or,
    /// when the path runs through the directory our own mount covers, that
    /// directory as it was opened before mounting (never our own mount: the
    /// daemon would wait for itself).
    fn base<'a>(&'a self, path: &'a Path) -> (BorrowedFd<'a>, &'a Path) {
        if let Some((rel, fd)) = &self.covered {
            if let Ok(rest) = path.strip_prefix(rel) {
                return (fd.as_fd(), rest);
            }
        }
        (self.fd(), path)
    }

    /// An O_PATH handle on a directory of the layer.
    pub fn open_dir_path(&self, path: &Path) -> io::Result<OwnedFd> {
        let (base, rest) = self.base(path);
        sys::open_dir_path(base, rest)
    }

    /// A directory of the layer, opened for reading its entries.
    pub fn open_dir_read(&self, path: &Path) -> io::Result<OwnedFd> {
        let (base, rest) = self.base(path);
        sys::open_dir_read(base, rest)
    }

    /// The object at `path`: its parent directory and its name.
    pub fn at(&self, path: &Path) -> io::Result<super::At> {
        let (base, rest) = self.base(path);
        super::At::open(base, rest)
    }
}

/// Which xattr namespace overlay metadata is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrNs {
    Trusted,
    User,
}

#[derive(Debug)]
pub struct LayerStack {
    pub upper: Option<Layer>,
    /// Lower layers, top first.
    pub lowers: Vec<Layer>,
    /// `WORKDIR/work`, where copy-ups and whiteouts are staged.
    pub work: Option<Layer>,
    pub xattr_ns: XattrNs,
}

/// A one-line, user-facing reason why the layers can't be mounted.
pub type LayerError = String;

fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) => "does not exist".into(),
        Some(libc::ENOTDIR) => "is not a directory".into(),
        Some(libc::EACCES) => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Resolves a layer path (following a symlinked root once) and opens it:
/// one path walk, then the fd tells the resolved path and the checks.
fn open_layer(role: &str, path: &Path) -> Result<Layer, LayerError> {
    let fail = |e: &io::Error| format!("{role} {}: {}", path.display(), describe(e));
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .map_err(|_| format!("{role} {}: invalid path", path.display()))?;
    // SAFETY: a valid C string; the fd is owned below.
    let raw = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(fail(&io::Error::last_os_error()));
    }
    // SAFETY: open returned a new fd.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let st = sys::fstat(fd.as_fd()).map_err(|e| fail(&e))?;
    // O_PATH handles need no permission: check that we may list and enter it.
    // SAFETY: plain syscall on our fd and an empty C string.
    let ok = unsafe {
        libc::faccessat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::R_OK | libc::X_OK,
            libc::AT_EMPTY_PATH,
        )
    };
    if ok != 0 {
        return Err(fail(&io::Error::last_os_error()));
    }
    let resolved = fs::read_link(format!("/proc/self/fd/{raw}")).map_err(|e| fail(&e))?;
    Ok(Layer {
        path: resolved,
        fd,
        dev: st.st_dev,
        ino: st.st_ino,
        covered: None,
    })
}

fn nested(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Checks and opens every layer the config names. Nothing on disk is
/// changed until every check has passed.
pub fn open(config: &Config) -> Result<LayerStack, LayerError> {
    let mut lowers = Vec::new();
    for p in &config.lowers {
        lowers.push(open_layer("lowerdir", p)?);
    }
    let upper = match &config.upper {
        Some(p) => Some(open_layer("upperdir", p)?),
        None => None,
    };
    // Same directory twice, or one layer inside another.
    let mut all: Vec<(&str, &Layer)> = lowers.iter().map(|l| ("lowerdir", l)).collect();
    if let Some(u) = &upper {
        all.insert(0, ("upperdir", u));
    }
    for (i, (ra, a)) in all.iter().enumerate() {
        for (rb, b) in all.iter().skip(i + 1) {
            if a.dev == b.dev && a.ino == b.ino {
                return Err(format!(
                    "{rb} {}: the same directory is given twice ({ra} {})",
                    b.path.display(),
                    a.path.display()
                ));
            }
            if (*ra == "upperdir" || *rb == "upperdir") && nested(&a.path, &b.path) {
                let (inner, outer) = if a.path.starts_with(&b.path) {
                    (a, b)
                } else {
                    (b, a)
                };
                return Err(format!(
                    "{}: is inside {} (upper and lower layers must not overlap)",
                    inner.path.display(),
                    outer.path.display()
                ));
            }
        }
    }
    let workdir = match (&upper, &config.work) {
        (Some(u), Some(w)) => Some(check_workdir(u, &lowers, w)?),
        (Some(u), None) => Some(auto_workdir(u)?),
        _ => None,
    };
    let mut stack = LayerStack {
        upper,
        lowers,
        work: None,
        xattr_ns: XattrNs::User,
    };
    if let Some(workdir) = workdir {
        stack.work = Some(prepare_work(&workdir)?);
        stack.xattr_ns = if config.userxattr {
            XattrNs::User
        } else {
            probe_xattr_ns(stack.work.as_ref())
        };
    } else if !config.userxattr && sys::geteuid() == 0 {
        stack.xattr_ns = XattrNs::Trusted;
    }
    Ok(stack)
}

impl LayerStack {
    /// Before mounting on `mountpoint` (resolved): remembers, for each layer
    /// that contains it, the directory the mount is about to cover.
    pub fn cover_mountpoint(&mut self, mountpoint: &Path) -> Result<(), LayerError> {
        for layer in self.upper.iter_mut().chain(self.lowers.iter_mut()) {
            if let Ok(rel) = mountpoint.strip_prefix(&layer.path) {
                let fd = sys::open_dir_path(layer.fd.as_fd(), rel).map_err(|e| {
                    format!("mountpoint {}: {}", mountpoint.display(), describe(&e))
                })?;
                layer.covered = Some((rel.to_path_buf(), fd));
            }
        }
        Ok(())
    }
}

fn check_workdir(upper: &Layer, lowers: &[Layer], w: &Path) -> Result<PathBuf, LayerError> {
    let work = open_layer("workdir", w)?;
    if work.dev != upper.dev {
        return Err(format!(
            "workdir {}: is on another filesystem than upperdir {}",
            w.display(),
            upper.path.display()
        ));
    }
    if nested(&work.path, &upper.path) {
        return Err(format!(
            "workdir {}: overlaps upperdir {} (they must be separate subtrees)",
            w.display(),
            upper.path.display()
        ));
    }
    if let Some(l) = lowers.iter().find(|l| nested(&work.path, &l.path)) {
        return Err(format!(
            "workdir {}: overlaps lowerdir {}",
            w.display(),
            l.path.display()
        ));
    }
    Ok(work.path)
}

/// The aufs form has no workdir: use a hidden sibling of the upper,
/// `PARENT/.NAME.strata-work`, which is outside the merged view and on the
/// same filesystem as the upper in all ordinary set-ups.
pub fn auto_workdir_path(upper: &Path) -> Result<PathBuf, LayerError> {
    let parent = upper.parent().ok_or_else(|| {
        format!(
            "upperdir {}: the root can't be the writable branch",
            upper.display()
        )
    })?;
    let name = upper
        .file_name()
        .unwrap_or(OsStr::new("upper"))
        .to_string_lossy();
    Ok(parent.join(format!(".{name}.strata-work")))
}

fn auto_workdir(upper: &Layer) -> Result<PathBuf, LayerError> {
    let path = auto_workdir_path(&upper.path)?;
    match fs::create_dir(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(format!(
                "workdir {}: can't create it: {}",
                path.display(),
                describe(&e)
            ))
        }
    }
    let meta =
        fs::metadata(&path).map_err(|e| format!("workdir {}: {}", path.display(), describe(&e)))?;
    if meta.dev() != upper.dev {
        return Err(format!(
            "workdir {}: is on another filesystem than upperdir {}",
            path.display(),
            upper.path.display()
        ));
    }
    Ok(path)
}

/// Opens `WORKDIR/work` (as kernel overlayfs does) and empties it: what a
/// crashed mount left there was never visible and is not needed.
fn prepare_work(workdir: &Path) -> Result<Layer, LayerError> {
    let work = workdir.join("work");
    match fs::create_dir(&work) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("workdir {}: {}", workdir.display(), describe(&e))),
    }
    let layer = open_layer("workdir", &work)?;
    let leftovers = clean_dir(layer.fd())
        .map_err(|e| format!("workdir {}: cleaning leftovers: {e}", work.display()))?;
    if leftovers > 0 {
        log::info!(
            "removed {leftovers} leftover entries from {}",
            work.display()
        );
    }
    Ok(layer)
}

/// Removes everything inside a directory; returns how many top-level entries went.
pub fn clean_dir(dir: BorrowedFd) -> io::Result<usize> {
    let rfd = sys::open_dir_read(dir, Path::new(""))?;
    let entries = sys::read_dir_fd(rfd.as_fd())?;
    for e in &entries {
        remove_tree(dir, &e.name)?;
    }
    Ok(entries.len())
}

/// Removes `name` in `dir`, recursively if it is a directory; never follows symlinks.
pub fn remove_tree(dir: BorrowedFd, name: &OsStr) -> io::Result<()> {
    let st = match sys::stat_at_opt(dir, name)? {
        Some(st) => st,
        None => return Ok(()),
    };
    if sys::is_dir(&st) {
        let sub = sys::open_dir_read(dir, Path::new(name))?;
        for e in sys::read_dir_fd(sub.as_fd())? {
            remove_tree(sub.as_fd(), &e.name)?;
        }
        sys::unlink_at(dir, name, true)
    } else {
        sys::unlink_at(dir, name, false)
    }
}

/// Kernel rule: trusted.* needs CAP_SYS_ADMIN in the initial namespace. Try it.
fn probe_xattr_ns(work: Option<&Layer>) -> XattrNs {
    let Some(work) = work else {
        return XattrNs::User;
    };
    let name = OsStr::new("trusted.overlay.strata-probe");
    match sys::xattr::set(work.fd(), OsStr::new(""), name, b"1", 0) {
        Ok(()) => {
            let _ = sys::xattr::remove(work.fd(), OsStr::new(""), name);
            XattrNs::Trusted
        }
        Err(_) => XattrNs::User,
    }
}
