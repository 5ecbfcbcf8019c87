//! ioctls through the mount: chattr/lsattr's inode flags (FS_IOC_GETFLAGS and
//! FS_IOC_SETFLAGS, copy-up on set), the fsxattr, and ENOTTY for the rest, as on
//! the kernel overlay over the same layers. The layers are under /tmp, which must
//! be a filesystem with inode flags (ext4, xfs, btrfs): asserted first.

use crate::both;
use crate::fx::*;
use crate::support::*;
use std::path::Path;

const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
const FS_IOC_SETFLAGS: libc::c_ulong = 0x4008_6602;
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
const FS_IOC_GETVERSION: libc::c_ulong = 0x8008_7601;
const FS_APPEND_FL: u32 = 0x20;
const FS_NOATIME_FL: u32 = 0x80;
const FS_NODUMP_FL: u32 = 0x40;
const FS_XFLAG_APPEND: u32 = 0x10;

fn open_ro(p: &Path) -> std::io::Result<Fd> {
    open(p, libc::O_RDONLY | libc::O_NONBLOCK, 0)
}

fn get_flags(p: &Path) -> std::io::Result<u32> {
    let fd = open_ro(p)?;
    let mut v: libc::c_int = 0;
    cvt(unsafe { libc::ioctl(fd.0, FS_IOC_GETFLAGS, &mut v) })?;
    Ok(v as u32)
}

fn set_flags(p: &Path, flags: u32) -> std::io::Result<()> {
    let fd = open_ro(p)?;
    let v = flags as libc::c_int;
    cvt(unsafe { libc::ioctl(fd.0, FS_IOC_SETFLAGS, &v) })?;
    Ok(())
}

fn add_flags(p: &Path, flags: u32) -> std::io::Result<()> {
    set_flags(p, get_flags(p)? | flags)
}

fn clear_flags(p: &Path, flags: u32) -> std::io::Result<()> {
    set_flags(p, get_flags(p)? & !flags)
}

fn xflags(p: &Path) -> std::io::Result<u32> {
    let fd = open_ro(p)?;
    let mut x = [0u32; 7];
    cvt(unsafe { libc::ioctl(fd.0, FS_IOC_FSGETXATTR, x.as_mut_ptr()) })?;
    Ok(x[0])
}

fn backing_has_flags(dir: &Path) {
    assert!(
        get_flags(dir).is_ok(),
        "{} has no inode flags (FS_IOC_GETFLAGS): these tests need ext4, xfs or btrfs",
        dir.display()
    );
}

fn build(m: &Mk) {
    m.file("f", 0o644, 0, 0).dir("d", 0o755, 0, 0);
}

both!(lsattr_shows_the_real_flags, |o| {
    let f = fx(o, build);
    backing_has_flags(f.s.path());
    let flags = assert_ok(get_flags(&f.p("f")), "GETFLAGS of a file");
    let dflags = assert_ok(get_flags(&f.p("d")), "GETFLAGS of a directory");
    if plain() {
        return;
    }
    let real = |rel: &str| match o {
        Origin::Lower => f.lower.join(rel),
        Origin::Upper => f.upper.join(rel),
    };
    eq(
        flags,
        get_flags(&real("f")).unwrap(),
        "file: the real flags",
    );
    eq(
        dflags,
        get_flags(&real("d")).unwrap(),
        "dir: the real flags",
    );
    if o == Origin::Lower {
        eq(
            lstat(f.upper.join("f")).is_err(),
            true,
            "a read copies nothing up",
        );
    }
});

both!(chattr_append_only, |o| {
    let f = fx(o, build);
    backing_has_flags(f.s.path());
    let p = f.p("f");
    assert_ok(add_flags(&p, FS_APPEND_FL), "chattr +a");
    eq(
        get_flags(&p).unwrap() & FS_APPEND_FL,
        FS_APPEND_FL,
        "lsattr: a",
    );
    eq(
        xflags(&p).unwrap() & FS_XFLAG_APPEND,
        FS_XFLAG_APPEND,
        "fsxattr: append",
    );
    assert_errno(
        open(&p, libc::O_WRONLY | libc::O_TRUNC, 0),
        libc::EPERM,
        "write-truncate an append-only file",
    );
    let w = assert_ok(
        open(&p, libc::O_WRONLY | libc::O_APPEND, 0),
        "open O_APPEND",
    );
    assert_ok(w.write(b"+"), "append");
    drop(w);
    assert_errno(unlink(&p), libc::EPERM, "unlink an append-only file");
    if o == Origin::Lower && !plain() {
        eq(
            get_flags(&f.lower.join("f")).unwrap() & FS_APPEND_FL,
            0,
            "the lower file keeps its flags",
        );
        eq(
            content(&f.lower.join("f")),
            "data:f".to_string(),
            "lower untouched",
        );
    }
    assert_ok(clear_flags(&p, FS_APPEND_FL), "chattr -a");
    eq(get_flags(&p).unwrap() & FS_APPEND_FL, 0, "lsattr: no a");
    eq(content(&p), "data:f+".to_string(), "content");
    assert_ok(unlink(&p), "unlink once it is no longer append-only");
});

both!(chattr_on_a_directory, |o| {
    let f = fx(o, build);
    backing_has_flags(f.s.path());
    let d = f.p("d");
    assert_ok(add_flags(&d, FS_NOATIME_FL | FS_NODUMP_FL), "chattr +Ad");
    eq(
        get_flags(&d).unwrap() & (FS_NOATIME_FL | FS_NODUMP_FL),
        FS_NOATIME_FL | FS_NODUMP_FL,
        "lsattr -d: A and d",
    );
    if !plain() {
        let upper = f.upper.join("d");
        eq(
            get_flags(&upper).unwrap() & (FS_NOATIME_FL | FS_NODUMP_FL),
            FS_NOATIME_FL | FS_NODUMP_FL,
            "set on the upper directory",
        );
        if o == Origin::Lower {
            eq(
                get_flags(&f.lower.join("d")).unwrap() & FS_NOATIME_FL,
                0,
                "the lower directory keeps its flags",
            );
        }
    }
});

both!(other_ioctls_are_enotty, |o| {
    let f = fx(o, build);
    if plain() {
        return;
    }
    let fd = open_ro(&f.p("f")).unwrap();
    let mut v: libc::c_long = 0;
    assert_errno(
        cvt(unsafe { libc::ioctl(fd.0, FS_IOC_GETVERSION, &mut v) }),
        libc::ENOTTY,
        "FS_IOC_GETVERSION",
    );
});

#[test]
fn read_only_mount_refuses_chattr() {
    let Some(f) = fx_ro(build) else { return };
    let p = f.p("f");
    let flags = assert_ok(get_flags(&p), "lsattr on a read-only mount");
    assert_errno(
        set_flags(&p, flags | FS_NODUMP_FL),
        libc::EROFS,
        "chattr +d",
    );
}

/// The same chattr/lsattr sequence on the kernel overlay and on strata, each over
/// its own copy of the same layers.
#[test]
fn chattr_as_the_kernel_overlay() {
    if plain() {
        return;
    }
    let run = |kernel: bool| -> Vec<String> {
        let lay = Layout::new(1);
        backing_has_flags(&lay.lowers[0]);
        std::fs::write(lay.l(0, "lf"), "lower").unwrap();
        std::fs::create_dir(lay.l(0, "ld")).unwrap();
        std::fs::write(lay.u("uf"), "upper").unwrap();
        let (_k, _m, root) = if kernel {
            let k = lay.kernel_mount();
            let root = k.path("");
            (Some(k), None, root)
        } else {
            let m = lay.mount();
            let root = m.path("");
            (None, Some(m), root)
        };
        let mut out = Vec::new();
        let mut note = |what: &str, r: std::io::Result<u32>| {
            out.push(format!(
                "{what}: {}",
                match r {
                    Ok(v) => format!("{v:#x}"),
                    Err(e) => errname(e.raw_os_error().unwrap_or(0)),
                }
            ))
        };
        for name in ["lf", "uf", "ld"] {
            let p = root.join(name);
            note(&format!("{name} lsattr"), get_flags(&p));
            let add = if name == "ld" {
                FS_NOATIME_FL
            } else {
                FS_APPEND_FL
            };
            note(&format!("{name} chattr"), add_flags(&p, add).map(|_| 0));
            note(&format!("{name} lsattr after"), get_flags(&p));
            note(&format!("{name} xflags after"), xflags(&p));
            if name != "ld" {
                note(
                    &format!("{name} open O_TRUNC"),
                    open(&p, libc::O_WRONLY | libc::O_TRUNC, 0).map(|_| 0),
                );
                note(&format!("{name} unlink"), unlink(&p).map(|_| 0));
            }
            note(
                &format!("{name} chattr back"),
                clear_flags(&p, add).map(|_| 0),
            );
            note(&format!("{name} lsattr back"), get_flags(&p));
        }
        out
    };
    let kernel = run(true);
    let strata = run(false);
    eq(
        strata,
        kernel,
        "chattr/lsattr through strata and the kernel overlay",
    );
}
