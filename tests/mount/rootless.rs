//! A mount made by a non-root user (nobody), through fusermount3.

use crate::support::*;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::process::Command;

fn e<T>(r: std::io::Result<T>) -> Result<T, i32> {
    r.map_err(|e| e.raw_os_error().unwrap_or(-1))
}

fn nobody() -> Creds {
    Creds::user(NOBODY, NOGROUP)
}

fn as_nobody(cmd: &mut Command) -> &mut Command {
    cmd.uid(NOBODY).gid(NOGROUP).env("HOME", "/")
}

/// Layers owned by nobody, mounted by nobody.
fn rootless_mount(lay: &Layout) -> Mount {
    chown_tree(lay.dir.path(), NOBODY, NOGROUP);
    lchown(lay.dir.path(), 0, 0).unwrap();
    // one file only root may read, one it may only read
    write(lay.l(0, "secret"), "root only");
    chmod(lay.l(0, "secret"), 0o600).unwrap();
    write(lay.l(0, "rootro"), "read only for nobody");
    chmod(lay.l(0, "rootro"), 0o644).unwrap();
    let out = run(as_nobody(&mut strata())
        .arg("mount")
        .arg("-o")
        .arg(lay.opts())
        .arg(&lay.mnt));
    Mount::adopt(out, &lay.mnt, "strata mount (as nobody)")
}

fn populate(lay: &Layout) {
    write(lay.l(0, "f"), "lower");
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/x"), "x");
}

#[test]
fn nobody_mounts_creates_reads_deletes_and_unmounts() {
    let lay = Layout::new(1);
    populate(&lay);
    let m = rootless_mount(&lay);
    let mine = as_user(&nobody(), || {
        assert_eq!(read_string(lay.m("f")), "lower");
        write(lay.m("new"), "created by nobody");
        assert_eq!(read_string(lay.m("new")), "created by nobody");
        fs::write(lay.m("f"), "rewritten").unwrap();
        assert_eq!(read_string(lay.m("f")), "rewritten");
        fs::remove_file(lay.m("f")).unwrap();
        assert_errno(fs::metadata(lay.m("f")), libc::ENOENT, "f after unlink");
        fs::remove_file(lay.m("d/x")).unwrap();
        fs::remove_dir(lay.m("d")).unwrap();
        fs::create_dir(lay.m("d")).unwrap();
        assert_eq!(ls(lay.m("d")), Vec::<String>::new());
        write(lay.m("gone"), "x");
        fs::remove_file(lay.m("gone")).unwrap();
        let st = lstat_meta(lay.m("new"));
        (st.uid(), st.gid(), ls(&lay.mnt))
    });
    assert_eq!((mine.0, mine.1), (NOBODY, NOGROUP));
    assert_eq!(mine.2, strs(&["d", "new", "rootro", "secret"]));
    // unmount as the user
    let out = run_retry_busy(|| {
        let mut c = strata();
        as_nobody(&mut c).arg("umount").arg(&lay.mnt);
        c
    });
    assert!(out.ok(), "strata umount as nobody: {}", out.stderr);
    assert!(!is_mounted(&lay.mnt));
    let mnt = lay.mnt.clone();
    assert!(
        wait_until(|| procs_with_arg(&mnt).is_empty()),
        "daemon left running"
    );
    m.forget();
    // on-disk format of a rootless mount
    assert_eq!(read_string(lay.u("new")), "created by nobody");
    assert_eq!(lstat_meta(lay.u("new")).uid(), NOBODY);
    let st = lstat_meta(lay.u("f"));
    assert!(
        st.file_type().is_char_device() && st.rdev() == 0,
        "upper f is not a char 0/0 whiteout"
    );
    assert_eq!(
        lgetxattr(lay.u("d"), "user.overlay.opaque").ok(),
        Some(b"y".to_vec()),
        "a rootless mount marks opaque dirs with user.overlay.opaque=y"
    );
    assert_eq!(read_string(lay.l(0, "f")), "lower");
}

#[test]
fn nobody_unmounts_with_fusermount3() {
    let lay = Layout::new(1);
    populate(&lay);
    let m = rootless_mount(&lay);
    as_user(&nobody(), || write(lay.m("y"), "y"));
    let out = run_retry_busy(|| {
        let mut c = Command::new("fusermount3");
        as_nobody(&mut c).arg("-u").arg(&lay.mnt);
        c
    });
    assert!(out.ok(), "fusermount3 -u as nobody: {}", out.stderr);
    assert!(!is_mounted(&lay.mnt));
    let mnt = lay.mnt.clone();
    assert!(
        wait_until(|| procs_with_arg(&mnt).is_empty()),
        "daemon left running"
    );
    m.forget();
    assert_eq!(read_string(lay.u("y")), "y");
}

#[test]
fn rootless_daemon_grants_nothing_beyond_its_user() {
    let lay = Layout::new(1);
    populate(&lay);
    let _m = rootless_mount(&lay);
    let r = as_user(&nobody(), || {
        write(lay.m("mine"), "m");
        (
            e(fs::read(lay.m("secret"))),
            e(fs::OpenOptions::new()
                .write(true)
                .open(lay.m("rootro"))
                .map(|_| ())),
            e(lchown(lay.m("mine"), 0, 0)),
            e(chmod(lay.m("rootro"), 0o666)),
            e(mknod(
                lay.m("dev"),
                libc::S_IFCHR | 0o666,
                libc::makedev(1, 3),
            )),
            e(fs::read(lay.m("rootro"))),
        )
    });
    assert_eq!(r.0, Err(libc::EACCES), "reading root's 0600 file");
    assert_eq!(r.1, Err(libc::EACCES), "writing root's 0644 file");
    assert_eq!(r.2, Err(libc::EPERM), "giving a file to root");
    assert_eq!(r.3, Err(libc::EPERM), "chmod of root's file");
    assert_eq!(r.4, Err(libc::EPERM), "creating a device node");
    assert_eq!(r.5, Ok(b"read only for nobody".to_vec()));
    assert!(
        !exists(lay.u("rootro")) && !exists(lay.u("secret")),
        "denied ops copied up"
    );
}

#[test]
fn nobody_cannot_mount_a_lower_it_cannot_read() {
    // The kernel resolves the layers with the mounter's credentials and refuses;
    // strata should refuse up front too, with the usual one-line error.
    let lay = Layout::new(1);
    chown_tree(lay.dir.path(), NOBODY, NOGROUP);
    lchown(lay.dir.path(), 0, 0).unwrap();
    let secret = lay.dir.dir("root-only");
    chmod(&secret, 0o700).unwrap();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        secret.display(),
        lay.upper.display(),
        lay.work.display()
    );
    let out = run(as_nobody(&mut strata())
        .arg("mount")
        .arg("-o")
        .arg(&opts)
        .arg(&lay.mnt));
    let _g = Mount::guard(&lay.mnt);
    assert!(
        !out.ok() && !is_mounted(&lay.mnt),
        "mounted a lower nobody cannot read"
    );
    assert_eq!(
        out.stderr.trim_end().lines().count(),
        1,
        "stderr: {:?}",
        out.stderr
    );
    assert!(
        out.stderr.contains(secret.to_str().unwrap()),
        "stderr: {:?}",
        out.stderr
    );
}

#[test]
fn nobody_cannot_mount_on_roots_directory() {
    let lay = Layout::new(1);
    chown_tree(lay.dir.path(), NOBODY, NOGROUP);
    lchown(lay.dir.path(), 0, 0).unwrap();
    let rootmnt = lay.dir.dir("root-mnt");
    let out = run(as_nobody(&mut strata())
        .arg("mount")
        .arg("-o")
        .arg(lay.opts())
        .arg(&rootmnt));
    let _g2 = Mount::guard(&rootmnt);
    assert!(
        !out.ok() && !is_mounted(&rootmnt),
        "mounted on root's directory as nobody"
    );
    assert_eq!(
        out.stderr.trim_end().lines().count(),
        1,
        "stderr: {:?}",
        out.stderr
    );
    assert!(
        out.stderr.contains(rootmnt.to_str().unwrap()),
        "stderr: {:?}",
        out.stderr
    );
}

/// nobody's mount (through fusermount3, which knows no strictatime or
/// nodiratime) still keeps the mount's atime rule: reads of upper objects
/// update atime by it, lower objects are never touched.
#[test]
fn nobody_mount_keeps_the_atime_rule() {
    let day = 24 * 60 * 60;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // (option, atime of the objects before the read, whether the upper file's
    // and the upper directory's atime change)
    let cases = [
        ("relatime", now - 2 * day, (true, true)),
        ("relatime", now + 30, (false, false)),
        ("noatime", now - 2 * day, (false, false)),
        ("strictatime", now + 30, (true, true)),
        ("strictatime,nodiratime", now + 30, (true, false)),
    ];
    for (opts, atime, (file_updated, dir_updated)) in cases {
        let lay = Layout::new(1);
        write(lay.l(0, "lf"), "lower");
        write(lay.u("uf"), "upper");
        mkdirs(lay.u("ud/x"));
        chown_tree(lay.dir.path(), NOBODY, NOGROUP);
        lchown(lay.dir.path(), 0, 0).unwrap();
        for p in [lay.l(0, "lf"), lay.u("uf"), lay.u("ud")] {
            utimensat(&p, (atime, 0), (now - 3 * day, 0), 0).unwrap();
        }
        let atime_of = |p: &std::path::Path| lstat(p).unwrap().st_atime;
        let out = run(as_nobody(&mut strata())
            .arg("mount")
            .arg("-o")
            .arg(format!("{},{opts}", lay.opts()))
            .arg(&lay.mnt));
        let m = Mount::adopt(out, &lay.mnt, "strata mount (as nobody)");
        as_user(&nobody(), || {
            read(lay.m("lf"));
            read(lay.m("uf"));
            ls(lay.m("ud"));
        });
        let what = format!("-o {opts}, atime {atime}");
        assert_eq!(atime_of(&lay.l(0, "lf")), atime, "{what}: lower file touched");
        assert_eq!(atime_of(&lay.u("uf")) != atime, file_updated, "{what}: upper file");
        assert_eq!(atime_of(&lay.u("ud")) != atime, dir_updated, "{what}: upper directory");
        m.umount();
    }
}
