//! Namespace operations: create, mkdir, mknod, symlink, link, unlink, rmdir
//! and rename, with whiteouts, opaque directories and redirects.

use super::copyup::CopyData;
use super::inode::{self, Node};
use super::lookup::Resolved;
use super::ovl;
use super::{err, OpResult, Union};
use crate::sys;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// Who creates a new object (the caller's ids, from the FUSE request).
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// The upper directory of a merged directory, with its stat.
struct UpperDir {
    fd: Arc<OwnedFd>,
    st: sys::Stat,
}

impl Union {
    /// The owner of an object created by the caller (uid, gid), as the
    /// layers keep it: the caller's ids are as the mount shows them.
    pub fn creator(&self, uid: u32, gid: u32) -> Owner {
        Owner {
            uid: self.ids.layer_uid(uid),
            gid: self.ids.layer_gid(gid),
        }
    }

    fn upper_dir(&self, dir: &Arc<Node>) -> OpResult<UpperDir> {
        self.copy_up(dir, CopyData::Full)?;
        let fd = self.dir_fd(dir, None)?;
        let st = sys::fstat(fd.as_fd()).map_err(err)?;
        Ok(UpperDir { fd, st })
    }

    fn set_xattr_mark(
        &self,
        dir: BorrowedFd,
        name: &OsStr,
        what: &str,
        value: &[u8],
    ) -> OpResult<()> {
        let attr = ovl::xattr_name(self.layers.xattr_ns, what);
        sys::xattr::set(dir, name, &attr, value, 0).map_err(err)
    }

    /// Marks a merged directory about to move: its lower contents stay where
    /// they are, and lookups (ours and the kernel's) find them again through
    /// the absolute path of its top lower directory.
    fn set_redirect(&self, dir: BorrowedFd, name: &OsStr, r: &Resolved) -> OpResult<()> {
        let mut value = b"/".to_vec();
        value.extend_from_slice(r.lowers[0].path.as_os_str().as_bytes());
        self.set_xattr_mark(dir, name, "redirect", &value)
    }

    /// Creates a whiteout for `name` in `dir`: a 0/0 character device (allowed
    /// unprivileged since Linux 5.8), else an aufs `.wh.NAME` file.
    fn make_whiteout(&self, dir: BorrowedFd, name: &OsStr) -> OpResult<()> {
        match self.whiteout_at(dir, name) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EOPNOTSUPP)) => {
                let wh = ovl::aufs_whiteout_name(name);
                sys::open_beneath(
                    dir,
                    Path::new(&wh),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    0,
                )
                .map(drop)
                .map_err(err)
            }
            Err(e) => Err(err(e)),
        }
    }

    /// A 0/0 character device at (dir, name). Allocating a device inode is
    /// slow on ext4 (~0.7 ms), so, as the kernel does since 5.8, whiteouts
    /// are hard links of one shared whiteout kept in the workdir.
    fn whiteout_at(&self, dir: BorrowedFd, name: &OsStr) -> std::io::Result<()> {
        let Ok(work) = self.work_fd() else {
            return sys::mknod_at(dir, name, libc::S_IFCHR, 0);
        };
        let mut shared = self
            .shared_whiteout
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for _ in 0..2 {
            if shared.is_none() {
                let tmp = self.tmp_name();
                sys::mknod_at(work, &tmp, libc::S_IFCHR, 0)?;
                *shared = Some(tmp);
            }
            let template = shared.as_ref().cloned().unwrap_or_default();
            match sys::link_at(work, &template, dir, name) {
                Ok(()) => return Ok(()),
                // Too many links (or the template went): start a new one.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMLINK) | Some(libc::ENOENT)) => {
                    let _ = sys::unlink_at(work, &template, false);
                    *shared = None;
                }
                Err(_) => break,
            }
        }
        drop(shared);
        sys::mknod_at(dir, name, libc::S_IFCHR, 0)
    }

    /// A new directory `name` in the workdir with the default ACL `acl`.
    fn staging_dir(&self, work: BorrowedFd, name: &OsStr, acl: &[u8]) -> OpResult<OwnedFd> {
        sys::mkdir_at(work, name, 0o700).map_err(err)?;
        let made = sys::xattr::set(work, name, OsStr::new(DEFAULT_ACL), acl, 0)
            .and_then(|()| sys::open_dir_path(work, Path::new(name)));
        made.map_err(|e| {
            let _ = super::layers::remove_tree(work, name);
            err(e)
        })
    }

    /// With `dirsync` (or `sync`): a change of names in `dir` is on disk
    /// before the operation returns, as on a local filesystem mounted so.
    fn sync_names(&self, dir: &Node) -> OpResult<()> {
        if !self.sync_dirs || self.volatile {
            return Ok(());
        }
        // The cached fd is O_PATH, which fsync refuses.
        let path_fd = self.dir_fd(dir, None)?;
        let fd = sys::reopen(path_fd.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY).map_err(err)?;
        sys::fsync(fd.as_fd(), false).map_err(err)
    }

    /// Puts a new object at (parent, name). `make` creates it at the (dir,
    /// name) it is given: in place, or in the workdir when a whiteout has to
    /// be replaced atomically. The caller holds the rename lock for reading
    /// and has checked that the name is free in the merged view.
    pub fn create_entry<T>(
        &self,
        parent: &Arc<Node>,
        name: &OsStr,
        owner: Option<Owner>,
        kind: u32,
        mode: u32,
        make: impl FnOnce(BorrowedFd, &OsStr) -> io::Result<T>,
    ) -> OpResult<T> {
        let updir = self.upper_dir(parent)?;
        let dir = updir.fd.as_fd();
        let whiteout = sys::stat_at_opt(dir, name).map_err(err)?;
        if let Some(st) = &whiteout {
            if !sys::is_whiteout_stat(st) {
                return Err(libc::EEXIST);
            }
        }
        let aufs_wh = ovl::aufs_whiteout_name(name);
        let has_aufs_wh = sys::stat_at_opt(dir, &aufs_wh).map_err(err)?.is_some();
        // A directory created where a lower one was deleted must not merge with it.
        let opaque = kind == libc::S_IFDIR && (whiteout.is_some() || has_aufs_wh);
        // The parent's owner and mode as the mount keeps them.
        let mut parent_st = updir.st;
        self.with_override(parent, &mut parent_st);
        let overridden = self.keeps_override(kind);
        // The caller owns what it creates; a setgid directory hands down its group.
        let owner = owner.map(|o| Owner {
            uid: o.uid,
            gid: if parent_st.st_mode & libc::S_ISGID != 0 {
                parent_st.st_gid
            } else {
                o.gid
            },
        });
        let tmp = self.tmp_name();
        let work = match whiteout {
            Some(_) => Some(self.work_fd()?),
            None => None,
        };
        // Made over a whiteout, the object is made in the workdir, which has
        // no default ACL: under a parent with one it is made in a staging
        // directory of the workdir that carries the parent's default ACL, so
        // that the upper filesystem applies it (as the kernel's
        // ovl_create_over_whiteout does).
        let mut staging: Option<OwnedFd> = None;
        let (target_dir, target_name): (BorrowedFd, &OsStr) = match work {
            Some(work) => {
                if let Some(acl) = default_acl(dir)? {
                    staging = Some(self.staging_dir(work, &tmp, &acl)?);
                }
                match &staging {
                    Some(stage) => (stage.as_fd(), name),
                    None => (work, &tmp),
                }
            }
            None => (dir, name),
        };
        let drop_staging = || {
            if let (Some(_), Some(work)) = (&staging, work) {
                let _ = super::layers::remove_tree(work, &tmp);
            }
        };
        let out = match make(target_dir, target_name) {
            Ok(out) => out,
            Err(e) => {
                drop_staging();
                return Err(err(e));
            }
        };
        let finish = || -> OpResult<()> {
            // A directory made in the workdir did not inherit the parent's setgid bit.
            let inherit = if kind == libc::S_IFDIR {
                parent_st.st_mode & libc::S_ISGID
            } else {
                0
            };
            match owner {
                // The owner and mode go to the override xattr; the inode
                // keeps the daemon's.
                Some(o) if overridden => {
                    let o = super::override_stat::Override {
                        uid: o.uid,
                        gid: o.gid,
                        mode: (mode & 0o7777) | inherit,
                    };
                    self.write_override(target_dir, target_name, o)?;
                }
                Some(o) => self.set_owner(target_dir, target_name, o.uid, o.gid)?,
                None => {}
            }
            if !overridden
                && kind != libc::S_IFLNK
                && (mode | inherit) & (libc::S_ISUID | libc::S_ISGID) != 0
            {
                sys::chmod_at(target_dir, target_name, (mode & 0o7777) | inherit).map_err(err)?;
            }
            if opaque {
                self.set_xattr_mark(target_dir, target_name, "opaque", b"y")?;
            }
            if whiteout.is_some() {
                if kind == libc::S_IFDIR {
                    // A directory can't replace a device node: swap, then drop the whiteout.
                    sys::rename_at(target_dir, target_name, dir, name, libc::RENAME_EXCHANGE)
                        .map_err(err)?;
                    let _ = sys::unlink_at(target_dir, target_name, false);
                } else {
                    sys::rename_at(target_dir, target_name, dir, name, 0).map_err(err)?;
                }
            }
            Ok(())
        };
        if let Err(e) = finish() {
            let _ = super::layers::remove_tree(target_dir, target_name);
            drop_staging();
            return Err(e);
        }
        // Empty now, or holding the whiteout a directory was swapped with.
        drop_staging();
        if has_aufs_wh {
            let _ = sys::unlink_at(dir, &aufs_wh, false);
        }
        self.sync_names(parent)?;
        Ok(out)
    }

    /// Fails with EEXIST when `name` shows in the merged directory.
    fn check_free(&self, parent: &Node, name: &OsStr) -> OpResult<()> {
        if parent.kind != libc::S_IFDIR {
            return Err(libc::ENOTDIR);
        }
        if name.len() > 255 {
            return Err(libc::ENAMETOOLONG);
        }
        if name.as_bytes().starts_with(ovl::WH_PREFIX) {
            // Such a name would read back as a whiteout (aufs refuses it too).
            return Err(libc::EPERM);
        }
        match self.resolve(parent, name)? {
            Some(_) => Err(libc::EEXIST),
            None => Ok(()),
        }
    }

    /// mkdir, mknod and symlink: create, then look the new object up.
    pub fn make_node(
        &self,
        parent: &Arc<Node>,
        name: &OsStr,
        owner: Owner,
        mode: u32,
        rdev: u64,
        symlink_target: Option<&Path>,
    ) -> OpResult<(Arc<Node>, Resolved)> {
        self.check_writable()?;
        let _r = self.rename_lock.read().unwrap_or_else(|p| p.into_inner());
        let _dir = self.dir_exclusive(parent);
        self.check_free(parent, name)?;
        let kind = if symlink_target.is_some() {
            libc::S_IFLNK
        } else {
            sys::file_type(mode)
        };
        if kind == libc::S_IFCHR && rdev == 0 {
            // A 0/0 device is a whiteout: it would vanish (as the kernel refuses it).
            return Err(libc::EPERM);
        }
        let perm = mode & 0o7777;
        self.create_entry(parent, name, Some(owner), kind, mode, |dir, n| {
            match (kind, symlink_target) {
                (libc::S_IFLNK, Some(t)) => sys::symlink_at(t.as_os_str(), dir, n),
                (libc::S_IFDIR, _) => sys::mkdir_at(dir, n, perm),
                (libc::S_IFREG, _) => sys::open_beneath(
                    dir,
                    Path::new(n),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    perm,
                )
                .map(drop),
                _ => sys::mknod_at(dir, n, kind | perm, rdev),
            }
        })?;
        self.new_entry(parent, name)
    }

    /// The node of an object just created in the upper layer. No lookup walk
    /// is needed: the name was free, so nothing below shows through it (a new
    /// directory merges with nothing).
    fn new_entry(&self, parent: &Arc<Node>, name: &OsStr) -> OpResult<(Arc<Node>, Resolved)> {
        let dir = self.dir_fd(parent, None)?;
        let stat = sys::stat_at(dir.as_fd(), name).map_err(err)?;
        let r = Resolved {
            stat,
            upper: true,
            lowers: Vec::new(),
            metacopy: false,
        };
        Ok((self.node_for(parent, name, &r), r))
    }

    /// open(O_CREAT) of a new file: creates it and opens it with `flags`.
    pub fn create_file(
        &self,
        parent: &Arc<Node>,
        name: &OsStr,
        owner: Owner,
        mode: u32,
        flags: i32,
    ) -> OpResult<(Arc<Node>, Resolved, OwnedFd)> {
        self.check_writable()?;
        let _r = self.rename_lock.read().unwrap_or_else(|p| p.into_inner());
        let _dir = self.dir_exclusive(parent);
        self.check_free(parent, name)?;
        let perm = mode & 0o7777;
        let open_flags = self.backing_flags(flags) | libc::O_CREAT | libc::O_EXCL;
        let fd = self.create_entry(parent, name, Some(owner), libc::S_IFREG, mode, |dir, n| {
            sys::open_beneath(dir, Path::new(n), open_flags, perm)
        })?;
        let (node, r) = self.new_entry(parent, name)?;
        Ok((node, r, fd))
    }

    /// link(): copies the source up, then links it under the new name.
    pub fn link(
        &self,
        node: &Arc<Node>,
        newparent: &Arc<Node>,
        newname: &OsStr,
    ) -> OpResult<sys::Stat> {
        self.check_writable()?;
        if node.is_dir() {
            return Err(libc::EPERM);
        }
        let _r = self.rename_lock.read().unwrap_or_else(|p| p.into_inner());
        loop {
            let dir = self.dir_exclusive(newparent);
            self.check_free(newparent, newname)?;
            let copied = {
                let st = node.state();
                st.upper && !st.metacopy
            };
            if !copied {
                // A copy-up publishes under the lock of the source's
                // directory (maybe this one, or one on the same stripe):
                // never while holding a directory lock.
                drop(dir);
                self.copy_up(node, CopyData::Full)?;
                continue;
            }
            let src = self.upper_at(node)?;
            // Link only the node's own object. A whiteout at its name (had
            // the node lost track of it) would be linked into the workdir,
            // and renaming that over a target whiteout, the same inode, does
            // nothing: the staged name would stay.
            let st = src.stat().map_err(err)?;
            if sys::file_type(st.st_mode) != node.kind || sys::is_whiteout_stat(&st) {
                log::warn!("link: node {} does not name its object; refused", node.id);
                return Err(libc::ENOENT);
            }
            self.create_entry(newparent, newname, None, node.kind, 0, |dir, n| {
                sys::link_at(src.dir(), &src.name, dir, n)
            })?;
            inode::add_alias(node, newparent.id, newname);
            self.inodes.add_ref(node);
            return src.stat().map_err(err);
        }
    }

    /// unlink and rmdir: remove the upper object, leave a whiteout where a
    /// lower object would show through.
    pub fn remove(&self, parent: &Arc<Node>, name: &OsStr, rmdir: bool) -> OpResult<()> {
        self.check_writable()?;
        let _r = self.rename_lock.read().unwrap_or_else(|p| p.into_inner());
        let _dir = self.dir_exclusive(parent);
        let r = self.resolve(parent, name)?.ok_or(libc::ENOENT)?;
        match (rmdir, r.is_dir()) {
            (true, false) => return Err(libc::ENOTDIR),
            (false, true) => return Err(libc::EISDIR),
            _ => {}
        }
        let victim = self.find_node(parent, name, &r);
        if rmdir {
            let probe = self.probe_node(parent, name, &r);
            if !self.dir_is_empty(&probe)? {
                return Err(libc::ENOTEMPTY);
            }
        }
        // A lower-only object always needs one; an upper one when something
        // of that name would show from below.
        let needs_whiteout = !r.upper || self.lower_has(parent, name)?;
        let updir = self.upper_dir(parent)?;
        let dir = updir.fd.as_fd();
        let orphan = self.orphan_of(victim.as_ref(), &r, dir, name);
        // The node is reached through its fd from now on: a getattr racing
        // the removal must not find the whiteout that replaces it.
        if let (Some(v), Some(o)) = (victim.as_ref(), orphan.as_ref()) {
            v.state().orphan = Some(o.clone());
        }
        if r.upper {
            if needs_whiteout {
                self.replace_with_whiteout(dir, name, rmdir)?;
            } else if rmdir {
                super::layers::remove_tree(dir, name).map_err(err)?;
            } else {
                sys::unlink_at(dir, name, false).map_err(err)?;
            }
        } else {
            self.make_whiteout(dir, name)?;
        }
        if !r.upper && !r.is_dir() && r.stat.st_nlink > 1 {
            let mut removed = self
                .removed_lower_links
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *removed
                .entry((r.lowers[0].layer, r.stat.st_ino))
                .or_insert(0) += 1;
        }
        if let Some(node) = victim {
            let lower_link = !r.upper && !r.is_dir() && r.stat.st_nlink > 1;
            if lower_link {
                // Its other lower names still count it: keep the node findable
                // and show one link less (as the kernel's index=on does).
                inode::drop_name(&node, parent.id, name);
            } else if inode::drop_name(&node, parent.id, name) {
                node.state().orphan = orphan;
                self.inodes.unkey(&node);
            }
        }
        self.sync_names(parent)
    }

    /// For a node the kernel knows whose upper object is about to lose
    /// its last name: an O_PATH fd, so that an open racing the removal still
    /// reaches the object, as on a local filesystem.
    fn orphan_of(
        &self,
        node: Option<&Arc<Node>>,
        r: &Resolved,
        dir: BorrowedFd,
        name: &OsStr,
    ) -> Option<Arc<OwnedFd>> {
        if node.is_none() || !r.upper {
            return None;
        }
        sys::open_path_nofollow(dir, name).ok().map(Arc::new)
    }

    /// Atomically swaps the upper object `name` for a whiteout (staged in the
    /// workdir), then disposes of the old object.
    fn replace_with_whiteout(&self, dir: BorrowedFd, name: &OsStr, is_dir: bool) -> OpResult<()> {
        let work = self.work_fd()?;
        let tmp = self.tmp_name();
        match self.whiteout_at(work, &tmp) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                // No 0/0 devices here: remove, then leave an aufs whiteout.
                if is_dir {
                    super::layers::remove_tree(dir, name).map_err(err)?;
                } else {
                    sys::unlink_at(dir, name, false).map_err(err)?;
                }
                return self.make_whiteout(dir, name);
            }
            Err(e) => return Err(err(e)),
        }
        let flags = if is_dir { libc::RENAME_EXCHANGE } else { 0 };
        if let Err(e) = sys::rename_at(work, &tmp, dir, name, flags) {
            let _ = sys::unlink_at(work, &tmp, false);
            return Err(err(e));
        }
        if is_dir {
            super::layers::remove_tree(work, &tmp).map_err(err)?;
        }
        Ok(())
    }

    /// The live node for a resolved name, if the kernel has one.
    fn find_node(&self, parent: &Node, name: &OsStr, r: &Resolved) -> Option<Arc<Node>> {
        self.inodes
            .find(&super::lookup::identity_key(parent, name, r))
    }

    /// A node for a resolved name, to list or copy it up; it is not entered
    /// in the table unless it is there already.
    fn probe_node(&self, parent: &Node, name: &OsStr, r: &Resolved) -> Arc<Node> {
        self.find_node(parent, name, r)
            .unwrap_or_else(|| Arc::new(Node::detached(parent.id, name, r)))
    }

    /// rename(2), with RENAME_NOREPLACE and RENAME_EXCHANGE.
    pub fn rename(
        &self,
        parent: &Arc<Node>,
        name: &OsStr,
        newparent: &Arc<Node>,
        newname: &OsStr,
        flags: u32,
    ) -> OpResult<()> {
        self.check_writable()?;
        if flags & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0 {
            return Err(libc::EINVAL);
        }
        if newname.len() > 255 {
            return Err(libc::ENAMETOOLONG);
        }
        if newname.as_bytes().starts_with(ovl::WH_PREFIX) {
            return Err(libc::EPERM);
        }
        // Copy non-directories up before taking the lock for writing, so a
        // big copy-up does not stall every other operation.
        {
            let _r = self.rename_lock.read().unwrap_or_else(|p| p.into_inner());
            for (p, n) in [(parent, name), (newparent, newname)] {
                if let Some(r) = self.resolve(p, n)? {
                    if !r.is_dir() && !r.upper {
                        let (node, _) = self.lookup_node(p, n)?;
                        let res = self.copy_up(&node, CopyData::Full);
                        self.inodes.forget(node.id, 1);
                        res?;
                    }
                }
                if flags & libc::RENAME_EXCHANGE == 0 {
                    break;
                }
            }
        }
        let _w = self.rename_lock.write().unwrap_or_else(|p| p.into_inner());
        let src = self.resolve(parent, name)?.ok_or(libc::ENOENT)?;
        let dst = self.resolve(newparent, newname)?;
        if flags & libc::RENAME_EXCHANGE != 0 {
            let dst = dst.ok_or(libc::ENOENT)?;
            self.rename_exchange(parent, name, &src, newparent, newname, &dst)?;
            return self.sync_rename(parent, newparent);
        }
        if let Some(d) = &dst {
            if flags & libc::RENAME_NOREPLACE != 0 {
                return Err(libc::EEXIST);
            }
            if src.upper
                && d.upper
                && src.stat.st_ino == d.stat.st_ino
                && src.stat.st_dev == d.stat.st_dev
            {
                return Ok(()); // two names of one file: nothing to do
            }
            match (src.is_dir(), d.is_dir()) {
                (true, false) => return Err(libc::ENOTDIR),
                (false, true) => return Err(libc::EISDIR),
                (true, true) if !self.dir_is_empty(&self.probe_node(newparent, newname, d))? => {
                    return Err(libc::ENOTEMPTY)
                }
                _ => {}
            }
        }
        let (src_node, _) = self.lookup_node(parent, name)?;
        let res = self.rename_checked(
            parent,
            name,
            &src_node,
            &src,
            newparent,
            newname,
            dst.as_ref(),
        );
        self.inodes.forget(src_node.id, 1);
        res?;
        self.sync_rename(parent, newparent)
    }

    fn sync_rename(&self, parent: &Node, newparent: &Node) -> OpResult<()> {
        self.sync_names(parent)?;
        if newparent.id != parent.id {
            self.sync_names(newparent)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn rename_checked(
        &self,
        parent: &Arc<Node>,
        name: &OsStr,
        src_node: &Arc<Node>,
        src: &Resolved,
        newparent: &Arc<Node>,
        newname: &OsStr,
        dst: Option<&Resolved>,
    ) -> OpResult<()> {
        let src_has_lowers = src.is_dir() && !src.lowers.is_empty();
        if src_has_lowers && !self.redirect_dir {
            return Err(libc::EXDEV);
        }
        self.copy_up(src_node, CopyData::Full)?;
        let srcdir = self.upper_dir(parent)?;
        let dstdir = self.upper_dir(newparent)?;
        if src_has_lowers {
            self.set_redirect(srcdir.fd.as_fd(), name, src)?;
        }
        let dst_lower = self.lower_has(newparent, newname)?;
        let victim = dst.and_then(|d| self.find_node(newparent, newname, d));
        if let (Some(v), Some(d)) = (victim.as_ref(), dst) {
            // Takes effect only if the rename removes its last name.
            let orphan = self.orphan_of(Some(v), d, dstdir.fd.as_fd(), newname);
            v.state().orphan = orphan;
        }
        if let Some(d) = dst {
            if d.is_dir() && d.upper {
                // Empty in the merged view: only whiteouts are left inside.
                let sub = sys::open_dir_path(dstdir.fd.as_fd(), Path::new(newname)).map_err(err)?;
                super::layers::clean_dir(sub.as_fd()).map_err(err)?;
            }
        }
        let src_lower = self.lower_has(parent, name)?;
        let dst_upper = sys::stat_at_opt(dstdir.fd.as_fd(), newname).map_err(err)?;
        if src.is_dir() && dst_upper.as_ref().is_some_and(sys::is_whiteout_stat) {
            // A directory can't replace a whiteout (a device node): swap the
            // two, then the whiteout stays behind at the old name if needed.
            sys::rename_at(
                srcdir.fd.as_fd(),
                name,
                dstdir.fd.as_fd(),
                newname,
                libc::RENAME_EXCHANGE,
            )
            .map_err(err)?;
            if !src_lower {
                sys::unlink_at(srcdir.fd.as_fd(), name, false).map_err(err)?;
            }
            return self.finish_rename(
                parent, name, src_node, src, newparent, newname, dst_lower, victim, &dstdir,
            );
        }
        let mut flags = 0;
        if src_lower {
            flags |= libc::RENAME_WHITEOUT;
        }
        let moved = sys::rename_at(srcdir.fd.as_fd(), name, dstdir.fd.as_fd(), newname, flags);
        match moved {
            Ok(()) => {}
            Err(e)
                if src_lower
                    && matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EPERM)) =>
            {
                sys::rename_at(srcdir.fd.as_fd(), name, dstdir.fd.as_fd(), newname, 0)
                    .map_err(err)?;
                self.make_whiteout(srcdir.fd.as_fd(), name)?;
            }
            Err(e) => return Err(err(e)),
        }
        self.finish_rename(
            parent, name, src_node, src, newparent, newname, dst_lower, victim, &dstdir,
        )
    }

    /// After the move: hide the destination's lower objects under a plain
    /// upper directory, drop an aufs whiteout, and update the inode table.
    #[allow(clippy::too_many_arguments)]
    fn finish_rename(
        &self,
        parent: &Arc<Node>,
        name: &OsStr,
        src_node: &Arc<Node>,
        src: &Resolved,
        newparent: &Arc<Node>,
        newname: &OsStr,
        dst_lower: bool,
        victim: Option<Arc<Node>>,
        dstdir: &UpperDir,
    ) -> OpResult<()> {
        let src_has_lowers = src.is_dir() && !src.lowers.is_empty();
        if src.is_dir() && !src_has_lowers && dst_lower {
            self.set_xattr_mark(dstdir.fd.as_fd(), newname, "opaque", b"y")?;
        }
        let aufs_wh = ovl::aufs_whiteout_name(newname);
        let _ = sys::unlink_at(dstdir.fd.as_fd(), &aufs_wh, false);
        if let Some(v) = victim {
            if v.id != src_node.id && inode::drop_name(&v, newparent.id, newname) {
                self.inodes.unkey(&v);
            }
        }
        inode::move_name(src_node, parent.id, name, newparent.id, newname);
        Ok(())
    }

    fn rename_exchange(
        &self,
        parent: &Arc<Node>,
        name: &OsStr,
        a: &Resolved,
        newparent: &Arc<Node>,
        newname: &OsStr,
        b: &Resolved,
    ) -> OpResult<()> {
        let (na, _) = self.lookup_node(parent, name)?;
        let (nb, _) = self.lookup_node(newparent, newname)?;
        let res = (|| {
            for (n, r) in [(&na, a), (&nb, b)] {
                if r.is_dir() && !r.lowers.is_empty() && !self.redirect_dir {
                    return Err(libc::EXDEV);
                }
                self.copy_up(n, CopyData::Full)?;
            }
            let da = self.upper_dir(parent)?;
            let db = self.upper_dir(newparent)?;
            for (dir, nm, r) in [(&da, name, a), (&db, newname, b)] {
                if r.is_dir() && !r.lowers.is_empty() {
                    self.set_redirect(dir.fd.as_fd(), nm, r)?;
                }
            }
            let a_lower = self.lower_has(parent, name)?;
            let b_lower = self.lower_has(newparent, newname)?;
            sys::rename_at(
                da.fd.as_fd(),
                name,
                db.fd.as_fd(),
                newname,
                libc::RENAME_EXCHANGE,
            )
            .map_err(err)?;
            // A pure-upper directory landing on a name with lower objects must hide them.
            if a.is_dir() && a.lowers.is_empty() && b_lower {
                self.set_xattr_mark(db.fd.as_fd(), newname, "opaque", b"y")?;
            }
            if b.is_dir() && b.lowers.is_empty() && a_lower {
                self.set_xattr_mark(da.fd.as_fd(), name, "opaque", b"y")?;
            }
            inode::swap_names(&na, parent.id, name, &nb, newparent.id, newname);
            Ok(())
        })();
        self.inodes.forget(na.id, 1);
        self.inodes.forget(nb.id, 1);
        res
    }
}

const DEFAULT_ACL: &str = "system.posix_acl_default";

/// The default ACL of the directory `dir` (an fd of it), if it has one.
fn default_acl(dir: BorrowedFd) -> OpResult<Option<Vec<u8>>> {
    sys::xattr::get(dir, OsStr::new(""), OsStr::new(DEFAULT_ACL)).map_err(err)
}
