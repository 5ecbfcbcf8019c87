//! Resource limits with cgroups. Each controller is taken from cgroup v2 when the
//! unified hierarchy offers it, otherwise from its v1 hierarchy (hybrid machines such as
//! Debian 12 without systemd). The container's cgroup is always a child of strata's own
//! cgroup in that hierarchy, is joined by the container before it unshares its cgroup
//! namespace, and is removed at the end.

use super::error::write_file;
use super::error::{Error, Result};
use super::procview;
use super::spec::{Limits, CPU_PERIOD_US};
use std::path::{Path, PathBuf};

/// The controllers strata sets limits with.
pub const CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// Controllers joined only to count what the container uses, for the /proc view (no
/// limits are written there; a hierarchy that refuses them is skipped quietly).
pub const ACCOUNTING: [&str; 3] = ["cpuacct", "blkio", "io"];

/// One cgroup directory holding some controllers: a v1 or a v2 backend.
pub trait Backend {
    fn dir(&self) -> &Path;
    fn version(&self) -> u8;
    /// Writes the limits this group is responsible for.
    fn apply(&self, limits: &Limits) -> Result<()>;
    /// Does this group hold the counters of `ctl` (v1 names, as in `CONTROLLERS`,
    /// `ACCOUNTING` and "cpuset")?
    fn offers(&self, ctl: &str) -> bool;
}

struct V1 {
    dir: PathBuf,
    controllers: Vec<String>,
}

struct V2 {
    dir: PathBuf,
}

fn set(dir: &Path, file: &str, value: impl ToString) -> Result<()> {
    write_file(&dir.join(file), &value.to_string())
}

impl Backend for V1 {
    fn dir(&self) -> &Path {
        &self.dir
    }
    fn version(&self) -> u8 {
        1
    }
    fn apply(&self, l: &Limits) -> Result<()> {
        let has = |c: &str| self.controllers.iter().any(|x| x == c);
        if let (true, Some(m)) = (has("memory"), l.memory_bytes) {
            set(&self.dir, "memory.limit_in_bytes", m)?;
            // Without this, swap would let the container grow past the limit.
            if self.dir.join("memory.memsw.limit_in_bytes").exists() {
                set(&self.dir, "memory.memsw.limit_in_bytes", m)?;
            }
        }
        if let (true, Some(q)) = (has("cpu"), l.cpu_quota_us) {
            set(&self.dir, "cpu.cfs_period_us", CPU_PERIOD_US)?;
            set(&self.dir, "cpu.cfs_quota_us", q)?;
        }
        if let (true, Some(p)) = (has("pids"), l.pids) {
            set(&self.dir, "pids.max", p)?;
        }
        Ok(())
    }
    fn offers(&self, ctl: &str) -> bool {
        self.controllers.iter().any(|x| x == ctl)
    }
}

impl Backend for V2 {
    fn dir(&self) -> &Path {
        &self.dir
    }
    fn version(&self) -> u8 {
        2
    }
    fn apply(&self, l: &Limits) -> Result<()> {
        let has = |f: &str| self.dir.join(f).exists();
        if let Some(m) = l.memory_bytes.filter(|_| has("memory.max")) {
            set(&self.dir, "memory.max", m)?;
            if has("memory.swap.max") {
                set(&self.dir, "memory.swap.max", 0)?;
            }
        }
        if let Some(q) = l.cpu_quota_us.filter(|_| has("cpu.max")) {
            set(&self.dir, "cpu.max", format!("{q} {CPU_PERIOD_US}"))?;
        }
        if let Some(p) = l.pids.filter(|_| has("pids.max")) {
            set(&self.dir, "pids.max", p)?;
        }
        Ok(())
    }
    fn offers(&self, ctl: &str) -> bool {
        let file = match ctl {
            "memory" => "memory.current",
            "cpu" => "cpu.max",
            "cpuacct" => "cpu.stat",
            "blkio" | "io" => "io.stat",
            "cpuset" => "cpuset.cpus.effective",
            "pids" => "pids.max",
            _ => return false,
        };
        self.dir.join(file).exists()
    }
}

/// Where each hierarchy is mounted and where strata sits in it.
#[derive(Debug, Default, PartialEq)]
pub struct Layout {
    /// (mount point, strata's path) of cgroup2.
    pub v2: Option<(PathBuf, String)>,
    /// (mount point, controllers, strata's path) per v1 hierarchy.
    pub v1: Vec<(PathBuf, Vec<String>, String)>,
}

/// Parses /proc/self/mountinfo and /proc/self/cgroup.
pub fn parse_layout(mountinfo: &str, proc_cgroup: &str) -> Layout {
    let mut v2_mount = None;
    let mut v1_mounts: Vec<(PathBuf, Vec<String>)> = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 || pre[3] != "/" {
            continue;
        }
        let mnt = PathBuf::from(pre[4].replace("\\040", " "));
        match post[0] {
            "cgroup2" if v2_mount.is_none() => v2_mount = Some(mnt),
            "cgroup" => {
                let ctls: Vec<String> = post[2]
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('='))
                    .map(String::from)
                    .collect();
                if !ctls.is_empty() && !v1_mounts.iter().any(|(_, c)| *c == ctls) {
                    v1_mounts.push((mnt, ctls));
                }
            }
            _ => {}
        }
    }
    let mut layout = Layout::default();
    for line in proc_cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if ctls.is_empty() {
            if let Some(m) = &v2_mount {
                layout.v2 = Some((m.clone(), path.to_string()));
            }
            continue;
        }
        let ctls: Vec<String> = ctls.split(',').map(String::from).collect();
        if let Some((m, c)) = v1_mounts.iter().find(|(_, c)| *c == ctls) {
            layout.v1.push((m.clone(), c.clone(), path.to_string()));
        }
    }
    layout
}

fn under(mount: &Path, own: &str) -> PathBuf {
    mount.join(own.trim_start_matches('/'))
}

/// Where a controller comes from: ("v2", base dir) or ("v1", base dir, hierarchy controllers).
#[derive(Debug, PartialEq)]
pub enum Source {
    V2(PathBuf),
    V1(PathBuf, Vec<String>),
}

/// Picks v2 when the unified hierarchy offers the controller, else its v1 hierarchy.
pub fn choose(layout: &Layout, controller: &str, v2_available: &[String]) -> Option<Source> {
    if let Some((m, own)) = &layout.v2 {
        if v2_available.iter().any(|c| c == controller) {
            return Some(Source::V2(under(m, own)));
        }
    }
    layout
        .v1
        .iter()
        .find(|(_, c, _)| c.iter().any(|x| x == controller))
        .map(|(m, c, own)| Source::V1(under(m, own), c.clone()))
}

/// The container's cgroups (one per hierarchy used). Removed by `remove`.
pub struct Cgroups {
    groups: Vec<Box<dyn Backend>>,
    /// cgroup v2 when strata's own cgroup held only strata: strata moved itself into
    /// `leaf` (a child of `home`) so that `home` may enable controllers for its children
    /// (the no-internal-processes rule). (home, leaf); undone at the end.
    moved: Option<(PathBuf, PathBuf)>,
    /// strata's own cpuset cgroup (the container inherits it), for the /proc view.
    cpuset: Option<procview::Dir>,
}

impl Cgroups {
    /// Where the /proc view reads the container's counters.
    pub fn view_sources(&self) -> procview::Sources {
        let find = |ctl: &str| {
            self.groups
                .iter()
                .find(|g| g.offers(ctl))
                .map(|g| procview::Dir {
                    v2: g.version() == 2,
                    path: g.dir().to_path_buf(),
                })
        };
        let tasks = self.groups.first().map(|g| {
            g.dir().join(if g.version() == 2 {
                "cgroup.threads"
            } else {
                "tasks"
            })
        });
        procview::Sources {
            memory: find("memory"),
            cpu: find("cpu"),
            cpuacct: find("cpuacct"),
            cpuset: find("cpuset").or_else(|| self.cpuset.clone()),
            blkio: find("blkio").or_else(|| find("io")),
            tasks,
        }
    }

    /// The `cgroup.procs` files the container writes itself into.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.groups
            .iter()
            .map(|g| g.dir().join("cgroup.procs"))
            .collect()
    }

    /// Every directory strata made, in removal order.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.groups.iter().map(|g| g.dir().to_path_buf()).collect();
        v.extend(self.moved.as_ref().map(|(_, leaf)| leaf.clone()));
        v
    }

    /// Where processes forked from strata must move back to before `dirs` can go.
    pub fn home_procs(&self) -> Option<PathBuf> {
        self.moved
            .as_ref()
            .map(|(home, _)| home.join("cgroup.procs"))
    }

    /// Removes the directories (the container must be gone).
    pub fn remove(&self) {
        if let Some(home) = self.home_procs() {
            if let Err(e) = write_file(&home, "0") {
                log::warn!("{e}");
            }
        }
        for d in self.dirs() {
            remove_dir_retry(&d, 100);
        }
    }
}

/// `rmdir`, retrying while the kernel still counts exiting tasks (EBUSY).
pub fn remove_dir_retry(d: &Path, tries: u32) {
    for _ in 0..tries {
        match std::fs::remove_dir(d) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => {
                log::warn!("cannot remove cgroup {}: {e}", d.display());
                return;
            }
        }
    }
    log::warn!("cgroup {} still busy; not removed", d.display());
}

fn limit_names(l: &Limits, ctls: &[&str]) -> String {
    let mut v = Vec::new();
    for c in ctls {
        match *c {
            "memory" if l.memory_bytes.is_some() => v.push("--memory"),
            "cpu" if l.cpu_quota_us.is_some() => v.push("--cpus"),
            "pids" if l.pids.is_some() => v.push("--pids"),
            _ => {}
        }
    }
    v.join(", ")
}

/// Creates and configures the cgroups for `limits`. Rootless, a hierarchy that is not
/// delegated to the caller gives a warning (naming the limits and why) instead of an error.
/// Rootless, a limit that can't be applied is a warning (`warn`), not an error.
/// With `accounting`, the container also gets groups of the `ACCOUNTING` controllers
/// (for the /proc view), where the hierarchy allows.
pub fn setup(
    limits: &Limits,
    accounting: bool,
    rootless: bool,
    warn: &dyn Fn(&str),
) -> Result<Option<Cgroups>> {
    if !limits.any() {
        return Ok(None);
    }
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| Error::io(format!("read {p}"), e));
    let layout = parse_layout(&read("/proc/self/mountinfo")?, &read("/proc/self/cgroup")?);
    let v2_available: Vec<String> = layout
        .v2
        .as_ref()
        .and_then(|(m, own)| std::fs::read_to_string(under(m, own).join("cgroup.controllers")).ok())
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let wanted: Vec<&str> = CONTROLLERS
        .into_iter()
        .filter(|c| !limit_names(limits, &[c]).is_empty())
        .collect();
    // Group the wanted controllers by base directory.
    let mut plan: Vec<(Source, Vec<&str>)> = Vec::new();
    if accounting {
        for c in ACCOUNTING {
            // v2's io only from v2 (there is no v1 hierarchy of that name).
            if let Some(src) = choose(&layout, c, &v2_available) {
                match plan.iter_mut().find(|(s, _)| *s == src) {
                    Some((_, v)) => v.push(c),
                    None => plan.push((src, vec![c])),
                }
            }
        }
    }
    for c in wanted {
        match choose(&layout, c, &v2_available) {
            Some(src) => match plan.iter_mut().find(|(s, _)| *s == src) {
                Some((_, v)) => v.push(c),
                None => plan.push((src, vec![c])),
            },
            None => {
                let msg = format!(
                    "{} not applied: no cgroup hierarchy offers the {c} controller",
                    limit_names(limits, &[c])
                );
                if rootless {
                    warn(&msg);
                } else {
                    return Err(Error::new(msg));
                }
            }
        }
    }
    let name = format!("strata-{}", std::process::id());
    let mut made = Cgroups {
        groups: Vec::new(),
        moved: None,
        cpuset: match choose(&layout, "cpuset", &v2_available) {
            Some(Source::V2(path)) => Some(procview::Dir { v2: true, path }),
            Some(Source::V1(path, _)) => Some(procview::Dir { v2: false, path }),
            None => None,
        },
    };
    // Limits first: a v2 self-move they need must happen before accounting groups.
    plan.sort_by_key(|(_, ctls)| limit_names(limits, ctls).is_empty());
    let mut limited = false;
    for (src, ctls) in plan {
        let limiting = !limit_names(limits, &ctls).is_empty();
        match create_one(&src, &ctls, &name, limits, &mut made.moved) {
            Ok(g) => {
                limited |= limiting;
                made.groups.push(g)
            }
            Err(e) if !limiting => {
                log::info!("no {ctls:?} accounting for the /proc view: {}", e.msg)
            }
            Err(e) if rootless => warn(&format!(
                "{} not applied: {} (rootless limits need a cgroup delegated to you: systemd \
                 does this on cgroup v2; on v1 root must chown a subtree and start strata \
                 inside it, see README.md, section \"Limits: cgroup v1 and v2\")",
                limit_names(limits, &ctls),
                e.msg
            )),
            Err(e) => {
                made.remove();
                return Err(e);
            }
        }
    }
    if !limited {
        made.remove(); // undo a v2 self-move, and accounting groups, if any
        return Ok(None);
    }
    Ok(Some(made))
}

/// True when `procs` (a cgroup.procs file) lists exactly the process `me`.
pub fn only_process(procs: &str, me: u32) -> bool {
    let mut it = procs.split_whitespace();
    it.next() == Some(me.to_string().as_str()) && it.next().is_none()
}

/// Enables `ctls` for the children of `base` (cgroup v2). A cgroup with processes may not
/// do that; if strata is alone in `base`, it moves itself into a leaf child first.
fn enable_v2(
    base: &Path,
    ctls: &[&str],
    name: &str,
    moved: &mut Option<(PathBuf, PathBuf)>,
) -> Result<()> {
    let enable: Vec<String> = ctls.iter().map(|c| format!("+{c}")).collect();
    let enable = enable.join(" ");
    let first = match set(base, "cgroup.subtree_control", &enable) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let procs = std::fs::read_to_string(base.join("cgroup.procs")).unwrap_or_default();
    if moved.is_some() || !only_process(&procs, std::process::id()) {
        return Err(Error::new(format!(
            "{} (cgroup v2 enables controllers only for children of a cgroup without \
             processes, and {} holds other processes than strata: start strata in a cgroup \
             of its own, e.g. systemd-run --scope -p Delegate=yes strata run ...)",
            first.msg,
            base.display()
        )));
    }
    let leaf = base.join(format!("{name}.strata"));
    std::fs::create_dir(&leaf)
        .map_err(|e| Error::io(format!("create cgroup {}", leaf.display()), e))?;
    *moved = Some((base.to_path_buf(), leaf.clone()));
    set(&leaf, "cgroup.procs", "0")?;
    log::debug!("moved strata into {} to enable {enable}", leaf.display());
    set(base, "cgroup.subtree_control", &enable)
}

fn create_one(
    src: &Source,
    ctls: &[&str],
    name: &str,
    limits: &Limits,
    moved: &mut Option<(PathBuf, PathBuf)>,
) -> Result<Box<dyn Backend>> {
    let g: Box<dyn Backend> = match src {
        Source::V2(base) => {
            enable_v2(base, ctls, name, moved)?;
            Box::new(V2 {
                dir: base.join(name),
            })
        }
        Source::V1(base, hier) => Box::new(V1 {
            dir: base.join(name),
            controllers: hier.clone(),
        }),
    };
    std::fs::create_dir(g.dir())
        .map_err(|e| Error::io(format!("create cgroup {}", g.dir().display()), e))?;
    log::debug!(
        "cgroup v{} {} for {:?}",
        g.version(),
        g.dir().display(),
        ctls
    );
    if let Err(e) = g.apply(limits) {
        remove_dir_retry(g.dir(), 1);
        return Err(e);
    }
    Ok(g)
}

/// Called by the container process before it unshares its cgroup namespace.
pub fn join(procs_files: &[PathBuf]) -> Result<()> {
    for f in procs_files {
        write_file(f, "0")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
30 22 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
33 30 0:29 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu
34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
36 30 0:32 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
37 22 0:30 /x /mnt/elsewhere rw - cgroup cgroup rw,memory
";
    const PROC_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/abc
1:cpu:/
0::/
";

    #[test]
    fn hybrid_layout() {
        let l = parse_layout(MOUNTINFO, PROC_CGROUP);
        assert_eq!(l.v2, Some(("/sys/fs/cgroup/unified".into(), "/".into())));
        assert_eq!(l.v1.len(), 3, "{:?}", l.v1);
        let mem = choose(&l, "memory", &["hugetlb".into()]).unwrap();
        assert_eq!(
            mem,
            Source::V1(
                "/sys/fs/cgroup/memory/process_api/abc".into(),
                vec!["memory".into()]
            )
        );
        assert_eq!(
            choose(&l, "pids", &[]).unwrap(),
            Source::V1("/sys/fs/cgroup/pids".into(), vec!["pids".into()])
        );
    }

    #[test]
    fn v2_wins_when_it_has_the_controller() {
        let mi = "31 1 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let l = parse_layout(mi, "0::/user.slice/x.scope\n");
        let avail = vec!["cpu".to_string(), "memory".to_string(), "pids".to_string()];
        assert_eq!(
            choose(&l, "memory", &avail),
            Some(Source::V2("/sys/fs/cgroup/user.slice/x.scope".into()))
        );
        assert_eq!(choose(&l, "io", &avail), None);
    }

    #[test]
    fn v2_self_move_only_when_alone() {
        assert!(only_process("42\n", 42));
        assert!(!only_process("42\n43\n", 42));
        assert!(!only_process("", 42));
        assert!(!only_process("7\n", 42));
    }

    #[test]
    fn limit_names_only_for_requested() {
        let l = Limits {
            memory_bytes: Some(1),
            cpu_quota_us: None,
            pids: Some(3),
        };
        assert_eq!(limit_names(&l, &CONTROLLERS), "--memory, --pids");
    }
}
