//! Seeded random sequences of operations, run once through kernel overlayfs and once
//! through strata on identical layers: every operation must give the same result
//! (success or the same errno), and the trees must be identical at the end, after
//! a remount, and when the kernel reads strata's upper.

use crate::common::*;
use std::fs;
use std::io::Write;
use std::path::Path;

struct Rng(u64);

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

fn build_lowers(l0: &Path, l1: &Path) {
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
    symlink("../x/a", l0.join("z/b"));
    mkdirs(l1.join("z/c"));
    write(l1.join("z/c/deep"), "deep");
    chmod(l0.join("x/b"), 0o640).unwrap();
    lchown(l0.join("x/b"), 1000, 1000).unwrap();
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
fn op(rng: &mut Rng, root: &Path) -> (String, String) {
    let p = |s: &str| root.join(s);
    let a = path(rng.pick(&DIRS), rng.pick(&NAMES));
    let b = path(rng.pick(&DIRS), rng.pick(&NAMES));
    let n = rng.below(15);
    let r = match n {
        0 => ("write", res(fs::write(p(&a), format!("written {a}")))),
        1 => (
            "append",
            res(fs::OpenOptions::new()
                .append(true)
                .open(p(&a))
                .and_then(|mut f| f.write_all(b"+"))),
        ),
        2 => {
            let c = cstr(p(&a));
            ("truncate", res(cvt(unsafe { libc::truncate(c.as_ptr(), 3) })))
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
        11 => ("chmod", res(chmod(p(&a), 0o600 + rng.below(0o100) as u32))),
        12 => ("setxattr", res(lsetxattr(p(&a), "user.r", b"rv"))),
        13 => ("removexattr", res(lremovexattr(p(&a), "user.k"))),
        _ => ("rm_rf", res(fs::remove_dir_all(p(&a)))),
    };
    (format!("{} {a} {b}", r.0), r.1)
}

fn run_sequence(seed: u64, steps: usize, root: &Path) -> Vec<(String, String)> {
    let mut rng = Rng(seed);
    (0..steps).map(|_| op(&mut rng, root)).collect()
}

fn differential(seed: u64) {
    let steps = 400;
    let kl = Layout::new(2);
    build_lowers(&kl.lowers[0], &kl.lowers[1]);
    let sl = Layout::new(2);
    build_lowers(&sl.lowers[0], &sl.lowers[1]);

    let k = kl.kernel_mount();
    let kres = run_sequence(seed, steps, &k.mnt);
    let kt = snapshot(&k.mnt);
    k.umount();

    let m = sl.mount();
    let sres = run_sequence(seed, steps, &sl.mnt);
    let st = snapshot(&sl.mnt);
    m.umount();

    eprintln!("seed {seed}: {} of {} ops succeeded", kres.iter().filter(|r| r.1 == "ok").count(), kres.len());
    for (i, (kr, sr)) in kres.iter().zip(sres.iter()).enumerate() {
        assert_eq!(
            kr, sr,
            "seed {seed}: step {i} ({}) gave {} through the kernel, {} through strata; steps before: {:?}",
            kr.0,
            kr.1,
            sr.1,
            &kres[..i]
        );
    }
    assert_same_tree(&format!("kernel (seed {seed})"), &kt, "strata", &st);

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
