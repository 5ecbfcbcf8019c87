//! FUSE passthrough (Linux 6.9+): the kernel reads and writes the backing
//! file directly. It needs CAP_SYS_ADMIN in the initial user namespace, so it
//! is used only when the daemon runs as real root and the kernel offers it.
//!
//! The kernel allows one backing file per inode while it is open, and every
//! open of that inode must then be a passthrough open. A lower file can be
//! copied up while it is open, which would need a second backing file, so
//! only upper files are passed through (their backing file is O_RDWR and
//! never changes); lower files are served by the daemon through the page
//! cache, and so is every open of a node that has such an open already.

use super::inode::Node;
use super::{err, OpResult, Union};
use crate::sys;
use fuser::BackingId;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

/// How the open files of one node are served.
#[derive(Default, Debug)]
pub struct NodeBacking {
    slot: Mutex<Slot>,
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
                st.upper && !st.metacopy
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

    pub fn release_cached(&self, node: &Node) {
        let mut slot = node.backing.slot.lock().unwrap_or_else(|p| p.into_inner());
        slot.cached_opens = slot.cached_opens.saturating_sub(1);
    }

    /// The upper file opened read-write: it serves every later open mode.
    fn backing_fd(&self, node: &Node) -> OpResult<OwnedFd> {
        let at = self.upper_at(node)?;
        sys::open_beneath(at.dir(), Path::new(&at.name), libc::O_RDWR, 0).map_err(err)
    }

    pub fn passthrough_enabled(&self) -> bool {
        self.passthrough.load(std::sync::atomic::Ordering::Relaxed)
    }
}
