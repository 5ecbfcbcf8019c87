//! The OCI distribution API client: references, manifests (OCI and Docker schema 2,
//! with indexes and manifest lists resolved to a platform), blobs (resumable,
//! verified downloads; uploads with existence checks, cross-repository mounts and
//! chunking), and authentication (anonymous, Basic, Bearer tokens).
//!
//! Nothing here prints: progress goes to callbacks, failures to [`Error`], whose
//! [`ErrorKind`] the CLI maps.

mod error;
mod platform;
mod reference;

pub use error::{Error, ErrorKind};
pub use platform::Platform;
pub use reference::Reference;
