//! Bad input: non-zero exit, one line on stderr naming the path, nothing mounted, no
//! layer changed, no process left.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Case {
    d: TestDir,
    l: PathBuf,
    l2: PathBuf,
    u: PathBuf,
    w: PathBuf,
    mnt: PathBuf,
}

fn case() -> Case {
    let d = TestDir::new();
    let l = d.dir("lower");
    let l2 = d.dir("lower2");
    let u = d.dir("upper");
    let w = d.dir("work");
    let mnt = d.dir("mnt");
    write(l.join("f"), "f");
    mkdirs(l.join("sub"));
    write(u.join("g"), "g");
    write(d.join("afile"), "not a dir");
    Case {
        d,
        l,
        l2,
        u,
        w,
        mnt,
    }
}

/// Runs `strata mount -o opts mnt` and checks everything a rejected mount must satisfy.
/// `names`: the error line must contain at least one of these.
#[track_caller]
fn expect_rejected(c: &Case, opts: &str, mnt: &Path, names: &[&Path]) -> CmdOut {
    let before = snapshot(c.d.path());
    let mounts_before = mounts_under(c.d.path()).len();
    let out = strata_mount(opts, mnt);
    let guard = Mount::guard(mnt);
    let mounts_after = mounts_under(c.d.path()).len();
    assert!(
        !out.ok(),
        "strata mount -o {opts} {} succeeded but must fail",
        mnt.display()
    );
    assert_eq!(
        mounts_after, mounts_before,
        "a rejected mount left something mounted (-o {opts})"
    );
    let err = out.stderr.trim_end();
    assert_eq!(
        err.lines().count(),
        1,
        "want exactly one line on stderr for -o {opts}, got: {:?}",
        out.stderr
    );
    assert!(
        names.iter().any(|n| err.contains(n.to_str().unwrap())),
        "the error {err:?} names none of {names:?}"
    );
    let mnt2 = mnt.to_path_buf();
    assert!(
        wait_until(|| procs_with_arg(&mnt2).is_empty()),
        "processes left after a rejected mount"
    );
    let after = snapshot(c.d.path());
    assert_same_tree("tree before", &before, "tree after", &after);
    drop(guard);
    out
}

fn opts(l: &str, u: &Path, w: &Path) -> String {
    format!(
        "lowerdir={l},upperdir={},workdir={}",
        u.display(),
        w.display()
    )
}

#[test]
fn missing_lower() {
    let c = case();
    let nope = c.d.join("does-not-exist");
    expect_rejected(
        &c,
        &opts(nope.to_str().unwrap(), &c.u, &c.w),
        &c.mnt,
        &[&nope],
    );
    expect_rejected(
        &c,
        &format!("lowerdir={}:{}", c.l.display(), nope.display()),
        &c.mnt,
        &[&nope],
    );
}

#[test]
fn lower_is_a_file() {
    let c = case();
    let f = c.d.join("afile");
    expect_rejected(&c, &opts(f.to_str().unwrap(), &c.u, &c.w), &c.mnt, &[&f]);
}

#[test]
fn missing_or_file_upper() {
    let c = case();
    let nope = c.d.join("no-upper");
    expect_rejected(
        &c,
        &opts(c.l.to_str().unwrap(), &nope, &c.w),
        &c.mnt,
        &[&nope],
    );
    let f = c.d.join("afile");
    expect_rejected(&c, &opts(c.l.to_str().unwrap(), &f, &c.w), &c.mnt, &[&f]);
}

#[test]
fn same_directory_twice() {
    let c = case();
    let l = c.l.to_str().unwrap();
    expect_rejected(&c, &format!("lowerdir={l}:{l}"), &c.mnt, &[&c.l]);
    expect_rejected(&c, &opts(l, &c.l, &c.w), &c.mnt, &[&c.l]);
    expect_rejected(
        &c,
        &opts(&format!("{l}:{}", c.l2.display()), &c.l2, &c.w),
        &c.mnt,
        &[&c.l2],
    );
    expect_rejected(&c, &opts(l, &c.u, &c.u), &c.mnt, &[&c.u]);
}

#[test]
fn upper_inside_lower_and_lower_inside_upper() {
    let c = case();
    let inner = c.l.join("sub");
    expect_rejected(
        &c,
        &opts(c.l.to_str().unwrap(), &inner, &c.w),
        &c.mnt,
        &[&inner, &c.l],
    );
    let uinner = c.d.dir("upper/inner");
    expect_rejected(
        &c,
        &opts(uinner.to_str().unwrap(), &c.u, &c.w),
        &c.mnt,
        &[&uinner, &c.u],
    );
}

#[test]
fn workdir_on_another_filesystem() {
    let c = case();
    let t = Tmpfs::new(&c.d.join("tmpfs"));
    let w = t.path.join("work");
    mkdirs(&w);
    expect_rejected(&c, &opts(c.l.to_str().unwrap(), &c.u, &w), &c.mnt, &[&w]);
}

#[test]
fn missing_mountpoint() {
    let c = case();
    let nope = c.d.join("no-mnt");
    expect_rejected(
        &c,
        &opts(c.l.to_str().unwrap(), &c.u, &c.w),
        &nope,
        &[&nope],
    );
}

#[test]
fn mountpoint_already_mounted() {
    let c = case();
    let t = Tmpfs::new(&c.mnt);
    let before = mounts()
        .into_iter()
        .filter(|m| m.mount_point == t.path)
        .count();
    let snap = snapshot(&c.l);
    let out = strata_mount(&opts(c.l.to_str().unwrap(), &c.u, &c.w), &c.mnt);
    let after: Vec<MountEntry> = mounts()
        .into_iter()
        .filter(|m| m.mount_point == t.path)
        .collect();
    let stacked = after.len() > before;
    if stacked {
        let _ = run(Command::new("umount").arg(&c.mnt));
    }
    assert!(!out.ok(), "mounting over an existing mount point must fail");
    assert!(
        !stacked,
        "strata stacked a mount on an existing mount point"
    );
    assert_eq!(
        out.stderr.trim_end().lines().count(),
        1,
        "stderr: {:?}",
        out.stderr
    );
    assert!(
        out.stderr.contains(c.mnt.to_str().unwrap()),
        "stderr: {:?}",
        out.stderr
    );
    assert_same_tree("lower before", &snap, "lower after", &snapshot(&c.l));
}

#[test]
fn mountpoint_already_a_strata_mount() {
    let c = case();
    let _m = Mount::new(&opts(c.l.to_str().unwrap(), &c.u, &c.w), &c.mnt);
    let other_u = c.d.dir("upper2");
    let other_w = c.d.dir("work2");
    let n = mounts().iter().filter(|m| m.mount_point == c.mnt).count();
    let out = strata_mount(&opts(c.l2.to_str().unwrap(), &other_u, &other_w), &c.mnt);
    let n2 = mounts().iter().filter(|m| m.mount_point == c.mnt).count();
    if n2 > n {
        let _ = run(Command::new("umount").arg("-l").arg(&c.mnt));
    }
    assert!(!out.ok(), "second mount on the same mount point must fail");
    assert_eq!(n2, n, "a second mount was stacked");
    assert_eq!(
        out.stderr.trim_end().lines().count(),
        1,
        "stderr: {:?}",
        out.stderr
    );
    assert!(
        out.stderr.contains(c.mnt.to_str().unwrap()),
        "stderr: {:?}",
        out.stderr
    );
    assert_eq!(
        ls(&c.mnt),
        strs(&["f", "g", "sub"]),
        "the first mount still serves"
    );
}

#[test]
fn unknown_option_exits_2() {
    let c = case();
    let before = snapshot(c.d.path());
    let o = format!("{},frobnicate", opts(c.l.to_str().unwrap(), &c.u, &c.w));
    let out = strata_mount(&o, &c.mnt);
    let _g = Mount::guard(&c.mnt);
    assert_eq!(
        out.code(),
        Some(2),
        "exit status for an unknown option; stderr {:?}",
        out.stderr
    );
    assert!(!is_mounted(&c.mnt));
    assert!(
        out.stderr.contains("frobnicate"),
        "stderr: {:?}",
        out.stderr
    );
    assert_same_tree("before", &before, "after", &snapshot(c.d.path()));
}

#[test]
fn no_usable_dev_fuse() {
    let c = case();
    let before = snapshot(c.d.path());
    let errf = c.d.join("..").join(format!(
        "{}.stderr",
        c.d.path().file_name().unwrap().to_str().unwrap()
    ));
    let script = r#"
        mount -t tmpfs none /dev || exit 99
        "$STRATA" mount -o "$OPTS" "$MNT" 2>"$ERRF"
        rc=$?
        if grep -q " $MNT " /proc/self/mountinfo; then
            echo MOUNTED
            "$STRATA" umount "$MNT" >/dev/null 2>&1 || umount -l "$MNT"
        fi
        exit $rc
    "#;
    let out = run(Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("STRATA", strata_bin())
        .env("OPTS", opts(c.l.to_str().unwrap(), &c.u, &c.w))
        .env("MNT", &c.mnt)
        .env("ERRF", &errf));
    let err = std::fs::read_to_string(&errf).unwrap_or_default();
    let _ = std::fs::remove_file(&errf);
    assert_ne!(
        out.code(),
        Some(99),
        "test setup: could not hide /dev: {}",
        out.stderr
    );
    assert!(!out.ok(), "strata mount without /dev/fuse succeeded");
    assert!(
        !out.stdout.contains("MOUNTED"),
        "something was mounted without /dev/fuse"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "stderr: {err:?}");
    assert!(
        err.contains("/dev/fuse"),
        "the error must name /dev/fuse: {err:?}"
    );
    let mnt = c.mnt.clone();
    assert!(
        wait_until(|| procs_with_arg(&mnt).is_empty()),
        "processes left"
    );
    assert_same_tree("before", &before, "after", &snapshot(c.d.path()));
}

#[test]
fn mountpoint_is_a_file() {
    let c = case();
    let f = c.d.join("afile");
    expect_rejected(&c, &opts(c.l.to_str().unwrap(), &c.u, &c.w), &f, &[&f]);
}

#[test]
fn empty_lowerdir() {
    let c = case();
    let before = snapshot(c.d.path());
    let out = strata_mount("lowerdir=", &c.mnt);
    let _g = Mount::guard(&c.mnt);
    assert!(!out.ok() && !is_mounted(&c.mnt), "lowerdir= accepted");
    assert_eq!(
        out.stderr.trim_end().lines().count(),
        1,
        "stderr: {:?}",
        out.stderr
    );
    assert_same_tree("before", &before, "after", &snapshot(c.d.path()));
}
