//! Opening files: a write access copies the file up first.

use super::copyup::CopyData;
use super::inode::Node;
use super::{err, OpResult, Union};
use crate::sys;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

impl Union {
    /// Opens the backing file of `node` for an open(2) with `flags`.
    pub fn open_file(&self, node: &Arc<Node>, flags: i32) -> OpResult<OwnedFd> {
        let writes = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        let _r;
        if writes {
            self.check_writable()?;
            _r = self.rename_lock.read().unwrap_or_else(|p| p.into_inner());
            let data = if flags & libc::O_TRUNC != 0 {
                CopyData::Empty
            } else {
                CopyData::Full
            };
            self.copy_up(node, data)?;
        }
        let at = self.locate(node)?;
        sys::open_beneath(
            at.dir(),
            Path::new(&at.name),
            super::fs::backing_flags(flags),
            0,
        )
        .map_err(err)
    }
}
