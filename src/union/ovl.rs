//! Kernel overlayfs on-disk format: whiteouts, opaque directories, redirects,
//! and the overlay-private xattrs that never show through the mount.

use super::layers::XattrNs;
use crate::sys;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;

/// aufs-style whiteout prefix, honoured on read.
pub const WH_PREFIX: &[u8] = b".wh.";
/// aufs-style opaque marker inside a directory, honoured on read.
pub const WH_OPAQUE: &str = ".wh..wh..opq";

pub fn xattr_name(ns: XattrNs, what: &str) -> OsString {
    let prefix = match ns {
        XattrNs::Trusted => "trusted.overlay.",
        XattrNs::User => "user.overlay.",
    };
    OsString::from(format!("{prefix}{what}"))
}

/// Xattrs that belong to the union's bookkeeping, not to the user.
pub fn is_private_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.")
        || name.starts_with(b"user.overlay.")
        || name.starts_with(b"user.fuseoverlayfs.")
        || name.starts_with(b"security.fuseoverlayfs.")
}

/// What the xattrs of one directory say about the layers below it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DirMarks {
    /// Hides every lower layer below this one.
    pub opaque: bool,
    /// `opaque=x`: may hold xattr whiteouts (zero-size files with `overlay.whiteout`).
    pub has_xattr_whiteouts: bool,
    /// `overlay.redirect`: where this directory's lower contents live.
    pub redirect: Option<Redirect>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Redirect {
    /// An absolute path from each lower layer's root (stored with a leading '/').
    Absolute(std::path::PathBuf),
    /// A new name in the same parent.
    Relative(OsString),
}

/// Reads the marks of `name` in `dir` (a directory), in both namespaces.
pub fn dir_marks(dir: BorrowedFd, name: &OsStr, follow_redirect: bool) -> io::Result<DirMarks> {
    let mut marks = DirMarks::default();
    let names = sys::xattr::list(dir, name)?;
    for attr in &names {
        let what = if let Some(rest) = attr.strip_prefix(b"trusted.overlay.") {
            rest
        } else if let Some(rest) = attr.strip_prefix(b"user.overlay.") {
            rest
        } else if attr.as_slice() == b"user.fuseoverlayfs.opaque" {
            b"fuseoverlayfs.opaque"
        } else {
            continue;
        };
        match what {
            b"opaque" | b"fuseoverlayfs.opaque" => {
                let v = sys::xattr::get(dir, name, OsStr::from_bytes(attr))?.unwrap_or_default();
                match v.as_slice() {
                    b"y" => marks.opaque = true,
                    b"x" => marks.has_xattr_whiteouts = true,
                    _ => {}
                }
            }
            b"redirect" if follow_redirect => {
                if let Some(v) = sys::xattr::get(dir, name, OsStr::from_bytes(attr))? {
                    marks.redirect = parse_redirect(&v);
                }
            }
            _ => {}
        }
    }
    Ok(marks)
}

fn parse_redirect(v: &[u8]) -> Option<Redirect> {
    if v.is_empty() || v.contains(&0) {
        return None;
    }
    if v[0] == b'/' {
        let rel: Vec<&[u8]> = v.split(|b| *b == b'/').filter(|c| !c.is_empty()).collect();
        if rel.iter().any(|c| *c == b".." || *c == b".") {
            return None;
        }
        let mut p = std::path::PathBuf::new();
        for c in rel {
            p.push(OsStr::from_bytes(c));
        }
        Some(Redirect::Absolute(p))
    } else if v.contains(&b'/') || v == b".." || v == b"." {
        None
    } else {
        Some(Redirect::Relative(OsStr::from_bytes(v).to_os_string()))
    }
}

/// The `.wh.NAME` whiteout name for NAME.
pub fn aufs_whiteout_name(name: &OsStr) -> OsString {
    let mut v = WH_PREFIX.to_vec();
    v.extend_from_slice(name.as_bytes());
    std::os::unix::ffi::OsStringExt::from_vec(v)
}

/// If `name` is an aufs whiteout (`.wh.X`, not the opaque marker), returns X.
pub fn aufs_whiteout_target(name: &OsStr) -> Option<&OsStr> {
    let b = name.as_bytes();
    if b == WH_OPAQUE.as_bytes() {
        return None;
    }
    b.strip_prefix(WH_PREFIX)
        .filter(|r| !r.is_empty())
        .map(OsStr::from_bytes)
}

/// Does a zero-size regular file carry the `overlay.whiteout` xattr?
pub fn is_xattr_whiteout(dir: BorrowedFd, name: &OsStr) -> bool {
    for ns in ["trusted.overlay.whiteout", "user.overlay.whiteout"] {
        if let Ok(Some(_)) = sys::xattr::get(dir, name, OsStr::new(ns)) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_xattrs() {
        assert!(is_private_xattr(b"trusted.overlay.opaque"));
        assert!(is_private_xattr(b"user.overlay.redirect"));
        assert!(is_private_xattr(b"user.fuseoverlayfs.opaque"));
        assert!(!is_private_xattr(b"user.mime_type"));
        assert!(!is_private_xattr(b"security.capability"));
    }

    #[test]
    fn redirects() {
        assert_eq!(
            parse_redirect(b"/a/b"),
            Some(Redirect::Absolute("a/b".into()))
        );
        assert_eq!(parse_redirect(b"x"), Some(Redirect::Relative("x".into())));
        assert_eq!(parse_redirect(b"/a/../etc"), None);
        assert_eq!(parse_redirect(b"a/b"), None);
        assert_eq!(parse_redirect(b""), None);
    }

    #[test]
    fn aufs_names() {
        assert_eq!(
            aufs_whiteout_target(OsStr::new(".wh.foo")),
            Some(OsStr::new("foo"))
        );
        assert_eq!(aufs_whiteout_target(OsStr::new(".wh..wh..opq")), None);
        assert_eq!(aufs_whiteout_target(OsStr::new("foo")), None);
        assert_eq!(
            aufs_whiteout_name(OsStr::new("foo")),
            OsString::from(".wh.foo")
        );
    }
}
