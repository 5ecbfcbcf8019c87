//! FUSE passthrough (Linux 6.9+): the kernel reads and writes the backing
//! file directly. It needs CAP_SYS_ADMIN in the initial user namespace, so it
//! is used only when the daemon runs as real root and the kernel offers it.
//!
//! The kernel allows one backing file per inode while it is open, and every
//! open of that inode must then be a passthrough open. A lower file can be
//! copied up while it is open, which would need a second backing file (and
//! the kernel refuses any open of the inode that is not a passthrough open
//! of the backing file it has, so a writer then could only write the lower
//! file). So upper files are passed through (their backing file is O_RDWR
//! and never changes), and lower files only where nothing is ever copied
//! up: in a read-only union. Elsewhere lower files are served by the daemon
//! through the page cache, and so is every open of a node that has such an
//! open already.

use super::inode::Node;
use super::{err, OpResult, Union};
use crate::sys;
use fuser::BackingId;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How the open files of one node are served.
#[derive(Default, Debug)]
pub struct NodeBacking {
    slot: Mutex<Slot>,
    /// The kernel has had the file open read-write through passthrough: it
    /// may write the upper file through a shared mapping (which can outlive
    /// every open), and the file's times change where neither the daemon nor
    /// the kernel's own attribute cache sees it. Its attributes are then never
    /// cached. A write-only open cannot be mapped (mmap needs read access),
    /// and the kernel drops its cached size and times itself after each
    /// write(2) it passes through (`fuse_write_update_attr`): such a file
    /// keeps the full timeout.
    kernel_writes: AtomicBool,
}

#[derive(Default, Debug)]
struct Slot {
    backing: Option<Weak<BackingId>>,
    /// Opens served by the daemon (page-cache mode) still open.
    cached_opens: usize,
}

/// What an open gets.
pub enum OpenMode {
    Passthrough(Arc<BackingId>),
    /// Served by the daemon through the page cache.
    Cached,
}

impl Union {
    /// Chooses how an open of `node` is served. `register` turns a backing fd
    /// into a `BackingId` (through the reply). A `Cached` result must be
    /// balanced by `release_cached` when the handle is released.
    pub fn open_mode(
        &self,
        node: &Node,
        register: impl FnOnce(&OwnedFd) -> std::io::Result<BackingId>,
    ) -> OpenMode {
        let mut slot = node.backing.slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(live) = slot.backing.as_ref().and_then(Weak::upgrade) {
            return OpenMode::Passthrough(live);
        }
        let usable =
            self.passthrough_enabled() && node.kind == libc::S_IFREG && slot.cached_opens == 0 && {
                let st = node.state();
                (st.upper && !st.metacopy) || (self.read_only && !st.upper)
            };
        if usable {
            if let Ok(fd) = self.backing_fd(node) {
                match register(&fd) {
                    Ok(id) => {
                        let id = Arc::new(id);
                        slot.backing = Some(Arc::downgrade(&id));
                        return OpenMode::Passthrough(id);
                    }
                    Err(e) => log::debug!("passthrough refused ({e}); serving the file ourselves"),
                }
            }
        }
        slot.cached_opens += 1;
        OpenMode::Cached
    }

    /// Bookkeeping once the open of `node` with `flags` is decided: whether the
    /// kernel now writes the file itself, and atime (`atime.rs`), unless the
    /// kernel's passthrough reads keep it (through the atime view).
    pub fn opened(
        &self,
        node: &Node,
        flags: i32,
        mode: &OpenMode,
        fd: BorrowedFd,
        from_lower: bool,
    ) {
        let passthrough = matches!(mode, OpenMode::Passthrough(_));
        if passthrough
            && may_map_shared_writable(flags)
            && !node.backing.kernel_writes.swap(true, Ordering::Relaxed)
        {
            // The kernel holds attributes from before, with the full timeout.
            self.invalidate_attr(node);
        }
        let kernel_keeps_atime = passthrough && self.atime_view.is_some();
        if flags & libc::O_ACCMODE != libc::O_WRONLY && !from_lower && !kernel_keeps_atime {
            self.accessed(node, fd);
        }
    }

    /// `opened` for a file just created (and opened with `flags`).
    pub fn created(&self, node: &Node, flags: i32, mode: &OpenMode) {
        if matches!(mode, OpenMode::Passthrough(_)) && may_map_shared_writable(flags) {
            node.backing.kernel_writes.store(true, Ordering::Relaxed);
        }
    }

    /// The attribute timeout for `node`: none for a file the kernel may
    /// write itself unseen (see `NodeBacking::kernel_writes`). Its entry (the
    /// name) keeps the full timeout: only names change through the daemon.
    pub fn attr_ttl(&self, node: &Node) -> Duration {
        if node.backing.kernel_writes.load(Ordering::Relaxed) {
            Duration::ZERO
        } else {
            self.ttl
        }
    }

    pub fn release_cached(&self, node: &Node) {
        let mut slot = node.backing.slot.lock().unwrap_or_else(|p| p.into_inner());
        slot.cached_opens = slot.cached_opens.saturating_sub(1);
    }

    /// The upper file opened read-write: it serves every later open mode.
    /// The kernel opens its own file on the backing fd's path, with the
    /// caller's flags: through the atime view, its reads keep the union's
    /// atime rule.
    fn backing_fd(&self, node: &Node) -> OpResult<OwnedFd> {
        if !node.state().upper {
            // A read-only union's lower file (see the module comment).
            let at = self.locate_data(node)?;
            return sys::open_beneath_noatime(at.dir(), Path::new(&at.name), libc::O_RDONLY, 0)
                .map_err(err);
        }
        if let Some(view) = &self.atime_view {
            let _paths = self.paths_stable();
            let path = self.path(node)?;
            return sys::open_beneath(view.as_fd(), &path, libc::O_RDWR, 0).map_err(err);
        }
        let at = self.upper_at(node)?;
        sys::open_beneath_noatime(at.dir(), Path::new(&at.name), libc::O_RDWR, 0).map_err(err)
    }

    pub fn passthrough_enabled(&self) -> bool {
        self.passthrough.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Whether an open with `flags` can back a shared writable mapping: only a
/// read-write one (mmap needs read access, and PROT_WRITE on MAP_SHARED needs
/// write access too).
fn may_map_shared_writable(flags: i32) -> bool {
    flags & libc::O_ACCMODE == libc::O_RDWR
}
