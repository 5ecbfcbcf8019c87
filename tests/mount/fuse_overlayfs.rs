//! fuse-overlayfs' own options, as containers-storage passes them to its
//! mount_program (`uidmapping=`, `gidmapping=`, `squash_to_*`,
//! `xattr_permissions=`, `noacl`, `static_nlink`, ...): each one compared with
//! what fuse-overlayfs 1.10 (/usr/bin/fuse-overlayfs) shows for the same
//! layers and options, each implementation on its own fresh copy of them.

use crate::support::*;
use std::path::Path;

/// The same layers twice: one copy for strata, one for fuse-overlayfs.
struct Twins {
    s: Layout,
    f: Layout,
}

fn twins(nlowers: usize, build: impl Fn(&Layout)) -> Twins {
    let s = Layout::new(nlowers);
    let f = Layout::new(nlowers);
    build(&s);
    build(&f);
    Twins { s, f }
}

impl Twins {
    /// strata and fuse-overlayfs on their copies, with the same extra options.
    fn mount(&self, extra: &str) -> (Mount, FuseOverlayfs) {
        let s = self.s.mount_with(extra);
        let f = FuseOverlayfs::new(&format!("{},{extra}", self.f.opts()), &self.f.mnt);
        (s, f)
    }

    /// `script` run in each mount point; the two outputs must be the same.
    #[track_caller]
    fn same(&self, what: &str, script: &str) -> String {
        let s = in_dir(&self.s.mnt, script);
        let f = in_dir(&self.f.mnt, script);
        assert_eq!(
            s, f,
            "{what}: strata (left) and fuse-overlayfs (right) differ"
        );
        s
    }

    /// `script` run in each upper layer; the two outputs must be the same.
    #[track_caller]
    fn same_upper(&self, what: &str, script: &str) -> String {
        let s = in_dir(&self.s.upper, script);
        let f = in_dir(&self.f.upper, script);
        assert_eq!(
            s, f,
            "{what} (upper): strata (left) and fuse-overlayfs (right) differ"
        );
        s
    }

    /// `script` run in each mount point; both must succeed.
    #[track_caller]
    fn both(&self, script: &str) {
        in_dir(&self.s.mnt, script);
        in_dir(&self.f.mnt, script);
    }
}

#[track_caller]
fn in_dir(dir: &Path, script: &str) -> String {
    let out = sh(&format!("cd '{}' && {script}", dir.display()));
    assert!(out.ok(), "in {}: {script}: {}", dir.display(), out.stderr);
    out.stdout
}

/// Owner and mode of everything, by lookups (find, stat) and by readdirplus (ls -ln).
const OWNERS: &str = "find . -mindepth 1 | LC_ALL=C sort | xargs stat -c '%n %u %g %a' \
     && ls -lnA . | awk 'NF > 3 {print $3, $4, $NF}'";

const MAP: &str = "uidmapping=:0:100000:65536,gidmapping=:0:100000:65536";

fn owned_layer(l: &Layout) {
    for (name, uid, gid) in [
        ("root", 0, 0),
        ("five", 5, 6),
        ("top", 65535, 65535),
        ("outside", 100000, 100000),
        ("big", 70000, 3),
    ] {
        write(l.l(0, name), name);
        lchown(l.l(0, name), uid, gid).unwrap();
    }
    mkdirs(l.l(0, "dir/sub"));
    lchown(l.l(0, "dir"), 1, 1).unwrap();
    write(l.l(0, "dir/e"), "e");
    lchown(l.l(0, "dir/e"), 2, 3).unwrap();
    mkdirs(l.l(0, "home"));
    lchown(l.l(0, "home"), 2, 2).unwrap();
    std::os::unix::fs::symlink("root", l.l(0, "link")).unwrap();
    lchown(l.l(0, "link"), 4, 4).unwrap();
}

#[test]
fn uidmapping_shifts_reads_as_fuse_overlayfs() {
    let t = twins(1, owned_layer);
    let (_s, _f) = t.mount(MAP);
    let out = t.same("owners", OWNERS);
    assert!(out.contains("./five 100005 100006 644"), "{out}");
    assert!(out.contains("./outside 65534 65534"), "{out}");
    assert!(out.contains("./top 165535 165535"), "{out}");
    assert!(out.contains("./link 100004 100004"), "{out}");
    t.same("root", "stat -c '%u %g' .");
}

#[test]
fn uidmapping_shifts_writes_back_as_fuse_overlayfs() {
    let t = twins(1, owned_layer);
    let (_s, _f) = t.mount(MAP);
    t.both(
        "touch new && mkdir newdir && ln -s x newlink && mkfifo fifo \
         && chown 100007:100008 five && chown 5 top && chown 65534:65534 root \
         && chgrp 100001 dir/e && chown -h 100009:100009 link \
         && setpriv --reuid=100002 --regid=100002 --clear-groups sh -c 'touch home/mine && mkdir home/d'",
    );
    let upper = t.same_upper(
        "owners",
        "find . -mindepth 1 ! -name '.wh.*' | LC_ALL=C sort | xargs stat -c '%n %u %g'",
    );
    // Created by host root, outside the map: written as the overflow id.
    assert!(upper.contains("./new 65534 65534"), "{upper}");
    assert!(upper.contains("./five 7 8"), "{upper}");
    assert!(upper.contains("./top 65534 65535"), "{upper}");
    assert!(upper.contains("./home/mine 2 2"), "{upper}");
    assert!(upper.contains("./link 9 9"), "{upper}");
    t.same("owners", OWNERS);
}

#[test]
fn uidmapping_shifts_acl_entries() {
    // fuse-overlayfs 1.10 hands ACL values over unshifted (its named users are
    // the layers' ids); strata shifts them as it shifts owners, so that the
    // kernel's checks and getfacl agree with stat. Not compared, then.
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "secret");
    set_mode(lay.l(0, "f"), 0o640);
    ok(&sh(&format!(
        "setfacl -m u:3:r,g:4:r {0} && mkdir {1} && setfacl -d -m u:3:rwx {1}",
        lay.l(0, "f").display(),
        lay.l(0, "d").display()
    )));
    let _m = lay.mount_with(MAP);
    let shown = ok(&sh(&format!(
        "getfacl -n {} {}",
        lay.m("f").display(),
        lay.m("d").display()
    )));
    assert!(shown.contains("\nuser:100003:r--\n"), "{shown}");
    assert!(shown.contains("\ngroup:100004:r--\n"), "{shown}");
    assert!(shown.contains("\ndefault:user:100003:rwx\n"), "{shown}");
    // The kernel checks the shifted ACL: the named user reads, others don't.
    let reads = |uid: u32| {
        sh(&format!(
            "setpriv --reuid={uid} --regid={uid} --clear-groups cat {}",
            lay.m("f").display()
        ))
        .ok()
    };
    assert!(reads(100003), "the ACL's named user, shifted, may read");
    assert!(!reads(3), "the layer's id is not the mount's");
    // Set through the mount: written back shifted.
    ok(&sh(&format!(
        "setfacl -m u:100009:rw,g:65534:r {}",
        lay.m("f").display()
    )));
    let upper = ok(&sh(&format!("getfacl -n {}", lay.u("f").display())));
    assert!(upper.contains("\nuser:9:rw-\n"), "{upper}");
    assert!(upper.contains("\nuser:3:r--\n"), "{upper}");
    assert!(upper.contains("\ngroup:65534:r--\n"), "{upper}");
    let shown = ok(&sh(&format!("getfacl -n {}", lay.m("f").display())));
    assert!(shown.contains("\nuser:100009:rw-\n"), "{shown}");
    // A file made in the directory inherits the default ACL, in the layers' ids.
    ok(&sh(&format!("touch {}", lay.m("d/new").display())));
    let upper = ok(&sh(&format!("getfacl -n {}", lay.u("d/new").display())));
    assert!(upper.contains("\nuser:3:rwx"), "{upper}");
}

#[test]
fn squash_options_as_fuse_overlayfs() {
    for opts in [
        "squash_to_root",
        "squash_to_uid=7,squash_to_gid=8",
        "squash_to_root,squash_to_uid=9",
        "squash_to_gid=9,squash_to_root",
        &format!("{MAP},squash_to_uid=1000"),
    ] {
        let t = twins(1, owned_layer);
        let (_s, _f) = t.mount(opts);
        t.same(opts, OWNERS);
        t.both("touch new && mkdir nd && chown 100003:100004 five");
        t.same(opts, OWNERS);
        t.same_upper(opts, "stat -c '%n %u %g' new nd five");
    }
}

#[test]
fn static_nlink_as_fuse_overlayfs() {
    let t = twins(2, |l| {
        mkdirs(l.l(0, "merged/a/b"));
        mkdirs(l.l(1, "merged/c"));
        mkdirs(l.l(1, "lower/x"));
        mkdirs(l.l(1, "lower/y"));
        write(l.l(1, "lower/f"), "f");
        std::fs::hard_link(l.l(1, "lower/f"), l.l(1, "lower/g")).unwrap();
    });
    let (_s, _f) = t.mount("static_nlink");
    t.both("mkdir -p new/one new/two");
    let out = t.same(
        "links",
        "find . | LC_ALL=C sort | xargs stat -c '%n %h' && ls -lnA lower | awk 'NF > 3 {print $2, $NF}'",
    );
    assert!(out.contains("./lower 1\n"), "{out}");
    assert!(out.contains("./new 1\n"), "{out}");
    assert!(out.contains("./lower/f 2\n"), "{out}");
}

#[test]
fn noacl_as_fuse_overlayfs() {
    let build = |l: &Layout| {
        write(l.l(0, "f"), "secret");
        set_mode(l.l(0, "f"), 0o600);
        ok(&sh(&format!(
            "setfacl -m u:1000:r {}",
            l.l(0, "f").display()
        )));
        write(l.l(0, "g"), "g");
    };
    let reads_f = |m: &Path| {
        sh(&format!(
            "setpriv --reuid=1000 --regid=1000 --clear-groups cat {}/f",
            m.display()
        ))
        .ok()
    };
    let t = twins(1, build);
    let (_s, _f) = t.mount("noacl");
    // The ACL is an xattr like any other: kept, read back, not enforced.
    assert!(!reads_f(&t.s.mnt) && !reads_f(&t.f.mnt));
    t.both("setfacl -m u:1001:rw g");
    t.same("acls", "getfacl -n f g");
    t.same_upper("acls", "getfacl -n g");
    // Without noacl the kernel enforces it.
    let lay = Layout::new(1);
    build(&lay);
    let _m = lay.mount();
    assert!(reads_f(&lay.mnt), "without noacl the named user reads");
}

#[test]
fn fuse_overlayfs_session_options() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "f");
    // As containers-storage writes them: quoted label, a trailing empty option.
    let m = lay.mount_with(
        "threaded=0,xino=auto,context=\"system_u:object_r:container_file_t:s0:c1,c2\",,volatile,",
    );
    assert_eq!(read_string(lay.m("f")), "f");
    m.umount();
    let _m = lay.mount_with("threaded=1,xino=off");
    assert_eq!(read_string(lay.m("f")), "f");
}

#[test]
fn fuse_overlayfs_options_strata_refuses() {
    let lay = Layout::new(1);
    for (opt, says) in [
        (
            "ino32_t",
            "ino32_t: a fuse-overlayfs option strata does not support",
        ),
        (
            "fast_ino=1",
            "fast_ino=1: a fuse-overlayfs option strata does not support",
        ),
        (
            "noxattrs=1",
            "noxattrs=1: a fuse-overlayfs option strata does not support",
        ),
        (
            "plugins=/x.so",
            "plugins=/x.so: a fuse-overlayfs option strata does not support",
        ),
        ("uidmapping=0:100000", "uidmapping=0:100000: expected"),
        (
            "xattr_permissions=3",
            "xattr_permissions=3: expected 0, 1 or 2",
        ),
    ] {
        let out = strata_mount(&format!("{},{opt}", lay.opts()), &lay.mnt);
        assert!(!out.ok() && !is_mounted(&lay.mnt), "{opt} was accepted");
        let line = out.stderr.trim();
        assert!(!line.contains('\n'), "{opt}: not one line: {line}");
        assert!(line.contains(says), "{opt}: {line}");
    }
}

/// Lowers as containers-storage leaves them with `force_mask`: lower0's root
/// marked with `user.containers.override_stat`, each object of it carrying
/// one; lower1 unmarked, so the override on its file must be ignored.
fn override_layers(l: &Layout) {
    let set = |p: std::path::PathBuf, v: &str| {
        lsetxattr(&p, "user.containers.override_stat", v.as_bytes()).unwrap();
    };
    set(l.lowers[0].clone(), "0:0:0755");
    write(l.l(0, "f"), "f");
    set(l.l(0, "f"), "5:6:0640");
    write(l.l(0, "g"), "g");
    set(l.l(0, "g"), "0:0:0644");
    write(l.l(0, "h"), "h");
    set(l.l(0, "h"), "0:0:0755");
    mkdirs(l.l(0, "d"));
    set(l.l(0, "d"), "7:8:0700:dir");
    write(l.l(1, "z"), "z");
    set(l.l(1, "z"), "9:9:0600");
}

/// Owner and mode of the objects the override tests make, through a mount.
const OVERRIDES: &str = "stat -c '%n %u %g %a' . f g h d z nd nf";

/// The same changes through either implementation (chown and chmod on
/// separate files: fuse-overlayfs 1.10's chmod writes the inode's owner over
/// the one a chown put in the xattr).
const OVERRIDE_CHANGES: &str = "chown 11:12 g && chmod 4751 h && mkdir -m 0700 nd \
     && chown 5:5 nd && touch nf && chmod 0640 nf && chown 3:4 nf";

#[test]
fn xattr_permissions_written_by_fuse_overlayfs_read_by_strata() {
    for mode in ["1", "2"] {
        let lay = Layout::new(2);
        override_layers(&lay);
        let opts = format!("{},xattr_permissions={mode}", lay.opts());
        let fo = FuseOverlayfs::new(&opts, &lay.mnt);
        in_dir(&lay.mnt, OVERRIDE_CHANGES);
        let seen = in_dir(&lay.mnt, OVERRIDES);
        fo.umount();
        // The changes are in the xattrs, not in the inodes.
        let real = in_dir(&lay.upper, "stat -c '%n %u %g' g nd nf");
        assert_eq!(real, "g 0 0\nnd 0 0\nnf 0 0\n", "mode {mode}");
        let _m = lay.mount_with(&format!("xattr_permissions={mode}"));
        assert_eq!(in_dir(&lay.mnt, OVERRIDES), seen, "mode {mode}");
        assert!(
            seen.contains("f 5 6 640\n") && seen.contains("z 0 0 644\n"),
            "{seen}"
        );
        assert!(
            seen.contains("g 11 12 644\n") && seen.contains("nf 3 4 640\n"),
            "{seen}"
        );
    }
}

#[test]
fn xattr_permissions_written_by_strata_read_by_fuse_overlayfs() {
    for mode in ["1", "2"] {
        let lay = Layout::new(2);
        override_layers(&lay);
        let m = lay.mount_with(&format!("xattr_permissions={mode}"));
        in_dir(&lay.mnt, OVERRIDE_CHANGES);
        let seen = in_dir(&lay.mnt, OVERRIDES);
        m.umount();
        let real = in_dir(&lay.upper, "stat -c '%n %u %g' g nd nf");
        assert_eq!(real, "g 0 0\nnd 0 0\nnf 0 0\n", "mode {mode}");
        let opts = format!("{},xattr_permissions={mode}", lay.opts());
        let _fo = FuseOverlayfs::new(&opts, &lay.mnt);
        assert_eq!(in_dir(&lay.mnt, OVERRIDES), seen, "mode {mode}");
        assert!(
            seen.contains("g 11 12 644\n") && seen.contains("h 0 0 4751\n"),
            "{seen}"
        );
        assert!(
            seen.contains("nd 5 5 700\n") && seen.contains("nf 3 4 640\n"),
            "{seen}"
        );
    }
}

#[test]
fn xattr_permissions_hides_the_record() {
    let lay = Layout::new(2);
    override_layers(&lay);
    let _m = lay.mount_with(&format!("xattr_permissions=2,{MAP}"));
    let names = ok(&sh(&format!(
        "getfattr -d -m - {} 2>&1",
        lay.m("f").display()
    )));
    assert!(!names.contains("override_stat"), "{names}");
    for name in [
        "user.containers.override_stat",
        "user.fuseoverlayfs.override_stat",
    ] {
        assert_errno(
            lgetxattr(lay.m("f"), name),
            libc::ENODATA,
            &format!("getxattr {name}"),
        );
        assert_errno(
            lsetxattr(lay.m("f"), name, b"0:0:4755"),
            libc::EPERM,
            &format!("setxattr {name}"),
        );
    }
    // The ids of the record are the layers': shifted like any owner.
    let st = lstat(lay.m("f")).unwrap();
    assert_eq!(
        (st.st_uid, st.st_gid, st.st_mode & 0o7777),
        (100005, 100006, 0o640)
    );
    // Copy-up carries the record; a chown through the mount writes it shifted back.
    ok(&sh(&format!(
        "chown 100020:100021 {}",
        lay.m("f").display()
    )));
    let rec = lgetxattr(lay.u("f"), "user.containers.override_stat").unwrap();
    assert_eq!(text(rec), "20:21:0640");
}
