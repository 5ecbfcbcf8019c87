//! The `fuser::Filesystem` implementation: a table of contents that turns
//! each FUSE request into a call on `Union` and its result into a reply.

use super::attr::SetAttr;
use super::handles::Handle;
use super::namespace::Owner;
use super::privs::Caller;
use super::{OpResult, Union};
use crate::sys;
use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// Flags for opening a backing file on behalf of an open(2) through the mount.
/// O_DIRECT is dropped (the kernel does its own direct I/O through FUSE and
/// our buffers are not aligned); creation flags are handled by the caller.
/// Only flags openat2 knows pass: it rejects unknown bits (such as the
/// kernel's internal __FMODE_EXEC, which exec's open carries).
pub fn backing_flags(flags: i32) -> i32 {
    let keep = libc::O_ACCMODE
        | libc::O_APPEND
        | libc::O_NONBLOCK
        | libc::O_DSYNC
        | libc::O_SYNC
        | libc::O_NOATIME
        | libc::O_LARGEFILE
        | libc::O_TRUNC;
    flags & keep
}

fn errno(e: i32) -> Errno {
    // These should not happen; worth a line in the log when they do.
    if e == libc::EIO || e == libc::ESTALE {
        log::warn!("replying {}", std::io::Error::from_raw_os_error(e));
    }
    Errno::from_i32(e)
}

/// Wraps the union for fuser; `Arc` so the signal thread can reach it too.
pub struct StrataFs {
    pub union: Arc<Union>,
    /// Answer ENOENT lookups with cacheable negative entries.
    pub negative_ttl: bool,
    /// Set at FUSE_INIT: the kernel opens directories without asking us.
    pub opendir_unasked: bool,
}

impl StrataFs {
    /// The directory a readdir reads. When the kernel opens directories
    /// itself, a listing from the start is where its atime is updated.
    fn listing_start(&self, ino: INodeNo, offset: u64) -> OpResult<Arc<super::inode::Node>> {
        let dir = self.union.node(ino.0)?;
        if !dir.is_dir() {
            return Err(libc::ENOTDIR);
        }
        if offset == 0 && self.opendir_unasked {
            self.union.listed(&dir);
        }
        Ok(dir)
    }

    fn file_fd(&self, fh: FileHandle) -> OpResult<Arc<Handle>> {
        match self.union.handles.get(fh.0) {
            Some(h) if matches!(*h, Handle::File { .. }) => Ok(h),
            _ => Err(libc::EBADF),
        }
    }

    fn with_fd<T>(&self, fh: FileHandle, f: impl FnOnce(BorrowedFd) -> OpResult<T>) -> OpResult<T> {
        let h = self.file_fd(fh)?;
        f(h.fd().ok_or(libc::EBADF)?)
    }

    /// The open file of `fh` when its fd is on the node's current object:
    /// not when it was opened on a lower file that has been copied up since,
    /// and, for changes (`upper_only`), only when it is on the upper file.
    fn current_file(
        &self,
        fh: FileHandle,
        node: &super::inode::Node,
        upper_only: bool,
    ) -> Option<Arc<Handle>> {
        let h = self.file_fd(fh).ok()?;
        if let Handle::File {
            from_lower: true, ..
        } = &*h
        {
            if upper_only || node.state().upper {
                return None;
            }
        }
        Some(h)
    }

    /// The fd to read from: the handle's own, or the upper file when the
    /// handle was opened on a lower file that has been copied up since.
    fn read_fd(&self, fh: FileHandle) -> OpResult<ReadFd> {
        let h = self.file_fd(fh)?;
        if let Handle::File {
            from_lower: true,
            node,
            ..
        } = &*h
        {
            if let Some(n) = self.union.inodes.get(*node) {
                let copied = {
                    let st = n.state();
                    st.upper && !st.metacopy
                };
                if copied {
                    if let Ok(at) = self.union.upper_at(&n) {
                        let fd = sys::open_beneath_noatime(
                            at.dir(),
                            Path::new(&at.name),
                            libc::O_RDONLY,
                            0,
                        )
                        .map_err(super::err)?;
                        return Ok(ReadFd::Upper(fd));
                    }
                }
            }
        }
        Ok(ReadFd::Handle(h))
    }

    fn entry(
        &self,
        reply: ReplyEntry,
        res: OpResult<(Arc<super::inode::Node>, super::lookup::Resolved)>,
    ) {
        match res {
            Ok((node, r)) => {
                let attr = self.union.attr_of(&node, &r.stat);
                log::debug!("  entry {} {:?}", node.id, attr.kind);
                reply.entry_with_ttls(
                    &self.union.attr_ttl(&node),
                    &self.union.ttl,
                    &attr,
                    Generation(0),
                );
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn caller(req: &Request) -> Caller {
        Caller {
            uid: req.uid(),
            gid: req.gid(),
            pid: req.pid(),
        }
    }

    fn owner(&self, req: &Request) -> Owner {
        self.union.creator(req.uid(), req.gid())
    }
}

impl fuser::Filesystem for StrataFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let wanted = InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_DO_READDIRPLUS
            | super::export::init_flags(config.capabilities())
            | InitFlags::FUSE_CACHE_SYMLINKS
            // The umask comes to us: a default ACL decides instead (privs.rs).
            | InitFlags::FUSE_DONT_MASK;
        // The kernel enforces ACLs from system.posix_acl_* (cached per inode);
        // without it (`noacl`) they are xattrs like any other.
        let wanted = if self.union.posix_acl {
            wanted | InitFlags::FUSE_POSIX_ACL
        } else {
            wanted
        };
        let _ = config.add_capabilities(wanted & config.capabilities());
        // Directories open without a round trip (two per directory, with the
        // release): opendir answers ENOSYS once, and the kernel then opens
        // every directory with FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE itself,
        // which is what we answer anyway. Not under `strictatime,diratime`,
        // where every listing must reach us to update atime.
        let every_listing = self.union.atime == super::Atime::Always && self.union.dir_atime;
        self.opendir_unasked = !every_listing
            && config
                .capabilities()
                .contains(InitFlags::FUSE_NO_OPENDIR_SUPPORT);
        // Passthrough needs CAP_SYS_ADMIN in the initial namespace (checked
        // by the kernel when a backing file is registered).
        if self.union.want_passthrough
            && sys::geteuid() == 0
            && config.capabilities().contains(InitFlags::FUSE_PASSTHROUGH)
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.union
                .passthrough
                .store(true, std::sync::atomic::Ordering::Relaxed);
            log::info!("FUSE passthrough on");
        } else if self.union.want_writeback
            && config
                .add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE)
                .is_ok()
        {
            self.union
                .writeback
                .store(true, std::sync::atomic::Ordering::Relaxed);
            log::info!("FUSE writeback cache on");
        }
        if !self
            .union
            .writeback
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            // Not with the writeback cache: there the kernel trusts its own
            // i_size, and after an atomic O_TRUNC open it zeroes i_size again
            // (in handle_truncate, without asking us) once the inode lock is
            // free. A write or truncate by another process landing in between
            // reaches the upper, while the mount shows size 0 for good.
            // Without it the kernel truncates with a SETATTR under the lock.
            let _ = config.add_capabilities(InitFlags::FUSE_ATOMIC_O_TRUNC);
        }
        let _ = config.set_max_write(1 << 20);
        log::info!(
            "FUSE session initialised (kernel ABI {:?})",
            config.kernel_abi()
        );
        Ok(())
    }

    fn destroy(&mut self) {
        // The shared whiteout is ours alone: leave the workdir empty.
        let shared = self
            .union
            .shared_whiteout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let (Some(name), Ok(work)) = (shared, self.union.work_fd()) {
            let _ = sys::unlink_at(work, &name, false);
        }
        log::info!(
            "FUSE session ends ({} inodes, {} open handles)",
            self.union.inodes.len(),
            self.union.handles.len()
        );
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        log::debug!("lookup {} {:?}", parent.0, name);
        let _paths = self.union.paths_stable();
        let res = self.union.node(parent.0).and_then(|p| {
            if !p.is_dir() {
                return Err(libc::ENOTDIR);
            }
            if name.len() > 255 {
                return Err(libc::ENAMETOOLONG);
            }
            let _dir = self.union.dir_shared(&p);
            self.union.lookup_node(&p, name)
        });
        if res.as_ref().err() == Some(&libc::ENOENT) && self.negative_ttl {
            // A negative entry: the kernel caches the absence too. Every change
            // to the namespace goes through this mount, so it stays true.
            return reply.entry(
                &self.union.ttl,
                &super::attr::negative_attr(),
                Generation(0),
            );
        }
        self.entry(reply, res);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        log::debug!("forget {} {nlookup}", ino.0);
        self.union.inodes.forget(ino.0, nlookup);
        self.union.inodes.trim_if_shrunk();
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        log::debug!("getattr {}", ino.0);
        let _paths = self.union.paths_stable();
        let res = self.union.node(ino.0).and_then(|node| {
            let h = fh.and_then(|fh| self.current_file(fh, &node, false));
            let attr = self
                .union
                .getattr(&node, h.as_deref().and_then(Handle::fd))?;
            Ok((attr, self.union.attr_ttl(&node)))
        });
        match res {
            Ok((attr, ttl)) => reply.attr(&ttl, &attr),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        log::debug!(
            "setattr {} mode={mode:?} uid={uid:?} gid={gid:?} size={size:?}",
            ino.0
        );
        let caller = Self::caller(req);
        let mut req = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            ctime: ctime.is_some(),
        };
        let res = self.union.node(ino.0).and_then(|node| {
            self.union.drop_setid_bits(&node, caller, &mut req);
            let h = fh.and_then(|fh| self.current_file(fh, &node, true));
            let attr = self
                .union
                .setattr(&node, req, h.as_deref().and_then(Handle::fd))?;
            Ok((attr, self.union.attr_ttl(&node)))
        });
        match res {
            Ok((attr, ttl)) => reply.attr(&ttl, &attr),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        log::debug!("readlink {}", ino.0);
        let _paths = self.union.paths_stable();
        let res = self
            .union
            .node(ino.0)
            .and_then(|n| self.union.locate(&n))
            .and_then(|at| sys::readlink_at(at.dir(), &at.name).map_err(super::err));
        match res {
            Ok(t) => reply.data(std::os::unix::ffi::OsStrExt::as_bytes(t.as_os_str())),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        log::debug!("mknod {} {:?} {mode:o} umask={umask:o}", parent.0, name);
        let res = self.union.node(parent.0).and_then(|p| {
            let mode = self.union.creation_mode(&p, mode, umask);
            self.union
                .make_node(&p, name, self.owner(req), mode, rdev as u64, None)
        });
        self.entry(reply, res);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        log::debug!("mkdir {} {:?} {mode:o} umask={umask:o}", parent.0, name);
        let res = self.union.node(parent.0).and_then(|p| {
            let mode = self.union.creation_mode(&p, mode, umask);
            self.union.make_node(
                &p,
                name,
                self.owner(req),
                libc::S_IFDIR | (mode & 0o7777),
                0,
                None,
            )
        });
        self.entry(reply, res);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        log::debug!("unlink {} {:?}", parent.0, name);
        match self
            .union
            .node(parent.0)
            .and_then(|p| self.union.remove(&p, name, false))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        log::debug!("rmdir {} {:?}", parent.0, name);
        match self
            .union
            .node(parent.0)
            .and_then(|p| self.union.remove(&p, name, true))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        log::debug!("symlink {} {:?} -> {:?}", parent.0, link_name, target);
        let res = self.union.node(parent.0).and_then(|p| {
            self.union.make_node(
                &p,
                link_name,
                self.owner(req),
                libc::S_IFLNK | 0o777,
                0,
                Some(target),
            )
        });
        self.entry(reply, res);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        log::debug!(
            "rename {} {:?} -> {} {:?} flags={:?}",
            parent.0,
            name,
            newparent.0,
            newname,
            flags
        );
        let res = self.union.node(parent.0).and_then(|p| {
            let np = self.union.node(newparent.0)?;
            self.union.rename(&p, name, &np, newname, flags.bits())
        });
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        log::debug!("link {} -> {} {:?}", ino.0, newparent.0, newname);
        let res = self.union.node(ino.0).and_then(|n| {
            let np = self.union.node(newparent.0)?;
            let st = self.union.link(&n, &np, newname)?;
            Ok((n, st))
        });
        match res {
            Ok((node, st)) => {
                let attr = self.union.attr_of(&node, &st);
                reply.entry_with_ttls(
                    &self.union.attr_ttl(&node),
                    &self.union.ttl,
                    &attr,
                    Generation(0),
                );
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        log::debug!("open {} flags={:#x}", ino.0, flags.0);
        match self.union.node(ino.0).and_then(|n| {
            let opened = self.union.open_file(&n, flags.0)?;
            if flags.0 & libc::O_TRUNC != 0 {
                self.union.truncated_by(&n, Self::caller(req))?;
            }
            Ok((n, opened))
        }) {
            Ok((node, (fd, from_lower))) => {
                let mode = self.union.open_mode(&node, |b| reply.open_backing(b));
                self.union
                    .opened(&node, flags.0, &mode, fd.as_fd(), from_lower);
                let (backing, mut flags) = open_reply_parts(&mode);
                if self.union.needs_direct_io(fd.as_fd()) {
                    flags |= FopenFlags::FOPEN_DIRECT_IO;
                }
                let fh = self.union.handles.insert(Handle::File {
                    fd,
                    node: ino.0,
                    backing: backing.clone(),
                    from_lower,
                });
                match backing {
                    Some(id) => reply.opened_passthrough(FileHandle(fh), flags, &id),
                    None => reply.opened(FileHandle(fh), flags),
                }
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        log::debug!("read {} off={offset} size={size}", ino.0);
        let res = self.read_fd(fh).and_then(|fd| {
            let mut buf = vec![0u8; size as usize];
            let n = sys::pread_full(fd.as_fd(), &mut buf, offset).map_err(super::err)?;
            buf.truncate(n);
            Ok(buf)
        });
        match res {
            Ok(buf) => reply.data(&buf),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        log::debug!("write {} off={offset} len={}", ino.0, data.len());
        let res = self.with_fd(fh, |fd| {
            let mut done = 0;
            while done < data.len() {
                let n = sys::pwrite(fd, &data[done..], offset + done as u64).map_err(super::err)?;
                if n == 0 {
                    break;
                }
                done += n;
            }
            Ok(done)
        });
        match res {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing to do at close: data goes to the upper file as it is written
        // (the kernel writes its writeback cache back before it would send
        // FLUSH), and locks are the kernel's. ENOSYS tells the kernel so: it
        // sends no more FLUSH (one round trip less for every close).
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if let Some(h) = self.union.handles.remove(fh.0) {
            if let Handle::File {
                backing: None,
                node,
                ..
            } = &*h
            {
                if let Some(n) = self.union.inodes.get(*node) {
                    self.union.release_cached(&n);
                }
            }
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        log::debug!("fsync {} datasync={datasync}", ino.0);
        let res = if self.union.volatile {
            Ok(())
        } else {
            self.with_fd(fh, |fd| sys::fsync(fd, datasync).map_err(super::err))
        };
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        log::debug!("opendir {}", ino.0);
        if self.opendir_unasked {
            return reply.error(errno(libc::ENOSYS));
        }
        match self.union.node(ino.0) {
            Ok(n) if n.is_dir() => {
                self.union.listed(&n);
                // No handle: listings are kept per directory (readdir.rs).
                // The kernel may keep the listing: every change comes
                // through us and invalidates it.
                reply.opened(
                    FileHandle(0),
                    FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
                );
            }
            Ok(_) => reply.error(errno(libc::ENOTDIR)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        log::debug!("readdir {} off={offset}", ino.0);
        let dir = match self.listing_start(ino, offset) {
            Ok(d) => d,
            Err(e) => return reply.error(errno(e)),
        };
        let _paths = self.union.paths_stable();
        let at = match self.union.listing_at(&dir, offset) {
            Ok(at) => at,
            Err(e) => return reply.error(errno(e)),
        };
        for item in &at.items[at.start..] {
            if reply.add(INodeNo(item.ino), item.pos, item.kind, &item.name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        log::debug!("readdirplus {} off={offset}", ino.0);
        let dir = match self.listing_start(ino, offset) {
            Ok(d) => d,
            Err(e) => return reply.error(errno(e)),
        };
        let _paths = self.union.paths_stable();
        let _dir = self.union.dir_shared(&dir);
        let at = match self.union.listing_at(&dir, offset) {
            Ok(at) => at,
            Err(e) => return reply.error(errno(e)),
        };
        let mut layer_dirs = super::lookup::LayerDirs::default();
        for item in &at.items[at.start..] {
            let next = item.pos;
            if item.name == "." || item.name == ".." {
                // Not linked by the kernel; only the d_ino and type matter.
                let attr = super::attr::dot_attr(item.ino);
                if reply.add(
                    INodeNo(item.ino),
                    next,
                    &item.name,
                    &self.union.ttl,
                    &attr,
                    Generation(0),
                ) {
                    break;
                }
                continue;
            }
            // Each entry is a lookup: the kernel takes a reference on the node.
            let Ok((node, r)) = self.union.lookup_listed(&dir, item, &mut layer_dirs) else {
                continue;
            };
            let attr = self.union.attr_of(&node, &r.stat);
            if reply.add(
                INodeNo(node.id),
                next,
                &item.name,
                &self.union.attr_ttl(&node),
                &attr,
                Generation(0),
            ) {
                // Did not fit: the kernel never saw it, so drop the reference again.
                self.union.inodes.forget(node.id, 1);
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        log::debug!("fsyncdir {}", ino.0);
        let res = self.union.node(ino.0).and_then(|n| {
            if self.union.volatile || !n.state().upper {
                return Ok(());
            }
            let path = self.union.path(&n)?;
            let fd = self
                .union
                .upper()?
                .open_dir_read(&path)
                .map_err(super::err)?;
            sys::fsync(fd.as_fd(), false).map_err(super::err)
        });
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let layer = self
            .union
            .layers
            .upper
            .as_ref()
            .unwrap_or(&self.union.layers.lowers[0]);
        match sys::fstatfs(layer.fd()) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namelen as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(errno(super::err(e))),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        log::debug!("setxattr {} {:?}", ino.0, name);
        match self.union.node(ino.0).and_then(|n| {
            self.union.setxattr(&n, name, value, flags)?;
            if name == "system.posix_acl_access" {
                self.union.acl_set_by(&n, Self::caller(req))?;
            }
            Ok(())
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        log::debug!("getxattr {} {:?}", ino.0, name);
        let _paths = self.union.paths_stable();
        match self
            .union
            .node(ino.0)
            .and_then(|n| self.union.getxattr(&n, name))
        {
            Ok(v) => xattr_reply(reply, &v, size),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        log::debug!("listxattr {}", ino.0);
        let _paths = self.union.paths_stable();
        match self
            .union
            .node(ino.0)
            .and_then(|n| self.union.listxattr(&n))
        {
            Ok(v) => xattr_reply(reply, &v, size),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        log::debug!("removexattr {} {:?}", ino.0, name);
        match self
            .union
            .node(ino.0)
            .and_then(|n| self.union.removexattr(&n, name))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // default_permissions: the kernel has checked already.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        log::debug!(
            "create {} {:?} {mode:o} umask={umask:o} flags={flags:#x}",
            parent.0,
            name
        );
        let res = self.union.node(parent.0).and_then(|p| {
            let mode = self.union.creation_mode(&p, mode, umask);
            self.union
                .create_file(&p, name, self.owner(req), mode, flags)
        });
        match res {
            Ok((node, r, fd)) => {
                let attr = self.union.attr_of(&node, &r.stat);
                let mode = self.union.open_mode(&node, |b| reply.open_backing(b));
                self.union.created(&node, flags, &mode);
                let (backing, flags) = open_reply_parts(&mode);
                let fh = self.union.handles.insert(Handle::File {
                    fd,
                    node: node.id,
                    backing: backing.clone(),
                    from_lower: false,
                });
                let ttl = self.union.attr_ttl(&node);
                match backing {
                    Some(id) => reply.created_passthrough(
                        &ttl,
                        &attr,
                        Generation(0),
                        FileHandle(fh),
                        flags,
                        &id,
                    ),
                    None => reply.created(&ttl, &attr, Generation(0), FileHandle(fh), flags),
                }
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        log::debug!("fallocate {} off={offset} len={length} mode={mode}", ino.0);
        match self.with_fd(fh, |fd| {
            sys::fallocate(fd, mode, offset, length).map_err(super::err)
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn ioctl(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        flags: fuser::IoctlFlags,
        cmd: u32,
        in_data: &[u8],
        out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        log::debug!(
            "ioctl {} cmd={cmd:#x} flags={flags:?} in={} out={out_size}",
            ino.0,
            in_data.len()
        );
        match self
            .union
            .node(ino.0)
            .and_then(|n| self.union.ioctl(&n, cmd, in_data, out_size))
        {
            Ok(out) => reply.ioctl(0, &out),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        log::debug!("lseek {} off={offset} whence={whence}", ino.0);
        match self.with_fd(fh, |fd| sys::lseek(fd, offset, whence).map_err(super::err)) {
            Ok(o) => reply.offset(o),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        log::debug!("copy_file_range {} -> {} len={len}", ino_in.0, ino_out.0);
        let res = self.with_fd(fh_in, |fin| {
            self.with_fd(fh_out, |fout| {
                let len = len.min(u32::MAX as u64 / 2) as usize;
                sys::copy_file_range(fin, offset_in, fout, offset_out, len).map_err(super::err)
            })
        });
        match res {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(e)),
        }
    }
}

/// An fd to read from, borrowed from a handle or opened for the read.
enum ReadFd {
    Handle(Arc<Handle>),
    Upper(std::os::fd::OwnedFd),
}

impl ReadFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            ReadFd::Handle(h) => match &**h {
                Handle::File { fd, .. } => fd.as_fd(),
            },
            ReadFd::Upper(fd) => fd.as_fd(),
        }
    }
}

/// The backing id (for passthrough) and open flags that go with a mode.
fn open_reply_parts(
    mode: &super::passthrough::OpenMode,
) -> (Option<Arc<fuser::BackingId>>, FopenFlags) {
    use super::passthrough::OpenMode;
    match mode {
        OpenMode::Passthrough(id) => (Some(id.clone()), FopenFlags::empty()),
        // Only this mount changes the files: the page cache stays valid.
        OpenMode::Cached => (None, FopenFlags::FOPEN_KEEP_CACHE),
    }
}

fn xattr_reply(reply: ReplyXattr, value: &[u8], size: u32) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(errno(libc::ERANGE));
    } else {
        reply.data(value);
    }
}
