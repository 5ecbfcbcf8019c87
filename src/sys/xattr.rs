//! Extended attributes of one name inside a directory fd.
//!
//! Symlinks and device nodes can't be opened for f*xattr, so objects are named
//! as `/proc/self/fd/DIRFD/NAME` and used with the l*xattr calls: the magic
//! link reaches our own directory fd, and NAME is one component that is never
//! followed. An empty NAME means the directory itself.

use super::{cstr, errno};
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

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
    let path = proc_path(dir, name)?;
    let a = cstr(attr)?;
    let mut buf = vec![0u8; 256];
    loop {
        let n = unsafe {
            if name.is_empty() {
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
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
        let e = io::Error::last_os_error();
        match errno(&e) {
            libc::ENODATA | libc::EOPNOTSUPP => return Ok(None),
            libc::ERANGE if buf.len() < 65536 * 2 => buf.resize(buf.len() * 4, 0),
            _ => return Err(e),
        }
    }
}

/// Lists xattr names (raw, NUL separated entries split into a Vec).
pub fn list(dir: BorrowedFd, name: &OsStr) -> io::Result<Vec<Vec<u8>>> {
    let path = proc_path(dir, name)?;
    let mut buf = vec![0u8; 1024];
    loop {
        let n = unsafe {
            if name.is_empty() {
                libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
            } else {
                libc::llistxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
            }
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| s.to_vec())
                .collect());
        }
        let e = io::Error::last_os_error();
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
