//! readdir of merged directories: merging, duplicates, whiteouts, stable offsets
//! across many small getdents64 calls, telldir/seekdir, big directories.

use crate::support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct Dirent {
    pub ino: u64,
    pub off: i64,
    pub dtype: u8,
    pub name: String,
}

fn open_dir(p: &Path) -> fs::File {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(p)
        .unwrap_or_else(|e| panic!("open {}: {e}", p.display()))
}

/// One getdents64 call with a buffer of `bufsize` bytes.
fn getdents(fd: i32, bufsize: usize) -> Vec<Dirent> {
    let mut buf = vec![0u8; bufsize];
    let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
    assert!(n >= 0, "getdents64: {}", last_err());
    let n = n as usize;
    let mut v = Vec::new();
    let mut pos = 0;
    while pos < n {
        let ino = u64::from_ne_bytes(buf[pos..pos + 8].try_into().unwrap());
        let off = i64::from_ne_bytes(buf[pos + 8..pos + 16].try_into().unwrap());
        let reclen = u16::from_ne_bytes(buf[pos + 16..pos + 18].try_into().unwrap()) as usize;
        let dtype = buf[pos + 18];
        let name_bytes = &buf[pos + 19..pos + reclen];
        let end = name_bytes.iter().position(|b| *b == 0).unwrap();
        v.push(Dirent {
            ino,
            off,
            dtype,
            name: String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
        });
        pos += reclen;
    }
    v
}

/// Reads the whole directory from the current position with `bufsize` buffers.
pub fn getdents_all(fd: i32, bufsize: usize) -> Vec<Dirent> {
    let mut all = Vec::new();
    let mut calls = 0;
    loop {
        let chunk = getdents(fd, bufsize);
        if chunk.is_empty() {
            break;
        }
        calls += 1;
        assert!(calls < 10_000_000, "getdents64 never reaches the end");
        all.extend(chunk);
        assert!(
            all.len() < 1_000_000,
            "directory listing does not terminate"
        );
    }
    all
}

/// 5,000 visible names spread over upper and two lowers, with duplicates and
/// whiteouts, some directories and symlinks among them.
fn big_merged_layout() -> (Layout, BTreeSet<String>) {
    let lay = Layout::new(2);
    mkdirs(lay.u("big"));
    mkdirs(lay.l(0, "big"));
    mkdirs(lay.l(1, "big"));
    let mut want = BTreeSet::new();
    for i in 0..5000 {
        let name = format!("entry-with-a-longish-name-{i:05}");
        let layer = match i % 5 {
            0 | 1 => lay.u("big"),
            2 | 3 => lay.l(0, "big"),
            _ => lay.l(1, "big"),
        };
        if i % 97 == 0 {
            mkdirs(layer.join(&name));
        } else if i % 101 == 0 {
            ln_s("target", layer.join(&name));
        } else {
            write(layer.join(&name), "");
        }
        // duplicates below
        if i % 3 == 0 && i % 5 < 2 {
            write(lay.l(1, "big").join(&name), "dup");
        }
        want.insert(name);
    }
    for i in 0..300 {
        let name = format!("zz-whited-out-{i:03}");
        write(lay.l(1, "big").join(&name), "gone");
        if i % 2 == 0 {
            make_whiteout(lay.u("big").join(&name));
        } else {
            make_whiteout(lay.l(0, "big").join(&name));
        }
    }
    (lay, want)
}

fn check_listing(dir: &Path, list: &[Dirent], want: &BTreeSet<String>) {
    let mut seen = BTreeMap::new();
    for d in list {
        if let Some(prev) = seen.insert(d.name.clone(), d.clone()) {
            panic!("{} listed twice: {prev:?} and {d:?}", d.name);
        }
    }
    assert!(seen.contains_key("."), "no . entry");
    assert!(seen.contains_key(".."), "no .. entry");
    let names: BTreeSet<String> = seen
        .keys()
        .filter(|n| *n != "." && *n != "..")
        .cloned()
        .collect();
    let missing: Vec<_> = want.difference(&names).take(10).collect();
    let extra: Vec<_> = names.difference(want).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "listing of {} wrong: {} names, want {}; missing {:?}, extra {:?}",
        dir.display(),
        names.len(),
        want.len(),
        missing,
        extra
    );
    for d in list {
        if d.name == "." || d.name == ".." {
            continue;
        }
        let st = lstat_meta(dir.join(&d.name));
        assert_eq!(d.ino, st.ino(), "d_ino != st_ino for {}", d.name);
        let t = st.file_type();
        let want_type = if t.is_dir() {
            libc::DT_DIR
        } else if t.is_symlink() {
            libc::DT_LNK
        } else {
            libc::DT_REG
        };
        assert!(
            d.dtype == want_type || d.dtype == libc::DT_UNKNOWN,
            "d_type {} for {} ({:?})",
            d.dtype,
            d.name,
            t
        );
    }
}

#[test]
fn five_thousand_entries_read_with_small_buffers() {
    let (lay, want) = big_merged_layout();
    let _m = lay.mount();
    let dir = lay.m("big");
    for bufsize in [280usize, 1024, 4096, 65536] {
        let f = open_dir(&dir);
        let list = getdents_all(f.as_raw_fd(), bufsize);
        check_listing(&dir, &list, &want);
    }
}

#[test]
fn offsets_from_getdents_resume_at_the_right_place() {
    let (lay, want) = big_merged_layout();
    let _m = lay.mount();
    let dir = lay.m("big");
    let f = open_dir(&dir);
    let fd = f.as_raw_fd();
    let full = getdents_all(fd, 512);
    check_listing(&dir, &full, &want);
    let names: Vec<&str> = full.iter().map(|d| d.name.as_str()).collect();
    for k in [
        0usize,
        1,
        2,
        57,
        1000,
        2500,
        4321,
        full.len() - 2,
        full.len() - 1,
    ] {
        let off = full[k].off;
        let r = unsafe { libc::lseek(fd, off, libc::SEEK_SET) };
        assert_eq!(r, off, "lseek to d_off of entry {k}: {}", last_err());
        let rest = getdents_all(fd, 700);
        let rest_names: Vec<&str> = rest.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            rest_names,
            names[k + 1..].to_vec(),
            "after seeking to the d_off of entry {k} ({})",
            full[k].name
        );
    }
    // rewind
    assert_eq!(unsafe { libc::lseek(fd, 0, libc::SEEK_SET) }, 0);
    let again = getdents_all(fd, 333);
    let again_names: Vec<&str> = again.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(again_names, names, "listing after rewinding differs");
}

#[test]
fn interleaved_reads_of_two_handles_agree() {
    let (lay, want) = big_merged_layout();
    let _m = lay.mount();
    let dir = lay.m("big");
    let a = open_dir(&dir);
    let b = open_dir(&dir);
    let mut la = Vec::new();
    let mut lb = Vec::new();
    loop {
        let ca = getdents(a.as_raw_fd(), 600);
        let cb = getdents(b.as_raw_fd(), 2000);
        if ca.is_empty() && cb.is_empty() {
            break;
        }
        la.extend(ca);
        lb.extend(cb);
    }
    check_listing(&dir, &la, &want);
    check_listing(&dir, &lb, &want);
}

#[test]
fn telldir_seekdir_return_to_the_same_entry() {
    let (lay, want) = big_merged_layout();
    let _m = lay.mount();
    let dir = lay.m("big");
    let c = cstr(&dir);
    unsafe {
        let d = libc::opendir(c.as_ptr());
        assert!(!d.is_null(), "opendir: {}", last_err());
        let mut names = Vec::new();
        let mut tells = Vec::new();
        loop {
            let pos = libc::telldir(d);
            let e = libc::readdir64(d);
            if e.is_null() {
                break;
            }
            let name = std::ffi::CStr::from_ptr((*e).d_name.as_ptr())
                .to_string_lossy()
                .into_owned();
            names.push(name);
            tells.push(pos);
        }
        let set: BTreeSet<String> = names
            .iter()
            .filter(|n| *n != "." && *n != "..")
            .cloned()
            .collect();
        assert_eq!(set.len() + 2, names.len(), "duplicates in readdir");
        assert_eq!(&set, &want);
        for k in [3usize, 100, 2047, 4000, names.len() - 1] {
            libc::seekdir(d, tells[k]);
            let e = libc::readdir64(d);
            assert!(
                !e.is_null(),
                "readdir after seekdir to entry {k} hit the end"
            );
            let name = std::ffi::CStr::from_ptr((*e).d_name.as_ptr())
                .to_string_lossy()
                .into_owned();
            assert_eq!(name, names[k], "seekdir(telldir before entry {k})");
            let e2 = libc::readdir64(d);
            if k + 1 < names.len() {
                assert!(!e2.is_null());
                let n2 = std::ffi::CStr::from_ptr((*e2).d_name.as_ptr())
                    .to_string_lossy()
                    .into_owned();
                assert_eq!(n2, names[k + 1]);
            }
        }
        libc::closedir(d);
    }
}

#[test]
fn listing_follows_changes_made_through_the_mount() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "d"));
    for n in ["a", "b", "c"] {
        write(lay.l(0, "d").join(n), n);
    }
    let _m = lay.mount();
    assert_eq!(ls(lay.m("d")), strs(&["a", "b", "c"]));
    fs::remove_file(lay.m("d/b")).unwrap();
    assert_eq!(ls(lay.m("d")), strs(&["a", "c"]));
    write(lay.m("d/b"), "again");
    write(lay.m("d/e"), "e");
    assert_eq!(ls(lay.m("d")), strs(&["a", "b", "c", "e"]));
    fs::rename(lay.m("d/a"), lay.m("d/z")).unwrap();
    assert_eq!(ls(lay.m("d")), strs(&["b", "c", "e", "z"]));
    fs::create_dir(lay.m("d/sub")).unwrap();
    assert_eq!(ls(lay.m("d")), strs(&["b", "c", "e", "sub", "z"]));
}

#[test]
fn hundred_thousand_entry_merged_directory() {
    let lay = Layout::new(1);
    let low = lay.l(0, "huge");
    let up = lay.u("huge");
    mkdirs(&low);
    mkdirs(&up);
    // lower: n000000..n059999 and 1,000 names whited out in the upper;
    // upper: n050000..n099999 (10,000 duplicates of lower names).
    for i in 0..60_000 {
        fs::File::create(low.join(format!("n{i:06}"))).unwrap();
    }
    for i in 0..1000 {
        let n = format!("x{i:04}");
        fs::File::create(low.join(&n)).unwrap();
        make_whiteout(up.join(&n));
    }
    for i in 50_000..100_000 {
        fs::File::create(up.join(format!("n{i:06}"))).unwrap();
    }
    let _m = lay.mount();
    let f = open_dir(&lay.m("huge"));
    let list = getdents_all(f.as_raw_fd(), 32768);
    let mut names: Vec<&str> = list
        .iter()
        .map(|d| d.name.as_str())
        .filter(|n| *n != "." && *n != "..")
        .collect();
    let total = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(total, names.len(), "duplicate names in the listing");
    assert_eq!(names.len(), 100_000, "number of entries");
    for (i, n) in names.iter().enumerate() {
        assert_eq!(*n, format!("n{i:06}"), "entry {i}");
    }
    // and once more through std (readdir with its own buffer size)
    assert_eq!(fs::read_dir(lay.m("huge")).unwrap().count(), 100_000);
}

#[test]
fn empty_and_root_directories_list_dot_entries_once() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "empty"));
    let _m = lay.mount();
    for d in [lay.mnt.clone(), lay.m("empty")] {
        let f = open_dir(&d);
        let list = getdents_all(f.as_raw_fd(), 4096);
        let names: Vec<&str> = list.iter().map(|e| e.name.as_str()).collect();
        let mut dots: Vec<&str> = names
            .iter()
            .cloned()
            .filter(|n| *n == "." || *n == "..")
            .collect();
        dots.sort();
        assert_eq!(dots, vec![".", ".."], "dot entries in {}", d.display());
    }
}

#[test]
fn rm_rf_of_a_big_merged_directory() {
    // rm -r reads a little, unlinks what it read, reads on from the same offset.
    let (lay, _want) = big_merged_layout();
    let _m = lay.mount();
    fs::remove_dir_all(lay.m("big")).expect("rm -rf of a 5,000 entry merged directory");
    assert_errno(fs::metadata(lay.m("big")), libc::ENOENT, "big after rm -rf");
}

#[test]
fn entries_not_removed_during_a_listing_are_listed_exactly_once() {
    let (lay, want) = big_merged_layout();
    let _m = lay.mount();
    let dir = lay.m("big");
    let f = open_dir(&dir);
    let fd = f.as_raw_fd();
    let mut seen: Vec<String> = Vec::new();
    let mut removed = BTreeSet::new();
    let mut created = BTreeSet::new();
    let mut round = 0;
    loop {
        let chunk = getdents(fd, 1024);
        if chunk.is_empty() {
            break;
        }
        for d in &chunk {
            if d.name == "." || d.name == ".." {
                continue;
            }
            seen.push(d.name.clone());
        }
        // remove every second name just read, and a few not yet read; add new ones
        for (i, d) in chunk.iter().enumerate() {
            if i % 2 == 0 && d.name.starts_with("entry") && !removed.contains(&d.name) {
                let p = dir.join(&d.name);
                if lstat_meta(&p).is_dir() {
                    fs::remove_dir(&p).unwrap();
                } else {
                    fs::remove_file(&p).unwrap();
                }
                removed.insert(d.name.clone());
            }
        }
        round += 1;
        let n = format!("new-{round:05}");
        write(dir.join(&n), "");
        created.insert(n);
    }
    let mut counts = BTreeMap::new();
    for n in &seen {
        *counts.entry(n.clone()).or_insert(0) += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).take(10).collect();
    assert!(
        dups.is_empty(),
        "listed twice during a listing with changes: {dups:?}"
    );
    let missing: Vec<_> = want
        .iter()
        .filter(|n| !removed.contains(*n) && !counts.contains_key(*n))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "entries never removed were skipped: {missing:?}"
    );
    let bogus: Vec<_> = counts
        .keys()
        .filter(|n| !want.contains(*n) && !created.contains(*n))
        .take(10)
        .collect();
    assert!(bogus.is_empty(), "names that never existed: {bogus:?}");
    // and a fresh listing is exact
    let mut now: BTreeSet<String> = want.difference(&removed).cloned().collect();
    now.extend(created.iter().cloned());
    assert_eq!(ls(&dir).into_iter().collect::<BTreeSet<_>>(), now);
}

fn dirent_names(list: Vec<Dirent>) -> Vec<String> {
    list.into_iter().map(|d| d.name).collect()
}

/// strata keeps the listing of each stream that has not reached its end, a
/// bounded number of them (256): streams left half-read in more directories
/// than that, with changes in between, still each list every entry that was
/// never removed exactly once when they are read on.
#[test]
fn many_half_read_streams_each_list_every_entry_once() {
    let lay = Layout::new(1);
    const DIRS: usize = 300;
    for d in 0..DIRS {
        mkdirs(lay.l(0, format!("d{d:03}")));
        for i in 0..40 {
            write(
                lay.l(0, format!("d{d:03}/entry-with-a-long-name-{i:03}")),
                "x",
            );
        }
    }
    let _m = lay.mount();
    let streams: Vec<(fs::File, Vec<String>)> = (0..DIRS)
        .map(|d| {
            let f = open_dir(&lay.m(format!("d{d:03}")));
            let first = dirent_names(getdents(f.as_raw_fd(), 400));
            assert!(!first.is_empty() && first.len() < 42, "d{d:03}: {first:?}");
            (f, first)
        })
        .collect();
    // A change in every directory: the kernel's cached listings are dropped.
    for d in 0..DIRS {
        write(lay.m(format!("d{d:03}/new")), "");
    }
    for (d, (f, mut seen)) in streams.into_iter().enumerate() {
        seen.extend(dirent_names(getdents_all(f.as_raw_fd(), 400)));
        let old: Vec<&String> = seen.iter().filter(|n| n.starts_with("entry")).collect();
        let unique: BTreeSet<&String> = old.iter().copied().collect();
        assert_eq!(
            (old.len(), unique.len()),
            (40, 40),
            "d{d:03}: each old entry once: {seen:?}"
        );
    }
}

/// POSIX: rewinddir() makes the stream refer to the current state of the directory.
#[test]
fn rewind_shows_the_current_state() {
    let lay = Layout::new(1);
    mkdirs(lay.l(0, "d"));
    for n in ["a", "b", "c"] {
        write(lay.l(0, "d").join(n), n);
    }
    let story = |root: &Path| {
        let dir = root.join("d");
        let f = open_dir(&dir);
        let fd = f.as_raw_fd();
        let names = |v: Vec<Dirent>| {
            let mut n: Vec<String> = v
                .into_iter()
                .map(|d| d.name)
                .filter(|n| n != "." && n != "..")
                .collect();
            n.sort();
            n
        };
        let first = names(getdents_all(fd, 4096));
        write(dir.join("new"), "n");
        fs::remove_file(dir.join("a")).unwrap();
        assert_eq!(unsafe { libc::lseek(fd, 0, libc::SEEK_SET) }, 0);
        let second = names(getdents_all(fd, 4096));
        (first, second)
    };
    let k = lay.kernel_mount();
    let kernel = story(&k.mnt);
    k.umount();
    fs::remove_dir_all(&lay.upper).unwrap();
    mkdirs(&lay.upper);
    let _m = lay.mount();
    let strata = story(&lay.mnt);
    assert_eq!(kernel.1, strs(&["b", "c", "new"]), "kernel sanity");
    assert_eq!(
        strata, kernel,
        "(listing, listing after rewind): strata vs kernel"
    );
}
