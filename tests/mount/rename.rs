//! rename(2) and renameat2(2): files in every case, directories never EXDEV, redirects
//! in the kernel's format, RENAME_NOREPLACE and RENAME_EXCHANGE.

use crate::lookup::strata_vs_kernel;
use crate::support::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

const NOREPLACE: u32 = libc::RENAME_NOREPLACE;
const EXCHANGE: u32 = libc::RENAME_EXCHANGE;

#[test]
fn rename_upper_file() {
    let lay = Layout::new(1);
    let m = lay.mount();
    write(lay.m("a"), "a");
    fs::rename(lay.m("a"), lay.m("b")).unwrap();
    assert_eq!(ls(&lay.mnt), strs(&["b"]));
    assert_eq!(read_string(lay.m("b")), "a");
    m.umount();
    assert_eq!(ls(&lay.upper), strs(&["b"]));
}

#[test]
fn rename_lower_file_copies_up_and_whites_out() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "src"));
    mkdirs(lay.l(0, "dst"));
    write(lay.l(0, "src/f"), "lower data");
    chmod(lay.l(0, "src/f"), 0o751).unwrap();
    lchown(lay.l(0, "src/f"), 1234, 2345).unwrap();
    let m = lay.mount();
    let ino = lstat_meta(lay.m("src/f"));
    fs::rename(lay.m("src/f"), lay.m("dst/g")).unwrap();
    assert_errno(fs::metadata(lay.m("src/f")), libc::ENOENT, "old name");
    assert_eq!(read_string(lay.m("dst/g")), "lower data");
    let st = lstat_meta(lay.m("dst/g"));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (st.mode() & 0o7777, st.uid(), st.gid()),
        (0o751, 1234, 2345)
    );
    assert_eq!(st.ino(), ino.ino(), "rename changed st_ino");
    m.umount();
    assert!(is_whiteout(lay.u("src/f")));
    assert_eq!(read_string(lay.u("dst/g")), "lower data");
    assert_eq!(read_string(lay.l(0, "src/f")), "lower data");
    strata_vs_kernel(&lay, true);
}

#[test]
fn rename_over_existing_lower_file_replaces_it() {
    let lay = Layout::new(1);
    write(lay.l(0, "a"), "a");
    write(lay.l(0, "b"), "b");
    let m = lay.mount();
    fs::rename(lay.m("a"), lay.m("b")).unwrap();
    assert_eq!(ls(&lay.mnt), strs(&["b"]));
    assert_eq!(read_string(lay.m("b")), "a");
    m.umount();
    let m = lay.mount();
    assert_eq!(ls(&lay.mnt), strs(&["b"]));
    assert_eq!(read_string(lay.m("b")), "a");
    m.umount();
    strata_vs_kernel(&lay, true);
}

#[test]
fn rename_noreplace() {
    let lay = Layout::new(1);
    write(lay.l(0, "a"), "a");
    write(lay.l(0, "b"), "b");
    write(lay.l(0, "gone"), "g");
    let m = lay.mount();
    write(lay.m("u"), "u");
    assert_errno(
        renameat2(lay.m("a"), lay.m("b"), NOREPLACE),
        libc::EEXIST,
        "onto lower file",
    );
    assert_errno(
        renameat2(lay.m("u"), lay.m("a"), NOREPLACE),
        libc::EEXIST,
        "upper onto lower",
    );
    assert_errno(
        renameat2(lay.m("a"), lay.m("u"), NOREPLACE),
        libc::EEXIST,
        "lower onto upper",
    );
    assert_eq!(read_string(lay.m("a")), "a");
    assert_eq!(read_string(lay.m("b")), "b");
    renameat2(lay.m("a"), lay.m("c"), NOREPLACE).unwrap();
    // a whited-out name does not exist: NOREPLACE onto it must work
    fs::remove_file(lay.m("gone")).unwrap();
    renameat2(lay.m("c"), lay.m("gone"), NOREPLACE).unwrap();
    assert_eq!(read_string(lay.m("gone")), "a");
    assert_eq!(ls(&lay.mnt), strs(&["b", "gone", "u"]));
    m.umount();
    strata_vs_kernel(&lay, true);
}

#[test]
fn rename_exchange_files() {
    let lay = Layout::new(1);
    write(lay.l(0, "low"), "low");
    write(lay.l(0, "low2"), "low2");
    let m = lay.mount();
    write(lay.m("up"), "up");
    renameat2(lay.m("low"), lay.m("up"), EXCHANGE).unwrap();
    assert_eq!(read_string(lay.m("low")), "up");
    assert_eq!(read_string(lay.m("up")), "low");
    renameat2(lay.m("low"), lay.m("low2"), EXCHANGE).unwrap();
    assert_eq!(read_string(lay.m("low")), "low2");
    assert_eq!(read_string(lay.m("low2")), "up");
    assert_errno(
        renameat2(lay.m("low"), lay.m("missing"), EXCHANGE),
        libc::ENOENT,
        "exchange with a missing name",
    );
    m.umount();
    let m = lay.mount();
    assert_eq!(read_string(lay.m("low")), "low2");
    assert_eq!(read_string(lay.m("low2")), "up");
    assert_eq!(read_string(lay.m("up")), "low");
    m.umount();
    strata_vs_kernel(&lay, true);
}

#[test]
fn rename_exchange_file_and_directory() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/inside"), "i");
    write(lay.l(0, "f"), "f");
    let m = lay.mount();
    renameat2(lay.m("d"), lay.m("f"), EXCHANGE).unwrap();
    assert_eq!(read_string(lay.m("d")), "f");
    assert_eq!(ls(lay.m("f")), strs(&["inside"]));
    assert_eq!(read_string(lay.m("f/inside")), "i");
    m.umount();
    let m = lay.mount();
    assert_eq!(read_string(lay.m("d")), "f");
    assert_eq!(read_string(lay.m("f/inside")), "i");
    m.umount();
}

#[test]
fn rename_file_over_directory_and_back_errors() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "d"));
    mkdirs(lay.l(0, "full/x"));
    write(lay.l(0, "f"), "f");
    let m = lay.mount();
    assert_errno(
        fs::rename(lay.m("f"), lay.m("d")),
        libc::EISDIR,
        "file over dir",
    );
    assert_errno(
        fs::rename(lay.m("d"), lay.m("f")),
        libc::ENOTDIR,
        "dir over file",
    );
    assert_errno(
        fs::rename(lay.m("d"), lay.m("full")),
        libc::ENOTEMPTY,
        "dir over non-empty dir",
    );
    assert_errno(
        fs::rename(lay.m("nope"), lay.m("x")),
        libc::ENOENT,
        "missing source",
    );
    assert_errno(
        fs::rename(lay.m("d"), lay.m("d/sub")),
        libc::EINVAL,
        "dir into itself",
    );
    m.umount();
}

#[test]
fn rename_upper_only_directory() {
    let lay = Layout::new(1);
    let m = lay.mount();
    fs::create_dir_all(lay.m("a/b")).unwrap();
    write(lay.m("a/b/f"), "f");
    fs::rename(lay.m("a"), lay.m("z")).unwrap();
    assert_eq!(read_string(lay.m("z/b/f")), "f");
    assert_errno(fs::metadata(lay.m("a")), libc::ENOENT, "old dir");
    m.umount();
    assert_eq!(read_string(lay.u("z/b/f")), "f");
    assert!(!exists(lay.u("a")));
}

#[test]
fn rename_lower_directory_keeps_contents_and_records_a_redirect() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "a/b/deep"));
    write(lay.l(0, "a/b/f"), "f");
    write(lay.l(0, "a/b/deep/g"), "g");
    mkdirs(lay.l(0, "c"));
    let m = lay.mount();
    fs::rename(lay.m("a/b"), lay.m("c/d")).expect("rename of a lower directory (never EXDEV)");
    assert_errno(fs::metadata(lay.m("a/b")), libc::ENOENT, "old name");
    assert_eq!(ls(lay.m("c/d")), strs(&["deep", "f"]));
    assert_eq!(read_string(lay.m("c/d/f")), "f");
    assert_eq!(read_string(lay.m("c/d/deep/g")), "g");
    write(lay.m("c/d/new"), "n");
    m.umount();
    assert_eq!(
        lgetxattr(lay.u("c/d"), "trusted.overlay.redirect").ok(),
        Some(b"/a/b".to_vec()),
        "redirect xattr of the renamed directory"
    );
    assert!(is_whiteout(lay.u("a/b")), "old name must be whited out");
    assert_eq!(read_string(lay.l(0, "a/b/f")), "f");
    // still there after a remount
    let m = lay.mount();
    assert_eq!(ls(lay.m("c/d")), strs(&["deep", "f", "new"]));
    assert_eq!(read_string(lay.m("c/d/deep/g")), "g");
    assert_errno(
        fs::metadata(lay.m("a/b")),
        libc::ENOENT,
        "old name after remount",
    );
    m.umount();
    // and the kernel (redirect_dir=on) agrees
    let t = strata_vs_kernel(&lay, true);
    assert!(t.contains_key("c/d/deep/g"));
}

#[test]
fn rename_merged_directory() {
    let lay = Layout::new(2);
    mkdirs(lay.l(1, "m"));
    write(lay.l(1, "m/from1"), "1");
    mkdirs(lay.l(0, "m"));
    write(lay.l(0, "m/from0"), "0");
    mkdirs(lay.u("m"));
    write(lay.u("m/fromu"), "u");
    let m = lay.mount();
    fs::rename(lay.m("m"), lay.m("renamed")).unwrap();
    assert_eq!(ls(lay.m("renamed")), strs(&["from0", "from1", "fromu"]));
    assert_eq!(ls(&lay.mnt), strs(&["renamed"]));
    m.umount();
    let m = lay.mount();
    assert_eq!(ls(lay.m("renamed")), strs(&["from0", "from1", "fromu"]));
    assert_eq!(read_string(lay.m("renamed/from1")), "1");
    m.umount();
    strata_vs_kernel(&lay, true);
}

#[test]
fn renamed_directory_renamed_again_and_old_name_reused() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "a/sub"));
    write(lay.l(0, "a/sub/x"), "x");
    let m = lay.mount();
    fs::rename(lay.m("a"), lay.m("b")).unwrap();
    fs::rename(lay.m("b"), lay.m("c")).unwrap();
    fs::create_dir(lay.m("a")).unwrap();
    assert_eq!(
        ls(lay.m("a")),
        Vec::<String>::new(),
        "new a must not show the old contents"
    );
    fs::rename(lay.m("c/sub"), lay.m("a/moved")).unwrap();
    assert_eq!(read_string(lay.m("a/moved/x")), "x");
    assert_eq!(ls(lay.m("c")), Vec::<String>::new());
    m.umount();
    let m = lay.mount();
    assert_eq!(ls(&lay.mnt), strs(&["a", "c"]));
    assert_eq!(ls(lay.m("a")), strs(&["moved"]));
    assert_eq!(read_string(lay.m("a/moved/x")), "x");
    assert_eq!(ls(lay.m("c")), Vec::<String>::new());
    m.umount();
    strata_vs_kernel(&lay, true);
}

#[test]
fn rename_directory_over_empty_directory() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "src"));
    write(lay.l(0, "src/f"), "f");
    mkdirs(lay.l(0, "dst"));
    mkdirs(lay.l(0, "dst2"));
    write(lay.l(0, "dst2/only"), "o");
    let m = lay.mount();
    fs::rename(lay.m("src"), lay.m("dst")).unwrap();
    assert_eq!(ls(lay.m("dst")), strs(&["f"]));
    // a merged dir whose view is empty may be replaced too
    fs::remove_file(lay.m("dst2/only")).unwrap();
    fs::rename(lay.m("dst"), lay.m("dst2")).unwrap();
    assert_eq!(
        ls(lay.m("dst2")),
        strs(&["f"]),
        "lower contents of the replaced dir leaked"
    );
    assert_eq!(ls(&lay.mnt), strs(&["dst2"]));
    m.umount();
    let m = lay.mount();
    assert_eq!(ls(lay.m("dst2")), strs(&["f"]));
    assert_eq!(ls(&lay.mnt), strs(&["dst2"]));
    m.umount();
    strata_vs_kernel(&lay, true);
}

#[test]
fn rename_exchange_directories() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "x"));
    write(lay.l(0, "x/fx"), "x");
    mkdirs(lay.l(0, "y"));
    write(lay.l(0, "y/fy"), "y");
    let m = lay.mount();
    renameat2(lay.m("x"), lay.m("y"), EXCHANGE).unwrap();
    assert_eq!(ls(lay.m("x")), strs(&["fy"]));
    assert_eq!(ls(lay.m("y")), strs(&["fx"]));
    m.umount();
    let m = lay.mount();
    assert_eq!(ls(lay.m("x")), strs(&["fy"]));
    assert_eq!(ls(lay.m("y")), strs(&["fx"]));
    m.umount();
}

#[test]
fn rename_with_redirect_dir_off_still_keeps_contents() {
    // With redirect_dir=off the kernel returns EXDEV; either that or a rename that
    // keeps the contents is acceptable, never a rename that loses them.
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "a"));
    write(lay.l(0, "a/f"), "f");
    let m = lay.mount_with("redirect_dir=off");
    match fs::rename(lay.m("a"), lay.m("b")) {
        Ok(()) => {
            assert_eq!(read_string(lay.m("b/f")), "f");
            m.umount();
            let m = lay.mount();
            assert_eq!(read_string(lay.m("b/f")), "f");
            m.umount();
        }
        Err(e) => {
            assert_eq!(e.raw_os_error(), Some(libc::EXDEV), "rename: {e}");
            assert_eq!(read_string(lay.m("a/f")), "f");
        }
    }
}

#[test]
fn operations_inside_a_renamed_lower_directory() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "a/sub"));
    write(lay.l(0, "a/f"), "f");
    write(lay.l(0, "a/g"), "g");
    write(lay.l(0, "a/h"), "h");
    write(lay.l(0, "a/sub/s"), "s");
    mkdirs(lay.l(0, "other"));
    write(lay.l(0, "other/o"), "o");
    let m = lay.mount();
    fs::rename(lay.m("a"), lay.m("b")).unwrap();
    fs::remove_file(lay.m("b/f")).unwrap(); // whiteout inside a redirected dir
    chmod(lay.m("b/g"), 0o600).unwrap(); // copy-up inside a redirected dir
    fs::rename(lay.m("b/h"), lay.m("other/h")).unwrap(); // out of it
    fs::rename(lay.m("other/o"), lay.m("b/o")).unwrap(); // into it
    fs::hard_link(lay.m("b/sub/s"), lay.m("b/s-link")).unwrap();
    let want = strs(&["g", "o", "s-link", "sub"]);
    assert_eq!(ls(lay.m("b")), want);
    assert_eq!(ls(lay.m("other")), strs(&["h"]));
    m.umount();
    let m = lay.mount();
    assert_eq!(ls(lay.m("b")), want, "after remount");
    assert_eq!(read_string(lay.m("b/o")), "o");
    assert_eq!(read_string(lay.m("other/h")), "h");
    assert_eq!(lstat_meta(lay.m("b/g")).permissions().mode() & 0o777, 0o600);
    m.umount();
    strata_vs_kernel(&lay, true);
}

#[test]
fn removing_a_renamed_lower_directory() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "a/sub"));
    write(lay.l(0, "a/f"), "f");
    write(lay.l(0, "a/sub/s"), "s");
    let m = lay.mount();
    fs::rename(lay.m("a"), lay.m("b")).unwrap();
    assert_errno(
        fs::remove_dir(lay.m("b")),
        libc::ENOTEMPTY,
        "rmdir of renamed non-empty dir",
    );
    fs::remove_dir_all(lay.m("b")).unwrap();
    assert_eq!(ls(&lay.mnt), Vec::<String>::new());
    fs::create_dir(lay.m("b")).unwrap();
    assert_eq!(ls(lay.m("b")), Vec::<String>::new());
    m.umount();
    let m = lay.mount();
    assert_eq!(ls(&lay.mnt), strs(&["b"]));
    assert_eq!(ls(lay.m("b")), Vec::<String>::new());
    m.umount();
    strata_vs_kernel(&lay, true);
}

#[test]
fn rename_directory_within_the_same_parent_and_back() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "p/x"));
    write(lay.l(0, "p/x/f"), "f");
    let m = lay.mount();
    fs::rename(lay.m("p/x"), lay.m("p/y")).unwrap();
    fs::rename(lay.m("p/y"), lay.m("p/x")).unwrap();
    assert_eq!(ls(lay.m("p")), strs(&["x"]));
    assert_eq!(read_string(lay.m("p/x/f")), "f");
    fs::rename(lay.m("p/x"), lay.m("p/z")).unwrap();
    m.umount();
    let m = lay.mount();
    assert_eq!(ls(lay.m("p")), strs(&["z"]));
    assert_eq!(read_string(lay.m("p/z/f")), "f");
    m.umount();
    strata_vs_kernel(&lay, true);
}

#[test]
fn rename_directory_onto_a_deleted_lower_name() {
    let lay = Layout::new(1);
    write(lay.l(0, "was-file"), "f");
    mkdirs(lay.l(0, "was-dir"));
    let m = lay.mount();
    fs::remove_file(lay.m("was-file")).unwrap();
    fs::remove_dir(lay.m("was-dir")).unwrap();
    fs::create_dir(lay.m("d1")).unwrap();
    write(lay.m("d1/in"), "1");
    fs::create_dir(lay.m("d2")).unwrap();
    fs::rename(lay.m("d1"), lay.m("was-file")).expect("upper dir onto a whited-out file name");
    fs::rename(lay.m("d2"), lay.m("was-dir")).expect("upper dir onto a whited-out dir name");
    write(lay.m("f"), "x");
    fs::rename(lay.m("f"), lay.m("was-dir/f")).unwrap();
    assert_eq!(ls(&lay.mnt), strs(&["was-dir", "was-file"]));
    assert_eq!(read_string(lay.m("was-file/in")), "1");
    m.umount();
    let m = lay.mount();
    assert_eq!(read_string(lay.m("was-file/in")), "1");
    assert_eq!(ls(lay.m("was-dir")), strs(&["f"]));
    m.umount();
    strata_vs_kernel(&lay, true);
}
