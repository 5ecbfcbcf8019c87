#!/bin/sh
# Host set-up for the `strata run` tests. Run as root on a fresh Debian 12 machine.
# Idempotent: running it twice changes nothing the second time.
set -eu

if [ "$(id -u)" != 0 ]; then
    echo "launcher-setup.sh: must run as root" >&2
    exit 1
fi

CI_USER=strata-ci

# 1. Packages: busybox-static builds the test rootfs, uidmap gives newuidmap/newgidmap
#    (setuid helpers for subuid ranges), util-linux gives setpriv, hyperfine the latency bench.
need=""
command -v busybox >/dev/null 2>&1 && busybox --list >/dev/null 2>&1 && [ -e /bin/busybox ] || need="$need busybox-static"
command -v newuidmap >/dev/null 2>&1 || need="$need uidmap"
command -v setpriv >/dev/null 2>&1 || need="$need util-linux"
command -v hyperfine >/dev/null 2>&1 || need="$need hyperfine"
if [ -n "$need" ]; then
    apt-get update
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y $need
fi

# 2. Rootless FUSE: the user must be able to open /dev/fuse (Debian's udev default is 0666).
if [ -e /dev/fuse ]; then
    chmod 0666 /dev/fuse
else
    echo "launcher-setup.sh: warning: /dev/fuse is missing (modprobe fuse?)" >&2
fi

# 3. The unprivileged test user, with subordinate uid/gid ranges for newuidmap/newgidmap.
if ! id -u "$CI_USER" >/dev/null 2>&1; then
    useradd -M -d /nonexistent -s /bin/sh "$CI_USER"
fi
for f in /etc/subuid /etc/subgid; do
    touch "$f"
    if ! grep -q "^$CI_USER:" "$f"; then
        # pick a range above every range already allocated
        start=$(awk -F: 'BEGIN{m=100000} {e=$2+$3; if (e>m) m=e} END{print m}' "$f")
        echo "$CI_USER:$start:65536" >>"$f"
    fi
done

# 3b. A second user WITHOUT subordinate ranges, for the single-id-map tests
#     (useradd may add ranges automatically; they are removed).
CI_USER_SINGLE=strata-ci1
if ! id -u "$CI_USER_SINGLE" >/dev/null 2>&1; then
    useradd -M -d /nonexistent -s /bin/sh "$CI_USER_SINGLE"
fi
sed -i "/^$CI_USER_SINGLE:/d" /etc/subuid /etc/subgid

# 4. Rootless cgroup limits. On cgroup v2 with systemd, use a delegated scope
#    (systemd-run --user --scope -p Delegate=yes). On v1 (and v2 without systemd) root must
#    hand the user a subtree: the tests create and chown their own per-test subtree
#    (they run as root and drop to strata-ci), so nothing is needed here. For manual use,
#    this prepares <controller mount>/<root's own path>/strata-ci for memory, cpu and pids.
own_path() { # controller -> path of this shell's cgroup in that hierarchy
    awk -F: -v c="$1" '{n=split($2,a,","); for(i=1;i<=n;i++) if (a[i]==c) print $3}' /proc/self/cgroup
}
for ctl in memory cpu pids; do
    mnt=$(awk -v c="$ctl" '$9=="cgroup" { n=split($NF,o,","); for(i=1;i<=n;i++) if (o[i]==c) print $5 }' /proc/self/mountinfo | head -n1)
    [ -n "$mnt" ] || continue
    p=$(own_path "$ctl")
    d="$mnt${p%/}/strata-ci"
    mkdir -p "$d"
    chown "$CI_USER:" "$d" "$d/cgroup.procs" "$d/tasks"
    for f in memory.limit_in_bytes memory.memsw.limit_in_bytes cpu.cfs_quota_us cpu.cfs_period_us pids.max; do
        [ -e "$d/$f" ] && chown "$CI_USER:" "$d/$f"
    done
done

echo "launcher-setup.sh: ok (users $CI_USER and $CI_USER_SINGLE, /dev/fuse $(stat -c %a /dev/fuse 2>/dev/null || echo missing))"
