//! For the `strata run` suites: a busybox rootfs per test, running strata as root or
//! as the unprivileged `strata-ci` user, delegated cgroups for rootless limit tests,
//! and leftover checks. Everything is removed on drop, also when a test fails.

use super::{mounts::*, procs::*, strata_bin, sys::lchown, users::*};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const CI_USER: &str = "strata-ci";
/// A user with no /etc/subuid range: strata falls back to a single-id map.
pub const CI_USER_SINGLE: &str = "strata-ci1";

/// Bounds a container run or a wait for its effects (a hang guard, not a timing
/// assertion): longer than `PATIENCE`, a container start does much more.
pub const DEADLINE: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Root,
    /// As strata-ci (subuid/subgid ranges mapped through newuidmap/newgidmap).
    Rootless,
    /// As strata-ci1 (no subordinate ranges: single-id map).
    RootlessSingleId,
}

impl Mode {
    pub fn user(self) -> Option<&'static str> {
        match self {
            Mode::Root => None,
            Mode::Rootless => Some(CI_USER),
            Mode::RootlessSingleId => Some(CI_USER_SINGLE),
        }
    }
}

/// (uid, gid) of the CI user.
pub fn ci_user() -> (u32, u32) {
    user_id(CI_USER)
}

pub fn require_root() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the strata run tests must run as root (they also drop to {CI_USER} for the rootless cases)");
}

fn lchown_ok(p: &Path, uid: u32, gid: u32) {
    lchown(p, uid, gid).unwrap_or_else(|e| panic!("lchown {}: {e}", p.display()));
}

/// Writes a busybox rootfs (Debian busybox-static) at `dir`.
pub fn busybox_rootfs(dir: &Path) {
    let bb = Path::new("/bin/busybox");
    assert!(
        bb.exists(),
        "/bin/busybox missing: run scripts/setup as root (installs busybox-static)"
    );
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(bb, dir.join("bin/busybox")).unwrap();
    let list = Command::new(bb).arg("--list").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )
    .unwrap();
}

/// Fails clearly when the unprivileged user cannot execute the strata binary (e.g. the
/// checkout lives under a 0700 home directory).
fn check_reachable(user: &str) {
    let ok = Command::new("setpriv")
        .args([
            "--reuid",
            user,
            "--regid",
            user,
            "--init-groups",
            "/bin/sh",
            "-c",
            "test -x \"$0\"",
            strata_bin(),
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "user {user} cannot execute {}: every directory above it must be world-searchable (o+x) for the rootless tests", strata_bin());
}

/// A test's world: temp dir with the rootfs, a TMPDIR for strata, and the mode.
pub struct Env {
    pub mode: Mode,
    pub dir: TestDir,
    pub rootfs: PathBuf,
    pub tmp: PathBuf,
    pub owner: (u32, u32),
}

impl Env {
    pub fn new(mode: Mode) -> Env {
        require_root();
        let dir = TestDir::tagged("run-test");
        let rootfs = dir.path().join("rootfs");
        busybox_rootfs(&rootfs);
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let owner = match mode.user() {
            None => (0, 0),
            Some(name) => {
                let o = user_id(name);
                chown_tree(dir.path(), o.0, o.1);
                o
            }
        };
        Env {
            mode,
            dir,
            rootfs,
            tmp,
            owner,
        }
    }

    /// A new directory in the test dir, owned by the user strata runs as.
    pub fn mkdir(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        lchown_ok(&p, self.owner.0, self.owner.1);
        p
    }

    /// `strata run ARGS` as root or as strata-ci, with TMPDIR inside the test dir.
    pub fn strata(&self, args: &[&str]) -> Command {
        let mut c = self.strata_cmd(&["run"]);
        c.args(args);
        c
    }

    /// `strata ARGS` (any subcommand) as root or as strata-ci, with TMPDIR inside
    /// the test dir and stdin from /dev/null.
    pub fn strata_cmd(&self, args: &[&str]) -> Command {
        let mut c = match self.mode.user() {
            None => Command::new(strata_bin()),
            Some(name) => {
                user_id(name);
                check_reachable(name);
                let mut c = Command::new("setpriv");
                c.args([
                    "--reuid",
                    name,
                    "--regid",
                    name,
                    "--init-groups",
                    strata_bin(),
                ]);
                c
            }
        };
        c.args(args)
            .env("TMPDIR", &self.tmp)
            .env("RUST_LOG", "warn");
        c.stdin(Stdio::null());
        c
    }

    /// `strata run --rootfs ROOTFS EXTRA -- sh -c SCRIPT`, waited for with a generous deadline.
    pub fn sh(&self, extra: &[&str], script: &str) -> CmdOut {
        let root = self.rootfs.to_str().unwrap().to_string();
        let mut args: Vec<&str> = vec!["--rootfs", &root];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sh", "-c", script]);
        run_within(&mut self.strata(&args), DEADLINE)
    }

    /// Asserts nothing of strata's is left: no state dir, no mount under the test dir.
    pub fn assert_clean(&self) {
        let left: Vec<_> = std::fs::read_dir(&self.tmp)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "left behind in TMPDIR: {left:?}");
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let d = self.dir.path().to_str().unwrap();
        assert!(!mi.contains(d), "mount left behind under {d}:\n{mi}");
    }
}

/// The directory of this process's cgroup in the v1 hierarchy of controller `ctl`.
pub fn v1_dir(ctl: &str) -> Option<PathBuf> {
    let mnt = mounts()
        .into_iter()
        .find(|m| m.fstype == "cgroup" && m.super_opts.split(',').any(|o| o == ctl))?
        .mount_point;
    let cg = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own = cg.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, c, p) = (f.next()?, f.next()?, f.next()?);
        c.split(',')
            .any(|x| x == ctl)
            .then(|| p.trim_start_matches('/').to_string())
    })?;
    Some(mnt.join(own))
}

/// Every cgroup directory strata would have made for process `pid`.
pub fn strata_cgroups(pid: u32, bases: &[PathBuf]) -> Vec<PathBuf> {
    bases
        .iter()
        .map(|b| b.join(format!("strata-{pid}")))
        .filter(|p| p.exists())
        .collect()
}

/// A cgroup v1 subtree delegated to strata-ci (root chowns it, as the docs describe),
/// which the strata process is started in. Removed on drop.
pub struct Delegation {
    pub dirs: Vec<PathBuf>,
    procs: Vec<CString>,
}

impl Delegation {
    pub fn new(ctls: &[&str]) -> Delegation {
        let (uid, gid) = ci_user();
        let name = format!("strata-test-{}-{}", std::process::id(), unique());
        let mut d = Delegation {
            dirs: Vec::new(),
            procs: Vec::new(),
        };
        for ctl in ctls {
            let base = v1_dir(ctl).unwrap_or_else(|| panic!("no cgroup v1 {ctl} hierarchy"));
            let dir = base.join(&name);
            std::fs::create_dir(&dir).unwrap();
            for f in ["", "cgroup.procs", "tasks"] {
                lchown_ok(&dir.join(f), uid, gid);
            }
            d.procs
                .push(CString::new(dir.join("cgroup.procs").as_os_str().as_bytes()).unwrap());
            d.dirs.push(dir);
        }
        d
    }

    /// Makes `cmd` start inside the delegated cgroups (before it drops to strata-ci).
    pub fn enter(&self, cmd: &mut Command) {
        let procs = self.procs.clone();
        // SAFETY: only open/write/close between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for p in &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY);
                    if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                }
                Ok(())
            });
        }
    }
}

impl Drop for Delegation {
    fn drop(&mut self) {
        for d in &self.dirs {
            for _ in 0..250 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// Generates `NAME::root` and `NAME::rootless` from `fn(Mode)`.
#[macro_export]
macro_rules! both_modes {
    ($name:ident, $f:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn root() {
                ($f)(Mode::Root)
            }
            #[test]
            fn rootless() {
                ($f)(Mode::Rootless)
            }
        }
    };
}
