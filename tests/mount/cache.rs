//! Coherence of what the kernel caches (attributes, pages, entries) with what
//! strata did: hard links seen through either name, objects created over whiteouts,
//! copy-up across filesystems.

use crate::support::*;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};

fn coherent_links(lay: &Layout, a: &str, b: &str) {
    // attributes changed through one name show through the other at once
    let _ = lstat_meta(lay.m(b));
    chmod(lay.m(a), 0o640).unwrap();
    assert_eq!(
        lstat_meta(lay.m(b)).mode() & 0o7777,
        0o640,
        "mode through the other link"
    );
    lchown(lay.m(a), 321, 654).unwrap();
    assert_eq!(
        (lstat_meta(lay.m(b)).uid(), lstat_meta(lay.m(b)).gid()),
        (321, 654)
    );
    // data written through one name reads through the other, even if cached
    assert_eq!(read(lay.m(b)).len(), read(lay.m(a)).len());
    let f = fs::OpenOptions::new().write(true).open(lay.m(a)).unwrap();
    f.write_all_at(b"CHANGED", 0).unwrap();
    drop(f);
    assert_eq!(
        &read(lay.m(b))[..7],
        b"CHANGED",
        "data through the other link"
    );
    // size through the other name
    let f = fs::OpenOptions::new().write(true).open(lay.m(b)).unwrap();
    f.set_len(3).unwrap();
    drop(f);
    assert_eq!(lstat_meta(lay.m(a)).len(), 3, "size through the other link");
    assert_eq!(read(lay.m(a)), b"CHA");
}

#[test]
fn links_made_by_link_are_coherent() {
    let lay = Layout::new(1);
    write(lay.l(0, "a"), "original data");
    let _m = lay.mount();
    let _ = read(lay.m("a")); // pages of the lower file cached
    fs::hard_link(lay.m("a"), lay.m("b")).unwrap();
    coherent_links(&lay, "a", "b");
}

#[test]
fn lower_hard_links_are_coherent_after_copy_up() {
    let lay = Layout::new(1);
    write(lay.l(0, "a"), "original data");
    fs::hard_link(lay.l(0, "a"), lay.l(0, "b")).unwrap();
    let _m = lay.mount();
    let _ = read(lay.m("a"));
    let _ = read(lay.m("b"));
    coherent_links(&lay, "a", "b");
}

#[test]
fn nlink_of_the_other_name_after_rename_over_a_link() {
    let lay = Layout::new(1);
    write(lay.l(0, "a"), "a");
    write(lay.l(0, "c"), "c");
    let _m = lay.mount();
    fs::hard_link(lay.m("a"), lay.m("a2")).unwrap();
    assert_eq!(lstat_meta(lay.m("a2")).nlink(), 2);
    fs::rename(lay.m("c"), lay.m("a")).unwrap();
    assert_eq!(
        lstat_meta(lay.m("a2")).nlink(),
        1,
        "nlink after its other name was replaced"
    );
    assert_eq!(read_string(lay.m("a")), "c");
    assert_eq!(read_string(lay.m("a2")), "a");
}

#[test]
fn truncate_by_path_after_cached_reads() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "0123456789");
    let _m = lay.mount();
    assert_eq!(read_string(lay.m("f")), "0123456789");
    let c = cstr(lay.m("f"));
    cvt(unsafe { libc::truncate(c.as_ptr(), 4) }).unwrap();
    assert_eq!(
        read_string(lay.m("f")),
        "0123",
        "stale pages after truncate"
    );
    let f = fs::File::open(lay.m("f")).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 4);
}

#[test]
fn every_kind_of_object_can_be_created_over_a_whiteout() {
    let lay = Layout::new(1);
    for n in [
        "fifo",
        "hardlink",
        "node",
        "sock",
        "renamed-into",
        "exchanged",
    ] {
        write(lay.l(0, n), "lower");
    }
    let m = lay.mount();
    for n in [
        "fifo",
        "hardlink",
        "node",
        "sock",
        "renamed-into",
        "exchanged",
    ] {
        fs::remove_file(lay.m(n)).unwrap();
        assert_errno(fs::metadata(lay.m(n)), libc::ENOENT, n); // negative entry cached
    }
    mkfifo(lay.m("fifo"), 0o600).expect("mkfifo over a whiteout");
    write(lay.m("src"), "src");
    fs::hard_link(lay.m("src"), lay.m("hardlink")).expect("link over a whiteout");
    mknod(lay.m("node"), libc::S_IFCHR | 0o600, libc::makedev(1, 3))
        .expect("mknod over a whiteout");
    let sock = std::os::unix::net::UnixListener::bind(lay.m("sock")).expect("bind over a whiteout");
    drop(sock);
    write(lay.m("tmp"), "moved");
    fs::rename(lay.m("tmp"), lay.m("renamed-into")).expect("rename onto a whiteout");
    assert_eq!(read_string(lay.m("hardlink")), "src");
    assert_eq!(lstat_meta(lay.m("hardlink")).nlink(), 2);
    assert_eq!(read_string(lay.m("renamed-into")), "moved");
    assert_errno(
        renameat2(lay.m("src"), lay.m("exchanged"), libc::RENAME_EXCHANGE),
        libc::ENOENT,
        "RENAME_EXCHANGE with a whited-out name",
    );
    let mut names = ls(&lay.mnt);
    names.sort();
    assert_eq!(
        names,
        strs(&["fifo", "hardlink", "node", "renamed-into", "sock", "src"])
    );
    m.umount();
    let m = lay.mount();
    assert!(lstat_meta(lay.m("fifo")).file_type().is_fifo());
    assert_errno(fs::metadata(lay.m("exchanged")), libc::ENOENT, "exchanged");
    m.umount();
    crate::lookup::strata_vs_kernel(&lay, true);
}

#[test]
fn copy_up_across_filesystems() {
    let d = TestDir::new();
    let t = Tmpfs::new(&d.join("tmpfs"));
    let l = t.path.join("lower");
    mkdirs(l.join("dir"));
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7) as u8).collect();
    write(l.join("dir/file"), &data);
    chmod(l.join("dir/file"), 0o604).unwrap();
    lchown(l.join("dir/file"), 77, 78).unwrap();
    lsetxattr(l.join("dir/file"), "trusted.x", b"tmpfs").unwrap();
    ln_s("target", l.join("dir/link"));
    let u = d.dir("upper");
    let w = d.dir("work");
    let mnt = d.dir("mnt");
    let m = Mount::new(
        &format!(
            "lowerdir={},upperdir={},workdir={}",
            l.display(),
            u.display(),
            w.display()
        ),
        &mnt,
    );
    fs::OpenOptions::new()
        .append(true)
        .open(mnt.join("dir/file"))
        .unwrap()
        .write_all(b"!")
        .unwrap();
    lchown(mnt.join("dir/link"), 5, 5).unwrap();
    m.umount();
    let mut want = data.clone();
    want.push(b'!');
    assert!(
        read(u.join("dir/file")) == want,
        "content copied across filesystems"
    );
    let st = lstat_meta(u.join("dir/file"));
    assert_eq!((st.mode() & 0o7777, st.uid(), st.gid()), (0o604, 77, 78));
    assert_eq!(
        lgetxattr(u.join("dir/file"), "trusted.x").unwrap(),
        b"tmpfs"
    );
    assert_eq!(
        fs::read_link(u.join("dir/link")).unwrap().to_str(),
        Some("target")
    );
}

/// strata keeps lower hard links as one file (like the kernel's index=on); its link
/// count must then follow unlinks of the other names, as index=on's does.
#[test]
#[ignore = "documented difference: after the last kernel reference to a copied-up lower hard link goes, its other lower names are independent again (no index dir)"]
fn nlink_of_a_lower_hard_link_after_unlinking_the_other_name() {
    let lay = Layout::new(1);
    write(lay.l(0, "a"), "linked");
    fs::hard_link(lay.l(0, "a"), lay.l(0, "b")).unwrap();
    write(lay.l(0, "c"), "three");
    fs::hard_link(lay.l(0, "c"), lay.l(0, "d")).unwrap();
    let story = |root: &std::path::Path| {
        fs::remove_file(root.join("a")).unwrap();
        let b = lstat_meta(root.join("b")).nlink();
        // and once one name was copied up
        chmod(root.join("c"), 0o600).unwrap();
        fs::remove_file(root.join("c")).unwrap();
        let d = lstat_meta(root.join("d")).nlink();
        (b, d)
    };
    let k = lay.kernel_mount_with("index=on");
    let kernel = story(&k.mnt);
    k.umount();
    fs::remove_dir_all(&lay.upper).unwrap();
    mkdirs(&lay.upper);
    let _m = lay.mount();
    let strata = story(&lay.mnt);
    assert_eq!(kernel, (1, 1), "kernel index=on sanity");
    assert_eq!(
        strata, kernel,
        "st_nlink of the remaining name (strata vs kernel index=on)"
    );
}

/// With the writeback cache the kernel trusts its own file size. An O_TRUNC open
/// racing another process's writes must not leave the mount showing a size the
/// upper does not have (the kernel's atomic O_TRUNC zeroes i_size after the open,
/// outside the inode lock; strata does not ask for it with the writeback cache).
#[test]
fn o_trunc_opens_racing_writes_keep_the_size_true_with_writeback() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "lower");
    let _m = lay.mount_with("passthrough=off,writeback=on");
    let p = lay.m("f");
    for round in 0..200 {
        std::thread::scope(|s| {
            s.spawn(|| {
                let _ = fs::OpenOptions::new().write(true).truncate(true).open(&p);
            });
            s.spawn(|| {
                let mut f = fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.write_all(b"written").unwrap();
            });
        });
        let seen = fs::metadata(&p).unwrap().len();
        let on_disk = fs::metadata(lay.u("f")).unwrap().len();
        assert_eq!(
            seen, on_disk,
            "round {round}: the mount shows size {seen}, the upper holds {on_disk} bytes"
        );
    }
}

/// Copy-up of a lower hard link links up its other known names; the link count
/// then counts the upper names, and the kernel's cached one must not linger
/// (seed 777340 of the differential tester).
#[test]
fn nlink_after_a_lower_hard_link_is_copied_up() {
    let lay = Layout::new(1);
    write(lay.l(0, "c"), "linked");
    mkdirs(lay.l(0, "a"));
    mkdirs(lay.l(0, "b"));
    fs::hard_link(lay.l(0, "c"), lay.l(0, "a/c")).unwrap();
    fs::hard_link(lay.l(0, "c"), lay.l(0, "b/c")).unwrap();
    let m = lay.mount();
    fs::remove_file(lay.m("c")).unwrap();
    m.umount();
    let _m = lay.mount();
    // After the remount the lower's count shows again (documented), and is cached.
    assert_eq!(lstat_meta(lay.m("a/c")).nlink(), 3);
    assert_eq!(lstat_meta(lay.m("b/c")).nlink(), 3);
    drop(
        fs::OpenOptions::new()
            .write(true)
            .open(lay.m("b/c"))
            .unwrap(),
    );
    assert_eq!(lstat_meta(lay.u("b/c")).nlink(), 2, "a/c linked up");
    assert_eq!(lstat_meta(lay.m("b/c")).nlink(), 2, "b/c after copy-up");
    assert_eq!(lstat_meta(lay.m("a/c")).nlink(), 2, "a/c after copy-up");
}
