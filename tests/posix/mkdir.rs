//! mkdir(2).

use crate::both;
use crate::fx::*;
use crate::support::*;

both!(mode_owner_and_parent_times, |o| {
    let u = u1();
    let f = fx(o, |m| {
        m.dir("w", 0o777, 0, 0);
    });
    let m0 = mtime(&f.p("w"));
    tick();
    let p = f.p("w/new");
    assert_ok(u.run(move || mkdir(&p, 0o777)), "mkdir");
    eq(mode_of(&f.p("w/new")), 0o755, "mode & ~umask");
    eq(
        owner_of(&f.p("w/new")),
        (u.uid, u.gid),
        "owner is the caller",
    );
    eq(
        lstat(&f.p("w/new")).unwrap().st_nlink,
        2,
        "nlink of a new dir",
    );
    check();
    assert!(mtime(&f.p("w")) > m0, "parent mtime must change");
    let p = f.p("w/sticky");
    assert_ok(u.run(move || mkdir(&p, 0o1777)), "mkdir with sticky bit");
    eq(mode_of(&f.p("w/sticky")), 0o1755, "sticky kept");
});

both!(setgid_parent, |o| {
    let u = u1();
    let g = sg();
    let f = fx(o, |m| {
        m.dir("s", 0o2777, 0, g);
    });
    let p = f.p("s/sub");
    assert_ok(u.run(move || mkdir(&p, 0o755)), "mkdir in a set-gid dir");
    eq(owner_of(&f.p("s/sub")), (u.uid, g), "group inherited");
    eq(
        mode_of(&f.p("s/sub")) & 0o2000,
        0o2000,
        "set-gid inherited by a subdirectory",
    );
    let p = f.p("s/file");
    assert_ok(
        u.run(move || std::fs::write(&p, "x")),
        "create in a set-gid dir",
    );
    eq(owner_of(&f.p("s/file")), (u.uid, g), "file group inherited");
    eq(mode_of(&f.p("s/file")) & 0o2000, 0, "no set-gid on a file");
});

both!(errors, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0)
            .dir("d", 0o755, 0, 0)
            .dir("ro", 0o555, 0, 0)
            .dir("private", 0o700, 0, 0)
            .symlink("loop", "loop")
            .symlink("dangling", "nowhere");
    });
    assert_errno(mkdir(&f.p("d"), 0o755), libc::EEXIST, "dir exists");
    assert_errno(mkdir(&f.p("f"), 0o755), libc::EEXIST, "file exists");
    assert_errno(
        mkdir(&f.p("dangling"), 0o755),
        libc::EEXIST,
        "dangling symlink",
    );
    assert_errno(
        mkdir(&f.p("missing/x"), 0o755),
        libc::ENOENT,
        "missing parent",
    );
    assert_errno(mkdir(&f.p("f/x"), 0o755), libc::ENOTDIR, "parent is a file");
    assert_errno(
        mkdir(&long_path(&f.root), 0o755),
        libc::ENAMETOOLONG,
        "long path",
    );
    assert_errno(mkdir(&f.p("loop/x"), 0o755), libc::ELOOP, "loop");
    let u = u1();
    let p = f.p("ro/x");
    assert_errno(
        u.run(move || mkdir(&p, 0o755)),
        libc::EACCES,
        "no write permission",
    );
    let p = f.p("private/x");
    assert_errno(
        u.run(move || mkdir(&p, 0o755)),
        libc::EACCES,
        "no search permission",
    );
});

#[test]
fn over_a_deleted_lower_dir_is_empty() {
    let f = fx(Origin::Lower, |m| {
        m.dir("d", 0o755, 0, 0).file("d/old", 0o644, 0, 0);
    });
    assert_ok(unlink(&f.p("d/old")), "unlink");
    assert_ok(rmdir(&f.p("d")), "rmdir");
    assert_ok(mkdir(&f.p("d"), 0o700), "mkdir again");
    eq(
        list_dir(&f.p("d")).unwrap(),
        Vec::<String>::new(),
        "new dir is empty",
    );
    eq(mode_of(&f.p("d")), 0o700, "mode of the new dir");
}

#[test]
fn erofs_on_read_only_mount() {
    let Some(f) = fx_ro(|_| {}) else { return };
    assert_errno(
        mkdir(&f.p("x"), 0o755),
        libc::EROFS,
        "mkdir on read-only mount",
    );
    assert_errno(
        mkdir(&f.p(""), 0o755),
        libc::EEXIST,
        "mkdir of the existing root",
    );
}
