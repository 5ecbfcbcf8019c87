//! Guards and helpers shared by the mount tests.
//!
//! - `TestDir`: a private temporary directory under /tmp (mode 0755 so that other
//!   users can reach what a test makes world-accessible).
//! - `Layout`: lower layers, upper, work and mount point inside a `TestDir`.
//! - `Mount`: a live strata mount; dropping it runs `strata umount`, falls back to
//!   `umount -l`, and makes sure the daemon processes are gone.
//! - `KernelOverlay`, `Tmpfs`: kernel mounts, lazily unmounted on drop.
//! - `snapshot`/`assert_same_tree`: an lstat walk of a tree to compare two views.
//! - `as_user`: runs a closure on a thread with other credentials (raw syscalls, so
//!   only that thread changes), with its own umask.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::fs;
use std::io::{self, Read, Seek};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const STRATA: &str = env!("CARGO_BIN_EXE_strata");

/// How long we wait for something that should happen at once (a mount to appear or
/// go away, a process to exit). Generous: it only bounds a hang, it asserts no speed.
pub const PATIENCE: Duration = Duration::from_secs(30);

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
// Small syscall wrappers
// ---------------------------------------------------------------------------------

pub fn cstr<P: AsRef<Path>>(p: P) -> CString {
    CString::new(p.as_ref().as_os_str().as_bytes()).unwrap()
}

pub fn last_err() -> io::Error {
    io::Error::last_os_error()
}

/// The errno of a failed result; panics (with `what`) when it succeeded.
pub fn errno_of<T: std::fmt::Debug>(r: io::Result<T>, what: &str) -> i32 {
    match r {
        Ok(v) => panic!("{what}: expected an error, but it succeeded ({v:?})"),
        Err(e) => e
            .raw_os_error()
            .unwrap_or_else(|| panic!("{what}: error without errno: {e}")),
    }
}

pub fn errname(e: i32) -> String {
    let names = [
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::EIO, "EIO"),
        (libc::EBADF, "EBADF"),
        (libc::EAGAIN, "EAGAIN"),
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
        (libc::ENOTCONN, "ENOTCONN"),
        (libc::ENXIO, "ENXIO"),
        (libc::E2BIG, "E2BIG"),
        (libc::ERANGE, "ERANGE"),
        (libc::ETXTBSY, "ETXTBSY"),
        (libc::ESTALE, "ESTALE"),
        (libc::ENOSPC, "ENOSPC"),
        (libc::ENAMETOOLONG, "ENAMETOOLONG"),
        (libc::EWOULDBLOCK, "EWOULDBLOCK"),
        (libc::EMLINK, "EMLINK"),
        (libc::EBUSY, "EBUSY"),
    ];
    for (n, s) in names {
        if n == e {
            return s.to_string();
        }
    }
    format!("errno {e}")
}

/// Asserts that `r` failed with exactly `expected`.
#[track_caller]
pub fn assert_errno<T: std::fmt::Debug>(r: io::Result<T>, expected: i32, what: &str) {
    let got = errno_of(r, what);
    assert_eq!(
        got,
        expected,
        "{what}: expected {}, got {}",
        errname(expected),
        errname(got)
    );
}

pub fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(last_err())
    } else {
        Ok(ret)
    }
}

pub fn cvt_l(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(last_err())
    } else {
        Ok(ret)
    }
}

pub fn cvt_s(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(last_err())
    } else {
        Ok(ret as usize)
    }
}

pub fn lgetxattr<P: AsRef<Path>>(p: P, name: &str) -> io::Result<Vec<u8>> {
    let path = cstr(p);
    let cname = CString::new(name).unwrap();
    let mut buf = vec![0u8; 65536];
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            cname.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
        )
    };
    let n = cvt_s(n)?;
    buf.truncate(n);
    Ok(buf)
}

pub fn lsetxattr<P: AsRef<Path>>(p: P, name: &str, value: &[u8]) -> io::Result<()> {
    lsetxattr_flags(p, name, value, 0)
}

pub fn lsetxattr_flags<P: AsRef<Path>>(
    p: P,
    name: &str,
    value: &[u8],
    flags: libc::c_int,
) -> io::Result<()> {
    let path = cstr(p);
    let cname = CString::new(name).unwrap();
    cvt(unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            cname.as_ptr(),
            value.as_ptr() as *const libc::c_void,
            value.len(),
            flags,
        )
    })?;
    Ok(())
}

pub fn lremovexattr<P: AsRef<Path>>(p: P, name: &str) -> io::Result<()> {
    let path = cstr(p);
    let cname = CString::new(name).unwrap();
    cvt(unsafe { libc::lremovexattr(path.as_ptr(), cname.as_ptr()) })?;
    Ok(())
}

pub fn llistxattr<P: AsRef<Path>>(p: P) -> io::Result<Vec<String>> {
    let path = cstr(p);
    let mut buf = vec![0u8; 65536];
    let n = unsafe {
        libc::llistxattr(
            path.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
        )
    };
    let n = cvt_s(n)?;
    buf.truncate(n);
    let mut names: Vec<String> = buf
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    names.sort();
    Ok(names)
}

pub fn lchown<P: AsRef<Path>>(p: P, uid: u32, gid: u32) -> io::Result<()> {
    let path = cstr(p);
    cvt(unsafe { libc::lchown(path.as_ptr(), uid, gid) })?;
    Ok(())
}

pub fn chown<P: AsRef<Path>>(p: P, uid: u32, gid: u32) -> io::Result<()> {
    let path = cstr(p);
    cvt(unsafe { libc::chown(path.as_ptr(), uid, gid) })?;
    Ok(())
}

pub fn chmod<P: AsRef<Path>>(p: P, mode: u32) -> io::Result<()> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
}

pub fn mknod<P: AsRef<Path>>(p: P, mode: u32, dev: u64) -> io::Result<()> {
    let path = cstr(p);
    cvt(unsafe { libc::mknod(path.as_ptr(), mode as libc::mode_t, dev as libc::dev_t) })?;
    Ok(())
}

pub fn mkfifo<P: AsRef<Path>>(p: P, mode: u32) -> io::Result<()> {
    let path = cstr(p);
    cvt(unsafe { libc::mkfifo(path.as_ptr(), mode as libc::mode_t) })?;
    Ok(())
}

/// A kernel-format whiteout: a character device 0/0.
pub fn make_whiteout<P: AsRef<Path>>(p: P) {
    mknod(p.as_ref(), libc::S_IFCHR, 0)
        .unwrap_or_else(|e| panic!("mknod whiteout {}: {e}", p.as_ref().display()));
}

pub fn is_whiteout<P: AsRef<Path>>(p: P) -> bool {
    match fs::symlink_metadata(p) {
        Ok(m) => m.file_type().is_char_device() && m.rdev() == 0,
        Err(_) => false,
    }
}

/// Marks a layer directory opaque in the kernel's format (as root).
pub fn make_opaque<P: AsRef<Path>>(p: P) {
    lsetxattr(p, "trusted.overlay.opaque", b"y").unwrap();
}

pub fn is_opaque<P: AsRef<Path>>(p: P) -> bool {
    lgetxattr(p, "trusted.overlay.opaque")
        .map(|v| v == b"y")
        .unwrap_or(false)
}

/// Sets atime and mtime (seconds, nanoseconds) without following symlinks.
pub fn lutimens<P: AsRef<Path>>(p: P, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let path = cstr(p);
    let ts = [
        libc::timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    cvt(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            path.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

pub fn renameat2<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q, flags: u32) -> io::Result<()> {
    let a = cstr(from);
    let b = cstr(to);
    cvt_l(unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    })?;
    Ok(())
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn write<P: AsRef<Path>>(p: P, data: impl AsRef<[u8]>) {
    fs::write(p.as_ref(), data).unwrap_or_else(|e| panic!("write {}: {e}", p.as_ref().display()));
}

pub fn read<P: AsRef<Path>>(p: P) -> Vec<u8> {
    fs::read(p.as_ref()).unwrap_or_else(|e| panic!("read {}: {e}", p.as_ref().display()))
}

pub fn read_string<P: AsRef<Path>>(p: P) -> String {
    String::from_utf8(read(p)).unwrap()
}

pub fn mkdirs<P: AsRef<Path>>(p: P) {
    fs::create_dir_all(p.as_ref())
        .unwrap_or_else(|e| panic!("mkdir -p {}: {e}", p.as_ref().display()));
}

pub fn symlink<P: AsRef<Path>, Q: AsRef<Path>>(target: P, link: Q) {
    std::os::unix::fs::symlink(target.as_ref(), link.as_ref())
        .unwrap_or_else(|e| panic!("symlink {}: {e}", link.as_ref().display()));
}

pub fn lstat<P: AsRef<Path>>(p: P) -> fs::Metadata {
    fs::symlink_metadata(p.as_ref())
        .unwrap_or_else(|e| panic!("lstat {}: {e}", p.as_ref().display()))
}

pub fn exists<P: AsRef<Path>>(p: P) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// Sorted names of a directory (without . and ..).
pub fn ls<P: AsRef<Path>>(p: P) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p.as_ref())
        .unwrap_or_else(|e| panic!("readdir {}: {e}", p.as_ref().display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------
// Running commands without hanging
// ---------------------------------------------------------------------------------

#[derive(Debug)]
pub struct CmdOut {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOut {
    pub fn ok(&self) -> bool {
        self.status.success()
    }
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr captured through files (not
/// pipes: a daemon that keeps them open must not make us hang). Kills the command
/// and panics if it has not exited within `PATIENCE`.
pub fn run(cmd: &mut Command) -> CmdOut {
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(err.try_clone().unwrap()));
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            // A process blocked on a hung FUSE request does not die from SIGKILL
            // until the connection is aborted: don't wait for it forever.
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!("{cmd:?} did not exit within {PATIENCE:?} (hung filesystem?)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    out.rewind().unwrap();
    err.rewind().unwrap();
    let mut b = Vec::new();
    out.read_to_end(&mut b).unwrap();
    stdout.push_str(&String::from_utf8_lossy(&b));
    b.clear();
    err.read_to_end(&mut b).unwrap();
    stderr.push_str(&String::from_utf8_lossy(&b));
    CmdOut {
        status,
        stdout,
        stderr,
    }
}

/// Runs the command made by `mk`, again (up to 10 s) while it fails with "busy": an
/// unmount may race with another test thread's fork() holding a copy of our fds.
pub fn run_retry_busy<F: Fn() -> Command>(mk: F) -> CmdOut {
    let mut out = run(&mut mk());
    for _ in 0..100 {
        if out.ok() || !out.stderr.to_lowercase().contains("busy") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        out = run(&mut mk());
    }
    out
}

pub fn sh(script: &str) -> CmdOut {
    run(Command::new("sh").arg("-c").arg(script))
}

// ---------------------------------------------------------------------------------
// /proc/self/mountinfo and /proc/PID
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct MountEntry {
    /// "major:minor" of the mounted filesystem (for FUSE: the connection number).
    pub dev: String,
    pub mount_point: PathBuf,
    /// Per-mount options (field 6): rw/ro, nosuid, nodev, noexec, ...
    pub opts: String,
    pub fstype: String,
    pub source: String,
    pub super_opts: String,
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn mounts() -> Vec<MountEntry> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut v = Vec::new();
    for line in text.lines() {
        let (left, right) = match line.split_once(" - ") {
            Some(x) => x,
            None => continue,
        };
        let lf: Vec<&str> = left.split(' ').collect();
        let rf: Vec<&str> = right.split(' ').collect();
        if lf.len() < 6 || rf.len() < 3 {
            continue;
        }
        v.push(MountEntry {
            dev: lf[2].to_string(),
            mount_point: PathBuf::from(unescape_mountinfo(lf[4])),
            opts: lf[5].to_string(),
            fstype: rf[0].to_string(),
            source: unescape_mountinfo(rf[1]),
            super_opts: rf[2].to_string(),
        });
    }
    v
}

/// The topmost mount at `p`, if any.
pub fn mount_entry<P: AsRef<Path>>(p: P) -> Option<MountEntry> {
    mounts()
        .into_iter()
        .filter(|m| m.mount_point == p.as_ref())
        .last()
}

pub fn is_mounted<P: AsRef<Path>>(p: P) -> bool {
    mount_entry(p).is_some()
}

/// Mounts anywhere at or below `p`.
pub fn mounts_under<P: AsRef<Path>>(p: P) -> Vec<MountEntry> {
    mounts()
        .into_iter()
        .filter(|m| m.mount_point.starts_with(p.as_ref()))
        .collect()
}

pub fn wait_until<F: FnMut() -> bool>(mut f: F) -> bool {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn proc_args(pid: i32) -> Option<Vec<Vec<u8>>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| s.to_vec())
            .collect(),
    )
}

fn all_pids() -> Vec<i32> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                v.push(pid);
            }
        }
    }
    v
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(") ")
                .map(|(_, rest)| rest.starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(true)
}

/// Live processes (other than us) with an argument equal to `arg`: the strata daemon
/// for a mount point, its watchdog, a fusermount3 helper.
pub fn procs_with_arg<P: AsRef<Path>>(arg: P) -> Vec<i32> {
    let want = arg.as_ref().as_os_str().as_bytes();
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            proc_args(pid)
                .map(|a| a.iter().any(|x| x.as_slice() == want))
                .unwrap_or(false)
        })
        .filter(|&pid| !is_zombie(pid))
        .collect()
}

pub fn holds_dev_fuse(pid: i32) -> bool {
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in rd.flatten() {
            if let Ok(t) = fs::read_link(e.path()) {
                if t == Path::new("/dev/fuse") {
                    return true;
                }
            }
        }
    }
    false
}

/// The process(es) serving the mount at `mnt`: those with the mount point among their
/// arguments that hold /dev/fuse open.
pub fn fuse_daemons<P: AsRef<Path>>(mnt: P) -> Vec<i32> {
    procs_with_arg(mnt)
        .into_iter()
        .filter(|&p| holds_dev_fuse(p))
        .collect()
}

/// Aborts a FUSE connection ("0:NN" from mountinfo) through fusectl: the last resort
/// for a deadlocked daemon, which nothing else can unblock.
pub fn fuse_abort(dev: &str) {
    if let Some((_, minor)) = dev.split_once(':') {
        let _ = fs::write(format!("/sys/fs/fuse/connections/{minor}/abort"), "1");
    }
}

/// Kills the given pids if they still carry `arg`; our own leftovers only.
fn kill_leftovers(arg: &Path, pids: &[i32]) {
    for &pid in pids {
        let still = proc_args(pid)
            .map(|a| a.iter().any(|x| x.as_slice() == arg.as_os_str().as_bytes()))
            .unwrap_or(false);
        if still {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Temporary directories and layer layouts
// ---------------------------------------------------------------------------------

pub struct TestDir {
    tmp: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> TestDir {
        let tmp = tempfile::Builder::new()
            .prefix("strata-test-")
            .tempdir_in("/tmp")
            .unwrap();
        chmod(tmp.path(), 0o755).unwrap();
        TestDir { tmp }
    }
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }
    pub fn join<P: AsRef<Path>>(&self, rel: P) -> PathBuf {
        self.tmp.path().join(rel)
    }
    /// Creates (mkdir -p) and returns `rel`.
    pub fn dir<P: AsRef<Path>>(&self, rel: P) -> PathBuf {
        let p = self.join(rel);
        mkdirs(&p);
        p
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        // Never recurse into a mount that is somehow still there.
        for m in mounts_under(self.tmp.path()).iter().rev() {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&m.mount_point)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

pub struct Layout {
    pub dir: TestDir,
    /// Lower layers, top first.
    pub lowers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub mnt: PathBuf,
}

impl Layout {
    pub fn new(nlowers: usize) -> Layout {
        let dir = TestDir::new();
        let lowers = (0..nlowers).map(|i| dir.dir(format!("lower{i}"))).collect();
        let upper = dir.dir("upper");
        let work = dir.dir("work");
        let mnt = dir.dir("mnt");
        Layout {
            dir,
            lowers,
            upper,
            work,
            mnt,
        }
    }

    /// A path in the merged view.
    pub fn m<P: AsRef<Path>>(&self, rel: P) -> PathBuf {
        self.mnt.join(rel)
    }
    /// A path in the upper layer.
    pub fn u<P: AsRef<Path>>(&self, rel: P) -> PathBuf {
        self.upper.join(rel)
    }
    /// A path in lower layer `i` (0 is the top).
    pub fn l<P: AsRef<Path>>(&self, i: usize, rel: P) -> PathBuf {
        self.lowers[i].join(rel)
    }

    pub fn lowerdir_opt(&self) -> String {
        let l: Vec<String> = self
            .lowers
            .iter()
            .map(|p| p.to_str().unwrap().to_string())
            .collect();
        format!("lowerdir={}", l.join(":"))
    }

    pub fn opts(&self) -> String {
        format!(
            "{},upperdir={},workdir={}",
            self.lowerdir_opt(),
            self.upper.display(),
            self.work.display()
        )
    }

    pub fn mount(&self) -> Mount {
        Mount::new(&self.opts(), &self.mnt)
    }

    pub fn mount_with(&self, extra: &str) -> Mount {
        Mount::new(&format!("{},{extra}", self.opts()), &self.mnt)
    }

    /// Read-only merge of the lowers only.
    pub fn mount_ro(&self) -> Mount {
        Mount::new(&self.lowerdir_opt(), &self.mnt)
    }

    /// Kernel overlayfs over the same layers at `<dir>/kmnt-N`, with a fresh workdir.
    pub fn kernel_mount(&self) -> KernelOverlay {
        let n = KCOUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let kmnt = self.dir.dir(format!("kmnt-{n}"));
        let kwork = self.dir.dir(format!("kwork-{n}"));
        KernelOverlay::new(
            &format!(
                "{},upperdir={},workdir={},redirect_dir=on",
                self.lowerdir_opt(),
                self.upper.display(),
                kwork.display()
            ),
            &kmnt,
        )
    }

    /// Kernel overlayfs over the same layers with extra options (e.g. "index=on").
    pub fn kernel_mount_with(&self, extra: &str) -> KernelOverlay {
        let n = KCOUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let kmnt = self.dir.dir(format!("kmnt-{n}"));
        let kwork = self.dir.dir(format!("kwork-{n}"));
        KernelOverlay::new(
            &format!(
                "{},upperdir={},workdir={},redirect_dir=on,{extra}",
                self.lowerdir_opt(),
                self.upper.display(),
                kwork.display()
            ),
            &kmnt,
        )
    }

    /// Kernel overlayfs over the lowers only (read-only).
    pub fn kernel_mount_ro(&self) -> KernelOverlay {
        let n = KCOUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let kmnt = self.dir.dir(format!("kmnt-{n}"));
        KernelOverlay::new(&format!("{},redirect_dir=on", self.lowerdir_opt()), &kmnt)
    }
}

static KCOUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// ---------------------------------------------------------------------------------
// strata mounts
// ---------------------------------------------------------------------------------

pub fn strata() -> Command {
    let mut c = Command::new(STRATA);
    c.env_remove("RUST_LOG");
    // STRATA_TEST_LOG=PREFIX: every daemon logs each FUSE op to PREFIX.<test pid>
    // (STRATA_TEST_LOG_LEVEL=strata=warn for less).
    if let Ok(f) = std::env::var("STRATA_TEST_LOG") {
        c.env(
            "RUST_LOG",
            std::env::var("STRATA_TEST_LOG_LEVEL").unwrap_or("strata=debug".into()),
        )
        .env("STRATA_LOG_FILE", format!("{f}.{}", std::process::id()));
    }
    c
}

/// `strata mount -o OPTS [extra args] MNT`, as the caller.
pub fn strata_mount(opts: &str, mnt: &Path) -> CmdOut {
    run(strata()
        .arg("mount")
        .arg("-o")
        .arg(config_opts(opts))
        .arg(mnt))
}

pub struct Mount {
    pub mnt: PathBuf,
    pids: Vec<i32>,
    /// The FUSE connection ("0:NN"), to abort it if the daemon hangs.
    conn: Option<String>,
    done: bool,
}

impl Mount {
    /// Mounts and asserts that the mount is live as soon as `strata mount` returns.
    #[track_caller]
    pub fn new(opts: &str, mnt: &Path) -> Mount {
        let out = strata_mount(opts, mnt);
        Mount::adopt(out, mnt, &format!("strata mount -o {opts}"))
    }

    /// Takes ownership of a mount made by an already-run command.
    #[track_caller]
    pub fn adopt(out: CmdOut, mnt: &Path, what: &str) -> Mount {
        let pids = procs_with_arg(mnt);
        // Guard first, so that a failed assertion still cleans up.
        let m = Mount {
            mnt: mnt.to_path_buf(),
            pids,
            conn: mount_entry(mnt)
                .filter(|e| e.fstype.starts_with("fuse"))
                .map(|e| e.dev),
            done: false,
        };
        assert!(
            out.ok(),
            "{what} {} failed: {:?}\nstderr: {}",
            mnt.display(),
            out.status,
            out.stderr
        );
        let e = mount_entry(mnt);
        assert!(
            e.is_some(),
            "{what}: exited 0 but {} is not a mount point yet",
            mnt.display()
        );
        let e = e.unwrap();
        assert!(
            e.fstype.starts_with("fuse"),
            "{} is mounted, but as {} (not FUSE)",
            mnt.display(),
            e.fstype
        );
        m
    }

    /// For a mount made some other way (foreground daemon): just the guard.
    pub fn guard(mnt: &Path) -> Mount {
        Mount {
            mnt: mnt.to_path_buf(),
            pids: procs_with_arg(mnt),
            conn: mount_entry(mnt)
                .filter(|e| e.fstype.starts_with("fuse"))
                .map(|e| e.dev),
            done: false,
        }
    }

    pub fn path<P: AsRef<Path>>(&self, rel: P) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Unmounts with `strata umount` and asserts it went away, daemon processes included.
    #[track_caller]
    pub fn umount(mut self) {
        self.pids.extend(procs_with_arg(&self.mnt));
        let out = run_retry_busy(|| {
            let mut c = strata();
            c.arg("umount").arg(&self.mnt);
            c
        });
        assert!(
            out.ok(),
            "strata umount {} failed: {:?}\nstderr: {}",
            self.mnt.display(),
            out.status,
            out.stderr
        );
        assert!(
            !is_mounted(&self.mnt),
            "strata umount {} exited 0 but the mount is still there",
            self.mnt.display()
        );
        let mnt = self.mnt.clone();
        assert!(
            wait_until(|| procs_with_arg(&mnt).is_empty()),
            "processes for {} still running after strata umount: {:?}",
            mnt.display(),
            procs_with_arg(&mnt)
        );
        self.done = true;
    }

    /// Marks the mount as already gone (the test unmounted it another way).
    pub fn forget(mut self) {
        self.done = true;
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut pids = self.pids.clone();
        pids.extend(procs_with_arg(&self.mnt));
        if self.conn.is_none() {
            self.conn = mount_entry(&self.mnt)
                .filter(|e| e.fstype.starts_with("fuse"))
                .map(|e| e.dev);
        }
        let conn = self.conn.clone();
        // run a cleanup command, aborting the connection if it hangs on the mount
        let bounded = |cmd: &mut Command| {
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            if let Ok(mut child) = child {
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    if child.try_wait().ok().flatten().is_some() {
                        break;
                    }
                    if Instant::now() > deadline {
                        if let Some(c) = &conn {
                            fuse_abort(c);
                        }
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        if is_mounted(&self.mnt) {
            bounded(Command::new(STRATA).arg("umount").arg(&self.mnt));
        }
        if is_mounted(&self.mnt) {
            bounded(Command::new("umount").arg("-l").arg(&self.mnt));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !procs_with_arg(&self.mnt).is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
        pids.extend(procs_with_arg(&self.mnt));
        if !procs_with_arg(&self.mnt).is_empty() {
            // a daemon stuck on its own requests: only an abort frees it
            if let Some(c) = &conn {
                fuse_abort(c);
            }
        }
        kill_leftovers(&self.mnt, &pids);
    }
}

// ---------------------------------------------------------------------------------
// Kernel mounts
// ---------------------------------------------------------------------------------

pub struct KernelOverlay {
    pub mnt: PathBuf,
    done: bool,
}

impl KernelOverlay {
    #[track_caller]
    pub fn new(opts: &str, mnt: &Path) -> KernelOverlay {
        let out = run(Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(opts)
            .arg(mnt));
        assert!(
            out.ok(),
            "kernel overlay mount -o {opts} {} failed: {}",
            mnt.display(),
            out.stderr
        );
        KernelOverlay {
            mnt: mnt.to_path_buf(),
            done: false,
        }
    }
    pub fn path<P: AsRef<Path>>(&self, rel: P) -> PathBuf {
        self.mnt.join(rel)
    }
    #[track_caller]
    pub fn umount(mut self) {
        let out = run_retry_busy(|| {
            let mut c = Command::new("umount");
            c.arg(&self.mnt);
            c
        });
        assert!(out.ok(), "umount {}: {}", self.mnt.display(), out.stderr);
        self.done = true;
    }
}

impl Drop for KernelOverlay {
    fn drop(&mut self) {
        if !self.done {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mnt)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A small tmpfs, for a second filesystem.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn new(path: &Path) -> Tmpfs {
        mkdirs(path);
        let out = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs"])
            .arg(path));
        assert!(out.ok(), "mount tmpfs {}: {}", path.display(), out.stderr);
        Tmpfs {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------------
// Other credentials
// ---------------------------------------------------------------------------------

pub const NOBODY: u32 = 65534;
pub const NOGROUP: u32 = 65534;

#[derive(Clone, Debug)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub umask: u32,
}

impl Creds {
    pub fn user(uid: u32, gid: u32) -> Creds {
        Creds {
            uid,
            gid,
            groups: vec![],
            umask: 0o022,
        }
    }
    pub fn groups(mut self, g: &[u32]) -> Creds {
        self.groups = g.to_vec();
        self
    }
    pub fn umask(mut self, m: u32) -> Creds {
        self.umask = m;
        self
    }
}

/// Runs `f` on a new thread that has `creds` (uid, gid, supplementary groups, and its
/// own umask). Uses the raw syscalls, which change only the calling thread (glibc's
/// wrappers would change every thread of the test process). Panics propagate.
pub fn as_user<T: Send, F: FnOnce() -> T + Send>(creds: &Creds, f: F) -> T {
    let creds = creds.clone();
    std::thread::scope(|s| {
        s.spawn(move || {
            unsafe {
                assert_eq!(libc::unshare(libc::CLONE_FS), 0, "unshare(CLONE_FS)");
                libc::umask(creds.umask as libc::mode_t);
                let groups: Vec<libc::gid_t> = creds.groups.clone();
                assert_eq!(
                    libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()),
                    0,
                    "setgroups: {}",
                    last_err()
                );
                assert_eq!(
                    libc::syscall(libc::SYS_setresgid, creds.gid, creds.gid, creds.gid),
                    0,
                    "setresgid: {}",
                    last_err()
                );
                assert_eq!(
                    libc::syscall(libc::SYS_setresuid, creds.uid, creds.uid, creds.uid),
                    0,
                    "setresuid: {}",
                    last_err()
                );
            }
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Runs `f` with the process umask left alone but on its own fs struct with `umask`.
pub fn with_umask<T: Send, F: FnOnce() -> T + Send>(umask: u32, f: F) -> T {
    std::thread::scope(|s| {
        s.spawn(move || {
            unsafe {
                assert_eq!(libc::unshare(libc::CLONE_FS), 0);
                libc::umask(umask as libc::mode_t);
            }
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// chown -R
pub fn chown_tree(p: &Path, uid: u32, gid: u32) {
    lchown(p, uid, gid).unwrap();
    let m = lstat(p);
    if m.is_dir() {
        for e in fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

// ---------------------------------------------------------------------------------
// Tree snapshots
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
    let m = lstat(p);
    let ft = m.file_type();
    let kind = if ft.is_file() {
        'f'
    } else if ft.is_dir() {
        'd'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else if ft.is_fifo() {
        'p'
    } else if ft.is_socket() {
        's'
    } else {
        '?'
    };
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
        let mut names: Vec<String> = fs::read_dir(&p)
            .unwrap_or_else(|e| panic!("readdir {}: {e}", p.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let before = names.len();
        names.sort();
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
            let ino = lstat(root.as_ref().join(rel)).ino();
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

pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

pub fn st_mode<P: AsRef<Path>>(p: P) -> u32 {
    lstat(p).mode()
}
