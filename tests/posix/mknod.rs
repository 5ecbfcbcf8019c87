//! mkfifo(3) and mknod(2).

use crate::both;
use crate::fx::*;
use crate::support::*;

both!(mkfifo_creates_a_fifo, |o| {
    let u = u1();
    let f = fx(o, |m| {
        m.dir("w", 0o777, 0, 0);
    });
    let p = f.p("w/p");
    assert_ok(u.run(move || mkfifo(&p, 0o666)), "mkfifo");
    let st = lstat(&f.p("w/p")).unwrap();
    eq(kind_of(st.st_mode), 'p', "type");
    eq(st.st_mode & 0o7777, 0o644, "mode & ~umask");
    eq((st.st_uid, st.st_gid), (u.uid, u.gid), "owner");
    // A fifo through the mount is a fifo: data passes from writer to reader.
    let p = f.p("w/p");
    let rd = open(&p, libc::O_RDONLY | libc::O_NONBLOCK, 0).unwrap();
    let wr = open(&p, libc::O_WRONLY | libc::O_NONBLOCK, 0).unwrap();
    eq(wr.write(b"ping").unwrap(), 4, "write to fifo");
    let mut buf = [0u8; 8];
    let n = unsafe { libc::read(rd.0, buf.as_mut_ptr() as *mut _, 8) };
    eq(&buf[..n as usize], &b"ping"[..], "read from fifo");
});

both!(mkfifo_errors, |o| {
    let f = fx(o, |m| {
        m.file("f", 0o644, 0, 0)
            .dir("ro", 0o555, 0, 0)
            .symlink("loop", "loop");
    });
    assert_errno(mkfifo(&f.p("f"), 0o644), libc::EEXIST, "exists");
    assert_errno(
        mkfifo(&f.p("missing/p"), 0o644),
        libc::ENOENT,
        "missing parent",
    );
    assert_errno(mkfifo(&f.p("f/p"), 0o644), libc::ENOTDIR, "ENOTDIR");
    assert_errno(mkfifo(&f.p("loop/p"), 0o644), libc::ELOOP, "loop");
    let p = f.p("ro/p");
    assert_errno(
        u1().run(move || mkfifo(&p, 0o644)),
        libc::EACCES,
        "no write permission",
    );
});

both!(mknod_kinds, |o| {
    let f = fx(o, |_| {});
    assert_ok(
        mknod(&f.p("reg"), libc::S_IFREG | 0o640, 0),
        "mknod S_IFREG",
    );
    eq(
        kind_of(lstat(&f.p("reg")).unwrap().st_mode),
        'f',
        "regular file",
    );
    eq(mode_of(&f.p("reg")), 0o640, "mode");
    let dev = libc::makedev(1, 3);
    assert_ok(
        mknod(&f.p("null"), libc::S_IFCHR | 0o666, dev),
        "mknod char device as root",
    );
    let st = lstat(&f.p("null")).unwrap();
    eq(
        (kind_of(st.st_mode), st.st_rdev),
        ('c', dev),
        "char device and its rdev",
    );
    let bdev = libc::makedev(7, 200);
    assert_ok(
        mknod(&f.p("blk"), libc::S_IFBLK | 0o600, bdev),
        "mknod block device",
    );
    let st = lstat(&f.p("blk")).unwrap();
    eq(
        (kind_of(st.st_mode), st.st_rdev),
        ('b', bdev),
        "block device",
    );
    assert_errno(
        mknod(&f.p("dir"), libc::S_IFDIR | 0o755, 0),
        libc::EPERM,
        "mknod S_IFDIR",
    );
    assert_errno(
        mknod(&f.p("reg"), libc::S_IFREG | 0o644, 0),
        libc::EEXIST,
        "exists",
    );
    mkdir(&f.p("w"), 0o777).unwrap();
    chmod(&f.p("w"), 0o777).unwrap();
    let p = f.p("w/dev2");
    assert_errno(
        u1().run(move || mknod(&p, libc::S_IFCHR | 0o666, dev)),
        libc::EPERM,
        "device node as a user",
    );
});

#[test]
fn whiteout_device_is_refused() {
    // A 0/0 character device is a whiteout in a layer: kernel overlayfs refuses to
    // make one through the mount (EPERM), else it would vanish at once.
    let f = fx(Origin::Upper, |_| {});
    let r = mknod(&f.p("c00"), libc::S_IFCHR | 0o600, 0);
    if plain() {
        assert_ok(r, "mknod 0/0 on a plain fs");
    } else {
        assert_errno(r, libc::EPERM, "mknod 0/0 through the mount");
        eq(
            list_dir(&f.p("")).unwrap().contains(&"c00".to_string()),
            false,
            "nothing listed",
        );
    }
}

#[test]
fn erofs_on_read_only_mount() {
    let Some(f) = fx_ro(|_| {}) else { return };
    assert_errno(
        mkfifo(&f.p("p"), 0o644),
        libc::EROFS,
        "mkfifo on read-only mount",
    );
    assert_errno(
        mknod(&f.p("r"), libc::S_IFREG | 0o644, 0),
        libc::EROFS,
        "mknod on read-only mount",
    );
}
