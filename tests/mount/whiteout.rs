//! unlink/rmdir of lower objects, whiteouts and opaque directories in the kernel's
//! format, and the other formats strata honours on read.

use crate::lookup::strata_vs_kernel;
use crate::support::*;
use std::fs;

#[test]
fn unlink_of_lower_file_leaves_a_kernel_whiteout() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "dir"));
    write(lay.l(0, "dir/f"), "x");
    write(lay.l(0, "dir/g"), "y");
    let m = lay.mount();
    fs::remove_file(lay.m("dir/f")).unwrap();
    assert_errno(
        fs::symlink_metadata(lay.m("dir/f")),
        libc::ENOENT,
        "stat after unlink",
    );
    assert_errno(
        fs::remove_file(lay.m("dir/f")),
        libc::ENOENT,
        "second unlink",
    );
    assert_eq!(ls(lay.m("dir")), strs(&["g"]));
    m.umount();
    assert!(
        is_whiteout(lay.u("dir/f")),
        "upper dir/f is not a char 0/0 whiteout"
    );
    assert_eq!(read_string(lay.l(0, "dir/f")), "x");
    assert!(
        !is_opaque(lay.u("dir")),
        "parent of a whiteout must not be opaque"
    );
    // the kernel sees the same
    let t = strata_vs_kernel(&lay, true);
    assert!(!t.contains_key("dir/f"));
    assert!(t.contains_key("dir/g"));
}

#[test]
fn unlink_of_copied_up_file_leaves_a_whiteout() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "lower");
    let m = lay.mount();
    write(lay.m("f"), "upper now");
    assert!(lstat_meta(lay.u("f")).is_file());
    fs::remove_file(lay.m("f")).unwrap();
    assert_errno(fs::metadata(lay.m("f")), libc::ENOENT, "stat");
    m.umount();
    assert!(is_whiteout(lay.u("f")));
    let m = lay.mount();
    assert_errno(fs::metadata(lay.m("f")), libc::ENOENT, "stat after remount");
    m.umount();
}

#[test]
fn unlink_of_lower_symlink_and_fifo() {
    let lay = Layout::new(1);
    ln_s("/nowhere", lay.l(0, "link"));
    mkfifo(lay.l(0, "fifo"), 0o644).unwrap();
    let m = lay.mount();
    fs::remove_file(lay.m("link")).unwrap();
    fs::remove_file(lay.m("fifo")).unwrap();
    assert_eq!(ls(&lay.mnt), Vec::<String>::new());
    m.umount();
    assert!(is_whiteout(lay.u("link")));
    assert!(is_whiteout(lay.u("fifo")));
}

#[test]
fn rmdir_of_lower_empty_dir_leaves_a_whiteout() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "a/empty"));
    let m = lay.mount();
    fs::remove_dir(lay.m("a/empty")).unwrap();
    assert_errno(
        fs::metadata(lay.m("a/empty")),
        libc::ENOENT,
        "stat after rmdir",
    );
    assert_eq!(ls(lay.m("a")), Vec::<String>::new());
    m.umount();
    assert!(is_whiteout(lay.u("a/empty")));
    assert!(lstat_meta(lay.l(0, "a/empty")).is_dir());
}

#[test]
fn rmdir_of_merged_dir_needs_an_empty_merged_view() {
    let lay = Layout::new(2);
    mkdirs(lay.l(1, "d"));
    write(lay.l(1, "d/deep"), "1");
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/mid"), "0");
    mkdirs(lay.u("d"));
    let m = lay.mount();
    write(lay.m("d/new"), "u");
    assert_errno(
        fs::remove_dir(lay.m("d")),
        libc::ENOTEMPTY,
        "rmdir with 3 entries",
    );
    fs::remove_file(lay.m("d/new")).unwrap();
    assert_errno(
        fs::remove_dir(lay.m("d")),
        libc::ENOTEMPTY,
        "rmdir with lower entries",
    );
    fs::remove_file(lay.m("d/mid")).unwrap();
    assert_errno(
        fs::remove_dir(lay.m("d")),
        libc::ENOTEMPTY,
        "rmdir with a lower1 entry",
    );
    fs::remove_file(lay.m("d/deep")).unwrap();
    assert_eq!(ls(lay.m("d")), Vec::<String>::new());
    fs::remove_dir(lay.m("d")).unwrap();
    assert_errno(fs::metadata(lay.m("d")), libc::ENOENT, "stat after rmdir");
    assert_eq!(ls(&lay.mnt), Vec::<String>::new());
    m.umount();
    assert!(is_whiteout(lay.u("d")), "upper d should be a whiteout now");
    strata_vs_kernel(&lay, true);
}

#[test]
fn rmdir_of_dir_emptied_by_lower_whiteouts_succeeds() {
    let lay = Layout::new(2);
    mkdirs(lay.l(1, "d"));
    write(lay.l(1, "d/x"), "1");
    mkdirs(lay.l(0, "d"));
    make_whiteout(lay.l(0, "d/x"));
    let m = lay.mount();
    assert_eq!(ls(lay.m("d")), Vec::<String>::new());
    fs::remove_dir(lay.m("d")).unwrap();
    m.umount();
    assert!(is_whiteout(lay.u("d")));
}

#[test]
fn rmdir_of_non_empty_upper_dir_is_enotempty() {
    let lay = Layout::new(1);
    let m = lay.mount();
    fs::create_dir(lay.m("d")).unwrap();
    write(lay.m("d/f"), "x");
    assert_errno(fs::remove_dir(lay.m("d")), libc::ENOTEMPTY, "rmdir");
    assert_errno(
        fs::remove_dir(lay.m("d/f")),
        libc::ENOTDIR,
        "rmdir of a file",
    );
    assert_errno(fs::remove_file(lay.m("d")), libc::EISDIR, "unlink of a dir");
    fs::remove_file(lay.m("d/f")).unwrap();
    fs::remove_dir(lay.m("d")).unwrap();
    assert_eq!(ls(&lay.mnt), Vec::<String>::new());
    m.umount();
}

#[test]
fn mkdir_over_a_whiteout_is_opaque() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "d/sub"));
    write(lay.l(0, "d/a"), "a");
    write(lay.l(0, "d/sub/b"), "b");
    let m = lay.mount();
    fs::remove_file(lay.m("d/a")).unwrap();
    fs::remove_file(lay.m("d/sub/b")).unwrap();
    fs::remove_dir(lay.m("d/sub")).unwrap();
    fs::remove_dir(lay.m("d")).unwrap();
    fs::create_dir(lay.m("d")).unwrap();
    assert_eq!(ls(lay.m("d")), Vec::<String>::new());
    write(lay.m("d/new"), "n");
    assert_eq!(ls(lay.m("d")), strs(&["new"]));
    m.umount();
    assert!(lstat_meta(lay.u("d")).is_dir());
    assert_eq!(
        lgetxattr(lay.u("d"), "trusted.overlay.opaque").ok(),
        Some(b"y".to_vec()),
        "re-created directory must carry trusted.overlay.opaque=y"
    );
    let m = lay.mount();
    assert_eq!(ls(lay.m("d")), strs(&["new"]), "after remount");
    m.umount();
    let t = strata_vs_kernel(&lay, true);
    assert!(!t.contains_key("d/a") && !t.contains_key("d/sub"));
}

#[test]
fn mkdir_over_whited_out_file_hides_nothing_it_should_not() {
    let lay = Layout::new(1);
    write(lay.l(0, "x"), "file");
    let m = lay.mount();
    fs::remove_file(lay.m("x")).unwrap();
    fs::create_dir(lay.m("x")).unwrap();
    write(lay.m("x/in"), "1");
    assert_eq!(ls(lay.m("x")), strs(&["in"]));
    m.umount();
    assert!(lstat_meta(lay.u("x")).is_dir());
    strata_vs_kernel(&lay, true);
}

#[test]
fn files_created_over_whiteouts_replace_them() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "old");
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/x"), "x");
    write(lay.l(0, "s"), "old");
    let m = lay.mount();
    fs::remove_file(lay.m("f")).unwrap();
    write(lay.m("f"), "new");
    assert_eq!(read_string(lay.m("f")), "new");
    fs::remove_file(lay.m("d/x")).unwrap();
    fs::remove_dir(lay.m("d")).unwrap();
    write(lay.m("d"), "now a file");
    fs::remove_file(lay.m("s")).unwrap();
    std::os::unix::fs::symlink("f", lay.m("s")).unwrap();
    assert_eq!(read_string(lay.m("s")), "new");
    m.umount();
    assert_eq!(read_string(lay.u("f")), "new");
    assert_eq!(read_string(lay.u("d")), "now a file");
    assert_eq!(fs::read_link(lay.u("s")).unwrap().to_str(), Some("f"));
    strata_vs_kernel(&lay, true);
}

#[test]
fn userxattr_writes_user_overlay_opaque() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/a"), "a");
    let m = lay.mount_with("userxattr");
    fs::remove_file(lay.m("d/a")).unwrap();
    fs::remove_dir(lay.m("d")).unwrap();
    fs::create_dir(lay.m("d")).unwrap();
    assert_eq!(ls(lay.m("d")), Vec::<String>::new());
    m.umount();
    assert_eq!(
        lgetxattr(lay.u("d"), "user.overlay.opaque").ok(),
        Some(b"y".to_vec()),
        "with userxattr the opaque marker is user.overlay.opaque=y"
    );
    let m = lay.mount_with("userxattr");
    assert_eq!(ls(lay.m("d")), Vec::<String>::new());
    m.umount();
}

// ----- other formats, read only -----

#[test]
fn dot_wh_files_hide_and_are_hidden() {
    let lay = Layout::new(2);
    write(lay.l(1, "a"), "a");
    write(lay.l(1, "b"), "b");
    mkdirs(lay.l(1, "dir"));
    write(lay.l(1, "dir/x"), "x");
    write(lay.l(0, ".wh.a"), "");
    write(lay.u(".wh.b"), "");
    write(lay.u(".wh.dir"), "");
    write(lay.l(1, "c"), "c");
    let m = lay.mount();
    assert_eq!(ls(&lay.mnt), strs(&["c"]));
    for n in ["a", "b", "dir", ".wh.a", ".wh.b", ".wh.dir"] {
        assert_errno(fs::symlink_metadata(lay.m(n)), libc::ENOENT, n);
    }
    // re-creating a hidden name works
    write(lay.m("a"), "new a");
    assert_eq!(read_string(lay.m("a")), "new a");
    assert_eq!(ls(&lay.mnt), strs(&["a", "c"]));
    m.umount();
}

#[test]
fn dot_wh_opq_makes_a_directory_opaque() {
    let lay = Layout::new(2);
    mkdirs(lay.l(1, "d"));
    write(lay.l(1, "d/below"), "b");
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/.wh..wh..opq"), "");
    write(lay.l(0, "d/mine"), "m");
    mkdirs(lay.u("e"));
    write(lay.u("e/.wh..wh..opq"), "");
    mkdirs(lay.l(1, "e"));
    write(lay.l(1, "e/below"), "b");
    let _m = lay.mount();
    assert_eq!(ls(lay.m("d")), strs(&["mine"]));
    assert_eq!(ls(lay.m("e")), Vec::<String>::new());
    assert_errno(
        fs::metadata(lay.m("d/.wh..wh..opq")),
        libc::ENOENT,
        ".wh..wh..opq",
    );
}

#[test]
fn fuseoverlayfs_opaque_xattr_is_honoured() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/below"), "b");
    mkdirs(lay.u("d"));
    write(lay.u("d/up"), "u");
    lsetxattr(lay.u("d"), "user.fuseoverlayfs.opaque", b"y").unwrap();
    let _m = lay.mount();
    assert_eq!(ls(lay.m("d")), strs(&["up"]));
    assert_eq!(llistxattr(lay.m("d")).unwrap(), Vec::<String>::new());
}

#[test]
fn user_overlay_opaque_is_honoured_with_userxattr() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/below"), "b");
    mkdirs(lay.u("d"));
    lsetxattr(lay.u("d"), "user.overlay.opaque", b"y").unwrap();
    let _m = lay.mount_with("userxattr");
    assert_eq!(ls(lay.m("d")), Vec::<String>::new());
}

#[test]
fn xattr_whiteouts_match_the_kernel() {
    // Kernel 6.7+ "xwhiteouts": a zero-size regular file with overlay.whiteout, in a
    // directory marked overlay.opaque=x (which is NOT opaque).
    let lay = Layout::new(2);
    mkdirs(lay.l(1, "d"));
    write(lay.l(1, "d/hidden"), "h");
    write(lay.l(1, "d/kept"), "k");
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/hidden"), "");
    lsetxattr(lay.l(0, "d/hidden"), "trusted.overlay.whiteout", b"y").unwrap();
    lsetxattr(lay.l(0, "d"), "trusted.overlay.opaque", b"x").unwrap();
    write(lay.l(0, "d/own"), "o");
    let m = lay.mount_ro();
    assert_eq!(ls(lay.m("d")), strs(&["kept", "own"]));
    m.umount();
    strata_vs_kernel(&lay, false);
}
