//! Hard links and symlinks.

use crate::lookup::strata_vs_kernel;
use crate::support::*;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;

#[test]
fn link_of_lower_file_copies_up_and_links() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/orig"), "content");
    let m = lay.mount();
    let ino_before = lstat_meta(lay.m("d/orig")).ino();
    fs::hard_link(lay.m("d/orig"), lay.m("link")).unwrap();
    let a = lstat_meta(lay.m("d/orig"));
    let b = lstat_meta(lay.m("link"));
    assert_eq!(a.ino(), b.ino(), "both names must show the same st_ino");
    assert_eq!(a.ino(), ino_before, "st_ino changed by the copy-up");
    assert_eq!(a.nlink(), 2, "st_nlink of the original right after link()");
    assert_eq!(b.nlink(), 2, "st_nlink of the new name right after link()");
    // a write through one name shows through the other
    fs::OpenOptions::new()
        .append(true)
        .open(lay.m("link"))
        .unwrap()
        .write_all(b"+more")
        .unwrap();
    assert_eq!(read_string(lay.m("d/orig")), "content+more");
    m.umount();
    let ua = lstat_meta(lay.u("d/orig"));
    let ub = lstat_meta(lay.u("link"));
    assert_eq!(ua.ino(), ub.ino(), "upper names are not hard links");
    assert_eq!(ua.nlink(), 2);
    assert_eq!(read_string(lay.l(0, "d/orig")), "content");
    let t = strata_vs_kernel(&lay, true);
    assert_eq!(t["link"].nlink, Some(2));
}

#[test]
fn link_of_upper_file_and_unlink_one_name() {
    let lay = Layout::new(1);
    let m = lay.mount();
    write(lay.m("a"), "a");
    fs::hard_link(lay.m("a"), lay.m("b")).unwrap();
    fs::hard_link(lay.m("a"), lay.m("c")).unwrap();
    assert_eq!(lstat_meta(lay.m("b")).nlink(), 3);
    fs::remove_file(lay.m("a")).unwrap();
    assert_eq!(lstat_meta(lay.m("b")).nlink(), 2);
    assert_eq!(lstat_meta(lay.m("c")).nlink(), 2);
    assert_eq!(lstat_meta(lay.m("b")).ino(), lstat_meta(lay.m("c")).ino());
    assert_eq!(read_string(lay.m("c")), "a");
    m.umount();
}

#[test]
fn link_of_lower_file_then_unlink_the_lower_name() {
    let lay = Layout::new(1);
    write(lay.l(0, "orig"), "x");
    let m = lay.mount();
    fs::hard_link(lay.m("orig"), lay.m("new")).unwrap();
    fs::remove_file(lay.m("orig")).unwrap();
    assert_errno(fs::metadata(lay.m("orig")), libc::ENOENT, "orig");
    assert_eq!(lstat_meta(lay.m("new")).nlink(), 1);
    assert_eq!(read_string(lay.m("new")), "x");
    m.umount();
    assert!(is_whiteout(lay.u("orig")));
    strata_vs_kernel(&lay, true);
}

#[test]
fn link_errors() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "f"), "f");
    write(lay.l(0, "g"), "g");
    let m = lay.mount();
    assert_errno(
        fs::hard_link(lay.m("d"), lay.m("d2")),
        libc::EPERM,
        "link of a directory",
    );
    assert_errno(
        fs::hard_link(lay.m("f"), lay.m("g")),
        libc::EEXIST,
        "link onto existing",
    );
    assert_errno(
        fs::hard_link(lay.m("nope"), lay.m("x")),
        libc::ENOENT,
        "link of missing",
    );
    m.umount();
}

#[test]
fn symlinks_create_and_read() {
    let lay = Layout::new(1);
    ln_s("lower-target", lay.l(0, "lowlink"));
    let m = lay.mount();
    std::os::unix::fs::symlink("some/relative/path", lay.m("rel")).unwrap();
    let long: String = "x/".repeat(1000) + "end";
    std::os::unix::fs::symlink(&long, lay.m("long")).unwrap();
    assert_eq!(
        fs::read_link(lay.m("rel")).unwrap().to_str(),
        Some("some/relative/path")
    );
    assert_eq!(
        fs::read_link(lay.m("long")).unwrap().to_str(),
        Some(long.as_str())
    );
    assert_eq!(
        fs::read_link(lay.m("lowlink")).unwrap().to_str(),
        Some("lower-target")
    );
    assert!(lstat_meta(lay.m("rel")).file_type().is_symlink());
    assert_eq!(
        lstat_meta(lay.m("rel")).len(),
        "some/relative/path".len() as u64
    );
    assert_errno(
        std::os::unix::fs::symlink("t", lay.m("lowlink")),
        libc::EEXIST,
        "symlink onto existing",
    );
    // following works
    write(lay.m("target-file"), "via link");
    std::os::unix::fs::symlink("target-file", lay.m("tl")).unwrap();
    assert_eq!(read_string(lay.m("tl")), "via link");
    m.umount();
    assert_eq!(
        fs::read_link(lay.u("rel")).unwrap().to_str(),
        Some("some/relative/path")
    );
    assert_eq!(
        fs::read_link(lay.u("long")).unwrap().to_str(),
        Some(long.as_str())
    );
}
