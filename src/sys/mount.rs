//! Mounts: mount(2), umount2(2), unshare(2), statfs, and reading
//! /proc/self/mountinfo.
//!
//! Errors are plain `io::Error`s (the errno is kept, callers may test it); the
//! callers add which mount failed.

use super::{cstr, cvt, cvt_long};
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

fn cpath(p: &Path) -> io::Result<CString> {
    cstr(p.as_os_str())
}

pub fn mount(
    src: Option<&OsStr>,
    dst: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let c_src = src.map(cstr).transpose()?;
    let c_dst = cpath(dst)?;
    let c_type = fstype.map(|t| cstr(OsStr::new(t))).transpose()?;
    let c_data = data.map(|d| cstr(OsStr::new(d))).transpose()?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: all pointers are NUL-terminated strings that outlive the call, or null.
    cvt(unsafe {
        libc::mount(
            p(&c_src),
            c_dst.as_ptr(),
            p(&c_type),
            flags,
            p(&c_data) as *const libc::c_void,
        )
    })
    .map(drop)
}

pub fn bind(src: &Path, dst: &Path, recursive: bool) -> io::Result<()> {
    let flags = libc::MS_BIND | if recursive { libc::MS_REC } else { 0 };
    mount(Some(src.as_os_str()), dst, None, flags, None)
}

/// Remounts the bind mount at `path` read-only, keeping the flags the kernel
/// insists on keeping (nosuid/nodev/noexec/atime flags are locked in a user namespace).
pub fn remount_ro(path: &Path) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: statvfs fills a plain struct; c is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::statvfs(c.as_ptr(), &mut st) })?;
    let keep = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    let mut flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
    for (st_flag, ms_flag) in keep {
        if st.f_flag & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    mount(None, path, None, flags, None)
}

/// `umount2(path, flags)`.
pub fn umount(path: &Path, flags: libc::c_int) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: c is a valid C string.
    cvt(unsafe { libc::umount2(c.as_ptr(), flags) }).map(drop)
}

pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::unshare(flags) }).map(drop)
}

/// `f_type` of the filesystem holding `path`.
pub fn statfs_type(path: &Path) -> io::Result<i64> {
    let c = cpath(path)?;
    // SAFETY: statfs fills a plain struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::statfs(c.as_ptr(), &mut st) })?;
    Ok(st.f_type as i64)
}

/// The unique id of the mount on top at `path` (`STATX_MNT_ID_UNIQUE`, Linux 6.8+):
/// never reused, unlike the ids in mountinfo, which a new mount takes over as soon
/// as the old one is gone. Asks with `AT_STATX_DONT_SYNC`, so a FUSE mount's root
/// is not sent a GETATTR. `Unsupported` on older kernels.
pub fn mount_id_unique(path: &Path) -> io::Result<u64> {
    let c = cpath(path)?;
    // SAFETY: statx fills a plain struct; c is a valid C string.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    cvt(unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT | libc::AT_STATX_DONT_SYNC,
            libc::STATX_MNT_ID_UNIQUE,
            &mut stx,
        )
    })?;
    if stx.stx_mask & libc::STATX_MNT_ID_UNIQUE == 0 {
        return Err(io::Error::from(io::ErrorKind::Unsupported));
    }
    Ok(stx.stx_mnt_id)
}

/// Unescapes a /proc/self/mountinfo path field (\040 and friends).
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push(u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of /proc/self/mountinfo, as far as strata reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct MountInfo {
    pub mount_id: u64,
    /// The mount point, unescaped.
    pub point: String,
    pub fstype: String,
}

/// Parses one mountinfo line: `ID PARENT MAJ:MIN ROOT POINT OPTS ... - TYPE SRC SUPER`.
pub fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let mut fields = line.split(' ');
    let mount_id = fields.next()?.parse().ok()?;
    let point = unescape_mountinfo(fields.nth(3)?);
    let fstype = line.split(" - ").nth(1)?.split(' ').next()?.to_string();
    Some(MountInfo {
        mount_id,
        point,
        fstype,
    })
}

/// Every mount this process sees, in mountinfo order (the last one at a path is on top).
pub fn mounts() -> Vec<MountInfo> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|info| info.lines().filter_map(parse_mountinfo_line).collect())
        .unwrap_or_default()
}

/// Is anything mounted exactly at `path`?
pub fn is_mount_point(path: &Path) -> bool {
    mounts().iter().any(|m| Path::new(&m.point) == path)
}

/// Is a FUSE filesystem mounted exactly at `path`?
pub fn is_fuse_mount(path: &Path) -> bool {
    mounts()
        .iter()
        .any(|m| m.fstype.starts_with("fuse") && Path::new(&m.point) == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn mountinfo_line() {
        let m = parse_mountinfo_line(
            r"36 35 0:52 / /tmp/a\040b rw,nosuid shared:1 - fuse.strata strata rw,user_id=0",
        )
        .unwrap();
        assert_eq!(m.mount_id, 36);
        assert_eq!(m.point, "/tmp/a b");
        assert_eq!(m.fstype, "fuse.strata");
        assert!(parse_mountinfo_line("garbage").is_none());
    }
}

/// The atime rule of a mount (`MOUNT_ATTR_*` of `linux/mount.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtimeRule {
    Relatime,
    Noatime,
    Strictatime,
}

/// A private, detached copy of the mount that holds `dir`, opened at `dir`,
/// with its own atime rule (`open_tree(OPEN_TREE_CLONE)` and
/// `mount_setattr`). Reads through fds opened beneath it update atime by that
/// rule, whatever the original mount's. Needs CAP_SYS_ADMIN over the mount.
pub fn clone_with_atime(dir: BorrowedFd, rule: AtimeRule, nodiratime: bool) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOUNT_ATTR_NOATIME: u64 = 0x10;
    const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
    const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
    const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    // SAFETY: a valid fd, an empty C string, plain flags.
    let fd = cvt_long(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dir.as_raw_fd(),
            c"".as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint,
        )
    })?;
    // SAFETY: open_tree returned a new fd that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let mut attr = MountAttr {
        attr_set: match rule {
            AtimeRule::Relatime => 0,
            AtimeRule::Noatime => MOUNT_ATTR_NOATIME,
            AtimeRule::Strictatime => MOUNT_ATTR_STRICTATIME,
        },
        attr_clr: MOUNT_ATTR_ATIME_MASK | MOUNT_ATTR_NODIRATIME,
        propagation: 0,
        userns_fd: 0,
    };
    if nodiratime {
        attr.attr_set |= MOUNT_ATTR_NODIRATIME;
    }
    // SAFETY: a valid fd, an empty C string, and a mount_attr of the given size.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(tree)
}
