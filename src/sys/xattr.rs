//! Extended attributes of one name inside a directory fd.
//!
//! Symlinks and device nodes can't be opened for f*xattr. Reads use
//! getxattrat/listxattrat (Linux 6.13) on the directory fd and NAME with
//! AT_SYMLINK_NOFOLLOW. Without them (and for writes), objects are named as
//! `/proc/self/fd/DIRFD/NAME` and used with the l*xattr calls: the magic
//! link reaches our own directory fd, and NAME is one component that is never
//! followed. An empty NAME means the directory itself.

use super::{cstr, errno};
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};

/// Syscall numbers of getxattrat/listxattrat (the same on every
/// architecture of the unified syscall table).
const SYS_GETXATTRAT: libc::c_long = 464;
const SYS_LISTXATTRAT: libc::c_long = 465;

/// Cleared when the kernel lacks the *xattrat calls (ENOSYS).
static XATTRAT: AtomicBool = AtomicBool::new(true);

/// `struct xattr_args` of getxattrat(2).
#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// getxattrat/listxattrat of NAME in `dir` into `buf`; None when the call
/// is not available (or NAME is empty: the directory itself).
fn xattrat(
    dir: BorrowedFd,
    name: &OsStr,
    attr: Option<&CString>,
    buf: &mut [u8],
) -> Option<io::Result<usize>> {
    // The directory itself: O_PATH fds are refused with AT_EMPTY_PATH.
    if name.is_empty() || !XATTRAT.load(Ordering::Relaxed) {
        return None;
    }
    let path = CString::new(name.as_bytes()).ok()?;
    let flags = libc::AT_SYMLINK_NOFOLLOW as libc::c_uint;
    let n = unsafe {
        match attr {
            Some(a) => {
                let mut args = XattrArgs {
                    value: buf.as_mut_ptr() as u64,
                    size: buf.len() as u32,
                    flags: 0,
                };
                libc::syscall(
                    SYS_GETXATTRAT,
                    dir.as_raw_fd(),
                    path.as_ptr(),
                    flags,
                    a.as_ptr(),
                    &mut args as *mut XattrArgs,
                    std::mem::size_of::<XattrArgs>(),
                )
            }
            None => libc::syscall(
                SYS_LISTXATTRAT,
                dir.as_raw_fd(),
                path.as_ptr(),
                flags,
                buf.as_mut_ptr(),
                buf.len(),
            ),
        }
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        // ENOSYS: no such calls; the /proc path does it.
        return match e.raw_os_error() {
            Some(libc::ENOSYS) => {
                XATTRAT.store(false, Ordering::Relaxed);
                None
            }
            _ => Some(Err(e)),
        };
    }
    Some(Ok(n as usize))
}

fn proc_path(dir: BorrowedFd, name: &OsStr) -> io::Result<CString> {
    let mut p = format!("/proc/self/fd/{}", dir.as_raw_fd()).into_bytes();
    if !name.is_empty() {
        p.push(b'/');
        p.extend_from_slice(name.as_bytes());
    }
    CString::new(p).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Reads an xattr value; Ok(None) when it is absent.
pub fn get(dir: BorrowedFd, name: &OsStr, attr: &OsStr) -> io::Result<Option<Vec<u8>>> {
    let a = cstr(attr)?;
    let mut buf = vec![0u8; 256];
    let mut path = None;
    loop {
        let res = match xattrat(dir, name, Some(&a), &mut buf) {
            Some(r) => r,
            None => {
                let path = match &path {
                    Some(p) => p,
                    None => path.insert(proc_path(dir, name)?),
                };
                proc_get(path, name.is_empty(), &a, &mut buf)
            }
        };
        let e = match res {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(e) => e,
        };
        match errno(&e) {
            libc::ENODATA | libc::EOPNOTSUPP => return Ok(None),
            libc::ERANGE if buf.len() < 65536 * 2 => buf.resize(buf.len() * 4, 0),
            _ => return Err(e),
        }
    }
}

fn size_or_error(n: isize) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn proc_get(path: &CString, follow: bool, a: &CString, buf: &mut [u8]) -> io::Result<usize> {
    size_or_error(unsafe {
        if follow {
            libc::getxattr(
                path.as_ptr(),
                a.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        } else {
            libc::lgetxattr(
                path.as_ptr(),
                a.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        }
    })
}

fn proc_list(path: &CString, follow: bool, buf: &mut [u8]) -> io::Result<usize> {
    size_or_error(unsafe {
        if follow {
            libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        } else {
            libc::llistxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        }
    })
}

/// Lists xattr names (raw, NUL separated entries split into a Vec).
pub fn list(dir: BorrowedFd, name: &OsStr) -> io::Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 1024];
    let mut path = None;
    loop {
        let res = match xattrat(dir, name, None, &mut buf) {
            Some(r) => r,
            None => {
                let path = match &path {
                    Some(p) => p,
                    None => path.insert(proc_path(dir, name)?),
                };
                proc_list(path, name.is_empty(), &mut buf)
            }
        };
        let e = match res {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.to_vec())
                    .collect());
            }
            Err(e) => e,
        };
        match errno(&e) {
            libc::EOPNOTSUPP => return Ok(Vec::new()),
            libc::ERANGE if buf.len() < 65536 * 4 => buf.resize(buf.len() * 4, 0),
            _ => return Err(e),
        }
    }
}

pub fn set(
    dir: BorrowedFd,
    name: &OsStr,
    attr: &OsStr,
    value: &[u8],
    flags: i32,
) -> io::Result<()> {
    let path = proc_path(dir, name)?;
    let a = cstr(attr)?;
    let r = unsafe {
        if name.is_empty() {
            libc::setxattr(
                path.as_ptr(),
                a.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                flags,
            )
        } else {
            libc::lsetxattr(
                path.as_ptr(),
                a.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                flags,
            )
        }
    };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn remove(dir: BorrowedFd, name: &OsStr, attr: &OsStr) -> io::Result<()> {
    let path = proc_path(dir, name)?;
    let a = cstr(attr)?;
    let r = unsafe {
        if name.is_empty() {
            libc::removexattr(path.as_ptr(), a.as_ptr())
        } else {
            libc::lremovexattr(path.as_ptr(), a.as_ptr())
        }
    };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::open_dir_path;
    use std::os::fd::AsFd;

    /// The *xattrat calls and the /proc path agree, on an O_PATH directory
    /// fd, for a file, the directory itself and a symlink (never followed).
    #[test]
    fn reads_through_a_directory_fd_agree_with_the_proc_path() {
        let tmp = tempfile::tempdir_in("/var/tmp").expect("tempdir");
        let d = tmp.path();
        std::fs::write(d.join("f"), "x").expect("write");
        std::os::unix::fs::symlink("f", d.join("l")).expect("symlink");
        let root = std::fs::File::open("/").expect("open /");
        let rel = d.strip_prefix("/").expect("absolute");
        let dir = open_dir_path(root.as_fd(), rel).expect("open dir");
        let fd = dir.as_fd();
        let (f, l, me) = (OsStr::new("f"), OsStr::new("l"), OsStr::new(""));
        let attr = OsStr::new("user.strata-test");
        if set(fd, f, attr, b"file", 0).is_err() {
            return; // no user xattrs on this file system
        }
        set(fd, me, attr, b"dir", 0).expect("set on the directory");
        for at_calls in [true, false] {
            XATTRAT.store(at_calls, Ordering::Relaxed);
            assert_eq!(
                get(fd, f, attr).expect("get").as_deref(),
                Some(&b"file"[..])
            );
            assert_eq!(
                get(fd, me, attr).expect("get").as_deref(),
                Some(&b"dir"[..])
            );
            assert_eq!(
                get(fd, l, attr).expect("get"),
                None,
                "the symlink is not followed"
            );
            assert_eq!(get(fd, f, OsStr::new("user.none")).expect("get"), None);
            assert!(list(fd, f)
                .expect("list")
                .contains(&attr.as_bytes().to_vec()));
            assert!(list(fd, me)
                .expect("list")
                .contains(&attr.as_bytes().to_vec()));
            assert!(list(fd, l).expect("list").is_empty());
        }
        XATTRAT.store(true, Ordering::Relaxed);
    }
}
