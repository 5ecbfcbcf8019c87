//! Permissions with several users on one root-made `allow_other` mount: the caller's
//! uid, gid and supplementary groups decide; what a caller creates is the caller's.

use crate::support::*;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};

const A: u32 = 1500;
const B: u32 = 1501;
const G1: u32 = 1600;
const G2: u32 = 1700;

fn e<T>(r: std::io::Result<T>) -> Result<T, i32> {
    r.map_err(|e| e.raw_os_error().unwrap_or(-1))
}

fn layout() -> Layout {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "shared"));
    chmod(lay.l(0, "shared"), 0o777).unwrap();
    mkdirs(lay.l(0, "sticky"));
    chmod(lay.l(0, "sticky"), 0o1777).unwrap();
    mkdirs(lay.l(0, "sg"));
    lchown(lay.l(0, "sg"), 0, G2).unwrap();
    chmod(lay.l(0, "sg"), 0o2777).unwrap();
    mkdirs(lay.l(0, "rootdir"));
    write(lay.l(0, "rootdir/rootfile"), "root's");
    chmod(lay.l(0, "rootdir/rootfile"), 0o644).unwrap();
    write(lay.l(0, "rootdir/afile"), "a's");
    lchown(lay.l(0, "rootdir/afile"), A, A).unwrap();
    chmod(lay.l(0, "rootdir/afile"), 0o600).unwrap();
    write(lay.l(0, "rootdir/groupfile"), "group's");
    lchown(lay.l(0, "rootdir/groupfile"), 0, G1).unwrap();
    chmod(lay.l(0, "rootdir/groupfile"), 0o040).unwrap();
    lay
}

#[test]
fn caller_owns_what_it_creates_with_its_umask() {
    let lay = layout();
    let m = lay.mount_with("allow_other");
    let c = Creds::user(A, A).groups(&[G1]).umask(0o027);
    as_user(&c, || {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o666)
            .open(lay.m("shared/file"))
            .unwrap();
        drop(f);
        fs::DirBuilder::new()
            .mode(0o777)
            .create(lay.m("shared/dir"))
            .unwrap();
        std::os::unix::fs::symlink("file", lay.m("shared/link")).unwrap();
        mkfifo(lay.m("shared/fifo"), 0o666).unwrap();
    });
    for (name, mode) in [("file", 0o640), ("dir", 0o750), ("fifo", 0o640)] {
        let st = lstat_meta(lay.m(format!("shared/{name}")));
        assert_eq!((st.uid(), st.gid()), (A, A), "owner of {name} in the view");
        assert_eq!(
            st.mode() & 0o7777,
            mode,
            "mode of {name} in the view (umask 027)"
        );
    }
    let st = lstat_meta(lay.m("shared/link"));
    assert_eq!((st.uid(), st.gid()), (A, A), "owner of the symlink");
    m.umount();
    for (name, mode) in [("file", 0o640), ("dir", 0o750), ("fifo", 0o640)] {
        let st = lstat_meta(lay.u(format!("shared/{name}")));
        assert_eq!((st.uid(), st.gid()), (A, A), "owner of upper {name}");
        assert_eq!(st.mode() & 0o7777, mode, "mode of upper {name}");
    }
    assert_eq!(lstat_meta(lay.u("shared/link")).uid(), A);
    // the copied-up parent kept its own owner and mode
    let st = lstat_meta(lay.u("shared"));
    assert_eq!((st.uid(), st.mode() & 0o7777), (0, 0o777));
}

#[test]
fn setgid_directory_rule() {
    let lay = layout();
    let m = lay.mount_with("allow_other");
    as_user(&Creds::user(A, A), || {
        write(lay.m("sg/file"), "x");
        fs::create_dir(lay.m("sg/sub")).unwrap();
    });
    let st = lstat_meta(lay.m("sg/file"));
    assert_eq!(
        (st.uid(), st.gid()),
        (A, G2),
        "file in a setgid dir takes the dir's group"
    );
    let st = lstat_meta(lay.m("sg/sub"));
    assert_eq!(
        (st.uid(), st.gid()),
        (A, G2),
        "subdir in a setgid dir takes the dir's group"
    );
    assert_ne!(
        st.mode() & 0o2000,
        0,
        "subdir of a setgid dir must be setgid too"
    );
    m.umount();
    assert_eq!(lstat_meta(lay.u("sg/file")).gid(), G2);
    assert_ne!(lstat_meta(lay.u("sg/sub")).mode() & 0o2000, 0);
}

#[test]
fn access_is_decided_by_uid_gid_and_supplementary_groups() {
    let lay = layout();
    let _m = lay.mount_with("allow_other");
    let r = as_user(&Creds::user(A, A), || {
        (
            e(fs::read(lay.m("rootdir/afile"))),
            e(fs::read(lay.m("rootdir/groupfile"))),
            e(fs::read(lay.m("rootdir/rootfile"))),
        )
    });
    assert_eq!(r.0, Ok(b"a's".to_vec()), "owner reads its 0600 file");
    assert_eq!(r.1, Err(libc::EACCES), "non-member reads a 0040 group file");
    assert_eq!(r.2, Ok(b"root's".to_vec()), "anyone reads a 0644 file");
    let r = as_user(&Creds::user(B, B).groups(&[G1]), || {
        (
            e(fs::read(lay.m("rootdir/afile"))),
            e(fs::read(lay.m("rootdir/groupfile"))),
        )
    });
    assert_eq!(r.0, Err(libc::EACCES), "other user reads a 0600 file");
    assert_eq!(
        r.1,
        Ok(b"group's".to_vec()),
        "supplementary group member reads"
    );
    let r = as_user(&Creds::user(B, G1), || {
        e(fs::read(lay.m("rootdir/groupfile")))
    });
    assert_eq!(r, Ok(b"group's".to_vec()), "primary group member reads");
}

#[test]
fn denied_writes_fail_and_copy_nothing_up() {
    let lay = layout();
    let m = lay.mount_with("allow_other");
    let r = as_user(&Creds::user(A, A), || {
        vec![
            (
                "open O_WRONLY root's 0644 file",
                e(fs::OpenOptions::new()
                    .write(true)
                    .open(lay.m("rootdir/rootfile")))
                .map(|_| ()),
            ),
            (
                "O_TRUNC root's 0644 file",
                e(fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(lay.m("rootdir/rootfile")))
                .map(|_| ()),
            ),
            (
                "create in root's 0755 dir",
                e(fs::write(lay.m("rootdir/new"), "x")),
            ),
            (
                "mkdir in root's 0755 dir",
                e(fs::create_dir(lay.m("rootdir/newdir"))),
            ),
            (
                "unlink in root's 0755 dir",
                e(fs::remove_file(lay.m("rootdir/afile"))),
            ),
            (
                "rename in root's 0755 dir",
                e(fs::rename(lay.m("rootdir/afile"), lay.m("rootdir/moved"))),
            ),
            (
                "chmod of root's file",
                e(chmod(lay.m("rootdir/rootfile"), 0o666)),
            ),
            (
                "chown of root's file",
                e(lchown(lay.m("rootdir/rootfile"), A, A)),
            ),
            (
                "set user xattr on root's 0644 file",
                e(lsetxattr(lay.m("rootdir/rootfile"), "user.x", b"1")),
            ),
            (
                "utimens with explicit times on root's file",
                e(lutimens(lay.m("rootdir/rootfile"), (1, 0), (1, 0))),
            ),
            (
                "link into root's dir",
                e(fs::hard_link(
                    lay.m("rootdir/afile"),
                    lay.m("rootdir/afile2"),
                )),
            ),
        ]
    });
    let want = [
        libc::EACCES,
        libc::EACCES,
        libc::EACCES,
        libc::EACCES,
        libc::EACCES,
        libc::EACCES,
        libc::EPERM,
        libc::EPERM,
        libc::EACCES, // user.* xattrs need write permission (EACCES), not ownership
        libc::EPERM,
        libc::EACCES,
    ];
    for ((what, got), w) in r.iter().zip(want.iter()) {
        assert_eq!(*got, Err(*w), "{what}: expected {}", errname(*w));
    }
    m.umount();
    assert!(
        !exists(lay.u("rootdir/rootfile")) && !exists(lay.u("rootdir/afile")),
        "a denied operation copied something up: {:?}",
        if exists(lay.u("rootdir")) {
            ls(lay.u("rootdir"))
        } else {
            vec![]
        }
    );
}

#[test]
fn sticky_directory_protects_other_users_files() {
    let lay = layout();
    let _m = lay.mount_with("allow_other");
    as_user(&Creds::user(A, A), || write(lay.m("sticky/a"), "a"));
    let r = as_user(&Creds::user(B, B), || {
        (
            e(fs::remove_file(lay.m("sticky/a"))),
            e(fs::rename(lay.m("sticky/a"), lay.m("sticky/b"))),
            e(fs::write(lay.m("sticky/mine"), "b")),
        )
    });
    assert_eq!(
        r.0,
        Err(libc::EPERM),
        "unlink of another user's file in a sticky dir"
    );
    assert_eq!(
        r.1,
        Err(libc::EPERM),
        "rename of another user's file in a sticky dir"
    );
    assert_eq!(r.2, Ok(()));
    let r = as_user(&Creds::user(A, A), || e(fs::remove_file(lay.m("sticky/a"))));
    assert_eq!(r, Ok(()), "owner removes its own file");
}

#[test]
fn chown_and_chmod_rules() {
    let lay = layout();
    let _m = lay.mount_with("allow_other");
    let c = Creds::user(A, A).groups(&[G1]);
    let r = as_user(&c, || {
        write(lay.m("shared/f"), "x");
        (
            e(lchown(lay.m("shared/f"), B, u32::MAX)),
            e(lchown(lay.m("shared/f"), u32::MAX, G1)),
            e(lchown(lay.m("shared/f"), u32::MAX, G2)),
            e(chmod(lay.m("shared/f"), 0o604)),
        )
    });
    assert_eq!(r.0, Err(libc::EPERM), "give a file away");
    assert_eq!(r.1, Ok(()), "chgrp to a group the owner is in");
    assert_eq!(
        r.2,
        Err(libc::EPERM),
        "chgrp to a group the owner is not in"
    );
    assert_eq!(r.3, Ok(()), "owner chmods");
    let st = lstat_meta(lay.m("shared/f"));
    assert_eq!((st.uid(), st.gid(), st.mode() & 0o7777), (A, G1, 0o604));
    let r = as_user(&Creds::user(B, B), || {
        (
            e(chmod(lay.m("shared/f"), 0o666)),
            e(lchown(lay.m("shared/f"), B, B)),
        )
    });
    assert_eq!(
        r,
        (Err(libc::EPERM), Err(libc::EPERM)),
        "non-owner chmod/chown"
    );
    // non-owner may set times to "now" when it can write, not explicit times
    as_user(&c, || chmod(lay.m("shared/f"), 0o666).unwrap());
    let r = as_user(&Creds::user(B, B), || {
        let p = cstr(lay.m("shared/f"));
        (
            e(cvt(unsafe {
                libc::utimensat(libc::AT_FDCWD, p.as_ptr(), std::ptr::null(), 0)
            })),
            e(lutimens(lay.m("shared/f"), (5, 0), (5, 0))),
        )
    });
    assert_eq!(
        r.0,
        Ok(0),
        "touch (UTIME_NOW) by a non-owner with write access"
    );
    assert_eq!(r.1, Err(libc::EPERM), "explicit times by a non-owner");
}

#[test]
fn root_chown_through_the_mount() {
    let lay = layout();
    let _m = lay.mount_with("allow_other");
    as_user(&Creds::user(A, A), || write(lay.m("shared/f"), "x"));
    lchown(lay.m("shared/f"), B, G2).unwrap();
    let st = lstat_meta(lay.m("shared/f"));
    assert_eq!((st.uid(), st.gid()), (B, G2));
    assert_eq!(
        (
            lstat_meta(lay.u("shared/f")).uid(),
            lstat_meta(lay.u("shared/f")).gid()
        ),
        (B, G2)
    );
}

#[test]
fn setuid_and_setgid_bits_are_cleared_on_write_by_owner() {
    let lay = layout();
    for n in ["w", "t", "c"] {
        write(lay.l(0, format!("shared/{n}")), "#!/bin/sh\n");
        lchown(lay.l(0, format!("shared/{n}")), A, A).unwrap();
        chmod(lay.l(0, format!("shared/{n}")), 0o6755).unwrap();
    }
    let _m = lay.mount_with("allow_other");
    assert_eq!(lstat_meta(lay.m("shared/w")).mode() & 0o7777, 0o6755);
    let c = Creds::user(A, A).groups(&[G1]);
    as_user(&c, || {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(lay.m("shared/w"))
            .unwrap();
        f.write_all(b"echo\n").unwrap();
        drop(f);
        let p = cstr(lay.m("shared/t"));
        cvt(unsafe { libc::truncate(p.as_ptr(), 3) }).unwrap();
        lchown(lay.m("shared/c"), u32::MAX, G1).unwrap();
    });
    for n in ["w", "t", "c"] {
        let mode = lstat_meta(lay.m(format!("shared/{n}"))).mode() & 0o7777;
        assert_eq!(
            mode & 0o6000,
            0,
            "{n}: setuid/setgid still set after {} by the owner: {mode:o}",
            match n {
                "w" => "write",
                "t" => "truncate",
                _ => "chown",
            }
        );
        assert_eq!(mode & 0o777, 0o755, "{n}: permission bits changed");
    }
}

#[test]
fn non_root_modifies_own_lower_file_in_a_root_directory() {
    let lay = layout();
    let m = lay.mount_with("allow_other");
    let r = as_user(&Creds::user(A, A), || {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(lay.m("rootdir/afile"))?;
        f.write_all(b"+")?;
        drop(f);
        fs::read(lay.m("rootdir/afile"))
    });
    assert_eq!(e(r), Ok(b"a's+".to_vec()));
    m.umount();
    let st = lstat_meta(lay.u("rootdir/afile"));
    assert_eq!((st.uid(), st.gid(), st.mode() & 0o7777), (A, A, 0o600));
    let st = lstat_meta(lay.u("rootdir"));
    assert_eq!(
        (st.uid(), st.mode() & 0o7777),
        (0, 0o755),
        "copied-up parent"
    );
}

#[test]
fn several_users_share_one_mount() {
    let lay = layout();
    let _m = lay.mount_with("allow_other");
    let a = Creds::user(A, A).umask(0o077);
    let b = Creds::user(B, B).umask(0o077);
    as_user(&a, || write(lay.m("shared/a-private"), "a"));
    as_user(&b, || write(lay.m("shared/b-private"), "b"));
    assert_eq!(
        as_user(&b, || e(fs::read(lay.m("shared/a-private")))),
        Err(libc::EACCES)
    );
    assert_eq!(
        as_user(&a, || e(fs::read(lay.m("shared/b-private")))),
        Err(libc::EACCES)
    );
    assert_eq!(
        as_user(&a, || e(fs::read(lay.m("shared/a-private")))),
        Ok(b"a".to_vec())
    );
    // root reads both
    assert_eq!(read_string(lay.m("shared/a-private")), "a");
    assert_eq!(read_string(lay.m("shared/b-private")), "b");
    assert_eq!(lstat_meta(lay.m("shared/a-private")).mode() & 0o777, 0o600);
    // a user can't get into another's 0700 directory
    as_user(&a, || fs::create_dir(lay.m("shared/a-dir")).unwrap());
    assert_eq!(
        as_user(&b, || e(fs::read_dir(lay.m("shared/a-dir")).map(|_| ()))),
        Err(libc::EACCES)
    );
    assert_eq!(
        as_user(&b, || e(fs::write(lay.m("shared/a-dir/x"), "x"))),
        Err(libc::EACCES)
    );
}

#[test]
fn root_mount_is_shared_by_default_with_permissions_checked() {
    // README: allow_other is the default when strata runs as root (as with
    // fuse-overlayfs); permissions are still checked for every caller.
    let lay = layout();
    let _m = lay.mount();
    let r = as_user(&Creds::user(A, A), || {
        (
            e(fs::read(lay.m("rootdir/rootfile"))),
            e(fs::read(lay.m("rootdir/groupfile"))),
            e(fs::write(lay.m("rootdir/new"), "x")),
        )
    });
    assert_eq!(
        r.0,
        Ok(b"root's".to_vec()),
        "other users reach a root mount"
    );
    assert_eq!(r.1, Err(libc::EACCES), "but permissions are checked");
    assert_eq!(r.2, Err(libc::EACCES), "but permissions are checked");
    let _ = fs::Permissions::from_mode(0o0);
}

#[test]
fn copy_up_by_a_group_writer_keeps_the_original_owner() {
    let lay = layout();
    write(lay.l(0, "shared/groupw"), "base");
    lchown(lay.l(0, "shared/groupw"), 0, G1).unwrap();
    chmod(lay.l(0, "shared/groupw"), 0o664).unwrap();
    write(lay.l(0, "shared/a-owned"), "a");
    lchown(lay.l(0, "shared/a-owned"), A, A).unwrap();
    let m = lay.mount_with("allow_other");
    as_user(&Creds::user(B, B).groups(&[G1]), || {
        fs::OpenOptions::new()
            .append(true)
            .open(lay.m("shared/groupw"))
            .unwrap()
            .write_all(b"+b")
            .unwrap();
    });
    let r = as_user(&Creds::user(A, A), || {
        e(fs::remove_file(lay.m("shared/a-owned")))
    });
    assert_eq!(r, Ok(()));
    let st = lstat_meta(lay.m("shared/groupw"));
    assert_eq!(
        (st.uid(), st.gid(), st.mode() & 0o7777),
        (0, G1, 0o664),
        "view after copy-up"
    );
    m.umount();
    let st = lstat_meta(lay.u("shared/groupw"));
    assert_eq!(
        (st.uid(), st.gid(), st.mode() & 0o7777),
        (0, G1, 0o664),
        "a copy-up made for B must keep root:G1 as owner"
    );
    assert_eq!(read_string(lay.u("shared/groupw")), "base+b");
    assert!(
        is_whiteout(lay.u("shared/a-owned")),
        "unlink by a non-root owner leaves a whiteout"
    );
}

#[test]
fn setgid_rule_holds_over_a_whiteout_too() {
    // mkdir over a deleted lower name inside a setgid directory: the new directory
    // inherits the group and the setgid bit, as everywhere else (kernel does).
    let lay = layout();
    write(lay.l(0, "sg/was-file"), "x");
    mkdirs(lay.l(0, "sg/was-dir"));
    let story = |root: &std::path::Path| {
        as_user(&Creds::user(A, A).groups(&[G2]), || {
            fs::remove_file(root.join("sg/was-file")).unwrap();
            fs::remove_dir(root.join("sg/was-dir")).unwrap();
            fs::create_dir(root.join("sg/was-file")).unwrap();
            fs::create_dir(root.join("sg/was-dir")).unwrap();
            write(root.join("sg/was-dir/f"), "f");
        });
        ["sg/was-file", "sg/was-dir", "sg/was-dir/f"]
            .iter()
            .map(|p| {
                let st = lstat_meta(root.join(p));
                (p.to_string(), st.mode() & 0o7777, st.uid(), st.gid())
            })
            .collect::<Vec<_>>()
    };
    let k = lay.kernel_mount();
    let kernel = story(&k.mnt);
    k.umount();
    fs::remove_dir_all(&lay.upper).unwrap();
    mkdirs(&lay.upper);
    let _m = lay.mount_with("allow_other");
    let strata = story(&lay.mnt);
    assert_eq!(
        kernel[0].1 & 0o2000,
        0o2000,
        "kernel sanity: setgid inherited"
    );
    assert_eq!(strata, kernel, "(path, mode, uid, gid) strata vs kernel");
}
