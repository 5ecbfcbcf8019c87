//! Mounting, merging, options, read-only mounts, the aufs form.

use crate::support::*;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn mount_is_live_when_strata_exits_and_merges_layers() {
    let lay = Layout::new(2);
    write(lay.l(0, "top"), "top\n");
    write(lay.l(1, "bottom"), "bottom\n");
    write(lay.u("up"), "up\n");
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/a"), "a");
    mkdirs(lay.l(1, "d"));
    write(lay.l(1, "d/b"), "b");
    mkdirs(lay.u("d"));
    write(lay.u("d/c"), "c");

    let m = lay.mount(); // asserts it is mounted the moment strata exits 0
    assert_eq!(ls(&lay.mnt), strs(&["bottom", "d", "top", "up"]));
    assert_eq!(ls(lay.m("d")), strs(&["a", "b", "c"]));
    assert_eq!(read_string(lay.m("top")), "top\n");
    assert_eq!(read_string(lay.m("bottom")), "bottom\n");
    assert_eq!(read_string(lay.m("up")), "up\n");
    assert_eq!(read_string(lay.m("d/b")), "b");
    m.umount(); // asserts gone, daemon processes gone
    assert_eq!(ls(&lay.mnt), Vec::<String>::new());
}

#[test]
fn leftmost_lower_is_the_top() {
    let lay = Layout::new(3);
    write(lay.l(0, "same"), "from lower0");
    write(lay.l(1, "same"), "from lower1");
    write(lay.l(2, "same"), "from lower2");
    write(lay.l(1, "mid"), "from lower1");
    write(lay.l(2, "mid"), "from lower2");
    let _m = lay.mount_ro();
    assert_eq!(read_string(lay.m("same")), "from lower0");
    assert_eq!(read_string(lay.m("mid")), "from lower1");
    assert_eq!(ls(&lay.mnt), strs(&["mid", "same"]));
}

#[test]
fn upper_wins_over_lowers() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "lower");
    write(lay.u("f"), "upper");
    let _m = lay.mount();
    assert_eq!(read_string(lay.m("f")), "upper");
}

#[test]
fn writes_land_in_upper_and_lower_is_untouched() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "dir"));
    write(lay.l(0, "dir/old"), "old");
    let before = snapshot(&lay.lowers[0]);
    let m = lay.mount();
    write(lay.m("new"), "new data");
    fs::create_dir(lay.m("newdir")).unwrap();
    write(lay.m("dir/old"), "rewritten");
    write(lay.m("dir/added"), "added");
    assert_eq!(read_string(lay.m("dir/old")), "rewritten");
    m.umount();
    assert_eq!(read_string(lay.u("new")), "new data");
    assert!(lstat_meta(lay.u("newdir")).is_dir());
    assert_eq!(read_string(lay.u("dir/old")), "rewritten");
    assert_eq!(read_string(lay.u("dir/added")), "added");
    assert_same_tree(
        "lower before",
        &before,
        "lower after",
        &snapshot(&lay.lowers[0]),
    );
}

/// Every write through a mount without upper fails with EROFS; nothing changes.
fn assert_all_writes_erofs(lay: &Layout) {
    let e = libc::EROFS;
    assert_errno(fs::write(lay.m("newfile"), "x"), e, "create");
    assert_errno(
        fs::OpenOptions::new().write(true).open(lay.m("file")),
        e,
        "open O_WRONLY",
    );
    assert_errno(
        fs::OpenOptions::new().append(true).open(lay.m("file")),
        e,
        "open O_APPEND",
    );
    assert_errno(fs::remove_file(lay.m("file")), e, "unlink");
    assert_errno(fs::create_dir(lay.m("newdir")), e, "mkdir");
    assert_errno(fs::remove_dir(lay.m("dir")), e, "rmdir");
    assert_errno(chmod(lay.m("file"), 0o600), e, "chmod");
    assert_errno(lchown(lay.m("file"), 1, 1), e, "chown");
    assert_errno(fs::rename(lay.m("file"), lay.m("file2")), e, "rename");
    assert_errno(std::os::unix::fs::symlink("x", lay.m("sym")), e, "symlink");
    assert_errno(fs::hard_link(lay.m("file"), lay.m("hl")), e, "link");
    assert_errno(lsetxattr(lay.m("file"), "user.x", b"1"), e, "setxattr");
    assert_errno(lutimens(lay.m("file"), (1, 0), (1, 0)), e, "utimens");
    assert_errno(mkfifo(lay.m("fifo"), 0o644), e, "mkfifo");
    let c = cstr(lay.m("file"));
    assert_errno(cvt(unsafe { libc::truncate(c.as_ptr(), 0) }), e, "truncate");
}

#[test]
fn readonly_merge_without_upper_returns_erofs() {
    let lay = Layout::new(2);
    write(lay.l(0, "file"), "content");
    mkdirs(lay.l(1, "dir"));
    lsetxattr(lay.l(0, "file"), "user.x", b"0").unwrap();
    let before = snapshot(lay.dir.path());
    {
        let _m = lay.mount_ro();
        assert_eq!(read_string(lay.m("file")), "content");
        assert_all_writes_erofs(&lay);
        // reading still works afterwards
        assert_eq!(ls(&lay.mnt), strs(&["dir", "file"]));
    }
    let after = snapshot(lay.dir.path());
    assert_same_tree("layers before", &before, "layers after", &after);
}

#[test]
fn ro_option_with_upper_returns_erofs() {
    let lay = Layout::new(1);
    write(lay.l(0, "file"), "content");
    mkdirs(lay.l(0, "dir"));
    let before = snapshot(&lay.upper);
    {
        let _m = lay.mount_with("ro");
        assert_eq!(read_string(lay.m("file")), "content");
        assert_all_writes_erofs(&lay);
    }
    assert_same_tree(
        "upper before",
        &before,
        "upper after",
        &snapshot(&lay.upper),
    );
}

#[test]
fn aufs_dirs_form_puts_workdir_beside_upper() {
    let d = TestDir::new();
    let a = d.dir("rw");
    let b = d.dir("ro");
    let mnt = d.dir("mnt");
    write(b.join("lowerfile"), "lower");
    write(a.join("upperfile"), "upper");
    let m = Mount::new(&format!("dirs={}:{}", a.display(), b.display()), &mnt);
    assert_eq!(ls(&mnt), strs(&["lowerfile", "upperfile"]));
    // a copy-up and a create go to A
    fs::OpenOptions::new()
        .append(true)
        .open(mnt.join("lowerfile"))
        .unwrap();
    write(mnt.join("created"), "c");
    m.umount();
    assert_eq!(read_string(a.join("created")), "c");
    assert_eq!(read_string(a.join("lowerfile")), "lower");
    assert_eq!(ls(&b), strs(&["lowerfile"]));
    let work = d.join(".rw.strata-work");
    assert!(
        lstat_meta(&work).is_dir(),
        "automatic workdir {} missing",
        work.display()
    );
    // never inside the upper
    assert_eq!(ls(&a), strs(&["created", "lowerfile", "upperfile"]));
}

#[test]
fn escaped_colon_in_lowerdir() {
    let d = TestDir::new();
    let l1 = d.dir("lo:wer");
    let l2 = d.dir("second");
    let mnt = d.dir("mnt");
    write(l1.join("a"), "a");
    write(l2.join("b"), "b");
    let opt = format!(
        "lowerdir={}:{}",
        l1.display().to_string().replace(':', "\\:"),
        l2.display()
    );
    let _m = Mount::new(&opt, &mnt);
    assert_eq!(ls(&mnt), strs(&["a", "b"]));
    assert_eq!(read_string(mnt.join("a")), "a");
}

#[test]
fn fusermount3_u_unmounts() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "x");
    let m = lay.mount();
    let out = run_retry_busy(|| {
        let mut c = Command::new("fusermount3");
        c.arg("-u").arg(&lay.mnt);
        c
    });
    assert!(out.ok(), "fusermount3 -u: {}", out.stderr);
    assert!(!is_mounted(&lay.mnt));
    let mnt = lay.mnt.clone();
    assert!(
        wait_until(|| procs_with_arg(&mnt).is_empty()),
        "daemon still running after fusermount3 -u: {:?}",
        procs_with_arg(&mnt)
    );
    m.forget();
}

#[test]
fn all_documented_options_are_accepted() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "x");
    let m = lay.mount_with(
        "allow_other,default_permissions,suid,dev,exec,noatime,timeout=1,redirect_dir=on,volatile",
    );
    assert_eq!(read_string(lay.m("f")), "x");
    write(lay.m("g"), "y");
    m.umount();
    assert_eq!(read_string(lay.u("g")), "y");

    let m = lay.mount_with("redirect_dir=off,timeout=0,nosuid,nodev,noexec");
    assert_eq!(read_string(lay.m("g")), "y");
    m.umount();
}

#[test]
fn nosuid_nodev_noexec_are_applied() {
    let lay = Layout::new(1);
    write(lay.l(0, "script"), "#!/bin/sh\nexit 0\n");
    chmod(lay.l(0, "script"), 0o755).unwrap();
    {
        let _m = lay.mount();
        let st = Command::new(lay.m("script")).status().unwrap();
        assert!(st.success(), "script should run on a default mount");
    }
    let _m = lay.mount_with("nosuid,nodev,noexec");
    let e = mount_entry(&lay.mnt).unwrap();
    for flag in ["nosuid", "nodev", "noexec"] {
        assert!(
            e.opts.split(',').any(|o| o == flag),
            "mount options {:?} lack {flag}",
            e.opts
        );
    }
    let r = Command::new(lay.m("script")).status();
    assert_errno(r, libc::EACCES, "exec on noexec mount");
}

#[test]
fn ro_option_shows_in_mountinfo() {
    let lay = Layout::new(1);
    let _m = lay.mount_with("ro");
    let e = mount_entry(&lay.mnt).unwrap();
    assert!(
        e.opts.split(',').any(|o| o == "ro"),
        "mount options {:?} lack ro",
        e.opts
    );
}

#[test]
fn strata_mount_does_not_keep_the_callers_stdout_open() {
    // `out=$(strata mount ...)` must return: the daemon may not hold the caller's pipes.
    let lay = Layout::new(1);
    let mut child = strata()
        .arg("mount")
        .arg("-o")
        .arg(lay.opts())
        .arg(&lay.mnt)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "strata mount did not exit");
        std::thread::sleep(Duration::from_millis(5));
    };
    let m = Mount::guard(&lay.mnt);
    assert!(status.success(), "strata mount failed: {status:?}");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        let mut c = Vec::new();
        let _ = stderr.read_to_end(&mut c);
        let _ = tx.send(());
    });
    let eof = rx.recv_timeout(PATIENCE).is_ok();
    drop(m); // unmounts; the reader thread then ends too
    assert!(
        eof,
        "the background daemon kept the caller's stdout/stderr pipe open"
    );
}

#[test]
fn mount_point_owner_and_mode_come_from_upper_root() {
    let lay = Layout::new(1);
    chmod(&lay.upper, 0o751).unwrap();
    lchown(&lay.upper, 1234, 2345).unwrap();
    let _m = lay.mount();
    let st = lstat_meta(&lay.mnt);
    assert_eq!(st.mode() & 0o7777, 0o751);
    assert_eq!((st.uid(), st.gid()), (1234, 2345));
    assert!(st.is_dir());
    let _ = fs::Permissions::from_mode(0o0);
}
