//! `strata image ...` and `strata commit`: arguments, output and exit codes over
//! `image::local` and `image::store`.

use crate::image::local::{self, Transport};
use crate::image::oci::Platform;
use crate::image::registry::{self, Reference};
use crate::image::remote::{self, Event};
use crate::image::store::{self, Store};
use clap::{Args, Subcommand};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Args, Debug)]
pub struct ImageArgs {
    /// The image store [default: $STRATA_STORE, /var/lib/strata for root, else
    /// $XDG_DATA_HOME/strata (~/.local/share/strata)]
    #[arg(long, value_name = "DIR", global = true)]
    pub store: Option<PathBuf>,
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Pull an image from a registry: HOST[:PORT]/NAME[:TAG|@sha256:DIGEST]
    Pull(PullArgs),
    /// Push an image to a registry: strata image push NAME HOST[:PORT]/NAME[:TAG]
    Push(PushArgs),
    /// Import an image: oci:DIR[:TAG] (an OCI layout), docker-archive:FILE.tar
    /// (docker/podman save), tar:ROOTFS.tar[.gz|.zst] (a rootfs as one layer)
    Import(ImportArgs),
    /// Export an image to oci:DIR[:TAG] or docker-archive:FILE.tar
    Export(ExportArgs),
    /// List the images: name, id, created, layers, size
    Ls,
    /// Print an image's manifest digest, layers and config as JSON
    Inspect(NameArg),
    /// Remove an image name (the image, with its last name or by id), then the
    /// layers no image uses
    Rm(NameArg),
    /// Remove layers and blobs that no image uses
    Prune,
    /// Give an image another name
    Tag(TagArgs),
}

#[derive(Args, Debug)]
pub struct RegistryArgs {
    /// USER:PASSWORD for the registry (else the containers auth.json is used:
    /// $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json)
    #[arg(long, value_name = "USER:PASS")]
    pub creds: Option<String>,
    /// The auth file to read credentials from, instead of the default ones
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Require HTTPS and verify the registry's certificate; false allows plain HTTP
    /// and unverified certificates (as skopeo and podman spell it)
    #[arg(long, value_name = "BOOL", default_value = "true", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// A directory of extra CA certificates (*.crt), as in containers' certs.d
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

impl RegistryArgs {
    fn options(&self, platform: Option<&str>) -> store::Result<registry::Options> {
        let creds = match &self.creds {
            Some(c) => {
                let (u, p) = c
                    .split_once(':')
                    .ok_or_else(|| store::Error::invalid("--creds: expected USER:PASSWORD"))?;
                Some((u.to_string(), p.to_string()))
            }
            None => None,
        };
        let mut o = registry::Options {
            tls_verify: self.tls_verify,
            cert_dir: self.cert_dir.clone(),
            creds,
            auth_file: self.authfile.clone(),
            ..Default::default()
        };
        if let Some(p) = platform {
            o.platform = p.parse().map_err(store::Error::from)?;
        }
        Ok(o)
    }
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// HOST[:PORT]/NAME[:TAG|@sha256:DIGEST]
    pub reference: String,
    /// The platform to take from an index (manifest list)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", default_value = "linux/amd64")]
    pub platform: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub limits: LayerLimits,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The image to push (a name or id)
    pub name: String,
    /// Where to: HOST[:PORT]/NAME[:TAG]
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// oci:DIR[:TAG], docker-archive:FILE.tar or tar:ROOTFS.tar[.gz|.zst]
    pub source: String,
    /// The name to give it (app, local/app:2, HOST:PORT/NAME:TAG)
    pub name: String,
    /// The platform to take from an index
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", default_value = "linux/amd64")]
    pub platform: String,
    #[command(flatten)]
    pub limits: LayerLimits,
}

#[derive(Args, Debug)]
pub struct LayerLimits {
    /// Refuse a layer that unpacks to more than SIZE bytes (K, M, G, T suffixes)
    #[arg(long, value_name = "SIZE", default_value = "64G")]
    pub max_layer_size: String,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    pub name: String,
    /// oci:DIR[:TAG] or docker-archive:FILE.tar
    pub dest: String,
}

#[derive(Args, Debug)]
pub struct NameArg {
    /// An image name (full or local) or id
    pub name: String,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    pub name: String,
    pub new_name: String,
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// The container's upper directory (strata run --upper DIR)
    #[arg(long, value_name = "DIR")]
    pub upper: PathBuf,
    /// The image the container ran
    #[arg(long, value_name = "NAME")]
    pub from: String,
    /// The new image's name
    pub new_name: String,
    /// A comment for the new layer's history entry
    #[arg(long, short = 'm', value_name = "TEXT")]
    pub message: Option<String>,
    /// The image store (as for strata image)
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LayerLimits,
}

/// Opens the store given or the default one (made if missing).
pub fn open_store(dir: Option<&Path>) -> store::Result<Store> {
    open_store_with(dir, true)
}

/// Opens the store given or the default one for a command that does not add to it:
/// a missing store is not made (it is empty).
pub fn open_existing_store(dir: Option<&Path>) -> store::Result<Store> {
    open_store_with(dir, false)
}

fn open_store_with(dir: Option<&Path>, create: bool) -> store::Result<Store> {
    let root = match dir {
        Some(d) => d.to_path_buf(),
        None => Store::default_root().ok_or_else(|| {
            store::Error::invalid(
                "no image store: set HOME, XDG_DATA_HOME or STRATA_STORE, or give --store",
            )
        })?,
    };
    if create {
        Store::open(&root)
    } else {
        Store::open_existing(&root)
    }
}

/// Every failure of an image command (a clap usage error exits 2 before).
const FAILED: i32 = 1;

fn parse_size(s: &str) -> store::Result<u64> {
    super::run::parse_bytes(s)
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            store::Error::invalid(format!(
                "--max-layer-size {s}: expected a size such as 512M or 8G"
            ))
        })
}

fn parse_transport(s: &str) -> store::Result<Transport> {
    s.parse().map_err(store::Error::invalid)
}

pub fn image_main(args: ImageArgs) -> i32 {
    super::init_logging(None);
    let adds = matches!(
        args.command,
        ImageCommand::Pull(_) | ImageCommand::Import(_)
    );
    let result =
        open_store_with(args.store.as_deref(), adds).and_then(|store| run(&store, args.command));
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("strata image: {e}");
            FAILED
        }
    }
}

fn warn_all(warnings: &[String]) {
    for w in warnings {
        eprintln!("strata image: warning: {w}");
    }
}

fn parse_reference(s: &str) -> store::Result<Reference> {
    s.parse().map_err(store::Error::from)
}

fn run(store: &Store, cmd: ImageCommand) -> store::Result<()> {
    match cmd {
        ImageCommand::Pull(a) => {
            let reference = parse_reference(&a.reference)?;
            let opts = a.registry.options(Some(&a.platform))?;
            let max = parse_size(&a.limits.max_layer_size)?;
            let bars = Bars::new();
            let added = remote::pull(store, &reference, &opts, &|e| bars.event(e), max)?;
            bars.finish();
            warn_all(&added.warnings);
            println!("{}", added.image.id);
        }
        ImageCommand::Push(a) => {
            let reference = parse_reference(&a.reference)?;
            let opts = a.registry.options(None)?;
            let bars = Bars::new();
            remote::push(store, &a.name, &reference, &opts, &|e| bars.event(e))?;
            bars.finish();
        }
        ImageCommand::Import(a) => {
            let source = parse_transport(&a.source)?;
            let platform: Platform = a.platform.parse().map_err(store::Error::from)?;
            let max = parse_size(&a.limits.max_layer_size)?;
            let added = local::import(store, &source, &a.name, &platform, max)?;
            warn_all(&added.warnings);
            println!("{}", added.image.id);
        }
        ImageCommand::Export(a) => {
            let dest = parse_transport(&a.dest)?;
            local::export(store, &a.name, &dest)?;
        }
        ImageCommand::Ls => {
            println!(
                "{:<48} {:<12} {:<20} {:>6} {:>10}",
                "NAME", "ID", "CREATED", "LAYERS", "SIZE"
            );
            for rec in store.images()? {
                let names = if rec.names.is_empty() {
                    vec!["<none>".to_string()]
                } else {
                    rec.names.clone()
                };
                for n in names {
                    println!(
                        "{:<48} {:<12} {:<20} {:>6} {:>10}",
                        n,
                        rec.id.short(),
                        rec.created
                            .as_deref()
                            .map_or("-", |c| c.get(..19).unwrap_or(c)),
                        rec.layers.len(),
                        human_size(rec.size())
                    );
                }
            }
        }
        ImageCommand::Inspect(a) => {
            let v = local::inspect(store, &a.name)?;
            let text = serde_json::to_string_pretty(&v)
                .map_err(|e| store::Error::invalid(format!("inspect: {e}")))?;
            println!("{text}");
        }
        ImageCommand::Rm(a) => match store.remove(&a.name)? {
            Some(id) => println!("{id}"),
            None => println!("untagged {}", a.name),
        },
        ImageCommand::Prune => {
            let n = store.prune()?;
            println!("{n} layers removed");
        }
        ImageCommand::Tag(a) => {
            store.tag(&a.name, &a.new_name)?;
        }
    }
    Ok(())
}

/// Progress bars on a terminal (none when stdout is not one).
struct Bars {
    multi: Option<indicatif::MultiProgress>,
    bars: Mutex<HashMap<String, indicatif::ProgressBar>>,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            multi: std::io::stdout()
                .is_terminal()
                .then(indicatif::MultiProgress::new),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, key: &str, total: u64) -> Option<indicatif::ProgressBar> {
        let multi = self.multi.as_ref()?;
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        let bar = bars.entry(key.to_string()).or_insert_with(|| {
            let b = multi.add(indicatif::ProgressBar::new(total));
            let style = indicatif::ProgressStyle::with_template(
                "{prefix:12} [{bar:30}] {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            b.set_style(style.progress_chars("=> "));
            b.set_prefix(key.to_string());
            b
        });
        Some(bar.clone())
    }

    fn event(&self, e: Event) {
        if self.multi.is_none() {
            return;
        }
        match e {
            Event::FetchStart { digest, total } => {
                self.bar(digest.short(), total);
            }
            Event::Fetch {
                digest,
                done,
                total,
            } => {
                if let Some(b) = self.bar(digest.short(), total) {
                    if total > 0 {
                        b.set_length(total);
                    }
                    b.set_position(done);
                }
            }
            Event::FetchDone { digest } => {
                if let Some(b) = self.bar(digest.short(), 0) {
                    b.finish_with_message("done");
                }
            }
            Event::Unpack { diff_id } => {
                if let Some(m) = &self.multi {
                    let _ = m.println(format!("unpacking layer {}", diff_id.short()));
                }
            }
            Event::Pushed { digest, outcome } => {
                if let Some(m) = &self.multi {
                    let _ = m.println(format!("blob {}: {outcome:?}", digest.short()));
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

pub fn commit_main(a: CommitArgs) -> i32 {
    super::init_logging(None);
    let result = open_store(a.store.as_deref()).and_then(|store| {
        let max = parse_size(&a.limits.max_layer_size)?;
        local::commit(
            &store,
            &a.upper,
            &a.from,
            &a.new_name,
            a.message.as_deref(),
            max,
        )
    });
    match result {
        Ok(added) => {
            warn_all(&added.warnings);
            println!("{}", added.image.id);
            0
        }
        Err(e) => {
            eprintln!("strata commit: {e}");
            FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("64G").unwrap(), 64 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
        for bad in ["", "0", "x", "5Q", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
