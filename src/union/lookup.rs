//! Lookup: walk the layers top-down for one name in a merged directory, stop
//! at a whiteout, an opaque directory or a non-directory, merge directories,
//! and follow `overlay.redirect` for renamed directories.

use super::inode::{pack_ino, Key, LowerLoc, Node, NodeState};
use super::ovl::{self, Redirect};
use super::{err, At, OpResult, Union};
use crate::sys::{self, Stat};
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

/// From this many lower layers on, a directory's lower names are indexed
/// once, so a lookup costs a stat per layer that has the name, not per layer.
pub const INDEX_MIN_LAYERS: usize = 3;

/// What one name resolves to in the merged view.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Stat of the topmost object (the one whose attributes show).
    pub stat: Stat,
    /// Present in the upper layer.
    pub upper: bool,
    /// Lower objects: the one origin for a non-directory; every merged
    /// directory for a directory, top first.
    pub lowers: Vec<LowerLoc>,
    /// An upper metacopy file; `lowers[0]` holds its data.
    pub metacopy: bool,
}

impl Resolved {
    pub fn kind(&self) -> u32 {
        sys::file_type(self.stat.st_mode)
    }

    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }
}

/// Outcome of looking in one layer directory for one name.
enum Found {
    Missing,
    Whiteout,
    Object(Stat),
}

fn look_in(dir: &At, name: &OsStr) -> OpResult<Found> {
    match sys::stat_at_opt(dir.dir(), name).map_err(err)? {
        Some(st) if sys::is_whiteout_stat(&st) => Ok(Found::Whiteout),
        Some(st) => {
            // Xattr whiteouts are zero-size files in a directory marked `opaque=x`;
            // the parent's mark is read only when such a file is met.
            if sys::file_type(st.st_mode) == libc::S_IFREG
                && st.st_size == 0
                && ovl::is_xattr_whiteout(dir.dir(), name)
                && dir_has_xattr_whiteouts(dir)
            {
                return Ok(Found::Whiteout);
            }
            Ok(Found::Object(st))
        }
        None => {
            let wh = ovl::aufs_whiteout_name(name);
            if sys::stat_at_opt(dir.dir(), &wh).map_err(err)?.is_some() {
                Ok(Found::Whiteout)
            } else {
                Ok(Found::Missing)
            }
        }
    }
}

/// Does the directory `dir` (the parent of the names looked up) carry `opaque=x`?
fn dir_has_xattr_whiteouts(dir: &At) -> bool {
    ovl::dir_marks(dir.dir(), OsStr::new(""), false)
        .map(|m| m.has_xattr_whiteouts)
        .unwrap_or(false)
}

/// Reads opaque/redirect marks of a directory found as `name` in `dir`,
/// including the aufs `.wh..wh..opq` marker inside it.
fn marks_of(u: &Union, dir: &At, name: &OsStr) -> OpResult<ovl::DirMarks> {
    let mut marks = ovl::dir_marks(dir.dir(), name, u.redirect_dir).map_err(err)?;
    if !marks.opaque {
        if let Ok(sub) = sys::open_dir_path(dir.dir(), std::path::Path::new(name)) {
            if sys::stat_at_opt(sub.as_fd(), OsStr::new(ovl::WH_OPAQUE))
                .map_err(err)?
                .is_some()
            {
                marks.opaque = true;
            }
        }
    }
    Ok(marks)
}

impl Union {
    /// Resolves `name` in the merged directory `parent`. Ok(None): not there.
    pub fn resolve(&self, parent: &Node, name: &OsStr) -> OpResult<Option<Resolved>> {
        // aufs whiteouts and opaque markers are bookkeeping: never visible.
        if name.as_bytes().starts_with(ovl::WH_PREFIX) {
            return Ok(None);
        }
        self.resolve_from(parent, name, true)
    }

    /// Does any lower layer show an object for `name` (ignoring the upper)?
    /// Then removing or moving the upper object needs a whiteout.
    pub fn lower_has(&self, parent: &Node, name: &OsStr) -> OpResult<bool> {
        Ok(self.resolve_from(parent, name, false)?.is_some())
    }

    fn resolve_from(
        &self,
        parent: &Node,
        name: &OsStr,
        include_upper: bool,
    ) -> OpResult<Option<Resolved>> {
        let (p_upper, p_lowers) = {
            let st = parent.state();
            (st.upper, st.lowers.clone())
        };
        let mut found: Option<Resolved> = None;
        let mut redirect: Option<Redirect> = None;
        let mut stop = false;
        let mut metacopy = false;
        // Index of the first lower layer still to search.
        let mut next_layer = 0usize;

        if p_upper && include_upper {
            let dir = At {
                dir: self.dir_fd(parent, None)?,
                name: Default::default(),
            };
            match look_in(&dir, name)? {
                Found::Whiteout => return Ok(None),
                Found::Missing => {}
                Found::Object(st) => {
                    let is_dir = sys::is_dir(&st);
                    if is_dir {
                        let marks = marks_of(self, &dir, name)?;
                        stop = marks.opaque;
                        redirect = marks.redirect;
                    } else {
                        // A metacopy file goes on to find its data below, at
                        // the same path or where its redirect says (a renamed one).
                        metacopy = self.is_metacopy(&dir, name, &st);
                        stop = !metacopy;
                        if metacopy {
                            redirect = ovl::dir_marks(dir.dir(), name, true).map_err(err)?.redirect;
                        }
                    }
                    found = Some(Resolved {
                        stat: st,
                        upper: true,
                        lowers: Vec::new(),
                        metacopy,
                    });
                }
            }
        }

        let index = if !stop && p_lowers.len() >= INDEX_MIN_LAYERS {
            self.lower_index(parent, &p_lowers)
        } else {
            None
        };
        // Set when a redirect's path crosses an opaque directory in a layer:
        // the layers below that one are hidden.
        let mut stop_below = false;
        while !stop && !stop_below && next_layer < self.layers.lowers.len() {
            let layer = next_layer;
            next_layer += 1;
            if let Some(index) = &index {
                let listed_as = match &redirect {
                    Some(Redirect::Absolute(_)) => None,
                    Some(Redirect::Relative(n)) => Some(n.as_os_str()),
                    None => Some(name),
                };
                if listed_as.is_some_and(|n| !index.has(n, layer)) {
                    continue;
                }
            }
            let parent_path = p_lowers
                .iter()
                .find(|l| l.layer == layer)
                .map(|l| l.path.clone());
            let child_path: PathBuf = match &redirect {
                Some(Redirect::Absolute(p)) => p.clone(),
                Some(Redirect::Relative(n)) => match &parent_path {
                    Some(pp) => pp.join(n),
                    None => continue,
                },
                None => match &parent_path {
                    Some(pp) => pp.join(name),
                    None => continue,
                },
            };
            let opened = match &redirect {
                // The usual case: the child in the parent's own lower directory.
                None => self
                    .dir_fd(parent, Some(layer))
                    .map(|dir| At {
                        dir,
                        name: name.to_os_string(),
                    })
                    .map_err(std::io::Error::from_raw_os_error),
                _ => self.lower(layer).at(&child_path),
            };
            let dir = match opened {
                Ok(dir) => dir,
                // A non-directory (or whiteout) on the way blocks the layers
                // below, as it does for the kernel following a redirect.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => {
                    break
                }
                Err(_) => continue,
            };
            if matches!(redirect, Some(Redirect::Absolute(_))) {
                stop_below = self.opaque_on_the_way(layer, &child_path)?;
            }
            match look_in(&dir, &dir.name.clone())? {
                Found::Missing => continue,
                Found::Whiteout => break,
                Found::Object(st) => {
                    let is_dir = sys::is_dir(&st);
                    match &mut found {
                        None => {
                            found = Some(Resolved {
                                stat: st,
                                upper: false,
                                lowers: vec![LowerLoc {
                                    layer,
                                    path: child_path.clone(),
                                }],
                                metacopy: false,
                            });
                            if !is_dir {
                                break;
                            }
                        }
                        Some(r) if r.metacopy => {
                            // The data of a metacopy file: a regular file.
                            if sys::file_type(st.st_mode) == libc::S_IFREG {
                                r.lowers.push(LowerLoc {
                                    layer,
                                    path: child_path.clone(),
                                });
                            }
                            break;
                        }
                        Some(r) => {
                            // A non-directory below a directory is hidden by it.
                            if !r.is_dir() || !is_dir {
                                break;
                            }
                            r.lowers.push(LowerLoc {
                                layer,
                                path: child_path.clone(),
                            });
                        }
                    }
                    let marks = marks_of(self, &dir, &dir.name)?;
                    if marks.opaque {
                        break;
                    }
                    if marks.redirect.is_some() {
                        redirect = marks.redirect;
                    }
                }
            }
        }
        Ok(found)
    }

    /// The st_ino reported for a resolved object.
    pub fn reported_ino(&self, r: &Resolved) -> u64 {
        if r.upper {
            self.inodes.upper_ino(r.stat.st_ino)
        } else {
            pack_ino(r.lowers[0].layer + 1, r.stat.st_ino)
        }
    }

    /// Looks up `name` in `parent` and returns its node (one more kernel reference).
    pub fn lookup_node(&self, parent: &Arc<Node>, name: &OsStr) -> OpResult<(Arc<Node>, Resolved)> {
        let r = self.resolve(parent, name)?;
        let r = r.ok_or(libc::ENOENT)?;
        let node = self.node_for(parent, name, &r);
        if !r.upper && node.state().upper {
            // Linked up just now: what shows is the upper file.
            if let Some(r2) = self.resolve(parent, name)? {
                return Ok((node, r2));
            }
        }
        Ok((node, r))
    }

    /// Finds or creates the node for a resolved object named (parent, name).
    pub fn node_for(&self, parent: &Node, name: &OsStr, r: &Resolved) -> Arc<Node> {
        let key = identity_key(parent, name, r);
        let ino = self.reported_ino(r);
        let node = self
            .inodes
            .lookup_or_insert(key, r.kind(), ino, || NodeState {
                parent: parent.id,
                name: name.to_os_string(),
                aliases: Vec::new(),
                upper: r.upper,
                lowers: r.lowers.clone(),
                unlinked: false,
                metacopy: r.metacopy,
                orphan: None,
                key: Key::Lower(0, Default::default()),
            });
        if key_of_lower_link(r) && node.state().upper {
            // Another name of a lower hard-linked file that was copied up:
            // link it up too, so the names stay one file (as index=on).
            if !self.read_only {
                if let Err(e) = self.link_up(&node, parent, name) {
                    log::debug!("link-up of {:?}: errno {e}", name);
                }
            }
            super::inode::add_alias(&node, parent.id, name);
            return node;
        }
        {
            let mut st = node.state();
            // The layers below may be learnt better now (e.g. after a rename).
            // A resolution that saw no upper may predate a copy-up that ran
            // meanwhile (a directory's copy-up does not hold the directory it
            // is in): a node that is in the upper stays there while it is linked.
            let stale = !r.upper && st.upper && !st.unlinked;
            if r.is_dir() || st.lowers.is_empty() {
                st.lowers = r.lowers.clone();
            }
            if !stale {
                st.upper = r.upper;
                st.metacopy = r.metacopy;
            }
            if st.unlinked {
                st.unlinked = false;
                st.orphan = None;
                st.parent = parent.id;
                st.name = name.to_os_string();
                st.aliases.clear();
            }
        }
        if !r.is_dir() && r.stat.st_nlink > 1 {
            super::inode::add_alias(&node, parent.id, name);
        }
        node
    }
}

/// The identity a resolved object is known by in the inode table.
pub fn identity_key(parent: &Node, name: &OsStr, r: &Resolved) -> Key {
    if r.upper {
        Key::Upper(r.stat.st_ino)
    } else if !r.is_dir() && r.stat.st_nlink > 1 {
        Key::LowerIno(r.lowers[0].layer, r.stat.st_ino)
    } else {
        Key::Lower(parent.id, name.to_os_string())
    }
}

/// Directory fds of one merged directory in each layer, opened on first use
/// and shared by the entries of one readdirplus batch.
#[derive(Default)]
pub struct LayerDirs {
    upper: Option<std::os::fd::OwnedFd>,
    lowers: std::collections::HashMap<usize, std::os::fd::OwnedFd>,
}

impl Union {
    /// Looks up an entry of a listing made by `list_dir`. A non-directory is
    /// known to come from the layer it was listed in (the topmost one), so a
    /// single stat there resolves it; anything else takes the full walk.
    pub fn lookup_listed(
        &self,
        dir: &Arc<Node>,
        item: &super::handles::DirItem,
        dirs: &mut LayerDirs,
    ) -> OpResult<(Arc<Node>, Resolved)> {
        if matches!(item.kind, fuser::FileType::Directory) {
            return self.lookup_node(dir, &item.name);
        }
        let (fd, lower_path) = match item.layer {
            None => {
                if dirs.upper.is_none() {
                    let path = self.path(dir)?;
                    dirs.upper = Some(self.upper()?.open_dir_path(&path).map_err(err)?);
                }
                (dirs.upper.as_ref().map(|f| f.as_fd()), None)
            }
            Some(layer) => {
                let lpath = dir
                    .state()
                    .lowers
                    .iter()
                    .find(|l| l.layer == layer)
                    .map(|l| l.path.clone());
                let Some(lpath) = lpath else {
                    return self.lookup_node(dir, &item.name);
                };
                if let std::collections::hash_map::Entry::Vacant(v) = dirs.lowers.entry(layer) {
                    v.insert(self.lower(layer).open_dir_path(&lpath).map_err(err)?);
                }
                (
                    dirs.lowers.get(&layer).map(|f| f.as_fd()),
                    Some((layer, lpath)),
                )
            }
        };
        let Some(fd) = fd else {
            return self.lookup_node(dir, &item.name);
        };
        let st = match sys::stat_at_opt(fd, &item.name).map_err(err)? {
            Some(st) if !needs_full_lookup(&st, item.layer.is_none()) => st,
            _ => return self.lookup_node(dir, &item.name),
        };
        let r = Resolved {
            stat: st,
            upper: lower_path.is_none(),
            lowers: lower_path
                .map(|(layer, p)| {
                    vec![LowerLoc {
                        layer,
                        path: p.join(&item.name),
                    }]
                })
                .unwrap_or_default(),
            metacopy: false,
        };
        Ok((self.node_for(dir, &item.name, &r), r))
    }
}

impl Union {
    /// The lower-name index of a directory node, built on first use.
    fn lower_index(
        &self,
        dir: &Node,
        lowers: &[LowerLoc],
    ) -> Option<Arc<super::inode::LowerIndex>> {
        if let Some(i) = dir.lower_index.get() {
            return Some(i.clone());
        }
        let mut index = super::inode::LowerIndex::default();
        for l in lowers {
            let fd = self.lower(l.layer).open_dir_read(&l.path).ok()?;
            index.cover(l.layer);
            for e in sys::read_dir_fd(fd.as_fd()).ok()? {
                match ovl::aufs_whiteout_target(&e.name) {
                    Some(target) => index.add(target, l.layer),
                    None => index.add(&e.name, l.layer),
                }
            }
        }
        Some(dir.lower_index.get_or_init(|| Arc::new(index)).clone())
    }
}

/// Metacopy files have no data blocks: fewer allocated bytes than their size,
/// or at most one block (for xattrs that don't fit in the inode, as the
/// kernel's origin and redirect often don't). Only those get the xattr look.
pub fn maybe_metacopy(st: &Stat) -> bool {
    sys::file_type(st.st_mode) == libc::S_IFREG
        && st.st_size > 0
        && (st.st_blocks <= 8 || st.st_blocks * 512 < st.st_size)
}

impl Union {
    /// Is the upper file `name` in `dir` a metacopy (data still below)?
    /// Honoured whatever the `metacopy` option says: it only decides whether
    /// strata writes such files; reading one as its zeros would be wrong.
    fn is_metacopy(&self, dir: &At, name: &OsStr, st: &Stat) -> bool {
        maybe_metacopy(st)
            && ["trusted.overlay.metacopy", "user.overlay.metacopy"]
                .iter()
                .any(|a| matches!(sys::xattr::get(dir.dir(), name, OsStr::new(a)), Ok(Some(_))))
    }
}

impl Union {
    /// Is a directory on the way to `path` (not `path` itself) opaque in
    /// lower layer `layer`? Only asked when following an absolute redirect.
    fn opaque_on_the_way(&self, layer: usize, path: &std::path::Path) -> OpResult<bool> {
        let mut prefix = PathBuf::new();
        let comps: Vec<_> = path.iter().collect();
        for comp in comps.iter().take(comps.len().saturating_sub(1)) {
            prefix.push(comp);
            let Ok(at) = self.lower(layer).at(&prefix) else {
                return Ok(false);
            };
            if marks_of(self, &at, &at.name)?.opaque {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// A lower file with several names (the inode table keys it by its inode).
fn key_of_lower_link(r: &Resolved) -> bool {
    !r.upper && !r.is_dir() && r.stat.st_nlink > 1
}

impl Union {
    /// Links (parent, name) to the upper file of `node` (copied up under
    /// another of its names), or to its fd when that name is gone too.
    fn link_up(&self, node: &Arc<Node>, parent: &Node, name: &OsStr) -> OpResult<()> {
        let parent = self.node(parent.id)?;
        self.copy_up(&parent, super::copyup::CopyData::Full)?;
        let pdir = self.dir_fd(&parent, None)?;
        if sys::stat_at_opt(pdir.as_fd(), name).map_err(err)?.is_some() {
            return Ok(());
        }
        let times = sys::fstat(pdir.as_fd()).ok();
        let src = self.locate(node)?;
        if src.name.is_empty() {
            sys::link_fd_at(src.dir(), pdir.as_fd(), name).map_err(err)?;
        } else {
            sys::link_at(src.dir(), &src.name, pdir.as_fd(), name).map_err(err)?;
        }
        if let Some(pst) = times {
            super::copyup::restore_times(pdir.as_fd(), &pst);
        }
        let mut st = node.state();
        if st.unlinked {
            st.unlinked = false;
            st.orphan = None;
            st.parent = parent.id;
            st.name = name.to_os_string();
        }
        Ok(())
    }
}

/// Directories, whiteouts and possible metacopy files take the full walk.
fn needs_full_lookup(st: &Stat, in_upper: bool) -> bool {
    sys::is_dir(st) || sys::is_whiteout_stat(st) || (in_upper && maybe_metacopy(st))
}
