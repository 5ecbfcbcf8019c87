//! `strata run`: the launcher (namespaces, cgroups, rootfs, pid 1).
//! Placeholder until the launcher lands; it refuses to run rather than pretend.

use clap::Args;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Command and arguments to run inside the container
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run_main(_args: RunArgs) -> i32 {
    eprintln!("strata run: not available in this build");
    1
}
