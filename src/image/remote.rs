//! `pull` and `push`: the store on one side, a registry (`registry::Client`) on the
//! other.
//!
//! Pull fetches the blobs the store lacks in parallel into `blobs/partial/` (where an
//! interrupted download is resumed next time), each under a lock of its own so that
//! two pulls sharing a layer fetch it once, then unpacks the layers the store lacks,
//! also in parallel, and records the image last.

use super::digest::Digest;
use super::local::{finish_image, Added};
use super::oci;
use super::registry::{self, BlobFetch, Client, PushOutcome, Reference};
use super::store::{Error, ErrorKind, ImageRecord, Result, Store};
use std::fs::File;
use std::io;

/// What pull and push report while they work.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A blob will be fetched (total bytes, as the manifest says).
    FetchStart {
        digest: &'a Digest,
        total: u64,
    },
    Fetch {
        digest: &'a Digest,
        done: u64,
        total: u64,
    },
    FetchDone {
        digest: &'a Digest,
    },
    /// A layer is being unpacked.
    Unpack {
        diff_id: &'a Digest,
    },
    /// A blob was pushed (or found there already, or mounted).
    Pushed {
        digest: &'a Digest,
        outcome: PushOutcome,
    },
}

pub type Progress<'a> = &'a (dyn Fn(Event) + Sync);

impl From<registry::Error> for Error {
    fn from(e: registry::Error) -> Error {
        use registry::ErrorKind as K;
        let kind = match e.kind() {
            K::ManifestNotFound | K::BlobNotFound | K::PlatformNotFound => ErrorKind::NotFound,
            K::Io => ErrorKind::Io,
            _ => ErrorKind::Invalid,
        };
        Error::new(kind, e.message().to_string())
    }
}

/// Fetches threads at once: more than a few only splits the same link.
const FETCH_THREADS: usize = 4;

/// `strata image pull REF`.
pub fn pull(
    store: &Store,
    reference: &Reference,
    opts: &registry::Options,
    progress: Progress,
    max_size: u64,
) -> Result<Added> {
    let _adding = store.lock_adding()?;
    let client = Client::new(&reference.registry, opts)?;
    let repo = &reference.repository;
    let pulled = client.get_manifest(repo, &reference.reference())?;
    let manifest = &pulled.manifest;
    let what = format!("{reference}: manifest {}", manifest.digest);
    let m = oci::parse_manifest(&manifest.bytes, &manifest.media_type, &what)?;
    if !store.has_blob(&m.config.digest) {
        let bytes = client.get_blob_bytes(repo, &m.config.digest)?;
        let got = store.put_blob_bytes(&bytes)?;
        if got != m.config.digest {
            return Err(Error::invalid(format!(
                "{reference}: config {} has digest {got}",
                m.config.digest
            )));
        }
    }
    let config = oci::parse_config(
        &store.read_blob(&m.config.digest)?,
        &format!("{reference}: config {}", m.config.digest),
    )?;
    let layers = oci::layer_refs(&m, &config, &what)?;
    // Blobs of layers the store has neither unpacked nor as a blob.
    let mut wanted: Vec<&super::store::LayerRef> = layers
        .iter()
        .filter(|l| !store.has_layer(&l.diff_id) && !store.has_blob(&l.blob))
        .collect();
    wanted.sort_by(|a, b| a.blob.cmp(&b.blob));
    wanted.dedup_by(|a, b| a.blob == b.blob);
    // Lock what nobody else is fetching; what another pull holds is waited for after.
    let mut mine = Vec::new();
    let mut theirs = Vec::new();
    for l in wanted {
        let lock = store.blob_lock(&l.blob)?;
        if lock.try_lock().is_ok() {
            mine.push((l, lock));
        } else {
            theirs.push(l);
        }
    }
    fetch_locked(store, &client, repo, &mine, progress)?;
    drop(mine);
    for l in theirs {
        let lock = store.blob_lock(&l.blob)?;
        lock.lock()
            .map_err(|e| Error::io(format!("blob {}", l.blob), e))?;
        if !store.has_blob(&l.blob) && !store.has_layer(&l.diff_id) {
            fetch_locked(store, &client, repo, &[(l, lock)], progress)?;
        }
    }
    unpack_parallel(store, &layers, progress, max_size)?;
    let added = finish_image(
        store,
        &manifest.bytes,
        &manifest.media_type,
        Some(&reference.to_string()),
        format!("docker://{reference}"),
        max_size,
    )?;
    Ok(added)
}

/// Fetches blobs whose locks the caller holds, then moves each into the store.
fn fetch_locked(
    store: &Store,
    client: &Client,
    repo: &str,
    blobs: &[(&super::store::LayerRef, File)],
    progress: Progress,
) -> Result<()> {
    if blobs.is_empty() {
        return Ok(());
    }
    let fetches: Vec<BlobFetch> = blobs
        .iter()
        .map(|(l, _)| BlobFetch {
            digest: l.blob.clone(),
            size: Some(l.size),
            dest: store.partial_path(&l.blob),
        })
        .collect();
    for f in &fetches {
        progress(Event::FetchStart {
            digest: &f.digest,
            total: f.size.unwrap_or(0),
        });
    }
    registry::fetch_blobs_parallel(client, repo, &fetches, FETCH_THREADS, &|i, done, total| {
        progress(Event::Fetch {
            digest: &fetches[i].digest,
            done,
            total,
        })
    })?;
    for f in &fetches {
        sync_file(&f.dest)?;
        store.adopt_blob(&f.dest, &f.digest)?;
        progress(Event::FetchDone { digest: &f.digest });
    }
    Ok(())
}

fn sync_file(p: &std::path::Path) -> Result<()> {
    File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(p.display(), e))
}

/// Unpacks the layers the store lacks, up to one thread per core.
fn unpack_parallel(
    store: &Store,
    layers: &[super::store::LayerRef],
    progress: Progress,
    max_size: u64,
) -> Result<()> {
    let todo: Vec<&super::store::LayerRef> = layers
        .iter()
        .filter(|l| !store.has_layer(&l.diff_id))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, todo.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_error = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(l) = todo.get(i) else { return };
                progress(Event::Unpack {
                    diff_id: &l.diff_id,
                });
                if let Err(e) = store.add_layer(&l.blob, Some(&l.diff_id), max_size) {
                    let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(e);
                    return;
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `strata image push NAME REF`: the blobs the registry lacks (mounted from the
/// repository the image was pulled from when that is the same registry), then the
/// manifest, byte for byte as stored.
pub fn push(
    store: &Store,
    name: &str,
    reference: &Reference,
    opts: &registry::Options,
    progress: Progress,
) -> Result<ImageRecord> {
    let rec = store.image(name)?;
    let client = Client::new(&reference.registry, opts)?;
    let repo = &reference.repository;
    let mount_from: Option<String> = rec
        .source
        .strip_prefix("docker://")
        .and_then(|s| s.parse::<Reference>().ok())
        .filter(|r| r.registry == reference.registry)
        .map(|r| r.repository);
    let mut blobs = vec![(rec.id.clone(), store_size(store, &rec.id)?)];
    for l in &rec.layers {
        blobs.push((l.blob.clone(), l.size));
    }
    for (digest, size) in &blobs {
        let path = store.blob_path(digest);
        let open = || -> io::Result<Box<dyn io::Read>> {
            Ok(Box::new(io::BufReader::new(File::open(&path)?)))
        };
        let outcome = client.push_blob(repo, digest, *size, &open, mount_from.as_deref())?;
        progress(Event::Pushed { digest, outcome });
    }
    let manifest = store.read_blob(&rec.manifest)?;
    client.put_manifest(
        repo,
        &reference.reference(),
        &rec.manifest_media_type,
        &manifest,
    )?;
    Ok(rec)
}

fn store_size(store: &Store, d: &Digest) -> Result<u64> {
    std::fs::metadata(store.blob_path(d))
        .map(|m| m.len())
        .map_err(|e| Error::io(format!("blob {d}"), e))
}
