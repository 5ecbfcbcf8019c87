//! Extended attributes through the mount: the user's xattrs of the topmost
//! object; overlay-private ones are hidden and can't be set.
//!
//! `ls -l` asks for security.selinux and the ACLs of every entry, and the
//! kernel does not cache absent xattrs for FUSE. So each node remembers the
//! names of its xattrs (usually none): an absent one is answered without a
//! syscall. Every change to a node's xattrs comes through this mount and
//! drops the list (see `forget_xattrs`).

use super::copyup::CopyData;
use super::idmap;
use super::inode::Node;
use super::override_stat;
use super::ovl;
use super::{err, OpResult, Union};
use crate::sys;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

impl Union {
    /// Not shown nor settable through the mount: the overlay's own xattrs,
    /// and the override xattrs of a mount that keeps owners in them.
    fn hidden_xattr(&self, name: &[u8]) -> bool {
        ovl::is_private_xattr(name)
            || (self.overrides.is_some() && override_stat::is_override_xattr(name))
    }

    pub fn getxattr(&self, node: &Node, name: &OsStr) -> OpResult<Vec<u8>> {
        if self.hidden_xattr(name.as_bytes()) {
            return Err(libc::ENODATA);
        }
        let names = self.xattr_names(node)?;
        if !names.iter().any(|n| n.as_slice() == name.as_bytes()) {
            return Err(libc::ENODATA);
        }
        let at = self.locate(node)?;
        let value = sys::xattr::get(at.dir(), &at.name, name)
            .map_err(err)?
            .ok_or(libc::ENODATA)?;
        if idmap::is_acl_xattr(name.as_bytes()) {
            return Ok(self.ids.acl_to_mount(&value));
        }
        Ok(value)
    }

    /// Names, NUL terminated, as listxattr(2) returns them.
    pub fn listxattr(&self, node: &Node) -> OpResult<Vec<u8>> {
        let mut out = Vec::new();
        for name in self.xattr_names(node)?.iter() {
            out.extend_from_slice(name);
            out.push(0);
        }
        Ok(out)
    }

    /// The user-visible xattr names of a node, read once and remembered. A list
    /// read while a change was made is not kept: the generation tells.
    fn xattr_names(&self, node: &Node) -> OpResult<Arc<Vec<Vec<u8>>>> {
        let generation = {
            let cache = node.xattr_names.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(names) = &cache.names {
                return Ok(names.clone());
            }
            cache.generation
        };
        let at = self.locate(node)?;
        let names: Vec<Vec<u8>> = sys::xattr::list(at.dir(), &at.name)
            .map_err(err)?
            .into_iter()
            .filter(|n| !self.hidden_xattr(n))
            .collect();
        let names = Arc::new(names);
        let mut cache = node.xattr_names.lock().unwrap_or_else(|p| p.into_inner());
        if cache.generation == generation {
            cache.names = Some(names.clone());
        }
        Ok(names)
    }

    /// Drops the remembered xattr names of a node. Called after a change to its
    /// xattrs (or one that may change them), so that no list read before the
    /// change is kept: a reader racing the change could otherwise remember a
    /// list without a name just set, and a removexattr right after the
    /// setxattr would fail with ENODATA.
    pub fn forget_xattrs(&self, node: &Node) {
        let mut cache = node.xattr_names.lock().unwrap_or_else(|p| p.into_inner());
        cache.generation += 1;
        cache.names = None;
    }

    pub fn setxattr(
        &self,
        node: &Arc<Node>,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> OpResult<()> {
        self.check_writable()?;
        if self.hidden_xattr(name.as_bytes()) {
            return Err(libc::EPERM);
        }
        let _r = self.rename_lock.read().unwrap_or_else(|p| p.into_inner());
        let shifted;
        let value = if idmap::is_acl_xattr(name.as_bytes()) {
            shifted = self.ids.acl_to_layer(value);
            &shifted[..]
        } else {
            value
        };
        self.copy_up(node, CopyData::Meta)?;
        let at = self.upper_at(node)?;
        let set = sys::xattr::set(at.dir(), &at.name, name, value, flags).map_err(err);
        self.forget_xattrs(node);
        set
    }

    pub fn removexattr(&self, node: &Arc<Node>, name: &OsStr) -> OpResult<()> {
        self.check_writable()?;
        if self.hidden_xattr(name.as_bytes()) {
            return Err(libc::ENODATA);
        }
        let _r = self.rename_lock.read().unwrap_or_else(|p| p.into_inner());
        // Removing what isn't there must not copy up.
        self.getxattr(node, name)?;
        self.copy_up(node, CopyData::Meta)?;
        let at = self.upper_at(node)?;
        let removed = sys::xattr::remove(at.dir(), &at.name, name).map_err(err);
        self.forget_xattrs(node);
        removed
    }
}
