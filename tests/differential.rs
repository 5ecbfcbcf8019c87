//! Differential testing of strata against kernel overlayfs.
//!
//! Each case builds 1 to 4 random lower layers (overlapping names, files shadowing
//! directories and the reverse, whiteouts, opaque directories, symlinks, hard links,
//! fifos, xattrs), twice: one copy is mounted with strata, the other with
//! `mount -t overlay`. One random sequence of operations runs on both mounts. After
//! every operation the result (value or exact errno) and the stat fields both define
//! are compared; at the end the whole merged tree (listings, contents, symlink
//! targets, user xattrs, modes, owners, hard-link identity, times set explicitly).
//! Then strata is unmounted and kernel overlayfs mounts strata's upper: it must show
//! the same tree (the on-disk format is the kernel's).
//!
//! A failing case is shrunk (delta debugging over operations and layer entries) and
//! printed as a ready-to-paste regression test (`regressions` module below).
//!
//! Knobs: `STRATA_DIFF_CASES` (cases per mode; default CI size), `STRATA_DIFF_OPS`
//! (operations per case), `STRATA_DIFF_SEED` (base seed; default fixed for CI, random
//! for long runs), `STRATA_DIFF_SHRINK_SECS` (shrinking budget).
//!
//! Deliberate differences known to the tester:
//! - st_ino values differ: hard-link identity is compared instead;
//! - directory rename where the kernel (default options) says EXDEV: strata renames.
//!   In `KernelMode::Default` the tester checks that the tree under the new name in
//!   strata equals the old tree in the kernel, then replays the rename on the kernel
//!   side by copying (so the two stay comparable). In `KernelMode::Redirect` the
//!   kernel is mounted with `redirect_dir=on` and both must simply agree.
//! - st_nlink of lower hard links (README, "Differences from kernel overlayfs", "Hard
//!   links of lower files"): where st_nlink is the only difference and the object is
//!   a lower file with several names (or a directory holding one in a lower layer),
//!   strata's documented value is checked instead of the kernel's
//!   (`LowerHardLinks::documented_nlink_difference`; the summary line counts the uses).
//! - a rename that fails (README, "Differences from kernel overlayfs"): it changes
//!   nothing in strata, while the kernel may already have copied up the source
//!   directory and its parents (merged: st_nlink 1) and changed the parent's mtime.
//!   When a rename fails on both sides, the tester checks that strata's names and
//!   whole upper layer are unchanged and that the kernel made only those changes;
//!   later tree comparisons tolerate exactly those fields of exactly those directories
//!   (`RenameWatch`, `FailedRenameCopyUps`; the summary line counts them).

// The support wrappers take `impl AsRef<Path>`; this suite's calls pass `&PathBuf`.
#![allow(clippy::needless_borrows_for_generic_args)]

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

// ---------------------------------------------------------------------------------
// case description (a line-based text format, so cases can be pasted as tests)
// ---------------------------------------------------------------------------------

/// One entry of a lower layer: `<layer> <kind> <path> [args]`.
#[derive(Clone, Debug, PartialEq)]
enum LKind {
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        len: usize,
    },
    Dir {
        mode: u32,
    },
    Opaque,
    Sym {
        target: String,
    },
    Hard {
        to: String,
    },
    Fifo {
        mode: u32,
    },
    Whiteout,
    Xattr {
        name: String,
        value: String,
    },
}
#[derive(Clone, Debug, PartialEq)]
struct LEntry {
    layer: usize,
    path: String,
    kind: LKind,
}

#[derive(Clone, Debug, PartialEq)]
enum Op {
    Open {
        slot: usize,
        path: String,
        flags: i32,
        mode: u32,
    },
    Close {
        slot: usize,
    },
    Write {
        slot: usize,
        off: i64,
        len: usize,
        tag: u32,
    },
    Read {
        slot: usize,
        off: i64,
        len: usize,
    },
    Ftrunc {
        slot: usize,
        len: i64,
    },
    Fstat {
        slot: usize,
    },
    WFile {
        path: String,
        off: i64,
        len: usize,
        tag: u32,
    },
    Cat {
        path: String,
    },
    Trunc {
        path: String,
        len: i64,
    },
    Mkdir {
        path: String,
        mode: u32,
    },
    Rmdir {
        path: String,
    },
    Unlink {
        path: String,
    },
    Rename {
        from: String,
        to: String,
        flags: u32,
    },
    Link {
        from: String,
        to: String,
    },
    Symlink {
        target: String,
        path: String,
    },
    Chmod {
        path: String,
        mode: u32,
    },
    Chown {
        path: String,
        uid: u32,
        gid: u32,
        follow: bool,
    },
    Utimens {
        path: String,
        a: (i64, i64),
        m: (i64, i64),
        nofollow: bool,
    },
    Setx {
        path: String,
        name: String,
        value: String,
        flags: i32,
    },
    Getx {
        path: String,
        name: String,
    },
    Rmx {
        path: String,
        name: String,
    },
    Mkfifo {
        path: String,
        mode: u32,
    },
    Ls {
        path: String,
    },
    /// Unmount both sides and mount them again (open files are closed first).
    Remount,
}

#[derive(Clone, Debug, PartialEq)]
struct Case {
    nlayers: usize,
    entries: Vec<LEntry>,
    ops: Vec<Op>,
}

impl fmt::Display for LEntry {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let (l, p) = (self.layer, &self.path);
        match &self.kind {
            LKind::File {
                mode,
                uid,
                gid,
                len,
            } => write!(f, "{l} file {p} {mode:o} {uid} {gid} {len}"),
            LKind::Dir { mode } => write!(f, "{l} dir {p} {mode:o}"),
            LKind::Opaque => write!(f, "{l} opaque {p}"),
            LKind::Sym { target } => write!(f, "{l} sym {p} {target}"),
            LKind::Hard { to } => write!(f, "{l} hard {p} {to}"),
            LKind::Fifo { mode } => write!(f, "{l} fifo {p} {mode:o}"),
            LKind::Whiteout => write!(f, "{l} wh {p}"),
            LKind::Xattr { name, value } => write!(f, "{l} xattr {p} {name} {value}"),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Op::Open {
                slot,
                path,
                flags,
                mode,
            } => write!(f, "open {slot} {path} {} {mode:o}", flags_str(*flags)),
            Op::Close { slot } => write!(f, "close {slot}"),
            Op::Write {
                slot,
                off,
                len,
                tag,
            } => write!(f, "write {slot} {off} {len} {tag}"),
            Op::Read { slot, off, len } => write!(f, "read {slot} {off} {len}"),
            Op::Ftrunc { slot, len } => write!(f, "ftrunc {slot} {len}"),
            Op::Fstat { slot } => write!(f, "fstat {slot}"),
            Op::WFile {
                path,
                off,
                len,
                tag,
            } => write!(f, "wfile {path} {off} {len} {tag}"),
            Op::Cat { path } => write!(f, "cat {path}"),
            Op::Trunc { path, len } => write!(f, "trunc {path} {len}"),
            Op::Mkdir { path, mode } => write!(f, "mkdir {path} {mode:o}"),
            Op::Rmdir { path } => write!(f, "rmdir {path}"),
            Op::Unlink { path } => write!(f, "unlink {path}"),
            Op::Rename { from, to, flags } => write!(
                f,
                "rename {from} {to} {}",
                match *flags {
                    0 => "0",
                    libc::RENAME_NOREPLACE => "noreplace",
                    libc::RENAME_EXCHANGE => "exchange",
                    _ => "?",
                }
            ),
            Op::Link { from, to } => write!(f, "link {from} {to}"),
            Op::Symlink { target, path } => write!(f, "symlink {target} {path}"),
            Op::Chmod { path, mode } => write!(f, "chmod {path} {mode:o}"),
            Op::Chown {
                path,
                uid,
                gid,
                follow,
            } => {
                write!(
                    f,
                    "{} {path} {uid} {gid}",
                    if *follow { "chown" } else { "lchown" }
                )
            }
            Op::Utimens {
                path,
                a,
                m,
                nofollow,
            } => write!(
                f,
                "utimens {path} {} {} {}",
                ts_str(*a),
                ts_str(*m),
                if *nofollow { "nofollow" } else { "follow" }
            ),
            Op::Setx {
                path,
                name,
                value,
                flags,
            } => write!(
                f,
                "setx {path} {name} {value} {}",
                match *flags {
                    libc::XATTR_CREATE => "create",
                    libc::XATTR_REPLACE => "replace",
                    _ => "0",
                }
            ),
            Op::Getx { path, name } => write!(f, "getx {path} {name}"),
            Op::Rmx { path, name } => write!(f, "rmx {path} {name}"),
            Op::Mkfifo { path, mode } => write!(f, "mkfifo {path} {mode:o}"),
            Op::Ls { path } => write!(f, "ls {path}"),
            Op::Remount => write!(f, "remount"),
        }
    }
}

fn ts_str(t: (i64, i64)) -> String {
    match t.1 {
        UTIME_NOW => "now".into(),
        UTIME_OMIT => "omit".into(),
        n => format!("{}.{n}", t.0),
    }
}
fn parse_ts(s: &str) -> (i64, i64) {
    match s {
        "now" => (0, UTIME_NOW),
        "omit" => (0, UTIME_OMIT),
        _ => {
            let (a, b) = s.split_once('.').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        }
    }
}

const FLAG_NAMES: &[(i32, &str)] = &[
    (libc::O_CREAT, "creat"),
    (libc::O_EXCL, "excl"),
    (libc::O_TRUNC, "trunc"),
    (libc::O_APPEND, "append"),
    (libc::O_NOFOLLOW, "nofollow"),
    (libc::O_DIRECTORY, "directory"),
];
fn flags_str(fl: i32) -> String {
    let mut v = vec![match fl & libc::O_ACCMODE {
        libc::O_RDONLY => "rdonly",
        libc::O_WRONLY => "wronly",
        _ => "rdwr",
    }
    .to_string()];
    for (b, n) in FLAG_NAMES {
        if fl & b != 0 {
            v.push(n.to_string());
        }
    }
    v.join("|")
}
fn parse_flags(s: &str) -> i32 {
    let mut fl = 0;
    for part in s.split('|') {
        fl |= match part {
            "rdonly" => libc::O_RDONLY,
            "wronly" => libc::O_WRONLY,
            "rdwr" => libc::O_RDWR,
            p => {
                FLAG_NAMES
                    .iter()
                    .find(|(_, n)| *n == p)
                    .unwrap_or_else(|| panic!("flag {p}"))
                    .0
            }
        };
    }
    fl
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(f, "layers {}", self.nlayers)?;
        for e in &self.entries {
            writeln!(f, "{e}")?;
        }
        for o in &self.ops {
            writeln!(f, "{o}")?;
        }
        Ok(())
    }
}

fn oct(s: &str) -> u32 {
    u32::from_str_radix(s, 8).unwrap()
}

fn parse_case(text: &str) -> Case {
    let mut c = Case {
        nlayers: 1,
        entries: vec![],
        ops: vec![],
    };
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t[0] == "layers" {
            c.nlayers = t[1].parse().unwrap();
            continue;
        }
        if let Ok(layer) = t[0].parse::<usize>() {
            let path = t[2].to_string();
            let kind = match t[1] {
                "file" => LKind::File {
                    mode: oct(t[3]),
                    uid: t[4].parse().unwrap(),
                    gid: t[5].parse().unwrap(),
                    len: t[6].parse().unwrap(),
                },
                "dir" => LKind::Dir { mode: oct(t[3]) },
                "opaque" => LKind::Opaque,
                "sym" => LKind::Sym {
                    target: t[3].into(),
                },
                "hard" => LKind::Hard { to: t[3].into() },
                "fifo" => LKind::Fifo { mode: oct(t[3]) },
                "wh" => LKind::Whiteout,
                "xattr" => LKind::Xattr {
                    name: t[3].into(),
                    value: t[4].into(),
                },
                k => panic!("bad layer entry kind {k}"),
            };
            c.entries.push(LEntry { layer, path, kind });
            continue;
        }
        let n = |i: usize| -> i64 { t[i].parse().unwrap() };
        let op = match t[0] {
            "open" => Op::Open {
                slot: n(1) as usize,
                path: t[2].into(),
                flags: parse_flags(t[3]),
                mode: oct(t[4]),
            },
            "close" => Op::Close {
                slot: n(1) as usize,
            },
            "write" => Op::Write {
                slot: n(1) as usize,
                off: n(2),
                len: n(3) as usize,
                tag: n(4) as u32,
            },
            "read" => Op::Read {
                slot: n(1) as usize,
                off: n(2),
                len: n(3) as usize,
            },
            "ftrunc" => Op::Ftrunc {
                slot: n(1) as usize,
                len: n(2),
            },
            "fstat" => Op::Fstat {
                slot: n(1) as usize,
            },
            "wfile" => Op::WFile {
                path: t[1].into(),
                off: n(2),
                len: n(3) as usize,
                tag: n(4) as u32,
            },
            "cat" => Op::Cat { path: t[1].into() },
            "trunc" => Op::Trunc {
                path: t[1].into(),
                len: n(2),
            },
            "mkdir" => Op::Mkdir {
                path: t[1].into(),
                mode: oct(t[2]),
            },
            "rmdir" => Op::Rmdir { path: t[1].into() },
            "unlink" => Op::Unlink { path: t[1].into() },
            "rename" => Op::Rename {
                from: t[1].into(),
                to: t[2].into(),
                flags: match t[3] {
                    "noreplace" => libc::RENAME_NOREPLACE,
                    "exchange" => libc::RENAME_EXCHANGE,
                    _ => 0,
                },
            },
            "link" => Op::Link {
                from: t[1].into(),
                to: t[2].into(),
            },
            "symlink" => Op::Symlink {
                target: t[1].into(),
                path: t[2].into(),
            },
            "chmod" => Op::Chmod {
                path: t[1].into(),
                mode: oct(t[2]),
            },
            "chown" | "lchown" => Op::Chown {
                path: t[1].into(),
                uid: n(2) as u32,
                gid: n(3) as u32,
                follow: t[0] == "chown",
            },
            "utimens" => Op::Utimens {
                path: t[1].into(),
                a: parse_ts(t[2]),
                m: parse_ts(t[3]),
                nofollow: t[4] == "nofollow",
            },
            "setx" => Op::Setx {
                path: t[1].into(),
                name: t[2].into(),
                value: t[3].into(),
                flags: match t[4] {
                    "create" => libc::XATTR_CREATE,
                    "replace" => libc::XATTR_REPLACE,
                    _ => 0,
                },
            },
            "getx" => Op::Getx {
                path: t[1].into(),
                name: t[2].into(),
            },
            "rmx" => Op::Rmx {
                path: t[1].into(),
                name: t[2].into(),
            },
            "mkfifo" => Op::Mkfifo {
                path: t[1].into(),
                mode: oct(t[2]),
            },
            "ls" => Op::Ls { path: t[1].into() },
            "remount" => Op::Remount,
            o => panic!("bad op {o}"),
        };
        c.ops.push(op);
    }
    c
}

// ---------------------------------------------------------------------------------
// random generation
// ---------------------------------------------------------------------------------

const NAMES: &[&str] = &["a", "b", "c", "d"];
const IDS: &[u32] = &[0, 1000, 1002, 65534];
const XNAMES: &[&str] = &["user.a", "user.b", "user.c"];
const SLOTS: usize = 3;

fn rand_path(r: &mut Rng) -> String {
    let depth = match r.below(10) {
        0..=3 => 1,
        4..=7 => 2,
        _ => 3,
    };
    (0..depth)
        .map(|_| *r.pick(NAMES))
        .collect::<Vec<_>>()
        .join("/")
}
/// Symlink targets stay inside the mount: relative, without "..".
fn rand_target(r: &mut Rng) -> String {
    match r.below(4) {
        0 => r.pick(NAMES).to_string(),
        1 => format!("{}/{}", r.pick(NAMES), r.pick(NAMES)),
        2 => "nowhere".to_string(),
        _ => format!("{}/{}/{}", r.pick(NAMES), r.pick(NAMES), r.pick(NAMES)),
    }
}
fn rand_mode(r: &mut Rng, dir: bool) -> u32 {
    let base = *r.pick(if dir {
        &[0o755, 0o700, 0o777, 0o555][..]
    } else {
        &[0o644, 0o600, 0o666, 0o444, 0o755][..]
    });
    if r.chance(1, 10) {
        base | *r.pick(&[libc::S_ISUID, libc::S_ISGID, libc::S_ISVTX])
    } else {
        base
    }
}

fn gen_case(seed: u64, nops: usize) -> Case {
    let mut r = Rng::new(seed);
    let nlayers = 1 + r.below(4) as usize;
    let mut entries = Vec::new();
    for layer in 0..nlayers {
        let n = 4 + r.below(14);
        for _ in 0..n {
            let path = rand_path(&mut r);
            let kind = match r.below(100) {
                0..=29 => LKind::Dir {
                    mode: rand_mode(&mut r, true),
                },
                30..=59 => LKind::File {
                    mode: rand_mode(&mut r, false),
                    uid: *r.pick(IDS),
                    gid: *r.pick(IDS),
                    len: if r.chance(1, 10) {
                        70_000
                    } else {
                        r.below(100) as usize
                    },
                },
                60..=66 => LKind::Sym {
                    target: rand_target(&mut r),
                },
                67..=72 if !no_lower_hardlinks() => LKind::Hard {
                    to: rand_path(&mut r),
                },
                67..=72 => LKind::Dir { mode: 0o755 },
                73..=76 => LKind::Fifo { mode: 0o644 },
                77..=86 => LKind::Whiteout,
                87..=92 => LKind::Opaque,
                _ => LKind::Xattr {
                    name: r.pick(XNAMES).to_string(),
                    value: format!("v{}", r.below(100)),
                },
            };
            entries.push(LEntry { layer, path, kind });
        }
    }
    let mut ops = Vec::new();
    for _ in 0..nops {
        ops.push(gen_op(&mut r));
    }
    Case {
        nlayers,
        entries,
        ops,
    }
}

fn gen_op(r: &mut Rng) -> Op {
    let p = rand_path(r);
    let slot = r.below(SLOTS as u64) as usize;
    match r.below(100) {
        0..=9 => {
            let mut flags = *r.pick(&[libc::O_RDONLY, libc::O_WRONLY, libc::O_RDWR, libc::O_RDWR]);
            if r.chance(1, 2) {
                flags |= libc::O_CREAT;
                if r.chance(1, 4) {
                    flags |= libc::O_EXCL;
                }
            }
            if r.chance(1, 5) {
                flags |= libc::O_TRUNC;
            }
            if r.chance(1, 10) {
                flags |= libc::O_APPEND;
            }
            if r.chance(1, 10) {
                flags |= libc::O_NOFOLLOW;
            }
            if r.chance(1, 20) {
                flags |= libc::O_DIRECTORY;
            }
            Op::Open {
                slot,
                path: p,
                flags,
                mode: rand_mode(r, false),
            }
        }
        10..=13 => Op::Close { slot },
        14..=20 => Op::Write {
            slot,
            off: if r.chance(1, 10) {
                1 << 20
            } else {
                r.below(3000) as i64
            },
            len: 1 + r.below(200) as usize,
            tag: r.below(1000) as u32,
        },
        21..=25 => Op::Read {
            slot,
            off: r.below(200) as i64,
            len: 1 + r.below(300) as usize,
        },
        26..=27 => Op::Ftrunc {
            slot,
            len: r.below(2000) as i64,
        },
        28 => Op::Fstat { slot },
        29..=33 => Op::WFile {
            path: p,
            off: r.below(200) as i64,
            len: 1 + r.below(100) as usize,
            tag: r.below(1000) as u32,
        },
        34..=35 => Op::Cat { path: p },
        36..=38 => Op::Trunc {
            path: p,
            len: r.below(200) as i64,
        },
        39..=45 => Op::Mkdir {
            path: p,
            mode: rand_mode(r, true),
        },
        46..=49 => Op::Rmdir { path: p },
        50..=54 => Op::Unlink { path: p },
        55..=64 => Op::Rename {
            from: p,
            to: rand_path(r),
            flags: *r.pick(&[0, 0, 0, libc::RENAME_NOREPLACE, libc::RENAME_EXCHANGE]),
        },
        65..=67 => Op::Link {
            from: p,
            to: rand_path(r),
        },
        68..=70 => Op::Symlink {
            target: rand_target(r),
            path: p,
        },
        71..=74 => {
            let d = r.chance(1, 2);
            Op::Chmod {
                path: p,
                mode: rand_mode(r, d),
            }
        }
        75..=77 => Op::Chown {
            path: p,
            uid: *r.pick(IDS),
            gid: *r.pick(IDS),
            follow: r.chance(1, 2),
        },
        78..=81 => {
            let mut t = || match r.below(5) {
                0 => (0, UTIME_OMIT),
                1 => (0, UTIME_NOW),
                _ => (
                    1_000_000_000 + r.below(100_000_000) as i64,
                    r.below(1_000_000_000) as i64,
                ),
            };
            let (a, m) = (t(), t());
            Op::Utimens {
                path: p,
                a,
                m,
                nofollow: r.chance(1, 3),
            }
        }
        82..=86 => Op::Setx {
            path: p,
            name: if r.chance(1, 12) {
                "trusted.overlay.opaque".into()
            } else {
                r.pick(XNAMES).to_string()
            },
            value: format!("x{}", r.below(1000)),
            flags: *r.pick(&[0, 0, libc::XATTR_CREATE, libc::XATTR_REPLACE]),
        },
        87..=88 => Op::Getx {
            path: p,
            name: r
                .pick(&[
                    "user.a",
                    "user.b",
                    "trusted.overlay.opaque",
                    "trusted.overlay.redirect",
                ])
                .to_string(),
        },
        89..=91 => Op::Rmx {
            path: p,
            name: r.pick(XNAMES).to_string(),
        },
        92..=94 => Op::Mkfifo {
            path: p,
            mode: 0o644,
        },
        _ if r.chance(1, 3) => Op::Remount,
        _ => Op::Ls {
            path: if r.chance(1, 4) { ".".into() } else { p },
        },
    }
}

// ---------------------------------------------------------------------------------
// building layers
// ---------------------------------------------------------------------------------

fn hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
fn lower_content(layer: usize, path: &str, len: usize) -> Vec<u8> {
    let pat = format!("[L{layer}:{path}]");
    pat.bytes().cycle().take(len).collect()
}
fn write_data(tag: u32, len: usize) -> Vec<u8> {
    let pat = format!("<{tag}>");
    pat.bytes().cycle().take(len).collect()
}

fn build_layers(base: &Path, c: &Case) -> Vec<PathBuf> {
    let roots: Vec<PathBuf> = (0..c.nlayers)
        .map(|i| {
            let p = base.join(format!("l{i}"));
            fs::create_dir_all(&p).unwrap();
            p
        })
        .collect();
    for e in &c.entries {
        if e.layer >= c.nlayers {
            continue;
        }
        let root = &roots[e.layer];
        let p = root.join(&e.path);
        // Parents: mkdir -p (skipped when a parent is not a directory).
        if let Some(parent) = Path::new(&e.path).parent() {
            if fs::create_dir_all(root.join(parent)).is_err() {
                continue;
            }
        }
        let _ = match &e.kind {
            LKind::File {
                mode,
                uid,
                gid,
                len,
            } => (|| {
                let fd = open(&p, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600)?;
                fd.write(&lower_content(e.layer, &e.path, *len))?;
                fd.fchown(*uid, *gid)?;
                fd.fchmod(*mode)
            })(),
            LKind::Dir { mode } => mkdir(&p, 0o755).and_then(|_| chmod(&p, *mode)),
            LKind::Opaque => {
                let _ = mkdir(&p, 0o755);
                if lstat(&p)
                    .map(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR)
                    .unwrap_or(false)
                {
                    lsetxattr(&p, "trusted.overlay.opaque", b"y")
                } else {
                    Ok(())
                }
            }
            LKind::Sym { target } => symlink(target, &p),
            LKind::Hard { to } => {
                let t = root.join(to);
                if lstat(&t)
                    .map(|s| s.st_mode & libc::S_IFMT == libc::S_IFREG)
                    .unwrap_or(false)
                {
                    link(&t, &p)
                } else {
                    Ok(())
                }
            }
            LKind::Fifo { mode } => mkfifo(&p, *mode),
            LKind::Whiteout => mknod(&p, libc::S_IFCHR, 0),
            LKind::Xattr { name, value } => {
                if lstat(&p)
                    .map(|s| matches!(s.st_mode & libc::S_IFMT, libc::S_IFREG | libc::S_IFDIR))
                    .unwrap_or(false)
                {
                    lsetxattr(&p, name, value.as_bytes())
                } else {
                    Ok(())
                }
            }
        };
    }
    // Fixed, old times everywhere (children before parents).
    for (i, root) in roots.iter().enumerate() {
        let mut all: Vec<PathBuf> = walkdir::WalkDir::new(root)
            .contents_first(true)
            .into_iter()
            .flatten()
            .map(|e| e.path().to_path_buf())
            .collect();
        all.dedup();
        for p in all {
            let h = hash(&format!("{i}{}", p.strip_prefix(root).unwrap().display()));
            let t = (
                1_400_000_000 + (h % 1_000_000) as i64,
                (h % 1_000_000_000) as i64,
            );
            let _ = utimensat(&p, t, t, libc::AT_SYMLINK_NOFOLLOW);
        }
    }
    roots
}

// ---------------------------------------------------------------------------------
// running operations
// ---------------------------------------------------------------------------------

#[derive(Copy, Clone, Debug, PartialEq)]
enum KernelMode {
    /// kernel mounted with redirect_dir=on: both must agree everywhere.
    Redirect,
    /// kernel with default options (EXDEV for directory renames).
    Default,
}

struct Side {
    root: PathBuf,
    fds: Vec<Option<Fd>>,
    /// The path each slot was opened with.
    paths: Vec<Option<String>>,
    kernel: bool,
}
impl Side {
    fn new(root: &Path, kernel: bool) -> Side {
        Side {
            root: root.to_path_buf(),
            fds: (0..SLOTS).map(|_| None).collect(),
            paths: vec![None; SLOTS],
            kernel,
        }
    }
    fn p(&self, rel: &str) -> PathBuf {
        if rel == "." {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }
    /// fsync every open file: with the writeback cache (rootless configuration) a
    /// write may still be dirty pages, and syncfs does not wait for FUSE writes
    /// the server has not finished; fsync does.
    fn flush_writes(&self) {
        for fd in self.fds.iter().flatten() {
            // SAFETY: fsync on an fd this side owns; errors (a directory, EBADF) are moot.
            unsafe { libc::fsync(fd.0) };
        }
    }
    fn fd(&self, slot: usize) -> std::io::Result<&Fd> {
        self.fds[slot]
            .as_ref()
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EBADF))
    }
}

/// What an operation returned: a value rendered as text, or an errno.
type Outcome = Result<String, i32>;

fn res<T>(r: std::io::Result<T>, show: impl FnOnce(T) -> String) -> Outcome {
    match r {
        Ok(v) => Ok(show(v)),
        Err(e) => Err(e.raw_os_error().unwrap_or(-1)),
    }
}

fn apply(s: &mut Side, op: &Op) -> Outcome {
    match op {
        Op::Open {
            slot,
            path,
            flags,
            mode,
        } => {
            s.fds[*slot] = None;
            s.paths[*slot] = None;
            let r = open(&s.p(path), *flags | libc::O_NONBLOCK, *mode);
            match r {
                Ok(fd) => {
                    s.fds[*slot] = Some(fd);
                    s.paths[*slot] = Some(path.clone());
                    Ok(String::new())
                }
                Err(e) => Err(e.raw_os_error().unwrap_or(-1)),
            }
        }
        Op::Close { slot } => match s.fds[*slot].take() {
            Some(fd) => res(fd.close(), |_| String::new()),
            None => Err(libc::EBADF),
        },
        Op::Write {
            slot,
            off,
            len,
            tag,
        } => {
            let data = write_data(*tag, *len);
            res(s.fd(*slot).and_then(|fd| fd.pwrite(&data, *off)), |n| {
                n.to_string()
            })
        }
        Op::Read { slot, off, len } => res(s.fd(*slot).and_then(|fd| fd.pread(*len, *off)), |b| {
            format!("{:?}", String::from_utf8_lossy(&b))
        }),
        Op::Ftrunc { slot, len } => res(s.fd(*slot).and_then(|fd| fd.ftruncate(*len)), |_| {
            String::new()
        }),
        Op::Fstat { slot } => res(s.fd(*slot).and_then(|fd| fd.fstat()), |st| {
            sig_of(&st, true)
        }),
        Op::WFile {
            path,
            off,
            len,
            tag,
        } => {
            let data = write_data(*tag, *len);
            res(
                open(&s.p(path), libc::O_WRONLY | libc::O_NONBLOCK, 0).and_then(|fd| {
                    fd.pwrite(&data, *off)?;
                    fd.close()
                }),
                |_| String::new(),
            )
        }
        Op::Cat { path } => res(
            open(&s.p(path), libc::O_RDONLY | libc::O_NONBLOCK, 0)
                .and_then(|fd| fd.pread(1 << 20, 0)),
            |b| format!("{:?}", String::from_utf8_lossy(&b)),
        ),
        Op::Trunc { path, len } => res(truncate(&s.p(path), *len), |_| String::new()),
        Op::Mkdir { path, mode } => res(mkdir(&s.p(path), *mode), |_| String::new()),
        Op::Rmdir { path } => res(rmdir(&s.p(path)), |_| String::new()),
        Op::Unlink { path } => res(unlink(&s.p(path)), |_| String::new()),
        Op::Rename { from, to, flags } => {
            res(renameat2(&s.p(from), &s.p(to), *flags), |_| String::new())
        }
        Op::Link { from, to } => res(link(&s.p(from), &s.p(to)), |_| String::new()),
        Op::Symlink { target, path } => res(symlink(target, &s.p(path)), |_| String::new()),
        Op::Chmod { path, mode } => res(chmod(&s.p(path), *mode), |_| String::new()),
        Op::Chown {
            path,
            uid,
            gid,
            follow,
        } => res(
            if *follow {
                chown(&s.p(path), *uid, *gid)
            } else {
                lchown(&s.p(path), *uid, *gid)
            },
            |_| String::new(),
        ),
        Op::Utimens {
            path,
            a,
            m,
            nofollow,
        } => res(
            utimensat(
                &s.p(path),
                *a,
                *m,
                if *nofollow {
                    libc::AT_SYMLINK_NOFOLLOW
                } else {
                    0
                },
            ),
            |_| String::new(),
        ),
        Op::Setx {
            path,
            name,
            value,
            flags,
        } => res(
            lsetxattr_flags(&s.p(path), name, value.as_bytes(), *flags),
            |_| String::new(),
        ),
        Op::Getx { path, name } => res(lgetxattr(&s.p(path), name), |v| {
            String::from_utf8_lossy(&v).into_owned()
        }),
        Op::Rmx { path, name } => res(lremovexattr(&s.p(path), name), |_| String::new()),
        Op::Mkfifo { path, mode } => res(mkfifo(&s.p(path), *mode), |_| String::new()),
        Op::Remount => unreachable!("handled by run_case"),
        Op::Ls { path } => {
            let dir = s.p(path);
            let kernel = s.kernel;
            res(list_dir(&dir), |v| {
                v.into_iter()
                    .filter(|n| !kernel || eno(&lstat(&dir.join(n))) != libc::ENOENT)
                    .collect::<Vec<_>>()
                    .join(",")
            })
        }
    }
}

/// The stat fields both implementations define (not st_ino, not ctime/atime).
fn sig_of(st: &libc::stat, with_nlink: bool) -> String {
    let kind = kind_of(st.st_mode);
    let mut s = format!(
        "{kind} {:o} {}:{}",
        st.st_mode & 0o7777,
        st.st_uid,
        st.st_gid
    );
    if kind != 'd' {
        s.push_str(&format!(" size={}", st.st_size));
        if with_nlink {
            s.push_str(&format!(" nlink={}", st.st_nlink));
        }
    }
    if kind == 'c' || kind == 'b' {
        s.push_str(&format!(" rdev={}", st.st_rdev));
    }
    s
}
/// `STRATA_DIFF_NO_LOWER_HARDLINKS=1`: generate no hard links in the lowers (for
/// exploring past a known bug in long runs).
fn no_lower_hardlinks() -> bool {
    std::env::var("STRATA_DIFF_NO_LOWER_HARDLINKS").is_ok()
}

/// `STRATA_DIFF_SKIP_DIR_NLINK=1` leaves directory st_nlink out of the final
/// comparison: for exploring past a known bug (see the regressions) in long runs.
fn skip_dir_nlink() -> bool {
    std::env::var("STRATA_DIFF_SKIP_DIR_NLINK").is_ok()
}

fn time_str(sec: i64, ns: i64) -> String {
    if sec < SNAP_BEFORE {
        format!("{sec}.{ns}")
    } else {
        "new".to_string()
    }
}

fn sig(p: &Path, with_nlink: bool, times: (bool, bool)) -> String {
    match lstat(p) {
        Ok(st) => {
            let mut s = sig_of(&st, with_nlink);
            if times.0 || times.1 {
                // Times set explicitly are old; "now" differs between the two.
                let t = |sec: i64, ns: i64| {
                    if sec < SNAP_BEFORE {
                        format!("{sec}.{ns}")
                    } else {
                        "new".to_string()
                    }
                };
                if times.0 {
                    s.push_str(&format!(" atime={}", t(st.st_atime, st.st_atime_nsec)));
                }
                if times.1 {
                    s.push_str(&format!(" mtime={}", t(st.st_mtime, st.st_mtime_nsec)));
                }
            }
            s
        }
        Err(e) => errname(e.raw_os_error().unwrap_or(-1)),
    }
}

fn parent_of(p: &str) -> String {
    match p.rsplit_once('/') {
        Some((a, _)) => a.to_string(),
        None => ".".to_string(),
    }
}

fn op_paths(op: &Op) -> Vec<String> {
    let mut v = Vec::new();
    match op {
        Op::Open { path, .. }
        | Op::WFile { path, .. }
        | Op::Cat { path, .. }
        | Op::Trunc { path, .. }
        | Op::Mkdir { path, .. }
        | Op::Rmdir { path }
        | Op::Unlink { path }
        | Op::Symlink { path, .. }
        | Op::Chmod { path, .. }
        | Op::Chown { path, .. }
        | Op::Utimens { path, .. }
        | Op::Setx { path, .. }
        | Op::Getx { path, .. }
        | Op::Rmx { path, .. }
        | Op::Mkfifo { path, .. }
        | Op::Ls { path } => v.push(path.clone()),
        Op::Rename { from, to, .. } | Op::Link { from, to } => {
            v.push(from.clone());
            v.push(to.clone());
        }
        _ => {}
    }
    let parents: Vec<String> = v.iter().map(|p| parent_of(p)).collect();
    v.extend(parents);
    v.sort();
    v.dedup();
    v
}

struct Failure {
    op_index: Option<usize>,
    msg: String,
}

#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    ops: usize,
    /// Operations left out after a replayed EXDEV rename of a tree with hard links.
    ops_cut: usize,
    exdev_renames: usize,
    /// st_nlink differences accepted as strata's documented hard-link behaviour.
    nlink_documented: usize,
    /// Renames failed on both sides, checked: strata changed nothing.
    failed_renames: usize,
    /// Of those, the ones where the kernel had copied up directories (documented).
    failed_rename_copyups: usize,
    /// Tree nodes compared with those copy-ups' st_nlink/mtime tolerated.
    failed_rename_tolerated: usize,
}

const SNAP_BEFORE: i64 = 1_600_000_000; // anything a case sets explicitly is older

fn snap_opts() -> SnapOpts {
    SnapOpts {
        mtime_before: Some(SNAP_BEFORE),
        dir_nlink: true,
        skip_enoent: false,
    }
}

/// The kernel side: kernel overlayfs lists a whiteout found in a directory it does not
/// merge (a directory of one layer only), though lookup says ENOENT. A kernel quirk,
/// not a semantic strata must copy: such names are left out on the kernel side.
fn ksnap_opts(dir_nlink: bool) -> SnapOpts {
    SnapOpts {
        mtime_before: Some(SNAP_BEFORE),
        dir_nlink,
        skip_enoent: true,
    }
}

/// Recursively copies `src` to `dst` on one mount (to replay, on the kernel side, a
/// directory rename that the kernel refused with EXDEV).
fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    let st = lstat(src)?;
    match kind_of(st.st_mode) {
        'd' => {
            mkdir(dst, 0o700)?;
            for n in list_dir(src)? {
                if eno(&lstat(&src.join(&n))) == libc::ENOENT {
                    continue; // a whiteout the kernel lists (see ksnap_opts)
                }
                copy_tree(&src.join(&n), &dst.join(&n))?;
            }
            chmod(dst, st.st_mode & 0o7777)?;
        }
        'f' => {
            fs::write(dst, fs::read(src)?)?;
            chmod(dst, st.st_mode & 0o7777)?;
        }
        'l' => {
            let t = readlink(src)?;
            symlink(&String::from_utf8(t).unwrap(), dst)?;
        }
        'p' => mkfifo(dst, st.st_mode & 0o7777)?,
        _ => mknod(dst, st.st_mode, st.st_rdev)?,
    }
    lchown(dst, st.st_uid, st.st_gid)?;
    if kind_of(st.st_mode) != 'l' {
        chmod(dst, st.st_mode & 0o7777)?; // chown clears set-id bits
        for n in llistxattr(src)? {
            if n.starts_with("user.") {
                lsetxattr(dst, &n, &lgetxattr(src, &n)?)?;
            }
        }
    }
    utimensat(
        dst,
        (st.st_atime, st.st_atime_nsec),
        (st.st_mtime, st.st_mtime_nsec),
        libc::AT_SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}
fn remove_tree(p: &Path) -> std::io::Result<()> {
    let st = lstat(p)?;
    if kind_of(st.st_mode) == 'd' {
        for n in list_dir(p)? {
            if eno(&lstat(&p.join(&n))) == libc::ENOENT {
                continue;
            }
            remove_tree(&p.join(n))?;
        }
        rmdir(p)
    } else {
        unlink(p)
    }
}

fn sub_snapshot(root: &Path, rel: &str, kernel: bool) -> (String, DiffTree) {
    let p = root.join(rel);
    let top = match lstat(&p) {
        Ok(st) => {
            let mut x = BTreeMap::new();
            for n in llistxattr(&p).unwrap_or_default() {
                if n.starts_with("user.") {
                    x.insert(n.clone(), lgetxattr(&p, &n).unwrap_or_default());
                }
            }
            format!("{} {x:?}", sig_of(&st, false))
        }
        Err(e) => errname(e.raw_os_error().unwrap_or(-1)),
    };
    let tree = if lstat(&p)
        .map(|s| kind_of(s.st_mode) == 'd')
        .unwrap_or(false)
    {
        diff_snapshot(
            &p,
            &SnapOpts {
                dir_nlink: false,
                ..if kernel {
                    ksnap_opts(false)
                } else {
                    snap_opts()
                }
            },
        )
    } else {
        DiffTree::default()
    };
    (top, tree)
}

/// One case at a time in this process. A child that another test thread spawns holds a
/// copy of every fd of this process until it execs (O_CLOEXEC closes them only then), so
/// for that moment a fifo that a case has closed keeps a reader or a writer on one side
/// only, and an O_NONBLOCK open or a read of it answers differently. Seed 27120126 (the
/// redirect pass, in a run beside the EXDEV pass; it passes alone): after the only reader
/// was closed, the kernel side's `O_WRONLY|O_NONBLOCK` open of the fifo succeeded, and
/// strata's side answered ENXIO, as it should.
static ONE_CASE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs one case: fresh layers, both mounts, every operation, final comparisons.
fn run_case(c: &Case, mode: KernelMode) -> Result<Stats, Failure> {
    let _one_case = ONE_CASE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let scratch = TestDir::tagged("diff");
    let s_base = scratch.dir("s");
    let k_base = scratch.dir("k");
    let s_lowers = build_layers(&s_base, c);
    let k_lowers = build_layers(&k_base, c);
    let (s_up, s_work, s_mnt) = (
        scratch.dir("s/upper"),
        scratch.dir("s/work"),
        scratch.dir("s/mnt"),
    );
    let (k_up, k_work, k_mnt) = (
        scratch.dir("k/upper"),
        scratch.dir("k/work"),
        scratch.dir("k/mnt"),
    );
    let fail = |i: Option<usize>, msg: String| Failure { op_index: i, msg };

    let s_opts = ovl_opts(&s_lowers, Some(&s_up), Some(&s_work));
    let mut strata = Mount::try_new(&s_opts, &s_mnt)
        .map_err(|e| fail(None, format!("strata mount failed: {e}")))?;
    let mut kopts = ovl_opts(&k_lowers, Some(&k_up), Some(&k_work));
    // index=on: the kernel keeps lower hard links linked across copy-up, as strata
    // does (without it the kernel breaks them).
    kopts.push_str(",index=on");
    if mode == KernelMode::Redirect {
        kopts.push_str(",redirect_dir=on");
    }
    let mut kernel = KernelOverlay::new(&kopts, &k_mnt);
    let mut hl = LowerHardLinks::scan(&k_lowers, &s_up, &k_up);
    hl.mounted(&k_mnt);
    let mut fr = FailedRenameCopyUps::default();

    // Same starting tree.
    let d0 = diff_trees(
        "strata",
        &diff_snapshot(&s_mnt, &snap_opts()),
        "kernel",
        &diff_snapshot(&k_mnt, &ksnap_opts(true)),
        true,
    );
    if !d0.is_empty() {
        return Err(fail(
            None,
            format!("initial trees differ:\n  {}", d0.join("\n  ")),
        ));
    }

    let mut st = Side::new(&s_mnt, false);
    let mut kt = Side::new(&k_mnt, true);
    let mut stats = Stats::default();
    let mut links_reliable = true;
    for (i, op) in c.ops.iter().enumerate() {
        stats.ops += 1;
        if *op == Op::Remount {
            for slot in 0..SLOTS {
                st.fds[slot] = None;
                kt.fds[slot] = None;
            }
            drop(kernel);
            strata.umount();
            strata = Mount::try_new(&s_opts, &s_mnt).map_err(|e| {
                fail(
                    Some(i),
                    format!("op #{i} remount: strata mount failed: {e}"),
                )
            })?;
            kernel = KernelOverlay::try_new(&kopts, &k_mnt).map_err(|e| {
                fail(
                    Some(i),
                    format!("op #{i} remount: kernel mount failed: {e}"),
                )
            })?;
            let mut a = diff_snapshot(
                &s_mnt,
                &SnapOpts {
                    dir_nlink: links_reliable && !skip_dir_nlink(),
                    ..snap_opts()
                },
            );
            let mut b = diff_snapshot(&k_mnt, &ksnap_opts(links_reliable && !skip_dir_nlink()));
            if !links_reliable {
                a = strip_nlink(a);
                b = strip_nlink(b);
            }
            hl.mounted(&k_mnt);
            fr.reconcile(&a, &mut b, &k_mnt, "");
            hl.reconcile(&mut a, "", &b, &k_mnt, "");
            let d = diff_trees("strata", &a, "kernel", &b, links_reliable);
            if !d.is_empty() {
                return Err(fail(
                    Some(i),
                    format!("after op #{i} remount: trees differ:\n  {}", d.join("\n  ")),
                ));
            }
            continue;
        }
        if let Some(expect) = private_xattr_expectation(&st, op) {
            // Documented: overlay-private xattrs never show through strata and can't be
            // set through it (the kernel, since 6.7, maps them to escaped names
            // instead). Checked on strata only; the kernel side is left alone.
            let so = apply(&mut st, op);
            if so != Err(expect) {
                return Err(fail(
                    Some(i),
                    format!(
                        "op #{i} `{op}` (overlay-private xattr): strata {} (expected {})",
                        show(&so),
                        errname(expect)
                    ),
                ));
            }
            continue;
        }
        // A rename's names with their directories' symlinks resolved beforehand: the
        // rename may replace such a symlink (the EXDEV check and replay need them).
        let resolved = match op {
            Op::Rename { from, to, .. } => {
                Some((resolve_dirs(&k_mnt, from), resolve_dirs(&k_mnt, to)))
            }
            _ => None,
        };
        let watch = match op {
            Op::Rename { from, to, .. } => {
                st.flush_writes();
                Some(RenameWatch::before(&s_mnt, &s_up, &k_mnt, &k_up, from, to))
            }
            _ => None,
        };
        let so = apply(&mut st, op);
        let ko = apply(&mut kt, op);
        let refused_later = so != ko
            && matches!(op, Op::Rename { .. })
            && mode == KernelMode::Default
            && ko == Err(libc::EXDEV)
            && matches!(so, Err(e) if [libc::ENOTEMPTY, libc::EEXIST, libc::ENOTDIR, libc::EISDIR, libc::EINVAL].contains(&e));
        if let (Some(w), Err(_), Err(_)) = (&watch, &so, &ko) {
            if so == ko || refused_later {
                // Documented: a failed rename changes nothing in strata; the kernel may
                // have copied up directories (`FailedRenameCopyUps`).
                stats.failed_renames += 1;
                w.check_strata(&s_mnt, &s_up).map_err(|d| {
                    fail(
                        Some(i),
                        format!(
                            "op #{i} `{op}` failed ({}) but strata changed:\n  {d}",
                            show(&so)
                        ),
                    )
                })?;
                w.check_kernel(&k_mnt, &k_up, &mut fr).map_err(|d| {
                    fail(
                        Some(i),
                        format!(
                            "op #{i} `{op}` failed ({}) but the kernel changed more than the documented copy-up:\n  {d}",
                            show(&ko)
                        ),
                    )
                })?;
            }
        }
        if refused_later {
            // strata goes on with the rename the kernel refused with EXDEV; it may then
            // fail for the reason a rename would (a non-empty target directory...).
            // Nothing changed on either side: the stat comparison below checks it.
            stats.exdev_renames += 1;
        } else if so != ko
            && matches!(op, Op::Fstat { slot } if links_reliable && hl.fstat_documented(&st, &kt, *slot))
        {
            // Only st_nlink differs, as documented (lower hard links).
        } else if so != ko {
            // The documented difference: strata renames a directory the kernel won't.
            let is_exdev = matches!(op, Op::Rename { .. })
                && mode == KernelMode::Default
                && ko == Err(libc::EXDEV);
            if !(is_exdev && so.is_ok()) {
                return Err(fail(
                    Some(i),
                    format!(
                        "op #{i} `{op}`: strata {} vs kernel {}",
                        show(&so),
                        show(&ko)
                    ),
                ));
            }
            let (Op::Rename { flags, .. }, Some((from, to))) = (op, &resolved) else {
                unreachable!()
            };
            stats.exdev_renames += 1;
            // strata's new name must hold what the kernel still has under the old one.
            let pairs: Vec<(&String, &String)> = if *flags == libc::RENAME_EXCHANGE {
                vec![(from, to), (to, from)]
            } else {
                vec![(from, to)]
            };
            for (old, new) in &pairs {
                let (ktop, ktree) = sub_snapshot(&k_mnt, old, true);
                let (stop, stree) = sub_snapshot(&s_mnt, new, false);
                // (After an earlier replay the kernel's hard links are copies.)
                let (mut stree, mut ktree) = if links_reliable {
                    (stree, ktree)
                } else {
                    (strip_nlink(stree), strip_nlink(ktree))
                };
                fr.reconcile(&stree, &mut ktree, &k_mnt, old);
                hl.reconcile(&mut stree, new, &ktree, &k_mnt, old);
                let d = diff_trees("strata", &stree, "kernel", &ktree, false);
                if ktop != stop || !d.is_empty() {
                    return Err(fail(
                        Some(i),
                        format!("op #{i} `{op}` (kernel EXDEV): strata's {new} [{stop}] differs from kernel's {old} [{ktop}]:\n  {}", d.join("\n  ")),
                    ));
                }
            }
            // Replay it on the kernel side by copying.
            let (kf, kto) = (kt.p(from), kt.p(to));
            let replay = || -> std::io::Result<()> {
                if *flags == libc::RENAME_EXCHANGE {
                    let tmp = k_mnt.join(".xchg");
                    copy_tree(&kf, &tmp)?;
                    remove_tree(&kf)?;
                    copy_tree(&kto, &kf)?;
                    remove_tree(&kto)?;
                    copy_tree(&tmp, &kto)?;
                    remove_tree(&tmp)
                } else {
                    if lstat(&kto).is_ok() {
                        remove_tree(&kto)?;
                    }
                    copy_tree(&kf, &kto)?;
                    remove_tree(&kf)
                }
            };
            // A copy can't keep hard links between the moved tree and the rest: if the
            // moved tree holds a multiply-linked file, the two sides would drift apart
            // on any later change through another name. Stop the sequence there.
            let shared = [from, to].iter().any(|n| has_multilinked(&st.p(n)));
            // The copy gives the kernel's directories new inodes: carry over which of
            // them a failed rename had changed, by their places in the moved trees.
            let mut moved = vec![(fr.dirs_under(&kf), kto.clone())];
            if *flags == libc::RENAME_EXCHANGE {
                moved.push((fr.dirs_under(&kto), kf.clone()));
            }
            replay()
                .map_err(|e| fail(Some(i), format!("replaying `{op}` on the kernel side: {e}")))?;
            for (rels, dst) in &moved {
                fr.mark(dst, rels);
            }
            links_reliable = false;
            if shared {
                stats.ops_cut += c.ops.len() - i - 1;
                for slot in 0..SLOTS {
                    st.fds[slot] = None;
                    kt.fds[slot] = None;
                }
                break;
            }
            // Open files on the kernel side now point at the removed originals: the
            // two sides' fds are no longer comparable. Close them all on both sides.
            for slot in 0..SLOTS {
                st.fds[slot] = None;
                kt.fds[slot] = None;
            }
        }
        // stat of every path involved and its parent.
        // Times: only those the operation set (UTIME_OMIT leaves a time alone, and
        // atime is not compared otherwise: lookups may read a lower directory).
        let target = match op {
            Op::Utimens {
                path,
                a,
                m,
                nofollow: true,
            } => Some((path.clone(), a.1 != UTIME_OMIT, m.1 != UTIME_OMIT)),
            _ => None,
        };
        if let Op::Utimens {
            path,
            a,
            m,
            nofollow: false,
        } = op
        {
            // The times went to the symlink's target: compare with stat(2).
            let t = |p: &Path| match stat(p) {
                Ok(s) => format!(
                    "{} {}",
                    if a.1 != UTIME_OMIT {
                        time_str(s.st_atime, s.st_atime_nsec)
                    } else {
                        String::new()
                    },
                    if m.1 != UTIME_OMIT {
                        time_str(s.st_mtime, s.st_mtime_nsec)
                    } else {
                        String::new()
                    }
                ),
                Err(e) => errname(e.raw_os_error().unwrap_or(-1)),
            };
            let (x, y) = (t(&st.p(path)), t(&kt.p(path)));
            if x != y {
                return Err(fail(
                    Some(i),
                    format!("after op #{i} `{op}`: times of {path}: strata [{x}] vs kernel [{y}]"),
                ));
            }
        }
        for p in op_paths(op) {
            let times = match &target {
                Some((t, a, m)) if *t == p => (*a, *m),
                _ => (false, false),
            };
            let (a, b) = (
                sig(&st.p(&p), links_reliable, times),
                sig(&kt.p(&p), links_reliable, times),
            );
            if a != b && !(links_reliable && hl.lstat_documented(&s_mnt, &k_mnt, &p)) {
                return Err(fail(
                    Some(i),
                    format!("after op #{i} `{op}`: lstat {p}: strata [{a}] vs kernel [{b}]"),
                ));
            }
        }
        if let Op::Open { slot, .. } | Op::Write { slot, .. } | Op::Ftrunc { slot, .. } = op {
            let a = res(st.fd(*slot).and_then(|f| f.fstat()), |s| {
                sig_of(&s, links_reliable)
            });
            let b = res(kt.fd(*slot).and_then(|f| f.fstat()), |s| {
                sig_of(&s, links_reliable)
            });
            if a != b && !(links_reliable && hl.fstat_documented(&st, &kt, *slot)) {
                return Err(fail(
                    Some(i),
                    format!(
                        "after op #{i} `{op}`: fstat slot {slot}: strata {} vs kernel {}",
                        show(&a),
                        show(&b)
                    ),
                ));
            }
        }
    }
    drop(st);
    drop(kt);

    let s_tree = diff_snapshot(
        &s_mnt,
        &SnapOpts {
            dir_nlink: links_reliable && !skip_dir_nlink(),
            ..snap_opts()
        },
    );
    let k_tree = diff_snapshot(&k_mnt, &ksnap_opts(links_reliable && !skip_dir_nlink()));
    // After a replayed EXDEV rename the kernel side's hard links are copies: no nlink.
    let (mut s_tree, mut k_tree) = if links_reliable {
        (s_tree, k_tree)
    } else {
        (strip_nlink(s_tree), strip_nlink(k_tree))
    };
    fr.reconcile(&s_tree, &mut k_tree, &k_mnt, "");
    hl.reconcile(&mut s_tree, "", &k_tree, &k_mnt, "");
    let d = diff_trees("strata", &s_tree, "kernel", &k_tree, links_reliable);
    if !d.is_empty() {
        return Err(fail(
            None,
            format!("final trees differ:\n  {}", d.join("\n  ")),
        ));
    }
    drop(kernel);
    strata.umount();
    stats.nlink_documented = hl.uses;
    stats.failed_rename_copyups = fr.renames;
    stats.failed_rename_tolerated = fr.tolerated;

    // The kernel reads strata's upper as the same tree. strata writes redirects and
    // (since its metadata-only copy-up) overlay.metacopy: the kernel needs both options.
    let k2_work = scratch.dir("s/kwork");
    let k2_mnt = scratch.dir("s/kmnt");
    let k2 = KernelOverlay::try_new(
        &format!(
            "{},redirect_dir=on,metacopy=on",
            ovl_opts(&s_lowers, Some(&s_up), Some(&k2_work))
        ),
        &k2_mnt,
    )
    .map_err(|e| {
        fail(
            None,
            format!("kernel overlayfs refuses strata's upper: {e}"),
        )
    })?;
    let k2_tree = diff_snapshot(&k2_mnt, &ksnap_opts(false));
    // No st_nlink here: without index=on the kernel can't know how many names of a
    // lower hard-linked file were removed (strata counts them while mounted).
    let s_tree2 = strip_nlink(s_tree);
    let k2_tree = strip_nlink(k2_tree);
    let d = diff_trees(
        "strata",
        &s_tree2,
        "kernel-on-strata-upper",
        &k2_tree,
        false,
    );
    drop(k2);
    if !d.is_empty() {
        return Err(fail(
            None,
            format!(
                "kernel overlayfs over strata's upper shows another tree:\n  {}",
                d.join("\n  ")
            ),
        ));
    }
    Ok(stats)
}

// ---------------------------------------------------------------------------------
// documented difference: st_nlink of lower hard links
// ---------------------------------------------------------------------------------

/// What the tester knows of the lower files with more than one name, to check
/// strata's documented st_nlink for them (see `documented_nlink_difference`).
struct LowerHardLinks {
    /// st_ino of each non-directory with several names in a lower layer (kernel side;
    /// kernel overlayfs reports it as the st_ino of every object copied up from it,
    /// all layers being on one filesystem) → its st_nlink in that layer.
    lower_nlink: HashMap<u64, u64>,
    /// st_ino of the lower directories that hold such a name (at any depth): strata
    /// copies them up when it links that name up. (Kernel overlayfs reports them as
    /// the st_ino of the directory, wherever a rename took it.)
    lower_dirs: HashSet<u64>,
    /// The kernel's st_nlink of each such inode when the current mount began.
    nlink_at_mount: HashMap<u64, u64>,
    s_upper: PathBuf,
    k_upper: PathBuf,
    /// How many times a difference was accepted as the documented one.
    uses: usize,
}

impl LowerHardLinks {
    fn scan(k_lowers: &[PathBuf], s_upper: &Path, k_upper: &Path) -> LowerHardLinks {
        let mut lower_nlink = HashMap::new();
        let mut lower_dirs = HashSet::new();
        for root in k_lowers {
            for e in walkdir::WalkDir::new(root)
                .min_depth(1)
                .into_iter()
                .flatten()
            {
                let Ok(st) = lstat(e.path()) else { continue };
                if kind_of(st.st_mode) == 'd' || st.st_nlink < 2 {
                    continue;
                }
                lower_nlink.insert(st.st_ino, st.st_nlink);
                let rel = e.path().strip_prefix(root).unwrap().to_string_lossy();
                let mut dir = parent_of(&rel);
                while dir != "." {
                    if let Ok(d) = lstat(&root.join(&dir)) {
                        lower_dirs.insert(d.st_ino);
                    }
                    dir = parent_of(&dir);
                }
            }
        }
        LowerHardLinks {
            lower_nlink,
            lower_dirs,
            nlink_at_mount: HashMap::new(),
            s_upper: s_upper.to_path_buf(),
            k_upper: k_upper.to_path_buf(),
            uses: 0,
        }
    }

    /// Records the kernel's st_nlink of the lower hard-linked files at the start of a
    /// mount (strata starts each mount from the lower's own count).
    fn mounted(&mut self, k_mnt: &Path) {
        self.nlink_at_mount.clear();
        if self.lower_nlink.is_empty() {
            return;
        }
        for e in walkdir::WalkDir::new(k_mnt)
            .min_depth(1)
            .into_iter()
            .flatten()
        {
            if let Ok(st) = lstat(e.path()) {
                if kind_of(st.st_mode) != 'd' && self.lower_nlink.contains_key(&st.st_ino) {
                    self.nlink_at_mount.insert(st.st_ino, st.st_nlink);
                }
            }
        }
    }

    /// README, "Differences from kernel overlayfs", bullet "Hard links of lower files":
    /// whether strata's `s_nlink` for `s_path` (of kind `kind`), where the kernel's
    /// object is `k` (lstat or fstat, at `k_path`: another name only where a rename
    /// the kernel refused was replayed) and everything else compared agrees, is strata's
    /// documented value rather than a bug. `names` counts the names strata shows for
    /// that object (the caller knows how to count them without side effects).
    ///
    /// - Directory, copied up by strata (in its upper) but not by the kernel, that is
    ///   (the kernel says, by its st_ino, even after renames) a lower directory holding
    ///   a name of a lower hard-linked file: strata links such names up, copying up
    ///   their parents, which become merged directories (st_nlink 1); the kernel links
    ///   lazily and leaves them lower-only (the lower's count).
    /// - Non-directory copied up from a lower file with several names, present in
    ///   strata's upper: it counts only its names that strata shows (`names()`); the
    ///   kernel counts the lower inode's links, names hidden by higher layers included.
    /// - Non-directory still lower-only in strata: removed names count for the life of
    ///   the mount only. strata starts each mount from the lower's own count, so it
    ///   must be off the kernel's by what the kernel had lost before this mount began.
    ///
    /// Any other difference (or any other value) is not documented: the caller fails.
    fn documented_nlink_difference(
        &mut self,
        s_path: &str,
        k_path: &str,
        kind: char,
        s_nlink: u64,
        k: &libc::stat,
        names: impl FnOnce() -> usize,
    ) -> bool {
        let k_nlink = k.st_nlink;
        let s_upper = lstat(&self.s_upper.join(s_path)).ok();
        let ok = if kind == 'd' {
            let is_dir =
                |st: &Option<libc::stat>| st.as_ref().is_some_and(|st| kind_of(st.st_mode) == 'd');
            s_nlink == 1
                && is_dir(&s_upper)
                && !is_dir(&lstat(&self.k_upper.join(k_path)).ok())
                && self.lower_dirs.contains(&k.st_ino)
        } else if let Some(&lower) = self.lower_nlink.get(&k.st_ino) {
            match s_upper {
                Some(st) if kind_of(st.st_mode) == kind && !is_whiteout_st(&st) => {
                    s_nlink == names() as u64
                }
                _ => self
                    .nlink_at_mount
                    .get(&k.st_ino)
                    .is_some_and(|&start| s_nlink == k_nlink + lower - start),
            }
        } else {
            false
        };
        if ok {
            self.uses += 1;
        }
        ok
    }

    /// lstat of `path` on both mounts gave `a` and `b` (with st_nlink): is the
    /// difference only st_nlink, and the documented one?
    fn lstat_documented(&mut self, s_root: &Path, k_root: &Path, path: &str) -> bool {
        let (Ok(s), Ok(k)) = (lstat(&s_root.join(path)), lstat(&k_root.join(path))) else {
            return false;
        };
        let upper = self.s_upper.clone();
        sig_of(&s, false) == sig_of(&k, false)
            && self.documented_nlink_difference(
                path,
                path,
                kind_of(s.st_mode),
                s.st_nlink,
                &k,
                || upper_names(&upper, path),
            )
    }

    /// fstat of `slot` on both sides differs: is it only st_nlink, and the documented
    /// difference for the object at the path the slot was opened with (when that path
    /// still names the open object on both sides)?
    fn fstat_documented(&mut self, s: &Side, k: &Side, slot: usize) -> bool {
        let (Ok(sf), Ok(kf)) = (
            s.fd(slot).and_then(|f| f.fstat()),
            k.fd(slot).and_then(|f| f.fstat()),
        ) else {
            return false;
        };
        let Some(path) = s.paths[slot].clone() else {
            return false;
        };
        let same = |side: &Side, f: &libc::stat| {
            lstat(&side.p(&path)).is_ok_and(|st| (st.st_dev, st.st_ino) == (f.st_dev, f.st_ino))
        };
        let upper = self.s_upper.clone();
        sig_of(&sf, false) == sig_of(&kf, false)
            && same(s, &sf)
            && same(k, &kf)
            && self.documented_nlink_difference(
                &path,
                &path,
                kind_of(sf.st_mode),
                sf.st_nlink,
                &kf,
                || upper_names(&upper, &path),
            )
    }

    /// Tree comparison: where strata's node differs from the kernel's only in
    /// st_nlink, and strata's value is the documented one, takes the kernel's value
    /// (so that `diff_trees` compares everything else). The trees are of the mounts'
    /// `s_at` and `k_at` (relative; "" for the whole mount). strata's names of an
    /// object are those of the whole tree with its st_ino, or, for a subtree (which
    /// does not show them all), those of its upper inode.
    fn reconcile(
        &mut self,
        s_tree: &mut DiffTree,
        s_at: &str,
        k_tree: &DiffTree,
        k_mnt: &Path,
        k_at: &str,
    ) {
        let under = |at: &str, p: &str| {
            if at.is_empty() {
                p.to_string()
            } else {
                format!("{at}/{p}")
            }
        };
        let paths: Vec<String> = s_tree
            .nodes
            .iter()
            .filter(|(p, sn)| {
                k_tree.nodes.get(*p).is_some_and(|kn| {
                    sn.nlink.is_some()
                        && kn.nlink.is_some()
                        && sn.nlink != kn.nlink
                        && DiffNode {
                            nlink: kn.nlink,
                            ..(*sn).clone()
                        } == *kn
                })
            })
            .map(|(p, _)| p.clone())
            .collect();
        for p in paths {
            let (sp, kp) = (under(s_at, &p), under(k_at, &p));
            let Ok(k) = lstat(&k_mnt.join(&kp)) else {
                continue;
            };
            let sn = &s_tree.nodes[&p];
            let upper = self.s_upper.clone();
            let names = || {
                if s_at.is_empty() {
                    1 + s_tree.links.get(&p).map_or(0, Vec::len)
                } else {
                    upper_names(&upper, &sp)
                }
            };
            if self.documented_nlink_difference(&sp, &kp, sn.kind, sn.nlink.unwrap(), &k, names) {
                s_tree.nodes.get_mut(&p).unwrap().nlink = k_tree.nodes[&p].nlink;
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// documented difference: a rename that fails changes nothing
// ---------------------------------------------------------------------------------

/// README, "Differences from kernel overlayfs": a rename that fails changes nothing
/// in strata. Kernel overlayfs may already have copied up the source directory and
/// its parents (and, with `redirect_dir=on`, set the copy's redirect) before the
/// rename fails in the upper filesystem (a non-empty upper target, say): they then
/// show as merged directories (st_nlink 1) and the parent's mtime changes.
///
/// Around every rename `RenameWatch` records both sides; when the rename failed on
/// both, strata must have changed nothing at all (`check_strata`), and the kernel may
/// only have made those copy-up changes (`check_kernel`), whose directories (by the
/// kernel's st_ino, stable across renames and remounts) are then remembered here:
/// later tree comparisons tolerate exactly those fields for exactly them
/// (`reconcile`).
#[derive(Default)]
struct FailedRenameCopyUps {
    /// Kernel st_ino of the directories whose st_nlink or mtime a failed rename
    /// changed on the kernel side.
    k_dirs: HashSet<u64>,
    /// Failed renames after which the kernel showed such changes.
    renames: usize,
    /// Tree nodes where a later comparison took the kernel's values for them.
    tolerated: usize,
}

/// The state of both sides that a rename may touch, taken just before it.
struct RenameWatch {
    /// The rename's names, their resolved forms (symlinked directories followed) and
    /// all their ancestors ("." included), as seen through the mounts.
    paths: Vec<String>,
    /// For each path: the same name with its directories resolved on the kernel side
    /// (to find it in the kernel's upper).
    k_real: Vec<String>,
    /// strata: the lstat fields compared (`full_sig`: all but atime and ctime), through
    /// the mount.
    s_sigs: Vec<String>,
    /// strata: its whole upper layer (names, inodes, times, all xattrs).
    s_upper: BTreeMap<String, String>,
    /// kernel: lstat through the mount, and whether the upper holds a directory there.
    k_stats: Vec<Result<libc::stat, i32>>,
    k_upper_dir: Vec<bool>,
    /// The source's parent, resolved on the kernel side.
    k_from_parent: String,
}

/// Every field of an lstat but atime (lookups in a lower directory may read it), and
/// ctime unless `ctime`: through strata's mount a directory's ctime may be a cached
/// one (a copy-up into it changes its upper's ctime, not its cached attributes) and
/// be refreshed at any time (seen around a failed rename, its upper unchanged).
/// ctime is compared nowhere else; in the upper layer it is.
fn full_sig(p: &Path, ctime: bool) -> String {
    match lstat(p) {
        Ok(st) => {
            let mut s = format!(
                "{} ino={} nlink={} mtime={}.{}",
                sig_of(&st, true),
                st.st_ino,
                st.st_nlink,
                st.st_mtime,
                st.st_mtime_nsec,
            );
            if ctime {
                s.push_str(&format!(" ctime={}.{}", st.st_ctime, st.st_ctime_nsec));
            }
            s
        }
        Err(e) => errname(e.raw_os_error().unwrap_or(-1)),
    }
}

/// A layer directory as it is on disk: each name's `full_sig`, size and all xattrs
/// (`trusted.overlay.*` included: a redirect or an origin set on a copy shows here).
fn layer_state(root: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for e in walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .flatten()
    {
        let p = e.path();
        let mut x = BTreeMap::new();
        for n in llistxattr(p).unwrap_or_default() {
            x.insert(n.clone(), lgetxattr(p, &n).unwrap_or_default());
        }
        let size = lstat(p).map(|s| s.st_size).unwrap_or(-1);
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        m.insert(rel, format!("{} size={size} {x:?}", full_sig(p, true)));
    }
    m
}

fn is_dir_at(p: &Path) -> bool {
    lstat(p).is_ok_and(|st| kind_of(st.st_mode) == 'd')
}

impl RenameWatch {
    fn before(s_mnt: &Path, s_up: &Path, k_mnt: &Path, k_up: &Path, from: &str, to: &str) -> Self {
        // With the writeback cache (rootless configuration) earlier writes may still
        // be dirty pages in the kernel: flush them, so that they do not land in the
        // upper between this snapshot and the check. syncfs does not wait for FUSE
        // writes in flight: the caller fsyncs the files still open
        // (`Side::flush_writes`).
        if let Ok(f) = fs::File::open(s_mnt) {
            // SAFETY: syncfs on an fd we own.
            unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)) };
        }
        let mut paths = Vec::new();
        for p in [from, to] {
            for mut q in [p.to_string(), resolve_dirs(k_mnt, p)] {
                loop {
                    paths.push(q.clone());
                    if q == "." {
                        break;
                    }
                    q = parent_of(&q);
                }
            }
        }
        paths.sort();
        paths.dedup();
        let at = |root: &Path, p: &str| {
            if p == "." {
                root.to_path_buf()
            } else {
                root.join(p)
            }
        };
        let k_real: Vec<String> = paths
            .iter()
            .map(|p| {
                if p == "." {
                    p.clone()
                } else {
                    resolve_dirs(k_mnt, p)
                }
            })
            .collect();
        RenameWatch {
            s_sigs: paths
                .iter()
                .map(|p| full_sig(&at(s_mnt, p), false))
                .collect(),
            s_upper: layer_state(s_up),
            k_stats: paths
                .iter()
                .map(|p| lstat(&at(k_mnt, p)).map_err(|e| e.raw_os_error().unwrap_or(-1)))
                .collect(),
            k_upper_dir: k_real.iter().map(|r| is_dir_at(&at(k_up, r))).collect(),
            k_real,
            paths,
            k_from_parent: parent_of(&resolve_dirs(k_mnt, from)),
        }
    }

    /// strata after the failed rename: every name watched (all but atime and ctime)
    /// and its whole upper layer (all but atime) exactly as before. (Through the mount alone a change could hide behind the
    /// kernel's FUSE attribute cache; the upper layer can't hide one: a copy-up of
    /// the source or of a parent, a redirect or a whiteout would show there.)
    fn check_strata(&self, s_mnt: &Path, s_up: &Path) -> Result<(), String> {
        let mut d = Vec::new();
        for (p, before) in self.paths.iter().zip(&self.s_sigs) {
            let now = full_sig(
                &if p == "." {
                    s_mnt.to_path_buf()
                } else {
                    s_mnt.join(p)
                },
                false,
            );
            if now != *before {
                d.push(format!("lstat {p}: [{before}] -> [{now}]"));
            }
        }
        let now = layer_state(s_up);
        let names: std::collections::BTreeSet<&String> =
            self.s_upper.keys().chain(now.keys()).collect();
        for k in names {
            let (a, b) = (self.s_upper.get(k), now.get(k));
            if a != b {
                d.push(format!("upper {k}: {a:?} -> {b:?}"));
            }
        }
        if d.is_empty() {
            Ok(())
        } else {
            Err(d.join("\n  "))
        }
    }

    /// The kernel after the failed rename: each name watched as before, but for the
    /// documented copy-up side effects on directories: st_nlink 1 where the rename
    /// copied the directory up (now in the upper, not before), and mtime (ctime is not
    /// compared) where it copied up the directory or one in it, and on the source's
    /// parent. Those directories are remembered.
    fn check_kernel(
        &self,
        k_mnt: &Path,
        k_up: &Path,
        known: &mut FailedRenameCopyUps,
    ) -> Result<(), String> {
        let at = |root: &Path, p: &str| {
            if p == "." {
                root.to_path_buf()
            } else {
                root.join(p)
            }
        };
        let copied: Vec<bool> = self
            .k_real
            .iter()
            .zip(&self.k_upper_dir)
            .map(|(r, &was)| !was && is_dir_at(&at(k_up, r)))
            .collect();
        // Where the kernel may change a directory's mtime: the source's parent, a
        // directory this rename copied up, or the parent of one.
        let mtime_may_change = |real: &str| {
            real == self.k_from_parent
                || self
                    .k_real
                    .iter()
                    .zip(&copied)
                    .any(|(r, &c)| c && (r == real || parent_of(r) == real))
        };
        let mut d = Vec::new();
        let mut changed = Vec::new();
        for (i, p) in self.paths.iter().enumerate() {
            let now = lstat(&at(k_mnt, p)).map_err(|e| e.raw_os_error().unwrap_or(-1));
            match (&self.k_stats[i], &now) {
                (Err(a), Err(b)) if a == b => {}
                (Ok(a), Ok(b)) => {
                    let (na, nb) = (
                        format!("{} ino={}", sig_of(a, true), a.st_ino),
                        format!("{} ino={}", sig_of(b, true), b.st_ino),
                    );
                    let dir = kind_of(a.st_mode) == 'd';
                    let nlink = a.st_nlink != b.st_nlink;
                    let mtime = (a.st_mtime, a.st_mtime_nsec) != (b.st_mtime, b.st_mtime_nsec);
                    if na != nb {
                        d.push(format!("lstat {p}: [{na}] -> [{nb}]"));
                    } else if !dir && mtime {
                        d.push(format!("lstat {p}: mtime changed"));
                    } else if dir && nlink && !(b.st_nlink == 1 && copied[i]) {
                        d.push(format!(
                            "lstat {p}: st_nlink {} -> {} (copied up: {})",
                            a.st_nlink, b.st_nlink, copied[i]
                        ));
                    } else if dir && mtime && !mtime_may_change(&self.k_real[i]) {
                        d.push(format!(
                            "lstat {p}: mtime changed (not the source's parent, nor copied up or a copy's parent)"
                        ));
                    } else if dir && (nlink || mtime) {
                        changed.push(b.st_ino);
                    }
                }
                (a, b) => d.push(format!(
                    "lstat {p}: {:?} -> {:?}",
                    a.err(),
                    b.as_ref().err()
                )),
            }
        }
        if !d.is_empty() {
            return Err(d.join("\n  "));
        }
        if !changed.is_empty() {
            known.renames += 1;
            known.k_dirs.extend(changed);
        }
        Ok(())
    }
}

impl FailedRenameCopyUps {
    /// The places, relative to `root` ("" for itself), of the known changed
    /// directories in the tree at `root`.
    fn dirs_under(&self, root: &Path) -> Vec<PathBuf> {
        if self.k_dirs.is_empty() {
            return Vec::new();
        }
        walkdir::WalkDir::new(root)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_dir())
            .filter(|e| lstat(e.path()).is_ok_and(|st| self.k_dirs.contains(&st.st_ino)))
            .filter_map(|e| e.path().strip_prefix(root).ok().map(Path::to_path_buf))
            .collect()
    }

    /// Marks the directories at `rels` under `root` (copies of known ones) as known.
    fn mark(&mut self, root: &Path, rels: &[PathBuf]) {
        for r in rels {
            if let Ok(st) = lstat(&root.join(r)) {
                self.k_dirs.insert(st.st_ino);
            }
        }
    }

    /// Tree comparison (`s_tree` and `k_tree`, the latter of the kernel mount's
    /// `k_at`): for the directories a failed rename copied up on the kernel side, where
    /// the kernel's st_nlink is 1 (merged) or its mtime is new (the copy-up's) while
    /// strata's is the old one, gives the kernel's node strata's value (the kernel's
    /// tree, as strata's final tree is compared again later). Everything else stays
    /// compared.
    fn reconcile(&mut self, s_tree: &DiffTree, k_tree: &mut DiffTree, k_mnt: &Path, k_at: &str) {
        if self.k_dirs.is_empty() {
            return;
        }
        for (p, kn) in k_tree.nodes.iter_mut() {
            let Some(sn) = s_tree.nodes.get(p) else {
                continue;
            };
            if kn.kind != 'd' || sn.kind != 'd' {
                continue;
            }
            let kp = if k_at.is_empty() {
                p.clone()
            } else {
                format!("{k_at}/{p}")
            };
            if !lstat(&k_mnt.join(kp)).is_ok_and(|k| self.k_dirs.contains(&k.st_ino)) {
                continue;
            }
            let mut used = false;
            if kn.nlink == Some(1) && sn.nlink.is_some() && sn.nlink != kn.nlink {
                kn.nlink = sn.nlink;
                used = true;
            }
            let new = Some((-1, 0));
            if kn.mtime == new && sn.mtime.is_some() && sn.mtime != new {
                kn.mtime = sn.mtime;
                used = true;
            }
            if used {
                self.tolerated += 1;
            }
        }
    }
}

fn is_whiteout_st(st: &libc::stat) -> bool {
    kind_of(st.st_mode) == 'c' && st.st_rdev == 0
}

/// The names in the upper directory `upper` of the object at `path` there (its
/// upper inode's names, without going through the mount: no lookups, no link-ups).
fn upper_names(upper: &Path, path: &str) -> usize {
    let Ok(me) = lstat(&upper.join(path)) else {
        return 0;
    };
    walkdir::WalkDir::new(upper)
        .min_depth(1)
        .into_iter()
        .flatten()
        .filter(|e| !e.file_type().is_dir())
        .filter(|e| {
            lstat(e.path()).is_ok_and(|st| (st.st_dev, st.st_ino) == (me.st_dev, me.st_ino))
        })
        .count()
}

/// `rel` (a path under the mount `root`) with the symlinks among its directories
/// resolved (unchanged when they don't resolve inside the mount).
fn resolve_dirs(root: &Path, rel: &str) -> String {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let (Ok(dir), Ok(top)) = (
        fs::canonicalize(root.join(parent_of(rel))),
        fs::canonicalize(root),
    ) else {
        return rel.to_string();
    };
    match dir.strip_prefix(&top) {
        Ok(d) if d.as_os_str().is_empty() => name.to_string(),
        Ok(d) => format!("{}/{name}", d.display()),
        Err(_) => rel.to_string(),
    }
}

/// Whether the tree at `p` holds a non-directory with more than one name.
fn has_multilinked(p: &Path) -> bool {
    match lstat(p) {
        Ok(st) if kind_of(st.st_mode) == 'd' => list_dir(p)
            .unwrap_or_default()
            .iter()
            .any(|n| has_multilinked(&p.join(n))),
        Ok(st) => st.st_nlink > 1,
        Err(_) => false,
    }
}

fn strip_nlink(mut t: DiffTree) -> DiffTree {
    for n in t.nodes.values_mut() {
        n.nlink = None;
    }
    t
}

/// For an xattr operation on an overlay-private name: the errno strata must return.
fn private_xattr_expectation(s: &Side, op: &Op) -> Option<i32> {
    let (path, name, set) = match op {
        Op::Setx { path, name, .. } => (path, name, true),
        Op::Getx { path, name } | Op::Rmx { path, name } => (path, name, false),
        _ => return None,
    };
    if !name.starts_with("trusted.overlay.") {
        return None;
    }
    Some(match lstat(&s.p(path)) {
        Err(e) => e.raw_os_error().unwrap_or(-1),
        Ok(_) if set => libc::EPERM,
        Ok(_) => libc::ENODATA,
    })
}

fn show(o: &Outcome) -> String {
    match o {
        Ok(s) if s.is_empty() => "OK".into(),
        Ok(s) => format!(
            "OK({})",
            if s.len() > 120 {
                format!("{}...", &s[..120])
            } else {
                s.clone()
            }
        ),
        Err(e) => errname(*e),
    }
}

// ---------------------------------------------------------------------------------
// shrinking
// ---------------------------------------------------------------------------------

fn fails(c: &Case, mode: KernelMode) -> Option<Failure> {
    run_case(c, mode).err()
}

/// Delta debugging over the operations, then over the layer entries.
fn shrink(
    mut c: Case,
    mode: KernelMode,
    mut f: Failure,
    budget: Duration,
) -> (Case, Failure, usize) {
    let start = Instant::now();
    let mut runs = 0;
    if let Some(i) = f.op_index {
        let mut t = c.clone();
        t.ops.truncate(i + 1);
        runs += 1;
        if let Some(g) = fails(&t, mode) {
            c = t;
            f = g;
        }
    }
    loop {
        let mut progress = false;
        for which in 0..2 {
            let len = |c: &Case| {
                if which == 0 {
                    c.ops.len()
                } else {
                    c.entries.len()
                }
            };
            let mut chunk = (len(&c) / 2).max(1);
            while chunk >= 1 {
                let mut i = 0;
                while i < len(&c) {
                    if start.elapsed() > budget {
                        return (c, f, runs);
                    }
                    let mut t = c.clone();
                    let end = (i + chunk).min(len(&t));
                    if which == 0 {
                        t.ops.drain(i..end);
                    } else {
                        t.entries.drain(i..end);
                    }
                    runs += 1;
                    if let Some(g) = fails(&t, mode) {
                        c = t;
                        f = g;
                        progress = true;
                    } else {
                        i += chunk;
                    }
                }
                if chunk == 1 {
                    break;
                }
                chunk /= 2;
            }
        }
        // Fewer layers.
        while c.nlayers > 1 && !c.entries.iter().any(|e| e.layer == c.nlayers - 1) {
            c.nlayers -= 1;
        }
        if !progress {
            break;
        }
    }
    (c, f, runs)
}

fn regression_text(c: &Case, mode: KernelMode, f: &Failure, seed: u64) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "// Found by seed {seed}: {}\n",
        f.msg.lines().next().unwrap_or("")
    ));
    s.push_str("#[test]\n");
    s.push_str(&format!("fn regression_seed_{seed}() {{\n"));
    s.push_str(&format!("    check_case(KernelMode::{mode:?}, r#\"\n"));
    for line in c.to_string().lines() {
        s.push_str(&format!("        {line}\n"));
    }
    s.push_str("    \"#);\n}\n");
    s
}

/// Runs a (regression) case; panics with the difference if strata disagrees.
fn check_case(mode: KernelMode, text: &str) {
    let c = parse_case(text);
    assert_eq!(parse_case(&c.to_string()), c, "case text round trip");
    match run_case(&c, mode) {
        Ok(s) => eprintln!(
            "st_nlink checked against strata's documented hard-link behaviour: {} times; \
             failed renames: {} (strata unchanged), {} with kernel copy-ups, {} tree nodes tolerated",
            s.nlink_documented,
            s.failed_renames,
            s.failed_rename_copyups,
            s.failed_rename_tolerated
        ),
        Err(f) => panic!(
            "strata differs from kernel overlayfs: {}\ncase:\n{c}",
            f.msg
        ),
    }
}

fn run_many(suite: &str, mode: KernelMode, default_cases: usize) {
    let long = std::env::var("STRATA_DIFF_CASES").is_ok();
    let ncases = env_usize("STRATA_DIFF_CASES", default_cases);
    let nops = env_usize("STRATA_DIFF_OPS", 60);
    let base: u64 = match std::env::var("STRATA_DIFF_SEED") {
        Ok(s) => s.parse().expect("STRATA_DIFF_SEED"),
        Err(_) if long => time_seed() % 1_000_000_000,
        Err(_) => {
            if mode == KernelMode::Redirect {
                1_000
            } else {
                500_000
            }
        }
    };
    let budget = Duration::from_secs(env_usize("STRATA_DIFF_SHRINK_SECS", 90) as u64);
    let max_failures = env_usize("STRATA_DIFF_MAX_FAILURES", if long { 10 } else { 1 });
    let start = Instant::now();
    let mut total = Stats::default();
    let mut failures: Vec<String> = Vec::new();
    let mut cases = 0;
    for k in 0..ncases as u64 {
        let seed = base + k;
        let c = gen_case(seed, nops);
        cases += 1;
        match run_case(&c, mode) {
            Ok(s) => {
                total.ops += s.ops;
                total.exdev_renames += s.exdev_renames;
                total.ops_cut += s.ops_cut;
                total.nlink_documented += s.nlink_documented;
                total.failed_renames += s.failed_renames;
                total.failed_rename_copyups += s.failed_rename_copyups;
                total.failed_rename_tolerated += s.failed_rename_tolerated;
            }
            Err(f) => {
                total.ops += f.op_index.map(|i| i + 1).unwrap_or(c.ops.len());
                eprintln!("[{suite}] seed {seed} FAILED: {}\nshrinking...", f.msg);
                let (small, sf, runs) = shrink(c, mode, f, budget);
                let text = regression_text(&small, mode, &sf, seed);
                eprintln!(
                    "[{suite}] seed {seed}: shrunk in {runs} runs to {} ops / {} layer entries:\n{}\nfailure: {}\n",
                    small.ops.len(),
                    small.entries.len(),
                    text,
                    sf.msg
                );
                let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-reports");
                let _ = fs::create_dir_all(&dir);
                let _ = fs::write(
                    dir.join(format!("{suite}-seed-{seed}.rs")),
                    format!("{text}\n/* failure:\n{}\n*/\n", sf.msg),
                );
                failures.push(format!(
                    "seed {seed}: {}",
                    sf.msg.lines().next().unwrap_or("")
                ));
                if failures.len() >= max_failures {
                    break;
                }
            }
        }
    }
    let line = format!(
        "{suite} ({mode:?}): {cases} cases, {} operations ({} EXDEV renames checked, {} operations cut after replays; st_nlink checked against strata's documented hard-link behaviour: {} times; failed renames checked unchanged in strata: {}, kernel copy-ups on failed renames accepted: {} times, tolerated in {} tree nodes), {} failures, seeds {base}..{}, {:.1}s",
        total.ops,
        total.exdev_renames,
        total.ops_cut,
        total.nlink_documented,
        total.failed_renames,
        total.failed_rename_copyups,
        total.failed_rename_tolerated,
        failures.len(),
        base + cases as u64,
        start.elapsed().as_secs_f64()
    );
    report("differential", &line);
    assert!(failures.is_empty(), "{line}\n{}", failures.join("\n"));
}

#[test]
fn differential_vs_kernel_redirect_dir() {
    run_many("differential", KernelMode::Redirect, 100);
}

#[test]
fn differential_vs_kernel_default_exdev() {
    run_many("differential-exdev", KernelMode::Default, 30);
}

#[test]
fn case_text_round_trips() {
    for seed in 0..50 {
        let c = gen_case(seed, 80);
        assert_eq!(parse_case(&c.to_string()), c);
    }
}

/// Sanity: the tester notices a difference (a case whose layers differ on purpose).
#[test]
fn tester_detects_a_difference() {
    let scratch = TestDir::tagged("diffself");
    let a = scratch.dir("a");
    let b = scratch.dir("b");
    fs::write(a.join("x"), "1").unwrap();
    fs::write(b.join("x"), "2").unwrap();
    let d = diff_trees(
        "a",
        &diff_snapshot(&a, &snap_opts()),
        "b",
        &diff_snapshot(&b, &snap_opts()),
        true,
    );
    assert_eq!(d.len(), 1, "{d:?}");
}

/// Sanity: `RenameWatch::check_strata` notices a change in strata's upper layer that
/// the mount itself does not show (a copy-up of a directory hidden by attribute caching:
/// here the "mount" is a plain directory and the "upper" gets a new directory).
#[test]
fn failed_rename_check_sees_upper_changes() {
    let scratch = TestDir::tagged("diffself");
    let (mnt, up) = (scratch.dir("m"), scratch.dir("u"));
    fs::create_dir_all(mnt.join("b/c")).unwrap();
    fs::create_dir_all(mnt.join("c/d")).unwrap();
    let w = RenameWatch::before(&mnt, &up, &mnt, &up, "b/c", "c");
    assert!(w.check_strata(&mnt, &up).is_ok());
    mkdir(&up.join("b"), 0o755).unwrap();
    let e = w.check_strata(&mnt, &up).unwrap_err();
    assert!(e.contains("upper b:"), "{e}");
    rmdir(&up.join("b")).unwrap();
    utimensat(&mnt.join("b"), (1, 0), (1, 0), 0).unwrap();
    let e = w.check_strata(&mnt, &up).unwrap_err();
    assert!(e.contains("lstat b:"), "{e}");
}

// ---------------------------------------------------------------------------------
// regressions: cases found once by the random tester, kept (paste new ones here)
// ---------------------------------------------------------------------------------

mod regressions {
    use super::*;

    /// Harness (seed 26120476): a failed rename makes the kernel copy up `c/d` and
    /// so change `c`'s mtime (strata changes nothing, as documented); the replayed
    /// EXDEV rename then copies `c`, with a new inode, and the tolerance keyed by
    /// inode must follow the copy.
    #[test]
    fn regression_seed_26120476_failed_rename_copy_up_then_exdev_replay() {
        check_case(
            KernelMode::Default,
            r#"
            layers 3
            0 file d/b 600 1000 65534 33
            0 dir c/d 555
            2 file a/d 666 1000 0 46
            rename c/d a/c 0
            mkdir c/d 555
            open 2 c/a rdwr|creat|trunc 644
            rename a c/a exchange
            mkdir d/c 777
            utimens c now 1042838112.940622339 nofollow
            rename c/d c/a 0
            rename c d/c/a noreplace
        "#,
        );
    }

    /// Harness (seed 500010, rootless configuration): a write still in the writeback
    /// cache landed in the upper between the snapshot before a failed rename and the
    /// check after it; open files are fsynced before the snapshot.
    #[test]
    fn regression_seed_500010_dirty_write_before_failed_rename() {
        check_case(
            KernelMode::Default,
            r#"
            layers 1
            0 file a 644 1000 1002 68
            open 2 b rdwr|creat 666
            write 2 1555 139 475
            rename a b noreplace
            write 2 9 391 12
            rename a b noreplace
        "#,
        );
    }

    /// Directory rename where the kernel (default) says EXDEV: strata renames it and
    /// the tree under the new name is the old one.
    #[test]
    fn exdev_dir_rename_tree_moves() {
        check_case(
            KernelMode::Default,
            r#"
            layers 2
            0 file d/a/x 644 0 0 10
            1 file d/b 600 1000 1000 20
            1 xattr d user.a v1
            rename d e 0
            ls e
        "#,
        );
    }

    /// BUG (seed 1007): a lower directory copied up (it becomes merged) keeps
    /// reporting the lower's st_nlink (3) instead of 1; after a remount it says 1.
    #[test]
    fn regression_seed_1007_merged_dir_nlink_after_copy_up() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 1
            0 dir a/c 555
            link a d/c
            chmod a/c 555
        "#,
        );
    }

    /// BUG (seeds 2094, 3185): after renaming a directory (redirect), strata follows
    /// the redirect into a lower layer that a non-directory in a layer above should
    /// have blocked (here `d` is a file in layer 1, so layer 2's `d/a/b` must not show).
    #[test]
    fn regression_seed_2094_redirect_must_stop_at_a_non_dir() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 3
            0 dir d/a 755
            1 file d 755 1002 1002 87
            2 fifo d/a/b 644
            rename d/a d/b 0
            open 0 d/b/c rdonly|creat 600
        "#,
        );
    }

    /// BUG (seed 3185): same cause, seen through RENAME_EXCHANGE: rmdir says ENOTDIR
    /// for a name that does not exist (kernel: ENOENT).
    #[test]
    fn regression_seed_3185_exchange_redirect_blocked_layer() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 3
            0 file d/b/d 600 1002 1000 36
            1 sym d b/c
            2 dir b/b 4755
            2 file d/b/c 755 1002 65534 76
            rename d/b b exchange
            ls .
            rmdir b/c
        "#,
        );
    }

    /// BUG (seed 3058): copying up a lower file that has hard links changes the
    /// parent directory's mtime (the kernel keeps the parent's times on copy-up).
    #[test]
    fn regression_seed_3058_hardlinked_copy_up_keeps_parent_mtime() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 2
            1 file a 755 1000 1002 93
            1 sym c/a d/d/d
            1 hard d/c a
            link d/c c/d
        "#,
        );
    }

    /// seed 3112: first the parent-mtime bug (fixed). Documented difference (README,
    /// "Hard links of lower files"): strata links up the other name of a hard-linked
    /// lower file on copy-up and so copies up its parent `b` (merged: st_nlink 1),
    /// where the kernel with index=on leaves `b` in the lower (st_nlink 2). The tester
    /// checks strata's value (`LowerHardLinks::documented_nlink_difference`).
    #[test]
    fn regression_seed_3112_hardlinked_copy_up_by_setxattr_keeps_parent_mtime() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 3
            2 file b/a 600 65534 0 21
            2 hard c/c b/a
            setx c/c user.b x358 0
        "#,
        );
    }

    /// seed 31437. Documented difference, after a rename: the copy-up of `d` links up
    /// `c/b/b`, copying up `c/b` (merged: st_nlink 1); the exchange moves it to `a/b`,
    /// which the kernel still shows lower-only (st_nlink 2). The tester knows the
    /// directory by the kernel's st_ino (its lower inode), not by its path.
    #[test]
    fn regression_seed_31437_link_up_parent_renamed() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 1
            0 file d 755 1000 1000 24
            0 hard c/b/b d
            0 xattr a/d/d user.b v21
            wfile d 11 8 72
            rename c a exchange
        "#,
        );
    }

    /// seed 777115. Documented difference, in the check of a directory rename the
    /// kernel (default options) refuses with EXDEV: `c/d/b` (copied up) shares its lower
    /// inode with `b` of layer 1, which layer 0's directory `b` hides; strata counts the
    /// visible names (1), the kernel the lower's links (2).
    #[test]
    fn regression_seed_777115_exdev_subtree_hidden_alias() {
        check_case(
            KernelMode::Default,
            r#"
            layers 2
            0 file d/c/d 666 1000 1000 71
            0 file b/c/d 1444 65534 65534 62
            1 file b 644 0 1002 35
            1 hard c/d/b b
            setx c/d/b user.c x777 replace
            rename c d/a noreplace
        "#,
        );
    }

    /// BUG: unlinking one name of a lower hard-linked file leaves the other name with
    /// st_nlink 2 (kernel with index=on, which strata's linked copy-up mirrors: 1).
    #[test]
    fn unlink_of_lower_hard_link_updates_nlink() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 1
            0 file a 644 0 0 10
            0 hard b a
            unlink a
        "#,
        );
    }

    /// BUG (seed 1078, found in a CI-sized run): fstat of a file that is open and was
    /// unlinked reports st_nlink 1 (kernel: 0) when the file was copied up by the open.
    #[test]
    fn regression_seed_1078_fstat_nlink_after_unlink() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 1
            0 file c 666 0 1002 28
            open 1 c rdonly|trunc 644
            unlink c
            write 1 2954 173 493
            fstat 1
        "#,
        );
    }

    /// BUG (seed 20024): same family as 2094: a redirect is followed into a lower
    /// layer below an opaque directory (`a` is opaque in layer 0, so layer 3's `a/b/b`
    /// is hidden). strata sees `a/a/b` and says EINVAL; the kernel: ENOENT.
    #[test]
    fn regression_seed_20024_redirect_must_stop_at_an_opaque_dir() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 4
            0 opaque a
            0 file a/b/d 755 1000 1000 23
            3 file a/b/b 2644 1002 65534 32
            rename a/b a/a noreplace
            ls a
            rename a/a/b a exchange
        "#,
        );
    }

    /// BUG (seed 20054): same family, seen after a remount: a directory hidden below
    /// the opaque `d` shows up through an exchanged (redirected) directory.
    #[test]
    fn regression_seed_20054_redirect_after_remount_opaque() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 2
            0 dir b/b/c 755
            0 opaque d
            0 file d/c/d 755 1002 0 89
            1 opaque d/c/b
            rename d/c b/b exchange
            remount
        "#,
        );
    }

    /// BUG (seed 20207): fstat of an open fifo after its name was unlinked fails with
    /// ENOENT (kernel: success, st_nlink 0).
    #[test]
    fn regression_seed_20207_fstat_of_unlinked_fifo() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 1
            0 dir c 755
            mkfifo c/d 644
            open 0 c/d rdwr|creat 644
            unlink c/d
            fstat 0
        "#,
        );
    }

    /// seed 30104. Documented difference (README, "Hard links of lower files"): the
    /// count of removed names of a lower hard-linked file lasts for the life of the
    /// mount: after the remount the other name shows the lower's st_nlink 2 again
    /// (kernel index=on: 1). The tester checks strata's value.
    #[test]
    fn regression_seed_30104_lower_hard_link_nlink_after_remount() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 1
            0 file d 666 0 1000 70000
            0 hard a/b/d d
            unlink d
            remount
        "#,
        );
    }

    /// seed 30188. Documented difference (README, "Hard links of lower files"): the
    /// lower inode of `c/a` also has the name `d` in layer 1, shadowed by layer 0's
    /// `d`. After copy-up the kernel reports the lower st_nlink (2); strata counts the
    /// visible names (1). The tester checks strata's value.
    #[test]
    fn regression_seed_30188_nlink_counts_shadowed_alias() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 2
            0 file d 644 0 0 80
            1 file d 666 1000 65534 51
            1 hard c/a d
            open 2 c/a wronly|creat|trunc 444
        "#,
        );
    }

    /// BUG (seeds 100189, 100190): fstat of an open directory after rmdir fails with
    /// ENOENT (kernel: success). Simplest form first, then the shrunk case.
    #[test]
    fn fstat_of_removed_open_dir() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 1
            0 file a 666 0 65534 9
            mkdir b 555
            open 2 b rdonly 755
            rmdir b
            fstat 2
        "#,
        );
    }

    #[test]
    fn regression_seed_100189_fstat_of_removed_open_dir_after_exchange() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 1
            0 file a 666 0 65534 99
            mkdir b 555
            open 2 b rdonly 4755
            rename b a exchange
            rmdir a
            fstat 2
        "#,
        );
    }

    /// Tester (seed 424588): `a/d` reaches `d/d` through the symlink `a`, which the
    /// exchange itself replaces; the EXDEV check and replay must use the names as they
    /// were resolved before the rename (strata was right: with redirect_dir=on the
    /// kernel agrees with it).
    #[test]
    fn regression_seed_424588_exdev_exchange_through_replaced_symlink() {
        check_case(
            KernelMode::Default,
            r#"
            layers 1
            0 dir d/d 777
            symlink d a
            rename a/d a exchange
        "#,
        );
        check_case(
            KernelMode::Redirect,
            r#"
            layers 1
            0 dir d/d 777
            symlink d a
            rename a/d a exchange
            ls a
        "#,
        );
    }

    /// Documented difference (README, "Differences from kernel overlayfs": a rename
    /// that fails changes nothing). `rename c d` fails with ENOTEMPTY on both sides
    /// (`d` holds `c`), but only once the kernel has copied up the lower directory `c`:
    /// it shows as merged (st_nlink 1; strata: the lower's 3). The tester checks that
    /// strata changed nothing (`RenameWatch::check_strata`), accepts that copy-up on
    /// the kernel side (`check_kernel`) and tolerates `c`'s st_nlink afterwards
    /// (`FailedRenameCopyUps::reconcile`), here at the final comparison.
    ///
    /// Had strata copied `c` up too (as the kernel does), `check_strata` would fail at
    /// the rename itself, whatever its attribute cache shows through the mount: its
    /// upper layer would hold a new `c` (with its `trusted.overlay.*` xattrs) that
    /// `layer_state` did not record before the rename; so would a changed parent, a
    /// redirect or a whiteout. `check_strata` compares the lstat of `c`, `d`, their
    /// parents and their resolved names (every field but atime) the same way.
    #[test]
    fn failed_rename_kernel_copies_up_source() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 1
            0 opaque c/c
            mkdir d 755
            mkdir d/c 555
            rename c d 0
        "#,
        );
    }

    /// Same difference, one level down: the kernel copies up `b` and `b/c` before the
    /// rename fails (ENOTEMPTY: `c` holds `d`): both show as merged (st_nlink 1) and
    /// `b`'s mtime is the copy-up's. `b` keeps those differences to the end. If strata
    /// changed `b` or `b/c` (copy-up, mtime), `check_strata` would see it at the
    /// rename, in the lstat through the mount or in the upper layer.
    #[test]
    fn failed_rename_kernel_copies_up_parents() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 1
            0 dir b/c 755
            mkdir c 777
            symlink nowhere c/d
            rename b/c c 0
        "#,
        );
    }

    #[test]
    fn redirect_dir_rename_then_recreate() {
        check_case(
            KernelMode::Redirect,
            r#"
            layers 2
            0 file a/b 644 0 0 10
            1 file a/c 644 0 0 10
            rename a b 0
            mkdir a 755
            ls a
            ls b
            rename b/b a/b 0
        "#,
        );
    }
}
