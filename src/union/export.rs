//! File handles (`name_to_handle_at`, NFS export): strata hands out none.
//!
//! The kernel's fuse encodes a handle as (node id, generation) and decodes one
//! whose inode it no longer caches by sending LOOKUP of "." on that node id
//! (with `FUSE_EXPORT_SUPPORT`; without it, ESTALE). strata's node ids are
//! dropped at FORGET, so such a handle would fail with ESTALE once the kernel
//! evicts the inode (drop_caches, memory pressure): a handle that works today
//! and fails tomorrow. Like the kernel overlayfs without `nfs_export=on`, strata
//! refuses them: with `FUSE_NO_EXPORT_SUPPORT` (kernel 6.9 and later) the
//! kernel gives the mount encode-only export operations, so
//! `name_to_handle_at` fails with EOPNOTSUPP while `AT_HANDLE_FID` (fanotify's
//! file ids, never decoded) still works.

use fuser::InitFlags;

/// The export-related flags to ask for at FUSE_INIT, among those the kernel
/// offers (`offered`).
pub fn init_flags(offered: InitFlags) -> InitFlags {
    if offered.contains(InitFlags::FUSE_NO_EXPORT_SUPPORT) {
        log::debug!("init: no export support (file handles refused, fids only)");
        InitFlags::FUSE_NO_EXPORT_SUPPORT
    } else {
        // Older kernels always encode handles; without FUSE_EXPORT_SUPPORT
        // they decode only those of inodes still cached, and fail the rest
        // with ESTALE rather than ask us about a node id we forgot.
        log::warn!(
            "the kernel does not offer FUSE_NO_EXPORT_SUPPORT: file handles of this mount \
             fail with ESTALE once the kernel evicts the inode"
        );
        InitFlags::empty()
    }
}
