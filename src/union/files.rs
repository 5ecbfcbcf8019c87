//! Opening files: a write access copies the file up first.

use super::copyup::CopyData;
use super::inode::Node;
use super::{err, OpResult, Union};
use crate::sys;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

impl Union {
    /// Opens the backing file of `node` for an open(2) with `flags`. The flag
    /// says whether the fd may be on a lower file (see `Handle::File`).
    pub fn open_file(&self, node: &Arc<Node>, flags: i32) -> OpResult<(OwnedFd, bool)> {
        let writes = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        let _paths = self.paths_stable();
        if writes {
            self.check_writable()?;
            let data = if flags & libc::O_TRUNC != 0 {
                CopyData::Empty
            } else {
                CopyData::Full
            };
            self.copy_up(node, data)?;
            // A write may drop security.capability of the file.
            self.forget_xattrs(node);
        }
        // Read before locating: a copy-up finishing in between then leaves
        // an upper fd marked as maybe-lower (harmless), never the reverse.
        let from_lower = {
            let st = node.state();
            !st.upper || st.metacopy
        };
        let at = if writes {
            self.locate(node)?
        } else {
            self.locate_data(node)?
        };
        let bflags = self.backing_flags(flags);
        if at.name.is_empty() && !node.is_dir() {
            return sys::reopen_noatime(at.dir(), bflags)
                .map(|fd| (fd, from_lower))
                .map_err(err);
        }
        self.race_point("open:located");
        let opened = match sys::open_beneath_noatime(at.dir(), Path::new(&at.name), bflags, 0) {
            // The read half was only for the writeback cache; a file the
            // daemon may not read is still opened as asked. So is an
            // append-only file (chattr +a), which opens for writing only
            // with O_APPEND, which the writeback cache drops.
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM))
                    && bflags != super::fs::backing_flags(flags) =>
            {
                sys::open_beneath_noatime(
                    at.dir(),
                    Path::new(&at.name),
                    super::fs::backing_flags(flags),
                    0,
                )
                .map_err(err)
            }
            r => r.map_err(err),
        };
        // An unlink of the name may land between locate and the open (the
        // kernel holds no lock across an open and an unlink; renames wait for
        // `paths_stable`). The name then holds a whiteout (ENXIO, a 0/0
        // device) or nothing. The unlink gives the node an fd of its object
        // before it touches the name: a node that has one now is reached
        // through it, as on a local filesystem, where the open wins.
        if !node.is_dir() {
            let orphan = {
                let st = node.state();
                if st.upper && !st.metacopy {
                    st.orphan.clone()
                } else {
                    None
                }
            };
            if let Some(orphan) = orphan {
                drop(opened);
                return sys::reopen_noatime(orphan.as_fd(), bflags)
                    .map(|fd| (fd, false))
                    .map_err(err);
            }
        }
        Ok((opened?, from_lower))
    }

    /// Whether the kernel must send the writes of an open file as they come,
    /// bypassing its page cache: with the writeback cache it writes whole pages
    /// back at their offsets, which a backing fd that kept O_APPEND (an
    /// append-only upper file) would put at the end of the file instead.
    pub fn needs_direct_io(&self, fd: std::os::fd::BorrowedFd) -> bool {
        self.writeback.load(std::sync::atomic::Ordering::Relaxed)
            && sys::status_flags(fd).is_ok_and(|f| f & libc::O_APPEND != 0)
    }

    /// Flags for the backing file of an open(2) through the mount. With the
    /// writeback cache the kernel reads pages of write-only files and keeps
    /// the append position itself: O_WRONLY becomes O_RDWR, O_APPEND goes.
    pub fn backing_flags(&self, flags: i32) -> i32 {
        let f = super::fs::backing_flags(flags);
        if !self.writeback.load(std::sync::atomic::Ordering::Relaxed) {
            return f;
        }
        let f = f & !libc::O_APPEND;
        if f & libc::O_ACCMODE == libc::O_WRONLY {
            (f & !libc::O_ACCMODE) | libc::O_RDWR
        } else {
            f
        }
    }
}
