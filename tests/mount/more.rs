//! More behaviour checked against kernel overlayfs: file capabilities, paths longer
//! than PATH_MAX, many lower layers, mounting over a lower layer, the rootless
//! format read by the kernel with userxattr, aliases of one directory.

use crate::lookup::strata_vs_kernel;
use crate::support::*;
use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// security.capability v2 granting cap_net_bind_service (bit 10), permitted.
fn cap_value() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0000u32.to_le_bytes()); // VFS_CAP_REVISION_2, no effective
    v.extend_from_slice(&(1u32 << 10).to_le_bytes()); // permitted lo
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable lo
    v.extend_from_slice(&0u32.to_le_bytes()); // permitted hi
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable hi
    v
}

/// (capability kept by a chmod copy-up, capability kept after a write)
fn capability_story(root: &Path) -> (bool, bool) {
    chmod(root.join("bin"), 0o750).unwrap();
    let kept = lgetxattr(root.join("bin"), "security.capability").is_ok();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(root.join("bin2"))
        .unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"#", 0).unwrap();
    drop(f);
    let after_write = lgetxattr(root.join("bin2"), "security.capability").is_ok();
    (kept, after_write)
}

#[test]
fn file_capabilities_follow_the_kernel() {
    let lay = Layout::new(1);
    for n in ["bin", "bin2"] {
        write(lay.l(0, n), "#!/bin/sh\n");
        chmod(lay.l(0, n), 0o755).unwrap();
        lsetxattr(lay.l(0, n), "security.capability", &cap_value()).unwrap();
    }
    let k = lay.kernel_mount();
    let kernel = capability_story(&k.mnt);
    k.umount();
    fs::remove_dir_all(&lay.upper).unwrap();
    mkdirs(&lay.upper);
    let m = lay.mount();
    let strata = capability_story(&lay.mnt);
    m.umount();
    assert_eq!(kernel, (true, false), "kernel overlayfs behaviour changed?");
    assert_eq!(
        strata, kernel,
        "(capability kept by copy-up, kept after a write): strata vs kernel"
    );
}

// ---- paths longer than PATH_MAX, walked with openat ----

fn openat_dir(dirfd: i32, name: &str) -> std::io::Result<OwnedFd> {
    let c = CString::new(name).unwrap();
    let fd = unsafe {
        libc::openat(
            dirfd,
            c.as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        Err(last_err())
    } else {
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

fn deep_name(i: usize) -> String {
    format!("{i:03}-{}", "d".repeat(120))
}

const DEPTH: usize = 40; // 40 * 125 bytes > PATH_MAX

/// Walks DEPTH levels down from `root` and returns the fd of the deepest directory.
fn walk_down(root: &Path, create: bool) -> std::io::Result<OwnedFd> {
    let r = fs::File::open(root)?;
    let mut fd: OwnedFd = r.into();
    for i in 0..DEPTH {
        let name = deep_name(i);
        if create {
            let c = CString::new(name.clone()).unwrap();
            cvt(unsafe { libc::mkdirat(fd.as_raw_fd(), c.as_ptr(), 0o755) })?;
        }
        fd = openat_dir(fd.as_raw_fd(), &name).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("level {i} (path length {}): {e}", (i + 1) * 125),
            )
        })?;
    }
    Ok(fd)
}

fn deep_story(root: &Path) -> Result<(), String> {
    let fd = walk_down(root, false).map_err(|e| format!("walk: {e}"))?;
    let d = fd.as_raw_fd();
    let f = CString::new("file").unwrap();
    // copy-up of the deep lower file
    let wfd = unsafe {
        libc::openat(
            d,
            f.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC,
        )
    };
    if wfd < 0 {
        return Err(format!("open deep file for writing: {}", last_err()));
    }
    let n = unsafe { libc::write(wfd, b"+".as_ptr() as *const libc::c_void, 1) };
    unsafe { libc::close(wfd) };
    if n != 1 {
        return Err(format!("write: {}", last_err()));
    }
    // create, whiteout
    let nf = CString::new("new").unwrap();
    let cfd = unsafe {
        libc::openat(
            d,
            nf.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o644,
        )
    };
    if cfd < 0 {
        return Err(format!("create deep file: {}", last_err()));
    }
    unsafe { libc::close(cfd) };
    let g = CString::new("gone").unwrap();
    if unsafe { libc::unlinkat(d, g.as_ptr(), 0) } < 0 {
        return Err(format!("unlink deep lower file: {}", last_err()));
    }
    Ok(())
}

#[test]
fn paths_longer_than_path_max() {
    let lay = Layout::new(1);
    let fd = walk_down(&lay.lowers[0], true).unwrap();
    for (n, data) in [("file", "deep"), ("gone", "x")] {
        let c = CString::new(n).unwrap();
        let f = unsafe {
            libc::openat(
                fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644,
            )
        };
        assert!(f >= 0);
        unsafe {
            libc::write(f, data.as_ptr() as *const libc::c_void, data.len());
            libc::close(f);
        }
    }
    drop(fd);
    let k = lay.kernel_mount();
    assert_eq!(deep_story(&k.mnt), Ok(()), "kernel overlayfs");
    k.umount();
    let deepest = |root: &Path| {
        let fd = walk_down(root, false).expect("walk down the upper");
        let t = snapshot(format!("/proc/self/fd/{}/", fd.as_raw_fd()));
        t.into_iter()
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k, v.kind, v.content))
            .collect::<Vec<_>>()
    };
    let kernel_upper = deepest(&lay.upper);
    fs::remove_dir_all(&lay.upper).unwrap();
    mkdirs(&lay.upper);
    let m = lay.mount();
    assert_eq!(
        deep_story(&lay.mnt),
        Ok(()),
        "strata, paths longer than PATH_MAX"
    );
    m.umount();
    let strata_upper = deepest(&lay.upper);
    assert_eq!(
        strata_upper, kernel_upper,
        "deepest upper directory after the same operations"
    );
    assert_eq!(
        kernel_upper.len(),
        3,
        "file, gone (whiteout), new: {kernel_upper:?}"
    );
}

#[test]
fn many_lower_layers() {
    let lay = Layout::new(64);
    for i in 0..64 {
        mkdirs(lay.l(i, "shared"));
        write(lay.l(i, format!("shared/only{i:02}")), format!("{i}"));
        write(lay.l(i, "shared/top"), format!("layer {i}"));
    }
    make_whiteout(lay.l(10, "shared/only20"));
    let t = strata_vs_kernel(&lay, false);
    assert_eq!(t["shared/top"].content.as_deref(), Some("\"layer 0\""));
    assert!(t.contains_key("shared/only63"));
    assert!(!t.contains_key("shared/only20"));
    let t = strata_vs_kernel(&lay, true);
    assert!(t.contains_key("shared/only63"));
}

#[test]
fn mounting_over_a_lower_layer() {
    // Kernel overlayfs allows lowerdir=X mounted on X; the daemon must have opened its
    // layers before the mount hides them. Accessed through child processes, so that a
    // deadlocked daemon fails the test instead of hanging it.
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "original");
    let target = lay.lowers[0].clone();
    let out = strata_mount(&lay.opts(), &target);
    let m = Mount::adopt(out, &target, "strata mount on its own lower layer");
    let out = run(Command::new("cat").arg(target.join("f")));
    assert_eq!(
        out.stdout, "original",
        "reading the hidden lower: {}",
        out.stderr
    );
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "echo new > '{}/g' && ls '{}'",
        target.display(),
        target.display()
    )));
    assert!(out.ok(), "writing: {}", out.stderr);
    assert_eq!(out.stdout, "f\ng\n");
    m.umount();
    assert_eq!(read_string(lay.u("g")), "new\n");
    assert!(!exists(lay.l(0, "g")));
}

#[test]
fn rootless_upper_reads_the_same_in_kernel_overlayfs_with_userxattr() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "lower");
    write(lay.l(0, "gone"), "x");
    mkdirs(lay.l(0, "d/sub"));
    write(lay.l(0, "d/sub/x"), "x");
    write(lay.l(0, "d/keep"), "k");
    chown_tree(lay.dir.path(), NOBODY, NOGROUP);
    lchown(lay.dir.path(), 0, 0).unwrap();
    let out = run(strata()
        .uid(NOBODY)
        .gid(NOGROUP)
        .arg("mount")
        .arg("-o")
        .arg(lay.opts())
        .arg(&lay.mnt));
    let m = Mount::adopt(out, &lay.mnt, "strata mount as nobody");
    let s = as_user(&Creds::user(NOBODY, NOGROUP), || {
        write(lay.m("f"), "rewritten");
        fs::remove_file(lay.m("gone")).unwrap();
        fs::remove_dir_all(lay.m("d/sub")).unwrap();
        fs::create_dir(lay.m("d/sub")).unwrap();
        write(lay.m("d/sub/new"), "n");
        write(lay.m("top"), "t");
        chmod(lay.m("d/keep"), 0o600).unwrap();
        snapshot(&lay.mnt)
    });
    m.umount();
    let n = lay.dir.dir("kmnt-ux");
    let kw = lay.dir.dir("kwork-ux");
    let k = KernelOverlay::new(
        &format!(
            "{},upperdir={},workdir={},userxattr",
            lay.lowerdir_opt(),
            lay.upper.display(),
            kw.display()
        ),
        &n,
    );
    let kt = snapshot(&k.mnt);
    k.umount();
    assert_same_tree("strata (rootless)", &s, "kernel overlayfs (userxattr)", &kt);
}

#[test]
fn the_same_directory_spelled_differently_is_still_the_same() {
    let d = TestDir::new();
    let l = d.dir("lower");
    let u = d.dir("upper");
    let w = d.dir("work");
    let mnt = d.dir("mnt");
    std::os::unix::fs::symlink(&l, d.join("alias")).unwrap();
    for lowers in [
        format!("{}:{}/.", l.display(), l.display()),
        format!("{}:{}", l.display(), d.join("alias").display()),
        format!("{}/:{}//", l.display(), l.display()),
    ] {
        let out = strata_mount(&format!("lowerdir={lowers}"), &mnt);
        let _g = Mount::guard(&mnt);
        let mounted = is_mounted(&mnt);
        assert!(!out.ok() && !mounted, "lowerdir={lowers} accepted");
        assert_eq!(
            out.stderr.trim_end().lines().count(),
            1,
            "stderr: {:?}",
            out.stderr
        );
    }
    // upper given as an alias of the lower
    let out = strata_mount(
        &format!(
            "lowerdir={},upperdir={},workdir={}",
            l.display(),
            d.join("alias").display(),
            w.display()
        ),
        &mnt,
    );
    let _g = Mount::guard(&mnt);
    assert!(
        !out.ok() && !is_mounted(&mnt),
        "upper = alias of lower accepted"
    );
    let _ = u;
}

#[test]
fn workdir_inside_upper_is_rejected() {
    // The kernel refuses it; a workdir inside the upper would show in the merged view.
    let d = TestDir::new();
    let l = d.dir("lower");
    let u = d.dir("upper");
    let w = d.dir("upper/work");
    let mnt = d.dir("mnt");
    let before = snapshot(d.path());
    let out = strata_mount(
        &format!(
            "lowerdir={},upperdir={},workdir={}",
            l.display(),
            u.display(),
            w.display()
        ),
        &mnt,
    );
    let _g = Mount::guard(&mnt);
    assert!(
        !out.ok() && !is_mounted(&mnt),
        "workdir inside upper accepted"
    );
    assert_eq!(
        out.stderr.trim_end().lines().count(),
        1,
        "stderr: {:?}",
        out.stderr
    );
    assert!(
        out.stderr.contains(w.to_str().unwrap()),
        "stderr: {:?}",
        out.stderr
    );
    assert_same_tree("before", &before, "after", &snapshot(d.path()));
}

#[test]
fn aufs_branch_suffixes() {
    let d = TestDir::new();
    let a = d.dir("rw");
    let b = d.dir("ro1");
    let c = d.dir("ro2");
    let mnt = d.dir("mnt");
    write(b.join("x"), "from ro1");
    write(c.join("x"), "from ro2");
    write(c.join("y"), "y");
    let m = Mount::new(
        &format!(
            "dirs={}=rw:{}=ro:{}=ro",
            a.display(),
            b.display(),
            c.display()
        ),
        &mnt,
    );
    assert_eq!(read_string(mnt.join("x")), "from ro1");
    write(mnt.join("z"), "z");
    m.umount();
    assert_eq!(read_string(a.join("z")), "z");
    assert!(lstat_meta(d.join(".rw.strata-work")).is_dir());
    let _ = lstat_meta(&a).ino();
}

#[test]
fn aufs_branch_marked_ro_is_never_written_and_two_rw_are_refused() {
    let d = TestDir::new();
    let ro = d.dir("ro1");
    let rw = d.dir("rw");
    let mnt = d.dir("mnt");
    write(ro.join("x"), "from ro1");
    let before = ls(&ro);
    let m = Mount::new(
        &format!("dirs={}=ro:{}=rw", ro.display(), rw.display()),
        &mnt,
    );
    fs::OpenOptions::new()
        .append(true)
        .open(mnt.join("x"))
        .unwrap();
    write(mnt.join("new"), "new");
    fs::remove_file(mnt.join("x")).unwrap();
    m.umount();
    assert_eq!(ls(&ro), before, "the branch marked ro was written");
    assert_eq!(read_string(ro.join("x")), "from ro1");
    assert_eq!(read_string(rw.join("new")), "new");
    assert!(
        is_whiteout(rw.join("x")),
        "the removal is a whiteout in the rw branch"
    );
    assert!(lstat_meta(d.join(".rw.strata-work")).is_dir());
    // Every branch marked read-only: a read-only merge.
    let m = Mount::new(&format!("br:{}=ro:{}=rr", ro.display(), rw.display()), &mnt);
    assert_errno(
        fs::write(mnt.join("y"), "y"),
        libc::EROFS,
        "write to an all-ro union",
    );
    m.umount();
    // Two writable branches cannot be honoured: refused, nothing mounted.
    let out = strata_mount(
        &format!("dirs={}=rw:{}=rw", ro.display(), rw.display()),
        &mnt,
    );
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("more than one branch"),
        "{}",
        out.stderr
    );
    assert!(!is_mounted(&mnt));
}

#[test]
fn mount_point_inside_a_lower_layer() {
    // lowerdir=/ with a mount point somewhere below / is the everyday case of this.
    // The kernel shows the lower's own directory at the mount point's name (it never
    // crosses into mounts inside a layer); the daemon must not walk into its own
    // mount. All access goes through child processes, so that a deadlock fails the
    // test instead of hanging it (the guard then aborts the connection).
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "mnt"));
    write(lay.l(0, "mnt/orig"), "under the mount point");
    write(lay.l(0, "top"), "top");
    let target = lay.l(0, "mnt");
    let k = KernelOverlay::new(
        &format!(
            "{},upperdir={},workdir={}",
            lay.lowerdir_opt(),
            lay.upper.display(),
            lay.dir.dir("kwork").display()
        ),
        &target,
    );
    let kernel = run(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && ls && ls mnt && cat mnt/orig",
        target.display()
    )));
    k.umount();
    assert!(kernel.ok(), "kernel: {}", kernel.stderr);
    let out = strata_mount(&lay.opts(), &target);
    let m = Mount::adopt(out, &target, "strata mount inside its own lower");
    let got = run(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && ls && ls mnt && cat mnt/orig",
        target.display()
    )));
    assert_eq!(
        (got.ok(), got.stdout.as_str()),
        (true, kernel.stdout.as_str()),
        "strata vs kernel; stderr {}",
        got.stderr
    );
    let w = run(Command::new("sh").arg("-c").arg(format!(
        "echo new > '{}/created' && ls '{}'",
        target.display(),
        target.display()
    )));
    assert!(w.ok(), "write: {}", w.stderr);
    m.umount();
    assert_eq!(read_string(lay.u("created")), "new\n");
}
