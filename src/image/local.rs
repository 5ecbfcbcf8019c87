//! Images in and out of the store without a registry: `import` from an OCI layout, a
//! docker-archive or a rootfs tarball, `export` to the first two, and `commit` of a
//! container's upper as a new layer.

use super::archive::{self, Compression, WriteOptions};
use super::digest::{Digest, HashingWriter};
use super::oci::{self, Desc, Layout, Platform};
use super::store::{Error, ImageRecord, LayerRef, Result, Store};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Where an image comes from or goes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// `oci:DIR[:TAG]`
    Oci { dir: PathBuf, tag: Option<String> },
    /// `docker-archive:FILE.tar`
    DockerArchive(PathBuf),
    /// `tar:ROOTFS.tar[.gz|.zst]` (import only)
    Tar(PathBuf),
}

impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Transport, String> {
        let (kind, rest) = s.split_once(':').ok_or_else(|| {
            format!("{s:?}: expected oci:DIR[:TAG], docker-archive:FILE or tar:FILE")
        })?;
        if rest.is_empty() {
            return Err(format!("{s:?}: no path after {kind}:"));
        }
        match kind {
            "oci" => {
                // A tag is after the last ':' when no '/' follows it.
                let (dir, tag) = match rest.rfind(':') {
                    Some(i) if !rest[i + 1..].contains('/') => {
                        (&rest[..i], Some(rest[i + 1..].to_string()))
                    }
                    _ => (rest, None),
                };
                if tag.as_deref() == Some("") {
                    return Err(format!("{s:?}: empty tag"));
                }
                Ok(Transport::Oci {
                    dir: PathBuf::from(dir),
                    tag,
                })
            }
            "docker-archive" => Ok(Transport::DockerArchive(PathBuf::from(rest))),
            "tar" => Ok(Transport::Tar(PathBuf::from(rest))),
            _ => Err(format!(
                "{s:?}: unknown transport {kind:?} (oci:, docker-archive:, tar:)"
            )),
        }
    }
}

/// Now, as the RFC 3339 text image configs use.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// What an import or commit did.
pub struct Added {
    pub image: ImageRecord,
    pub warnings: Vec<String>,
}

/// Stores manifest, config and layer blobs already in the store as one image:
/// unpacks each layer (checking diff_ids), then writes the record.
pub(super) fn finish_image(
    store: &Store,
    manifest: &[u8],
    media_type: &str,
    name: Option<&str>,
    source: String,
    max_size: u64,
) -> Result<Added> {
    let manifest_digest = store.put_blob_bytes(manifest)?;
    let what = format!("manifest {manifest_digest}");
    let m = oci::parse_manifest(manifest, media_type, &what)?;
    let config_bytes = store.read_blob(&m.config.digest)?;
    let config = oci::parse_config(&config_bytes, &format!("config {}", m.config.digest))?;
    let layers = oci::layer_refs(&m, &config, &what)?;
    let mut warnings = Vec::new();
    for l in &layers {
        let (_, w) = store.add_layer(&l.blob, Some(&l.diff_id), max_size)?;
        warnings.extend(w);
    }
    let rec = ImageRecord {
        id: m.config.digest.clone(),
        names: Vec::new(),
        manifest: manifest_digest,
        manifest_media_type: media_type.to_string(),
        layers,
        created: config.created.clone(),
        source,
    };
    let image = store.put_image(rec, name)?;
    Ok(Added { image, warnings })
}

/// Stores a new config and records the image of an OCI manifest for it and `layers`
/// (blobs already stored).
fn finish_new_image(
    store: &Store,
    config: &[u8],
    layers: &[Desc],
    name: &str,
    source: String,
    max_size: u64,
) -> Result<Added> {
    let config_desc = Desc {
        media_type: oci::OCI_CONFIG.into(),
        digest: store.put_blob_bytes(config)?,
        size: config.len() as u64,
    };
    let manifest = oci::oci_manifest(&config_desc, layers);
    finish_image(
        store,
        &manifest,
        oci::OCI_MANIFEST,
        Some(name),
        source,
        max_size,
    )
}

/// Stores a layer blob read from `src`, described by its own digest and compression.
fn store_layer_blob(store: &Store, src: &mut dyn io::Read) -> Result<Desc> {
    let (digest, size) = store.put_blob_any(src)?;
    let media_type = sniff_layer_media_type(&store.blob_path(&digest))?;
    Ok(Desc {
        media_type: media_type.into(),
        digest,
        size,
    })
}

/// `strata image import SOURCE NAME`.
pub fn import(
    store: &Store,
    source: &Transport,
    name: &str,
    platform: &Platform,
    max_size: u64,
) -> Result<Added> {
    super::store::normalize_name(name)?;
    let _adding = store.lock_adding()?;
    match source {
        Transport::Oci { dir, tag } => {
            import_oci(store, dir, tag.as_deref(), name, platform, max_size)
        }
        Transport::DockerArchive(file) => import_docker_archive(store, file, name, max_size),
        Transport::Tar(file) => import_tar(store, file, name, max_size),
    }
}

fn import_oci(
    store: &Store,
    dir: &Path,
    tag: Option<&str>,
    name: &str,
    platform: &Platform,
    max_size: u64,
) -> Result<Added> {
    let layout = Layout {
        dir: dir.to_path_buf(),
    };
    let desc = layout.find_manifest(tag, platform)?;
    let manifest = layout.read_blob(&desc.digest)?;
    let what = format!("oci:{}: manifest {}", dir.display(), desc.digest);
    let m = oci::parse_manifest(&manifest, &desc.media_type, &what)?;
    for blob in std::iter::once(&m.config).chain(&m.layers) {
        if store.has_blob(&blob.digest) {
            continue;
        }
        let path = layout.blob_path(&blob.digest);
        let mut f = File::open(&path)
            .map_err(|e| Error::io(format!("oci:{}: blob {}", dir.display(), blob.digest), e))?;
        store
            .put_blob(&blob.digest, &mut f)
            .map_err(|e| e.context(&format!("oci:{}", dir.display())))?;
    }
    let source = format!(
        "oci:{}{}",
        dir.display(),
        tag.map(|t| format!(":{t}")).unwrap_or_default()
    );
    finish_image(
        store,
        &manifest,
        &desc.media_type,
        Some(name),
        source,
        max_size,
    )
}

fn import_docker_archive(store: &Store, file: &Path, name: &str, max_size: u64) -> Result<Added> {
    let what = format!("docker-archive:{}", file.display());
    let staged = store.stage("docker-archive")?;
    fs::create_dir(staged.path()).map_err(|e| Error::io(staged.path().display(), e))?;
    let manifest_path = oci::extract_members(file, &["manifest.json".to_string()], staged.path())?;
    let manifest_json = fs::read(&manifest_path[0]).map_err(|e| Error::io(&what, e))?;
    let images = oci::parse_docker_manifest(&manifest_json, &what)?;
    if images.len() > 1 {
        return Err(Error::invalid(format!(
            "{what}: holds {} images; only single-image archives are imported",
            images.len()
        )));
    }
    let img = &images[0];
    let mut names = vec![img.config.clone()];
    names.extend(img.layers.iter().cloned());
    let members = oci::extract_members(file, &names, staged.path())?;
    let config = fs::read(&members[0]).map_err(|e| Error::io(&what, e))?;
    let mut layers = Vec::new();
    for p in &members[1..] {
        let mut f = File::open(p).map_err(|e| Error::io(&what, e))?;
        layers.push(store_layer_blob(store, &mut f)?);
    }
    drop(staged);
    finish_new_image(store, &config, &layers, name, what, max_size)
}

/// A layer's media type from its first bytes (docker-archives may hold any).
fn sniff_layer_media_type(p: &Path) -> Result<&'static str> {
    let mut head = [0u8; 4];
    let mut f = File::open(p).map_err(|e| Error::io(p.display(), e))?;
    let n = io::Read::read(&mut f, &mut head).map_err(|e| Error::io(p.display(), e))?;
    Ok(match Compression::detect(&head[..n]) {
        Compression::Gzip => oci::OCI_LAYER_GZIP,
        Compression::Zstd => oci::OCI_LAYER_ZSTD,
        Compression::None => oci::OCI_LAYER,
    })
}

fn import_tar(store: &Store, file: &Path, name: &str, max_size: u64) -> Result<Added> {
    let what = format!("tar:{}", file.display());
    let mut f = File::open(file).map_err(|e| Error::io(&what, e))?;
    let layer = store_layer_blob(store, &mut f)?;
    let (diff_id, warnings) = store
        .add_layer(&layer.digest, None, max_size)
        .map_err(|e| e.context(&what))?;
    let config = oci::derive_config(
        None,
        &diff_id,
        &now_rfc3339(),
        None,
        &format!("strata image import {what}"),
    )?;
    let mut added = finish_new_image(store, &config, &[layer], name, what, max_size)?;
    added.warnings.splice(0..0, warnings);
    Ok(added)
}

/// The manifest to hand to an OCI consumer: the stored one when it is OCI, else the
/// same blobs under OCI media types (a Docker schema 2 manifest pulled from a
/// registry). Returns (bytes, media type).
fn oci_manifest_of(store: &Store, rec: &ImageRecord) -> Result<(Vec<u8>, String)> {
    let bytes = store.read_blob(&rec.manifest)?;
    if rec.manifest_media_type == oci::OCI_MANIFEST {
        return Ok((bytes, rec.manifest_media_type.clone()));
    }
    let m = oci::parse_manifest(
        &bytes,
        &rec.manifest_media_type,
        &format!("manifest {}", rec.manifest),
    )?;
    let conv = |d: &Desc| Desc {
        media_type: oci::to_oci_media_type(&d.media_type).to_string(),
        ..d.clone()
    };
    let layers: Vec<Desc> = m.layers.iter().map(conv).collect();
    Ok((
        oci::oci_manifest(&conv(&m.config), &layers),
        oci::OCI_MANIFEST.into(),
    ))
}

/// The tag part of a full name (`HOST/NAME:TAG` → `TAG`).
fn tag_of(name: &str) -> &str {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => &name[slash + i + 1..],
        None => "latest",
    }
}

/// `strata image export NAME DEST`.
pub fn export(store: &Store, name: &str, dest: &Transport) -> Result<ImageRecord> {
    let rec = store.image(name)?;
    match dest {
        Transport::Oci { dir, tag } => {
            let (manifest, media_type) = oci_manifest_of(store, &rec)?;
            let tag = tag
                .clone()
                .unwrap_or_else(|| tag_of(rec.names.first().map_or("latest", |n| n)).to_string());
            let mut blobs = vec![(rec.id.clone(), store.blob_path(&rec.id))];
            for l in &rec.layers {
                blobs.push((l.blob.clone(), store.blob_path(&l.blob)));
            }
            let manifest_digest = Digest::of(&manifest);
            let staged = store.stage("export")?;
            fs::write(staged.path(), &manifest)
                .map_err(|e| Error::io(staged.path().display(), e))?;
            blobs.push((manifest_digest.clone(), staged.path().to_path_buf()));
            let layout = Layout { dir: dir.clone() };
            let desc = Desc {
                media_type,
                digest: manifest_digest,
                size: manifest.len() as u64,
            };
            layout.write(&tag, &desc, &blobs)?;
        }
        Transport::DockerArchive(file) => export_docker_archive(store, &rec, name, file)?,
        Transport::Tar(_) => {
            return Err(Error::invalid(
                "tar: is an import source only; export to oci:DIR or docker-archive:FILE",
            ))
        }
    }
    Ok(rec)
}

fn export_docker_archive(store: &Store, rec: &ImageRecord, name: &str, file: &Path) -> Result<()> {
    let what = format!("docker-archive:{}", file.display());
    let mut tmp = file.as_os_str().to_os_string();
    tmp.push(format!(".strata-tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| -> Result<()> {
        let out = File::create(&tmp).map_err(|e| Error::io(&what, e))?;
        let mut b = tar::Builder::new(BufWriter::new(out));
        let config = store.read_blob(&rec.id)?;
        let config_name = format!("{}.json", rec.id.hex());
        append_bytes(&mut b, &config_name, &config, &what)?;
        let mut layer_names = Vec::new();
        for l in &rec.layers {
            let member = format!("{}/layer.tar", l.diff_id.hex());
            // docker-archive layers are uncompressed tars: the diff_id is their digest.
            let staged = store.stage("export-layer")?;
            let blob = store.open_blob(&l.blob)?;
            let mut r = archive::decompress(io::BufReader::new(blob))
                .map_err(|e| Error::io(format!("layer {}", l.blob), e))?;
            let mut w = File::create(staged.path()).map_err(|e| Error::io(&what, e))?;
            io::copy(&mut r, &mut w).map_err(|e| Error::io(format!("layer {}", l.blob), e))?;
            let len = w.metadata().map_err(|e| Error::io(&what, e))?.len();
            let mut h = tar::Header::new_ustar();
            h.set_size(len);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            let r = File::open(staged.path()).map_err(|e| Error::io(&what, e))?;
            b.append_data(&mut h, &member, r)
                .map_err(|e| Error::io(&what, e))?;
            layer_names.push(member);
        }
        let repo_tag = name_for_archive(rec, name);
        let manifest = serde_json::json!([{
            "Config": config_name,
            "RepoTags": repo_tag.into_iter().collect::<Vec<_>>(),
            "Layers": layer_names,
        }]);
        let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::invalid(e.to_string()))?;
        append_bytes(&mut b, "manifest.json", &bytes, &what)?;
        let w = b.into_inner().map_err(|e| Error::io(&what, e))?;
        w.into_inner()
            .map_err(|e| Error::io(&what, e.into_error()))?
            .sync_all()
            .map_err(|e| Error::io(&what, e))?;
        fs::rename(&tmp, file).map_err(|e| Error::io(&what, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The name a docker-archive's RepoTags gets: the name asked for if the image has
/// it, else its first name.
fn name_for_archive(rec: &ImageRecord, asked: &str) -> Option<String> {
    let full = super::store::normalize_name(asked).ok();
    rec.names
        .iter()
        .find(|n| Some(*n) == full.as_ref())
        .or(rec.names.first())
        .cloned()
}

fn append_bytes(
    b: &mut tar::Builder<BufWriter<File>>,
    name: &str,
    bytes: &[u8],
    what: &str,
) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, bytes)
        .map_err(|e| Error::io(what, e))
}

/// `strata commit --upper DIR --from NAME NEWNAME`: the upper becomes a gzip layer
/// on top of NAME's layers.
pub fn commit(
    store: &Store,
    upper: &Path,
    from: &str,
    new_name: &str,
    message: Option<&str>,
    max_size: u64,
) -> Result<Added> {
    super::store::normalize_name(new_name)?;
    let _adding = store.lock_adding()?;
    let parent = store.image(from)?;
    let lowers = store.lowerdirs(&parent);
    let staged = store.stage("commit")?;
    let out = File::create(staged.path()).map_err(|e| Error::io(staged.path().display(), e))?;
    let opts = WriteOptions {
        marks: store.marks,
        ownership: store.ownership,
        compression: Compression::Gzip,
    };
    let mut hashing = HashingWriter::new(BufWriter::new(out));
    let written = archive::write_layer(upper, &lowers, &opts, &mut hashing)
        .map_err(|e| Error::from(e).context(&format!("commit of {}", upper.display())))?;
    let (w, blob, size) = hashing.finish();
    w.into_inner()
        .map_err(|e| Error::io("commit", e.into_error()))?
        .flush()
        .map_err(|e| Error::io("commit", e))?;
    if blob != written.digest {
        return Err(Error::invalid(format!(
            "commit: the layer written has digest {blob}, the writer reported {}",
            written.digest
        )));
    }
    let mut f = File::open(staged.path()).map_err(|e| Error::io("commit", e))?;
    store.put_blob(&blob, &mut f)?;
    drop(staged);
    let (diff_id, mut warnings) = store.add_layer(&blob, Some(&written.diff_id), max_size)?;
    let parent_config = store.read_blob(&parent.id)?;
    let config = oci::derive_config(
        Some(&parent_config),
        &diff_id,
        &now_rfc3339(),
        message,
        "strata commit",
    )?;
    let mut layers: Vec<Desc> = parent
        .layers
        .iter()
        .map(|l| Desc {
            media_type: oci::to_oci_media_type(&l.media_type).to_string(),
            digest: l.blob.clone(),
            size: l.size,
        })
        .collect();
    layers.push(Desc {
        media_type: oci::OCI_LAYER_GZIP.into(),
        digest: blob,
        size,
    });
    let source = format!("commit of {} on {}", upper.display(), parent.id);
    let mut added = finish_new_image(store, &config, &layers, new_name, source, max_size)?;
    warnings.append(&mut added.warnings);
    added.warnings = warnings;
    Ok(added)
}

/// What `strata run NAME` needs of an image.
pub struct RunImage {
    pub image: ImageRecord,
    pub config: oci::ImageConfig,
    /// Lower layers, top first.
    pub lowers: Vec<PathBuf>,
    /// Shared locks on the layers, held while the container runs.
    pub held: Vec<File>,
}

pub fn for_run(store: &Store, name: &str) -> Result<RunImage> {
    let image = store.image(name)?;
    let held = store.hold_layers(&image.layers)?;
    for l in &image.layers {
        if !store.has_layer(&l.diff_id) {
            return Err(Error::invalid(format!(
                "image {name}: layer {} is missing from the store",
                l.diff_id
            )));
        }
    }
    let config = oci::parse_config(
        &store.read_blob(&image.id)?,
        &format!("config {}", image.id),
    )?;
    let lowers = store.lowerdirs(&image);
    Ok(RunImage {
        image,
        config,
        lowers,
        held,
    })
}

/// `image inspect`'s JSON.
pub fn inspect(store: &Store, name: &str) -> Result<serde_json::Value> {
    let rec = store.image(name)?;
    let config = oci::parse_config(&store.read_blob(&rec.id)?, &format!("config {}", rec.id))?;
    let layers: Vec<serde_json::Value> = rec
        .layers
        .iter()
        .map(|l: &LayerRef| {
            serde_json::json!({
                "digest": l.blob.to_string(),
                "mediaType": l.media_type,
                "size": l.size,
                "diff_id": l.diff_id.to_string(),
                "path": store.layer_path(&l.diff_id),
            })
        })
        .collect();
    let labels: serde_json::Map<String, serde_json::Value> = config
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    Ok(serde_json::json!({
        "Id": rec.id.to_string(),
        "Names": rec.names,
        "Digest": rec.manifest.to_string(),
        "ManifestMediaType": rec.manifest_media_type,
        "Created": rec.created,
        "Os": config.os,
        "Architecture": config.arch,
        "Size": rec.size(),
        "Source": rec.source,
        "Layers": layers,
        "Config": {
            "Env": config.env,
            "Entrypoint": config.entrypoint,
            "Cmd": config.cmd,
            "WorkingDir": config.working_dir,
            "User": config.user,
            "Labels": labels,
        },
    }))
}

/// The uid and gid of an image's `User` (`uid`, `uid:gid`, `name`, `name:group`),
/// names looked up in the image's own /etc/passwd and /etc/group (the topmost
/// layer that has the file as a regular file).
pub fn resolve_user(lowers: &[PathBuf], user: &str) -> Result<(u32, u32)> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let lookup = |file: &str, name: &str| -> Result<(u32, Option<u32>)> {
        let text = image_file(lowers, file).ok_or_else(|| {
            Error::invalid(format!(
                "user {user:?}: the image has no /{file} to look {name:?} up in"
            ))
        })?;
        for line in text.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 3 && f[0] == name {
                let id = f[2].parse().ok();
                let gid = f.get(3).and_then(|g| g.parse().ok());
                if let Some(id) = id {
                    return Ok((id, gid));
                }
            }
        }
        Err(Error::invalid(format!(
            "user {user:?}: {name:?} is not in the image's /{file}"
        )))
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(n) => (n, None),
        Err(_) => lookup("etc/passwd", u)?,
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup("etc/group", g)?.0,
        },
        None => match primary {
            Some(p) => p,
            // A numeric uid: its passwd entry's group, if the image has one.
            None => image_file(lowers, "etc/passwd")
                .and_then(|t| {
                    t.lines().find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() >= 4 && f[2] == u)
                            .then(|| f[3].parse().ok())
                            .flatten()
                    })
                })
                .unwrap_or(uid),
        },
    };
    Ok((uid, gid))
}

/// A small text file of the image, from the topmost layer that has it as a regular
/// file (a whiteout or any other type hides the layers below).
fn image_file(lowers: &[PathBuf], rel: &str) -> Option<String> {
    for l in lowers {
        let p = l.join(rel);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() && m.len() < (1 << 20) => return fs::read_to_string(&p).ok(),
            Ok(_) => return None,
            Err(_) => continue,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_parse() {
        let t = |s: &str| s.parse::<Transport>().unwrap();
        assert_eq!(
            t("oci:/tmp/x:v1"),
            Transport::Oci {
                dir: "/tmp/x".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            t("oci:./a:b/c"),
            Transport::Oci {
                dir: "./a:b/c".into(),
                tag: None
            }
        );
        assert_eq!(
            t("docker-archive:/a.tar"),
            Transport::DockerArchive("/a.tar".into())
        );
        assert_eq!(t("tar:r.tar.gz"), Transport::Tar("r.tar.gz".into()));
        for bad in ["oci:", "x:/a", "noscheme", "oci:/a:"] {
            assert!(bad.parse::<Transport>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_of_names() {
        assert_eq!(tag_of("127.0.0.1:5000/a/b:v2"), "v2");
        assert_eq!(tag_of("127.0.0.1:5000/a/b"), "latest");
    }
}
