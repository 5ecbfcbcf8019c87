//! strata: a union filesystem over FUSE with kernel-overlayfs semantics,
//! and a small launcher that runs commands inside the layers.

mod cli;
mod daemon;
mod launcher;
mod sys;
mod union;

fn main() {
    std::process::exit(cli::main());
}
