/* Tiny timing helper for scripts/bench (compiled by the harness into its cache dir).
 *
 *   bench_helper mkfiles DIR NDIRS PERDIR SIZE   create DIR/dNNN/fNNNNN files of SIZE bytes
 *   bench_helper rmfiles DIR NDIRS PERDIR        unlink them, rmdir the dNNN dirs and DIR
 *   bench_helper statfiles DIR PREFIX COUNT      lstat DIR/PREFIXNNNNN for NNNNN in [0, COUNT)
 *   bench_helper floor FILE COUNT                COUNT getxattr(FILE, "user.strata-bench.none"):
 *                                                ok = calls failing with ENODATA (a no-op request)
 *   bench_helper floorstat FILE COUNT            COUNT statx(FILE, AT_STATX_FORCE_SYNC): the
 *                                                attribute cache is bypassed, a GETATTR per call
 *   bench_helper mktree DIR NTOP NMID NLEAF      DIR/dNNN/dNNN/fNNNNN: NTOP x NMID dirs of NLEAF
 *                                                empty files (generator, not timed by the caller)
 *   bench_helper mkflat DIR COUNT                DIR/eNNNNNNN: COUNT empty files in one dir
 *
 * Prints "<elapsed ns> <ok count> <failures>" on stdout; the clock covers only the
 * file-system calls, not process start-up. Exit status 1 on the first hard error
 * (mkfiles/rmfiles/mktree/mkflat), 0 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* an empty file NAME in the directory open as dfd; 0 or -1 (perror'd) */
static int mkempty(int dfd, const char *name, const char *path_for_errors)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || close(fd)) {
		perror(path_for_errors);
		return -1;
	}
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: bench_helper mkfiles DIR NDIRS PERDIR SIZE | rmfiles DIR NDIRS PERDIR | "
			"statfiles DIR PREFIX COUNT | floor FILE COUNT | floorstat FILE COUNT | "
			"mktree DIR NTOP NMID NLEAF | mkflat DIR COUNT\n");
	return 2;
}

int main(int argc, char **argv)
{
	char p[4096];
	static char buf[1 << 16];
	long ok = 0, fails = 0;
	long long t0, t1;

	if (argc < 2)
		return usage();
	if (!strcmp(argv[1], "mkfiles") && argc == 6) {
		const char *d = argv[2];
		int nd = atoi(argv[3]), pf = atoi(argv[4]), sz = atoi(argv[5]);
		if (sz < 0 || sz > (int)sizeof(buf))
			return usage();
		memset(buf, 'a', sizeof(buf));
		t0 = now_ns();
		if (mkdir(d, 0755) && errno != EEXIST) {
			perror(d);
			return 1;
		}
		for (int i = 0; i < nd; i++) {
			snprintf(p, sizeof(p), "%s/d%03d", d, i);
			if (mkdir(p, 0755)) {
				perror(p);
				return 1;
			}
			for (int j = 0; j < pf; j++) {
				snprintf(p, sizeof(p), "%s/d%03d/f%05d", d, i, j);
				int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
				if (fd < 0) {
					perror(p);
					return 1;
				}
				if (sz > 0 && write(fd, buf, sz) != sz) {
					perror(p);
					return 1;
				}
				if (close(fd)) {
					perror(p);
					return 1;
				}
				ok++;
			}
		}
		t1 = now_ns();
	} else if (!strcmp(argv[1], "rmfiles") && argc == 5) {
		const char *d = argv[2];
		int nd = atoi(argv[3]), pf = atoi(argv[4]);
		t0 = now_ns();
		for (int i = 0; i < nd; i++) {
			for (int j = 0; j < pf; j++) {
				snprintf(p, sizeof(p), "%s/d%03d/f%05d", d, i, j);
				if (unlink(p)) {
					perror(p);
					return 1;
				}
				ok++;
			}
			snprintf(p, sizeof(p), "%s/d%03d", d, i);
			if (rmdir(p)) {
				perror(p);
				return 1;
			}
		}
		if (rmdir(d)) {
			perror(d);
			return 1;
		}
		t1 = now_ns();
	} else if (!strcmp(argv[1], "statfiles") && argc == 5) {
		const char *d = argv[2], *prefix = argv[3];
		int n = atoi(argv[4]);
		struct stat st;
		t0 = now_ns();
		for (int i = 0; i < n; i++) {
			snprintf(p, sizeof(p), "%s/%s%05d", d, prefix, i);
			if (lstat(p, &st))
				fails++;
			else
				ok++;
		}
		t1 = now_ns();
	} else if (!strcmp(argv[1], "floor") && argc == 4) {
		const char *f = argv[2];
		long n = atol(argv[3]);
		char v[64];
		t0 = now_ns();
		for (long i = 0; i < n; i++) {
			if (getxattr(f, "user.strata-bench.none", v, sizeof(v)) < 0 && errno == ENODATA)
				ok++;
			else
				fails++;
		}
		t1 = now_ns();
	} else if (!strcmp(argv[1], "floorstat") && argc == 4) {
		const char *f = argv[2];
		long n = atol(argv[3]);
		struct statx stx;
		t0 = now_ns();
		for (long i = 0; i < n; i++) {
			if (statx(AT_FDCWD, f, AT_SYMLINK_NOFOLLOW | AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &stx))
				fails++;
			else
				ok++;
		}
		t1 = now_ns();
	} else if (!strcmp(argv[1], "mktree") && argc == 6) {
		const char *d = argv[2];
		int nt = atoi(argv[3]), nm = atoi(argv[4]), nl = atoi(argv[5]);
		char name[32];
		t0 = now_ns();
		if (mkdir(d, 0755) && errno != EEXIST) {
			perror(d);
			return 1;
		}
		for (int i = 0; i < nt; i++) {
			for (int j = 0; j < nm; j++) {
				snprintf(p, sizeof(p), "%s/d%03d", d, i);
				if (j == 0 && mkdir(p, 0755)) {
					perror(p);
					return 1;
				}
				snprintf(p, sizeof(p), "%s/d%03d/d%03d", d, i, j);
				if (mkdir(p, 0755)) {
					perror(p);
					return 1;
				}
				int dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
				if (dfd < 0) {
					perror(p);
					return 1;
				}
				for (int k = 0; k < nl; k++) {
					snprintf(name, sizeof(name), "f%05d", k);
					if (mkempty(dfd, name, p))
						return 1;
					ok++;
				}
				close(dfd);
			}
		}
		t1 = now_ns();
	} else if (!strcmp(argv[1], "mkflat") && argc == 4) {
		const char *d = argv[2];
		long n = atol(argv[3]);
		char name[32];
		t0 = now_ns();
		if (mkdir(d, 0755) && errno != EEXIST) {
			perror(d);
			return 1;
		}
		int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0) {
			perror(d);
			return 1;
		}
		for (long i = 0; i < n; i++) {
			snprintf(name, sizeof(name), "e%07ld", i);
			if (mkempty(dfd, name, d))
				return 1;
			ok++;
		}
		close(dfd);
		t1 = now_ns();
	} else {
		return usage();
	}
	printf("%lld %ld %ld\n", t1 - t0, ok, fails);
	return 0;
}
