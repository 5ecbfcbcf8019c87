//! The data path under each I/O mode (passthrough, writeback cache, plain), and
//! metadata-only copy-up (metacopy=on) with its kernel interop.

use crate::support::*;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};

fn pattern(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| ((i * 31) as u8) ^ salt).collect()
}

/// Data-path checks that must hold whatever the I/O mode.
fn data_paths(extra: &str) {
    let lay = Layout::new(1);
    write(lay.l(0, "read"), pattern(300_000, 1));
    write(lay.l(0, "rw"), pattern(100_000, 2));
    write(lay.l(0, "append"), "start\n");
    write(lay.l(0, "mmap"), vec![b'.'; 16384]);
    write(lay.l(0, "unlinked"), "lower data");
    let m = lay.mount_with(extra);
    let what = |s: &str| format!("[{extra}] {s}");

    // plain reads of a lower file
    assert!(
        read(lay.m("read")) == pattern(300_000, 1),
        "{}",
        what("read")
    );

    // a reader opened before the copy-up sees the writes made after it
    let early = fs::File::open(lay.m("rw")).unwrap();
    let mut b = [0u8; 4];
    early.read_exact_at(&mut b, 50_000).unwrap();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(lay.m("rw"))
        .unwrap();
    f.write_all_at(b"ABCD", 50_000).unwrap();
    let mut c = [0u8; 4];
    f.read_exact_at(&mut c, 50_000).unwrap();
    assert_eq!(&c, b"ABCD", "{}", what("read back through the writing fd"));
    early.read_exact_at(&mut c, 50_000).unwrap();
    assert_eq!(
        &c,
        b"ABCD",
        "{}",
        what("read through a fd opened before the copy-up")
    );
    f.set_len(60_000).unwrap();
    assert_eq!(
        lstat_meta(lay.m("rw")).len(),
        60_000,
        "{}",
        what("size after ftruncate")
    );
    drop((early, f));

    // O_APPEND from two fds
    let mut a1 = fs::OpenOptions::new()
        .append(true)
        .open(lay.m("append"))
        .unwrap();
    let mut a2 = fs::OpenOptions::new()
        .append(true)
        .open(lay.m("append"))
        .unwrap();
    a1.write_all(b"one\n").unwrap();
    a2.write_all(b"two\n").unwrap();
    a1.write_all(b"three\n").unwrap();
    drop((a1, a2));
    assert_eq!(
        read_string(lay.m("append")),
        "start\none\ntwo\nthree\n",
        "{}",
        what("O_APPEND")
    );

    // shared writable mmap, then read(2)
    unsafe {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(lay.m("mmap"))
            .unwrap();
        let p = libc::mmap(
            std::ptr::null_mut(),
            16384,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "{}", what("mmap"));
        let s = std::slice::from_raw_parts_mut(p as *mut u8, 16384);
        s[100..105].copy_from_slice(b"MMAP!");
        s[16000..16004].copy_from_slice(b"TAIL");
        let mut r = [0u8; 5];
        f.read_exact_at(&mut r, 100).unwrap();
        assert_eq!(
            &r,
            b"MMAP!",
            "{}",
            what("read(2) sees a shared mapping's write")
        );
        libc::msync(p, 16384, libc::MS_SYNC);
        libc::munmap(p, 16384);
    }
    let got = read(lay.m("mmap"));
    assert_eq!(&got[100..105], b"MMAP!");
    assert_eq!(&got[16000..16004], b"TAIL");

    // an unlinked open file
    let mut u = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(lay.m("unlinked"))
        .unwrap();
    fs::remove_file(lay.m("unlinked")).unwrap();
    u.seek(SeekFrom::End(0)).unwrap();
    u.write_all(b"+more").unwrap();
    u.seek(SeekFrom::Start(0)).unwrap();
    let mut s = String::new();
    u.read_to_string(&mut s).unwrap();
    assert_eq!(s, "lower data+more", "{}", what("unlinked open file"));
    assert_eq!(u.metadata().unwrap().len(), 15);
    drop(u);

    // a big new file, written in odd-sized chunks, read back
    let big = pattern(9_000_001, 7);
    {
        let mut f = fs::File::create(lay.m("big")).unwrap();
        for chunk in big.chunks(123_457) {
            f.write_all(chunk).unwrap();
        }
        f.sync_all().unwrap();
    }
    assert!(read(lay.m("big")) == big, "{}", what("big file read back"));

    // parallel writers of one copied-up file
    write(lay.l(0, "par"), vec![b'.'; 8 * 8192]);
    std::thread::scope(|sc| {
        for i in 0..8u8 {
            let p = lay.m("par");
            sc.spawn(move || {
                let f = fs::OpenOptions::new().write(true).open(p).unwrap();
                f.write_all_at(&vec![b'a' + i; 8192], i as u64 * 8192)
                    .unwrap();
            });
        }
    });
    let par = read(lay.m("par"));
    for i in 0..8usize {
        assert!(
            par[i * 8192..(i + 1) * 8192]
                .iter()
                .all(|x| *x == b'a' + i as u8),
            "{}",
            what(&format!("parallel writer {i} lost"))
        );
    }
    m.umount();

    // everything reached the upper
    let up = read(lay.u("rw"));
    assert_eq!(up.len(), 60_000);
    assert_eq!(&up[50_000..50_004], b"ABCD");
    assert_eq!(read_string(lay.u("append")), "start\none\ntwo\nthree\n");
    assert_eq!(&read(lay.u("mmap"))[100..105], b"MMAP!");
    assert!(read(lay.u("big")) == big);
    assert!(!exists(lay.u("unlinked")) || is_whiteout(lay.u("unlinked")));
    assert!(read(lay.l(0, "rw")) == pattern(100_000, 2), "lower changed");
}

#[test]
fn data_paths_default_mode() {
    data_paths("timeout=1");
}

#[test]
fn data_paths_without_passthrough_with_writeback() {
    data_paths("passthrough=off,writeback=on");
}

#[test]
fn data_paths_without_passthrough_or_writeback() {
    data_paths("passthrough=off,writeback=off");
}

#[test]
fn data_paths_with_passthrough() {
    data_paths("passthrough=on");
}

#[test]
fn data_paths_with_metacopy() {
    data_paths("metacopy=on");
}

// ---- metacopy ----

#[test]
fn metacopy_copies_metadata_only_and_the_kernel_agrees() {
    let lay = Layout::new(1);
    let data = pattern(1 << 20, 9);
    write(lay.l(0, "f"), &data);
    write(lay.l(0, "g"), "gg");
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/h"), "hh");
    let m = lay.mount_with("metacopy=on");
    chmod(lay.m("f"), 0o600).unwrap();
    lchown(lay.m("g"), 1234, 1234).unwrap();
    lsetxattr(lay.m("d/h"), "user.x", b"1").unwrap();
    assert!(read(lay.m("f")) == data, "view of a metacopied file");
    fs::rename(lay.m("d/h"), lay.m("moved")).unwrap();
    assert_eq!(read_string(lay.m("moved")), "hh", "renamed metacopied file");
    let s = snapshot(&lay.mnt);
    m.umount();
    assert!(
        lgetxattr(lay.u("f"), "trusted.overlay.metacopy").is_ok(),
        "upper f must carry overlay.metacopy"
    );
    assert!(
        lstat_meta(lay.u("f")).blocks() < 64,
        "a metacopy upper must not hold the data ({} blocks)",
        lstat_meta(lay.u("f")).blocks()
    );
    // strata again, and the kernel with metacopy=on
    let m = lay.mount_with("metacopy=on");
    assert_same_tree("strata", &s, "strata after remount", &snapshot(&lay.mnt));
    m.umount();
    let k = lay.kernel_mount_with("metacopy=on");
    let kt = snapshot(&k.mnt);
    k.umount();
    assert_same_tree("strata", &s, "kernel overlayfs metacopy=on", &kt);
    // data follows on the first open for write
    let m = lay.mount_with("metacopy=on");
    fs::OpenOptions::new()
        .append(true)
        .open(lay.m("f"))
        .unwrap()
        .write_all(b"!")
        .unwrap();
    m.umount();
    let mut want = data.clone();
    want.push(b'!');
    assert!(read(lay.u("f")) == want, "data copied up on open for write");
    assert!(lgetxattr(lay.u("f"), "trusted.overlay.metacopy").is_err());
    let k = lay.kernel_mount_with("metacopy=on");
    assert!(read(k.path("f")) == want);
    k.umount();
}

#[test]
fn kernel_metacopy_upper_reads_through_strata() {
    let lay = Layout::new(1);
    let data = pattern(500_000, 3);
    write(lay.l(0, "f"), &data);
    mkdirs(lay.l(0, "d"));
    write(lay.l(0, "d/h"), "hh");
    let k = lay.kernel_mount_with("metacopy=on");
    chmod(k.path("f"), 0o600).unwrap();
    fs::rename(k.path("d/h"), k.path("moved")).unwrap();
    let kt = snapshot(&k.mnt);
    k.umount();
    assert!(
        lgetxattr(lay.u("f"), "trusted.overlay.metacopy").is_ok(),
        "kernel made a metacopy"
    );
    let m = lay.mount_with("metacopy=on");
    let s = snapshot(&lay.mnt);
    m.umount();
    assert_same_tree(
        "kernel overlayfs metacopy=on",
        &kt,
        "strata metacopy=on",
        &s,
    );
    // Without metacopy=on the kernel refuses such files (EPERM). strata may read them
    // or refuse them, but must never show the sparse upper's zeros as the contents.
    let m = lay.mount();
    for name in ["f", "moved"] {
        match fs::read(lay.m(name)) {
            Ok(got) => {
                let want = if name == "f" {
                    data.clone()
                } else {
                    b"hh".to_vec()
                };
                assert!(
                    got == want,
                    "strata without metacopy=on shows wrong contents for the metacopy file {name} (first bytes {:?})",
                    &got[..got.len().min(8)]
                );
            }
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{name}: {e}"),
        }
    }
    m.umount();
}

#[test]
fn dot_wh_names_cannot_be_created() {
    let lay = Layout::new(1);
    let _m = lay.mount();
    assert_errno(fs::write(lay.m(".wh.x"), "x"), libc::EPERM, "create .wh.x");
    assert_errno(
        fs::create_dir(lay.m(".wh..wh..opq")),
        libc::EPERM,
        "mkdir .wh..wh..opq",
    );
    write(lay.m("ok"), "x");
    assert_errno(
        fs::rename(lay.m("ok"), lay.m(".wh.ok")),
        libc::EPERM,
        "rename to .wh.ok",
    );
}

#[test]
fn fsname_and_threads_options() {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "x");
    let _m = lay.mount_with("fsname=my-union,threads=3");
    let e = mount_entry(&lay.mnt).unwrap();
    assert_eq!(e.source, "my-union", "source in mountinfo");
    assert_eq!(read_string(lay.m("f")), "x");
}

#[test]
fn data_paths_without_kernel_caching() {
    data_paths("timeout=0");
}

/// With the writeback cache the kernel writes the times of a file back with a
/// SETATTR at fsync and close; for an unlinked open file that SETATTR must act
/// on the open file, not fail because the name is gone.
#[test]
fn unlinked_open_files_fsync_and_close_cleanly_with_writeback() {
    let lay = Layout::new(1);
    write(lay.l(0, "lower"), "lower data");
    let _m = lay.mount_with("passthrough=off,writeback=on");
    write(lay.m("made"), "made here");
    for name in ["lower", "made"] {
        let mut f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(lay.m(name))
            .unwrap();
        fs::remove_file(lay.m(name)).unwrap();
        f.seek(SeekFrom::End(0)).unwrap();
        f.write_all(b"+more").unwrap();
        f.sync_all()
            .unwrap_or_else(|e| panic!("fsync of unlinked {name}: {e}"));
        f.write_all(b"!").unwrap();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(f);
        let r = unsafe { libc::close(fd) };
        assert_eq!(
            r,
            0,
            "close of unlinked {name}: {}",
            std::io::Error::last_os_error()
        );
    }
}
