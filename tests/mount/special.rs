//! Everything else a disk filesystem does: special files, statfs, fsync, fallocate,
//! SEEK_DATA/SEEK_HOLE, copy_file_range, locks, mmap, xattrs, ACLs, O_APPEND,
//! O_DIRECT, O_TMPFILE, unlinked-but-open files.

use crate::support::*;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::process::Command;

#[test]
fn mknod_fifo_socket_and_devices() {
    let lay = Layout::new(1);
    let m = lay.mount();
    mkfifo(lay.m("fifo"), 0o640).unwrap();
    assert!(lstat_meta(lay.m("fifo")).file_type().is_fifo());
    assert_eq!(lstat_meta(lay.m("fifo")).mode() & 0o7777, 0o640);
    mknod(lay.m("null"), libc::S_IFCHR | 0o666, libc::makedev(1, 3)).unwrap();
    mknod(lay.m("blk"), libc::S_IFBLK | 0o600, libc::makedev(7, 0)).unwrap();
    mknod(lay.m("sock"), libc::S_IFSOCK | 0o755, 0).unwrap();
    let st = lstat_meta(lay.m("null"));
    assert!(st.file_type().is_char_device());
    assert_eq!(st.rdev(), libc::makedev(1, 3));
    let st = lstat_meta(lay.m("blk"));
    assert!(st.file_type().is_block_device());
    assert_eq!(st.rdev(), libc::makedev(7, 0));
    assert!(lstat_meta(lay.m("sock")).file_type().is_socket());
    // a unix socket bound inside the mount (the sockets pin the mount: scope them)
    {
        let l = std::os::unix::net::UnixListener::bind(lay.m("bound.sock")).unwrap();
        assert!(lstat_meta(lay.m("bound.sock")).file_type().is_socket());
        let mut c = std::os::unix::net::UnixStream::connect(lay.m("bound.sock")).unwrap();
        let (mut s, _) = l.accept().unwrap();
        c.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }
    // a fifo in the mount carries data
    let fifo = lay.m("fifo");
    let t = std::thread::spawn(move || {
        let mut f = fs::OpenOptions::new().write(true).open(fifo).unwrap();
        f.write_all(b"through the fifo").unwrap();
    });
    let mut s = String::new();
    fs::File::open(lay.m("fifo"))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    t.join().unwrap();
    assert_eq!(s, "through the fifo");
    m.umount();
    assert!(lstat_meta(lay.u("fifo")).file_type().is_fifo());
    assert_eq!(lstat_meta(lay.u("null")).rdev(), libc::makedev(1, 3));
}

#[test]
fn device_nodes_work_with_dev_option() {
    let lay = Layout::new(1);
    mknod(lay.l(0, "zero"), libc::S_IFCHR | 0o666, libc::makedev(1, 5)).unwrap();
    let _m = lay.mount_with("dev");
    let mut buf = [1u8; 16];
    fs::File::open(lay.m("zero"))
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    assert_eq!(
        buf, [0u8; 16],
        "reading /dev/zero-like node through the mount"
    );
}

fn statvfs(p: &std::path::Path) -> libc::statvfs {
    let c = cstr(p);
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::statvfs(c.as_ptr(), &mut s) }).unwrap();
    s
}

#[test]
fn statfs_reports_the_upper_or_the_top_lower() {
    let d = TestDir::new();
    let tfs = Tmpfs::new(&d.join("tmpfs"));
    let lower = tfs.path.join("lower");
    mkdirs(&lower);
    let lower2 = d.dir("lower2");
    let upper = d.dir("upper");
    let work = d.dir("work");
    let mnt = d.dir("mnt");
    {
        let _m = Mount::new(
            &format!(
                "lowerdir={}:{},upperdir={},workdir={}",
                lower.display(),
                lower2.display(),
                upper.display(),
                work.display()
            ),
            &mnt,
        );
        let (a, b) = (statvfs(&mnt), statvfs(&upper));
        assert_eq!(
            (a.f_blocks * a.f_frsize, a.f_files),
            (b.f_blocks * b.f_frsize, b.f_files),
            "statfs of a read-write mount must be the upper's"
        );
    }
    {
        let _m = Mount::new(
            &format!("lowerdir={}:{}", lower.display(), lower2.display()),
            &mnt,
        );
        let (a, b) = (statvfs(&mnt), statvfs(&lower));
        assert_eq!(
            (a.f_blocks * a.f_frsize, a.f_files),
            (b.f_blocks * b.f_frsize, b.f_files),
            "statfs of a read-only mount must be the top lower's"
        );
    }
}

#[test]
fn fsync_fdatasync_and_syncfs() {
    let lay = Layout::new(1);
    write(lay.l(0, "low"), "low");
    let _m = lay.mount();
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lay.m("f"))
        .unwrap();
    f.write_all_at(b"data", 0).unwrap();
    f.sync_all().unwrap();
    f.sync_data().unwrap();
    cvt(unsafe { libc::syncfs(f.as_raw_fd()) }).unwrap();
    let d = fs::File::open(&lay.mnt).unwrap();
    d.sync_all().unwrap();
    // fsync of a read-only fd of a lower file
    let l = fs::File::open(lay.m("low")).unwrap();
    l.sync_all().unwrap();
    assert_eq!(read_string(lay.u("f")), "data");
}

#[test]
fn fallocate_and_punch_hole() {
    let lay = Layout::new(1);
    write(lay.l(0, "low"), vec![b'a'; 8192]);
    let _m = lay.mount();
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(lay.m("f"))
        .unwrap();
    cvt(unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 1 << 20) }).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 1 << 20);
    cvt(unsafe { libc::fallocate(f.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, 2 << 20) }).unwrap();
    assert_eq!(
        f.metadata().unwrap().len(),
        1 << 20,
        "KEEP_SIZE changed the size"
    );
    assert_eq!(lstat_meta(lay.u("f")).len(), 1 << 20);
    // punch a hole in a copied-up lower file
    let g = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(lay.m("low"))
        .unwrap();
    cvt(unsafe {
        libc::fallocate(
            g.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            0,
            4096,
        )
    })
    .unwrap();
    let mut buf = vec![0u8; 8192];
    g.read_exact_at(&mut buf, 0).unwrap();
    assert!(buf[..4096].iter().all(|b| *b == 0), "hole not zero");
    assert!(buf[4096..].iter().all(|b| *b == b'a'));
    assert_eq!(read(lay.l(0, "low")), vec![b'a'; 8192], "lower changed");
}

fn seek(fd: i32, off: i64, whence: i32) -> std::io::Result<i64> {
    let r = unsafe { libc::lseek(fd, off, whence) };
    if r < 0 {
        Err(last_err())
    } else {
        Ok(r)
    }
}

fn make_sparse(p: &std::path::Path) {
    let f = fs::File::create(p).unwrap();
    f.write_all_at(&vec![b'x'; 4096], 0).unwrap();
    f.write_all_at(&vec![b'y'; 4096], 1 << 20).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn seek_data_and_seek_hole() {
    let lay = Layout::new(1);
    make_sparse(&lay.l(0, "sparse"));
    // what the backing filesystem says
    let bf = fs::File::open(lay.l(0, "sparse")).unwrap();
    let want_hole = seek(bf.as_raw_fd(), 0, libc::SEEK_HOLE).unwrap();
    let want_data = seek(bf.as_raw_fd(), want_hole, libc::SEEK_DATA).unwrap();
    assert_eq!(
        (want_hole, want_data),
        (4096, 1 << 20),
        "backing fs is not sparse-aware"
    );
    let _m = lay.mount();
    for name in ["sparse", "made-here"] {
        if name == "made-here" {
            make_sparse(&lay.m(name));
        }
        let f = fs::File::open(lay.m(name)).unwrap();
        let fd = f.as_raw_fd();
        assert_eq!(
            seek(fd, 0, libc::SEEK_DATA).unwrap(),
            0,
            "{name}: SEEK_DATA 0"
        );
        assert_eq!(
            seek(fd, 0, libc::SEEK_HOLE).unwrap(),
            4096,
            "{name}: SEEK_HOLE 0"
        );
        assert_eq!(
            seek(fd, 4096, libc::SEEK_DATA).unwrap(),
            1 << 20,
            "{name}: SEEK_DATA 4096"
        );
        assert_eq!(
            seek(fd, 1 << 20, libc::SEEK_HOLE).unwrap(),
            (1 << 20) + 4096,
            "{name}: SEEK_HOLE in the last extent"
        );
        assert_errno(
            seek(fd, (1 << 20) + 4096, libc::SEEK_DATA),
            libc::ENXIO,
            &format!("{name}: SEEK_DATA at EOF"),
        );
    }
}

#[test]
fn copy_file_range_between_files() {
    let lay = Layout::new(1);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    write(lay.l(0, "src"), &data);
    let _m = lay.mount();
    let src = fs::File::open(lay.m("src")).unwrap();
    let dst = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lay.m("dst"))
        .unwrap();
    let mut off_in: i64 = 1000;
    let mut off_out: i64 = 0;
    let mut left = 200_000usize;
    while left > 0 {
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                &mut off_out,
                left,
                0,
            )
        };
        assert!(n > 0, "copy_file_range: {}", last_err());
        left -= n as usize;
    }
    drop(dst);
    assert!(
        read(lay.m("dst")) == data[1000..201_000],
        "copied range differs"
    );
    assert_eq!(
        ls(&lay.upper),
        strs(&["dst"]),
        "source must not be copied up"
    );
}

#[test]
fn flock_conflicts() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "x");
    let _m = lay.mount();
    let a = fs::File::open(lay.m("f")).unwrap();
    let b = fs::File::open(lay.m("f")).unwrap();
    cvt(unsafe { libc::flock(a.as_raw_fd(), libc::LOCK_EX) }).unwrap();
    assert_errno(
        cvt(unsafe { libc::flock(b.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }),
        libc::EWOULDBLOCK,
        "second exclusive flock",
    );
    // another process sees it too
    let out = run(Command::new("flock").arg("-n").arg(lay.m("f")).arg("true"));
    assert_eq!(
        out.code(),
        Some(1),
        "flock(1) -n on a locked file: {}",
        out.stderr
    );
    cvt(unsafe { libc::flock(a.as_raw_fd(), libc::LOCK_UN) }).unwrap();
    cvt(unsafe { libc::flock(b.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }).unwrap();
}

fn flock_struct(t: i32, start: i64, len: i64) -> libc::flock {
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = t as i16;
    fl.l_whence = libc::SEEK_SET as i16;
    fl.l_start = start;
    fl.l_len = len;
    fl
}

#[test]
fn fcntl_locks_conflict() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "0123456789");
    let _m = lay.mount();
    let a = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(lay.m("f"))
        .unwrap();
    let b = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(lay.m("f"))
        .unwrap();
    // a classic POSIX lock held by this process ...
    let fl = flock_struct(libc::F_WRLCK, 0, 5);
    cvt(unsafe { libc::fcntl(a.as_raw_fd(), libc::F_SETLK, &fl) }).unwrap();
    // ... conflicts with an OFD lock on another open file description
    let mut ofd = flock_struct(libc::F_WRLCK, 2, 2);
    assert_errno(
        cvt(unsafe { libc::fcntl(b.as_raw_fd(), libc::F_OFD_SETLK, &ofd) }),
        libc::EAGAIN,
        "conflicting OFD lock",
    );
    cvt(unsafe { libc::fcntl(b.as_raw_fd(), libc::F_OFD_GETLK, &mut ofd) }).unwrap();
    assert_eq!(
        ofd.l_type as i32,
        libc::F_WRLCK,
        "F_OFD_GETLK must report the lock"
    );
    assert_eq!((ofd.l_start, ofd.l_len), (0, 5));
    // a non-overlapping range is free
    let free = flock_struct(libc::F_WRLCK, 5, 5);
    cvt(unsafe { libc::fcntl(b.as_raw_fd(), libc::F_OFD_SETLK, &free) }).unwrap();
    let un = flock_struct(libc::F_UNLCK, 0, 5);
    cvt(unsafe { libc::fcntl(a.as_raw_fd(), libc::F_SETLK, &un) }).unwrap();
    let again = flock_struct(libc::F_WRLCK, 0, 5);
    cvt(unsafe { libc::fcntl(b.as_raw_fd(), libc::F_OFD_SETLK, &again) }).unwrap();
}

#[test]
fn mmap_shared_writable_and_private_read() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), vec![b'.'; 8192]);
    write(lay.l(0, "ro"), "read me by mmap");
    let m = lay.mount();
    unsafe {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(lay.m("f"))
            .unwrap();
        let p = libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap MAP_SHARED rw: {}", last_err());
        let s = std::slice::from_raw_parts_mut(p as *mut u8, 8192);
        assert_eq!(s[0], b'.');
        s[0..5].copy_from_slice(b"HELLO");
        s[8190..8192].copy_from_slice(b"!!");
        assert_eq!(
            libc::msync(p, 8192, libc::MS_SYNC),
            0,
            "msync: {}",
            last_err()
        );
        libc::munmap(p, 8192);
        drop(f);

        let r = fs::File::open(lay.m("ro")).unwrap();
        let q = libc::mmap(
            std::ptr::null_mut(),
            15,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            r.as_raw_fd(),
            0,
        );
        assert_ne!(q, libc::MAP_FAILED, "mmap read-only: {}", last_err());
        assert_eq!(
            std::slice::from_raw_parts(q as *const u8, 15),
            b"read me by mmap"
        );
        libc::munmap(q, 15);
    }
    let got = read(lay.m("f"));
    assert_eq!(&got[0..5], b"HELLO");
    assert_eq!(&got[8190..], b"!!");
    m.umount();
    let up = read(lay.u("f"));
    assert_eq!(
        &up[0..5],
        b"HELLO",
        "shared mmap writes did not reach the upper"
    );
    assert_eq!(&up[8190..], b"!!");
    assert_eq!(read(lay.l(0, "f")), vec![b'.'; 8192]);
}

#[test]
fn xattrs_on_every_kind_of_object() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "dir"));
    write(lay.l(0, "file"), "f");
    ln_s("file", lay.l(0, "link"));
    mkfifo(lay.l(0, "fifo"), 0o644).unwrap();
    let m = lay.mount();
    write(lay.m("newfile"), "n");
    for obj in ["dir", "file", "newfile"] {
        lsetxattr(lay.m(obj), "user.k", b"v1").unwrap();
        lsetxattr(lay.m(obj), "trusted.k", b"t1").unwrap();
        assert_eq!(lgetxattr(lay.m(obj), "user.k").unwrap(), b"v1", "{obj}");
        assert_eq!(
            llistxattr(lay.m(obj)).unwrap(),
            strs(&["trusted.k", "user.k"]),
            "{obj}"
        );
        assert_errno(
            lsetxattr_flags(lay.m(obj), "user.k", b"x", libc::XATTR_CREATE),
            libc::EEXIST,
            &format!("{obj}: XATTR_CREATE on existing"),
        );
        assert_errno(
            lsetxattr_flags(lay.m(obj), "user.none", b"x", libc::XATTR_REPLACE),
            libc::ENODATA,
            &format!("{obj}: XATTR_REPLACE on missing"),
        );
        lsetxattr(lay.m(obj), "user.k", b"v2-longer-value").unwrap();
        assert_eq!(lgetxattr(lay.m(obj), "user.k").unwrap(), b"v2-longer-value");
        lremovexattr(lay.m(obj), "user.k").unwrap();
        assert_errno(lgetxattr(lay.m(obj), "user.k"), libc::ENODATA, obj);
        assert_errno(lremovexattr(lay.m(obj), "user.k"), libc::ENODATA, obj);
    }
    // symlinks and fifos: trusted.* (user.* is not allowed on them by the kernel)
    for obj in ["link", "fifo"] {
        lsetxattr(lay.m(obj), "trusted.s", b"sv").unwrap();
        assert_eq!(lgetxattr(lay.m(obj), "trusted.s").unwrap(), b"sv");
        assert_eq!(llistxattr(lay.m(obj)).unwrap(), strs(&["trusted.s"]));
    }
    assert_errno(
        lsetxattr(lay.m("link"), "user.s", b"x"),
        libc::EPERM,
        "user.* xattr on a symlink",
    );
    // size probing: a zero-size buffer returns the size
    lsetxattr(lay.m("file"), "user.big", &vec![b'z'; 3000]).unwrap();
    let c = cstr(lay.m("file"));
    let name = std::ffi::CString::new("user.big").unwrap();
    let n = unsafe { libc::lgetxattr(c.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
    assert_eq!(n, 3000);
    let mut small = [0u8; 10];
    let r = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            name.as_ptr(),
            small.as_mut_ptr() as *mut libc::c_void,
            small.len(),
        )
    };
    assert_eq!(r, -1);
    assert_eq!(last_err().raw_os_error(), Some(libc::ERANGE));
    m.umount();
    assert_eq!(lgetxattr(lay.u("link"), "trusted.s").unwrap(), b"sv");
    assert!(lstat_meta(lay.u("link")).file_type().is_symlink());
    assert_eq!(lgetxattr(lay.u("file"), "trusted.k").unwrap(), b"t1");
    assert_eq!(
        llistxattr(lay.l(0, "file")).unwrap(),
        Vec::<String>::new(),
        "lower changed"
    );
}

#[test]
fn posix_acls_with_setfacl_and_getfacl() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "secret");
    chmod(lay.l(0, "f"), 0o600).unwrap();
    mkdirs(lay.l(0, "d"));
    let _m = lay.mount_with("allow_other");
    let out = run(Command::new("setfacl")
        .args(["-m", "u:4242:r"])
        .arg(lay.m("f")));
    assert!(out.ok(), "setfacl through the mount: {}", out.stderr);
    let out = run(Command::new("getfacl").args(["-cn"]).arg(lay.m("f")));
    assert!(out.ok(), "getfacl: {}", out.stderr);
    assert!(
        out.stdout.contains("user:4242:r--"),
        "getfacl shows: {}",
        out.stdout
    );
    assert!(
        lgetxattr(lay.u("f"), "system.posix_acl_access").is_ok(),
        "the ACL must be stored on the upper copy"
    );
    // the ACL is enforced: 4242 may read, 4243 may not
    let ok = as_user(&Creds::user(4242, 4242), || {
        fs::read(lay.m("f")).map_err(|e| e.raw_os_error())
    });
    assert_eq!(ok, Ok(b"secret".to_vec()), "user named in the ACL");
    let denied = as_user(&Creds::user(4243, 4243), || {
        fs::read(lay.m("f")).map_err(|e| e.raw_os_error())
    });
    assert_eq!(denied, Err(Some(libc::EACCES)), "user not in the ACL");
    // default ACL on a directory is inherited
    let out = run(Command::new("setfacl")
        .args(["-d", "-m", "u:4242:rwx"])
        .arg(lay.m("d")));
    assert!(out.ok(), "setfacl -d: {}", out.stderr);
    write(lay.m("d/child"), "c");
    let out = run(Command::new("getfacl").args(["-cn"]).arg(lay.m("d/child")));
    assert!(
        out.stdout.contains("user:4242:rwx"),
        "default ACL not inherited: {}",
        out.stdout
    );
}

#[test]
fn o_append_appends_even_after_seek() {
    let lay = Layout::new(1);
    write(lay.l(0, "log"), "line1\n");
    let _m = lay.mount();
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(lay.m("log"))
        .unwrap();
    f.write_all(b"line2\n").unwrap();
    let mut g = fs::OpenOptions::new()
        .append(true)
        .open(lay.m("log"))
        .unwrap();
    g.write_all(b"line3\n").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(b"line4\n").unwrap();
    drop((f, g));
    assert_eq!(read_string(lay.m("log")), "line1\nline2\nline3\nline4\n");
    assert_eq!(read_string(lay.l(0, "log")), "line1\n");
}

#[test]
fn o_direct_reads_and_writes() {
    let lay = Layout::new(1);
    let _m = lay.mount();
    let layout = std::alloc::Layout::from_size_align(8192, 4096).unwrap();
    unsafe {
        let buf = std::alloc::alloc(layout);
        let s = std::slice::from_raw_parts_mut(buf, 8192);
        for (i, b) in s.iter_mut().enumerate() {
            *b = (i % 253) as u8;
        }
        let f = fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(lay.m("direct"))
            .expect("open O_DIRECT");
        let n = libc::pwrite(f.as_raw_fd(), buf as *const libc::c_void, 8192, 0);
        assert_eq!(n, 8192, "O_DIRECT write: {}", last_err());
        let rbuf = std::alloc::alloc(layout);
        let n = libc::pread(f.as_raw_fd(), rbuf as *mut libc::c_void, 8192, 0);
        assert_eq!(n, 8192, "O_DIRECT read: {}", last_err());
        assert!(std::slice::from_raw_parts(rbuf, 8192) == &s[..]);
        std::alloc::dealloc(rbuf, layout);
        drop(f);
        assert!(read(lay.m("direct")) == s.to_vec());
        assert!(read(lay.u("direct")) == s.to_vec());
        std::alloc::dealloc(buf, layout);
    }
}

#[test]
fn o_tmpfile_works_or_is_cleanly_unsupported() {
    let lay = Layout::new(1);
    let _m = lay.mount();
    let r = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .open(&lay.mnt);
    match r {
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(libc::EOPNOTSUPP),
            "O_TMPFILE must work or fail with EOPNOTSUPP, got {e}"
        ),
        Ok(mut f) => {
            f.write_all(b"anonymous").unwrap();
            assert_eq!(
                ls(&lay.mnt),
                Vec::<String>::new(),
                "O_TMPFILE file is visible"
            );
            let src = cstr(format!("/proc/self/fd/{}", f.as_raw_fd()));
            let dst = cstr(lay.m("named"));
            cvt(unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    src.as_ptr(),
                    libc::AT_FDCWD,
                    dst.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            })
            .unwrap();
            drop(f);
            assert_eq!(read_string(lay.m("named")), "anonymous");
        }
    }
}

#[test]
fn unlinked_open_files_stay_usable() {
    let lay = Layout::new(1);
    write(lay.l(0, "lower"), "lower data");
    let _m = lay.mount();
    // lower file open for reading, then unlinked
    let mut lf = fs::File::open(lay.m("lower")).unwrap();
    fs::remove_file(lay.m("lower")).unwrap();
    let mut s = String::new();
    lf.read_to_string(&mut s).unwrap();
    assert_eq!(s, "lower data");
    assert_eq!(lf.metadata().unwrap().len(), 10);
    // upper file open read-write, then unlinked
    write(lay.m("upper"), "upper data");
    let mut uf = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(lay.m("upper"))
        .unwrap();
    fs::remove_file(lay.m("upper")).unwrap();
    assert_errno(fs::metadata(lay.m("upper")), libc::ENOENT, "unlinked name");
    uf.seek(SeekFrom::End(0)).unwrap();
    uf.write_all(b" and more").unwrap();
    uf.seek(SeekFrom::Start(0)).unwrap();
    let mut s = String::new();
    uf.read_to_string(&mut s).unwrap();
    assert_eq!(s, "upper data and more");
    assert_eq!(uf.metadata().unwrap().len(), 19);
    // the names are free again
    write(lay.m("upper"), "new");
    assert_eq!(read_string(lay.m("upper")), "new");
    assert_eq!(ls(&lay.mnt), strs(&["upper"]));
}

#[test]
fn file_renamed_while_open_keeps_working() {
    let lay = Layout::new(1);
    write(lay.l(0, "a"), "abc");
    let _m = lay.mount();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(lay.m("a"))
        .unwrap();
    fs::rename(lay.m("a"), lay.m("b")).unwrap();
    f.write_all_at(b"X", 0).unwrap();
    drop(f);
    assert_eq!(read_string(lay.m("b")), "Xbc");
}

#[test]
fn large_sparse_offsets_and_truncate_through_fd() {
    let lay = Layout::new(1);
    let _m = lay.mount();
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(lay.m("big"))
        .unwrap();
    let off = 5u64 << 30; // 5 GiB
    f.write_all_at(b"far", off).unwrap();
    assert_eq!(f.metadata().unwrap().len(), off + 3);
    let mut b = [0u8; 3];
    f.read_exact_at(&mut b, off).unwrap();
    assert_eq!(&b, b"far");
    f.set_len(10).unwrap();
    assert_eq!(lstat_meta(lay.m("big")).len(), 10);
    assert_eq!(read(lay.m("big")), vec![0u8; 10]);
}
