//! Unpacking as root: every entry type, metadata, compression, digests,
//! whiteouts and opaque directories (also as kernel overlayfs sees them).

use super::support::{self, KernelOverlay};
use super::*;
use std::os::unix::fs::MetadataExt;
use strata::image::archive::ErrorKind;
use tar::EntryType as T;

fn every_type() -> Vec<u8> {
    let mut t = Tar::new();
    t.entry("./", T::Directory, 0o755, (0, 0), 1_500_000_000, b"")
        .entry("etc/", T::Directory, 0o750, (0, 42), 1_500_000_001, b"")
        .entry(
            "etc/shadow",
            T::Regular,
            0o640,
            (0, 42),
            1_500_000_002,
            b"root:*:1::::::\n",
        )
        .entry("bin/", T::Directory, 0o755, (0, 0), 1_500_000_003, b"")
        .entry(
            "bin/su",
            T::Regular,
            0o4755,
            (0, 0),
            1_500_000_004,
            b"#!/bin/true\n",
        )
        .entry("bin/wall", T::Regular, 0o2755, (0, 5), 1_500_000_004, b"x")
        .entry("tmp/", T::Directory, 0o1777, (0, 0), 1_500_000_005, b"")
        .entry(
            "home/u/",
            T::Directory,
            0o700,
            (1000, 1000),
            1_500_000_006,
            b"",
        )
        .entry(
            "home/u/notes",
            T::Regular,
            0o600,
            (1000, 1000),
            1_500_000_007,
            b"mine",
        )
        .symlink("bin/sh", "/bin/busybox")
        .hardlink("bin/su2", "bin/su")
        .entry("run/fifo", T::Fifo, 0o620, (0, 0), 1_500_000_008, b"")
        .device("dev/null", T::Char, 1, 3)
        .device("dev/loop0", T::Block, 7, 0)
        .pax(&[
            ("SCHILY.xattr.user.color", b"blue"),
            (
                "SCHILY.xattr.security.capability",
                &[
                    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
            ),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("SCHILY.xattr.user.containers.override_stat", b"0:0:4777"),
            ("mtime", b"1500000009.25"),
        ])
        .file("bin/ping", 0o755, b"ping");
    t.bytes()
}

#[test]
fn every_entry_type_and_its_metadata() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    let tar = every_type();
    let u = s.root(&tar).unwrap();
    let m = |p: &str| support::lstat_meta(s.p(p));
    assert_eq!((m("etc").mode() & 0o7777, m("etc").gid()), (0o750, 42));
    assert_eq!(support::read(s.p("etc/shadow")), b"root:*:1::::::\n");
    assert_eq!(m("bin/su").mode() & 0o7777, 0o4755, "setuid survives chown");
    assert_eq!(
        (m("bin/wall").mode() & 0o7777, m("bin/wall").gid()),
        (0o2755, 5)
    );
    assert_eq!(m("tmp").mode() & 0o7777, 0o1777);
    assert_eq!((m("home/u").uid(), m("home/u/notes").uid()), (1000, 1000));
    assert_eq!(support::readlink(s.p("bin/sh")).unwrap(), b"/bin/busybox");
    assert_eq!(m("bin/su2").ino(), m("bin/su").ino());
    assert_eq!(m("bin/su").nlink(), 2);
    assert_eq!(m("run/fifo").mode(), libc::S_IFIFO | 0o620);
    assert_eq!(
        (m("dev/null").mode() & libc::S_IFMT, m("dev/null").rdev()),
        (libc::S_IFCHR, libc::makedev(1, 3))
    );
    assert_eq!(
        (m("dev/loop0").mode() & libc::S_IFMT, m("dev/loop0").rdev()),
        (libc::S_IFBLK, libc::makedev(7, 0))
    );
    // mtimes: a file's, PAX nanoseconds, and directories' after their contents.
    assert_eq!(m("etc/shadow").mtime(), 1_500_000_002);
    assert_eq!(
        (m("bin/ping").mtime(), m("bin/ping").mtime_nsec()),
        (1_500_000_009, 250_000_000)
    );
    assert_eq!(m("etc").mtime(), 1_500_000_001);
    assert_eq!(m("bin").mtime(), 1_500_000_003);
    assert_eq!(m("").mtime(), 1_500_000_000);
    // xattrs: user and security kept, bookkeeping dropped with a warning each.
    assert_eq!(
        support::lgetxattr(s.p("bin/ping"), "user.color").unwrap(),
        b"blue"
    );
    assert!(support::lgetxattr(s.p("bin/ping"), "security.capability").is_ok());
    assert!(!support::is_opaque(s.p("bin/ping")));
    assert!(support::lgetxattr(s.p("bin/ping"), "user.containers.override_stat").is_err());
    let dropped: Vec<_> = u
        .warnings
        .iter()
        .filter(|w| w.contains("dropped xattr"))
        .collect();
    assert_eq!(dropped.len(), 2, "{:?}", u.warnings);
    assert!(dropped.iter().all(|w| w.contains("bin/ping")));
    assert_eq!(u.files, 15);
    assert_eq!(u.size, tar.len() as u64);
    assert_eq!(u.diff_id, sha256(&tar));
    support::check();
}

#[test]
fn compressions_are_detected_and_both_digests_computed() {
    let _c = support::count_case(SUITE);
    let tar = every_type();
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let s = Scene::new();
        let blob = compress(&tar, c);
        let u = s.root(&blob).unwrap();
        assert_eq!(u.compression, c);
        assert_eq!(u.diff_id, sha256(&tar), "{c:?}");
        assert_eq!(u.size, tar.len() as u64);
        assert_eq!(u.compressed_digest, sha256(&blob), "{c:?}");
        assert_eq!(u.compressed_size, blob.len() as u64);
        assert_eq!(support::read(s.p("bin/ping")), b"ping");
        support::check();
    }
}

#[test]
fn corrupt_compressed_stream_is_refused() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    let mut blob = gzip(&every_type());
    let n = blob.len();
    blob.truncate(n / 2);
    let e = s.root(&blob).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    s.assert_outside_unchanged();
}

#[test]
fn long_names_gnu_and_pax() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    let long_dir = format!("{}/{}", "d".repeat(200), "e".repeat(200));
    let gnu_name = format!("{long_dir}/gnu-{}", "g".repeat(150));
    let pax_name = format!("{long_dir}/pax-{}", "p".repeat(150));
    let link_target = format!("/{}", "t".repeat(300));
    let mut t = Tar::new();
    t.gnu_long_file(&gnu_name, b"gnu")
        .pax(&[("path", pax_name.as_bytes())])
        .file("placeholder", 0o644, b"pax")
        .pax(&[("path", b"longlink"), ("linkpath", link_target.as_bytes())])
        .symlink("placeholder2", "x");
    s.root(&t.bytes()).unwrap();
    assert_eq!(support::read(s.p(&gnu_name)), b"gnu");
    assert_eq!(support::read(s.p(&pax_name)), b"pax");
    assert!(!support::exists(s.p("placeholder")));
    assert_eq!(
        support::readlink(s.p("longlink")).unwrap(),
        link_target.as_bytes()
    );
    support::check();
}

#[test]
fn sparse_files_and_zero_runs_become_holes() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    let mut t = Tar::new();
    t.sparse(
        "sparse",
        (8 << 20) + 4096,
        &[(0, [b'a'; 512]), (4 << 20, [b'b'; 512])],
    );
    let mut zeros = vec![0u8; 4 << 20];
    zeros[0] = b'z';
    t.file("mostly-zero", 0o644, &zeros);
    let u = s.root(&t.bytes()).unwrap();
    let m = support::lstat_meta(s.p("sparse"));
    assert_eq!(m.size(), (8 << 20) + 4096);
    assert!(
        m.blocks() * 512 <= 64 * 1024,
        "not sparse: {} blocks",
        m.blocks()
    );
    let data = support::read(s.p("sparse"));
    assert_eq!(&data[..512], &[b'a'; 512]);
    assert!(data[512..4 << 20].iter().all(|b| *b == 0));
    assert_eq!(&data[4 << 20..(4 << 20) + 512], &[b'b'; 512]);
    assert!(data[(4 << 20) + 512..].iter().all(|b| *b == 0));
    let z = support::lstat_meta(s.p("mostly-zero"));
    assert_eq!(z.size(), 4 << 20);
    assert!(
        z.blocks() * 512 <= 64 * 1024,
        "zero run written: {} blocks",
        z.blocks()
    );
    assert_eq!(support::read(s.p("mostly-zero")), zeros);
    assert!(u.warnings.is_empty(), "{:?}", u.warnings);
    support::check();
}

#[test]
fn later_entries_replace_earlier_non_directories() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    let mut t = Tar::new();
    t.file("f", 0o644, b"first")
        .file("f", 0o600, b"second")
        .file("s", 0o644, b"a file")
        .symlink("s", "target")
        .dir("d", 0o755)
        .dir("d", 0o700);
    s.root(&t.bytes()).unwrap();
    assert_eq!(support::read(s.p("f")), b"second");
    assert_eq!(support::st_mode(s.p("f")) & 0o7777, 0o600);
    assert_eq!(support::readlink(s.p("s")).unwrap(), b"target");
    assert_eq!(support::st_mode(s.p("d")) & 0o7777, 0o700);
    support::check();
}

#[test]
fn whiteouts_and_opaque_directories_in_kernel_format() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    let mut t = Tar::new();
    // The opaque marker after the directory's children: order is arbitrary.
    t.dir("d", 0o755)
        .file("d/new", 0o644, b"new")
        .file("d/.wh..wh..opq", 0o644, b"")
        .file(".wh.gone", 0o644, b"")
        .file("x/y/.wh.deep", 0o644, b"")
        .file("early/.wh..wh..opq", 0o644, b"")
        .dir("early", 0o711);
    let u = s.root(&t.bytes()).unwrap();
    assert!(support::is_whiteout(s.p("gone")));
    assert!(support::is_whiteout(s.p("x/y/deep")));
    assert!(support::is_opaque(s.p("d")));
    assert!(support::is_opaque(s.p("early")));
    assert_eq!(support::st_mode(s.p("early")) & 0o7777, 0o711);
    assert_eq!(support::ls(s.p("d")), ["new"]);
    assert!(!support::exists(s.p(".wh.gone")));
    assert_eq!(u.files, 7);
    support::check();

    // Kernel overlayfs reads it: the whiteout deletes, the opaque dir hides.
    let lower = s.dir.dir("lower");
    support::write(lower.join("gone"), "old");
    support::write(lower.join("kept"), "kept");
    support::mkdirs(lower.join("d"));
    support::write(lower.join("d/old"), "old");
    support::mkdirs(lower.join("x/y"));
    support::write(lower.join("x/y/deep"), "old");
    support::write(lower.join("x/y/other"), "other");
    let mnt = s.dir.dir("mnt");
    let ovl = KernelOverlay::new(
        &format!("lowerdir={}:{}", s.dest.display(), lower.display()),
        &mnt,
    );
    assert!(!support::exists(ovl.path("gone")));
    assert_eq!(support::read(ovl.path("kept")), b"kept");
    assert_eq!(support::ls(ovl.path("d")), ["new"]);
    assert_eq!(support::ls(ovl.path("x/y")), ["other"]);
    ovl.umount();
    support::check();
}

#[test]
fn whiteout_beside_the_same_name_is_refused() {
    let _c = support::count_case(SUITE);
    for (first, second) in [(".wh.a", "a"), ("a", ".wh.a")] {
        let s = Scene::new();
        let mut t = Tar::new();
        t.file(first, 0o644, b"").file(second, 0o644, b"");
        assert_refused(s.root(&t.bytes()), ErrorKind::Corrupt, second);
        s.assert_outside_unchanged();
    }
}

#[test]
fn no_space_is_its_own_error() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    let fs = support::Tmpfs::new(&s.dir.join("small"));
    let dest = fs.path.join("layer");
    support::mkdirs(&dest);
    // Incompressible-looking data, larger than the 16 MiB tmpfs.
    let mut rng = support::Rng::new(7);
    let data: Vec<u8> = (0..(20 << 20) / 8)
        .flat_map(|_| rng.next().to_le_bytes())
        .collect();
    let mut t = Tar::new();
    t.file("big", 0o644, &data);
    let e = archive::unpack(&gzip(&t.bytes())[..], &dest, &UnpackOptions::root()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    assert!(e.to_string().contains("\"big\""), "{e}");
    support::check();
}

#[test]
fn dest_must_be_empty() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    support::write(s.p("already"), "x");
    let mut t = Tar::new();
    t.file("f", 0o644, b"f");
    let e = s.root(&t.bytes()).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    assert!(!support::exists(s.p("f")));
    support::check();
}
