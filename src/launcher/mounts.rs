//! The launcher's mounts: `sys::mount` calls whose errors say which mount failed.

use super::error::{Context, Result};
use crate::sys;
use std::ffi::OsStr;
use std::path::Path;

pub fn mount(
    src: Option<&OsStr>,
    dst: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    sys::mount::mount(src, dst, fstype, flags, data).context(|| {
        format!(
            "mount {} on {} (type {}, options {})",
            src.map_or("none".into(), |s| s.to_string_lossy()),
            dst.display(),
            fstype.unwrap_or("none"),
            data.unwrap_or("")
        )
    })
}

pub fn bind(src: &Path, dst: &Path, recursive: bool) -> Result<()> {
    let flags = libc::MS_BIND | if recursive { libc::MS_REC } else { 0 };
    mount(Some(src.as_os_str()), dst, None, flags, None)
}

/// Remounts the bind mount at `path` read-only (keeping the locked flags).
pub fn remount_ro(path: &Path) -> Result<()> {
    sys::mount::remount_ro(path).context(|| format!("remount {} read-only", path.display()))
}

pub fn umount_detach(path: &Path) -> Result<()> {
    sys::mount::umount(path, libc::MNT_DETACH).context(|| format!("umount {}", path.display()))
}
