//! ioctls through the mount: the inode flags of `chattr`/`lsattr`
//! (FS_IOC_GETFLAGS/SETFLAGS) and the xfs-style fsxattr (FS_IOC_FSGETXATTR/
//! FSSETXATTR), as the kernel overlayfs does them with fileattr_get/set on the
//! real inode.
//!
//! The kernel asks for these on a file it opens itself for the purpose (an OPEN
//! or OPENDIR, read-only, then IOCTL with that handle), after its own checks
//! (owner or CAP_FOWNER, CAP_LINUX_IMMUTABLE for append-only and immutable). So
//! the handle is not used: the node's object is opened here.
//!
//! Reading takes the flags of the topmost object. Setting copies the object up
//! (metadata only where metacopy is on) and sets them on the upper object. The
//! kernel keeps append-only and immutable out of the upper inode, in
//! `overlay.protattr`, and enforces them in the overlay itself; strata sets them
//! on the upper inode (as kernels before 5.15 did, which 6.18 still reads), so
//! the upper filesystem enforces them on everything strata does. Flags in an
//! `overlay.protattr` of an upper made by the kernel show in the reads, and the
//! next set through strata moves them onto the inode.
//!
//! Any other ioctl is ENOTTY, as the kernel overlay answers for regular files
//! and directories of filesystems that do not know it.

use super::copyup::CopyData;
use super::inode::Node;
use super::{err, OpResult, Union};
use crate::sys;
use crate::sys::fileattr::{self, FsXattr};
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

/// What `overlay.protattr` holds: 'a' for append-only, 'i' for immutable.
fn protattr_flags(value: &[u8]) -> (bool, bool) {
    (value.contains(&b'a'), value.contains(&b'i'))
}

impl Union {
    /// One FUSE_IOCTL on `node`: the reply's data, or an errno.
    pub fn ioctl(
        &self,
        node: &Arc<Node>,
        cmd: u32,
        input: &[u8],
        out_size: u32,
    ) -> OpResult<Vec<u8>> {
        if node.kind != libc::S_IFREG && node.kind != libc::S_IFDIR {
            return Err(libc::ENOTTY);
        }
        match cmd {
            fileattr::FS_IOC_GETFLAGS => {
                let flags = self.get_inode_flags(node)?;
                let mut out = flags.to_ne_bytes().to_vec();
                out.truncate(out_size as usize);
                Ok(out)
            }
            fileattr::FS_IOC_SETFLAGS => {
                let bytes: [u8; 4] = input
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or(libc::EINVAL)?;
                self.set_inode_flags(node, u32::from_ne_bytes(bytes))?;
                Ok(Vec::new())
            }
            fileattr::FS_IOC_FSGETXATTR => {
                let x = self.get_fsxattr(node)?;
                let mut out = x.to_bytes();
                out.truncate(out_size as usize);
                Ok(out)
            }
            fileattr::FS_IOC_FSSETXATTR => {
                let x = FsXattr::from_bytes(input).ok_or(libc::EINVAL)?;
                self.set_fsxattr(node, &x)?;
                Ok(Vec::new())
            }
            _ => Err(libc::ENOTTY),
        }
    }

    /// chattr's flags of the topmost object, with those of `overlay.protattr`.
    pub fn get_inode_flags(&self, node: &Node) -> OpResult<u32> {
        let _paths = self.paths_stable();
        let fd = self.open_for_ioctl(node)?;
        let mut flags = fileattr::get_flags(fd.as_fd()).map_err(err)?;
        let (append, immutable) = self.protattr(node)?;
        if append {
            flags |= fileattr::FS_APPEND_FL;
        }
        if immutable {
            flags |= fileattr::FS_IMMUTABLE_FL;
        }
        Ok(flags)
    }

    /// Copies up, then sets chattr's flags on the upper object.
    pub fn set_inode_flags(&self, node: &Arc<Node>, flags: u32) -> OpResult<()> {
        self.check_writable()?;
        let _paths = self.paths_stable();
        self.copy_up(node, CopyData::Meta)?;
        self.drop_protattr(node)?;
        let fd = self.open_for_ioctl(node)?;
        fileattr::set_flags(fd.as_fd(), flags).map_err(err)
    }

    /// The fsxattr of the topmost object, with the flags of `overlay.protattr`.
    pub fn get_fsxattr(&self, node: &Node) -> OpResult<FsXattr> {
        let _paths = self.paths_stable();
        let fd = self.open_for_ioctl(node)?;
        let mut x = fileattr::get_fsxattr(fd.as_fd()).map_err(err)?;
        let (append, immutable) = self.protattr(node)?;
        if append {
            x.xflags |= fileattr::FS_XFLAG_APPEND;
        }
        if immutable {
            x.xflags |= fileattr::FS_XFLAG_IMMUTABLE;
        }
        Ok(x)
    }

    /// Copies up, then sets the fsxattr on the upper object.
    pub fn set_fsxattr(&self, node: &Arc<Node>, x: &FsXattr) -> OpResult<()> {
        self.check_writable()?;
        let _paths = self.paths_stable();
        self.copy_up(node, CopyData::Meta)?;
        self.drop_protattr(node)?;
        let fd = self.open_for_ioctl(node)?;
        fileattr::set_fsxattr(fd.as_fd(), x).map_err(err)
    }

    /// The node's object (upper or topmost lower), opened read-only for an ioctl.
    fn open_for_ioctl(&self, node: &Node) -> OpResult<OwnedFd> {
        let at = self.locate(node)?;
        let mut flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
        if node.is_dir() {
            flags |= libc::O_DIRECTORY;
        }
        if at.name.is_empty() {
            // A layer root, or an unlinked object reached through its fd.
            return sys::reopen(at.dir(), flags).map_err(err);
        }
        sys::open_beneath(at.dir(), Path::new(&at.name), flags, 0).map_err(err)
    }

    fn protattr_name(&self) -> OsString {
        super::ovl::xattr_name(self.layers.xattr_ns, "protattr")
    }

    /// (append-only, immutable) as an upper object's `overlay.protattr` says.
    fn protattr(&self, node: &Node) -> OpResult<(bool, bool)> {
        if !node.state().upper {
            return Ok((false, false));
        }
        let at = self.locate(node)?;
        match sys::xattr::get(at.dir(), &at.name, &self.protattr_name()) {
            Ok(Some(v)) => Ok(protattr_flags(&v)),
            Ok(None) => Ok((false, false)),
            // Not readable here (e.g. trusted.* as an ordinary user): none.
            Err(e) => {
                log::debug!("protattr of node {}: {e}", node.id);
                Ok((false, false))
            }
        }
    }

    /// A set through strata says all the flags: the kernel's `overlay.protattr`
    /// goes (before the flags land, which may make the inode immutable).
    fn drop_protattr(&self, node: &Node) -> OpResult<()> {
        let at = self.locate(node)?;
        match sys::xattr::remove(at.dir(), &at.name, &self.protattr_name()) {
            Err(e) if e.raw_os_error() != Some(libc::ENODATA) => {
                log::debug!("protattr of node {}: {e}", node.id);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::protattr_flags;

    #[test]
    fn protattr_values() {
        assert_eq!(protattr_flags(b"a"), (true, false));
        assert_eq!(protattr_flags(b"i"), (false, true));
        assert_eq!(protattr_flags(b"ia"), (true, true));
        assert_eq!(protattr_flags(b""), (false, false));
    }
}
