//! The inode table: what the kernel knows by node id, where each object lives
//! in the layers, and the stable st_ino we report for it.
//!
//! A node is found again by its identity key: an upper object by its real
//! inode number (so hard links share a node), a lower-only object by its
//! parent node and name. Nodes are dropped when the kernel forgets them.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

pub const ROOT_ID: u64 = 1;

fn next_serial() -> u64 {
    static SERIAL: AtomicU64 = AtomicU64::new(1);
    SERIAL.fetch_add(1, Ordering::Relaxed)
}

/// Where one object comes from in a lower layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LowerLoc {
    /// Index into `LayerStack::lowers` (0 = top lower).
    pub layer: usize,
    /// Path relative to that layer's root.
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// Real inode number in the upper layer.
    Upper(u64),
    /// A lower-only object: its parent node and its name there.
    Lower(u64, OsString),
    /// A lower-only file with several hard links: its layer and real inode,
    /// so that every name of it is one node.
    LowerIno(usize, u64),
}

#[derive(Debug, Clone)]
pub struct NodeState {
    /// Merged location: parent node and name (the root has parent 0).
    pub parent: u64,
    pub name: OsString,
    /// Other merged names of the same upper object (hard links) we have seen.
    pub aliases: Vec<(u64, OsString)>,
    /// The object exists in the upper layer at the merged path.
    pub upper: bool,
    /// Non-directory: the lower object it was found as (its origin).
    /// Directory: every lower directory merged into it, top first.
    pub lowers: Vec<LowerLoc>,
    /// The name was removed; only open handles still reach the object.
    pub unlinked: bool,
    /// An upper object whose last name is gone while the kernel still knows
    /// it (open, or looked up just before): an O_PATH fd that still reaches it.
    pub orphan: Option<Arc<std::os::fd::OwnedFd>>,
    /// Upper file with metadata only (`overlay.metacopy`): its data is still
    /// the lower file's.
    pub metacopy: bool,
    pub key: Key,
}

#[derive(Debug)]
pub struct Node {
    /// FUSE node id.
    pub id: u64,
    /// Unique for the life of the mount (ids can come back; this can't).
    /// 0 for a detached node.
    pub serial: u64,
    /// st_ino as reported (equal to `id`, as fuser wants): stable for the
    /// life of the mount, copy-up included.
    pub ino: u64,
    /// S_IFMT bits; a name that changes type gets a new node.
    pub kind: u32,
    lookups: AtomicU64,
    state: Mutex<NodeState>,
    /// Serialises copy-up of this node.
    pub copy_up: Mutex<()>,
    /// Directory with many lower layers: which of them hold which names.
    /// Lower layers never change, so it never goes stale.
    pub lower_index: std::sync::OnceLock<Arc<LowerIndex>>,
    /// The passthrough backing file while the node is open.
    pub backing: super::passthrough::NodeBacking,
    /// The names of the node's user-visible xattrs, once read.
    pub xattr_names: Mutex<XattrNames>,
}

/// A node's remembered xattr names, and how many changes they have seen.
#[derive(Debug, Default)]
pub struct XattrNames {
    pub generation: u64,
    pub names: Option<Arc<Vec<Vec<u8>>>>,
}

/// For one merged directory: in which of its lower layers each name appears
/// (as an object or a whiteout), so a lookup visits only those layers.
/// A lookup asks once per layer, so each answer costs O(log n) at most: a
/// deep stack (500 layers) must not make a lookup quadratic in its depth.
#[derive(Debug, Default)]
pub struct LowerIndex {
    /// Per name, the layers it appears in, sorted.
    names: HashMap<OsString, Vec<u16>>,
    /// The layers that were read, one bit each; for any other layer the
    /// answer is "maybe".
    covered: Vec<u64>,
}

impl LowerIndex {
    pub fn add(&mut self, name: &OsStr, layer: usize) {
        let layers = self.names.entry(name.to_os_string()).or_default();
        let l = layer as u16;
        if let Err(at) = layers.binary_search(&l) {
            layers.insert(at, l);
        }
    }

    /// Might `name` be in lower layer `layer`?
    pub fn has(&self, name: &OsStr, layer: usize) -> bool {
        !self.is_covered(layer)
            || self
                .names
                .get(name)
                .is_some_and(|ls| ls.binary_search(&(layer as u16)).is_ok())
    }

    pub fn cover(&mut self, layer: usize) {
        let (word, bit) = (layer / 64, layer % 64);
        if self.covered.len() <= word {
            self.covered.resize(word + 1, 0);
        }
        self.covered[word] |= 1 << bit;
    }

    fn is_covered(&self, layer: usize) -> bool {
        self.covered
            .get(layer / 64)
            .is_some_and(|w| w & (1 << (layer % 64)) != 0)
    }
}

impl Node {
    pub fn state(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_dir(&self) -> bool {
        self.kind == libc::S_IFDIR
    }

    /// A node outside the table, for looking at a name the kernel holds no
    /// reference to (e.g. listing a directory before removing it).
    pub fn detached(parent: u64, name: &OsStr, r: &super::lookup::Resolved) -> Node {
        Node {
            id: 0,
            serial: 0,
            ino: 0,
            kind: r.kind(),
            lookups: AtomicU64::new(0),
            state: Mutex::new(NodeState {
                parent,
                name: name.to_os_string(),
                aliases: Vec::new(),
                upper: r.upper,
                lowers: r.lowers.clone(),
                unlinked: false,
                metacopy: r.metacopy,
                orphan: None,
                key: Key::Lower(parent, name.to_os_string()),
            }),
            copy_up: Mutex::new(()),
            lower_index: std::sync::OnceLock::new(),
            backing: Default::default(),
            xattr_names: Mutex::default(),
        }
    }
}

#[derive(Default)]
struct Tables {
    nodes: HashMap<u64, Arc<Node>>,
    by_key: HashMap<Key, u64>,
    /// The nodes the kernel forgot last, newest last (see `revive`).
    forgotten: std::collections::VecDeque<Arc<Node>>,
}

/// How many forgotten nodes `revive` can still bring back.
const FORGOTTEN_KEPT: usize = 256;

/// Fewer nodes freed since the last trim are not worth one (`malloc_trim` walks
/// every arena's free chunks). Small enough that the last few hundred nodes a
/// drop_caches frees are trimmed too: each can pin a page of its own.
const TRIM_MIN_FREED: usize = 128;

pub struct InodeTable {
    tables: RwLock<Tables>,
    next_id: AtomicU64,
    /// Real upper inode → reported st_ino, for objects copied up by this mount,
    /// so that copy-up never changes st_ino.
    copied_up: Mutex<HashMap<u64, u64>>,
    /// Most live nodes since the last trim.
    peak: std::sync::atomic::AtomicUsize,
}

/// Packs a layer index and a real inode number into one st_ino, the way
/// overlayfs' xino does: the layer in the high bits. Layer 0 is the upper.
pub fn pack_ino(layer_tag: usize, real_ino: u64) -> u64 {
    ((layer_tag as u64 + 1) << 48) | (real_ino & ((1 << 48) - 1))
}

impl InodeTable {
    pub fn new(root: NodeState) -> InodeTable {
        let root = Arc::new(Node {
            id: ROOT_ID,
            serial: next_serial(),
            ino: ROOT_ID,
            kind: libc::S_IFDIR,
            lookups: AtomicU64::new(1),
            state: Mutex::new(root),
            copy_up: Mutex::new(()),
            lower_index: std::sync::OnceLock::new(),
            backing: Default::default(),
            xattr_names: Mutex::default(),
        });
        let mut tables = Tables::default();
        tables.nodes.insert(ROOT_ID, root);
        InodeTable {
            tables: RwLock::new(tables),
            next_id: AtomicU64::new(1),
            copied_up: Mutex::new(HashMap::new()),
            peak: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    pub fn get(&self, id: u64) -> Option<Arc<Node>> {
        self.tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .nodes
            .get(&id)
            .cloned()
    }

    /// The st_ino for an object seen in the upper layer with real inode `real`.
    pub fn upper_ino(&self, real: u64) -> u64 {
        let map = self.copied_up.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&real).copied().unwrap_or_else(|| pack_ino(0, real))
    }

    pub fn record_copy_up(&self, real_upper: u64, reported: u64) {
        self.copied_up
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(real_upper, reported);
    }

    /// Returns the node for `key` with one more lookup reference, creating it
    /// from `make` when it does not exist (or exists with another type).
    ///
    /// fuser makes the FUSE node id and st_ino one number, so a new node takes
    /// `ino` as its id; in the rare case that a live node of another identity
    /// holds it (a lower hard link of a copied-up file), a free id is used.
    pub fn lookup_or_insert(
        &self,
        key: Key,
        kind: u32,
        ino: u64,
        make: impl FnOnce() -> NodeState,
    ) -> Arc<Node> {
        let mut t = self.tables.write().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = t.by_key.get(&key).copied() {
            if let Some(node) = t.nodes.get(&id).cloned() {
                if node.kind == kind {
                    node.lookups.fetch_add(1, Ordering::Relaxed);
                    return node;
                }
            }
        }
        let mut id = ino;
        while id == ROOT_ID || t.nodes.contains_key(&id) {
            id = (1 << 63) | self.next_id.fetch_add(1, Ordering::Relaxed);
        }
        let mut state = make();
        state.key = key.clone();
        let node = Arc::new(Node {
            id,
            serial: next_serial(),
            ino: id,
            kind,
            lookups: AtomicU64::new(1),
            state: Mutex::new(state),
            copy_up: Mutex::new(()),
            lower_index: std::sync::OnceLock::new(),
            backing: Default::default(),
            xattr_names: Mutex::default(),
        });
        t.nodes.insert(id, node.clone());
        t.by_key.insert(key, id);
        node
    }

    /// The live node with this identity, if any (no reference taken).
    pub fn find(&self, key: &Key) -> Option<Arc<Node>> {
        let t = self.tables.read().unwrap_or_else(|p| p.into_inner());
        t.by_key.get(key).and_then(|id| t.nodes.get(id)).cloned()
    }

    /// One more kernel reference (an entry reply for an existing node).
    pub fn add_ref(&self, node: &Node) {
        node.lookups.fetch_add(1, Ordering::Relaxed);
    }

    /// Moves a node to a new identity key (after copy-up, the upper inode).
    pub fn rekey(&self, node: &Node, new_key: Key) {
        let mut t = self.tables.write().unwrap_or_else(|p| p.into_inner());
        let mut st = node.state();
        // A lower hard-linked file stays findable by its lower identity: its
        // other names, looked up later, are linked up to the same node.
        if t.by_key.get(&st.key) == Some(&node.id) && !matches!(st.key, Key::LowerIno(..)) {
            t.by_key.remove(&st.key);
        }
        st.key = new_key.clone();
        t.by_key.insert(new_key, node.id);
    }

    /// Forgets the identity key of a node whose name is gone, so a new object
    /// created with that name gets a node of its own.
    pub fn unkey(&self, node: &Node) {
        let mut t = self.tables.write().unwrap_or_else(|p| p.into_inner());
        let st = node.state();
        if t.by_key.get(&st.key) == Some(&node.id) {
            t.by_key.remove(&st.key);
        }
    }

    /// The kernel dropped `n` references; frees the node at zero.
    pub fn forget(&self, id: u64, n: u64) {
        if id == ROOT_ID {
            return;
        }
        let mut t = self.tables.write().unwrap_or_else(|p| p.into_inner());
        let Some(node) = t.nodes.get(&id).cloned() else {
            return;
        };
        let prev = node.lookups.fetch_sub(
            n.min(node.lookups.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        if prev <= n {
            t.nodes.remove(&id);
            let key = node.state().key.clone();
            if t.by_key.get(&key) == Some(&id) {
                t.by_key.remove(&key);
            }
            // Kept for `revive`, without its fd: a removed object's inode
            // number must be free for reuse.
            node.state().orphan = None;
            if t.forgotten.len() == FORGOTTEN_KEPT {
                t.forgotten.pop_front();
            }
            t.forgotten.push_back(node);
        }
    }

    /// A node the kernel names after forgetting all its lookups. With
    /// `timeout=0` and renames racing, the kernel does this now and then (its
    /// FORGET carries every lookup strata gave out, then a request for the node
    /// follows). Rather than ESTALE, the recently forgotten node answers again,
    /// with no lookups of its own (the kernel's next FORGET drops it again).
    pub fn revive(&self, id: u64) -> Option<Arc<Node>> {
        let mut t = self.tables.write().unwrap_or_else(|p| p.into_inner());
        if let Some(node) = t.nodes.get(&id) {
            return Some(node.clone());
        }
        let at = t.forgotten.iter().rposition(|n| n.id == id)?;
        let node = t.forgotten.remove(at)?;
        node.lookups.store(0, Ordering::Relaxed);
        t.nodes.insert(id, node.clone());
        log::warn!("node {id}: named by the kernel after its FORGET; revived");
        Some(node)
    }

    /// Merged path of a node, relative to the union root; None once unlinked.
    pub fn path_of(&self, node: &Node) -> Option<PathBuf> {
        let mut names: Vec<OsString> = Vec::new();
        let (mut parent, name, unlinked) = {
            let st = node.state();
            (st.parent, st.name.clone(), st.unlinked)
        };
        if node.id == ROOT_ID {
            return Some(PathBuf::new());
        }
        if unlinked {
            return None;
        }
        names.push(name);
        let mut depth = 0;
        while parent != ROOT_ID {
            let p = self.get(parent)?;
            let st = p.state();
            if st.unlinked {
                return None;
            }
            names.push(st.name.clone());
            parent = st.parent;
            depth += 1;
            if depth > 4096 {
                return None;
            }
        }
        let mut path = PathBuf::new();
        for n in names.iter().rev() {
            path.push(n);
        }
        Some(path)
    }

    /// After the kernel dropped many inodes (drop_caches, memory pressure),
    /// hands the freed memory back to the system: malloc keeps it otherwise.
    pub fn trim_if_shrunk(&self) {
        let now = self.len();
        let peak = self.peak.fetch_max(now, Ordering::Relaxed).max(now);
        if now < peak / 2 && peak - now >= TRIM_MIN_FREED {
            self.peak.store(now, Ordering::Relaxed);
            {
                // The tables keep their peak capacity otherwise.
                let mut t = self.tables.write().unwrap_or_else(|p| p.into_inner());
                t.nodes.shrink_to_fit();
                t.by_key.shrink_to_fit();
            }
            unsafe { libc::malloc_trim(0) };
        }
    }

    /// Number of live nodes (for diagnostics and memory tests).
    pub fn len(&self) -> usize {
        self.tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .nodes
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Records that `node` is also reachable as (parent, name).
pub fn add_alias(node: &Node, parent: u64, name: &OsStr) {
    let mut st = node.state();
    if (st.parent == parent && st.name == name)
        || st.aliases.iter().any(|(p, n)| *p == parent && n == name)
    {
        return;
    }
    st.aliases.push((parent, name.to_os_string()));
}

/// Removes (parent, name) from the node's names; returns true when no name is left.
pub fn drop_name(node: &Node, parent: u64, name: &OsStr) -> bool {
    let mut st = node.state();
    if st.parent == parent && st.name == name {
        if st.aliases.is_empty() {
            st.unlinked = true;
            return true;
        }
        let (p, n) = st.aliases.remove(0);
        st.parent = p;
        st.name = n;
        false
    } else {
        st.aliases.retain(|(p, n)| !(*p == parent && n == name));
        false
    }
}

/// The name (from_parent, from) of `node` is now (to_parent, to).
pub fn move_name(node: &Node, from_parent: u64, from: &OsStr, to_parent: u64, to: &OsStr) {
    let mut st = node.state();
    if st.parent == from_parent && st.name == from {
        st.parent = to_parent;
        st.name = to.to_os_string();
    } else if let Some(alias) = st
        .aliases
        .iter_mut()
        .find(|(p, n)| *p == from_parent && n == from)
    {
        *alias = (to_parent, to.to_os_string());
    } else {
        st.parent = to_parent;
        st.name = to.to_os_string();
    }
    st.unlinked = false;
}

/// RENAME_EXCHANGE: `a` (at pa/na) and `b` (at pb/nb) trade names.
pub fn swap_names(a: &Node, pa: u64, na: &OsStr, b: &Node, pb: u64, nb: &OsStr) {
    if a.id == b.id {
        return;
    }
    move_name(a, pa, na, pb, nb);
    move_name(b, pb, nb, pa, na);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(name: &str) -> NodeState {
        NodeState {
            parent: ROOT_ID,
            name: name.into(),
            aliases: Vec::new(),
            upper: true,
            lowers: Vec::new(),
            unlinked: false,
            orphan: None,
            metacopy: false,
            key: Key::Upper(0),
        }
    }

    #[test]
    fn a_forgotten_node_is_revived_by_id_and_forgotten_again() {
        let t = InodeTable::new(state(""));
        let key = Key::Upper(42);
        let a = t.lookup_or_insert(key.clone(), libc::S_IFDIR, 7, || state("a"));
        t.lookup_or_insert(key.clone(), libc::S_IFDIR, 7, || state("a"));
        t.forget(a.id, 2);
        assert!(t.get(a.id).is_none(), "all lookups forgotten");
        let b = t.revive(a.id).expect("a recently forgotten node");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(t.get(a.id).is_some());
        assert!(
            t.find(&key).is_none(),
            "revived by id only, not by identity"
        );
        // The kernel's next FORGET (of lookups strata never counted) drops it.
        t.forget(a.id, 1);
        assert!(t.get(a.id).is_none());
        assert!(t.revive(12345).is_none(), "never known");
    }

    #[test]
    fn only_the_last_forgotten_nodes_are_kept() {
        let t = InodeTable::new(state(""));
        let ids: Vec<u64> = (0..FORGOTTEN_KEPT as u64 + 10)
            .map(|i| {
                let n =
                    t.lookup_or_insert(Key::Upper(100 + i), libc::S_IFREG, 1000 + i, || state("f"));
                t.forget(n.id, 1);
                n.id
            })
            .collect();
        assert!(t.revive(ids[0]).is_none(), "the oldest is gone");
        assert!(t.revive(ids[ids.len() - 1]).is_some());
    }

    #[test]
    fn answers_maybe_for_unread_layers_and_exactly_for_read_ones() {
        use std::ffi::OsStr;
        let mut index = super::LowerIndex::default();
        for layer in [0, 70, 499] {
            index.cover(layer);
        }
        // Added out of order and twice: still one sorted entry per layer.
        index.add(OsStr::new("f"), 499);
        index.add(OsStr::new("f"), 0);
        index.add(OsStr::new("f"), 499);
        assert!(index.has(OsStr::new("f"), 0));
        assert!(index.has(OsStr::new("f"), 499));
        assert!(
            !index.has(OsStr::new("f"), 70),
            "layer 70 was read and has no f"
        );
        assert!(!index.has(OsStr::new("g"), 0), "g is in no read layer");
        assert!(index.has(OsStr::new("g"), 1), "layer 1 was not read: maybe");
        assert!(
            index.has(OsStr::new("g"), 64),
            "layer 64 was not read: maybe"
        );
        assert!(
            index.has(OsStr::new("g"), 10_000),
            "beyond the bitset: maybe"
        );
    }
}
