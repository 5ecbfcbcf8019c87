//! Crashes and recovery: the daemon is killed with SIGKILL at random points while it
//! copies up, renames (files and directories, with redirects), exchanges and creates
//! whiteouts; then the same layers are mounted again.
//!
//! Each round works on its own lower directory `rN/` with one target per operation.
//! A worker thread runs the round's operations in order and counts those that
//! returned success; the main thread SIGKILLs the daemon after a random delay. After
//! the remount, every operation that completed is in its new state, the one in flight
//! is in its old or its new state (never partial, never missing), and the rest are in
//! their old state. The workdir's `work/` is empty after each mount. At the end, kernel
//! overlayfs mounts the same upper and shows the same tree as strata.
//!
//! STRATA_CRASH_KILLS (default 50) sets the number of kills; STRATA_CRASH_SEED the seed.
//! A summary goes to target/test-reports/crash.txt.

// The support wrappers take `impl AsRef<Path>`; this suite's calls pass `&PathBuf`.
#![allow(clippy::needless_borrows_for_generic_args)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

const BIG: usize = 512 << 10;
const SMALL: usize = 64 << 10;

fn data(name: &str, len: usize) -> Vec<u8> {
    format!("[{name}]").bytes().cycle().take(len).collect()
}

/// Lower content of round `r`.
fn build_round(lower: &Path, r: usize) {
    let d = lower.join(format!("r{r}"));
    fs::create_dir(&d).unwrap();
    for (n, len) in [
        ("f0", BIG),
        ("f1", BIG),
        ("f2", SMALL),
        ("f3", SMALL),
        ("f4", SMALL),
        ("f5", SMALL),
        ("f6", BIG),
        ("f7", SMALL),
        ("f8", SMALL),
        ("f9", SMALL),
    ] {
        fs::write(d.join(n), data(&format!("r{r}/{n}"), len)).unwrap();
        set_mode(&d.join(n), 0o644);
    }
    for dir in ["dA", "dB", "dC", "dE"] {
        fs::create_dir_all(d.join(dir).join("sub")).unwrap();
        for c in ["c0", "c1", "sub/c2"] {
            fs::write(d.join(dir).join(c), data(&format!("r{r}/{dir}/{c}"), 1000)).unwrap();
        }
    }
    fs::create_dir(d.join("dD")).unwrap();
    fs::create_dir(d.join("dF")).unwrap();
}

const NOPS: usize = 15;

/// Operation `k` of a round, on the mount.
fn do_op(m: &Path, r: usize, k: usize) -> std::io::Result<()> {
    let d = m.join(format!("r{r}"));
    match k {
        0 => chmod(&d.join("f0"), 0o600),
        1 => {
            let fd = open(&d.join("f1"), libc::O_WRONLY | libc::O_APPEND, 0)?;
            fd.write(b"+NEW")?;
            fd.close()
        }
        2 => rename(&d.join("f2"), &d.join("f2.mv")),
        3 => unlink(&d.join("f3")),
        4 => rename(&d.join("dA"), &d.join("dA.mv")),
        5 => rename(&d.join("f4"), &d.join("f5")),
        6 => truncate(&d.join("f6"), 0),
        7 => lsetxattr(&d.join("f7"), "user.k", b"v"),
        8 => link(&d.join("f8"), &d.join("f8.ln")),
        9 => chown(&d.join("dB"), 1000, 1000),
        10 => mkdir(&d.join("newdir"), 0o755),
        11 => symlink("f0", &d.join("sym")),
        12 => rename(&d.join("dC"), &d.join("dD")),
        13 => renameat2(&d.join("f9"), &d.join("dE"), libc::RENAME_EXCHANGE),
        14 => rmdir(&d.join("dF")),
        _ => unreachable!(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum St {
    Old,
    New,
}

fn file_is(p: &Path, want: &[u8]) -> bool {
    fs::read(p).map(|d| d == want).unwrap_or(false)
}
fn gone(p: &Path) -> bool {
    matches!(lstat(p), Err(e) if e.raw_os_error() == Some(libc::ENOENT))
}
fn tree_is(p: &Path, r: usize, orig: &str) -> bool {
    list_dir(p)
        .map(|v| v == vec!["c0", "c1", "sub"])
        .unwrap_or(false)
        && list_dir(&p.join("sub"))
            .map(|v| v == vec!["c2"])
            .unwrap_or(false)
        && ["c0", "c1", "sub/c2"]
            .iter()
            .all(|c| file_is(&p.join(c), &data(&format!("r{r}/{orig}/{c}"), 1000)))
}
fn describe(p: &Path) -> String {
    match lstat(p) {
        Err(e) => format!(
            "{}: {}",
            p.file_name().unwrap().to_string_lossy(),
            errname(e.raw_os_error().unwrap_or(-1))
        ),
        Ok(st) => {
            let mut s = format!(
                "{}: {} {:o} {}:{} size {}",
                p.file_name().unwrap().to_string_lossy(),
                kind_of(st.st_mode),
                st.st_mode & 0o7777,
                st.st_uid,
                st.st_gid,
                st.st_size
            );
            if kind_of(st.st_mode) == 'd' {
                s.push_str(&format!(" {:?}", list_dir(p).unwrap_or_default()));
            }
            s
        }
    }
}

/// Which state operation `k` of round `r` is in (Err: neither, i.e. partial/missing).
fn state(m: &Path, r: usize, k: usize) -> Result<St, String> {
    let d = m.join(format!("r{r}"));
    let f = |n: &str| d.join(n);
    let l = |n: &str, len: usize| data(&format!("r{r}/{n}"), len);
    let mode = |n: &str| lstat(&f(n)).map(|s| s.st_mode & 0o7777).unwrap_or(0);
    let (old, new, shown): (bool, bool, Vec<&str>) = match k {
        0 => {
            let whole = file_is(&f("f0"), &l("f0", BIG));
            (
                whole && mode("f0") == 0o644,
                whole && mode("f0") == 0o600,
                vec!["f0"],
            )
        }
        1 => {
            let mut appended = l("f1", BIG);
            appended.extend_from_slice(b"+NEW");
            (
                file_is(&f("f1"), &l("f1", BIG)),
                file_is(&f("f1"), &appended),
                vec!["f1"],
            )
        }
        2 => (
            file_is(&f("f2"), &l("f2", SMALL)) && gone(&f("f2.mv")),
            gone(&f("f2")) && file_is(&f("f2.mv"), &l("f2", SMALL)),
            vec!["f2", "f2.mv"],
        ),
        3 => (
            file_is(&f("f3"), &l("f3", SMALL)),
            gone(&f("f3")),
            vec!["f3"],
        ),
        4 => (
            tree_is(&f("dA"), r, "dA") && gone(&f("dA.mv")),
            gone(&f("dA")) && tree_is(&f("dA.mv"), r, "dA"),
            vec!["dA", "dA.mv"],
        ),
        5 => (
            file_is(&f("f4"), &l("f4", SMALL)) && file_is(&f("f5"), &l("f5", SMALL)),
            gone(&f("f4")) && file_is(&f("f5"), &l("f4", SMALL)),
            vec!["f4", "f5"],
        ),
        6 => (
            file_is(&f("f6"), &l("f6", BIG)),
            file_is(&f("f6"), b""),
            vec!["f6"],
        ),
        7 => {
            let whole = file_is(&f("f7"), &l("f7", SMALL));
            let x = lgetxattr(&f("f7"), "user.k");
            (
                whole && eno(&x) == libc::ENODATA,
                whole && x.ok().as_deref() == Some(&b"v"[..]),
                vec!["f7"],
            )
        }
        8 => {
            let whole = file_is(&f("f8"), &l("f8", SMALL));
            let linked = match (lstat(&f("f8")), lstat(&f("f8.ln"))) {
                (Ok(a), Ok(b)) => a.st_ino == b.st_ino && a.st_nlink == 2 && b.st_nlink == 2,
                _ => false,
            };
            (
                whole && gone(&f("f8.ln")),
                whole && linked,
                vec!["f8", "f8.ln"],
            )
        }
        9 => {
            let own = lstat(&f("dB"))
                .map(|s| (s.st_uid, s.st_gid))
                .unwrap_or((9, 9));
            let t = tree_is(&f("dB"), r, "dB");
            (t && own == (0, 0), t && own == (1000, 1000), vec!["dB"])
        }
        10 => (
            gone(&f("newdir")),
            list_dir(&f("newdir"))
                .map(|v| v.is_empty())
                .unwrap_or(false),
            vec!["newdir"],
        ),
        11 => (
            gone(&f("sym")),
            readlink(&f("sym")).map(|t| t == b"f0").unwrap_or(false),
            vec!["sym"],
        ),
        12 => (
            tree_is(&f("dC"), r, "dC") && list_dir(&f("dD")).map(|v| v.is_empty()).unwrap_or(false),
            gone(&f("dC")) && tree_is(&f("dD"), r, "dC"),
            vec!["dC", "dD"],
        ),
        13 => (
            file_is(&f("f9"), &l("f9", SMALL)) && tree_is(&f("dE"), r, "dE"),
            tree_is(&f("f9"), r, "dE") && file_is(&f("dE"), &l("f9", SMALL)),
            vec!["f9", "dE"],
        ),
        14 => (
            list_dir(&f("dF")).map(|v| v.is_empty()).unwrap_or(false),
            gone(&f("dF")),
            vec!["dF"],
        ),
        _ => unreachable!(),
    };
    match (old, new) {
        (true, false) => Ok(St::Old),
        (false, true) => Ok(St::New),
        _ => Err(format!(
            "op {k} of round {r} is neither in its old nor its new state: {}",
            shown
                .iter()
                .map(|n| describe(&f(n)))
                .collect::<Vec<_>>()
                .join("; ")
        )),
    }
}

/// Checks round `r` against `completed` (ops before it: new; at it: either; after: old).
fn verify_round(m: &Path, r: usize, completed: usize) -> Result<Vec<St>, String> {
    let mut out = Vec::new();
    for k in 0..NOPS {
        let st = state(m, r, k)?;
        let ok = match k.cmp(&completed) {
            std::cmp::Ordering::Less => st == St::New,
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Greater => st == St::Old,
        };
        if !ok {
            return Err(format!(
                "round {r}: op {k} is {st:?}, but {completed} ops had completed before the kill"
            ));
        }
        out.push(st);
    }
    Ok(out)
}

#[test]
fn sigkill_during_copy_up_rename_and_whiteout_then_remount() {
    let _case = count_case("crash");
    let kills = env_usize("STRATA_CRASH_KILLS", 50);
    let seed = std::env::var("STRATA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7u64);
    let mut rng = Rng::new(seed);
    let s = TestDir::tagged("crash");
    let lower = s.dir("lower");
    let upper = s.dir("upper");
    let work = s.dir("work");
    let mnt = s.dir("mnt");
    let rounds = kills + 1;
    for r in 0..rounds {
        build_round(&lower, r);
    }
    let opts = ovl_opts(std::slice::from_ref(&lower), Some(&upper), Some(&work));

    // Round 0 runs to the end: it calibrates how long a round takes.
    let m = Mount::new(&opts, &mnt);
    let t = Instant::now();
    for k in 0..NOPS {
        assert_ok(do_op(&mnt, 0, k), &format!("round 0 op {k}"));
    }
    let round_time = t.elapsed().max(Duration::from_millis(2));
    verify_round(&mnt, 0, NOPS).unwrap();
    let mut results: Vec<Vec<St>> = vec![vec![St::New; NOPS]];
    let mut m = Some(m);
    let mut histogram = vec![0usize; NOPS + 1];
    let mut ops_total = NOPS;
    let start = Instant::now();
    for r in 1..rounds {
        let cur = m.take().unwrap();
        let completed = Arc::new(AtomicUsize::new(0));
        let (c2, mnt2) = (completed.clone(), mnt.clone());
        let worker = std::thread::spawn(move || {
            for k in 0..NOPS {
                if do_op(&mnt2, r, k).is_err() {
                    break;
                }
                c2.fetch_add(1, Ordering::SeqCst);
            }
        });
        // A random point within (a bit more than) one round.
        let delay = Duration::from_nanos(rng.below(round_time.as_nanos() as u64 * 6 / 5 + 1));
        std::thread::sleep(delay);
        cur.kill9();
        worker.join().unwrap();
        let done = completed.load(Ordering::SeqCst);
        histogram[done] += 1;
        ops_total += done + usize::from(done < NOPS);

        let again = Mount::new(&opts, &mnt);
        let staged = list_dir(&work.join("work")).unwrap_or_default();
        assert!(
            staged.is_empty(),
            "round {r}: work/ not emptied at mount: {staged:?}"
        );
        check();
        match verify_round(&mnt, r, done) {
            Ok(v) => results.push(v),
            Err(e) => {
                panic!("after SIGKILL in round {r} (delay {delay:?}, {done} ops completed): {e}")
            }
        }
        check();
        m = Some(again);
    }
    // Earlier rounds kept the state they were found in.
    let m = m.take().unwrap();
    for (r, want) in results.iter().enumerate() {
        for (k, st) in want.iter().enumerate() {
            check();
            let got = state(&mnt, r, k).unwrap_or_else(|e| panic!("at the end: {e}"));
            assert_eq!(got, *st, "at the end: round {r} op {k} changed state");
        }
    }
    let view = diff_snapshot(
        &mnt,
        &SnapOpts {
            mtime_before: None,
            dir_nlink: false,
            skip_enoent: false,
        },
    );
    m.umount();

    // Kernel overlayfs reads the same upper as the same tree.
    let kview = kernel_view(std::slice::from_ref(&lower), &upper, &s);
    let d = diff_trees("strata", &view, "kernel", &kview, true);
    report(
        "crash",
        &format!(
            "{kills} SIGKILLs (seed {seed}), {ops_total} operations started, {} s; ops completed before the kill (histogram 0..={NOPS}): {histogram:?}; {} differences with kernel overlayfs on the same upper",
            start.elapsed().as_secs(),
            d.len()
        ),
    );
    assert!(
        d.is_empty(),
        "kernel overlayfs on strata's upper after the crashes differs:\n{}",
        d.join("\n")
    );
}

/// A copy-up killed in the middle leaves nothing half-copied: a big file, copied up by
/// a write at its end, killed at random points.
#[test]
fn sigkill_during_big_copy_up() {
    let _case = count_case("crash");
    let kills = (env_usize("STRATA_CRASH_KILLS", 50) / 5).max(3);
    let mut rng = Rng::new(99);
    let s = TestDir::tagged("crash-big");
    let lower = s.dir("lower");
    let upper = s.dir("upper");
    let work = s.dir("work");
    let mnt = s.dir("mnt");
    let size = 32usize << 20;
    for i in 0..kills {
        // Real data (no holes), so the copy takes a while.
        fs::write(
            lower.join(format!("big{i}")),
            data(&format!("big{i}"), size),
        )
        .unwrap();
    }
    let opts = ovl_opts(std::slice::from_ref(&lower), Some(&upper), Some(&work));
    let mut outcomes = (0, 0);
    for i in 0..kills {
        let m = Mount::new(&opts, &mnt);
        let p: PathBuf = mnt.join(format!("big{i}"));
        let t = Instant::now();
        let w = std::thread::spawn(move || {
            open(&p, libc::O_WRONLY, 0)
                .and_then(|fd| fd.pwrite(b"TAIL", (size - 4) as i64))
                .is_ok()
        });
        std::thread::sleep(Duration::from_micros(rng.below(150_000)));
        m.kill9();
        let wrote = w.join().unwrap();
        let _ = t;
        let m = Mount::new(&opts, &mnt);
        let staged = list_dir(&work.join("work")).unwrap_or_default();
        assert!(staged.is_empty(), "work/ not emptied at mount: {staged:?}");
        let got = fs::read(mnt.join(format!("big{i}"))).unwrap();
        let old = data(&format!("big{i}"), size);
        let mut new = old.clone();
        new[size - 4..].copy_from_slice(b"TAIL");
        check();
        if got == new {
            outcomes.1 += 1;
        } else if got == old && !wrote {
            outcomes.0 += 1;
        } else {
            panic!(
                "big{i} after SIGKILL is neither old nor new (write returned {wrote}): size {} (want {size}), first difference at {:?}",
                got.len(),
                got.iter().zip(old.iter()).position(|(a, b)| a != b)
            );
        }
        m.umount();
    }
    report(
        "crash",
        &format!(
            "big copy-up: {kills} SIGKILLs during 32 MiB copy-ups: {} old, {} new, 0 partial",
            outcomes.0, outcomes.1
        ),
    );
}
