//! The `strata` binary: everything is in the library; `cli` parses argv.

fn main() {
    std::process::exit(strata::cli::main());
}
