//! Running commands without hanging, waiting for things to happen, and finding
//! processes through /proc.

use super::PATIENCE;
use std::fs;
use std::io::{self, Read, Seek};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------
// commands
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

/// `run_within(cmd, PATIENCE)`.
pub fn run(cmd: &mut Command) -> CmdOut {
    run_within(cmd, PATIENCE)
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr captured through files (not
/// pipes: a daemon that keeps them open must not make us hang). Kills the command
/// and panics if it has not exited within `limit` (a hang guard, not a timing
/// assertion).
pub fn run_within(cmd: &mut Command, limit: Duration) -> CmdOut {
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(err.try_clone().unwrap()));
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
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
            panic!("{cmd:?} did not exit within {limit:?} (hung filesystem?)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let read_back = |f: &mut fs::File| {
        let mut b = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut b).unwrap();
        String::from_utf8_lossy(&b).into_owned()
    };
    CmdOut {
        status,
        stdout: read_back(&mut out),
        stderr: read_back(&mut err),
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

/// Asserts that the command succeeded and returns its stdout.
#[track_caller]
pub fn ok(o: &CmdOut) -> String {
    assert!(
        o.ok(),
        "strata failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        o.stdout,
        o.stderr
    );
    o.stdout.clone()
}

pub fn text(b: impl AsRef<[u8]>) -> String {
    String::from_utf8_lossy(b.as_ref()).into_owned()
}

/// Kills the child if the test panics while it runs.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

// ---------------------------------------------------------------------------------
// waiting
// ---------------------------------------------------------------------------------

/// Polls `f` until it is true (returns true) or `PATIENCE` has passed (false).
pub fn wait_until(f: impl FnMut() -> bool) -> bool {
    wait_until_for(PATIENCE, f)
}

/// Polls `f` until it is true (returns true) or `d` has passed (false).
pub fn wait_until_for(d: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + d;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `cond` until true; fails after `limit` with `what`.
#[track_caller]
pub fn wait_for(what: &str, limit: Duration, cond: impl FnMut() -> bool) {
    assert!(wait_until_for(limit, cond), "gave up waiting: {what}");
}

// ---------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------

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

fn raw_cmdline(pid: i32) -> Option<Vec<u8>> {
    fs::read(format!("/proc/{pid}/cmdline")).ok()
}

fn proc_args(pid: i32) -> Option<Vec<Vec<u8>>> {
    Some(
        raw_cmdline(pid)?
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| s.to_vec())
            .collect(),
    )
}

fn has_arg(pid: i32, want: &[u8]) -> bool {
    proc_args(pid)
        .map(|a| a.iter().any(|x| x.as_slice() == want))
        .unwrap_or(false)
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A zombie, or gone.
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
        .filter(|&pid| pid != me && has_arg(pid, want) && !is_zombie(pid))
        .collect()
}

/// Live processes (not us) named `want_comm` whose arguments include `mnt`.
pub fn procs_for(mnt: &Path, want_comm: &str) -> Vec<i32> {
    procs_with_arg(mnt)
        .into_iter()
        .filter(|&pid| comm(pid) == want_comm)
        .collect()
}

/// Processes (not us, zombies included) whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            raw_cmdline(pid)
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .map(|pid| pid as u32)
        .collect()
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
pub fn kill_leftovers(arg: &Path, pids: &[i32]) {
    for &pid in pids {
        if has_arg(pid, arg.as_os_str().as_bytes()) {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}
