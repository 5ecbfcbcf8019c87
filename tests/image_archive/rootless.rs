//! Unpacking as an ordinary user (a forked child as strata-u1): ownership in
//! `user.containers.override_stat`, user marks, devices and non-user xattrs
//! skipped, and a refused layer the user can still delete.

use super::support;
use super::*;
use std::os::unix::fs::MetadataExt;
use tar::EntryType as T;

const OVERRIDE: &str = "user.containers.override_stat";

fn xattr(p: &Path, name: &str) -> Option<String> {
    support::lgetxattr(p, name)
        .ok()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

#[test]
fn rootless_records_ownership_and_modes() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    give_to_u1(&s.dest);
    let mut t = Tar::new();
    t.entry("./", T::Directory, 0o755, (0, 0), 1_500_000_000, b"")
        .entry("plain", T::Regular, 0o644, (0, 0), 1_500_000_001, b"plain")
        .entry(
            "owned",
            T::Regular,
            0o640,
            (1000, 1001),
            1_500_000_001,
            b"owned",
        )
        .entry("readonly", T::Regular, 0o400, (0, 0), 1_500_000_001, b"ro")
        .entry("su", T::Regular, 0o4755, (0, 0), 1_500_000_001, b"su")
        .entry("ro-dir/", T::Directory, 0o555, (0, 0), 1_500_000_002, b"")
        .entry("ro-dir/f", T::Regular, 0o644, (0, 0), 1_500_000_003, b"f")
        .entry("sticky/", T::Directory, 0o1777, (0, 0), 1_500_000_002, b"")
        .symlink("link", "/etc/passwd")
        .entry("fifo", T::Fifo, 0o644, (0, 0), 1_500_000_004, b"")
        .device("null", T::Char, 1, 3)
        .pax(&[
            ("SCHILY.xattr.user.color", b"red"),
            ("SCHILY.xattr.trusted.md5", b"x"),
            ("SCHILY.xattr.security.capability", b"\x01\x00\x00\x02"),
        ])
        .file("xattrs", 0o644, b"x")
        .file("opq/.wh..wh..opq", 0o644, b"")
        .file(".wh.gone", 0o644, b"");
    let tar = t.bytes();
    let dest = s.dest.clone();
    let out = as_u1(|| {
        report(&archive::unpack(
            &tar[..],
            &dest,
            &UnpackOptions::rootless(),
        ))
    });
    assert!(out.starts_with("OK"), "{out}");
    let (uid, gid) = support::user_id("strata-u1");
    for p in [
        "", "plain", "owned", "su", "ro-dir", "ro-dir/f", "fifo", "xattrs",
    ] {
        let m = support::lstat_meta(s.p(p));
        assert_eq!((m.uid(), m.gid()), (uid, gid), "{p:?} is the caller's");
    }
    let mode = |p: &str| support::st_mode(s.p(p)) & 0o7777;
    assert_eq!(
        xattr(&s.dest, OVERRIDE).as_deref(),
        Some("0:0:0755"),
        "the root marks the layer"
    );
    assert_eq!(
        xattr(&s.p("plain"), OVERRIDE),
        None,
        "0:0 and the disk mode: no record"
    );
    assert_eq!(mode("plain"), 0o644);
    assert_eq!(
        xattr(&s.p("owned"), OVERRIDE).as_deref(),
        Some("1000:1001:0640")
    );
    assert_eq!(
        (
            mode("readonly"),
            xattr(&s.p("readonly"), OVERRIDE).as_deref()
        ),
        (0o600, Some("0:0:0400"))
    );
    assert_eq!(
        (mode("su"), xattr(&s.p("su"), OVERRIDE).as_deref()),
        (0o755, Some("0:0:4755")),
        "no setuid on disk"
    );
    assert_eq!(
        (mode("ro-dir"), xattr(&s.p("ro-dir"), OVERRIDE).as_deref()),
        (0o755, Some("0:0:0555"))
    );
    assert_eq!(
        (mode("sticky"), xattr(&s.p("sticky"), OVERRIDE)),
        (0o1777, None)
    );
    assert_eq!(support::lstat_meta(s.p("ro-dir")).mtime(), 1_500_000_002);
    assert_eq!(support::readlink(s.p("link")).unwrap(), b"/etc/passwd");
    assert_eq!(
        support::lstat_meta(s.p("fifo")).mode(),
        libc::S_IFIFO | 0o644
    );
    assert!(!support::exists(s.p("null")), "no device nodes rootless");
    assert_eq!(xattr(&s.p("xattrs"), "user.color").as_deref(), Some("red"));
    assert_eq!(xattr(&s.p("xattrs"), "trusted.md5"), None);
    assert_eq!(
        xattr(&s.p("opq"), "user.overlay.opaque").as_deref(),
        Some("y")
    );
    assert_eq!(xattr(&s.p("opq"), "trusted.overlay.opaque"), None);
    assert!(support::is_whiteout(s.p("gone")));
    let warnings: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings
        .iter()
        .any(|w| w.contains("\"null\"") && w.contains("device")));
    assert!(warnings.iter().any(|w| w.contains("trusted.md5")));
    assert!(warnings.iter().any(|w| w.contains("security.capability")));
    support::check();
}

#[test]
fn rootless_refused_layer_can_be_deleted_by_its_user() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    give_to_u1(&s.dest);
    let mut t = Tar::new();
    t.dir("ro", 0o555)
        .dir("ro/inner", 0o500)
        .file("ro/inner/f", 0o400, b"f")
        .symlink("link", &s.sentinel.display().to_string())
        .file("link/x", 0o644, b"escaped");
    let tar = t.bytes();
    let dest = s.dest.clone();
    let out = as_u1(|| {
        let r = report(&archive::unpack(
            &tar[..],
            &dest,
            &UnpackOptions::rootless(),
        ));
        // The caller owns what it stages: everything below dest.
        let removed = std::fs::read_dir(&dest).and_then(|entries| {
            for e in entries {
                let p = e?.path();
                if p.symlink_metadata()?.is_dir() {
                    std::fs::remove_dir_all(&p)?;
                } else {
                    std::fs::remove_file(&p)?;
                }
            }
            Ok(())
        });
        match removed {
            Ok(()) => format!("{r}\nREMOVED"),
            Err(e) => format!("{r}\nremove: {e}"),
        }
    });
    assert!(out.starts_with("ERR Hostile"), "{out}");
    assert!(out.contains("link/x"), "{out}");
    assert!(out.ends_with("REMOVED"), "{out}");
    assert!(support::ls(&s.dest).is_empty());
    s.assert_outside_unchanged();
}

#[test]
fn rootless_trusted_marks_fail_cleanly() {
    let _c = support::count_case(SUITE);
    let s = Scene::new();
    give_to_u1(&s.dest);
    let mut t = Tar::new();
    t.dir("d", 0o755).file("d/.wh..wh..opq", 0o644, b"");
    let tar = t.bytes();
    let dest = s.dest.clone();
    let opts = UnpackOptions {
        marks: archive::Marks::Trusted,
        ..UnpackOptions::rootless()
    };
    let out = as_u1(|| report(&archive::unpack(&tar[..], &dest, &opts)));
    assert!(out.starts_with("ERR Io"), "{out}");
    assert!(
        out.contains("trusted.overlay.opaque") && out.contains("d/.wh..wh..opq"),
        "{out}"
    );
    support::check();
}
