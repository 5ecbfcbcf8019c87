//! link(2).

use crate::both;
use crate::fx::*;
use crate::support::*;
use std::fs;

both!(creates_a_second_name, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0).dir("d", 0o755, 0, 0);
    });
    assert_ok(link(&f.p("f"), &f.p("d/g")), "link");
    let (a, b) = (lstat(&f.p("f")).unwrap(), lstat(&f.p("d/g")).unwrap());
    eq(a.st_ino, b.st_ino, "same inode");
    eq((a.st_nlink, b.st_nlink), (2, 2), "nlink");
    fs::write(f.p("d/g"), "new").unwrap();
    eq(
        content(&f.p("f")),
        "new".to_string(),
        "write through one name shows through the other",
    );
    chmod(&f.p("f"), 0o600).unwrap();
    eq(mode_of(&f.p("d/g")), 0o600, "chmod through one name");
    assert_ok(unlink(&f.p("f")), "unlink one name");
    eq(
        lstat(&f.p("d/g")).unwrap().st_nlink,
        1,
        "nlink after unlink",
    );
    eq(content(&f.p("d/g")), "new".to_string(), "content kept");
});

both!(link_updates_ctime, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0);
    });
    let c0 = ctime(&f.p("f"));
    tick();
    assert_ok(link(&f.p("f"), &f.p("g")), "link");
    check();
    assert!(ctime(&f.p("f")) > c0, "link must update the ctime");
});

both!(errors, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0)
            .file("g", 0o644, 0, 0)
            .dir("d", 0o755, 0, 0)
            .dir("ro", 0o555, 0, 0)
            .symlink("loop", "loop")
            .symlink("dangling", "nowhere");
    });
    assert_errno(link(&f.p("f"), &f.p("g")), libc::EEXIST, "target exists");
    assert_errno(
        link(&f.p("f"), &f.p("dangling")),
        libc::EEXIST,
        "target is a dangling symlink",
    );
    assert_errno(link(&f.p("f"), &f.p("d")), libc::EEXIST, "target is a dir");
    assert_errno(
        link(&f.p("d"), &f.p("d2")),
        libc::EPERM,
        "link to a directory",
    );
    assert_errno(
        link(&f.p("missing"), &f.p("x")),
        libc::ENOENT,
        "missing source",
    );
    assert_errno(
        link(&f.p("f"), &f.p("missing/x")),
        libc::ENOENT,
        "missing target dir",
    );
    assert_errno(
        link(&f.p("f/x"), &f.p("x")),
        libc::ENOTDIR,
        "source component",
    );
    assert_errno(
        link(&f.p("f"), &f.p("g/x")),
        libc::ENOTDIR,
        "target component",
    );
    assert_errno(link(&f.p("loop/x"), &f.p("x")), libc::ELOOP, "loop");
    chmod(&f.p("f"), 0o666).unwrap(); // (else protected_hardlinks says EPERM first)
    let (a, b) = (f.p("f"), f.p("ro/x"));
    assert_errno(
        u1().run(move || link(&a, &b)),
        libc::EACCES,
        "no write permission on the target dir",
    );
    eq(lstat(&f.p("f")).unwrap().st_nlink, 1, "nlink unchanged");
});

both!(protected_hardlinks, |o| {
    // fs.protected_hardlinks=1: a user may not link a file it neither owns nor can
    // read and write.
    if std::fs::read_to_string("/proc/sys/fs/protected_hardlinks")
        .map(|s| s.trim() != "1")
        .unwrap_or(true)
    {
        return;
    }
    let f = fx(o, |m| {
        m.file("secret", 0o600, 0, 0)
            .file("open", 0o666, 0, 0)
            .dir("w", 0o777, 0, 0);
    });
    let u = u1();
    let (a, b) = (f.p("secret"), f.p("w/x"));
    assert_errno(
        u.run(move || link(&a, &b)),
        libc::EPERM,
        "link someone else's unreadable file",
    );
    let (a, b) = (f.p("open"), f.p("w/y"));
    assert_ok(
        u.run(move || link(&a, &b)),
        "link a file one can read and write",
    );
});

#[test]
fn lower_hard_links_stay_linked() {
    // Two names of one lower inode: a change through one shows through the other.
    let f = fx(Origin::Lower, |m| {
        m.file("a", 0o644, 0, 0);
        link(&m.root.join("a"), &m.root.join("b")).unwrap();
    });
    eq(
        lstat(&f.p("a")).unwrap().st_ino,
        lstat(&f.p("b")).unwrap().st_ino,
        "same inode",
    );
    fs::write(f.p("a"), "changed").unwrap();
    eq(
        content(&f.p("b")),
        "changed".to_string(),
        "the other name sees the write",
    );
    eq(lstat(&f.p("b")).unwrap().st_nlink, 2, "nlink");
}

#[test]
fn erofs_on_read_only_mount() {
    let Some(f) = fx_ro(|m| {
        m.file("f", 0o644, 0, 0);
    }) else {
        return;
    };
    assert_errno(
        link(&f.p("f"), &f.p("g")),
        libc::EROFS,
        "link on read-only mount",
    );
}
