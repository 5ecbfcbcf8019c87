//! Seeded random sequences of operations, run once through kernel overlayfs and once
//! through strata on identical layers: every operation must give the same result
//! (success or the same errno), and the trees must be identical at the end, after
//! a remount, and when the kernel reads strata's upper.

use crate::support::*;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn pick(&mut self, v: &[&'static str]) -> &'static str {
        v[(self.next() % v.len() as u64) as usize]
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const DIRS: [&str; 5] = ["", "x", "x/y", "z", "z/w"];
const NAMES: [&str; 5] = ["a", "b", "c", "y", "w"];

pub(crate) fn build_lowers(l0: &Path, l1: &Path) {
    for (root, tag) in [(l1, "l1"), (l0, "l0")] {
        mkdirs(root.join("x/y"));
        mkdirs(root.join("z/w"));
        write(root.join(format!("x/{tag}-file")), tag);
        write(root.join(format!("z/w/{tag}")), tag);
    }
    write(l1.join("a"), "lower1 a");
    write(l1.join("x/a"), "lower1 x/a");
    write(l0.join("x/b"), "lower0 x/b");
    write(l1.join("x/y/c"), "lower1 x/y/c");
    write(l0.join("z/a"), "lower0 z/a");
    lsetxattr(l0.join("z/a"), "user.k", b"v0").unwrap();
    ln_s("../x/a", l0.join("z/b"));
    mkdirs(l1.join("z/c"));
    write(l1.join("z/c/deep"), "deep");
    chmod(l0.join("x/b"), 0o640).unwrap();
    lchown(l0.join("x/b"), 1000, 1000).unwrap();
}

/// rm -r that visits names in sorted order, so that a failure part-way leaves the
/// same state whatever order readdir returns (which is unspecified).
fn rm_rf_sorted(p: &Path) -> std::io::Result<()> {
    let m = fs::symlink_metadata(p)?;
    if !m.is_dir() {
        return fs::remove_file(p);
    }
    let mut names: Vec<_> = fs::read_dir(p)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for n in names {
        rm_rf_sorted(&p.join(n))?;
    }
    fs::remove_dir(p)
}

fn path(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn res<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => errname(e.raw_os_error().unwrap_or(-1)),
    }
}

/// One random operation on `root`; returns (description, result).
pub(crate) fn op(rng: &mut Rng, root: &Path) -> (String, String) {
    op_with(rng, root, false)
}

/// `no_dir_renames`: skip renames that involve a directory (the kernel refuses
/// directory redirects with userxattr, strata does them; see the README).
fn op_with(rng: &mut Rng, root: &Path, no_dir_renames: bool) -> (String, String) {
    let p = |s: &str| root.join(s);
    let a = path(rng.pick(&DIRS), rng.pick(&NAMES));
    let b = path(rng.pick(&DIRS), rng.pick(&NAMES));
    let n = rng.below(19);
    let is_dir = |s: &str| {
        fs::symlink_metadata(p(s))
            .map(|m| m.is_dir())
            .unwrap_or(false)
    };
    if no_dir_renames && (6..=8).contains(&n) && (is_dir(&a) || is_dir(&b)) {
        return (
            format!("skipped directory rename {a} {b}"),
            "skipped".into(),
        );
    }
    let r = match n {
        // O_NONBLOCK everywhere: opening a fifo for writing must not block
        0 => (
            "write",
            res(fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(p(&a))
                .and_then(|mut f| f.write_all(format!("written {a}").as_bytes()))),
        ),
        1 => (
            "append",
            res(fs::OpenOptions::new()
                .append(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(p(&a))
                .and_then(|mut f| f.write_all(b"+"))),
        ),
        2 => {
            let c = cstr(p(&a));
            (
                "truncate",
                res(cvt(unsafe { libc::truncate(c.as_ptr(), 3) })),
            )
        }
        3 => ("unlink", res(fs::remove_file(p(&a)))),
        4 => ("mkdir", res(fs::create_dir(p(&a)))),
        5 => ("rmdir", res(fs::remove_dir(p(&a)))),
        6 => ("rename", res(fs::rename(p(&a), p(&b)))),
        7 => (
            "rename_noreplace",
            res(renameat2(p(&a), p(&b), libc::RENAME_NOREPLACE)),
        ),
        8 => (
            "rename_exchange",
            res(renameat2(p(&a), p(&b), libc::RENAME_EXCHANGE)),
        ),
        9 => ("link", res(fs::hard_link(p(&a), p(&b)))),
        10 => ("symlink", res(std::os::unix::fs::symlink(&b, p(&a)))),
        11 => {
            // rootless runs keep the owner's rwx: their snapshots are taken as nobody
            let base = if no_dir_renames { 0o700 } else { 0o600 };
            ("chmod", res(chmod(p(&a), base + rng.below(0o100) as u32)))
        }
        12 => ("setxattr", res(lsetxattr(p(&a), "user.r", b"rv"))),
        13 => ("removexattr", res(lremovexattr(p(&a), "user.k"))),
        14 => ("rm_rf", res(rm_rf_sorted(&p(&a)))),
        15 => (
            "open_trunc",
            res(fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(p(&a))),
        ),
        16 => {
            let uid = *[0u32, 1500, 1501].get(rng.below(3) as usize).unwrap();
            let gid = *[0u32, 1500, 1600].get(rng.below(3) as usize).unwrap();
            ("chown", res(lchown(p(&a), uid, gid)))
        }
        17 => (
            "utimens",
            res(lutimens(p(&a), (1_111_111_111, 0), (1_222_222_222, 0))),
        ),
        _ => ("mkfifo", res(mkfifo(p(&a), 0o640))),
    };
    (format!("{} {a} {b}", r.0), r.1)
}

/// Runs the same random operations on both mounts in lockstep (as `creds` when
/// given) and compares the result of every operation and both trees after it.
fn lockstep(seed: u64, steps: usize, kroot: &Path, sroot: &Path, creds: Option<&Creds>) {
    lockstep_with(seed, steps, kroot, sroot, creds, false)
}

fn lockstep_with(
    seed: u64,
    steps: usize,
    kroot: &Path,
    sroot: &Path,
    creds: Option<&Creds>,
    no_dir_renames: bool,
) {
    let mut rk = Rng(seed);
    let mut rs = Rng(seed);
    let mut done: Vec<(String, String)> = Vec::new();
    for i in 0..steps {
        let (kr, sr) = match creds {
            Some(c) => as_user(c, || {
                (
                    op_with(&mut rk, kroot, no_dir_renames),
                    op_with(&mut rs, sroot, no_dir_renames),
                )
            }),
            None => (
                op_with(&mut rk, kroot, no_dir_renames),
                op_with(&mut rs, sroot, no_dir_renames),
            ),
        };
        assert_eq!(
            kr, sr,
            "seed {seed}: step {i} ({}) gave {} through the kernel, {} through strata; successful steps before: {:?}",
            kr.0, kr.1, sr.1,
            done.iter().filter(|d| d.1 == "ok").collect::<Vec<_>>()
        );
        done.push(kr.clone());
        let kt = snapshot(kroot);
        let st = snapshot(sroot);
        let (kg, sg) = (link_groups(kroot, &kt), link_groups(sroot, &st));
        assert_eq!(
            kg, sg,
            "seed {seed}: hard link groups differ after step {i} ({})",
            kr.0
        );
        if kt != st {
            let ok: Vec<_> = done.iter().filter(|d| d.1 == "ok").collect();
            eprintln!(
                "seed {seed}: trees differ after step {i} ({}); successful steps: {ok:?}",
                kr.0
            );
            assert_same_tree(
                &format!("kernel after step {i} ({})", kr.0),
                &kt,
                "strata",
                &st,
            );
        }
    }
}

#[allow(dead_code)]
fn run_sequence(seed: u64, steps: usize, root: &Path) -> Vec<(String, String)> {
    let mut rng = Rng(seed);
    (0..steps).map(|_| op(&mut rng, root)).collect()
}

fn differential(seed: u64) {
    let kl = Layout::new(2);
    build_lowers(&kl.lowers[0], &kl.lowers[1]);
    let sl = Layout::new(2);
    build_lowers(&sl.lowers[0], &sl.lowers[1]);
    let k = kl.kernel_mount();
    let m = sl.mount();
    lockstep(seed, 400, &k.mnt, &sl.mnt, None);
    let st = snapshot(&sl.mnt);
    k.umount();
    m.umount();

    let m = sl.mount();
    let st2 = snapshot(&sl.mnt);
    m.umount();
    assert_same_tree("strata", &st, "strata after remount", &st2);
    let k = sl.kernel_mount();
    let kt2 = snapshot(&k.mnt);
    k.umount();
    assert_same_tree("strata", &st, "kernel reading strata's upper", &kt2);
}

#[test]
fn random_sequences_match_the_kernel_seed_1() {
    differential(0x5eed_0001);
}

#[test]
fn random_sequences_match_the_kernel_seed_2() {
    differential(0x5eed_0002);
}

#[test]
fn random_sequences_match_the_kernel_seed_3() {
    differential(0x5eed_0003);
}

#[test]
fn random_sequences_match_the_kernel_seed_4() {
    differential(0x5eed_0004);
}

#[test]
fn random_sequences_match_the_kernel_seed_5() {
    differential(0x5eed_0005);
}

#[test]
fn random_sequences_match_the_kernel_seed_6() {
    differential(0x5eed_0006);
}

#[test]
fn random_sequences_match_the_kernel_seed_7() {
    differential(0x5eed_0007);
}

#[test]
fn random_sequences_match_the_kernel_seed_8() {
    differential(0x5eed_0008);
}

#[test]
fn random_sequences_match_the_kernel_seed_9() {
    differential(0x5eed_0009);
}

#[test]
fn random_sequences_match_the_kernel_seed_10() {
    differential(0x5eed_0010);
}

/// The same, with an unmount and a fresh mount halfway (state must persist on disk).
fn differential_with_remount(seed: u64) {
    let steps = 200;
    let kl = Layout::new(2);
    build_lowers(&kl.lowers[0], &kl.lowers[1]);
    let sl = Layout::new(2);
    build_lowers(&sl.lowers[0], &sl.lowers[1]);
    let mut rng_k = Rng(seed);
    let mut rng_s = Rng(seed);
    let mut kres = Vec::new();
    let mut sres = Vec::new();
    for _half in 0..2 {
        let k = kl.kernel_mount();
        for _ in 0..steps {
            kres.push(op(&mut rng_k, &k.mnt));
        }
        k.umount();
        let m = sl.mount();
        for _ in 0..steps {
            sres.push(op(&mut rng_s, &sl.mnt));
        }
        m.umount();
    }
    for (i, (kr, sr)) in kres.iter().zip(sres.iter()).enumerate() {
        assert_eq!(
            kr, sr,
            "seed {seed} (remount after step {steps}): step {i} ({}) gave {} through the kernel, {} through strata; steps before: {:?}",
            kr.0, kr.1, sr.1, &kres[..i]
        );
    }
    let k = kl.kernel_mount();
    let kt = snapshot(&k.mnt);
    k.umount();
    let m = sl.mount();
    let st = snapshot(&sl.mnt);
    m.umount();
    assert_same_tree(&format!("kernel (seed {seed})"), &kt, "strata", &st);
}

#[test]
fn random_sequences_with_a_remount_seed_1() {
    differential_with_remount(0xabc1);
}

#[test]
fn random_sequences_with_a_remount_seed_2() {
    differential_with_remount(0xabc2);
}

#[test]
fn random_sequences_with_a_remount_seed_3() {
    differential_with_remount(0xabc3);
}

fn build_lowers_with_owners(l0: &Path, l1: &Path) {
    build_lowers(l0, l1);
    // x: root 0755; z: user 1500's; z/w: sticky 1777; x/y: group 1600 0775 setgid
    for root in [l0, l1] {
        chmod(root.join("x"), 0o755).unwrap();
        lchown(root.join("z"), 1500, 1500).unwrap();
        chmod(root.join("z"), 0o700).unwrap();
        chmod(root.join("z/w"), 0o1777).unwrap();
        lchown(root.join("x/y"), 0, 1600).unwrap();
        chmod(root.join("x/y"), 0o2775).unwrap();
    }
    write(l1.join("z/w/others"), "owned by 1501");
    lchown(l1.join("z/w/others"), 1501, 1501).unwrap();
    write(l0.join("x/y/groupfile"), "g");
    lchown(l0.join("x/y/groupfile"), 0, 1600).unwrap();
    chmod(l0.join("x/y/groupfile"), 0o664).unwrap();
    lchown(l0.join("z/a"), 1500, 1500).unwrap();
}

fn differential_as_user(seed: u64) {
    let creds = Creds::user(1500, 1500).groups(&[1600]).umask(0o022);
    let kl = Layout::new(2);
    build_lowers_with_owners(&kl.lowers[0], &kl.lowers[1]);
    let sl = Layout::new(2);
    build_lowers_with_owners(&sl.lowers[0], &sl.lowers[1]);
    let k = kl.kernel_mount();
    let _m = sl.mount_with("allow_other");
    lockstep(seed, 300, &k.mnt, &sl.mnt, Some(&creds));
}

#[test]
fn random_sequences_as_a_user_seed_1() {
    differential_as_user(0x1500_0001);
}

#[test]
fn random_sequences_as_a_user_seed_2() {
    differential_as_user(0x1500_0002);
}

#[test]
fn random_sequences_as_a_user_seed_3() {
    differential_as_user(0x1500_0003);
}

#[test]
fn random_sequences_as_a_user_seed_4() {
    differential_as_user(0x1500_0004);
}

#[test]
fn random_sequences_as_a_user_seed_5() {
    differential_as_user(0x1500_0005);
}

#[test]
fn random_sequences_as_a_user_seed_6() {
    differential_as_user(0x1500_0006);
}

#[test]
fn random_sequences_as_a_user_seed_7() {
    differential_as_user(0x1500_0007);
}

#[test]
fn random_sequences_as_a_user_seed_8() {
    differential_as_user(0x1500_0008);
}

#[test]
fn random_sequences_as_a_user_seed_9() {
    differential_as_user(0x1500_0009);
}

#[test]
fn random_sequences_as_a_user_seed_10() {
    differential_as_user(0x1500_0010);
}

/// Three lowers with every kind of on-disk marker the kernel understands: opaque
/// dirs, whiteouts, hard links, symlinks to directories, deeper trees.
fn build_rich_lowers(l: &[std::path::PathBuf]) {
    build_lowers(&l[0], &l[1]);
    let l2 = &l[2];
    mkdirs(l2.join("x/y/deep/er"));
    write(l2.join("x/y/deep/er/f"), "l2 deep");
    write(l2.join("x/c"), "l2 x/c");
    mkdirs(l2.join("z/w/b"));
    write(l2.join("z/w/b/inner"), "l2");
    write(l2.join("y"), "l2 top-level y");
    // lower1: whiteout hiding lower2's x/c, opaque z/w hiding lower2's z/w/b
    make_whiteout(l[1].join("x/c"));
    make_opaque(l[1].join("z/w"));
    // lower0: hard links, a symlink to a directory, an opaque dir over lower1's z/c
    write(l[0].join("x/y/a"), "linked");
    fs::hard_link(l[0].join("x/y/a"), l[0].join("z/y")).unwrap_or_else(|_| {
        mkdirs(l[0].join("z"));
        fs::hard_link(l[0].join("x/y/a"), l[0].join("z/y")).unwrap()
    });
    ln_s("x/y", l[0].join("w"));
    mkdirs(l[0].join("z/c"));
    make_opaque(l[0].join("z/c"));
    write(l[0].join("z/c/a"), "opaque child");
}

const RICH_DIRS: [&str; 7] = ["", "x", "x/y", "z", "z/w", "z/c", "x/y/deep"];

fn differential_rich(seed: u64, creds: Option<Creds>) {
    let kl = Layout::new(3);
    build_rich_lowers(&kl.lowers);
    let sl = Layout::new(3);
    build_rich_lowers(&sl.lowers);
    // strata keeps lower hard links linked after a copy-up, like the kernel's index=on
    let k = kl.kernel_mount_with("index=on");
    let m = sl.mount_with("allow_other");
    let _ = RICH_DIRS;
    lockstep(seed, 300, &k.mnt, &sl.mnt, creds.as_ref());
    let st = snapshot(&sl.mnt);
    k.umount();
    m.umount();
    let k = sl.kernel_mount_with("index=on");
    let kt2 = snapshot(&k.mnt);
    k.umount();
    assert_same_tree("strata", &st, "kernel reading strata's upper", &kt2);
}

#[test]
fn random_sequences_on_rich_lowers_seed_1() {
    differential_rich(0x41c4_0001, None);
}

#[test]
fn random_sequences_on_rich_lowers_seed_2() {
    differential_rich(0x41c4_0002, None);
}

#[test]
fn random_sequences_on_rich_lowers_seed_3() {
    differential_rich(0x41c4_0003, None);
}

#[test]
fn random_sequences_on_rich_lowers_seed_4() {
    differential_rich(0x41c4_0004, None);
}

#[test]
fn random_sequences_on_rich_lowers_as_a_user_seed_1() {
    differential_rich(0x41c4_1001, Some(Creds::user(1500, 1500).groups(&[1600])));
}

#[test]
fn random_sequences_on_rich_lowers_as_a_user_seed_2() {
    differential_rich(0x41c4_1002, Some(Creds::user(1500, 1500).groups(&[1600])));
}

#[test]
fn random_sequences_on_rich_lowers_seed_5() {
    differential_rich(0x41c4_0005, None);
}

#[test]
fn random_sequences_on_rich_lowers_seed_6() {
    differential_rich(0x41c4_0006, None);
}

#[test]
fn random_sequences_on_rich_lowers_seed_7() {
    differential_rich(0x41c4_0007, None);
}

#[test]
fn random_sequences_on_rich_lowers_seed_8() {
    differential_rich(0x41c4_0008, None);
}

#[test]
fn random_sequences_on_rich_lowers_as_a_user_seed_3() {
    differential_rich(0x41c4_1003, Some(Creds::user(1500, 1500).groups(&[1600])));
}

#[test]
fn random_sequences_on_rich_lowers_as_a_user_seed_4() {
    differential_rich(0x41c4_1004, Some(Creds::user(1500, 1500).groups(&[1600])));
}

#[test]
fn random_sequences_on_rich_lowers_as_a_user_seed_5() {
    differential_rich(0x41c4_1005, Some(Creds::user(1500, 1500).groups(&[1600])));
}

#[test]
fn random_sequences_on_rich_lowers_as_a_user_seed_6() {
    differential_rich(0x41c4_1006, Some(Creds::user(1500, 1500).groups(&[1600])));
}

/// A rootless strata mount (made by nobody) against kernel overlayfs with userxattr,
/// both driven by nobody: whiteouts and opaque dirs in the user.overlay format.
fn differential_rootless(seed: u64) {
    let creds = Creds::user(NOBODY, NOGROUP);
    let kl = Layout::new(2);
    build_lowers(&kl.lowers[0], &kl.lowers[1]);
    chown_tree(kl.dir.path(), NOBODY, NOGROUP);
    lchown(kl.dir.path(), 0, 0).unwrap();
    let sl = Layout::new(2);
    build_lowers(&sl.lowers[0], &sl.lowers[1]);
    chown_tree(sl.dir.path(), NOBODY, NOGROUP);
    lchown(sl.dir.path(), 0, 0).unwrap();
    let n = kl.dir.dir("kmnt-userxattr");
    let kw = kl.dir.dir("kwork-userxattr");
    let k = KernelOverlay::new(
        &format!(
            "{},upperdir={},workdir={},userxattr",
            kl.lowerdir_opt(),
            kl.upper.display(),
            kw.display()
        ),
        &n,
    );
    let out = run(std::os::unix::process::CommandExt::gid(
        std::os::unix::process::CommandExt::uid(&mut strata(), NOBODY),
        NOGROUP,
    )
    .arg("mount")
    .arg("-o")
    .arg(sl.opts())
    .arg(&sl.mnt));
    let m = Mount::adopt(out, &sl.mnt, "strata mount as nobody");
    // snapshots are taken as nobody too: root may not enter a mount made by nobody
    let (kroot, sroot) = (k.mnt.clone(), sl.mnt.clone());
    let last = lockstep_as_nobody(seed, 300, &kroot, &sroot, &creds);
    m.umount();
    k.umount();
    // the kernel (userxattr) reads strata's rootless upper the same way
    let n2 = sl.dir.dir("kmnt-userxattr-2");
    let kw2 = sl.dir.dir("kwork-userxattr-2");
    let k2 = KernelOverlay::new(
        &format!(
            "{},upperdir={},workdir={},userxattr",
            sl.lowerdir_opt(),
            sl.upper.display(),
            kw2.display()
        ),
        &n2,
    );
    let kt2 = as_user(&creds, || snapshot(&k2.mnt));
    k2.umount();
    assert_same_tree(
        "strata rootless",
        &last,
        "kernel userxattr reading strata's upper",
        &kt2,
    );
}

fn lockstep_as_nobody(seed: u64, steps: usize, kroot: &Path, sroot: &Path, creds: &Creds) -> Tree {
    let mut last = Tree::new();
    let mut rk = Rng(seed);
    let mut rs = Rng(seed);
    let mut done: Vec<(String, String)> = Vec::new();
    for i in 0..steps {
        let (kr, sr, kt, st) = as_user(creds, || {
            let kr = op_with(&mut rk, kroot, true);
            let sr = op_with(&mut rs, sroot, true);
            (kr, sr, snapshot(kroot), snapshot(sroot))
        });
        assert_eq!(
            kr, sr,
            "seed {seed} (rootless): step {i} ({}) gave {} through the kernel, {} through strata; successful steps before: {:?}",
            kr.0, kr.1, sr.1,
            done.iter().filter(|d| d.1 == "ok").collect::<Vec<_>>()
        );
        done.push(kr.clone());
        if kt != st {
            let ok: Vec<_> = done.iter().filter(|d| d.1 == "ok").collect();
            eprintln!("seed {seed} (rootless): trees differ after step {i} ({}); successful steps: {ok:?}", kr.0);
            assert_same_tree(
                &format!("kernel userxattr after step {i} ({})", kr.0),
                &kt,
                "strata rootless",
                &st,
            );
        }
        last = st;
    }
    last
}

#[test]
fn random_sequences_rootless_seed_1() {
    differential_rootless(0x0b0d_0001);
}

#[test]
fn random_sequences_rootless_seed_2() {
    differential_rootless(0x0b0d_0002);
}

#[test]
fn random_sequences_rootless_seed_3() {
    differential_rootless(0x0b0d_0003);
}

#[test]
fn random_sequences_rootless_seed_4() {
    differential_rootless(0x0b0d_0004);
}

/// The same layers written alternately by the kernel and by strata (segments of
/// random operations), compared with layers written by the kernel alone.
fn alternating(seed: u64, rich: bool) {
    let mk = || {
        let l = Layout::new(3);
        if rich {
            build_rich_lowers(&l.lowers);
        } else {
            build_lowers(&l.lowers[0], &l.lowers[1]);
        }
        l
    };
    let reference = mk();
    let mixed = mk();
    let mut rr = Rng(seed);
    let mut rm = Rng(seed);
    let mut done = Vec::new();
    for segment in 0..6 {
        let k = reference.kernel_mount_with("index=on");
        let (m_mnt, guard_k, guard_s) = if segment % 2 == 0 {
            let g = mixed.kernel_mount_with("index=on");
            (g.mnt.clone(), Some(g), None)
        } else {
            let g = mixed.mount();
            (g.mnt.clone(), None, Some(g))
        };
        let who = if segment % 2 == 0 { "kernel" } else { "strata" };
        for i in 0..60 {
            let a = op(&mut rr, &k.mnt);
            let b = op(&mut rm, &m_mnt);
            assert_eq!(
                a, b,
                "seed {seed} segment {segment} ({who} on the mixed layers) step {i}: reference {} vs mixed {}; successful steps before: {:?}",
                a.1, b.1,
                done.iter().filter(|d: &&(String, String)| d.1 == "ok").collect::<Vec<_>>()
            );
            done.push(a);
        }
        let rt = snapshot(&k.mnt);
        let mt = snapshot(&m_mnt);
        assert_same_tree(
            &format!("kernel-only layers after segment {segment}"),
            &rt,
            &format!("mixed layers after segment {segment} ({who})"),
            &mt,
        );
        k.umount();
        if let Some(g) = guard_k {
            g.umount();
        }
        if let Some(g) = guard_s {
            g.umount();
        }
    }
}

#[test]
fn kernel_and_strata_taking_turns_seed_1() {
    alternating(0x7a7a_0001, false);
}

#[test]
fn kernel_and_strata_taking_turns_seed_2() {
    alternating(0x7a7a_0002, false);
}

#[test]
fn kernel_and_strata_taking_turns_rich_seed_1() {
    alternating(0x7a7a_1001, true);
}

#[test]
fn kernel_and_strata_taking_turns_rich_seed_2() {
    alternating(0x7a7a_1002, true);
}

#[test]
fn kernel_and_strata_taking_turns_rich_seed_3() {
    alternating(0x7a7a_1003, true);
}
