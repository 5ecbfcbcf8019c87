//! The store on disk. Everything in it is either complete or in `staging/`:
//!
//! ```text
//! STORE/
//!   lock                    flock: held exclusive while image records change
//!   gc.lock                 flock: shared while a command adds to the store,
//!                           exclusive while prune looks for what is unused
//!   blobs/sha256/HEX        the original blobs (manifests, configs, compressed layers),
//!                           kept so that push and export give the same bytes and digests
//!   blobs/partial/HEX       interrupted downloads, resumed with Range by the next pull
//!   layers/HEX/             a layer unpacked (HEX = its diff_id): a lowerdir as it is
//!   layers/HEX.lock         flock: exclusive while the layer is unpacked or removed,
//!                           shared while a container runs on it
//!   images/ID.json          one image (ID = the config digest, as podman names images)
//!   staging/NAME            what a command is writing; NAME.lock is held while it does,
//!                           and whatever has no live holder is removed by the next command
//! ```
//!
//! Crash-safety comes from that shape: a blob, a layer and an image record each appear
//! by one rename(2) once complete, an image record only after its layers, and a killed
//! command leaves only `staging/` entries that nobody holds.

use super::archive::{self, Marks, Ownership};
use super::digest::{Algorithm, Digest, HashingReader};
use serde::{Deserialize, Serialize};
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// A store error: one line that names the image, blob or path and the reason.
#[derive(Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub msg: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such image.
    NotFound,
    /// The input is wrong: a bad name, a digest mismatch, a corrupt archive.
    Invalid,
    /// The store's filesystem is full.
    NoSpace,
    /// Something else failed in the system.
    Io,
}

impl Error {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Error {
        Error {
            kind,
            msg: msg.into(),
        }
    }
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::Invalid, msg)
    }
    pub fn io(what: impl fmt::Display, e: io::Error) -> Error {
        let kind = if e.raw_os_error() == Some(libc::ENOSPC) {
            ErrorKind::NoSpace
        } else {
            ErrorKind::Io
        };
        Error::new(kind, format!("{what}: {}", describe(&e)))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl From<archive::Error> for Error {
    fn from(e: archive::Error) -> Error {
        let kind = match e.kind() {
            archive::ErrorKind::NoSpace => ErrorKind::NoSpace,
            archive::ErrorKind::Io => ErrorKind::Io,
            _ => ErrorKind::Invalid,
        };
        // The layer directory it names is a staging path: the caller names the blob.
        let msg = match e.entry() {
            Some(entry) => format!("entry {entry:?}: {}", e.reason()),
            None => e.reason().to_string(),
        };
        Error::new(kind, msg)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// An errno as a short phrase (`io::Error`'s Display adds "(os error N)").
fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => "no space left on device".into(),
        Some(libc::EACCES) => "permission denied".into(),
        Some(libc::ENOENT) => "does not exist".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

/// One layer of an image, bottom first in `ImageRecord::layers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRef {
    /// The layer blob as the manifest names it (compressed or not).
    pub blob: Digest,
    pub media_type: String,
    pub size: u64,
    /// The sha256 of the uncompressed tar: the layer directory's name.
    pub diff_id: Digest,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config blob's digest: the image id.
    pub id: Digest,
    /// Full names (`HOST:PORT/NAME:TAG`, `localhost/app:2`), as podman names images.
    pub names: Vec<String>,
    /// The manifest blob (kept byte for byte).
    pub manifest: Digest,
    pub manifest_media_type: String,
    /// Layers, bottom first.
    pub layers: Vec<LayerRef>,
    /// The config's `created`, if it has one.
    pub created: Option<String>,
    /// Where it came from: a reference pulled, an archive imported, a commit.
    pub source: String,
}

impl ImageRecord {
    /// Total size of the layer blobs.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

/// Normalizes an image name as podman does: a name without a registry gets
/// `localhost/`, a name without tag or digest gets `:latest`.
pub fn normalize_name(name: &str) -> Result<String> {
    let bad = |why: &str| Error::invalid(format!("image name {name:?}: {why}"));
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(bad("contains a space or a control character"));
    }
    let (path, suffix) = match name.find('@') {
        Some(i) => (&name[..i], &name[i..]),
        None => {
            // A tag is after the last ':' that follows the last '/'.
            let slash = name.rfind('/').map_or(0, |i| i + 1);
            match name[slash..].rfind(':') {
                Some(i) => (&name[..slash + i], &name[slash + i..]),
                None => (name, ":latest"),
            }
        }
    };
    if let Some(d) = suffix.strip_prefix('@') {
        d.parse::<Digest>().map_err(|e| bad(&e))?;
    } else {
        let tag = &suffix[1..];
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && !tag.starts_with(['.', '-']);
        if !tag_ok {
            return Err(bad("invalid tag"));
        }
    }
    let comps: Vec<&str> = path.split('/').collect();
    if comps.iter().any(|c| c.is_empty()) {
        return Err(bad("empty path component"));
    }
    let first = comps[0];
    let has_registry =
        comps.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost");
    let repo_comps = if has_registry {
        &comps[1..]
    } else {
        &comps[..]
    };
    for c in repo_comps {
        let ok = c
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && c.as_bytes()[0].is_ascii_alphanumeric();
        if !ok {
            return Err(bad(
                "a repository name is lower-case letters, digits and . _ - separated by /",
            ));
        }
    }
    let path = if has_registry {
        path.to_string()
    } else {
        format!("localhost/{path}")
    };
    Ok(format!("{path}{suffix}"))
}

pub struct Store {
    root: PathBuf,
    /// How layers are written here: root keeps real owners and trusted.overlay.*
    /// marks; an ordinary user records owners in override_stat and uses user.overlay.*.
    pub marks: Marks,
    pub ownership: Ownership,
}

/// A staging entry: removed on drop unless it was committed (renamed away).
pub struct Staged {
    path: PathBuf,
    lock_path: PathBuf,
    _lock: File,
}

impl Staged {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = remove_any(&self.path);
        let _ = fs::remove_file(&self.lock_path);
    }
}

/// Removes a file or a whole tree; gone already is fine.
fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            make_writable(p);
            fs::remove_dir_all(p)
        }
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Adds u+rwx to every directory below `p`, so that an ordinary user can remove a
/// layer whose image had read-only directories.
fn make_writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in walkdir::WalkDir::new(p).into_iter().flatten() {
        if entry.file_type().is_dir() {
            if let Ok(m) = entry.metadata() {
                let mode = m.permissions().mode();
                if mode & 0o700 != 0o700 {
                    let _ =
                        fs::set_permissions(entry.path(), fs::Permissions::from_mode(mode | 0o700));
                }
            }
        }
    }
}

impl Store {
    /// The default store: `STRATA_STORE`, else `/var/lib/strata` for root, else
    /// `$XDG_DATA_HOME/strata` (default `~/.local/share/strata`).
    pub fn default_root() -> Option<PathBuf> {
        if let Some(s) = std::env::var_os("STRATA_STORE").filter(|s| !s.is_empty()) {
            return Some(PathBuf::from(s));
        }
        if crate::sys::geteuid() == 0 {
            return Some(PathBuf::from("/var/lib/strata"));
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|s| !s.is_empty()) {
            return Some(PathBuf::from(x).join("strata"));
        }
        std::env::var_os("HOME")
            .filter(|s| !s.is_empty())
            .map(|h| PathBuf::from(h).join(".local/share/strata"))
    }

    /// Opens (creating if needed) the store at `root`, checks that its filesystem
    /// holds the xattrs layers need, and removes what killed commands left.
    pub fn open(root: &Path) -> Result<Store> {
        Store::open_with(root, true)
    }

    /// Opens the store at `root` for a command that only reads or removes: a store
    /// that does not exist is not made, and is empty.
    pub fn open_existing(root: &Path) -> Result<Store> {
        Store::open_with(root, false)
    }

    fn open_with(root: &Path, create: bool) -> Result<Store> {
        let rootless = crate::sys::geteuid() != 0;
        let store = Store {
            root: root.to_path_buf(),
            marks: if rootless {
                Marks::User
            } else {
                Marks::Trusted
            },
            ownership: if rootless {
                Ownership::Recorded
            } else {
                Ownership::Real
            },
        };
        match fs::metadata(root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(store),
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(Error::io(format!("store {}", root.display()), e))
            }
            _ => {}
        }
        for d in [
            "blobs/sha256",
            "blobs/partial",
            "layers",
            "images",
            "staging",
        ] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|e| Error::io(format!("store {}", p.display()), e))?;
        }
        // Layers keep their images' modes, world-writable directories (/tmp) among
        // them: no other user may reach into them (containers-storage keeps its
        // layers 0700 too).
        for d in ["blobs", "layers", "staging"] {
            use std::os::unix::fs::PermissionsExt;
            let p = root.join(d);
            let private = fs::metadata(&p).is_ok_and(|m| m.permissions().mode() & 0o077 == 0);
            if !private {
                fs::set_permissions(&p, fs::Permissions::from_mode(0o700))
                    .map_err(|e| Error::io(format!("store {}", p.display()), e))?;
            }
        }
        store.check_xattrs()?;
        store.clean_staging();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whiteouts, opaque marks and (rootless) owners are xattrs: a store on a
    /// filesystem without them would unpack layers that mount wrong.
    fn check_xattrs(&self) -> Result<()> {
        let name = match self.marks {
            Marks::Trusted => "trusted.overlay.strata-probe",
            Marks::User => "user.overlay.strata-probe",
        };
        let staged = self.stage("xattr-probe")?;
        fs::create_dir(&staged.path).map_err(|e| Error::io(staged.path.display(), e))?;
        let dir = File::open(&staged.path).map_err(|e| Error::io(staged.path.display(), e))?;
        crate::sys::xattr::set(dir.as_fd(), OsStr::new(""), OsStr::new(name), b"y", 0).map_err(
            |e| {
                Error::new(
                    ErrorKind::Io,
                    format!(
                        "store {}: its filesystem cannot hold {} xattrs, which layers need: {}",
                        self.root.display(),
                        name.split('.').next().unwrap_or(""),
                        describe(&e)
                    ),
                )
            },
        )?;
        Ok(())
    }

    /// Removes staging entries whose lock nobody holds (their command was killed).
    fn clean_staging(&self) {
        let dir = self.root.join("staging");
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
                continue;
            };
            let lock_path = e.path();
            let Ok(f) = File::open(&lock_path) else {
                continue;
            };
            if f.try_lock().is_ok() {
                log::info!("store: removing {stem}, left by a command that was killed");
                let _ = remove_any(&dir.join(stem));
                let _ = fs::remove_file(&lock_path);
            }
        }
        // Entries without a lock file: the command died between creating the two.
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                let p = e.path();
                let is_lock = p.extension().is_some_and(|x| x == "lock");
                if !is_lock && !lock_of(&p).exists() {
                    let _ = remove_any(&p);
                }
            }
        }
    }

    /// A fresh staging path, locked for as long as the returned value lives.
    pub fn stage(&self, what: &str) -> Result<Staged> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{what}.{}.{n}", std::process::id());
        let path = self.root.join("staging").join(&name);
        let lock_path = lock_of(&path);
        let lock = loop {
            let lock = open_lock(&lock_path)?;
            lock.lock().map_err(|e| Error::io(lock_path.display(), e))?;
            // Another command's cleanup may have removed the file between open and
            // lock (it saw it unheld): a lock on an unlinked file protects nothing.
            if same_file(&lock, &lock_path) {
                break lock;
            }
        };
        // A leftover of a killed command with the same pid and counter.
        let _ = remove_any(&path);
        Ok(Staged {
            path,
            lock_path,
            _lock: lock,
        })
    }

    /// Holds the store's lock for image records (exclusive) while it lives.
    pub fn lock_records(&self) -> Result<File> {
        self.lock_file("lock", false)
    }

    /// Held (shared) by a command that adds to the store (import, pull, commit) for its
    /// whole length, and exclusive by `prune`: blobs and layers stored but not yet
    /// named by an image record are never taken for unused ones.
    pub fn lock_adding(&self) -> Result<File> {
        self.lock_file("gc.lock", true)
    }

    fn lock_file(&self, name: &str, shared: bool) -> Result<File> {
        let p = self.root.join(name);
        let f = open_lock(&p)?;
        if shared { f.lock_shared() } else { f.lock() }.map_err(|e| Error::io(p.display(), e))?;
        Ok(f)
    }

    // ---- blobs ----

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// Where an interrupted download of `d` is kept for the next pull to resume.
    pub fn partial_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/partial").join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        fs::read(self.blob_path(d)).map_err(|e| Error::io(format!("blob {d}"), e))
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        File::open(self.blob_path(d)).map_err(|e| Error::io(format!("blob {d}"), e))
    }

    /// Stores `bytes` as a blob; returns its digest.
    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let d = Digest::of(bytes);
        if !self.has_blob(&d) {
            self.put_blob(&d, &mut &bytes[..])?;
        }
        Ok(d)
    }

    /// Copies `src` into the store as the blob `expected`, checking the digest; a
    /// mismatch stores nothing. Returns the size.
    pub fn put_blob(&self, expected: &Digest, src: &mut dyn Read) -> Result<u64> {
        let staged = self.stage("blob")?;
        let mut out = File::create(&staged.path)
            .map_err(|e| Error::io(format!("blob {expected}: staging"), e))?;
        let mut hashing = HashingReader::new(src, expected.algorithm());
        io::copy(&mut hashing, &mut out).map_err(|e| Error::io(format!("blob {expected}"), e))?;
        let (got, size) = hashing.finish();
        if &got != expected {
            return Err(Error::invalid(format!(
                "blob {expected}: content has digest {got} ({size} bytes)"
            )));
        }
        self.commit_blob(staged, out, expected)?;
        Ok(size)
    }

    /// Copies `src` into the store as a blob of whatever digest it has.
    pub fn put_blob_any(&self, src: &mut dyn Read) -> Result<(Digest, u64)> {
        let staged = self.stage("blob")?;
        let mut out =
            File::create(&staged.path).map_err(|e| Error::io(staged.path.display(), e))?;
        let mut hashing = HashingReader::new(src, Algorithm::Sha256);
        io::copy(&mut hashing, &mut out).map_err(|e| Error::io("blob", e))?;
        let (d, size) = hashing.finish();
        if self.has_blob(&d) {
            return Ok((d, size));
        }
        self.commit_blob(staged, out, &d)?;
        Ok((d, size))
    }

    /// Moves a downloaded file (already checked against `d`) into the store.
    pub fn adopt_blob(&self, file: &Path, d: &Digest) -> Result<()> {
        let target = self.blob_path(d);
        fs::rename(file, &target).map_err(|e| Error::io(format!("blob {d}"), e))
    }

    fn commit_blob(&self, staged: Staged, out: File, d: &Digest) -> Result<()> {
        if d.algorithm() != Algorithm::Sha256 {
            return Err(Error::invalid(format!(
                "blob {d}: only sha256 blobs are stored"
            )));
        }
        out.sync_all()
            .map_err(|e| Error::io(format!("blob {d}"), e))?;
        fs::rename(&staged.path, self.blob_path(d))
            .map_err(|e| Error::io(format!("blob {d}"), e))?;
        Ok(())
    }

    // ---- layers ----

    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_path(diff_id).is_dir()
    }

    fn layer_lock(&self, diff_id: &Digest) -> Result<File> {
        open_lock(&lock_of(&self.layer_path(diff_id)))
    }

    /// The lock file of a blob being downloaded (beside its partial file).
    pub fn blob_lock(&self, d: &Digest) -> Result<File> {
        open_lock(&lock_of(&self.partial_path(d)))
    }

    /// Unpacks the stored blob `blob` into `layers/DIFF_ID` unless a layer of that
    /// diff_id is there already. With `expected`, the content must have that diff_id;
    /// without, the diff_id is what unpacking computes. Two commands unpacking the
    /// same layer at once: the second waits on the layer's lock, then finds it done.
    /// Returns the diff_id and the unpacker's warnings.
    pub fn add_layer(
        &self,
        blob: &Digest,
        expected: Option<&Digest>,
        max_size: u64,
    ) -> Result<(Digest, Vec<String>)> {
        let _held = match expected {
            Some(d) => {
                if self.has_layer(d) {
                    return Ok((d.clone(), Vec::new()));
                }
                let lock = self.layer_lock(d)?;
                lock.lock()
                    .map_err(|e| Error::io(format!("layer {d}"), e))?;
                if self.has_layer(d) {
                    return Ok((d.clone(), Vec::new()));
                }
                Some(lock)
            }
            None => None,
        };
        let staged = self.stage("layer")?;
        fs::create_dir(&staged.path).map_err(|e| Error::io(staged.path.display(), e))?;
        let file = self.open_blob(blob)?;
        let opts = archive::UnpackOptions {
            marks: self.marks,
            ownership: self.ownership,
            max_size,
        };
        let unpacked = archive::unpack(io::BufReader::new(file), &staged.path, &opts)
            .map_err(|e| Error::from(e).context(&format!("layer {blob}")))?;
        if let Some(d) = expected {
            if &unpacked.diff_id != d {
                return Err(Error::invalid(format!(
                    "layer {blob}: uncompressed content has digest {}, the image config says {d}",
                    unpacked.diff_id
                )));
            }
        }
        let diff_id = unpacked.diff_id.clone();
        let _late_lock = match expected {
            Some(_) => None,
            None => {
                let lock = self.layer_lock(&diff_id)?;
                lock.lock()
                    .map_err(|e| Error::io(format!("layer {diff_id}"), e))?;
                if self.has_layer(&diff_id) {
                    return Ok((diff_id, unpacked.warnings));
                }
                Some(lock)
            }
        };
        sync_tree(&staged.path);
        fs::rename(&staged.path, self.layer_path(&diff_id))
            .map_err(|e| Error::io(format!("layer {diff_id}"), e))?;
        log::info!("store: layer {diff_id} unpacked ({} files)", unpacked.files);
        Ok((diff_id, unpacked.warnings))
    }

    /// Takes a shared lock on each layer for as long as the returned files live:
    /// `image rm` and `prune` leave a layer alone while a container runs on it.
    pub fn hold_layers(&self, layers: &[LayerRef]) -> Result<Vec<File>> {
        let mut held = Vec::new();
        for l in layers {
            let f = self.layer_lock(&l.diff_id)?;
            f.lock_shared()
                .map_err(|e| Error::io(format!("layer {}", l.diff_id), e))?;
            held.push(f);
        }
        Ok(held)
    }

    /// Removes a layer unless a container holds it; returns whether it was removed.
    fn remove_layer(&self, diff_id: &Digest) -> Result<bool> {
        let path = self.layer_path(diff_id);
        if !path.exists() {
            return Ok(false);
        }
        let lock = self.layer_lock(diff_id)?;
        if lock.try_lock().is_err() {
            log::info!("store: layer {diff_id} is in use, kept");
            return Ok(false);
        }
        // One rename takes it out of use; the tree is then deleted from staging.
        let staged = self.stage("removed")?;
        fs::rename(&path, &staged.path).map_err(|e| Error::io(format!("layer {diff_id}"), e))?;
        drop(staged);
        let _ = fs::remove_file(lock_of(&path));
        Ok(true)
    }

    // ---- images ----

    fn record_path(&self, id: &Digest) -> PathBuf {
        self.root.join("images").join(format!("{}.json", id.hex()))
    }

    /// Every image, oldest record first.
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            // A store never made (`open_existing`) holds no image.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(dir.display(), e)),
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let bytes = fs::read(&p).map_err(|e| Error::io(p.display(), e))?;
            let rec: ImageRecord = serde_json::from_slice(&bytes)
                .map_err(|e| Error::invalid(format!("image record {}: {e}", p.display())))?;
            let mtime = e.metadata().and_then(|m| m.modified()).ok();
            out.push((mtime, rec));
        }
        out.sort_by_key(|a| a.0);
        Ok(out.into_iter().map(|(_, r)| r).collect())
    }

    /// The image called `name`: a full or local name, or an id (or its first 12+ hex
    /// digits).
    pub fn image(&self, name: &str) -> Result<ImageRecord> {
        let images = self.images()?;
        let hexish = name.strip_prefix("sha256:").unwrap_or(name);
        if hexish.len() >= 12 && hexish.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Some(r) = images.iter().find(|r| r.id.hex().starts_with(hexish)) {
                return Ok(r.clone());
            }
        }
        let full = normalize_name(name).ok();
        images
            .into_iter()
            .find(|r| {
                r.names
                    .iter()
                    .any(|n| n == name || Some(n) == full.as_ref())
            })
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("image {name}: not in the store"),
                )
            })
    }

    /// Records an image (its layers are already stored), giving it `name`; the name
    /// moves off any other image that had it, as podman's tags do.
    pub fn put_image(&self, mut rec: ImageRecord, name: Option<&str>) -> Result<ImageRecord> {
        let _lock = self.lock_records()?;
        for l in &rec.layers {
            if !self.has_layer(&l.diff_id) {
                return Err(Error::invalid(format!(
                    "image {}: layer {} is not stored",
                    rec.id, l.diff_id
                )));
            }
        }
        if let Ok(old) = self.read_record(&rec.id) {
            for n in old.names {
                if !rec.names.contains(&n) {
                    rec.names.push(n);
                }
            }
        }
        if let Some(name) = name {
            let name = normalize_name(name)?;
            self.take_name(&name, &rec.id)?;
            if !rec.names.contains(&name) {
                rec.names.push(name);
            }
        }
        self.write_record(&rec)?;
        Ok(rec)
    }

    fn read_record(&self, id: &Digest) -> Result<ImageRecord> {
        let p = self.record_path(id);
        let bytes = fs::read(&p).map_err(|e| Error::io(p.display(), e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid(format!("image record {}: {e}", p.display())))
    }

    fn write_record(&self, rec: &ImageRecord) -> Result<()> {
        let staged = self.stage("record")?;
        let bytes = serde_json::to_vec_pretty(rec)
            .map_err(|e| Error::invalid(format!("image {}: {e}", rec.id)))?;
        let mut f = File::create(&staged.path).map_err(|e| Error::io(staged.path.display(), e))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io(format!("image {}", rec.id), e))?;
        fs::rename(&staged.path, self.record_path(&rec.id))
            .map_err(|e| Error::io(format!("image {}", rec.id), e))
    }

    /// Removes `name` from every image but `keep` (under the records lock).
    fn take_name(&self, name: &str, keep: &Digest) -> Result<()> {
        for mut other in self.images()? {
            if &other.id != keep && other.names.iter().any(|n| n == name) {
                other.names.retain(|n| n != name);
                self.write_record(&other)?;
            }
        }
        Ok(())
    }

    /// `image tag`: adds `new_name` to the image `name`.
    pub fn tag(&self, name: &str, new_name: &str) -> Result<ImageRecord> {
        let rec = self.image(name)?;
        self.put_image(rec, Some(new_name))
    }

    /// `image rm`: removes a name (or, given an id or the last name, the image), then
    /// the layers that no image uses and no container holds. Returns the removed
    /// image id if the image is gone.
    pub fn remove(&self, name: &str) -> Result<Option<Digest>> {
        let rec = self.image(name)?;
        let gone = {
            let _lock = self.lock_records()?;
            let full = normalize_name(name).ok();
            let by_name: Vec<String> = rec
                .names
                .iter()
                .filter(|n| *n == name || Some(*n) == full.as_ref())
                .cloned()
                .collect();
            if !by_name.is_empty() && rec.names.len() > by_name.len() {
                let mut kept = rec.clone();
                kept.names.retain(|n| !by_name.contains(n));
                self.write_record(&kept)?;
                false
            } else {
                let p = self.record_path(&rec.id);
                fs::remove_file(&p).map_err(|e| Error::io(p.display(), e))?;
                true
            }
        };
        if gone {
            self.prune()?;
            Ok(Some(rec.id))
        } else {
            Ok(None)
        }
    }

    /// Removes layers that no image uses (kept while a container holds them),
    /// blobs that no image names, and interrupted downloads. Returns the number
    /// of layers removed.
    pub fn prune(&self) -> Result<usize> {
        if !self.root.join("layers").exists() {
            return Ok(0); // a store never made (`open_existing`)
        }
        // Waits for the commands that are adding to the store (their partial
        // downloads included) to finish.
        let _adding = self.lock_file("gc.lock", false)?;
        let _lock = self.lock_records()?;
        let images = self.images()?;
        let mut used_layers = std::collections::HashSet::new();
        let mut used_blobs = std::collections::HashSet::new();
        for r in &images {
            used_blobs.insert(r.manifest.hex().to_string());
            used_blobs.insert(r.id.hex().to_string());
            for l in &r.layers {
                used_layers.insert(l.diff_id.hex().to_string());
                used_blobs.insert(l.blob.hex().to_string());
            }
        }
        let mut removed = 0;
        let layers = self.root.join("layers");
        for e in fs::read_dir(&layers)
            .map_err(|e| Error::io(layers.display(), e))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".lock") || used_layers.contains(&name) {
                continue;
            }
            let Ok(d) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            if self.remove_layer(&d)? {
                removed += 1;
            }
        }
        for sub in ["blobs/sha256", "blobs/partial"] {
            let dir = self.root.join(sub);
            for e in fs::read_dir(&dir)
                .map_err(|e| Error::io(dir.display(), e))?
                .flatten()
            {
                let name = e.file_name().to_string_lossy().to_string();
                if sub == "blobs/partial" || !used_blobs.contains(&name) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(removed)
    }

    /// The image's layer directories, top first: the union's lowerdirs.
    pub fn lowerdirs(&self, rec: &ImageRecord) -> Vec<PathBuf> {
        rec.layers
            .iter()
            .rev()
            .map(|l| self.layer_path(&l.diff_id))
            .collect()
    }
}

impl Error {
    /// Prefixes the message with what was being done.
    pub fn context(mut self, what: &str) -> Error {
        if !self.msg.starts_with(what) {
            self.msg = format!("{what}: {}", self.msg);
        }
        self
    }
}

/// Whether the open `f` is still the file at `p`.
fn same_file(f: &File, p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs::metadata(p)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Opens (creating) a file that is only ever flock'ed.
fn open_lock(p: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p)
        .map_err(|e| Error::io(p.display(), e))
}

fn lock_of(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(".lock");
    PathBuf::from(s)
}

/// Flushes an unpacked layer to disk before it is renamed into place, so that a
/// crash never leaves a named layer with missing data (syncfs of its filesystem).
fn sync_tree(p: &Path) {
    if let Ok(f) = File::open(p) {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid fd.
        unsafe { libc::syncfs(f.as_raw_fd()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_as_podman_does() {
        let n = |s: &str| normalize_name(s).unwrap();
        assert_eq!(n("app"), "localhost/app:latest");
        assert_eq!(n("local/app:2"), "localhost/local/app:2");
        assert_eq!(n("127.0.0.1:5000/busybox"), "127.0.0.1:5000/busybox:latest");
        assert_eq!(n("localhost/x:1"), "localhost/x:1");
        assert_eq!(n("example.com/a/b:v1.2"), "example.com/a/b:v1.2");
        for bad in ["", "App", "a b", "a//b", "a:", "a:-x", "a@sha256:12"] {
            assert!(normalize_name(bad).is_err(), "{bad}");
        }
    }
}
