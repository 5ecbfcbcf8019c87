//! Merged readdir: every layer of a directory, upper first, duplicates
//! dropped, whiteouts hidden, cut off below an opaque layer.
//!
//! The kernel opens directories without asking us (`FUSE_NO_OPENDIR_SUPPORT`,
//! see fs.rs), so there is no handle per open directory to keep a listing
//! in. Offsets are therefore positions that mean the same in any listing of
//! the directory: a hash of the name (1 and 2 for "." and ".."), entries
//! sorted by it, as ext4's htree does. A readdir that resumes after a change
//! skips no entry that is still there and repeats none. The listing read
//! from offset 0 is kept per directory until its stream reaches the end,
//! for `MAX_LIVE_LISTINGS` directories at most (abandoned streams); without
//! it the directory is listed again.

use super::handles::DirItem;
use super::inode::{pack_ino, Node};
use super::ovl;
use super::{err, OpResult, Union};
use crate::sys::{self, DirEntry};
use fuser::FileType;
use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex};

/// How many directories' listings are kept for streams not at their end.
const MAX_LIVE_LISTINGS: usize = 256;

/// The position of "." and "..", below every name's.
const DOT_POS: u64 = 1;
const DOTDOT_POS: u64 = 2;

/// The readdir position of a name: a 62-bit hash above the dot entries, so
/// that every offset is a positive file position. Names that collide
/// (about n²/2^63 for n names) could lose one at a chunk boundary.
pub fn name_pos(name: &OsStr) -> u64 {
    use std::hash::{Hash, Hasher};
    // Fixed keys: the same for the life of the daemon's binary.
    let mut h = std::hash::DefaultHasher::new();
    name.hash(&mut h);
    (h.finish() >> 2) + DOTDOT_POS + 1
}

/// Listings being read, by the directory node's serial (see the module
/// comment): node ids come back after a FORGET, serials never do.
#[derive(Default)]
pub struct Listings {
    inner: Mutex<LiveListings>,
}

#[derive(Default)]
struct LiveListings {
    live: HashMap<u64, Arc<Vec<DirItem>>>,
    /// Nodes oldest first, for dropping abandoned streams.
    started: VecDeque<u64>,
}

impl Listings {
    fn keep(&self, node: u64, items: Arc<Vec<DirItem>>) {
        let mut l = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if l.live.insert(node, items).is_some() {
            l.started.retain(|n| *n != node);
        }
        l.started.push_back(node);
        while l.started.len() > MAX_LIVE_LISTINGS {
            if let Some(old) = l.started.pop_front() {
                l.live.remove(&old);
            }
        }
    }

    fn get(&self, node: u64) -> Option<Arc<Vec<DirItem>>> {
        let l = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        l.live.get(&node).cloned()
    }

    fn drop_listing(&self, node: u64) {
        let mut l = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if l.live.remove(&node).is_some() {
            l.started.retain(|n| *n != node);
        }
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .live
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one readdir call reads: a listing in position order, and the index
/// of the first entry to hand out.
pub struct ListingAt {
    pub items: Arc<Vec<DirItem>>,
    pub start: usize,
}

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
                pos: DOT_POS,
            },
            DirItem {
                name: "..".into(),
                ino: self.inodes.get(parent).map(|p| p.ino).unwrap_or(node.ino),
                kind: FileType::Directory,
                layer: None,
                pos: DOTDOT_POS,
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
                    pos: name_pos(&e.name),
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
                    pos: name_pos(&e.name),
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
        items.sort_unstable_by(|a, b| a.pos.cmp(&b.pos).then_with(|| a.name.cmp(&b.name)));
        Ok(items)
    }

    /// The listing a readdir of `node` at `offset` reads, and where in it
    /// to start: after every entry whose position is at most `offset`.
    /// Offset 0 lists the directory anew (a rewind shows it as it is now); a
    /// later offset reads on in the kept listing, or in a new one when that
    /// was dropped. A stream at its end drops the listing.
    pub fn listing_at(&self, node: &Node, offset: u64) -> OpResult<ListingAt> {
        let kept = if offset == 0 {
            None
        } else {
            self.listings.get(node.serial)
        };
        let items = match kept {
            Some(items) => items,
            None => {
                let fresh = Arc::new(self.list_dir(node)?);
                self.listings.keep(node.serial, fresh.clone());
                fresh
            }
        };
        let start = if offset == 0 {
            0
        } else {
            items.partition_point(|i| i.pos <= offset)
        };
        if start >= items.len() {
            self.listings.drop_listing(node.serial);
        }
        Ok(ListingAt { items, start })
    }

    /// True when the merged view of a directory node has no entries.
    pub fn dir_is_empty(&self, node: &Node) -> OpResult<bool> {
        Ok(self.list_dir(node)?.len() <= 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(n: usize) -> Arc<Vec<DirItem>> {
        Arc::new(
            (0..n)
                .map(|i| DirItem {
                    name: format!("e{i}").into(),
                    ino: i as u64 + 10,
                    kind: FileType::RegularFile,
                    layer: None,
                    pos: i as u64 + 3,
                })
                .collect(),
        )
    }

    #[test]
    fn positions_are_positive_offsets_above_the_dot_entries() {
        for name in ["a", "b", ".wh.x", "a-much-longer-name-of-a-file.txt", ""] {
            let p = name_pos(OsStr::new(name));
            assert!(p > DOTDOT_POS && p < i64::MAX as u64, "{name}: {p}");
            assert_eq!(p, name_pos(OsStr::new(name)), "stable");
        }
        assert_ne!(name_pos(OsStr::new("a")), name_pos(OsStr::new("b")));
    }

    #[test]
    fn a_listing_lives_until_its_stream_ends_or_too_many_start() {
        let l = Listings::default();
        l.keep(5, listing(3));
        assert_eq!(l.get(5).map(|v| v.len()), Some(3));
        assert!(l.get(6).is_none(), "another directory");
        l.keep(5, listing(4));
        assert_eq!((l.get(5).map(|v| v.len()), l.len()), (Some(4), 1));
        l.drop_listing(5);
        assert!(l.get(5).is_none() && l.is_empty());
        for i in 0..MAX_LIVE_LISTINGS + 10 {
            l.keep(i as u64, listing(1));
        }
        assert_eq!(l.len(), MAX_LIVE_LISTINGS);
        assert!(l.get(0).is_none(), "the oldest is dropped");
        assert!(l.get(MAX_LIVE_LISTINGS as u64 + 9).is_some());
    }
}
