//! Copy-up: every modification of a lower object copies it (and its parents) to the
//! upper layer with data, mode, owner, times, xattrs; the lower never changes.

use crate::support::*;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};

/// A lower file with distinctive metadata. atime is in the future so that reading the
/// lower file (relatime) does not change it.
struct Fixture {
    lay: Layout,
    atime: (i64, i64),
    mtime: (i64, i64),
}

fn fixture() -> Fixture {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "dir"));
    write(lay.l(0, "dir/file"), "hello world");
    lchown(lay.l(0, "dir/file"), 1234, 2345).unwrap();
    chmod(lay.l(0, "dir/file"), 0o640).unwrap();
    lsetxattr(lay.l(0, "dir/file"), "user.color", b"blue").unwrap();
    lsetxattr(lay.l(0, "dir/file"), "trusted.t", b"tv").unwrap();
    let atime = (now_secs() + 3600, 111);
    let mtime = (1_200_000_000, 123_456_789);
    lutimens(lay.l(0, "dir/file"), atime, mtime).unwrap();
    Fixture { lay, atime, mtime }
}

impl Fixture {
    fn lower_snapshot(&self) -> Tree {
        snapshot(&self.lay.lowers[0])
    }
    #[track_caller]
    fn assert_upper_file(&self, content: &str, mode: u32, uid: u32, gid: u32) {
        let p = self.lay.u("dir/file");
        let st = lstat_meta(&p);
        assert!(st.is_file(), "upper dir/file is not a regular file");
        assert_eq!(read_string(&p), content, "upper content");
        assert_eq!(st.mode() & 0o7777, mode, "upper mode {:o}", st.mode());
        assert_eq!((st.uid(), st.gid()), (uid, gid), "upper owner");
    }
    #[track_caller]
    fn assert_upper_times(&self) {
        let st = lstat_meta(self.lay.u("dir/file"));
        assert_eq!(
            (st.mtime(), st.mtime_nsec()),
            self.mtime,
            "mtime not copied up"
        );
        assert_eq!(
            (st.atime(), st.atime_nsec()),
            self.atime,
            "atime not copied up"
        );
    }
    #[track_caller]
    fn assert_upper_xattrs(&self, extra: &[(&str, &[u8])]) {
        let p = self.lay.u("dir/file");
        let mut want: Vec<String> = vec!["trusted.t".into(), "user.color".into()];
        for (n, _) in extra {
            want.push(n.to_string());
        }
        want.sort();
        want.dedup();
        let names: Vec<String> = llistxattr(&p)
            .unwrap()
            .into_iter()
            .filter(|n| !n.starts_with("trusted.overlay.") && !n.starts_with("user.overlay."))
            .collect();
        assert_eq!(names, want, "upper xattrs");
        assert_eq!(lgetxattr(&p, "user.color").unwrap(), b"blue");
        assert_eq!(lgetxattr(&p, "trusted.t").unwrap(), b"tv");
        for (n, v) in extra {
            assert_eq!(lgetxattr(&p, n).unwrap(), *v, "{n}");
        }
    }
}

#[test]
fn open_for_write_copies_up_and_keeps_the_rest() {
    let f = fixture();
    let before = f.lower_snapshot();
    let m = f.lay.mount();
    {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(f.lay.m("dir/file"))
            .unwrap();
        file.write_all_at(b"HELLO", 0).unwrap();
    }
    assert_eq!(read_string(f.lay.m("dir/file")), "HELLO world");
    m.umount();
    f.assert_upper_file("HELLO world", 0o640, 1234, 2345);
    f.assert_upper_xattrs(&[]);
    assert_same_tree("lower before", &before, "lower after", &f.lower_snapshot());
}

#[test]
fn open_for_write_without_writing_copies_up() {
    let f = fixture();
    let m = f.lay.mount();
    drop(
        fs::OpenOptions::new()
            .write(true)
            .open(f.lay.m("dir/file"))
            .unwrap(),
    );
    m.umount();
    f.assert_upper_file("hello world", 0o640, 1234, 2345);
    f.assert_upper_times();
    f.assert_upper_xattrs(&[]);
}

#[test]
fn o_trunc_copies_up_an_empty_file_with_metadata() {
    let f = fixture();
    let before = f.lower_snapshot();
    let m = f.lay.mount();
    drop(
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(f.lay.m("dir/file"))
            .unwrap(),
    );
    assert_eq!(lstat_meta(f.lay.m("dir/file")).len(), 0);
    m.umount();
    f.assert_upper_file("", 0o640, 1234, 2345);
    f.assert_upper_xattrs(&[]);
    assert_same_tree("lower before", &before, "lower after", &f.lower_snapshot());
}

#[test]
fn truncate_copies_up() {
    let f = fixture();
    let before = f.lower_snapshot();
    let m = f.lay.mount();
    let c = cstr(f.lay.m("dir/file"));
    cvt(unsafe { libc::truncate(c.as_ptr(), 5) }).unwrap();
    assert_eq!(read_string(f.lay.m("dir/file")), "hello");
    cvt(unsafe { libc::truncate(c.as_ptr(), 8) }).unwrap();
    assert_eq!(read(f.lay.m("dir/file")), b"hello\0\0\0");
    m.umount();
    assert_eq!(read(f.lay.u("dir/file")), b"hello\0\0\0");
    assert_same_tree("lower before", &before, "lower after", &f.lower_snapshot());
}

#[test]
fn chmod_copies_up() {
    let f = fixture();
    let before = f.lower_snapshot();
    let m = f.lay.mount();
    let mtime_before = lstat_meta(f.lay.m("dir/file")).mtime();
    chmod(f.lay.m("dir/file"), 0o604).unwrap();
    let st = lstat_meta(f.lay.m("dir/file"));
    assert_eq!(st.mode() & 0o7777, 0o604);
    assert_eq!(st.mtime(), mtime_before, "chmod changed mtime");
    m.umount();
    f.assert_upper_file("hello world", 0o604, 1234, 2345);
    f.assert_upper_times();
    f.assert_upper_xattrs(&[]);
    assert_same_tree("lower before", &before, "lower after", &f.lower_snapshot());
}

#[test]
fn chown_copies_up() {
    let f = fixture();
    let before = f.lower_snapshot();
    let m = f.lay.mount();
    lchown(f.lay.m("dir/file"), 77, 88).unwrap();
    let st = lstat_meta(f.lay.m("dir/file"));
    assert_eq!((st.uid(), st.gid()), (77, 88));
    m.umount();
    f.assert_upper_file("hello world", 0o640, 77, 88);
    f.assert_upper_xattrs(&[]);
    assert_same_tree("lower before", &before, "lower after", &f.lower_snapshot());
}

#[test]
fn utimens_copies_up() {
    let f = fixture();
    let before = f.lower_snapshot();
    let m = f.lay.mount();
    lutimens(f.lay.m("dir/file"), (1_000_000_001, 5), (1_000_000_002, 6)).unwrap();
    let st = lstat_meta(f.lay.m("dir/file"));
    assert_eq!((st.mtime(), st.mtime_nsec()), (1_000_000_002, 6));
    assert_eq!((st.atime(), st.atime_nsec()), (1_000_000_001, 5));
    m.umount();
    f.assert_upper_file("hello world", 0o640, 1234, 2345);
    let st = lstat_meta(f.lay.u("dir/file"));
    assert_eq!((st.mtime(), st.mtime_nsec()), (1_000_000_002, 6));
    f.assert_upper_xattrs(&[]);
    assert_same_tree("lower before", &before, "lower after", &f.lower_snapshot());
}

#[test]
fn setxattr_copies_up_with_everything() {
    let f = fixture();
    let before = f.lower_snapshot();
    let m = f.lay.mount();
    lsetxattr(f.lay.m("dir/file"), "user.new", b"value").unwrap();
    assert_eq!(
        lgetxattr(f.lay.m("dir/file"), "user.new").unwrap(),
        b"value"
    );
    m.umount();
    f.assert_upper_file("hello world", 0o640, 1234, 2345);
    f.assert_upper_times();
    f.assert_upper_xattrs(&[("user.new", b"value")]);
    assert_same_tree("lower before", &before, "lower after", &f.lower_snapshot());
}

#[test]
fn removexattr_copies_up() {
    let f = fixture();
    let before = f.lower_snapshot();
    let m = f.lay.mount();
    lremovexattr(f.lay.m("dir/file"), "user.color").unwrap();
    assert_errno(
        lgetxattr(f.lay.m("dir/file"), "user.color"),
        libc::ENODATA,
        "removed xattr",
    );
    assert_eq!(
        llistxattr(f.lay.m("dir/file")).unwrap(),
        strs(&["trusted.t"])
    );
    m.umount();
    assert_errno(
        lgetxattr(f.lay.u("dir/file"), "user.color"),
        libc::ENODATA,
        "upper user.color",
    );
    assert_eq!(lgetxattr(f.lay.u("dir/file"), "trusted.t").unwrap(), b"tv");
    assert_eq!(read_string(f.lay.u("dir/file")), "hello world");
    assert_same_tree("lower before", &before, "lower after", &f.lower_snapshot());
}

#[test]
fn setuid_setgid_bits_survive_copy_up() {
    let lay = Layout::new(1);
    write(lay.l(0, "suid"), "#!/bin/sh\n");
    lchown(lay.l(0, "suid"), 1234, 2345).unwrap();
    chmod(lay.l(0, "suid"), 0o6755).unwrap();
    let m = lay.mount();
    lsetxattr(lay.m("suid"), "user.trigger", b"1").unwrap();
    assert_eq!(lstat_meta(lay.m("suid")).mode() & 0o7777, 0o6755);
    m.umount();
    let st = lstat_meta(lay.u("suid"));
    assert_eq!(st.mode() & 0o7777, 0o6755, "upper mode {:o}", st.mode());
    assert_eq!((st.uid(), st.gid()), (1234, 2345));
}

#[test]
fn reading_never_copies_up() {
    let f = fixture();
    ln_s("dir/file", f.lay.l(0, "link"));
    let m = f.lay.mount();
    let mut s = String::new();
    fs::File::open(f.lay.m("dir/file"))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "hello world");
    let _ = lstat_meta(f.lay.m("dir/file"));
    let _ = llistxattr(f.lay.m("dir/file")).unwrap();
    let _ = lgetxattr(f.lay.m("dir/file"), "user.color").unwrap();
    let _ = fs::read_link(f.lay.m("link")).unwrap();
    let _ = ls(f.lay.m("dir"));
    let _ = fs::File::open(f.lay.m("link")).unwrap();
    m.umount();
    assert_eq!(
        ls(&f.lay.upper),
        Vec::<String>::new(),
        "upper after reads only"
    );
}

#[test]
fn symlink_copy_up_keeps_target() {
    let lay = Layout::new(1);
    ln_s("../some/where", lay.l(0, "link"));
    ln_s("/absolute/target", lay.l(0, "abs"));
    lchown(lay.l(0, "abs"), 5, 6).unwrap();
    let m = lay.mount();
    lchown(lay.m("link"), 1234, 2345).unwrap();
    lsetxattr(lay.m("abs"), "trusted.x", b"1").unwrap();
    assert_eq!(
        fs::read_link(lay.m("link")).unwrap().to_str(),
        Some("../some/where")
    );
    m.umount();
    let st = lstat_meta(lay.u("link"));
    assert!(st.file_type().is_symlink());
    assert_eq!((st.uid(), st.gid()), (1234, 2345));
    assert_eq!(
        fs::read_link(lay.u("link")).unwrap().to_str(),
        Some("../some/where")
    );
    let st = lstat_meta(lay.u("abs"));
    assert!(st.file_type().is_symlink());
    assert_eq!((st.uid(), st.gid()), (5, 6));
    assert_eq!(
        fs::read_link(lay.u("abs")).unwrap().to_str(),
        Some("/absolute/target")
    );
    assert_eq!(lgetxattr(lay.u("abs"), "trusted.x").unwrap(), b"1");
}

#[test]
fn parents_are_copied_up_first_with_their_own_metadata() {
    let lay = Layout::new(2);
    mkdirs(lay.l(1, "a/b/c"));
    write(lay.l(1, "a/b/c/file"), "data");
    write(lay.l(1, "a/sibling"), "s");
    chmod(lay.l(1, "a"), 0o751).unwrap();
    lchown(lay.l(1, "a"), 11, 12).unwrap();
    chmod(lay.l(1, "a/b"), 0o2770).unwrap();
    lchown(lay.l(1, "a/b"), 21, 22).unwrap();
    lsetxattr(lay.l(1, "a/b"), "user.level", b"b").unwrap();
    chmod(lay.l(1, "a/b/c"), 0o700).unwrap();
    lchown(lay.l(1, "a/b/c"), 31, 32).unwrap();
    // lower0 has an "a" too, with other metadata: the top one is what gets copied
    mkdirs(lay.l(0, "a"));
    chmod(lay.l(0, "a"), 0o755).unwrap();
    lchown(lay.l(0, "a"), 41, 42).unwrap();
    let times = [
        ("a", 1_000_000_011),
        ("a/b", 1_000_000_022),
        ("a/b/c", 1_000_000_033),
    ];
    for (p, t) in times {
        let layer = if p == "a" { 0 } else { 1 };
        lutimens(lay.l(layer, p), (t, 0), (t, 0)).unwrap();
    }

    let m = lay.mount();
    let view_before: Vec<(u32, u32, u32)> = ["a", "a/b", "a/b/c"]
        .iter()
        .map(|p| {
            let s = lstat_meta(lay.m(p));
            (s.mode() & 0o7777, s.uid(), s.gid())
        })
        .collect();
    assert_eq!(view_before[0], (0o755, 41, 42));
    fs::OpenOptions::new()
        .append(true)
        .open(lay.m("a/b/c/file"))
        .unwrap()
        .write_all(b"+")
        .unwrap();
    let view_after: Vec<(u32, u32, u32)> = ["a", "a/b", "a/b/c"]
        .iter()
        .map(|p| {
            let s = lstat_meta(lay.m(p));
            (s.mode() & 0o7777, s.uid(), s.gid())
        })
        .collect();
    assert_eq!(
        view_before, view_after,
        "copy-up changed directory metadata"
    );
    assert_eq!(ls(lay.m("a")), strs(&["b", "sibling"]));
    m.umount();
    for (p, want) in ["a", "a/b", "a/b/c"].iter().zip(view_before.iter()) {
        let s = lstat_meta(lay.u(p));
        assert!(s.is_dir(), "upper {p} is not a directory");
        assert_eq!((s.mode() & 0o7777, s.uid(), s.gid()), *want, "upper {p}");
        assert!(
            !is_opaque(lay.u(p)),
            "copied-up parent {p} must not be opaque"
        );
    }
    for (p, t) in times {
        assert_eq!(
            lstat_meta(lay.u(p)).mtime(),
            t,
            "upper mtime of copied-up parent {p}"
        );
    }
    assert_eq!(lgetxattr(lay.u("a/b"), "user.level").unwrap(), b"b");
    assert_eq!(ls(lay.u("a")), strs(&["b"]), "only the path was copied up");
    assert_eq!(read_string(lay.u("a/b/c/file")), "data+");
    assert_eq!(read_string(lay.l(1, "a/b/c/file")), "data");
}

#[test]
fn directory_copy_up_is_shallow_and_not_opaque() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "d/sub"));
    write(lay.l(0, "d/f"), "f");
    chmod(lay.l(0, "d"), 0o755).unwrap();
    let m = lay.mount();
    chmod(lay.m("d"), 0o700).unwrap();
    assert_eq!(ls(lay.m("d")), strs(&["f", "sub"]));
    assert_eq!(lstat_meta(lay.m("d")).mode() & 0o7777, 0o700);
    m.umount();
    assert_eq!(lstat_meta(lay.u("d")).mode() & 0o7777, 0o700);
    assert_eq!(ls(lay.u("d")), Vec::<String>::new());
    assert!(!is_opaque(lay.u("d")));
}

#[test]
fn special_files_copy_up_as_themselves() {
    let lay = Layout::new(1);
    mkfifo(lay.l(0, "fifo"), 0o640).unwrap();
    mknod(lay.l(0, "null"), libc::S_IFCHR | 0o666, libc::makedev(1, 3)).unwrap();
    let m = lay.mount();
    lchown(lay.m("fifo"), 3, 4).unwrap();
    lchown(lay.m("null"), 5, 6).unwrap();
    m.umount();
    let st = lstat_meta(lay.u("fifo"));
    assert!(st.file_type().is_fifo());
    assert_eq!((st.mode() & 0o7777, st.uid(), st.gid()), (0o640, 3, 4));
    let st = lstat_meta(lay.u("null"));
    assert!(st.file_type().is_char_device());
    assert_eq!(st.rdev(), libc::makedev(1, 3));
    assert_eq!((st.uid(), st.gid()), (5, 6));
}

#[test]
fn big_file_copy_up_is_exact() {
    let lay = Layout::new(1);
    let data: Vec<u8> = (0..(12 * 1024 * 1024 + 17) as u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    write(lay.l(0, "big"), &data);
    let m = lay.mount();
    {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(lay.m("big"))
            .unwrap();
        f.write_all(b"END").unwrap();
    }
    let mut want = data.clone();
    want.extend_from_slice(b"END");
    assert!(read(lay.m("big")) == want, "merged view content differs");
    m.umount();
    assert!(read(lay.u("big")) == want, "upper content differs");
    assert!(read(lay.l(0, "big")) == data, "lower changed");
}

#[test]
fn file_from_second_lower_copies_up_into_new_parents() {
    let lay = Layout::new(2);
    mkdirs(lay.l(1, "only/in/lower1"));
    write(lay.l(1, "only/in/lower1/f"), "x");
    let m = lay.mount();
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(lay.m("only/in/lower1/f"))
        .unwrap();
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(b"y").unwrap();
    drop(f);
    m.umount();
    assert_eq!(read_string(lay.u("only/in/lower1/f")), "xy");
    assert!(!exists(lay.l(0, "only")));
}

#[test]
fn workdir_leftovers_are_cleaned_at_mount() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "x");
    let w = lay.work.join("work");
    mkdirs(w.join("stale-dir/nested"));
    write(w.join("stale-dir/nested/file"), "junk");
    write(w.join("stale-file"), "junk");
    make_whiteout(w.join("#17"));
    chmod(w.join("stale-dir"), 0o000).unwrap();
    let m = lay.mount();
    for leftover in ["stale-dir", "stale-file", "#17"] {
        assert!(
            !exists(w.join(leftover)),
            "{leftover} from a crashed mount is still in {}",
            w.display()
        );
    }
    // the workdir still works for copy-ups
    lsetxattr(lay.m("f"), "user.a", b"1").unwrap();
    m.umount();
    assert_eq!(read_string(lay.u("f")), "x");
    assert!(
        !ls(&lay.upper).iter().any(|n| n != "f"),
        "junk in upper: {:?}",
        ls(&lay.upper)
    );
}

#[test]
fn copy_up_leaves_no_temporary_files() {
    let lay = Layout::new(1);
    for i in 0..20 {
        write(lay.l(0, format!("f{i}")), format!("{i}"));
    }
    let m = lay.mount();
    for i in 0..20 {
        chmod(lay.m(format!("f{i}")), 0o600).unwrap();
    }
    m.umount();
    let want: Vec<String> = {
        let mut v: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
        v.sort();
        v
    };
    assert_eq!(ls(&lay.upper), want);
    let w = lay.work.join("work");
    if w.exists() {
        assert_eq!(ls(&w), Vec::<String>::new(), "staging files left in W/work");
    }
}

/// A read-only fd opened before a copy-up sees the new data afterwards (kernel
/// overlayfs does since 4.19: `tail -f` on a file that gets modified).
#[test]
fn fd_opened_before_copy_up_sees_the_new_data() {
    let lay = Layout::new(1);
    write(lay.l(0, "log"), "old contents");
    let check = |root: &std::path::Path, who: &str| {
        let ro = fs::File::open(root.join("log")).unwrap();
        let mut b = [0u8; 3];
        ro.read_exact_at(&mut b, 0).unwrap();
        assert_eq!(&b, b"old");
        let rw = fs::OpenOptions::new()
            .write(true)
            .open(root.join("log"))
            .unwrap();
        rw.write_all_at(b"NEW", 0).unwrap();
        drop(rw);
        ro.read_exact_at(&mut b, 0).unwrap();
        assert_eq!(
            &b, b"NEW",
            "{who}: a fd opened before the copy-up reads stale data"
        );
    };
    let k = lay.kernel_mount();
    check(&k.mnt, "kernel overlayfs");
    k.umount();
    // start over for strata
    fs::remove_dir_all(&lay.upper).unwrap();
    mkdirs(&lay.upper);
    let _m = lay.mount();
    check(&lay.mnt, "strata");
}

#[test]
fn copy_up_keeps_holes() {
    // README: copy-up keeps holes. A 1 GiB sparse file must not become 1 GiB of zeros.
    let lay = Layout::new(1);
    {
        let f = fs::File::create(lay.l(0, "sparse")).unwrap();
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(b"tail", (1 << 30) - 4).unwrap();
    }
    let m = lay.mount();
    fs::OpenOptions::new()
        .write(true)
        .open(lay.m("sparse"))
        .unwrap()
        .write_all_at(b"HEAD", 0)
        .unwrap();
    m.umount();
    let st = lstat_meta(lay.u("sparse"));
    assert_eq!(st.len(), 1 << 30);
    assert!(
        st.blocks() * 512 < 64 << 20,
        "copied-up sparse file uses {} MiB",
        (st.blocks() * 512) >> 20
    );
    let f = fs::File::open(lay.u("sparse")).unwrap();
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, (1 << 30) - 4).unwrap();
    assert_eq!(&b, b"tail");
    f.read_exact_at(&mut b, 0).unwrap();
    assert_eq!(&b, b"HEAD");
}

#[test]
fn utime_omit_and_now() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "x");
    lutimens(lay.l(0, "f"), (1_000_000_000, 5), (1_100_000_000, 7)).unwrap();
    let _m = lay.mount();
    // atime = now, mtime untouched
    lutimens(lay.m("f"), (0, libc::UTIME_NOW), (0, libc::UTIME_OMIT)).unwrap();
    let st = lstat_meta(lay.m("f"));
    assert_eq!(
        (st.mtime(), st.mtime_nsec()),
        (1_100_000_000, 7),
        "UTIME_OMIT changed mtime"
    );
    assert!(st.atime() > 1_700_000_000, "UTIME_NOW did not set atime");
    // mtime = now, atime untouched
    lutimens(lay.m("f"), (0, libc::UTIME_OMIT), (0, libc::UTIME_NOW)).unwrap();
    let st2 = lstat_meta(lay.m("f"));
    assert_eq!(
        (st2.atime(), st2.atime_nsec()),
        (st.atime(), st.atime_nsec()),
        "UTIME_OMIT changed atime"
    );
    assert!(st2.mtime() > 1_700_000_000, "UTIME_NOW did not set mtime");
    // pre-1970 times survive
    lutimens(lay.m("f"), (-1_000, 250), (-86_400, 999_999_999)).unwrap();
    let st3 = lstat_meta(lay.m("f"));
    assert_eq!((st3.mtime(), st3.mtime_nsec()), (-86_400, 999_999_999));
    assert_eq!((st3.atime(), st3.atime_nsec()), (-1_000, 250));
}
