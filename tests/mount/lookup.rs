//! Lookup through the layers: what hides what. Each layout is also mounted with
//! kernel overlayfs and the two views must be identical.

use crate::support::*;
use std::fs;
use std::os::unix::fs::FileTypeExt;

/// Snapshots strata's view, then kernel overlayfs's view of the same layers, asserts
/// they are identical, and returns strata's.
pub fn strata_vs_kernel(lay: &Layout, with_upper: bool) -> Tree {
    let m = if with_upper {
        lay.mount()
    } else {
        lay.mount_ro()
    };
    let s = snapshot(&lay.mnt);
    m.umount();
    let k = if with_upper {
        lay.kernel_mount()
    } else {
        lay.kernel_mount_ro()
    };
    let kt = snapshot(&k.mnt);
    k.umount();
    assert_same_tree("strata", &s, "kernel overlayfs", &kt);
    s
}

#[test]
fn non_directory_hides_directory_below() {
    let lay = Layout::new(2);
    mkdirs(lay.l(0, "x/sub"));
    write(lay.l(0, "x/child"), "hidden");
    write(lay.u("x"), "upper file");
    mkdirs(lay.l(1, "y"));
    write(lay.l(1, "y/child"), "hidden");
    write(lay.l(0, "y"), "lower0 file");
    ln_s("target", lay.l(0, "z"));
    mkdirs(lay.l(1, "z"));
    write(lay.l(1, "z/child"), "hidden");

    let m = lay.mount();
    assert!(lstat_meta(lay.m("x")).is_file());
    assert_eq!(read_string(lay.m("x")), "upper file");
    assert_eq!(read_string(lay.m("y")), "lower0 file");
    assert!(lstat_meta(lay.m("z")).file_type().is_symlink());
    assert_eq!(fs::read_link(lay.m("z")).unwrap().to_str(), Some("target"));
    assert_errno(fs::metadata(lay.m("x/child")), libc::ENOTDIR, "x/child");
    for e in fs::read_dir(&lay.mnt).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        match e.file_name().to_str().unwrap() {
            "x" | "y" => assert!(t.is_file(), "d_type of {:?}", e.file_name()),
            "z" => assert!(t.is_symlink(), "d_type of z"),
            other => panic!("unexpected entry {other}"),
        }
    }
    m.umount();
    strata_vs_kernel(&lay, true);
}

#[test]
fn directory_over_non_directory_does_not_merge_further_down() {
    let lay = Layout::new(2);
    mkdirs(lay.u("y"));
    write(lay.u("y/u"), "u");
    write(lay.l(0, "y"), "a file in lower0");
    mkdirs(lay.l(1, "y"));
    write(lay.l(1, "y/z"), "z");
    let t = strata_vs_kernel(&lay, true);
    assert!(t.contains_key("y/u"));
    assert!(
        !t.contains_key("y/z"),
        "merged through a non-directory: {t:?}"
    );
}

#[test]
fn directories_merge_across_all_layers() {
    let lay = Layout::new(3);
    for (i, root) in [
        lay.upper.clone(),
        lay.lowers[0].clone(),
        lay.lowers[1].clone(),
        lay.lowers[2].clone(),
    ]
    .iter()
    .enumerate()
    {
        mkdirs(root.join("d/deep/er"));
        write(root.join(format!("d/f{i}")), format!("{i}"));
        write(root.join(format!("d/deep/er/g{i}")), format!("{i}"));
        write(root.join("d/shared"), format!("layer {i}"));
    }
    let t = strata_vs_kernel(&lay, true);
    for i in 0..4 {
        assert!(t.contains_key(&format!("d/f{i}")));
        assert!(t.contains_key(&format!("d/deep/er/g{i}")));
    }
    assert_eq!(t["d/shared"].content.as_deref(), Some("\"layer 0\""));
}

#[test]
fn whiteouts_stop_lookup() {
    let lay = Layout::new(2);
    write(lay.l(1, "gone"), "lower1");
    make_whiteout(lay.l(0, "gone"));
    write(lay.l(0, "file"), "lower0");
    make_whiteout(lay.u("file"));
    mkdirs(lay.l(1, "dir/sub"));
    write(lay.l(1, "dir/sub/x"), "x");
    make_whiteout(lay.u("dir"));
    write(lay.l(1, "kept"), "kept");

    let m = lay.mount();
    for name in ["gone", "file", "dir", "dir/sub/x"] {
        assert_errno(fs::symlink_metadata(lay.m(name)), libc::ENOENT, name);
    }
    assert_eq!(ls(&lay.mnt), strs(&["kept"]));
    m.umount();
    let t = strata_vs_kernel(&lay, true);
    assert_eq!(t.keys().cloned().collect::<Vec<_>>(), strs(&["", "kept"]));
}

#[test]
fn whiteouts_in_lowers_of_a_readonly_merge() {
    let lay = Layout::new(3);
    write(lay.l(2, "a"), "a");
    write(lay.l(2, "b"), "b");
    make_whiteout(lay.l(1, "a"));
    write(lay.l(0, "c"), "c");
    let t = strata_vs_kernel(&lay, false);
    assert_eq!(t.keys().cloned().collect::<Vec<_>>(), strs(&["", "b", "c"]));
}

#[test]
fn opaque_directory_cuts_off_layers_below() {
    let lay = Layout::new(3);
    mkdirs(lay.l(2, "d"));
    write(lay.l(2, "d/from2"), "2");
    mkdirs(lay.l(1, "d"));
    write(lay.l(1, "d/from1"), "1");
    make_opaque(lay.l(1, "d"));
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/from0"), "0");
    mkdirs(lay.u("e"));
    write(lay.u("e/up"), "u");
    make_opaque(lay.u("e"));
    mkdirs(lay.l(0, "e"));
    write(lay.l(0, "e/low"), "l");

    let m = lay.mount();
    assert_eq!(ls(lay.m("d")), strs(&["from0", "from1"]));
    assert_eq!(ls(lay.m("e")), strs(&["up"]));
    assert_errno(fs::metadata(lay.m("d/from2")), libc::ENOENT, "d/from2");
    assert_errno(fs::metadata(lay.m("e/low")), libc::ENOENT, "e/low");
    m.umount();
    strata_vs_kernel(&lay, true);
}

#[test]
fn complex_stack_matches_kernel() {
    let lay = Layout::new(3);
    // lower2
    mkdirs(lay.l(2, "a/b/c"));
    write(lay.l(2, "a/b/c/deep"), "deep2");
    write(lay.l(2, "a/file"), "a2");
    mkdirs(lay.l(2, "opq/inner"));
    write(lay.l(2, "opq/inner/x"), "x");
    ln_s("../a/file", lay.l(2, "link"));
    write(lay.l(2, "exec"), "#!/bin/sh\n");
    chmod(lay.l(2, "exec"), 0o4755).unwrap();
    lsetxattr(lay.l(2, "a/file"), "user.tag", b"two").unwrap();
    mkfifo(lay.l(2, "fifo"), 0o640).unwrap();
    lchown(lay.l(2, "a/b"), 1000, 1001).unwrap();
    chmod(lay.l(2, "a/b"), 0o750).unwrap();
    // lower1
    mkdirs(lay.l(1, "a/b"));
    write(lay.l(1, "a/b/one"), "one");
    make_whiteout(lay.l(1, "a/file"));
    mkdirs(lay.l(1, "opq"));
    make_opaque(lay.l(1, "opq"));
    write(lay.l(1, "opq/mine"), "mine");
    write(lay.l(1, "link"), "no longer a link");
    // lower0
    mkdirs(lay.l(0, "a/b/c"));
    write(lay.l(0, "a/b/c/top"), "top");
    write(lay.l(0, "a/file"), "re-created in lower0");
    lsetxattr(lay.l(0, "a/b/c/top"), "user.k", b"v").unwrap();
    lsetxattr(lay.l(0, "a/b/c"), "user.dir", b"d").unwrap();
    // upper
    mkdirs(lay.u("a/b"));
    write(lay.u("a/b/upper"), "upper");
    make_whiteout(lay.u("a/b/one"));
    lchown(lay.u("a/b/upper"), 4321, 4322).unwrap();
    mknod(lay.u("chardev"), libc::S_IFCHR | 0o600, libc::makedev(1, 3)).unwrap();

    let ro = strata_vs_kernel(&lay, false);
    assert!(ro.contains_key("a/b/one"));
    let rw = strata_vs_kernel(&lay, true);
    assert!(!rw.contains_key("a/b/one"));
    assert_eq!(
        rw["a/file"].content.as_deref(),
        Some("\"re-created in lower0\"")
    );
    assert_eq!(rw["opq"].kind, 'd');
    assert!(!rw.contains_key("opq/inner"));
    assert_eq!(
        rw["a/b/c/top"].xattrs.get("user.k").map(|s| s.as_str()),
        Some("v")
    );
    assert_eq!(rw["exec"].mode, 0o4755);
    assert!(lstat_meta(lay.u("chardev")).file_type().is_char_device());
}

#[test]
fn nothing_overlay_private_is_listed_or_readable() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/f"), "x");
    mkdirs(lay.u("d"));
    make_opaque(lay.u("d"));
    lsetxattr(lay.u("d"), "user.overlay.opaque", b"y").unwrap();
    lsetxattr(lay.u("d"), "user.fuseoverlayfs.opaque", b"y").unwrap();
    lsetxattr(lay.u("d"), "user.visible", b"yes").unwrap();
    write(lay.l(0, "g"), "g");
    lsetxattr(lay.l(0, "g"), "trusted.overlay.origin", b"junk").unwrap();
    lsetxattr(lay.l(0, "g"), "user.overlay.foo", b"junk").unwrap();
    lsetxattr(lay.l(0, "g"), "user.fuseoverlayfs.bar", b"junk").unwrap();
    lsetxattr(lay.l(0, "g"), "user.plain", b"ok").unwrap();
    lsetxattr(lay.l(0, "g"), "trusted.plain", b"ok").unwrap();

    let _m = lay.mount();
    assert_eq!(llistxattr(lay.m("d")).unwrap(), strs(&["user.visible"]));
    assert_eq!(
        llistxattr(lay.m("g")).unwrap(),
        strs(&["trusted.plain", "user.plain"])
    );
    for (p, name) in [
        ("d", "trusted.overlay.opaque"),
        ("d", "user.overlay.opaque"),
        ("d", "user.fuseoverlayfs.opaque"),
        ("g", "trusted.overlay.origin"),
        ("g", "user.overlay.foo"),
        ("g", "user.fuseoverlayfs.bar"),
    ] {
        assert_errno(
            lgetxattr(lay.m(p), name),
            libc::ENODATA,
            &format!("getxattr {p} {name}"),
        );
    }
    assert_eq!(lgetxattr(lay.m("g"), "user.plain").unwrap(), b"ok");
    assert_eq!(ls(lay.m("d")), Vec::<String>::new());
}

#[test]
fn overlay_private_xattrs_cannot_be_set_through_the_mount() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/f"), "x");
    let _m = lay.mount();
    for name in [
        "trusted.overlay.opaque",
        "user.overlay.opaque",
        "user.fuseoverlayfs.opaque",
    ] {
        let r = lsetxattr(lay.m("d"), name, b"y");
        assert!(r.is_err(), "setxattr {name} through the mount succeeded");
        assert_eq!(ls(lay.m("d")), strs(&["f"]), "after setxattr {name}");
    }
}
