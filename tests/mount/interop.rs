//! Interoperability with kernel overlayfs, both ways: an upper written through strata
//! reads identically through the kernel (redirect_dir=on), and an upper written through
//! the kernel reads identically through strata.

use crate::support::*;
use std::fs;
use std::io::Write;
use std::path::Path;

fn build_lowers(lay: &Layout) {
    // lower1 (bottom)
    mkdirs(lay.l(1, "etc/conf.d"));
    write(lay.l(1, "etc/passwd"), "root:x:0:0\n");
    write(lay.l(1, "etc/conf.d/a.conf"), "a=1\n");
    write(lay.l(1, "etc/conf.d/b.conf"), "b=2\n");
    mkdirs(lay.l(1, "usr/lib/pkg"));
    write(lay.l(1, "usr/lib/pkg/data.bin"), vec![7u8; 70_000]);
    write(lay.l(1, "usr/lib/pkg/readme"), "readme");
    mkdirs(lay.l(1, "var/empty"));
    mkdirs(lay.l(1, "var/cache/deep/er"));
    write(lay.l(1, "var/cache/deep/er/x"), "x");
    mkdirs(lay.l(1, "recreate/sub"));
    write(lay.l(1, "recreate/sub/old"), "old");
    write(lay.l(1, "recreate/old"), "old");
    mkdirs(lay.l(1, "merged"));
    write(lay.l(1, "merged/from1"), "1");
    // lower0 (top)
    mkdirs(lay.l(0, "etc"));
    write(lay.l(0, "etc/hosts"), "127.0.0.1 localhost\n");
    lchown(lay.l(0, "etc/hosts"), 1000, 1000).unwrap();
    chmod(lay.l(0, "etc/hosts"), 0o664).unwrap();
    lsetxattr(lay.l(0, "etc/hosts"), "user.origin", b"lower0").unwrap();
    ln_s("hosts", lay.l(0, "etc/hosts.link"));
    write(lay.l(0, "etc/motd"), "welcome\n");
    mkdirs(lay.l(0, "merged"));
    write(lay.l(0, "merged/from0"), "0");
    mkdirs(lay.l(0, "bin"));
    write(lay.l(0, "bin/tool"), "#!/bin/sh\necho tool\n");
    chmod(lay.l(0, "bin/tool"), 0o755).unwrap();
    write(lay.l(0, "bin/replaced"), "old target");
    mkdirs(lay.l(0, "home/user"));
    lchown(lay.l(0, "home/user"), 1000, 1000).unwrap();
    chmod(lay.l(0, "home/user"), 0o700).unwrap();
    write(lay.l(0, "home/user/.profile"), "export A=1\n");
    lchown(lay.l(0, "home/user/.profile"), 1000, 1000).unwrap();
}

/// A mixed sequence of modifications, as any user of a root filesystem would make.
fn ops_a(root: &Path) {
    let p = |r: &str| root.join(r);
    // create + write
    write(p("etc/new.conf"), "new=1\n");
    // write into a lower file (copy-up), truncate, chmod, chown, utimens
    fs::OpenOptions::new()
        .append(true)
        .open(p("etc/passwd"))
        .unwrap()
        .write_all(b"user:x:1000:1000\n")
        .unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(p("usr/lib/pkg/data.bin"))
        .unwrap()
        .set_len(1234)
        .unwrap();
    chmod(p("etc/motd"), 0o600).unwrap();
    lchown(p("etc/conf.d/a.conf"), 2000, 3000).unwrap();
    lutimens(
        p("usr/lib/pkg/readme"),
        (1_000_000_000, 0),
        (1_000_000_000, 0),
    )
    .unwrap();
    // mkdir with contents
    fs::create_dir_all(p("opt/app/bin")).unwrap();
    write(p("opt/app/bin/run"), "run");
    chmod(p("opt/app"), 0o750).unwrap();
    // rmdir of a lower dir, rm -r of a lower tree, unlink of a lower file
    fs::remove_dir(p("var/empty")).unwrap();
    fs::remove_dir_all(p("var/cache")).unwrap();
    fs::remove_file(p("etc/conf.d/b.conf")).unwrap();
    // renames: lower file across dirs, upper file, lower dir, merged dir, over a file
    fs::rename(p("etc/conf.d/a.conf"), p("etc/a.conf")).unwrap();
    fs::rename(p("etc/new.conf"), p("etc/newer.conf")).unwrap();
    fs::rename(p("usr/lib/pkg"), p("usr/pkg")).unwrap();
    fs::rename(p("merged"), p("merged-renamed")).unwrap();
    write(p("merged-renamed/fromup"), "u");
    fs::rename(p("etc/motd"), p("bin/replaced")).unwrap();
    // symlinks and hard links
    std::os::unix::fs::symlink("../etc/hosts", p("bin/hosts-link")).unwrap();
    fs::hard_link(p("bin/tool"), p("bin/tool-hardlink")).unwrap();
    // xattrs
    lsetxattr(p("etc/passwd"), "user.checked", b"yes").unwrap();
    lsetxattr(p("home/user"), "user.quota", b"10G").unwrap();
    lremovexattr(p("etc/hosts"), "user.origin").unwrap();
    // opaque re-creation
    fs::remove_dir_all(p("recreate")).unwrap();
    fs::create_dir(p("recreate")).unwrap();
    write(p("recreate/fresh"), "fresh");
    // a fifo, a file in a 0700 dir
    mkfifo(p("etc/fifo"), 0o620).unwrap();
    write(p("home/user/.history"), "ls\n");
}

/// More modifications on top of `ops_a`, through the other implementation.
fn ops_b(root: &Path) {
    let p = |r: &str| root.join(r);
    fs::rename(p("usr/pkg"), p("opt/pkg")).unwrap(); // a redirected dir moved again
    write(p("opt/pkg/added"), "added");
    fs::remove_file(p("opt/pkg/readme")).unwrap();
    fs::create_dir(p("var/empty")).unwrap(); // over a whiteout
    write(p("var/empty/now"), "now");
    fs::remove_dir_all(p("recreate")).unwrap();
    fs::rename(p("etc/a.conf"), p("etc/conf.d/a.conf")).unwrap();
    chmod(p("etc/passwd"), 0o640).unwrap();
    fs::remove_file(p("bin/tool")).unwrap(); // one name of the hard-linked pair
    lsetxattr(p("merged-renamed"), "user.renamed", b"1").unwrap();
}

fn check_expectations(t: &Tree) {
    let has = |k: &str| t.contains_key(k);
    assert!(!has("etc/new.conf") && has("etc/newer.conf"));
    assert!(!has("var/empty") || t["var/empty"].kind == 'd');
    assert!(!has("var/cache"));
    assert!(!has("etc/conf.d/b.conf"));
    assert!(has("merged-renamed/from0") && has("merged-renamed/from1"));
    assert_eq!(t["bin/replaced"].content.as_deref(), Some("\"welcome\\n\""));
    assert_eq!(t["bin/hosts-link"].target.as_deref(), Some("../etc/hosts"));
    assert!(!t["etc/hosts"].xattrs.contains_key("user.origin"));
}

#[test]
fn strata_upper_reads_identically_through_kernel_overlayfs() {
    let lay = Layout::new(2);
    build_lowers(&lay);
    let m = lay.mount();
    ops_a(&lay.mnt);
    let s = snapshot(&lay.mnt);
    let sg = link_groups(&lay.mnt, &s);
    m.umount();
    check_expectations(&s);
    assert!(s.contains_key("usr/pkg/data.bin") && !s.contains_key("usr/lib/pkg"));
    assert!(!s.contains_key("recreate/old") && s.contains_key("recreate/fresh"));
    assert_eq!(
        sg,
        vec![strs(&["bin/tool", "bin/tool-hardlink"])],
        "hard links in strata"
    );

    // strata again, after a remount
    let m = lay.mount();
    let s2 = snapshot(&lay.mnt);
    m.umount();
    assert_same_tree("strata", &s, "strata after remount", &s2);

    // kernel overlayfs
    let k = lay.kernel_mount();
    let kt = snapshot(&k.mnt);
    let kg = link_groups(&k.mnt, &kt);
    k.umount();
    assert_same_tree("strata", &s, "kernel overlayfs", &kt);
    assert_eq!(sg, kg, "hard link groups");
}

#[test]
fn kernel_upper_reads_identically_through_strata() {
    let lay = Layout::new(2);
    build_lowers(&lay);
    let k = lay.kernel_mount();
    ops_a(&k.mnt);
    let kt = snapshot(&k.mnt);
    let kg = link_groups(&k.mnt, &kt);
    k.umount();
    check_expectations(&kt);

    let m = lay.mount();
    let s = snapshot(&lay.mnt);
    let sg = link_groups(&lay.mnt, &s);
    m.umount();
    assert_same_tree("kernel overlayfs", &kt, "strata", &s);
    assert_eq!(kg, sg, "hard link groups");
}

#[test]
fn alternating_strata_and_kernel_writes() {
    let lay = Layout::new(2);
    build_lowers(&lay);
    // strata writes, the kernel writes more, strata reads
    let m = lay.mount();
    ops_a(&lay.mnt);
    m.umount();
    let k = lay.kernel_mount();
    ops_b(&k.mnt);
    let kt = snapshot(&k.mnt);
    k.umount();
    assert!(kt.contains_key("opt/pkg/added") && kt.contains_key("opt/pkg/data.bin"));
    assert!(!kt.contains_key("recreate"));
    let m = lay.mount();
    let s = snapshot(&lay.mnt);
    m.umount();
    assert_same_tree("kernel overlayfs", &kt, "strata", &s);
}

#[test]
fn alternating_kernel_and_strata_writes() {
    let lay = Layout::new(2);
    build_lowers(&lay);
    // the kernel writes, strata writes more, the kernel reads
    let k = lay.kernel_mount();
    ops_a(&k.mnt);
    k.umount();
    let m = lay.mount();
    ops_b(&lay.mnt);
    let s = snapshot(&lay.mnt);
    m.umount();
    assert!(s.contains_key("opt/pkg/added") && s.contains_key("opt/pkg/data.bin"));
    let k = lay.kernel_mount();
    let kt = snapshot(&k.mnt);
    k.umount();
    assert_same_tree("strata", &s, "kernel overlayfs", &kt);
}

#[test]
fn kernel_reuses_workdir_left_by_strata_and_back() {
    // The same workdir serves both, one after the other.
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "f");
    let m = lay.mount();
    write(lay.m("g"), "g");
    chmod(lay.m("f"), 0o600).unwrap();
    m.umount();
    let k = KernelOverlay::new(
        &format!(
            "{},upperdir={},workdir={},redirect_dir=on",
            lay.lowerdir_opt(),
            lay.upper.display(),
            lay.work.display()
        ),
        &lay.dir.dir("kmnt"),
    );
    write(k.path("h"), "h");
    fs::remove_file(k.path("f")).unwrap();
    k.umount();
    let m = lay.mount();
    assert_eq!(ls(&lay.mnt), strs(&["g", "h"]));
    m.umount();
}

#[test]
fn kernel_relative_redirect_then_strata_moves_the_parent() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "p/x/sub"));
    write(lay.l(0, "p/x/sub/f"), "deep");
    write(lay.l(0, "p/x/g"), "g");
    let k = lay.kernel_mount();
    fs::rename(k.path("p/x"), k.path("p/y")).unwrap(); // same parent: relative redirect
    k.umount();
    assert_eq!(
        lgetxattr(lay.u("p/y"), "trusted.overlay.redirect").ok(),
        Some(b"x".to_vec()),
        "kernel sanity: relative redirect"
    );
    let m = lay.mount();
    assert_eq!(
        ls(lay.m("p/y")),
        strs(&["g", "sub"]),
        "strata follows a relative redirect"
    );
    fs::rename(lay.m("p"), lay.m("q")).unwrap();
    fs::rename(lay.m("q/y/sub"), lay.m("q/z")).unwrap();
    assert_eq!(read_string(lay.m("q/z/f")), "deep");
    assert_eq!(ls(lay.m("q/y")), strs(&["g"]));
    let s = snapshot(&lay.mnt);
    m.umount();
    let m = lay.mount();
    assert_same_tree("strata", &s, "strata after remount", &snapshot(&lay.mnt));
    m.umount();
    let k = lay.kernel_mount();
    let kt = snapshot(&k.mnt);
    k.umount();
    assert_same_tree("strata", &s, "kernel overlayfs", &kt);
}
