//! Integration tests for `strata mount`.
//!
//! Every test mounts a real FUSE filesystem through the built binary and, where the
//! semantics are the kernel's, compares with a real kernel overlayfs mount. The tests
//! need root, /dev/fuse usable by everyone (mode 0666), fusermount3, setfacl/getfacl,
//! and kernel overlayfs. Each test works in its own temporary directory under /tmp,
//! so they run in parallel; RAII guards unmount everything even when a test panics.

mod support;

#[path = "mount/badinput.rs"]
mod badinput;
#[path = "mount/basic.rs"]
mod basic;
#[path = "mount/cache.rs"]
mod cache;
#[path = "mount/copyup.rs"]
mod copyup;
#[path = "mount/daemon.rs"]
mod daemon;
#[path = "mount/edge.rs"]
mod edge;
#[path = "mount/fuse_overlayfs.rs"]
mod fuse_overlayfs;
#[path = "mount/inodes.rs"]
mod inodes;
#[path = "mount/interop.rs"]
mod interop;
#[path = "mount/lifecycle.rs"]
mod lifecycle;
#[path = "mount/links.rs"]
mod links;
#[path = "mount/lookup.rs"]
mod lookup;
#[path = "mount/modes.rs"]
mod modes;
#[path = "mount/more.rs"]
mod more;
#[path = "mount/perms.rs"]
mod perms;
#[path = "mount/privs.rs"]
mod privs;
#[path = "mount/privs_kernel.rs"]
mod privs_kernel;
#[path = "mount/randomized.rs"]
mod randomized;
#[path = "mount/readdir.rs"]
mod readdir;
#[path = "mount/rename.rs"]
mod rename;
#[path = "mount/replace.rs"]
mod replace;
#[path = "mount/robustness.rs"]
mod robustness;
#[path = "mount/rootless.rs"]
mod rootless;
#[path = "mount/security.rs"]
mod security;
#[path = "mount/special.rs"]
mod special;
#[path = "mount/stacking.rs"]
mod stacking;
#[path = "mount/times.rs"]
mod times;
#[path = "mount/whiteout.rs"]
mod whiteout;
