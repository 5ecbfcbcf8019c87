//! rename(2)/renameat2(2): every combination of file, empty dir and non-empty dir as
//! source and target, RENAME_NOREPLACE and RENAME_EXCHANGE, the sticky bit, errors.

use crate::both;
use crate::fx::*;
use crate::support::*;

fn mk_all(m: &Mk) {
    m.file("f1", 0o644, 0, 0)
        .file("f2", 0o600, 0, 0)
        .dir("e1", 0o755, 0, 0)
        .dir("e2", 0o700, 0, 0)
        .dir("n1", 0o755, 0, 0)
        .file("n1/x", 0o644, 0, 0)
        .dir("n2", 0o755, 0, 0)
        .file("n2/y", 0o644, 0, 0)
        .symlink("s", "f1")
        .dir("other", 0o755, 0, 0);
}

fn ino(p: &std::path::Path) -> u64 {
    lstat(p).unwrap().st_ino
}

both!(file_to_new_name_and_over_file, |o| {
    let f = fx(o, mk_all);
    let i = ino(&f.p("f1"));
    assert_ok(
        rename(&f.p("f1"), &f.p("other/g")),
        "file to a new name in another dir",
    );
    eq(ino(&f.p("other/g")), i, "same inode");
    eq(content(&f.p("other/g")), "data:f1".to_string(), "content");
    assert_errno(lstat(&f.p("f1")), libc::ENOENT, "old name gone");
    assert_ok(rename(&f.p("other/g"), &f.p("f2")), "file over file");
    eq(content(&f.p("f2")), "data:f1".to_string(), "replaced");
    eq(mode_of(&f.p("f2")), 0o644, "mode of the source");
    eq(
        list_dir(&f.p("")).unwrap().contains(&"f1".to_string()),
        false,
        "listing",
    );
    assert_ok(rename(&f.p("s"), &f.p("s2")), "symlink");
    eq(
        readlink(&f.p("s2")).unwrap(),
        b"f1".to_vec(),
        "symlink target kept",
    );
});

both!(file_over_dir_and_dir_over_file, |o| {
    let f = fx(o, mk_all);
    assert_errno(
        rename(&f.p("f1"), &f.p("e1")),
        libc::EISDIR,
        "file over empty dir",
    );
    assert_errno(
        rename(&f.p("f1"), &f.p("n1")),
        libc::EISDIR,
        "file over non-empty dir",
    );
    assert_errno(
        rename(&f.p("e1"), &f.p("f1")),
        libc::ENOTDIR,
        "empty dir over file",
    );
    assert_errno(
        rename(&f.p("n1"), &f.p("f1")),
        libc::ENOTDIR,
        "non-empty dir over file",
    );
    eq(content(&f.p("f1")), "data:f1".to_string(), "file untouched");
});

both!(dir_to_new_name_and_over_dirs, |o| {
    let f = fx(o, mk_all);
    assert_ok(
        rename(&f.p("n1"), &f.p("other/moved")),
        "non-empty dir to a new name",
    );
    eq(
        list_dir(&f.p("other/moved")).unwrap(),
        vec!["x".to_string()],
        "children moved",
    );
    eq(
        content(&f.p("other/moved/x")),
        "data:n1/x".to_string(),
        "child content",
    );
    assert_errno(lstat(&f.p("n1")), libc::ENOENT, "old name gone");
    assert_ok(rename(&f.p("e1"), &f.p("e2")), "empty dir over empty dir");
    eq(mode_of(&f.p("e2")), 0o755, "source dir replaced the target");
    assert_ok(
        rename(&f.p("n2"), &f.p("e2")),
        "non-empty dir over empty dir",
    );
    eq(
        list_dir(&f.p("e2")).unwrap(),
        vec!["y".to_string()],
        "children",
    );
    assert_errno(
        rename(&f.p("other"), &f.p("e2")),
        libc::ENOTEMPTY,
        "dir over non-empty dir",
    );
    assert_ok(mkdir(&f.p("e3"), 0o755), "mkdir");
    assert_errno(
        rename(&f.p("e3"), &f.p("other")),
        libc::ENOTEMPTY,
        "empty dir over non-empty dir",
    );
});

both!(same_file_and_hard_links, |o| {
    let f = fx(o, |m| {
        mk_all(m);
        link(&m.root.join("f1"), &m.root.join("h")).unwrap();
    });
    assert_ok(rename(&f.p("f1"), &f.p("f1")), "rename to itself");
    assert_ok(
        rename(&f.p("f1"), &f.p("h")),
        "rename onto a hard link of itself",
    );
    eq(exists(&f.p("f1")), true, "both names stay (POSIX: no-op)");
    eq(exists(&f.p("h")), true, "both names stay");
    assert_ok(rename(&f.p("e1"), &f.p("e1")), "dir to itself");
});

both!(into_own_subdir_and_dots, |o| {
    let f = fx(o, mk_all);
    assert_errno(
        rename(&f.p("n1"), &f.p("n1/sub")),
        libc::EINVAL,
        "into its own subdir",
    );
    assert_errno(
        rename(&f.p("other"), &f.p("other/a/b")),
        libc::ENOENT,
        "into a missing subdir of itself",
    );
    assert_errno(rename(&f.p("n1/."), &f.p("z")), libc::EBUSY, "source .");
    assert_errno(rename(&f.p("f1"), &f.p("n1/.")), libc::EBUSY, "target .");
    assert_errno(rename(&f.p("n1/.."), &f.p("z")), libc::EBUSY, "source ..");
});

both!(noreplace_and_exchange, |o| {
    let f = fx(o, mk_all);
    assert_errno(
        renameat2(&f.p("f1"), &f.p("f2"), libc::RENAME_NOREPLACE),
        libc::EEXIST,
        "NOREPLACE file",
    );
    assert_errno(
        renameat2(&f.p("e1"), &f.p("e2"), libc::RENAME_NOREPLACE),
        libc::EEXIST,
        "NOREPLACE empty dir",
    );
    assert_ok(
        renameat2(&f.p("f1"), &f.p("f3"), libc::RENAME_NOREPLACE),
        "NOREPLACE to a free name",
    );
    assert_errno(
        renameat2(&f.p("f1"), &f.p("f2"), libc::RENAME_EXCHANGE),
        libc::ENOENT,
        "EXCHANGE missing source",
    );
    assert_errno(
        renameat2(&f.p("f3"), &f.p("nope"), libc::RENAME_EXCHANGE),
        libc::ENOENT,
        "EXCHANGE missing target",
    );
    assert_errno(
        renameat2(
            &f.p("f3"),
            &f.p("f2"),
            libc::RENAME_EXCHANGE | libc::RENAME_NOREPLACE,
        ),
        libc::EINVAL,
        "both flags",
    );
    assert_ok(
        renameat2(&f.p("f3"), &f.p("f2"), libc::RENAME_EXCHANGE),
        "EXCHANGE files",
    );
    eq(content(&f.p("f2")), "data:f1".to_string(), "exchanged");
    eq(content(&f.p("f3")), "data:f2".to_string(), "exchanged");
    assert_ok(
        renameat2(&f.p("f2"), &f.p("n1"), libc::RENAME_EXCHANGE),
        "EXCHANGE file and non-empty dir",
    );
    eq(
        content(&f.p("f2/x")),
        "data:n1/x".to_string(),
        "dir under the file's name",
    );
    eq(
        content(&f.p("n1")),
        "data:f1".to_string(),
        "file under the dir's name",
    );
    assert_ok(
        renameat2(&f.p("f2"), &f.p("n2"), libc::RENAME_EXCHANGE),
        "EXCHANGE two non-empty dirs",
    );
    eq(
        list_dir(&f.p("f2")).unwrap(),
        vec!["y".to_string()],
        "exchanged dirs",
    );
    eq(
        list_dir(&f.p("n2")).unwrap(),
        vec!["x".to_string()],
        "exchanged dirs",
    );
    assert_errno(
        renameat2(&f.p("n2"), &f.p("n2/x"), libc::RENAME_EXCHANGE),
        libc::EINVAL,
        "EXCHANGE with own child",
    );
});

both!(permissions, |o| {
    let u = u1();
    let f = fx(o, |m| {
        m.dir("w", 0o777, 0, 0)
            .dir("ro", 0o555, 0, 0)
            .file("ro/f", 0o666, 0, 0)
            .file("w/f", 0o666, 0, 0)
            .dir("w/rootdir", 0o755, 0, 0)
            .dir("w/opendir", 0o777, 0, 0)
            .dir("w2", 0o777, 0, 0);
    });
    let (a, b) = (f.p("ro/f"), f.p("w/g"));
    assert_errno(
        u.run(move || rename(&a, &b)),
        libc::EACCES,
        "no write permission on the source dir",
    );
    let (a, b) = (f.p("w/f"), f.p("ro/g"));
    assert_errno(
        u.run(move || rename(&a, &b)),
        libc::EACCES,
        "no write permission on the target dir",
    );
    // Moving a directory to another parent rewrites its "..": it needs write permission.
    let (a, b) = (f.p("w/rootdir"), f.p("w2/rootdir"));
    assert_errno(
        u.run(move || rename(&a, &b)),
        libc::EACCES,
        "moving a dir without write permission on it",
    );
    let (a, b) = (f.p("w/rootdir"), f.p("w/renamed"));
    assert_ok(
        u.run(move || rename(&a, &b)),
        "renaming it in the same parent is fine",
    );
    let (a, b) = (f.p("w/opendir"), f.p("w2/opendir"));
    assert_ok(u.run(move || rename(&a, &b)), "moving a writable dir");
});

both!(sticky_directory, |o| {
    let (a, b) = (u1(), u2());
    let f = fx(o, |m| {
        m.dir("t", 0o1777, 0, 0)
            .file("t/a", 0o666, a.uid, a.gid)
            .file("t/b", 0o666, b.uid, b.gid)
            .dir("mine", 0o1777, b.uid, b.gid)
            .file("mine/a", 0o666, a.uid, a.gid);
    });
    let (x, y) = (f.p("t/a"), f.p("t/c"));
    assert_errno(
        b.run(move || rename(&x, &y)),
        libc::EPERM,
        "move another user's file out of a sticky dir",
    );
    let (x, y) = (f.p("t/b"), f.p("t/a"));
    assert_errno(
        b.run(move || rename(&x, &y)),
        libc::EPERM,
        "replace another user's file in a sticky dir",
    );
    let (x, y) = (f.p("t/a"), f.p("t/a2"));
    assert_ok(a.run(move || rename(&x, &y)), "owner of the file");
    let (x, y) = (f.p("mine/a"), f.p("mine/a2"));
    assert_ok(b.run(move || rename(&x, &y)), "owner of the sticky dir");
});

both!(errors, |o| {
    let f = fx(o, |m| {
        mk_all(m);
        m.symlink("loop", "loop");
    });
    assert_errno(
        rename(&f.p("missing"), &f.p("z")),
        libc::ENOENT,
        "missing source",
    );
    assert_errno(
        rename(&f.p("f1"), &f.p("missing/z")),
        libc::ENOENT,
        "missing target dir",
    );
    assert_errno(
        rename(&f.p("f1/x"), &f.p("z")),
        libc::ENOTDIR,
        "source component",
    );
    assert_errno(
        rename(&f.p("f1"), &f.p("f2/z")),
        libc::ENOTDIR,
        "target component",
    );
    assert_errno(rename(&f.p("loop/x"), &f.p("z")), libc::ELOOP, "loop");
    assert_errno(
        rename(&f.p("f1"), &f.p("loop/x")),
        libc::ELOOP,
        "loop in the target",
    );
});

#[test]
fn lower_dir_rename_survives_remount() {
    // The renamed lower dir keeps its lower children after a remount (redirect).
    let f = fx(Origin::Lower, |m| {
        m.dir("a", 0o755, 0, 0)
            .dir("a/sub", 0o755, 0, 0)
            .file("a/sub/x", 0o644, 0, 0);
    });
    assert_ok(rename(&f.p("a"), &f.p("b")), "rename a lower dir");
    eq(
        list_dir(&f.p("b/sub")).unwrap(),
        vec!["x".to_string()],
        "children under the new name",
    );
    if plain() {
        return;
    }
    let Fx {
        s,
        strata,
        lower,
        upper,
        work,
        root,
        ..
    } = f;
    strata.unwrap().umount();
    let _again = Mount::new(
        &ovl_opts(std::slice::from_ref(&lower), Some(&upper), Some(&work)),
        &root,
    );
    eq(
        list_dir(&root).unwrap(),
        vec!["b".to_string()],
        "after remount: only the new name",
    );
    eq(
        content(&root.join("b/sub/x")),
        "data:a/sub/x".to_string(),
        "content after remount",
    );
    drop(_again);
    drop(s);
}

#[test]
fn erofs_on_read_only_mount() {
    let Some(f) = fx_ro(mk_all) else { return };
    assert_errno(
        rename(&f.p("f1"), &f.p("z")),
        libc::EROFS,
        "rename on read-only mount",
    );
}
