//! What a union is made of and how it behaves.
//!
//! `Config` is the union's own input type. It is built by `strata mount`'s `-o` parser
//! today, and by the podman drop-in and the snapshotter later; none of them is known
//! here. Paths are as given: `layers::open` resolves and checks them.

use super::idmap::Ids;
use super::override_stat::XattrPermissions;
use std::path::PathBuf;
use std::time::Duration;

/// Default kernel cache timeout for entries and attributes: every change to the
/// layers goes through the mount, which keeps the kernel's cache true.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Lower layers, top first.
    pub lowers: Vec<PathBuf>,
    /// The writable layer; without it the union is a read-only merge.
    pub upper: Option<PathBuf>,
    /// The workdir. `None` with an upper: an automatic one at
    /// `PARENT/.NAME.strata-work` next to the upper (the aufs form).
    pub work: Option<PathBuf>,
    /// Write overlay marks as `user.overlay.*` even where `trusted.*` works.
    pub userxattr: bool,
    /// Refuse every write (EROFS), upper or not.
    pub read_only: bool,
    /// Cache timeout handed to the kernel for entries and attributes.
    pub ttl: Duration,
    /// Rename lower and merged directories with `overlay.redirect` (else EXDEV).
    pub redirect_dir: bool,
    /// Never fsync the upper.
    pub volatile: bool,
    /// chmod/chown/utimens/xattr changes copy up metadata only (`overlay.metacopy`).
    pub metacopy: bool,
    /// Ask the kernel for FUSE passthrough of upper files (granted only to real root).
    pub passthrough: bool,
    /// Ask for the kernel's writeback cache when passthrough is not granted.
    pub writeback: bool,
    /// When a read updates atime (the mount's noatime, relatime, strictatime).
    pub atime: Atime,
    /// Reading a directory updates its atime too (off with `nodiratime`).
    pub dir_atime: bool,
    /// Sync the upper directory after each change of names in it (`dirsync`, `sync`).
    pub sync_dirs: bool,
    /// Owners as the mount shows them: id shifting and squashing (`idmap.rs`).
    pub ids: Ids,
    /// Every directory reports one link (fuse-overlayfs' `static_nlink`).
    pub static_nlink: bool,
    /// Ask the kernel to enforce POSIX ACLs (FUSE_POSIX_ACL); off with `noacl`,
    /// where ACL xattrs are kept and read back as any other xattr.
    pub posix_acl: bool,
    /// Owners and modes kept in override xattrs (`xattr_permissions=1|2`).
    pub xattr_permissions: Option<XattrPermissions>,
}

/// When reading an object updates its atime. As in kernel overlayfs, only upper
/// objects are touched: reading a lower object never copies it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Atime {
    /// `noatime`: never.
    Never,
    /// `relatime` (the default): when atime is not newer than mtime or ctime,
    /// or is a day old.
    Relative,
    /// `strictatime`: on every read.
    Always,
}

impl Default for Config {
    /// The kernel's defaults where strata has the same option; metacopy is off
    /// because the kernel reads such an upper only with `-o metacopy=on`.
    fn default() -> Config {
        Config {
            lowers: Vec::new(),
            upper: None,
            work: None,
            userxattr: false,
            read_only: false,
            ttl: DEFAULT_TTL,
            redirect_dir: true,
            volatile: false,
            metacopy: false,
            passthrough: true,
            writeback: true,
            atime: Atime::Relative,
            dir_atime: true,
            sync_dirs: false,
            ids: Ids::default(),
            static_nlink: false,
            posix_acl: true,
            xattr_permissions: None,
        }
    }
}
