//! The root daemon never gives a caller more than the caller's own credentials
//! would get on a disk filesystem: set-id bits, capabilities, privileged xattrs,
//! devices, hard links to others' files.

use crate::support::*;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

const A: u32 = 1500;
const B: u32 = 1501;
const G2: u32 = 1700;

fn e<T>(r: std::io::Result<T>) -> Result<T, i32> {
    r.map_err(|e| e.raw_os_error().unwrap_or(-1))
}

fn layout() -> Layout {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "shared"));
    chmod(lay.l(0, "shared"), 0o777).unwrap();
    mkdirs(lay.l(0, "sg"));
    lchown(lay.l(0, "sg"), 0, G2).unwrap();
    chmod(lay.l(0, "sg"), 0o2777).unwrap();
    write(lay.l(0, "shared/rootfile"), "root");
    chmod(lay.l(0, "shared/rootfile"), 0o644).unwrap();
    write(lay.l(0, "shared/a-suid"), "#!/bin/sh\n");
    lchown(lay.l(0, "shared/a-suid"), A, A).unwrap();
    chmod(lay.l(0, "shared/a-suid"), 0o6777).unwrap();
    lay
}

#[test]
fn non_root_cannot_set_file_capabilities_or_trusted_xattrs() {
    let lay = layout();
    let m = lay.mount_with("allow_other");
    let mut cap = Vec::new();
    for v in [0x0200_0000u32, 1 << 10, 0, 0, 0] {
        cap.extend_from_slice(&v.to_le_bytes());
    }
    let r = as_user(&Creds::user(A, A), || {
        write(lay.m("shared/mine"), "#!/bin/sh\n");
        (
            e(lsetxattr(lay.m("shared/mine"), "security.capability", &cap)),
            e(lsetxattr(
                lay.m("shared/mine"),
                "trusted.overlay.opaque",
                b"y",
            )),
            e(lsetxattr(lay.m("shared/mine"), "trusted.x", b"y")),
        )
    });
    assert_eq!(
        r.0,
        Err(libc::EPERM),
        "security.capability by a non-root owner"
    );
    assert!(r.1.is_err(), "trusted.overlay.* by a non-root owner");
    assert_eq!(r.2, Err(libc::EPERM), "trusted.* by a non-root owner");
    m.umount();
    assert_eq!(
        llistxattr(lay.u("shared/mine")).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn setgid_bit_of_a_foreign_group_is_dropped() {
    let lay = layout();
    let _m = lay.mount_with("allow_other");
    let c = Creds::user(A, A).umask(0);
    as_user(&c, || {
        // file gets group G2 from the setgid dir; A is not in G2
        write(lay.m("sg/f"), "#!/bin/sh\n");
        chmod(lay.m("sg/f"), 0o2755).unwrap();
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o2755)
            .open(lay.m("sg/created"))
            .unwrap();
    });
    let st = lstat_meta(lay.m("sg/f"));
    assert_eq!(st.gid(), G2);
    assert_eq!(
        st.mode() & 0o7777,
        0o755,
        "chmod g+s by a non-member must drop S_ISGID"
    );
    let st = lstat_meta(lay.m("sg/created"));
    assert_eq!(
        st.mode() & 0o2000,
        0,
        "create with S_ISGID by a non-member must drop it"
    );
    assert_eq!(
        lstat_meta(lay.u("sg/f")).mode() & 0o7777,
        0o755,
        "upper copy"
    );
}

#[test]
fn write_by_a_non_owner_clears_set_id_bits() {
    let lay = layout();
    let _m = lay.mount_with("allow_other");
    as_user(&Creds::user(B, B), || {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(lay.m("shared/a-suid"))
            .unwrap();
        f.write_all(b"# B was here\n").unwrap();
    });
    let mode = lstat_meta(lay.m("shared/a-suid")).mode() & 0o7777;
    assert_eq!(
        mode, 0o777,
        "set-id bits survive a write by another user: {mode:o}"
    );
    assert_eq!(lstat_meta(lay.u("shared/a-suid")).mode() & 0o7777, 0o777);
}

#[test]
fn root_chown_clears_set_id_bits_like_the_kernel() {
    let lay = layout();
    let story = |root: &std::path::Path| {
        lchown(root.join("shared/a-suid"), B, B).unwrap();
        lstat_meta(root.join("shared/a-suid")).mode() & 0o7777
    };
    let k = lay.kernel_mount();
    let kernel = story(&k.mnt);
    k.umount();
    fs::remove_dir_all(&lay.upper).unwrap();
    mkdirs(&lay.upper);
    let _m = lay.mount();
    let strata = story(&lay.mnt);
    assert_eq!(
        strata, kernel,
        "mode after root chowns a 6777 file (kernel: {kernel:o})"
    );
}

#[test]
fn non_root_cannot_make_devices_or_link_others_files() {
    let lay = layout();
    let _m = lay.mount_with("allow_other");
    let protected = fs::read_to_string("/proc/sys/fs/protected_hardlinks").unwrap_or_default();
    let r = as_user(&Creds::user(A, A), || {
        (
            e(mknod(
                lay.m("shared/null"),
                libc::S_IFCHR | 0o666,
                libc::makedev(1, 3),
            )),
            e(mknod(
                lay.m("shared/blk"),
                libc::S_IFBLK | 0o666,
                libc::makedev(7, 0),
            )),
            e(fs::hard_link(
                lay.m("shared/rootfile"),
                lay.m("shared/mylink"),
            )),
            e(mkfifo(lay.m("shared/fifo"), 0o600)),
        )
    });
    assert_eq!(r.0, Err(libc::EPERM), "char device by a non-root user");
    assert_eq!(r.1, Err(libc::EPERM), "block device by a non-root user");
    if protected.trim() == "1" {
        assert_eq!(
            r.2,
            Err(libc::EPERM),
            "hard link to root's file (protected_hardlinks=1)"
        );
    }
    assert_eq!(r.3, Ok(()), "fifos are fine");
}

#[test]
fn acl_of_another_users_file_cannot_be_changed() {
    let lay = layout();
    let _m = lay.mount_with("allow_other");
    let out = run(std::process::Command::new("setfacl")
        .args(["-m", "u:1501:rwx"])
        .arg(lay.m("shared/rootfile"))
        .uid(A)
        .gid(A));
    assert!(!out.ok(), "a non-owner changed an ACL");
    assert!(lgetxattr(lay.m("shared/rootfile"), "system.posix_acl_access").is_err());
    let r = as_user(&Creds::user(B, B), || {
        e(fs::write(lay.m("shared/rootfile"), "x"))
    });
    assert_eq!(r, Err(libc::EACCES));
}

use std::os::unix::process::CommandExt;
