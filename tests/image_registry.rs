//! `image::registry` against real registries: a `docker-registry` per test on a free
//! 127.0.0.1 port (plain HTTP, TLS with a self-signed certificate, htpasswd, or
//! Bearer tokens from a token server in the test), filled and checked with skopeo
//! from an OCI layout that umoci builds.

mod support;

#[path = "image_registry/harness.rs"]
mod harness;

use harness::*;
use std::cell::RefCell;
use std::fs;
use std::io::Read;
use std::path::Path;
use strata::image::digest::Digest;
use strata::image::registry::{
    fetch_blobs_parallel, BlobFetch, Client, ErrorKind, Options, Platform, PushOutcome,
    MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST,
};

fn plain() -> Options {
    Options {
        tls_verify: false,
        ..Options::default()
    }
}

fn digest(v: &serde_json::Value) -> Digest {
    v["digest"]
        .as_str()
        .expect("digest")
        .parse()
        .expect("a digest")
}

/// The layer descriptors of the fixture's `tag` manifest.
fn layers(tag: &str) -> Vec<serde_json::Value> {
    manifest_of(fixture(), tag)["layers"]
        .as_array()
        .expect("layers")
        .clone()
}

#[test]
fn pulls_an_oci_image_by_tag_and_by_digest() {
    let _case = support::count_case("image_registry");
    let reg = Registry::start(Config::default());
    populate(&reg.host(), "v1", "strata/busybox:v1", &[]);
    let want = descriptor(fixture(), "v1");
    let c = Client::new(&reg.host(), &plain()).unwrap();

    let got = c.get_manifest("strata/busybox", "v1").unwrap();
    assert!(got.index.is_none());
    assert_eq!(got.manifest.media_type, MEDIA_OCI_MANIFEST);
    assert_eq!(got.manifest.digest, digest(&want));
    assert_eq!(
        got.manifest.bytes,
        blob(fixture(), want["digest"].as_str().unwrap())
    );
    let raw = inspect_raw(&reg.host(), "strata/busybox:v1", &[]);
    assert_eq!(got.manifest.bytes, raw, "what skopeo sees");

    let by_digest = c
        .get_manifest("strata/busybox", &digest(&want).to_string())
        .unwrap();
    assert_eq!(by_digest.manifest, got.manifest);

    let m = manifest_of(fixture(), "v1");
    let config = c
        .get_blob_bytes("strata/busybox", &digest(&m["config"]))
        .unwrap();
    assert_eq!(
        config,
        blob(fixture(), m["config"]["digest"].as_str().unwrap())
    );

    let out = tempfile::tempdir().unwrap();
    let ls = layers("v1");
    assert_eq!(ls.len(), 2);
    for (i, l) in ls.iter().enumerate() {
        let dest = out.path().join(format!("layer{i}.partial"));
        let size = l["size"].as_u64().unwrap();
        let calls = RefCell::new(Vec::new());
        c.fetch_blob("strata/busybox", &digest(l), Some(size), &dest, &|d, t| {
            calls.borrow_mut().push((d, t))
        })
        .unwrap();
        assert_eq!(
            fs::read(&dest).unwrap(),
            blob(fixture(), l["digest"].as_str().unwrap())
        );
        let calls = calls.into_inner();
        assert_eq!(calls.first(), Some(&(0, size)));
        assert_eq!(calls.last(), Some(&(size, size)));
        assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(c.blob_exists("strata/busybox", &digest(l)).unwrap());
    }
    assert!(!c
        .blob_exists("strata/busybox", &Digest::of(b"nothing"))
        .unwrap());

    // The same, on three threads, each blob to its own partial file.
    let jobs: Vec<BlobFetch> = ls
        .iter()
        .chain(std::iter::once(&m["config"]))
        .enumerate()
        .map(|(i, l)| BlobFetch {
            digest: digest(l),
            size: l["size"].as_u64(),
            dest: out.path().join(format!("par{i}")),
        })
        .collect();
    let seen = std::sync::Mutex::new(vec![0u64; jobs.len()]);
    fetch_blobs_parallel(&c, "strata/busybox", &jobs, 3, &|i, d, _| {
        seen.lock().unwrap()[i] = d;
    })
    .unwrap();
    for (i, j) in jobs.iter().enumerate() {
        let bytes = fs::read(&j.dest).unwrap();
        assert_eq!(Digest::of(&bytes), j.digest);
        assert_eq!(seen.lock().unwrap()[i], bytes.len() as u64);
    }
}

#[test]
fn pulls_docker_schema2_and_manifest_lists() {
    let _case = support::count_case("image_registry");
    let reg = Registry::start(Config::default());
    populate(&reg.host(), "v1", "d/busybox:v1", &["--format", "v2s2"]);
    populate(
        &reg.host(),
        "multi",
        "d/busybox:multi",
        &["--all", "--format", "v2s2"],
    );
    let c = Client::new(&reg.host(), &plain()).unwrap();
    let got = c.get_manifest("d/busybox", "v1").unwrap();
    assert_eq!(got.manifest.media_type, MEDIA_DOCKER_MANIFEST);
    let raw = inspect_raw(&reg.host(), "d/busybox:v1", &[]);
    assert_eq!(got.manifest.bytes, raw);
    assert_eq!(got.manifest.digest, Digest::of(&raw));
    let json: serde_json::Value = serde_json::from_slice(&got.manifest.bytes).unwrap();
    let config = c
        .get_blob_bytes("d/busybox", &digest(&json["config"]))
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["architecture"], "amd64");

    let list = c.get_manifest("d/busybox", "multi").unwrap();
    let index = list.index.expect("the manifest list");
    assert_eq!(index.media_type, MEDIA_DOCKER_LIST);
    assert_eq!(
        index.bytes,
        inspect_raw(&reg.host(), "d/busybox:multi", &[])
    );
    assert_eq!(list.manifest.media_type, MEDIA_DOCKER_MANIFEST);
    assert_eq!(list.platform, Some(Platform::default()));
}

#[test]
fn an_index_resolves_to_the_platform() {
    let _case = support::count_case("image_registry");
    let reg = Registry::start(Config::default());
    populate(&reg.host(), "multi", "m/busybox:multi", &["--all"]);
    let amd = descriptor(fixture(), "v1");
    let arm = descriptor(fixture(), "arm");
    assert_ne!(amd["digest"], arm["digest"]);
    let pull = |platform: &str| {
        let opts = Options {
            platform: platform.parse().unwrap(),
            ..plain()
        };
        Client::new(&reg.host(), &opts)
            .unwrap()
            .get_manifest("m/busybox", "multi")
    };
    let got = pull("linux/amd64").unwrap();
    let index = got.index.expect("the index");
    assert_eq!(index.media_type, MEDIA_OCI_INDEX);
    assert_eq!(
        index.bytes,
        inspect_raw(&reg.host(), "m/busybox:multi", &[])
    );
    assert_eq!(got.manifest.digest, digest(&amd));
    assert_eq!(got.manifest.media_type, MEDIA_OCI_MANIFEST);
    for p in ["linux/arm64", "linux/arm64/v8"] {
        let got = pull(p).unwrap();
        assert_eq!(got.manifest.digest, digest(&arm), "{p}");
        assert_eq!(got.platform.unwrap().to_string(), "linux/arm64/v8");
    }
    for p in ["linux/s390x", "linux/arm64/v9", "windows/amd64"] {
        let e = pull(p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PlatformNotFound, "{e}");
        let msg = e.to_string();
        assert!(msg.contains(p), "{msg}");
        assert!(msg.contains("linux/amd64, linux/arm64/v8"), "{msg}");
        assert!(msg.contains("m/busybox") && msg.contains("multi"), "{msg}");
    }
}

#[test]
fn an_interrupted_download_resumes_with_range() {
    let _case = support::count_case("image_registry");
    let reg = Registry::start(Config::default());
    populate(&reg.host(), "v1", "r/busybox:v1", &[]);
    let c = Client::new(&reg.host(), &plain()).unwrap();
    let layer = layers("v1")[0].clone();
    let full = blob(fixture(), layer["digest"].as_str().unwrap());
    let size = full.len() as u64;
    let have = 300_000usize;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("layer.partial");
    fs::write(&dest, &full[..have]).unwrap();
    let first = RefCell::new(None);
    c.fetch_blob("r/busybox", &digest(&layer), Some(size), &dest, &|d, t| {
        first.borrow_mut().get_or_insert((d, t));
    })
    .unwrap();
    assert_eq!(fs::read(&dest).unwrap(), full);
    assert_eq!(first.into_inner(), Some((have as u64, size)));
    // The registry's log: one GET of the blob, answered 206 with the rest only.
    let hex = digest(&layer).hex().to_string();
    let gets: Vec<String> = reg
        .responses()
        .into_iter()
        .filter(|l| l.contains(&hex) && logfmt(l, "http.request.method") == Some("GET"))
        .collect();
    assert_eq!(gets.len(), 1, "{gets:#?}");
    assert_eq!(logfmt(&gets[0], "http.response.status"), Some("206"));
    assert_eq!(
        logfmt(&gets[0], "http.response.written"),
        Some((size - have as u64).to_string().as_str())
    );

    // A complete partial file is only checked; a longer one is fetched again whole.
    c.fetch_blob("r/busybox", &digest(&layer), Some(size), &dest, &|_, _| {})
        .unwrap();
    let mut longer = full.clone();
    longer.extend_from_slice(b"junk");
    fs::write(&dest, &longer).unwrap();
    c.fetch_blob("r/busybox", &digest(&layer), Some(size), &dest, &|_, _| {})
        .unwrap();
    assert_eq!(fs::read(&dest).unwrap(), full);
    // A partial file with wrong bytes: the resumed whole mismatches, the retry from
    // the start succeeds.
    let mut wrong = full[..have].to_vec();
    wrong[10] ^= 0xff;
    fs::write(&dest, &wrong).unwrap();
    c.fetch_blob("r/busybox", &digest(&layer), None, &dest, &|_, _| {})
        .unwrap();
    assert_eq!(fs::read(&dest).unwrap(), full);
    let gets = reg
        .responses()
        .into_iter()
        .filter(|l| l.contains(&hex) && logfmt(l, "http.request.method") == Some("GET"))
        .count();
    assert_eq!(
        gets, 4,
        "1 resumed + 1 whole (longer file) + 1 resumed and 1 whole (wrong bytes)"
    );
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused_and_removed() {
    let _case = support::count_case("image_registry");
    let reg = Registry::start(Config::default());
    populate(&reg.host(), "v1", "bad/busybox:v1", &[]);
    let m = manifest_of(fixture(), "v1");
    let layer = layers("v1")[1].clone();
    for d in [&layer, &m["config"]] {
        let path = reg.blob_data(digest(d).hex());
        let mut bytes = fs::read(&path).unwrap();
        bytes[0] ^= 0xff;
        fs::write(&path, bytes).unwrap();
    }
    let c = Client::new(&reg.host(), &plain()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("layer.partial");
    let e = c
        .fetch_blob(
            "bad/busybox",
            &digest(&layer),
            layer["size"].as_u64(),
            &dest,
            &|_, _| {},
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    assert!(e.to_string().contains(&digest(&layer).to_string()), "{e}");
    assert!(!dest.exists(), "the partial file is removed");
    let e = c
        .get_blob_bytes("bad/busybox", &digest(&m["config"]))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    assert!(
        e.to_string()
            .contains(m["config"]["digest"].as_str().unwrap()),
        "{e}"
    );
}

/// Pushes the fixture's `tag` (blobs then manifest) from the OCI layout.
fn push_image(c: &Client, repo: &str, tag: &str, mount_from: Option<&str>) -> Vec<PushOutcome> {
    let layout = fixture();
    let d = descriptor(layout, tag);
    let m = manifest_of(layout, tag);
    let mut outcomes = Vec::new();
    for b in std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()) {
        let path = blob_path(layout, b["digest"].as_str().unwrap());
        let open = || -> std::io::Result<Box<dyn Read>> { Ok(Box::new(fs::File::open(&path)?)) };
        outcomes.push(
            c.push_blob(
                repo,
                &digest(b),
                b["size"].as_u64().unwrap(),
                &open,
                mount_from,
            )
            .unwrap(),
        );
    }
    let bytes = blob(layout, d["digest"].as_str().unwrap());
    let pushed = c
        .put_manifest(repo, tag, d["mediaType"].as_str().unwrap(), &bytes)
        .unwrap();
    assert_eq!(pushed, digest(&d));
    outcomes
}

/// `skopeo copy docker://… oci:OUT` and the pulled manifest's and blobs' digests
/// are the fixture's.
fn assert_pulls_back_identical(host: &str, name: &str, tag: &str, extra: &[&str]) {
    let out = tempfile::tempdir().unwrap();
    let dst = format!("oci:{}:{tag}", out.path().join("oci").display());
    let src = format!("docker://{host}/{name}");
    let mut args = vec!["copy", "--src-tls-verify=false"];
    args.extend_from_slice(extra);
    args.push(&src);
    args.push(&dst);
    skopeo(&args);
    let back = out.path().join("oci");
    let want = descriptor(fixture(), tag);
    assert_eq!(descriptor(&back, tag)["digest"], want["digest"]);
    let m = manifest_of(fixture(), tag);
    for b in std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()) {
        let dg = b["digest"].as_str().unwrap();
        assert_eq!(blob(&back, dg), blob(fixture(), dg), "{dg}");
    }
}

#[test]
fn pushes_an_oci_layout_byte_identically_with_chunks_and_mounts() {
    let _case = support::count_case("image_registry");
    let reg = Registry::start(Config::default());
    let opts = Options {
        chunk_size: 256 << 10,
        ..plain()
    };
    let c = Client::new(&reg.host(), &opts).unwrap();
    let outcomes = push_image(&c, "push/one", "v1", None);
    assert_eq!(outcomes, vec![PushOutcome::Uploaded; 3]);
    let raw = inspect_raw(&reg.host(), "push/one:v1", &[]);
    assert_eq!(Digest::of(&raw), digest(&descriptor(fixture(), "v1")));
    assert_pulls_back_identical(&reg.host(), "push/one:v1", "v1", &[]);
    // The busybox layer (about 1 MiB) went in 256 KiB PATCH chunks.
    let big = layers("v1")
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .max()
        .unwrap();
    let patches = reg
        .responses()
        .iter()
        .filter(|l| logfmt(l, "http.request.method") == Some("PATCH"))
        .count() as u64;
    assert_eq!(patches, big.div_ceil(256 << 10), "PATCH requests");

    assert_eq!(
        push_image(&c, "push/one", "v1", None),
        vec![PushOutcome::Existed; 3]
    );
    assert_eq!(
        push_image(&c, "push/two", "v1", Some("push/one")),
        vec![PushOutcome::Mounted; 3]
    );
    assert_pulls_back_identical(&reg.host(), "push/two:v1", "v1", &[]);
    let posts = reg
        .responses()
        .iter()
        .filter(|l| logfmt(l, "http.request.method") == Some("POST"))
        .count();
    assert_eq!(posts, 6, "3 uploads started + 3 mounts");

    // A source that does not match its digest is refused before the commit.
    let bogus = Digest::of(b"the bytes that were meant");
    let e = c
        .push_blob(
            "push/one",
            &bogus,
            9,
            &|| Ok(Box::new(&b"other one"[..])),
            None,
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    assert!(e.to_string().contains(&bogus.to_string()), "{e}");
    assert!(!c.blob_exists("push/one", &bogus).unwrap());
    // A manifest naming a blob the repository lacks is refused.
    let m = manifest_of(fixture(), "v1");
    let e = c
        .put_manifest(
            "push/three",
            "v1",
            MEDIA_OCI_MANIFEST,
            &blob(
                fixture(),
                descriptor(fixture(), "v1")["digest"].as_str().unwrap(),
            ),
        )
        .unwrap_err();
    assert_ne!(e.kind(), ErrorKind::Unreachable, "{e}");
    assert!(e.to_string().contains("push/three"), "{e} {m}");
}

#[test]
fn errors_name_what_failed() {
    let _case = support::count_case("image_registry");
    // Unreachable: a closed port, with and without the plain-HTTP fallback.
    let port = closed_port();
    for opts in [plain(), Options::default()] {
        let c = Client::new(&format!("127.0.0.1:{port}"), &opts).unwrap();
        let e = c.get_manifest("x/y", "latest").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unreachable, "{e}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
        assert!(e.to_string().contains("connection refused"), "{e}");
    }
    let reg = Registry::start(Config::default());
    populate(&reg.host(), "v1", "e/busybox:v1", &[]);
    // HTTPS to a plain-HTTP registry, with verification on: no fallback.
    let c = Client::new(&reg.host(), &Options::default()).unwrap();
    let e = c.get_manifest("e/busybox", "v1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unreachable, "{e}");
    assert!(e.to_string().contains("TLS"), "{e}");

    let c = Client::new(&reg.host(), &plain()).unwrap();
    let e = c.get_manifest("e/busybox", "nosuchtag").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ManifestNotFound, "{e}");
    assert!(
        e.to_string().contains("e/busybox") && e.to_string().contains("nosuchtag"),
        "{e}"
    );
    let e = c.get_manifest("e/nosuchrepo", "v1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ManifestNotFound, "{e}");
    let missing = Digest::of(b"no such blob");
    let e = c.get_blob_bytes("e/busybox", &missing).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BlobNotFound, "{e}");
    assert!(e.to_string().contains(&missing.to_string()), "{e}");
    let out = tempfile::tempdir().unwrap();
    let e = c
        .fetch_blob(
            "e/busybox",
            &missing,
            None,
            &out.path().join("p"),
            &|_, _| {},
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BlobNotFound, "{e}");
    // A digest reference that is not the manifest's: the registry says unknown.
    let e = c
        .get_manifest("e/busybox", &missing.to_string())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ManifestNotFound, "{e}");
    // Bad names never reach the network.
    for (repo, r) in [
        ("E/x", "v1"),
        ("e/busybox", "bad tag"),
        ("e/busybox", "sha256:12"),
    ] {
        let e = c.get_manifest(repo, r).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadReference, "{e}");
    }
}

fn with_creds(base: Options, user: &str, pass: &str) -> Options {
    Options {
        creds: Some((user.into(), pass.into())),
        ..base
    }
}

/// `base` with an empty auth file of its own: the user's real ones stay out of it.
fn no_auth_file(base: Options, dir: &Path) -> Options {
    fs::write(dir.join("none.json"), "{}").unwrap();
    Options {
        auth_file: Some(dir.join("none.json")),
        ..base
    }
}

#[test]
fn basic_auth_over_tls_with_cert_dir_or_without_verification() {
    let _case = support::count_case("image_registry");
    let reg = Registry::start(Config {
        tls: true,
        htpasswd: true,
        ..Config::default()
    });
    let creds = format!("{USER}:{PASS}");
    populate(&reg.host(), "v1", "a/busybox:v1", &["--dest-creds", &creds]);
    let tmp = tempfile::tempdir().unwrap();
    let verified = Options {
        cert_dir: Some(reg.cert_dir.clone()),
        ..no_auth_file(Options::default(), tmp.path())
    };
    let unverified = no_auth_file(plain(), tmp.path());
    let want = digest(&descriptor(fixture(), "v1"));

    // Trust: neither the CA nor tls_verify=false → the certificate is refused.
    let c = Client::new(&reg.host(), &with_creds(Options::default(), USER, PASS)).unwrap();
    let e = c.get_manifest("a/busybox", "v1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unreachable, "{e}");
    assert!(
        e.to_string().contains("TLS") && e.to_string().contains(&reg.host()),
        "{e}"
    );
    for base in [verified.clone(), unverified.clone()] {
        let c = Client::new(&reg.host(), &with_creds(base.clone(), USER, PASS)).unwrap();
        assert_eq!(
            c.get_manifest("a/busybox", "v1").unwrap().manifest.digest,
            want
        );
        let c = Client::new(&reg.host(), &base).unwrap();
        let e = c.get_manifest("a/busybox", "v1").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::CredentialsMissing, "{e}");
        assert!(e.to_string().contains("credentials missing"), "{e}");
        let c = Client::new(&reg.host(), &with_creds(base, USER, "wrong")).unwrap();
        let e = c.get_manifest("a/busybox", "v1").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::CredentialsWrong, "{e}");
        assert!(
            e.to_string().contains("credentials wrong") && e.to_string().contains(USER),
            "{e}"
        );
    }

    // Credentials from an auth file (containers' format).
    let auth = tmp.path().join("auth.json");
    let entry = b64(creds.as_bytes(), false);
    fs::write(
        &auth,
        format!(r#"{{"auths":{{"{}":{{"auth":"{entry}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let opts = Options {
        auth_file: Some(auth),
        ..verified.clone()
    };
    let c = Client::new(&reg.host(), &opts).unwrap();
    assert!(c.has_credentials());
    assert_eq!(
        c.get_manifest("a/busybox", "v1").unwrap().manifest.digest,
        want
    );

    // Push with Basic over verified TLS, checked by skopeo with the same trust.
    let c = Client::new(&reg.host(), &with_creds(verified, USER, PASS)).unwrap();
    assert_eq!(
        push_image(&c, "a/pushed", "v1", Some("a/busybox")),
        vec![PushOutcome::Mounted; 3]
    );
    let cert_dir = reg.cert_dir.display().to_string();
    assert_pulls_back_identical(
        &reg.host(),
        "a/pushed:v1",
        "v1",
        &["--src-creds", &creds, "--src-cert-dir", &cert_dir],
    );
}

#[test]
fn bearer_tokens_from_a_token_server() {
    let _case = support::count_case("image_registry");
    let tokens = TokenServer::start();
    let reg = Registry::start(Config {
        token: Some((tokens.realm(), tokens.bundle.clone())),
        ..Config::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let anon = no_auth_file(plain(), tmp.path());

    let c = Client::new(&reg.host(), &anon).unwrap();
    let e = c.get_manifest("t/busybox", "v1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CredentialsMissing, "{e}");
    assert!(e.to_string().contains("token server"), "{e}");
    assert!(!tokens.requests.lock().unwrap()[0].had_credentials);
    let c = Client::new(&reg.host(), &with_creds(anon.clone(), USER, "wrong")).unwrap();
    let e = c.get_manifest("t/busybox", "v1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CredentialsWrong, "{e}");

    // Push through tokens, then pull back with skopeo (its own token flow) and us.
    let c = Client::new(&reg.host(), &with_creds(anon.clone(), USER, PASS)).unwrap();
    tokens.requests.lock().unwrap().clear();
    assert_eq!(
        push_image(&c, "t/busybox", "v1", None),
        vec![PushOutcome::Uploaded; 3]
    );
    let creds = format!("{USER}:{PASS}");
    assert_pulls_back_identical(&reg.host(), "t/busybox:v1", "v1", &["--src-creds", &creds]);
    let c = Client::new(&reg.host(), &with_creds(anon, USER, PASS)).unwrap();
    let got = c.get_manifest("t/busybox", "v1").unwrap();
    assert_eq!(got.manifest.digest, digest(&descriptor(fixture(), "v1")));
    let l = layers("v1")[1].clone();
    let bytes = c.get_blob_bytes("t/busybox", &digest(&l)).unwrap();
    assert_eq!(Digest::of(&bytes), digest(&l));

    let reqs = tokens.requests.lock().unwrap().clone();
    let ours: Vec<&TokenRequest> = reqs
        .iter()
        .filter(|r| !r.query.contains("account="))
        .collect();
    assert!(ours.iter().all(|r| r.authorized), "{reqs:#?}");
    assert!(
        ours.iter()
            .all(|r| unescape(&r.query).contains("service=strata-test-service")),
        "{reqs:#?}"
    );
    // Cached per scope: one token for the push scope (the first client) and one for
    // the pull scope (the second), however many requests each made.
    let scopes: Vec<String> = ours.iter().map(|r| unescape(&r.query)).collect();
    assert_eq!(
        scopes
            .iter()
            .filter(|q| q.contains("scope=repository:t/busybox:pull,push"))
            .count(),
        1,
        "{scopes:#?}"
    );
    assert_eq!(
        scopes
            .iter()
            .filter(|q| q.ends_with("scope=repository:t/busybox:pull"))
            .count(),
        1,
        "{scopes:#?}"
    );
}
