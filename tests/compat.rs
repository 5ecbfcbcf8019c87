//! The argv forms other programs use (issue 11, the command-line surface): the
//! fuse-overlayfs form `strata -o OPTS MERGED` that containers-storage runs,
//! mount(8) with `-t fuse.strata` (through mount.fuse3, and through the
//! `/sbin/mount.fuse.strata` link that scripts/install makes), a private fstab entry
//! with `noauto,user` mounted by an ordinary user, `--version`, the completions and
//! the man page.
//!
//! mount(8) finds its helpers in /sbin only, and mount.fuse3 finds `strata` on the
//! shell's default PATH: the mount(8) tests run in a private mount namespace
//! (`unshare -m`) where a directory of the test's own is bound over /usr/sbin and
//! /usr/local/bin, so that they use the built binary and never touch the machine's.
//! Their mounts live in that namespace and are unmounted by the script that made
//! them (a trap, even on failure); the namespace goes away with its last process.
//! Needs root, fuse3 (mount.fuse3, fusermount3), util-linux (unshare, setpriv,
//! mount -T) and the test user strata-u1 of scripts/setup.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

const SUITE: &str = "compat";

fn sq(p: impl AsRef<Path>) -> String {
    format!(
        "'{}'",
        p.as_ref().display().to_string().replace('\'', r"'\''")
    )
}

/// A layout with a file in the lower, a mount point and a directory for the test's
/// binaries and logs.
fn layout() -> Layout {
    let lay = Layout::new(1);
    write(lay.l(0, "f"), "from the lower\n");
    lay
}

/// Runs `script` with bash in a private mount namespace in which `sbin` is bound over
/// /usr/sbin (/sbin is a link to it) and `bin` over /usr/local/bin. The script's
/// mounts are its own to unmount; whatever serves `mnt` after it ended is killed.
fn in_private_ns(sbin: &Path, bin: &Path, mnt: &Path, script: &str) -> CmdOut {
    // Kills a daemon left behind in the namespace (it holds the namespace alive).
    let _guard = Mount::guard(mnt);
    let full = format!(
        "set -eu\nmount --make-rprivate /\nmount --bind {} /usr/sbin\nmount --bind {} /usr/local/bin\n\
         trap 'umount -l {} 2>/dev/null || true' EXIT\n{script}",
        sq(sbin),
        sq(bin),
        sq(mnt)
    );
    run(Command::new("unshare")
        .arg("--mount")
        .arg("--propagation")
        .arg("private")
        .arg("bash")
        .arg("-c")
        .arg(full)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"))
}

/// /usr/sbin for the namespace: mount.fuse3 and its mount.fuse link (what mount(8)
/// runs for `-t fuse.TYPE` when there is no mount.fuse.TYPE), and nothing else.
fn sbin_with_mount_fuse3(dir: &TestDir) -> PathBuf {
    let sbin = dir.fresh("sbin");
    let real = ["/usr/sbin/mount.fuse3", "/sbin/mount.fuse3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("mount.fuse3 missing: install fuse3 (scripts/setup)");
    fs::copy(real, sbin.join("mount.fuse3")).unwrap();
    std::os::unix::fs::symlink("mount.fuse3", sbin.join("mount.fuse")).unwrap();
    sbin
}

/// A `strata` for /usr/local/bin that records its argv (one per line) in `log` and
/// runs the built binary.
fn recording_strata(dir: &TestDir, log: &Path) -> PathBuf {
    let bin = dir.fresh("bin");
    let script = format!(
        "#!/bin/bash\nprintf '%s\\n' \"$@\" > {}\nexec {} \"$@\"\n",
        sq(log),
        sq(strata_bin())
    );
    let p = bin.join("strata");
    write(&p, script);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn one_line(s: &str) -> bool {
    s.trim_end().lines().count() == 1
}

// ---------------------------------------------------------------------------------
// strata -o OPTS MERGED (containers-storage's mount_program)
// ---------------------------------------------------------------------------------

#[test]
fn no_subcommand_form_is_live_when_it_exits() {
    let _c = count_case(SUITE);
    let lay = layout();
    // As containers-storage runs it: from the driver's home, absolute merged dir.
    let out = run(strata()
        .current_dir(lay.dir.path())
        .arg("-o")
        .arg(config_opts(&lay.opts()))
        .arg(&lay.mnt));
    // Right after exit, before anything else: the mount must already be FUSE.
    let magic = statfs_type(&lay.mnt);
    let m = Mount::adopt(out, &lay.mnt, "strata -o");
    assert_eq!(magic, Some(FUSE_SUPER_MAGIC), "not FUSE when strata exited");
    check();
    let e = mount_entry(&lay.mnt).unwrap();
    assert_eq!(e.fstype, "fuse.strata");
    check();
    assert_eq!(read(m.path("f")), b"from the lower\n");
    write(m.path("new"), "new\n");
    assert_eq!(read(lay.u("new")), b"new\n", "writes go to the upper");
    check();
    m.umount();
}

#[test]
fn no_subcommand_form_with_options_after_the_mount_point() {
    let _c = count_case(SUITE);
    let lay = layout();
    // fuse-overlayfs accepts -o anywhere; relative paths from the cwd.
    let out = run(strata()
        .current_dir(lay.dir.path())
        .arg("mnt")
        .arg("-o")
        .arg(config_opts(&lay.lowerdir_opt())));
    let m = Mount::adopt(out, &lay.mnt, "strata mnt -o");
    assert_eq!(read(m.path("f")), b"from the lower\n");
    check();
    m.umount();
}

#[test]
fn bad_option_is_one_line_and_mounts_nothing() {
    let _c = count_case(SUITE);
    let lay = layout();
    let out = run(strata()
        .arg("-o")
        .arg(format!("{},frobnicate", lay.opts()))
        .arg(&lay.mnt));
    let _g = Mount::guard(&lay.mnt);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(one_line(&out.stderr), "{:?}", out.stderr);
    assert!(out.stderr.contains("frobnicate"), "{:?}", out.stderr);
    assert!(!is_mounted(&lay.mnt), "mounted despite a bad option");
    check();
    // A layer that is not there: a failed mount, exit 1.
    let gone = lay.dir.join("no-such-layer");
    let out = run(strata()
        .arg("-o")
        .arg(format!("lowerdir={}", gone.display()))
        .arg(&lay.mnt));
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(one_line(&out.stderr), "{:?}", out.stderr);
    assert!(out.stderr.contains("no-such-layer"), "{:?}", out.stderr);
    assert!(!is_mounted(&lay.mnt), "mounted a missing layer");
    check();
}

#[test]
fn usage_help_and_version() {
    let _c = count_case(SUITE);
    let out = run(&mut strata());
    assert_eq!(out.code(), Some(2), "strata without arguments: {out:?}");
    assert!(out.stderr.contains("Usage:"), "{:?}", out.stderr);
    check();
    let out = run(strata().arg("--version"));
    assert_eq!(ok(&out), "strata 0.1.0\n");
    check();
    let help = ok(&run(strata().arg("--help")));
    for word in [
        "mount",
        "umount",
        "run",
        "completions",
        "man",
        "-o <OPTIONS>",
    ] {
        assert!(help.contains(word), "strata --help lacks {word}:\n{help}");
    }
    check();
    let help = ok(&run(strata().args(["mount", "--help"])));
    assert!(help.contains("lowerdir=L1:L2"), "{help}");
    check();
    // A subcommand's name still starts the subcommand.
    let out = run(strata().args(["umount"]));
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("strata umount"), "{:?}", out.stderr);
    check();
}

// ---------------------------------------------------------------------------------
// mount(8)
// ---------------------------------------------------------------------------------

#[test]
fn mount8_type_fuse_strata_through_mount_fuse3() {
    let _c = count_case(SUITE);
    let lay = layout();
    let log = lay.dir.join("argv");
    let bin = recording_strata(&lay.dir, &log);
    let sbin = sbin_with_mount_fuse3(&lay.dir);
    let mnt = sq(&lay.mnt);
    let out = in_private_ns(
        &sbin,
        &bin,
        &lay.mnt,
        &format!(
            "mount -t fuse.strata -o {} strata {mnt}\n\
             findmnt -n -o FSTYPE,SOURCE {mnt}\nstat -f -c 'magic=%t' {mnt}\n\
             cat {mnt}/f\necho via-mount8 > {mnt}/new\numount {mnt}\necho unmounted\n",
            sq(config_opts(&lay.opts()))
        ),
    );
    let argv = fs::read_to_string(&log).unwrap_or_default();
    eprintln!("mount.fuse3 ran strata with: {argv:?}");
    assert!(out.ok(), "{out:?}\nstrata's argv: {argv:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "fuse.strata strata",
            "magic=65735546",
            "from the lower",
            "unmounted"
        ],
        "{out:?}"
    );
    check();
    // mount.fuse3's form: SOURCE MOUNTPOINT -o OPTS (it adds dev,suid as root).
    let argv: Vec<&str> = argv.lines().collect();
    assert_eq!(
        argv[..3],
        ["strata", &*lay.mnt.to_string_lossy(), "-o"],
        "{argv:?}"
    );
    assert!(argv[3].contains("lowerdir="), "{argv:?}");
    check();
    assert_eq!(read(lay.u("new")), b"via-mount8\n");
    check();
}

#[test]
fn mount8_through_the_installed_helper_link() {
    let _c = count_case(SUITE);
    let lay = layout();
    let prefix = lay.dir.fresh("prefix");
    let sbin = lay.dir.fresh("sbin");
    let install = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install");
    let out = run(Command::new(&install)
        .arg("--binary")
        .arg(strata_bin())
        .arg("--prefix")
        .arg(&prefix)
        .arg("--sbindir")
        .arg(&sbin));
    ok(&out);
    let link = fs::read_link(sbin.join("mount.fuse.strata")).unwrap();
    assert_eq!(link, prefix.join("bin/strata"));
    for f in [
        "bin/strata",
        "share/man/man1/strata.1",
        "share/bash-completion/completions/strata",
        "share/zsh/site-functions/_strata",
        "share/fish/vendor_completions.d/strata.fish",
    ] {
        let meta = fs::metadata(prefix.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(meta.len() > 0, "{f} is empty");
    }
    check();
    // /usr/sbin holds only the helper link: mount(8) must use it (no mount.fuse3),
    // and /usr/local/bin is empty: nothing is found on PATH.
    let empty = lay.dir.fresh("empty");
    let mnt = sq(&lay.mnt);
    let out = in_private_ns(
        &sbin,
        &empty,
        &lay.mnt,
        &format!(
            "mount -t fuse.strata -o {},noauto,_netdev,nofail my-union {mnt}\n\
             findmnt -n -o FSTYPE,SOURCE {mnt}\ncat {mnt}/f\numount {mnt}\necho unmounted\n",
            sq(config_opts(&lay.opts()))
        ),
    );
    assert!(out.ok(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        ["fuse.strata my-union", "from the lower", "unmounted"],
        "{out:?}"
    );
    check();
    // A bad option through mount(8): its one line, and nothing mounted.
    let out = in_private_ns(
        &sbin,
        &empty,
        &lay.mnt,
        &format!(
            "if mount -t fuse.strata -o {},frobnicate strata {mnt}; then exit 9; fi\n\
             if findmnt {mnt} >/dev/null; then exit 8; fi\n",
            sq(lay.opts())
        ),
    );
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stderr
            .contains("mount.fuse.strata: unknown option 'frobnicate'"),
        "{out:?}"
    );
    check();
}

#[test]
fn private_fstab_noauto_user_entry_mounted_by_an_ordinary_user() {
    let _c = count_case(SUITE);
    if !run(Command::new("id").arg("strata-u1")).ok() {
        eprintln!("SKIPPED: no user strata-u1 on this machine (scripts/setup creates it)");
        return;
    }
    let (uid, gid) = user_id("strata-u1");
    let lay = layout();
    for d in [&lay.lowers[0], &lay.upper, &lay.work, &lay.mnt] {
        chown_tree(d, uid, gid);
    }
    let log = lay.dir.join("argv");
    let bin = recording_strata(&lay.dir, &log);
    fs::set_permissions(lay.dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let sbin = sbin_with_mount_fuse3(&lay.dir);
    let fstab = lay.dir.join("fstab");
    let opts = config_opts(&lay.opts());
    write(
        &fstab,
        format!(
            "# strata's test entry\nstrata {} fuse.strata noauto,user,{opts} 0 0\n",
            lay.mnt.display()
        ),
    );
    let mnt = sq(&lay.mnt);
    let user = format!("setpriv --reuid={uid} --regid={gid} --clear-groups");
    let out = in_private_ns(
        &sbin,
        &bin,
        &lay.mnt,
        &format!(
            "{user} mount -T {} {mnt}\n\
             findmnt -n -o FSTYPE,SOURCE,OPTIONS {mnt}\n\
             {user} cat {mnt}/f\n{user} sh -c 'echo by-u1 > {mnt}/new'\n\
             {user} {} umount {mnt}\necho unmounted\n",
            sq(&fstab),
            sq(strata_bin())
        ),
    );
    let argv = fs::read_to_string(&log).unwrap_or_default();
    eprintln!("mount(8) for a user entry ran strata with: {argv:?}");
    assert!(out.ok(), "{out:?}\nstrata's argv: {argv:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    assert!(lines[0].starts_with("fuse.strata strata "), "{out:?}");
    assert!(
        lines[0].contains(&format!("user_id={uid}")),
        "not the user's mount: {out:?}"
    );
    // `user` implies nosuid,nodev,noexec
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(lines[0].contains(o), "{o}: {out:?}");
    }
    assert_eq!(lines[1..], ["from the lower", "unmounted"], "{out:?}");
    check();
    assert!(
        !argv.contains("noauto") && argv.contains("lowerdir="),
        "{argv:?}"
    );
    let new = lay.u("new");
    assert_eq!(read(&new), b"by-u1\n");
    assert_eq!(lstat_meta(&new).uid(), uid, "the user's file");
    check();
}

// ---------------------------------------------------------------------------------
// completions and the man page
// ---------------------------------------------------------------------------------

#[test]
fn completions_are_scripts_their_shells_accept() {
    let _c = count_case(SUITE);
    let dir = TestDir::tagged("compat");
    for (shell, checker) in [("bash", "bash"), ("zsh", "zsh"), ("fish", "fish")] {
        let out = ok(&run(strata().args(["completions", shell])));
        for word in ["mount", "umount", "run", "log-level", "pid-file"] {
            assert!(out.contains(word), "{shell} completions lack {word}");
        }
        let file = dir.join(format!("strata.{shell}"));
        write(&file, &out);
        let have = run(Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {checker}")))
        .ok();
        if have {
            let syn = run(Command::new(checker).arg("-n").arg(&file));
            assert!(
                syn.ok(),
                "{checker} -n rejects the {shell} completions: {syn:?}"
            );
        } else {
            assert!(
                shell != "bash",
                "bash is needed to check the bash completions"
            );
            eprintln!("{checker} not installed: its completions checked for content only");
        }
        check();
    }
    let out = run(strata().args(["completions", "tcsh"]));
    assert_eq!(out.code(), Some(2), "{out:?}");
    check();
}

/// The long options of `strata SUB --help`.
fn long_options(sub: &str) -> Vec<String> {
    let help = ok(&run(strata().args([sub, "--help"])));
    let mut v: Vec<String> = help
        .lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .flat_map(|l| l.split_whitespace())
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches(',').to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn man_page_renders_every_option() {
    let _c = count_case(SUITE);
    let dir = TestDir::tagged("compat");
    let page = dir.join("strata.1");
    write(&page, ok(&run(strata().arg("man"))));
    let rendered = if run(Command::new("sh").arg("-c").arg("command -v man")).ok() {
        ok(&run(Command::new("man")
            .args(["-P", "cat", "-l"])
            .arg(&page)
            .env("LANG", "C")
            .env("MANWIDTH", "250")))
    } else if run(Command::new("sh").arg("-c").arg("command -v groff")).ok() {
        ok(&run(Command::new("groff")
            .args(["-man", "-Tascii"])
            .arg(&page)
            .env("LANG", "C")))
    } else {
        eprintln!("neither man nor groff installed: checking the roff source");
        fs::read_to_string(&page).unwrap().replace("\\-", "-")
    };
    for section in ["STRATA MOUNT", "STRATA UMOUNT", "STRATA RUN", "OTHER FORMS"] {
        assert!(rendered.contains(section), "no {section}:\n{rendered}");
    }
    check();
    let mut n = 0;
    for sub in ["mount", "umount", "run", "completions"] {
        for opt in long_options(sub) {
            if opt == "--help" {
                continue;
            }
            assert!(
                rendered.contains(&opt),
                "the man page lacks strata {sub} {opt}"
            );
            n += 1;
        }
    }
    assert!(n > 10, "only {n} options found in the --help texts");
    check();
    // The -o options of strata mount, as a table.
    for opt in [
        "lowerdir=L1:L2",
        "upperdir=DIR",
        "workdir=DIR",
        "redirect_dir=on|off",
        "fsname=NAME",
    ] {
        assert!(rendered.contains(opt), "the man page lacks -o {opt}");
    }
    check();
}
