//! Open file and directory handles.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One entry of a merged directory listing, as handed to readdir.
#[derive(Debug, Clone)]
pub struct DirItem {
    pub name: std::ffi::OsString,
    pub ino: u64,
    pub kind: fuser::FileType,
    /// Where the entry shows from: None for the upper (or "." and ".."),
    /// Some(i) for lower layer i.
    pub layer: Option<usize>,
    /// Where it is in the listing: its readdir offset (`readdir.rs`).
    pub pos: u64,
}

pub enum Handle {
    /// An open regular file: the backing fd in the upper or a lower layer.
    File {
        fd: OwnedFd,
        node: u64,
        /// Keeps the kernel's passthrough backing file while this handle lives.
        backing: Option<Arc<fuser::BackingId>>,
        /// Opened on a lower file: once the node is copied up, reads go to
        /// the upper file (an fd opened before a copy-up sees the new data).
        from_lower: bool,
    },
}

impl Handle {
    /// The backing fd of a file handle.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Handle::File { fd, .. } => Some(fd.as_fd()),
        }
    }
}

#[derive(Default)]
pub struct HandleTable {
    map: Mutex<HashMap<u64, Arc<Handle>>>,
    next: AtomicU64,
}

impl HandleTable {
    pub fn insert(&self, h: Handle) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::new(h));
        id
    }

    pub fn get(&self, id: u64) -> Option<Arc<Handle>> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    pub fn remove(&self, id: u64) -> Option<Arc<Handle>> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
    }

    /// Some open file of `node` (for fstat of a file whose name is gone).
    pub fn file_of_node(&self, node: u64) -> Option<Arc<Handle>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.values()
            .find(|h| matches!(***h, Handle::File { node: n, .. } if n == node))
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
