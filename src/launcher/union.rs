//! Starting strata's own FUSE union for the container's root: `strata mount -f` runs as
//! a child of the launcher, in the launcher's (outer) mount namespace, outside the
//! container's cgroups. The container pivots in a nested mount namespace, so the
//! daemon's own root is never moved onto its mount (that deadlocks lookups).

use super::error::Context;
use super::error::{Error, Result};
use super::mounts::umount_detach;
use crate::sys;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
const MOUNT_TIMEOUT: Duration = Duration::from_secs(20);

/// Backslash-escapes the characters `-o` treats specially.
pub fn escape(p: &Path) -> String {
    let mut out = String::new();
    for c in p.to_string_lossy().chars() {
        if matches!(c, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The `-o` string: lowerdir leftmost is the top layer; no upper means a read-only merge.
/// `override_stat`: owners and modes are read from (and written to) override xattrs.
pub fn options(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    volatile: bool,
    override_stat: bool,
) -> String {
    let lower: Vec<String> = lowers.iter().map(|l| escape(l)).collect();
    let mut o = format!("lowerdir={}", lower.join(":"));
    if let Some((u, w)) = upper {
        o += &format!(",upperdir={},workdir={}", escape(u), escape(w));
        if volatile {
            o += ",volatile";
        }
    }
    if override_stat {
        o += ",xattr_permissions=2";
    }
    o + ",allow_other"
}

pub struct UnionMount {
    child: Option<Child>,
    mnt: PathBuf,
}

impl UnionMount {
    /// Spawns `exe mount -f -o OPTS MNT` and waits until MNT is a FUSE mount.
    pub fn start(exe: &Path, opts: &str, mnt: &Path) -> Result<UnionMount> {
        log::debug!(
            "union: {} mount -f -o {opts} {}",
            exe.display(),
            mnt.display()
        );
        let mut cmd = Command::new(exe);
        cmd.args(["mount", "-f", "-o", opts]);
        let debugging =
            std::env::var("RUST_LOG").is_ok_and(|v| v.contains("debug") || v.contains("trace"));
        if !debugging {
            // fuser warns about a second unmount at exit, and logs as an error each reply
            // to a request whose process died meanwhile (ENOENT from /dev/fuse: a
            // container's processes are killed at its end); only errors of strata's own
            // are interesting here.
            cmd.args(["--log-level", "error,fuser::reply=off"]);
        }
        cmd.arg(mnt).stdin(Stdio::null()).stdout(Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // Own session: a Ctrl-C on the terminal must not kill the daemon.
                libc::setsid();
                // If strata dies, the daemon unmounts and exits.
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGTERM as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                sys::process::reset_signals();
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("start {} mount", exe.display()), e))?;
        let mut u = UnionMount {
            child: Some(child),
            mnt: mnt.to_path_buf(),
        };
        let start = Instant::now();
        loop {
            if sys::mount::statfs_type(mnt).context(|| format!("statfs {}", mnt.display()))?
                == FUSE_SUPER_MAGIC
            {
                log::debug!("union mounted after {:?}", start.elapsed());
                return Ok(u);
            }
            if let Some(c) = u.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    u.child = None;
                    return Err(Error::new(format!(
                        "union mount of {} failed: strata mount exited ({status}) before mounting",
                        mnt.display()
                    )));
                }
            }
            if start.elapsed() > MOUNT_TIMEOUT {
                u.stop();
                return Err(Error::new(format!(
                    "union mount of {} did not appear within {:?}",
                    mnt.display(),
                    MOUNT_TIMEOUT
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGTERM (the daemon unmounts itself), wait, then a lazy unmount as a backstop.
    pub fn pid(&self) -> Option<libc::pid_t> {
        self.child.as_ref().map(|c| c.id() as libc::pid_t)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sys::process::kill(c.id() as libc::pid_t, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        log::warn!("strata mount did not exit on SIGTERM; killing it");
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        }
        if sys::mount::statfs_type(&self.mnt).ok() == Some(FUSE_SUPER_MAGIC) {
            if let Err(e) = umount_detach(&self.mnt) {
                log::warn!("{e}");
            }
        }
    }
}

impl Drop for UnionMount {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_string() {
        let o = options(
            &["/l/a:b".into(), "/l/c,d".into()],
            Some((Path::new("/u"), Path::new("/w"))),
            true,
            false,
        );
        assert_eq!(
            o,
            "lowerdir=/l/a\\:b:/l/c\\,d,upperdir=/u,workdir=/w,volatile,allow_other"
        );
        assert_eq!(
            options(&["/x".into()], None, true, false),
            "lowerdir=/x,allow_other"
        );
        assert_eq!(
            options(&["/x".into()], None, false, true),
            "lowerdir=/x,xattr_permissions=2,allow_other"
        );
    }
}
