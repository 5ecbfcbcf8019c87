//! Layers built on layers: an upper (with whiteouts, opaque dirs, redirects) used as
//! a lower of the next mount, as container images do; redirects of directories
//! renamed inside renamed directories.

use crate::lookup::strata_vs_kernel;
use crate::support::*;
use std::fs;
use std::path::Path;

#[test]
fn child_of_a_renamed_directory_renamed_out() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "a/b"));
    write(lay.l(0, "a/b/f"), "f");
    write(lay.l(0, "a/top"), "t");
    let m = lay.mount();
    fs::rename(lay.m("a"), lay.m("d")).unwrap();
    fs::rename(lay.m("d/b"), lay.m("c")).unwrap();
    assert_eq!(read_string(lay.m("c/f")), "f");
    assert_eq!(ls(lay.m("d")), strs(&["top"]));
    m.umount();
    let m = lay.mount();
    assert_eq!(ls(&lay.mnt), strs(&["c", "d"]));
    assert_eq!(read_string(lay.m("c/f")), "f", "after remount");
    assert_eq!(ls(lay.m("d")), strs(&["top"]));
    m.umount();
    strata_vs_kernel(&lay, true);
}

#[test]
fn directory_moved_into_a_renamed_directory() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "a"));
    mkdirs(lay.l(0, "x/y"));
    write(lay.l(0, "x/y/f"), "f");
    let m = lay.mount();
    fs::rename(lay.m("a"), lay.m("b")).unwrap();
    fs::rename(lay.m("x/y"), lay.m("b/y")).unwrap();
    fs::rename(lay.m("b"), lay.m("c")).unwrap();
    assert_eq!(read_string(lay.m("c/y/f")), "f");
    m.umount();
    let m = lay.mount();
    assert_eq!(read_string(lay.m("c/y/f")), "f", "after remount");
    assert_eq!(ls(lay.m("x")), Vec::<String>::new());
    m.umount();
    strata_vs_kernel(&lay, true);
}

fn base_lower(l: &Path) {
    mkdirs(l.join("etc/app"));
    write(l.join("etc/app/conf"), "v1");
    write(l.join("etc/app/extra"), "extra");
    mkdirs(l.join("srv/data"));
    write(l.join("srv/data/d1"), "d1");
    mkdirs(l.join("old"));
    write(l.join("old/o"), "o");
    write(l.join("remove-me"), "r");
}

fn image_layer_ops(root: &Path) {
    let p = |r: &str| root.join(r);
    fs::rename(p("srv/data"), p("srv/moved")).unwrap();
    fs::remove_file(p("remove-me")).unwrap();
    fs::remove_dir_all(p("old")).unwrap();
    fs::create_dir(p("old")).unwrap();
    write(p("old/new"), "n");
    write(p("etc/app/conf"), "v2");
    fs::remove_file(p("etc/app/extra")).unwrap();
}

fn container_ops(root: &Path) {
    let p = |r: &str| root.join(r);
    write(p("srv/moved/d2"), "d2");
    chmod(p("srv/moved/d1"), 0o600).unwrap();
    fs::rename(p("srv/moved"), p("srv/final")).unwrap();
    write(p("old/another"), "a");
    write(p("remove-me"), "back");
}

/// Builds layer 2 (an upper made through strata or the kernel), then mounts
/// lowerdir=layer2:layer1 with a fresh upper through strata, works in it, and
/// compares with the kernel at each step.
fn stack(layer2_by_kernel: bool) {
    let d = TestDir::new();
    let l1 = d.dir("layer1");
    let l2 = d.dir("layer2");
    let w = d.dir("work");
    let mnt = d.dir("mnt");
    base_lower(&l1);
    let view1 = if layer2_by_kernel {
        let k = KernelOverlay::new(
            &format!(
                "lowerdir={},upperdir={},workdir={},redirect_dir=on",
                l1.display(),
                l2.display(),
                w.display()
            ),
            &mnt,
        );
        image_layer_ops(&k.mnt);
        let t = snapshot(&k.mnt);
        k.umount();
        t
    } else {
        let m = Mount::new(
            &format!(
                "lowerdir={},upperdir={},workdir={}",
                l1.display(),
                l2.display(),
                w.display()
            ),
            &mnt,
        );
        image_layer_ops(&mnt);
        let t = snapshot(&mnt);
        m.umount();
        t
    };
    assert!(view1.contains_key("srv/moved/d1"));
    // the committed layer as a lower: strata must show the same view read-only
    let lay = Layout {
        dir: d,
        lowers: vec![l2, l1],
        upper: PathBuf::new(),
        work: PathBuf::new(),
        mnt: mnt.clone(),
    };
    let m = lay.mount_ro();
    let ro = snapshot(&mnt);
    m.umount();
    assert_same_tree(
        "the view that made layer2",
        &view1,
        "lowerdir=layer2:layer1",
        &ro,
    );
    let k = lay.kernel_mount_ro();
    let kro = snapshot(&k.mnt);
    k.umount();
    assert_same_tree("strata lowerdir=layer2:layer1", &ro, "kernel", &kro);
    // and a container on top of it
    let lay = Layout {
        upper: lay.dir.dir("upper"),
        work: lay.dir.dir("work2"),
        ..lay
    };
    let m = lay.mount();
    container_ops(&mnt);
    let s = snapshot(&mnt);
    m.umount();
    assert!(s.contains_key("srv/final/d1") && s.contains_key("srv/final/d2"));
    assert_eq!(s["remove-me"].content.as_deref(), Some("\"back\""));
    assert!(!s.contains_key("old/o"));
    let k = lay.kernel_mount();
    let kt = snapshot(&k.mnt);
    k.umount();
    assert_same_tree("strata container", &s, "kernel container", &kt);
}

use std::path::PathBuf;

#[test]
fn strata_made_layer_as_a_lower() {
    stack(false);
}

#[test]
fn kernel_made_layer_as_a_lower() {
    stack(true);
}
