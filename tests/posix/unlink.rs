//! unlink(2).

use crate::both;
use crate::fx::*;
use crate::support::*;
use std::fs;

both!(removes_names, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0)
            .symlink("l", "f")
            .fifo("p", 0o644, 0, 0)
            .dir("d", 0o755, 0, 0);
    });
    let m0 = mtime(&f.p(""));
    tick();
    for n in ["l", "f", "p"] {
        assert_ok(unlink(&f.p(n)), "unlink");
        assert_errno(lstat(&f.p(n)), libc::ENOENT, "gone");
    }
    eq(
        list_dir(&f.p("")).unwrap(),
        vec!["d".to_string()],
        "listing",
    );
    check();
    assert!(mtime(&f.p("")) > m0, "parent mtime must change");
    if o == Origin::Lower && !plain() {
        eq(
            content(&f.lower.join("f")),
            "data:f".to_string(),
            "lower untouched",
        );
        eq(
            is_whiteout(&f.upper.join("f")),
            true,
            "whiteout in the upper",
        );
    }
});

both!(open_file_survives, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0);
    });
    let fd = open(&f.p("f"), libc::O_RDWR, 0).unwrap();
    assert_ok(unlink(&f.p("f")), "unlink");
    eq(
        fd.pread(100, 0).unwrap(),
        b"data:f".to_vec(),
        "still readable",
    );
    fd.pwrite(b"X", 0).unwrap();
    eq(fd.pread(100, 0).unwrap(), b"Xata:f".to_vec(), "writable");
    eq(fd.fstat().unwrap().st_nlink, 0, "nlink 0");
});

both!(hard_link_count, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0);
        link(&m.root.join("f"), &m.root.join("g")).unwrap();
    });
    assert_ok(unlink(&f.p("f")), "unlink one name");
    eq(lstat(&f.p("g")).unwrap().st_nlink, 1, "nlink of the other");
    eq(content(&f.p("g")), "data:f".to_string(), "content");
    fs::write(f.p("g"), "z").unwrap();
    eq(content(&f.p("g")), "z".to_string(), "still writable");
});

both!(errors, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0)
            .dir("d", 0o755, 0, 0)
            .dir("ro", 0o555, 0, 0)
            .file("ro/f", 0o666, 0, 0)
            .dir("private", 0o700, 0, 0)
            .file("private/f", 0o666, 0, 0)
            .symlink("loop", "loop");
    });
    assert_errno(unlink(&f.p("d")), libc::EISDIR, "unlink a directory");
    assert_errno(unlink(&f.p("missing")), libc::ENOENT, "missing");
    assert_errno(unlink(&f.p("f/x")), libc::ENOTDIR, "ENOTDIR");
    assert_errno(unlink(&f.p("loop/x")), libc::ELOOP, "loop");
    let u = u1();
    let p = f.p("ro/f");
    assert_errno(
        u.run(move || unlink(&p)),
        libc::EACCES,
        "no write permission on the dir",
    );
    let p = f.p("private/f");
    assert_errno(
        u.run(move || unlink(&p)),
        libc::EACCES,
        "no search permission",
    );
    eq(exists(&f.p("ro/f")), true, "still there");
});

both!(sticky_directory, |o| {
    let (a, b) = (u1(), u2());
    let f = fx(o, |m| {
        m.dir("t", 0o1777, 0, 0)
            .file("t/a", 0o666, a.uid, a.gid)
            .file("t/root", 0o666, 0, 0);
        m.dir("mine", 0o1777, b.uid, b.gid)
            .file("mine/a", 0o666, a.uid, a.gid);
    });
    let p = f.p("t/a");
    assert_errno(
        b.run(move || unlink(&p)),
        libc::EPERM,
        "other user in a sticky dir",
    );
    let p = f.p("t/root");
    assert_errno(
        a.run(move || unlink(&p)),
        libc::EPERM,
        "root's file in a sticky dir",
    );
    let p = f.p("mine/a");
    assert_ok(b.run(move || unlink(&p)), "owner of the sticky dir");
    let p = f.p("t/a");
    assert_ok(a.run(move || unlink(&p)), "owner of the file");
});

#[test]
fn erofs_on_read_only_mount() {
    let Some(f) = fx_ro(|m| {
        m.file("f", 0o644, 0, 0);
    }) else {
        return;
    };
    assert_errno(unlink(&f.p("f")), libc::EROFS, "unlink on read-only mount");
    // A read-only superblock: mnt_want_write() fails before the lookup (as with
    // kernel overlayfs without an upper).
    assert_errno(
        unlink(&f.p("missing")),
        libc::EROFS,
        "missing on read-only mount",
    );
}
