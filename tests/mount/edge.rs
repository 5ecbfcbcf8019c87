//! Edge cases: odd names, relative paths, shared lowers, full upper, fd-based
//! changes of lower files, POSIX corner cases of rename and listxattr.

use crate::support::*;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::process::Command;

#[test]
fn odd_names_round_trip() {
    let lay = Layout::new(1);
    let names: Vec<&[u8]> = vec![
        b"with space",
        b"new\nline",
        b"back\\slash",
        b"co:lon",
        b"com,ma",
        b"not-utf8-\xff\xfe",
        b"-leading-dash",
        b".hidden",
        b"..dots",
        "ünïcödé-✓".as_bytes(),
    ];
    for n in &names {
        write(lay.l(0, OsStr::from_bytes(n)), n);
    }
    let long = "L".repeat(255);
    write(lay.l(0, &long), "long");
    let m = lay.mount();
    let mut got: Vec<Vec<u8>> = fs::read_dir(&lay.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    got.sort();
    let mut want: Vec<Vec<u8>> = names.iter().map(|n| n.to_vec()).collect();
    want.push(long.as_bytes().to_vec());
    want.sort();
    assert_eq!(got, want, "names through the mount");
    for n in &names {
        assert_eq!(read(lay.m(OsStr::from_bytes(n))), *n);
        // copy-up and whiteout with the odd name
        lsetxattr(lay.m(OsStr::from_bytes(n)), "user.t", b"1").unwrap();
    }
    fs::remove_file(lay.m(&long)).unwrap();
    let too_long = "L".repeat(256);
    assert_errno(
        fs::write(lay.m(&too_long), "x"),
        libc::ENAMETOOLONG,
        "256-byte name",
    );
    m.umount();
    assert!(is_whiteout(lay.u(&long)), "whiteout for a 255-byte name");
    for n in &names {
        assert_eq!(read(lay.u(OsStr::from_bytes(n))), *n);
    }
}

#[test]
fn relative_paths_on_the_command_line() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "rel");
    let out = run(strata().current_dir(lay.dir.path()).args([
        "mount",
        "-o",
        "lowerdir=./lower0,upperdir=upper,workdir=./work",
        "mnt",
    ]));
    let m = Mount::adopt(out, &lay.mnt, "strata mount with relative paths");
    assert_eq!(read_string(lay.m("f")), "rel");
    write(lay.m("g"), "g");
    m.umount();
    assert_eq!(read_string(lay.u("g")), "g");
}

#[test]
fn options_split_over_several_dash_o() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "x");
    let out = run(strata()
        .arg("mount")
        .arg("-o")
        .arg(lay.lowerdir_opt())
        .arg("-o")
        .arg(format!(
            "upperdir={},workdir={}",
            lay.upper.display(),
            lay.work.display()
        ))
        .arg("-o")
        .arg("noatime")
        .arg(&lay.mnt));
    let m = Mount::adopt(out, &lay.mnt, "strata mount -o A -o B -o C");
    write(lay.m("g"), "g");
    m.umount();
    assert_eq!(read_string(lay.u("g")), "g");
}

#[test]
fn mount_point_and_layers_with_spaces_and_commas() {
    let d = TestDir::new();
    let l = d.dir("low er,1");
    let u = d.dir("up per");
    let w = d.dir("wo rk");
    let mnt = d.dir("mount point");
    write(l.join("f"), "spaced");
    let esc = |p: &std::path::Path| p.display().to_string().replace(',', "\\,");
    let m = Mount::new(
        &format!(
            "lowerdir={},upperdir={},workdir={}",
            esc(&l),
            esc(&u),
            esc(&w)
        ),
        &mnt,
    );
    assert_eq!(read_string(mnt.join("f")), "spaced");
    write(mnt.join("g"), "g");
    m.umount();
    assert_eq!(read_string(u.join("g")), "g");
}

#[test]
fn two_mounts_share_one_lower() {
    let d = TestDir::new();
    let l = d.dir("lower");
    write(l.join("common"), "base");
    let mk = |n: &str| -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
        (
            d.dir(format!("u{n}")),
            d.dir(format!("w{n}")),
            d.dir(format!("m{n}")),
        )
    };
    let (u1, w1, m1) = mk("1");
    let (u2, w2, m2) = mk("2");
    let o = |u: &std::path::Path, w: &std::path::Path| {
        format!(
            "lowerdir={},upperdir={},workdir={}",
            l.display(),
            u.display(),
            w.display()
        )
    };
    let a = Mount::new(&o(&u1, &w1), &m1);
    let b = Mount::new(&o(&u2, &w2), &m2);
    write(m1.join("common"), "one");
    write(m2.join("common"), "two");
    fs::remove_file(m1.join("common")).unwrap();
    assert_eq!(read_string(m2.join("common")), "two");
    assert_errno(fs::metadata(m1.join("common")), libc::ENOENT, "m1/common");
    a.umount();
    b.umount();
    assert_eq!(read_string(l.join("common")), "base");
}

#[test]
fn full_upper_gives_enospc_and_leaves_no_partial_copy() {
    let d = TestDir::new();
    let t = d.join("small");
    mkdirs(&t);
    let out = run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs"])
        .arg(&t));
    assert!(out.ok(), "mount tmpfs: {}", out.stderr);
    let _tg = Tmpfs { path: t.clone() };
    let l = d.dir("lower");
    let u = t.join("upper");
    let w = t.join("work");
    mkdirs(&u);
    mkdirs(&w);
    let mnt = d.dir("mnt");
    write(l.join("big"), vec![b'b'; 6 << 20]);
    write(l.join("small"), "small");
    let _m = Mount::new(
        &format!(
            "lowerdir={},upperdir={},workdir={}",
            l.display(),
            u.display(),
            w.display()
        ),
        &mnt,
    );
    // a copy-up that cannot fit
    let r = fs::OpenOptions::new().append(true).open(mnt.join("big"));
    assert_errno(r, libc::ENOSPC, "copy-up of 6 MiB into a 4 MiB upper");
    assert!(!exists(u.join("big")), "partial copy-up left in the upper");
    assert_eq!(
        read(mnt.join("big")).len(),
        6 << 20,
        "view of the lower file intact"
    );
    // a write that cannot fit
    let mut f = fs::File::create(mnt.join("new")).unwrap();
    let chunk = vec![b'n'; 1 << 20];
    let mut err = None;
    for _ in 0..8 {
        if let Err(e) = f.write_all(&chunk).and_then(|_| f.sync_all()) {
            err = Some(e);
            break;
        }
    }
    let e = err.expect("writing 8 MiB into a 4 MiB upper succeeded");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "write error: {e}");
    drop(f);
    fs::remove_file(mnt.join("new")).unwrap();
    // the mount keeps working once there is room again (the daemon releases the
    // deleted file's backing fd when the kernel's asynchronous RELEASE arrives)
    let mut last = None;
    let worked = wait_until(|| {
        match fs::OpenOptions::new()
            .append(true)
            .open(mnt.join("small"))
            .and_then(|mut f| f.write_all(b"+"))
        {
            Ok(()) => true,
            Err(e) => {
                last = Some(e);
                false
            }
        }
    });
    assert!(
        worked,
        "no room again after deleting the big file: {last:?}"
    );
    assert_eq!(read_string(mnt.join("small")), "small+");
    let ww = w.join("work");
    if ww.exists() {
        assert_eq!(
            ls(&ww),
            Vec::<String>::new(),
            "staging leftovers after ENOSPC"
        );
    }
}

#[test]
fn fd_based_changes_to_a_lower_file_copy_up_and_spare_the_lower() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "lower");
    chmod(lay.l(0, "f"), 0o644).unwrap();
    let before = snapshot(&lay.lowers[0]);
    let m = lay.mount();
    let ro = fs::File::open(lay.m("f")).unwrap();
    let fd = ro.as_raw_fd();
    cvt(unsafe { libc::fchmod(fd, 0o600) }).unwrap();
    cvt(unsafe { libc::fchown(fd, 1234, 2345) }).unwrap();
    let name = std::ffi::CString::new("user.viafd").unwrap();
    cvt(unsafe {
        libc::fsetxattr(
            fd,
            name.as_ptr(),
            b"1".as_ptr() as *const libc::c_void,
            1,
            0,
        )
    })
    .unwrap();
    let ts = [
        libc::timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: 1_000_000_001,
            tv_nsec: 0,
        },
    ];
    cvt(unsafe { libc::futimens(fd, ts.as_ptr()) }).unwrap();
    let st = ro.metadata().unwrap();
    assert_eq!(
        (st.mode() & 0o7777, st.uid(), st.gid()),
        (0o600, 1234, 2345)
    );
    assert_eq!(st.mtime(), 1_000_000_001);
    assert_eq!(lgetxattr(lay.m("f"), "user.viafd").unwrap(), b"1");
    drop(ro);
    m.umount();
    assert_same_tree(
        "lower before",
        &before,
        "lower after",
        &snapshot(&lay.lowers[0]),
    );
    let st = lstat_meta(lay.u("f"));
    assert_eq!(
        (st.mode() & 0o7777, st.uid(), st.gid()),
        (0o600, 1234, 2345)
    );
    assert_eq!(read_string(lay.u("f")), "lower");
}

#[test]
fn ftruncate_through_a_fd_opened_for_writing() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "0123456789");
    let _m = lay.mount();
    let f = fs::OpenOptions::new().write(true).open(lay.m("f")).unwrap();
    f.set_len(4).unwrap();
    f.write_all_at(b"X", 6).unwrap();
    drop(f);
    assert_eq!(read(lay.m("f")), b"0123\0\0X");
    assert_eq!(read_string(lay.l(0, "f")), "0123456789");
}

#[test]
fn rename_between_two_links_of_one_file_is_a_no_op() {
    let lay = Layout::new(1);
    write(lay.l(0, "a"), "a");
    let _m = lay.mount();
    fs::hard_link(lay.m("a"), lay.m("b")).unwrap();
    fs::rename(lay.m("a"), lay.m("b")).unwrap();
    assert_eq!(
        ls(&lay.mnt),
        strs(&["a", "b"]),
        "POSIX: rename of two links does nothing"
    );
    assert_eq!(lstat_meta(lay.m("a")).nlink(), 2);
    fs::rename(lay.m("a"), lay.m("a")).unwrap();
    assert_eq!(ls(&lay.mnt), strs(&["a", "b"]));
}

#[test]
fn lower_hard_links_share_an_inode_in_the_view() {
    let lay = Layout::new(1);
    write(lay.l(0, "one"), "shared");
    fs::hard_link(lay.l(0, "one"), lay.l(0, "two")).unwrap();
    let m = lay.mount();
    let (a, b) = (lstat_meta(lay.m("one")), lstat_meta(lay.m("two")));
    assert_eq!(a.ino(), b.ino(), "lower hard links must show one st_ino");
    assert_eq!((a.nlink(), b.nlink()), (2, 2));
    m.umount();
}

#[test]
fn listxattr_size_probe_counts_only_visible_names() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/f"), "x");
    mkdirs(lay.u("d"));
    make_opaque(lay.u("d"));
    lsetxattr(lay.u("d"), "trusted.overlay.redirect", b"/somewhere").unwrap();
    lsetxattr(lay.u("d"), "user.a", b"1").unwrap();
    let _m = lay.mount();
    let c = cstr(lay.m("d"));
    let n = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    assert_eq!(
        n,
        "user.a\0".len() as isize,
        "size probe must not count hidden names"
    );
    let mut small = [0i8; 3];
    let r = unsafe { libc::llistxattr(c.as_ptr(), small.as_mut_ptr(), small.len()) };
    assert_eq!(r, -1, "listxattr into a too-small buffer");
    assert_eq!(last_err().raw_os_error(), Some(libc::ERANGE));
    assert_eq!(llistxattr(lay.m("d")).unwrap(), strs(&["user.a"]));
}

#[test]
fn writes_update_mtime_and_ctime() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "x");
    lutimens(lay.l(0, "f"), (1_000_000_000, 0), (1_000_000_000, 0)).unwrap();
    let _m = lay.mount();
    let before = lstat_meta(lay.m("f"));
    assert_eq!(before.mtime(), 1_000_000_000);
    fs::OpenOptions::new()
        .append(true)
        .open(lay.m("f"))
        .unwrap()
        .write_all(b"y")
        .unwrap();
    let after = lstat_meta(lay.m("f"));
    assert!(after.mtime() > 1_000_000_000, "write did not update mtime");
    assert!(after.ctime() >= before.ctime());
}

#[test]
fn creating_an_entry_updates_the_parent_mtime() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "d"));
    lutimens(lay.l(0, "d"), (1_000_000_000, 0), (1_000_000_000, 0)).unwrap();
    let _m = lay.mount();
    assert_eq!(lstat_meta(lay.m("d")).mtime(), 1_000_000_000);
    write(lay.m("d/new"), "n");
    assert!(
        lstat_meta(lay.m("d")).mtime() > 1_000_000_000,
        "parent mtime not updated by create"
    );
}

#[test]
fn mountinfo_shows_default_permissions_and_noatime() {
    let lay = Layout::new(1);
    let _m = lay.mount_with("noatime");
    let e = mount_entry(&lay.mnt).unwrap();
    assert!(
        e.super_opts.split(',').any(|o| o == "default_permissions"),
        "super options {:?} lack default_permissions",
        e.super_opts
    );
    assert!(
        e.opts.split(',').any(|o| o == "noatime"),
        "mount options {:?} lack noatime",
        e.opts
    );
}

#[test]
fn strata_umount_of_something_not_mounted_fails() {
    let d = TestDir::new();
    let p = d.dir("plain");
    let out = run(strata().arg("umount").arg(&p));
    assert!(!out.ok(), "strata umount of a plain directory succeeded");
    assert!(
        out.stderr.contains(p.to_str().unwrap()),
        "stderr: {:?}",
        out.stderr
    );
}

#[test]
fn bogus_directory_offsets_do_not_hurt_the_daemon() {
    let lay = Layout::new(1);
    for i in 0..300 {
        write(lay.l(0, format!("f{i:03}")), "");
    }
    let _m = lay.mount();
    for off in [1i64, 7, 12345, 1 << 40, i64::MAX - 1, 299, 302, 100_000] {
        let f = fs::File::open(&lay.mnt).unwrap();
        let fd = f.as_raw_fd();
        let r = unsafe { libc::lseek(fd, off, libc::SEEK_SET) };
        if r >= 0 {
            let mut buf = vec![0u8; 4096];
            let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
            assert!(
                n >= 0 || last_err().raw_os_error() == Some(libc::EINVAL),
                "getdents64 after lseek({off}): {}",
                last_err()
            );
        }
    }
    // still serving, with a correct listing
    assert_eq!(ls(&lay.mnt).len(), 300);
}

#[test]
fn longest_symlink_target() {
    let lay = Layout::new(1);
    let _m = lay.mount();
    let t = "t".repeat(4095);
    std::os::unix::fs::symlink(&t, lay.m("long")).expect("symlink with a 4095-byte target");
    assert_eq!(
        fs::read_link(lay.m("long")).unwrap().as_os_str().len(),
        4095
    );
    assert_eq!(lstat_meta(lay.m("long")).len(), 4095);
    let too = "t".repeat(4096);
    assert_errno(
        std::os::unix::fs::symlink(&too, lay.m("too-long")),
        libc::ENAMETOOLONG,
        "symlink with a 4096-byte target",
    );
}

#[test]
fn oversized_xattrs_fail_like_the_kernel() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "x");
    let story = |root: &std::path::Path| {
        let mut r = Vec::new();
        for size in [100usize, 3000, 5000, 65536, 65537] {
            let v = vec![b'v'; size];
            r.push((
                size,
                res(lsetxattr(root.join("f"), &format!("user.s{size}"), &v)),
            ));
        }
        let long_name = format!("user.{}", "n".repeat(251));
        r.push((0, res(lsetxattr(root.join("f"), &long_name, b"1"))));
        r
    };
    let k = lay.kernel_mount();
    let kernel = story(&k.mnt);
    k.umount();
    fs::remove_dir_all(&lay.upper).unwrap();
    mkdirs(&lay.upper);
    let _m = lay.mount();
    let strata = story(&lay.mnt);
    assert_eq!(strata, kernel, "(value size, result): strata vs kernel");
}

fn res<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => errname(e.raw_os_error().unwrap_or(-1)),
    }
}

#[test]
fn layers_given_through_symlinks_work() {
    let d = TestDir::new();
    let real = d.dir("real-lower");
    write(real.join("f"), "through a symlink");
    std::os::unix::fs::symlink(&real, d.join("lower-link")).unwrap();
    let u = d.dir("upper");
    let w = d.dir("work");
    let mnt = d.dir("mnt");
    let m = Mount::new(
        &format!(
            "lowerdir={},upperdir={},workdir={}",
            d.join("lower-link").display(),
            u.display(),
            w.display()
        ),
        &mnt,
    );
    assert_eq!(read_string(mnt.join("f")), "through a symlink");
    m.umount();
}
