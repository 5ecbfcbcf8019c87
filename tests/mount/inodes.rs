//! Inode numbers: stable for the life of the mount, unchanged by copy-up, d_ino ==
//! st_ino, one st_dev for the whole mount, no two objects sharing a number.

use crate::support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{DirEntryExt, MetadataExt};

fn drop_caches() {
    // Makes the kernel forget dentries and inodes, so the daemon is asked again.
    let _ = fs::write("/proc/sys/vm/drop_caches", "2");
}

fn layered() -> Layout {
    let lay = Layout::new(2);
    mkdirs(lay.l(1, "dir/sub"));
    write(lay.l(1, "dir/low1"), "1");
    mkdirs(lay.l(0, "dir"));
    write(lay.l(0, "dir/low0"), "0");
    write(lay.l(0, "top"), "t");
    ln_s("top", lay.l(0, "sym"));
    mkdirs(lay.u("dir"));
    write(lay.u("dir/up"), "u");
    lay
}

const PATHS: [&str; 9] = [
    "",
    "dir",
    "dir/sub",
    "dir/low1",
    "dir/low0",
    "dir/up",
    "top",
    "sym",
    "dir/sub/..",
];

fn inos(lay: &Layout) -> BTreeMap<&'static str, u64> {
    PATHS
        .iter()
        .filter(|p| !p.ends_with(".."))
        .map(|p| (*p, lstat_meta(lay.m(p)).ino()))
        .collect()
}

#[test]
fn st_ino_is_stable_and_survives_copy_up() {
    let lay = layered();
    let _m = lay.mount();
    let first = inos(&lay);
    let distinct: BTreeSet<u64> = first.values().cloned().collect();
    assert_eq!(
        distinct.len(),
        first.len(),
        "two objects share an inode: {first:?}"
    );
    assert_eq!(inos(&lay), first, "st_ino changed between two stats");
    // copy everything up
    chmod(lay.m("dir/low1"), 0o600).unwrap();
    lsetxattr(lay.m("dir/low0"), "user.x", b"1").unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(lay.m("top"))
        .unwrap();
    lchown(lay.m("sym"), 5, 5).unwrap();
    chmod(lay.m("dir/sub"), 0o700).unwrap();
    assert_eq!(inos(&lay), first, "st_ino changed by copy-up");
    drop_caches();
    assert_eq!(
        inos(&lay),
        first,
        "st_ino changed after the kernel forgot the inodes"
    );
    // the same through an open fd
    let f = fs::File::open(lay.m("dir/low1")).unwrap();
    assert_eq!(f.metadata().unwrap().ino(), first["dir/low1"]);
}

#[test]
fn st_ino_unchanged_when_the_kernel_forgets_before_copy_up() {
    let lay = layered();
    let _m = lay.mount();
    let first = inos(&lay);
    drop_caches();
    assert_eq!(inos(&lay), first);
    fs::OpenOptions::new()
        .append(true)
        .open(lay.m("dir/low1"))
        .unwrap();
    drop_caches();
    assert_eq!(inos(&lay), first);
}

#[test]
fn d_ino_equals_st_ino() {
    let lay = layered();
    let _m = lay.mount();
    let check = |dir: &str| {
        for e in fs::read_dir(lay.m(dir)).unwrap() {
            let e = e.unwrap();
            let st = lstat_meta(e.path());
            assert_eq!(
                e.ino(),
                st.ino(),
                "d_ino != st_ino for {}",
                e.path().display()
            );
        }
    };
    check("");
    check("dir");
    chmod(lay.m("dir/low1"), 0o600).unwrap();
    write(lay.m("dir/new"), "n");
    check("dir");
    drop_caches();
    check("dir");
}

#[test]
fn one_st_dev_for_the_whole_mount() {
    let lay = layered();
    let _m = lay.mount();
    let dev = lstat_meta(&lay.mnt).dev();
    for p in PATHS {
        assert_eq!(lstat_meta(lay.m(p)).dev(), dev, "st_dev of {p}");
    }
    write(lay.m("dir/new"), "n");
    chmod(lay.m("dir/low1"), 0o600).unwrap();
    assert_eq!(lstat_meta(lay.m("dir/new")).dev(), dev);
    assert_eq!(lstat_meta(lay.m("dir/low1")).dev(), dev);
    assert_ne!(
        dev,
        lstat_meta(&lay.upper).dev(),
        "the mount must have its own st_dev"
    );
}

#[test]
fn objects_on_different_filesystems_never_share_st_ino() {
    // lower on tmpfs, upper on ext4: the backing inode numbers may collide.
    let d = TestDir::new();
    let tfs = Tmpfs::new(&d.join("tmpfs"));
    let lower = tfs.path.join("lower");
    mkdirs(&lower);
    let upper = d.dir("upper");
    let work = d.dir("work");
    let mnt = d.dir("mnt");
    let lower2 = d.dir("lower2");
    for i in 0..300 {
        write(lower.join(format!("t{i}")), "t");
        write(lower2.join(format!("e{i}")), "e");
    }
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
    for i in 0..300 {
        write(mnt.join(format!("u{i}")), "u");
    }
    let mut seen: BTreeMap<u64, String> = BTreeMap::new();
    for e in fs::read_dir(&mnt).unwrap() {
        let e = e.unwrap();
        let ino = lstat_meta(e.path()).ino();
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(other) = seen.insert(ino, name.clone()) {
            panic!("{name} and {other} both have st_ino {ino}");
        }
    }
    assert_eq!(seen.len(), 900);
}

/// One name of a lower hard link copied up before the kernel ever looked up the other
/// name: the other name's st_ino must still stay the same for the life of the mount.
#[test]
fn st_ino_of_the_other_name_of_a_lower_hard_link_is_stable() {
    let lay = Layout::new(1);
    write(lay.l(0, "c"), "x");
    fs::hard_link(lay.l(0, "c"), lay.l(0, "d")).unwrap();
    write(lay.l(0, "e"), "y");
    fs::hard_link(lay.l(0, "e"), lay.l(0, "f")).unwrap();
    let _m = lay.mount();
    chmod(lay.m("c"), 0o600).unwrap();
    chmod(lay.m("e"), 0o600).unwrap();
    let first: Vec<u64> = ["c", "d", "e", "f"]
        .iter()
        .map(|n| lstat_meta(lay.m(n)).ino())
        .collect();
    // strata keeps the names of a lower hard-linked file one file across a
    // copy-up (as kernel overlayfs with index=on): c/d and e/f share st_ino.
    let distinct: BTreeSet<u64> = first.iter().cloned().collect();
    assert_eq!(distinct.len(), 2, "st_ino of [c, d, e, f]: {first:?}");
    assert_eq!(
        (first[0], first[2]),
        (first[1], first[3]),
        "hard links share st_ino: {first:?}"
    );
    drop_caches();
    let second: Vec<u64> = ["c", "d", "e", "f"]
        .iter()
        .map(|n| lstat_meta(lay.m(n)).ino())
        .collect();
    assert_eq!(
        second, first,
        "st_ino of [c, d, e, f] changed after the kernel forgot the inodes"
    );
    for e in fs::read_dir(&lay.mnt).unwrap() {
        let e = e.unwrap();
        assert_eq!(
            e.ino(),
            lstat_meta(e.path()).ino(),
            "d_ino != st_ino for {:?}",
            e.file_name()
        );
    }
}
