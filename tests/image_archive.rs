//! Integration tests for `image::archive`: real tar streams (the `tar` crate's
//! Builder, raw headers for the hostile cases; plain, gzip and zstd), unpacked
//! into real directories and checked with lstat/readlink/xattr reads; layers
//! written from uppers made by kernel overlayfs and mounted again by it.
//!
//! Needs root (chown, mknod, trusted xattrs, kernel overlay mounts) and the
//! test user strata-u1 for the rootless cases, which run in a forked child
//! with that user's credentials.

mod support;

#[path = "image_archive/hostile.rs"]
mod hostile;
#[path = "image_archive/rootless.rs"]
mod rootless;
#[path = "image_archive/unpacking.rs"]
mod unpacking;
#[path = "image_archive/writing.rs"]
mod writing;

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use strata::image::archive::{self, Compression, Error, UnpackOptions, Unpacked};
use strata::image::digest::Digest;
use support::TestDir;

pub const SUITE: &str = "image_archive";

/// A tar stream under construction, with raw-header helpers for hostile names.
pub struct Tar {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Tar {
    fn default() -> Tar {
        Tar::new()
    }
}

impl Tar {
    pub fn new() -> Tar {
        Tar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    /// A header of `kind` with `name` written raw into the name field (up to
    /// 100 bytes; longer names go through `pax`).
    fn header(name: &[u8], kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        let field = &mut h.as_old_mut().name;
        let n = name.len().min(field.len());
        field[..n].copy_from_slice(&name[..n]);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(size);
        h
    }

    pub fn raw(
        &mut self,
        name: &[u8],
        kind: tar::EntryType,
        mode: u32,
        link: &[u8],
        data: &[u8],
    ) -> &mut Tar {
        let mut h = Tar::header(name, kind, mode, data.len() as u64);
        if !link.is_empty() {
            let field = &mut h.as_old_mut().linkname;
            field[..link.len()].copy_from_slice(link);
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    /// An entry with owner, mode and mtime of its own.
    pub fn entry(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        mode: u32,
        owner: (u64, u64),
        mtime: u64,
        data: &[u8],
    ) -> &mut Tar {
        let mut h = Tar::header(name.as_bytes(), kind, mode, data.len() as u64);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_mtime(mtime);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Tar {
        self.raw(name.as_bytes(), tar::EntryType::Regular, mode, b"", data)
    }
    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Tar {
        self.raw(name.as_bytes(), tar::EntryType::Directory, mode, b"", b"")
    }
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Tar {
        self.raw(
            name.as_bytes(),
            tar::EntryType::Symlink,
            0o777,
            target.as_bytes(),
            b"",
        )
    }
    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Tar {
        self.raw(
            name.as_bytes(),
            tar::EntryType::Link,
            0o644,
            target.as_bytes(),
            b"",
        )
    }
    pub fn device(&mut self, name: &str, kind: tar::EntryType, major: u32, minor: u32) -> &mut Tar {
        let mut h = Tar::header(name.as_bytes(), kind, 0o660, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.b.append(&h, &b""[..]).unwrap();
        self
    }
    /// PAX records for the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Tar {
        self.b
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }
    /// A name through the tar crate's own long-name handling (GNU longname).
    pub fn gnu_long_file(&mut self, name: &str, data: &[u8]) -> &mut Tar {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_600_000_000);
        self.b.append_data(&mut h, name, data).unwrap();
        self
    }
    /// A GNU sparse file of `real_size` bytes: `blocks` (offset, data) of 512 bytes each.
    pub fn sparse(&mut self, name: &str, real_size: u64, blocks: &[(u64, [u8; 512])]) -> &mut Tar {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_size(512 * blocks.len() as u64);
        let gnu = h.as_gnu_mut().unwrap();
        for (i, (off, _)) in blocks.iter().enumerate() {
            gnu.sparse[i].set_offset(*off);
            gnu.sparse[i].set_length(512);
        }
        // The trailing hole: an empty block at the real size.
        gnu.sparse[blocks.len()].set_offset(real_size);
        gnu.sparse[blocks.len()].set_length(0);
        gnu.set_real_size(real_size);
        h.set_cksum();
        let data: Vec<u8> = blocks.iter().flat_map(|(_, d)| d.iter().copied()).collect();
        self.b.append(&h, &data[..]).unwrap();
        self
    }
    pub fn bytes(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 1).unwrap()
}

pub fn compress(data: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => data.to_vec(),
        Compression::Gzip => gzip(data),
        Compression::Zstd => zstd(data),
    }
}

/// A test directory with an empty `layer` and, beside it, a `sentinel` tree
/// that no archive may change.
pub struct Scene {
    pub dir: TestDir,
    pub dest: PathBuf,
    pub sentinel: PathBuf,
    before: support::Tree,
}

impl Default for Scene {
    fn default() -> Scene {
        Scene::new()
    }
}

impl Scene {
    pub fn new() -> Scene {
        let dir = TestDir::tagged("archive");
        let dest = dir.dir("layer");
        let sentinel = dir.dir("sentinel");
        support::write(sentinel.join("file"), "sentinel data");
        support::mkdirs(sentinel.join("sub"));
        support::write(sentinel.join("sub/inner"), "inner");
        let before = support::snapshot(&sentinel);
        Scene {
            dir,
            dest,
            sentinel,
            before,
        }
    }

    pub fn unpack(&self, blob: &[u8], opts: &UnpackOptions) -> Result<Unpacked, Error> {
        archive::unpack(blob, &self.dest, opts)
    }

    pub fn root(&self, blob: &[u8]) -> Result<Unpacked, Error> {
        self.unpack(blob, &UnpackOptions::root())
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.dest.join(rel)
    }

    /// The sentinel tree is exactly as it was, and nothing appeared beside it.
    #[track_caller]
    pub fn assert_outside_unchanged(&self) {
        support::assert_same_tree(
            "sentinel before",
            &self.before,
            "sentinel after",
            &support::snapshot(&self.sentinel),
        );
        let mut names = support::ls(self.dir.path());
        names.sort();
        assert_eq!(names, ["layer", "sentinel"], "new objects beside the layer");
        support::check();
    }
}

/// The error of a refused layer, checked to name `entry` and to be of `kind`.
#[track_caller]
pub fn assert_refused(r: Result<Unpacked, Error>, kind: archive::ErrorKind, entry: &str) -> Error {
    let e = match r {
        Ok(u) => panic!(
            "layer accepted (warnings {:?}), expected a {kind:?} error naming {entry:?}",
            u.warnings
        ),
        Err(e) => e,
    };
    assert_eq!(e.kind(), kind, "error kind of: {e}");
    let msg = e.to_string();
    assert!(
        msg.contains(entry),
        "the error {msg:?} does not name {entry:?}"
    );
    assert!(!msg.contains('\n'), "the error is not one line: {msg:?}");
    support::check();
    e
}

pub fn sha256(data: &[u8]) -> Digest {
    Digest::of(data)
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Runs `f` in a forked child with `strata-u1`'s credentials (no groups) and
/// returns what it reports; a panic in the child comes back as "PANIC".
pub fn as_u1(f: impl FnOnce() -> String) -> String {
    let (uid, gid) = support::user_id("strata-u1");
    let mut fds = [0i32; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        unsafe { libc::close(fds[0]) };
        let ok = unsafe {
            libc::setgroups(0, std::ptr::null()) == 0
                && libc::setgid(gid) == 0
                && libc::setuid(uid) == 0
        };
        let out = if ok {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .unwrap_or_else(|_| "PANIC".to_string())
        } else {
            "SETUID FAILED".to_string()
        };
        let mut w = unsafe { std::fs::File::from_raw_fd(fds[1]) };
        let code = if w.write_all(out.as_bytes()).is_ok() {
            0
        } else {
            1
        };
        unsafe { libc::_exit(code) };
    }
    unsafe { libc::close(fds[1]) };
    let mut out = String::new();
    let mut r = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    r.read_to_string(&mut out).unwrap();
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status}"
    );
    out
}

/// `r` as text a child can report: `OK` and the warnings, or `ERR kind` and the message.
pub fn report(r: &Result<Unpacked, Error>) -> String {
    match r {
        Ok(u) => format!("OK\n{}", u.warnings.join("\n")),
        Err(e) => format!("ERR {:?}\n{e}", e.kind()),
    }
}

/// Gives `p` to strata-u1.
pub fn give_to_u1(p: &Path) {
    let (uid, gid) = support::user_id("strata-u1");
    support::chown_tree(p, uid, gid);
}
