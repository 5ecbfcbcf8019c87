//! The OCI image store: images pulled from a registry or imported from an archive,
//! kept as unpacked layer directories that `union` mounts directly as lowerdirs.
//!
//! - `digest`: content digests (`sha256:HEX`) and the hashing reader/writer.
//! - `archive`: tar layers in and out. Unpacking turns OCI whiteouts into overlay
//!   whiteouts and opaque directories and never writes outside the layer directory;
//!   writing a layer turns an upper back into OCI form.
//! - `registry`: the OCI distribution API client (pull, push, auth).
//! - `store`: blobs, layers and image records on disk; every write is staged and
//!   renamed into place, so a killed command leaves the store as it was or complete.
//! - `oci`: manifests, indexes and configs; the OCI layout and docker-archive formats.
//! - `local`: import, export and commit (no registry), and what `strata run` needs.
//! - `remote`: pull and push, between the store and a registry.
//!
//! This module never prints and never picks an exit code: errors carry the image,
//! blob or path they are about, and `cli::image` reports them.

pub mod archive;
pub mod digest;
pub mod local;
pub mod oci;
pub mod registry;
pub mod remote;
pub mod store;
