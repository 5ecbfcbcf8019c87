//! open(2): every error a filesystem can produce, O_CREAT|O_EXCL, O_TRUNC, O_APPEND,
//! O_NOFOLLOW, O_DIRECTORY, and what O_CREAT makes.

use crate::both;
use crate::fx::*;
use crate::support::*;
use std::fs;

fn mk_all(m: &Mk) {
    m.file("f", 0o644, 0, 0)
        .file("wonly", 0o200, 0, 0)
        .dir("d", 0o755, 0, 0)
        .dir("ro", 0o555, 0, 0)
        .dir("private", 0o700, 0, 0)
        .file("private/f", 0o644, 0, 0)
        .symlink("lf", "f")
        .symlink("ld", "d")
        .symlink("loop1", "loop2")
        .symlink("loop2", "loop1")
        .symlink("dangling", "nowhere")
        .fifo("p", 0o666, 0, 0);
}

both!(eacces, |o| {
    let f = fx(o, mk_all);
    let u = u1();
    let p = f.p("wonly");
    assert_errno(
        u.run(move || open(&p, libc::O_RDONLY, 0)),
        libc::EACCES,
        "read without permission",
    );
    let p = f.p("f");
    assert_errno(
        u.run(move || open(&p, libc::O_WRONLY, 0)),
        libc::EACCES,
        "write without permission",
    );
    let p = f.p("f");
    assert_errno(
        u.run(move || open(&p, libc::O_RDWR, 0)),
        libc::EACCES,
        "rdwr without permission",
    );
    let p = f.p("ro/new");
    assert_errno(
        u.run(move || open(&p, libc::O_WRONLY | libc::O_CREAT, 0o644)),
        libc::EACCES,
        "create without dir write permission",
    );
    let p = f.p("private/f");
    assert_errno(
        u.run(move || open(&p, libc::O_RDONLY, 0)),
        libc::EACCES,
        "no search permission",
    );
    let p = f.p("f");
    assert_errno(
        u.run(move || open(&p, libc::O_RDONLY | libc::O_TRUNC, 0)),
        libc::EACCES,
        "O_TRUNC without write permission",
    );
    eq(content(&f.p("f")), "data:f".to_string(), "not truncated");
    eq(exists(&f.p("ro/new")), false, "nothing created");
});

both!(eexist, |o| {
    let f = fx(o, mk_all);
    let x = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
    assert_errno(open(&f.p("f"), x, 0o644), libc::EEXIST, "O_EXCL on a file");
    assert_errno(open(&f.p("d"), x, 0o644), libc::EEXIST, "O_EXCL on a dir");
    assert_errno(
        open(&f.p("lf"), x, 0o644),
        libc::EEXIST,
        "O_EXCL on a symlink",
    );
    assert_errno(
        open(&f.p("dangling"), x, 0o644),
        libc::EEXIST,
        "O_EXCL on a dangling symlink",
    );
    eq(
        exists(&f.p("nowhere")),
        false,
        "the symlink's target was not created",
    );
    eq(
        content(&f.p("f")),
        "data:f".to_string(),
        "content untouched",
    );
});

both!(eisdir, |o| {
    let f = fx(o, mk_all);
    assert_errno(
        open(&f.p("d"), libc::O_WRONLY, 0),
        libc::EISDIR,
        "O_WRONLY dir",
    );
    assert_errno(open(&f.p("d"), libc::O_RDWR, 0), libc::EISDIR, "O_RDWR dir");
    assert_errno(
        open(&f.p("d"), libc::O_WRONLY | libc::O_CREAT, 0o644),
        libc::EISDIR,
        "O_CREAT on a dir",
    );
    assert_errno(
        open(&f.p("ld"), libc::O_RDWR, 0),
        libc::EISDIR,
        "through a symlink to a dir",
    );
    assert_ok(open(&f.p("d"), libc::O_RDONLY, 0), "O_RDONLY dir");
});

both!(enotdir, |o| {
    let f = fx(o, mk_all);
    assert_errno(
        open(&f.p("f/x"), libc::O_RDONLY, 0),
        libc::ENOTDIR,
        "component is a file",
    );
    assert_errno(
        open(&f.p("f/x"), libc::O_WRONLY | libc::O_CREAT, 0o644),
        libc::ENOTDIR,
        "create below a file",
    );
    assert_errno(
        open(&f.p("f"), libc::O_RDONLY | libc::O_DIRECTORY, 0),
        libc::ENOTDIR,
        "O_DIRECTORY on a file",
    );
    assert_errno(
        open(&f.p("lf"), libc::O_RDONLY | libc::O_DIRECTORY, 0),
        libc::ENOTDIR,
        "O_DIRECTORY on a symlink to a file",
    );
    assert_ok(
        open(&f.p("ld"), libc::O_RDONLY | libc::O_DIRECTORY, 0),
        "O_DIRECTORY through a symlink to a dir",
    );
});

both!(eloop_and_nofollow, |o| {
    let f = fx(o, mk_all);
    assert_errno(
        open(&f.p("loop1"), libc::O_RDONLY, 0),
        libc::ELOOP,
        "symlink loop",
    );
    assert_errno(
        open(&f.p("loop1/x"), libc::O_RDONLY, 0),
        libc::ELOOP,
        "loop in a component",
    );
    assert_errno(
        open(&f.p("lf"), libc::O_RDONLY | libc::O_NOFOLLOW, 0),
        libc::ELOOP,
        "O_NOFOLLOW on a symlink",
    );
    assert_errno(
        open(
            &f.p("dangling"),
            libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW,
            0o644,
        ),
        libc::ELOOP,
        "O_CREAT|O_NOFOLLOW on a dangling symlink",
    );
    assert_ok(
        open(&f.p("ld/"), libc::O_RDONLY | libc::O_NOFOLLOW, 0),
        "O_NOFOLLOW applies to the last component only",
    );
    assert_ok(
        open(&f.p("f"), libc::O_RDONLY | libc::O_NOFOLLOW, 0),
        "O_NOFOLLOW on a file",
    );
});

both!(enametoolong, |o| {
    let f = fx(o, mk_all);
    assert_errno(
        open(&long_path(&f.root), libc::O_RDONLY, 0),
        libc::ENAMETOOLONG,
        "long path",
    );
    let ok = "y".repeat(255);
    assert_ok(
        open(&f.p(&ok), libc::O_WRONLY | libc::O_CREAT, 0o644),
        "a 255-byte name is fine",
    );
    eq(exists(&f.p(&ok)), true, "created");
});

both!(enoent, |o| {
    let f = fx(o, mk_all);
    assert_errno(
        open(&f.p("missing"), libc::O_RDONLY, 0),
        libc::ENOENT,
        "missing",
    );
    assert_errno(
        open(&f.p("missing/x"), libc::O_WRONLY | libc::O_CREAT, 0o644),
        libc::ENOENT,
        "create in a missing dir",
    );
    assert_errno(
        open(&f.p("dangling"), libc::O_RDONLY, 0),
        libc::ENOENT,
        "dangling symlink",
    );
    assert_errno(
        open(std::path::Path::new(""), libc::O_RDONLY, 0),
        libc::ENOENT,
        "empty path",
    );
});

both!(enxio_and_einval, |o| {
    let f = fx(o, mk_all);
    assert_errno(
        open(&f.p("p"), libc::O_WRONLY | libc::O_NONBLOCK, 0),
        libc::ENXIO,
        "fifo without reader",
    );
    assert_errno(
        open(
            &f.p("new"),
            libc::O_RDWR | libc::O_CREAT | libc::O_DIRECTORY,
            0o644,
        ),
        libc::EINVAL,
        "O_CREAT|O_DIRECTORY",
    );
    let u = u1();
    let p = f.p("f");
    assert_errno(
        u.run(move || open(&p, libc::O_RDONLY | libc::O_NOATIME, 0)),
        libc::EPERM,
        "O_NOATIME by a non-owner",
    );
});

both!(o_creat_makes_what_it_should, |o| {
    let u = u1();
    let f = fx(o, |m| {
        m.dir("w", 0o777, 0, 0).file("w/exists", 0o600, 0, 0);
    });
    let p = f.p("w/new");
    let fd = u.run(move || {
        open(&p, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o666)
            .map(|fd| fd.write(b"x").map(|_| ()))
    });
    assert_ok(assert_ok(fd, "O_CREAT|O_EXCL"), "write");
    eq(mode_of(&f.p("w/new")), 0o644, "mode & ~umask");
    eq(owner_of(&f.p("w/new")), (u.uid, u.gid), "owner");
    // O_CREAT on an existing file changes neither mode nor owner.
    let fd = assert_ok(
        open(&f.p("w/exists"), libc::O_WRONLY | libc::O_CREAT, 0o777),
        "O_CREAT existing",
    );
    drop(fd);
    eq(mode_of(&f.p("w/exists")), 0o600, "mode kept");
    eq(
        content(&f.p("w/exists")),
        "data:w/exists".to_string(),
        "content kept",
    );
    // A mode without write permission still gives a writable fd to the creator.
    let fd = assert_ok(
        open(&f.p("w/ro"), libc::O_RDWR | libc::O_CREAT, 0o444),
        "O_CREAT 0444",
    );
    eq(fd.write(b"abc").unwrap(), 3, "write through the fd");
    eq(mode_of(&f.p("w/ro")), 0o444, "mode");
});

both!(o_trunc_and_o_append, |o| {
    let f = fx(o, mk_all);
    let fd = assert_ok(
        open(&f.p("f"), libc::O_WRONLY | libc::O_TRUNC, 0),
        "O_TRUNC",
    );
    eq(fd.fstat().unwrap().st_size, 0, "truncated");
    drop(fd);
    eq(content(&f.p("f")), String::new(), "empty");
    if o == Origin::Lower && !plain() {
        eq(
            content(&f.lower.join("f")),
            "data:f".to_string(),
            "lower untouched",
        );
    }
    fs::write(f.p("f"), "12345").unwrap();
    let fd = assert_ok(
        open(&f.p("f"), libc::O_WRONLY | libc::O_APPEND, 0),
        "O_APPEND",
    );
    fd.write(b"ab").unwrap();
    fd.pwrite(b"cd", 0).unwrap(); // Linux: pwrite with O_APPEND appends
    drop(fd);
    eq(content(&f.p("f")), "12345abcd".to_string(), "appended");
    // O_TRUNC on a fifo is ignored.
    let fd = open(
        &f.p("p"),
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_TRUNC,
        0,
    );
    assert_ok(fd, "O_TRUNC on a fifo");
});

both!(o_excl_after_unlink_of_lower, |o| {
    let f = fx(o, mk_all);
    unlink(&f.p("f")).unwrap();
    let fd = assert_ok(
        open(
            &f.p("f"),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            0o600,
        ),
        "O_EXCL over a deleted name",
    );
    eq(fd.fstat().unwrap().st_size, 0, "a new, empty file");
    eq(mode_of(&f.p("f")), 0o600, "mode");
});

#[test]
fn erofs() {
    let Some(f) = fx_ro(mk_all) else { return };
    assert_errno(open(&f.p("f"), libc::O_WRONLY, 0), libc::EROFS, "O_WRONLY");
    assert_errno(open(&f.p("f"), libc::O_RDWR, 0), libc::EROFS, "O_RDWR");
    assert_errno(
        open(&f.p("f"), libc::O_RDONLY | libc::O_TRUNC, 0),
        libc::EROFS,
        "O_TRUNC",
    );
    assert_errno(
        open(&f.p("new"), libc::O_WRONLY | libc::O_CREAT, 0o644),
        libc::EROFS,
        "O_CREAT new",
    );
    assert_ok(open(&f.p("f"), libc::O_RDONLY, 0), "O_RDONLY works");
    assert_ok(
        open(&f.p("p"), libc::O_WRONLY | libc::O_NONBLOCK, 0)
            .map(drop)
            .or_else(|e| {
                if e.raw_os_error() == Some(libc::ENXIO) {
                    Ok(())
                } else {
                    Err(e)
                }
            }),
        "a fifo is not a file of the fs",
    );
}

both!(etxtbsy_while_running, |o| {
    // A program that is running can't be opened for writing.
    let f = fx(o, |m| {
        std::fs::copy("/bin/sleep", m.root.join("prog")).unwrap();
        chmod(&m.root.join("prog"), 0o755).unwrap();
    });
    let mut child = spawn_fresh_program(std::process::Command::new(f.p("prog")).arg("30"))
        .expect("run a program from the mount");
    // Wait until the program runs (its exe link points at the file).
    let pid = child.id();
    check();
    assert!(
        wait_until(|| std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.ends_with("prog"))
            .unwrap_or(false)),
        "the program did not start"
    );
    let r = open(&f.p("prog"), libc::O_WRONLY, 0);
    let _ = child.kill();
    let _ = child.wait();
    assert_errno(r, libc::ETXTBSY, "open for writing a running program");
    assert_ok(open(&f.p("prog"), libc::O_WRONLY, 0), "after it exited");
});

both!(device_nodes_work_through_the_mount, |o| {
    // strata mounts nodev unless told `dev` (kernel overlayfs mounted by root: dev).
    let f = fx_with(o, ",dev", |m| {
        mknod(
            &m.root.join("null"),
            libc::S_IFCHR | 0o666,
            libc::makedev(1, 3),
        )
        .unwrap();
        mknod(
            &m.root.join("nodrv"),
            libc::S_IFCHR | 0o666,
            libc::makedev(240, 77),
        )
        .unwrap();
    });
    let fd = assert_ok(open(&f.p("null"), libc::O_RDWR, 0), "open /dev/null's twin");
    eq(fd.write(b"gone").unwrap(), 4, "write to the null device");
    eq(
        fd.pread(10, 0).unwrap(),
        Vec::<u8>::new(),
        "read from the null device",
    );
    assert_errno(
        open(&f.p("nodrv"), libc::O_RDONLY, 0),
        libc::ENXIO,
        "a device without a driver",
    );
});

#[test]
fn o_tmpfile_is_cleanly_unsupported() {
    // Documented: strata answers O_TMPFILE with EOPNOTSUPP (ext4 supports it).
    let f = fx(Origin::Upper, |m| {
        m.dir("d", 0o755, 0, 0);
    });
    let r = open(&f.p("d"), libc::O_TMPFILE | libc::O_RDWR, 0o600);
    if plain() {
        assert_ok(r, "O_TMPFILE on a plain fs");
    } else {
        assert_errno(r, libc::EOPNOTSUPP, "O_TMPFILE through strata");
        eq(
            list_dir(&f.p("d")).unwrap(),
            Vec::<String>::new(),
            "nothing left behind",
        );
    }
}
