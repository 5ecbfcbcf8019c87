//! File handles: `name_to_handle_at` and `open_by_handle_at` through the mount.
//!
//! The invariant: a handle the mount hands out never fails later (ESTALE) while
//! the file exists, not even after the kernel dropped its caches. strata hands out
//! none, as the kernel overlayfs without `nfs_export=on`: EOPNOTSUPP, while the
//! encode-only file ids (`AT_HANDLE_FID`, fanotify's) still work.

use crate::both;
use crate::fx::*;
use crate::support::*;
use std::path::Path;

/// A file handle with room for the largest one (MAX_HANDLE_SZ).
#[repr(C)]
struct Handle {
    bytes: u32,
    kind: i32,
    f_handle: [u8; 128],
}

fn name_to_handle(p: &Path, flags: i32) -> std::io::Result<Box<Handle>> {
    let mut h = Box::new(Handle {
        bytes: 128,
        kind: 0,
        f_handle: [0; 128],
    });
    let mut mount_id: libc::c_int = 0;
    let c = cstr(p);
    cvt(unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            c.as_ptr(),
            &mut *h as *mut Handle as *mut libc::file_handle,
            &mut mount_id,
            flags,
        )
    })?;
    Ok(h)
}

fn open_by_handle(mount: &Path, h: &mut Handle) -> std::io::Result<Fd> {
    let m = open(mount, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let fd = cvt(unsafe {
        libc::open_by_handle_at(
            m.0,
            h as *mut Handle as *mut libc::file_handle,
            libc::O_RDONLY,
        )
    })?;
    Ok(Fd(fd))
}

fn drop_caches() {
    // Dentries and inodes: the kernel forgets the mount's inodes.
    std::fs::write("/proc/sys/vm/drop_caches", "2").expect("drop_caches");
}

fn build(m: &Mk) {
    m.dir("d", 0o755, 0, 0)
        .file("d/f", 0o644, 0, 0)
        .file("g", 0o644, 0, 0);
}

/// Every handle that is handed out opens again after the caches are dropped.
fn no_handle_goes_stale(root: &Path, names: &[&str]) -> Vec<i32> {
    let mut results = Vec::new();
    for name in names {
        let p = if name.is_empty() {
            root.to_path_buf()
        } else {
            root.join(name)
        };
        match name_to_handle(&p, 0) {
            Ok(mut h) => {
                drop_caches();
                let fd = open_by_handle(root, &mut h);
                assert!(
                    fd.is_ok(),
                    "{name:?}: a handle handed out fails after drop_caches: {}",
                    errname(eno(&fd))
                );
                results.push(0);
            }
            Err(e) => results.push(e.raw_os_error().unwrap_or(0)),
        }
    }
    results
}

both!(handles_never_go_stale, |o| {
    let f = fx(o, build);
    let names = ["", "d", "d/f", "g"];
    let got = no_handle_goes_stale(&f.p(""), &names);
    if plain() {
        return;
    }
    for (name, e) in names.iter().zip(&got) {
        eq(
            errname(*e),
            errname(libc::EOPNOTSUPP),
            &format!("name_to_handle_at {name:?}"),
        );
    }
});

both!(file_ids_still_encode, |o| {
    let f = fx(o, build);
    for name in ["", "d", "d/f", "g"] {
        let p = if name.is_empty() { f.p("") } else { f.p(name) };
        assert_ok(name_to_handle(&p, libc::AT_HANDLE_FID), name);
    }
});

#[test]
fn handles_as_the_kernel_overlay() {
    if plain() {
        return;
    }
    let lay = Layout::new(1);
    std::fs::create_dir(lay.l(0, "d")).unwrap();
    std::fs::write(lay.l(0, "d/f"), "f").unwrap();
    std::fs::write(lay.u("g"), "g").unwrap();
    let outcome = |root: &Path| -> Vec<(String, String)> {
        ["", "d", "d/f", "g"]
            .iter()
            .map(|n| {
                let p = root.join(n);
                (
                    errname(eno(&name_to_handle(&p, 0))),
                    errname(eno(&name_to_handle(&p, libc::AT_HANDLE_FID))),
                )
            })
            .collect()
    };
    let k = lay.kernel_mount();
    let kernel = outcome(&k.path(""));
    k.umount();
    let m = lay.mount();
    let strata = outcome(&m.path(""));
    eq(strata, kernel, "name_to_handle_at, plain and AT_HANDLE_FID");
}

/// fanotify in FID mode works through the mount (inode marks), as on the
/// kernel overlay: it needs only the encode-only file ids.
#[test]
fn fanotify_fid_mode() {
    let f = fx(Origin::Lower, build);
    let fan = unsafe {
        libc::fanotify_init(
            libc::FAN_CLASS_NOTIF | libc::FAN_REPORT_FID | libc::FAN_NONBLOCK,
            0,
        )
    };
    let fan = Fd(assert_ok(cvt(fan), "fanotify_init"));
    let c = cstr(f.p("g"));
    let r = unsafe {
        libc::fanotify_mark(
            fan.0,
            libc::FAN_MARK_ADD,
            libc::FAN_MODIFY,
            libc::AT_FDCWD,
            c.as_ptr(),
        )
    };
    assert_ok(cvt(r), "fanotify_mark of an inode, FID mode");
    let w = open(&f.p("g"), libc::O_WRONLY | libc::O_APPEND, 0).unwrap();
    w.write(b"x").unwrap();
    drop(w);
    let mut buf = [0u8; 4096];
    let n = unsafe { libc::read(fan.0, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    assert!(n > 0, "a FAN_MODIFY event: {}", last_err());
}
