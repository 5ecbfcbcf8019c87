//! Other credentials: the test users, and running code as one of them.

use super::sys::{last_err, lchown, lstat_meta};
use std::ffi::CString;
use std::path::Path;

pub const NOBODY: u32 = 65534;
pub const NOGROUP: u32 = 65534;

// getpwnam/getgrnam return a static buffer that a test on another thread may
// overwrite (u2() once came back as u1, and a permission test "passed" for the
// owner): the _r forms fill a buffer of the caller's.

/// (uid, gid) of user `name`; fails the test with a pointer to the set-up script.
pub fn user_id(name: &str) -> (u32, u32) {
    let c = CString::new(name).unwrap();
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let r =
        unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
    assert!(
        r == 0 && !found.is_null(),
        "user {name} missing: run scripts/setup as root (it creates the test users, their subuid ranges and makes /dev/fuse 0666)"
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

#[derive(Clone, Debug)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub umask: u32,
}

impl Creds {
    /// `uid`/`gid` without supplementary groups, umask 022.
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
    with_umask(creds.umask, move || {
        unsafe {
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
}

/// Runs `f` on a new thread with its own fs struct (so the process umask is left
/// alone) that has `umask`. Panics propagate.
pub fn with_umask<T: Send, F: FnOnce() -> T + Send>(umask: u32, f: F) -> T {
    std::thread::scope(|s| {
        s.spawn(move || {
            unsafe {
                assert_eq!(libc::unshare(libc::CLONE_FS), 0, "unshare(CLONE_FS)");
                libc::umask(umask as libc::mode_t);
            }
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// chown -R (never following symlinks)
pub fn chown_tree(p: &Path, uid: u32, gid: u32) {
    lchown(p, uid, gid).unwrap_or_else(|e| panic!("lchown {}: {e}", p.display()));
    if lstat_meta(p).is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}
