//! The command line: the only code that knows clap, argv spelling, exit codes
//! and the terminal. Each subcommand parses its arguments into the library's own
//! types (`daemon::MountConfig`, `launcher::Spec`, `image::store::Store`) and maps the result to an
//! exit code.

mod compat;
mod docs;
mod image;
mod mount;
mod options;
mod run;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "strata",
    version,
    about = "Union filesystem over FUSE with kernel-overlayfs semantics, and a container launcher",
    override_usage = "strata <COMMAND>\n       \
        strata -o OPTIONS [-f] [SOURCE] MOUNTPOINT   (as strata mount; the form of \
        fuse-overlayfs and mount.fuse3)",
    after_help = OTHER_FORMS,
    arg_required_else_help = true,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    compat: compat::CompatArgs,
}

const OTHER_FORMS: &str = "\
Without a subcommand, strata mounts as `strata mount` does, in the forms other
programs use (options: strata mount --help):
  strata -o OPTIONS MERGED               containers-storage's mount_program (podman, buildah)
  strata SOURCE MOUNTPOINT -o OPTIONS    mount.fuse3's, for mount -t fuse.strata
  mount.fuse.strata SOURCE MOUNTPOINT -o OPTIONS
                                         mount(8)'s helper (a link to strata, made by
                                         scripts/install)
mount(8) and /etc/fstab:
  mount -t fuse.strata -o lowerdir=L,upperdir=U,workdir=W strata MOUNTPOINT
  strata MOUNTPOINT fuse.strata noauto,user,lowerdir=L,upperdir=U,workdir=W 0 0
mount(8)'s own options (noauto, user, _netdev, nofail, x-*...) are dropped.";

#[derive(Subcommand, Debug)]
enum Command {
    /// Mount a union of directories (kernel overlayfs semantics and on-disk format)
    Mount(mount::MountArgs),
    /// Unmount a strata (or any FUSE) mount
    Umount(mount::UmountArgs),
    /// Run a command inside the layers, in new namespaces, under cgroup limits
    Run(run::RunArgs),
    /// Images: import, export, list, inspect, remove, tag (the store of strata run IMAGE)
    Image(image::ImageArgs),
    /// Turn a container's upper directory into a new image on top of the one it ran
    Commit(image::CommitArgs),
    /// Print a shell completion script (bash, zsh or fish) to stdout
    Completions(docs::CompletionsArgs),
    /// Print the manual page strata(1), in roff, to stdout
    Man,
}

/// Parses the command line and runs the subcommand; returns the exit code.
pub fn main() -> i32 {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if compat::is_mount_helper(&argv) {
        return compat::helper_main(argv);
    }
    let cli = Cli::parse_from(argv);
    match cli.command {
        Some(Command::Mount(args)) => mount::mount_main(args),
        Some(Command::Umount(args)) => mount::umount_main(args),
        Some(Command::Run(args)) => run::run_main(args),
        Some(Command::Image(args)) => image::image_main(args),
        Some(Command::Commit(args)) => image::commit_main(args),
        Some(Command::Completions(args)) => docs::completions_main(args),
        Some(Command::Man) => docs::man_main(),
        None => compat::compat_main(cli.compat),
    }
}

/// The clap definition of the whole command line (for the man page and completions).
fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Sets up env_logger: `--log-level` wins over `RUST_LOG`, default `warn`.
pub fn init_logging(level: Option<&str>) {
    init_logging_quiet(level, &[]);
}

/// `init_logging`, with the modules `quiet` silenced.
pub fn init_logging_quiet(level: Option<&str>, quiet: &[&str]) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    // fuser warns when it unmounts what `strata umount` already unmounted.
    builder.filter_module("fuser::session", log::LevelFilter::Error);
    for m in quiet {
        builder.filter_module(m, log::LevelFilter::Off);
    }
    if let Some(level) = level {
        builder.parse_filters(level);
    }
    builder.format_timestamp_micros();
    let _ = builder.try_init();
}
