//! The upper of a container into one OCI layer.
//!
//! The upper is walked depth first, names sorted bytewise in each directory,
//! each directory before its contents, so the same upper gives the same bytes.
//! Overlay's forms become OCI's:
//! - a whiteout (char 0/0, or a zero-size file with `overlay.whiteout` in a
//!   directory marked `overlay.opaque=x`) → an empty `.wh.NAME`;
//! - an opaque directory → the directory and `DIR/.wh..wh..opq`;
//! - a directory with `overlay.redirect` (a renamed lower directory) → a
//!   whiteout at the old name (unless the upper has something there itself)
//!   and, under the new name, an opaque directory holding the whole merged tree:
//!   the lower contents at the redirect source, merged with the upper's;
//! - a metacopy file → its data from the lowers, the upper's metadata;
//! - hard links within the layer (one inode) → tar hard links to the first path.

use super::stream::Encoder;
use super::{is_bookkeeping_xattr, lossy, Error, ErrorKind, Ownership, WriteOptions, Written};
use crate::image::digest::HashingWriter;
use crate::sys::{self, Stat};
use crate::union::override_stat::{Override, CONTAINERS, USER};
use crate::union::ovl::{dir_marks, is_xattr_whiteout, Redirect};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const WH_PREFIX: &[u8] = b".wh.";
const WH_OPAQUE: &str = ".wh..wh..opq";

/// Writes `upper` (mounted over `lowers`, top first) as one OCI layer to `out`.
pub fn write_layer(
    upper: &Path,
    lowers: &[PathBuf],
    opts: &WriteOptions,
    out: impl Write,
) -> Result<Written, Error> {
    write_inner(upper, lowers, opts, out).map_err(|e| e.in_layer(upper))
}

fn open_root(path: &Path) -> Result<OwnedFd, Error> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|e| Error::io(None, &format!("open {}", path.display()), e))
}

fn write_inner(
    upper: &Path,
    lowers: &[PathBuf],
    opts: &WriteOptions,
    out: impl Write,
) -> Result<Written, Error> {
    let upper_root = open_root(upper)?;
    let lower_roots = lowers
        .iter()
        .map(|l| open_root(l))
        .collect::<Result<Vec<_>, _>>()?;
    let encoder = Encoder::new(HashingWriter::new(out), opts.compression)
        .map_err(|e| Error::io(None, "start compressing", e))?;
    let mut w = Writer {
        builder: tar::Builder::new(HashingWriter::new(encoder)),
        upper: upper_root
            .try_clone()
            .map_err(|e| Error::io(None, "dup", e))?,
        lowers: lower_roots,
        opts,
        links: HashMap::new(),
        files: 0,
        warnings: Vec::new(),
        renamed_from: BTreeMap::new(),
    };
    w.find_renames(upper_root.as_fd(), &[], &[])?;
    let root_st = sys::stat_at(upper_root.as_fd(), OsStr::new(""))
        .map_err(|e| Error::io(Some(""), "lstat", e))?;
    w.emit(
        b"./",
        Source::new(upper_root.as_fd(), OsStr::new(""), root_st),
        None,
    )?;
    w.walk_upper(upper_root.as_fd(), &[], &[], false)?;
    for (parent, names) in std::mem::take(&mut w.renamed_from) {
        for name in names {
            let mut old = parent.clone();
            old.push(name);
            w.warnings.push(format!(
                "entry {:?}: no whiteout written for this renamed directory's old name (its parent is not in the upper)",
                rel_string(&old)
            ));
        }
    }
    let files = w.files;
    let warnings = std::mem::take(&mut w.warnings);
    let tar_out = w
        .builder
        .into_inner()
        .map_err(|e| Error::io(None, "finish the tar", e))?;
    let (encoder, diff_id, _) = tar_out.finish();
    let compressed = encoder
        .finish()
        .map_err(|e| Error::io(None, "finish compressing", e))?;
    let (mut out, digest, size) = compressed.finish();
    out.flush().map_err(|e| Error::io(None, "flush", e))?;
    Ok(Written {
        diff_id,
        digest,
        size,
        files,
        warnings,
    })
}

type Rel = Vec<OsString>;

fn rel_string(rel: &[OsString]) -> String {
    let parts: Vec<String> = rel.iter().map(|c| lossy(c.as_bytes())).collect();
    parts.join("/")
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = prefix.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn pushed(rel: &[OsString], name: &OsStr) -> Rel {
    let mut r = rel.to_vec();
    r.push(name.to_os_string());
    r
}

/// One object on disk: a name in a directory ("" for the directory itself).
struct Source<'a> {
    dir: BorrowedFd<'a>,
    name: &'a OsStr,
    st: Stat,
}

impl<'a> Source<'a> {
    fn new(dir: BorrowedFd<'a>, name: &'a OsStr, st: Stat) -> Source<'a> {
        Source { dir, name, st }
    }
}

struct Writer<'o, W: Write> {
    builder: tar::Builder<HashingWriter<Encoder<HashingWriter<W>>>>,
    upper: OwnedFd,
    /// Lower layer roots, top first.
    lowers: Vec<OwnedFd>,
    opts: &'o WriteOptions,
    /// (st_dev, st_ino) of every multiply linked file written → its tar path.
    links: HashMap<(u64, u64), Vec<u8>>,
    files: u64,
    warnings: Vec<String>,
    /// Old names of renamed lower directories, by parent path, still to white out.
    renamed_from: BTreeMap<Rel, BTreeSet<OsString>>,
}

fn is_upper_whiteout(dir: BorrowedFd, name: &OsStr, st: &Stat, xattr_whiteouts: bool) -> bool {
    sys::is_whiteout_stat(st)
        || (xattr_whiteouts
            && sys::file_type(st.st_mode) == libc::S_IFREG
            && st.st_size == 0
            && is_xattr_whiteout(dir, name))
}

fn list(dir: BorrowedFd) -> io::Result<Vec<OsString>> {
    let fd = sys::open_dir_read(dir, Path::new(""))?;
    let mut names: Vec<OsString> = sys::read_dir_fd(fd.as_fd())?
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// The lower path a redirect names, seen from a directory whose parent's lower
/// path is `parent_lower`.
fn redirect_source(redirect: &Redirect, parent_lower: &[OsString]) -> Rel {
    match redirect {
        Redirect::Absolute(p) => p.iter().map(|c| c.to_os_string()).collect(),
        Redirect::Relative(name) => pushed(parent_lower, name),
    }
}

/// A file's own `overlay.redirect` (metacopy after a rename), in either namespace.
fn file_redirect(dir: BorrowedFd, name: &OsStr, parent_lower: &[OsString]) -> Option<Rel> {
    for attr in ["trusted.overlay.redirect", "user.overlay.redirect"] {
        if let Ok(Some(v)) = sys::xattr::get(dir, name, OsStr::new(attr)) {
            if v.is_empty() || v.contains(&0) {
                continue;
            }
            let comps: Vec<&[u8]> = v.split(|b| *b == b'/').filter(|c| !c.is_empty()).collect();
            if comps.iter().any(|c| *c == b".." || *c == b".") {
                continue;
            }
            let rel: Rel = comps
                .iter()
                .map(|c| OsStr::from_bytes(c).to_os_string())
                .collect();
            return Some(if v[0] == b'/' {
                rel
            } else {
                let mut p = parent_lower.to_vec();
                p.extend(rel);
                p
            });
        }
    }
    None
}

fn is_metacopy(dir: BorrowedFd, name: &OsStr) -> bool {
    ["trusted.overlay.metacopy", "user.overlay.metacopy"]
        .iter()
        .any(|a| matches!(sys::xattr::get(dir, name, OsStr::new(a)), Ok(Some(_))))
}

/// The directories that make `name` in the merged view of `dirs` (top first):
/// each lower's `name` while it is a directory, up to the first opaque one.
fn child_dirs(dirs: &[OwnedFd], name: &OsStr) -> io::Result<Vec<OwnedFd>> {
    let mut out = Vec::new();
    for d in dirs {
        match sys::stat_at_opt(d.as_fd(), name)? {
            None => continue,
            Some(st) if sys::is_dir(&st) => {
                out.push(sys::open_dir_path(d.as_fd(), Path::new(name))?);
                if dir_marks(d.as_fd(), name, false)?.opaque {
                    break;
                }
            }
            // A whiteout or a non-directory hides what is below it.
            Some(_) => break,
        }
    }
    Ok(out)
}

/// The visible object `name` in the merged view of `dirs`: which dir, its stat.
fn merged_find(dirs: &[OwnedFd], name: &OsStr) -> io::Result<Option<(usize, Stat)>> {
    for (i, d) in dirs.iter().enumerate() {
        if let Some(st) = sys::stat_at_opt(d.as_fd(), name)? {
            if sys::is_whiteout_stat(&st) {
                return Ok(None);
            }
            return Ok(Some((i, st)));
        }
    }
    Ok(None)
}

impl<W: Write> Writer<'_, W> {
    fn lower_dirs(&self, rel: &[OsString]) -> io::Result<Vec<OwnedFd>> {
        let mut dirs = self
            .lowers
            .iter()
            .map(|f| f.try_clone())
            .collect::<io::Result<Vec<_>>>()?;
        for comp in rel {
            if dirs.is_empty() {
                break;
            }
            dirs = child_dirs(&dirs, comp)?;
        }
        Ok(dirs)
    }

    /// Notes the old names of renamed lower directories that need a whiteout:
    /// those the upper has nothing at and the lowers do. Stops at redirected
    /// directories: inside one, the merged tree is written whole.
    fn find_renames(
        &mut self,
        dir: BorrowedFd,
        out: &[OsString],
        lower: &[OsString],
    ) -> Result<(), Error> {
        let names = list(dir).map_err(|e| Error::io(Some(&rel_string(out)), "list", e))?;
        for name in names {
            let child = pushed(out, &name);
            let st = sys::stat_at(dir, &name)
                .map_err(|e| Error::io(Some(&rel_string(&child)), "lstat", e))?;
            if !sys::is_dir(&st) {
                continue;
            }
            let marks = dir_marks(dir, &name, true)
                .map_err(|e| Error::io(Some(&rel_string(&child)), "read the overlay marks", e))?;
            match &marks.redirect {
                Some(redirect) => {
                    let source = redirect_source(redirect, lower);
                    if source.is_empty() || self.upper_has(&source)? {
                        continue;
                    }
                    let (parent, leaf) = source.split_at(source.len() - 1);
                    let in_lowers = merged_find(
                        &self.lower_dirs(parent).map_err(|e| {
                            Error::io(Some(&rel_string(&child)), "look up the redirect source", e)
                        })?,
                        &leaf[0],
                    )
                    .map_err(|e| {
                        Error::io(Some(&rel_string(&child)), "look up the redirect source", e)
                    })?
                    .is_some();
                    if in_lowers {
                        self.renamed_from
                            .entry(parent.to_vec())
                            .or_default()
                            .insert(leaf[0].clone());
                    }
                }
                None => {
                    let fd = sys::open_dir_path(dir, Path::new(&name))
                        .map_err(|e| Error::io(Some(&rel_string(&child)), "open", e))?;
                    self.find_renames(fd.as_fd(), &child, &pushed(lower, &name))?;
                }
            }
        }
        Ok(())
    }

    /// Whether the upper has any object at `rel` (never following a symlink).
    fn upper_has(&self, rel: &[OsString]) -> Result<bool, Error> {
        let Some((leaf, parent)) = rel.split_last() else {
            return Ok(true);
        };
        let mut dir = match self.upper.try_clone() {
            Ok(fd) => fd,
            Err(e) => return Err(Error::io(Some(&rel_string(rel)), "dup", e)),
        };
        for comp in parent {
            match sys::open_dir_path(dir.as_fd(), Path::new(comp)) {
                Ok(fd) => dir = fd,
                // Missing, or not a directory: nothing of the upper at `rel`.
                Err(_) => return Ok(false),
            }
        }
        sys::stat_at_opt(dir.as_fd(), leaf)
            .map(|st| st.is_some())
            .map_err(|e| Error::io(Some(&rel_string(rel)), "lstat", e))
    }

    /// The upper directory `dir` at tar path `out` (its lower path `lower`).
    fn walk_upper(
        &mut self,
        dir: BorrowedFd,
        out: &[OsString],
        lower: &[OsString],
        xattr_whiteouts: bool,
    ) -> Result<(), Error> {
        let prefix = rel_string_bytes(out);
        let mut names = list(dir).map_err(|e| Error::io(Some(&rel_string(out)), "list", e))?;
        // Old names of renamed directories in here, as whiteouts of their own.
        let extra: Vec<OsString> = self
            .renamed_from
            .remove(out)
            .map(|s| s.into_iter().filter(|n| !names.contains(n)).collect())
            .unwrap_or_default();
        let dir_st = sys::stat_at(dir, OsStr::new(""))
            .map_err(|e| Error::io(Some(&rel_string(out)), "lstat", e))?;
        names.extend(extra.iter().cloned());
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let child_out = pushed(out, &name);
            let shown = rel_string(&child_out);
            let tar_path = join(&prefix, name.as_bytes());
            if extra.contains(&name) {
                self.emit_whiteout(&prefix, &name, &dir_st)?;
                continue;
            }
            if name.as_bytes().starts_with(WH_PREFIX) {
                return Err(Error::at(
                    ErrorKind::Unsupported,
                    &shown,
                    "a name starting with .wh. can't be written to an OCI layer (it would read as a whiteout)",
                ));
            }
            let st = sys::stat_at(dir, &name).map_err(|e| Error::io(Some(&shown), "lstat", e))?;
            if is_upper_whiteout(dir, &name, &st, xattr_whiteouts) {
                self.emit_whiteout(&prefix, &name, &st)?;
                continue;
            }
            let child_lower = pushed(lower, &name);
            if !sys::is_dir(&st) {
                self.emit_upper_file(dir, &name, st, &tar_path, lower, &shown)?;
                continue;
            }
            let marks = dir_marks(dir, &name, true)
                .map_err(|e| Error::io(Some(&shown), "read the overlay marks", e))?;
            let fd = sys::open_dir_path(dir, Path::new(&name))
                .map_err(|e| Error::io(Some(&shown), "open", e))?;
            let mut dir_path = tar_path.clone();
            dir_path.push(b'/');
            self.emit(&dir_path, Source::new(dir, &name, st), None)?;
            match &marks.redirect {
                Some(redirect) => {
                    let source = redirect_source(redirect, lower);
                    let lowers = if marks.opaque {
                        Vec::new()
                    } else {
                        self.lower_dirs(&source).map_err(|e| {
                            Error::io(Some(&shown), "look up the redirect source", e)
                        })?
                    };
                    // Lower contents at the new name must not show through.
                    self.emit_opaque(&tar_path, &st)?;
                    self.walk_merged(
                        Some(fd.as_fd()),
                        marks.has_xattr_whiteouts,
                        &lowers,
                        &child_out,
                        &source,
                    )?;
                }
                None => {
                    if marks.opaque {
                        self.emit_opaque(&tar_path, &st)?;
                    }
                    self.walk_upper(
                        fd.as_fd(),
                        &child_out,
                        &child_lower,
                        marks.has_xattr_whiteouts,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The merged tree of `upper` (if any) over `lowers` at tar path `out`,
    /// whole: the directory above was written opaque.
    fn walk_merged(
        &mut self,
        upper: Option<BorrowedFd>,
        xattr_whiteouts: bool,
        lowers: &[OwnedFd],
        out: &[OsString],
        lower: &[OsString],
    ) -> Result<(), Error> {
        let prefix = rel_string_bytes(out);
        let shown_dir = rel_string(out);
        let mut names = BTreeSet::new();
        if let Some(u) = upper {
            names.extend(list(u).map_err(|e| Error::io(Some(&shown_dir), "list", e))?);
        }
        for d in lowers {
            names.extend(
                list(d.as_fd()).map_err(|e| Error::io(Some(&shown_dir), "list a lower", e))?,
            );
        }
        let mut names: Vec<OsString> = names.into_iter().collect();
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let child_out = pushed(out, &name);
            let shown = rel_string(&child_out);
            let tar_path = join(&prefix, name.as_bytes());
            let child_lower = pushed(lower, &name);
            let in_upper = match upper {
                Some(u) => sys::stat_at_opt(u, &name)
                    .map_err(|e| Error::io(Some(&shown), "lstat", e))?
                    .map(|st| (u, st)),
                None => None,
            };
            if let Some((u, st)) = in_upper {
                if is_upper_whiteout(u, &name, &st, xattr_whiteouts) {
                    continue;
                }
                if name.as_bytes().starts_with(WH_PREFIX) {
                    return Err(Error::at(
                        ErrorKind::Unsupported,
                        &shown,
                        "a name starting with .wh. can't be written to an OCI layer",
                    ));
                }
                if !sys::is_dir(&st) {
                    self.emit_upper_file(u, &name, st, &tar_path, lower, &shown)?;
                    continue;
                }
                let marks = dir_marks(u, &name, true)
                    .map_err(|e| Error::io(Some(&shown), "read the overlay marks", e))?;
                let (child_lowers, source) = if marks.opaque {
                    (Vec::new(), child_lower)
                } else if let Some(redirect) = &marks.redirect {
                    let source = redirect_source(redirect, lower);
                    let dirs = self
                        .lower_dirs(&source)
                        .map_err(|e| Error::io(Some(&shown), "look up the redirect source", e))?;
                    (dirs, source)
                } else {
                    let dirs = child_dirs(lowers, &name)
                        .map_err(|e| Error::io(Some(&shown), "look up the lowers", e))?;
                    (dirs, child_lower)
                };
                let fd = sys::open_dir_path(u, Path::new(&name))
                    .map_err(|e| Error::io(Some(&shown), "open", e))?;
                let mut dir_path = tar_path.clone();
                dir_path.push(b'/');
                self.emit(&dir_path, Source::new(u, &name, st), None)?;
                self.walk_merged(
                    Some(fd.as_fd()),
                    marks.has_xattr_whiteouts,
                    &child_lowers,
                    &child_out,
                    &source,
                )?;
                continue;
            }
            let Some((i, st)) = merged_find(lowers, &name)
                .map_err(|e| Error::io(Some(&shown), "look up the lowers", e))?
            else {
                continue;
            };
            let ldir = lowers[i].as_fd();
            if sys::is_dir(&st) {
                let child_lowers = child_dirs(lowers, &name)
                    .map_err(|e| Error::io(Some(&shown), "look up the lowers", e))?;
                let mut dir_path = tar_path.clone();
                dir_path.push(b'/');
                self.emit(&dir_path, Source::new(ldir, &name, st), None)?;
                self.walk_merged(None, false, &child_lowers, &child_out, &child_lower)?;
            } else {
                self.emit(&tar_path, Source::new(ldir, &name, st), None)?;
            }
        }
        Ok(())
    }

    /// A non-directory of the upper; a metacopy file's data comes from the lowers.
    fn emit_upper_file(
        &mut self,
        dir: BorrowedFd,
        name: &OsStr,
        st: Stat,
        tar_path: &[u8],
        lower: &[OsString],
        shown: &str,
    ) -> Result<(), Error> {
        if sys::file_type(st.st_mode) != libc::S_IFREG || !is_metacopy(dir, name) {
            return self.emit(tar_path, Source::new(dir, name, st), None);
        }
        let data_path = file_redirect(dir, name, lower).unwrap_or_else(|| pushed(lower, name));
        let missing = || {
            Error::at(
                ErrorKind::Corrupt,
                shown,
                format!(
                    "metacopy file: its data, {:?}, is not a regular file in the lowers",
                    rel_string(&data_path)
                ),
            )
        };
        let Some((leaf, parent)) = data_path.split_last() else {
            return Err(missing());
        };
        let dirs = self
            .lower_dirs(parent)
            .map_err(|e| Error::io(Some(shown), "look up the metacopy data", e))?;
        let Some((i, lst)) = merged_find(&dirs, leaf)
            .map_err(|e| Error::io(Some(shown), "look up the metacopy data", e))?
        else {
            return Err(missing());
        };
        if sys::file_type(lst.st_mode) != libc::S_IFREG {
            return Err(missing());
        }
        let data = sys::open_beneath_noatime(dirs[i].as_fd(), Path::new(leaf), libc::O_RDONLY, 0)
            .map_err(|e| Error::io(Some(shown), "open the metacopy data", e))?;
        let mut st = st;
        st.st_size = lst.st_size;
        self.emit(tar_path, Source::new(dir, name, st), Some(data))
    }

    fn emit_whiteout(&mut self, prefix: &[u8], name: &OsStr, st: &Stat) -> Result<(), Error> {
        let mut wh = WH_PREFIX.to_vec();
        wh.extend_from_slice(name.as_bytes());
        let path = join(prefix, &wh);
        self.emit_empty(&path, st)
    }

    fn emit_opaque(&mut self, dir_path: &[u8], st: &Stat) -> Result<(), Error> {
        let path = join(dir_path, WH_OPAQUE.as_bytes());
        self.emit_empty(&path, st)
    }

    /// An empty regular file owned by 0:0, mode 0644 (an OCI whiteout).
    fn emit_empty(&mut self, path: &[u8], st: &Stat) -> Result<(), Error> {
        let shown = lossy(path);
        let mut header = tar::Header::new_ustar();
        let mut pax = Vec::new();
        set_name(&mut header, &mut pax, path);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(0);
        set_mtime(&mut header, &mut pax, st);
        self.append(&shown, header, pax, io::empty())
    }

    /// One object as a tar entry; `data` overrides where a file's data is read.
    fn emit(&mut self, tar_path: &[u8], src: Source, data: Option<OwnedFd>) -> Result<(), Error> {
        let shown = lossy(tar_path);
        let st = &src.st;
        let kind = sys::file_type(st.st_mode);
        let mut header = tar::Header::new_ustar();
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        set_name(&mut header, &mut pax, tar_path);
        let (uid, gid, mode) = self.owner_mode(&src, kind);
        header.set_uid(uid as u64);
        header.set_gid(gid as u64);
        header.set_mode(mode);
        header.set_size(0);
        set_mtime(&mut header, &mut pax, st);

        if kind != libc::S_IFDIR && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key).cloned() {
                header.set_entry_type(tar::EntryType::Link);
                set_link_name(&mut header, &mut pax, &first);
                return self.append(&shown, header, pax, io::empty());
            }
            self.links.insert(key, tar_path.to_vec());
        }
        self.xattrs(&src, kind, &shown, &mut pax)?;
        match kind {
            libc::S_IFDIR => header.set_entry_type(tar::EntryType::Directory),
            libc::S_IFLNK => {
                header.set_entry_type(tar::EntryType::Symlink);
                let target = sys::readlink_at(src.dir, src.name)
                    .map_err(|e| Error::io(Some(&shown), "readlink", e))?;
                set_link_name(&mut header, &mut pax, target.as_bytes());
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                header.set_entry_type(match kind {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                });
                if kind != libc::S_IFIFO {
                    let set = header
                        .set_device_major(libc::major(st.st_rdev))
                        .and_then(|()| header.set_device_minor(libc::minor(st.st_rdev)));
                    set.map_err(|e| Error::io(Some(&shown), "device numbers", e))?;
                }
            }
            libc::S_IFREG => {
                header.set_entry_type(tar::EntryType::Regular);
                let size = st.st_size as u64;
                header.set_size(size);
                let fd = match data {
                    Some(fd) => fd,
                    None => {
                        sys::open_beneath_noatime(src.dir, Path::new(src.name), libc::O_RDONLY, 0)
                            .map_err(|e| Error::io(Some(&shown), "open", e))?
                    }
                };
                let reader = Exact {
                    file: std::fs::File::from(fd),
                    left: size,
                };
                return self.append(&shown, header, pax, reader);
            }
            _ => {
                self.warnings.push(format!(
                    "entry {shown:?}: a socket can't be in a tar; left out"
                ));
                return Ok(());
            }
        }
        self.append(&shown, header, pax, io::empty())
    }

    fn append(
        &mut self,
        shown: &str,
        mut header: tar::Header,
        pax: Vec<(String, Vec<u8>)>,
        data: impl Read,
    ) -> Result<(), Error> {
        self.builder
            .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(|e| Error::io(Some(shown), "write the PAX header", e))?;
        header.set_cksum();
        self.builder
            .append(&header, data)
            .map_err(|e| Error::io(Some(shown), "write", e))?;
        self.files += 1;
        Ok(())
    }

    /// The owner and mode the image gets: the object's, or with recorded
    /// ownership its override xattr's (0:0 and the disk mode without one).
    fn owner_mode(&self, src: &Source, kind: u32) -> (u32, u32, u32) {
        let st = &src.st;
        match self.opts.ownership {
            Ownership::Real => (st.st_uid, st.st_gid, st.st_mode & 0o7777),
            Ownership::Recorded => {
                if kind == libc::S_IFREG || kind == libc::S_IFDIR {
                    for attr in [CONTAINERS, USER] {
                        if let Ok(Some(v)) = sys::xattr::get(src.dir, src.name, OsStr::new(attr)) {
                            if let Some(o) = Override::parse(&v) {
                                return (o.uid, o.gid, o.mode);
                            }
                        }
                    }
                }
                (0, 0, st.st_mode & 0o7777)
            }
        }
    }

    /// The object's own xattrs as `SCHILY.xattr.*`, bookkeeping left out.
    fn xattrs(
        &mut self,
        src: &Source,
        kind: u32,
        shown: &str,
        pax: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<(), Error> {
        if kind != libc::S_IFREG && kind != libc::S_IFDIR && kind != libc::S_IFLNK {
            return Ok(());
        }
        let mut names = sys::xattr::list(src.dir, src.name)
            .map_err(|e| Error::io(Some(shown), "list xattrs", e))?;
        names.sort();
        for attr in names {
            if is_bookkeeping_xattr(&attr) {
                continue;
            }
            let Ok(text) = std::str::from_utf8(&attr) else {
                self.warnings.push(format!(
                    "entry {shown:?}: xattr {} left out (its name is not UTF-8)",
                    lossy(&attr)
                ));
                continue;
            };
            let value = sys::xattr::get(src.dir, src.name, OsStr::new(text))
                .map_err(|e| Error::io(Some(shown), &format!("read xattr {text}"), e))?;
            if let Some(value) = value {
                pax.push((format!("SCHILY.xattr.{text}"), value));
            }
        }
        Ok(())
    }
}

fn rel_string_bytes(rel: &[OsString]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, c) in rel.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(c.as_bytes());
    }
    out
}

/// The name field, or a PAX `path` when it does not fit.
fn set_name(header: &mut tar::Header, pax: &mut Vec<(String, Vec<u8>)>, path: &[u8]) {
    let field = &mut header.as_old_mut().name;
    if path.len() > field.len() {
        pax.push(("path".into(), path.to_vec()));
    }
    let n = path.len().min(field.len());
    field[..n].copy_from_slice(&path[..n]);
}

/// The link name field, or a PAX `linkpath` when it does not fit.
fn set_link_name(header: &mut tar::Header, pax: &mut Vec<(String, Vec<u8>)>, target: &[u8]) {
    let field = &mut header.as_old_mut().linkname;
    if target.len() > field.len() {
        pax.push(("linkpath".into(), target.to_vec()));
    }
    let n = target.len().min(field.len());
    field[..n].copy_from_slice(&target[..n]);
}

/// Seconds in the header; a PAX `mtime` when there are nanoseconds or the
/// time is before 1970.
fn set_mtime(header: &mut tar::Header, pax: &mut Vec<(String, Vec<u8>)>, st: &Stat) {
    let (sec, nsec) = (st.st_mtime, st.st_mtime_nsec);
    header.set_mtime(sec.max(0) as u64);
    if nsec != 0 || sec < 0 {
        pax.push(("mtime".into(), format!("{sec}.{nsec:09}").into_bytes()));
    }
}

/// A file's data, exactly `left` bytes: a file that shrank while being read
/// is an error, not a short entry that would corrupt the archive.
struct Exact {
    file: std::fs::File,
    left: u64,
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let len = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..len])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while being written",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
