//! strata: a union filesystem over FUSE with kernel-overlayfs semantics, and a
//! launcher that runs commands inside the layers.
//!
//! One module per concern; `ARCHITECTURE.md` has the map. The dependency arrows
//! point one way, from `cli` down to `sys` (`tests/layering.rs` has the table).
//! Nothing below `cli` knows clap, argv or exit codes.

pub mod cli;
pub mod daemon;
pub mod image;
pub mod launcher;
pub mod sys;
pub mod union;
