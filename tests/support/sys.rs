//! Syscall wrappers that return `io::Result` (so that errnos can be compared
//! exactly), errno helpers, and the panicking file helpers of test set-up code.

use super::check;
use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

pub const FUSE_SUPER_MAGIC: i64 = 0x65735546;

pub fn cstr<P: AsRef<Path>>(p: P) -> CString {
    CString::new(p.as_ref().as_os_str().as_bytes()).unwrap()
}

pub fn last_err() -> io::Error {
    io::Error::last_os_error()
}

/// A raw syscall's return value: negative is an error (errno).
pub fn cvt<T: Default + PartialOrd + Copy>(r: T) -> io::Result<T> {
    if r < T::default() {
        Err(last_err())
    } else {
        Ok(r)
    }
}

/// errno of a result (0 on success).
pub fn eno<T>(r: &io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// The errno of a failed result; panics (with `what`) when it succeeded.
#[track_caller]
pub fn errno_of<T: std::fmt::Debug>(r: io::Result<T>, what: &str) -> i32 {
    match r {
        Ok(v) => panic!("{what}: expected an error, but it succeeded ({v:?})"),
        Err(e) => e
            .raw_os_error()
            .unwrap_or_else(|| panic!("{what}: error without errno: {e}")),
    }
}

pub fn errname(e: i32) -> String {
    if e == 0 {
        return "OK".into();
    }
    let names: &[(i32, &str)] = &[
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::EIO, "EIO"),
        (libc::EBADF, "EBADF"),
        (libc::EAGAIN, "EAGAIN"),
        (libc::EACCES, "EACCES"),
        (libc::EEXIST, "EEXIST"),
        (libc::EXDEV, "EXDEV"),
        (libc::ENOTDIR, "ENOTDIR"),
        (libc::EISDIR, "EISDIR"),
        (libc::EINVAL, "EINVAL"),
        (libc::EROFS, "EROFS"),
        (libc::ENOTEMPTY, "ENOTEMPTY"),
        (libc::ENODATA, "ENODATA"),
        (libc::EOPNOTSUPP, "EOPNOTSUPP"),
        (libc::ENOSYS, "ENOSYS"),
        (libc::ELOOP, "ELOOP"),
        (libc::ENAMETOOLONG, "ENAMETOOLONG"),
        (libc::ENOTCONN, "ENOTCONN"),
        (libc::ENXIO, "ENXIO"),
        (libc::E2BIG, "E2BIG"),
        (libc::ERANGE, "ERANGE"),
        (libc::EMLINK, "EMLINK"),
        (libc::ETXTBSY, "ETXTBSY"),
        (libc::EFBIG, "EFBIG"),
        (libc::EBUSY, "EBUSY"),
        (libc::ESTALE, "ESTALE"),
        (libc::ENOSPC, "ENOSPC"),
    ];
    for (n, name) in names {
        if *n == e {
            return name.to_string();
        }
    }
    let s = unsafe { std::ffi::CStr::from_ptr(libc::strerror(e)) };
    format!("errno {e} ({})", s.to_string_lossy())
}

/// Asserts that `r` failed with exactly `expected`.
#[track_caller]
pub fn assert_errno<T: std::fmt::Debug>(r: io::Result<T>, expected: i32, what: &str) {
    check();
    if let Ok(v) = &r {
        panic!(
            "{what}: expected {}, but it succeeded ({v:?})",
            errname(expected)
        );
    }
    let got = errno_of(r, what);
    assert_eq!(
        got,
        expected,
        "{what}: expected {}, got {}",
        errname(expected),
        errname(got)
    );
}

#[track_caller]
pub fn assert_ok<T>(r: io::Result<T>, what: &str) -> T {
    check();
    match r {
        Ok(v) => v,
        Err(e) => panic!(
            "{what}: expected success, got {} ({e})",
            errname(e.raw_os_error().unwrap_or(-1))
        ),
    }
}

// ---------------------------------------------------------------------------------
// syscalls
// ---------------------------------------------------------------------------------

pub fn open<P: AsRef<Path>>(p: P, flags: i32, mode: u32) -> io::Result<Fd> {
    let c = cstr(p);
    cvt(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) }).map(Fd)
}

/// An owned raw fd, closed on drop.
#[derive(Debug)]
pub struct Fd(pub i32);
impl Drop for Fd {
    fn drop(&mut self) {
        if self.0 >= 0 {
            unsafe { libc::close(self.0) };
        }
    }
}
impl Fd {
    pub fn pwrite(&self, data: &[u8], off: i64) -> io::Result<usize> {
        cvt(unsafe { libc::pwrite(self.0, data.as_ptr() as *const _, data.len(), off) })
            .map(|n| n as usize)
    }
    pub fn write(&self, data: &[u8]) -> io::Result<usize> {
        cvt(unsafe { libc::write(self.0, data.as_ptr() as *const _, data.len()) })
            .map(|n| n as usize)
    }
    pub fn pread(&self, len: usize, off: i64) -> io::Result<Vec<u8>> {
        let mut b = vec![0u8; len];
        let n = cvt(unsafe { libc::pread(self.0, b.as_mut_ptr() as *mut _, len, off) })?;
        b.truncate(n as usize);
        Ok(b)
    }
    pub fn ftruncate(&self, len: i64) -> io::Result<()> {
        cvt(unsafe { libc::ftruncate(self.0, len) }).map(drop)
    }
    pub fn fstat(&self) -> io::Result<libc::stat> {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        cvt(unsafe { libc::fstat(self.0, &mut st) })?;
        Ok(st)
    }
    pub fn fchmod(&self, mode: u32) -> io::Result<()> {
        cvt(unsafe { libc::fchmod(self.0, mode) }).map(drop)
    }
    pub fn fchown(&self, uid: u32, gid: u32) -> io::Result<()> {
        cvt(unsafe { libc::fchown(self.0, uid, gid) }).map(drop)
    }
    pub fn close(mut self) -> io::Result<()> {
        let fd = self.0;
        self.0 = -1;
        cvt(unsafe { libc::close(fd) }).map(drop)
    }
}

pub fn lstat<P: AsRef<Path>>(p: P) -> io::Result<libc::stat> {
    let c = cstr(p);
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::lstat(c.as_ptr(), &mut st) })?;
    Ok(st)
}
pub fn stat<P: AsRef<Path>>(p: P) -> io::Result<libc::stat> {
    let c = cstr(p);
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::stat(c.as_ptr(), &mut st) })?;
    Ok(st)
}
pub fn mkdir<P: AsRef<Path>>(p: P, mode: u32) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::mkdir(c.as_ptr(), mode) }).map(drop)
}
pub fn rmdir<P: AsRef<Path>>(p: P) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::rmdir(c.as_ptr()) }).map(drop)
}
pub fn unlink<P: AsRef<Path>>(p: P) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::unlink(c.as_ptr()) }).map(drop)
}
pub fn link<P: AsRef<Path>, Q: AsRef<Path>>(a: P, b: Q) -> io::Result<()> {
    let (a, b) = (cstr(a), cstr(b));
    cvt(unsafe { libc::link(a.as_ptr(), b.as_ptr()) }).map(drop)
}
pub fn symlink<P: AsRef<Path>, Q: AsRef<Path>>(target: P, p: Q) -> io::Result<()> {
    let (a, b) = (cstr(target), cstr(p));
    cvt(unsafe { libc::symlink(a.as_ptr(), b.as_ptr()) }).map(drop)
}
pub fn readlink<P: AsRef<Path>>(p: P) -> io::Result<Vec<u8>> {
    fs::read_link(p).map(|t| t.as_os_str().as_bytes().to_vec())
}
pub fn rename<P: AsRef<Path>, Q: AsRef<Path>>(a: P, b: Q) -> io::Result<()> {
    renameat2(a, b, 0)
}
pub fn renameat2<P: AsRef<Path>, Q: AsRef<Path>>(a: P, b: Q, flags: u32) -> io::Result<()> {
    let (a, b) = (cstr(a), cstr(b));
    cvt(unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    })
    .map(drop)
}
pub fn chmod<P: AsRef<Path>>(p: P, mode: u32) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::chmod(c.as_ptr(), mode) }).map(drop)
}
pub fn chown<P: AsRef<Path>>(p: P, uid: u32, gid: u32) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::chown(c.as_ptr(), uid, gid) }).map(drop)
}
pub fn lchown<P: AsRef<Path>>(p: P, uid: u32, gid: u32) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::lchown(c.as_ptr(), uid, gid) }).map(drop)
}
pub fn truncate<P: AsRef<Path>>(p: P, len: i64) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::truncate(c.as_ptr(), len) }).map(drop)
}
pub fn mknod<P: AsRef<Path>>(p: P, mode: u32, dev: u64) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::mknod(c.as_ptr(), mode, dev) }).map(drop)
}
pub fn mkfifo<P: AsRef<Path>>(p: P, mode: u32) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::mkfifo(c.as_ptr(), mode) }).map(drop)
}
pub fn access<P: AsRef<Path>>(p: P, mode: i32) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::access(c.as_ptr(), mode) }).map(drop)
}

pub const UTIME_NOW: i64 = (1 << 30) - 1;
pub const UTIME_OMIT: i64 = (1 << 30) - 2;
/// utimensat(AT_FDCWD, p, [atime, mtime], flags) with (sec, nsec) pairs.
pub fn utimensat<P: AsRef<Path>>(p: P, a: (i64, i64), m: (i64, i64), flags: i32) -> io::Result<()> {
    let c = cstr(p);
    let ts = [
        libc::timespec {
            tv_sec: a.0,
            tv_nsec: a.1,
        },
        libc::timespec {
            tv_sec: m.0,
            tv_nsec: m.1,
        },
    ];
    cvt(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), flags) }).map(drop)
}
/// Sets atime and mtime (seconds, nanoseconds) without following symlinks.
pub fn lutimens<P: AsRef<Path>>(p: P, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    utimensat(p, atime, mtime, libc::AT_SYMLINK_NOFOLLOW)
}
/// utimensat with a NULL times pointer (both set to now).
pub fn utimes_null<P: AsRef<Path>>(p: P) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), std::ptr::null(), 0) }).map(drop)
}

pub fn lsetxattr<P: AsRef<Path>>(p: P, name: &str, value: &[u8]) -> io::Result<()> {
    lsetxattr_flags(p, name, value, 0)
}
pub fn lsetxattr_flags<P: AsRef<Path>>(
    p: P,
    name: &str,
    value: &[u8],
    flags: i32,
) -> io::Result<()> {
    let (c, n) = (cstr(p), CString::new(name).unwrap());
    cvt(unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr() as *const _,
            value.len(),
            flags,
        )
    })
    .map(drop)
}
pub fn lgetxattr<P: AsRef<Path>>(p: P, name: &str) -> io::Result<Vec<u8>> {
    let (c, n) = (cstr(p), CString::new(name).unwrap());
    let mut buf = vec![0u8; 65536];
    let r = cvt(unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr() as *mut _,
            buf.len(),
        )
    })?;
    buf.truncate(r as usize);
    Ok(buf)
}
pub fn lremovexattr<P: AsRef<Path>>(p: P, name: &str) -> io::Result<()> {
    let (c, n) = (cstr(p), CString::new(name).unwrap());
    cvt(unsafe { libc::lremovexattr(c.as_ptr(), n.as_ptr()) }).map(drop)
}
/// The names of `p`'s extended attributes, sorted.
pub fn llistxattr<P: AsRef<Path>>(p: P) -> io::Result<Vec<String>> {
    let c = cstr(p);
    let mut buf = vec![0u8; 65536];
    let r = cvt(unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len()) })?;
    buf.truncate(r as usize);
    let mut v: Vec<String> = buf
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    v.sort();
    Ok(v)
}
pub fn statfs_type<P: AsRef<Path>>(p: P) -> Option<i64> {
    let c = cstr(p);
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } == 0 {
        Some(s.f_type as i64)
    } else {
        None
    }
}
/// Sorted names of a directory (without . and ..).
pub fn list_dir<P: AsRef<Path>>(p: P) -> io::Result<Vec<String>> {
    let mut v = Vec::new();
    for e in fs::read_dir(p)? {
        v.push(e?.file_name().to_string_lossy().into_owned());
    }
    v.sort();
    Ok(v)
}

// ---------------------------------------------------------------------------------
// overlay objects in a layer
// ---------------------------------------------------------------------------------

/// A kernel-format whiteout: a character device 0/0.
pub fn make_whiteout<P: AsRef<Path>>(p: P) {
    mknod(p.as_ref(), libc::S_IFCHR, 0)
        .unwrap_or_else(|e| panic!("mknod whiteout {}: {e}", p.as_ref().display()));
}
pub fn is_whiteout<P: AsRef<Path>>(p: P) -> bool {
    fs::symlink_metadata(p)
        .map(|m| m.file_type().is_char_device() && m.rdev() == 0)
        .unwrap_or(false)
}
/// Marks a layer directory opaque in the kernel's format (as root).
pub fn make_opaque<P: AsRef<Path>>(p: P) {
    lsetxattr(p, "trusted.overlay.opaque", b"y").unwrap();
}
pub fn is_opaque<P: AsRef<Path>>(p: P) -> bool {
    lgetxattr(p, "trusted.overlay.opaque")
        .map(|v| v == b"y")
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------
// panicking helpers for set-up code
// ---------------------------------------------------------------------------------

pub fn set_mode<P: AsRef<Path>>(p: P, mode: u32) {
    fs::set_permissions(p.as_ref(), fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.as_ref().display()));
}
pub fn write<P: AsRef<Path>>(p: P, data: impl AsRef<[u8]>) {
    fs::write(p.as_ref(), data).unwrap_or_else(|e| panic!("write {}: {e}", p.as_ref().display()));
}
pub fn read<P: AsRef<Path>>(p: P) -> Vec<u8> {
    fs::read(p.as_ref()).unwrap_or_else(|e| panic!("read {}: {e}", p.as_ref().display()))
}
pub fn read_string<P: AsRef<Path>>(p: P) -> String {
    String::from_utf8(read(p)).unwrap()
}
pub fn mkdirs<P: AsRef<Path>>(p: P) {
    fs::create_dir_all(p.as_ref())
        .unwrap_or_else(|e| panic!("mkdir -p {}: {e}", p.as_ref().display()));
}
/// `ln -s target link`
pub fn ln_s<P: AsRef<Path>, Q: AsRef<Path>>(target: P, link: Q) {
    symlink(target, link.as_ref())
        .unwrap_or_else(|e| panic!("symlink {}: {e}", link.as_ref().display()));
}
/// lstat as `fs::Metadata`.
pub fn lstat_meta<P: AsRef<Path>>(p: P) -> fs::Metadata {
    fs::symlink_metadata(p.as_ref())
        .unwrap_or_else(|e| panic!("lstat {}: {e}", p.as_ref().display()))
}
pub fn st_mode<P: AsRef<Path>>(p: P) -> u32 {
    lstat_meta(p).mode()
}
pub fn exists<P: AsRef<Path>>(p: P) -> bool {
    fs::symlink_metadata(p).is_ok()
}
/// Sorted names of a directory (without . and ..).
pub fn ls<P: AsRef<Path>>(p: P) -> Vec<String> {
    list_dir(p.as_ref()).unwrap_or_else(|e| panic!("readdir {}: {e}", p.as_ref().display()))
}
pub fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}
pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
