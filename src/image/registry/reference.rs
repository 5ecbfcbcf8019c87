//! Image references: `HOST[:PORT]/NAME[:TAG][@ALGORITHM:HEX]`.

use super::error::{err, Error, ErrorKind};
use crate::image::digest::Digest;
use std::fmt;
use std::str::FromStr;

/// A fully qualified image reference. The registry host is required: short names
/// (`busybox`) need a search list this module does not have, and are refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `host[:port]` as written (`docker.io` included; [`super::Client`] maps it to
    /// the API host).
    pub registry: String,
    /// The repository path, one or more components: `library/busybox`.
    pub repository: String,
    /// The tag; `latest` when neither a tag nor a digest was written, `None` when only
    /// a digest was.
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// What to ask the registry for: the digest if there is one, else the tag.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl fmt::Display for Reference {
    /// podman's name form: `HOST[:PORT]/NAME:TAG`, `HOST/NAME@DIGEST`, or both.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn bad(s: &str, why: &str) -> Error {
    err(
        ErrorKind::BadReference,
        format!("image reference {s:?}: {why}"),
    )
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, the distribution spec's path component.
pub(crate) fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`.
pub(crate) fn valid_tag(t: &str) -> bool {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !t.is_empty()
        && t.len() <= 128
        && word(t.as_bytes()[0])
        && t.bytes().all(|x| word(x) || x == b'.' || x == b'-')
}

/// A host name or IPv4 address with an optional port, or `[IPv6]:port`.
fn valid_registry(r: &str) -> bool {
    let (host, port) = if let Some(rest) = r.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, p)) => {
                if h.is_empty() || !h.bytes().all(|x| x.is_ascii_hexdigit() || x == b':') {
                    return false;
                }
                (
                    None,
                    p.strip_prefix(':')
                        .or(if p.is_empty() { None } else { Some("x") }),
                )
            }
            None => return false,
        }
    } else {
        match r.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(r), None),
        }
    };
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.split('.').all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|x| x.is_ascii_alphanumeric() || x == b'-')
            })
    });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|x| x.is_ascii_digit()));
    host_ok && port_ok
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Reference, Error> {
        let text = s.strip_prefix("docker://").unwrap_or(s);
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => {
                let digest = d
                    .parse::<Digest>()
                    .map_err(|e| bad(s, &format!("bad digest: {e}")))?;
                (r, Some(digest))
            }
            None => (text, None),
        };
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| bad(s, "no registry host (write HOST[:PORT]/NAME[:TAG])"))?;
        let looks_like_host = registry.contains('.')
            || registry.contains(':')
            || registry.starts_with('[')
            || registry == "localhost";
        if !looks_like_host {
            return Err(bad(
                s,
                &format!("{registry:?} is not a registry host (write HOST[:PORT]/NAME[:TAG]; short names are not resolved)"),
            ));
        }
        if !valid_registry(registry) {
            return Err(bad(s, &format!("bad registry host {registry:?}")));
        }
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match path[last_slash..].find(':') {
            Some(i) => (&path[..last_slash + i], Some(&path[last_slash + i + 1..])),
            None => (path, None),
        };
        if repository.is_empty() {
            return Err(bad(s, "no repository name"));
        }
        if let Some(c) = repository.split('/').find(|c| !valid_component(c)) {
            return Err(bad(
                s,
                &format!("bad repository component {c:?} (lower-case letters, digits and . _ __ - between them)"),
            ));
        }
        if repository.len() > 255 {
            return Err(bad(s, "repository name longer than 255 characters"));
        }
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(bad(
                    s,
                    &format!("bad tag {t:?} (up to 128 of letters, digits, _ . -; not starting with . or -)"),
                ));
            }
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_the_forms() {
        let r: Reference = "127.0.0.1:5000/busybox".parse().unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "busybox");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.to_string(), "127.0.0.1:5000/busybox:latest");
        assert_eq!(r.reference(), "latest");

        let r: Reference = "registry.example.com/a/b-c/d__e:v1.2".parse().unwrap();
        assert_eq!(r.registry, "registry.example.com");
        assert_eq!(r.repository, "a/b-c/d__e");
        assert_eq!(r.tag.as_deref(), Some("v1.2"));

        let r: Reference = format!("localhost/x@{D}").parse().unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_ref().unwrap().to_string(), D);
        assert_eq!(r.reference(), D);
        assert_eq!(r.to_string(), format!("localhost/x@{D}"));

        let r: Reference = format!("docker://host:1/x:t@{D}").parse().unwrap();
        assert_eq!(r.tag.as_deref(), Some("t"));
        assert_eq!(r.reference(), D);
        assert_eq!(r.to_string(), format!("host:1/x:t@{D}"));

        let r: Reference = "[::1]:5000/x".parse().unwrap();
        assert_eq!(r.registry, "[::1]:5000");
    }

    #[test]
    fn refuses_bad_syntax() {
        for bad in [
            "busybox",
            "busybox:latest",
            "library/busybox",
            "host:5000/",
            "host:5000/Upper",
            "host:5000/a//b",
            "host:5000/a/",
            "host:5000/-a",
            "host:5000/a..b",
            "host:5000/a:",
            "host:5000/a:-x",
            "host:5000/a:b:c",
            "host:5000/a@sha256:00",
            "host:port/a",
            "ho st:1/a",
            "host:123456/a",
            "[::1/x",
        ] {
            let e = bad.parse::<Reference>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadReference, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
        let long = format!("h.io/a:{}", "t".repeat(129));
        assert!(long.parse::<Reference>().is_err());
    }
}
