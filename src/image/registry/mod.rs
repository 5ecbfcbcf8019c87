//! The OCI distribution API client: references, manifests (OCI and Docker schema 2,
//! with indexes and manifest lists resolved to a platform), blobs (resumable,
//! verified downloads; uploads with existence checks, cross-repository mounts and
//! chunking), and authentication (anonymous, Basic, Bearer tokens).
//!
//! - `reference`: `HOST[:PORT]/NAME[:TAG][@DIGEST]`.
//! - `platform`: `os/arch[/variant]` and choosing an index entry.
//! - `auth`: the auth file, challenges, Basic credentials.
//! - `client`: the agent (TLS, plain-HTTP fallback), authentication, retries.
//! - `pull`, `push`: the operations.
//!
//! Decisions: Basic credentials are sent only once the registry has asked for them
//! (a `Basic` challenge, seen on the first `GET /v2/`), and from then on with every
//! request; Bearer tokens are fetched on a challenge and cached per scope set until
//! they expire. With `tls_verify` off, HTTPS is tried first without verification,
//! and plain HTTP when the handshake fails (as skopeo does for an insecure
//! registry).
//!
//! Nothing here prints: progress goes to callbacks, failures to [`Error`], whose
//! [`ErrorKind`] the CLI maps.

mod auth;
mod client;
mod error;
mod platform;
mod pull;
mod push;
mod reference;

pub use auth::default_auth_files;
pub use client::{Client, Options, DEFAULT_CHUNK_SIZE};
pub use error::{Error, ErrorKind};
pub use platform::Platform;
pub use pull::{
    fetch_blobs_parallel, BlobFetch, Manifest, PulledManifest, MAX_MANIFEST_SIZE,
    MAX_SMALL_BLOB_SIZE, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
};
pub use push::PushOutcome;
pub use reference::Reference;

#[cfg(test)]
mod tests {
    use super::*;

    fn _client_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Client>();
    }
}
