//! Inode flags (`chattr`'s FS_IOC_GETFLAGS/SETFLAGS) and the xfs-style
//! `fsxattr` (FS_IOC_FSGETXATTR/FSSETXATTR) of an open file or directory.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `_IOR('f', 1, long)`: the kernel reads and writes an int all the same.
pub const FS_IOC_GETFLAGS: u32 = 0x8008_6601;
/// `_IOW('f', 2, long)`.
pub const FS_IOC_SETFLAGS: u32 = 0x4008_6602;
/// `_IOR('X', 31, struct fsxattr)`.
pub const FS_IOC_FSGETXATTR: u32 = 0x801c_581f;
/// `_IOW('X', 32, struct fsxattr)`.
pub const FS_IOC_FSSETXATTR: u32 = 0x401c_5820;

pub const FS_IMMUTABLE_FL: u32 = 0x0000_0010;
pub const FS_APPEND_FL: u32 = 0x0000_0020;
pub const FS_XFLAG_IMMUTABLE: u32 = 0x0000_0008;
pub const FS_XFLAG_APPEND: u32 = 0x0000_0010;

/// `struct fsxattr` of linux/fs.h (28 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsXattr {
    pub xflags: u32,
    pub extsize: u32,
    pub nextents: u32,
    pub projid: u32,
    pub cowextsize: u32,
    pub pad: [u8; 8],
}

pub const FSXATTR_SIZE: usize = std::mem::size_of::<FsXattr>();

impl FsXattr {
    pub fn from_bytes(b: &[u8]) -> Option<FsXattr> {
        let word = |i: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(
                b.get(i * 4..i * 4 + 4)?.try_into().ok()?,
            ))
        };
        let mut pad = [0u8; 8];
        pad.copy_from_slice(b.get(20..28)?);
        Some(FsXattr {
            xflags: word(0)?,
            extsize: word(1)?,
            nextents: word(2)?,
            projid: word(3)?,
            cowextsize: word(4)?,
            pad,
        })
    }

    pub fn to_bytes(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(FSXATTR_SIZE);
        for w in [
            self.xflags,
            self.extsize,
            self.nextents,
            self.projid,
            self.cowextsize,
        ] {
            v.extend_from_slice(&w.to_ne_bytes());
        }
        v.extend_from_slice(&self.pad);
        v
    }
}

pub fn get_flags(fd: BorrowedFd) -> io::Result<u32> {
    let mut flags: libc::c_int = 0;
    super::cvt(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            FS_IOC_GETFLAGS as _,
            &mut flags as *mut libc::c_int,
        )
    })?;
    Ok(flags as u32)
}

pub fn set_flags(fd: BorrowedFd, flags: u32) -> io::Result<()> {
    let flags = flags as libc::c_int;
    super::cvt(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            FS_IOC_SETFLAGS as _,
            &flags as *const libc::c_int,
        )
    })?;
    Ok(())
}

pub fn get_fsxattr(fd: BorrowedFd) -> io::Result<FsXattr> {
    let mut x = FsXattr::default();
    super::cvt(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            FS_IOC_FSGETXATTR as _,
            &mut x as *mut FsXattr,
        )
    })?;
    Ok(x)
}

pub fn set_fsxattr(fd: BorrowedFd, x: &FsXattr) -> io::Result<()> {
    super::cvt(unsafe {
        libc::ioctl(fd.as_raw_fd(), FS_IOC_FSSETXATTR as _, x as *const FsXattr)
    })?;
    Ok(())
}
