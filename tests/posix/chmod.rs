//! chmod(2): who may change a mode, set-id bit rules, errors, ctime.

use crate::both;
use crate::fx::*;
use crate::support::*;

both!(owner_changes_mode_and_ctime, |o| {
    let u = u1();
    let f = fx(o, |m| {
        m.file("f", 0o644, u.uid, u.gid)
            .dir("d", 0o755, u.uid, u.gid);
    });
    for name in ["f", "d"] {
        let p = f.p(name);
        let c0 = ctime(&p);
        tick();
        let q = p.clone();
        assert_ok(u.run(move || chmod(&q, 0o710)), "owner chmod");
        eq(mode_of(&p), 0o710, "mode after chmod");
        check();
        assert!(ctime(&p) > c0, "chmod must update ctime of {name}");
    }
    eq(content(&f.p("f")), "data:f".to_string(), "content kept");
});

both!(non_owner_gets_eperm, |o| {
    let (a, b) = (u1(), u2());
    let f = fx(o, |m| {
        m.file("f", 0o666, a.uid, a.gid);
    });
    let p = f.p("f");
    assert_errno(
        b.run(move || chmod(&p, 0o600)),
        libc::EPERM,
        "chmod by non-owner",
    );
    eq(mode_of(&f.p("f")), 0o666, "mode unchanged");
});

both!(root_changes_any_mode, |o| {
    let u = u1();
    let f = fx(o, |m| {
        m.file("f", 0o600, u.uid, u.gid);
    });
    assert_ok(chmod(&f.p("f"), 0o4755), "root chmod");
    eq(mode_of(&f.p("f")), 0o4755, "mode");
});

both!(sgid_cleared_for_non_member, |o| {
    // A non-root owner who is not in the file's group can't set S_ISGID: the bit is
    // silently dropped (Linux).
    let u = u2();
    let f = fx(o, |m| {
        m.file("f", 0o644, u.uid, 0);
    });
    let p = f.p("f");
    assert_ok(u.run(move || chmod(&p, 0o2755)), "chmod g+s");
    eq(mode_of(&f.p("f")), 0o755, "S_ISGID dropped");
});

both!(sgid_kept_for_member, |o| {
    let u = u1();
    let g = sg();
    let f = fx(o, |m| {
        m.file("f", 0o644, u.uid, g);
    });
    let p = f.p("f");
    assert_ok(
        u.run(move || chmod(&p, 0o2755)),
        "chmod g+s (member of the group)",
    );
    eq(mode_of(&f.p("f")), 0o2755, "S_ISGID kept");
});

both!(sticky_on_file_allowed, |o| {
    let u = u1();
    let f = fx(o, |m| {
        m.file("f", 0o644, u.uid, u.gid);
    });
    let p = f.p("f");
    assert_ok(u.run(move || chmod(&p, 0o1644)), "chmod +t on a file");
    eq(mode_of(&f.p("f")), 0o1644, "sticky set");
});

both!(follows_symlink, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0).symlink("l", "f");
    });
    assert_ok(chmod(&f.p("l"), 0o600), "chmod through symlink");
    eq(mode_of(&f.p("f")), 0o600, "target mode");
    eq(mode_of(&f.p("l")), 0o777, "symlink mode");
});

both!(errors, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0)
            .dir("private", 0o700, 0, 0)
            .file("private/f", 0o644, 0, 0)
            .symlink("loop1", "loop2")
            .symlink("loop2", "loop1");
    });
    assert_errno(chmod(&f.p("missing"), 0o644), libc::ENOENT, "missing");
    assert_errno(
        chmod(&f.p("f/x"), 0o644),
        libc::ENOTDIR,
        "component not a dir",
    );
    assert_errno(
        chmod(&long_path(&f.root), 0o644),
        libc::ENAMETOOLONG,
        "long path",
    );
    assert_errno(chmod(&f.p("loop1"), 0o644), libc::ELOOP, "symlink loop");
    let p = f.p("private/f");
    assert_errno(
        u1().run(move || chmod(&p, 0o600)),
        libc::EACCES,
        "no search permission",
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
        chmod(&f.p("f"), 0o600),
        libc::EROFS,
        "chmod on read-only mount",
    );
}
