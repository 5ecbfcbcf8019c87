//! Reading from a registry: manifests (resolving an index to the platform's
//! manifest), small blobs, and resumable verified blob downloads.

use super::client::{expect_200, header, read_limited, status_error, Client};
use super::error::{err, Error, ErrorKind};
use super::platform::Platform;
use super::reference::{valid_component, valid_tag};
use crate::image::digest::{Digest, Hasher};
use serde::Deserialize;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use ureq::http::Method;

pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The media types asked for, all four.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Manifests larger than this are refused (containers/image's limit too).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// [`Client::get_blob_bytes`] refuses blobs larger than this.
pub const MAX_SMALL_BLOB_SIZE: u64 = 64 << 20;

/// A manifest as the registry sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The exact bytes: what the digest is of, and what a push must send again.
    pub bytes: Vec<u8>,
    /// One of the four `MEDIA_*` types.
    pub media_type: String,
    pub digest: Digest,
}

impl Manifest {
    /// An OCI index or a Docker manifest list.
    pub fn is_index(&self) -> bool {
        self.media_type == MEDIA_OCI_INDEX || self.media_type == MEDIA_DOCKER_LIST
    }
}

/// What [`Client::get_manifest`] resolved a tag or digest to.
#[derive(Debug, Clone)]
pub struct PulledManifest {
    /// The image manifest (of the chosen platform when `index` is set).
    pub manifest: Manifest,
    /// The index or manifest list the reference named, if it named one.
    pub index: Option<Manifest>,
    /// The chosen entry's platform, when there was an index.
    pub platform: Option<Platform>,
}

#[derive(Deserialize)]
struct IndexJson {
    #[serde(default)]
    manifests: Vec<DescJson>,
}

#[derive(Deserialize)]
struct DescJson {
    digest: String,
    #[serde(default, rename = "mediaType")]
    media_type: Option<String>,
    #[serde(default)]
    platform: Option<PlatformJson>,
}

#[derive(Deserialize)]
struct PlatformJson {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

/// Checks `repo` and a tag-or-digest reference; `Some(digest)` for a digest.
pub(crate) fn check_names(
    registry: &str,
    repo: &str,
    reference: Option<&str>,
) -> Result<Option<Digest>, Error> {
    if repo.is_empty() || repo.len() > 255 || !repo.split('/').all(valid_component) {
        return Err(err(
            ErrorKind::BadReference,
            format!("{registry}/{repo}: bad repository name"),
        ));
    }
    match reference {
        None => Ok(None),
        Some(r) if r.contains(':') => r.parse::<Digest>().map(Some).map_err(|e| {
            err(
                ErrorKind::BadReference,
                format!("{registry}/{repo}: bad reference {r:?}: {e}"),
            )
        }),
        Some(r) if valid_tag(r) => Ok(None),
        Some(r) => Err(err(
            ErrorKind::BadReference,
            format!("{registry}/{repo}: bad tag {r:?}"),
        )),
    }
}

/// The media type of a manifest: the Content-Type if it is one of the four, else the
/// document's own `mediaType`, else what its shape says (OCI allows no mediaType).
fn media_type_of(content_type: Option<&str>, bytes: &[u8], what: &str) -> Result<String, Error> {
    const KNOWN: [&str; 4] = [
        MEDIA_OCI_MANIFEST,
        MEDIA_OCI_INDEX,
        MEDIA_DOCKER_MANIFEST,
        MEDIA_DOCKER_LIST,
    ];
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .unwrap_or("");
    if KNOWN.contains(&ct) {
        return Ok(ct.to_string());
    }
    let json: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| err(ErrorKind::Protocol, format!("{what}: not JSON: {e}")))?;
    if let Some(mt) = json.get("mediaType").and_then(|m| m.as_str()) {
        if KNOWN.contains(&mt) {
            return Ok(mt.to_string());
        }
    }
    if json.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
        return Err(err(
            ErrorKind::Protocol,
            format!("{what}: Docker schema 1 manifests are not supported"),
        ));
    }
    if json.get("manifests").is_some() {
        return Ok(MEDIA_OCI_INDEX.to_string());
    }
    if json.get("layers").is_some() && json.get("config").is_some() {
        return Ok(MEDIA_OCI_MANIFEST.to_string());
    }
    Err(err(
        ErrorKind::Protocol,
        format!("{what}: unsupported manifest media type {ct:?}"),
    ))
}

fn digest_with(algorithm_of: &Digest, bytes: &[u8]) -> Digest {
    let mut h = Hasher::new(algorithm_of.algorithm());
    h.update(bytes);
    h.finish()
}

/// Parses `bytes START-END/TOTAL` into START.
fn content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

/// Hashes the first `len` bytes of `file` (which is positioned at 0).
fn hash_prefix(file: &mut File, len: u64, hasher: &mut Hasher) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the partial file shrank",
            ));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

impl Client {
    fn what(&self, repo: &str, thing: &str) -> String {
        format!("{}/{repo}: {thing}", self.registry)
    }

    /// One manifest, not following an index. A manifest fetched by digest is checked
    /// against it; for a tag the digest is the registry's `Docker-Content-Digest`
    /// (checked against the bytes) or the sha256 of the bytes.
    pub fn get_manifest_raw(&self, repo: &str, reference: &str) -> Result<Manifest, Error> {
        let by_digest = check_names(&self.registry, repo, Some(reference))?;
        let what = self.what(repo, &format!("manifest {reference}"));
        let call = self.pull_call(
            Method::GET,
            repo,
            format!("manifests/{reference}"),
            vec![("Accept", ACCEPT.to_string())],
            &what,
        );
        let mut resp = self.call(&call)?;
        expect_200(&mut resp, ErrorKind::ManifestNotFound, &what)?;
        let content_type = header(&resp, "content-type").map(str::to_string);
        let header_digest =
            header(&resp, "docker-content-digest").and_then(|d| d.parse::<Digest>().ok());
        let mut reader = resp.body_mut().as_reader();
        let bytes = read_limited(&mut reader, MAX_MANIFEST_SIZE, &what)?;
        let digest = match (by_digest, header_digest) {
            (Some(want), _) | (None, Some(want)) => {
                let got = digest_with(&want, &bytes);
                if got != want {
                    return Err(err(
                        ErrorKind::DigestMismatch,
                        format!(
                            "{what}: digest mismatch: the bytes hash to {got}, expected {want}"
                        ),
                    ));
                }
                want
            }
            (None, None) => Digest::of(&bytes),
        };
        let media_type = media_type_of(content_type.as_deref(), &bytes, &what)?;
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Resolves a tag or digest to an image manifest. An index or manifest list is
    /// followed to the entry for the client's platform (see [`Platform::choose`]),
    /// and returned too.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Result<PulledManifest, Error> {
        let first = self.get_manifest_raw(repo, reference)?;
        if !first.is_index() {
            return Ok(PulledManifest {
                manifest: first,
                index: None,
                platform: None,
            });
        }
        let what = self.what(repo, &format!("index {reference}"));
        let index: IndexJson = serde_json::from_slice(&first.bytes)
            .map_err(|e| err(ErrorKind::Protocol, format!("{what}: malformed: {e}")))?;
        let platforms: Vec<Option<Platform>> = index
            .manifests
            .iter()
            .map(|d| {
                d.platform.as_ref().map(|p| Platform {
                    os: p.os.clone(),
                    architecture: p.architecture.clone(),
                    variant: p.variant.clone().filter(|v| !v.is_empty()),
                })
            })
            .collect();
        let Some(i) = self.platform.choose(&platforms) else {
            let listed: Vec<String> = platforms.iter().flatten().map(|p| p.to_string()).collect();
            return Err(err(
                ErrorKind::PlatformNotFound,
                format!(
                    "{what}: no manifest for {}; the index has: {}",
                    self.platform,
                    if listed.is_empty() {
                        "none".to_string()
                    } else {
                        listed.join(", ")
                    }
                ),
            ));
        };
        let entry = &index.manifests[i];
        let digest: Digest = entry
            .digest
            .parse()
            .map_err(|e| err(ErrorKind::Protocol, format!("{what}: entry {i}: {e}")))?;
        if let Some(mt) = &entry.media_type {
            if mt == MEDIA_OCI_INDEX || mt == MEDIA_DOCKER_LIST {
                return Err(err(
                    ErrorKind::Protocol,
                    format!("{what}: the entry for {} is itself an index (nested indexes are not supported)", self.platform),
                ));
            }
        }
        let manifest = self.get_manifest_raw(repo, &digest.to_string())?;
        if manifest.is_index() {
            return Err(err(
                ErrorKind::Protocol,
                format!("{what}: the entry for {} is itself an index (nested indexes are not supported)", self.platform),
            ));
        }
        Ok(PulledManifest {
            manifest,
            index: Some(first),
            platform: platforms[i].clone(),
        })
    }

    /// A small blob (an image config) in memory, verified.
    pub fn get_blob_bytes(&self, repo: &str, digest: &Digest) -> Result<Vec<u8>, Error> {
        check_names(&self.registry, repo, None)?;
        let what = self.what(repo, &format!("blob {digest}"));
        let call = self.pull_call(Method::GET, repo, format!("blobs/{digest}"), vec![], &what);
        let mut resp = self.call(&call)?;
        expect_200(&mut resp, ErrorKind::BlobNotFound, &what)?;
        let mut reader = resp.body_mut().as_reader();
        let bytes = read_limited(&mut reader, MAX_SMALL_BLOB_SIZE, &what)?;
        let got = digest_with(digest, &bytes);
        if &got != digest {
            return Err(err(
                ErrorKind::DigestMismatch,
                format!("{what}: digest mismatch: the bytes hash to {got}"),
            ));
        }
        Ok(bytes)
    }

    /// Whether the repository has the blob (`HEAD`).
    pub fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<bool, Error> {
        self.blob_exists_in_scope(repo, digest, vec![format!("repository:{repo}:pull")])
    }

    /// `blob_exists` asking for a token of `scopes` (a push asks with its own, so
    /// that one token serves the whole push).
    pub(crate) fn blob_exists_in_scope(
        &self,
        repo: &str,
        digest: &Digest,
        scopes: Vec<String>,
    ) -> Result<bool, Error> {
        check_names(&self.registry, repo, None)?;
        let what = self.what(repo, &format!("blob {digest}"));
        let mut call = self.pull_call(Method::HEAD, repo, format!("blobs/{digest}"), vec![], &what);
        call.scopes = scopes;
        let mut resp = self.call(&call)?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(status_error(
                ErrorKind::Protocol,
                &what,
                "unexpected answer",
                &mut resp,
            )),
        }
    }

    /// Downloads a blob into `dest`, a partial file: if it has bytes already, only
    /// the rest is asked for (`Range: bytes=N-`); a server that ignores the range
    /// (200) gets the download restarted. The whole is checked against `digest` (and
    /// `size` if given); on a mismatch after resuming the download is tried once more
    /// from the start, and on a mismatch from the start `dest` is removed. `progress`
    /// is called with (bytes done, total; 0 when unknown), first with the resumed
    /// offset. `dest` is left complete but not synced: the caller renames it.
    pub fn fetch_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: Option<u64>,
        dest: &Path,
        progress: &dyn Fn(u64, u64),
    ) -> Result<(), Error> {
        check_names(&self.registry, repo, None)?;
        let what = self.what(repo, &format!("blob {digest}"));
        let io_err = |e: std::io::Error| {
            err(
                ErrorKind::Io,
                format!("{what}: partial file {}: {e}", dest.display()),
            )
        };
        let existing = match fs::metadata(dest) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err(e)),
        };
        let start = match size {
            Some(s) if existing > s => 0,
            _ => existing,
        };
        let result = match self.fetch_from(repo, digest, size, dest, start, progress, &what) {
            Err(e) if e.kind() == ErrorKind::DigestMismatch && start > 0 => {
                self.fetch_from(repo, digest, size, dest, 0, progress, &what)
            }
            other => other,
        };
        if let Err(e) = &result {
            if e.kind() == ErrorKind::DigestMismatch {
                let _ = fs::remove_file(dest);
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn fetch_from(
        &self,
        repo: &str,
        digest: &Digest,
        size: Option<u64>,
        dest: &Path,
        mut start: u64,
        progress: &dyn Fn(u64, u64),
        what: &str,
    ) -> Result<(), Error> {
        let io_err = |e: std::io::Error| {
            err(
                ErrorKind::Io,
                format!("{what}: partial file {}: {e}", dest.display()),
            )
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dest)
            .map_err(io_err)?;
        let mut hasher = Hasher::new(digest.algorithm());
        if start > 0 {
            hash_prefix(&mut file, start, &mut hasher).map_err(io_err)?;
        }
        let mismatch = |got: Digest, len: u64| {
            err(
                ErrorKind::DigestMismatch,
                format!("{what}: digest mismatch: {len} bytes that hash to {got}"),
            )
        };
        if start > 0 && size == Some(start) {
            // Complete already: only the check is left.
            progress(start, start);
            let got = hasher.finish();
            return if &got == digest {
                Ok(())
            } else {
                Err(mismatch(got, start))
            };
        }
        let mut headers = vec![];
        if start > 0 {
            headers.push(("Range", format!("bytes={start}-")));
        }
        let call = self.pull_call(Method::GET, repo, format!("blobs/{digest}"), headers, what);
        let mut resp = self.call(&call)?;
        match resp.status().as_u16() {
            200 => {
                if start > 0 {
                    start = 0;
                    hasher = Hasher::new(digest.algorithm());
                }
            }
            206 if start > 0 => {
                let from = header(&resp, "content-range").and_then(content_range_start);
                if from != Some(start) {
                    return Err(err(
                        ErrorKind::Protocol,
                        format!(
                            "{what}: asked for bytes {start}- and got Content-Range {:?}",
                            header(&resp, "content-range").unwrap_or("")
                        ),
                    ));
                }
            }
            416 if start > 0 => {
                // The range is past the blob's end: the partial file is longer than it.
                drop(resp);
                file.set_len(0).map_err(io_err)?;
                drop(file);
                return self.fetch_from(repo, digest, size, dest, 0, progress, what);
            }
            404 => {
                return Err(status_error(
                    ErrorKind::BlobNotFound,
                    what,
                    "not found",
                    &mut resp,
                ))
            }
            _ => {
                return Err(status_error(
                    ErrorKind::Protocol,
                    what,
                    "unexpected answer",
                    &mut resp,
                ))
            }
        }
        let length = resp.body().content_length();
        let total = size.or(length.map(|l| start + l)).unwrap_or(0);
        file.set_len(start).map_err(io_err)?;
        file.seek(SeekFrom::Start(start)).map_err(io_err)?;
        let mut done = start;
        progress(done, total);
        let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(err(
                        ErrorKind::Unreachable,
                        format!("{what}: the download broke off after {done} bytes: {e}"),
                    ))
                }
            };
            file.write_all(&buf[..n]).map_err(io_err)?;
            hasher.update(&buf[..n]);
            done += n as u64;
            if let Some(s) = size {
                if done > s {
                    drop(file);
                    return Err(err(
                        ErrorKind::DigestMismatch,
                        format!("{what}: more than the {s} bytes the manifest says"),
                    ));
                }
            }
            progress(done, total);
        }
        file.flush().map_err(io_err)?;
        let got = hasher.finish();
        if &got != digest || size.is_some_and(|s| s != done) {
            return Err(mismatch(got, done));
        }
        Ok(())
    }
}

/// One blob for [`fetch_blobs_parallel`].
#[derive(Debug, Clone)]
pub struct BlobFetch {
    pub digest: Digest,
    pub size: Option<u64>,
    /// Its own partial file.
    pub dest: PathBuf,
}

/// Fetches `blobs` on `threads` threads (at least 1, at most one a blob), each blob
/// with [`Client::fetch_blob`]. `progress` gets the blob's index in `blobs`, bytes
/// done and total. After the first error no new blob is started; that error is
/// returned once the running ones end.
pub fn fetch_blobs_parallel(
    client: &Client,
    repo: &str,
    blobs: &[BlobFetch],
    threads: usize,
    progress: &(dyn Fn(usize, u64, u64) + Sync),
) -> Result<(), Error> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let threads = threads.clamp(1, blobs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                if failed.load(Ordering::SeqCst) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(b) = blobs.get(i) else { return };
                let r =
                    client.fetch_blob(repo, &b.digest, b.size, &b.dest, &|d, t| progress(i, d, t));
                if let Err(e) = r {
                    failed.store(true, Ordering::SeqCst);
                    let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                    if slot.is_none() {
                        *slot = Some(e);
                    }
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
