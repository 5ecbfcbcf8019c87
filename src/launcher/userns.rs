//! The user namespace for rootless runs: the caller becomes root inside, and its
//! /etc/subuid and /etc/subgid ranges are mapped through newuidmap/newgidmap when
//! they exist (a single-id map otherwise).

use super::error::{write_file, Context};
use super::error::{Error, Result};
use crate::sys;
use std::path::Path;
use std::process::Command;

/// One line of a uid_map/gid_map: `inside outside count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// Finds the first range for `name` (or the numeric `id`) in /etc/subuid-style text.
pub fn find_subid(content: &str, name: Option<&str>, id: u32) -> Option<(u32, u32)> {
    content.lines().find_map(|line| {
        let mut f = line.trim().split(':');
        let (owner, start, count) = (f.next()?, f.next()?, f.next()?);
        let ours = Some(owner) == name || owner.parse::<u32>().ok() == Some(id);
        let (start, count) = (start.parse().ok()?, count.parse::<u32>().ok()?);
        (ours && count > 0).then_some((start, count))
    })
}

/// The user name for `uid` from /etc/passwd text.
pub fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
    })
}

/// The map: the caller is root, the subordinate range (if any) follows from 1.
pub fn plan(id: u32, sub: Option<(u32, u32)>) -> Vec<IdRange> {
    let mut v = vec![IdRange {
        inside: 0,
        outside: id,
        count: 1,
    }];
    if let Some((start, count)) = sub {
        v.push(IdRange {
            inside: 1,
            outside: start,
            count,
        });
    }
    v
}

fn helper_args(ranges: &[IdRange]) -> Vec<String> {
    ranges
        .iter()
        .flat_map(|r| [r.inside, r.outside, r.count])
        .map(|n| n.to_string())
        .collect()
}

fn find_in_path(prog: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain([Path::new("/usr/bin").to_path_buf()])
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Whether the id maps include subordinate ranges (so uids other than 0 exist inside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    SingleId,
    SubIds,
}

/// Moves the calling (single-threaded) process into a new user namespace where it is root.
pub fn enter() -> Result<MapKind> {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = user_name(&passwd, uid);
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let subuid = find_subid(&read("/etc/subuid"), name.as_deref(), uid);
    let subgid = find_subid(&read("/etc/subgid"), name.as_deref(), uid);
    let helpers = (find_in_path("newuidmap"), find_in_path("newgidmap"));
    match (subuid, subgid, helpers) {
        (Some(su), Some(sg), (Some(nu), Some(ng))) => {
            enter_with_helpers(&nu, &ng, &plan(uid, Some(su)), &plan(gid, Some(sg)))?;
            Ok(MapKind::SubIds)
        }
        _ => {
            log::info!("no subuid/subgid range or no newuidmap: single-id user namespace");
            unshare_user()?;
            write_file(Path::new("/proc/self/setgroups"), "deny")?;
            write_file(Path::new("/proc/self/uid_map"), &format!("0 {uid} 1"))?;
            write_file(Path::new("/proc/self/gid_map"), &format!("0 {gid} 1"))?;
            Ok(MapKind::SingleId)
        }
    }
}

fn unshare_user() -> Result<()> {
    sys::mount::unshare(libc::CLONE_NEWUSER)
        .context(|| "unshare(CLONE_NEWUSER)".into())
        .map_err(|e| {
            Error::new(format!(
                "cannot create a user namespace, needed to run without root \
             (kernel without user namespaces, or they are disabled): {}",
                e.msg
            ))
        })
}

/// newuidmap/newgidmap must run outside the new namespace (they are setuid root), so a
/// helper is forked first; it waits until we have unshared, then maps our pid.
fn enter_with_helpers(
    newuidmap: &Path,
    newgidmap: &Path,
    uids: &[IdRange],
    gids: &[IdRange],
) -> Result<()> {
    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() }.to_string();
    let (go_r, go_w) = sys::process::pipe().context(|| "pipe2".into())?;
    let helper = sys::process::clone_fork(0).context(|| "clone".into())?;
    if helper == 0 {
        use std::os::fd::AsRawFd;
        drop(go_w);
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into a valid buffer.
        let n = unsafe { libc::read(go_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        if n != 1 {
            sys::process::exit_now(1);
        }
        // The exit code says which map failed (1: none was tried).
        for (code, prog, ranges) in [(2, newuidmap, uids), (3, newgidmap, gids)] {
            let ok = Command::new(prog)
                .arg(&me)
                .args(helper_args(ranges))
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                sys::process::exit_now(code);
            }
        }
        sys::process::exit_now(0);
    }
    drop(go_r);
    let unshared = unshare_user();
    if unshared.is_ok() {
        sys::process::write_all_raw(std::os::fd::AsRawFd::as_raw_fd(&go_w), b"g");
    }
    drop(go_w);
    let status = sys::process::waitpid(helper, 0)
        .context(|| format!("waitpid {helper}"))?
        .map_or(1, |(_, s)| s);
    unshared?;
    let (prog, ranges) = match sys::process::status_to_code(status) {
        Some(0) => return Ok(()),
        Some(2) => (newuidmap, uids),
        Some(3) => (newgidmap, gids),
        _ => (newuidmap, uids),
    };
    Err(Error::new(format!(
        "{} {me} {} failed: it could not map the subordinate ids (see its message above; \
         check /etc/subuid and /etc/subgid)",
        prog.display(),
        helper_args(ranges).join(" ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_lookup_by_name_or_uid() {
        let t = "alice:100000:65536\n1001:200000:1000\nbob:0:0\n";
        assert_eq!(find_subid(t, Some("alice"), 5), Some((100000, 65536)));
        assert_eq!(find_subid(t, Some("carol"), 1001), Some((200000, 1000)));
        assert_eq!(find_subid(t, Some("bob"), 7), None, "zero-length range");
        assert_eq!(find_subid("garbage\n", Some("x"), 1), None);
    }

    #[test]
    fn maps_put_caller_at_root() {
        assert_eq!(
            helper_args(&plan(1001, Some((100000, 65536)))),
            ["0", "1001", "1", "1", "100000", "65536"]
        );
        assert_eq!(plan(1001, None).len(), 1);
    }

    #[test]
    fn passwd_names() {
        let p = "root:x:0:0::/root:/bin/sh\nstrata-ci:x:1001:1001::/x:/bin/sh\n";
        assert_eq!(user_name(p, 1001).as_deref(), Some("strata-ci"));
        assert_eq!(user_name(p, 5), None);
    }
}
