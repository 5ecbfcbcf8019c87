//! Copy-up: bring a lower object into the upper layer before it is modified.
//!
//! The copy is built in the workdir with its final metadata (owner, mode,
//! times, xattrs) and then renamed into place, so no crash ever leaves a
//! partial object visible. Parents are copied up first.

use super::inode::{Key, Node};
use super::ovl;
use super::{err, At, OpResult, Union};
use crate::sys::{self, Stat};
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// How much of a regular file to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyData {
    /// Contents and metadata.
    Full,
    /// Metadata only: the file is about to be truncated to zero anyway.
    Empty,
    /// Metadata only, data later (`overlay.metacopy`, as the kernel's
    /// metacopy=on): for chmod, chown, utimens and xattr changes.
    Meta,
}

impl Union {
    /// Makes sure `node` exists in the upper layer (copying up its parents first).
    pub fn copy_up(&self, node: &Arc<Node>, data: CopyData) -> OpResult<()> {
        loop {
            self.check_writable()?;
            let (upper, metacopy) = {
                let st = node.state();
                (st.upper, st.metacopy)
            };
            if upper {
                if metacopy && data != CopyData::Meta {
                    return self.copy_up_data(node, data);
                }
                return Ok(());
            }
            let data = match data {
                CopyData::Meta if !self.metacopy || node.kind != libc::S_IFREG => CopyData::Full,
                d => d,
            };
            let parent_id = node.state().parent;
            let parent = self.node(parent_id)?;
            self.copy_up(&parent, CopyData::Full)?;
            if self.copy_up_into(node, &parent, data)? {
                return Ok(());
            }
            // Its name moved to another directory meanwhile (an unlink of
            // one name of a lower hard link): again, there.
        }
    }

    /// Copies `node` up under its name in `parent` (already in the upper).
    /// Returns false, having changed nothing, when the name went elsewhere.
    fn copy_up_into(&self, node: &Arc<Node>, parent: &Arc<Node>, data: CopyData) -> OpResult<bool> {
        let _guard = node.copy_up.lock().unwrap_or_else(|p| p.into_inner());
        let lower = {
            let st = node.state();
            if st.upper {
                return Ok(true);
            }
            if st.unlinked {
                return Err(libc::ENOENT);
            }
            if st.parent != parent.id {
                return Ok(false);
            }
            st.lowers.first().cloned().ok_or(libc::ENOENT)?
        };
        let path = self.path(node)?;
        let src = self.lower(lower.layer).at(&lower.path).map_err(err)?;
        let dst_parent = self.upper()?.at(&path).map_err(err)?;
        let work = self.work_fd()?;
        // The copy is built in the workdir holding no lock that other
        // requests wait for: a big file takes its time.
        let (tmp, real_ino) = self.stage_copy(&src, lower.layer, work, data)?;
        let discard = || {
            let _ = super::layers::remove_tree(work, &tmp);
        };
        // Then it is published: renamed into place and the node told so, as
        // one step for whoever changes names in that directory. For a
        // non-directory that step holds the directory's lock, as a create
        // there does: the kernel does not serialise an open for write (which
        // copies up) with an unlink of the same file. The unlink then comes
        // before (the copy is dropped: ENOENT) or after, and finds the node by
        // its upper inode. In between, it would find no node for the upper
        // object, and the node would go on naming the whiteout put there.
        // A directory goes without the lock (its copy-up runs under the locks
        // of lookups, creates and removals inside it): the kernel holds its
        // lock for every request that copies it up and could race its rmdir,
        // and a copy-up below it keeps it from being empty.
        let _dir = (!node.is_dir()).then(|| self.dir_exclusive(parent));
        {
            let st = node.state();
            if st.unlinked || st.parent != parent.id || st.name != dst_parent.name {
                let unlinked = st.unlinked;
                drop(st);
                discard();
                return if unlinked {
                    Err(libc::ENOENT)
                } else {
                    Ok(false)
                };
            }
        }
        // Copy-up is not a change the user made to the parent: keep its times
        // (as the kernel does).
        let parent_times = sys::fstat(dst_parent.dir()).ok();
        if let Err(e) = sys::rename_at(
            work,
            &tmp,
            dst_parent.dir(),
            &dst_parent.name,
            libc::RENAME_NOREPLACE,
        ) {
            discard();
            return Err(err(e));
        }
        self.race_point("copy-up:published");
        if let Some(pst) = parent_times {
            restore_times(dst_parent.dir(), &pst);
        }
        self.inodes.record_copy_up(real_ino, node.ino);
        self.forget_xattrs(node);
        {
            let mut st = node.state();
            st.upper = true;
            st.metacopy = data == CopyData::Meta;
        }
        self.inodes.rekey(node, Key::Upper(real_ino));
        drop(_dir);
        if node.is_dir() && !node.state().lowers.is_empty() {
            self.invalidate_attr(node);
        }
        if !node.is_dir() {
            self.link_aliases(node, &dst_parent)?;
            if src.stat().is_ok_and(|st| st.st_nlink > 1) {
                // A lower hard link now counts its names in the upper: the
                // kernel's cached st_nlink (the lower's) is stale.
                self.invalidate_attr(node);
            }
        }
        log::debug!("copied up {}", path.display());
        Ok(true)
    }

    /// Completes a metacopy file: copies the lower data into the upper file,
    /// then drops the `metacopy` mark. Until the mark goes, readers still use
    /// the lower data, so a crash half-way loses nothing.
    fn copy_up_data(&self, node: &Arc<Node>, data: CopyData) -> OpResult<()> {
        let _guard = node.copy_up.lock().unwrap_or_else(|p| p.into_inner());
        let lower = {
            let st = node.state();
            if !st.metacopy {
                return Ok(());
            }
            st.lowers.first().cloned()
        };
        let at = self.upper_at(node)?;
        let dst =
            sys::open_beneath(at.dir(), Path::new(&at.name), libc::O_WRONLY, 0).map_err(err)?;
        let size = sys::fstat(dst.as_fd()).map_err(err)?.st_size as u64;
        if let (Some(lower), CopyData::Full) = (lower, data) {
            let src = self.lower(lower.layer).at(&lower.path).map_err(err)?;
            let srcfd =
                sys::open_beneath_noatime(src.dir(), Path::new(&src.name), libc::O_RDONLY, 0)
                    .map_err(err)?;
            sys::copy_data(srcfd.as_fd(), dst.as_fd(), size).map_err(err)?;
            if !self.volatile {
                sys::fsync(dst.as_fd(), false).map_err(err)?;
            }
        }
        for ns in [
            super::layers::XattrNs::Trusted,
            super::layers::XattrNs::User,
        ] {
            match sys::xattr::remove(at.dir(), &at.name, &ovl::xattr_name(ns, "metacopy")) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENODATA) | Some(libc::EPERM) | Some(libc::EOPNOTSUPP)
                    ) => {}
                Err(e) => return Err(err(e)),
            }
        }
        node.state().metacopy = false;
        Ok(())
    }

    /// Other names of a lower hard-linked file that the kernel knows as this
    /// same node are linked to the new upper file, so they stay one file
    /// (as the kernel's index=on does).
    fn link_aliases(&self, node: &Arc<Node>, copied: &At) -> OpResult<()> {
        let aliases = node.state().aliases.clone();
        for (parent_id, name) in aliases {
            let parent = self.node(parent_id)?;
            self.copy_up(&parent, CopyData::Full)?;
            let ppath = self.path(&parent)?;
            let pdir = self.upper()?.open_dir_path(&ppath).map_err(err)?;
            if sys::stat_at_opt(pdir.as_fd(), &name)
                .map_err(err)?
                .is_some()
            {
                continue; // already has an upper object of its own
            }
            let times = sys::fstat(pdir.as_fd()).ok();
            sys::link_at(copied.dir(), &copied.name, pdir.as_fd(), &name).map_err(err)?;
            if let Some(pst) = times {
                restore_times(pdir.as_fd(), &pst);
            }
        }
        Ok(())
    }

    /// Builds a copy of the object `src` in the workdir, with all its
    /// metadata. Returns its staged name and inode number; on failure nothing
    /// is left there.
    fn stage_copy(
        &self,
        src: &At,
        layer: usize,
        work: BorrowedFd,
        data: CopyData,
    ) -> OpResult<(std::ffi::OsString, u64)> {
        let st = src.stat().map_err(err)?;
        let tmp = self.tmp_name();
        let staged = self
            .build_copy(src, &st, work, &tmp, data)
            .and_then(|()| self.carry_override(layer, src, &st, work, &tmp))
            .and_then(|()| sys::stat_at(work, &tmp).map_err(err));
        match staged {
            Ok(staged) => Ok((tmp, staged.st_ino)),
            Err(e) => {
                let _ = super::layers::remove_tree(work, &tmp);
                Err(e)
            }
        }
    }

    /// Creates the staged copy `work/tmp` with all metadata of `src`.
    fn build_copy(
        &self,
        src: &At,
        st: &Stat,
        work: BorrowedFd,
        tmp: &OsStr,
        data: CopyData,
    ) -> OpResult<()> {
        let kind = sys::file_type(st.st_mode);
        let perm = st.st_mode & 0o7777;
        match kind {
            libc::S_IFDIR => sys::mkdir_at(work, tmp, perm).map_err(err)?,
            libc::S_IFREG => {
                let dst = sys::open_beneath(
                    work,
                    Path::new(tmp),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    perm,
                )
                .map_err(err)?;
                if data == CopyData::Meta {
                    // Same size, no blocks: the data stays below for now.
                    sys::ftruncate(dst.as_fd(), st.st_size as u64).map_err(err)?;
                } else if data == CopyData::Full && st.st_size > 0 {
                    let srcfd = sys::open_beneath_noatime(
                        src.dir(),
                        Path::new(&src.name),
                        libc::O_RDONLY,
                        0,
                    )
                    .map_err(err)?;
                    sys::copy_data(srcfd.as_fd(), dst.as_fd(), st.st_size as u64).map_err(err)?;
                }
                if !self.volatile && data == CopyData::Full && st.st_size > 0 {
                    sys::fsync(dst.as_fd(), false).map_err(err)?;
                }
            }
            libc::S_IFLNK => {
                let target = sys::readlink_at(src.dir(), &src.name).map_err(err)?;
                sys::symlink_at(&target, work, tmp).map_err(err)?;
            }
            _ => sys::mknod_at(work, tmp, st.st_mode, st.st_rdev).map_err(err)?,
        }
        // Owner first: a chown drops set-id bits and security.capability,
        // which the mode and the xattrs then bring back exactly.
        self.set_owner(work, tmp, st.st_uid, st.st_gid)?;
        if kind != libc::S_IFLNK && perm & (libc::S_ISUID | libc::S_ISGID) != 0 {
            sys::chmod_at(work, tmp, perm).map_err(err)?;
        }
        copy_xattrs(src.dir(), &src.name, work, tmp)?;
        if data == CopyData::Meta && kind == libc::S_IFREG {
            let attr = ovl::xattr_name(self.layers.xattr_ns, "metacopy");
            sys::xattr::set(work, tmp, &attr, b"", 0).map_err(err)?;
        }
        let atime = sys::timespec(st.st_atime, st.st_atime_nsec);
        let mtime = sys::timespec(st.st_mtime, st.st_mtime_nsec);
        sys::utimens_at(work, tmp, Some(atime), Some(mtime)).map_err(err)?;
        Ok(())
    }

    /// Sets the owner of a new upper object. Rootless, only our own ids are
    /// possible; the kernel's permission checks still use what we report.
    pub fn set_owner(&self, dir: BorrowedFd, name: &OsStr, uid: u32, gid: u32) -> OpResult<()> {
        match sys::chown_at(dir, name, uid, gid) {
            Ok(()) => Ok(()),
            Err(e)
                if !self.privileged
                    && matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EINVAL)) =>
            {
                Ok(())
            }
            Err(e) => Err(err(e)),
        }
    }
}

/// Puts back a directory's atime and mtime (copy-up is not the user's change).
pub(super) fn restore_times(dir: BorrowedFd, st: &Stat) {
    let _ = sys::utimens_at(
        dir,
        OsStr::new(""),
        Some(sys::timespec(st.st_atime, st.st_atime_nsec)),
        Some(sys::timespec(st.st_mtime, st.st_mtime_nsec)),
    );
}

/// Copies every xattr but the overlay-private ones. ACLs and security.* go
/// along; a target filesystem that refuses one (EOPNOTSUPP) is not an error.
pub fn copy_xattrs(
    src_dir: BorrowedFd,
    src: &OsStr,
    dst_dir: BorrowedFd,
    dst: &OsStr,
) -> OpResult<()> {
    let names = sys::xattr::list(src_dir, src).map_err(err)?;
    for name in names {
        if ovl::is_private_xattr(&name) {
            continue;
        }
        let attr = OsStr::from_bytes(&name);
        let Some(value) = sys::xattr::get(src_dir, src, attr).map_err(err)? else {
            continue;
        };
        match sys::xattr::set(dst_dir, dst, attr, &value, 0) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EPERM)) => {
                log::debug!("copy-up: xattr {} not copied: {e}", attr.to_string_lossy());
            }
            Err(e) => return Err(err(e)),
        }
    }
    Ok(())
}
