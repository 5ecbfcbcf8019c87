//! Symlinks in the layers must never make the daemon read or write outside them.

use crate::support::*;
use std::fs;
use std::os::unix::fs::MetadataExt;

/// A directory outside every layer, with a file in it.
fn outside(lay: &Layout) -> std::path::PathBuf {
    let o = lay.dir.dir("outside");
    write(o.join("secret"), "outside secret");
    chmod(&o, 0o755).unwrap();
    o
}

#[test]
fn symlink_to_outside_is_an_ordinary_symlink_in_the_view() {
    let lay = Layout::new(1);
    let out = outside(&lay);
    ln_s(&out, lay.l(0, "escape"));
    let before = snapshot(&out);
    let m = lay.mount();
    assert!(lstat_meta(lay.m("escape")).file_type().is_symlink());
    assert_eq!(fs::read_link(lay.m("escape")).unwrap(), out);
    // metadata changes apply to the link (copied up), never to its target
    lchown(lay.m("escape"), 1234, 1234).unwrap();
    lsetxattr(lay.m("escape"), "trusted.tag", b"1").unwrap();
    lutimens(lay.m("escape"), (7, 0), (7, 0)).unwrap();
    // removing the link removes the link only
    fs::remove_file(lay.m("escape")).unwrap();
    m.umount();
    assert_same_tree("outside before", &before, "outside after", &snapshot(&out));
    assert!(is_whiteout(lay.u("escape")));
}

#[test]
fn upper_symlink_over_lower_dir_hides_it_and_rm_does_not_follow() {
    let lay = Layout::new(1);
    let out = outside(&lay);
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/lowerfile"), "x");
    ln_s(&out, lay.u("d"));
    let before = snapshot(&out);
    let m = lay.mount();
    assert!(lstat_meta(lay.m("d")).file_type().is_symlink());
    assert_eq!(ls(&lay.mnt), strs(&["d"]));
    fs::remove_file(lay.m("d")).unwrap();
    m.umount();
    assert_same_tree("outside before", &before, "outside after", &snapshot(&out));
}

/// The upper gets a symlink where the daemon will next need a directory, while the
/// mount is live; then a copy-up must go there. Nothing may land outside.
#[test]
fn copy_up_never_follows_a_symlink_planted_in_the_upper() {
    let lay = Layout::new(1);
    let out = outside(&lay);
    mkdirs(lay.l(0, "a/b"));
    write(lay.l(0, "a/b/file"), "lower data");
    write(lay.l(0, "a/other"), "other");
    let before = snapshot(&out);
    let m = lay.mount();
    assert_eq!(read_string(lay.m("a/b/file")), "lower data");
    // attacker (with write access to the upper dir) plants a/ -> outside
    ln_s(&out, lay.u("a"));
    let _ = chmod(lay.m("a/b/file"), 0o600);
    let _ = fs::write(lay.m("a/b/file"), "through the mount");
    let _ = fs::write(lay.m("a/created"), "created");
    let _ = fs::create_dir(lay.m("a/newdir"));
    let _ = fs::remove_file(lay.m("a/other"));
    let _ = lsetxattr(lay.m("a/b"), "user.x", b"1");
    drop(m);
    assert_same_tree("outside before", &before, "outside after", &snapshot(&out));
}

/// The daemon (root) must not follow a symlink planted in the upper in place of
/// a directory it has already copied up. The operations run as `nobody`, who can't
/// write in `outside`: if the caller's own path walk meets the symlink (the merged
/// view shows it once the kernel looks again) its writes fail with EACCES, so an
/// entry that appears outside can only come from the daemon.
#[test]
fn create_never_follows_a_symlink_replacing_an_upper_dir() {
    let lay = Layout::new(1);
    let out = outside(&lay);
    mkdirs(lay.l(0, "a"));
    chmod(lay.l(0, "a"), 0o777).unwrap();
    write(lay.l(0, "a/f"), "f");
    write(lay.l(0, "a/g"), "g");
    let m = lay.mount();
    write(lay.m("a/first"), "1"); // a/ now exists in the upper
    assert!(lstat_meta(lay.u("a")).is_dir());
    fs::rename(lay.u("a"), lay.u("a.moved")).unwrap();
    ln_s(&out, lay.u("a"));
    type Op<'a> = (&'a str, Box<dyn Fn() + Send + Sync + 'a>);
    let ops: Vec<Op> = vec![
        (
            "create a/second",
            Box::new(|| drop(fs::write(lay.m("a/second"), "2"))),
        ),
        (
            "overwrite a/first",
            Box::new(|| drop(fs::write(lay.m("a/first"), "x"))),
        ),
        (
            "unlink a/first",
            Box::new(|| drop(fs::remove_file(lay.m("a/first")))),
        ),
        (
            "mkdir a/dir",
            Box::new(|| drop(fs::create_dir(lay.m("a/dir")))),
        ),
        (
            "symlink a/sym",
            Box::new(|| drop(std::os::unix::fs::symlink("x", lay.m("a/sym")))),
        ),
        (
            "mkfifo a/fifo",
            Box::new(|| drop(mkfifo(lay.m("a/fifo"), 0o600))),
        ),
        (
            "link a/hl",
            Box::new(|| drop(fs::hard_link(lay.m("a/g"), lay.m("a/hl")))),
        ),
        (
            "rename a/f a/f2",
            Box::new(|| drop(fs::rename(lay.m("a/f"), lay.m("a/f2")))),
        ),
        (
            "unlink lower a/g",
            Box::new(|| drop(fs::remove_file(lay.m("a/g")))),
        ),
    ];
    let mut escaped = Vec::new();
    for (name, f) in &ops {
        let before = snapshot(&out);
        as_user(&Creds::user(NOBODY, NOGROUP), f);
        let after = snapshot(&out);
        if before != after {
            let new: Vec<_> = after
                .keys()
                .filter(|k| !before.contains_key(*k))
                .cloned()
                .collect();
            escaped.push(format!("{name} (outside now has {new:?})"));
        }
    }
    drop(m);
    assert!(
        escaped.is_empty(),
        "operations that wrote outside the layers through a symlink planted in the upper: {escaped:?}"
    );
}

#[test]
fn lookup_never_follows_a_symlink_replacing_a_lower_dir() {
    let lay = Layout::new(1);
    let out = outside(&lay);
    mkdirs(lay.l(0, "a/b"));
    write(lay.l(0, "a/b/inner"), "inner");
    let m = lay.mount();
    assert_eq!(read_string(lay.m("a/b/inner")), "inner");
    // swap the lower directory for a symlink to outside
    fs::rename(lay.l(0, "a/b"), lay.l(0, "a/b.orig")).unwrap();
    ln_s(&out, lay.l(0, "a/b"));
    let got = fs::read(lay.m("a/b/secret"));
    if let Ok(data) = &got {
        assert_ne!(
            data.as_slice(),
            b"outside secret",
            "the daemon read a file outside its layers through a planted symlink"
        );
    }
    // copying up what is now under the symlink must not touch outside either
    let before = snapshot(&out);
    let _ = chmod(lay.m("a/b/secret"), 0o600);
    let _ = fs::write(lay.m("a/b/secret"), "pwned");
    let _ = fs::write(lay.m("a/b/dropped"), "pwned");
    drop(m);
    assert_same_tree("outside before", &before, "outside after", &snapshot(&out));
    assert_eq!(lstat_meta(out.join("secret")).mode() & 0o777, 0o644);
}

#[test]
fn workdir_symlink_planted_during_mount_is_not_followed() {
    let lay = Layout::new(1);
    let out = outside(&lay);
    write(lay.l(0, "f"), "f");
    let before = snapshot(&out);
    let m = lay.mount();
    let w = lay.work.join("work");
    if w.is_dir() {
        fs::rename(&w, lay.work.join("work.moved")).unwrap();
        ln_s(&out, &w);
    }
    let _ = chmod(lay.m("f"), 0o600);
    let _ = fs::write(lay.m("g"), "g");
    drop(m);
    assert_same_tree("outside before", &before, "outside after", &snapshot(&out));
}

/// Crafted redirects in a layer may not lead outside the lower layers: neither with
/// ".." nor through a symlink inside a lower.
#[test]
fn crafted_redirects_never_leave_the_layers() {
    let lay = Layout::new(1);
    let out = outside(&lay); // <test dir>/outside/secret
    ln_s(&out, lay.l(0, "link-out"));
    mkdirs(lay.l(0, "real"));
    write(lay.l(0, "real/inside"), "inside");
    for (name, redirect) in [
        ("dotdot", "/../outside".to_string()),
        ("deep-dotdot", "/real/../../outside".to_string()),
        ("rel-dotdot", "../outside".to_string()),
        ("via-symlink", "/link-out".to_string()),
        ("absolute-host", out.display().to_string()),
    ] {
        mkdirs(lay.u(name));
        lsetxattr(lay.u(name), "trusted.overlay.redirect", redirect.as_bytes()).unwrap();
    }
    // control: a sound redirect is followed
    mkdirs(lay.u("good"));
    lsetxattr(lay.u("good"), "trusted.overlay.redirect", b"/real").unwrap();
    let m = lay.mount();
    assert_eq!(
        ls(lay.m("good")),
        strs(&["inside"]),
        "a valid redirect is followed"
    );
    for name in [
        "dotdot",
        "deep-dotdot",
        "rel-dotdot",
        "via-symlink",
        "absolute-host",
    ] {
        let listing = fs::read_dir(lay.m(name))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        assert!(
            !listing.iter().any(|n| n == "secret"),
            "{name}: a crafted redirect exposed a directory outside the layers: {listing:?}"
        );
        if let Ok(data) = fs::read(lay.m(format!("{name}/secret"))) {
            panic!(
                "{name}: read outside the layers: {:?}",
                String::from_utf8_lossy(&data)
            );
        }
    }
    drop(m);
}
