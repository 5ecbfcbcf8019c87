//! Platforms (`os/architecture[/variant]`) and choosing one from an index.

use super::error::{err, Error, ErrorKind};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    /// `None` in a request matches any variant (see [`Platform::matches`]).
    pub variant: Option<String>,
}

impl Default for Platform {
    /// linux/amd64.
    fn default() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;

    /// `os/architecture` or `os/architecture/variant`.
    fn from_str(s: &str) -> Result<Platform, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        let good = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| good(p)) {
            return Err(err(
                ErrorKind::BadReference,
                format!("platform {s:?}: expected OS/ARCHITECTURE[/VARIANT], e.g. linux/arm64/v8"),
            ));
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl Platform {
    /// Whether an index entry for `entry` serves a request for `self`. The OS and
    /// architecture must be equal. A request without a variant takes any variant (as
    /// podman does for `--platform linux/arm64`); a request with one needs the same,
    /// except that arm64 entries without a variant count as `v8` (their default).
    pub fn matches(&self, entry: &Platform) -> bool {
        if self.os != entry.os || self.architecture != entry.architecture {
            return false;
        }
        match (&self.variant, &entry.variant) {
            (None, _) => true,
            (Some(want), Some(have)) => want == have,
            (Some(want), None) => self.architecture == "arm64" && want == "v8",
        }
    }

    /// The index among `entries` (in index order, `None` for an entry without a
    /// platform) that serves `self`: for a variant-less request an entry without a
    /// variant is preferred, else the first that matches.
    pub fn choose(&self, entries: &[Option<Platform>]) -> Option<usize> {
        let matching: Vec<usize> = entries
            .iter()
            .enumerate()
            .filter(|(_, p)| p.as_ref().is_some_and(|p| self.matches(p)))
            .map(|(i, _)| i)
            .collect();
        matching
            .iter()
            .copied()
            .find(|&i| entries[i].as_ref().is_some_and(|p| p.variant.is_none()))
            .or_else(|| matching.first().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(Platform::default().to_string(), "linux/amd64");
        assert_eq!(p("linux/arm64/v8").variant.as_deref(), Some("v8"));
        assert_eq!(p("linux/arm/v7").to_string(), "linux/arm/v7");
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64", ""] {
            let e = bad.parse::<Platform>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadReference, "{bad}");
        }
    }

    #[test]
    fn variant_matching() {
        assert!(p("linux/arm").matches(&p("linux/arm/v7")));
        assert!(!p("linux/arm/v6").matches(&p("linux/arm/v7")));
        assert!(p("linux/arm64/v8").matches(&p("linux/arm64")));
        assert!(!p("linux/arm/v7").matches(&p("linux/arm")));
        assert!(!p("linux/amd64").matches(&p("windows/amd64")));
        assert!(!p("linux/amd64").matches(&p("linux/arm64")));
    }

    #[test]
    fn choose_prefers_variantless_then_first() {
        let entries = vec![
            Some(p("linux/arm/v6")),
            None,
            Some(p("linux/arm/v7")),
            Some(p("linux/amd64")),
        ];
        assert_eq!(p("linux/arm").choose(&entries), Some(0));
        assert_eq!(p("linux/arm/v7").choose(&entries), Some(2));
        assert_eq!(p("linux/amd64").choose(&entries), Some(3));
        assert_eq!(p("linux/s390x").choose(&entries), None);
        let entries = vec![Some(p("linux/amd64/v3")), Some(p("linux/amd64"))];
        assert_eq!(Platform::default().choose(&entries), Some(1));
    }
}
