//! utimensat(2): explicit times, UTIME_NOW, UTIME_OMIT, AT_SYMLINK_NOFOLLOW, and who
//! may do what.

use crate::both;
use crate::fx::*;
use crate::support::*;

fn times(p: &std::path::Path) -> ((i64, i64), (i64, i64)) {
    let st = lstat(p).unwrap();
    (
        (st.st_atime, st.st_atime_nsec),
        (st.st_mtime, st.st_mtime_nsec),
    )
}

both!(explicit_times_with_nanoseconds, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0).dir("d", 0o755, 0, 0);
    });
    for n in ["f", "d"] {
        assert_ok(
            utimensat(
                &f.p(n),
                (1_000_000_001, 123_456_789),
                (1_100_000_002, 987_654_321),
                0,
            ),
            "utimensat",
        );
        eq(
            times(&f.p(n)),
            ((1_000_000_001, 123_456_789), (1_100_000_002, 987_654_321)),
            "times",
        );
    }
    // Before the epoch too.
    assert_ok(
        utimensat(&f.p("f"), (-1000, 5), (-2000, 6), 0),
        "negative times",
    );
    eq(times(&f.p("f")), ((-1000, 5), (-2000, 6)), "negative times");
});

both!(omit_and_now, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0);
    });
    let p = f.p("f");
    utimensat(&p, (1_000_000_000, 0), (1_000_000_000, 0), 0).unwrap();
    let c0 = ctime(&p);
    assert_ok(
        utimensat(&p, (0, UTIME_OMIT), (1_200_000_000, 7), 0),
        "omit atime",
    );
    eq(
        times(&p),
        ((1_000_000_000, 0), (1_200_000_000, 7)),
        "atime kept",
    );
    assert_ok(
        utimensat(&p, (1_300_000_000, 8), (0, UTIME_OMIT), 0),
        "omit mtime",
    );
    eq(
        times(&p),
        ((1_300_000_000, 8), (1_200_000_000, 7)),
        "mtime kept",
    );
    tick();
    assert_ok(
        utimensat(&p, (0, UTIME_OMIT), (0, UTIME_OMIT), 0),
        "omit both",
    );
    eq(
        times(&p),
        ((1_300_000_000, 8), (1_200_000_000, 7)),
        "nothing changes",
    );
    check();
    assert!(ctime(&p) >= c0, "ctime");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_ok(
        utimensat(&p, (0, UTIME_NOW), (0, UTIME_OMIT), 0),
        "atime now",
    );
    let (a, m) = times(&p);
    check();
    assert!(
        a.0 >= now - 1 && m == (1_200_000_000, 7),
        "atime now, mtime kept: {a:?} {m:?}"
    );
    assert_ok(utimes_null(&p), "NULL times");
    let (a, m) = times(&p);
    check();
    assert!(a.0 >= now - 1 && m.0 >= now - 1, "both now");
});

both!(nofollow_sets_the_link, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0).symlink("l", "f");
    });
    let before = times(&f.p("f"));
    assert_ok(
        utimensat(
            &f.p("l"),
            (1_000_000_000, 1),
            (1_000_000_000, 2),
            libc::AT_SYMLINK_NOFOLLOW,
        ),
        "nofollow",
    );
    eq(
        times(&f.p("l")),
        ((1_000_000_000, 1), (1_000_000_000, 2)),
        "link times",
    );
    eq(times(&f.p("f")), before, "target untouched");
    assert_ok(
        utimensat(&f.p("l"), (1_000_000_000, 3), (1_000_000_000, 4), 0),
        "follow",
    );
    eq(
        times(&f.p("f")),
        ((1_000_000_000, 3), (1_000_000_000, 4)),
        "target times",
    );
});

both!(permissions, |o| {
    let (a, b) = (u1(), u2());
    let f = fx(o, |m| {
        m.file("mine", 0o644, a.uid, a.gid)
            .file("shared", 0o666, 0, 0)
            .file("ro", 0o644, 0, 0);
    });
    let p = f.p("mine");
    assert_ok(
        a.run(move || utimensat(&p, (5, 0), (6, 0), 0)),
        "owner sets explicit times",
    );
    let p = f.p("shared");
    assert_ok(
        b.run(move || utimensat(&p, (0, UTIME_NOW), (0, UTIME_NOW), 0)),
        "UTIME_NOW with write permission",
    );
    let p = f.p("shared");
    assert_ok(b.run(move || utimes_null(&p)), "NULL with write permission");
    let p = f.p("shared");
    assert_errno(
        b.run(move || utimensat(&p, (5, 0), (6, 0), 0)),
        libc::EPERM,
        "explicit times by a non-owner",
    );
    let p = f.p("shared");
    assert_errno(
        b.run(move || utimensat(&p, (0, UTIME_NOW), (6, 0), 0)),
        libc::EPERM,
        "one explicit time by a non-owner",
    );
    let p = f.p("ro");
    assert_errno(
        b.run(move || utimensat(&p, (0, UTIME_NOW), (0, UTIME_NOW), 0)),
        libc::EACCES,
        "UTIME_NOW without write permission",
    );
    let p = f.p("ro");
    assert_errno(
        b.run(move || utimes_null(&p)),
        libc::EACCES,
        "NULL without write permission",
    );
    let p = f.p("ro");
    assert_ok(
        b.run(move || utimensat(&p, (0, UTIME_OMIT), (0, UTIME_OMIT), 0)),
        "omit both is always allowed",
    );
    eq(times(&f.p("mine")), ((5, 0), (6, 0)), "owner's times");
});

both!(errors, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0).symlink("loop", "loop");
    });
    assert_errno(
        utimensat(&f.p("f"), (0, 1_000_000_000), (0, 0), 0),
        libc::EINVAL,
        "nsec out of range",
    );
    assert_errno(
        utimensat(&f.p("f"), (0, -1), (0, 0), 0),
        libc::EINVAL,
        "negative nsec",
    );
    assert_errno(
        utimensat(&f.p("missing"), (1, 0), (1, 0), 0),
        libc::ENOENT,
        "missing",
    );
    assert_errno(
        utimensat(&f.p("f/x"), (1, 0), (1, 0), 0),
        libc::ENOTDIR,
        "ENOTDIR",
    );
    assert_errno(
        utimensat(&f.p("loop"), (1, 0), (1, 0), 0),
        libc::ELOOP,
        "loop",
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
        utimensat(&f.p("f"), (1, 0), (1, 0), 0),
        libc::EROFS,
        "utimensat on read-only mount",
    );
}
