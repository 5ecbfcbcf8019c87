//! The image formats: manifests, indexes and configs (OCI and Docker schema 2, parsed
//! with oci-spec), the OCI image layout directory and the docker-archive tar.
//!
//! Manifests and configs are kept and passed on as the bytes they came as; what is
//! read out of them is only what the store needs (layers, diff_ids, the run config).

use super::digest::Digest;
pub use super::registry::Platform;
use super::store::{Error, LayerRef, Result};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde_json::{json, Value};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The annotation an OCI layout's index.json names a tag with.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A descriptor reduced to what the store uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Desc {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// An image manifest: its config and layers (bottom first).
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub media_type: String,
    pub config: Desc,
    pub layers: Vec<Desc>,
}

fn digest_of(s: &str, what: &str) -> Result<Digest> {
    s.parse()
        .map_err(|e: String| Error::invalid(format!("{what}: {e}")))
}

/// The media type a manifest or index declares in its own JSON.
pub fn declared_media_type(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v.get("mediaType")?.as_str().map(str::to_string)
}

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// Parses an image manifest (OCI or Docker schema 2); `what` names it in errors.
pub fn parse_manifest(bytes: &[u8], media_type: &str, what: &str) -> Result<Manifest> {
    let m = ImageManifest::from_reader(bytes)
        .map_err(|e| Error::invalid(format!("{what}: not an image manifest: {e}")))?;
    let desc = |d: &oci_spec::image::Descriptor| -> Result<Desc> {
        Ok(Desc {
            media_type: d.media_type().to_string(),
            digest: digest_of(d.digest().as_ref(), what)?,
            size: d.size(),
        })
    };
    Ok(Manifest {
        media_type: media_type.to_string(),
        config: desc(m.config())?,
        layers: m.layers().iter().map(desc).collect::<Result<_>>()?,
    })
}

/// Picks the manifest for `platform` from an index (a variant-less request takes
/// the first of any variant, as podman does).
pub fn choose_from_index(bytes: &[u8], platform: &Platform, what: &str) -> Result<Desc> {
    let index = ImageIndex::from_reader(bytes)
        .map_err(|e| Error::invalid(format!("{what}: not an image index: {e}")))?;
    let mut seen = Vec::new();
    for d in index.manifests() {
        let Some(p) = d.platform() else { continue };
        let (os, arch) = (p.os().to_string(), p.architecture().to_string());
        let variant = p.variant().clone();
        seen.push(match &variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        });
        let entry = Platform {
            os,
            architecture: arch,
            variant,
        };
        if platform.matches(&entry) {
            return Ok(Desc {
                media_type: d.media_type().to_string(),
                digest: digest_of(d.digest().as_ref(), what)?,
                size: d.size(),
            });
        }
    }
    Err(Error::new(
        super::store::ErrorKind::NotFound,
        format!(
            "{what}: no manifest for {platform} (the index has: {})",
            if seen.is_empty() {
                "none with a platform".to_string()
            } else {
                seen.join(", ")
            }
        ),
    ))
}

/// What a config says about running the image, and its layers' diff_ids.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageConfig {
    pub diff_ids: Vec<Digest>,
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub labels: Vec<(String, String)>,
    pub created: Option<String>,
    pub os: String,
    pub arch: String,
}

pub fn parse_config(bytes: &[u8], what: &str) -> Result<ImageConfig> {
    let c = ImageConfiguration::from_reader(bytes)
        .map_err(|e| Error::invalid(format!("{what}: not an image config: {e}")))?;
    let diff_ids = c
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| digest_of(d, what))
        .collect::<Result<Vec<_>>>()?;
    let mut out = ImageConfig {
        diff_ids,
        created: c.created().clone(),
        os: c.os().to_string(),
        arch: c.architecture().to_string(),
        ..Default::default()
    };
    if let Some(cfg) = c.config() {
        out.env = cfg.env().clone().unwrap_or_default();
        out.entrypoint = cfg.entrypoint().clone().unwrap_or_default();
        out.cmd = cfg.cmd().clone().unwrap_or_default();
        out.working_dir = cfg.working_dir().clone().filter(|w| !w.is_empty());
        out.user = cfg.user().clone().filter(|u| !u.is_empty());
        let mut labels: Vec<(String, String)> = cfg
            .labels()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        labels.sort();
        out.labels = labels;
    }
    Ok(out)
}

/// The layers of `manifest` paired with the diff_ids of its config.
pub fn layer_refs(manifest: &Manifest, config: &ImageConfig, what: &str) -> Result<Vec<LayerRef>> {
    if manifest.layers.len() != config.diff_ids.len() {
        return Err(Error::invalid(format!(
            "{what}: the manifest has {} layers, the config {} diff_ids",
            manifest.layers.len(),
            config.diff_ids.len()
        )));
    }
    Ok(manifest
        .layers
        .iter()
        .zip(&config.diff_ids)
        .map(|(l, d)| LayerRef {
            blob: l.digest.clone(),
            media_type: l.media_type.clone(),
            size: l.size,
            diff_id: d.clone(),
        })
        .collect())
}

/// A new config: `parent`'s JSON (or an empty linux/amd64 one) with `diff_id`
/// appended to its rootfs and a history entry; unknown fields are kept.
pub fn derive_config(
    parent: Option<&[u8]>,
    diff_id: &Digest,
    created: &str,
    comment: Option<&str>,
    created_by: &str,
) -> Result<Vec<u8>> {
    let mut v: Value = match parent {
        Some(b) => {
            serde_json::from_slice(b).map_err(|e| Error::invalid(format!("parent config: {e}")))?
        }
        None => json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": []
        }),
    };
    let obj = v
        .as_object_mut()
        .ok_or_else(|| Error::invalid("parent config: not a JSON object"))?;
    obj.insert("created".into(), json!(created));
    let rootfs = obj
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    match rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
        Some(ids) => ids.push(json!(diff_id.to_string())),
        None => return Err(Error::invalid("parent config: rootfs has no diff_ids")),
    }
    let mut h = json!({"created": created, "created_by": created_by});
    if let Some(c) = comment {
        h["comment"] = json!(c);
    }
    match obj.get_mut("history").and_then(Value::as_array_mut) {
        Some(hist) => hist.push(h),
        None => {
            obj.insert("history".into(), json!([h]));
        }
    }
    serde_json::to_vec(&v).map_err(|e| Error::invalid(format!("config: {e}")))
}

/// An OCI image manifest (bytes) for `config` and `layers`.
pub fn oci_manifest(config: &Desc, layers: &[Desc]) -> Vec<u8> {
    let d = |x: &Desc| json!({"mediaType": x.media_type, "digest": x.digest.to_string(), "size": x.size});
    let v = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": d(config),
        "layers": layers.iter().map(d).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The OCI media type matching a Docker one (the same bytes, another name).
pub fn to_oci_media_type(media_type: &str) -> &str {
    match media_type {
        DOCKER_MANIFEST => OCI_MANIFEST,
        DOCKER_CONFIG => OCI_CONFIG,
        DOCKER_LAYER_GZIP => OCI_LAYER_GZIP,
        "application/vnd.docker.image.rootfs.diff.tar" => OCI_LAYER,
        other => other,
    }
}

// ---- the OCI image layout ----

/// An OCI layout directory (`oci:DIR[:TAG]`).
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(d.algorithm().name())
            .join(d.hex())
    }

    fn what(&self) -> String {
        format!("oci:{}", self.dir.display())
    }

    /// The manifest the layout's index names `tag` (or its only manifest when no tag
    /// is given), following a nested index to `platform`.
    pub fn find_manifest(&self, tag: Option<&str>, platform: &Platform) -> Result<Desc> {
        let index_path = self.dir.join("index.json");
        let bytes = fs::read(&index_path)
            .map_err(|e| Error::io(format!("{}: index.json", self.what()), e))?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid(format!("{}: index.json: {e}", self.what())))?;
        let manifests = v
            .get("manifests")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                Error::invalid(format!("{}: index.json has no manifests", self.what()))
            })?;
        let tag_of = |m: &Value| {
            m.pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1")))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let chosen = match tag {
            Some(t) => manifests
                .iter()
                .find(|m| tag_of(m).as_deref() == Some(t))
                .ok_or_else(|| {
                    let tags: Vec<String> = manifests.iter().filter_map(tag_of).collect();
                    Error::new(
                        super::store::ErrorKind::NotFound,
                        format!(
                            "{}: no image tagged {t:?} (tags: {})",
                            self.what(),
                            tags.join(", ")
                        ),
                    )
                })?,
            None if manifests.len() == 1 => &manifests[0],
            None => {
                return Err(Error::invalid(format!(
                    "{}: holds {} images: name one as oci:DIR:TAG",
                    self.what(),
                    manifests.len()
                )))
            }
        };
        let desc = desc_from_json(chosen, &self.what())?;
        if is_index(&desc.media_type) {
            let nested = self.read_blob(&desc.digest)?;
            return choose_from_index(&nested, platform, &self.what());
        }
        Ok(desc)
    }

    /// A blob of the layout, checked against its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let bytes = fs::read(self.blob_path(d))
            .map_err(|e| Error::io(format!("{}: blob {d}", self.what()), e))?;
        if &Digest::of(&bytes) != d {
            return Err(Error::invalid(format!(
                "{}: blob {d} does not match its digest",
                self.what()
            )));
        }
        Ok(bytes)
    }

    /// Creates the layout (if new) and writes `blobs` (digest, source path), then
    /// tags `manifest` in index.json, replacing an image of the same tag.
    pub fn write(&self, tag: &str, manifest: &Desc, blobs: &[(Digest, PathBuf)]) -> Result<()> {
        let sha = self.dir.join("blobs/sha256");
        fs::create_dir_all(&sha).map_err(|e| Error::io(sha.display(), e))?;
        let layout_file = self.dir.join("oci-layout");
        if !layout_file.exists() {
            write_atomic(&layout_file, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        for (d, src) in blobs {
            let dst = self.blob_path(d);
            if dst.exists() {
                continue;
            }
            let tmp = dst.with_extension("partial");
            fs::copy(src, &tmp).map_err(|e| Error::io(format!("{}: blob {d}", self.what()), e))?;
            fs::rename(&tmp, &dst)
                .map_err(|e| Error::io(format!("{}: blob {d}", self.what()), e))?;
        }
        let index_path = self.dir.join("index.json");
        let mut index: Value = match fs::read(&index_path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::invalid(format!("{}: index.json: {e}", self.what())))?,
            Err(_) => json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
        };
        let manifests = index
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| {
                Error::invalid(format!("{}: index.json has no manifests", self.what()))
            })?;
        manifests.retain(|m| {
            m.pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1")))
                .and_then(Value::as_str)
                != Some(tag)
        });
        manifests.push(json!({
            "mediaType": manifest.media_type,
            "digest": manifest.digest.to_string(),
            "size": manifest.size,
            "annotations": {REF_NAME: tag},
        }));
        let bytes =
            serde_json::to_vec(&index).map_err(|e| Error::invalid(format!("index.json: {e}")))?;
        write_atomic(&index_path, &bytes)
    }
}

fn desc_from_json(v: &Value, what: &str) -> Result<Desc> {
    let media_type = v
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or(OCI_MANIFEST)
        .to_string();
    let digest = v
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid(format!("{what}: a descriptor without a digest")))?;
    let size = v
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| Error::invalid(format!("{what}: a descriptor without a size")))?;
    Ok(Desc {
        media_type,
        digest: digest_of(digest, what)?,
        size,
    })
}

/// Writes a file by staging and rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(format!(".strata-tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes).map_err(|e| Error::io(path.display(), e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(path.display(), e)
    })
}

// ---- docker-archive (`docker save`, `podman save`) ----

/// One image of a docker-archive's manifest.json.
#[derive(Debug, Clone)]
pub struct DockerArchiveImage {
    /// Path of the config inside the tar.
    pub config: String,
    pub repo_tags: Vec<String>,
    /// Paths of the (uncompressed) layer tars inside the tar, bottom first.
    pub layers: Vec<String>,
}

pub fn parse_docker_manifest(bytes: &[u8], what: &str) -> Result<Vec<DockerArchiveImage>> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid(format!("{what}: manifest.json: {e}")))?;
    let arr = v
        .as_array()
        .ok_or_else(|| Error::invalid(format!("{what}: manifest.json is not a list")))?;
    let mut out = Vec::new();
    for img in arr {
        let s = |k: &str| img.get(k).and_then(Value::as_str).map(str::to_string);
        let list = |k: &str| -> Vec<String> {
            img.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        out.push(DockerArchiveImage {
            config: s("Config")
                .ok_or_else(|| Error::invalid(format!("{what}: manifest.json: no Config")))?,
            repo_tags: list("RepoTags"),
            layers: list("Layers"),
        });
    }
    if out.is_empty() {
        return Err(Error::invalid(format!(
            "{what}: manifest.json lists no image"
        )));
    }
    Ok(out)
}

/// Copies the members of a tar file (by name) into `dest`, each as a file named by
/// its index in `names`. Members are read once, in tar order.
pub fn extract_members(tar_path: &Path, names: &[String], dest: &Path) -> Result<Vec<PathBuf>> {
    let what = format!("docker-archive:{}", tar_path.display());
    let f = File::open(tar_path).map_err(|e| Error::io(&what, e))?;
    let mut ar = tar::Archive::new(io::BufReader::new(f));
    let mut out: Vec<Option<PathBuf>> = vec![None; names.len()];
    let entries = ar
        .entries()
        .map_err(|e| Error::invalid(format!("{what}: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::invalid(format!("{what}: corrupt tar: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| Error::invalid(format!("{what}: {e}")))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        for (i, n) in names.iter().enumerate() {
            if out[i].is_none() && n.trim_start_matches("./") == path {
                let p = dest.join(format!("member-{i}"));
                let mut w = File::create(&p).map_err(|e| Error::io(p.display(), e))?;
                io::copy(&mut entry, &mut w)
                    .map_err(|e| Error::invalid(format!("{what}: {path}: truncated: {e}")))?;
                out[i] = Some(p);
                break;
            }
        }
    }
    names
        .iter()
        .zip(out)
        .map(|(n, p)| p.ok_or_else(|| Error::invalid(format!("{what}: {n} is missing"))))
        .collect()
}

/// Reads all of `r` (a small member such as manifest.json).
pub fn read_all(mut r: impl Read, what: &str) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).map_err(|e| Error::io(what, e))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_config_appends_a_layer_and_keeps_the_rest() {
        let parent = br#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},"x-unknown":7}"#;
        let d = Digest::of(b"layer");
        let out = derive_config(
            Some(parent),
            &d,
            "2026-12-04T00:00:00Z",
            Some("msg"),
            "strata commit",
        )
        .unwrap();
        let c = parse_config(&out, "test").unwrap();
        assert_eq!(c.diff_ids.len(), 2);
        assert_eq!(c.diff_ids[1], d);
        assert_eq!(c.env, vec!["A=1"]);
        assert_eq!(c.cmd, vec!["sh"]);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["x-unknown"], 7);
        assert_eq!(v["history"][0]["comment"], "msg");
    }

    #[test]
    fn index_without_the_platform_lists_what_it_has() {
        let idx = br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":2,"platform":{"os":"linux","architecture":"arm64"}}]}"#;
        let e = choose_from_index(idx, &Platform::default(), "idx").unwrap_err();
        assert!(e.msg.contains("no manifest for linux/amd64"), "{e}");
        assert!(e.msg.contains("linux/arm64"), "{e}");
    }
}
