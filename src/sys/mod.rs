//! The system layer: every libc call strata makes goes through here, and this is
//! the one place that turns a -1 return into an `io::Error` (errno kept).
//!
//! - this file: file and directory operations on layer contents. Every path handed
//!   to them is relative to a directory fd and is resolved with
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` or is a single name used with
//!   `AT_SYMLINK_NOFOLLOW`, so a symlink inside a layer can never take the daemon
//!   outside that layer;
//! - `xattr`: extended attributes of objects named by (directory fd, name);
//! - `fileattr`: inode flags and fsxattr of an open file (chattr's ioctls);
//! - `mount`: mount, umount, unshare, statfs, /proc/self/mountinfo;
//! - `process`: fork/clone, wait, pipes, descriptor passing, poll, prctl, signal masks;
//! - `tty`: pseudo-terminals, termios, window sizes, the controlling terminal;
//! - `seccomp`: a user-notification filter for one system call, and its supervisor's
//!   side (receive, answer, write into the caller's memory).
//!
//! It imports nothing else of strata, and adds no context to errors: callers say
//! which path or layer failed.

pub mod fileattr;
pub mod mount;
pub mod process;
pub mod seccomp;
pub mod tty;
pub mod xattr;

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

pub type Stat = libc::stat;

/// Converts a -1 return into the current errno.
pub fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub fn cstr(s: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(s.as_ref().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// The errno of an io::Error, EIO when it has none.
pub fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// Opens `path` (relative, "" or "." for `dir` itself) beneath `dir` without
/// following any symlink, not even in intermediate components.
pub fn open_beneath(dir: BorrowedFd, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    // Paths longer than PATH_MAX are walked a piece at a time.
    const CHUNK: usize = 2048;
    if path.as_os_str().len() >= CHUNK {
        // Every piece stays under CHUNK (a name is at most 255 bytes), so the
        // calls below take the direct path.
        let mut head = PathBuf::new();
        let mut cur: Option<OwnedFd> = None;
        for comp in path.iter() {
            if !head.as_os_str().is_empty() && head.as_os_str().len() + comp.len() + 1 >= CHUNK {
                let base = cur.as_ref().map(|f| f.as_fd()).unwrap_or(dir);
                cur = Some(open_beneath(
                    base,
                    &head,
                    libc::O_PATH | libc::O_DIRECTORY,
                    0,
                )?);
                head = PathBuf::new();
            }
            head.push(comp);
        }
        let base = cur.as_ref().map(|f| f.as_fd()).unwrap_or(dir);
        return open_beneath(base, &head, flags, mode);
    }
    let rel: &OsStr = if path.as_os_str().is_empty() {
        OsStr::new(".")
    } else {
        path.as_os_str()
    };
    let c = cstr(rel)?;
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    // O_NOFOLLOW|O_PATH would hand back an fd of a trailing symlink (and *at()
    // calls relative to it follow it): leave O_NOFOLLOW out for O_PATH, so
    // RESOLVE_NO_SYMLINKS refuses a trailing symlink with ELOOP.
    let nofollow = if flags & libc::O_PATH != 0 {
        0
    } else {
        libc::O_NOFOLLOW
    };
    how.flags = (flags | libc::O_CLOEXEC | nofollow) as u64;
    how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        mode as u64
    } else {
        0
    };
    // RESOLVE_NO_XDEV: like the kernel's overlayfs, never walk into a mount
    // inside a layer (above all not into our own mount: a deadlock).
    how.resolve = libc::RESOLVE_BENEATH
        | libc::RESOLVE_NO_SYMLINKS
        | libc::RESOLVE_NO_MAGICLINKS
        | libc::RESOLVE_NO_XDEV;
    loop {
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        match cvt_long(fd) {
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
            // openat2 returns EAGAIN when a concurrent rename raced the walk.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            // A symlink met on the way: to us it is "not a directory" or "not there".
            Err(e)
                if e.raw_os_error() == Some(libc::ELOOP)
                    && flags & (libc::O_DIRECTORY | libc::O_PATH) != 0 =>
            {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR))
            }
            Err(e) => return Err(e),
        }
    }
}

/// `open_beneath` with O_NOATIME, so that the daemon's own reads leave atime
/// alone (the union decides when atime changes). A file the caller may not
/// open that way (EPERM: not its owner, no CAP_FOWNER) is opened without it.
pub fn open_beneath_noatime(
    dir: BorrowedFd,
    path: &Path,
    flags: i32,
    mode: u32,
) -> io::Result<OwnedFd> {
    match open_beneath(dir, path, flags | libc::O_NOATIME, mode) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open_beneath(dir, path, flags, mode),
        r => r,
    }
}

/// An O_PATH handle on one name in `dir` itself, symlink or not (kept to
/// reach an object after its name is gone).
pub fn open_path_nofollow(dir: BorrowedFd, name: &OsStr) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    let fd = cvt(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the object behind an O_PATH handle again, for I/O.
pub fn reopen(fd: BorrowedFd, flags: i32) -> io::Result<OwnedFd> {
    let path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fd = cvt(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `reopen` with O_NOATIME where the caller may (see `open_beneath_noatime`).
pub fn reopen_noatime(fd: BorrowedFd, flags: i32) -> io::Result<OwnedFd> {
    match reopen(fd, flags | libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => reopen(fd, flags),
        r => r,
    }
}

/// Opens a directory beneath `dir` as an O_PATH handle (cheap, no read permission needed).
pub fn open_dir_path(dir: BorrowedFd, path: &Path) -> io::Result<OwnedFd> {
    open_beneath(dir, path, libc::O_PATH | libc::O_DIRECTORY, 0)
}

/// Opens a directory beneath `dir` for reading its entries (leaving its atime
/// alone where the caller may).
pub fn open_dir_read(dir: BorrowedFd, path: &Path) -> io::Result<OwnedFd> {
    open_beneath_noatime(dir, path, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

/// lstat of one name in `dir` ("" for `dir` itself).
pub fn stat_at(dir: BorrowedFd, name: &OsStr) -> io::Result<Stat> {
    let mut st: Stat = unsafe { std::mem::zeroed() };
    if name.is_empty() {
        cvt(unsafe { libc::fstat(dir.as_raw_fd(), &mut st) })?;
    } else {
        let c = cstr(name)?;
        cvt(unsafe {
            libc::fstatat(
                dir.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
    }
    Ok(st)
}

/// lstat that maps ENOENT (and ENOTDIR, and ENAMETOOLONG: such a name, e.g.
/// `.wh.` + a 255-byte name, can't exist) to None.
pub fn stat_at_opt(dir: BorrowedFd, name: &OsStr) -> io::Result<Option<Stat>> {
    match stat_at(dir, name) {
        Ok(st) => Ok(Some(st)),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ENAMETOOLONG)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

pub fn fstat(fd: BorrowedFd) -> io::Result<Stat> {
    let mut st: Stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

pub fn fstatfs(fd: BorrowedFd) -> io::Result<libc::statfs> {
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

pub fn mkdir_at(dir: BorrowedFd, name: &OsStr, mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) })?;
    Ok(())
}

pub fn mknod_at(dir: BorrowedFd, name: &OsStr, mode: u32, rdev: u64) -> io::Result<()> {
    let c = cstr(name)?;
    cvt(unsafe {
        libc::mknodat(
            dir.as_raw_fd(),
            c.as_ptr(),
            mode as libc::mode_t,
            rdev as libc::dev_t,
        )
    })?;
    Ok(())
}

pub fn symlink_at(target: &OsStr, dir: BorrowedFd, name: &OsStr) -> io::Result<()> {
    let t = cstr(target)?;
    let c = cstr(name)?;
    cvt(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) })?;
    Ok(())
}

pub fn readlink_at(dir: BorrowedFd, name: &OsStr) -> io::Result<OsString> {
    let c = cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(OsString::from_vec(buf))
}

pub fn unlink_at(dir: BorrowedFd, name: &OsStr, is_dir: bool) -> io::Result<()> {
    let c = cstr(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) })?;
    Ok(())
}

pub fn rename_at(
    olddir: BorrowedFd,
    oldname: &OsStr,
    newdir: BorrowedFd,
    newname: &OsStr,
    flags: u32,
) -> io::Result<()> {
    let o = cstr(oldname)?;
    let n = cstr(newname)?;
    cvt(unsafe {
        libc::renameat2(
            olddir.as_raw_fd(),
            o.as_ptr(),
            newdir.as_raw_fd(),
            n.as_ptr(),
            flags,
        )
    })?;
    Ok(())
}

/// Gives a name to the file behind an fd (also one whose names are all gone).
pub fn link_fd_at(fd: BorrowedFd, newdir: BorrowedFd, newname: &OsStr) -> io::Result<()> {
    let n = cstr(newname)?;
    let empty = c"";
    cvt(unsafe {
        libc::linkat(
            fd.as_raw_fd(),
            empty.as_ptr(),
            newdir.as_raw_fd(),
            n.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    })?;
    Ok(())
}

pub fn link_at(
    olddir: BorrowedFd,
    oldname: &OsStr,
    newdir: BorrowedFd,
    newname: &OsStr,
) -> io::Result<()> {
    let o = cstr(oldname)?;
    let n = cstr(newname)?;
    cvt(unsafe {
        libc::linkat(
            olddir.as_raw_fd(),
            o.as_ptr(),
            newdir.as_raw_fd(),
            n.as_ptr(),
            0,
        )
    })?;
    Ok(())
}

/// lchown of one name in `dir` ("" for `dir` itself). `u32::MAX` leaves an id unchanged.
pub fn chown_at(dir: BorrowedFd, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
    if name.is_empty() {
        cvt(unsafe { libc::fchown(dir.as_raw_fd(), uid, gid) })?;
    } else {
        let c = cstr(name)?;
        cvt(unsafe {
            libc::fchownat(
                dir.as_raw_fd(),
                c.as_ptr(),
                uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
    }
    Ok(())
}

/// chmod of one name in `dir` (never a symlink: callers check the type first).
pub fn chmod_at(dir: BorrowedFd, name: &OsStr, mode: u32) -> io::Result<()> {
    let c = cstr(if name.is_empty() {
        OsStr::new(".")
    } else {
        name
    })?;
    cvt(unsafe { libc::fchmodat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t, 0) })?;
    Ok(())
}

/// The (atime, mtime) array of utimensat/futimens; None is UTIME_OMIT.
fn utime_pair(atime: Option<libc::timespec>, mtime: Option<libc::timespec>) -> [libc::timespec; 2] {
    let omit = libc::timespec {
        tv_sec: 0,
        tv_nsec: libc::UTIME_OMIT,
    };
    [atime.unwrap_or(omit), mtime.unwrap_or(omit)]
}

/// utimensat without following a symlink; None leaves a time unchanged.
pub fn utimens_at(
    dir: BorrowedFd,
    name: &OsStr,
    atime: Option<libc::timespec>,
    mtime: Option<libc::timespec>,
) -> io::Result<()> {
    let times = utime_pair(atime, mtime);
    let c = cstr(if name.is_empty() {
        OsStr::new(".")
    } else {
        name
    })?;
    cvt(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

/// fchown of an open file. `u32::MAX` leaves an id unchanged.
pub fn fchown(fd: BorrowedFd, uid: u32, gid: u32) -> io::Result<()> {
    cvt(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })?;
    Ok(())
}

pub fn fchmod(fd: BorrowedFd, mode: u32) -> io::Result<()> {
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })?;
    Ok(())
}

/// futimens; None leaves a time unchanged.
pub fn futimens(
    fd: BorrowedFd,
    atime: Option<libc::timespec>,
    mtime: Option<libc::timespec>,
) -> io::Result<()> {
    let times = utime_pair(atime, mtime);
    cvt(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) })?;
    Ok(())
}

pub fn ftruncate(fd: BorrowedFd, size: u64) -> io::Result<()> {
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) })?;
    Ok(())
}

/// Runs a read/write-style call again while it is interrupted by a signal.
fn retry_eintr(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

pub fn pread(fd: BorrowedFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    retry_eintr(|| unsafe {
        libc::pread(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            offset as libc::off_t,
        )
    })
}

pub fn pwrite(fd: BorrowedFd, buf: &[u8], offset: u64) -> io::Result<usize> {
    retry_eintr(|| unsafe {
        libc::pwrite(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            offset as libc::off_t,
        )
    })
}

pub fn read(fd: BorrowedFd, buf: &mut [u8]) -> io::Result<usize> {
    retry_eintr(|| unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

pub fn write(fd: BorrowedFd, buf: &[u8]) -> io::Result<usize> {
    retry_eintr(|| unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })
}

/// The status flags of the open file `fd` refers to (F_GETFL).
pub fn status_flags(fd: BorrowedFd) -> io::Result<i32> {
    // SAFETY: a plain fcntl call on a valid descriptor.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })
}

/// Sets O_NONBLOCK on the open file `fd` refers to (shared with every copy of it).
pub fn set_nonblocking(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: plain fcntl calls on a valid descriptor.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) }).map(drop)
}

/// Reads until `buf` is full or end of file.
pub fn pread_full(fd: BorrowedFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = pread(fd, &mut buf[done..], offset + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

pub fn fsync(fd: BorrowedFd, datasync: bool) -> io::Result<()> {
    cvt(unsafe {
        if datasync {
            libc::fdatasync(fd.as_raw_fd())
        } else {
            libc::fsync(fd.as_raw_fd())
        }
    })?;
    Ok(())
}

pub fn fallocate(fd: BorrowedFd, mode: i32, offset: u64, len: u64) -> io::Result<()> {
    cvt(unsafe {
        libc::fallocate(
            fd.as_raw_fd(),
            mode,
            offset as libc::off_t,
            len as libc::off_t,
        )
    })?;
    Ok(())
}

pub fn lseek(fd: BorrowedFd, offset: i64, whence: i32) -> io::Result<i64> {
    let r = unsafe { libc::lseek(fd.as_raw_fd(), offset, whence) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub fn copy_file_range(
    fd_in: BorrowedFd,
    off_in: u64,
    fd_out: BorrowedFd,
    off_out: u64,
    len: usize,
) -> io::Result<usize> {
    let mut oi = off_in as libc::loff_t;
    let mut oo = off_out as libc::loff_t;
    let n = unsafe {
        libc::copy_file_range(
            fd_in.as_raw_fd(),
            &mut oi,
            fd_out.as_raw_fd(),
            &mut oo,
            len,
            0,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Copies all data of `src` into the empty file `dst`: a reflink when the
/// filesystem can, else copy_file_range, else read/write. Holes stay holes.
pub fn copy_data(src: BorrowedFd, dst: BorrowedFd, size: u64) -> io::Result<()> {
    if size == 0 {
        return Ok(());
    }
    if unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) } == 0 {
        return Ok(());
    }
    // Walk the data extents so sparse files stay sparse.
    let mut pos: u64 = 0;
    while pos < size {
        let data = match lseek(src, pos as i64, libc::SEEK_DATA) {
            Ok(d) => d as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => break,
            Err(_) => pos,
        };
        let hole = match lseek(src, data as i64, libc::SEEK_HOLE) {
            Ok(h) => h as u64,
            Err(_) => size,
        }
        .min(size);
        let mut off = data;
        while off < hole {
            let chunk = ((hole - off) as usize).min(1 << 30);
            let n = match copy_file_range(src, off, dst, off, chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EXDEV)
                            | Some(libc::EINVAL)
                            | Some(libc::ENOSYS)
                            | Some(libc::EOPNOTSUPP)
                    ) =>
                {
                    copy_by_rw(src, dst, off, hole - off)?
                }
                Err(e) => return Err(e),
            };
            off += n as u64;
        }
        pos = hole.max(data + 1);
    }
    // A trailing hole: the size must still match.
    ftruncate(dst, size)
}

fn copy_by_rw(src: BorrowedFd, dst: BorrowedFd, off: u64, len: u64) -> io::Result<usize> {
    let mut buf = vec![0u8; (len as usize).min(1 << 20)];
    let n = pread(src, &mut buf, off)?;
    if n == 0 {
        return Ok(0);
    }
    let mut done = 0;
    while done < n {
        done += pwrite(dst, &buf[done..n], off + done as u64)?;
    }
    Ok(n)
}

/// One entry of a directory listing.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: OsString,
    pub ino: u64,
    pub d_type: u8,
}

/// Reads all entries of an open directory (without "." and "..").
pub fn read_dir_fd(fd: BorrowedFd) -> io::Result<Vec<DirEntry>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        let n = cvt_long(n)? as usize;
        if n == 0 {
            break;
        }
        let mut off = 0;
        while off < n {
            // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
            let rec = &buf[off..n];
            let ino = u64::from_ne_bytes(rec[0..8].try_into().unwrap_or_default());
            let reclen = u16::from_ne_bytes(rec[16..18].try_into().unwrap_or_default()) as usize;
            let d_type = rec[18];
            let name = unsafe { CStr::from_ptr(rec[19..].as_ptr().cast()) };
            let bytes = name.to_bytes();
            if bytes != b"." && bytes != b".." {
                out.push(DirEntry {
                    name: OsStr::from_bytes(bytes).to_os_string(),
                    ino,
                    d_type,
                });
            }
            if reclen == 0 {
                break;
            }
            off += reclen;
        }
    }
    Ok(out)
}

/// Flags that make an `*at()` call act on the fd itself (an O_PATH fd included).
const EMPTY_PATH: libc::c_int = libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW;

/// fchown of an O_PATH fd (plain fchown refuses one); `u32::MAX` leaves an id.
pub fn chown_o_path(fd: BorrowedFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: a valid fd and an empty C string.
    cvt(unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, gid, EMPTY_PATH) }).map(drop)
}

/// futimens of an O_PATH fd; `None` leaves a time unchanged.
pub fn utimens_o_path(
    fd: BorrowedFd,
    atime: Option<libc::timespec>,
    mtime: Option<libc::timespec>,
) -> io::Result<()> {
    let omit = timespec(0, libc::UTIME_OMIT);
    let times = [atime.unwrap_or(omit), mtime.unwrap_or(omit)];
    // SAFETY: a valid fd, an empty C string and two timespecs.
    cvt(unsafe { libc::utimensat(fd.as_raw_fd(), c"".as_ptr(), times.as_ptr(), EMPTY_PATH) })
        .map(drop)
}

/// fchmod of an O_PATH fd, through /proc/self/fd (fchmodat's AT_EMPTY_PATH
/// needs fchmodat2, Linux 6.6).
pub fn chmod_o_path(fd: BorrowedFd, mode: u32) -> io::Result<()> {
    let path = cstr(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    // SAFETY: a valid C string.
    cvt(unsafe { libc::chmod(path.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub fn geteuid() -> u32 {
    unsafe { libc::geteuid() }
}

/// st_mode's file-type bits.
pub fn file_type(mode: u32) -> u32 {
    mode & libc::S_IFMT
}

pub fn is_dir(st: &Stat) -> bool {
    file_type(st.st_mode) == libc::S_IFDIR
}

/// A kernel-overlayfs whiteout: a character device 0/0.
pub fn is_whiteout_stat(st: &Stat) -> bool {
    file_type(st.st_mode) == libc::S_IFCHR && st.st_rdev == 0
}

pub fn timespec(sec: i64, nsec: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    }
}

/// The wall clock as (seconds, nanoseconds), as file times are kept.
pub fn now() -> (i64, i64) {
    let mut ts = timespec(0, 0);
    // SAFETY: a valid timespec to fill; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec, ts.tv_nsec)
}

/// Reads from the object of `fd` (one byte of a file, one batch of a
/// directory's entries) through a new fd without O_NOATIME: the filesystem
/// updates atime as for any read, by its own mount's rule.
pub fn read_updating_atime(fd: BorrowedFd, is_dir: bool) -> io::Result<()> {
    let flags = libc::O_RDONLY | if is_dir { libc::O_DIRECTORY } else { 0 };
    read_once(reopen(fd, flags)?.as_fd(), is_dir)
}

/// `read_updating_atime` of `path` beneath `dir`.
pub fn read_updating_atime_at(dir: BorrowedFd, path: &Path, is_dir: bool) -> io::Result<()> {
    let flags = libc::O_RDONLY | if is_dir { libc::O_DIRECTORY } else { 0 };
    read_once(open_beneath(dir, path, flags, 0)?.as_fd(), is_dir)
}

fn read_once(fresh: BorrowedFd, is_dir: bool) -> io::Result<()> {
    if is_dir {
        let mut buf = [0u8; 1024];
        // SAFETY: a valid fd and a buffer of the given length.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fresh.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        cvt_long(n).map(drop)
    } else {
        let mut buf = [0u8; 1];
        pread(fresh, &mut buf, 0).map(drop)
    }
}

/// Sets the atime of `fd`'s object to now, leaving mtime (ctime changes too).
pub fn touch_atime_explicitly(fd: BorrowedFd) -> io::Result<()> {
    utimens_o_path(fd, Some(timespec(0, libc::UTIME_NOW)), None)
}
