//! The union filesystem: kernel overlayfs semantics and on-disk format over a
//! stack of directories, served as a `fuser::Filesystem` (`fs::StrataFs`).
//!
//! It owns the layers (held as directory fds), the node table, copy-up and the
//! on-disk format. It takes a `Config` and never knows who built it: no argv, no
//! process life (that is `daemon`), no printing. Terms follow the kernel's
//! `Documentation/filesystems/overlayfs.rst`: lower, upper, workdir, whiteout,
//! opaque, copy-up, redirect, metacopy.

pub mod atime;
pub mod attr;
mod config;
pub mod copyup;
pub mod export;
pub mod files;
pub mod fs;
pub mod handles;
pub mod idmap;
pub mod inode;
pub mod ioctl;
pub mod layers;
pub mod lookup;
pub mod namespace;
pub mod override_stat;
pub mod ovl;
pub mod passthrough;
pub mod privs;
#[cfg(test)]
mod races;
pub mod readdir;
pub mod xattrs;

use crate::sys;
pub use config::{Atime, Config, DEFAULT_TTL};
use inode::{InodeTable, Key, LowerLoc, Node, NodeState};
use layers::LayerStack;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How many stripes the per-directory locks have.
const DIR_LOCK_STRIPES: usize = 64;

/// How many directory fds `dir_fd` keeps open at most.
pub const DIR_FD_CACHE: usize = 256;

/// Result of a union operation: an errno on failure.
pub type OpResult<T> = Result<T, i32>;

pub fn err(e: io::Error) -> i32 {
    sys::errno(&e)
}

/// Called with the name of each `race_point` reached (unit tests only).
#[cfg(test)]
pub(crate) type RaceHook = Arc<dyn Fn(&'static str) + Send + Sync>;

/// The mounted union: layers, inode table, open handles.
pub struct Union {
    pub layers: LayerStack,
    pub inodes: InodeTable,
    pub handles: handles::HandleTable,
    /// Directory listings being read (`readdir.rs`).
    pub listings: readdir::Listings,
    /// Cache timeout handed to the kernel for entries and attributes.
    pub ttl: Duration,
    pub read_only: bool,
    pub redirect_dir: bool,
    pub volatile: bool,
    /// chmod/chown/utimens/xattr changes copy up metadata only.
    pub metacopy: bool,
    /// When reads update atime (`atime.rs`).
    pub atime: Atime,
    pub dir_atime: bool,
    /// The upper layer through a private copy of its mount that has the
    /// union's atime rule (as root): reads through it, the kernel's passthrough
    /// reads included, update atime exactly as that rule says.
    pub atime_view: Option<OwnedFd>,
    /// fsync the upper directory after each change of names in it.
    pub sync_dirs: bool,
    /// Owners as the mount shows them (`idmap.rs`).
    pub ids: idmap::Ids,
    /// Directories report one link.
    pub static_nlink: bool,
    /// FUSE_POSIX_ACL is asked for.
    pub posix_acl: bool,
    /// Owners and modes in override xattrs: the names each layer holds.
    pub overrides: Option<override_stat::Overrides>,
    /// Running as root (in our user namespace): ownership can be set freely.
    pub privileged: bool,
    /// Renames take it for writing; every op that walks paths takes it for
    /// reading, so a path computed from the parent chain stays valid.
    pub rename_lock: RwLock<()>,
    tmp_counter: AtomicU64,
    /// Passthrough was asked for (option) ...
    pub want_passthrough: bool,
    /// ... and negotiated with the kernel at FUSE_INIT.
    pub passthrough: std::sync::atomic::AtomicBool,
    /// The kernel's writeback cache was asked for (option) ...
    pub want_writeback: bool,
    /// ... and negotiated (only without passthrough: they exclude each other).
    pub writeback: std::sync::atomic::AtomicBool,
    /// Tells the kernel about attribute changes it did not ask for.
    pub notifier: std::sync::OnceLock<fuser::Notifier>,
    dir_fds: std::sync::Mutex<std::collections::HashMap<(u64, u32), Arc<OwnedFd>>>,
    /// Striped per-directory locks: lookups (the kernel revalidates entries
    /// without holding the directory) take a stripe shared, creates and
    /// removals in that directory take it exclusive, and so does a copy-up
    /// of a non-directory while it puts the copy in place. Whoever holds a
    /// stripe never copies up a non-directory (that could wait for its own
    /// stripe, or for one held by a thread waiting for this one).
    dir_locks: Vec<RwLock<()>>,
    /// Names of lower hard-linked files removed through this mount, by
    /// (lower layer, inode): the other names show that many links less.
    pub removed_lower_links: std::sync::Mutex<std::collections::HashMap<(usize, u64), u32>>,
    /// Name (in the workdir) of the whiteout that new whiteouts link to.
    pub shared_whiteout: std::sync::Mutex<Option<std::ffi::OsString>>,
    /// Unit tests hold a thread at a `race_point` with this, to force a race.
    #[cfg(test)]
    pub(crate) race_hook: std::sync::Mutex<Option<RaceHook>>,
}

/// An object named inside a directory of one layer: the directory's fd and
/// the name (empty for the directory itself, i.e. a layer root).
pub struct At {
    pub dir: Arc<OwnedFd>,
    pub name: std::ffi::OsString,
}

impl At {
    pub fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Opens the parent directory of `path` beneath `layer` (never following symlinks).
    pub fn open(layer: BorrowedFd, path: &Path) -> io::Result<At> {
        match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => Ok(At {
                dir: Arc::new(sys::open_dir_path(layer, parent)?),
                name: name.to_os_string(),
            }),
            _ => Ok(At {
                dir: Arc::new(sys::open_dir_path(layer, Path::new(""))?),
                name: Default::default(),
            }),
        }
    }

    pub fn stat(&self) -> io::Result<sys::Stat> {
        sys::stat_at(self.dir(), &self.name)
    }
}

impl Union {
    pub fn new(layers: LayerStack, config: &Config) -> io::Result<Union> {
        let top = layers.upper.as_ref().unwrap_or(&layers.lowers[0]);
        let root_st = sys::fstat(top.fd())?;
        let mut lowers = Vec::new();
        let mut opaque = false;
        if let Some(upper) = &layers.upper {
            opaque = ovl::dir_marks(upper.fd(), OsStr::new(""), false)?.opaque;
        }
        if !opaque {
            for i in 0..layers.lowers.len() {
                lowers.push(LowerLoc {
                    layer: i,
                    path: PathBuf::new(),
                });
                if ovl::dir_marks(layers.lowers[i].fd(), OsStr::new(""), false)?.opaque {
                    break;
                }
            }
        }
        let root = NodeState {
            parent: 0,
            name: Default::default(),
            aliases: Vec::new(),
            upper: layers.upper.is_some(),
            lowers,
            unlinked: false,
            metacopy: false,
            orphan: None,
            key: Key::Upper(root_st.st_ino),
        };
        let read_only = config.read_only || layers.upper.is_none();
        let overrides = match config.xattr_permissions {
            Some(mode) => {
                let lowers: Vec<BorrowedFd> = layers.lowers.iter().map(|l| l.fd()).collect();
                let upper = layers.upper.as_ref().map(|u| u.fd());
                Some(override_stat::open(mode, upper, !read_only, &lowers)?)
            }
            None => None,
        };
        Ok(Union {
            inodes: InodeTable::new(root),
            handles: handles::HandleTable::default(),
            listings: Default::default(),
            ttl: config.ttl,
            read_only,
            redirect_dir: config.redirect_dir,
            volatile: config.volatile,
            metacopy: config.metacopy,
            atime: config.atime,
            dir_atime: config.dir_atime,
            atime_view: atime::view(&layers, config),
            sync_dirs: config.sync_dirs,
            ids: config.ids.clone(),
            static_nlink: config.static_nlink,
            posix_acl: config.posix_acl,
            overrides,
            privileged: sys::geteuid() == 0,
            rename_lock: RwLock::new(()),
            tmp_counter: AtomicU64::new(0),
            want_passthrough: config.passthrough,
            passthrough: std::sync::atomic::AtomicBool::new(false),
            want_writeback: config.writeback,
            writeback: std::sync::atomic::AtomicBool::new(false),
            notifier: std::sync::OnceLock::new(),
            dir_fds: Default::default(),
            dir_locks: (0..DIR_LOCK_STRIPES).map(|_| RwLock::new(())).collect(),
            removed_lower_links: Default::default(),
            shared_whiteout: Default::default(),
            #[cfg(test)]
            race_hook: Default::default(),
            layers,
        })
    }

    pub fn upper(&self) -> OpResult<&layers::Layer> {
        self.layers.upper.as_ref().ok_or(libc::EROFS)
    }

    pub fn work_fd(&self) -> OpResult<BorrowedFd<'_>> {
        self.layers.work.as_ref().map(|w| w.fd()).ok_or(libc::EROFS)
    }

    pub fn lower(&self, layer: usize) -> &layers::Layer {
        &self.layers.lowers[layer]
    }

    /// A place where a unit test may hold this thread (`race_hook`), to make
    /// another one run in between. Nothing outside `cfg(test)`.
    #[inline]
    pub(crate) fn race_point(&self, _at: &'static str) {
        #[cfg(test)]
        {
            let hook = self
                .race_hook
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(hook) = hook {
                hook(_at);
            }
        }
    }

    /// A fresh name for staging in the workdir.
    pub fn tmp_name(&self) -> std::ffi::OsString {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        format!("#strata.{}.{n}", std::process::id()).into()
    }

    pub fn node(&self, id: u64) -> OpResult<Arc<Node>> {
        self.inodes
            .get(id)
            .or_else(|| self.inodes.revive(id))
            .ok_or_else(|| {
                log::warn!("node {id}: not known");
                libc::ESTALE
            })
    }

    /// Merged path of a live node, ENOENT once it was unlinked.
    pub fn path(&self, node: &Node) -> OpResult<PathBuf> {
        self.inodes.path_of(node).ok_or(libc::ENOENT)
    }

    /// Where the node's data lives now: the upper object, else its top lower one.
    pub fn locate(&self, node: &Node) -> OpResult<At> {
        let (upper, lower) = {
            let st = node.state();
            (st.upper, st.lowers.first().cloned())
        };
        if upper {
            // Set once the object is losing its names: its fd reaches it
            // whatever the names do meanwhile.
            let orphan = node.state().orphan.clone();
            if let Some(orphan) = orphan {
                // The name is gone; the object is reached through its fd.
                return Ok(At {
                    dir: orphan,
                    name: Default::default(),
                });
            }
            return self.upper_at(node);
        }
        match lower {
            Some(l) => self.lower_at(node, &l),
            None => Err(libc::ENOENT),
        }
    }

    /// A lower object of `node`: through its parent node's cached fd of the
    /// same layer's directory where the parent merges exactly that directory
    /// (the usual case, no path walk), else by its path in the layer.
    fn lower_at(&self, node: &Node, l: &inode::LowerLoc) -> OpResult<At> {
        let parent = node.state().parent;
        if let (Some(dir_path), Some(name), Ok(parent)) =
            (l.path.parent(), l.path.file_name(), self.node(parent))
        {
            let merges = parent
                .state()
                .lowers
                .iter()
                .any(|p| p.layer == l.layer && p.path == dir_path);
            if merges && parent.serial != 0 {
                return Ok(At {
                    dir: self.dir_fd(&parent, Some(l.layer))?,
                    name: name.to_os_string(),
                });
            }
        }
        self.lower(l.layer).at(&l.path).map_err(err)
    }

    /// Where the node's file data lives: as `locate`, except that a metacopy
    /// file's data is still its lower file's.
    pub fn locate_data(&self, node: &Node) -> OpResult<At> {
        let lower = {
            let st = node.state();
            if !st.metacopy {
                None
            } else {
                st.lowers.first().cloned()
            }
        };
        match lower {
            Some(l) => self.lower_at(node, &l),
            None => self.locate(node),
        }
    }

    /// The upper object of a node that is known to be in the upper layer.
    pub fn upper_at(&self, node: &Node) -> OpResult<At> {
        if node.id == inode::ROOT_ID || node.serial == 0 {
            let path = self.path(node)?;
            return self.upper()?.at(&path).map_err(err);
        }
        let (parent, name, unlinked) = {
            let st = node.state();
            (st.parent, st.name.clone(), st.unlinked)
        };
        if unlinked {
            return Err(libc::ENOENT);
        }
        let parent = self.node(parent)?;
        Ok(At {
            dir: self.dir_fd(&parent, None)?,
            name,
        })
    }

    /// An O_PATH fd of a directory node in the upper layer (None) or in lower
    /// layer `layer`, from a small cache. Keyed by the node's serial, never
    /// reused, so an entry can't outlive the directory it names; a rename
    /// moves the directory, not the fd's object. At most DIR_FD_CACHE fds.
    pub fn dir_fd(&self, node: &Node, layer: Option<usize>) -> OpResult<Arc<OwnedFd>> {
        let key = (node.serial, layer.map(|l| l as u32 + 1).unwrap_or(0));
        if node.serial != 0 {
            if let Some(fd) = self
                .dir_fds
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
            {
                return Ok(fd.clone());
            }
        }
        let fd = match layer {
            None => self
                .upper()?
                .open_dir_path(&self.path(node)?)
                .map_err(err)?,
            Some(l) => {
                let path = node
                    .state()
                    .lowers
                    .iter()
                    .find(|x| x.layer == l)
                    .map(|x| x.path.clone());
                self.lower(l)
                    .open_dir_path(&path.ok_or(libc::ENOENT)?)
                    .map_err(err)?
            }
        };
        let fd = Arc::new(fd);
        if node.serial != 0 {
            let mut cache = self.dir_fds.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= DIR_FD_CACHE {
                cache.clear();
            }
            cache.insert(key, fd.clone());
        }
        Ok(fd)
    }

    /// Lookups and listings in `dir` hold this shared.
    pub fn dir_shared(&self, dir: &Node) -> std::sync::RwLockReadGuard<'_, ()> {
        self.dir_locks[(dir.id as usize) % DIR_LOCK_STRIPES]
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Creates and removals in `dir`, and a copy-up of a non-directory into
    /// it, hold this exclusive.
    pub fn dir_exclusive(&self, dir: &Node) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.dir_locks[(dir.id as usize) % DIR_LOCK_STRIPES]
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Held while a path computed from the parent chain is used, so that no
    /// rename moves it meanwhile (renames take the lock for writing).
    pub fn paths_stable(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.rename_lock.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the kernel's cached attributes of a node that changed behind its
    /// back (a directory becomes merged when it is copied up: nlink 1).
    pub fn invalidate_attr(&self, node: &Node) {
        if let Some(n) = self.notifier.get() {
            if node.id != 0 {
                if let Err(e) = n.inval_inode(fuser::INodeNo(node.id), -1, 0) {
                    log::debug!("inval_inode {}: {e}", node.id);
                }
            }
        }
    }

    pub fn check_writable(&self) -> OpResult<()> {
        if self.read_only {
            Err(libc::EROFS)
        } else {
            Ok(())
        }
    }
}
