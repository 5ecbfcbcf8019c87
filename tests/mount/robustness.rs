//! Concurrency and crashes: parallel copy-ups and creates, a daemon killed in the
//! middle of a copy-up, O_CREAT|O_EXCL over lower names and whiteouts.

use crate::support::*;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::Duration;

#[test]
fn concurrent_writers_copy_up_one_file_once() {
    for round in 0..5 {
        let lay = Layout::new(1);
        write(lay.l(0, "shared"), vec![b'.'; 8 * 4096]);
        let _m = lay.mount();
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let p = lay.m("shared");
                s.spawn(move || {
                    let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
                    f.write_all_at(&vec![b'a' + i; 4096], i as u64 * 4096)
                        .unwrap();
                });
            }
        });
        let got = read(lay.m("shared"));
        assert_eq!(got.len(), 8 * 4096, "round {round}: size");
        for i in 0..8usize {
            let block = &got[i * 4096..(i + 1) * 4096];
            assert!(
                block.iter().all(|b| *b == b'a' + i as u8),
                "round {round}: block {i} lost its write (racing copy-ups?): starts {:?}",
                String::from_utf8_lossy(&block[..16])
            );
        }
    }
}

#[test]
fn concurrent_creates_in_a_lower_directory() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "a/b/c"));
    write(lay.l(0, "a/b/c/old"), "old");
    let _m = lay.mount();
    std::thread::scope(|s| {
        for t in 0..4 {
            let lay = &lay;
            s.spawn(move || {
                for i in 0..250 {
                    write(lay.m(format!("a/b/c/t{t}-{i:03}")), format!("{t}-{i}"));
                }
            });
        }
    });
    let names = ls(lay.m("a/b/c"));
    assert_eq!(names.len(), 1001, "entries after parallel creates");
    assert_eq!(read_string(lay.m("a/b/c/t3-249")), "3-249");
    assert_eq!(read_string(lay.m("a/b/c/old")), "old");
}

#[test]
fn concurrent_mkdir_and_rmdir_of_merged_trees() {
    let lay = Layout::new(1);
    for t in 0..4 {
        mkdirs(lay.l(0, format!("t{t}/x/y")));
        write(lay.l(0, format!("t{t}/x/y/f")), "f");
    }
    let _m = lay.mount();
    std::thread::scope(|s| {
        for t in 0..4 {
            let lay = &lay;
            s.spawn(move || {
                for _ in 0..20 {
                    fs::remove_dir_all(lay.m(format!("t{t}"))).unwrap();
                    fs::create_dir_all(lay.m(format!("t{t}/x/y"))).unwrap();
                    write(lay.m(format!("t{t}/x/y/f")), "f");
                }
            });
        }
    });
    for t in 0..4 {
        assert_eq!(ls(lay.m(format!("t{t}/x/y"))), strs(&["f"]));
    }
}

#[test]
fn daemon_killed_during_copy_up_leaves_old_or_new_never_partial() {
    let lay = Layout::new(1);
    let size = 160usize << 20;
    let data: Vec<u8> = (0..size as u32)
        .map(|i| (i >> 12) as u8 ^ (i as u8))
        .collect();
    write(lay.l(0, "big"), &data);
    let m = lay.mount();
    let p = lay.m("big");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|f| f.write_all_at(b"NEW", 0));
        let _ = tx.send(r.map_err(|e| e.to_string()));
    });
    // kill when the staged copy shows up in W/work (or once the write is done)
    let w = lay.work.join("work");
    let mut result = None;
    wait_until(|| {
        if let Ok(r) = rx.try_recv() {
            result = Some(r);
            return true;
        }
        fs::read_dir(&w).map(|d| d.count() > 0).unwrap_or(false)
    });
    for pid in fuse_daemons(&lay.mnt) {
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    let mnt = lay.mnt.clone();
    assert!(
        wait_until(|| !is_mounted(&mnt)),
        "mount not detached after SIGKILL"
    );
    if result.is_none() {
        result = Some(
            rx.recv_timeout(crate::support::PATIENCE)
                .expect("the writer hung after the daemon died"),
        );
    }
    m.forget();
    let up = lay.u("big");
    if exists(&up) {
        let got = read(&up);
        assert_eq!(got.len(), size, "partial copy-up in the upper");
        let mut new = data.clone();
        new[..3].copy_from_slice(b"NEW");
        assert!(
            got == data || got == new,
            "upper holds neither the old nor the new contents"
        );
    }
    assert!(read(lay.l(0, "big")) == data, "lower changed");
    // the next mount cleans the workdir and shows a whole file
    let m = lay.mount();
    if w.exists() {
        assert_eq!(ls(&w), Vec::<String>::new(), "crash leftovers not cleaned");
    }
    let view = read(lay.m("big"));
    assert_eq!(view.len(), size);
    assert!(view[3..] == data[3..], "view after the crash is corrupt");
    m.umount();
    let _ = result;
    let _ = Duration::from_secs(0);
}

#[test]
fn o_excl_create_over_lower_names_and_whiteouts() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "lower");
    write(lay.l(0, "g"), "lower");
    let _m = lay.mount();
    let excl = |name: &str| {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(lay.m(name))
            .map(|_| ())
    };
    assert_errno(excl("f"), libc::EEXIST, "O_EXCL over a lower file");
    fs::remove_file(lay.m("g")).unwrap();
    excl("g").expect("O_EXCL over a whiteout");
    assert_eq!(read(lay.m("g")), b"");
    excl("h").unwrap();
    assert_errno(excl("h"), libc::EEXIST, "O_EXCL over an upper file");
    // O_CREAT without O_TRUNC of an existing lower file opened read-only: no copy-up
    drop(
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CREAT)
            .open(lay.m("f"))
            .unwrap(),
    );
    assert!(
        !exists(lay.u("f")),
        "O_CREAT|O_RDONLY of an existing lower file copied up"
    );
    assert_eq!(read_string(lay.m("f")), "lower");
}

/// Four threads of random operations on one mount at once. Whatever interleaving
/// happens, no operation may fail with an error a disk filesystem would not give
/// (EIO, ESTALE, ENOTCONN...), and afterwards the view must be what is on disk:
/// identical after a remount and through kernel overlayfs.
#[test]
fn concurrent_random_operations_leave_a_consistent_upper() {
    for round in 0..10u64 {
        storm(round, "timeout=1");
    }
}

#[test]
fn concurrent_random_operations_without_kernel_caching() {
    for round in 20..26u64 {
        storm(round, "timeout=0");
    }
}

#[test]
fn concurrent_random_operations_without_passthrough() {
    for round in 10..18u64 {
        storm(round, "passthrough=off,writeback=on");
    }
}

fn storm(round: u64, extra: &str) {
    use crate::randomized::{build_lowers, op, Rng};
    let lay = Layout::new(2);
    build_lowers(&lay.lowers[0], &lay.lowers[1]);
    let m = lay.mount_with(extra);
    let allowed = [
        "ok",
        "ENOENT",
        "EEXIST",
        "ENOTEMPTY",
        "ENOTDIR",
        "EISDIR",
        "EINVAL",
        "EPERM",
        "ENXIO",
        "ELOOP",
        "ENODATA",
    ];
    let bad: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6u64)
            .map(|t| {
                let mnt = lay.mnt.clone();
                s.spawn(move || {
                    let mut rng = Rng(0xc0c0_0000 + round * 100 + t);
                    let mut bad = Vec::new();
                    for i in 0..300 {
                        let (what, r) = op(&mut rng, &mnt);
                        if !allowed.contains(&r.as_str()) {
                            bad.push(format!("thread {t} step {i}: {what} -> {r}"));
                        }
                    }
                    bad
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(
        bad.is_empty(),
        "round {round} [{extra}]: unexpected errors under concurrency: {bad:?}"
    );
    let s = snapshot(&lay.mnt);
    m.umount();
    let m = lay.mount();
    let s2 = snapshot(&lay.mnt);
    m.umount();
    let name = format!("strata after storm {round} [{extra}]");
    assert_same_tree(&name, &s, "strata after remount", &s2);
    let k = lay.kernel_mount();
    let kt = snapshot(&k.mnt);
    k.umount();
    assert_same_tree(&name, &s, "kernel overlayfs", &kt);
}

/// Walking a big tree keeps the kernel's knowledge of tens of thousands of inodes;
/// the daemon must not run out of file descriptors (or anything else) doing it.
#[test]
fn stat_of_every_file_in_a_big_tree_and_many_open_files() {
    let lay = Layout::new(1);
    for d in 0..30 {
        let dir = lay.l(0, format!("d{d:02}"));
        mkdirs(&dir);
        for f in 0..1000 {
            fs::File::create(dir.join(format!("f{f:04}"))).unwrap();
        }
    }
    let _m = lay.mount();
    let mut n = 0;
    for d in 0..30 {
        for e in fs::read_dir(lay.m(format!("d{d:02}"))).unwrap() {
            let e = e.unwrap();
            fs::symlink_metadata(e.path()).unwrap_or_else(|err| {
                panic!("stat {} after {n} others: {err}", e.path().display())
            });
            n += 1;
        }
    }
    assert_eq!(n, 30_000);
    // 3,000 files open at once, some of them for writing (copied up)
    let mut open = Vec::new();
    for i in 0..3000 {
        let p = lay.m(format!("d{:02}/f{:04}", i % 30, i / 30));
        let f = if i % 10 == 0 {
            fs::OpenOptions::new().write(true).open(&p)
        } else {
            fs::File::open(&p)
        };
        open.push(f.unwrap_or_else(|e| panic!("open #{i} {}: {e}", p.display())));
    }
    for (i, f) in open.iter().enumerate().filter(|(i, _)| i % 10 == 0) {
        f.write_all_at(b"w", 0)
            .unwrap_or_else(|e| panic!("write #{i}: {e}"));
    }
    drop(open);
    assert_eq!(read(lay.m("d00/f0000")), b"w");
}

/// One thread renames a lower directory back and forth while others write through
/// paths inside it and list it: only ENOENT may ever be seen, and no write is lost.
#[test]
fn renames_racing_with_writes_and_listings() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "d1/sub"));
    write(lay.l(0, "d1/sub/log"), "");
    for i in 0..50 {
        write(lay.l(0, format!("d1/f{i}")), "x");
    }
    let _m = lay.mount();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (writes, errors) = std::thread::scope(|s| {
        let renamer = s.spawn(|| {
            let mut errs = Vec::new();
            for i in 0..300 {
                let (a, b) = if i % 2 == 0 {
                    ("d1", "d2")
                } else {
                    ("d2", "d1")
                };
                if let Err(e) = fs::rename(lay.m(a), lay.m(b)) {
                    errs.push(format!("rename {a} {b}: {e}"));
                }
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            errs
        });
        let writer = s.spawn(|| {
            let mut n = 0usize;
            let mut errs = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for d in ["d1", "d2"] {
                    match fs::OpenOptions::new()
                        .append(true)
                        .open(lay.m(format!("{d}/sub/log")))
                    {
                        Ok(mut f) => match f.write_all(b"line\n") {
                            Ok(()) => n += 1,
                            Err(e) => errs.push(format!("write {d}: {e}")),
                        },
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                        Err(e) => errs.push(format!("open {d}/sub/log: {e}")),
                    }
                }
            }
            (n, errs)
        });
        let lister = s.spawn(|| {
            let mut errs = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for d in ["d1", "d2"] {
                    match fs::read_dir(lay.m(d)) {
                        Ok(rd) => {
                            for e in rd {
                                if let Err(e) = e {
                                    errs.push(format!("readdir {d}: {e}"));
                                }
                            }
                        }
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                        Err(e) => errs.push(format!("opendir {d}: {e}")),
                    }
                }
            }
            errs
        });
        let mut errors = renamer.join().unwrap();
        let (n, werrs) = writer.join().unwrap();
        errors.extend(werrs);
        errors.extend(lister.join().unwrap());
        (n, errors)
    });
    assert!(
        errors.is_empty(),
        "errors other than ENOENT: {:?}",
        &errors[..errors.len().min(10)]
    );
    // 300 renames: back at d1
    assert_eq!(ls(&lay.mnt), strs(&["d1"]));
    let lines = read_string(lay.m("d1/sub/log")).lines().count();
    assert_eq!(lines, writes, "writes lost across renames");
    assert_eq!(ls(lay.m("d1")).len(), 51);
}

/// A removexattr right after a setxattr must find the new attribute while another
/// thread keeps reading xattrs of the same file: a list read during the set was
/// remembered and hid the new name (ENODATA, 10 in 2000 rounds before the fix).
#[test]
fn removexattr_after_setxattr_sees_it_while_another_thread_reads() {
    for extra in ["", "passthrough=off"] {
        let lay = Layout::new(1);
        let m = if extra.is_empty() {
            lay.mount()
        } else {
            lay.mount_with(extra)
        };
        let f = lay.m("file");
        write(&f, "");
        lsetxattr(&f, "user.small", b"a").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (f, stop) = (f.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    lgetxattr(&f, "user.small").expect("user.small");
                    let _ = llistxattr(&f);
                    reads += 1;
                }
                reads
            })
        };
        let big = vec![b'a'; 512];
        let mut failed = 0;
        for _ in 0..3000 {
            lsetxattr(&f, "user.big", &big).unwrap();
            if lremovexattr(&f, "user.big").is_err() {
                failed += 1;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let reads = reader.join().expect("reader thread");
        assert!(reads > 0);
        assert_eq!(
            failed, 0,
            "[{extra}] removexattr failed {failed}/3000 times after setxattr"
        );
        m.umount();
    }
}
