//! `strata mount` and `strata umount`.

use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct MountArgs {
    /// Mount options, comma separated (repeatable). See the README's option reference.
    #[arg(short = 'o', value_name = "OPTIONS", required = true)]
    pub options: Vec<String>,
    /// Stay in the foreground instead of going to the background once mounted
    #[arg(short = 'f', long = "foreground")]
    pub foreground: bool,
    /// Log filter (error, warn, info, debug, trace); overrides RUST_LOG
    #[arg(long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Where to mount the union
    pub mountpoint: PathBuf,
}

#[derive(Args, Debug)]
pub struct UmountArgs {
    /// Detach now and clean up when no longer busy (umount -l)
    #[arg(short = 'l', long = "lazy")]
    pub lazy: bool,
    /// The mount point to unmount
    pub mountpoint: PathBuf,
}

pub fn mount_main(_args: MountArgs) -> i32 {
    eprintln!("strata mount: not wired yet");
    1
}

pub fn umount_main(_args: UmountArgs) -> i32 {
    eprintln!("strata umount: not wired yet");
    1
}
