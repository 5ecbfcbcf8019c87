//! The one support module of every integration suite (`mod support;` in each of
//! tests/*.rs; each test binary uses a part of it):
//!
//! - `sys`: syscall wrappers that return `io::Result` (so that errnos can be compared
//!   exactly), `Fd`, errno assertions, and panicking file helpers for set-up code;
//! - `procs`: running commands with a hang guard (`run`, `CmdOut`), waiting
//!   (`wait_until`, `wait_for`), finding processes through /proc;
//! - `mounts`: mountinfo (`mounts`, `is_mounted`), `TestDir` (a private directory
//!   under /tmp that unmounts whatever is left below it on drop), `Layout` (layers in
//!   a `TestDir`), and the guards `Mount` (strata), `KernelOverlay` and `Tmpfs`;
//! - `users`: the test users and `as_user` (a closure on a thread with other
//!   credentials and its own umask);
//! - `tree`: lstat walks of a tree to compare two views (`Tree`, `DiffTree`);
//! - `launcher`: the `strata run` suites' rootfs, users and cgroup delegation;
//! - here: the test configuration (`STRATA_TEST_CONFIG`), `report` (the summary lines
//!   in target/test-reports/), case/check counters and a seedable `Rng`.

#![allow(dead_code)]

pub mod launcher;
pub mod mounts;
pub mod procs;
pub mod sys;
pub mod tree;
pub mod users;

#[allow(unused_imports)]
pub use launcher::*;
#[allow(unused_imports)]
pub use mounts::*;
#[allow(unused_imports)]
pub use procs::*;
#[allow(unused_imports)]
pub use sys::*;
#[allow(unused_imports)]
pub use tree::*;
#[allow(unused_imports)]
pub use users::*;

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The strata binary, at a path every user can reach (the rootless tests run it as
/// other users): the build's own when every directory above it is searchable by
/// others, else a copy under /tmp named by the binary's size and mtime (a checkout
/// under a 0700 home such as /root). The copy is made once, staged and renamed.
pub fn strata_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let built = Path::new(env!("CARGO_BIN_EXE_strata"));
        let others_may_search = built
            .ancestors()
            .skip(1)
            .all(|d| fs::metadata(d).is_ok_and(|m| m.mode() & 0o001 != 0));
        if others_may_search {
            return built.to_string_lossy().into_owned();
        }
        let meta = fs::metadata(built).expect("the built strata binary");
        let dir = Path::new("/tmp").join(format!(
            "strata-test-bin-{}-{}.{}",
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec()
        ));
        let bin = dir.join("strata");
        if !bin.exists() {
            fs::create_dir_all(&dir).expect("create the binary's directory");
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod 755");
            let staged = dir.join(format!("strata.{}", std::process::id()));
            fs::copy(built, &staged).expect("copy the strata binary");
            fs::set_permissions(&staged, fs::Permissions::from_mode(0o755)).expect("chmod");
            fs::rename(&staged, &bin).expect("rename the copied binary into place");
        }
        eprintln!(
            "[support] {} is not reachable by other users; the tests run the copy at {}",
            built.display(),
            bin.display()
        );
        bin.to_string_lossy().into_owned()
    })
}

/// How long we wait for something that should happen at once (a mount to appear or
/// go away, a process to exit). Generous: it only bounds a hang, it asserts no speed.
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
