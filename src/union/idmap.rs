//! Ids as the mount shows them: fuse-overlayfs' `uidmapping=`/`gidmapping=`
//! shifting and its `squash_to_*` options.
//!
//! A range maps the ids kept in the layers (`layer`..`layer + count`) to the ids
//! seen through the mount (`mount`..`mount + count`), as fuse-overlayfs'
//! `uidmapping=LAYER:MOUNT:COUNT` does: podman keeps an image's files with the
//! container's own ids (0 for root) and the mount shows them as the host ids of
//! the container's user namespace. Ids are shifted on every read (stat, the
//! entries of a POSIX ACL) and shifted back on every write (the owner of a new
//! object, chown, an ACL set). An id no range holds shows as, and is written
//! as, the overflow id 65534, as fuse-overlayfs does.
//!
//! Squashing only changes what reads show: every object is reported with
//! that owner; what is written is shifted back as usual.

/// The id shown (and written) for an id no range maps: the kernel's default
/// `overflowuid`/`overflowgid`, which fuse-overlayfs uses too.
pub const OVERFLOW_ID: u32 = 65534;

/// `layer..layer+count` in the layers is `mount..mount+count` through the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub layer: u32,
    pub mount: u32,
    pub count: u32,
}

impl IdRange {
    fn holds(start: u32, count: u32, id: u32) -> bool {
        id >= start && (id - start) < count
    }

    /// Whether `a_start..+a_count` and `b_start..+b_count` share an id.
    fn overlaps(a_start: u32, a_count: u32, b_start: u32, b_count: u32) -> bool {
        let (a, b) = (a_start as u64, b_start as u64);
        a < b + b_count as u64 && b < a + a_count as u64
    }
}

/// One id mapping: no ranges is the identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    ranges: Vec<IdRange>,
}

impl IdMap {
    /// A mapping of these ranges; they must not overlap on either side (the
    /// mapping would not be one to one) nor run past the largest id.
    pub fn new(ranges: Vec<IdRange>) -> Result<IdMap, String> {
        for (i, r) in ranges.iter().enumerate() {
            if r.count == 0 {
                return Err(format!("range {}:{}:0 is empty", r.layer, r.mount));
            }
            if r.layer as u64 + r.count as u64 > 1 << 32
                || r.mount as u64 + r.count as u64 > 1 << 32
            {
                return Err(format!(
                    "range {}:{}:{} runs past the largest id",
                    r.layer, r.mount, r.count
                ));
            }
            for o in &ranges[..i] {
                if IdRange::overlaps(r.layer, r.count, o.layer, o.count)
                    || IdRange::overlaps(r.mount, r.count, o.mount, o.count)
                {
                    return Err(format!(
                        "ranges {}:{}:{} and {}:{}:{} overlap",
                        o.layer, o.mount, o.count, r.layer, r.mount, r.count
                    ));
                }
            }
        }
        Ok(IdMap { ranges })
    }

    pub fn is_identity(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The id shown for `id` in the layers.
    pub fn to_mount(&self, id: u32) -> u32 {
        if self.ranges.is_empty() {
            return id;
        }
        self.ranges
            .iter()
            .find(|r| IdRange::holds(r.layer, r.count, id))
            .map(|r| r.mount + (id - r.layer))
            .unwrap_or(OVERFLOW_ID)
    }

    /// The id written to the layers for `id` seen through the mount.
    pub fn to_layer(&self, id: u32) -> u32 {
        if self.ranges.is_empty() {
            return id;
        }
        self.ranges
            .iter()
            .find(|r| IdRange::holds(r.mount, r.count, id))
            .map(|r| r.layer + (id - r.mount))
            .unwrap_or(OVERFLOW_ID)
    }
}

/// The owner rules of a mount: the two mappings and the squashed owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ids {
    pub uids: IdMap,
    pub gids: IdMap,
    /// `squash_to_uid=N` (`squash_to_root`: 0): every object shows this owner.
    pub squash_uid: Option<u32>,
    /// `squash_to_gid=N` (`squash_to_root`: 0).
    pub squash_gid: Option<u32>,
}

/// An ACL xattr's entry tags that carry an id (`ACL_USER`, `ACL_GROUP`).
const ACL_USER: u16 = 0x02;
const ACL_GROUP: u16 = 0x08;
/// The version in the header of `system.posix_acl_*` values.
const ACL_VERSION: u32 = 2;

impl Ids {
    /// Nothing to change: reads and writes keep the layers' ids.
    pub fn is_identity(&self) -> bool {
        self.uids.is_identity()
            && self.gids.is_identity()
            && self.squash_uid.is_none()
            && self.squash_gid.is_none()
    }

    /// The owner shown for an object owned by (uid, gid) in the layers.
    pub fn shown(&self, uid: u32, gid: u32) -> (u32, u32) {
        (
            self.squash_uid.unwrap_or_else(|| self.uids.to_mount(uid)),
            self.squash_gid.unwrap_or_else(|| self.gids.to_mount(gid)),
        )
    }

    /// The uid written to the layers for `uid` seen through the mount.
    pub fn layer_uid(&self, uid: u32) -> u32 {
        self.uids.to_layer(uid)
    }

    /// The gid written to the layers for `gid` seen through the mount.
    pub fn layer_gid(&self, gid: u32) -> u32 {
        self.gids.to_layer(gid)
    }

    /// A `system.posix_acl_access`/`_default` value read from the layers, with
    /// its named users and groups as the mount shows them (squashing only
    /// concerns owners). Anything not an ACL of the known version is left as it is.
    pub fn acl_to_mount(&self, value: &[u8]) -> Vec<u8> {
        map_acl(
            value,
            |id| self.uids.to_mount(id),
            |id| self.gids.to_mount(id),
        )
    }

    /// An ACL value set through the mount, with its ids as the layers keep them.
    pub fn acl_to_layer(&self, value: &[u8]) -> Vec<u8> {
        map_acl(
            value,
            |id| self.uids.to_layer(id),
            |id| self.gids.to_layer(id),
        )
    }
}

/// Whether `name` is one of the ACL xattrs whose entries carry ids.
pub fn is_acl_xattr(name: &[u8]) -> bool {
    name == b"system.posix_acl_access" || name == b"system.posix_acl_default"
}

/// The kernel's xattr form of an ACL: a u32 version, then entries of
/// (u16 tag, u16 perm, u32 id), little endian.
fn map_acl(value: &[u8], uid: impl Fn(u32) -> u32, gid: impl Fn(u32) -> u32) -> Vec<u8> {
    let mut out = value.to_vec();
    if value.len() < 4 || !(value.len() - 4).is_multiple_of(8) {
        return out;
    }
    if u32::from_le_bytes([value[0], value[1], value[2], value[3]]) != ACL_VERSION {
        return out;
    }
    for entry in out[4..].chunks_exact_mut(8) {
        let tag = u16::from_le_bytes([entry[0], entry[1]]);
        let id = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
        let mapped = match tag {
            ACL_USER => uid(id),
            ACL_GROUP => gid(id),
            _ => continue,
        };
        entry[4..8].copy_from_slice(&mapped.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(ranges: &[(u32, u32, u32)]) -> IdMap {
        IdMap::new(
            ranges
                .iter()
                .map(|&(layer, mount, count)| IdRange {
                    layer,
                    mount,
                    count,
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn one_range_shifts_both_ways() {
        let m = map(&[(0, 100000, 65536)]);
        assert_eq!(m.to_mount(0), 100000);
        assert_eq!(m.to_mount(5), 100005);
        assert_eq!(m.to_mount(65535), 165535);
        assert_eq!(m.to_layer(100000), 0);
        assert_eq!(m.to_layer(165535), 65535);
    }

    #[test]
    fn outside_every_range_is_the_overflow_id() {
        let m = map(&[(0, 100000, 65536)]);
        assert_eq!(m.to_mount(65536), OVERFLOW_ID);
        assert_eq!(m.to_mount(100000), OVERFLOW_ID);
        assert_eq!(m.to_layer(0), OVERFLOW_ID);
        assert_eq!(m.to_layer(99999), OVERFLOW_ID);
        assert_eq!(m.to_layer(165536), OVERFLOW_ID);
        assert_eq!(m.to_layer(u32::MAX), OVERFLOW_ID);
    }

    #[test]
    fn several_ranges() {
        let m = map(&[(0, 1000, 1), (1, 200000, 10), (100, 5, 2)]);
        assert_eq!(m.to_mount(0), 1000);
        assert_eq!(m.to_mount(1), 200000);
        assert_eq!(m.to_mount(10), 200009);
        assert_eq!(m.to_mount(11), OVERFLOW_ID);
        assert_eq!(m.to_mount(101), 6);
        assert_eq!(m.to_layer(6), 101);
        assert_eq!(m.to_layer(200009), 10);
        assert_eq!(m.to_layer(1000), 0);
        assert_eq!(m.to_layer(1001), OVERFLOW_ID);
    }

    #[test]
    fn identity_without_ranges() {
        let m = IdMap::default();
        assert_eq!(m.to_mount(12345), 12345);
        assert_eq!(m.to_layer(u32::MAX), u32::MAX);
    }

    #[test]
    fn bad_ranges_are_refused() {
        let r = |layer, mount, count| IdRange {
            layer,
            mount,
            count,
        };
        assert!(IdMap::new(vec![r(0, 0, 0)]).is_err());
        assert!(IdMap::new(vec![r(u32::MAX, 0, 2)]).is_err());
        assert!(IdMap::new(vec![r(0, 100, 10), r(5, 500, 1)]).is_err());
        assert!(IdMap::new(vec![r(0, 100, 10), r(50, 105, 1)]).is_err());
        assert!(IdMap::new(vec![r(0, 100, 10), r(10, 110, 1)]).is_ok());
        assert!(IdMap::new(vec![r(u32::MAX, 0, 1)]).is_ok());
    }

    #[test]
    fn squash_wins_for_reads_only() {
        let ids = Ids {
            uids: map(&[(0, 100000, 65536)]),
            gids: map(&[(0, 100000, 65536)]),
            squash_uid: Some(7),
            squash_gid: None,
        };
        assert_eq!(ids.shown(3, 3), (7, 100003));
        assert_eq!(ids.layer_uid(100003), 3);
        assert!(!ids.is_identity());
        assert!(Ids::default().is_identity());
    }

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = ACL_VERSION.to_le_bytes().to_vec();
        for &(tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    #[test]
    fn acl_entries_are_shifted() {
        let ids = Ids {
            uids: map(&[(0, 100000, 65536)]),
            gids: map(&[(0, 200000, 65536)]),
            ..Default::default()
        };
        let undefined = u32::MAX;
        let on_disk = acl(&[
            (0x01, 6, undefined),
            (ACL_USER, 7, 3),
            (0x04, 4, undefined),
            (ACL_GROUP, 4, 4),
            (ACL_USER, 4, 70000),
            (0x10, 7, undefined),
            (0x20, 4, undefined),
        ]);
        let shown = acl(&[
            (0x01, 6, undefined),
            (ACL_USER, 7, 100003),
            (0x04, 4, undefined),
            (ACL_GROUP, 4, 200004),
            (ACL_USER, 4, OVERFLOW_ID),
            (0x10, 7, undefined),
            (0x20, 4, undefined),
        ]);
        assert_eq!(ids.acl_to_mount(&on_disk), shown);
        let back = ids.acl_to_layer(&shown);
        assert_eq!(&back[..28], &on_disk[..28]);
        // The overflow id is outside the mount's range: written as itself.
        assert_eq!(
            ids.acl_to_layer(&acl(&[(ACL_USER, 4, 5)])),
            acl(&[(ACL_USER, 4, OVERFLOW_ID)])
        );
        // Not an ACL: untouched.
        assert_eq!(ids.acl_to_mount(b"abc"), b"abc");
        let mut other_version = on_disk.clone();
        other_version[0] = 1;
        assert_eq!(ids.acl_to_mount(&other_version), other_version);
        assert!(is_acl_xattr(b"system.posix_acl_default"));
        assert!(!is_acl_xattr(b"user.x"));
    }
}
