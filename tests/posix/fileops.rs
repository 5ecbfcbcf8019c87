//! File operations the kernel overlay has and FUSE limits: fallocate's modes,
//! O_TMPFILE and statx's birth time, each against the kernel overlay over the same
//! layers (under /tmp: ext4 here, which has all of them).
//!
//! What FUSE can't carry fails cleanly (EOPNOTSUPP, or a field left out of statx's
//! mask), never EIO or a hang; README's "Differences from kernel overlayfs" says why.

use crate::fx::*;
use crate::support::*;
use std::path::{Path, PathBuf};

const MB: usize = 1 << 20;

/// A layer set with a 1 MiB lower file and a 1 MiB upper file of known bytes.
fn layers() -> Layout {
    let lay = Layout::new(1);
    let data: Vec<u8> = (0..MB).map(|i| (i / 4096 % 250) as u8 + 1).collect();
    std::fs::write(lay.l(0, "lf"), &data).unwrap();
    std::fs::write(lay.u("uf"), &data).unwrap();
    lay
}

fn fallocate(p: &Path, mode: i32, off: i64, len: i64) -> std::io::Result<()> {
    let fd = open(p, libc::O_RDWR, 0)?;
    cvt(unsafe { libc::fallocate(fd.0, mode, off, len) })?;
    Ok(())
}

/// Result, size and a digest of the contents after each mode, on each file.
fn fallocate_outcomes(root: &Path) -> Vec<(String, String, i64, u64)> {
    let modes: [(&str, i32); 6] = [
        ("extend", 0),
        ("keep-size", libc::FALLOC_FL_KEEP_SIZE),
        (
            "punch-hole",
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        ),
        ("zero-range", libc::FALLOC_FL_ZERO_RANGE),
        ("collapse-range", libc::FALLOC_FL_COLLAPSE_RANGE),
        ("insert-range", libc::FALLOC_FL_INSERT_RANGE),
    ];
    let mut out = Vec::new();
    for file in ["lf", "uf"] {
        for (name, mode) in modes {
            let p = root.join(file);
            let (off, len) = match name {
                "extend" => (MB as i64, 8192),
                "keep-size" => (2 * MB as i64, 8192),
                _ => (8192, 8192),
            };
            let r = fallocate(&p, mode, off, len);
            let bytes = std::fs::read(&p).unwrap();
            let digest = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)
            });
            out.push((
                format!("{file} {name}"),
                errname(eno(&r)),
                lstat(&p).unwrap().st_size,
                digest,
            ));
        }
    }
    out
}

/// KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE do what they do on the kernel overlay, on
/// a lower file (copied up by the write open) and on an upper one. COLLAPSE_RANGE
/// and INSERT_RANGE: the kernel's fuse refuses them (EOPNOTSUPP) before they reach
/// strata, and the file stays as it was; the kernel overlay does them.
#[test]
fn fallocate_modes_as_the_kernel_overlay() {
    if plain() {
        return;
    }
    let kl = layers();
    let k = kl.kernel_mount();
    let kernel = fallocate_outcomes(&k.path(""));
    k.umount();
    let sl = layers();
    let m = sl.mount();
    let strata = fallocate_outcomes(&m.path(""));
    for (k, s) in kernel.iter().zip(&strata) {
        if k.0.ends_with("collapse-range") || k.0.ends_with("insert-range") {
            eq(
                k.1.clone(),
                errname(0),
                &format!("{}: the kernel overlay does it", k.0),
            );
            eq(
                s.1.clone(),
                errname(libc::EOPNOTSUPP),
                &format!("{}: FUSE refuses it", s.0),
            );
        } else {
            eq(s, k, &format!("{}: result, size, contents", k.0));
        }
    }
    // The refused modes changed nothing: the last supported mode's state stands.
    for file in ["lf", "uf"] {
        let by = |v: &[(String, String, i64, u64)], name: &str| {
            v.iter()
                .find(|o| o.0 == format!("{file} {name}"))
                .map(|o| (o.2, o.3))
                .unwrap()
        };
        eq(
            by(&strata, "insert-range"),
            by(&strata, "zero-range"),
            &format!("{file}: unchanged by the refused modes"),
        );
    }
    eq(
        std::fs::read(sl.l(0, "lf")).unwrap().len(),
        MB,
        "the lower file untouched",
    );
}

fn tmpfile(dir: &Path) -> std::io::Result<Fd> {
    open(dir, libc::O_TMPFILE | libc::O_RDWR, 0o600)
}

/// O_TMPFILE: the kernel's fuse has FUSE_TMPFILE; fuser answers it ENOSYS and the
/// kernel then answers EOPNOTSUPP itself. Cleanly, every time, and the mount
/// goes on working. The kernel overlay makes the file in the upper's workdir.
#[test]
fn o_tmpfile_fails_cleanly() {
    if plain() {
        return;
    }
    let lay = layers();
    let k = lay.kernel_mount();
    assert_ok(tmpfile(&k.path("")), "O_TMPFILE on the kernel overlay");
    k.umount();
    let m = lay.mount();
    for i in 0..3 {
        assert_errno(
            tmpfile(&m.path("")),
            libc::EOPNOTSUPP,
            &format!("O_TMPFILE #{i}"),
        );
    }
    std::fs::write(m.path("after"), "x").unwrap();
    eq(
        content(&m.path("after")),
        "x".to_string(),
        "the mount still works",
    );
}

fn statx(p: &Path) -> libc::statx {
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let c = cstr(p);
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            &mut stx,
        )
    };
    assert_ok(cvt(r), &format!("statx {}", p.display()));
    stx
}

/// statx's birth time: the kernel overlay reports the real inode's. FUSE has
/// FUSE_STATX (7.39) for it, which fuser does not know: the kernel falls back to
/// GETATTR and leaves STATX_BTIME out of the mask. The basic fields stay right.
#[test]
fn statx_btime() {
    if plain() {
        return;
    }
    let lay = layers();
    let real: PathBuf = lay.l(0, "lf");
    let real_stx = statx(&real);
    assert!(
        real_stx.stx_mask & libc::STATX_BTIME != 0,
        "the backing filesystem reports btime"
    );
    let k = lay.kernel_mount();
    let ks = statx(&k.path("lf"));
    eq(
        ks.stx_mask & libc::STATX_BTIME,
        libc::STATX_BTIME,
        "kernel overlay: btime",
    );
    eq(
        (ks.stx_btime.tv_sec, ks.stx_btime.tv_nsec),
        (real_stx.stx_btime.tv_sec, real_stx.stx_btime.tv_nsec),
        "kernel overlay: the real inode's btime",
    );
    k.umount();
    let m = lay.mount();
    for _ in 0..2 {
        let s = statx(&m.path("lf"));
        eq(
            s.stx_mask & libc::STATX_BTIME,
            0,
            "strata: no btime in the mask",
        );
        eq(
            s.stx_mask & libc::STATX_BASIC_STATS,
            libc::STATX_BASIC_STATS,
            "strata: the basic fields",
        );
        eq(s.stx_size, MB as u64, "strata: size");
    }
}
