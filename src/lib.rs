//! strata: a union filesystem over FUSE with kernel-overlayfs semantics, and a
//! launcher that runs commands inside the layers.
//!
//! One module per concern; `ARCHITECTURE.md` has the map. The dependency arrows
//! point one way: `cli` → `daemon`, `launcher` → `union` → `sys`. Nothing below `cli`
//! knows clap, argv or exit codes (`tests/layering.rs` keeps it so).

pub mod cli;
pub mod daemon;
pub mod launcher;
pub mod sys;
pub mod union;
