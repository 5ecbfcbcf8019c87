//! Fixtures for the POSIX suite.
#![allow(dead_code)]
//!
//! `fx(origin, build)` makes a strata mount where the objects `build` creates come
//! from the lower layer (`Origin::Lower`: every change goes through copy-up) or were
//! made through the mount (`Origin::Upper`). `STRATA_POSIX_ON=plain` runs the same
//! tests on a plain directory of the host filesystem instead: that checks the suite's
//! own expectations against Linux's local-filesystem semantics.

use crate::support::*;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Origin {
    Upper,
    Lower,
}

pub fn plain() -> bool {
    std::env::var("STRATA_POSIX_ON")
        .map(|v| v == "plain")
        .unwrap_or(false)
}

pub struct Fx {
    pub root: PathBuf,
    pub lower: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub origin: Origin,
    pub strata: Option<Mount>,
    pub s: TestDir,
    pub _case: CaseGuard,
}

impl Fx {
    /// A path in the view under test.
    pub fn p(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }
    pub fn mk(&self) -> Mk {
        Mk {
            root: self.root.clone(),
        }
    }
}

/// Creates objects with exact owners and modes (as root; umask-independent).
pub struct Mk {
    pub root: PathBuf,
}

impl Mk {
    fn at(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
    pub fn file(&self, rel: &str, mode: u32, uid: u32, gid: u32) -> &Self {
        let p = self.at(rel);
        fs::write(&p, format!("data:{rel}"))
            .unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        lchown(&p, uid, gid).unwrap();
        chmod(&p, mode).unwrap();
        self
    }
    pub fn dir(&self, rel: &str, mode: u32, uid: u32, gid: u32) -> &Self {
        let p = self.at(rel);
        mkdir(&p, 0o700).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        lchown(&p, uid, gid).unwrap();
        chmod(&p, mode).unwrap();
        self
    }
    pub fn symlink(&self, rel: &str, target: &str) -> &Self {
        symlink(target, &self.at(rel)).unwrap();
        self
    }
    pub fn fifo(&self, rel: &str, mode: u32, uid: u32, gid: u32) -> &Self {
        let p = self.at(rel);
        mkfifo(&p, 0o600).unwrap();
        lchown(&p, uid, gid).unwrap();
        chmod(&p, mode).unwrap();
        self
    }
}

/// A mount (or plain directory) holding what `build` made, from `origin`.
pub fn fx(origin: Origin, build: impl FnOnce(&Mk)) -> Fx {
    fx_with(origin, "", build)
}

/// Like `fx`, with extra mount options (`extra` starts with a comma, or is empty).
pub fn fx_with(origin: Origin, extra: &str, build: impl FnOnce(&Mk)) -> Fx {
    let s = TestDir::tagged("posix");
    let lower = s.dir("lower");
    let upper = s.dir("upper");
    let work = s.dir("work");
    let mnt = s.dir("mnt");
    set_mode(&lower, 0o755);
    if plain() {
        let root = s.dir("plain");
        set_mode(&root, 0o755);
        build(&Mk { root: root.clone() });
        return Fx {
            root,
            lower,
            upper,
            work,
            origin,
            strata: None,
            s,
            _case: count_case("posix"),
        };
    }
    let mut build = Some(build);
    if origin == Origin::Lower {
        (build.take().unwrap())(&Mk {
            root: lower.clone(),
        });
    }
    let strata = Mount::new(
        &format!(
            "{}{extra}",
            ovl_opts(std::slice::from_ref(&lower), Some(&upper), Some(&work))
        ),
        &mnt,
    );
    if let Some(build) = build {
        build(&Mk { root: mnt.clone() });
    }
    Fx {
        root: mnt,
        lower,
        upper,
        work,
        origin,
        strata: Some(strata),
        s,
        _case: count_case("posix"),
    }
}

/// A read-only strata mount (no upperdir) over what `build` made. `None` in plain mode.
pub fn fx_ro(build: impl FnOnce(&Mk)) -> Option<Fx> {
    if plain() {
        return None;
    }
    let s = TestDir::tagged("posix-ro");
    let lower = s.dir("lower");
    let mnt = s.dir("mnt");
    build(&Mk {
        root: lower.clone(),
    });
    let strata = Mount::new(&ovl_opts(std::slice::from_ref(&lower), None, None), &mnt);
    Some(Fx {
        root: mnt,
        lower: lower.clone(),
        upper: lower.clone(),
        work: lower,
        origin: Origin::Lower,
        strata: Some(strata),
        s,
        _case: count_case("posix"),
    })
}

/// A real non-root user (created by scripts/setup).
#[derive(Clone, Debug)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl User {
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        as_user(&Creds::user(self.uid, self.gid).groups(&self.groups), f)
    }
}

/// strata-u1: member of strata-g.
pub fn u1() -> User {
    let (uid, gid) = user_id("strata-u1");
    User {
        uid,
        gid,
        groups: vec![gid, group_id("strata-g")],
    }
}
/// strata-u2: no supplementary group.
pub fn u2() -> User {
    let (uid, gid) = user_id("strata-u2");
    User {
        uid,
        gid,
        groups: vec![gid],
    }
}
pub fn nobody() -> User {
    let (uid, gid) = user_id("nobody");
    User {
        uid,
        gid,
        groups: vec![gid],
    }
}
pub fn sg() -> u32 {
    group_id("strata-g")
}

pub fn mode_of(p: &Path) -> u32 {
    lstat(p)
        .unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
        .st_mode
        & 0o7777
}
pub fn owner_of(p: &Path) -> (u32, u32) {
    let st = lstat(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
    (st.st_uid, st.st_gid)
}
pub fn content(p: &Path) -> String {
    String::from_utf8(fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))).unwrap()
}
/// A name one byte longer than NAME_MAX.
pub fn long_name() -> String {
    "x".repeat(256)
}
/// A path longer than PATH_MAX made of short, valid components.
pub fn long_path(base: &Path) -> PathBuf {
    let mut p = base.to_path_buf();
    while p.as_os_str().len() <= 4200 {
        p.push("abcdefghijklmnopqrstuvwxyz0123456789");
    }
    p
}
pub fn ctime(p: &Path) -> (i64, i64) {
    let st = lstat(p).unwrap();
    (st.st_ctime, st.st_ctime_nsec)
}
pub fn mtime(p: &Path) -> (i64, i64) {
    let st = lstat(p).unwrap();
    (st.st_mtime, st.st_mtime_nsec)
}
/// Lets the coarse kernel clock move on, so that a changed time is a different time.
pub fn tick() {
    std::thread::sleep(std::time::Duration::from_millis(15));
}

/// Defines `mod $name { fn upper(), fn lower() }`: the same test on objects made
/// through the mount and on objects that come from the lower layer.
#[macro_export]
macro_rules! both {
    ($name:ident, |$o:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn upper() {
                let $o = Origin::Upper;
                $body
            }
            #[test]
            fn lower() {
                let $o = Origin::Lower;
                $body
            }
        }
    };
}

/// assert_eq that counts as a check.
#[track_caller]
pub fn eq<T: PartialEq + std::fmt::Debug>(got: T, want: T, what: &str) {
    check();
    assert_eq!(got, want, "{what}");
}
