//! chown(2)/lchown(2): who may change owner and group, set-id clearing, errors.

use crate::both;
use crate::fx::*;
use crate::support::*;

both!(root_sets_any_owner, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0).dir("d", 0o755, 0, 0);
    });
    for n in ["f", "d"] {
        assert_ok(chown(&f.p(n), 12345, 54321), "root chown");
        eq(owner_of(&f.p(n)), (12345, 54321), "owner");
    }
});

both!(non_root_cannot_give_away, |o| {
    let (a, b) = (u1(), u2());
    let f = fx(o, |m| {
        m.file("f", 0o644, a.uid, a.gid);
    });
    let p = f.p("f");
    let bu = b.uid;
    assert_errno(
        a.run(move || chown(&p, bu, u32::MAX)),
        libc::EPERM,
        "give file away",
    );
    let p = f.p("f");
    let au = a.uid;
    assert_errno(
        b.run(move || chown(&p, au, u32::MAX)),
        libc::EPERM,
        "chown by non-owner",
    );
    eq(owner_of(&f.p("f")), (a.uid, a.gid), "owner unchanged");
});

both!(owner_may_change_group_to_own_group, |o| {
    let a = u1();
    let g = sg();
    let f = fx(o, |m| {
        m.file("f", 0o644, a.uid, a.gid);
    });
    let p = f.p("f");
    assert_ok(
        a.run(move || chown(&p, u32::MAX, g)),
        "chgrp to a supplementary group",
    );
    eq(owner_of(&f.p("f")), (a.uid, g), "group changed");
    let p = f.p("f");
    let au = a.uid;
    assert_ok(a.run(move || chown(&p, au, u32::MAX)), "chown to oneself");
    let p = f.p("f");
    assert_errno(
        a.run(move || chown(&p, u32::MAX, 0)),
        libc::EPERM,
        "chgrp to a group not held",
    );
    eq(owner_of(&f.p("f")), (a.uid, g), "group unchanged");
});

both!(non_root_chgrp_clears_setid, |o| {
    let a = u1();
    let g = sg();
    let f = fx(o, |m| {
        m.file("f", 0o6755, a.uid, a.gid)
            .dir("d", 0o2755, a.uid, a.gid);
    });
    let p = f.p("f");
    assert_ok(a.run(move || chown(&p, u32::MAX, g)), "chgrp");
    eq(
        mode_of(&f.p("f")),
        0o755,
        "set-uid and set-gid cleared on a file",
    );
    let p = f.p("d");
    assert_ok(a.run(move || chown(&p, u32::MAX, g)), "chgrp dir");
    eq(mode_of(&f.p("d")), 0o2755, "set-gid kept on a directory");
});

both!(root_chown_clears_setid_on_executable, |o| {
    let f = fx(o, |m| {
        m.file("x", 0o6755, 0, 0).file("nx", 0o6644, 0, 0);
    });
    assert_ok(chown(&f.p("x"), 1000, 1000), "root chown");
    eq(mode_of(&f.p("x")), 0o755, "set-id cleared on an executable");
    assert_ok(chown(&f.p("nx"), 1000, 1000), "root chown");
    // Without group-exec, S_ISGID means mandatory locking and is kept.
    eq(
        mode_of(&f.p("nx")),
        0o2644,
        "S_ISUID cleared, S_ISGID kept without g+x",
    );
});

both!(lchown_changes_the_link, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0).symlink("l", "f");
    });
    assert_ok(lchown(&f.p("l"), 1000, 1001), "lchown");
    eq(owner_of(&f.p("l")), (1000, 1001), "link owner");
    eq(owner_of(&f.p("f")), (0, 0), "target untouched");
    assert_ok(chown(&f.p("l"), 1002, 1003), "chown follows");
    eq(owner_of(&f.p("f")), (1002, 1003), "target owner");
    eq(owner_of(&f.p("l")), (1000, 1001), "link owner kept");
});

both!(ctime_changes, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0);
    });
    let c0 = ctime(&f.p("f"));
    tick();
    assert_ok(chown(&f.p("f"), 5, 5), "chown");
    check();
    assert!(ctime(&f.p("f")) > c0, "ctime must change");
});

both!(errors, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0)
            .dir("private", 0o700, 0, 0)
            .file("private/f", 0o644, 0, 0)
            .symlink("loop", "loop");
    });
    assert_errno(chown(&f.p("missing"), 1, 1), libc::ENOENT, "missing");
    assert_errno(chown(&f.p("f/x"), 1, 1), libc::ENOTDIR, "ENOTDIR");
    assert_errno(chown(&f.p("loop"), 1, 1), libc::ELOOP, "loop");
    let p = f.p("private/f");
    let u = u1();
    let uid = u.uid;
    assert_errno(
        u.run(move || chown(&p, uid, u32::MAX)),
        libc::EACCES,
        "search permission",
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
        chown(&f.p("f"), 1, 1),
        libc::EROFS,
        "chown on read-only mount",
    );
}
