//! What the registry tests stand on: a real `docker-registry` per test (own port,
//! own storage, killed on drop), the OCI layout fixture built with umoci, the
//! skopeo calls, a Bearer token server, and reading the registry's log.

use crate::support::{run, CmdOut, KillOnDrop};
use serde_json::Value;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const USER: &str = "alice";
pub const PASS: &str = "s3cret";

#[track_caller]
pub fn must(o: CmdOut, what: &str) -> String {
    assert!(
        o.ok(),
        "{what} failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        o.stdout,
        o.stderr
    );
    o.stdout
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    free_port()
}

pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) {
    must(
        run(Command::new("openssl").args(args).current_dir(dir)),
        &format!("openssl {args:?}"),
    );
}

/// A self-signed certificate in `dir`, as `NAME.crt` and `NAME.key` (the token
/// signer's: Go takes it as its own root).
pub fn self_signed(dir: &Path, name: &str) -> Tls {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            &key,
            "-out",
            &crt,
        ],
        dir,
    );
    Tls {
        cert: dir.join(crt),
        key: dir.join(key),
    }
}

/// A CA (`ca.crt`) and a server certificate for IP 127.0.0.1 that it signed
/// (`server.crt`, `server.key`) in `dir`. (webpki refuses a CA certificate as the
/// server's own, so the one-command self-signed form would not do.)
pub fn ca_and_server(dir: &Path) -> Tls {
    self_signed(dir, "ca");
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        dir,
    );
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write ext");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
        dir,
    );
    Tls {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    }
}

#[derive(Default)]
pub struct Config {
    pub tls: bool,
    pub htpasswd: bool,
    /// (realm URL, certificate bundle) of a token server.
    pub token: Option<(String, PathBuf)>,
}

pub struct Registry {
    _child: KillOnDrop,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    /// The CA directory to trust it (TLS only): holds `ca.crt`.
    pub cert_dir: PathBuf,
}

impl Registry {
    pub fn start(cfg: Config) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert_dir = dir.path().join("certs.d");
        fs::create_dir(&cert_dir).expect("mkdir certs.d");
        let mut extra = String::new();
        if cfg.tls {
            let t = ca_and_server(dir.path());
            fs::copy(dir.path().join("ca.crt"), cert_dir.join("ca.crt")).expect("copy ca");
            extra.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                t.cert.display(),
                t.key.display()
            ));
        }
        let mut auth = String::new();
        if cfg.htpasswd {
            let h = must(
                run(Command::new("htpasswd").args(["-Bbn", USER, PASS])),
                "htpasswd",
            );
            let path = dir.path().join("htpasswd");
            fs::write(&path, h).expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
                path.display()
            );
        }
        if let Some((realm, bundle)) = &cfg.token {
            auth = format!(
                "auth:\n  token:\n    realm: {realm}\n    service: strata-test-service\n    issuer: strata-test-issuer\n    rootcertbundle: {}\n",
                bundle.display()
            );
        }
        let log = dir.path().join("registry.log");
        for _attempt in 0..5 {
            let port = free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}{auth}",
                dir.path().join("data").display()
            );
            let cfg_path = dir.path().join("config.yml");
            fs::write(&cfg_path, config).expect("write config");
            let out = fs::File::create(&log).expect("log file");
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup"))
                .stderr(out)
                .spawn()
                .expect("spawn docker-registry");
            let mut child = KillOnDrop(child);
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.0.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if up {
                return Registry {
                    _child: child,
                    port,
                    dir,
                    log,
                    cert_dir,
                };
            }
            let text = fs::read_to_string(&log).unwrap_or_default();
            assert!(
                text.contains("address already in use"),
                "docker-registry did not start:\n{text}"
            );
        }
        panic!("docker-registry: no free port after 5 tries");
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's "response completed" log lines.
    pub fn responses(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("response completed"))
            .map(str::to_string)
            .collect()
    }

    /// The file the registry keeps a blob's bytes in.
    pub fn blob_data(&self, hex: &str) -> PathBuf {
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// The value of `key=` in a logfmt line (quoted or not).
pub fn logfmt<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!(" {key}=");
    let at = line.find(&pat)? + pat.len();
    let rest = &line[at..];
    if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next()
    } else {
        rest.split(' ').next()
    }
}

// ---------------------------------------------------------------------------------
// the OCI layout fixture
// ---------------------------------------------------------------------------------

/// An OCI layout made by umoci, once per test process: `v1` (linux/amd64, two
/// layers: busybox, then /hello), `arm` (the same layers, config linux/arm64) and
/// `multi`, an index of both (linux/amd64 and linux/arm64/v8).
pub fn fixture() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image_registry");
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).expect("mkdir fixture root");
        let layout = root.join("oci");
        let l = layout.display().to_string();
        let b = root.join("bundle");
        let umoci = |args: &[&str]| must(run(Command::new("umoci").args(args)), &format!("umoci {args:?}"));
        umoci(&["init", "--layout", &l]);
        umoci(&["new", "--image", &format!("{l}:v1")]);
        umoci(&["unpack", "--image", &format!("{l}:v1"), &b.display().to_string()]);
        fs::create_dir_all(b.join("rootfs/bin")).expect("mkdir bin");
        fs::copy("/bin/busybox", b.join("rootfs/bin/busybox")).expect("copy busybox");
        umoci(&["repack", "--image", &format!("{l}:v1"), &b.display().to_string()]);
        fs::remove_dir_all(&b).expect("rm bundle");
        umoci(&["unpack", "--image", &format!("{l}:v1"), &b.display().to_string()]);
        fs::write(b.join("rootfs/hello"), "hello from the second layer\n").expect("write hello");
        umoci(&["repack", "--image", &format!("{l}:v1"), &b.display().to_string()]);
        umoci(&["config", "--image", &format!("{l}:v1"), "--tag", "arm", "--architecture", "arm64"]);
        // The index, by hand: umoci makes none.
        let amd = descriptor(&layout, "v1");
        let arm = descriptor(&layout, "arm");
        let entry = |d: &Value, arch: &str, variant: Option<&str>| {
            let mut p = serde_json::json!({"os": "linux", "architecture": arch});
            if let Some(v) = variant {
                p["variant"] = v.into();
            }
            serde_json::json!({"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"], "platform": p})
        };
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [entry(&amd, "amd64", None), entry(&arm, "arm64", Some("v8"))],
        });
        let bytes = serde_json::to_vec(&index).expect("json");
        let d = strata::image::digest::Digest::of(&bytes);
        fs::write(layout.join("blobs/sha256").join(d.hex()), &bytes).expect("write index blob");
        let mut top: Value = serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index.json")).expect("json");
        top["manifests"].as_array_mut().expect("manifests").push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": d.to_string(),
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }));
        fs::write(layout.join("index.json"), serde_json::to_vec(&top).expect("json")).expect("write index.json");
        layout
    })
}

/// The descriptor of `tag` in the layout's index.json.
pub fn descriptor(layout: &Path, tag: &str) -> Value {
    let top: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index.json"))
            .expect("json");
    top["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in the layout"))
        .clone()
}

pub fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    layout.join("blobs/sha256").join(hex)
}

pub fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    fs::read(blob_path(layout, digest)).expect("read blob")
}

/// The manifest JSON of `tag` in the layout.
pub fn manifest_of(layout: &Path, tag: &str) -> Value {
    let d = descriptor(layout, tag);
    serde_json::from_slice(&blob(layout, d["digest"].as_str().expect("digest"))).expect("json")
}

// ---------------------------------------------------------------------------------
// skopeo
// ---------------------------------------------------------------------------------

pub fn skopeo(args: &[&str]) -> String {
    must(
        run(Command::new("skopeo").args(args)),
        &format!("skopeo {args:?}"),
    )
}

/// `skopeo copy` of the fixture's `tag` to `host/name:tag` (plain HTTP or unverified TLS).
pub fn populate(host: &str, tag: &str, name: &str, extra: &[&str]) {
    let src = format!("oci:{}:{tag}", fixture().display());
    let dst = format!("docker://{host}/{name}");
    let mut args = vec!["copy", "--dest-tls-verify=false"];
    args.extend_from_slice(extra);
    args.push(&src);
    args.push(&dst);
    skopeo(&args);
}

/// `skopeo inspect --raw` digest: the sha256 of the raw manifest it gets.
pub fn inspect_raw(host: &str, name: &str, extra: &[&str]) -> Vec<u8> {
    let r = format!("docker://{host}/{name}");
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    args.extend_from_slice(extra);
    args.push(&r);
    skopeo(&args).into_bytes()
}

// ---------------------------------------------------------------------------------
// a Bearer token server
// ---------------------------------------------------------------------------------

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn b64(data: &[u8], url: bool) -> String {
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                let ch = B64[((n >> shift) & 63) as usize];
                out.push(match (url, ch) {
                    (true, b'+') => '-',
                    (true, b'/') => '_',
                    (_, ch) => ch as char,
                });
            } else if !url {
                out.push('=');
            }
        }
    }
    out
}

/// One request the token server answered: the query string and whether the
/// right Basic credentials came with it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub query: String,
    pub authorized: bool,
    pub had_credentials: bool,
}

/// A token server after the Docker token spec, on a std TcpListener thread: it
/// issues RS256 JWTs (signed by `openssl dgst`) with the signing certificate in
/// `x5c`, granting pull and push on each requested repository, to alice only
/// (anonymous and wrong credentials get 401).
pub struct TokenServer {
    pub port: u16,
    pub bundle: PathBuf,
    pub requests: Arc<Mutex<Vec<TokenRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TokenServer {
    pub fn start() -> TokenServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = self_signed(dir.path(), "signer");
        let der = must(
            run(Command::new("openssl")
                .args(["x509", "-outform", "DER", "-in"])
                .arg(&tls.cert)
                .arg("-out")
                .arg(dir.path().join("signer.der"))),
            "openssl x509",
        );
        drop(der);
        let x5c = b64(
            &fs::read(dir.path().join("signer.der")).expect("der"),
            false,
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (reqs, stopping, key) = (requests.clone(), stop.clone(), tls.key.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(s) = conn {
                    let _ = serve_token(s, &x5c, &key, &reqs);
                }
            }
        });
        TokenServer {
            port,
            bundle: tls.cert,
            requests,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sign_rs256(key: &Path, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    child.stdin.take().expect("stdin").write_all(data)?;
    let out = child.wait_with_output()?;
    Ok(out.stdout)
}

fn serve_token(
    s: TcpStream,
    x5c: &str,
    key: &Path,
    reqs: &Mutex<Vec<TokenRequest>>,
) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let target = line.split(' ').nth(1).unwrap_or("").to_string();
    let mut auth = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                auth = Some(v.trim().to_string());
            }
        }
    }
    let query = target
        .split_once('?')
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
    let good = format!("Basic {}", b64(format!("{USER}:{PASS}").as_bytes(), false));
    let authorized = auth.as_deref() == Some(good.as_str());
    reqs.lock().expect("lock").push(TokenRequest {
        query: query.clone(),
        authorized,
        had_credentials: auth.is_some(),
    });
    let mut w = s;
    if !authorized {
        let body = r#"{"details":"credentials required"}"#;
        write!(w, "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
        return Ok(());
    }
    let mut access = Vec::new();
    for pair in query.split('&') {
        if let Some(scope) = pair.strip_prefix("scope=") {
            let scope = unescape(scope);
            let parts: Vec<&str> = scope.split(':').collect();
            if parts.len() == 3 && parts[0] == "repository" {
                access.push(serde_json::json!({"type": "repository", "name": parts[1], "actions": ["pull", "push"]}));
            }
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": "strata-test-issuer", "sub": USER, "aud": "strata-test-service",
        "exp": now + 600, "nbf": now - 60, "iat": now, "jti": format!("{now}-{}", access.len()),
        "access": access,
    });
    let signing = format!(
        "{}.{}",
        b64(header.to_string().as_bytes(), true),
        b64(claims.to_string().as_bytes(), true)
    );
    let sig = sign_rs256(key, signing.as_bytes())?;
    let token = format!("{signing}.{}", b64(&sig, true));
    let body = serde_json::json!({"token": token, "expires_in": 600}).to_string();
    write!(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    Ok(())
}

pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        } else if b[i] == b'+' {
            out.push(b' ');
            i += 1;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
