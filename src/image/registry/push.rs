//! Writing to a registry: blob uploads (skipped when present, mounted from another
//! repository when asked, monolithic or chunked) and manifest PUTs.

use super::client::{header, status_error, Call, Client};
use super::error::{err, Error, ErrorKind};
use super::pull::check_names;
use crate::image::digest::{Digest, Hasher};
use std::io::{self, Read};
use ureq::http::Method;

/// What [`Client::push_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The repository had the blob already.
    Existed,
    /// The registry mounted it from the `mount_from` repository.
    Mounted,
    /// Its bytes were sent.
    Uploaded,
}

/// Reads until `buf` is full or the end; returns how much was read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Client {
    fn push_scopes(&self, repo: &str, from: Option<&str>) -> Vec<String> {
        let mut v = vec![format!("repository:{repo}:pull,push")];
        if let Some(f) = from {
            v.push(format!("repository:{f}:pull"));
        }
        v
    }

    /// An upload session's URL from a 202's Location (absolute or a path).
    fn location(
        &self,
        resp: &ureq::http::Response<ureq::Body>,
        what: &str,
    ) -> Result<String, Error> {
        let loc = header(resp, "location")
            .filter(|l| !l.is_empty())
            .ok_or_else(|| {
                err(
                    ErrorKind::Protocol,
                    format!("{what}: the upload answer has no Location"),
                )
            })?;
        if loc.starts_with("http://") || loc.starts_with("https://") {
            Ok(loc.to_string())
        } else if loc.starts_with('/') {
            Ok(format!("{}{loc}", self.base()?))
        } else {
            Err(err(
                ErrorKind::Protocol,
                format!("{what}: unusable upload Location {loc:?}"),
            ))
        }
    }

    /// Uploads a blob of `size` bytes unless the repository has it. With
    /// `mount_from`, a cross-repository mount is asked for first (a registry that
    /// declines starts an ordinary upload instead). Blobs up to the chunk size go in
    /// one PUT, larger ones in PATCH chunks of it. `open` gives the bytes (called at
    /// most once); they are checked against `digest` and `size` before the upload is
    /// committed, and a mismatch is an error naming the blob.
    pub fn push_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        open: &dyn Fn() -> io::Result<Box<dyn Read>>,
        mount_from: Option<&str>,
    ) -> Result<PushOutcome, Error> {
        check_names(&self.registry, repo, None)?;
        if let Some(f) = mount_from {
            check_names(&self.registry, f, None)?;
        }
        let from = mount_from.filter(|f| *f != repo);
        let scopes = self.push_scopes(repo, from);
        if self.blob_exists_in_scope(repo, digest, scopes.clone())? {
            return Ok(PushOutcome::Existed);
        }
        let what = format!("{}/{repo}: blob {digest}", self.registry);
        let url = match from {
            Some(f) => format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={f}"),
            None => format!("/v2/{repo}/blobs/uploads/"),
        };
        let mut resp = self.call(&Call {
            method: Method::POST,
            url,
            headers: vec![("Content-Length", "0".into())],
            body: Some(&[]),
            scopes: scopes.clone(),
            what: &what,
        })?;
        match resp.status().as_u16() {
            201 if from.is_some() => return Ok(PushOutcome::Mounted),
            202 => {}
            _ => {
                return Err(status_error(
                    ErrorKind::Protocol,
                    &what,
                    "starting the upload",
                    &mut resp,
                ))
            }
        }
        let mut location = self.location(&resp, &what)?;
        drop(resp);

        let mut source =
            open().map_err(|e| err(ErrorKind::Io, format!("{what}: opening the source: {e}")))?;
        let src_err = |e: io::Error| err(ErrorKind::Io, format!("{what}: reading the source: {e}"));
        let mut hasher = Hasher::new(digest.algorithm());
        let chunk = self.chunk_size.min(usize::MAX as u64) as usize;
        let mut buf = vec![0u8; chunk.min(size as usize + 1).max(1)];
        let mut sent: u64 = 0;
        let mut last: Vec<u8> = Vec::new();
        if size < self.chunk_size {
            // Monolithic: the whole blob goes with the closing PUT.
            let n = read_full(&mut *source, &mut buf).map_err(src_err)?;
            hasher.update(&buf[..n]);
            sent = n as u64;
            last = buf[..n].to_vec();
        } else {
            loop {
                let n = read_full(&mut *source, &mut buf).map_err(src_err)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                if sent + n as u64 > size {
                    break;
                }
                let end = sent + n as u64 - 1;
                let mut resp = self.call(&Call {
                    method: Method::PATCH,
                    url: location.clone(),
                    headers: vec![
                        ("Content-Type", "application/octet-stream".into()),
                        ("Content-Range", format!("{sent}-{end}")),
                        ("Content-Length", n.to_string()),
                    ],
                    body: Some(&buf[..n]),
                    scopes: scopes.clone(),
                    what: &what,
                })?;
                if resp.status().as_u16() != 202 {
                    return Err(status_error(
                        ErrorKind::Protocol,
                        &what,
                        &format!("uploading bytes {sent}-{end}"),
                        &mut resp,
                    ));
                }
                location = self.location(&resp, &what)?;
                sent += n as u64;
            }
        }
        // Anything past the declared size makes it a mismatch too.
        let extra = read_full(&mut *source, &mut [0u8; 1]).map_err(src_err)?;
        let got = hasher.finish();
        if &got != digest || sent != size || extra != 0 {
            let _ = self.call(&Call {
                method: Method::DELETE,
                url: location.clone(),
                headers: vec![],
                body: None,
                scopes: scopes.clone(),
                what: &what,
            });
            return Err(err(
                ErrorKind::DigestMismatch,
                format!(
                    "{what}: the source does not match: {} bytes{} that hash to {got}, expected {size} bytes",
                    sent,
                    if extra != 0 { " and more" } else { "" }
                ),
            ));
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let mut resp = self.call(&Call {
            method: Method::PUT,
            url: format!("{location}{sep}digest={digest}"),
            headers: vec![
                ("Content-Type", "application/octet-stream".into()),
                ("Content-Length", last.len().to_string()),
            ],
            body: Some(&last),
            scopes,
            what: &what,
        })?;
        match resp.status().as_u16() {
            201 | 204 => Ok(PushOutcome::Uploaded),
            400 => Err(status_error(
                ErrorKind::DigestMismatch,
                &what,
                "the registry refused the upload",
                &mut resp,
            )),
            _ => Err(status_error(
                ErrorKind::Protocol,
                &what,
                "committing the upload",
                &mut resp,
            )),
        }
    }

    /// PUTs a manifest under `reference` (a tag, or its digest) with `media_type` as
    /// the Content-Type; returns its digest (the sha256 of `bytes`).
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, Error> {
        let by_digest = check_names(&self.registry, repo, Some(reference))?;
        let what = format!("{}/{repo}: manifest {reference}", self.registry);
        let digest = match &by_digest {
            Some(d) => {
                let mut h = Hasher::new(d.algorithm());
                h.update(bytes);
                let got = h.finish();
                if &got != d {
                    return Err(err(
                        ErrorKind::DigestMismatch,
                        format!("{what}: the manifest's bytes hash to {got}"),
                    ));
                }
                got
            }
            None => Digest::of(bytes),
        };
        let mut resp = self.call(&Call {
            method: Method::PUT,
            url: format!("/v2/{repo}/manifests/{reference}"),
            headers: vec![
                ("Content-Type", media_type.to_string()),
                ("Content-Length", bytes.len().to_string()),
            ],
            body: Some(bytes),
            scopes: self.push_scopes(repo, None),
            what: &what,
        })?;
        match resp.status().as_u16() {
            201 | 200 | 204 => {}
            404 => {
                return Err(status_error(
                    ErrorKind::BlobNotFound,
                    &what,
                    "refused (a blob it names is missing)",
                    &mut resp,
                ))
            }
            _ => {
                return Err(status_error(
                    ErrorKind::Protocol,
                    &what,
                    "refused",
                    &mut resp,
                ))
            }
        }
        if let Some(said) =
            header(&resp, "docker-content-digest").and_then(|d| d.parse::<Digest>().ok())
        {
            if said.algorithm() == digest.algorithm() && said != digest {
                return Err(err(
                    ErrorKind::DigestMismatch,
                    format!("{what}: the registry stored it as {said}, its bytes hash to {digest}"),
                ));
            }
        }
        Ok(digest)
    }
}
