//! The container's filesystem: the root bind, a fresh /proc with the OCI masked and
//! read-only paths, a minimal /dev, a read-only /sys, /tmp, the user's binds and tmpfs
//! mounts, and finally pivot_root (or MS_MOVE + chroot when pivot_root is impossible).
//!
//! `plan` is pure: it lists the mounts as `Op`s (unit tested); `apply` performs them
//! under the new root, resolving every destination inside it so that a symlink in the
//! rootfs cannot point a mount at the host.

use super::error::{check, cstr};
use super::error::{Error, Result};
use super::mounts::{bind, mount, remount_ro, umount_detach};
use super::spec::{Net, Spec};
use crate::sys;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

/// One step of building the root. Destinations are paths inside the container.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Proc(PathBuf),
    Tmpfs {
        dst: PathBuf,
        flags: libc::c_ulong,
        data: String,
    },
    /// A character device: mknod as real root, else a bind of the host's node.
    Dev {
        name: &'static str,
        major: u32,
        minor: u32,
    },
    Symlink {
        target: &'static str,
        link: PathBuf,
    },
    Devpts(PathBuf),
    /// A fresh read-only sysfs, else (rootless sharing the host network, where the kernel
    /// refuses it) a recursive bind of the host's with every mount read-only.
    /// `fresh` says a fresh mount must work (we have our own network namespace).
    Sysfs {
        dst: PathBuf,
        fresh: bool,
    },
    Bind {
        src: PathBuf,
        dst: PathBuf,
        read_only: bool,
    },
    /// Hide a file behind /dev/null (skipped if absent).
    MaskFile(PathBuf),
    /// Hide a directory behind an empty read-only tmpfs (skipped if absent).
    MaskDir(PathBuf),
    /// Make a path read-only (skipped if absent).
    ReadOnly(PathBuf),
}

pub const MASKED_FILES: [&str; 6] = [
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
];
pub const MASKED_DIRS: [&str; 4] = ["/proc/acpi", "/proc/asound", "/proc/scsi", "/sys/firmware"];
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
/// (name, major, minor) of the OCI default devices.
pub const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

pub fn plan(spec: &Spec) -> Vec<Op> {
    let p = PathBuf::from;
    let mut ops = vec![
        Op::Proc(p("/proc")),
        Op::Tmpfs {
            dst: p("/dev"),
            flags: libc::MS_NOSUID | libc::MS_STRICTATIME,
            data: "mode=755,size=65536k".into(),
        },
    ];
    for (name, major, minor) in DEVICES {
        ops.push(Op::Dev { name, major, minor });
    }
    for (target, link) in [
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
        ("pts/ptmx", "/dev/ptmx"),
    ] {
        ops.push(Op::Symlink {
            target,
            link: p(link),
        });
    }
    ops.push(Op::Devpts(p("/dev/pts")));
    ops.push(Op::Tmpfs {
        dst: p("/dev/shm"),
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: "mode=1777,size=65536k".into(),
    });
    ops.push(Op::Sysfs {
        dst: p("/sys"),
        fresh: spec.net == Net::None,
    });
    ops.push(Op::Tmpfs {
        dst: p("/tmp"),
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: "mode=1777".into(),
    });
    // The user's mounts, parents before children (as runc orders them), so that
    // a --tmpfs never hides a --bind made inside it.
    let mut user: Vec<(PathBuf, Op)> = spec
        .binds
        .iter()
        .map(|b| {
            let op = Op::Bind {
                src: b.src.clone(),
                dst: b.dst.clone(),
                read_only: b.read_only,
            };
            (b.dst.clone(), op)
        })
        .chain(spec.tmpfs.iter().map(|t| {
            let op = Op::Tmpfs {
                dst: t.clone(),
                flags: libc::MS_NOSUID | libc::MS_NODEV,
                data: "mode=755".into(),
            };
            (t.clone(), op)
        }))
        .collect();
    user.sort_by_key(|(dst, _)| dst.components().count());
    ops.extend(user.into_iter().map(|(_, op)| op));
    ops.extend(MASKED_FILES.iter().map(|f| Op::MaskFile(p(f))));
    ops.extend(MASKED_DIRS.iter().map(|d| Op::MaskDir(p(d))));
    ops.extend(READONLY_PATHS.iter().map(|r| Op::ReadOnly(p(r))));
    ops
}

/// Resolves `path` (absolute, as seen in the container) under `root`, following
/// symlinks as if `root` were `/`. Components that do not exist yet are appended as is.
pub fn secure_join(root: &Path, path: &Path) -> Result<PathBuf> {
    let mut todo: Vec<PathBuf> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect();
    let mut cur = PathBuf::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c.as_os_str() == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&c);
        match std::fs::symlink_metadata(root.join(&next)) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(Error::new(format!(
                        "{}: too many symlinks inside the rootfs",
                        path.display()
                    )));
                }
                let target = std::fs::read_link(root.join(&next)).map_err(|e| {
                    Error::io(format!("readlink {}", root.join(&next).display()), e)
                })?;
                if target.is_absolute() {
                    cur = PathBuf::new();
                }
                todo.extend(target.components().rev().filter_map(|c| match c {
                    Component::Normal(n) => Some(PathBuf::from(n)),
                    Component::ParentDir => Some(PathBuf::from("..")),
                    _ => None,
                }));
            }
            _ => cur = next,
        }
    }
    Ok(root.join(cur))
}

/// The paths the container's set-up would have to create in `root` itself
/// (mount points, the working directory), as seen inside the container. What
/// lies under a tmpfs the plan mounts (/dev, /tmp, `--tmpfs`) is not counted.
pub fn missing_mount_points(root: &Path, spec: &Spec) -> Result<Vec<PathBuf>> {
    let mut covered: Vec<PathBuf> = Vec::new();
    let mut needed: Vec<PathBuf> = Vec::new();
    for op in plan(spec) {
        let dst = match &op {
            Op::Proc(d) | Op::Sysfs { dst: d, .. } | Op::Bind { dst: d, .. } => d.clone(),
            Op::Tmpfs { dst, .. } => dst.clone(),
            // Made inside /dev's tmpfs, or skipped when absent.
            _ => continue,
        };
        if !covered.iter().any(|c| dst.starts_with(c)) {
            needed.push(dst.clone());
        }
        if let Op::Tmpfs { dst, .. } = op {
            covered.push(dst);
        }
    }
    if !covered.iter().any(|c| spec.workdir.starts_with(c)) {
        needed.push(spec.workdir.clone());
    }
    let mut missing = Vec::new();
    for dst in needed {
        if std::fs::symlink_metadata(secure_join(root, &dst)?).is_err() {
            missing.push(dst);
        }
    }
    Ok(missing)
}

fn mkdirs(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p)
        .map_err(|e| Error::io(format!("create directory {}", p.display()), e))
}

/// Makes sure a file exists at `p` to mount over.
fn touch(p: &Path) -> Result<()> {
    if let Some(parent) = p.parent() {
        mkdirs(parent)?;
    }
    if p.exists() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p)
        .map(drop)
        .map_err(|e| Error::io(format!("create mount point {}", p.display()), e))
}

/// Performs the planned mounts under `root`.
pub fn apply(root: &Path, ops: &[Op], rootless: bool) -> Result<()> {
    let host_dev = |name: &str| PathBuf::from("/dev").join(name);
    for op in ops {
        log::trace!("rootfs op {op:?}");
        match op {
            Op::Proc(dst) => {
                let t = secure_join(root, dst)?;
                mkdirs(&t)?;
                let fl = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
                mount(Some(OsStr::new("proc")), &t, Some("proc"), fl, None)?;
            }
            Op::Tmpfs { dst, flags, data } => {
                let t = secure_join(root, dst)?;
                mkdirs(&t)?;
                mount(
                    Some(OsStr::new("tmpfs")),
                    &t,
                    Some("tmpfs"),
                    *flags,
                    Some(data),
                )?;
            }
            Op::Dev { name, major, minor } => {
                let t = secure_join(root, &Path::new("/dev").join(name))?;
                if rootless || mknod(&t, *major, *minor).is_err() {
                    touch(&t)?;
                    bind(&host_dev(name), &t, false)?;
                }
            }
            Op::Symlink { target, link } => {
                let t = secure_join(root, link)?;
                std::os::unix::fs::symlink(target, &t)
                    .map_err(|e| Error::io(format!("symlink {}", t.display()), e))?;
            }
            Op::Devpts(dst) => {
                let t = secure_join(root, dst)?;
                mkdirs(&t)?;
                let fl = libc::MS_NOSUID | libc::MS_NOEXEC;
                let src = Some(OsStr::new("devpts"));
                // gid=5 (tty) only exists in the namespace when it is mapped.
                mount(
                    src,
                    &t,
                    Some("devpts"),
                    fl,
                    Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
                )
                .or_else(|_| {
                    mount(
                        src,
                        &t,
                        Some("devpts"),
                        fl,
                        Some("newinstance,ptmxmode=0666,mode=0620"),
                    )
                })?;
            }
            Op::Sysfs {
                dst,
                fresh: fresh_expected,
            } => {
                let t = secure_join(root, dst)?;
                mkdirs(&t)?;
                let fl = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
                // Real root may always mount sysfs; in a user namespace only with our own
                // network namespace. Otherwise bind the host's, every submount read-only.
                let fresh = mount(Some(OsStr::new("sysfs")), &t, Some("sysfs"), fl, None);
                if let Err(e) = fresh {
                    if *fresh_expected {
                        return Err(e);
                    }
                    bind(Path::new("/sys"), &t, true)?;
                    remount_tree_ro(&t)?;
                }
            }
            Op::Bind {
                src,
                dst,
                read_only,
            } => {
                let t = secure_join(root, dst)?;
                if src.is_dir() {
                    mkdirs(&t)?;
                } else {
                    touch(&t)?;
                }
                bind(src, &t, true)?;
                if *read_only {
                    remount_ro(&t)?;
                }
            }
            Op::MaskFile(dst) => {
                let t = secure_join(root, dst)?;
                if t.exists() {
                    bind(&secure_join(root, Path::new("/dev/null"))?, &t, false)?;
                }
            }
            Op::MaskDir(dst) => {
                let t = secure_join(root, dst)?;
                if t.is_dir() {
                    let fl = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
                    mount(
                        Some(OsStr::new("tmpfs")),
                        &t,
                        Some("tmpfs"),
                        fl,
                        Some("size=0"),
                    )?;
                }
            }
            Op::ReadOnly(dst) => {
                let t = secure_join(root, dst)?;
                if t.exists() {
                    bind(&t, &t, true)?;
                    remount_ro(&t)?;
                }
            }
        }
    }
    Ok(())
}

/// Remounts `top` and every mount below it read-only.
fn remount_tree_ro(top: &Path) -> Result<()> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("read /proc/self/mountinfo", e))?;
    let top_s = top.to_string_lossy();
    for mp in mi.lines().filter_map(|l| l.split(' ').nth(4)) {
        let mp = mp.replace("\\040", " ");
        if mp == top_s || mp.starts_with(&format!("{top_s}/")) {
            remount_ro(Path::new(&mp))?;
        }
    }
    Ok(())
}

fn mknod(p: &Path, major: u32, minor: u32) -> Result<()> {
    let c = cstr(p)?;
    let (ma, mi) = (major as u64, minor as u64);
    let dev =
        ((ma & 0xffff_f000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0xff);
    // SAFETY: c is a valid C string.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, dev as libc::dev_t) };
    check(r, || format!("mknod {}", p.display()))?;
    // The umask trimmed the mode; devices are 0666 by convention.
    // SAFETY: c is a valid C string.
    let r = unsafe { libc::chmod(c.as_ptr(), 0o666) };
    check(r, || format!("chmod {}", p.display())).map(drop)
}

/// Makes every mount in this (new) mount namespace private, then binds `src` onto
/// itself so it is a mount point we own (pivot_root needs one).
pub fn prepare_root(src: &Path) -> Result<()> {
    let fl = libc::MS_REC | libc::MS_PRIVATE;
    mount(None, Path::new("/"), None, fl, None)?;
    bind(src, src, true)
}

/// Switches `/` to `root`: pivot_root with the old root detached, or — when forced or
/// when pivot_root is impossible (rootfs on ramfs/initramfs) — MS_MOVE onto `/` + chroot.
pub fn switch_root(root: &Path, force_chroot: bool) -> Result<()> {
    let c = cstr(root)?;
    // SAFETY: c is a valid C string.
    check(unsafe { libc::chdir(c.as_ptr()) }, || {
        format!("chdir {}", root.display())
    })?;
    if !force_chroot {
        let dot = cstr(".")?;
        // SAFETY: pivot_root(".", ".") stacks the old root under the new one; see pivot_root(2).
        let r = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
        if r == 0 {
            umount_detach(Path::new("."))?;
            // SAFETY: chdir to a constant path.
            check(unsafe { libc::chdir(c"/".as_ptr()) }, || "chdir /".into())?;
            log::debug!("root switched with pivot_root");
            return Ok(());
        }
        if sys::process::last_errno() != libc::EINVAL {
            return Err(Error::last_os(format!("pivot_root to {}", root.display())));
        }
        log::info!("pivot_root impossible here (EINVAL); falling back to MS_MOVE + chroot");
    }
    mount(
        Some(root.as_os_str()),
        Path::new("/"),
        None,
        libc::MS_MOVE,
        None,
    )?;
    // SAFETY: chroot/chdir to constant paths.
    check(unsafe { libc::chroot(c".".as_ptr()) }, || "chroot .".into())?;
    check(unsafe { libc::chdir(c"/".as_ptr()) }, || "chdir /".into())?;
    log::debug!("root switched with MS_MOVE + chroot (no pivot_root)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::spec::{BindMount, Limits, RootSource};

    #[test]
    fn missing_mount_points_are_those_made_on_the_root_itself() {
        let root = tempfile::tempdir().unwrap();
        for d in ["proc", "dev", "sys", "tmp", "opt"] {
            std::fs::create_dir(root.path().join(d)).unwrap();
        }
        let mut s = crate::launcher::spec::test_spec();
        assert_eq!(
            missing_mount_points(root.path(), &s).unwrap(),
            Vec::<PathBuf>::new()
        );
        s.binds = vec![
            BindMount {
                src: "/h".into(),
                dst: "/data".into(),
                read_only: true,
            },
            BindMount {
                src: "/h".into(),
                dst: "/scratch/in".into(),
                read_only: false,
            },
            BindMount {
                src: "/h".into(),
                dst: "/opt".into(),
                read_only: false,
            },
        ];
        s.tmpfs = vec!["/scratch".into()];
        s.workdir = "/work/dir".into();
        assert_eq!(
            missing_mount_points(root.path(), &s).unwrap(),
            vec![
                PathBuf::from("/data"),
                PathBuf::from("/scratch"),
                PathBuf::from("/work/dir")
            ]
        );
        s.workdir = "/tmp/w".into();
        std::fs::create_dir(root.path().join("data")).unwrap();
        std::fs::create_dir(root.path().join("scratch")).unwrap();
        assert_eq!(
            missing_mount_points(root.path(), &s).unwrap(),
            Vec::<PathBuf>::new()
        );
    }

    fn spec() -> Spec {
        Spec {
            root: RootSource::Rootfs("/r".into()),
            upper: None,
            work: None,
            volatile: false,
            override_stat: false,
            limits: Limits::default(),
            proc_view: true,
            hostname: "h".into(),
            net: Net::None,
            binds: vec![BindMount {
                src: "/host".into(),
                dst: "/data".into(),
                read_only: true,
            }],
            tmpfs: vec!["/scratch".into()],
            env: vec![],
            workdir: "/".into(),
            user: None,
            read_only: false,
            init: false,
            no_pivot: false,
            private_mount_points: false,
            tty: false,
            interactive: false,
            command: vec!["sh".into()],
        }
    }

    fn pos(ops: &[Op], f: impl Fn(&Op) -> bool) -> usize {
        ops.iter().position(f).expect("op present")
    }

    #[test]
    fn user_mounts_come_parents_first() {
        let mut s = spec();
        s.binds.push(BindMount {
            src: "/host".into(),
            dst: "/scratch/in".into(),
            read_only: false,
        });
        let ops = plan(&s);
        let tmpfs = pos(
            &ops,
            |o| matches!(o, Op::Tmpfs { dst, .. } if dst == Path::new("/scratch")),
        );
        let inner = pos(
            &ops,
            |o| matches!(o, Op::Bind { dst, .. } if dst == Path::new("/scratch/in")),
        );
        assert!(tmpfs < inner, "{ops:?}");
    }

    #[test]
    fn plan_orders_dependencies() {
        let ops = plan(&spec());
        let dev = pos(
            &ops,
            |o| matches!(o, Op::Tmpfs { dst, .. } if dst == Path::new("/dev")),
        );
        let null = pos(&ops, |o| matches!(o, Op::Dev { name: "null", .. }));
        let proc_ = pos(&ops, |o| matches!(o, Op::Proc(_)));
        let mask = pos(
            &ops,
            |o| matches!(o, Op::MaskFile(p) if p == Path::new("/proc/kcore")),
        );
        let bind = pos(&ops, |o| {
            matches!(
                o,
                Op::Bind {
                    read_only: true,
                    ..
                }
            )
        });
        assert!(dev < null && null < mask && proc_ < mask, "{ops:?}");
        assert!(bind < mask, "user binds cannot undo the masks");
        assert!(ops.contains(&Op::ReadOnly("/proc/sysrq-trigger".into())));
        assert!(ops.contains(&Op::Sysfs {
            dst: "/sys".into(),
            fresh: true
        }));
        assert!(ops
            .iter()
            .any(|o| matches!(o, Op::Tmpfs { dst, .. } if dst == Path::new("/scratch"))));
    }

    #[test]
    fn host_net_gets_bound_sysfs() {
        let mut s = spec();
        s.net = Net::Host;
        assert!(plan(&s).contains(&Op::Sysfs {
            dst: "/sys".into(),
            fresh: false
        }));
    }

    #[test]
    fn secure_join_keeps_symlinks_inside() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin", root.join("bin")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("evil")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("usr/up")).unwrap();
        assert_eq!(
            secure_join(root, Path::new("/bin/sh")).unwrap(),
            root.join("usr/bin/sh")
        );
        assert_eq!(
            secure_join(root, Path::new("/evil/x")).unwrap(),
            root.join("etc/x")
        );
        assert_eq!(
            secure_join(root, Path::new("/usr/up/tmp")).unwrap(),
            root.join("tmp")
        );
        assert_eq!(
            secure_join(root, Path::new("/../../proc")).unwrap(),
            root.join("proc")
        );
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(secure_join(root, Path::new("/loop/x")).is_err());
    }
}
