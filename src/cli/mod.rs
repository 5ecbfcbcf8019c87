//! The command line: the only code that knows clap, argv spelling, exit codes
//! and the terminal. Each subcommand parses its arguments into the library's own
//! types (`daemon::MountConfig`, `launcher::Spec`) and maps the result to an
//! exit code.

mod mount;
mod options;
mod run;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "strata",
    version,
    about = "Union filesystem over FUSE with kernel-overlayfs semantics, and a container launcher"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Mount a union of directories (kernel overlayfs semantics and on-disk format)
    Mount(mount::MountArgs),
    /// Unmount a strata (or any FUSE) mount
    Umount(mount::UmountArgs),
    /// Run a command inside the layers, in new namespaces, under cgroup limits
    Run(run::RunArgs),
}

/// Parses the command line and runs the subcommand; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Mount(args) => mount::mount_main(args),
        Command::Umount(args) => mount::umount_main(args),
        Command::Run(args) => run::run_main(args),
    }
}

/// Sets up env_logger: `--log-level` wins over `RUST_LOG`, default `warn`.
pub fn init_logging(level: Option<&str>) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    // fuser warns when it unmounts what `strata umount` already unmounted.
    builder.filter_module("fuser::session", log::LevelFilter::Error);
    if let Some(level) = level {
        builder.parse_filters(level);
    }
    builder.format_timestamp_micros();
    let _ = builder.try_init();
}
