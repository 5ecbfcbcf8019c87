//! Mounts: /proc/self/mountinfo, temporary directories and layer layouts, and RAII
//! guards for strata, kernel overlayfs and tmpfs mounts.

use super::{config_opts, procs::*, strata_bin, sys::*};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------
// /proc/self/mountinfo
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

/// Undoes mountinfo's octal escapes (\040 for a space, ...).
fn unescape_mountinfo(s: &str) -> Vec<u8> {
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
    out
}

pub fn mounts() -> Vec<MountEntry> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
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
            mount_point: PathBuf::from(OsStr::from_bytes(&unescape_mountinfo(lf[4]))),
            opts: lf[5].to_string(),
            fstype: rf[0].to_string(),
            source: String::from_utf8_lossy(&unescape_mountinfo(rf[1])).into_owned(),
            super_opts: rf[2].to_string(),
        });
    }
    v
}

/// Every mount point, in mount order.
pub fn mountinfo_points() -> Vec<PathBuf> {
    mounts().into_iter().map(|m| m.mount_point).collect()
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

/// `umount -l`, quietly.
pub fn lazy_umount<P: AsRef<Path>>(p: P) {
    let _ = Command::new("umount")
        .arg("-l")
        .arg(p.as_ref())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The FUSE connection ("0:NN") of the mount at `mnt`, if it is a FUSE mount.
fn fuse_conn(mnt: &Path) -> Option<String> {
    mount_entry(mnt)
        .filter(|e| e.fstype.starts_with("fuse"))
        .map(|e| e.dev)
}

// ---------------------------------------------------------------------------------
// Temporary directories and layer layouts
// ---------------------------------------------------------------------------------

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A private directory under /tmp (ext4 or the like: trusted xattrs and whiteouts
/// work), mode 0755 so that other users can reach what a test makes world-accessible.
/// Dropping it lazily unmounts anything still mounted below it, then removes it.
pub struct TestDir {
    tmp: Option<tempfile::TempDir>,
}

impl Default for TestDir {
    fn default() -> Self {
        TestDir::new()
    }
}

impl TestDir {
    /// `/tmp/strata-test-XXXX`
    pub fn new() -> TestDir {
        TestDir::tagged("test")
    }
    /// `/tmp/strata-TAG-XXXX`
    pub fn tagged(tag: &str) -> TestDir {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("strata-{tag}-"))
            .tempdir_in("/tmp")
            .unwrap();
        set_mode(tmp.path(), 0o755);
        TestDir { tmp: Some(tmp) }
    }
    pub fn path(&self) -> &Path {
        self.tmp.as_ref().unwrap().path()
    }
    pub fn join<P: AsRef<Path>>(&self, rel: P) -> PathBuf {
        self.path().join(rel)
    }
    /// Creates (mkdir -p) and returns `rel`.
    pub fn dir<P: AsRef<Path>>(&self, rel: P) -> PathBuf {
        let p = self.join(rel);
        mkdirs(&p);
        p
    }
    /// A fresh, unique directory.
    pub fn fresh(&self, prefix: &str) -> PathBuf {
        self.dir(format!("{prefix}{}", SEQ.fetch_add(1, Ordering::SeqCst)))
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        // Never recurse into a mount that is somehow still there.
        for m in mounts_under(self.path()).iter().rev() {
            lazy_umount(&m.mount_point);
        }
        if let Some(t) = self.tmp.take() {
            let _ = std::fs::remove_dir_all(t.keep());
        }
    }
}

/// Options string for a layer set (lowers top first).
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

pub struct Layout {
    pub dir: TestDir,
    /// Lower layers, top first.
    pub lowers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub mnt: PathBuf,
}

static KCOUNT: AtomicUsize = AtomicUsize::new(0);

impl Layout {
    pub fn new(nlowers: usize) -> Layout {
        Layout::in_dir(TestDir::new(), nlowers)
    }

    /// lower0.., upper, work and mnt in `dir`.
    pub fn in_dir(dir: TestDir, nlowers: usize) -> Layout {
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
        ovl_opts(&self.lowers, None, None)
    }

    pub fn opts(&self) -> String {
        ovl_opts(&self.lowers, Some(&self.upper), Some(&self.work))
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

    /// Kernel overlayfs over the same layers at `<dir>/kmnt-N` (with a fresh workdir
    /// at `<dir>/kwork-N` when `upper`), redirect_dir=on plus `extra`.
    fn kernel(&self, upper: bool, extra: &str) -> KernelOverlay {
        let n = KCOUNT.fetch_add(1, Ordering::SeqCst);
        let kmnt = self.dir.dir(format!("kmnt-{n}"));
        let mut opts = if upper {
            let kwork = self.dir.dir(format!("kwork-{n}"));
            ovl_opts(&self.lowers, Some(&self.upper), Some(&kwork))
        } else {
            self.lowerdir_opt()
        };
        opts.push_str(",redirect_dir=on");
        opts.push_str(extra);
        KernelOverlay::new(&opts, &kmnt)
    }

    /// Kernel overlayfs over the same layers at `<dir>/kmnt-N`, with a fresh workdir.
    pub fn kernel_mount(&self) -> KernelOverlay {
        self.kernel(true, "")
    }

    /// Kernel overlayfs over the same layers with extra options (e.g. "index=on").
    pub fn kernel_mount_with(&self, extra: &str) -> KernelOverlay {
        self.kernel(true, &format!(",{extra}"))
    }

    /// Kernel overlayfs over the lowers only (read-only).
    pub fn kernel_mount_ro(&self) -> KernelOverlay {
        self.kernel(false, "")
    }
}

// ---------------------------------------------------------------------------------
// strata mounts
// ---------------------------------------------------------------------------------

/// The strata binary, with the test's logging set-up.
pub fn strata() -> Command {
    let mut c = Command::new(strata_bin());
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

/// `strata mount -o OPTS MNT`, as the caller, with the options of the test
/// configuration in front of `opts` (see `config_opts`).
pub fn strata_mount(opts: &str, mnt: &Path) -> CmdOut {
    run(strata()
        .arg("mount")
        .arg("-o")
        .arg(config_opts(opts))
        .arg(mnt))
}

/// A live strata mount. Dropping it runs `strata umount`, falls back to `umount -l`,
/// aborts the FUSE connection of a daemon that hangs, and kills the daemon processes
/// it saw.
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

    /// Like `new`, but a failure is an `Err` with what went wrong.
    pub fn try_new(opts: &str, mnt: &Path) -> Result<Mount, String> {
        let out = strata_mount(opts, mnt);
        // Guard first, so that a half-made mount is cleaned up.
        let m = Mount::guard(mnt);
        if !out.ok() {
            return Err(format!("{}: {}", out.status, out.stderr));
        }
        match mount_entry(mnt) {
            Some(e) if e.fstype.starts_with("fuse") => Ok(m),
            Some(e) => Err(format!("mounted, but as {} (not FUSE)", e.fstype)),
            None => Err("mount command returned but the mount is not live".into()),
        }
    }

    /// Takes ownership of a mount made by an already-run command.
    #[track_caller]
    pub fn adopt(out: CmdOut, mnt: &Path, what: &str) -> Mount {
        // Guard first, so that a failed assertion still cleans up.
        let m = Mount::guard(mnt);
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
            conn: fuse_conn(mnt),
            done: false,
        }
    }

    pub fn path<P: AsRef<Path>>(&self, rel: P) -> PathBuf {
        self.mnt.join(rel)
    }

    /// The pid of the daemon serving this mount.
    #[track_caller]
    pub fn daemon_pid(&self) -> i32 {
        let v = procs_for(&self.mnt, "strata");
        assert!(
            !v.is_empty(),
            "no strata daemon found for {}",
            self.mnt.display()
        );
        *v.iter().max().unwrap()
    }

    /// SIGKILLs the daemon and waits until the mount point is free again.
    #[track_caller]
    pub fn kill9(mut self) {
        let pid = self.daemon_pid();
        unsafe { libc::kill(pid, libc::SIGKILL) };
        // The watchdog detaches the mount; without one we do it.
        if !wait_until_for(Duration::from_secs(5), || !is_mounted(&self.mnt)) {
            lazy_umount(&self.mnt);
        }
        assert!(
            wait_until(|| !is_mounted(&self.mnt)),
            "mount still there after SIGKILL"
        );
        self.done = true;
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
            self.conn = fuse_conn(&self.mnt);
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
            bounded(Command::new(strata_bin()).arg("umount").arg(&self.mnt));
        }
        if is_mounted(&self.mnt) {
            bounded(Command::new("umount").arg("-l").arg(&self.mnt));
        }
        let mnt = self.mnt.clone();
        wait_until_for(Duration::from_secs(10), || procs_with_arg(&mnt).is_empty());
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

/// A kernel overlayfs mount; dropping it unmounts it (lazily if it is busy).
pub struct KernelOverlay {
    pub mnt: PathBuf,
    done: bool,
}

impl KernelOverlay {
    #[track_caller]
    pub fn new(opts: &str, mnt: &Path) -> KernelOverlay {
        KernelOverlay::try_new(opts, mnt).unwrap_or_else(|e| {
            panic!(
                "kernel overlay mount -o {opts} {} failed: {e}",
                mnt.display()
            )
        })
    }
    pub fn try_new(opts: &str, mnt: &Path) -> Result<KernelOverlay, String> {
        let out = run(Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(opts)
            .arg(mnt));
        if !out.ok() {
            return Err(out.stderr);
        }
        Ok(KernelOverlay {
            mnt: mnt.to_path_buf(),
            done: false,
        })
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
        if self.done {
            return;
        }
        let ok = Command::new("umount")
            .arg(&self.mnt)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success());
        if !matches!(ok, Ok(true)) {
            lazy_umount(&self.mnt);
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
        lazy_umount(&self.path);
    }
}

// ---------------------------------------------------------------------------------
// fuse-overlayfs mounts (the program podman runs as its mount_program)
// ---------------------------------------------------------------------------------

/// A fuse-overlayfs mount (`/usr/bin/fuse-overlayfs -o OPTS MNT`, as root);
/// dropping it unmounts it with `fusermount3 -u`, lazily if that fails.
pub struct FuseOverlayfs {
    pub mnt: PathBuf,
    done: bool,
}

impl FuseOverlayfs {
    #[track_caller]
    pub fn new(opts: &str, mnt: &Path) -> FuseOverlayfs {
        FuseOverlayfs::try_new(opts, mnt)
            .unwrap_or_else(|e| panic!("fuse-overlayfs -o {opts} {} failed: {e}", mnt.display()))
    }
    pub fn try_new(opts: &str, mnt: &Path) -> Result<FuseOverlayfs, String> {
        let out = run(Command::new("fuse-overlayfs").arg("-o").arg(opts).arg(mnt));
        if !out.ok() {
            lazy_umount(mnt);
            return Err(out.stderr);
        }
        let guard = FuseOverlayfs {
            mnt: mnt.to_path_buf(),
            done: false,
        };
        if !is_mounted(mnt) {
            return Err(format!("not mounted: {}", out.stderr));
        }
        Ok(guard)
    }
    pub fn path<P: AsRef<Path>>(&self, rel: P) -> PathBuf {
        self.mnt.join(rel)
    }
    #[track_caller]
    pub fn umount(mut self) {
        let out = run_retry_busy(|| {
            let mut c = Command::new("fusermount3");
            c.arg("-u").arg(&self.mnt);
            c
        });
        assert!(
            out.ok(),
            "fusermount3 -u {}: {}",
            self.mnt.display(),
            out.stderr
        );
        self.done = true;
    }
}

impl Drop for FuseOverlayfs {
    fn drop(&mut self) {
        if self.done || !is_mounted(&self.mnt) {
            return;
        }
        let ok = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mnt)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success());
        if !matches!(ok, Ok(true)) {
            lazy_umount(&self.mnt);
        }
    }
}
