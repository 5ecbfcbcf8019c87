//! Tar layers in and out (OCI image-spec "layer" format).
//!
//! - `unpack`: an OCI layer blob (gzip, zstd or plain tar, told apart by magic)
//!   into an empty directory in kernel-overlayfs format, ready to be a lowerdir:
//!   `.wh.NAME` becomes a whiteout (char 0/0), `.wh..wh..opq` an opaque mark on
//!   its directory. The diff_id and the compressed digest are computed on the way.
//! - `write_layer`: the upper of a container (over its lowers) back into one OCI
//!   layer: whiteouts, opaque and redirected directories and metacopy files
//!   turned into what an OCI consumer understands, deterministically.
//!
//! Decisions (the tests in tests/image_archive.rs hold each one):
//! - Absolute names (`/etc/x`) are taken relative to the layer root, as GNU tar
//!   and containerd do; a `..` component anywhere refuses the layer (`Hostile`),
//!   even one that would stay inside.
//! - Nothing in the archive is ever followed: an entry below a symlink (to
//!   inside or out), a hard link whose target path goes through a symlink, a
//!   directory replacing a non-directory or a non-directory replacing a directory
//!   refuse the layer (`Hostile`). A hard link to a symlink links the symlink
//!   itself (nothing is followed). Non-directories replace non-directories, as
//!   in tar.
//! - A whiteout and an entry of the same name in one layer refuse it
//!   (`Corrupt`): the OCI spec forbids it and either order would guess.
//! - Overlay and ownership bookkeeping xattrs in the archive (`trusted.overlay.*`,
//!   `user.overlay.*`, `*.fuseoverlayfs.*`, `user.containers.override_stat`) are
//!   dropped with a warning: an image must not forge whiteouts, redirects or
//!   owners, and refusing would reject layers committed by careless tools.
//! - `Ownership::Recorded` (rootless): objects belong to the caller; regular
//!   files and directories whose image owner is not 0:0, or whose image mode is
//!   not the on-disk mode, get `user.containers.override_stat`, and the layer
//!   root always does (it marks the layer as holding overrides). On disk, files
//!   get u+rw and directories u+rwx so the caller can always read and delete
//!   them; setuid and setgid are taken off regular files on disk (a setuid file
//!   owned by the caller would let any other host user who reaches it run as the
//!   caller) and kept in the xattr. Symlinks and fifos can't carry user xattrs:
//!   their image owner is not recorded. Devices are skipped with a warning, and
//!   xattrs outside `user.*` too.
//! - Mtimes: seconds from the header, nanoseconds from a PAX `mtime`;
//!   directories get theirs after all their contents are in place.
//! - PAX 1.0 sparse files (`GNU.sparse.*`) are refused as `Unsupported`; GNU
//!   sparse entries are read, and runs of zero blocks in any file become holes.

mod stream;
mod unpack;
mod write;

pub use stream::{decompress, Compression};
pub use unpack::unpack;
pub use write::write_layer;

use crate::image::digest::Digest;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Which xattr namespace overlay marks (opaque, whiteout, redirect) are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marks {
    /// `trusted.overlay.*`: kernel overlayfs as real root.
    Trusted,
    /// `user.overlay.*`: kernel overlayfs with `userxattr`, rootless.
    User,
}

impl Marks {
    fn opaque_xattr(self) -> &'static str {
        match self {
            Marks::Trusted => "trusted.overlay.opaque",
            Marks::User => "user.overlay.opaque",
        }
    }
}

/// How the image's owners and modes are kept on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Real chown and exact modes (root).
    Real,
    /// The caller owns everything; the image's owner and mode are in
    /// `user.containers.override_stat` (rootless, read with `xattr_permissions=2`).
    Recorded,
}

#[derive(Debug, Clone)]
pub struct UnpackOptions {
    pub marks: Marks,
    pub ownership: Ownership,
    /// Limit on the uncompressed tar stream and, separately, on the sum of the
    /// apparent sizes of its files (a sparse file counts its holes).
    pub max_size: u64,
}

/// 64 GiB: larger than any sane layer, small enough to stop a bomb.
pub const DEFAULT_MAX_SIZE: u64 = 64 << 30;

impl UnpackOptions {
    /// Root's options: trusted marks, real ownership.
    pub fn root() -> UnpackOptions {
        UnpackOptions {
            marks: Marks::Trusted,
            ownership: Ownership::Real,
            max_size: DEFAULT_MAX_SIZE,
        }
    }
    /// An ordinary user's options: user marks, recorded ownership.
    pub fn rootless() -> UnpackOptions {
        UnpackOptions {
            marks: Marks::User,
            ownership: Ownership::Recorded,
            max_size: DEFAULT_MAX_SIZE,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Unpacked {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// sha256 of the blob as read.
    pub compressed_digest: Digest,
    pub compressed_size: u64,
    pub compression: Compression,
    /// Bytes of the uncompressed tar.
    pub size: u64,
    /// Tar entries applied (whiteouts and hard links included).
    pub files: u64,
    /// What was left out or changed, one line each, naming the entry.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub marks: Marks,
    pub ownership: Ownership,
    pub compression: Compression,
}

#[derive(Debug, Clone)]
pub struct Written {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// sha256 of the blob written.
    pub digest: Digest,
    /// Bytes of the blob written.
    pub size: u64,
    /// Tar entries written (whiteouts and hard links included).
    pub files: u64,
    /// What could not be expressed in the layer, one line each.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The archive tries to reach outside the layer or through a link.
    Hostile,
    /// The archive is malformed, or contradicts itself.
    Corrupt,
    /// The layer expands past `max_size`.
    TooLarge,
    /// ENOSPC or EDQUOT.
    NoSpace,
    /// Any other failure of a system call.
    Io,
    /// A format or object this module does not handle.
    Unsupported,
}

/// One failure: which layer, which entry, why.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    layer: Option<PathBuf>,
    entry: Option<String>,
    reason: String,
}

impl Error {
    fn new(kind: ErrorKind, entry: Option<String>, reason: impl Into<String>) -> Error {
        Error {
            kind,
            layer: None,
            entry,
            reason: reason.into(),
        }
    }

    fn at(kind: ErrorKind, entry: &str, reason: impl Into<String>) -> Error {
        Error::new(kind, Some(entry.to_string()), reason)
    }

    /// A failed system call: NoSpace for ENOSPC/EDQUOT, else Io.
    fn io(entry: Option<&str>, what: &str, e: io::Error) -> Error {
        let kind = match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => ErrorKind::NoSpace,
            _ => ErrorKind::Io,
        };
        Error::new(kind, entry.map(str::to_string), format!("{what}: {e}"))
    }

    fn in_layer(mut self, layer: &Path) -> Error {
        self.layer = Some(layer.to_path_buf());
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The entry's path in the archive (relative, as written to the layer).
    pub fn entry(&self) -> Option<&str> {
        self.entry.as_deref()
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(layer) = &self.layer {
            write!(f, "layer {}: ", layer.display())?;
        }
        if let Some(entry) = &self.entry {
            write!(f, "entry {entry:?}: ")?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Error {}

/// Xattrs that are overlay or ownership bookkeeping, never image content.
fn is_bookkeeping_xattr(name: &[u8]) -> bool {
    crate::union::ovl::is_private_xattr(name)
        || crate::union::override_stat::is_override_xattr(name)
        || name
            .windows(b".fuseoverlayfs.".len())
            .any(|w| w == b".fuseoverlayfs.")
}

/// A path's bytes for messages.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookkeeping_xattrs_are_recognised() {
        for name in [
            "trusted.overlay.opaque",
            "user.overlay.redirect",
            "user.containers.override_stat",
            "user.fuseoverlayfs.override_stat",
            "security.fuseoverlayfs.override_stat",
            "trusted.fuseoverlayfs.x",
        ] {
            assert!(is_bookkeeping_xattr(name.as_bytes()), "{name}");
        }
        for name in ["user.mime_type", "security.capability", "trusted.md5"] {
            assert!(!is_bookkeeping_xattr(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn errors_name_layer_entry_and_reason() {
        let e =
            Error::at(ErrorKind::Hostile, "a/../x", "a `..` component").in_layer(Path::new("/l"));
        assert_eq!(
            e.to_string(),
            "layer /l: entry \"a/../x\": a `..` component"
        );
        assert_eq!(e.kind(), ErrorKind::Hostile);
        let nospc = Error::io(
            Some("f"),
            "write",
            io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert_eq!(nospc.kind(), ErrorKind::NoSpace);
    }
}
