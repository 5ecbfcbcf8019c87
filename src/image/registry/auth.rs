//! Credentials and challenges: the containers auth file, `WWW-Authenticate`
//! parsing, and the base64 of Basic credentials.

use super::error::{err, Error, ErrorKind};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Lower-cased: "basic" or "bearer" (others are kept, and refused later).
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parses `Scheme k="v", k2=v2`. Quoted values may hold commas and escaped quotes.
/// Only the first challenge of a header is read.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, mut rest) = match header.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r.trim_start()),
        None => (header, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = HashMap::new();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let value;
        if let Some(q) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            value = v;
            rest = &q[end.min(q.len())..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        if !key.is_empty() {
            params.insert(key, value);
        }
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(crate) fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(B64[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard or URL-safe alphabet, padding optional, whitespace ignored.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' | b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `Basic base64(user:pass)`.
pub(crate) fn basic_header(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64_encode(format!("{user}:{pass}").as_bytes())
    )
}

/// The auth files looked at, in order, when none is given: `$REGISTRY_AUTH_FILE`,
/// `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`,
/// `~/.docker/config.json` (the order of containers-auth.json(5)).
pub fn default_auth_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        v.push(PathBuf::from(p));
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        v.push(Path::new(&d).join("containers/auth.json"));
    }
    if let Some(h) = std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        v.push(Path::new(&h).join(".config/containers/auth.json"));
        v.push(Path::new(&h).join(".docker/config.json"));
    }
    v
}

/// `https://host:port/v1/` → `host:port`: auth file keys may carry a scheme and path.
fn normalize_key(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.split('/').next().unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        k => k,
    }
}

/// The credentials for `registry` in `file`: `Ok(None)` when the file has no entry
/// for it (or does not exist and was not named explicitly).
pub(crate) fn creds_from_file(
    file: &Path,
    registry: &str,
    explicit: bool,
) -> Result<Option<(String, String)>, Error> {
    let text = match fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        // A default location the user cannot read (HOME of another user, as under
        // sudo or setpriv) holds no credentials of theirs.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && !explicit => {
            log::debug!("auth file {}: {e}; skipped", file.display());
            return Ok(None);
        }
        Err(e) => {
            return Err(err(
                ErrorKind::Config,
                format!("auth file {}: {e}", file.display()),
            ))
        }
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        err(
            ErrorKind::Config,
            format!("auth file {}: not JSON: {e}", file.display()),
        )
    })?;
    let Some(auths) = json.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let want = normalize_key(registry);
    let entry = auths.get(registry).or_else(|| {
        auths
            .iter()
            .find(|(k, _)| normalize_key(k) == want)
            .map(|(_, v)| v)
    });
    let Some(auth) = entry.and_then(|e| e.get("auth")).and_then(|a| a.as_str()) else {
        return Ok(None);
    };
    let bad = || {
        err(
            ErrorKind::Config,
            format!(
                "auth file {}: the entry for {registry} is not base64 of USER:PASSWORD",
                file.display()
            ),
        )
    };
    let decoded = base64_decode(auth).ok_or_else(bad)?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (user, pass) = decoded.split_once(':').ok_or_else(bad)?;
    Ok(Some((user.to_string(), pass.to_string())))
}

/// Credentials for `registry`: from the named file only, else from the first default
/// file with an entry for it.
pub(crate) fn lookup_creds(
    registry: &str,
    auth_file: Option<&Path>,
) -> Result<Option<(String, String)>, Error> {
    if let Some(f) = auth_file {
        return creds_from_file(f, registry, true);
    }
    for f in default_auth_files() {
        if let Some(c) = creds_from_file(&f, registry, false)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "alice:s3cr:et", "\u{e9}\u{0}x"] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes(), "{s}");
        }
        assert_eq!(base64_encode(b"alice:secret"), "YWxpY2U6c2VjcmV0");
        assert_eq!(base64_decode("YWxpY2U6c2VjcmV0").unwrap(), b"alice:secret");
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn parses_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:9/token",service="reg",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "http://127.0.0.1:9/token");
        assert_eq!(c.params["service"], "reg");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let c = parse_challenge(r#"Basic realm="a \"q\" b", charset=UTF-8"#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "a \"q\" b");
        assert_eq!(c.params["charset"], "UTF-8");
        assert!(parse_challenge("").is_none());
    }

    #[test]
    fn reads_auth_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("auth.json");
        fs::write(
            &f,
            r#"{"auths":{"127.0.0.1:5000":{"auth":"YWxpY2U6c2VjcmV0"},
                 "https://index.docker.io/v1/":{"auth":"Ym9iOnB3"},
                 "bad:1":{"auth":"bm9jb2xvbg=="}}}"#,
        )
        .unwrap();
        assert_eq!(
            creds_from_file(&f, "127.0.0.1:5000", true).unwrap(),
            Some(("alice".into(), "secret".into()))
        );
        assert_eq!(
            creds_from_file(&f, "docker.io", true).unwrap(),
            Some(("bob".into(), "pw".into()))
        );
        assert_eq!(creds_from_file(&f, "other:1", true).unwrap(), None);
        let e = creds_from_file(&f, "bad:1", true).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let missing = dir.path().join("none.json");
        assert_eq!(creds_from_file(&missing, "x", false).unwrap(), None);
        assert_eq!(
            creds_from_file(&missing, "x", true).unwrap_err().kind(),
            ErrorKind::Config
        );
        fs::write(&f, "{not json").unwrap();
        assert_eq!(
            creds_from_file(&f, "x", true).unwrap_err().kind(),
            ErrorKind::Config
        );
    }
}
