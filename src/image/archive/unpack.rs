//! An OCI layer blob into an empty directory, in kernel-overlayfs format.
//!
//! Every object is reached from the layer root's fd one component at a time
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (`sys::open_dir_path`)
//! and made with an `*at()` call on a single name that never follows a
//! symlink, so no entry can land outside the layer. Directories are never
//! removed or replaced once made (see the decisions in `archive`), which is
//! what makes caching the last parent's fd safe.

use super::stream::{self, Limited};
use super::{is_bookkeeping_xattr, lossy, Error, ErrorKind, Ownership, UnpackOptions, Unpacked};
use crate::image::digest::{Algorithm, HashingReader};
use crate::sys::{self, Stat};
use crate::union::override_stat::{Override, CONTAINERS};
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io::{self, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::rc::Rc;

const PATH_MAX: usize = 4096;
const NAME_MAX: usize = 255;
const WH_PREFIX: &[u8] = b".wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";
/// Holes are made at this granularity: a block of zeros is not written.
const HOLE_BLOCK: usize = 4096;
/// How deep `Layer::dir` keeps parent directories open (a bound on its fds).
const PARENT_FDS: usize = 64;

/// Unpacks `blob` (gzip, zstd or plain tar) into `dest`, an existing empty
/// directory. On any error `dest` holds a partial layer the caller deletes
/// (every directory in it stays writable by the caller).
pub fn unpack(blob: impl Read, dest: &Path, opts: &UnpackOptions) -> Result<Unpacked, Error> {
    unpack_inner(blob, dest, opts).map_err(|e| e.in_layer(dest))
}

fn unpack_inner(blob: impl Read, dest: &Path, opts: &UnpackOptions) -> Result<Unpacked, Error> {
    let root = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dest)
        .map_err(|e| Error::io(None, "open the layer directory", e))?;
    let root = OwnedFd::from(root);
    let listing = sys::open_dir_read(root.as_fd(), Path::new(""))
        .and_then(|d| sys::read_dir_fd(d.as_fd()))
        .map_err(|e| Error::io(None, "list the layer directory", e))?;
    if !listing.is_empty() {
        return Err(Error::new(
            ErrorKind::Io,
            None,
            "the layer directory is not empty",
        ));
    }

    let mut raw = HashingReader::new(blob, Algorithm::Sha256);
    let mut layer = Layer::new(root, opts);
    let (compression, diff_id, size) = {
        let mut buffered = BufReader::with_capacity(64 * 1024, &mut raw);
        let head = stream::peek(&mut buffered, 4)
            .map_err(|e| Error::new(ErrorKind::Corrupt, None, format!("read the blob: {e}")))?;
        let (compression, decoded) = stream::decoder(head, buffered).map_err(|e| {
            Error::new(
                ErrorKind::Corrupt,
                None,
                format!("start decompressing: {e}"),
            )
        })?;
        let mut tar_stream = Limited {
            inner: HashingReader::new(decoded, Algorithm::Sha256),
            limit: opts.max_size,
            count: 0,
            hit: false,
        };
        let applied = layer.apply_all(&mut tar_stream).and_then(|()| {
            // The end-of-archive blocks and padding belong to the diff_id too.
            io::copy(&mut tar_stream, &mut io::sink())
                .map(drop)
                .map_err(|e| Error::new(ErrorKind::Corrupt, None, format!("read the tar: {e}")))
        });
        if tar_stream.hit {
            return Err(Error::new(
                ErrorKind::TooLarge,
                layer.last_entry.clone(),
                format!(
                    "the layer expands past the limit of {} bytes (max_size)",
                    opts.max_size
                ),
            ));
        }
        applied?;
        let (diff_id, size) = tar_stream.inner.finish();
        (compression, diff_id, size)
    };
    // Whatever follows the compressed stream is part of the blob's digest.
    io::copy(&mut raw, &mut io::sink())
        .map_err(|e| Error::new(ErrorKind::Corrupt, None, format!("read the blob: {e}")))?;
    let (compressed_digest, compressed_size) = raw.finish();
    layer.finish()?;
    Ok(Unpacked {
        diff_id,
        compressed_digest,
        compressed_size,
        compression,
        size,
        files: layer.files,
        warnings: layer.warnings,
    })
}

/// A path inside the layer, as components (empty: the root).
type Rel = Vec<OsString>;

fn rel_string(rel: &[OsString]) -> String {
    let parts: Vec<String> = rel.iter().map(|c| lossy(c.as_bytes())).collect();
    parts.join("/")
}

/// The components of an archive name, or why it is refused. Leading slashes
/// and `.` components are dropped; the root is the empty list.
fn components(raw: &[u8]) -> Result<Rel, (ErrorKind, String)> {
    if raw.contains(&0) {
        return Err((ErrorKind::Hostile, "the name contains a NUL byte".into()));
    }
    if raw.len() >= PATH_MAX {
        return Err((
            ErrorKind::Hostile,
            format!(
                "the name is {} bytes, over PATH_MAX ({PATH_MAX})",
                raw.len()
            ),
        ));
    }
    let mut rel = Vec::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                return Err((ErrorKind::Hostile, "the name has a `..` component".into()));
            }
            c if c.len() > NAME_MAX => {
                return Err((
                    ErrorKind::Hostile,
                    format!(
                        "a component is {} bytes, over NAME_MAX ({NAME_MAX})",
                        c.len()
                    ),
                ));
            }
            c => rel.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    Ok(rel)
}

/// Owner, mode, time and xattrs of one entry, as the archive gives them.
struct Meta {
    uid: u32,
    gid: u32,
    /// Permission and set-id bits.
    mode: u32,
    mtime: libc::timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Layer<'o> {
    root: Rc<OwnedFd>,
    opts: &'o UnpackOptions,
    warnings: Vec<String>,
    /// Whiteouts made from `.wh.` entries, to refuse an entry of the same name.
    whiteouts: HashSet<Rel>,
    /// Directory mtimes, set once all entries are in.
    dir_times: Vec<(Rel, libc::timespec)>,
    /// The directories of the last parent path reached: `parent_fds[i]` is
    /// `parent_path[..=i]` (at most `PARENT_FDS` deep). A tar lists a directory,
    /// then what is in it, so the next parent shares most of this path: only the
    /// components past the common prefix are walked. Sound because a directory,
    /// once made, is never removed or replaced within a layer.
    parent_path: Rel,
    parent_fds: Vec<Rc<OwnedFd>>,
    /// Sum of the apparent sizes of regular files.
    apparent: u64,
    files: u64,
    root_recorded: bool,
    last_entry: Option<String>,
    buf: Vec<u8>,
}

impl<'o> Layer<'o> {
    fn new(root: OwnedFd, opts: &'o UnpackOptions) -> Layer<'o> {
        Layer {
            root: Rc::new(root),
            opts,
            warnings: Vec::new(),
            whiteouts: HashSet::new(),
            dir_times: Vec::new(),
            parent_path: Vec::new(),
            parent_fds: Vec::new(),
            apparent: 0,
            files: 0,
            root_recorded: false,
            last_entry: None,
            buf: vec![0u8; 256 * 1024],
        }
    }

    fn apply_all<R: Read>(&mut self, tar_stream: R) -> Result<(), Error> {
        let mut archive = tar::Archive::new(tar_stream);
        let entries = archive
            .entries()
            .map_err(|e| Error::new(ErrorKind::Corrupt, None, format!("read the tar: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| {
                let after = match &self.last_entry {
                    Some(name) => format!(" after entry {name:?}"),
                    None => String::new(),
                };
                Error::new(
                    ErrorKind::Corrupt,
                    None,
                    format!("read the tar{after}: {e}"),
                )
            })?;
            self.apply(entry)?;
        }
        Ok(())
    }

    fn apply<R: Read>(&mut self, mut entry: tar::Entry<R>) -> Result<(), Error> {
        let raw_name = entry.path_bytes().into_owned();
        let name = lossy(&raw_name);
        self.last_entry = Some(name.clone());
        let etype = entry.header().entry_type();
        if etype.is_pax_global_extensions() {
            log::debug!("skipping a PAX global header at {name:?}");
            return Ok(());
        }
        let mut xattrs = Vec::new();
        let mut pax_mtime = None;
        if let Some(exts) = entry
            .pax_extensions()
            .map_err(|e| Error::at(ErrorKind::Corrupt, &name, format!("PAX header: {e}")))?
        {
            for ext in exts {
                let ext = ext.map_err(|e| {
                    Error::at(ErrorKind::Corrupt, &name, format!("PAX header: {e}"))
                })?;
                let key = ext.key_bytes();
                if let Some(attr) = key.strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((attr.to_vec(), ext.value_bytes().to_vec()));
                } else if key.starts_with(b"GNU.sparse.") {
                    return Err(Error::at(
                        ErrorKind::Unsupported,
                        &name,
                        "PAX sparse files (GNU.sparse.*) are not supported",
                    ));
                } else if key == b"mtime" {
                    pax_mtime = parse_pax_time(ext.value_bytes());
                }
            }
        }
        let rel = components(&raw_name).map_err(|(k, why)| Error::at(k, &name, why))?;
        let header = entry.header();
        let field = |r: io::Result<u64>, what: &str| -> Result<u64, Error> {
            r.map_err(|e| Error::at(ErrorKind::Corrupt, &name, format!("header {what}: {e}")))
        };
        let id = |v: u64, what: &str| -> Result<u32, Error> {
            // u32::MAX is chown's "leave it": never an owner.
            u32::try_from(v)
                .ok()
                .filter(|v| *v != u32::MAX)
                .ok_or_else(|| {
                    Error::at(
                        ErrorKind::Corrupt,
                        &name,
                        format!("{what} {v} is out of range"),
                    )
                })
        };
        let uid = id(field(header.uid(), "uid")?, "uid")?;
        let gid = id(field(header.gid(), "gid")?, "gid")?;
        let mode = header
            .mode()
            .map_err(|e| Error::at(ErrorKind::Corrupt, &name, format!("header mode: {e}")))?
            & 0o7777;
        let secs = field(header.mtime(), "mtime")?;
        let mtime = pax_mtime.unwrap_or(sys::timespec(secs.min(i64::MAX as u64) as i64, 0));
        let meta = Meta {
            uid,
            gid,
            mode,
            mtime,
            xattrs,
        };

        if let Some(last) = rel.last() {
            let last = last.as_bytes();
            if rel[..rel.len() - 1]
                .iter()
                .any(|c| c.as_bytes().starts_with(WH_PREFIX))
            {
                return Err(Error::at(
                    ErrorKind::Corrupt,
                    &name,
                    "a whiteout name used as a directory",
                ));
            }
            if last == WH_OPAQUE {
                self.files += 1;
                return self.make_opaque(&rel[..rel.len() - 1], &name);
            }
            if last.starts_with(b".wh..wh.") {
                self.warnings
                    .push(format!("entry {name:?}: skipped aufs metadata"));
                return Ok(());
            }
            if let Some(target) = last.strip_prefix(WH_PREFIX) {
                if target.is_empty() || target == b"." || target == b".." {
                    return Err(Error::at(
                        ErrorKind::Corrupt,
                        &name,
                        "a whiteout of no name",
                    ));
                }
                let mut hidden = rel[..rel.len() - 1].to_vec();
                hidden.push(OsStr::from_bytes(target).to_os_string());
                self.files += 1;
                return self.make_whiteout(hidden, &name);
            }
        }

        let is_dir = etype.is_dir() || (etype.is_file() && raw_name.ends_with(b"/"));
        if rel.is_empty() {
            if !is_dir {
                return Err(Error::at(
                    ErrorKind::Hostile,
                    &name,
                    "a non-directory at the layer root",
                ));
            }
            self.files += 1;
            let root = self.root.clone();
            self.set_meta(
                root.as_fd(),
                OsStr::new(""),
                libc::S_IFDIR,
                &meta,
                &rel,
                &name,
            )?;
            self.root_recorded |= self.opts.ownership == Ownership::Recorded;
            return Ok(());
        }
        if self.whiteouts.contains(&rel) {
            return Err(Error::at(
                ErrorKind::Corrupt,
                &name,
                "the layer has both this entry and a whiteout of it",
            ));
        }
        let parent = self.dir(&rel[..rel.len() - 1], &name)?;
        let leaf = rel[rel.len() - 1].as_os_str();
        let existing = sys::stat_at_opt(parent.as_fd(), leaf)
            .map_err(|e| Error::io(Some(&name), "lstat", e))?;

        if is_dir {
            match existing {
                None => sys::mkdir_at(parent.as_fd(), leaf, 0o700)
                    .map_err(|e| Error::io(Some(&name), "mkdir", e))?,
                Some(st) if sys::is_dir(&st) => {}
                Some(_) => {
                    return Err(Error::at(
                        ErrorKind::Hostile,
                        &name,
                        "a directory replaces a non-directory of the same name",
                    ))
                }
            }
            self.files += 1;
            return self.set_meta(parent.as_fd(), leaf, libc::S_IFDIR, &meta, &rel, &name);
        }

        if let Some(st) = &existing {
            if sys::is_dir(st) {
                return Err(Error::at(
                    ErrorKind::Hostile,
                    &name,
                    "a non-directory replaces a directory of the same name",
                ));
            }
        }
        use tar::EntryType as T;
        match etype {
            T::Link => {
                self.files += 1;
                return self.hard_link(&entry, parent.as_fd(), leaf, existing.as_ref(), &name);
            }
            T::Char | T::Block if self.opts.ownership == Ownership::Recorded => {
                self.warnings
                    .push(format!("entry {name:?}: skipped a device node (rootless)"));
                return Ok(());
            }
            T::Regular
            | T::Continuous
            | T::GNUSparse
            | T::Symlink
            | T::Char
            | T::Block
            | T::Fifo => {}
            other => {
                self.warnings.push(format!(
                    "entry {name:?}: skipped an entry of tar type {:?}",
                    other.as_byte() as char
                ));
                return Ok(());
            }
        }
        if existing.is_some() {
            sys::unlink_at(parent.as_fd(), leaf, false)
                .map_err(|e| Error::io(Some(&name), "remove the entry it replaces", e))?;
        }
        self.files += 1;
        let kind = match etype {
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if target.is_empty() || target.contains(&0) || target.len() >= PATH_MAX {
                    return Err(Error::at(
                        ErrorKind::Corrupt,
                        &name,
                        "a symlink target that is empty, has a NUL byte or is over PATH_MAX",
                    ));
                }
                sys::symlink_at(OsStr::from_bytes(&target), parent.as_fd(), leaf)
                    .map_err(|e| Error::io(Some(&name), "symlink", e))?;
                libc::S_IFLNK
            }
            T::Char | T::Block | T::Fifo => {
                let kind = match etype {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let dev = |r: io::Result<Option<u32>>| r.ok().flatten().unwrap_or(0);
                let rdev = if kind == libc::S_IFIFO {
                    0
                } else {
                    libc::makedev(dev(header_major(&entry)), dev(header_minor(&entry)))
                };
                sys::mknod_at(parent.as_fd(), leaf, kind | 0o600, rdev)
                    .map_err(|e| Error::io(Some(&name), "mknod", e))?;
                kind
            }
            _ => {
                self.write_file(&mut entry, parent.as_fd(), leaf, &name)?;
                libc::S_IFREG
            }
        };
        self.set_meta(parent.as_fd(), leaf, kind, &meta, &rel, &name)
    }

    /// The directory `rel`, made (0755, like tar) where missing, never through
    /// anything but a directory.
    fn dir(&mut self, rel: &[OsString], name: &str) -> Result<Rc<OwnedFd>, Error> {
        let common = rel
            .iter()
            .zip(&self.parent_path)
            .take_while(|(a, b)| a == b)
            .count();
        let at = |fds: &[Rc<OwnedFd>], root: &Rc<OwnedFd>, n: usize| {
            if n == 0 {
                root.clone()
            } else {
                fds[n - 1].clone()
            }
        };
        if common == rel.len() {
            return Ok(at(&self.parent_fds, &self.root, common));
        }
        self.parent_path.truncate(common);
        self.parent_fds.truncate(common);
        let mut cur = at(&self.parent_fds, &self.root, common);
        for (i, comp) in rel.iter().enumerate().skip(common) {
            let next = match sys::open_dir_path(cur.as_fd(), Path::new(comp)) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if self.whiteouts.contains(&rel[..=i]) {
                        return Err(Error::at(ErrorKind::Corrupt, name, "below a whiteout"));
                    }
                    sys::mkdir_at(cur.as_fd(), comp, 0o755)
                        .and_then(|()| sys::chmod_at(cur.as_fd(), comp, 0o755))
                        .and_then(|()| sys::open_dir_path(cur.as_fd(), Path::new(comp)))
                        .map_err(|e| {
                            Error::io(
                                Some(name),
                                &format!("make the parent directory {:?}", rel_string(&rel[..=i])),
                                e,
                            )
                        })?
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                    let st = sys::stat_at(cur.as_fd(), comp)
                        .map_err(|e| Error::io(Some(name), "lstat a parent", e))?;
                    let (kind, what) = match sys::file_type(st.st_mode) {
                        libc::S_IFLNK => (ErrorKind::Hostile, "a symlink"),
                        _ if sys::is_whiteout_stat(&st) => (ErrorKind::Corrupt, "a whiteout"),
                        _ => (ErrorKind::Corrupt, "a non-directory"),
                    };
                    return Err(Error::at(
                        kind,
                        name,
                        format!("the path goes through {what}, {:?}", rel_string(&rel[..=i])),
                    ));
                }
                Err(e) => return Err(Error::io(Some(name), "open a parent directory", e)),
            };
            cur = Rc::new(next);
            if self.parent_fds.len() == i && i < PARENT_FDS {
                self.parent_path.push(comp.clone());
                self.parent_fds.push(cur.clone());
            }
        }
        Ok(cur)
    }

    fn make_whiteout(&mut self, hidden: Rel, name: &str) -> Result<(), Error> {
        let parent = self.dir(&hidden[..hidden.len() - 1], name)?;
        let leaf = hidden[hidden.len() - 1].as_os_str();
        match sys::stat_at_opt(parent.as_fd(), leaf)
            .map_err(|e| Error::io(Some(name), "lstat", e))?
        {
            None => {}
            Some(_) if self.whiteouts.contains(&hidden) => return Ok(()),
            Some(_) => {
                return Err(Error::at(
                    ErrorKind::Corrupt,
                    name,
                    format!(
                        "the layer has both a whiteout and an entry {:?}",
                        rel_string(&hidden)
                    ),
                ))
            }
        }
        sys::mknod_at(parent.as_fd(), leaf, libc::S_IFCHR, 0)
            .map_err(|e| Error::io(Some(name), "make the whiteout (mknod 0/0)", e))?;
        self.whiteouts.insert(hidden);
        Ok(())
    }

    fn make_opaque(&mut self, dir: &[OsString], name: &str) -> Result<(), Error> {
        let (parent, leaf) = if dir.is_empty() {
            (self.root.clone(), OsString::new())
        } else {
            let parent = self.dir(&dir[..dir.len() - 1], name)?;
            let leaf = dir[dir.len() - 1].clone();
            match sys::stat_at_opt(parent.as_fd(), &leaf)
                .map_err(|e| Error::io(Some(name), "lstat", e))?
            {
                Some(st) if sys::is_dir(&st) => {}
                Some(st) => {
                    let kind = if sys::file_type(st.st_mode) == libc::S_IFLNK {
                        ErrorKind::Hostile
                    } else {
                        ErrorKind::Corrupt
                    };
                    return Err(Error::at(
                        kind,
                        name,
                        "an opaque marker below a non-directory",
                    ));
                }
                None => {
                    // The marker may come before its directory: make it now.
                    self.dir(dir, name)?;
                }
            }
            (parent, leaf)
        };
        let attr = self.opts.marks.opaque_xattr();
        sys::xattr::set(parent.as_fd(), &leaf, OsStr::new(attr), b"y", 0)
            .map_err(|e| Error::io(Some(name), &format!("set {attr}"), e))
    }

    fn hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<R>,
        parent: BorrowedFd,
        leaf: &OsStr,
        existing: Option<&Stat>,
        name: &str,
    ) -> Result<(), Error> {
        let raw_target = entry
            .link_name_bytes()
            .map(|t| t.into_owned())
            .ok_or_else(|| Error::at(ErrorKind::Corrupt, name, "a hard link without a target"))?;
        let shown = lossy(&raw_target);
        let target = components(&raw_target)
            .map_err(|(k, why)| Error::at(k, name, format!("hard link target {shown:?}: {why}")))?;
        if target.is_empty() {
            return Err(Error::at(
                ErrorKind::Hostile,
                name,
                "a hard link to the layer root",
            ));
        }
        let not_in_layer = || {
            Error::at(
                ErrorKind::Corrupt,
                name,
                format!("hard link target {shown:?} is not in the layer (before this entry)"),
            )
        };
        // Reach the target without making anything and without following.
        let mut tdir = self.root.clone();
        for comp in &target[..target.len() - 1] {
            tdir = match sys::open_dir_path(tdir.as_fd(), Path::new(comp)) {
                Ok(fd) => Rc::new(fd),
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                    return Err(Error::at(
                        ErrorKind::Hostile,
                        name,
                        format!(
                            "hard link target {shown:?} goes through a symlink or non-directory"
                        ),
                    ))
                }
                Err(_) => return Err(not_in_layer()),
            };
        }
        let tleaf = target[target.len() - 1].as_os_str();
        let tst = match sys::stat_at_opt(tdir.as_fd(), tleaf) {
            Ok(Some(st)) => st,
            _ => return Err(not_in_layer()),
        };
        if sys::is_dir(&tst) {
            return Err(Error::at(
                ErrorKind::Corrupt,
                name,
                format!("hard link target {shown:?} is a directory"),
            ));
        }
        if self.whiteouts.contains(&target) {
            return Err(Error::at(
                ErrorKind::Corrupt,
                name,
                format!("hard link target {shown:?} is a whiteout"),
            ));
        }
        if let Some(st) = existing {
            if st.st_ino == tst.st_ino && st.st_dev == tst.st_dev {
                return Ok(());
            }
            sys::unlink_at(parent, leaf, false)
                .map_err(|e| Error::io(Some(name), "remove the entry it replaces", e))?;
        }
        // linkat without AT_SYMLINK_FOLLOW: a symlink target is linked itself.
        sys::link_at(tdir.as_fd(), tleaf, parent, leaf)
            .map_err(|e| Error::io(Some(name), &format!("link to {shown:?}"), e))
    }

    fn write_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        parent: BorrowedFd,
        leaf: &OsStr,
        name: &str,
    ) -> Result<(), Error> {
        let size = entry.size();
        self.apparent = self.apparent.saturating_add(size);
        if self.apparent > self.opts.max_size {
            return Err(Error::at(
                ErrorKind::TooLarge,
                name,
                format!(
                    "the layer's files expand past the limit of {} bytes (max_size)",
                    self.opts.max_size
                ),
            ));
        }
        let fd = sys::open_beneath(
            parent,
            Path::new(leaf),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o600,
        )
        .map_err(|e| Error::io(Some(name), "create", e))?;
        let mut off: u64 = 0;
        // Whether the file's last byte was written (else it ends in a hole, and
        // only ftruncate gives it its size).
        let mut tail_written = true;
        loop {
            let n = read_full(entry, &mut self.buf)
                .map_err(|e| Error::at(ErrorKind::Corrupt, name, format!("read the data: {e}")))?;
            if n == 0 {
                break;
            }
            tail_written = write_with_holes(fd.as_fd(), &self.buf[..n], off)
                .map_err(|e| Error::io(Some(name), "write", e))?;
            off += n as u64;
        }
        if off != size {
            return Err(Error::at(
                ErrorKind::Corrupt,
                name,
                format!("the data ends after {off} of {size} bytes"),
            ));
        }
        if tail_written {
            return Ok(());
        }
        sys::ftruncate(fd.as_fd(), size).map_err(|e| Error::io(Some(name), "truncate", e))
    }

    /// Owner, mode, xattrs and (for non-directories) mtime, in the order that
    /// keeps them: chown clears set-id bits and security.capability.
    fn set_meta(
        &mut self,
        parent: BorrowedFd,
        leaf: &OsStr,
        kind: u32,
        meta: &Meta,
        rel: &[OsString],
        name: &str,
    ) -> Result<(), Error> {
        let is_root = leaf.is_empty();
        let keeps_xattrs = kind == libc::S_IFREG || kind == libc::S_IFDIR;
        match self.opts.ownership {
            Ownership::Real => {
                let r = if is_root {
                    sys::chown_o_path(parent, meta.uid, meta.gid)
                } else {
                    sys::chown_at(parent, leaf, meta.uid, meta.gid)
                };
                r.map_err(|e| Error::io(Some(name), "chown", e))?;
                if kind != libc::S_IFLNK {
                    sys::chmod_at(parent, leaf, meta.mode)
                        .map_err(|e| Error::io(Some(name), "chmod", e))?;
                }
            }
            Ownership::Recorded => {
                let disk = disk_mode(kind, meta.mode);
                if kind != libc::S_IFLNK {
                    sys::chmod_at(parent, leaf, disk)
                        .map_err(|e| Error::io(Some(name), "chmod", e))?;
                }
                if keeps_xattrs {
                    let needed = is_root || meta.uid != 0 || meta.gid != 0 || disk != meta.mode;
                    let attr = OsStr::new(CONTAINERS);
                    if needed {
                        let o = Override {
                            uid: meta.uid,
                            gid: meta.gid,
                            mode: meta.mode,
                        };
                        sys::xattr::set(parent, leaf, attr, &o.format(), 0)
                            .map_err(|e| Error::io(Some(name), &format!("set {CONTAINERS}"), e))?;
                    } else if kind == libc::S_IFDIR {
                        // A directory named twice: the first entry's record goes.
                        match sys::xattr::remove(parent, leaf, attr) {
                            Err(e) if e.raw_os_error() != Some(libc::ENODATA) => {
                                return Err(Error::io(
                                    Some(name),
                                    &format!("remove {CONTAINERS}"),
                                    e,
                                ))
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        for (attr, value) in &meta.xattrs {
            let shown = lossy(attr);
            if is_bookkeeping_xattr(attr) {
                self.warnings.push(format!(
                    "entry {name:?}: dropped xattr {shown} (overlay/ownership bookkeeping)"
                ));
                continue;
            }
            if self.opts.ownership == Ownership::Recorded {
                if !attr.starts_with(b"user.") {
                    self.warnings.push(format!(
                        "entry {name:?}: skipped xattr {shown} (rootless: user.* only)"
                    ));
                    continue;
                }
                if !keeps_xattrs {
                    self.warnings.push(format!(
                        "entry {name:?}: skipped xattr {shown} (user.* only on files and directories)"
                    ));
                    continue;
                }
            }
            if attr.is_empty() || attr.contains(&0) {
                return Err(Error::at(
                    ErrorKind::Corrupt,
                    name,
                    "an xattr name that is empty or has a NUL byte",
                ));
            }
            if let Err(e) = sys::xattr::set(parent, leaf, OsStr::from_bytes(attr), value, 0) {
                let err = Error::io(Some(name), &format!("set xattr {shown}"), e);
                if err.kind() == ErrorKind::NoSpace {
                    return Err(err);
                }
                self.warnings.push(err.to_string());
            }
        }
        if kind == libc::S_IFDIR {
            self.dir_times.push((rel.to_vec(), meta.mtime));
            return Ok(());
        }
        sys::utimens_at(parent, leaf, Some(meta.mtime), Some(meta.mtime))
            .map_err(|e| Error::io(Some(name), "set the mtime", e))
    }

    /// Directory mtimes, deepest first, and the override marker on the root.
    fn finish(&mut self) -> Result<(), Error> {
        let mut times = std::mem::take(&mut self.dir_times);
        times.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.len()));
        for (rel, mtime) in times {
            let name = rel_string(&rel);
            let r = if rel.is_empty() {
                sys::utimens_o_path(self.root.as_fd(), Some(mtime), Some(mtime))
            } else {
                let parent = self.dir(&rel[..rel.len() - 1], &name)?;
                sys::utimens_at(
                    parent.as_fd(),
                    &rel[rel.len() - 1],
                    Some(mtime),
                    Some(mtime),
                )
            };
            r.map_err(|e| Error::io(Some(&name), "set the mtime", e))?;
        }
        if self.opts.ownership == Ownership::Recorded && !self.root_recorded {
            let o = Override {
                uid: 0,
                gid: 0,
                mode: 0o755,
            };
            sys::xattr::set(
                self.root.as_fd(),
                OsStr::new(""),
                OsStr::new(CONTAINERS),
                &o.format(),
                0,
            )
            .map_err(|e| Error::io(Some(""), &format!("set {CONTAINERS} on the root"), e))?;
        }
        Ok(())
    }
}

/// The mode on disk for a recorded-ownership object: the owner may always
/// read, write and search; a regular file never setuid/setgid.
fn disk_mode(kind: u32, mode: u32) -> u32 {
    match kind {
        libc::S_IFREG => (mode | 0o600) & !(libc::S_ISUID | libc::S_ISGID),
        libc::S_IFDIR => mode | 0o700,
        _ => mode,
    }
}

fn header_major<R: Read>(entry: &tar::Entry<R>) -> io::Result<Option<u32>> {
    entry.header().device_major()
}

fn header_minor<R: Read>(entry: &tar::Entry<R>) -> io::Result<Option<u32>> {
    entry.header().device_minor()
}

/// `SECONDS[.FRACTION]` of a PAX time.
fn parse_pax_time(v: &[u8]) -> Option<libc::timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nsec: i64 = digits.parse().ok()?;
    // A negative time with a fraction counts the fraction towards zero.
    Some(if sec < 0 && nsec > 0 {
        sys::timespec(sec - 1, 1_000_000_000 - nsec)
    } else {
        sys::timespec(sec, nsec)
    })
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Writes `data` at `off`, leaving blocks of zeros as holes (the caller sets
/// the size at the end unless this returns true: `data`'s last byte was written).
fn write_with_holes(fd: BorrowedFd, data: &[u8], off: u64) -> io::Result<bool> {
    let mut tail_written = false;
    let mut start = 0;
    while start < data.len() {
        let is_zero = |i: usize| {
            let end = (i + HOLE_BLOCK).min(data.len());
            data[i..end].iter().all(|b| *b == 0)
        };
        if is_zero(start) {
            start += HOLE_BLOCK;
            continue;
        }
        let mut end = start + HOLE_BLOCK;
        while end < data.len() && !is_zero(end) {
            end += HOLE_BLOCK;
        }
        let end = end.min(data.len());
        let mut done = start;
        while done < end {
            let n = sys::pwrite(fd, &data[done..end], off + done as u64)?;
            if n == 0 {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            done += n;
        }
        tail_written = end == data.len();
        start = end;
    }
    Ok(tail_written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_components_or_are_refused() {
        let c = |s: &[u8]| components(s).map(|r| rel_string(&r));
        assert_eq!(c(b"./a/b/").unwrap(), "a/b");
        assert_eq!(c(b"/etc/x").unwrap(), "etc/x");
        assert_eq!(c(b"./").unwrap(), "");
        assert_eq!(c(b"a/../../x").unwrap_err().0, ErrorKind::Hostile);
        assert_eq!(c(b"a/..").unwrap_err().0, ErrorKind::Hostile);
        assert_eq!(c(b"a\0b").unwrap_err().0, ErrorKind::Hostile);
        assert_eq!(c(&[b'x'; 256]).unwrap_err().0, ErrorKind::Hostile);
        assert!(c(&[b'x'; 255]).is_ok());
        let long: Vec<u8> = std::iter::repeat_n(b"abcdefg/".as_slice(), 512)
            .flatten()
            .copied()
            .collect();
        assert_eq!(c(&long).unwrap_err().0, ErrorKind::Hostile);
    }

    #[test]
    fn pax_times_parse() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1700000000, 500_000_000));
        let t = parse_pax_time(b"12").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (12, 0));
        assert!(parse_pax_time(b"x").is_none());
        assert!(parse_pax_time(b"1.2x").is_none());
    }

    #[test]
    fn recorded_disk_modes() {
        assert_eq!(disk_mode(libc::S_IFREG, 0o4755), 0o755);
        assert_eq!(disk_mode(libc::S_IFREG, 0o400), 0o600);
        assert_eq!(disk_mode(libc::S_IFDIR, 0o555), 0o755);
        assert_eq!(disk_mode(libc::S_IFDIR, 0o1777), 0o1777);
    }
}
