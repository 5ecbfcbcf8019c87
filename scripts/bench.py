#!/usr/bin/env python3
"""strata benchmark driver. Run it through scripts/bench (which installs the tools and
builds strata); `scripts/bench --help` documents the options.

Compares strata with kernel overlayfs and fuse-overlayfs 1.10 / 2.0 over the same,
deterministically generated, read-only lower layers. For every workload and every
repetition the implementations run back to back (interleaved), each on a fresh mount
with fresh upper/work dirs; the table shows medians and the ratio to kernel overlayfs.
Not part of the test suite: it needs root, mounts things and takes minutes.
"""

import argparse
import contextlib
import datetime
import hashlib
import io
import json
import math
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import select
import tarfile
import tempfile
import threading
import time

IMPLS = ["kernel", "strata", "strata-rl", "fo110", "fo20"]
LABEL = {"kernel": "kernel", "strata": "strata", "strata-rl": "strata-rl", "fo110": "fo-1.10", "fo20": "fo-2.0"}
# strata-rl: strata in the rootless configuration, the options an ordinary user's mount runs
# with (no passthrough, which needs CAP_SYS_ADMIN; the writeback cache on), mounted by root
# so that the same commands and layers serve every column. What it leaves out of a real
# user's mount (owners the user cannot set kept in xattrs) is said in the report's notes.
STRATA_IMPLS = ("strata", "strata-rl")
EXTRA_OPTS = {"strata-rl": "passthrough=off,writeback=on"}
GEN_VERSION = 2  # bump when a synthetic generator changes: those layers are regenerated
REAL_VERSION = 1  # the same for the real-tree layers (real1, real2) and the rootfs tarball
SCALE_VERSION = 1  # the same for the scaling layers (swalk-*, sbig-*, m50, m500)
MiB = 1 << 20
GiB = 1 << 30


class Failed(Exception):
    """A workload failed for one implementation (shown as FAILED in the table)."""


class Skip(Exception):
    """A workload does not apply (shown as a note)."""


# ----------------------------------------------------------------------------- utilities

CURRENT_CHILD = None  # Popen of the command being waited for, killed on interrupt


def log(msg):
    ts = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[bench {ts}] {msg}", file=sys.stderr, flush=True)


def short(cmd):
    s = " ".join(str(c) for c in cmd)
    return s if len(s) < 300 else s[:300] + "..."


def unescape_mountinfo(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1 : i + 4].isdigit():
            out.append(chr(int(s[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def mountinfo():
    """[(mountpoint, fstype, dev_major:minor)] of this mount namespace."""
    res = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            res.append((unescape_mountinfo(parts[4]), parts[sep + 1], parts[2]))
    return res


def mount_entry(mnt):
    found = None
    for mp, fstype, dev in mountinfo():
        if mp == mnt:
            found = (fstype, dev)
    return found


def abort_fuse(mnt):
    """Abort the FUSE connection behind mnt (unsticks processes blocked on a hung daemon)."""
    ent = mount_entry(mnt)
    if not ent or not ent[0].startswith("fuse"):
        return
    major, minor = (int(x) for x in ent[1].split(":"))
    conn = "/sys/fs/fuse/connections"
    if not os.path.exists(os.path.join(conn, "")) or not os.listdir(conn):
        subprocess.run(["mount", "-t", "fusectl", "fusectl", conn], stderr=subprocess.DEVNULL)
    path = os.path.join(conn, str((major << 20) | minor), "abort")
    try:
        with open(path, "w") as f:
            f.write("1")
        log(f"aborted FUSE connection of {mnt} ({path})")
    except OSError as e:
        log(f"could not abort FUSE connection of {mnt}: {e}")


def run(cmd, timeout=600, mnt=None, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=None, env=None):
    """Runs cmd in its own process group; Failed on timeout or non-zero exit."""
    global CURRENT_CHILD
    p = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, cwd=cwd, env=env, start_new_session=True)
    CURRENT_CHILD = p
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if mnt:
            abort_fuse(mnt)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        raise Failed(f"timeout after {timeout:.0f}s: {short(cmd)}")
    except BaseException:  # Ctrl-C/SIGTERM: stop the child before anything is unmounted
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        raise
    finally:
        CURRENT_CHILD = None
    if p.returncode != 0:
        msg = (err or b"").decode(errors="replace").strip().splitlines()
        tail = " | ".join(msg[-3:]) if msg else ""
        raise Failed(f"exit {p.returncode}: {short(cmd)}: {tail}")
    return out or b"", err or b""


def timed(cmd, **kw):
    t0 = time.perf_counter()
    out, err = run(cmd, **kw)
    return time.perf_counter() - t0, out, err


def sync():
    os.sync()


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def rmtree(path):
    if os.path.lexists(path):
        subprocess.run(["rm", "-rf", "--one-file-system", path], check=False)


def proc_status(pid):
    """{'VmRSS': kB, 'VmHWM': kB} of pid."""
    res = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    res[k] = int(v.split()[0])
    except OSError:
        pass
    return res


def find_daemon(mnt, names=("strata", "fuse-overlayfs")):
    """PID of the FUSE daemon serving mnt: among strata/fuse-overlayfs processes whose argv
    names mnt, the one holding /dev/fuse (strata keeps a small parent process around), else
    the one with the largest VmRSS. Processes of other mounts are never considered."""
    cands = []
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if not argv or os.path.basename(argv[0]) not in names:
            continue
        if any(a == mnt or a.rstrip("/") == mnt for a in argv[1:]):
            cands.append(int(d))
    cands = [p for p in cands if proc_status(p).get("VmRSS")]
    if not cands:
        return None

    def holds_fuse(pid):
        try:
            return any(os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/fuse" for fd in os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            return False

    return max(cands, key=lambda p: (holds_fuse(p), proc_status(p).get("VmRSS", 0)))


def meminfo_dirty_kb():
    tot = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(("Dirty:", "Writeback:")):
                tot += int(line.split()[1])
    return tot


def count_lines(data):
    return data.count(b"\n")


# ----------------------------------------------------------------------------- layers


def wfile(path, data=b""):
    with open(path, "wb") as f:
        f.write(data)


def whiteout(path):
    os.mknod(path, 0o600 | 0o020000, os.makedev(0, 0))


def gen_walk1(root):
    # 122 top-level files, 120 dirs x 8 subdirs x 100 entries (every 50th a symlink)
    for i in range(122):
        wfile(f"{root}/top{i:03d}", b"t" * (i % 5) * 100)
    for a in range(120):
        for b in range(8):
            d = f"{root}/a{a:03d}/b{b}"
            os.makedirs(d)
            for c in range(100):
                p = f"{d}/f{c:03d}"
                if c % 50 == 49:
                    os.symlink("f000", p)
                elif c % 4 == 0:
                    wfile(p, (f"{a}/{b}/{c}\n" * (20 + c * 3)).encode())
                else:
                    wfile(p)


def gen_walk2(root):
    # a100..a119 merge with walk1 (50 new names, 10 whiteouts per subdir); a120..a141 new;
    # etc/ with 1599 files: 123,000 merged entries in all
    os.makedirs(f"{root}/etc")
    for i in range(1599):
        wfile(f"{root}/etc/c{i:04d}", f"conf {i}\n".encode())
    for a in range(100, 142):
        for b in range(8):
            d = f"{root}/a{a:03d}/b{b}"
            os.makedirs(d)
            if a < 120:
                for c in range(60):
                    if c < 10:
                        whiteout(f"{d}/f{c + 10:03d}")
                    else:
                        wfile(f"{d}/g{c:03d}", b"g" * c)
            else:
                for c in range(100):
                    wfile(f"{d}/f{c:03d}", b"" if c % 4 else (f"{a}{b}{c}\n" * 30).encode())


def gen_rssx(root):
    # 11 dirs x 999 files on top of walk2:walk1 -> 134k entries
    for x in range(11):
        d = f"{root}/x{x:02d}"
        os.makedirs(d)
        for i in range(999):
            wfile(f"{d}/e{i:04d}")


def big_block():
    return random.Random(20261125).randbytes(MiB)


def gen_big(root, size):
    blk = bytearray(big_block())
    with open(f"{root}/big.bin", "wb") as f:
        full, rest = divmod(size, MiB)
        for i in range(full):
            blk[0:16] = f"{i:016d}".encode()
            f.write(blk)
        if rest:
            f.write(bytes(blk[:rest]))


def gen_chmod(root):
    data = bytes(range(256)) * 64  # 16 KiB
    for d in range(100):
        os.makedirs(f"{root}/ctree/d{d:03d}")
        for i in range(100):
            wfile(f"{root}/ctree/d{d:03d}/f{i:03d}", data)


def gen_rmt(root):
    for d in range(40):
        os.makedirs(f"{root}/rmtree/d{d:02d}")
        for i in range(599):
            wfile(f"{root}/rmtree/d{d:02d}/f{i:03d}", b"" if i % 3 else b"r" * 300)


def gen_bigdir(root):
    os.makedirs(f"{root}/bigdir")
    for i in range(100000):
        wfile(f"{root}/bigdir/e{i:06d}")


NPROJ = 200


def gen_proj(root):
    d = f"{root}/proj"
    os.makedirs(d)
    wfile(f"{d}/common.h", b"#ifndef COMMON_H\n#define COMMON_H\n#include <stdint.h>\n"
          + b"".join(f"uint64_t f{i:03d}(uint64_t x);\n".encode() for i in range(NPROJ))
          + b"#endif\n")
    for i in range(NPROJ):
        body = [f'#include "common.h"', f"/* generated unit {i} */",
                f"static uint64_t mix{i}(uint64_t x) {{ return x * {2 * i + 3}u + {i}u; }}",
                f"uint64_t f{i:03d}(uint64_t x) {{", "    uint64_t acc = x;",
                f"    for (int k = 0; k < {i % 7 + 1}; k++)", f"        acc = mix{i}(acc) ^ (acc >> 3);",
                "    return acc;", "}"]
        wfile(f"{d}/u{i:03d}.c", ("\n".join(body) + "\n").encode())
    calls = "".join(f"    s += f{i:03d}(s + {i});\n" for i in range(NPROJ))
    wfile(f"{d}/main.c", ('#include <stdio.h>\n#include "common.h"\nint main(void) {\n'
                          f"    uint64_t s = 1;\n{calls}"
                          '    printf("%llu\\n", (unsigned long long)s);\n    return 0;\n}\n').encode())
    objs = " ".join(f"u{i:03d}.o" for i in range(NPROJ))
    wfile(f"{d}/Makefile", (f"OBJS = main.o {objs}\nCFLAGS = -O1\n\napp: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\n"
                            "%.o: %.c common.h\n\t$(CC) $(CFLAGS) -c -o $@ $<\n").encode())


def proj_expected():
    m = (1 << 64) - 1
    s = 1
    for i in range(NPROJ):
        acc = (s + i) & m
        for _ in range(i % 7 + 1):
            acc = ((acc * (2 * i + 3) + i) & m) ^ (acc >> 3)
        s = (s + acc) & m
    return f"{s}\n"


def gen_srctar(path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        dirs = set()
        for i in range(200):
            sub = f"srctree/mod{i % 20:02d}"
            if sub not in dirs:
                dirs.add(sub)
                ti = tarfile.TarInfo(sub)
                ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1700000000
                tf.addfile(ti)
            text = "".join(f"/* {i}:{k} */ int v{i}_{k} = {k * i};\n" for k in range(40 + (i * 37) % 200))
            data = text.encode()
            ti = tarfile.TarInfo(f"{sub}/file{i:03d}.c")
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
            tf.addfile(ti, io.BytesIO(data))
    wfile(path, buf.getvalue())


def gen_many(root, n=100, files=2000, width=2):
    # root/NN: every layer has d/lNN and fNN; top (00) has d/tNNNNN, bottom has d/bNNNNN
    for layer in range(n):
        d = f"{root}/{layer:0{width}d}/d"
        os.makedirs(d)
        wfile(f"{d}/l{layer:0{width}d}")
        wfile(f"{root}/{layer:0{width}d}/f{layer:0{width}d}")
        if layer == 0:
            for i in range(files):
                wfile(f"{d}/t{i:05d}")
        if layer == n - 1:
            for i in range(files):
                wfile(f"{d}/b{i:05d}")


def gen_rootfs(root):
    bb = shutil.which("busybox") or "/bin/busybox"
    for d in ("bin", "dev", "proc", "sys", "tmp", "etc", "root"):
        os.makedirs(f"{root}/{d}")
    shutil.copy2(bb, f"{root}/bin/busybox")
    for tool in ("sh", "true", "false", "ls", "cat", "echo"):
        os.symlink("busybox", f"{root}/bin/{tool}")


# ----------------------------------------------------------------------------- real-tree layers

REAL_SOURCES = ("usr/share", "usr/lib")  # under /: real1's content
REAL_MAX_FILE = 8 * MiB  # larger regular files are left out
REAL_RM_TARGET = 24000  # real-rm-rf removes the real1 directory whose subtree is nearest this
HOST_ROOTFS_SOURCES = ("etc", "usr/bin", "usr/sbin", "usr/lib/x86_64-linux-gnu", "var/lib/dpkg")
TAR_KEEP = ["--numeric-owner", "--xattrs", "--xattrs-include=user.*", "--xattrs-include=security.*", "--acls"]


def host_tree_list(sources, listfile):
    """Writes to listfile (NUL-separated, relative to /) the entries of the host's /SOURCES on
    their file systems: the sources' parent dirs, then everything but regular files over
    REAL_MAX_FILE and names with a newline (ls -lR and find output are line-based).
    Returns (entries listed, files left out as too big, names left out)."""
    out, _ = run(["find", *sources, "-xdev", "-printf", "%y %s %p\\0"], timeout=1800, cwd="/")
    parents = sorted({"/".join(src.split("/")[: k + 1]) for src in sources for k in range(src.count("/"))})
    keep, big, odd = list(parents), 0, 0
    for rec in out.split(b"\0"):
        if not rec:
            continue
        kind, size, path = rec.split(b" ", 2)
        if kind == b"f" and int(size) > REAL_MAX_FILE:
            big += 1
        elif b"\n" in path:
            odd += 1
        else:
            keep.append(path.decode("utf-8", "surrogateescape"))
    with open(listfile, "wb") as f:
        f.write(b"".join(os.fsencode(x) + b"\0" for x in keep))
    return len(keep), big, odd


def tar_copy(listfile, dest, src="/"):
    """Copies the entries of listfile from src to dest with tar (modes, owners, hard links,
    symlinks, xattrs user.* and security.*, ACLs). trusted.* xattrs are left out: an
    overlay.* one would change what the unions show."""
    with tempfile.TemporaryFile() as errf:  # a file, not a pipe: many warnings cannot block tar -c
        c = subprocess.Popen(["tar", "-C", src, "--null", "--no-recursion", "-T", listfile, *TAR_KEEP, "-cf", "-"],
                             stdout=subprocess.PIPE, stderr=errf)
        x = subprocess.run(["tar", "-C", dest, *TAR_KEEP, "-xpf", "-"], stdin=c.stdout, capture_output=True)
        c.stdout.close()
        c.wait()
        errf.seek(0)
        cerr = errf.read()
    # tar -c exits 1 when a file changed while it was read: a copy nonetheless
    if c.returncode not in (0, 1) or x.returncode != 0:
        raise Failed(f"tar copy failed: {(cerr + x.stderr).decode(errors='replace').strip()[-300:]}")


def gen_real1(root):
    """A copy of the host's /usr/share and /usr/lib, files over 8 MiB left out."""
    listfile = f"{root}.list"
    try:
        listed, big, odd = host_tree_list(REAL_SOURCES, listfile)
        tar_copy(listfile, root)
    finally:
        if os.path.exists(listfile):
            os.unlink(listfile)
    n = merged_entries([root])
    return {"entries": n, "listed": listed, "left_out_big": big, "left_out_names": odd,
            "source": "host /" + ", /".join(REAL_SOURCES)}


def sorted_walk(top):
    """os.walk with directories and names sorted: a deterministic order."""
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        filenames.sort()
        rel = os.path.relpath(dirpath, top)
        yield ("" if rel == "." else rel), dirnames, filenames


def gen_real2(root, real1):
    """A second lower over real1: shadows every 20th regular file of real1 (sorted walk, same
    path, mode and owner, other content), whites out ~300 others (char 0/0), makes one
    real1 directory opaque (trusted.overlay.opaque=y, with 10 files of its own), and adds
    3,000 files: 1,500 in 30 new directories, 3 in each of 500 existing ones."""
    files, dirs, sub = [], [], {}  # regular files; dirs with (direct entries, all non-dirs)
    for rel, dirnames, filenames in sorted_walk(real1):
        if rel:
            dirs.append(rel)
        reg = [n for n in filenames if os.path.isfile(os.path.join(real1, rel, n))
               and not os.path.islink(os.path.join(real1, rel, n))]
        files += [f"{rel}/{n}" if rel else n for n in reg]
        sub[rel] = (len(dirnames) + len(filenames), not dirnames)
    # the real-rm-rf directory: depth <= 3, subtree nearest REAL_RM_TARGET entries
    size = {}
    for path in dirs + files:
        parts = path.split("/")
        for k in range(1, min(len(parts), 4)):
            size["/".join(parts[:k])] = size.get("/".join(parts[:k]), 0) + 1
    rm_dir = min((d for d in size if d.count("/") >= 1), key=lambda d: (abs(size[d] - REAL_RM_TARGET), d))
    # the opaque directory: the first with 100-300 entries, none a directory, outside rm_dir
    opaque = next(d for d in dirs if 100 <= sub[d][0] <= 300 and sub[d][1] and not d.startswith(rm_dir + "/"))

    made = set()

    def mkparents(rel_dir):
        parts = rel_dir.split("/") if rel_dir else []
        for k in range(1, len(parts) + 1):
            d = "/".join(parts[:k])
            if d in made:
                continue
            made.add(d)
            src, dst = os.path.join(real1, d), os.path.join(root, d)
            if os.path.isdir(dst):
                continue
            os.mkdir(dst)
            if os.path.isdir(src) and not os.path.islink(src):
                st = os.lstat(src)
                os.chown(dst, st.st_uid, st.st_gid)
                os.chmod(dst, st.st_mode & 0o7777)

    shadows = whiteouts = 0
    for i, rel in enumerate(files):
        if rel.startswith(opaque + "/"):
            continue
        d = os.path.dirname(rel)
        if i % 20 == 19:
            mkparents(d)
            st = os.lstat(os.path.join(real1, rel))
            dst = os.path.join(root, rel)
            wfile(dst, f"real2 shadow {i} of {rel}\n".encode() * (1 + i % 50))
            os.chown(dst, st.st_uid, st.st_gid)
            os.chmod(dst, st.st_mode & 0o7777)
            os.utime(dst, (1700000000, 1700000000))
            shadows += 1
        elif i % 331 == 165:
            mkparents(d)
            whiteout(os.path.join(root, rel))
            whiteouts += 1
    mkparents(opaque)
    os.setxattr(os.path.join(root, opaque), "trusted.overlay.opaque", b"y")
    for k in range(10):
        wfile(os.path.join(root, opaque, f"opaque-{k:02d}"), f"opaque {k}\n".encode())
    added = 0
    for p in range(30):
        d = f"usr/share/strata-real2/p{p:02d}"
        mkparents(d)
        for k in range(50):
            wfile(os.path.join(root, d, f"n{k:03d}.txt"), f"new {p}/{k}\n".encode() * (k % 40))
            added += 1
    step = max(1, len(dirs) // 500)
    for d in [x for x in dirs[::step] if x != opaque and not x.startswith(opaque + "/")][:500]:
        mkparents(d)
        for k in range(3):
            wfile(os.path.join(root, d, f"zz-real2-{k}"), f"added {d} {k}\n".encode())
            added += 1
    paths = merged_paths([root, real1])
    rm_entries = sum(1 for x in paths if x.startswith(rm_dir + "/"))
    return {"merged_entries": len(paths), "shadows": shadows, "whiteouts": whiteouts, "opaque_dir": opaque,
            "added": added, "rm_dir": rm_dir, "rm_entries": rm_entries}


def umount_under(prefix):
    for mp, _, _ in reversed(mountinfo()):
        if mp.startswith(prefix.rstrip("/") + "/"):
            subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)


def tar_entries(path):
    """Distinct entries of a tarball (the top "." left out): what untarring it creates."""
    names = set()
    with tarfile.open(path) as tf:
        for m in tf:
            n = m.name
            while n.startswith("./"):
                n = n[2:]
            n = n.rstrip("/")
            if n and n != ".":
                names.add(n)
    return len(names)


ROOTFS_TARS = ("rootfs-bookworm-minbase", "rootfs-host")


def rootfs_tarball(b):
    """(path, meta) of the real rootfs tarball in the cache dir, made once and kept:
    `debootstrap --variant=minbase bookworm` (dev/, proc/, sys/ left empty), or, when that
    fails, a tar of real host directories (HOST_ROOTFS_SOURCES, files over 8 MiB left out)."""
    cache = b.a.cache_dir
    for name in ROOTFS_TARS:
        tar, stamp = f"{cache}/{name}.tar", f"{cache}/{name}.json"
        try:
            with open(stamp) as f:
                meta = json.load(f)
            if meta.get("version") == REAL_VERSION and os.path.exists(tar):
                return tar, meta
        except (OSError, ValueError):
            pass
    os.makedirs(cache, exist_ok=True)
    # built under the bench dir: scripts/bench's safety net unmounts whatever debootstrap
    # might leave mounted there (proc, sys) if it is killed
    d = f"{b.dir}/rootfs-build"
    umount_under(d)
    rmtree(d)
    why = "debootstrap is not installed"
    name = None
    if shutil.which("debootstrap"):
        log("making the rootfs tarball: debootstrap --variant=minbase bookworm (a few minutes)")
        t0 = time.perf_counter()
        try:
            run(["debootstrap", "--variant=minbase", "bookworm", d, "http://deb.debian.org/debian"], timeout=3600)
            name, source = ROOTFS_TARS[0], "debootstrap --variant=minbase bookworm http://deb.debian.org/debian"
            cmd = ["tar", "-C", d, "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
                   "-cf"]
            log(f"debootstrap done in {time.perf_counter() - t0:.0f}s")
        except Failed as e:
            why = f"debootstrap failed: {e}"
            log(why)
        finally:
            umount_under(d)
    if name is None:
        name, source = ROOTFS_TARS[1], ("tar of host /" + ", /".join(HOST_ROOTFS_SOURCES) +
                                        f" (files over 8 MiB left out), because {why}")
        os.makedirs(d, exist_ok=True)
        listfile = f"{d}.list"
        host_tree_list(HOST_ROOTFS_SOURCES, listfile)
        cmd = ["tar", "-C", "/", "--numeric-owner", "--null", "--no-recursion", "-T", listfile, "-cf"]
    tar, stamp = f"{cache}/{name}.tar", f"{cache}/{name}.json"
    try:
        p = subprocess.run(cmd + [tar + ".tmp", "."] if name == ROOTFS_TARS[0] else cmd + [tar + ".tmp"],
                           capture_output=True)
        if p.returncode not in (0, 1):
            raise Failed(f"tar of the rootfs failed: {p.stderr.decode(errors='replace').strip()[-300:]}")
        meta = {"version": REAL_VERSION, "source": source, "entries": tar_entries(tar + ".tmp"),
                "bytes": os.path.getsize(tar + ".tmp")}
        os.rename(tar + ".tmp", tar)
        with open(stamp, "w") as f:
            json.dump(meta, f)
    finally:
        rmtree(d)
        if os.path.exists(f"{d}.list"):
            os.unlink(f"{d}.list")
    return tar, meta


def is_opaque(path):
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def merged_paths(layers):
    """Paths (root excluded) in the union of layers (top first), honouring char-0/0 whiteouts
    and opaque directories (trusted.overlay.opaque=y: what lies below them in lower layers is
    hidden): computed from the layer dirs, independently of any mount."""
    paths, hidden, cut = set(), set(), set()
    for layer in layers:
        new_wh, new_cut = set(), set()
        for dirpath, dirnames, filenames in os.walk(layer):
            rel_dir = os.path.relpath(dirpath, layer)
            if rel_dir != "." and is_opaque(dirpath):
                new_cut.add(rel_dir)
            for name in dirnames + filenames:
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0:
                    new_wh.add(rel)
                    continue
                parts = rel.split("/")
                if any("/".join(parts[: k + 1]) in hidden for k in range(len(parts))):
                    continue
                if cut and any("/".join(parts[: k + 1]) in cut for k in range(len(parts) - 1)):
                    continue
                paths.add(rel)
        hidden |= new_wh
        cut |= new_cut
    return paths


def merged_entries(layers):
    """Number of entries (root excluded) in the union of layers (top first)."""
    return len(merged_paths(layers))


# ----------------------------------------------------------------------------- request counting

# FUSE opcodes counted one by one (include/uapi/linux/fuse.h); the rest is "other"
FUSE_OPS = {1: "LOOKUP", 3: "GETATTR", 4: "SETATTR", 5: "READLINK", 6: "SYMLINK", 8: "MKNOD", 9: "MKDIR",
            10: "UNLINK", 11: "RMDIR", 12: "RENAME", 13: "LINK", 14: "OPEN", 15: "READ", 16: "WRITE",
            17: "STATFS", 18: "RELEASE", 20: "FSYNC", 21: "SETXATTR", 22: "GETXATTR", 23: "LISTXATTR",
            24: "REMOVEXATTR", 25: "FLUSH", 27: "OPENDIR", 28: "READDIR", 29: "RELEASEDIR", 34: "ACCESS",
            35: "CREATE", 43: "FALLOCATE", 44: "READDIRPLUS", 45: "RENAME2", 46: "LSEEK",
            47: "COPY_FILE_RANGE", 52: "STATX"}
PERF = "/usr/bin/perf"


class ReqCounter:
    """The FUSE requests sent to one connection while enabled: `perf stat -a` on the tracepoint
    fuse:fuse_request_send, a counter for the total and one per opcode of FUSE_OPS, each with an
    in-kernel filter on the connection (no ring buffer, no per-event user-space work). perf
    starts disabled (-D -1) and is switched on and off through its control fifo, so neither its
    start-up nor its exit is counted or timed. FORGET/BATCH_FORGET and INTERRUPT travel on
    their own queues and are not seen by this tracepoint."""

    def __init__(self, b, mnt):
        ent = mount_entry(mnt)
        if not ent or not ent[0].startswith("fuse"):
            raise Failed(f"{mnt} is not a FUSE mount")
        if not os.access(PERF, os.X_OK):
            raise Failed(f"{PERF} not found (apt-get install linux-perf)")
        major, minor = (int(x) for x in ent[1].split(":"))
        self.conn = (major << 20) | minor
        self.b = b
        self.dir = tempfile.mkdtemp(prefix="perf-", dir=b.runs)
        self.p = self.err = None
        self.ctl = self.ack = None

    def start(self):
        d = self.dir
        ctl, ack, self.out = f"{d}/ctl", f"{d}/ack", f"{d}/out.csv"
        os.mkfifo(ctl)
        os.mkfifo(ack)
        self.ack = os.open(ack, os.O_RDONLY | os.O_NONBLOCK)
        evs = ["-e", "fuse:fuse_request_send", "--filter", f"connection == {self.conn}"]
        for op in FUSE_OPS:
            evs += ["-e", "fuse:fuse_request_send", "--filter", f"connection == {self.conn} && opcode == {op}"]
        self.err = open(f"{d}/err", "wb")
        self.p = subprocess.Popen([PERF, "stat", "-a", "-x,", "-o", self.out, "--control", f"fifo:{ctl},{ack}",
                                   "-D", "-1", *evs], stdin=subprocess.DEVNULL, stdout=self.err, stderr=self.err,
                                  start_new_session=True)
        self.b.counters.append(self)
        deadline = time.time() + 20
        while self.ctl is None:
            try:
                self.ctl = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO until perf has opened its end
                if self.p.poll() is not None or time.time() > deadline:
                    self.kill()
                    raise Failed(f"perf stat did not start: {self.errors()}")
                time.sleep(0.01)
        self.command("enable")

    def command(self, what):
        os.write(self.ctl, f"{what}\n".encode())
        got, deadline = b"", time.time() + 20
        while b"ack" not in got:
            left = deadline - time.time()
            if left <= 0 or self.p.poll() is not None:
                raise Failed(f"perf stat did not acknowledge {what!r}: {self.errors()}")
            r, _, _ = select.select([self.ack], [], [], min(left, 0.5))
            if r:
                got += os.read(self.ack, 64)

    def errors(self):
        try:
            with open(f"{self.dir}/err", "rb") as f:
                return " | ".join(f.read().decode(errors="replace").strip().splitlines()[-3:])
        except OSError:
            return "?"

    def stop(self):
        """(total, {opcode name: count}); the counter is gone afterwards."""
        try:
            self.command("disable")
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                raise Failed("perf stat did not exit on SIGINT")
            counts = []
            with open(self.out) as f:
                for line in f:
                    fields = line.strip().split(",")
                    if len(fields) > 2 and fields[2] == "fuse:fuse_request_send":
                        counts.append(int(fields[0]) if fields[0].isdigit() else None)
            if len(counts) != 1 + len(FUSE_OPS) or None in counts:
                raise Failed(f"perf stat output unreadable ({len(counts)} counters): {self.errors()}")
            total = counts[0]
            ops = {name: n for name, n in zip(FUSE_OPS.values(), counts[1:]) if n}
            other = total - sum(ops.values())
            if other:
                ops["other"] = other
            return total, ops
        finally:
            self.kill()

    def kill(self):
        if self.p and self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait()
        for fd in (self.ctl, self.ack):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.ctl = self.ack = None
        if self.err and not self.err.closed:
            self.err.close()
        if self in self.b.counters:
            self.b.counters.remove(self)
        shutil.rmtree(self.dir, ignore_errors=True)


# ----------------------------------------------------------------------------- harness


class Bench:
    def __init__(self, args):
        self.a = args
        self.dir = os.path.abspath(args.bench_dir)
        self.layers = f"{self.dir}/layers"  # generated, writable
        self.ro = f"{self.dir}/ro"  # read-only bind mount of layers: what the unions see
        self.runs = f"{self.dir}/runs"
        self.mnts = f"{self.dir}/mnt"
        self.repo = os.path.abspath(args.repo)
        self.impls = args.only
        self.bins = {"strata": args.strata_bin, "strata-rl": args.strata_bin, "fo110": args.fo110_bin,
                     "fo20": args.fo20_bin}
        self.mounted = []  # [(impl, mnt)]
        self.own_mounts = []  # bind mounts etc. to undo at exit
        self.meta = {}
        self.samples = {}  # metric -> impl -> [values]
        self.errors = {}  # metric -> impl -> message
        self.notes = []
        self.helper = None
        self.big_size = max(MiB, int(GiB * args.size_scale) // MiB * MiB)
        self.dog, self.dog_args = None, None
        self.reqs = {}  # metric -> impl -> [{"total", "ops", "entries", "seconds"}]
        self.counting_off = "disabled by --no-count" if args.no_count else None
        self.counters = []  # live ReqCounters, stopped at cleanup
        self.fmt = {"big": "1 GiB", "real": "~125k", "real_rm": "~24k", "rm_dir": "usr/share/man",
                    "rootfs": "~10k"}  # label placeholders, filled in when the layers are known

    # --- layers

    def layer(self, name, gen, *gen_args, version=GEN_VERSION, deps=()):
        """Generates layers/<name> once (atomically, stamped with its generator's version) and
        returns its path under the read-only bind mount, plus the stamp's metadata: what the
        generator returned (a dict, e.g. entry counts) and "generated", its time. deps: stamps
        of the layers it was derived from; when one of them is regenerated, so is this one."""
        stamp = f"{self.layers}/.stamps/{name}.json"
        path = f"{self.layers}/{name}"
        dep_ids = [d.get("generated") for d in deps]
        try:
            with open(stamp) as f:
                meta = json.load(f)
            if meta.get("version") == version and meta.get("deps", []) == dep_ids and os.path.exists(path):
                return f"{self.ro}/{name}", meta
        except (OSError, ValueError):
            pass
        log(f"generating layer {name} ...")
        t0 = time.perf_counter()
        tmp = f"{path}.tmp"
        rmtree(tmp)
        rmtree(path)
        os.makedirs(tmp)
        extra = gen(tmp, *gen_args)
        os.rename(tmp, path)
        meta = {"version": version, "generated": f"{time.time():.6f}"}
        if dep_ids:
            meta["deps"] = dep_ids
        if isinstance(extra, dict):
            meta.update(extra)
        os.makedirs(os.path.dirname(stamp), exist_ok=True)
        with open(stamp + ".tmp", "w") as f:
            json.dump(meta, f)
        os.sync()
        os.rename(stamp + ".tmp", stamp)
        log(f"generated {name} in {time.perf_counter() - t0:.1f}s")
        return f"{self.ro}/{name}", meta

    def expected(self, key, layer_names):
        """Merged entry count of layer_names (top first), cached in layers/.stamps."""
        path = f"{self.layers}/.stamps/count-{key}.json"
        try:
            with open(path) as f:
                m = json.load(f)
            if m.get("version") == GEN_VERSION:
                return m["count"]
        except (OSError, ValueError, KeyError):
            pass
        n = merged_entries([f"{self.layers}/{x}" for x in layer_names])
        with open(path, "w") as f:
            json.dump({"version": GEN_VERSION, "count": n}, f)
        return n

    def prepare(self):
        for d in (self.layers, self.runs, self.mnts, self.ro):
            os.makedirs(d, exist_ok=True)
        # Layers are shared read-only by every implementation: a read-only bind mount
        # makes any write to a lower layer fail loudly (EROFS) instead of skewing runs.
        if not mount_entry(self.ro):
            subprocess.run(["mount", "--bind", self.layers, self.ro], check=True)
            subprocess.run(["mount", "-o", "remount,bind,ro", self.ro], check=True)
            self.own_mounts.append(self.ro)
        os.makedirs(f"{self.layers}/empty", exist_ok=True)
        self.build_helper()

    def build_helper(self):
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_helper.c")
        digest = hashlib.sha256(open(src, "rb").read()).hexdigest()[:16]
        out = os.path.join(self.a.cache_dir, f"bench_helper-{digest}")
        if not os.path.exists(out):
            os.makedirs(self.a.cache_dir, exist_ok=True)
            subprocess.run(["gcc", "-O2", "-Wall", "-o", out + ".tmp", src], check=True)
            os.rename(out + ".tmp", out)
        self.helper = out

    # --- mounting

    def mount_cmd(self, impl, opts, mnt):
        if impl == "kernel":
            return ["mount", "-t", "overlay", "overlay", "-o", opts, mnt]
        if impl in STRATA_IMPLS:
            if impl in EXTRA_OPTS:
                opts += "," + EXTRA_OPTS[impl]
            return [self.bins[impl], "mount", "-o", opts, mnt]
        return [self.bins[impl], "-o", opts, mnt]

    def mount(self, impl, lowers, tag="u", extra="", cwd=None):
        """Fresh upper/work + mount. Returns (mnt, upper, mount seconds). Relative lowers are
        resolved against cwd (kernel overlayfs takes the options in one page: 500 layers)."""
        if impl in STRATA_IMPLS and self.a.strata_error:
            raise Failed(self.a.strata_error)
        self.rearm_watchdog()
        rd = f"{self.runs}/{impl}"
        rmtree(rd)
        upper, work, mnt = f"{rd}/upper", f"{rd}/work", f"{self.mnts}/{impl}"
        os.makedirs(upper)
        os.makedirs(work)
        os.makedirs(mnt, exist_ok=True)
        if mount_entry(mnt):
            self.umount(impl, mnt)
        opts = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}" + (f",{extra}" if extra else "")
        cmd = self.mount_cmd(impl, opts, mnt)
        parent_dev = os.stat(self.mnts).st_dev
        t0 = time.perf_counter()
        try:
            run(cmd, timeout=self.a.mount_timeout, stdout=subprocess.DEVNULL, cwd=cwd)
        except Failed as e:
            if mount_entry(mnt):
                self.mounted.append((impl, mnt))
                self.umount(impl, mnt)
            raise Failed(f"mount failed: {e}")
        # live = visible in mountinfo with the right type and answering a stat of its root
        want = "overlay" if impl == "kernel" else "fuse"
        deadline = time.perf_counter() + 10
        while True:
            ent = mount_entry(mnt)
            if ent and ent[0].startswith(want):
                break
            if time.perf_counter() > deadline:
                raise Failed(f"mount command exited 0 but {mnt} is not a {want} mount: {short(cmd)}")
            time.sleep(0.0005)
        self.mounted.append((impl, mnt))
        st = os.stat(mnt)
        elapsed = time.perf_counter() - t0
        if st.st_dev == parent_dev:
            raise Failed(f"{mnt} still shows the parent file system after mount")
        return mnt, upper, elapsed

    def umount(self, impl, mnt):
        pid = find_daemon(mnt) if impl != "kernel" else None
        if impl == "kernel":
            cmds = [["umount", mnt]]
        elif impl in STRATA_IMPLS:
            cmds = [[self.bins[impl], "umount", mnt], ["fusermount3", "-u", mnt]]
        else:
            cmds = [["fusermount3", "-u", mnt]]
        ok = False
        for cmd in cmds:
            try:
                run(cmd, timeout=30, mnt=mnt)
                ok = not mount_entry(mnt)
                if ok:
                    break
            except Failed as e:
                log(f"{LABEL[impl]}: unmount: {e}")
        if not ok and mount_entry(mnt):
            abort_fuse(mnt)
            subprocess.run(["umount", "-l", mnt], stderr=subprocess.DEVNULL)
            self.notes.append(f"{LABEL[impl]}: needed a lazy unmount of {mnt}")
        self.mounted = [m for m in self.mounted if m[1] != mnt]
        if pid:  # let the daemon finish so its teardown does not overlap the next run
            deadline = time.time() + 10
            while os.path.exists(f"/proc/{pid}") and time.time() < deadline:
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        if f.read().split(")")[-1].split()[0] == "Z":
                            break
                except OSError:
                    break
                time.sleep(0.01)
            if os.path.exists(f"/proc/{pid}/status") and proc_status(pid):
                log(f"{LABEL[impl]}: daemon {pid} still alive 10s after unmount; killing it")
                self.notes.append(f"{LABEL[impl]}: daemon outlived its unmount by >10s (killed)")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def arm_watchdog(self, impl, name, secs):
        """Watchdog: the harness's own syscalls (stat, open, listdir, sync) on a hung FUSE mount
        have no timeout; aborting the connection unblocks them. Re-armed by every mount, so that
        the generation of layers before the first mount does not count."""
        self.disarm_watchdog()
        self.dog_args = (impl, name, secs)
        self.dog = threading.Timer(secs, self.watchdog, args=self.dog_args)
        self.dog.daemon = True
        self.dog.start()

    def rearm_watchdog(self):
        if self.dog_args:
            self.arm_watchdog(*self.dog_args)

    def disarm_watchdog(self):
        if self.dog:
            self.dog.cancel()
        self.dog, self.dog_args = None, None

    def watchdog(self, impl, name, secs):
        for i, m in list(self.mounted):
            if i == impl:
                log(f"watchdog: {name} on {LABEL[impl]} still running {secs:.0f}s after its last mount; "
                    f"aborting the FUSE connection of {m}")
                self.notes.append(f"{LABEL[impl]}: {name} hung; the watchdog aborted its FUSE connection")
                abort_fuse(m)

    def finish_run(self, impl):
        for i, m in list(self.mounted):
            if i == impl:
                self.umount(i, m)
        rmtree(f"{self.runs}/{impl}")

    def cleanup(self):
        self.disarm_watchdog()
        if CURRENT_CHILD and CURRENT_CHILD.poll() is None:
            try:
                os.killpg(CURRENT_CHILD.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for c in list(self.counters):
            c.kill()
        for impl, mnt in list(reversed(self.mounted)):
            try:
                self.umount(impl, mnt)
            except Exception as e:  # never leave a mount behind
                log(f"cleanup: {e}")
                subprocess.run(["umount", "-l", mnt], stderr=subprocess.DEVNULL)
        for mp, _, _ in reversed(mountinfo()):
            if mp.startswith(self.mnts + "/"):
                abort_fuse(mp)
                subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
        for m in reversed(self.own_mounts):
            subprocess.run(["umount", m], stderr=subprocess.DEVNULL)
        rmtree(self.runs)

    # --- recording

    def record(self, metric, impl, value):
        self.samples.setdefault(metric, {}).setdefault(impl, []).append(value)

    def fail(self, metrics, impl, msg):
        for m in metrics:
            self.errors.setdefault(m, {}).setdefault(impl, msg)

    @contextlib.contextmanager
    def counting(self, impl, metric, mnt, entries):
        """Counts the FUSE requests the daemon behind mnt is sent while the block runs (nothing
        for kernel overlayfs) and records them, with the block's wall time, under metric:
        entries is what the block works on (files walked, calls made), for requests per entry;
        the block may set it later in the dict it is given. Nothing is recorded when it raises."""
        rec = {"entries": entries}
        if impl == "kernel" or self.counting_off:
            yield rec
            return
        try:
            c = ReqCounter(self, mnt)
            c.start()
        except (Failed, OSError) as e:
            self.counting_off = f"request counting failed, and is off for the rest of the run: {e}"
            self.notes.append(self.counting_off)
            log(self.counting_off)
            yield rec
            return
        ok = False
        t0 = time.perf_counter()
        try:
            yield rec
            ok = True
        finally:
            secs = time.perf_counter() - t0
            try:
                res = c.stop()
            except (Failed, OSError) as e:
                res = None
                log(f"request counting: {e}")
                self.notes.append(f"{LABEL[impl]}: requests of {metric} not counted: {e}")
        if ok and res:
            total, ops = res
            self.reqs.setdefault(metric, {}).setdefault(impl, []).append(
                {"total": total, "ops": ops, "entries": rec["entries"], "seconds": secs})


# ----------------------------------------------------------------------------- workloads
# Each workload: fn(bench, impl) -> {metric: value}; raises Failed/Skip.


def walk(b, mnt, expected, timeout, count=None):
    """find(1) printing st_size forces an lstat of every entry. Returns seconds. count:
    (impl, metric) to count the walk's FUSE requests under metric."""
    with b.counting(*count, mnt, expected) if count else contextlib.nullcontext():
        t, out, _ = timed(["find", mnt, "-printf", "%s\n"], timeout=timeout, mnt=mnt)
    n = count_lines(out) - 1
    if n != expected:
        raise Failed(f"walk saw {n} entries, expected {expected}")
    return t


def walk_layers(b):
    w1, _ = b.layer("walk1", gen_walk1)
    w2, _ = b.layer("walk2", gen_walk2)
    return [w2, w1], b.expected("walk", ["walk2", "walk1"])


def wl_walk_cold(b, impl):
    lowers, n = walk_layers(b)
    mnt, _, _ = b.mount(impl, lowers)
    drop_caches()
    return {"walk_cold": walk(b, mnt, n, b.a.timeout, count=(impl, "walk_cold"))}


def wl_walk_warm(b, impl):
    lowers, n = walk_layers(b)
    mnt, _, _ = b.mount(impl, lowers)
    walk(b, mnt, n, b.a.timeout)
    sync()
    return {"walk_warm": walk(b, mnt, n, b.a.timeout, count=(impl, "walk_warm"))}


def ls_lr(b, impl, metric, mnt, n, flags="-lR"):
    with b.counting(impl, metric, mnt, n):
        t, out, _ = timed(["ls", flags, mnt], timeout=b.a.timeout, mnt=mnt)
    entries = sum(1 for line in out.splitlines() if line and line[:1] in b"-dlcbps")
    if entries != n:
        raise Failed(f"ls {flags} listed {entries} entries, expected {n}")
    return t


def wl_ls_warm(b, impl):
    lowers, n = walk_layers(b)
    mnt, _, _ = b.mount(impl, lowers)
    walk(b, mnt, n, b.a.timeout)
    sync()
    return {"ls_warm": ls_lr(b, impl, "ls_warm", mnt, n)}


def big_layer(b):
    mb = b.big_size // MiB
    return b.layer(f"big-{mb}M", gen_big, b.big_size)[0]


def warm_file(path):
    with open(path, "rb", buffering=0) as f:
        while f.read(4 * MiB):
            pass


def wl_seq_read(b, impl):
    lower = big_layer(b)
    warm_file(f"{lower}/big.bin")  # data in the lower page cache: measures the union, not the disk
    mnt, _, _ = b.mount(impl, [lower])
    sync()
    with b.counting(impl, "seq_read", mnt, b.big_size // MiB):
        t, _, err = timed(["dd", f"if={mnt}/big.bin", "of=/dev/null", "bs=1M"], timeout=b.a.timeout, mnt=mnt)
    nbytes = int(err.decode().strip().splitlines()[-1].split()[0])
    if nbytes != b.big_size:
        raise Failed(f"read {nbytes} bytes, expected {b.big_size}")
    return {"seq_read": nbytes / MiB / t}


def wl_seq_write(b, impl):
    empty = f"{b.ro}/empty"
    mnt, _, _ = b.mount(impl, [empty])
    sync()
    count = b.big_size // MiB
    with b.counting(impl, "seq_write", mnt, count):
        t, _, _ = timed(["dd", "if=/dev/zero", f"of={mnt}/out.bin", "bs=1M", f"count={count}", "conv=fsync"],
                        timeout=b.a.timeout, mnt=mnt)
    dirty = meminfo_dirty_kb()
    size = os.stat(f"{mnt}/out.bin").st_size
    if size != b.big_size:
        raise Failed(f"wrote file of {size} bytes, expected {b.big_size}")
    if dirty * 1024 > b.big_size // 4:
        b.notes.append(f"{LABEL[impl]}: {dirty // 1024} MiB still dirty/under writeback right after "
                       f"`dd conv=fsync` returned: fsync may not reach the upper file")
    return {"seq_write": b.big_size / MiB / t}


def wl_randrw(b, impl):
    empty = f"{b.ro}/empty"
    mnt, _, _ = b.mount(impl, [empty])
    size = max(16, int(256 * b.a.size_scale))
    sync()
    with b.counting(impl, "randrw", mnt, 1) as rec:
        out, _ = run(["fio", "--name=randrw", f"--filename={mnt}/fio.dat", f"--size={size}M", "--rw=randrw",
                      "--rwmixread=70", "--bs=4k", "--ioengine=psync", "--direct=0", "--invalidate=0",
                      "--fallocate=none", f"--runtime={b.a.fio_runtime}", "--time_based", "--randrepeat=1",
                      "--output-format=json"], timeout=b.a.fio_runtime + b.a.timeout, mnt=mnt)
        data = json.loads(out[out.index(b"{"):])
        job = data["jobs"][0]
        rec["entries"] = max(1, job["read"].get("total_ios", 0) + job["write"].get("total_ios", 0))
    if job.get("error"):
        raise Failed(f"fio error {job['error']}")
    iops = job["read"]["iops"] + job["write"]["iops"]
    if iops <= 0:
        raise Failed("fio reported 0 IOPS")
    return {"randrw": iops}


def wl_create_delete(b, impl):
    empty = f"{b.ro}/empty"
    mnt, _, _ = b.mount(impl, [empty])
    sync()
    with b.counting(impl, "create20k", mnt, 20000):
        out, _ = run([b.helper, "mkfiles", f"{mnt}/cd", "20", "1000", "100"], timeout=b.a.timeout, mnt=mnt)
    ns_c, n, _ = (int(x) for x in out.split())
    seen = sum(len(os.listdir(f"{mnt}/cd/{d}")) for d in os.listdir(f"{mnt}/cd"))
    if n != 20000 or seen != 20000:
        raise Failed(f"created {n}, listed {seen}, expected 20000")
    sync()
    with b.counting(impl, "delete20k", mnt, 20000):
        out, _ = run([b.helper, "rmfiles", f"{mnt}/cd", "20", "1000"], timeout=b.a.timeout, mnt=mnt)
    ns_d, n, _ = (int(x) for x in out.split())
    if os.path.lexists(f"{mnt}/cd") or os.listdir(mnt):
        raise Failed(f"after delete the union still shows {os.listdir(mnt)}")
    return {"create20k": ns_c / 1e9, "delete20k": ns_d / 1e9}


def wl_rm_rf(b, impl):
    lower, _ = b.layer("rmt", gen_rmt)
    run(["find", f"{lower}/rmtree", "-printf", ""])  # warm the lower's dentries/inodes
    mnt, _, _ = b.mount(impl, [lower])
    sync()
    # fresh mount, no pre-walk: rm -rf does its own readdir/lstat of the 24,001 entries
    with b.counting(impl, "rm_rf", mnt, 24001):
        t, out, _ = timed(["rm", "-rfv", f"{mnt}/rmtree"], timeout=b.a.timeout, mnt=mnt)
    if count_lines(out) != 24001:
        raise Failed(f"rm -rfv reported {count_lines(out)} removals, expected 24001")
    if os.path.lexists(f"{mnt}/rmtree") or os.listdir(mnt):
        raise Failed(f"after rm -rf the union still shows {os.listdir(mnt)}")
    return {"rm_rf": t}


def wl_untar(b, impl):
    tarball = f"{b.layers}/src.tar"
    if not os.path.exists(tarball):
        gen_srctar(tarball + ".tmp")
        os.rename(tarball + ".tmp", tarball)
    warm_file(tarball)
    mnt, _, _ = b.mount(impl, [f"{b.ro}/empty"])
    sync()
    with b.counting(impl, "untar", mnt, 220):
        t, _, _ = timed(["tar", "-xf", tarball, "-C", mnt], timeout=b.a.timeout, mnt=mnt)
    n = sum(len(fs) for _, _, fs in os.walk(f"{mnt}/srctree"))
    if n != 200:
        raise Failed(f"untar produced {n} files, expected 200")
    return {"untar": t * 1000}


def wl_make(b, impl):
    lower, _ = b.layer("proj", gen_proj)
    if not getattr(b, "make_warm", False):  # load gcc & co. into the page cache once
        tmp = f"{b.runs}/make-warm"
        rmtree(tmp)
        shutil.copytree(f"{lower}/proj", tmp)
        run(["make", "-s", "-j2", "-C", tmp], timeout=b.a.timeout)
        rmtree(tmp)
        b.make_warm = True
    mnt, _, _ = b.mount(impl, [lower])
    sync()
    with b.counting(impl, "make", mnt, NPROJ + 1):
        t, _, _ = timed(["make", "-s", "-j2", "-C", f"{mnt}/proj"], timeout=b.a.timeout, mnt=mnt)
    try:
        out, _ = run([f"{mnt}/proj/app"], timeout=60, mnt=mnt)
    except OSError as e:
        raise Failed(f"make succeeded but exec of the built program failed: {e}")
    if out.decode() != proj_expected():
        raise Failed(f"built program printed {out!r}, expected {proj_expected()!r}")
    return {"make": t}


def chmod_run(b, impl, extra="", metric="chmod"):
    lower, _ = b.layer("chmod", gen_chmod)
    run(["find", f"{lower}/ctree", "-printf", ""])
    mnt, _, _ = b.mount(impl, [lower], extra=extra)
    sync()
    with b.counting(impl, metric, mnt, 10101):
        t, _, _ = timed(["chmod", "-R", "o-r", f"{mnt}/ctree"], timeout=b.a.timeout, mnt=mnt)
    modes, _ = run(["find", f"{mnt}/ctree", "-type", "f", "-printf", "%m\n"], timeout=b.a.timeout, mnt=mnt)
    modes = modes.split()
    if len(modes) != 10000 or any(m != b"640" for m in modes):
        raise Failed(f"after chmod: {len(modes)} files (want 10000), "
                     f"{sum(m != b'640' for m in modes)} not mode 640")
    for p in ("d000/f000", "d057/f042", "d099/f099"):
        with open(f"{mnt}/ctree/{p}", "rb") as f, open(f"{lower}/ctree/{p}", "rb") as g:
            if f.read() != g.read():
                raise Failed(f"content of ctree/{p} changed by chmod")
    return t


def wl_chmod(b, impl):
    return {"chmod": chmod_run(b, impl)}


def wl_chmod_metacopy(b, impl):
    try:
        return {"chmod_meta": chmod_run(b, impl, extra="metacopy=on", metric="chmod_meta")}
    except Failed as e:
        if "mount failed" in str(e):
            raise Skip(f"{LABEL[impl]} refused metacopy=on: {e}")
        raise


def wl_append(b, impl):
    lower = big_layer(b)
    warm_file(f"{lower}/big.bin")
    mnt, _, _ = b.mount(impl, [lower])
    sync()
    with b.counting(impl, "append", mnt, 1):
        t0 = time.perf_counter()
        with open(f"{mnt}/big.bin", "ab") as f:
            f.write(b"x")
        t = time.perf_counter() - t0
    st = os.stat(f"{mnt}/big.bin")
    with open(f"{mnt}/big.bin", "rb") as f:
        head = f.read(4096)
        f.seek(b.big_size - 4095)
        tail = f.read()
    with open(f"{lower}/big.bin", "rb") as g:
        lhead = g.read(4096)
        g.seek(b.big_size - 4095)
        ltail = g.read()
    if st.st_size != b.big_size + 1 or head != lhead or tail != ltail + b"x":
        raise Failed(f"after append: size {st.st_size} (want {b.big_size + 1}) or content differs")
    if os.stat(f"{lower}/big.bin").st_size != b.big_size:
        raise Failed("the lower file changed")
    return {"append": t}


def settle_rss(pid, secs=3.0):
    """VmRSS after it stops shrinking (FORGETs after drop_caches arrive asynchronously)."""
    last, t_end = None, time.time() + secs
    while time.time() < t_end:
        cur = proc_status(pid).get("VmRSS")
        if cur is not None and last is not None and cur >= last and time.time() > t_end - secs + 1:
            break
        last = cur
        time.sleep(0.25)
    return proc_status(pid).get("VmRSS", last)


def wl_rss_walk(b, impl):
    if impl == "kernel":
        raise Skip("no daemon")
    lowers, _ = walk_layers(b)
    x, _ = b.layer("rssx", gen_rssx)
    n = b.expected("rss", ["rssx", "walk2", "walk1"])
    mnt, _, _ = b.mount(impl, [x] + lowers)
    time.sleep(0.3)
    pid = find_daemon(mnt)
    if not pid:
        raise Failed(f"could not find the daemon process of {mnt}")
    start = proc_status(pid)
    walk(b, mnt, n, b.a.timeout)
    after = proc_status(pid)
    drop_caches()
    dropped = settle_rss(pid)
    kb = 1024.0
    return {"rss_start": start["VmRSS"] / kb, "rss_walk": after["VmRSS"] / kb,
            "hwm_walk": after["VmHWM"] / kb, "rss_drop": dropped / kb}


def wl_rss_bigdir(b, impl):
    lower, _ = b.layer("bigdir", gen_bigdir)
    mnt, _, _ = b.mount(impl, [lower])
    pid = find_daemon(mnt) if impl != "kernel" else None
    if impl != "kernel" and not pid:
        raise Failed(f"could not find the daemon process of {mnt}")
    sync()
    with b.counting(impl, "bigdir_ls", mnt, 100000):
        t, out, _ = timed(["ls", "-lU", f"{mnt}/bigdir"], timeout=b.a.timeout, mnt=mnt)
    n = count_lines(out) - 1  # minus the "total" line
    if n != 100000:
        raise Failed(f"ls -lU listed {n} entries, expected 100000")
    res = {"bigdir_ls": t}
    if pid:
        st = proc_status(pid)
        res.update({"bigdir_rss": st["VmRSS"] / 1024.0, "bigdir_hwm": st["VmHWM"] / 1024.0})
    return res


def wl_layers100(b, impl):
    """Each batch (top-layer names, bottom-layer names) gets its own fresh mount and a
    drop_caches, so neither profits from what the other loaded into the daemon or kernel.
    The first mount also reads the mount command's executable from disk (as the first mount
    after boot does); before the second, the executable is run once (`--version`), so that
    its mount time is the mount's own work on cold layers (as for an engine that mounts often)."""
    root, _ = b.layer("m", gen_many)
    lowers = [f"{root}/{i:02d}" for i in range(100)]
    res = {}
    for key, prefix in (("l100_top", "t"), ("l100_bottom", "b")):
        drop_caches()
        if key == "l100_bottom":
            exe = "mount" if impl == "kernel" else b.bins[impl]
            run([exe, "--version"], timeout=60, stdout=subprocess.DEVNULL)
        mnt, _, t_mount = b.mount(impl, lowers)
        res["l100_mount" if key == "l100_bottom" else "l100_mount_cold"] = t_mount * 1000
        names = os.listdir(mnt)
        if len(names) != 101:  # d + f00..f99
            raise Failed(f"root of the 100-layer union lists {len(names)} entries, expected 101")
        drop_caches()
        with b.counting(impl, key, mnt, 2000):
            out, _ = run([b.helper, "statfiles", f"{mnt}/d", prefix, "2000"], timeout=b.a.timeout, mnt=mnt)
        ns, ok, fails = (int(x) for x in out.split())
        if ok != 2000:
            raise Failed(f"{fails} of 2000 stats of d/{prefix}* failed")
        res[key] = ns / 1000.0 / 2000
        b.finish_run(impl)
    res["l100_ratio"] = res["l100_bottom"] / res["l100_top"]
    return res


def wl_startup(b, impl):
    if impl != "strata":
        raise Skip("strata only")
    if b.a.strata_error:
        raise Failed(b.a.strata_error)
    strata = b.bins["strata"]
    h = subprocess.run([strata, "run", "--help"], capture_output=True)
    if h.returncode != 0 or b"--rootfs" not in h.stdout + h.stderr:
        raise Skip("`strata run --help` fails or has no --rootfs: launcher not available yet")
    rootfs, _ = b.layer("rootfs", gen_rootfs)
    cmd = [strata, "run", "--rootfs", rootfs, "--", "/bin/true"]
    run(cmd, timeout=60)  # warm-up
    times = []
    for _ in range(20):
        t, _, _ = timed(cmd, timeout=60)
        times.append(t * 1000)
    return {"startup": statistics.median(times)}


# ----------------------------------------------------------------------------- floor and real tree


def gen_floor(root):
    wfile(f"{root}/f", b"floor\n")


def wl_floor(b, impl):
    """The cost of one request that does nothing: getxattr of a user.* name that does not
    exist (every implementation answers ENODATA after a lookup of the name in the lower file's
    xattrs); and statx(AT_STATX_FORCE_SYNC), which bypasses the attribute cache: a GETATTR
    (an lstat of the lower file in the daemon) per call. For kernel overlayfs: the in-kernel
    cost of the same calls."""
    lower, _ = b.layer("floor", gen_floor)
    mnt, _, _ = b.mount(impl, [lower])
    n = b.a.floor_calls
    res = {}
    for metric, sub in (("floor_us", "floor"), ("floor_getattr_us", "floorstat")):
        run([b.helper, sub, f"{mnt}/f", "1000"], timeout=b.a.timeout, mnt=mnt)  # warm-up
        with b.counting(impl, metric, mnt, n):
            out, _ = run([b.helper, sub, f"{mnt}/f", str(n)], timeout=b.a.timeout, mnt=mnt)
        ns, ok, fails = (int(x) for x in out.split())
        if ok != n:
            what = "getxattr did not fail with ENODATA" if sub == "floor" else "statx failed"
            raise Failed(f"{sub}: {what} in {fails} of {n} calls")
        res[metric] = ns / 1000.0 / n
        got = b.reqs.get(metric, {}).get(impl)
        if got and got[-1]["total"] < 0.9 * n:
            b.notes.append(f"{LABEL[impl]}: {METRICS[metric][0].split(':')[0]} took {got[-1]['total'] / n:.2f} "
                           f"requests per call, not 1: it is not a round-trip floor")
    return res


def real_layers(b):
    """([real2, real1] under the ro bind mount, real2's stamp)."""
    r1, m1 = b.layer("real1", gen_real1, version=REAL_VERSION)
    r2, m2 = b.layer("real2", gen_real2, f"{b.layers}/real1", version=REAL_VERSION, deps=[m1])
    b.fmt.update(real=f"{m2['merged_entries']:,}", real_rm=f"{m2['rm_entries'] + 1:,}", rm_dir=m2["rm_dir"])
    b.meta["real tree"] = (f"{m1['source']}, files over 8 MiB left out ({m1['left_out_big']}): "
                           f"real1 {m1['entries']:,} entries; real2 over it shadows {m2['shadows']:,} files, "
                           f"whites out {m2['whiteouts']}, adds {m2['added']:,}, makes {m2['opaque_dir']} opaque: "
                           f"{m2['merged_entries']:,} merged entries")
    return [r2, r1], m2


def wl_real_walk_cold(b, impl):
    lowers, m = real_layers(b)
    n = m["merged_entries"]
    mnt, _, _ = b.mount(impl, lowers)
    drop_caches()
    return {"real_walk_cold": walk(b, mnt, n, b.a.timeout, count=(impl, "real_walk_cold"))}


def wl_real_walk_warm(b, impl):
    lowers, m = real_layers(b)
    n = m["merged_entries"]
    mnt, _, _ = b.mount(impl, lowers)
    walk(b, mnt, n, b.a.timeout)
    sync()
    return {"real_walk_warm": walk(b, mnt, n, b.a.timeout, count=(impl, "real_walk_warm"))}


def wl_real_ls_warm(b, impl):
    lowers, m = real_layers(b)
    n = m["merged_entries"]
    mnt, _, _ = b.mount(impl, lowers)
    walk(b, mnt, n, b.a.timeout)
    sync()
    # -A: the real tree has dot files and dot dirs (usr/lib/debug/.build-id)
    return {"real_ls_warm": ls_lr(b, impl, "real_ls_warm", mnt, n, flags="-lRA")}


def wl_real_rm_rf(b, impl):
    lowers, m = real_layers(b)
    rm_dir, want = m["rm_dir"], m["rm_entries"] + 1
    for lower in lowers:  # warm the lowers' dentries/inodes
        if os.path.isdir(f"{lower}/{rm_dir}"):
            run(["find", f"{lower}/{rm_dir}", "-printf", ""], timeout=b.a.timeout)
    mnt, _, _ = b.mount(impl, lowers)
    sync()
    # fresh mount, no pre-walk: rm -rf does its own readdir/lstat of the merged subtree
    with b.counting(impl, "real_rm_rf", mnt, want):
        t, out, _ = timed(["rm", "-rfv", f"{mnt}/{rm_dir}"], timeout=b.a.timeout, mnt=mnt)
    if count_lines(out) != want:
        raise Failed(f"rm -rfv reported {count_lines(out)} removals, expected {want}")
    if os.path.lexists(f"{mnt}/{rm_dir}"):
        raise Failed(f"after rm -rf the union still shows {rm_dir}")
    if not os.path.isdir(f"{mnt}/{os.path.dirname(rm_dir)}"):
        raise Failed(f"after rm -rf of {rm_dir} its parent is gone")
    return {"real_rm_rf": t}


def wl_real_untar(b, impl):
    tarball, tm = rootfs_tarball(b)
    b.fmt["rootfs"] = f"{tm['entries']:,}"
    b.meta["rootfs tarball"] = f"{os.path.basename(tarball)}: {tm['source']}; {tm['entries']:,} entries, " \
                               f"{tm['bytes'] / MiB:.0f} MiB"
    if os.path.basename(tarball).startswith(ROOTFS_TARS[1]):
        b.notes.append(f"real-untar: no debootstrap rootfs, untars {tm['source']}")
    lowers, _ = real_layers(b)
    warm_file(tarball)
    mnt, _, _ = b.mount(impl, lowers)
    dest = f"{mnt}/untar"
    os.mkdir(dest)
    sync()
    with b.counting(impl, "real_untar", mnt, tm["entries"]):
        t, _, _ = timed(["tar", "-xf", tarball, "-C", dest], timeout=b.a.timeout, mnt=mnt)
    out, _ = run(["find", dest, "-printf", "."], timeout=b.a.timeout, mnt=mnt)
    if len(out) - 1 != tm["entries"]:
        raise Failed(f"untar produced {len(out) - 1} entries, expected {tm['entries']}")
    return {"real_untar": t}


def wl_real_rss(b, impl):
    if impl == "kernel":
        raise Skip("no daemon")
    lowers, m = real_layers(b)
    n = m["merged_entries"]
    mnt, _, _ = b.mount(impl, lowers)
    time.sleep(0.3)
    pid = find_daemon(mnt)
    if not pid:
        raise Failed(f"could not find the daemon process of {mnt}")
    start = proc_status(pid)
    walk(b, mnt, n, b.a.timeout)
    after = proc_status(pid)
    drop_caches()
    dropped = settle_rss(pid)
    kb = 1024.0
    return {"real_rss_start": start["VmRSS"] / kb, "real_rss_walk": after["VmRSS"] / kb,
            "real_hwm_walk": after["VmHWM"] / kb, "real_rss_drop": dropped / kb}


# ----------------------------------------------------------------------------- scaling (opt-in)
# Each workload runs the same shape at two sizes, 10x apart, and reports the ratio of the two
# ("growth": 10 = linear, 1 = flat), for time and daemon memory.


def gen_tree(root, helper, ntop):
    """tree/dNNN/dNNN/fNNNNN: ntop x 100 dirs of 100 empty files (10: 101,011 entries, 100: 1,010,101)."""
    run([helper, "mktree", f"{root}/tree", str(ntop), "100", "100"], timeout=7200)
    return {"entries": 1 + ntop + ntop * 100 + ntop * 100 * 100}


def gen_flat(root, helper, n):
    """bigdir/eNNNNNNN: n empty files in one directory."""
    run([helper, "mkflat", f"{root}/bigdir", str(n)], timeout=7200)
    return {"entries": n + 1}


def scale_timeout(b):
    return b.a.timeout * 4


def growth(res, key, big, small):
    if res.get(small) and res.get(big) is not None:
        res[key] = res[big] / res[small]


def daemon_of(b, impl, mnt):
    if impl == "kernel":
        return None
    time.sleep(0.3)
    pid = find_daemon(mnt)
    if not pid:
        raise Failed(f"could not find the daemon process of {mnt}")
    return pid


def wl_scale_walk(b, impl):
    """A 1,010,101-entry tree (100 x 100 dirs of 100 files) and the same shape at 101,011
    (10 x 100 x 100): a first walk on a fresh mount (the lower's inodes cached), a second
    (warm) walk, the daemon's VmRSS/VmHWM after them."""
    res, grew = {}, {}
    t = scale_timeout(b)
    for tag, ntop in (("100k", 10), ("1m", 100)):
        lower, m = b.layer(f"swalk-{tag}", gen_tree, b.helper, ntop, version=SCALE_VERSION)
        n = m["entries"]
        run(["find", lower, "-printf", ""], timeout=t)
        mnt, _, _ = b.mount(impl, [lower])
        pid = daemon_of(b, impl, mnt)
        start = proc_status(pid) if pid else {}
        res[f"sw_{tag}_first"] = walk(b, mnt, n, t, count=(impl, f"sw_{tag}_first"))
        res[f"sw_{tag}_warm"] = walk(b, mnt, n, t, count=(impl, f"sw_{tag}_warm"))
        if pid:
            st = proc_status(pid)
            res[f"sw_{tag}_rss"], res[f"sw_{tag}_hwm"] = st["VmRSS"] / 1024.0, st["VmHWM"] / 1024.0
            grew[tag] = (st["VmRSS"] - start["VmRSS"]) / 1024.0
        b.finish_run(impl)
    growth(res, "sw_first_growth", "sw_1m_first", "sw_100k_first")
    growth(res, "sw_warm_growth", "sw_1m_warm", "sw_100k_warm")
    if grew.get("100k", 0) > 0.5:
        res["sw_rss_growth"] = grew["1m"] / grew["100k"]
    return res


def wl_scale_layers(b, impl):
    """50 and 500 lower layers (kernel overlayfs' maximum), each with d/lNNN and fNNN, the top
    one with d/t00000..01999, the bottom one with d/b00000..01999; the lowerdirs are given
    relative to the layers' parent (cwd), since 500 absolute paths overflow the page of
    options mount(2) takes. Three fresh mounts per size, each after drop_caches: 2,000 stats
    of top-layer files; of bottom-layer files; a walk of the union (cold)."""
    res = {}
    t = scale_timeout(b)
    for n in (50, 500):
        root, _ = b.layer(f"m{n}", gen_many, n, 2000, 3, version=SCALE_VERSION)
        lowers = [f"{i:03d}" for i in range(n)]
        mounts = []
        for what in ("top", "bottom", "walk"):
            drop_caches()
            mnt, _, t_mount = b.mount(impl, lowers, cwd=root)
            mounts.append(t_mount * 1000)
            names = os.listdir(mnt)
            if len(names) != n + 1:  # d + fNNN
                raise Failed(f"root of the {n}-layer union lists {len(names)} entries, expected {n + 1}")
            drop_caches()
            key = f"sl_{n}_{what}"
            if what == "walk":
                pid = daemon_of(b, impl, mnt)
                res[key] = walk(b, mnt, 2 * n + 4001, t, count=(impl, key))
                if pid:
                    res[f"sl_{n}_rss"] = proc_status(pid)["VmRSS"] / 1024.0
            else:
                with b.counting(impl, key, mnt, 2000):
                    out, _ = run([b.helper, "statfiles", f"{mnt}/d", what[0], "2000"], timeout=t, mnt=mnt)
                ns, ok, fails = (int(x) for x in out.split())
                if ok != 2000:
                    raise Failed(f"{fails} of 2000 stats of d/{what[0]}* failed ({n} layers)")
                res[key] = ns / 1000.0 / 2000
            b.finish_run(impl)
        res[f"sl_{n}_mount"] = min(mounts)
    for what in ("mount", "top", "bottom", "walk", "rss"):
        growth(res, f"sl_{what}_growth", f"sl_500_{what}", f"sl_50_{what}")
    return res


def wl_scale_bigdir(b, impl):
    """One directory of 1,000,000 empty files and one of 100,000: on a fresh mount (the
    lower's inodes cached) `ls -f` (readdir only), then a stat walk; daemon VmRSS/VmHWM after."""
    res, grew = {}, {}
    t = scale_timeout(b)
    for tag, n in (("100k", 100000), ("1m", 1000000)):
        lower, _ = b.layer(f"sbig-{tag}", gen_flat, b.helper, n, version=SCALE_VERSION)
        run(["find", f"{lower}/bigdir", "-printf", ""], timeout=t)
        mnt, _, _ = b.mount(impl, [lower])
        pid = daemon_of(b, impl, mnt)
        start = proc_status(pid) if pid else {}
        with b.counting(impl, f"sb_{tag}_ls", mnt, n):
            secs, out, _ = timed(["ls", "-f", f"{mnt}/bigdir"], timeout=t, mnt=mnt)
        if count_lines(out) != n + 2:  # with . and ..
            raise Failed(f"ls -f listed {count_lines(out) - 2} entries, expected {n}")
        res[f"sb_{tag}_ls"] = secs
        res[f"sb_{tag}_stat"] = walk(b, mnt, n + 1, t, count=(impl, f"sb_{tag}_stat"))
        if pid:
            st = proc_status(pid)
            res[f"sb_{tag}_rss"], res[f"sb_{tag}_hwm"] = st["VmRSS"] / 1024.0, st["VmHWM"] / 1024.0
            grew[tag] = (st["VmRSS"] - start["VmRSS"]) / 1024.0
        b.finish_run(impl)
    growth(res, "sb_ls_growth", "sb_1m_ls", "sb_100k_ls")
    growth(res, "sb_stat_growth", "sb_1m_stat", "sb_100k_stat")
    if grew.get("100k", 0) > 0.5:
        res["sb_rss_growth"] = grew["1m"] / grew["100k"]
    return res


# ----------------------------------------------------------------------------- podman
# podman 4 / buildah with each implementation as containers-storage's overlay
# `mount_program` (kernel: native overlay, no mount_program), as root, each run in a
# private world (containers.conf + storage.conf under runs/IMPL/podman, netns none,
# pull_policy never, the image imported from a local busybox-static tar).

PODMAN_DIRS, PODMAN_FILES_PER_DIR = 30, 100  # the build context: 3,000 files of 1 KiB
PODMAN_CONTAINERFILE = """FROM localhost/bench:latest
COPY files /files
RUN for f in /files/d0*/f*; do echo modified >> "$f"; done && rm -r /files/d10 && \\
    mv /files/d11 /files/d11-moved && chmod -R go-r /files/d12 && chown -R 1234:5678 /files/d13
"""
# after the build: d10's 100 files gone, d00-d09 appended to, d13 chowned
PODMAN_CHECK = ("find /files -type f | wc -l; tail -n 1 /files/d00/f0000; stat -c %u:%g /files/d13/f0099; "
                "test -d /files/d11-moved && test ! -e /files/d11 && echo renamed")
PODMAN_EXPECT = f"{(PODMAN_DIRS - 1) * PODMAN_FILES_PER_DIR}\nmodified\n1234:5678\nrenamed\n"


def gen_podman(root):
    """rootfs.tar (busybox-static with every applet, owned by 0:0) and ctx/ (Containerfile
    and files/dNN/fNNNN)."""
    bb = "/bin/busybox"
    applets = subprocess.run([bb, "--list"], capture_output=True, check=True).stdout.decode().split()
    with tarfile.open(f"{root}/rootfs.tar", "w") as t:
        def add(name, kind, data=b"", mode=0o755, target=""):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = kind, mode, 0, 0, 1700000000
            if kind == tarfile.SYMTYPE:
                ti.linkname = target
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data) if data else None)
        for d in ("bin", "dev", "proc", "sys", "etc", "root", "run"):
            add(d, tarfile.DIRTYPE)
        add("tmp", tarfile.DIRTYPE, mode=0o1777)
        add("bin/busybox", tarfile.REGTYPE, open(bb, "rb").read())
        for a in applets:
            if a != "busybox":
                add(f"bin/{a}", tarfile.SYMTYPE, target="busybox", mode=0o777)
        add("etc/passwd", tarfile.REGTYPE, b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        add("etc/group", tarfile.REGTYPE, b"root:x:0:\n", 0o644)
    os.makedirs(f"{root}/ctx")
    wfile(f"{root}/ctx/Containerfile", PODMAN_CONTAINERFILE.encode())
    block = b"x" * 1023 + b"\n"
    for d in range(PODMAN_DIRS):
        os.makedirs(f"{root}/ctx/files/d{d:02d}")
        for i in range(PODMAN_FILES_PER_DIR):
            wfile(f"{root}/ctx/files/d{d:02d}/f{i:04d}", block)


class PodmanWorld:
    """A private podman configuration and storage for one implementation; close() runs
    `podman rm -af` and `podman system reset -f`, unmounts what is left and removes it."""

    def __init__(self, b, impl):
        if impl == "strata" and b.a.strata_error:
            raise Failed(b.a.strata_error)
        for tool in ("podman", "runc", "conmon"):
            if not shutil.which(tool):
                raise Skip(f"{tool} is not installed (apt-get install podman buildah runc conmon catatonit)")
        self.b = b
        self.dir = d = f"{b.runs}/{impl}/podman"
        rmtree(d)
        for sub in ("tmp", "vartmp", "net"):
            os.makedirs(f"{d}/{sub}")
        with open(f"{d}/containers.conf", "w") as f:
            f.write(f"""[containers]
netns = "none"
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
# not "file": a --rm container's asynchronous `podman container cleanup` writes tmp/events
# while `system reset` removes it
events_logger = "none"
runtime = "runc"
pull_policy = "never"
tmp_dir = "{d}/tmp"
volume_path = "{d}/root/volumes"
[network]
network_config_dir = "{d}/net"
""")
        mp = "" if impl == "kernel" else f'mount_program = "{b.bins[impl]}"\n'
        with open(f"{d}/storage.conf", "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\ngraphroot = "{d}/root"\nrunroot = "{d}/runroot"\n'
                    f'[storage.options.overlay]\n{mp}')
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": d, "TMPDIR": f"{d}/vartmp",
                    "CONTAINERS_CONF": f"{d}/containers.conf", "CONTAINERS_STORAGE_CONF": f"{d}/storage.conf"}
        self.src, _ = b.layer("podman", gen_podman)

    def podman(self, *args, timeout=None):
        return run(["podman", *args], timeout=timeout or self.b.a.timeout, env=self.env, cwd=self.dir)

    def timed(self, *args):
        t0 = time.perf_counter()
        out, _ = self.podman(*args)
        return time.perf_counter() - t0, out

    def procs(self):
        """Live processes whose command line names this world's directory."""
        out = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if (self.dir + "/").encode() not in f.read():
                        continue
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[-1].split()[0] == "Z":
                        continue
            except OSError:
                continue
            out.append(int(pid))
        return out

    def close(self):
        for args in (("rm", "-af", "-t", "0"), ("system", "reset", "-f")):
            try:
                self.podman(*args, timeout=120)
            except Failed as e:
                log(f"podman {' '.join(args)}: {e}")
        # conmon, `podman container cleanup` and FUSE daemons exit asynchronously: let them
        # finish so that they do not overlap the next implementation's run
        deadline = time.time() + 10
        while time.time() < deadline and (any(mp.startswith(self.dir + "/") for mp, _, _ in mountinfo())
                                          or self.procs()):
            time.sleep(0.1)
        for pid in self.procs():
            log(f"podman: killing leftover process {pid}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for mp, _, _ in reversed(mountinfo()):
            if mp.startswith(self.dir + "/"):
                log(f"podman: unmounting leftover {mp}")
                abort_fuse(mp)
                subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
        rmtree(self.dir)


def wl_podman_run(b, impl):
    w = PodmanWorld(b, impl)
    try:
        w.podman("import", "-q", f"{w.src}/rootfs.tar", "localhost/bench:latest")
        _, out = w.timed("run", "--rm", "localhost/bench:latest", "sh", "-c", "echo ok; awk '$2 == \"/\" {print $3}' /proc/mounts")
        want = {"kernel": "overlay", "strata": "fuse.strata", "fo110": "fuse.fuse-overlayfs"}[impl]
        if out.decode().split() != ["ok", want]:
            raise Failed(f"podman run printed {out!r}, expected ok and a {want} root")
        times = [w.timed("run", "--rm", "localhost/bench:latest", "true")[0] * 1000 for _ in range(10)]
        return {"podman_run": statistics.median(times)}
    finally:
        w.close()


def wl_podman_build(b, impl):
    w = PodmanWorld(b, impl)
    try:
        w.podman("import", "-q", f"{w.src}/rootfs.tar", "localhost/bench:latest")
        t, _ = w.timed("build", "--layers", "--no-cache", "--network", "none", "-t", "localhost/bench:built",
                       f"{w.src}/ctx")
        out, _ = w.podman("run", "--rm", "localhost/bench:built", "sh", "-c", PODMAN_CHECK)
        if out.decode() != PODMAN_EXPECT:
            raise Failed(f"the built image shows {out.decode()!r}, expected {PODMAN_EXPECT!r}")
        return {"podman_build": t}
    finally:
        w.close()


# metric: (label, unit, better, target)
#   label: may name {big} (the big file's size), {real} (merged entries of the real tree),
#          {real_rm}/{rm_dir} (real-rm-rf's subtree), {rootfs} (entries of the rootfs tarball)
#   target: None | ("le", x) ratio ≤ x | ("ge", x) ratio ≥ x | ("ge_impl", impl) | ("abs_le", x)
#           | ("abs_lt", x) | ("near_start", start metric) | ("ref", text)
#           | ("growth",): a ratio of the same workload at 10x the size (10 = linear)
METRICS = {
    "floor_us": ("round-trip floor: getxattr of a missing user.* name (kernel: in-kernel cost)", "µs/call",
                 "lower", None),
    "floor_getattr_us": ("statx(AT_STATX_FORCE_SYNC) of a lower file: a GETATTR each", "µs/call", "lower", None),
    "real_walk_cold": ("real tree: stat walk, {real} entries, cold", "s", "lower", ("le", 1.5)),
    "real_walk_warm": ("real tree: stat walk, {real} entries, warm", "s", "lower", ("le", 1.2)),
    "real_ls_warm": ("real tree: `ls -lRA`, {real} entries, warm", "s", "lower", ("le", 2.0)),
    "real_rm_rf": ("real tree: `rm -rf` of /{rm_dir} ({real_rm} entries, lower, fresh mount)", "s", "lower",
                   ("le", 2.0)),
    "real_untar": ("real tree: untar a Debian rootfs ({rootfs} entries) into the union", "s", "lower", ("le", 1.5)),
    "real_rss_start": ("real tree: daemon VmRSS right after mount", "MB", "lower", None),
    "real_rss_walk": ("real tree: daemon VmRSS after walking {real} entries", "MB", "lower", ("abs_le", 35)),
    "real_hwm_walk": ("real tree: daemon VmHWM after that walk", "MB", "lower", None),
    "real_rss_drop": ("real tree: daemon VmRSS after that + drop_caches", "MB", "lower",
                      ("near_start", "real_rss_start")),
    "walk_cold": ("stat walk, 123k entries, cold", "s", "lower", ("le", 1.5)),
    "walk_warm": ("stat walk, 123k entries, warm", "s", "lower", ("le", 1.2)),
    "ls_warm": ("`ls -lR`, 123k entries, warm", "s", "lower", ("le", 2.0)),
    "seq_read": ("sequential read, {big} lower file (lower page-cached)", "MiB/s", "higher", ("ge", 0.9)),
    "seq_write": ("sequential write, {big} + fsync", "MiB/s", "higher", ("ge", 0.9)),
    "randrw": ("random 4k read/write 70/30 (fio psync, buffered, page-cached)", "IOPS", "higher", ("ge_impl", "fo20")),
    "create20k": ("create 20k small files (20 dirs × 1000, 100 B)", "s", "lower", ("le", 1.2)),
    "delete20k": ("delete those 20k files", "s", "lower", ("le", 1.5)),
    "rm_rf": ("`rm -rf` of a 24k-entry lower tree", "s", "lower", ("le", 2.0)),
    "untar": ("untar of a 200-file source tree", "ms", "lower", ("le", 1.5)),
    "make": ("`make -j2`, 201 C files, in the union", "s", "lower", ("le", 1.03)),
    "chmod": ("chmod of 10k lower files (16 KiB, copy-up)", "s", "lower", ("le", 0.1)),
    "chmod_meta": ("chmod of 10k lower files, `-o metacopy=on` (ratio to kernel default)", "s", "lower",
                   ("le", 0.1)),
    "append": ("append 1 byte to a {big} lower file", "s", "lower", ("le", 0.7)),
    "rss_start": ("daemon VmRSS right after mount", "MB", "lower", None),
    "rss_walk": ("daemon VmRSS after walking 134k entries", "MB", "lower", ("abs_le", 35)),
    "hwm_walk": ("daemon VmHWM after walking 134k entries", "MB", "lower", None),
    "rss_drop": ("daemon VmRSS after that + drop_caches", "MB", "lower", ("near_start", "rss_start")),
    "bigdir_ls": ("`ls -lU` of a 100k-entry directory (fresh mount)", "s", "lower", None),
    "bigdir_rss": ("daemon VmRSS after that listing", "MB", "lower", None),
    "bigdir_hwm": ("daemon VmHWM after that listing", "MB", "lower", None),
    "l100_mount_cold": ("mount 100 lower layers, until live, after drop_caches (executable read from disk)",
                        "ms", "lower", None),
    "l100_mount": ("mount 100 lower layers, until live, after drop_caches, executable cached", "ms", "lower",
                   ("abs_le", 10)),
    "l100_top": ("100 layers: stat of a top-layer file, cold", "µs/stat", "lower", None),
    "l100_bottom": ("100 layers: stat of a bottom-layer file, cold", "µs/stat", "lower", None),
    "l100_ratio": ("100 layers: bottom/top stat time", "×", "lower", ("abs_le", 2)),
    "startup": ("`strata run --rootfs R -- /bin/true` (median of 20)", "ms", "lower",
                ("ref", "ref.: crun 47 ms, youki 112 ms")),
    "podman_run": ("`podman run --rm IMAGE true`, root (median of 10)", "ms", "lower",
                   None),
    "podman_build": ("`podman build`: COPY 3,000 files, RUN appending to 1,000, rm/mv/chmod/chown 400", "s",
                     "lower", None),
    # scaling (opt-in)
    "sw_100k_first": ("tree walk, 101k entries: first walk of a fresh mount", "s", "lower", None),
    "sw_1m_first": ("tree walk, 1.01M entries: first walk of a fresh mount", "s", "lower", None),
    "sw_first_growth": ("tree walk, first: 1M / 100k", "×", "lower", ("growth",)),
    "sw_100k_warm": ("tree walk, 101k entries: second walk", "s", "lower", None),
    "sw_1m_warm": ("tree walk, 1.01M entries: second walk", "s", "lower", None),
    "sw_warm_growth": ("tree walk, second: 1M / 100k", "×", "lower", ("growth",)),
    "sw_100k_rss": ("tree walk, 101k: daemon VmRSS after the walks", "MB", "lower", None),
    "sw_1m_rss": ("tree walk, 1.01M: daemon VmRSS after the walks", "MB", "lower", None),
    "sw_100k_hwm": ("tree walk, 101k: daemon VmHWM", "MB", "lower", None),
    "sw_1m_hwm": ("tree walk, 1.01M: daemon VmHWM", "MB", "lower", None),
    "sw_rss_growth": ("tree walk, VmRSS increase over mount: 1M / 100k", "×", "lower", ("growth",)),
    "sl_50_mount": ("50 layers: mount (until live, best of 3)", "ms", "lower", None),
    "sl_500_mount": ("500 layers: mount (until live, best of 3)", "ms", "lower", None),
    "sl_mount_growth": ("layers, mount: 500 / 50", "×", "lower", ("growth",)),
    "sl_50_top": ("50 layers: stat of a top-layer file, cold", "µs/stat", "lower", None),
    "sl_500_top": ("500 layers: stat of a top-layer file, cold", "µs/stat", "lower", None),
    "sl_top_growth": ("layers, top-layer stat: 500 / 50", "×", "lower", ("growth",)),
    "sl_50_bottom": ("50 layers: stat of a bottom-layer file, cold", "µs/stat", "lower", None),
    "sl_500_bottom": ("500 layers: stat of a bottom-layer file, cold", "µs/stat", "lower", None),
    "sl_bottom_growth": ("layers, bottom-layer stat: 500 / 50", "×", "lower", ("growth",)),
    "sl_50_walk": ("50 layers: walk of the union (4,101 entries), cold", "s", "lower", None),
    "sl_500_walk": ("500 layers: walk of the union (5,001 entries), cold", "s", "lower", None),
    "sl_walk_growth": ("layers, walk: 500 / 50", "×", "lower", ("growth",)),
    "sl_50_rss": ("50 layers: daemon VmRSS after the walk", "MB", "lower", None),
    "sl_500_rss": ("500 layers: daemon VmRSS after the walk", "MB", "lower", None),
    "sl_rss_growth": ("layers, VmRSS: 500 / 50", "×", "lower", ("growth",)),
    "sb_100k_ls": ("100k-entry directory: `ls -f` (fresh mount)", "s", "lower", None),
    "sb_1m_ls": ("1M-entry directory: `ls -f` (fresh mount)", "s", "lower", None),
    "sb_ls_growth": ("big directory, `ls -f`: 1M / 100k", "×", "lower", ("growth",)),
    "sb_100k_stat": ("100k-entry directory: stat walk after the ls", "s", "lower", None),
    "sb_1m_stat": ("1M-entry directory: stat walk after the ls", "s", "lower", None),
    "sb_stat_growth": ("big directory, stat walk: 1M / 100k", "×", "lower", ("growth",)),
    "sb_100k_rss": ("100k-entry directory: daemon VmRSS after ls + walk", "MB", "lower", None),
    "sb_1m_rss": ("1M-entry directory: daemon VmRSS after ls + walk", "MB", "lower", None),
    "sb_100k_hwm": ("100k-entry directory: daemon VmHWM", "MB", "lower", None),
    "sb_1m_hwm": ("1M-entry directory: daemon VmHWM", "MB", "lower", None),
    "sb_rss_growth": ("big directory, VmRSS increase over mount: 1M / 100k", "×", "lower", ("growth",)),
}

# rows whose ratio is taken against another row's kernel figure
RATIO_BASE = {"chmod_meta": "chmod"}

# Memory figures are deterministic enough to be taken once (rep 1 only), which keeps a
# full run near 15 minutes; so are the (long) scaling workloads.
ONCE = {"rss-walk", "rss-bigdir", "startup", "real-rss", "scale-walk", "scale-layers", "scale-bigdir"}

# the watchdog (3 x --timeout after the last mount) is that many times longer for these
SLOW = {"scale-walk": 4, "scale-layers": 2, "scale-bigdir": 4}

SCALE_IMPLS = ["kernel", "strata", "fo20"]

# name: (fn, metrics, in quick mode, implementations it applies to (None = all))
WORKLOADS = {
    "floor": (wl_floor, ["floor_us", "floor_getattr_us"], True, None),
    "real-walk-cold": (wl_real_walk_cold, ["real_walk_cold"], True, None),
    "real-walk-warm": (wl_real_walk_warm, ["real_walk_warm"], True, None),
    "real-ls-warm": (wl_real_ls_warm, ["real_ls_warm"], False, None),
    "real-rm-rf": (wl_real_rm_rf, ["real_rm_rf"], False, None),
    "real-untar": (wl_real_untar, ["real_untar"], False, None),
    "real-rss": (wl_real_rss, ["real_rss_start", "real_rss_walk", "real_hwm_walk", "real_rss_drop"], True,
                 ["strata", "strata-rl", "fo110", "fo20"]),
    "walk-cold": (wl_walk_cold, ["walk_cold"], True, None),
    "walk-warm": (wl_walk_warm, ["walk_warm"], True, None),
    "ls-warm": (wl_ls_warm, ["ls_warm"], False, None),
    "seq-read": (wl_seq_read, ["seq_read"], True, None),
    "seq-write": (wl_seq_write, ["seq_write"], True, None),
    "randrw": (wl_randrw, ["randrw"], True, None),
    "create-delete": (wl_create_delete, ["create20k", "delete20k"], False, None),
    "rm-rf": (wl_rm_rf, ["rm_rf"], False, None),
    "untar": (wl_untar, ["untar"], True, None),
    "make": (wl_make, ["make"], False, None),
    "chmod": (wl_chmod, ["chmod"], True, None),
    "chmod-metacopy": (wl_chmod_metacopy, ["chmod_meta"], False, ["kernel", "strata", "strata-rl"]),
    "append": (wl_append, ["append"], True, None),
    "rss-walk": (wl_rss_walk, ["rss_start", "rss_walk", "hwm_walk", "rss_drop"], True,
                 ["strata", "strata-rl", "fo110", "fo20"]),
    "rss-bigdir": (wl_rss_bigdir, ["bigdir_ls", "bigdir_rss", "bigdir_hwm"], False, None),
    "layers100": (wl_layers100, ["l100_mount_cold", "l100_mount", "l100_top", "l100_bottom", "l100_ratio"], True, None),
    "startup": (wl_startup, ["startup"], True, ["strata"]),
    "podman-run": (wl_podman_run, ["podman_run"], True, ["kernel", "strata", "fo110"]),
    "podman-build": (wl_podman_build, ["podman_build"], False, ["kernel", "strata", "fo110"]),
    "scale-walk": (wl_scale_walk, ["sw_100k_first", "sw_1m_first", "sw_first_growth", "sw_100k_warm", "sw_1m_warm",
                                   "sw_warm_growth", "sw_100k_rss", "sw_1m_rss", "sw_rss_growth", "sw_100k_hwm",
                                   "sw_1m_hwm"], False, SCALE_IMPLS),
    "scale-layers": (wl_scale_layers, ["sl_50_mount", "sl_500_mount", "sl_mount_growth", "sl_50_top", "sl_500_top",
                                       "sl_top_growth", "sl_50_bottom", "sl_500_bottom", "sl_bottom_growth",
                                       "sl_50_walk", "sl_500_walk", "sl_walk_growth", "sl_50_rss", "sl_500_rss",
                                       "sl_rss_growth"], False, SCALE_IMPLS),
    "scale-bigdir": (wl_scale_bigdir, ["sb_100k_ls", "sb_1m_ls", "sb_ls_growth", "sb_100k_stat", "sb_1m_stat",
                                       "sb_stat_growth", "sb_100k_rss", "sb_1m_rss", "sb_rss_growth", "sb_100k_hwm",
                                       "sb_1m_hwm"], False, SCALE_IMPLS),
}

# report sections: real tree first (the headline), then synthetic, then scaling
GROUP = {name: ("real" if name == "floor" or name.startswith("real-") else
                "scale" if name.startswith("scale-") else "synthetic") for name in WORKLOADS}
OPT_IN = {name for name, g in GROUP.items() if g == "scale"}  # only with --scale or --workloads

# the per-opcode request tables
BREAKDOWN = ["real_walk_cold", "real_walk_warm", "real_ls_warm", "real_rm_rf", "real_untar"]


# ----------------------------------------------------------------------------- report


def fmt_num(v):
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def target_text(metric, t):
    if t is None:
        return ""
    kind = t[0]
    unit = METRICS[metric][1]
    if kind == "le":
        return f"≤{t[1]:g}×"
    if kind == "ge":
        return f"≥{t[1]:g}×"
    if kind == "ge_impl":
        return f"≥ {LABEL[t[1]]}"
    if kind == "abs_le":
        return f"≤{t[1]:g} {unit}" if unit != "×" else f"≤{t[1]:g}×"
    if kind == "abs_lt":
        return f"<{t[1]:g} {unit}"
    if kind == "near_start":
        return "≤ start + 5 MB"
    if kind == "ref":
        return t[1]
    if kind == "growth":
        return "10× size: 10 = linear, 1 = flat"
    return ""


def growth_verdict(v, scale=10.0):
    """How a cost grows when the size grows scale-fold: cost ∝ size^e."""
    if v <= 0:
        return ""
    e = math.log(v) / math.log(scale)
    if e < 0.1:
        return "flat"
    if e < 0.85:
        return f"sublinear, n^{e:.1f}"
    if e <= 1.15:
        return "linear"
    return f"worse than linear, n^{e:.1f}"


def target_met(b, metric, value, med, impl="strata"):
    t = METRICS[metric][3]
    if t is None:
        return None
    kind = t[0]
    base = med.get(RATIO_BASE.get(metric, metric), {}).get("kernel")
    if kind in ("le", "ge"):
        if base is None or base == 0:
            return None
        r = value / base
        return r <= t[1] if kind == "le" else r >= t[1]
    if kind == "ge_impl":
        other = med.get(metric, {}).get(t[1])
        return None if other is None else value >= other
    if kind == "abs_le":
        return value <= t[1]
    if kind == "abs_lt":
        return value < t[1]
    if kind == "near_start":
        start = med.get(t[1], {}).get(impl)
        return None if start is None else value <= start + 5
    return None


class FmtDict(dict):
    def __missing__(self, key):
        return "?"


def label_of(b, m):
    return METRICS[m][0].format_map(FmtDict(b.fmt))


def metric_table(b, metrics, med, footnotes, vs_fo=False):
    """Markdown table of metrics: medians, (ratio to kernel overlayfs), ✓/✗ for strata; with
    vs_fo, also strata's ratio to fuse-overlayfs 1.10 and 2.0 (same run)."""
    impls = b.impls
    vs = [i for i in ("fo110", "fo20") if vs_fo and "strata" in impls and i in impls]
    lines = ["| workload | " + " | ".join(LABEL[i] for i in impls) + "".join(f" | strata ÷ {LABEL[i]}" for i in vs)
             + " | target (strata) |", "|---|" + "---|" * (len(impls) + len(vs)) + "---|"]
    for m in metrics:
        label, unit, _, target = METRICS[m]
        label = label_of(b, m)
        if m not in b.samples and m not in b.errors:
            continue
        row = [label + f" [{unit}]"]
        for impl in impls:
            err = b.errors.get(m, {}).get(impl)
            if err:
                if err.startswith("SKIP:"):
                    row.append("—")
                    continue
                footnotes.append(f"{LABEL[impl]}, {label}: {err}")
                row.append(f"FAILED[{len(footnotes)}]")
                continue
            v = med.get(m, {}).get(impl)
            if v is None:
                row.append("—")
                continue
            cell = fmt_num(v)
            if target and target[0] == "growth":
                row.append(f"{cell}× {growth_verdict(v)}")
                continue
            base_metric = RATIO_BASE.get(m, m)
            base = med.get(base_metric, {}).get("kernel")
            if base and unit not in ("MB", "×"):
                cell += f" ({v / base:.2f}×)"
            if impl in STRATA_IMPLS:
                ok = target_met(b, m, v, med, impl)
                if ok is not None:
                    cell += " ✓" if ok else " ✗"
            row.append(cell)
        for i in vs:
            mine, other = med.get(m, {}).get("strata"), med.get(m, {}).get(i)
            row.append(f"{mine / other:.2f}×" if mine is not None and other and unit != "×" else "—")
        row.append(target_text(m, target))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def req_medians(b):
    """metric -> impl -> {"total", "entries", "seconds", "ops"}: medians over the repetitions."""
    res = {}
    for m, per in b.reqs.items():
        for impl, recs in per.items():
            if b.errors.get(m, {}).get(impl):
                continue
            ops = {}
            for r in recs:
                for k in r["ops"]:
                    ops[k] = statistics.median([x["ops"].get(k, 0) for x in recs])
            res.setdefault(m, {})[impl] = {"total": statistics.median([r["total"] for r in recs]),
                                            "entries": statistics.median([r["entries"] for r in recs]),
                                            "seconds": statistics.median([r["seconds"] for r in recs]), "ops": ops}
    return res


# what an "entry" is, where it is not a file system entry
PER = {"seq_read": "MiB", "seq_write": "MiB", "randrw": "IO", "append": "append", "floor_us": "call",
       "floor_getattr_us": "call", "make": "source file", "l100_top": "stat", "l100_bottom": "stat",
       "sl_50_top": "stat", "sl_500_top": "stat", "sl_50_bottom": "stat", "sl_500_bottom": "stat"}


def fmt_count(n):
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e4:
        return f"{n / 1e3:.0f}k"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return f"{n:.0f}"


def req_table(b, metrics, med, rq):
    """Requests per entry of every counted command, and floor × requests per entry (the time
    the round trips alone would take) beside the measured time per entry."""
    fuse = [i for i in b.impls if i != "kernel"]
    rows = []
    for m in metrics:
        for impl in fuse:
            r = rq.get(m, {}).get(impl)
            if not r or not r["entries"]:
                continue
            per = r["total"] / r["entries"]
            meas = r["seconds"] / r["entries"] * 1e6
            floor = med.get("floor_us", {}).get(impl)
            pred = f"{floor * per:.1f}" if floor else "—"
            ratio = f"{meas / (floor * per):.2f}" if floor and per else "—"
            rows.append(f"| {label_of(b, m)} | {LABEL[impl]} | {fmt_count(r['total'])} | {PER.get(m, 'entry')} | "
                        f"{per:.2f} | {pred} | {fmt_num(meas)} | {ratio} |" if per >= 0.01 else
                        f"| {label_of(b, m)} | {LABEL[impl]} | {fmt_count(r['total'])} | {PER.get(m, 'entry')} | "
                        f"{per:.4f} | {pred} | {fmt_num(meas)} | {ratio} |")
    if not rows:
        return []
    return ["| workload | impl | requests | per | rt/entry | floor × rt/entry [µs] | measured [µs/entry] | "
            "measured / (floor × rt) |", "|---|---|---|---|---|---|---|---|"] + rows


def opcode_tables(b, rq):
    fuse = [i for i in b.impls if i != "kernel"]
    lines = []
    for m in BREAKDOWN:
        per = {i: rq[m][i] for i in fuse if i in rq.get(m, {})}
        if not per:
            continue
        ops = sorted({k for r in per.values() for k in r["ops"]},
                     key=lambda k: (-per.get("strata", next(iter(per.values())))["ops"].get(k, 0), k == "other", k))
        cols = list(per)
        lines += ["", f"{label_of(b, m)}: requests by opcode (per entry)", "",
                  "| opcode | " + " | ".join(LABEL[i] for i in cols) + " |", "|---|" + "---|" * len(cols)]
        for k in ops:
            cells = []
            for i in cols:
                n, e = per[i]["ops"].get(k, 0), per[i]["entries"] or 1
                cells.append(f"{fmt_count(n)} ({n / e:.2f})" if n else "—")
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        lines.append("| total | " + " | ".join(f"{fmt_count(per[i]['total'])} ({per[i]['total'] / (per[i]['entries'] or 1):.2f})"
                                              for i in cols) + " |")
    return lines


SECTION_TITLES = {"real": "Real tree (headline)", "synthetic": "Synthetic layers", "scale": "Scaling (opt-in)"}


def report(b, started, finished):
    med = {}
    for m, per in b.samples.items():
        for impl, vals in per.items():
            if not b.errors.get(m, {}).get(impl):
                med.setdefault(m, {})[impl] = statistics.median(vals)
    b.fmt["big"] = f"{b.big_size // GiB} GiB" if b.big_size % GiB == 0 else f"{b.big_size // MiB} MiB"
    rq = req_medians(b)
    lines = []
    lines.append("# strata benchmark")
    lines.append("")
    lines.append(f"- date: {started:%Y-%m-%d %H:%M} UTC, duration {int((finished - started).total_seconds())} s; "
                 f"medians of {b.a.reps}{' (quick mode)' if b.a.quick else ''} (memory rows, start-up and scaling: "
                 f"one run), size scale {b.a.size_scale:g}")
    for k, v in b.meta.items():
        lines.append(f"- {k}: {v}")
    lines.append("- values are medians; (×) = ratio to kernel overlayfs (times: lower is better, "
                 "MiB/s and IOPS: higher is better); ✓/✗ = strata meets its target; strata ÷ fo-N = strata's "
                 "median over that implementation's, in the same run")
    footnotes = []
    groups = {}
    for name, w in WORKLOADS.items():
        if name in b.a.workloads:
            groups.setdefault(GROUP[name], []).extend(w[1])
    counted = []
    for g in ("real", "synthetic", "scale"):
        if g not in groups:
            continue
        table = metric_table(b, groups[g], med, footnotes, vs_fo=g != "synthetic")
        if len(table) > 2:
            lines += ["", f"## {SECTION_TITLES[g]}", ""] + table
        counted += [m for m in groups[g] if m in rq]
    rt = req_table(b, counted, med, rq)
    if rt:
        lines += ["", "## FUSE requests per entry", "",
                  "Requests the daemon was sent during each timed command (median over the repetitions); "
                  "floor × rt/entry = what the round trips alone would cost at the measured getxattr floor of the "
                  "same implementation; measured = the command's wall time per entry (with perf's counters on). "
                  "A measured/(floor × rt) near 1 means the cost is the round trips; above 1, work per request "
                  "(in the daemon or the kernel) beyond a no-op.", ""] + rt
    ot = opcode_tables(b, rq)
    if ot:
        lines += ["", "## Requests by opcode"] + ot
    if footnotes:
        lines.append("")
        lines.append("Failures:")
        lines.append("")
        for i, f in enumerate(footnotes, 1):
            lines.append(f"{i}. {f}")
    skips = sorted({e[5:].strip() for per in b.errors.values() for e in per.values() if e.startswith("SKIP:")
                    and "no daemon" not in e and "strata only" not in e})
    notes = list(dict.fromkeys(b.notes)) + skips
    if notes:
        lines.append("")
        lines.append("Notes:")
        lines.append("")
        for n in notes:
            lines.append(f"- {n}")
    lines.append("")
    lines.append("Workload details: walks run `find MNT -printf '%s\\n'` (an lstat per entry) over two lower layers "
                 "(with whiteouts) and check the entry count; cold = `sync; echo 3 > /proc/sys/vm/drop_caches` "
                 "after mounting; warm = second walk on the same mount. Sequential read: `dd bs=1M` of a lower file "
                 "whose pages are cached in the lower fs (first read through a fresh mount). Append and chmod time "
                 "the copy-up (kernel overlayfs fsyncs copied-up data; FUSE implementations may not). "
                 "Sequential write ends in the (virtual) disk, whose speed varies from run to run. "
                 "Random 4k: fio psync, 70% reads, on a file fio lays out in the upper (kept in page cache). "
                 "Each run gets a fresh mount and fresh upper/work dirs; lower layers are a read-only bind mount.")
    if "real" in groups:
        lines.append("")
        lines.append("Real tree: lowers real2:real1. real1 = a tar copy of the host's /usr/share and /usr/lib "
                     "(modes, owners, hard links, symlinks, user.*/security.* xattrs, ACLs; regular files over 8 MiB "
                     "and names with a newline left out); real2 = every 20th regular file of real1 (sorted walk) "
                     "shadowed with other content, ~300 whiteouts (char 0/0), one opaque directory "
                     "(trusted.overlay.opaque=y) and 3,000 new files. Expected entry counts come from the layer dirs "
                     "(merged_paths), not from a mount. real-rm-rf removes the real1 directory (depth ≤ 3) whose "
                     "subtree is nearest 24,000 entries, through the union (its shadows and whiteouts included). "
                     "real-untar extracts the rootfs tarball into a new directory of the union and counts what it "
                     "made. floor: getxattr of a user.* name that does not exist on a lower file, "
                     f"{b.a.floor_calls:,} calls (one FUSE request each; for kernel overlayfs the in-kernel cost).")
    return "\n".join(lines) + "\n", med


# ----------------------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="subset of workloads, 1 rep, size scale 0.25")
    p.add_argument("--only", default=",".join(IMPLS), help="implementations: kernel,strata,fo110,fo20")
    p.add_argument("--workloads", default=None, help="comma-separated workload names (see --list)")
    p.add_argument("--list", action="store_true", help="list workloads and exit")
    p.add_argument("--reps", type=int, default=None, help="repetitions (default 3, quick 1)")
    p.add_argument("--size-scale", type=float, default=None, help="scale of the 1 GiB files (default 1, quick 0.25)")
    p.add_argument("--fio-runtime", type=int, default=None, help="seconds per fio run (default 5, quick 3)")
    p.add_argument("--timeout", type=float, default=300, help="per-command timeout in seconds (default 300)")
    p.add_argument("--mount-timeout", type=float, default=30)
    p.add_argument("--bench-dir", default=os.environ.get("STRATA_BENCH_DIR", "/var/tmp/strata-bench"))
    p.add_argument("--cache-dir", default=os.environ.get("STRATA_BENCH_CACHE", "/var/cache/strata-bench"))
    p.add_argument("--out-dir", default=None, help="where latest.md/.json go (default REPO/target/bench)")
    p.add_argument("--repo", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    p.add_argument("--strata-bin", default=None)
    p.add_argument("--fo110-bin", default="/usr/bin/fuse-overlayfs")
    p.add_argument("--fo20-bin", default=None)
    p.add_argument("--real", action="store_true",
                   help="only the real-tree workloads (floor, real-*): the headline table")
    p.add_argument("--scale", action="store_true",
                   help="add the scaling workloads (scale-walk, scale-layers, scale-bigdir: opt-in, long)")
    p.add_argument("--no-count", action="store_true", help="do not count FUSE requests (perf stat)")
    p.add_argument("--floor-calls", type=int, default=None, help="calls per floor measurement (default 200000, "
                   "quick 50000)")
    p.add_argument("--strata-error", default="", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.list:
        fmt = FmtDict(big="1 GiB", real="~125k", real_rm="~24k", rm_dir="usr/share/man", rootfs="~10k")
        for name, (_, metrics, quick, only) in WORKLOADS.items():
            tag = "opt-in " if name in OPT_IN else "quick  " if quick else "       "
            impls = f" [{','.join(only)}]" if only else ""
            print(f"{name:15} {tag}{'; '.join(METRICS[m][0].format_map(fmt) for m in metrics)}{impls}")
        sys.exit(0)
    a.only = [x.strip() for x in a.only.split(",") if x.strip()]
    for x in a.only:
        if x not in IMPLS:
            p.error(f"unknown implementation {x!r} (choose from {', '.join(IMPLS)})")
    a.only = [x for x in IMPLS if x in a.only]
    if a.workloads:
        a.workloads = [x.strip() for x in a.workloads.split(",") if x.strip()]
        for x in a.workloads:
            if x not in WORKLOADS:
                p.error(f"unknown workload {x!r} (see --list)")
    else:
        a.workloads = [n for n, w in WORKLOADS.items() if (w[2] or not a.quick) and n not in OPT_IN
                       and (GROUP[n] == "real" or not a.real)]
    if a.scale:
        a.workloads += [n for n in WORKLOADS if n in OPT_IN and n not in a.workloads]
    a.reps = a.reps or (1 if a.quick else 3)
    a.floor_calls = a.floor_calls or (50000 if a.quick else 200000)
    a.size_scale = a.size_scale or (0.25 if a.quick else 1.0)
    a.fio_runtime = a.fio_runtime or (3 if a.quick else 5)
    a.repo = os.path.abspath(a.repo)
    a.strata_bin = a.strata_bin or os.path.join(a.repo, "target/release/strata")
    a.fo20_bin = a.fo20_bin or os.path.join(a.cache_dir, "fo20/bin/fuse-overlayfs")
    a.out_dir = a.out_dir or os.path.join(a.repo, "target/bench")
    return a


def version_of(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=10)
        text = (r.stdout + r.stderr).decode(errors="replace")
        for line in text.splitlines():
            if "version" in line.lower() and "fuse library" not in line.lower() and "fusermount" not in line.lower():
                return line.strip()
        return text.strip().splitlines()[0] if text.strip() else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def main(argv):
    a = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("scripts/bench: must run as root (mounts, drop_caches)")
    b = Bench(a)
    started = datetime.datetime.now(datetime.timezone.utc)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    interrupted = False
    try:
        b.prepare()
        b.load_start = os.getloadavg()[0]
        b.meta["machine"] = (f"{cpu_model()}, {os.cpu_count()} cores, RAM "
                             f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / GiB:.1f} GiB")
        b.meta["kernel"] = f"{platform.release()} ({platform.version()})"
        b.meta["bench dir"] = f"{b.dir} ({fs_description(b.dir)})"
        if b.counting_off:
            b.meta["FUSE request counts"] = f"none ({b.counting_off})"
        else:
            b.meta["FUSE request counts"] = (
                f"`perf stat -a` on the tracepoint fuse:fuse_request_send, {len(FUSE_OPS) + 1} counters (total and "
                "per opcode) filtered in the kernel to the mount's connection, switched on only around each timed "
                "command, identically for every FUSE implementation (kernel overlayfs has none); cost per request: "
                "one tracepoint hit and that many filter tests, below the noise of the floor (about 1% of a round "
                "trip). FORGET, BATCH_FORGET and INTERRUPT travel on other queues and are not counted")
        vers = []
        if any(i in a.only for i in STRATA_IMPLS):
            rev = subprocess.run(["git", "-C", a.repo, "log", "-1", "--format=%h %s", "--", "src"], capture_output=True)
            if os.path.abspath(a.strata_bin) != os.path.join(a.repo, "target/release/strata"):
                vers.append(f"strata binary {a.strata_bin}")
            vers.append(f"strata {rev.stdout.decode().strip()[:70]}" + (" (dirty tree)" if subprocess.run(
                ["git", "-C", a.repo, "diff", "--quiet", "HEAD", "--", "src"]).returncode else ""))
        if "fo110" in a.only or os.access(a.fo110_bin, os.X_OK):
            vers.append(f"fo-1.10 {a.fo110_bin}: {version_of([a.fo110_bin, '--version'])}")
        if "fo20" in a.only or os.access(a.fo20_bin, os.X_OK):
            vers.append(f"fo-2.0 {a.fo20_bin}: {version_of([a.fo20_bin, '--version'])}")
        vers.append(version_of([PERF, "--version"]) if os.access(PERF, os.X_OK) else "no perf")
        b.meta["versions"] = "; ".join(vers)
        if "strata-rl" in a.only:
            b.meta["strata-rl"] = (
                f"strata in the rootless configuration: `-o {EXTRA_OPTS['strata-rl']}`, the FUSE options an "
                "ordinary user's mount runs with (no passthrough: it needs CAP_SYS_ADMIN; the writeback cache on), "
                "mounted by root over the same layers and driven by the same commands. Not in it: a real user's "
                "mount keeps the owners it cannot set in xattrs (a setxattr where root would chown)")
        log(f"implementations {', '.join(LABEL[i] for i in a.only)}; workloads {', '.join(a.workloads)}; "
            f"reps {a.reps}; size scale {a.size_scale:g}")
        for name in a.workloads:
            fn, metrics, _, applies = WORKLOADS[name]
            impls = [i for i in a.only if applies is None or i in applies]
            failed = set()
            for rep in range(1, a.reps + 1):
                # Each repetition starts with the next implementation: whatever one run
                # leaves behind for the next (page cache, dirty data, a file system's
                # recently freed inodes, which ext4 without a journal skips over on every
                # create for minutes) then lands on each implementation in turn.
                k = (rep - 1) % len(impls)
                for impl in impls[k:] + impls[:k]:
                    if impl in failed:
                        continue
                    if name in ONCE and rep > 1:
                        continue
                    log(f"{name} rep {rep}/{a.reps}: {LABEL[impl]}")
                    t0 = time.perf_counter()
                    b.arm_watchdog(impl, name, a.timeout * 3 * SLOW.get(name, 1))
                    try:
                        vals = fn(b, impl)
                        for m, v in vals.items():
                            b.record(m, impl, v)
                        log(f"  {' '.join(f'{m}={v:.4g}' for m, v in vals.items())} "
                            f"({time.perf_counter() - t0:.1f}s)")
                    except Skip as e:
                        b.fail(metrics, impl, f"SKIP: {e}")
                        failed.add(impl)
                        log(f"  skipped: {e}")
                    except Failed as e:
                        b.fail(metrics, impl, str(e))
                        failed.add(impl)
                        log(f"  FAILED: {e}")
                    except OSError as e:
                        b.fail(metrics, impl, f"{type(e).__name__}: {e}")
                        failed.add(impl)
                        log(f"  FAILED: {e}")
                    finally:
                        b.disarm_watchdog()
                        b.finish_run(impl)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: unmounting everything and writing partial results")
    finally:
        b.cleanup()
    finished = datetime.datetime.now(datetime.timezone.utc)
    load_end = os.getloadavg()[0]
    if hasattr(b, "load_start"):
        b.meta["load average (1 min) at start / end"] = f"{b.load_start:.2f} / {load_end:.2f}"
        if max(b.load_start, load_end) > (os.cpu_count() or 1) / 2:
            b.notes.insert(0, "the machine was busy with other work during the run (see load average): "
                              "absolute times are inflated and ratios noisier than usual")
    text, med = report(b, started, finished)
    if interrupted:
        text = text.replace("# strata benchmark", "# strata benchmark (INTERRUPTED, partial)")
    os.makedirs(a.out_dir, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    # an interrupted run only leaves its partial table under its own name
    for name in ([stamp + "-partial"] if interrupted else ["latest", stamp]):
        with open(os.path.join(a.out_dir, f"{name}.md"), "w") as f:
            f.write(text)
        with open(os.path.join(a.out_dir, f"{name}.json"), "w") as f:
            json.dump({"args": {k: v for k, v in vars(a).items()}, "meta": b.meta, "samples": b.samples,
                       "errors": b.errors, "medians": med, "requests": b.reqs, "notes": b.notes}, f, indent=1,
                      default=str)
    print(text)
    log(f"results in {a.out_dir}/" + (f"{stamp}-partial.md" if interrupted else f"latest.md and {stamp}.md"))
    return 130 if interrupted else 0


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def fs_description(path):
    """"ext4 on /dev/vda, no journal" and the like, for the header."""
    best = ("", "?", "?")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            mp = unescape_mountinfo(parts[4])
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best[0]):
                best = (mp, parts[sep + 1], parts[sep + 2])
    mp, fstype, dev = best
    text = f"{fstype} on {dev}, mounted at {mp}"
    if fstype.startswith("ext"):
        r = subprocess.run(["tune2fs", "-l", dev], capture_output=True)
        feats = [ln.split(":", 1)[1].split() for ln in r.stdout.decode(errors="replace").splitlines()
                 if ln.startswith("Filesystem features:")]
        if feats:
            text += ", journal: " + ("yes (has_journal)" if "has_journal" in feats[0] else "NO (no has_journal)")
        elif os.path.isdir("/proc/fs/jbd2"):  # tune2fs may not open the device (a VM's device cgroup)
            name = os.path.basename(os.path.realpath(dev))
            jbd = [x for x in os.listdir("/proc/fs/jbd2") if x.startswith(name + "-")]
            text += ", journal: " + (f"yes (jbd2 {jbd[0]})" if jbd else f"NO (no jbd2 journal for {name}; "
                                     "tune2fs -l could not open it)")
        else:
            text += ", journal: ? (tune2fs -l failed)"
    return text


def mount_fs_type(path):
    best = ("", "?")
    for mp, fstype, _ in mountinfo():
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best[0]):
            best = (mp, fstype)
    return best[1]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
