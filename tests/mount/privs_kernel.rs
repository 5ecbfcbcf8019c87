//! The kernel's rules for set-id bits and creation modes, run as the same
//! commands on kernel overlayfs and on strata (fresh layers each) and compared:
//! an unprivileged write, fallocate, truncate or O_TRUNC open drops setuid, and
//! setgid too where the caller is outside the file's group; so does a chmod or
//! an ACL set by such an owner; a parent's default ACL decides a new object's
//! mode instead of the umask.

use crate::support::*;
use std::path::Path;
use std::process::Command;

/// Runs `script` with sh in `root` as root; panics on failure.
fn sh(root: &Path, script: &str) -> String {
    let out = run(Command::new("sh").arg("-ec").arg(script).current_dir(root));
    assert!(
        out.ok(),
        "sh -ec {script:?} in {}: {}",
        root.display(),
        out.stderr
    );
    out.stdout
}

/// `script` on kernel overlayfs and on strata, each over fresh layers where
/// `lower` was run in the lower layer first; returns both outputs.
fn on_both(lower: &str, script: &str) -> (String, String) {
    let k = Layout::new(1);
    sh(&k.lowers[0], lower);
    let km = k.kernel_mount();
    let kernel = sh(&km.mnt, script);
    km.umount();
    let s = Layout::new(1);
    sh(&s.lowers[0], lower);
    let m = s.mount();
    let strata = sh(&m.path(""), script);
    m.umount();
    (kernel, strata)
}

fn same(lower: &str, script: &str) -> String {
    let (kernel, strata) = on_both(lower, script);
    assert_eq!(
        strata, kernel,
        "strata and kernel overlayfs differ for:\n{script}"
    );
    strata
}

/// As uid 65534 (gid 65534, or `groups` given to setpriv).
fn nobody(creds: &str, cmd: &str) -> String {
    format!("setpriv --reuid=65534 {creds} -- {cmd}")
}

#[test]
fn unprivileged_modification_drops_setuid_and_setgid_as_the_kernel_does() {
    let mut script = String::from("mkdir d; chmod 1777 d\n");
    let verbs = [
        ("falloc", "fallocate -o 4096 -l 4096 d/f"),
        ("punch", "fallocate -p -o 0 -l 4096 d/f"),
        ("zero", "fallocate -z -o 0 -l 4096 d/f"),
        (
            "write",
            "dd if=/dev/zero of=d/f bs=1 count=1 seek=5 conv=notrunc status=none",
        ),
        ("truncate", "truncate -s 100 d/f"),
        ("otrunc", "sh -c ': > d/f'"),
    ];
    // Outside the file's group, in it (as fsgid), in it as a supplementary group.
    let who = [
        ("other", "--regid=65534 --clear-groups"),
        ("group", "--regid=100 --clear-groups"),
        ("supplementary", "--regid=65534 --groups=100"),
    ];
    for (verb, cmd) in verbs {
        for mode in ["6666", "2666", "2676", "4666"] {
            for (tag, creds) in who {
                script.push_str(&format!(
                    "head -c 8192 /dev/zero > d/f; chown 0:100 d/f; chmod 0666 d/f; chmod {mode} d/f\n\
                     {}\n\
                     echo \"{verb} {mode} {tag}: $(stat -c %a d/f)\"\n",
                    nobody(creds, cmd)
                ));
            }
        }
    }
    let out = same("true", &script);
    // The rules themselves, not only agreement.
    assert!(out.contains("write 6666 other: 666"), "{out}");
    assert!(out.contains("write 6666 group: 2666"), "{out}");
    assert!(out.contains("falloc 2666 supplementary: 2666"), "{out}");
    assert!(out.contains("truncate 2676 group: 676"), "{out}");
}

#[test]
fn a_lower_file_modified_by_another_user_loses_setgid_on_copy_up() {
    let out = same(
        "mkdir d; chmod 1777 d; head -c 100 /dev/zero > d/f; chown 0:100 d/f; chmod 6666 d/f",
        &format!(
            "{}\nstat -c %a d/f\n",
            nobody("--regid=65534 --clear-groups", "fallocate -o 0 -l 8192 d/f")
        ),
    );
    assert_eq!(out.trim(), "666");
}

#[test]
fn chmod_and_setfacl_by_an_owner_outside_the_group_drop_setgid() {
    let mut script = String::new();
    for kind in ["file", "dir"] {
        let make = if kind == "file" { "touch f" } else { "mkdir f" };
        script.push_str(&format!(
            "{make}; chown 100:100 f; chmod 2755 f\n\
             setpriv --reuid=100 --regid=101 --clear-groups chmod 2777 f\n\
             echo \"{kind} chmod: $(stat -c %A f)\"\n\
             chmod 2755 f\n\
             setpriv --reuid=100 --regid=101 --clear-groups setfacl -m u::rwx,g::rwx,o::rwx f\n\
             echo \"{kind} setfacl: $(stat -c %A f)\"\n\
             chmod 2755 f\n\
             setpriv --reuid=100 --regid=100 --clear-groups setfacl -m u::rwx,g::rwx,o::rwx f\n\
             echo \"{kind} setfacl in group: $(stat -c %A f)\"\n\
             rm -rf f\n"
        ));
    }
    let out = same("true", &script);
    assert!(out.contains("file setfacl: -rwxrwxrwx"), "{out}");
    assert!(out.contains("dir setfacl: drwxrwxrwx"), "{out}");
    assert!(out.contains("file setfacl in group: -rwxrwsrwx"), "{out}");
}

#[test]
fn a_default_acl_decides_instead_of_the_umask() {
    let script = "mkdir d e\n\
        setfacl -d -m u::r-x,g::r--,o::--- d\n\
        (umask 722; touch d/f; mkdir d/sub; mkfifo d/p; touch e/f; mkdir e/sub)\n\
        (umask 027; touch d/g; touch e/g)\n\
        stat -c '%n %A' d/f d/sub d/p d/g e/f e/sub e/g\n\
        getfacl -cp d/sub | sort\n";
    let out = same("true", script);
    assert!(out.contains("d/f -r--r-----"), "{out}");
    assert!(out.contains("e/f ----r--r--"), "{out}");
    assert!(out.contains("e/g -rw-r-----"), "{out}");
    // The same under a lower directory with a default ACL (copied up first).
    let out = same(
        "mkdir d; setfacl -d -m u::rwx,g::r-x,o::r-x d",
        "(umask 077; touch d/f; mkdir d/s)\nstat -c '%n %A' d/f d/s\n",
    );
    assert!(out.contains("d/f -rw-r--r--"), "{out}");
    assert!(out.contains("d/s drwxr-xr-x"), "{out}");
}

#[test]
fn a_default_acl_applies_to_an_object_made_over_a_whiteout() {
    // Each name was deleted first (a whiteout), so the new object is made in
    // the workdir and renamed into place.
    let out = same(
        "mkdir d; touch d/f d/g; mkdir d/s; setfacl -d -m u::rwx,g::r-x,o::--- d",
        "rm -r d/f d/g d/s\n\
         (umask 022; touch d/f; mkdir d/s; mkfifo d/g)\n\
         stat -c '%n %A' d/f d/s d/g\n\
         getfacl -cp d/f d/s | sort\n",
    );
    assert!(out.contains("d/f -rw-r-----"), "{out}");
    assert!(out.contains("d/s drwxr-x---"), "{out}");
}
