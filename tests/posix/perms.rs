//! Permission checks with several real users, primary and supplementary groups:
//! the owner/group/other classes (exactly one applies), directory search and read,
//! root's exec rule, access(2), and copy-up by a user who may write a root file.

use crate::both;
use crate::fx::*;
use crate::support::*;
use std::fs;

fn can_open(u: &User, p: std::path::PathBuf, flags: i32) -> std::io::Result<()> {
    u.run(move || open(&p, flags, 0).map(drop))
}

both!(classes_owner_group_other, |o| {
    let (a, b, n) = (u1(), u2(), nobody());
    let g = sg();
    let f = fx(o, |m| {
        m.file("g_read", 0o640, 0, g) // group strata-g may read: u1 through a supplementary group
            .file("other_only", 0o604, 0, g) // group class matches u1 and has nothing
            .file("owner_none", 0o077, a.uid, a.gid) // the owner class matches and has nothing
            .file("prim", 0o060, 0, b.gid); // u2's primary group
    });
    assert_ok(
        can_open(&a, f.p("g_read"), libc::O_RDONLY),
        "u1 reads through strata-g",
    );
    assert_errno(
        can_open(&a, f.p("g_read"), libc::O_WRONLY),
        libc::EACCES,
        "u1 may not write",
    );
    assert_errno(
        can_open(&b, f.p("g_read"), libc::O_RDONLY),
        libc::EACCES,
        "u2 is other",
    );
    assert_errno(
        can_open(&a, f.p("other_only"), libc::O_RDONLY),
        libc::EACCES,
        "group class applies, not other",
    );
    assert_ok(
        can_open(&b, f.p("other_only"), libc::O_RDONLY),
        "u2 is other",
    );
    assert_ok(
        can_open(&n, f.p("other_only"), libc::O_RDONLY),
        "nobody is other",
    );
    assert_errno(
        can_open(&a, f.p("owner_none"), libc::O_RDONLY),
        libc::EACCES,
        "owner class applies",
    );
    assert_ok(can_open(&b, f.p("owner_none"), libc::O_RDWR), "others may");
    assert_ok(can_open(&b, f.p("prim"), libc::O_RDWR), "primary group");
    assert_errno(
        can_open(&a, f.p("prim"), libc::O_RDONLY),
        libc::EACCES,
        "not in u2's group",
    );
    // Supplementary groups are per caller: without strata-g, u1 is other.
    let bare = User {
        uid: a.uid,
        gid: a.gid,
        groups: vec![a.gid],
    };
    assert_errno(
        can_open(&bare, f.p("g_read"), libc::O_RDONLY),
        libc::EACCES,
        "u1 without its supplementary group",
    );
    assert_ok(
        can_open(&bare, f.p("other_only"), libc::O_RDONLY),
        "u1 without it is other",
    );
});

both!(directories_search_and_read, |o| {
    let (a, b) = (u1(), u2());
    let g = sg();
    let f = fx(o, |m| {
        m.dir("x_only", 0o711, 0, 0)
            .file("x_only/f", 0o644, 0, 0)
            .dir("r_only", 0o744, 0, 0)
            .file("r_only/f", 0o644, 0, 0)
            .dir("grp", 0o750, 0, g)
            .file("grp/f", 0o644, 0, 0);
    });
    let p = f.p("x_only");
    assert_errno(
        a.run(move || list_dir(&p)),
        libc::EACCES,
        "readdir without read permission",
    );
    assert_ok(
        can_open(&a, f.p("x_only/f"), libc::O_RDONLY),
        "lookup with search permission",
    );
    let p = f.p("r_only");
    let names = assert_ok(a.run(move || list_dir(&p)), "readdir with read permission");
    eq(names, vec!["f".to_string()], "names are listed");
    let p = f.p("r_only/f");
    assert_errno(
        a.run(move || lstat(&p)),
        libc::EACCES,
        "stat without search permission",
    );
    assert_ok(
        can_open(&a, f.p("grp/f"), libc::O_RDONLY),
        "group member searches",
    );
    assert_errno(
        can_open(&b, f.p("grp/f"), libc::O_RDONLY),
        libc::EACCES,
        "other may not search",
    );
});

both!(exec_rules, |o| {
    let a = u1();
    let f = fx(o, |m| {
        m.file("noexec", 0o644, 0, 0)
            .file("exec", 0o755, 0, 0)
            .file("uexec", 0o744, a.uid, a.gid);
    });
    let x = libc::X_OK;
    let p = f.p("noexec");
    assert_errno(a.run(move || access(&p, x)), libc::EACCES, "user: no x bit");
    assert_errno(
        access(&f.p("noexec"), x),
        libc::EACCES,
        "root needs some x bit",
    );
    assert_ok(access(&f.p("exec"), x), "root with an x bit");
    let p = f.p("exec");
    assert_ok(a.run(move || access(&p, x)), "user with other x");
    let p = f.p("uexec");
    assert_ok(a.run(move || access(&p, x)), "owner x");
    assert_ok(
        access(&f.p("noexec"), libc::R_OK | libc::W_OK),
        "root reads and writes anything",
    );
    let p = f.p("noexec");
    assert_errno(
        a.run(move || access(&p, libc::W_OK)),
        libc::EACCES,
        "access W_OK",
    );
    let p = f.p("noexec");
    assert_ok(a.run(move || access(&p, libc::R_OK)), "access R_OK");
    // A script through the mount runs (exec of a file from the lower or the upper).
    let script = f.p("script");
    std::fs::write(&script, "#!/bin/sh\nexit 7\n").unwrap();
    chmod(&script, 0o755).unwrap();
    let st = std::process::Command::new(&script).status();
    eq(
        st.map(|s| s.code()).ok(),
        Some(Some(7)),
        "exit status of a script run from the mount",
    );
});

both!(group_writer_copies_up_without_owning, |o| {
    // u1 writes a root-owned group-writable file: the data changes, the owner doesn't.
    let a = u1();
    let g = sg();
    let f = fx(o, |m| {
        m.file("f", 0o664, 0, g)
            .dir("d", 0o775, 0, g)
            .file("d/f", 0o666, 0, 0);
    });
    let p = f.p("f");
    assert_ok(
        a.run(move || fs::write(&p, "by u1")),
        "write by a group member",
    );
    eq(content(&f.p("f")), "by u1".to_string(), "content");
    eq(owner_of(&f.p("f")), (0, g), "owner kept");
    eq(mode_of(&f.p("f")), 0o664, "mode kept");
    let p = f.p("d/f");
    assert_ok(
        a.run(move || fs::write(&p, "x")),
        "write in a dir that must be copied up",
    );
    eq(
        owner_of(&f.p("d")),
        (0, g),
        "parent dir owner kept on copy-up",
    );
    eq(mode_of(&f.p("d")), 0o775, "parent dir mode kept");
    let p = f.p("d/new");
    assert_ok(
        a.run(move || fs::write(&p, "n")),
        "create in a group-writable dir",
    );
    eq(
        owner_of(&f.p("d/new")),
        (a.uid, a.gid),
        "new file belongs to u1",
    );
});

both!(write_needs_permission_even_after_copy_up, |o| {
    let (a, b) = (u1(), u2());
    let f = fx(o, |m| {
        m.file("f", 0o644, a.uid, a.gid);
    });
    let p = f.p("f");
    assert_ok(a.run(move || fs::write(&p, "owner")), "owner writes");
    let p = f.p("f");
    assert_errno(
        b.run(move || open(&p, libc::O_WRONLY, 0).map(drop)),
        libc::EACCES,
        "other still may not",
    );
    let p = f.p("f");
    assert_errno(
        b.run(move || open(&p, libc::O_WRONLY | libc::O_TRUNC, 0).map(drop)),
        libc::EACCES,
        "nor truncate",
    );
    eq(content(&f.p("f")), "owner".to_string(), "content");
});

#[test]
fn allow_other_is_on() {
    if plain() {
        return;
    }
    let f = fx(Origin::Upper, |m| {
        m.file("f", 0o644, 0, 0);
    });
    let p = f.p("f");
    let r = nobody().run(move || fs::read(&p));
    eq(
        assert_ok(r, "another user reads the root mount"),
        b"data:f".to_vec(),
        "content",
    );
}
