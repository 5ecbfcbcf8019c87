//! Shared helpers for the differential, POSIX, stress and crash suites.
//!
//! - syscall wrappers that return `io::Result` (so errnos can be compared exactly);
//! - `Scratch`: a private temporary directory under /tmp that lazily unmounts
//!   anything still mounted below it when dropped;
//! - `Strata`: a live strata mount (background or foreground daemon). Dropping it runs
//!   `strata umount`, falls back to `umount -l`, and kills daemons it started;
//! - `Kernel`: a kernel overlayfs mount, unmounted on drop;
//! - `as_user`: runs a closure on a fresh thread with other credentials (raw
//!   syscalls change only that thread's credentials);
//! - `Tree`: an lstat/readlink/content/xattr walk of a tree, for comparisons;
//! - `report`: writes the one-line summary to `target/test-reports/<suite>.txt`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const STRATA: &str = env!("CARGO_BIN_EXE_strata");
pub const FUSE_SUPER_MAGIC: i64 = 0x65735546;
/// Bounds a hang only; no assertion is ever made about speed.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The configuration the suites run in, from `STRATA_TEST_CONFIG`: "root" (the
/// default: strata's defaults as root, FUSE passthrough on) or "rootless" (every mount
/// gets `passthrough=off,writeback=on` first, the data path an ordinary user's mount
/// takes; a test's own options come after and so still win).
pub fn test_config() -> &'static str {
    match std::env::var("STRATA_TEST_CONFIG").as_deref() {
        Err(_) | Ok("") | Ok("root") => "root",
        Ok("rootless") => "rootless",
        Ok(other) => panic!("STRATA_TEST_CONFIG={other}: expected root or rootless"),
    }
}

/// `opts` with the options of the test configuration put in front.
pub fn config_opts(opts: &str) -> String {
    match test_config() {
        "rootless" if opts.is_empty() => "passthrough=off,writeback=on".to_string(),
        "rootless" => format!("passthrough=off,writeback=on,{opts}"),
        _ => opts.to_string(),
    }
}

// ---------------------------------------------------------------------------------
// syscalls
// ---------------------------------------------------------------------------------

pub fn cstr<P: AsRef<Path>>(p: P) -> CString {
    CString::new(p.as_ref().as_os_str().as_bytes()).unwrap()
}

pub fn cvt<T: Default + PartialOrd + Copy>(r: T) -> io::Result<T> {
    if r < T::default() {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// errno of a result (0 on success).
pub fn eno<T>(r: &io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

pub fn errname(e: i32) -> String {
    if e == 0 {
        return "OK".into();
    }
    let s = unsafe { std::ffi::CStr::from_ptr(libc::strerror(e)) };
    let names: &[(i32, &str)] = &[
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::EIO, "EIO"),
        (libc::EBADF, "EBADF"),
        (libc::EACCES, "EACCES"),
        (libc::EEXIST, "EEXIST"),
        (libc::EXDEV, "EXDEV"),
        (libc::ENOTDIR, "ENOTDIR"),
        (libc::EISDIR, "EISDIR"),
        (libc::EINVAL, "EINVAL"),
        (libc::EROFS, "EROFS"),
        (libc::ENOTEMPTY, "ENOTEMPTY"),
        (libc::ENODATA, "ENODATA"),
        (libc::EOPNOTSUPP, "EOPNOTSUPP"),
        (libc::ENOSYS, "ENOSYS"),
        (libc::ELOOP, "ELOOP"),
        (libc::ENAMETOOLONG, "ENAMETOOLONG"),
        (libc::ENOTCONN, "ENOTCONN"),
        (libc::ENXIO, "ENXIO"),
        (libc::E2BIG, "E2BIG"),
        (libc::ERANGE, "ERANGE"),
        (libc::EMLINK, "EMLINK"),
        (libc::ETXTBSY, "ETXTBSY"),
        (libc::EFBIG, "EFBIG"),
        (libc::EBUSY, "EBUSY"),
    ];
    for (n, name) in names {
        if *n == e {
            return name.to_string();
        }
    }
    format!("errno {e} ({})", s.to_string_lossy())
}

/// Asserts that `r` failed with exactly `expected`.
#[track_caller]
pub fn assert_errno<T: std::fmt::Debug>(r: io::Result<T>, expected: i32, what: &str) {
    check();
    match r {
        Ok(v) => panic!(
            "{what}: expected {}, but it succeeded ({v:?})",
            errname(expected)
        ),
        Err(e) => {
            let got = e.raw_os_error().unwrap_or(-1);
            assert_eq!(
                got,
                expected,
                "{what}: expected {}, got {}",
                errname(expected),
                errname(got)
            );
        }
    }
}

#[track_caller]
pub fn assert_ok<T>(r: io::Result<T>, what: &str) -> T {
    check();
    match r {
        Ok(v) => v,
        Err(e) => panic!(
            "{what}: expected success, got {} ({e})",
            errname(e.raw_os_error().unwrap_or(-1))
        ),
    }
}

pub fn open(p: &Path, flags: i32, mode: u32) -> io::Result<Fd> {
    let c = cstr(p);
    cvt(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) }).map(Fd)
}

/// An owned raw fd, closed on drop.
#[derive(Debug)]
pub struct Fd(pub i32);
impl Drop for Fd {
    fn drop(&mut self) {
        if self.0 >= 0 {
            unsafe { libc::close(self.0) };
        }
    }
}
impl Fd {
    pub fn pwrite(&self, data: &[u8], off: i64) -> io::Result<usize> {
        cvt(unsafe { libc::pwrite(self.0, data.as_ptr() as *const _, data.len(), off) })
            .map(|n| n as usize)
    }
    pub fn write(&self, data: &[u8]) -> io::Result<usize> {
        cvt(unsafe { libc::write(self.0, data.as_ptr() as *const _, data.len()) })
            .map(|n| n as usize)
    }
    pub fn pread(&self, len: usize, off: i64) -> io::Result<Vec<u8>> {
        let mut b = vec![0u8; len];
        let n = cvt(unsafe { libc::pread(self.0, b.as_mut_ptr() as *mut _, len, off) })?;
        b.truncate(n as usize);
        Ok(b)
    }
    pub fn ftruncate(&self, len: i64) -> io::Result<()> {
        cvt(unsafe { libc::ftruncate(self.0, len) }).map(drop)
    }
    pub fn fstat(&self) -> io::Result<libc::stat> {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        cvt(unsafe { libc::fstat(self.0, &mut st) })?;
        Ok(st)
    }
    pub fn fchmod(&self, mode: u32) -> io::Result<()> {
        cvt(unsafe { libc::fchmod(self.0, mode) }).map(drop)
    }
    pub fn fchown(&self, uid: u32, gid: u32) -> io::Result<()> {
        cvt(unsafe { libc::fchown(self.0, uid, gid) }).map(drop)
    }
    pub fn close(mut self) -> io::Result<()> {
        let fd = self.0;
        self.0 = -1;
        cvt(unsafe { libc::close(fd) }).map(drop)
    }
}

pub fn lstat(p: &Path) -> io::Result<libc::stat> {
    let c = cstr(p);
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::lstat(c.as_ptr(), &mut st) })?;
    Ok(st)
}
pub fn stat(p: &Path) -> io::Result<libc::stat> {
    let c = cstr(p);
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::stat(c.as_ptr(), &mut st) })?;
    Ok(st)
}
pub fn mkdir(p: &Path, mode: u32) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::mkdir(c.as_ptr(), mode) }).map(drop)
}
pub fn rmdir(p: &Path) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::rmdir(c.as_ptr()) }).map(drop)
}
pub fn unlink(p: &Path) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::unlink(c.as_ptr()) }).map(drop)
}
pub fn link(a: &Path, b: &Path) -> io::Result<()> {
    let (a, b) = (cstr(a), cstr(b));
    cvt(unsafe { libc::link(a.as_ptr(), b.as_ptr()) }).map(drop)
}
pub fn symlink(target: &str, p: &Path) -> io::Result<()> {
    let (a, b) = (cstr(target), cstr(p));
    cvt(unsafe { libc::symlink(a.as_ptr(), b.as_ptr()) }).map(drop)
}
pub fn readlink(p: &Path) -> io::Result<Vec<u8>> {
    fs::read_link(p).map(|t| t.as_os_str().as_bytes().to_vec())
}
pub fn rename(a: &Path, b: &Path) -> io::Result<()> {
    renameat2(a, b, 0)
}
pub fn renameat2(a: &Path, b: &Path, flags: u32) -> io::Result<()> {
    let (a, b) = (cstr(a), cstr(b));
    cvt(unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    })
    .map(drop)
}
pub fn chmod(p: &Path, mode: u32) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::chmod(c.as_ptr(), mode) }).map(drop)
}
pub fn chown(p: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::chown(c.as_ptr(), uid, gid) }).map(drop)
}
pub fn lchown(p: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::lchown(c.as_ptr(), uid, gid) }).map(drop)
}
pub fn truncate(p: &Path, len: i64) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::truncate(c.as_ptr(), len) }).map(drop)
}
pub fn mknod(p: &Path, mode: u32, dev: u64) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::mknod(c.as_ptr(), mode, dev) }).map(drop)
}
pub fn mkfifo(p: &Path, mode: u32) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::mkfifo(c.as_ptr(), mode) }).map(drop)
}
pub fn access(p: &Path, mode: i32) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::access(c.as_ptr(), mode) }).map(drop)
}
pub const UTIME_NOW: i64 = (1 << 30) - 1;
pub const UTIME_OMIT: i64 = (1 << 30) - 2;
/// utimensat(AT_FDCWD, p, [atime, mtime], flags) with (sec, nsec) pairs.
pub fn utimensat(p: &Path, a: (i64, i64), m: (i64, i64), flags: i32) -> io::Result<()> {
    let c = cstr(p);
    let ts = [
        libc::timespec {
            tv_sec: a.0,
            tv_nsec: a.1,
        },
        libc::timespec {
            tv_sec: m.0,
            tv_nsec: m.1,
        },
    ];
    cvt(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), flags) }).map(drop)
}
/// utimensat with a NULL times pointer (both set to now).
pub fn utimes_null(p: &Path) -> io::Result<()> {
    let c = cstr(p);
    cvt(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), std::ptr::null(), 0) }).map(drop)
}
pub fn lsetxattr(p: &Path, name: &str, value: &[u8], flags: i32) -> io::Result<()> {
    let (c, n) = (cstr(p), CString::new(name).unwrap());
    cvt(unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr() as *const _,
            value.len(),
            flags,
        )
    })
    .map(drop)
}
pub fn lgetxattr(p: &Path, name: &str) -> io::Result<Vec<u8>> {
    let (c, n) = (cstr(p), CString::new(name).unwrap());
    let mut buf = vec![0u8; 65536];
    let r = cvt(unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr() as *mut _,
            buf.len(),
        )
    })?;
    buf.truncate(r as usize);
    Ok(buf)
}
pub fn lremovexattr(p: &Path, name: &str) -> io::Result<()> {
    let (c, n) = (cstr(p), CString::new(name).unwrap());
    cvt(unsafe { libc::lremovexattr(c.as_ptr(), n.as_ptr()) }).map(drop)
}
pub fn llistxattr(p: &Path) -> io::Result<Vec<String>> {
    let c = cstr(p);
    let mut buf = vec![0u8; 65536];
    let r = cvt(unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len()) })?;
    buf.truncate(r as usize);
    let mut v: Vec<String> = buf
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    v.sort();
    Ok(v)
}
pub fn statfs_type(p: &Path) -> Option<i64> {
    let c = cstr(p);
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } == 0 {
        Some(s.f_type as i64)
    } else {
        None
    }
}
pub fn list_dir(p: &Path) -> io::Result<Vec<String>> {
    let mut v = Vec::new();
    for e in fs::read_dir(p)? {
        v.push(e?.file_name().to_string_lossy().into_owned());
    }
    v.sort();
    Ok(v)
}
pub fn is_whiteout(p: &Path) -> bool {
    fs::symlink_metadata(p)
        .map(|m| m.file_type().is_char_device() && m.rdev() == 0)
        .unwrap_or(false)
}
pub fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

// ---------------------------------------------------------------------------------
// credentials
// ---------------------------------------------------------------------------------

/// Runs `f` on a new thread whose credentials are (uid, gid, groups) and whose umask is
/// `umask`. Raw syscalls change only the calling thread (glibc would change all).
pub fn as_user<T: Send + 'static>(
    uid: u32,
    gid: u32,
    groups: &[u32],
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let groups = groups.to_vec();
    std::thread::spawn(move || {
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()),
                0,
                "setgroups"
            );
            assert_eq!(
                libc::syscall(libc::SYS_setresgid, gid, gid, gid),
                0,
                "setresgid"
            );
            assert_eq!(
                libc::syscall(libc::SYS_setresuid, uid, uid, uid),
                0,
                "setresuid"
            );
        }
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Spawns a program that this process has just written. A child that another
/// test thread forks at that moment holds a copy of the writer's fd until it
/// execs, and exec of the program fails with ETXTBSY meanwhile: retry for a while.
pub fn spawn_fresh_program(cmd: &mut Command) -> io::Result<Child> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            r => return r,
        }
    }
}

// getpwnam/getgrnam return a static buffer that a test on another thread may
// overwrite (u2() once came back as u1, and a permission test "passed" for the
// owner): the _r forms fill a buffer of the caller's.
pub fn user_id(name: &str) -> (u32, u32) {
    let c = CString::new(name).unwrap();
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let r =
        unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
    assert!(
        r == 0 && !found.is_null(),
        "user {name} missing: run scripts/setup as root"
    );
    (pw.pw_uid, pw.pw_gid)
}
pub fn group_id(name: &str) -> u32 {
    let c = CString::new(name).unwrap();
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut found: *mut libc::group = std::ptr::null_mut();
    let r =
        unsafe { libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut found) };
    assert!(
        r == 0 && !found.is_null(),
        "group {name} missing: run scripts/setup as root"
    );
    gr.gr_gid
}

// ---------------------------------------------------------------------------------
// mounts
// ---------------------------------------------------------------------------------

pub fn mountinfo_points() -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|s| {
            // unescape \040 etc.
            let b = s.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'\\' && i + 4 <= b.len() {
                    if let Ok(v) =
                        u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x"), 8)
                    {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                }
                out.push(b[i]);
                i += 1;
            }
            PathBuf::from(std::ffi::OsStr::from_bytes(&out))
        })
        .collect()
}
pub fn is_mounted(p: &Path) -> bool {
    mountinfo_points().iter().any(|m| m == p)
}
pub fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}
pub fn lazy_umount(p: &Path) {
    let _ = Command::new("umount")
        .arg("-l")
        .arg(p)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn cmdline(pid: i32) -> Vec<Vec<u8>> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| s.to_vec())
        .collect()
}
fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}
fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(") ")
            .map(|(_, r)| r.starts_with('Z'))
            .unwrap_or(true),
        Err(_) => false,
    }
}
/// Live processes (not us) with `comm` whose arguments include `mnt`.
pub fn procs_for(mnt: &Path, want_comm: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let want = mnt.as_os_str().as_bytes();
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me || !alive(pid) {
            continue;
        }
        if comm(pid) == want_comm && cmdline(pid).iter().any(|a| a.as_slice() == want) {
            v.push(pid);
        }
    }
    v
}

/// Status of a process: (VmRSS in KiB, number of open fds).
pub fn proc_usage(pid: i32) -> (u64, usize) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let fds = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A private directory under /tmp (ext4: trusted xattrs and whiteouts work).
pub struct Scratch {
    tmp: Option<tempfile::TempDir>,
}
impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("strata-{tag}-"))
            .tempdir_in("/tmp")
            .unwrap();
        set_mode(tmp.path(), 0o755);
        Scratch { tmp: Some(tmp) }
    }
    pub fn path(&self) -> &Path {
        self.tmp.as_ref().unwrap().path()
    }
    /// `mkdir -p` of `rel` below the scratch dir.
    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.path().join(rel);
        fs::create_dir_all(&p).unwrap();
        p
    }
    /// A fresh, unique directory.
    pub fn fresh(&self, prefix: &str) -> PathBuf {
        self.dir(&format!("{prefix}{}", SEQ.fetch_add(1, Ordering::SeqCst)))
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let root = self.path().to_path_buf();
        let mut ms: Vec<PathBuf> = mountinfo_points()
            .into_iter()
            .filter(|m| m.starts_with(&root))
            .collect();
        ms.reverse();
        for m in ms {
            lazy_umount(&m);
        }
        // Whiteouts and immutable-free trees: remove_dir_all is fine as root.
        if let Some(t) = self.tmp.take() {
            let p = t.keep();
            let _ = fs::remove_dir_all(&p);
        }
    }
}

/// A live strata mount.
pub struct Strata {
    pub mnt: PathBuf,
    pub opts: String,
    child: Option<Child>,
    unmounted: bool,
}

impl Strata {
    /// `strata mount -o OPTS MNT` (background). Panics when it fails.
    pub fn mount(opts: &str, mnt: &Path) -> Strata {
        Self::try_mount(opts, mnt)
            .unwrap_or_else(|e| panic!("strata mount -o {opts} {}: {e}", mnt.display()))
    }
    pub fn try_mount(opts: &str, mnt: &Path) -> Result<Strata, String> {
        let out = Command::new(STRATA)
            .args(["mount", "-o", &config_opts(opts)])
            .arg(mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if statfs_type(mnt) != Some(FUSE_SUPER_MAGIC) {
            return Err("mount command returned but the mount is not live".into());
        }
        Ok(Strata {
            mnt: mnt.to_path_buf(),
            opts: opts.to_string(),
            child: None,
            unmounted: false,
        })
    }
    /// `strata mount -f` as our own child (we know its pid).
    pub fn mount_foreground(opts: &str, mnt: &Path) -> Strata {
        let child = Command::new(STRATA)
            .args(["mount", "-f", "-o", &config_opts(opts)])
            .arg(mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn strata mount -f");
        let mut s = Strata {
            mnt: mnt.to_path_buf(),
            opts: opts.to_string(),
            child: Some(child),
            unmounted: false,
        };
        let ok = wait_until(|| {
            if let Some(c) = s.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("strata mount -f exited early: {st}");
                }
            }
            statfs_type(mnt) == Some(FUSE_SUPER_MAGIC)
        });
        assert!(ok, "strata mount -f did not come up");
        s
    }
    /// The pid of the daemon serving this mount.
    pub fn daemon_pid(&self) -> i32 {
        if let Some(c) = &self.child {
            return c.id() as i32;
        }
        let v = procs_for(&self.mnt, "strata");
        assert!(
            !v.is_empty(),
            "no strata daemon found for {}",
            self.mnt.display()
        );
        *v.iter().max().unwrap()
    }
    /// SIGKILLs the daemon and waits until the mount point is free again.
    pub fn kill9(mut self) {
        let pid = self.daemon_pid();
        unsafe { libc::kill(pid, libc::SIGKILL) };
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        // The watchdog detaches the mount; without one (foreground) we do it.
        let gone = wait_until_for(Duration::from_secs(5), || !is_mounted(&self.mnt));
        if !gone {
            lazy_umount(&self.mnt);
        }
        assert!(
            wait_until(|| !is_mounted(&self.mnt)),
            "mount still there after SIGKILL"
        );
        self.unmounted = true;
    }
    pub fn umount(mut self) {
        self.do_umount();
    }
    fn do_umount(&mut self) {
        if self.unmounted {
            return;
        }
        self.unmounted = true;
        let ok = Command::new(STRATA)
            .arg("umount")
            .arg(&self.mnt)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok || is_mounted(&self.mnt) {
            lazy_umount(&self.mnt);
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // The background daemon exits after unmount; kill it if it lingers.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left: Vec<i32> = procs_for(&self.mnt, "strata")
                .into_iter()
                .chain(procs_for(&self.mnt, "strata-watchdog"))
                .collect();
            if left.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                for p in left {
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
impl Drop for Strata {
    fn drop(&mut self) {
        self.do_umount();
    }
}

pub fn wait_until_for(d: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + d;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}

/// A kernel overlayfs mount.
pub struct Kernel {
    pub mnt: PathBuf,
}
impl Kernel {
    pub fn try_mount(opts: &str, mnt: &Path) -> Result<Kernel, String> {
        let out = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", opts])
            .arg(mnt)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Kernel {
            mnt: mnt.to_path_buf(),
        })
    }
    pub fn mount(opts: &str, mnt: &Path) -> Kernel {
        Self::try_mount(opts, mnt).unwrap_or_else(|e| panic!("mount -t overlay -o {opts}: {e}"))
    }
}
impl Drop for Kernel {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.mnt)
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success());
        if !matches!(ok, Ok(true)) {
            lazy_umount(&self.mnt);
        }
    }
}

/// Options string for a layer set.
pub fn ovl_opts(lowers: &[PathBuf], upper: Option<&Path>, work: Option<&Path>) -> String {
    let l: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let mut s = format!("lowerdir={}", l.join(":"));
    if let (Some(u), Some(w)) = (upper, work) {
        s.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    }
    s
}

// ---------------------------------------------------------------------------------
// tree snapshots
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
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
pub struct Tree {
    pub nodes: BTreeMap<String, Node>,
    /// For each path, the other paths with the same st_ino (hard links), sorted.
    pub links: BTreeMap<String, Vec<String>>,
}

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

pub struct SnapOpts {
    /// Record mtime only when older than this (times both sides set explicitly).
    pub mtime_before: Option<i64>,
    pub dir_nlink: bool,
    /// Leave out names that readdir lists but lstat can't find (kernel overlayfs lists
    /// whiteouts in directories it does not merge).
    pub skip_enoent: bool,
}

/// Walks `root` (not following symlinks). Errors are recorded as a node of kind 'E'.
pub fn snapshot(root: &Path, o: &SnapOpts) -> Tree {
    let mut t = Tree::default();
    let mut inos: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    fn walk(
        root: &Path,
        rel: &str,
        t: &mut Tree,
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
                Node {
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

fn err_node(e: &io::Error) -> Node {
    Node {
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
pub fn diff_trees(a_name: &str, a: &Tree, b_name: &str, b: &Tree, links: bool) -> Vec<String> {
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

// ---------------------------------------------------------------------------------
// reports and randomness
// ---------------------------------------------------------------------------------

/// Appends a one-line summary to `target/test-reports/<suite>.txt` (and stderr).
pub fn report(suite: &str, line: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-reports");
    let _ = fs::create_dir_all(&dir);
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{suite}.txt")))
    {
        let _ = writeln!(f, "[{ts}] [config {}] {line}", test_config());
    }
    // Straight to fd 2: libtest captures eprintln! of a passing test, and this
    // line must show in the test command's output.
    let _ = writeln!(io::stderr(), "[{suite}] [config {}] {line}", test_config());
}

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// SplitMix64: small, seedable, reproducible.
#[derive(Clone)]
pub struct Rng(pub u64);
impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

pub fn time_seed() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    d.as_nanos() as u64 ^ ((std::process::id() as u64) << 32)
}

// ---------------------------------------------------------------------------------
// per-process suite summary (libtest has no "after all tests" hook: atexit)
// ---------------------------------------------------------------------------------

pub static CASES: AtomicUsize = AtomicUsize::new(0);
pub static FAILED_CASES: AtomicUsize = AtomicUsize::new(0);
pub static CHECKS: AtomicUsize = AtomicUsize::new(0);
static SUITE: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

extern "C" fn write_summary() {
    if let Some(suite) = SUITE.get() {
        let secs = START
            .get()
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        report(
            suite,
            &format!(
                "{suite}: {} cases, {} checks (exact errno/state assertions), {} failed cases, {:.1}s",
                CASES.load(Ordering::SeqCst),
                CHECKS.load(Ordering::SeqCst),
                FAILED_CASES.load(Ordering::SeqCst),
                secs
            ),
        );
    }
}

/// Counts a case of `suite`; the first call registers the summary written at exit.
/// The returned guard counts the case as failed when dropped during a panic.
pub fn count_case(suite: &'static str) -> CaseGuard {
    if SUITE.set(suite).is_ok() {
        let _ = START.set(Instant::now());
        unsafe { libc::atexit(write_summary) };
    }
    CASES.fetch_add(1, Ordering::SeqCst);
    CaseGuard
}
pub struct CaseGuard;
impl Drop for CaseGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            FAILED_CASES.fetch_add(1, Ordering::SeqCst);
        }
    }
}
pub fn check() {
    CHECKS.fetch_add(1, Ordering::Relaxed);
}
