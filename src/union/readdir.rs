//! Merged readdir: every layer of a directory, upper first, duplicates
//! dropped, whiteouts hidden, cut off below an opaque layer.
//!
//! The listing is built once per open handle (as the kernel caches it per
//! open file), so offsets stay valid across getdents calls, and it is freed
//! when the handle is released: memory is bounded by the directory listed.

use super::handles::DirItem;
use super::inode::{pack_ino, Node};
use super::ovl;
use super::{err, OpResult, Union};
use crate::sys::{self, DirEntry};
use fuser::FileType;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd};

pub fn dtype_to_kind(d_type: u8) -> FileType {
    match d_type {
        libc::DT_DIR => FileType::Directory,
        libc::DT_LNK => FileType::Symlink,
        libc::DT_FIFO => FileType::NamedPipe,
        libc::DT_SOCK => FileType::Socket,
        libc::DT_CHR => FileType::CharDevice,
        libc::DT_BLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

/// Sorts one layer's entries into whiteouts (names hidden below) and objects.
/// Returns (objects, whited-out names).
fn classify(dir: BorrowedFd, entries: Vec<DirEntry>) -> (Vec<DirEntry>, Vec<OsString>) {
    let mut objects = Vec::with_capacity(entries.len());
    let mut whiteouts = Vec::new();
    let mut xattr_whiteouts: Option<bool> = None;
    for e in entries {
        if e.name.as_os_str() == OsStr::new(ovl::WH_OPAQUE) {
            continue;
        }
        if let Some(target) = ovl::aufs_whiteout_target(&e.name) {
            whiteouts.push(target.to_os_string());
            continue;
        }
        match e.d_type {
            libc::DT_CHR | libc::DT_UNKNOWN => {
                if let Ok(st) = sys::stat_at(dir, &e.name) {
                    if sys::is_whiteout_stat(&st) {
                        whiteouts.push(e.name);
                        continue;
                    }
                }
            }
            libc::DT_REG => {
                // Xattr whiteouts only count in a directory marked `opaque=x`.
                let marked = *xattr_whiteouts.get_or_insert_with(|| {
                    ovl::dir_marks(dir, OsStr::new(""), false)
                        .map(|m| m.has_xattr_whiteouts)
                        .unwrap_or(false)
                });
                if marked {
                    if let Ok(st) = sys::stat_at(dir, &e.name) {
                        if st.st_size == 0 && ovl::is_xattr_whiteout(dir, &e.name) {
                            whiteouts.push(e.name);
                            continue;
                        }
                    }
                }
            }
            _ => {}
        }
        objects.push(e);
    }
    (objects, whiteouts)
}

impl Union {
    /// Builds the merged listing of a directory node, "." and ".." first.
    pub fn list_dir(&self, node: &Node) -> OpResult<Vec<DirItem>> {
        let (upper, lowers, parent) = {
            let st = node.state();
            (st.upper, st.lowers.clone(), st.parent)
        };
        let mut items = vec![
            DirItem {
                name: ".".into(),
                ino: node.ino,
                kind: FileType::Directory,
                layer: None,
            },
            DirItem {
                name: "..".into(),
                ino: self.inodes.get(parent).map(|p| p.ino).unwrap_or(node.ino),
                kind: FileType::Directory,
                layer: None,
            },
        ];
        let mut seen: HashSet<OsString> = HashSet::new();
        let mut hidden: HashSet<OsString> = HashSet::new();
        if upper {
            let path = self.path(node)?;
            let fd = self.upper()?.open_dir_read(&path).map_err(err)?;
            let (objects, whiteouts) =
                classify(fd.as_fd(), sys::read_dir_fd(fd.as_fd()).map_err(err)?);
            hidden.extend(whiteouts);
            for e in objects {
                items.push(DirItem {
                    ino: self.inodes.upper_ino(e.ino),
                    kind: dtype_to_kind(e.d_type),
                    name: e.name.clone(),
                    layer: None,
                });
                seen.insert(e.name);
            }
        }
        let multi_layer = lowers.len() > 1 || upper;
        for l in &lowers {
            let fd = match self.lower(l.layer).open_dir_read(&l.path) {
                Ok(fd) => fd,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                    continue
                }
                Err(e) => return Err(err(e)),
            };
            let (objects, whiteouts) =
                classify(fd.as_fd(), sys::read_dir_fd(fd.as_fd()).map_err(err)?);
            for e in objects {
                if seen.contains(&e.name) || hidden.contains(&e.name) {
                    continue;
                }
                items.push(DirItem {
                    ino: pack_ino(l.layer + 1, e.ino),
                    kind: dtype_to_kind(e.d_type),
                    name: e.name.clone(),
                    layer: Some(l.layer),
                });
                if multi_layer {
                    seen.insert(e.name);
                }
            }
            // This layer's whiteouts hide names in the layers below it only.
            hidden.extend(whiteouts);
        }
        Ok(items)
    }

    /// True when the merged view of a directory node has no entries.
    pub fn dir_is_empty(&self, node: &Node) -> OpResult<bool> {
        Ok(self.list_dir(node)?.len() <= 2)
    }
}
