//! Parsing of `-o` mount options, in the kernel overlayfs / fuse-overlayfs dialect,
//! into a `daemon::MountConfig` (the union's `Config` and the FUSE session's options).
//!
//! Options are comma separated; a backslash escapes the next character, so
//! `\,` and `\:` put commas and colons inside paths, as the kernel allows.

use crate::daemon::MountConfig;
use crate::union::idmap::{IdMap, IdRange};
use crate::union::override_stat::XattrPermissions;
use crate::union::Atime;
use std::path::PathBuf;
use std::time::Duration;

/// The parse in progress: the mount's config, and whether the aufs form was used.
#[derive(Default)]
struct Parse {
    config: MountConfig,
    /// `dirs=A:B:...` was used (A is the upper, the workdir automatic).
    aufs_dirs: bool,
    /// The MS_NOATIME and MS_STRICTATIME flags, as mount(8) sets and clears them.
    noatime: bool,
    strictatime: bool,
    /// fuse-overlayfs' `squash_to_root` (`squash_to_uid=`/`gid=` win over it).
    squash_to_root: bool,
}

impl Parse {
    /// The kernel's rule for the flags (`path_mount`): strictatime wins over
    /// noatime, and relatime is the default.
    fn atime(&self) -> Atime {
        match (self.strictatime, self.noatime) {
            (true, _) => Atime::Always,
            (false, true) => Atime::Never,
            (false, false) => Atime::Relative,
        }
    }
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
/// A value in double quotes (`KEY="..."`) holds commas, as the kernel reads
/// SELinux's context options: containers-storage writes labels with
/// categories as `context="...:s0:c1,c2"`.
fn split_escaped(s: &str, sep: char, keep_escapes: bool) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '"' && sep == ',' && (quoted || cur.ends_with('=')) {
            quoted = !quoted;
            cur.push(c);
        } else if quoted {
            cur.push(c);
        } else if c == '\\' {
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

/// An aufs branch's mode, from its `=MODE` suffix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum BranchMode {
    /// `rw`: the writable branch.
    Writable,
    /// `ro`, `rr`, with or without `+wh`: never written.
    ReadOnly,
    /// No suffix: writable if it is the first branch and no other is `rw`.
    Unmarked,
}

/// `PATH[=MODE]`, escapes still in: a suffix after the last unescaped `=` that
/// holds no `/` must be a mode.
fn parse_branch(key: &str, branch: &str) -> Result<(PathBuf, BranchMode), OptionError> {
    let mut parts = split_escaped(branch, '=', true);
    let mode = match parts.last() {
        Some(m) if parts.len() > 1 && !m.contains('/') => m.clone(),
        _ => return Ok((PathBuf::from(unescape(branch)), BranchMode::Unmarked)),
    };
    parts.pop();
    let path = unescape(&parts.join("="));
    let mode = match mode.as_str() {
        "rw" => BranchMode::Writable,
        "ro" | "rr" | "ro+wh" | "rr+wh" | "wh" => BranchMode::ReadOnly,
        _ => {
            return Err(OptionError(format!(
                "{key}=: branch {branch}: unknown mode '{mode}' (expected rw, ro, rr or ro+wh)"
            )))
        }
    };
    if path.is_empty() {
        return Err(OptionError(format!("{key}=: branch {branch}: empty path")));
    }
    Ok((PathBuf::from(path), mode))
}

/// The aufs branch list: the upper is the branch marked `rw`, else the first
/// one if it has no mark; every other branch is a lower, in the given order.
/// The upper is always on top, as in overlayfs, wherever it stands in the list.
fn parse_branches(key: &str, v: &str) -> Result<(Option<PathBuf>, Vec<PathBuf>), OptionError> {
    let mut branches = Vec::new();
    for b in split_escaped(v, ':', true) {
        if b.is_empty() {
            return Err(OptionError(format!("{key}={v}: empty layer path")));
        }
        branches.push(parse_branch(key, &b)?);
    }
    let writable: Vec<usize> = (0..branches.len())
        .filter(|&i| branches[i].1 == BranchMode::Writable)
        .collect();
    let upper = match writable.as_slice() {
        [] if branches[0].1 == BranchMode::Unmarked => Some(0),
        [] => None,
        [i] => Some(*i),
        _ => {
            return Err(OptionError(format!(
                "{key}={v}: more than one branch is marked rw (strata has one upper layer)"
            )))
        }
    };
    let upper_path = upper.map(|i| branches.remove(i).0);
    if branches.is_empty() {
        return Err(OptionError(format!(
            "{key}={v}: needs at least one read-only branch besides the writable one"
        )));
    }
    Ok((upper_path, branches.into_iter().map(|(p, _)| p).collect()))
}

/// fuse-overlayfs' `uidmapping=`/`gidmapping=` value: `LAYER:MOUNT:COUNT`
/// triples, colon separated (`:0:100000:65536`, with the leading colon
/// containers-storage writes, is the same as `0:100000:65536`).
pub fn parse_id_map(key: &str, value: &str) -> Result<IdMap, OptionError> {
    let fields: Vec<&str> = value
        .strip_prefix(':')
        .unwrap_or(value)
        .split(':')
        .collect();
    let bad = |why: &str| OptionError(format!("{key}={value}: {why}"));
    if !fields.len().is_multiple_of(3) {
        return Err(bad(
            "expected LAYER_ID:MOUNT_ID:COUNT[:LAYER_ID:MOUNT_ID:COUNT...]",
        ));
    }
    let mut ranges = Vec::new();
    for t in fields.chunks(3) {
        let mut n = [0u32; 3];
        for (i, f) in t.iter().enumerate() {
            n[i] = f
                .parse()
                .map_err(|_| bad(&format!("'{f}' is not an id or count")))?;
        }
        ranges.push(IdRange {
            layer: n[0],
            mount: n[1],
            count: n[2],
        });
    }
    IdMap::new(ranges).map_err(|e| bad(&e))
}

fn parse_id(key: &str, value: &str) -> Result<u32, OptionError> {
    value
        .parse()
        .map_err(|_| OptionError(format!("{key}={value}: expected a numeric id")))
}

/// A fuse-overlayfs option that strata does not implement: refused, by name.
fn unsupported(opt: &str, why: &str) -> OptionError {
    OptionError(format!(
        "{opt}: a fuse-overlayfs option strata does not support ({why})"
    ))
}

fn parse_bool_value(key: &str, value: &str) -> Result<bool, OptionError> {
    match value {
        "on" | "1" | "true" | "yes" => Ok(true),
        "off" | "0" | "false" | "no" => Ok(false),
        _ => Err(OptionError(format!("{key}={value}: expected on or off"))),
    }
}

/// Parses one or more `-o` strings.
pub fn parse<S: AsRef<str>>(groups: &[S]) -> Result<MountConfig, OptionError> {
    let mut p = Parse::default();
    for group in groups {
        for opt in split_escaped(group.as_ref(), ',', true) {
            if opt.is_empty() {
                continue;
            }
            p.apply(&opt)?;
        }
    }
    p.config.union.atime = p.atime();
    if p.squash_to_root {
        let ids = &mut p.config.union.ids;
        ids.squash_uid = ids.squash_uid.or(Some(0));
        ids.squash_gid = ids.squash_gid.or(Some(0));
    }
    let u = &p.config.union;
    if u.lowers.is_empty() {
        return Err(OptionError(
            "no layers: give lowerdir=L1[:L2...] (or dirs=RW:RO...)".into(),
        ));
    }
    if u.work.is_some() && u.upper.is_none() {
        return Err(OptionError("workdir= needs upperdir=".into()));
    }
    if u.upper.is_some() && u.work.is_none() && !p.aufs_dirs {
        return Err(OptionError("upperdir= needs workdir=".into()));
    }
    Ok(p.config)
}

impl Parse {
    fn apply(&mut self, opt: &str) -> Result<(), OptionError> {
        let aufs_dirs = self.aufs_dirs;
        let u = &mut self.config.union;
        let session = &mut self.config.session;
        // aufs spells its branch list `br:B1:B2` as well as `br=B1:B2`.
        let opt = match opt.strip_prefix("br:") {
            Some(rest) => format!("br={rest}"),
            None => opt.to_string(),
        };
        let opt = opt.as_str();
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
                if aufs_dirs {
                    return Err(OptionError(
                        "lowerdir= cannot be combined with dirs=".into(),
                    ));
                }
                u.lowers = parse_dir_list(key, &need(value)?)?;
            }
            "upperdir" => {
                if aufs_dirs {
                    return Err(OptionError(
                        "upperdir= cannot be combined with dirs=".into(),
                    ));
                }
                u.upper = Some(PathBuf::from(unescape(&need(value)?)));
            }
            "workdir" => u.work = Some(PathBuf::from(unescape(&need(value)?))),
            "dirs" | "br" => {
                if u.upper.is_some() || !u.lowers.is_empty() {
                    return Err(OptionError(format!(
                        "{key}= cannot be combined with upperdir=/lowerdir= or another {key}="
                    )));
                }
                let v = need(value)?;
                let (upper, lowers) = parse_branches(key, &v)?;
                u.upper = upper;
                u.lowers = lowers;
                self.aufs_dirs = true;
            }
            "userxattr" => u.userxattr = true,
            "allow_other" => session.allow_other = true,
            "allow_root" => session.allow_root = true,
            "default_permissions" => {} // always on: the kernel checks the caller's credentials
            "ro" => u.read_only = true,
            "rw" => u.read_only = false,
            "suid" => session.suid = Some(true),
            "nosuid" => session.suid = Some(false),
            "dev" => session.dev = Some(true),
            "nodev" => session.dev = Some(false),
            "exec" => session.exec = Some(true),
            "noexec" => session.exec = Some(false),
            // The atime options set and clear flags as mount(8) does; the
            // kernel's rule then decides (see `Parse::atime`). The daemon
            // updates atime itself: the kernel never does on FUSE.
            "noatime" => self.noatime = true,
            "atime" => self.noatime = false,
            "strictatime" => self.strictatime = true,
            "nostrictatime" => self.strictatime = false,
            "relatime" | "norelatime" => {}
            "diratime" => u.dir_atime = true,
            "nodiratime" => u.dir_atime = false,
            "lazytime" => session.lazytime = true,
            "nolazytime" => session.lazytime = false,
            "sync" => {
                session.sync = true;
                u.sync_dirs = true;
            }
            "async" => {
                session.sync = false;
                u.sync_dirs = session.dirsync;
            }
            "dirsync" => {
                session.dirsync = true;
                u.sync_dirs = true;
            }
            "volatile" => u.volatile = true,
            "redirect_dir" => {
                let v = need(value)?;
                u.redirect_dir = match v.as_str() {
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
                u.ttl = v
                    .parse()
                    .ok()
                    .and_then(|t: f64| Duration::try_from_secs_f64(t).ok())
                    .ok_or_else(|| OptionError(format!("timeout={v}: expected seconds")))?;
            }
            "threads" => {
                let v = need(value)?;
                let n: usize = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1 && *n <= 256)
                    .ok_or_else(|| OptionError(format!("threads={v}: expected 1 to 256")))?;
                session.threads = Some(n);
            }
            "fsname" => session.fsname = Some(need(value)?),
            "metacopy" => {
                let v = need(value)?;
                u.metacopy = parse_bool_value(key, &v)?;
            }
            "writeback" => {
                let v = need(value)?;
                u.writeback = parse_bool_value(key, &v)?;
            }
            "passthrough" => {
                let v = need(value)?;
                u.passthrough = parse_bool_value(key, &v)?;
            }
            // podman passes an SELinux label; a FUSE mount without SELinux
            // support in the kernel has no use for it.
            "context" => {
                let v = need(value)?;
                log::debug!("context={v}: ignored (no SELinux labels on this FUSE mount)");
            }
            // fuse-overlayfs' options, as containers-storage passes them.
            "uidmapping" => u.ids.uids = parse_id_map(key, &need(value)?)?,
            "gidmapping" => u.ids.gids = parse_id_map(key, &need(value)?)?,
            "squash_to_root" => self.squash_to_root = true,
            "squash_to_uid" => u.ids.squash_uid = Some(parse_id(key, &need(value)?)?),
            "squash_to_gid" => u.ids.squash_gid = Some(parse_id(key, &need(value)?)?),
            "static_nlink" => u.static_nlink = true,
            "xattr_permissions" => {
                let v = need(value)?;
                u.xattr_permissions = match v.as_str() {
                    "0" => None,
                    "1" => Some(XattrPermissions::Privileged),
                    "2" => Some(XattrPermissions::User),
                    _ => {
                        return Err(OptionError(format!(
                            "xattr_permissions={v}: expected 0, 1 or 2"
                        )))
                    }
                };
            }
            "noacl" => u.posix_acl = false,
            "threaded" => {
                let v = need(value)?;
                if !parse_bool_value(key, &v)? {
                    session.threads = Some(1);
                }
            }
            // strata's st_ino is xino's already: the layer in the high bits,
            // stable for the life of the mount, whatever the devices.
            "xino" => {
                let v = need(value)?;
                if !matches!(v.as_str(), "on" | "off" | "auto") {
                    return Err(OptionError(format!("xino={v}: expected on, off or auto")));
                }
            }
            "ino32_t" => {
                return Err(unsupported(
                    opt,
                    "st_ino is 64 bits: the layer is kept in its high bits",
                ))
            }
            "fast_ino" | "noxattrs" => {
                let v = need(value)?;
                if parse_bool_value(key, &v)? {
                    let why = if key == "fast_ino" {
                        "st_ino always comes from a stat of the object"
                    } else {
                        "xattrs are always on"
                    };
                    return Err(unsupported(opt, why));
                }
            }
            "plugins" => return Err(unsupported(opt, "no layer plugins")),
            "fsync" => {
                let v = need(value)?;
                u.volatile = !parse_bool_value(key, &v)?;
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
        let o = parse(&[r"lowerdir=/a\:b:/c,upperdir=/u,workdir=/w"])
            .unwrap()
            .union;
        assert_eq!(o.lowers, vec![PathBuf::from("/a:b"), PathBuf::from("/c")]);
        assert_eq!(o.upper, Some(PathBuf::from("/u")));
        assert_eq!(o.work, Some(PathBuf::from("/w")));
        assert!(o.redirect_dir);
    }

    #[test]
    fn atime_flags_resolve_as_the_kernel_does() {
        let rule = |o: &str| parse(&["lowerdir=/l", o]).unwrap().union.atime;
        assert_eq!(rule("rw"), Atime::Relative);
        assert_eq!(rule("noatime"), Atime::Never);
        assert_eq!(rule("noatime,relatime"), Atime::Never);
        assert_eq!(rule("noatime,atime"), Atime::Relative);
        assert_eq!(rule("strictatime,noatime"), Atime::Always);
        assert_eq!(rule("noatime,strictatime"), Atime::Always);
        assert_eq!(rule("strictatime,nostrictatime"), Atime::Relative);
        let c = parse(&["lowerdir=/l", "nodiratime,dirsync"]).unwrap();
        assert!(!c.union.dir_atime && c.union.sync_dirs && c.session.dirsync);
        let c = parse(&["lowerdir=/l", "sync,async,lazytime"]).unwrap();
        assert!(!c.union.sync_dirs && !c.session.sync && c.session.lazytime);
    }

    #[test]
    fn quoted_values_hold_commas() {
        let o = parse(&[r#"lowerdir=/l,context="system_u:object_r:x:s0:c1,c2",ro"#]).unwrap();
        assert!(o.union.read_only);
        let o = parse(&[r#"lowerdir=/a"b,c"#]);
        assert!(o.unwrap_err().0.contains("'c'"));
    }

    #[test]
    fn escaped_comma_in_path() {
        let o = parse(&[r"lowerdir=/a\,b"]).unwrap().union;
        assert_eq!(o.lowers, vec![PathBuf::from("/a,b")]);
    }

    #[test]
    fn aufs_dirs_form() {
        let o = parse(&["dirs=./A:./B=ro"]).unwrap().union;
        assert_eq!(o.upper, Some(PathBuf::from("./A")));
        assert_eq!(o.lowers, vec![PathBuf::from("./B")]);
        assert!(o.work.is_none());
    }

    #[test]
    fn aufs_branch_modes() {
        let o = parse(&["dirs=/ro1=ro:/rw=rw"]).unwrap().union;
        assert_eq!(o.upper, Some(PathBuf::from("/rw")));
        assert_eq!(o.lowers, vec![PathBuf::from("/ro1")]);
        let o = parse(&["br:/a:/b=rr:/c=ro+wh"]).unwrap().union;
        assert_eq!(o.upper, Some(PathBuf::from("/a")));
        assert_eq!(o.lowers, vec![PathBuf::from("/b"), PathBuf::from("/c")]);
        let o = parse(&["br=/a=ro:/b"]).unwrap().union;
        assert_eq!(o.upper, None, "a first branch marked ro is never written");
        assert_eq!(o.lowers, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        let o = parse(&[r"dirs=/x\=y:/z"]).unwrap().union;
        assert_eq!(o.upper, Some(PathBuf::from("/x=y")));
        let o = parse(&["dirs=/p/a=b/c:/z"]).unwrap().union;
        assert_eq!(o.upper, Some(PathBuf::from("/p/a=b/c")));
        for bad in [
            "dirs=/a=rw:/b=rw",
            "dirs=/a=rx:/b",
            "dirs=/only",
            "dirs==ro:/b",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad}");
        }
        let e = parse(&["dirs=/a=rw:/b=rw"]).unwrap_err();
        assert!(e.0.contains("more than one branch"), "{e}");
    }

    #[test]
    fn several_groups_merge() {
        let o = parse(&["lowerdir=/l", "ro,allow_other,noatime"]).unwrap();
        assert!(o.union.read_only && o.session.allow_other && o.union.atime == Atime::Never);
    }

    #[test]
    fn defaults_are_the_unions() {
        let o = parse(&["lowerdir=/l"]).unwrap();
        let want = crate::union::Config {
            lowers: vec![PathBuf::from("/l")],
            ..Default::default()
        };
        assert_eq!(o.union, want);
        assert!(!o.union.metacopy && o.union.passthrough && o.union.writeback);
        assert_eq!(o.union.ttl, crate::union::DEFAULT_TTL);
    }

    #[test]
    fn timeout_in_seconds() {
        let o = parse(&["lowerdir=/l,timeout=0.5"]).unwrap().union;
        assert_eq!(o.ttl, Duration::from_millis(500));
        for bad in ["abc", "-1", "inf", "nan", "1e300"] {
            assert!(
                parse(&[format!("lowerdir=/l,timeout={bad}")]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn id_mappings_as_containers_storage_writes_them() {
        let c = parse(&[
            "lowerdir=/l,uidmapping=:0:100000:65536,gidmapping=0:200000:1:1:300000:10,,volatile",
        ])
        .unwrap()
        .union;
        assert_eq!(c.ids.uids.to_mount(0), 100000);
        assert_eq!(c.ids.uids.to_layer(165535), 65535);
        assert_eq!(c.ids.uids.to_mount(65536), crate::union::idmap::OVERFLOW_ID);
        assert_eq!(c.ids.gids.to_mount(0), 200000);
        assert_eq!(c.ids.gids.to_mount(5), 300004);
        assert_eq!(c.ids.gids.to_layer(300009), 10);
        assert!(c.volatile);
        for bad in [
            "uidmapping=0:100000",
            "uidmapping=0:100000:65536:1",
            "uidmapping=a:1:1",
            "uidmapping=0:1:-1",
            "uidmapping=0::1:1",
            "uidmapping=0:100:10:5:500:1",
            "gidmapping=0:1:0",
            "uidmapping=",
        ] {
            let e = parse(&[format!("lowerdir=/l,{bad}")]).unwrap_err();
            assert!(e.0.contains(bad.split('=').next().unwrap()), "{bad}: {e}");
        }
    }

    #[test]
    fn squash_options() {
        let ids = |o: &str| parse(&["lowerdir=/l", o]).unwrap().union.ids;
        let i = ids("squash_to_root");
        assert_eq!((i.squash_uid, i.squash_gid), (Some(0), Some(0)));
        let i = ids("squash_to_uid=7,squash_to_gid=8");
        assert_eq!((i.squash_uid, i.squash_gid), (Some(7), Some(8)));
        // As fuse-overlayfs: the given id wins over root, whatever the order.
        let i = ids("squash_to_uid=9,squash_to_root");
        assert_eq!((i.squash_uid, i.squash_gid), (Some(9), Some(0)));
        assert!(parse(&["lowerdir=/l,squash_to_uid=x"]).is_err());
    }

    #[test]
    fn fuse_overlayfs_options() {
        let c =
            parse(&["lowerdir=/l,noacl,static_nlink,xino=auto,threaded=0,fast_ino=0,noxattrs=0"])
                .unwrap();
        assert!(!c.union.posix_acl && c.union.static_nlink);
        let x = |o: &str| parse(&["lowerdir=/l", o]).map(|c| c.union.xattr_permissions);
        assert_eq!(x("xattr_permissions=2"), Ok(Some(XattrPermissions::User)));
        assert_eq!(
            x("xattr_permissions=1"),
            Ok(Some(XattrPermissions::Privileged))
        );
        assert_eq!(x("xattr_permissions=0"), Ok(None));
        assert!(x("xattr_permissions=3").is_err());
        assert_eq!(c.session.threads, Some(1));
        let c = parse(&["lowerdir=/l,threaded=1,context=\"system_u:object_r:x:s0\""]).unwrap();
        assert!(c.union.posix_acl && c.session.threads.is_none());
        for (bad, says) in [
            (
                "ino32_t",
                "ino32_t: a fuse-overlayfs option strata does not support",
            ),
            ("fast_ino=1", "fast_ino=1: a fuse-overlayfs option"),
            ("noxattrs=1", "noxattrs=1: a fuse-overlayfs option"),
            ("plugins=/p.so", "plugins=/p.so: a fuse-overlayfs option"),
            ("xino=maybe", "xino=maybe: expected"),
        ] {
            let e = parse(&[format!("lowerdir=/l,{bad}")]).unwrap_err();
            assert!(e.0.starts_with(says), "{bad}: {e}");
        }
    }

    #[test]
    fn rejects_unknown_and_incomplete() {
        assert!(parse(&["lowerdir=/l,frobnicate"])
            .unwrap_err()
            .0
            .contains("frobnicate"));
        assert!(parse(&["upperdir=/u,workdir=/w"]).is_err());
        assert!(parse(&["lowerdir=/l,upperdir=/u"]).is_err());
        assert!(parse(&["lowerdir=/a::/b"]).is_err());
        assert!(parse(&["dirs=/only"]).is_err());
    }
}
