//! Snapshots of a tree, for comparing two views of it.
//!
//! - `Tree`/`snapshot`: every object under its relative path ("" for the root), with
//!   contents (digested when big) and every xattr; `assert_same_tree` compares two.
//! - `DiffTree`/`diff_snapshot`: what the differential, stress and crash suites
//!   compare, tuned by `SnapOpts` (mtimes, directory link counts, user.* xattrs only,
//!   hard-link groups); `diff_trees` lists the differences.

use super::mounts::{ovl_opts, KernelOverlay, TestDir};
use super::sys::{lgetxattr, list_dir, llistxattr, ls, lstat, lstat_meta, readlink};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub fn kind_of(mode: u32) -> char {
    match mode & libc::S_IFMT {
        libc::S_IFREG => 'f',
        libc::S_IFDIR => 'd',
        libc::S_IFLNK => 'l',
        libc::S_IFIFO => 'p',
        libc::S_IFCHR => 'c',
        libc::S_IFBLK => 'b',
        libc::S_IFSOCK => 's',
        _ => '?',
    }
}

// ---------------------------------------------------------------------------------
// Tree: one view's objects
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// 'f' file, 'd' dir, 'l' symlink, 'c' char dev, 'b' block dev, 'p' fifo, 's' socket
    pub kind: char,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Regular files: size. Symlinks: target length.
    pub size: Option<u64>,
    /// Regular files: contents (a digest for big files).
    pub content: Option<String>,
    pub target: Option<String>,
    pub rdev: Option<u64>,
    /// Non-directories: link count.
    pub nlink: Option<u64>,
    /// Every xattr the view lists, with its value.
    pub xattrs: BTreeMap<String, String>,
}

fn digest(data: &[u8]) -> String {
    if data.len() <= 256 && std::str::from_utf8(data).is_ok() {
        return format!("{:?}", std::str::from_utf8(data).unwrap());
    }
    // FNV-1a, 64 bit: stable and good enough to tell contents apart.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{} bytes, fnv {h:016x}", data.len())
}

pub type Tree = BTreeMap<String, Node>;

pub fn node_of(p: &Path) -> Node {
    let m = lstat_meta(p);
    let kind = kind_of(m.mode());
    let mut xattrs = BTreeMap::new();
    match llistxattr(p) {
        Ok(names) => {
            for n in names {
                let v = lgetxattr(p, &n)
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .unwrap_or_else(|e| format!("<getxattr error {e}>"));
                xattrs.insert(n, v);
            }
        }
        Err(e) => {
            xattrs.insert("<listxattr error>".into(), e.to_string());
        }
    }
    Node {
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: if kind == 'f' || kind == 'l' {
            Some(m.size())
        } else {
            None
        },
        content: if kind == 'f' {
            Some(match fs::read(p) {
                Ok(d) => digest(&d),
                Err(e) => format!("<read error {e}>"),
            })
        } else {
            None
        },
        target: if kind == 'l' {
            Some(fs::read_link(p).unwrap().to_string_lossy().into_owned())
        } else {
            None
        },
        rdev: if kind == 'c' || kind == 'b' {
            Some(m.rdev())
        } else {
            None
        },
        nlink: if kind != 'd' { Some(m.nlink()) } else { None },
        xattrs,
    }
}

/// Walks `root` with lstat (never following symlinks) and records every object under
/// its path relative to `root` ("" for the root). Panics on duplicate names.
pub fn snapshot<P: AsRef<Path>>(root: P) -> Tree {
    let mut t = Tree::new();
    walk(root.as_ref(), "", &mut t);
    t
}

fn walk(root: &Path, rel: &str, t: &mut Tree) {
    let p = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let n = node_of(&p);
    let is_dir = n.kind == 'd';
    t.insert(rel.to_string(), n);
    if is_dir {
        let mut names = ls(&p);
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate names in {}", p.display());
        for name in names {
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            walk(root, &r, t);
        }
    }
}

/// Groups of paths that share an inode (hard links), as seen in `root`.
pub fn link_groups<P: AsRef<Path>>(root: P, tree: &Tree) -> Vec<Vec<String>> {
    let mut by_ino: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (rel, n) in tree {
        if n.kind != 'd' {
            let ino = lstat_meta(root.as_ref().join(rel)).ino();
            by_ino.entry(ino).or_default().push(rel.clone());
        }
    }
    let mut g: Vec<Vec<String>> = by_ino.into_values().filter(|v| v.len() > 1).collect();
    g.sort();
    g
}

/// Compares two snapshots and panics with a readable list of every difference.
#[track_caller]
pub fn assert_same_tree(a_name: &str, a: &Tree, b_name: &str, b: &Tree) {
    let mut diffs = Vec::new();
    for (k, va) in a {
        match b.get(k) {
            None => diffs.push(format!("  /{k}: only in {a_name}: {va:?}")),
            Some(vb) if vb != va => diffs.push(format!(
                "  /{k}:\n     {a_name}: {va:?}\n     {b_name}: {vb:?}"
            )),
            _ => {}
        }
    }
    for (k, vb) in b {
        if !a.contains_key(k) {
            diffs.push(format!("  /{k}: only in {b_name}: {vb:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{a_name} and {b_name} differ ({} differences):\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// Just names and kinds of a tree, for quick assertions.
pub fn names_kinds(t: &Tree) -> Vec<(String, char)> {
    t.iter().map(|(k, v)| (k.clone(), v.kind)).collect()
}

/// A full raw snapshot of a directory tree on disk, including overlay-private xattrs,
/// used to check that a failed mount changed nothing.
pub fn raw_snapshot<P: AsRef<Path>>(root: P) -> Tree {
    snapshot(root)
}

// ---------------------------------------------------------------------------------
// DiffTree: what the differential suites compare
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffNode {
    pub kind: char, // f d l p c b s
    pub mode: u32,  // permission bits incl. suid/sgid/sticky
    pub uid: u32,
    pub gid: u32,
    pub size: Option<u64>, // None for directories
    pub nlink: Option<u64>,
    pub rdev: u64,
    pub content: Option<Vec<u8>>,          // file data or symlink target
    pub xattrs: BTreeMap<String, Vec<u8>>, // user.* only
    pub mtime: Option<(i64, i64)>,
}

#[derive(Debug, Default)]
pub struct DiffTree {
    pub nodes: BTreeMap<String, DiffNode>,
    /// For each path, the other paths with the same st_ino (hard links), sorted.
    pub links: BTreeMap<String, Vec<String>>,
}

pub struct SnapOpts {
    /// Record mtime only when older than this (times both sides set explicitly).
    pub mtime_before: Option<i64>,
    pub dir_nlink: bool,
    /// Leave out names that readdir lists but lstat can't find (kernel overlayfs lists
    /// whiteouts in directories it does not merge).
    pub skip_enoent: bool,
}

/// Walks `root` (not following symlinks). Errors are recorded as a node of kind 'E'.
pub fn diff_snapshot<P: AsRef<Path>>(root: P, o: &SnapOpts) -> DiffTree {
    let root = root.as_ref();
    let mut t = DiffTree::default();
    let mut inos: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    fn walk(
        root: &Path,
        rel: &str,
        t: &mut DiffTree,
        inos: &mut BTreeMap<u64, Vec<String>>,
        o: &SnapOpts,
    ) {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let names = match list_dir(&dir) {
            Ok(n) => n,
            Err(e) => {
                t.nodes.insert(format!("{rel}/<readdir>"), err_node(&e));
                return;
            }
        };
        for n in names {
            let r = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            let p = root.join(&r);
            let st = match lstat(&p) {
                Ok(s) => s,
                Err(e) if o.skip_enoent && e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => {
                    t.nodes.insert(r, err_node(&e));
                    continue;
                }
            };
            let kind = kind_of(st.st_mode);
            let content = match kind {
                'f' => {
                    Some(fs::read(&p).unwrap_or_else(|e| format!("<read error {e}>").into_bytes()))
                }
                'l' => Some(
                    readlink(&p).unwrap_or_else(|e| format!("<readlink error {e}>").into_bytes()),
                ),
                _ => None,
            };
            let mut xattrs = BTreeMap::new();
            for name in llistxattr(&p).unwrap_or_default() {
                if name.starts_with("user.") {
                    xattrs.insert(
                        name.clone(),
                        lgetxattr(&p, &name).unwrap_or_else(|e| format!("<{e}>").into_bytes()),
                    );
                }
            }
            let mtime = match o.mtime_before {
                Some(b) if st.st_mtime < b => Some((st.st_mtime, st.st_mtime_nsec)),
                Some(_) => Some((-1, 0)), // "new": set by the run itself
                None => None,
            };
            if kind != 'd' {
                inos.entry(st.st_ino).or_default().push(r.clone());
            }
            t.nodes.insert(
                r.clone(),
                DiffNode {
                    kind,
                    mode: st.st_mode & 0o7777,
                    uid: st.st_uid,
                    gid: st.st_gid,
                    size: if kind == 'd' {
                        None
                    } else {
                        Some(st.st_size as u64)
                    },
                    nlink: if kind != 'd' || o.dir_nlink {
                        Some(st.st_nlink as u64)
                    } else {
                        None
                    },
                    rdev: st.st_rdev,
                    content,
                    xattrs,
                    mtime: if kind == 'l' { None } else { mtime },
                },
            );
            if kind == 'd' {
                walk(root, &r, t, inos, o);
            }
        }
    }
    walk(root, "", &mut t, &mut inos, o);
    for (_, paths) in inos {
        for p in &paths {
            let others: Vec<String> = paths.iter().filter(|q| *q != p).cloned().collect();
            t.links.insert(p.clone(), others);
        }
    }
    t
}

fn err_node(e: &io::Error) -> DiffNode {
    DiffNode {
        kind: 'E',
        mode: e.raw_os_error().unwrap_or(-1) as u32,
        uid: 0,
        gid: 0,
        size: None,
        nlink: None,
        rdev: 0,
        content: None,
        xattrs: BTreeMap::new(),
        mtime: None,
    }
}

fn show_bytes(b: &[u8]) -> String {
    if b.len() > 80 {
        format!(
            "{:?}...({} bytes)",
            String::from_utf8_lossy(&b[..80]),
            b.len()
        )
    } else {
        format!("{:?}", String::from_utf8_lossy(b))
    }
}

/// Differences between two trees, as human-readable lines (empty when equal).
pub fn diff_trees(
    a_name: &str,
    a: &DiffTree,
    b_name: &str,
    b: &DiffTree,
    links: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for (p, na) in &a.nodes {
        match b.nodes.get(p) {
            None => out.push(format!("{p}: only in {a_name} ({})", na.kind)),
            Some(nb) if na != nb => {
                let mut d = Vec::new();
                if na.kind != nb.kind {
                    d.push(format!("kind {} vs {}", na.kind, nb.kind));
                }
                if na.mode != nb.mode {
                    d.push(format!("mode {:o} vs {:o}", na.mode, nb.mode));
                }
                if (na.uid, na.gid) != (nb.uid, nb.gid) {
                    d.push(format!(
                        "owner {}:{} vs {}:{}",
                        na.uid, na.gid, nb.uid, nb.gid
                    ));
                }
                if na.size != nb.size {
                    d.push(format!("size {:?} vs {:?}", na.size, nb.size));
                }
                if na.nlink != nb.nlink {
                    d.push(format!("nlink {:?} vs {:?}", na.nlink, nb.nlink));
                }
                if na.rdev != nb.rdev {
                    d.push(format!("rdev {} vs {}", na.rdev, nb.rdev));
                }
                if na.content != nb.content {
                    d.push(format!(
                        "content {} vs {}",
                        show_bytes(na.content.as_deref().unwrap_or(b"")),
                        show_bytes(nb.content.as_deref().unwrap_or(b""))
                    ));
                }
                if na.xattrs != nb.xattrs {
                    d.push(format!("xattrs {:?} vs {:?}", na.xattrs, nb.xattrs));
                }
                if na.mtime != nb.mtime {
                    d.push(format!("mtime {:?} vs {:?}", na.mtime, nb.mtime));
                }
                out.push(format!("{p}: {a_name} vs {b_name}: {}", d.join(", ")));
            }
            _ => {}
        }
    }
    for (p, nb) in &b.nodes {
        if !a.nodes.contains_key(p) {
            out.push(format!("{p}: only in {b_name} ({})", nb.kind));
        }
    }
    if links {
        for (p, la) in &a.links {
            if let Some(lb) = b.links.get(p) {
                if la != lb {
                    out.push(format!(
                        "{p}: hard links {a_name} {la:?} vs {b_name} {lb:?}"
                    ));
                }
            }
        }
    }
    out
}

/// What kernel overlayfs shows on strata's layers: it is mounted at `<dir>/kmnt`
/// (workdir `<dir>/kwork`) with redirect_dir=on,metacopy=on, which strata's upper
/// needs, snapshotted without mtimes or directory link counts, and unmounted.
pub fn kernel_view(lowers: &[PathBuf], upper: &Path, dir: &TestDir) -> DiffTree {
    let kwork = dir.dir("kwork");
    let kmnt = dir.dir("kmnt");
    let _k = KernelOverlay::new(
        &format!(
            "{},redirect_dir=on,metacopy=on",
            ovl_opts(lowers, Some(upper), Some(&kwork))
        ),
        &kmnt,
    );
    diff_snapshot(
        &kmnt,
        &SnapOpts {
            mtime_before: None,
            dir_nlink: false,
            skip_enoent: true,
        },
    )
}
