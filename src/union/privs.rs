//! Rules of the kernel that FUSE leaves to the daemon, or applies in an older
//! form: the mode of a new object under a default ACL, and when a change
//! drops the set-user-ID and set-group-ID bits.
//!
//! - **Creation.** With `FUSE_DONT_MASK` the kernel sends the mode unmasked,
//!   with the caller's umask. Under a parent with a default ACL the ACL
//!   decides (POSIX.1e; the upper filesystem applies it), else the umask.
//! - **Set-id bits.** For a write, truncate or `chown` by a caller without
//!   CAP_FSETID, FUSE's own setattr drops S_ISGID only together with group
//!   execute. The kernel's rule (`setattr_should_drop_sgid`) also drops it
//!   when the caller is not in the file's group, and so does a mode change
//!   by such a caller, an ACL set included (`posix_acl_update_mode`). The
//!   daemon acts as root, where the upper filesystem drops nothing, so these
//!   are applied here. A caller with uid 0 counts as having CAP_FSETID.

use super::attr::SetAttr;
use super::inode::Node;
use super::{err, OpResult, Union};
use crate::sys;
use std::ffi::OsStr;

/// Who asks, as the kernel tells us with each request.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

impl Caller {
    fn privileged(&self) -> bool {
        self.uid == 0
    }

    /// `in_group_p`: the caller's fsgid or one of its supplementary groups.
    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid
            || sys::process::supplementary_groups(self.pid)
                .map(|g| g.contains(&gid))
                .unwrap_or(false)
    }
}

/// The mode `mode` keeps once an unprivileged caller modified the file's data
/// or owner (`in_group`: whether the caller is in the file's group).
pub fn mode_after_modification(mode: u32, in_group: bool) -> u32 {
    let mut m = mode & !libc::S_ISUID;
    if m & libc::S_ISGID != 0 && (m & libc::S_IXGRP != 0 || !in_group) {
        m &= !libc::S_ISGID;
    }
    m
}

impl Union {
    /// The mode to create an object with, given the kernel's unmasked `mode`
    /// and the caller's `umask`.
    pub fn creation_mode(&self, parent: &Node, mode: u32, umask: u32) -> u32 {
        if umask == 0 || self.has_default_acl(parent) {
            mode
        } else {
            mode & !umask
        }
    }

    fn has_default_acl(&self, dir: &Node) -> bool {
        let _paths = self.paths_stable();
        self.locate(dir)
            .and_then(|at| {
                sys::xattr::get(at.dir(), &at.name, OsStr::new("system.posix_acl_default"))
                    .map_err(err)
            })
            .map(|acl| acl.is_some())
            .unwrap_or(false)
    }

    /// Drops the set-id bits a SETATTR from `caller` must drop, into `req`.
    /// A SETATTR that sets nothing, or a size, is the kernel's way of telling
    /// us the file was modified (a write, fallocate, truncate or chown(-1, -1)).
    pub fn drop_setid_bits(&self, node: &Node, caller: Caller, req: &mut SetAttr) {
        if caller.privileged() {
            return;
        }
        let modified = node.kind == libc::S_IFREG && (req.is_touch() || req.size.is_some());
        if !modified && req.mode.is_none() {
            return;
        }
        let Ok(st) = self.current_stat(node) else {
            return;
        };
        let mode = req.mode.unwrap_or(st.st_mode) & 0o7777;
        if mode & (libc::S_ISUID | libc::S_ISGID) == 0 {
            return;
        }
        let gid = req.gid.unwrap_or(st.st_gid);
        let mut kept = mode;
        if modified {
            kept = mode_after_modification(kept, caller.in_group(gid));
        }
        if req.mode.is_some() && kept & libc::S_ISGID != 0 && !caller.in_group(gid) {
            kept &= !libc::S_ISGID;
        }
        if kept != mode {
            log::debug!(
                "node {}: mode {mode:o} -> {kept:o} (set-id bits dropped)",
                node.id
            );
            req.mode = Some(kept);
        }
    }

    /// An O_TRUNC open by `caller` truncated the file: as `drop_setid_bits`.
    pub fn truncated_by(&self, node: &Node, caller: Caller) -> OpResult<()> {
        let mut req = SetAttr {
            size: Some(0),
            ..SetAttr::default()
        };
        self.drop_setid_bits(node, caller, &mut req);
        match req.mode {
            Some(mode) => self.set_mode(node, mode),
            None => Ok(()),
        }
    }

    /// An access ACL was set by `caller`: the mode it gives keeps S_ISGID only
    /// for a caller in the file's group.
    pub fn acl_set_by(&self, node: &Node, caller: Caller) -> OpResult<()> {
        if caller.privileged() {
            return Ok(());
        }
        let st = self.current_stat(node)?;
        if st.st_mode & libc::S_ISGID == 0 || caller.in_group(st.st_gid) {
            return Ok(());
        }
        self.set_mode(node, st.st_mode & 0o7777 & !libc::S_ISGID)
    }

    fn current_stat(&self, node: &Node) -> OpResult<sys::Stat> {
        let _paths = self.paths_stable();
        let mut st = self.locate(node).and_then(|at| at.stat().map_err(err))?;
        self.with_override(node, &mut st);
        // Compared with the caller's ids: as the mount shows them.
        (st.st_uid, st.st_gid) = self.ids.shown(st.st_uid, st.st_gid);
        Ok(st)
    }

    fn set_mode(&self, node: &Node, mode: u32) -> OpResult<()> {
        let _paths = self.paths_stable();
        let at = self.upper_at(node)?;
        if self.keeps_override(node.kind) {
            let o = match self.override_of(node) {
                Some(o) => o,
                None => super::override_stat::Override::of_stat(&at.stat().map_err(err)?),
            };
            self.write_override(
                at.dir(),
                &at.name,
                super::override_stat::Override { mode, ..o },
            )?;
        } else {
            sys::chmod_at(at.dir(), &at.name, mode).map_err(err)?;
        }
        self.invalidate_attr(node);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_modification_drops_setuid_and_setgid_as_the_kernel_does() {
        // setuid always goes; setgid with group execute, or for a caller
        // outside the group (it marks mandatory locking otherwise).
        assert_eq!(mode_after_modification(0o6666, false), 0o666);
        assert_eq!(mode_after_modification(0o6666, true), 0o2666);
        assert_eq!(mode_after_modification(0o6776, true), 0o776);
        assert_eq!(mode_after_modification(0o2666, false), 0o666);
        assert_eq!(mode_after_modification(0o4755, true), 0o755);
        assert_eq!(mode_after_modification(0o644, false), 0o644);
    }
}
