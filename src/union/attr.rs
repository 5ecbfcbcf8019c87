//! Attributes: what stat shows through the mount, and setattr with copy-up.

use super::copyup::CopyData;
use super::inode::Node;
use super::override_stat::Override;
use super::{err, OpResult, Union};
use crate::sys::{self, Stat};
use fuser::{FileAttr, FileType, INodeNo, TimeOrNow};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn kind_of(mode: u32) -> FileType {
    match sys::file_type(mode) {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::new((-sec) as u64, 0) + Duration::new(0, nsec as u32)
    }
}

/// FileAttr for `st`, shown as node `id` (which fuser also reports as st_ino).
pub fn to_attr(id: u64, st: &Stat, merged_dir: bool) -> FileAttr {
    FileAttr {
        ino: INodeNo(id),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: time(st.st_atime, st.st_atime_nsec),
        mtime: time(st.st_mtime, st.st_mtime_nsec),
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        crtime: UNIX_EPOCH,
        kind: kind_of(st.st_mode),
        perm: (st.st_mode & 0o7777) as u16,
        // As overlayfs: a merged directory's link count can't be known cheaply.
        nlink: if merged_dir { 1 } else { st.st_nlink as u32 },
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

/// The attributes of a negative entry: node id 0.
pub fn negative_attr() -> FileAttr {
    let mut a = dot_attr(0);
    a.ino = INodeNo(0);
    a
}

/// Placeholder attributes for "." and ".." in readdirplus.
pub fn dot_attr(ino: u64) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::Directory,
        perm: 0o755,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn to_timespec(t: TimeOrNow) -> libc::timespec {
    match t {
        TimeOrNow::Now => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        TimeOrNow::SpecificTime(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => sys::timespec(d.as_secs() as i64, d.subsec_nanos() as i64),
            Err(e) => {
                // Before 1970. fuser 0.18 turns (sec < 0, nsec) from the kernel
                // into EPOCH - (|sec| + nsec) instead of EPOCH - |sec| + nsec;
                // reading it back the same way gives the kernel's values again.
                let d = e.duration();
                sys::timespec(-(d.as_secs() as i64), d.subsec_nanos() as i64)
            }
        },
    }
}

/// What a setattr asks for.
#[derive(Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeOrNow>,
    pub mtime: Option<TimeOrNow>,
    /// The request carries the kernel's own ctime: it keeps the times
    /// itself (writeback cache) and writes them back with a SETATTR.
    pub ctime: bool,
}

impl SetAttr {
    /// Nothing to set: chown(path, -1, -1) (with the writeback cache, the
    /// kernel's ctime only). Still a change, as for the kernel overlayfs:
    /// the object is copied up and its ctime updated, by a chown(-1, -1) of
    /// the upper object (the kernel's notify_change(ATTR_CTIME) of it).
    pub fn is_touch(&self) -> bool {
        self.mode.is_none()
            && self.uid.is_none()
            && self.gid.is_none()
            && self.size.is_none()
            && self.atime.is_none()
            && self.mtime.is_none()
    }

    /// Owner, mode or times to set (or a touch).
    fn sets_meta(&self) -> bool {
        self.mode.is_some()
            || self.uid.is_some()
            || self.gid.is_some()
            || self.atime.is_some()
            || self.mtime.is_some()
            || self.is_touch()
    }
}

impl Union {
    /// Current attributes of a node, from an open fd when one is given.
    pub fn getattr(&self, node: &Node, fd: Option<BorrowedFd>) -> OpResult<FileAttr> {
        let st = match fd {
            Some(fd) => sys::fstat(fd).map_err(err)?,
            None => match self.locate(node) {
                Ok(at) => at.stat().map_err(err)?,
                // Unlinked but still open: the kernel asks without a handle.
                Err(libc::ENOENT) => match self.handles.file_of_node(node.id).as_deref() {
                    Some(super::handles::Handle::File { fd, .. }) => {
                        sys::fstat(std::os::fd::AsFd::as_fd(fd)).map_err(err)?
                    }
                    _ => return Err(libc::ENOENT),
                },
                Err(e) => return Err(e),
            },
        };
        if sys::file_type(st.st_mode) != node.kind {
            // The name now holds something else (a whiteout, a new object):
            // this node's object is gone. Reporting the other type would make
            // the kernel mark the inode bad (EIO).
            return Err(libc::ENOENT);
        }
        Ok(self.attr_of(node, &st))
    }

    pub fn attr_of(&self, node: &Node, st: &Stat) -> FileAttr {
        let (merged, lower) = {
            let s = node.state();
            let merged = node.is_dir() && ((s.upper && !s.lowers.is_empty()) || s.lowers.len() > 1);
            (
                merged,
                if s.upper {
                    None
                } else {
                    s.lowers.first().map(|l| l.layer)
                },
            )
        };
        let removed = match lower {
            Some(layer) if !node.is_dir() && st.st_nlink > 1 => self
                .removed_lower_links
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&(layer, st.st_ino))
                .copied()
                .unwrap_or(0),
            _ => 0,
        };
        let overridden;
        let st = if self.overrides.is_some() {
            let mut own = *st;
            self.with_override(node, &mut own);
            overridden = own;
            &overridden
        } else {
            st
        };
        let mut attr = to_attr(node.id, st, merged);
        if removed > 0 {
            attr.nlink = attr.nlink.saturating_sub(removed).max(1);
        }
        if self.static_nlink && node.is_dir() {
            attr.nlink = 1;
        }
        let (uid, gid) = self.ids.shown(st.st_uid, st.st_gid);
        attr.uid = uid;
        attr.gid = gid;
        attr
    }

    /// chmod/chown/truncate/utimens: copy up, then change the upper object.
    pub fn setattr(
        &self,
        node: &Arc<Node>,
        mut req: SetAttr,
        fd: Option<BorrowedFd>,
    ) -> OpResult<FileAttr> {
        self.check_writable()?;
        // The owner asked for is as the mount shows it.
        req.uid = req.uid.map(|u| self.ids.layer_uid(u));
        req.gid = req.gid.map(|g| self.ids.layer_gid(g));
        let _r = self.rename_lock.read().unwrap_or_else(|p| p.into_inner());
        let (upper, unlinked) = {
            let s = node.state();
            (s.upper, s.unlinked)
        };
        if !upper {
            if self.unchanged_times_write_back(node, &req) {
                return self.getattr(node, None);
            }
            if unlinked {
                // Its name is gone (unlinked, or another file renamed over
                // it): a copy-up has nowhere to go, and must never go to
                // the name. The kernel overlayfs fails with EEXIST here.
                return Err(libc::EEXIST);
            }
        }
        if let (Some(size), Some(fd)) = (req.size, fd) {
            sys::ftruncate(fd, size).map_err(err)?;
        } else if let Some(size) = req.size {
            let data = if size == 0 {
                CopyData::Empty
            } else {
                CopyData::Full
            };
            self.copy_up(node, data)?;
            let at = self.upper_at(node)?;
            let f = sys::open_beneath(at.dir(), std::path::Path::new(&at.name), libc::O_WRONLY, 0)
                .map_err(err)?;
            sys::ftruncate(std::os::fd::AsFd::as_fd(&f), size).map_err(err)?;
        }
        if req.sets_meta() {
            self.copy_up(node, CopyData::Meta)?;
            if self.keeps_override(node.kind)
                && (req.uid.is_some() || req.gid.is_some() || req.mode.is_some())
            {
                self.set_override(node, &mut req)?;
            }
            let changed = match (self.upper_at(node), fd) {
                (Ok(at), _) => set_meta_at(&at, node.kind, &req),
                // Unlinked but open: with the writeback cache the kernel
                // writes the file's times back through its handle at fsync
                // and close.
                (Err(libc::ENOENT), Some(fd)) => set_meta_fd(fd, &req),
                // Unlinked, no handle: a change through a read-only fd, or
                // the kernel's write-back of the times of a file it has no
                // writable handle of (it follows the unlink or the rename
                // over it that changed its ctime). It acts on the object,
                // which the node's O_PATH fd still reaches; its names
                // belong to other files now.
                (Err(libc::ENOENT), None) => {
                    let orphan = node.state().orphan.clone();
                    match orphan {
                        Some(o) => set_meta_object(std::os::fd::AsFd::as_fd(&*o), node.kind, &req),
                        None => Err(libc::ENOENT),
                    }
                }
                (Err(e), _) => Err(e),
            };
            // A chown drops security.capability; a chmod may rewrite the ACL.
            self.forget_xattrs(node);
            changed?;
        }
        self.getattr(node, fd)
    }

    /// The owner and mode of `req`, written to the node's override xattr
    /// (taken out of `req`: the inode keeps its own).
    fn set_override(&self, node: &Node, req: &mut SetAttr) -> OpResult<()> {
        let at = self.locate(node)?;
        let cur = match self.override_of(node) {
            Some(o) => o,
            None => Override::of_stat(&at.stat().map_err(err)?),
        };
        let new = Override {
            uid: req.uid.take().unwrap_or(cur.uid),
            gid: req.gid.take().unwrap_or(cur.gid),
            mode: req.mode.take().map(|m| m & 0o7777).unwrap_or(cur.mode),
        };
        let written = self.write_override(at.dir(), &at.name, new);
        self.invalidate_attr(node);
        written
    }

    /// A SETATTR of a lower object that changes nothing: the writeback cache
    /// writing back the mtime it had from us, after the kernel changed the
    /// inode's ctime itself (the unlink of one of its hard links, a rename
    /// over one of its names). The kernel overlayfs has no such write-back
    /// and does not copy the object up for it.
    fn unchanged_times_write_back(&self, node: &Node, req: &SetAttr) -> bool {
        let Some(mtime @ TimeOrNow::SpecificTime(_)) = req.mtime else {
            return false;
        };
        if !req.ctime
            || req.mode.is_some()
            || req.uid.is_some()
            || req.gid.is_some()
            || req.size.is_some()
            || req.atime.is_some()
        {
            return false;
        }
        let Ok(st) = self.locate(node).and_then(|at| at.stat().map_err(err)) else {
            return false;
        };
        let t = to_timespec(mtime);
        (t.tv_sec, t.tv_nsec) == (st.st_mtime, st.st_mtime_nsec)
    }
}

/// The owner, mode and times of `req`, set on the upper object at `at`.
fn set_meta_at(at: &super::At, kind: u32, req: &SetAttr) -> OpResult<()> {
    if at.name.is_empty() {
        // The upper root: `at.dir()` is an O_PATH fd of the object itself.
        return set_meta_object(at.dir(), kind, req);
    }
    if req.uid.is_some() || req.gid.is_some() || req.is_touch() {
        sys::chown_at(
            at.dir(),
            &at.name,
            req.uid.unwrap_or(u32::MAX),
            req.gid.unwrap_or(u32::MAX),
        )
        .map_err(err)?;
    }
    if let Some(mode) = req.mode {
        if kind != libc::S_IFLNK {
            sys::chmod_at(at.dir(), &at.name, mode & 0o7777).map_err(err)?;
        }
    }
    if req.atime.is_some() || req.mtime.is_some() {
        sys::utimens_at(
            at.dir(),
            &at.name,
            req.atime.map(to_timespec),
            req.mtime.map(to_timespec),
        )
        .map_err(err)?;
    }
    Ok(())
}

/// The same, through an open upper file.
fn set_meta_fd(fd: BorrowedFd, req: &SetAttr) -> OpResult<()> {
    if req.uid.is_some() || req.gid.is_some() || req.is_touch() {
        sys::fchown(fd, req.uid.unwrap_or(u32::MAX), req.gid.unwrap_or(u32::MAX)).map_err(err)?;
    }
    if let Some(mode) = req.mode {
        sys::fchmod(fd, mode & 0o7777).map_err(err)?;
    }
    if req.atime.is_some() || req.mtime.is_some() {
        sys::futimens(fd, req.atime.map(to_timespec), req.mtime.map(to_timespec)).map_err(err)?;
    }
    Ok(())
}

/// The same, on the object an O_PATH fd reaches (an upper object whose names
/// are gone, or the upper root directory).
fn set_meta_object(fd: BorrowedFd, kind: u32, req: &SetAttr) -> OpResult<()> {
    if req.uid.is_some() || req.gid.is_some() || req.is_touch() {
        sys::chown_o_path(fd, req.uid.unwrap_or(u32::MAX), req.gid.unwrap_or(u32::MAX))
            .map_err(err)?;
    }
    if let Some(mode) = req.mode {
        if kind != libc::S_IFLNK {
            sys::chmod_o_path(fd, mode & 0o7777).map_err(err)?;
        }
    }
    if req.atime.is_some() || req.mtime.is_some() {
        sys::utimens_o_path(fd, req.atime.map(to_timespec), req.mtime.map(to_timespec))
            .map_err(err)?;
    }
    Ok(())
}
