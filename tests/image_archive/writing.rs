//! write_layer: an upper made by kernel overlayfs (whiteouts, opaque and
//! renamed directories, metacopy files, hard links) back into an OCI layer
//! that, unpacked over the same lowers, shows the kernel exactly the same tree.

use super::support::{self, KernelOverlay};
use super::*;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use strata::image::archive::{Marks, Ownership, WriteOptions};
use tar::EntryType as T;

fn base_layer() -> Vec<u8> {
    let mut t = Tar::new();
    t.entry("./", T::Directory, 0o755, (0, 0), 1_500_000_000, b"")
        .dir("etc", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n")
        .entry(
            "etc/shadow",
            T::Regular,
            0o640,
            (0, 42),
            1_500_000_000,
            b"root:*::::::\n",
        )
        .dir("bin", 0o755)
        .file("bin/tool", 0o4755, b"tool v1")
        .symlink("bin/link", "tool")
        .dir("data", 0o755)
        .pax(&[("SCHILY.xattr.user.color", b"blue")])
        .file("data/a", 0o644, b"a")
        .dir("data/sub", 0o750)
        .file("data/sub/b", 0o644, b"b")
        .file("data/hard1", 0o644, b"linked")
        .hardlink("data/hard2", "data/hard1")
        .file("gone.txt", 0o644, b"gone")
        .dir("olddir", 0o755)
        .file("olddir/x", 0o644, b"x")
        .dir("olddir/deep", 0o700)
        .file("olddir/deep/y", 0o600, b"y")
        .dir("op", 0o755)
        .file("op/keep1", 0o644, b"1")
        .file("op/keep2", 0o644, b"2")
        .file("chm.txt", 0o644, b"chmod me, metacopy keeps my data below")
        .entry(
            "home/u/file",
            T::Regular,
            0o600,
            (1234, 5678),
            1_500_000_000,
            b"u's",
        )
        .entry("run/fifo", T::Fifo, 0o644, (0, 0), 1_500_000_000, b"")
        .file("gone2", 0o644, b"l1 only");
    t.bytes()
}

fn second_layer() -> Vec<u8> {
    let mut t = Tar::new();
    t.dir("etc", 0o755)
        .file("etc/hosts", 0o644, b"127.0.0.1 localhost\n")
        .file(".wh.gone2", 0o644, b"")
        .dir("data/sub", 0o750)
        .file("data/sub/c", 0o644, b"c from l2")
        .dir("op2", 0o755)
        .file("op2/.wh..wh..opq", 0o644, b"")
        .file("op2/n", 0o644, b"n");
    t.bytes()
}

fn unpack_into(dir: &TestDir, name: &str, blob: &[u8]) -> PathBuf {
    let dest = dir.dir(name);
    archive::unpack(blob, &dest, &UnpackOptions::root())
        .unwrap_or_else(|e| panic!("unpack {name}: {e}"));
    dest
}

/// The changes a container makes, through a kernel overlay mount.
fn change(m: &Path) {
    use std::fs;
    let p = |r: &str| m.join(r);
    fs::remove_file(p("gone.txt")).unwrap();
    fs::remove_dir_all(p("op")).unwrap();
    fs::create_dir(p("op")).unwrap();
    support::write(p("op/new"), "new in opaque");
    fs::rename(p("olddir"), p("newdir")).unwrap();
    support::write(p("newdir/z"), "z");
    fs::remove_file(p("newdir/x")).unwrap();
    fs::rename(p("data/sub"), p("movedsub")).unwrap();
    support::write(p("movedsub/d"), "d");
    support::set_mode(p("chm.txt"), 0o600);
    support::chown(p("data/a"), 4321, 8765).unwrap();
    support::write(p("newfile"), "new file");
    fs::hard_link(p("newfile"), p("newfile-link")).unwrap();
    support::lsetxattr(p("newfile"), "user.k", b"v").unwrap();
    support::ln_s("/etc/passwd", p("abs-link"));
    support::mkfifo(p("upper-fifo"), 0o600).unwrap();
    support::write(p("bin/tool"), "tool v2");
    support::set_mode(p("bin/tool"), 0o4755);
    let long = format!("{}/{}", "L".repeat(120), "M".repeat(130));
    support::mkdirs(p(&long));
    support::write(p(&format!("{long}/{}", "f".repeat(200))), "long");
    support::lutimens(
        p("newfile"),
        (1_600_000_000, 0),
        (1_600_000_000, 123_456_789),
    )
    .unwrap();
}

fn entries(blob: &[u8]) -> BTreeMap<String, (char, u64, u64, u32, u64)> {
    let mut a = tar::Archive::new(blob);
    let mut out = BTreeMap::new();
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        let kind = match h.entry_type() {
            T::Regular => 'f',
            T::Directory => 'd',
            T::Symlink => 'l',
            T::Link => 'h',
            T::Fifo => 'p',
            T::Char => 'c',
            _ => '?',
        };
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        out.insert(
            name,
            (
                kind,
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mode().unwrap(),
                e.size(),
            ),
        );
    }
    out
}

#[test]
fn round_trip_through_the_kernel() {
    let _c = support::count_case(SUITE);
    let dir = TestDir::tagged("archive-rt");
    let l1 = unpack_into(&dir, "l1", &base_layer());
    let l2 = unpack_into(&dir, "l2", &second_layer());
    let (upper, work, mnt) = (dir.dir("upper"), dir.dir("work"), dir.dir("mnt"));
    let opts = format!(
        "lowerdir={}:{},upperdir={},workdir={},redirect_dir=on,metacopy=on",
        l2.display(),
        l1.display(),
        upper.display(),
        work.display()
    );
    let ovl = KernelOverlay::new(&opts, &mnt);
    change(&mnt);
    let before = support::snapshot(&mnt);
    ovl.umount();
    // The kernel did make the forms under test.
    assert!(support::is_whiteout(upper.join("gone.txt")));
    assert!(support::is_opaque(upper.join("op")));
    assert!(support::lgetxattr(upper.join("newdir"), "trusted.overlay.redirect").is_ok());
    assert!(support::lgetxattr(upper.join("chm.txt"), "trusted.overlay.metacopy").is_ok());

    let wopts = WriteOptions {
        marks: Marks::Trusted,
        ownership: Ownership::Real,
        compression: Compression::Gzip,
    };
    let lowers = vec![l2.clone(), l1.clone()];
    let mut blob = Vec::new();
    let w = archive::write_layer(&upper, &lowers, &wopts, &mut blob).unwrap();
    assert!(w.warnings.is_empty(), "{:?}", w.warnings);
    assert_eq!(
        (w.digest.clone(), w.size),
        (sha256(&blob), blob.len() as u64)
    );
    let mut again = Vec::new();
    let w2 = archive::write_layer(&upper, &lowers, &wopts, &mut again).unwrap();
    assert!(blob == again, "the same upper gave different bytes");
    assert_eq!(w2.diff_id, w.diff_id);
    support::check();

    let tar_bytes = {
        let mut d = flate2::read::GzDecoder::new(&blob[..]);
        let mut v = Vec::new();
        d.read_to_end(&mut v).unwrap();
        v
    };
    assert_eq!(w.diff_id, sha256(&tar_bytes));
    let e = entries(&tar_bytes);
    for (name, kind) in [
        ("./", 'd'),
        (".wh.gone.txt", 'f'),
        (".wh.olddir", 'f'),
        ("op/", 'd'),
        ("op/.wh..wh..opq", 'f'),
        ("newdir/", 'd'),
        ("newdir/.wh..wh..opq", 'f'),
        ("newdir/deep/y", 'f'),
        ("newdir/z", 'f'),
        ("data/.wh.sub", 'f'),
        ("movedsub/.wh..wh..opq", 'f'),
        ("movedsub/b", 'f'),
        ("movedsub/c", 'f'),
        ("movedsub/d", 'f'),
        ("newfile-link", 'h'),
        ("abs-link", 'l'),
        ("upper-fifo", 'p'),
    ] {
        assert_eq!(
            e.get(name).map(|v| v.0),
            Some(kind),
            "{name} in {:?}",
            e.keys().collect::<Vec<_>>()
        );
    }
    assert!(
        !e.contains_key("newdir/x"),
        "a whiteout inside the renamed dir is applied"
    );
    assert_eq!(e["chm.txt"].4, 38, "metacopy data comes from the lower");
    assert_eq!(e["chm.txt"].3, 0o600);
    assert_eq!((e["data/a"].1, e["data/a"].2), (4321, 8765));
    let names: Vec<&String> = e.keys().collect();
    assert!(names.iter().all(|n| !n.contains("trusted.overlay")));
    support::check();

    let l3 = unpack_into(&dir, "l3", &blob);
    assert_eq!(
        support::read(l3.join("chm.txt")),
        b"chmod me, metacopy keeps my data below"
    );
    let mnt2 = dir.dir("mnt2");
    let ovl2 = KernelOverlay::new(
        &format!(
            "lowerdir={}:{}:{}",
            l3.display(),
            l2.display(),
            l1.display()
        ),
        &mnt2,
    );
    let after = support::snapshot(&mnt2);
    assert_eq!(
        support::lstat_meta(mnt2.join("newfile")).mtime_nsec(),
        123_456_789,
        "nanosecond mtimes go through PAX"
    );
    ovl2.umount();
    support::assert_same_tree(
        "the container's view",
        &before,
        "the committed layer's view",
        &after,
    );
    support::check();
}

#[test]
fn recorded_ownership_comes_from_the_override_xattr() {
    let _c = support::count_case(SUITE);
    let dir = TestDir::tagged("archive-rec");
    let upper = dir.dir("upper");
    // An upper in the rootless format, by hand: user marks, override records.
    support::lsetxattr(&upper, "user.containers.override_stat", b"0:0:0755").unwrap();
    support::write(upper.join("owned"), "o");
    support::lsetxattr(
        upper.join("owned"),
        "user.containers.override_stat",
        b"1000:1000:4750",
    )
    .unwrap();
    support::write(upper.join("old-name"), "o");
    support::lsetxattr(
        upper.join("old-name"),
        "user.fuseoverlayfs.override_stat",
        b"7:8:0600",
    )
    .unwrap();
    support::write(upper.join("plain"), "p");
    support::set_mode(upper.join("plain"), 0o640);
    support::lsetxattr(upper.join("plain"), "user.keep", b"1").unwrap();
    support::mkdirs(upper.join("opq"));
    support::lsetxattr(upper.join("opq"), "user.overlay.opaque", b"y").unwrap();
    support::mkdirs(upper.join("xwh"));
    support::lsetxattr(upper.join("xwh"), "user.overlay.opaque", b"x").unwrap();
    support::write(upper.join("xwh/deleted"), "");
    support::lsetxattr(upper.join("xwh/deleted"), "user.overlay.whiteout", b"").unwrap();
    support::make_whiteout(upper.join("gone"));
    let opts = WriteOptions {
        marks: Marks::User,
        ownership: Ownership::Recorded,
        compression: Compression::Zstd,
    };
    let mut blob = Vec::new();
    archive::write_layer(&upper, &[], &opts, &mut blob).unwrap();
    let tar_bytes = zstd::stream::decode_all(&blob[..]).unwrap();
    let e = entries(&tar_bytes);
    assert_eq!(e["./"], ('d', 0, 0, 0o755, 0));
    assert_eq!(e["owned"], ('f', 1000, 1000, 0o4750, 1));
    assert_eq!(e["old-name"], ('f', 7, 8, 0o600, 1));
    assert_eq!(e["plain"], ('f', 0, 0, 0o640, 1));
    assert_eq!(e["opq/.wh..wh..opq"].0, 'f');
    assert_eq!(e["xwh/.wh.deleted"].0, 'f');
    assert!(!e.contains_key("xwh/deleted"));
    assert!(
        !e.contains_key("xwh/.wh..wh..opq"),
        "opaque=x is not opaque"
    );
    assert_eq!(e[".wh.gone"].0, 'f');
    // Only user content goes out as xattrs.
    let mut a = tar::Archive::new(&tar_bytes[..]);
    for entry in a.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let keys: Vec<String> = match entry.pax_extensions().unwrap() {
            Some(x) => x
                .map(|r| r.unwrap().key().unwrap().to_string())
                .filter(|k| k != "mtime")
                .collect(),
            None => vec![],
        };
        let want: Vec<String> = if name == "plain" {
            vec!["SCHILY.xattr.user.keep".into()]
        } else {
            vec![]
        };
        assert_eq!(keys, want, "{name}");
    }
    support::check();

    // And back, rootless-style: the records come back as they were.
    let back = dir.dir("back");
    let u = archive::unpack(&blob[..], &back, &UnpackOptions::rootless()).unwrap();
    assert!(u.warnings.is_empty(), "{:?}", u.warnings);
    let rec = |p: &str| support::lgetxattr(back.join(p), "user.containers.override_stat").ok();
    assert_eq!(rec("owned").as_deref(), Some(&b"1000:1000:4750"[..]));
    assert_eq!(rec("old-name").as_deref(), Some(&b"7:8:0600"[..]));
    assert_eq!(rec("plain"), None);
    assert!(support::is_whiteout(back.join("xwh/deleted")));
    assert_eq!(
        support::lgetxattr(back.join("opq"), "user.overlay.opaque").unwrap(),
        b"y"
    );
    support::check();
}

#[test]
fn a_relative_redirect_without_whiteout_gets_one() {
    let _c = support::count_case(SUITE);
    let dir = TestDir::tagged("archive-redir");
    let mut t = Tar::new();
    t.dir("p", 0o755)
        .dir("p/a", 0o755)
        .file("p/a/f", 0o644, b"f")
        .dir("p/a/s", 0o755)
        .file("p/a/s/g", 0o644, b"g");
    let lower = unpack_into(&dir, "lower", &t.bytes());
    let upper = dir.dir("upper");
    // p/b is p/a renamed (relative redirect); nested: p/b/t is p/a/s renamed.
    support::mkdirs(upper.join("p/b/t"));
    support::lsetxattr(upper.join("p/b"), "trusted.overlay.redirect", b"a").unwrap();
    support::lsetxattr(upper.join("p/b/t"), "trusted.overlay.redirect", b"s").unwrap();
    support::make_whiteout(upper.join("p/b/s"));
    support::write(upper.join("p/b/t/own"), "own");
    let opts = WriteOptions {
        marks: Marks::Trusted,
        ownership: Ownership::Real,
        compression: Compression::None,
    };
    let mut blob = Vec::new();
    let w = archive::write_layer(&upper, std::slice::from_ref(&lower), &opts, &mut blob).unwrap();
    assert!(w.warnings.is_empty(), "{:?}", w.warnings);
    let e = entries(&blob);
    let names: Vec<&str> = e.keys().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "./",
            "p/",
            "p/.wh.a",
            "p/b/",
            "p/b/.wh..wh..opq",
            "p/b/f",
            "p/b/t/",
            "p/b/t/g",
            "p/b/t/own"
        ]
    );
    let new = unpack_into(&dir, "new", &blob);
    let mnt = dir.dir("mnt");
    let ovl = KernelOverlay::new(
        &format!("lowerdir={}:{}", new.display(), lower.display()),
        &mnt,
    );
    assert_eq!(support::ls(ovl.path("p")), ["b"]);
    assert_eq!(support::ls(ovl.path("p/b")), ["f", "t"]);
    assert_eq!(support::ls(ovl.path("p/b/t")), ["g", "own"]);
    ovl.umount();
    assert!(support::lstat_meta(new.join("p/b/f")).nlink() == 1);
    support::check();
}

#[test]
fn a_dot_wh_name_in_the_upper_is_refused() {
    let _c = support::count_case(SUITE);
    let dir = TestDir::tagged("archive-wh");
    let upper = dir.dir("upper");
    support::write(upper.join(".wh.sneaky"), "x");
    let opts = WriteOptions {
        marks: Marks::Trusted,
        ownership: Ownership::Real,
        compression: Compression::None,
    };
    let e = archive::write_layer(&upper, &[], &opts, Vec::new()).unwrap_err();
    assert_eq!(e.kind(), archive::ErrorKind::Unsupported);
    assert!(e.to_string().contains(".wh.sneaky"), "{e}");
    support::check();
}
