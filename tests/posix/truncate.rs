//! truncate(2) and ftruncate(2).

use crate::both;
use crate::fx::*;
use crate::support::*;
use std::fs;

both!(shrink_and_extend, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0);
    });
    let p = f.p("f");
    assert_ok(truncate(&p, 3), "shrink");
    eq(fs::read(&p).unwrap(), b"dat".to_vec(), "shrunk content");
    assert_ok(truncate(&p, 10), "extend");
    eq(
        fs::read(&p).unwrap(),
        b"dat\0\0\0\0\0\0\0".to_vec(),
        "extended with zeros",
    );
    assert_ok(truncate(&p, 1 << 30), "sparse extend");
    eq(lstat(&p).unwrap().st_size, 1 << 30, "size");
    if o == Origin::Lower && !plain() {
        eq(
            content(&f.lower.join("f")),
            "data:f".to_string(),
            "lower untouched",
        );
    }
});

both!(ftruncate_needs_write_fd, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o666, 0, 0);
    });
    let fd = open(&f.p("f"), libc::O_RDONLY, 0).unwrap();
    assert_errno(fd.ftruncate(1), libc::EINVAL, "ftruncate on a read-only fd");
    let fd = open(&f.p("f"), libc::O_RDWR, 0).unwrap();
    assert_errno(fd.ftruncate(-1), libc::EINVAL, "negative length");
    assert_ok(fd.ftruncate(4), "ftruncate");
    eq(fd.fstat().unwrap().st_size, 4, "fstat size");
    eq(content(&f.p("f")), "data".to_string(), "content");
});

both!(ftruncate_after_open_by_other_user, |o| {
    // ftruncate checks the fd, not the caller's permission at the time of the call.
    let u = u1();
    let f = fx(o, |m| {
        m.file("f", 0o666, 0, 0);
    });
    let p = f.p("f");
    let fd = u.run(move || {
        open(&p, libc::O_WRONLY, 0).map(|fd| {
            let n = fd.0;
            std::mem::forget(fd);
            n
        })
    });
    let fd = Fd(assert_ok(fd, "open as u1"));
    chmod(&f.p("f"), 0o600).unwrap();
    assert_ok(fd.ftruncate(2), "ftruncate with an fd opened for writing");
    eq(content(&f.p("f")), "da".to_string(), "content");
});

both!(permission_and_type_errors, |o| {
    let u = u1();
    let f = fx(o, |m| {
        m.file("ro", 0o644, 0, 0)
            .dir("d", 0o755, 0, 0)
            .fifo("p", 0o666, 0, 0)
            .file("f", 0o666, 0, 0)
            .symlink("loop", "loop");
    });
    let p = f.p("ro");
    assert_errno(
        u.run(move || truncate(&p, 0)),
        libc::EACCES,
        "no write permission",
    );
    eq(lstat(&f.p("ro")).unwrap().st_size, 7, "size unchanged");
    assert_errno(truncate(&f.p("d"), 0), libc::EISDIR, "directory");
    assert_errno(truncate(&f.p("p"), 0), libc::EINVAL, "fifo");
    assert_errno(truncate(&f.p("f"), -1), libc::EINVAL, "negative length");
    assert_errno(truncate(&f.p("missing"), 0), libc::ENOENT, "missing");
    assert_errno(truncate(&f.p("f/x"), 0), libc::ENOTDIR, "ENOTDIR");
    assert_errno(truncate(&f.p("loop"), 0), libc::ELOOP, "loop");
    assert_errno(
        truncate(&f.p("f"), 1 << 62),
        libc::EFBIG,
        "beyond the maximum file size",
    );
});

both!(truncate_clears_setuid_for_non_root, |o| {
    let u = u1();
    let f = fx(o, |m| {
        m.file("f", 0o6777, 0, 0);
    });
    let p = f.p("f");
    assert_ok(u.run(move || truncate(&p, 1)), "truncate by a non-owner");
    eq(mode_of(&f.p("f")), 0o777, "set-id bits cleared");
});

both!(mtime_and_ctime_change, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0);
    });
    let (m0, c0) = (mtime(&f.p("f")), ctime(&f.p("f")));
    tick();
    assert_ok(truncate(&f.p("f"), 1), "truncate");
    check();
    assert!(
        mtime(&f.p("f")) > m0 && ctime(&f.p("f")) > c0,
        "times must change"
    );
});

#[test]
fn erofs_on_read_only_mount() {
    let Some(f) = fx_ro(|m| {
        m.file("f", 0o644, 0, 0);
    }) else {
        return;
    };
    assert_errno(
        truncate(&f.p("f"), 0),
        libc::EROFS,
        "truncate on read-only mount",
    );
}
