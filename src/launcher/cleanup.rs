//! Nothing is left behind. strata removes its cgroups and state directory itself; the
//! guardian is a small forked process that does the same if strata is killed (it sees
//! its pipe close without the "done" byte): it SIGKILLs the FUSE daemon registered with
//! it, then removes the cgroups and the state directory. Mounts need no clean-up: they
//! live only in strata's private mount namespaces, which vanish with their last process.
//! The container dies with strata by PDEATHSIG. The daemon has PDEATHSIG too, but the
//! kernel clears it whenever the daemon changes credentials (setfsuid per request), so
//! the guardian is what really ends it.

use super::error::Context;
use super::error::Result;
use crate::sys;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

pub struct Guardian {
    pid: libc::pid_t,
    pipe: Option<OwnedFd>,
}

impl Guardian {
    /// `home_procs`: a cgroup.procs to move into first, so that the guardian itself does
    /// not keep a cgroup strata made busy (cgroup v2, see `Cgroups::home_procs`).
    pub fn spawn(
        cgroup_dirs: Vec<PathBuf>,
        home_procs: Option<PathBuf>,
        state_dir: Option<PathBuf>,
    ) -> Result<Guardian> {
        let (r, w) = sys::process::pipe().context(|| "pipe2".into())?;
        let pid = sys::process::clone_fork(0).context(|| "clone".into())?;
        if pid == 0 {
            drop(w);
            sys::process::detach_stdio(); // never hold the caller's pipes
            if let Some(h) = &home_procs {
                let _ = std::fs::write(h, "0");
            }
            // Messages: b'k' + pid (4 bytes, native endian) = kill this on EOF; b'd' = done.
            let mut pids: Vec<libc::pid_t> = Vec::new();
            loop {
                let mut msg = [0u8; 5];
                match sys::process::read_exact_raw(r.as_raw_fd(), &mut msg[..1]) {
                    Some(()) if msg[0] == b'd' => sys::process::exit_now(0), // strata cleaned up
                    Some(()) if msg[0] == b'k' => {
                        if sys::process::read_exact_raw(r.as_raw_fd(), &mut msg[1..]).is_none() {
                            break;
                        }
                        pids.push(libc::pid_t::from_ne_bytes([msg[1], msg[2], msg[3], msg[4]]));
                    }
                    Some(()) => {}
                    None => break, // EOF: strata is gone
                }
            }
            for p in &pids {
                sys::process::kill(*p, libc::SIGKILL);
            }
            // Wait for the container's tasks to leave, then remove.
            for d in &cgroup_dirs {
                super::cgroups::remove_dir_retry(d, 500);
            }
            if let Some(s) = &state_dir {
                for _ in 0..250 {
                    if std::fs::remove_dir(s).is_ok() || !s.exists() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
            sys::process::exit_now(0);
        }
        Ok(Guardian { pid, pipe: Some(w) })
    }

    /// Registers a process (the FUSE daemon) to be killed if strata dies.
    pub fn kill_on_death(&self, pid: libc::pid_t) {
        if let Some(p) = &self.pipe {
            let mut msg = vec![b'k'];
            msg.extend_from_slice(&pid.to_ne_bytes());
            sys::process::write_all_raw(p.as_raw_fd(), &msg);
        }
    }

    pub fn fd(&self) -> Option<libc::c_int> {
        self.pipe.as_ref().map(|p| p.as_raw_fd())
    }

    /// Tells the guardian that everything is clean, and waits for it.
    pub fn release(mut self) {
        if let Some(p) = self.pipe.take() {
            sys::process::write_all_raw(p.as_raw_fd(), b"d");
        }
        let _ = sys::process::waitpid(self.pid, 0);
    }
}

/// A private directory for the union's mount point and throwaway upper:
/// `$TMPDIR/strata-run-<pid>`. It holds a tmpfs in strata's own mount namespace only,
/// so on the host it stays an empty directory that is removed at the end.
pub fn make_state_dir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let d = std::env::temp_dir().join(format!("strata-run-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&d)
        .map_err(|e| super::error::Error::io(format!("create {}", d.display()), e))?;
    Ok(d)
}
