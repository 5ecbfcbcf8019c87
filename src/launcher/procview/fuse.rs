//! The FUSE plumbing of the view: one directory with one file per virtualized file.
//! A file's text is made once, at open (so a reader sees one consistent snapshot), kept
//! with the open handle and served with direct I/O; the kernel caches nothing.
//!
//! sendfile(2) and splice(2) (busybox `cat`) still read through the page cache, bounded
//! by the size the kernel knows: so the size reported is the last text's, and each open
//! first stores its text's last byte with FUSE_NOTIFY_STORE, which makes the kernel's
//! size at least that long (a shorter one is then cut by the short read); the page goes
//! at the end of the open (no FOPEN_KEEP_CACHE).

use super::{View, FILES};
use fuser::Notifier;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, OpenFlags, ReplyAttr,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, Request,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

const ROOT: u64 = 1;
const TTL: Duration = Duration::from_secs(60);

pub struct ViewFs {
    view: Arc<View>,
    open: Mutex<HashMap<u64, Vec<u8>>>,
    /// Length of the last text of each file, as the size getattr reports.
    last_len: Mutex<HashMap<u64, u64>>,
    next: AtomicU64,
    pub notifier: Arc<OnceLock<Notifier>>,
}

impl ViewFs {
    pub fn new(view: Arc<View>) -> ViewFs {
        ViewFs {
            view,
            open: Mutex::new(HashMap::new()),
            last_len: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            notifier: Arc::new(OnceLock::new()),
        }
    }

    fn size(&self, ino: u64, fh: Option<FileHandle>) -> u64 {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = fh.and_then(|fh| open.get(&fh.0)) {
            return t.len() as u64;
        }
        let last = self.last_len.lock().unwrap_or_else(|e| e.into_inner());
        last.get(&ino).copied().unwrap_or(0)
    }
}

fn attr(ino: u64) -> FileAttr {
    let t = SystemTime::UNIX_EPOCH;
    let dir = ino == ROOT;
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
        kind: if dir {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
        perm: if dir { 0o555 } else { 0o444 },
        nlink: if dir { 2 } else { 1 },
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

/// The index in `FILES` of inode `ino`.
fn file_of(ino: INodeNo) -> Option<usize> {
    ino.0
        .checked_sub(ROOT + 1)
        .map(|i| i as usize)
        .filter(|i| *i < FILES.len())
}

impl fuser::Filesystem for ViewFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match FILES.iter().position(|f| OsStr::new(f.name) == name) {
            Some(i) if parent.0 == ROOT => {
                let ino = ROOT + 1 + i as u64;
                let mut a = attr(ino);
                a.size = self.size(ino, None);
                reply.entry(&TTL, &a, Generation(0))
            }
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino.0 == ROOT || file_of(ino).is_some() {
            let mut a = attr(ino.0);
            a.size = self.size(ino.0, fh);
            reply.attr(&TTL, &a)
        } else {
            reply.error(Errno::ENOENT)
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let Some(i) = file_of(ino) else {
            return reply.error(Errno::EISDIR);
        };
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EACCES);
        }
        let text = self.view.render(i, req.pid());
        let len = text.len() as u64;
        self.last_len
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ino.0, len);
        // Also when the last text was as long: another reader's short read may have
        // cut the kernel's size since.
        if len > 0 {
            if let Some(n) = self.notifier.get() {
                if let Err(e) = n.store(ino, len - 1, &text[text.len() - 1..]) {
                    log::debug!("proc view: FUSE_NOTIFY_STORE: {e}");
                }
            }
        }
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, text);
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.get(&fh.0) {
            Some(text) => {
                let start = (offset as usize).min(text.len());
                let end = start.saturating_add(size as usize).min(text.len());
                reply.data(&text[start..end])
            }
            None => reply.error(Errno::EBADF),
        }
    }

    /// ENOSYS: the kernel then sends no more FLUSH (one round trip less per close).
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS)
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh.0);
        reply.ok()
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino.0 != ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let mut all = vec![
            (ROOT, FileType::Directory, "."),
            (ROOT, FileType::Directory, ".."),
        ];
        for (i, f) in FILES.iter().enumerate() {
            all.push((ROOT + 1 + i as u64, FileType::RegularFile, f.name));
        }
        for (n, (ino, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), n as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok()
    }
}
