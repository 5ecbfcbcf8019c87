//! The HTTP side: the agent (TLS trust, plain-HTTP fallback), authentication
//! (Basic after a challenge, Bearer tokens cached per scope), and the requests every
//! operation shares. The operations themselves are in `pull` and `push`.

use super::auth::{self, parse_challenge};
use super::error::{err, Error, ErrorKind};
use super::platform::Platform;
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use ureq::http::{self, Method, Response};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// Uploads larger than this go in PATCH chunks of this size; smaller ones in one PUT.
pub const DEFAULT_CHUNK_SIZE: u64 = 8 << 20;

/// How a [`Client`] reaches its registry.
#[derive(Debug, Clone)]
pub struct Options {
    /// true (the default): HTTPS only, certificates verified. false, as skopeo's
    /// `--tls-verify=false`: HTTPS without verification, and plain HTTP when the
    /// HTTPS handshake fails.
    pub tls_verify: bool,
    /// A `certs.d`-style directory: its `*.crt` files are trusted as CAs, in
    /// addition to the system bundle (/etc/ssl/certs/ca-certificates.crt).
    pub cert_dir: Option<PathBuf>,
    /// Username and password; when `None`, looked up in the auth file.
    pub creds: Option<(String, String)>,
    /// The containers auth file (`{"auths":{"host:port":{"auth":"base64(user:pass)"}}}`);
    /// when `None`, [`default_auth_files`](super::default_auth_files) are tried.
    pub auth_file: Option<PathBuf>,
    /// The platform chosen from an index; linux/amd64 by default.
    pub platform: Platform,
    /// Chunk size of uploads (bytes, at least 1); [`DEFAULT_CHUNK_SIZE`] by default.
    pub chunk_size: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tls_verify: true,
            cert_dir: None,
            creds: None,
            auth_file: None,
            platform: Platform::default(),
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

#[derive(Default)]
struct AuthState {
    /// The registry answered a `Basic` challenge: credentials go with every request
    /// from then on.
    basic: bool,
    /// The registry answered a `Bearer` challenge: (realm, service).
    bearer: Option<(String, Option<String>)>,
    /// Tokens by scope set (space-joined), with their expiry.
    tokens: HashMap<String, (String, Instant)>,
}

/// A client for one registry host. `Send + Sync`: share it by reference among the
/// threads that fetch blobs.
pub struct Client {
    /// As the user wrote it: messages and the auth file use this.
    pub(crate) registry: String,
    /// What the API is served on (docker.io → registry-1.docker.io).
    host: String,
    agent: ureq::Agent,
    tls_verify: bool,
    creds: Option<(String, String)>,
    pub(crate) platform: Platform,
    pub(crate) chunk_size: u64,
    /// `https://host` or `http://host`, decided by the first request.
    base: Mutex<Option<String>>,
    auth: Mutex<AuthState>,
}

/// One request: what `Client::call` sends, authenticates and retries.
pub(crate) struct Call<'a> {
    pub method: Method,
    /// A path under the base (`/v2/...`) or an absolute URL (an upload location).
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<&'a [u8]>,
    /// Token scopes this request needs: `repository:NAME:pull[,push]`.
    pub scopes: Vec<String>,
    /// For messages: `127.0.0.1:5000/busybox: manifest latest`.
    pub what: &'a str,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The system CA bundle plus the `*.crt` files of `dir`.
fn roots_with(dir: &std::path::Path) -> Result<RootCerts, Error> {
    fn add(
        certs: &mut Vec<Certificate<'static>>,
        path: &std::path::Path,
        pem: &[u8],
    ) -> Result<(), Error> {
        for item in ureq::tls::parse_pem(pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                Ok(_) => {}
                Err(e) => {
                    return Err(err(
                        ErrorKind::Config,
                        format!("certificate {}: {e}", path.display()),
                    ))
                }
            }
        }
        Ok(())
    }
    let mut certs = Vec::new();
    let system = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
    if let Ok(pem) = fs::read(system) {
        add(&mut certs, system, &pem)?;
    }
    let entries = fs::read_dir(dir).map_err(|e| {
        err(
            ErrorKind::Config,
            format!("certificate directory {}: {e}", dir.display()),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    files.sort();
    for f in files {
        let pem = fs::read(&f).map_err(|e| {
            err(
                ErrorKind::Config,
                format!("certificate {}: {e}", f.display()),
            )
        })?;
        let before = certs.len();
        add(&mut certs, &f, &pem)?;
        if certs.len() == before {
            return Err(err(
                ErrorKind::Config,
                format!("certificate {}: no PEM certificate in it", f.display()),
            ));
        }
    }
    Ok(RootCerts::new_with_certs(&certs))
}

/// A transport failure (no HTTP answer) as an `Unreachable` error, or a `Protocol`
/// one for what the server sent that is not HTTP.
pub(crate) fn transport_error(what: &str, e: &ureq::Error) -> Error {
    let (kind, reason) = match e {
        // rustls' failures come wrapped in io::Error as InvalidData.
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            (ErrorKind::Unreachable, format!("TLS: {io}"))
        }
        ureq::Error::Io(io) => (ErrorKind::Unreachable, io_reason(io)),
        ureq::Error::HostNotFound => (ErrorKind::Unreachable, "host not found (DNS)".into()),
        ureq::Error::ConnectionFailed => (ErrorKind::Unreachable, "connection failed".into()),
        ureq::Error::Timeout(t) => (ErrorKind::Unreachable, format!("timed out ({t})")),
        ureq::Error::Tls(t) => (ErrorKind::Unreachable, format!("TLS: {t}")),
        ureq::Error::Rustls(r) => (ErrorKind::Unreachable, format!("TLS: {r}")),
        other => (ErrorKind::Protocol, other.to_string()),
    };
    err(kind, format!("{what}: {reason}"))
}

fn io_reason(io: &std::io::Error) -> String {
    match io.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        std::io::ErrorKind::TimedOut => "timed out".into(),
        _ => io.to_string(),
    }
}

fn is_transport(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Tls(_)
            | ureq::Error::Rustls(_)
            | ureq::Error::Protocol(_)
            | ureq::Error::ConnectionFailed
    )
}

/// The registry's own words from an error body: `CODE: message` of its first error.
pub(crate) fn registry_message(resp: &mut Response<ureq::Body>) -> String {
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_vec()
        .unwrap_or_default();
    let json: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(j) => j,
        Err(_) => return String::new(),
    };
    let Some(first) = json.get("errors").and_then(|e| e.get(0)) else {
        return String::new();
    };
    let code = first.get("code").and_then(|c| c.as_str()).unwrap_or("");
    let msg = first.get("message").and_then(|c| c.as_str()).unwrap_or("");
    match (code.is_empty(), msg.is_empty()) {
        (false, false) => format!("{code}: {msg}"),
        (false, true) => code.to_string(),
        (true, false) => msg.to_string(),
        (true, true) => String::new(),
    }
}

/// An error for an unexpected status, with the registry's message.
pub(crate) fn status_error(
    kind: ErrorKind,
    what: &str,
    reason: &str,
    resp: &mut Response<ureq::Body>,
) -> Error {
    let status = resp.status().as_u16();
    let said = registry_message(resp);
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(" ({said})")
    };
    err(kind, format!("{what}: {reason}: HTTP {status}{said}"))
}

/// Ok for 200; a 404 is an error of `not_found`, anything else a protocol error.
pub(crate) fn expect_200(
    resp: &mut Response<ureq::Body>,
    not_found: ErrorKind,
    what: &str,
) -> Result<(), Error> {
    match resp.status().as_u16() {
        200 => Ok(()),
        404 => Err(status_error(not_found, what, "not found", resp)),
        _ => Err(status_error(
            ErrorKind::Protocol,
            what,
            "unexpected answer",
            resp,
        )),
    }
}

pub(crate) fn header<'r>(resp: &'r Response<ureq::Body>, name: &str) -> Option<&'r str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Percent-encoding of a query component.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    /// A client for `registry` (`host[:port]`). Reads the certificate directory and
    /// the auth file; makes no request (the first operation finds out the scheme and
    /// how the registry authenticates).
    pub fn new(registry: &str, opts: &Options) -> Result<Client, Error> {
        if registry.is_empty() || registry.contains('/') || registry.contains(char::is_whitespace) {
            return Err(err(
                ErrorKind::BadReference,
                format!("registry {registry:?}: expected HOST[:PORT]"),
            ));
        }
        let host = match registry {
            "docker.io" | "index.docker.io" => "registry-1.docker.io".to_string(),
            r => r.to_string(),
        };
        let roots = match &opts.cert_dir {
            Some(dir) => roots_with(dir)?,
            None => RootCerts::WebPki,
        };
        let tls = TlsConfig::builder()
            .root_certs(roots)
            .disable_verification(!opts.tls_verify)
            .build();
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .accept_encoding("")
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .build();
        let creds = match &opts.creds {
            Some(c) => Some(c.clone()),
            None => auth::lookup_creds(registry, opts.auth_file.as_deref())?,
        };
        Ok(Client {
            registry: registry.to_string(),
            host,
            agent: config.new_agent(),
            tls_verify: opts.tls_verify,
            creds,
            platform: opts.platform.clone(),
            chunk_size: opts.chunk_size.max(1),
            base: Mutex::new(None),
            auth: Mutex::new(AuthState::default()),
        })
    }

    /// The registry as given to [`Client::new`].
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Whether credentials are at hand (given, or found in the auth file).
    pub fn has_credentials(&self) -> bool {
        self.creds.is_some()
    }

    fn send_raw(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&'static str, String)],
        body: Option<&[u8]>,
        authorization: Option<&str>,
    ) -> Result<Response<ureq::Body>, ureq::Error> {
        let mut b = http::Request::builder().method(method.clone()).uri(url);
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        if let Some(a) = authorization {
            b = b.header("Authorization", a);
        }
        match body {
            Some(bytes) => self.agent.run(b.body(bytes).map_err(ureq::Error::Http)?),
            None => self.agent.run(b.body(()).map_err(ureq::Error::Http)?),
        }
    }

    /// `https://host` or, when TLS verification is off and the HTTPS handshake fails,
    /// `http://host`; found by `GET /v2/` once, which also learns the challenge.
    pub(crate) fn base(&self) -> Result<String, Error> {
        let mut guard = lock(&self.base);
        if let Some(b) = &*guard {
            return Ok(b.clone());
        }
        let what = format!("registry {}", self.registry);
        let https = format!("https://{}", self.host);
        let base = match self.send_raw(&Method::GET, &format!("{https}/v2/"), &[], None, None) {
            Ok(mut resp) => {
                self.note_challenge(&mut resp);
                https
            }
            Err(e) if !self.tls_verify && is_transport(&e) => {
                let plain = format!("http://{}", self.host);
                match self.send_raw(&Method::GET, &format!("{plain}/v2/"), &[], None, None) {
                    Ok(mut resp) => {
                        self.note_challenge(&mut resp);
                        plain
                    }
                    Err(e2) => {
                        let first = transport_error("https", &e);
                        let second = transport_error("http", &e2);
                        return Err(err(
                            second.kind(),
                            format!("{what}: unreachable: {first}; {second}"),
                        ));
                    }
                }
            }
            Err(e) => {
                let mut t = transport_error(&what, &e);
                if t.message().contains("TLS: ") || matches!(e, ureq::Error::Protocol(_)) {
                    t = err(
                        t.kind(),
                        format!(
                            "{t} (a registry with a self-signed certificate needs its CA in the cert dir; plain HTTP needs tls-verify=false)"
                        ),
                    );
                }
                return Err(t);
            }
        };
        *guard = Some(base.clone());
        Ok(base)
    }

    fn note_challenge(&self, resp: &mut Response<ureq::Body>) {
        if resp.status().as_u16() != 401 {
            return;
        }
        let Some(c) = header(resp, "www-authenticate").and_then(parse_challenge) else {
            return;
        };
        let mut st = lock(&self.auth);
        match c.scheme.as_str() {
            "basic" => st.basic = true,
            "bearer" => {
                if let Some(realm) = c.params.get("realm") {
                    st.bearer = Some((realm.clone(), c.params.get("service").cloned()));
                }
            }
            _ => {}
        }
    }

    /// The Authorization header for `scopes`, as far as the registry's challenge is
    /// known: a cached (or newly fetched) token, Basic credentials, or none.
    fn authorization(&self, scopes: &[String], fresh: bool) -> Result<Option<String>, Error> {
        let (bearer, basic) = {
            let st = lock(&self.auth);
            (st.bearer.clone(), st.basic)
        };
        if let Some((realm, service)) = bearer {
            let key = scopes.join(" ");
            if !fresh {
                let st = lock(&self.auth);
                if let Some((tok, until)) = st.tokens.get(&key) {
                    if Instant::now() < *until {
                        return Ok(Some(format!("Bearer {tok}")));
                    }
                }
            }
            let (tok, ttl) = self.fetch_token(&realm, service.as_deref(), scopes)?;
            lock(&self.auth)
                .tokens
                .insert(key, (tok.clone(), Instant::now() + ttl));
            return Ok(Some(format!("Bearer {tok}")));
        }
        if basic {
            return Ok(self.creds.as_ref().map(|(u, p)| auth::basic_header(u, p)));
        }
        Ok(None)
    }

    /// A token from the Docker token server: `GET realm?service=&scope=…`, with the
    /// credentials as Basic if there are any.
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<(String, Duration), Error> {
        let mut url = realm.to_string();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        if let Some(s) = service {
            url.push_str(&format!("{sep}service={}", query_escape(s)));
            sep = '&';
        }
        for s in scopes {
            url.push_str(&format!("{sep}scope={}", query_escape(s)));
            sep = '&';
        }
        let what = format!("{}: token server {realm}", self.registry);
        let basic = self.creds.as_ref().map(|(u, p)| auth::basic_header(u, p));
        let mut resp = self
            .send_raw(&Method::GET, &url, &[], None, basic.as_deref())
            .map_err(|e| transport_error(&what, &e))?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(self.creds_error(&what, &mut resp, basic.is_some()));
        }
        if status != 200 {
            return Err(status_error(
                ErrorKind::Protocol,
                &what,
                "no token",
                &mut resp,
            ));
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| {
                err(
                    ErrorKind::Unreachable,
                    format!("{what}: reading the token: {e}"),
                )
            })?;
        let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            err(
                ErrorKind::Protocol,
                format!("{what}: the token answer is not JSON: {e}"),
            )
        })?;
        let token = json
            .get("token")
            .or_else(|| json.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                err(
                    ErrorKind::Protocol,
                    format!("{what}: the answer has no token or access_token"),
                )
            })?;
        let secs = json
            .get("expires_in")
            .and_then(|e| e.as_u64())
            .unwrap_or(60)
            .max(10);
        // Renew a little early: a token must not expire between check and use.
        Ok((token.to_string(), Duration::from_secs(secs - 5)))
    }

    fn creds_error(&self, what: &str, resp: &mut Response<ureq::Body>, sent: bool) -> Error {
        if sent {
            let user = self.creds.as_ref().map_or("", |(u, _)| u.as_str());
            status_error(
                ErrorKind::CredentialsWrong,
                what,
                &format!("credentials wrong or not allowed (sent for user {user:?})"),
                resp,
            )
        } else {
            status_error(
                ErrorKind::CredentialsMissing,
                what,
                &format!(
                    "credentials missing (none given, none for {} in the auth file)",
                    self.registry
                ),
                resp,
            )
        }
    }

    /// Sends `c`, answering one 401 challenge (Basic: with the credentials; Bearer:
    /// with a fresh token for the scopes asked for), and maps 401/403 to the
    /// credentials errors. Any other status is the caller's to judge.
    pub(crate) fn call(&self, c: &Call) -> Result<Response<ureq::Body>, Error> {
        let base = self.base()?;
        let url = if c.url.starts_with("http://") || c.url.starts_with("https://") {
            c.url.clone()
        } else {
            format!("{base}{}", c.url)
        };
        let mut scopes = c.scopes.clone();
        let mut authorization = self.authorization(&scopes, false)?;
        let mut retried = false;
        loop {
            let mut resp = self
                .send_raw(
                    &c.method,
                    &url,
                    &c.headers,
                    c.body,
                    authorization.as_deref(),
                )
                .map_err(|e| transport_error(c.what, &e))?;
            let status = resp.status().as_u16();
            if status != 401 && status != 403 {
                return Ok(resp);
            }
            let sent = authorization.is_some() && self.creds.is_some();
            if status == 403 || retried {
                return Err(self.creds_error(c.what, &mut resp, sent));
            }
            let challenge = header(&resp, "www-authenticate").and_then(parse_challenge);
            match challenge {
                Some(ch) if ch.scheme == "bearer" && ch.params.contains_key("realm") => {
                    {
                        let mut st = lock(&self.auth);
                        st.bearer = Some((
                            ch.params.get("realm").cloned().unwrap_or_default(),
                            ch.params.get("service").cloned(),
                        ));
                    }
                    if let Some(s) = ch.params.get("scope") {
                        for one in s.split(' ') {
                            if !one.is_empty() && !scopes.iter().any(|x| x == one) {
                                scopes.push(one.to_string());
                            }
                        }
                    }
                    authorization = self.authorization(&scopes, true)?;
                }
                Some(ch) if ch.scheme == "basic" => {
                    lock(&self.auth).basic = true;
                    if self.creds.is_none() || authorization.is_some() {
                        return Err(self.creds_error(c.what, &mut resp, sent));
                    }
                    authorization = self.authorization(&scopes, true)?;
                }
                _ => return Err(self.creds_error(c.what, &mut resp, sent)),
            }
            retried = true;
        }
    }

    /// `Call` for a GET/HEAD of a repository path with pull scope.
    pub(crate) fn pull_call<'a>(
        &self,
        method: Method,
        repo: &str,
        path: String,
        headers: Vec<(&'static str, String)>,
        what: &'a str,
    ) -> Call<'a> {
        Call {
            method,
            url: format!("/v2/{repo}/{path}"),
            headers,
            body: None,
            scopes: vec![format!("repository:{repo}:pull")],
            what,
        }
    }
}

/// Reads all of `r` up to `limit` bytes; more is an error naming `what`.
pub(crate) fn read_limited(r: &mut dyn Read, limit: u64, what: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| err(ErrorKind::Unreachable, format!("{what}: reading: {e}")))?;
    if out.len() as u64 > limit {
        return Err(err(
            ErrorKind::Protocol,
            format!("{what}: larger than {limit} bytes"),
        ));
    }
    Ok(out)
}
