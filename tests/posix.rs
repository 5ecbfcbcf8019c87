//! POSIX conformance through a strata mount, category by category (the categories of
//! pjdfstest): chmod, chown, truncate/ftruncate, link, mkdir, mkfifo/mknod, open,
//! rename, rmdir, symlink, unlink, utimensat, and permission checks with several real
//! users, groups and supplementary groups. Every error case asserts the exact errno.
//!
//! Most tests run twice (`both!`): on objects made through the mount (upper) and on
//! objects that come from a lower layer (so every change goes through copy-up).
//! The permission tests switch credentials per thread (raw setresuid/setresgid/
//! setgroups) and rely on `allow_other`, strata's default as root.
//!
//! `STRATA_POSIX_ON=plain cargo test --test posix` runs the same tests on a plain
//! directory: a check of the suite's own expectations against the host filesystem.
//! A summary line goes to target/test-reports/posix.txt.

// The support wrappers take `impl AsRef<Path>`; this suite's calls pass `&PathBuf`.
#![allow(clippy::needless_borrows_for_generic_args)]

mod support;

#[path = "posix/fx.rs"]
mod fx;

#[path = "posix/chmod.rs"]
mod chmod;
#[path = "posix/chown.rs"]
mod chown;
#[path = "posix/fileops.rs"]
mod fileops;
#[path = "posix/handles.rs"]
mod handles;
#[path = "posix/ioctl.rs"]
mod ioctl;
#[path = "posix/link.rs"]
mod link;
#[path = "posix/mkdir.rs"]
mod mkdir;
#[path = "posix/mknod.rs"]
mod mknod;
#[path = "posix/names.rs"]
mod names;
#[path = "posix/open.rs"]
mod open;
#[path = "posix/perms.rs"]
mod perms;
#[path = "posix/rename.rs"]
mod rename;
#[path = "posix/rmdir.rs"]
mod rmdir;
#[path = "posix/symlink.rs"]
mod symlink;
#[path = "posix/truncate.rs"]
mod truncate;
#[path = "posix/unlink.rs"]
mod unlink;
#[path = "posix/utimensat.rs"]
mod utimensat;
