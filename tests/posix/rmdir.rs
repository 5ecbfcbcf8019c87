//! rmdir(2).

use crate::both;
use crate::fx::*;
use crate::support::*;

both!(removes_empty_dirs, |o| {
    let f = fx(o, |m| {
        m.dir("e", 0o755, 0, 0)
            .dir("full", 0o755, 0, 0)
            .file("full/x", 0o644, 0, 0);
    });
    assert_ok(rmdir(&f.p("e")), "rmdir empty");
    assert_errno(lstat(&f.p("e")), libc::ENOENT, "gone");
    assert_errno(rmdir(&f.p("full")), libc::ENOTEMPTY, "not empty");
    assert_ok(unlink(&f.p("full/x")), "empty it");
    assert_ok(rmdir(&f.p("full")), "rmdir emptied dir");
    eq(
        list_dir(&f.p("")).unwrap(),
        Vec::<String>::new(),
        "root empty",
    );
    if o == Origin::Lower && !plain() {
        eq(is_whiteout(&f.upper.join("full")), true, "whiteout");
    }
});

#[test]
fn merged_dir_with_lower_children() {
    // A dir that exists in the upper and the lower: the lower children count.
    let f = fx(Origin::Lower, |m| {
        m.dir("d", 0o755, 0, 0).file("d/low", 0o644, 0, 0);
    });
    std::fs::write(f.p("d/up"), "u").unwrap();
    assert_ok(unlink(&f.p("d/up")), "unlink upper child");
    assert_errno(rmdir(&f.p("d")), libc::ENOTEMPTY, "lower child left");
    assert_ok(unlink(&f.p("d/low")), "unlink lower child");
    assert_ok(rmdir(&f.p("d")), "now empty");
    assert_ok(mkdir(&f.p("d"), 0o755), "recreate");
    eq(
        list_dir(&f.p("d")).unwrap(),
        Vec::<String>::new(),
        "recreated dir is empty",
    );
}

both!(errors, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0)
            .dir("d", 0o755, 0, 0)
            .dir("ro", 0o555, 0, 0)
            .dir("ro/sub", 0o777, 0, 0)
            .symlink("ld", "d")
            .symlink("loop", "loop");
    });
    assert_errno(rmdir(&f.p("f")), libc::ENOTDIR, "a file");
    assert_errno(rmdir(&f.p("ld")), libc::ENOTDIR, "a symlink to a dir");
    assert_errno(rmdir(&f.p("missing")), libc::ENOENT, "missing");
    assert_errno(rmdir(&f.p("f/x")), libc::ENOTDIR, "component");
    assert_errno(rmdir(&f.p("d/.")), libc::EINVAL, "last component .");
    assert_errno(rmdir(&f.p("d/..")), libc::ENOTEMPTY, "last component ..");
    assert_errno(rmdir(&f.p("loop/x")), libc::ELOOP, "loop");
    let p = f.p("ro/sub");
    assert_errno(
        u1().run(move || rmdir(&p)),
        libc::EACCES,
        "no write permission on the parent",
    );
    eq(exists(&f.p("ro/sub")), true, "still there");
});

both!(sticky_directory, |o| {
    let (a, b) = (u1(), u2());
    let f = fx(o, |m| {
        m.dir("t", 0o1777, 0, 0).dir("t/a", 0o777, a.uid, a.gid);
    });
    let p = f.p("t/a");
    assert_errno(
        b.run(move || rmdir(&p)),
        libc::EPERM,
        "other user's dir in a sticky dir",
    );
    let p = f.p("t/a");
    assert_ok(a.run(move || rmdir(&p)), "owner");
});

#[test]
fn erofs_on_read_only_mount() {
    let Some(f) = fx_ro(|m| {
        m.dir("d", 0o755, 0, 0);
    }) else {
        return;
    };
    assert_errno(rmdir(&f.p("d")), libc::EROFS, "rmdir on read-only mount");
}
