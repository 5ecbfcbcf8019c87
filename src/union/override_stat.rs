//! fuse-overlayfs' `xattr_permissions=`: the owner and mode of regular files
//! and directories kept in an xattr instead of the inode, where the layers'
//! filesystem can't hold them (rootless, NFS: containers-storage's
//! `force_mask`).
//!
//! The format is fuse-overlayfs': the text `UID:GID:MODE`, decimal ids and
//! octal mode, optionally followed by `:TYPE` (which fuse-overlayfs 1.15
//! writes for devices, and which only the object itself decides here).
//! Which name a layer holds is said by its root directory, as fuse-overlayfs
//! decides it: `security.fuseoverlayfs.override_stat` (`xattr_permissions=1`,
//! privileged), else `user.containers.override_stat` (`=2`, what
//! containers-storage writes and fuse-overlayfs since 1.14), else
//! `user.fuseoverlayfs.override_stat` (what fuse-overlayfs wrote before);
//! a layer whose root has none of them holds no overrides. A fresh upper gets
//! its root marked at mount. The names are hidden through the mount: a
//! process must not forge its own ownership record.

use super::{err, At, OpResult, Union};
use crate::sys::{self, Stat};
use std::ffi::OsStr;
use std::os::fd::BorrowedFd;

pub const PRIVILEGED: &str = "security.fuseoverlayfs.override_stat";
pub const CONTAINERS: &str = "user.containers.override_stat";
pub const USER: &str = "user.fuseoverlayfs.override_stat";

/// `xattr_permissions=1` or `=2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrPermissions {
    /// `security.fuseoverlayfs.override_stat`: needs CAP_SYS_ADMIN.
    Privileged,
    /// `user.containers.override_stat`.
    User,
}

impl XattrPermissions {
    /// The names a fresh upper is marked with.
    fn names(self) -> Names {
        match self {
            XattrPermissions::Privileged => written_for(PRIVILEGED),
            XattrPermissions::User => written_for(CONTAINERS),
        }
    }
}

/// The names written to an upper whose root holds `marker`. The user
/// namespace gets both names: fuse-overlayfs 1.10 reads an upper's overrides
/// from `user.fuseoverlayfs.override_stat` only (and fails the stat of an
/// object without one), later versions and containers-storage from
/// `user.containers.override_stat`.
fn written_for(marker: &str) -> Names {
    match marker {
        PRIVILEGED => &[PRIVILEGED],
        _ => &[CONTAINERS, USER],
    }
}

/// The names read on one layer's objects, first found wins.
pub type Names = &'static [&'static str];

/// The names to read on the objects of a layer whose root holds `marker`.
fn names_for(marker: &str) -> Names {
    match marker {
        PRIVILEGED => &[PRIVILEGED],
        // The older name too: fuse-overlayfs before 1.14 wrote it.
        CONTAINERS => &[CONTAINERS, USER],
        _ => &[USER],
    }
}

/// Whether `name` is one of the override names (hidden through the mount).
pub fn is_override_xattr(name: &[u8]) -> bool {
    [PRIVILEGED, CONTAINERS, USER]
        .iter()
        .any(|n| n.as_bytes() == name)
}

/// An owner and mode as one override xattr keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Override {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits and set-id bits (the type always comes from the object).
    pub mode: u32,
}

impl Override {
    /// `UID:GID:MODE[:...]`; None when it is not that.
    pub fn parse(value: &[u8]) -> Option<Override> {
        let text = std::str::from_utf8(value).ok()?;
        let text = text.trim_end_matches('\0');
        let mut fields = text.split(':');
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        let mode = u32::from_str_radix(fields.next()?, 8).ok()?;
        Some(Override {
            uid,
            gid,
            mode: mode & 0o7777,
        })
    }

    /// The text written: `UID:GID:0MODE`, which every fuse-overlayfs reads.
    pub fn format(&self) -> Vec<u8> {
        format!("{}:{}:{:04o}", self.uid, self.gid, self.mode & 0o7777).into_bytes()
    }

    pub fn of_stat(st: &Stat) -> Override {
        Override {
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
        }
    }
}

/// The types an override applies to, as in fuse-overlayfs: user xattrs exist
/// only on regular files and directories.
pub fn applies_to(kind: u32) -> bool {
    kind == libc::S_IFREG || kind == libc::S_IFDIR
}

/// Which names the layers hold, found at mount.
#[derive(Debug, Clone)]
pub struct Overrides {
    /// The names written to the upper (none: no writable upper).
    pub upper_names: Names,
    /// The names read on the upper's objects.
    pub upper: Names,
    /// Per lower layer; None: its root has no marker.
    pub lowers: Vec<Option<Names>>,
}

/// The marker on a layer's root directory, if any.
fn marker(root: BorrowedFd) -> std::io::Result<Option<&'static str>> {
    for name in [PRIVILEGED, CONTAINERS, USER] {
        if sys::xattr::get(root, OsStr::new(""), OsStr::new(name))?.is_some() {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// Reads the layers' markers, and marks a fresh upper (with its root's own
/// owner and mode) for `mode`.
pub fn open(
    mode: XattrPermissions,
    upper: Option<BorrowedFd>,
    writable: bool,
    lowers: &[BorrowedFd],
) -> std::io::Result<Overrides> {
    let mut upper_names: Names = &[];
    let mut upper_reads: Names = &[];
    if let Some(root) = upper {
        let found = marker(root)?;
        let names = match found {
            Some(name) => written_for(name),
            None => mode.names(),
        };
        if found.is_none() && writable {
            let st = sys::fstat(root)?;
            let value = Override::of_stat(&st).format();
            for name in names {
                sys::xattr::set(root, OsStr::new(""), OsStr::new(name), &value, 0).map_err(
                    |e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("xattr_permissions: can't mark the upper with {name}: {e}"),
                        )
                    },
                )?;
            }
        }
        upper_reads = names_for(found.unwrap_or(names[0]));
        if writable {
            upper_names = names;
        }
    }
    let mut lower_names = Vec::new();
    for l in lowers {
        lower_names.push(marker(*l)?.map(names_for));
    }
    Ok(Overrides {
        upper_names,
        upper: upper_reads,
        lowers: lower_names,
    })
}

/// The override held by the object at `at`, read with `names`.
fn read(at: &At, names: Names) -> Option<Override> {
    names.iter().find_map(|n| {
        sys::xattr::get(at.dir(), &at.name, OsStr::new(n))
            .ok()
            .flatten()
            .and_then(|v| Override::parse(&v))
    })
}

impl Union {
    /// The names to read on the object a node is now at (upper, or its lower).
    fn override_names(&self, node: &super::inode::Node) -> Option<Names> {
        let o = self.overrides.as_ref()?;
        let s = node.state();
        if s.upper {
            Some(o.upper)
        } else {
            s.lowers
                .first()
                .and_then(|l| o.lowers.get(l.layer).copied().flatten())
        }
    }

    /// The owner and mode an object shows, from its override xattr when the
    /// mount keeps them there and it has one.
    pub fn override_of(&self, node: &super::inode::Node) -> Option<Override> {
        if !applies_to(node.kind) {
            return None;
        }
        let names = self.override_names(node)?;
        if names.is_empty() {
            return None;
        }
        let at = self.locate(node).ok()?;
        read(&at, names)
    }

    /// `st` with the owner and mode of the node's override, if any.
    pub fn with_override(&self, node: &super::inode::Node, st: &mut Stat) {
        if let Some(o) = self.override_of(node) {
            st.st_uid = o.uid;
            st.st_gid = o.gid;
            st.st_mode = (st.st_mode & libc::S_IFMT) | o.mode;
        }
    }

    /// Whether owner and mode changes of this node go to the override xattr.
    pub fn keeps_override(&self, kind: u32) -> bool {
        applies_to(kind)
            && self
                .overrides
                .as_ref()
                .is_some_and(|o| !o.upper_names.is_empty())
    }

    /// Writes the override of the upper object `name` in `dir`.
    pub fn write_override(&self, dir: BorrowedFd, name: &OsStr, o: Override) -> OpResult<()> {
        let names = self
            .overrides
            .as_ref()
            .map(|o| o.upper_names)
            .unwrap_or(&[]);
        if names.is_empty() {
            return Err(libc::EROFS);
        }
        for attr in names {
            sys::xattr::set(dir, name, OsStr::new(attr), &o.format(), 0).map_err(err)?;
        }
        Ok(())
    }

    /// Copy-up: the staged copy `work/tmp` of the object `src` (with `st`)
    /// of lower `layer` gets its override under the upper's names (they may
    /// differ between layers, and the fuse-overlayfs ones are not copied as
    /// xattrs). An object without one gets its own owner and mode recorded:
    /// fuse-overlayfs 1.10 fails the stat of an upper object without a record.
    pub fn carry_override(
        &self,
        layer: usize,
        src: &At,
        st: &Stat,
        work: BorrowedFd,
        tmp: &OsStr,
    ) -> OpResult<()> {
        let Some(o) = self.overrides.as_ref() else {
            return Ok(());
        };
        if !self.keeps_override(sys::file_type(st.st_mode)) {
            return Ok(());
        }
        let value = o
            .lowers
            .get(layer)
            .copied()
            .flatten()
            .and_then(|names| read(src, names))
            .unwrap_or_else(|| Override::of_stat(st));
        self.write_override(work, tmp, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_fuse_overlayfs_and_containers_storage_write() {
        let o = |u, g, m| {
            Some(Override {
                uid: u,
                gid: g,
                mode: m,
            })
        };
        // fuse-overlayfs 1.10: the whole st_mode, in octal.
        assert_eq!(Override::parse(b"0:0:104751"), o(0, 0, 0o4751));
        assert_eq!(Override::parse(b"0:0:40755"), o(0, 0, 0o755));
        // containers-storage, fuse-overlayfs 1.15: permissions, then a type.
        assert_eq!(Override::parse(b"5:6:0640"), o(5, 6, 0o640));
        assert_eq!(Override::parse(b"7:8:0700:dir"), o(7, 8, 0o700));
        assert_eq!(Override::parse(b"1:2:0600:char-1-3"), o(1, 2, 0o600));
        for bad in [&b""[..], b"0:0", b"a:0:0644", b"0:0:9", b"-1:0:0644"] {
            assert_eq!(Override::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_for_every_reader() {
        let o = Override {
            uid: 1000,
            gid: 100,
            mode: 0o4755,
        };
        assert_eq!(o.format(), b"1000:100:4755");
        let o = Override {
            uid: 0,
            gid: 0,
            mode: 0o644,
        };
        assert_eq!(o.format(), b"0:0:0644");
        assert_eq!(Override::parse(&o.format()), Some(o));
    }

    #[test]
    fn layer_names_follow_the_root_marker() {
        assert_eq!(names_for(PRIVILEGED), &[PRIVILEGED]);
        assert_eq!(names_for(CONTAINERS), &[CONTAINERS, USER]);
        assert_eq!(names_for(USER), &[USER]);
        assert!(is_override_xattr(CONTAINERS.as_bytes()));
        assert!(!is_override_xattr(b"user.containers.other"));
        assert!(applies_to(libc::S_IFDIR) && !applies_to(libc::S_IFLNK));
    }
}
