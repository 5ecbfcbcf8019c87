//! Parsing of `-o` mount options, in the kernel overlayfs / fuse-overlayfs dialect.
//!
//! Options are comma separated; a backslash escapes the next character, so
//! `\,` and `\:` put commas and colons inside paths, as the kernel allows.

use std::path::PathBuf;

/// Everything `-o` can say. Layer paths are as given; they are resolved and
/// checked by `union::layers::LayerStack::open`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MountOptions {
    /// Lower layers, top first.
    pub lowerdirs: Vec<PathBuf>,
    pub upperdir: Option<PathBuf>,
    pub workdir: Option<PathBuf>,
    /// The aufs form `dirs=A:B:...` was used (A is the upper, the workdir automatic).
    pub aufs_dirs: bool,
    /// Use `user.overlay.*` xattrs even when `trusted.*` would work.
    pub userxattr: bool,
    pub allow_other: bool,
    pub allow_root: bool,
    pub read_only: bool,
    pub suid: Option<bool>,
    pub dev: Option<bool>,
    pub exec: Option<bool>,
    pub noatime: bool,
    /// Entry/attribute cache timeout in seconds.
    pub timeout: Option<f64>,
    /// Skip fsync of the upper (like overlayfs `volatile`).
    pub volatile: bool,
    /// Record directory renames with `overlay.redirect` (default on).
    pub redirect_dir: bool,
    pub fsname: Option<String>,
    /// Worker threads serving FUSE requests.
    pub threads: Option<usize>,
    /// FUSE passthrough for regular files (None: when the kernel allows it).
    pub passthrough: Option<bool>,
    /// The kernel's writeback cache when passthrough is not in use.
    pub writeback: Option<bool>,
    /// Metadata-only copy-up (default on).
    pub metacopy: Option<bool>,
}

/// A rejected option, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionError(pub String);

impl std::fmt::Display for OptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits `s` at unescaped `sep`, keeping escapes (for a later split) when `keep_escapes`.
fn split_escaped(s: &str, sep: char, keep_escapes: bool) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                if keep_escapes {
                    cur.push('\\');
                }
                cur.push(next);
            }
        } else if c == sep {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

fn unescape(s: &str) -> String {
    split_escaped(s, '\0', false).concat()
}

fn parse_dir_list(key: &str, value: &str) -> Result<Vec<PathBuf>, OptionError> {
    let dirs: Vec<PathBuf> = split_escaped(value, ':', false)
        .into_iter()
        .map(PathBuf::from)
        .collect();
    if dirs.iter().any(|d| d.as_os_str().is_empty()) {
        return Err(OptionError(format!("{key}={value}: empty layer path")));
    }
    Ok(dirs)
}

fn parse_bool_value(key: &str, value: &str) -> Result<bool, OptionError> {
    match value {
        "on" | "1" | "true" | "yes" => Ok(true),
        "off" | "0" | "false" | "no" => Ok(false),
        _ => Err(OptionError(format!("{key}={value}: expected on or off"))),
    }
}

impl MountOptions {
    /// Parses one or more `-o` strings.
    pub fn parse<S: AsRef<str>>(groups: &[S]) -> Result<MountOptions, OptionError> {
        let mut o = MountOptions {
            redirect_dir: true,
            ..Default::default()
        };
        for group in groups {
            for opt in split_escaped(group.as_ref(), ',', true) {
                if opt.is_empty() {
                    continue;
                }
                o.apply(&opt)?;
            }
        }
        if o.lowerdirs.is_empty() {
            return Err(OptionError(
                "no layers: give lowerdir=L1[:L2...] (or dirs=RW:RO...)".into(),
            ));
        }
        if o.workdir.is_some() && o.upperdir.is_none() {
            return Err(OptionError("workdir= needs upperdir=".into()));
        }
        if o.upperdir.is_some() && o.workdir.is_none() && !o.aufs_dirs {
            return Err(OptionError("upperdir= needs workdir=".into()));
        }
        Ok(o)
    }

    fn apply(&mut self, opt: &str) -> Result<(), OptionError> {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        let need = |v: Option<&str>| -> Result<String, OptionError> {
            match v {
                Some(v) if !v.is_empty() => Ok(v.to_string()),
                _ => Err(OptionError(format!("option {key} needs a value"))),
            }
        };
        match key {
            "lowerdir" => {
                if self.aufs_dirs {
                    return Err(OptionError(
                        "lowerdir= cannot be combined with dirs=".into(),
                    ));
                }
                self.lowerdirs = parse_dir_list(key, &need(value)?)?;
            }
            "upperdir" => {
                if self.aufs_dirs {
                    return Err(OptionError(
                        "upperdir= cannot be combined with dirs=".into(),
                    ));
                }
                self.upperdir = Some(PathBuf::from(unescape(&need(value)?)));
            }
            "workdir" => self.workdir = Some(PathBuf::from(unescape(&need(value)?))),
            "dirs" => {
                if self.upperdir.is_some() || !self.lowerdirs.is_empty() {
                    return Err(OptionError(
                        "dirs= cannot be combined with upperdir=/lowerdir=".into(),
                    ));
                }
                let v = need(value)?;
                // aufs branches may carry "=rw"/"=ro" suffixes; the first is the writable one.
                let mut dirs = parse_dir_list(key, &v)?;
                for d in dirs.iter_mut() {
                    let s = d.to_string_lossy().to_string();
                    if let Some(stripped) = s.strip_suffix("=rw").or_else(|| s.strip_suffix("=ro"))
                    {
                        *d = PathBuf::from(stripped);
                    }
                }
                if dirs.len() < 2 {
                    return Err(OptionError(format!(
                        "dirs={v}: needs a writable branch and at least one read-only branch"
                    )));
                }
                self.upperdir = Some(dirs.remove(0));
                self.lowerdirs = dirs;
                self.aufs_dirs = true;
            }
            "userxattr" => self.userxattr = true,
            "allow_other" => self.allow_other = true,
            "allow_root" => self.allow_root = true,
            "default_permissions" => {} // always on: the kernel checks the caller's credentials
            "ro" => self.read_only = true,
            "rw" => self.read_only = false,
            "suid" => self.suid = Some(true),
            "nosuid" => self.suid = Some(false),
            "dev" => self.dev = Some(true),
            "nodev" => self.dev = Some(false),
            "exec" => self.exec = Some(true),
            "noexec" => self.exec = Some(false),
            "noatime" => self.noatime = true,
            "atime" | "relatime" => self.noatime = false,
            "volatile" => self.volatile = true,
            "redirect_dir" => {
                let v = need(value)?;
                self.redirect_dir = match v.as_str() {
                    "on" | "follow" => true,
                    "off" | "nofollow" => false,
                    _ => {
                        return Err(OptionError(format!(
                            "redirect_dir={v}: expected on, follow, nofollow or off"
                        )))
                    }
                };
            }
            "timeout" => {
                let v = need(value)?;
                let t: f64 = v
                    .parse()
                    .ok()
                    .filter(|t: &f64| t.is_finite() && *t >= 0.0)
                    .ok_or_else(|| OptionError(format!("timeout={v}: expected seconds")))?;
                self.timeout = Some(t);
            }
            "threads" => {
                let v = need(value)?;
                let n: usize = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1 && *n <= 256)
                    .ok_or_else(|| OptionError(format!("threads={v}: expected 1 to 256")))?;
                self.threads = Some(n);
            }
            "fsname" => self.fsname = Some(need(value)?),
            "metacopy" => {
                let v = need(value)?;
                self.metacopy = Some(parse_bool_value(key, &v)?);
            }
            "writeback" => {
                let v = need(value)?;
                self.writeback = Some(parse_bool_value(key, &v)?);
            }
            "passthrough" => {
                let v = need(value)?;
                self.passthrough = Some(parse_bool_value(key, &v)?);
            }
            // podman passes an SELinux label; FUSE mounts here have no SELinux.
            "context" => {
                need(value)?;
            }
            "fsync" => {
                let v = need(value)?;
                self.volatile = !parse_bool_value(key, &v)?;
            }
            _ => return Err(OptionError(format!("unknown option '{opt}'"))),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdir_order_and_escapes() {
        let o = MountOptions::parse(&[r"lowerdir=/a\:b:/c,upperdir=/u,workdir=/w"]).unwrap();
        assert_eq!(
            o.lowerdirs,
            vec![PathBuf::from("/a:b"), PathBuf::from("/c")]
        );
        assert_eq!(o.upperdir, Some(PathBuf::from("/u")));
        assert_eq!(o.workdir, Some(PathBuf::from("/w")));
        assert!(o.redirect_dir);
    }

    #[test]
    fn escaped_comma_in_path() {
        let o = MountOptions::parse(&[r"lowerdir=/a\,b"]).unwrap();
        assert_eq!(o.lowerdirs, vec![PathBuf::from("/a,b")]);
    }

    #[test]
    fn aufs_dirs_form() {
        let o = MountOptions::parse(&["dirs=./A:./B=ro"]).unwrap();
        assert_eq!(o.upperdir, Some(PathBuf::from("./A")));
        assert_eq!(o.lowerdirs, vec![PathBuf::from("./B")]);
        assert!(o.aufs_dirs);
        assert!(o.workdir.is_none());
    }

    #[test]
    fn several_groups_merge() {
        let o = MountOptions::parse(&["lowerdir=/l", "ro,allow_other,noatime"]).unwrap();
        assert!(o.read_only && o.allow_other && o.noatime);
    }

    #[test]
    fn rejects_unknown_and_incomplete() {
        assert!(MountOptions::parse(&["lowerdir=/l,frobnicate"])
            .unwrap_err()
            .0
            .contains("frobnicate"));
        assert!(MountOptions::parse(&["upperdir=/u,workdir=/w"]).is_err());
        assert!(MountOptions::parse(&["lowerdir=/l,upperdir=/u"]).is_err());
        assert!(MountOptions::parse(&["lowerdir=/a::/b"]).is_err());
        assert!(MountOptions::parse(&["lowerdir=/l,timeout=abc"]).is_err());
        assert!(MountOptions::parse(&["dirs=/only"]).is_err());
    }
}
