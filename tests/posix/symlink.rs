//! symlink(2) and readlink(2).

use crate::both;
use crate::fx::*;
use crate::support::*;

both!(creates_links, |o| {
    let u = u1();
    let f = fx(o, |m| {
        m.dir("w", 0o777, 0, 0).file("w/f", 0o644, 0, 0);
    });
    let p = f.p("w/l");
    assert_ok(u.run(move || symlink("f", &p)), "symlink");
    let st = lstat(&f.p("w/l")).unwrap();
    eq(kind_of(st.st_mode), 'l', "type");
    eq(st.st_size, 1, "size is the target length");
    eq((st.st_uid, st.st_gid), (u.uid, u.gid), "owner");
    eq(readlink(&f.p("w/l")).unwrap(), b"f".to_vec(), "target");
    eq(content(&f.p("w/l")), "data:w/f".to_string(), "followed");
    let long_target = "t/".repeat(2000);
    assert_ok(symlink(&long_target, &f.p("w/long")), "a 4000-byte target");
    eq(
        readlink(&f.p("w/long")).unwrap(),
        long_target.into_bytes(),
        "long target",
    );
    assert_ok(
        symlink("/absolute/elsewhere", &f.p("w/abs")),
        "absolute dangling target",
    );
    eq(
        readlink(&f.p("w/abs")).unwrap(),
        b"/absolute/elsewhere".to_vec(),
        "absolute target",
    );
});

both!(errors, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0)
            .dir("ro", 0o555, 0, 0)
            .symlink("dangling", "nowhere")
            .symlink("loop", "loop");
    });
    assert_errno(symlink("x", &f.p("f")), libc::EEXIST, "name exists");
    assert_errno(
        symlink("x", &f.p("dangling")),
        libc::EEXIST,
        "dangling symlink exists",
    );
    assert_errno(
        symlink("x", &f.p("missing/l")),
        libc::ENOENT,
        "missing parent",
    );
    assert_errno(symlink("x", &f.p("f/l")), libc::ENOTDIR, "parent is a file");
    assert_errno(
        symlink(&"t".repeat(4096), &f.p("l")),
        libc::ENAMETOOLONG,
        "target of PATH_MAX bytes",
    );
    assert_errno(symlink("", &f.p("l")), libc::ENOENT, "empty target");
    assert_errno(symlink("x", &f.p("loop/l")), libc::ELOOP, "loop");
    let p = f.p("ro/l");
    assert_errno(
        u1().run(move || symlink("x", &p)),
        libc::EACCES,
        "no write permission",
    );
    assert_errno(readlink(&f.p("f")), libc::EINVAL, "readlink of a file");
    assert_errno(
        readlink(&f.p("missing")),
        libc::ENOENT,
        "readlink of a missing name",
    );
});

#[test]
fn erofs_on_read_only_mount() {
    let Some(f) = fx_ro(|_| {}) else { return };
    assert_errno(
        symlink("x", &f.p("l")),
        libc::EROFS,
        "symlink on read-only mount",
    );
}
