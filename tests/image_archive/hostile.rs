//! Hostile archives: each is refused naming its entry (or, for absolute names,
//! kept inside), and nothing outside the layer changes.

use super::support;
use super::*;
use std::os::unix::fs::MetadataExt;
use strata::image::archive::ErrorKind;
use tar::EntryType as T;

fn unique(tag: &str) -> String {
    format!(
        "strata-archive-{tag}-{}-{}",
        std::process::id(),
        support::time_seed()
    )
}

#[test]
fn absolute_names_stay_inside_the_layer() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    let name = unique("abs");
    let mut t = Tar::new();
    t.file(&format!("/etc/{name}"), 0o644, b"inside")
        .file(&format!("//tmp/{name}"), 0o644, b"inside too")
        .hardlink(&format!("{name}-link"), &format!("/etc/{name}"));
    s.root(&t.bytes()).unwrap();
    assert_eq!(support::read(s.p(&format!("etc/{name}"))), b"inside");
    assert_eq!(support::read(s.p(&format!("tmp/{name}"))), b"inside too");
    assert_eq!(support::lstat_meta(s.p(&format!("{name}-link"))).nlink(), 2);
    assert!(!support::exists(format!("/etc/{name}")));
    assert!(!support::exists(format!("/tmp/{name}")));
    s.assert_outside_unchanged();
}

#[test]
fn dot_dot_components_are_refused() {
    let _c = support::count_case(SUITE);
    for name in ["a/../../sentinel/x", "../sentinel/file", "a/b/../c"] {
        let s = Scene::new();
        let mut t = Tar::new();
        t.dir("a", 0o755).file(name, 0o644, b"escaped");
        assert_refused(s.root(&t.bytes()), ErrorKind::Hostile, name);
        s.assert_outside_unchanged();
    }
}

#[test]
fn entries_below_a_symlink_are_refused_wherever_it_points() {
    let _c = support::count_case(SUITE);
    for target in ["OUTSIDE", "sub", "/tmp", "."] {
        let s = Scene::new();
        let target = if target == "OUTSIDE" {
            s.sentinel.display().to_string()
        } else {
            target.to_string()
        };
        let mut t = Tar::new();
        t.dir("sub", 0o755)
            .symlink("link", &target)
            .file("link/file", 0o644, b"through the link");
        let e = assert_refused(s.root(&t.bytes()), ErrorKind::Hostile, "link/file");
        assert!(e.to_string().contains("symlink"), "{e}");
        assert!(!support::exists(s.p("sub/file")));
        assert!(!support::exists("/tmp/file") || target != "/tmp");
        s.assert_outside_unchanged();
    }
}

#[test]
fn a_symlink_replaced_by_a_directory_is_refused() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    let mut t = Tar::new();
    t.symlink("x", &s.sentinel.display().to_string())
        .dir("x", 0o755)
        .file("x/file", 0o644, b"escaped");
    assert_refused(s.root(&t.bytes()), ErrorKind::Hostile, "x");
    assert!(support::lstat_meta(s.p("x")).file_type().is_symlink());
    s.assert_outside_unchanged();
}

#[test]
fn type_changes_between_directory_and_non_directory_are_refused() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    let mut t = Tar::new();
    t.dir("d", 0o755)
        .file("d/f", 0o644, b"kept")
        .file("d", 0o644, b"file over dir");
    assert_refused(s.root(&t.bytes()), ErrorKind::Hostile, "d");
    assert_eq!(support::read(s.p("d/f")), b"kept");
    s.assert_outside_unchanged();

    let s = Scene::new();
    let mut t = Tar::new();
    t.file("f", 0o644, b"file").dir("f", 0o755);
    assert_refused(s.root(&t.bytes()), ErrorKind::Hostile, "f");
    let s2 = Scene::new();
    let mut t = Tar::new();
    t.dir("d", 0o755).symlink("d", "/etc");
    assert_refused(s2.root(&t.bytes()), ErrorKind::Hostile, "d");
    s.assert_outside_unchanged();
    s2.assert_outside_unchanged();
}

#[test]
fn hard_links_out_of_the_layer_are_refused() {
    let _c = support::count_case(SUITE);
    let passwd_links = support::lstat_meta("/etc/passwd").nlink();
    let cases: &[(&str, ErrorKind)] = &[
        ("../sentinel/file", ErrorKind::Hostile),
        ("/etc/passwd", ErrorKind::Corrupt),
        ("escape/passwd", ErrorKind::Hostile),
        ("missing", ErrorKind::Corrupt),
        ("d", ErrorKind::Corrupt),
    ];
    for (target, kind) in cases {
        let s = Scene::new();
        let mut t = Tar::new();
        t.dir("d", 0o755)
            .symlink("escape", "/etc")
            .hardlink("h", target);
        assert_refused(s.root(&t.bytes()), *kind, "h");
        assert!(!support::exists(s.p("h")));
        s.assert_outside_unchanged();
    }
    assert_eq!(support::lstat_meta("/etc/passwd").nlink(), passwd_links);
    support::check();
}

#[test]
fn a_hard_link_to_a_symlink_links_the_symlink_itself() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    let target = s.sentinel.join("file").display().to_string();
    let mut t = Tar::new();
    t.symlink("s", &target).hardlink("h", "s");
    s.root(&t.bytes()).unwrap();
    let m = support::lstat_meta(s.p("h"));
    assert!(m.file_type().is_symlink());
    assert_eq!(m.ino(), support::lstat_meta(s.p("s")).ino());
    assert_eq!(support::readlink(s.p("h")).unwrap(), target.as_bytes());
    assert_eq!(support::lstat_meta(s.sentinel.join("file")).nlink(), 1);
    s.assert_outside_unchanged();
}

#[test]
fn names_with_nul_or_over_the_limits_are_refused() {
    let _c = support::count_case(SUITE);
    let over_path = "abcdefgh/".repeat(460) + "x";
    let over_name = format!("dir/{}", "n".repeat(256));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"a\0b".to_vec(), "NUL"),
        (over_path.clone().into_bytes(), "PATH_MAX"),
        (over_name.clone().into_bytes(), "NAME_MAX"),
    ];
    for (name, why) in cases {
        let s = Scene::new();
        let mut t = Tar::new();
        t.pax(&[("path", &name)]).file("placeholder", 0o644, b"x");
        let shown = String::from_utf8_lossy(&name[..name.len().min(40)]).into_owned();
        let shown = shown.replace('\0', "\\0");
        let e = assert_refused(s.root(&t.bytes()), ErrorKind::Hostile, &shown);
        assert!(e.to_string().contains(why), "{e}");
        assert!(!support::exists(s.p("placeholder")));
        s.assert_outside_unchanged();
    }
    // A symlink target with a NUL (PAX linkpath).
    let s = Scene::new();
    let mut t = Tar::new();
    t.pax(&[("linkpath", b"/etc\0x")]).symlink("l", "x");
    assert_refused(s.root(&t.bytes()), ErrorKind::Corrupt, "l");
    s.assert_outside_unchanged();
}

#[test]
fn a_decompression_bomb_stops_at_the_limit() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    let mut t = Tar::new();
    t.file("bomb", 0o644, &vec![b'x'; 8 << 20]);
    let blob = gzip(&t.bytes());
    assert!(blob.len() < 64 << 10);
    let opts = UnpackOptions {
        max_size: 1 << 20,
        ..UnpackOptions::root()
    };
    let e = s.unpack(&blob, &opts).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    assert!(e.to_string().contains("1048576"), "{e}");
    assert!(e.to_string().contains("bomb"), "{e}");
    // Refused before any data is written: the header says 8 MiB.
    assert!(!support::exists(s.p("bomb")));
    s.assert_outside_unchanged();
}

#[test]
fn a_sparse_bomb_counts_its_holes() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    let mut t = Tar::new();
    // 1 TiB apparent, 512 bytes of data: past the default 64 GiB limit.
    t.sparse("holes", 1 << 40, &[(0, [b'a'; 512])]);
    let e = assert_refused(s.root(&t.bytes()), ErrorKind::TooLarge, "holes");
    assert!(
        e.to_string()
            .contains(&archive::DEFAULT_MAX_SIZE.to_string()),
        "{e}"
    );
    assert!(!support::exists(s.p("holes")));
    s.assert_outside_unchanged();
}

#[test]
fn hostile_whiteouts_are_refused() {
    let _c = support::count_case(SUITE);
    let cases: &[(&[u8], ErrorKind, &str)] = &[
        (b".wh...", ErrorKind::Corrupt, ".wh..."),
        (b"a/.wh.", ErrorKind::Corrupt, "a/.wh."),
        (b"../.wh.sentinel", ErrorKind::Hostile, "../.wh.sentinel"),
        (b"link/.wh.file", ErrorKind::Hostile, "link/.wh.file"),
        (
            b"link/.wh..wh..opq",
            ErrorKind::Hostile,
            "link/.wh..wh..opq",
        ),
    ];
    for (name, kind, shown) in cases {
        let s = Scene::new();
        let mut t = Tar::new();
        t.symlink("link", &s.sentinel.display().to_string())
            .raw(name, T::Regular, 0o644, b"", b"");
        assert_refused(s.root(&t.bytes()), *kind, shown);
        assert!(!support::is_opaque(&s.sentinel));
        s.assert_outside_unchanged();
    }
}
