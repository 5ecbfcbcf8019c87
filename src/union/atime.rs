//! Access times. The kernel never updates atime on a FUSE inode, and the daemon
//! opens backing files with O_NOATIME, so reads change no atime until the union
//! says so: when an upper object is opened for reading (a file) or listing (a
//! directory), by the mount's rule (`Atime`), as kernel overlayfs does on its
//! upper. Lower objects are never touched: reading does not copy up.
//!
//! The update is made at the open, not at each read: with passthrough and the
//! page cache most reads never reach the daemon.

use super::inode::Node;
use super::layers::LayerStack;
use super::{Atime, Config, Union};
use crate::sys;
use crate::sys::mount::AtimeRule;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// How old an atime may get under `relatime` before a read refreshes it.
const RELATIME_MAX_AGE_SECS: i64 = 24 * 60 * 60;

/// A timestamp as (seconds, nanoseconds).
pub type Stamp = (i64, i64);

/// Whether a read at `now` updates an atime under `rule`: the kernel's
/// `atime_needs_update` and `relatime_need_update`.
pub fn atime_due(rule: Atime, atime: Stamp, mtime: Stamp, ctime: Stamp, now: Stamp) -> bool {
    if atime == now {
        return false;
    }
    match rule {
        Atime::Never => false,
        Atime::Always => true,
        Atime::Relative => {
            mtime >= atime || ctime >= atime || now.0 - atime.0 >= RELATIME_MAX_AGE_SECS
        }
    }
}

fn times(st: &sys::Stat) -> (Stamp, Stamp, Stamp) {
    (
        (st.st_atime, st.st_atime_nsec),
        (st.st_mtime, st.st_mtime_nsec),
        (st.st_ctime, st.st_ctime_nsec),
    )
}

/// The upper layer's root through a private copy of its mount with the
/// union's atime rule; `None` without an upper or the privilege to copy
/// mounts (the daemon then reads through the layer's own mount).
pub fn view(layers: &LayerStack, config: &Config) -> Option<OwnedFd> {
    let upper = layers.upper.as_ref()?;
    if sys::geteuid() != 0 {
        return None;
    }
    let rule = match config.atime {
        Atime::Never => AtimeRule::Noatime,
        Atime::Relative => AtimeRule::Relatime,
        Atime::Always => AtimeRule::Strictatime,
    };
    match sys::mount::clone_with_atime(upper.fd(), rule, !config.dir_atime) {
        Ok(fd) => Some(fd),
        Err(e) => {
            log::debug!("no atime view of the upper {}: {e}", upper.path.display());
            None
        }
    }
}

impl Union {
    /// `node` was opened for reading (a file) or listing (a directory); `fd`
    /// is an fd on its upper object. Updates the upper object's atime when the
    /// mount's rule says so, and drops the kernel's cached attributes then.
    pub fn accessed(&self, node: &Node, fd: BorrowedFd) {
        if self.atime == Atime::Never || (node.is_dir() && !self.dir_atime) {
            return;
        }
        if node.kind != libc::S_IFREG && node.kind != libc::S_IFDIR {
            return;
        }
        {
            let st = node.state();
            if !st.upper || st.metacopy {
                return;
            }
        }
        let Ok(before) = sys::fstat(fd) else { return };
        let (atime, mtime, ctime) = times(&before);
        if !atime_due(self.atime, atime, mtime, ctime, sys::now()) {
            return;
        }
        // A read updates atime as the kernel does (ctime untouched): through
        // the atime view by the union's rule, else through the layer's own
        // mount by its rule. Where that one disagrees (a noatime host, or
        // strictatime over a relatime host), atime is set explicitly, which
        // sets ctime too.
        let read = match (&self.atime_view, self.path(node)) {
            (Some(view), Ok(path)) => {
                let _paths = self.paths_stable();
                sys::read_updating_atime_at(view.as_fd(), &path, node.is_dir())
            }
            _ => sys::read_updating_atime(fd, node.is_dir()),
        };
        let updated = sys::fstat(fd)
            .map(|after| (after.st_atime, after.st_atime_nsec) != atime)
            .unwrap_or(false);
        if !updated {
            if let Err(e) = sys::touch_atime_explicitly(fd) {
                log::debug!("atime of node {}: {e} (read: {:?})", node.id, read.err());
                return;
            }
        }
        self.invalidate_attr(node);
    }

    /// The directory `node` was opened for listing.
    pub fn listed(&self, node: &Node) {
        if self.atime == Atime::Never || !self.dir_atime || !node.state().upper {
            return;
        }
        // The directory's cached fd: no walk for the common case, where
        // the rule says the atime stays.
        let fd = {
            let _paths = self.paths_stable();
            self.dir_fd(node, None)
        };
        if let Ok(fd) = fd {
            self.accessed(node, fd.as_fd());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = RELATIME_MAX_AGE_SECS;

    #[test]
    fn relatime_updates_after_a_change_or_a_day() {
        let now = (10 * DAY, 0);
        let r = Atime::Relative;
        // atime newer than mtime and ctime, less than a day old: no update.
        assert!(!atime_due(
            r,
            (now.0 - 10, 0),
            (now.0 - 20, 0),
            (now.0 - 20, 0),
            now
        ));
        // written since the last read
        assert!(atime_due(
            r,
            (now.0 - 10, 0),
            (now.0 - 5, 0),
            (now.0 - 5, 0),
            now
        ));
        // equal to mtime counts as not newer
        assert!(atime_due(
            r,
            (now.0 - 10, 7),
            (now.0 - 10, 7),
            (now.0 - 20, 0),
            now
        ));
        // changed (ctime) since the last read
        assert!(atime_due(
            r,
            (now.0 - 10, 0),
            (now.0 - 20, 0),
            (now.0 - 1, 0),
            now
        ));
        // a day old
        assert!(atime_due(
            r,
            (now.0 - DAY, 0),
            (now.0 - 2 * DAY, 0),
            (now.0 - 2 * DAY, 0),
            now
        ));
        assert!(!atime_due(r, (now.0 - DAY + 1, 0), (0, 0), (0, 0), now));
    }

    #[test]
    fn strictatime_always_noatime_never() {
        let now = (DAY, 5);
        let old = (DAY - 1, 0);
        assert!(atime_due(Atime::Always, old, (0, 0), (0, 0), now));
        assert!(!atime_due(Atime::Never, (0, 0), old, old, now));
        // an atime already equal to now is left as it is
        assert!(!atime_due(Atime::Always, now, (0, 0), (0, 0), now));
    }
}
