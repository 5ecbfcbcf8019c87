/* floor.c: the FUSE round-trip floor, classic /dev/fuse against FUSE-over-io_uring.
 *
 * One self-contained program (root only, Linux >= 6.14 for the io_uring part):
 * it mounts a tiny FUSE file system itself (open /dev/fuse + mount(2), no
 * fusermount), serves it with one of several transports, and has a forked
 * client time N getxattr() calls on a cached file and N stat() calls on an
 * uncached one. The file system:
 *
 *   /      directory, attributes cached 1 h
 *   /f     cached (entry and attr timeouts 1 h): getxattr("user.none") costs
 *          exactly one GETXATTR round trip, answered ENODATA (ENOSYS would make
 *          the kernel stop asking)
 *   /g     uncached (timeouts 0): every stat() costs LOOKUP + GETATTR
 *
 * FORGET/BATCH_FORGET/INTERRUPT are ignored, everything else is ENOSYS.
 *
 * Variants (each mounted afresh, interleaved across repetitions):
 *   base-ext4, base-tmpfs  the same client loops on an in-kernel file: the
 *                          syscall + VFS cost to subtract
 *   classic-1t             one thread doing read()/writev() on /dev/fuse, on CPU 0
 *   classic-2t             two such threads on the same fd, on CPUs 0 and 1
 *   classic-2t-clone       the same, each thread on its own FUSE_DEV_IOC_CLONE
 *                          fd (what fuser does with clone_fd, as strata runs)
 *   uring                  FUSE over io_uring: one queue per possible CPU (the
 *                          kernel's layout), one thread per queue pinned to its
 *                          CPU, DEPTH ring entries per queue; a /dev/fuse thread
 *                          stays for INIT and FORGET, which never use the ring
 *   uring-defer            the same with IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN
 *
 * and each is measured with the client pinned to CPU 0 (where a daemon thread
 * sits) and unpinned. The daemon counts the requests it served and through
 * which transport, so a silent fallback to /dev/fuse (or an unexpected cache
 * hit) shows up in the report as ring% / req/iter.
 *
 * The io_uring is driven with raw syscalls (no liburing) and the FUSE io_uring
 * ABI is declared here, since Debian bookworm's headers (6.1) predate it.
 *
 * Build: gcc -O2 -Wall -pthread -o floor floor.c
 * Run:   scripts/fuse-uring/run  (sets fuse.enable_uring=Y and restores it)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * FUSE-over-io_uring ABI (include/uapi/linux/fuse.h, 7.42, kernel 6.14+).
 * The kernel hands a request over as a completion of an IORING_OP_URING_CMD
 * on /dev/fuse; the daemon answers and asks for the next one with a single
 * COMMIT_AND_FETCH command. Each ring entry owns two buffers, given once at
 * REGISTER as an iovec pair: a fixed header area and a payload area.
 */
#ifndef FUSE_OVER_IO_URING
#define FUSE_OVER_IO_URING (1ULL << 41)	/* INIT flag, bit 9 of flags2 */

#define FUSE_URING_IN_OUT_HEADER_SZ 128
#define FUSE_URING_OP_IN_OUT_SZ 128

/* Written by the kernel on fetch and by the daemon on commit. */
struct fuse_uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;	/* the request's unique; echoed in the commit */
	uint32_t payload_sz;	/* bytes valid in the payload buffer */
	uint32_t padding;
	uint64_t reserved;
};

/* iov[0] of a REGISTER. */
struct fuse_uring_req_header {
	char in_out[FUSE_URING_IN_OUT_HEADER_SZ];	/* fuse_in_header / fuse_out_header */
	char op_in[FUSE_URING_OP_IN_OUT_SZ];		/* in_args[0]: the opcode's struct */
	struct fuse_uring_ent_in_out ring_ent_in_out;
};

/* sqe->cmd_op */
enum fuse_uring_cmd {
	FUSE_IO_URING_CMD_INVALID = 0,
	FUSE_IO_URING_CMD_REGISTER = 1,		/* give an entry's buffers, wait for a request */
	FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2,	/* answer a request, wait for the next */
};

/* In the 80-byte command area of a 128-byte SQE (sqe->cmd). */
struct fuse_uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;		/* queue = CPU number */
	uint8_t padding[6];
};
#endif
_Static_assert(sizeof(struct fuse_uring_req_header) == 288, "fuse_uring_req_header");
_Static_assert(sizeof(struct fuse_uring_cmd_req) == 24, "fuse_uring_cmd_req");
_Static_assert(sizeof(struct fuse_in_header) <= FUSE_URING_IN_OUT_HEADER_SZ, "in header");

/* The file system's shape. */
#define INO_ROOT 1
#define INO_F 2
#define INO_G 3
#define TTL_CACHED 3600

/* What we tell INIT, and so the size every ring payload buffer must have:
 * the kernel refuses a REGISTER whose payload is smaller than
 * max(FUSE_MIN_READ_BUFFER, max_write, max_pages * PAGE_SIZE). */
#define MAX_WRITE (128 * 1024)
#define MAX_PAGES 32
#define PAGE 4096
#define PAYLOAD_SZ (MAX_WRITE > MAX_PAGES * PAGE ? MAX_WRITE : MAX_PAGES * PAGE)
/* A /dev/fuse read needs room for a whole FUSE_WRITE. */
#define DEV_BUF_SZ (MAX_WRITE + PAGE)
#define REPLY_MINOR 42	/* first ABI minor with io_uring */

#define NOREPLY 1	/* handle(): FORGET and friends get no answer */
#define MAXREP 50
#define MAXDEV 2

static long long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Pin the calling thread to `cpu`, or let it run anywhere if cpu < 0. */
static int pin(int cpu)
{
	cpu_set_t set;
	int n = get_nprocs_conf();

	CPU_ZERO(&set);
	for (int i = 0; i < n; i++)
		if (cpu < 0 || i == cpu)
			CPU_SET(i, &set);
	return sched_setaffinity(0, sizeof set, &set) ? -errno : 0;
}

/* ---------------------------------------------------------------------------
 * A minimal io_uring: just what one queue thread needs (128-byte SQEs, the
 * single-mmap ring layout of every kernel since 5.4).
 */
struct ring {
	int fd;
	unsigned *sq_head, *sq_tail, sq_mask, sq_entries, sq_local_tail;
	unsigned *cq_head, *cq_tail, cq_mask, cqe_shift;
	char *sqes;			/* sq_entries * 128 bytes */
	struct io_uring_cqe *cqes;	/* 16 bytes each, 32 with CQE32 */
	void *map;
	size_t map_sz, sqes_sz;
};

static int ring_init(struct ring *r, unsigned entries, unsigned flags)
{
	struct io_uring_params p;
	size_t sq_sz, cq_sz;
	unsigned *array;
	int err;

	memset(r, 0, sizeof *r);
	memset(&p, 0, sizeof p);
	p.flags = flags | IORING_SETUP_SQE128;	/* room for fuse_uring_cmd_req */
	r->fd = syscall(__NR_io_uring_setup, entries, &p);
	if (r->fd < 0)
		return -errno;
	if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
		close(r->fd);
		r->fd = -1;
		return -ENOSYS;
	}
	r->cqe_shift = (p.flags & IORING_SETUP_CQE32) ? 1 : 0;
	sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	cq_sz = p.cq_off.cqes + ((size_t)p.cq_entries * sizeof(struct io_uring_cqe) << r->cqe_shift);
	r->map_sz = sq_sz > cq_sz ? sq_sz : cq_sz;
	r->map = mmap(NULL, r->map_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		      r->fd, IORING_OFF_SQ_RING);
	if (r->map == MAP_FAILED)
		goto fail;
	r->sqes_sz = (size_t)p.sq_entries * 128;
	r->sqes = mmap(NULL, r->sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       r->fd, IORING_OFF_SQES);
	if (r->sqes == MAP_FAILED) {
		munmap(r->map, r->map_sz);
		goto fail;
	}
	r->sq_head = (unsigned *)((char *)r->map + p.sq_off.head);
	r->sq_tail = (unsigned *)((char *)r->map + p.sq_off.tail);
	r->sq_mask = *(unsigned *)((char *)r->map + p.sq_off.ring_mask);
	r->sq_entries = p.sq_entries;
	r->sq_local_tail = *r->sq_tail;
	r->cq_head = (unsigned *)((char *)r->map + p.cq_off.head);
	r->cq_tail = (unsigned *)((char *)r->map + p.cq_off.tail);
	r->cq_mask = *(unsigned *)((char *)r->map + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)((char *)r->map + p.cq_off.cqes);
	/* SQ slot i always holds SQE i: the indirection array is the identity. */
	array = (unsigned *)((char *)r->map + p.sq_off.array);
	for (unsigned i = 0; i < p.sq_entries; i++)
		array[i] = i;
	return 0;
fail:
	err = -errno;
	close(r->fd);
	r->fd = -1;
	return err;
}

static void ring_exit(struct ring *r)
{
	if (r->fd < 0)
		return;
	munmap(r->sqes, r->sqes_sz);
	munmap(r->map, r->map_sz);
	close(r->fd);
	r->fd = -1;
}

/* A zeroed SQE, or NULL if the SQ is full (cannot happen: one SQE per entry). */
static struct io_uring_sqe *ring_sqe(struct ring *r)
{
	unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
	struct io_uring_sqe *sqe;

	if (r->sq_local_tail - head >= r->sq_entries)
		return NULL;
	sqe = (struct io_uring_sqe *)(r->sqes + (size_t)(r->sq_local_tail & r->sq_mask) * 128);
	memset(sqe, 0, 128);
	r->sq_local_tail++;
	return sqe;
}

/* Submit what is queued and wait for `wait_nr` completions: one syscall.
 * GETEVENTS always, so DEFER_TASKRUN task work runs even when not waiting. */
static int ring_enter(struct ring *r, unsigned wait_nr)
{
	unsigned pending;
	int ret;

	__atomic_store_n(r->sq_tail, r->sq_local_tail, __ATOMIC_RELEASE);
	pending = r->sq_local_tail - __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
	ret = syscall(__NR_io_uring_enter, r->fd, pending, wait_nr, IORING_ENTER_GETEVENTS, NULL, 0);
	return ret < 0 ? -errno : ret;
}

static struct io_uring_cqe *ring_cqe(struct ring *r)
{
	unsigned head = *r->cq_head;	/* only we move it */

	if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		return NULL;
	return &r->cqes[(head & r->cq_mask) << r->cqe_shift];
}

static void ring_cqe_seen(struct ring *r)
{
	__atomic_store_n(r->cq_head, *r->cq_head + 1, __ATOMIC_RELEASE);
}

/* ---------------------------------------------------------------------------
 * Variants and the state of the current mount.
 */
enum { V_EXT4, V_TMPFS, V_CLASSIC1, V_CLASSIC2, V_CLASSIC2_CLONE, V_URING, V_URING_DEFER, NVARIANT };

static const struct variant {
	const char *name;
	int dev_threads;	/* /dev/fuse readers; 0 = no FUSE at all (baseline) */
	int pin_dev;		/* pin reader i to CPU i (ring variants: unpinned, idle) */
	int clone_fd;		/* readers after the first get their own cloned fd */
	int uring;
	unsigned ring_flags;
} variants[NVARIANT] = {
	[V_EXT4] = { "base-ext4", 0, 0, 0, 0, 0 },
	[V_TMPFS] = { "base-tmpfs", 0, 0, 0, 0, 0 },
	[V_CLASSIC1] = { "classic-1t", 1, 1, 0, 0, 0 },
	[V_CLASSIC2] = { "classic-2t", 2, 1, 0, 0, 0 },
	[V_CLASSIC2_CLONE] = { "classic-2t-clone", 2, 1, 1, 0, 0 },
	[V_URING] = { "uring", 1, 0, 0, 1, 0 },
	[V_URING_DEFER] = { "uring-defer", 1, 0, 0, 1,
			    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN },
};

struct queue;

/* One ring entry: a request slot with its header and payload buffers. */
struct ent {
	struct queue *q;
	struct fuse_uring_req_header *hdr;
	char *payload;
	struct iovec iov[2];
};

/* One io_uring queue: the kernel routes a request to queue N when the
 * requesting task runs on CPU N, so each queue's thread sits on that CPU. */
struct queue {
	int qid;
	pthread_t tid;
	int started;
	struct ring ring;
	struct ent *ents;
	atomic_ulong served;
};

static struct {
	/* for the whole run */
	char dir[64], mnt[96], ext4_file[96], tmpfs_file[64];
	int ncpu;		/* possible CPUs: the kernel makes one queue each */
	unsigned depth;		/* ring entries per queue */
	unsigned extra_ring_flags;
	time_t t0;

	/* for the current mount */
	const struct variant *v;
	int fd;
	volatile sig_atomic_t mounted;
	atomic_int stop;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int inited;		/* INIT answered */
	int uring_offered, uring_granted;
	int nreported, first_err; /* queue threads done registering, first error */
	atomic_ulong served_dev;
	pthread_t dev_tid[MAXDEV];
	int dev_fd[MAXDEV], dev_cpu[MAXDEV];	/* per reader: its fd (fd or a clone), CPU */
	int ndev;
	struct queue *queues;
	int nq;
} fs = { .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static volatile pid_t client_pid;

/* ---------------------------------------------------------------------------
 * The file system: one handler for both transports. `op` is the opcode's
 * fixed struct (in_args[0]), `data` what follows (a name). The reply body
 * goes to `out` (at most 256 bytes), its size to *outlen. Returns 0, a
 * negative errno, or NOREPLY.
 */
static uint64_t ttl(uint64_t ino)
{
	return ino == INO_G ? 0 : TTL_CACHED;
}

static void fill_attr(struct fuse_attr *a, uint64_t ino)
{
	memset(a, 0, sizeof *a);
	a->ino = ino;
	a->mode = ino == INO_ROOT ? S_IFDIR | 0755 : S_IFREG | 0644;
	a->nlink = ino == INO_ROOT ? 2 : 1;
	a->blksize = PAGE;
	a->atime = a->mtime = a->ctime = fs.t0;
}

/* Size of in_args[0] for the opcodes we read: on /dev/fuse the arguments are
 * simply concatenated, so this is where the name starts. (Over the ring
 * in_args[0] sits in op_in and the rest in the payload; LOOKUP has an empty
 * in_args[0] there since 6.14, so the name comes first in both layouts.) */
static size_t op_size(uint32_t opcode)
{
	switch (opcode) {
	case FUSE_INIT:
		return sizeof(struct fuse_init_in);
	case FUSE_GETATTR:
		return sizeof(struct fuse_getattr_in);
	case FUSE_GETXATTR:
		return sizeof(struct fuse_getxattr_in);
	default:
		return 0;
	}
}

static int do_init(const struct fuse_init_in *in, struct fuse_init_out *out, size_t *outlen)
{
	uint64_t kflags = in->flags, want = FUSE_INIT_EXT | FUSE_MAX_PAGES;

	if (in->flags & FUSE_INIT_EXT)
		kflags |= (uint64_t)in->flags2 << 32;
	if (in->major != FUSE_KERNEL_VERSION)
		return -EPROTO;
	/* The kernel offers the flag only when fuse.enable_uring is Y. */
	fs.uring_offered = !!(kflags & FUSE_OVER_IO_URING);
	if (fs.v->uring && fs.uring_offered)
		want |= FUSE_OVER_IO_URING;
	fs.uring_granted = !!(want & FUSE_OVER_IO_URING);

	memset(out, 0, sizeof *out);
	out->major = FUSE_KERNEL_VERSION;
	out->minor = in->minor < REPLY_MINOR ? in->minor : REPLY_MINOR;
	out->max_readahead = in->max_readahead;
	out->flags = (uint32_t)want;
	out->flags2 = (uint32_t)(want >> 32);
	out->max_background = 16;
	out->congestion_threshold = 12;
	out->max_write = MAX_WRITE;
	out->time_gran = 1;
	out->max_pages = MAX_PAGES;
	*outlen = sizeof *out;
	return 0;
}

static int handle(const struct fuse_in_header *in, const void *op, const void *data,
		  void *out, size_t *outlen)
{
	*outlen = 0;
	switch (in->opcode) {
	case FUSE_INIT:
		return do_init(op, out, outlen);
	case FUSE_LOOKUP: {
		struct fuse_entry_out *e = out;
		uint64_t ino = 0;

		if (in->nodeid == INO_ROOT && !strcmp(data, "f"))
			ino = INO_F;
		else if (in->nodeid == INO_ROOT && !strcmp(data, "g"))
			ino = INO_G;
		if (!ino)
			return -ENOENT;
		memset(e, 0, sizeof *e);
		e->nodeid = ino;
		e->generation = 1;
		e->entry_valid = e->attr_valid = ttl(ino);
		fill_attr(&e->attr, ino);
		*outlen = sizeof *e;
		return 0;
	}
	case FUSE_GETATTR: {
		struct fuse_attr_out *a = out;

		if (in->nodeid < INO_ROOT || in->nodeid > INO_G)
			return -ENOENT;
		memset(a, 0, sizeof *a);
		a->attr_valid = ttl(in->nodeid);
		fill_attr(&a->attr, in->nodeid);
		*outlen = sizeof *a;
		return 0;
	}
	case FUSE_GETXATTR:
		return -ENODATA;
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT:
		return NOREPLY;
	default:
		return -ENOSYS;
	}
}

/* ---------------------------------------------------------------------------
 * Classic transport: read() a request from /dev/fuse, writev() the reply.
 * Two syscalls (and two context switches) per round trip on the daemon side.
 */
static void *dev_thread(void *arg)
{
	int idx = (int)(intptr_t)arg, fd = fs.dev_fd[idx], cpu = fs.dev_cpu[idx];
	char *buf = malloc(DEV_BUF_SZ);
	char body[256];

	if (!buf)
		return NULL;
	if (cpu >= 0 && pin(cpu))
		fprintf(stderr, "floor: pinning a /dev/fuse thread to CPU %d failed\n", cpu);
	while (!atomic_load(&fs.stop)) {
		ssize_t n = read(fd, buf, DEV_BUF_SZ);
		const struct fuse_in_header *in = (void *)buf;
		struct fuse_out_header oh;
		struct iovec iov[2];
		size_t len;
		int err;

		if (n < 0) {
			/* EINTR: our stop signal; ENOENT: request interrupted before we read it */
			if (errno == EINTR || errno == EAGAIN || errno == ENOENT)
				continue;
			if (errno != ENODEV)	/* ENODEV: unmounted */
				fprintf(stderr, "floor: read /dev/fuse: %s\n", strerror(errno));
			break;
		}
		if ((size_t)n < sizeof *in)
			continue;
		err = handle(in, buf + sizeof *in, buf + sizeof *in + op_size(in->opcode), body, &len);
		if (err == NOREPLY)
			continue;
		oh.unique = in->unique;
		oh.error = err;
		oh.len = sizeof oh + (err ? 0 : len);
		iov[0] = (struct iovec){ &oh, sizeof oh };
		iov[1] = (struct iovec){ body, len };
		/* the reply goes to the fd the request came from */
		if (writev(fd, iov, err ? 1 : 2) < 0 && errno != ENOENT)
			fprintf(stderr, "floor: write /dev/fuse: %s\n", strerror(errno));
		atomic_fetch_add_explicit(&fs.served_dev, 1, memory_order_relaxed);
		if (in->opcode == FUSE_INIT) {
			/* The kernel has processed the reply when writev returns. */
			pthread_mutex_lock(&fs.lock);
			fs.inited = err ? err : 1;
			pthread_cond_broadcast(&fs.cond);
			pthread_mutex_unlock(&fs.lock);
		}
	}
	free(buf);
	return NULL;
}

/* ---------------------------------------------------------------------------
 * io_uring transport. Each queue thread REGISTERs its entries once; then each
 * loop is one io_uring_enter() that both submits the COMMIT_AND_FETCHes of the
 * requests just answered and sleeps until the next requests arrive.
 */
static void prep_cmd(struct io_uring_sqe *sqe, struct ent *e, uint32_t cmd_op, uint64_t commit_id)
{
	struct fuse_uring_cmd_req *req = (void *)sqe->cmd;

	sqe->opcode = IORING_OP_URING_CMD;
	sqe->flags = IOSQE_FIXED_FILE;	/* fd 0 of the ring's file table: /dev/fuse */
	sqe->fd = 0;
	sqe->cmd_op = cmd_op;
	sqe->user_data = (uint64_t)(uintptr_t)e;
	req->qid = e->q->qid;
	req->commit_id = commit_id;
}

/* Answer the request an entry holds and queue its COMMIT_AND_FETCH. */
static void ring_serve(struct queue *q, struct ent *e)
{
	struct fuse_uring_req_header *h = e->hdr;
	const struct fuse_in_header *in = (void *)h->in_out;
	struct fuse_out_header *oh = (void *)h->in_out;
	uint64_t unique = in->unique, commit_id = h->ring_ent_in_out.commit_id;
	char body[256];	/* not in place: the payload still holds the request's name */
	size_t len;
	int err = handle(in, h->op_in, e->payload, body, &len);

	if (err == NOREPLY)	/* cannot happen: forgets never use the ring */
		err = -EIO;
	if (!err)
		memcpy(e->payload, body, len);
	/* The out header replaces the in header; the body is the payload. */
	oh->unique = unique;
	oh->error = err;
	oh->len = sizeof *oh + (err ? 0 : len);
	h->ring_ent_in_out.payload_sz = err ? 0 : len;
	prep_cmd(ring_sqe(&q->ring), e, FUSE_IO_URING_CMD_COMMIT_AND_FETCH, commit_id);
	atomic_fetch_add_explicit(&q->served, 1, memory_order_relaxed);
}

static void queue_report(int err)
{
	pthread_mutex_lock(&fs.lock);
	fs.nreported++;
	if (err && !fs.first_err)
		fs.first_err = err;
	pthread_cond_broadcast(&fs.cond);
	pthread_mutex_unlock(&fs.lock);
}

static void *ring_thread(void *arg)
{
	struct queue *q = arg;
	struct io_uring_cqe *cqe;
	int err, done = 0;

	if (pin(q->qid))
		fprintf(stderr, "floor: pinning queue %d to its CPU failed\n", q->qid);
	/* The ring is made here: with SINGLE_ISSUER the creator is the submitter. */
	err = ring_init(&q->ring, fs.depth, fs.v->ring_flags | fs.extra_ring_flags);
	if (err) {
		fprintf(stderr, "floor: io_uring_setup (queue %d): %s\n", q->qid, strerror(-err));
		goto report;
	}
	if (syscall(__NR_io_uring_register, q->ring.fd, IORING_REGISTER_FILES, &fs.fd, 1) < 0) {
		err = -errno;
		fprintf(stderr, "floor: IORING_REGISTER_FILES: %s\n", strerror(errno));
		goto report;
	}
	for (unsigned i = 0; i < fs.depth; i++) {
		struct ent *e = &q->ents[i];
		struct io_uring_sqe *sqe = ring_sqe(&q->ring);

		e->iov[0] = (struct iovec){ e->hdr, sizeof *e->hdr };
		e->iov[1] = (struct iovec){ e->payload, PAYLOAD_SZ };
		prep_cmd(sqe, e, FUSE_IO_URING_CMD_REGISTER, 0);
		sqe->addr = (uint64_t)(uintptr_t)e->iov;
		sqe->len = 2;
	}
	err = ring_enter(&q->ring, 0);
	if (err >= 0 && (unsigned)err != fs.depth)
		err = -EIO;
	/* A successful REGISTER completes only when a request arrives; a
	 * refused one completes at once with the errno. */
	if (err > 0)
		err = 0;
	while (!err && (cqe = ring_cqe(&q->ring))) {
		struct ent *e = (void *)(uintptr_t)cqe->user_data;
		int res = cqe->res;

		ring_cqe_seen(&q->ring);
		if (res < 0)
			err = res;
		else
			ring_serve(q, e);	/* a request already: serve it */
	}
	if (err)
		fprintf(stderr, "floor: FUSE_IO_URING_CMD_REGISTER (queue %d): %s\n", q->qid, strerror(-err));
report:
	queue_report(err);
	while (!err && !done && !atomic_load(&fs.stop)) {
		int ret = ring_enter(&q->ring, 1);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			fprintf(stderr, "floor: io_uring_enter: %s\n", strerror(-ret));
			break;
		}
		while ((cqe = ring_cqe(&q->ring))) {
			struct ent *e = (void *)(uintptr_t)cqe->user_data;
			int res = cqe->res;

			ring_cqe_seen(&q->ring);
			if (res == -ENOTCONN)	/* connection torn down: unmounted */
				done = 1;
			else if (res < 0) {
				fprintf(stderr, "floor: ring completion (queue %d): %s\n", q->qid, strerror(-res));
				done = 1;
			} else
				ring_serve(q, e);
		}
	}
	ring_exit(&q->ring);	/* cancels whatever the kernel still holds */
	return NULL;
}

/* ---------------------------------------------------------------------------
 * Mount and unmount.
 */
static void on_stop_signal(int sig)
{
	(void)sig;	/* only there to interrupt read()/io_uring_enter() with EINTR */
}

static int wait_until(int (*cond)(void), int timeout_ms)
{
	struct timespec ts;
	int ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&fs.lock);
	while (!(ok = cond()))
		if (pthread_cond_timedwait(&fs.cond, &fs.lock, &ts))
			break;
	ok = cond();
	pthread_mutex_unlock(&fs.lock);
	return ok;
}

static int is_inited(void)
{
	return fs.inited != 0;
}

static int queues_reported(void)
{
	return fs.nreported == fs.nq;
}

/* Join a thread, poking it out of a blocking syscall; 0 if it went away. */
static int stop_thread(pthread_t t)
{
	for (int i = 0; i < 100; i++) {
		struct timespec ts;

		pthread_kill(t, SIGUSR1);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_timedjoin_np(t, NULL, &ts) == 0)
			return 0;
	}
	return -1;
}

static void fs_unmount(void)
{
	atomic_store(&fs.stop, 1);
	if (fs.mounted) {
		/* A plain unmount aborts the connection: readers get ENODEV, ring
		 * entries complete with -ENOTCONN. MNT_DETACH only as a last resort. */
		if (umount2(fs.mnt, 0) < 0) {
			fprintf(stderr, "floor: umount %s: %s; detaching\n", fs.mnt, strerror(errno));
			if (umount2(fs.mnt, MNT_DETACH) < 0)
				fprintf(stderr, "floor: umount2 MNT_DETACH: %s\n", strerror(errno));
		}
		fs.mounted = 0;
	}
	for (int i = 0; i < fs.ndev; i++) {
		if (stop_thread(fs.dev_tid[i]))
			fprintf(stderr, "floor: a /dev/fuse thread does not stop\n");
		if (fs.dev_fd[i] != fs.fd)
			close(fs.dev_fd[i]);
	}
	fs.ndev = 0;
	for (int i = 0; i < fs.nq; i++)
		if (fs.queues[i].started && stop_thread(fs.queues[i].tid))
			fprintf(stderr, "floor: queue thread %d does not stop\n", i);
	if (fs.fd >= 0)
		close(fs.fd);	/* after a detach, this is what aborts the connection */
	fs.fd = -1;
	if (fs.queues) {
		for (int i = 0; i < fs.nq; i++) {
			for (unsigned j = 0; fs.queues[i].ents && j < fs.depth; j++) {
				free(fs.queues[i].ents[j].hdr);
				free(fs.queues[i].ents[j].payload);
			}
			free(fs.queues[i].ents);
		}
		free(fs.queues);
		fs.queues = NULL;
	}
	fs.nq = 0;
}

static int start_queues(void)
{
	fs.nq = fs.ncpu;
	fs.queues = calloc(fs.nq, sizeof *fs.queues);
	if (!fs.queues)
		return -ENOMEM;
	for (int i = 0; i < fs.nq; i++) {
		struct queue *q = &fs.queues[i];

		q->qid = i;
		q->ents = calloc(fs.depth, sizeof *q->ents);
		if (!q->ents)
			return -ENOMEM;
		for (unsigned j = 0; j < fs.depth; j++) {
			struct ent *e = &q->ents[j];

			e->q = q;
			/* page-aligned: the kernel pins these pages */
			if (posix_memalign((void **)&e->hdr, PAGE, PAGE) ||
			    posix_memalign((void **)&e->payload, PAGE, PAYLOAD_SZ))
				return -ENOMEM;
			memset(e->hdr, 0, PAGE);
		}
	}
	for (int i = 0; i < fs.nq; i++) {
		if (pthread_create(&fs.queues[i].tid, NULL, ring_thread, &fs.queues[i]))
			return -EAGAIN;
		fs.queues[i].started = 1;
	}
	if (!wait_until(queues_reported, 5000))
		return -ETIMEDOUT;
	return fs.first_err;
}

/* Mount the variant's file system and start serving it. 0 or -errno, with
 * `why` saying what failed; the caller unmounts either way. */
static int fs_mount(const struct variant *v, const char **why)
{
	char opts[128];
	int err;

	fs.v = v;
	atomic_store(&fs.stop, 0);
	fs.inited = fs.uring_offered = fs.uring_granted = 0;
	fs.nreported = fs.first_err = 0;
	atomic_store(&fs.served_dev, 0);
	*why = "open /dev/fuse";
	fs.fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fs.fd < 0)
		return -errno;
	snprintf(opts, sizeof opts, "fd=%d,rootmode=40000,user_id=0,group_id=0", fs.fd);
	*why = "mount";
	if (mount("floor", fs.mnt, "fuse.floor", MS_NOSUID | MS_NODEV, opts) < 0)
		return -errno;
	fs.mounted = 1;
	for (int i = 0; i < v->dev_threads; i++) {
		fs.dev_cpu[i] = v->pin_dev ? i % fs.ncpu : -1;
		fs.dev_fd[i] = fs.fd;
		if (i > 0 && v->clone_fd) {
			/* a second /dev/fuse file on the same connection: own
			 * processing queue, shared input queue */
			*why = "FUSE_DEV_IOC_CLONE";
			fs.dev_fd[i] = open("/dev/fuse", O_RDWR | O_CLOEXEC);
			if (fs.dev_fd[i] < 0)
				return -errno;
			if (ioctl(fs.dev_fd[i], FUSE_DEV_IOC_CLONE, &fs.fd) < 0) {
				err = -errno;
				close(fs.dev_fd[i]);
				return err;
			}
		}
		*why = "starting a /dev/fuse thread";
		if (pthread_create(&fs.dev_tid[i], NULL, dev_thread, (void *)(intptr_t)i)) {
			if (fs.dev_fd[i] != fs.fd)
				close(fs.dev_fd[i]);
			return -EAGAIN;
		}
		fs.ndev++;
	}
	*why = "INIT";
	if (!wait_until(is_inited, 5000))
		return -ETIMEDOUT;
	if (fs.inited < 0)
		return fs.inited;
	if (!v->uring)
		return 0;
	*why = "INIT: the kernel does not offer FUSE_OVER_IO_URING (fuse.enable_uring=N?)";
	if (!fs.uring_granted)
		return -EOPNOTSUPP;
	*why = "io_uring queue registration";
	err = start_queues();
	return err;
}

static unsigned long ring_served(void)
{
	unsigned long n = 0;

	for (int i = 0; i < fs.nq; i++)
		n += atomic_load(&fs.queues[i].served);
	return n;
}

static int cmp_double(const void *a, const void *b);

/* ---------------------------------------------------------------------------
 * The client: a process forked before any mount (so it holds none of the
 * daemon's descriptors), driven over a pipe.
 */
struct cmd {
	int quit, cpu, n, warm;
	char xattr_path[128], stat_path[128];
};

struct result {
	double xattr_us, stat_us;	/* median of BATCH-call batches, per call */
	double xattr_mean, stat_mean;	/* whole loop, per call */
	long bad_xattr, bad_stat;
	int xattr_errno, stat_errno;
};

/* The machine may be shared: a loop's mean includes every preemption by
 * other work, so the client also times BATCH-call batches and reports the
 * median batch, which such bursts barely move. */
#define BATCH 100

static double median_of(double *v, int n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void client_main(int in, int out)
{
	struct cmd c;
	double *bt = NULL;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	while (read(in, &c, sizeof c) == sizeof c && !c.quit) {
		struct result r;
		struct stat st;
		char buf[64];
		long long t0, t1, t2, b0;
		int nb = c.n / BATCH > 0 ? c.n / BATCH : 1, per = c.n / nb;

		memset(&r, 0, sizeof r);
		free(bt);
		bt = malloc(nb * sizeof *bt);
		if (!bt)
			break;
		pin(c.cpu);
		for (int i = 0; i < c.warm; i++) {
			(void)!getxattr(c.xattr_path, "user.none", buf, sizeof buf);
			stat(c.stat_path, &st);
		}
		t0 = b0 = now_ns();
		for (int i = 0; i < nb * per; i++) {
			if (getxattr(c.xattr_path, "user.none", buf, sizeof buf) >= 0 || errno != ENODATA) {
				r.bad_xattr++;
				r.xattr_errno = errno;
			}
			if ((i + 1) % per == 0) {
				long long t = now_ns();

				bt[i / per] = (t - b0) / 1e3 / per;
				b0 = t;
			}
		}
		t1 = now_ns();
		r.xattr_mean = (t1 - t0) / 1e3 / (nb * per);
		r.xattr_us = median_of(bt, nb);
		b0 = t1;
		for (int i = 0; i < nb * per; i++) {
			if (stat(c.stat_path, &st) < 0) {
				r.bad_stat++;
				r.stat_errno = errno;
			}
			if ((i + 1) % per == 0) {
				long long t = now_ns();

				bt[i / per] = (t - b0) / 1e3 / per;
				b0 = t;
			}
		}
		t2 = now_ns();
		r.stat_mean = (t2 - t1) / 1e3 / (nb * per);
		r.stat_us = median_of(bt, nb);
		if (write(out, &r, sizeof r) != sizeof r)
			break;
	}
	_exit(0);
}

static int cmd_fd = -1, res_fd = -1;

static int run_client(int cpu, int n, int warm, const char *xpath, const char *spath, struct result *r)
{
	struct cmd c;
	struct pollfd p = { .fd = res_fd, .events = POLLIN };

	memset(&c, 0, sizeof c);
	c.cpu = cpu;
	c.n = n;
	c.warm = warm;
	snprintf(c.xattr_path, sizeof c.xattr_path, "%s", xpath);
	snprintf(c.stat_path, sizeof c.stat_path, "%s", spath);
	if (write(cmd_fd, &c, sizeof c) != sizeof c)
		return -EPIPE;
	if (poll(&p, 1, 120000) <= 0)
		return -ETIMEDOUT;
	return read(res_fd, r, sizeof *r) == sizeof *r ? 0 : -EPIPE;
}

/* ---------------------------------------------------------------------------
 * Clean-up on any exit, signals included: no mount may stay behind.
 */
static void cleanup_files(void)
{
	unlink(fs.ext4_file);
	unlink(fs.tmpfs_file);
	rmdir(fs.mnt);
	rmdir(fs.dir);
}

static void on_fatal(int sig)
{
	/* async-signal-safe only; exiting closes /dev/fuse, which aborts the
	 * connection of the detached mount */
	if (client_pid > 0)
		kill(client_pid, SIGKILL);
	if (fs.mounted)
		umount2(fs.mnt, MNT_DETACH);
	cleanup_files();
	_exit(128 + sig);
}

static void die(const char *msg)
{
	fprintf(stderr, "floor: %s\n", msg);
	if (client_pid > 0) {
		kill(client_pid, SIGKILL);
		waitpid(client_pid, NULL, 0);
		client_pid = 0;
	}
	fs_unmount();
	cleanup_files();
	exit(1);
}

/* ---------------------------------------------------------------------------
 * Statistics and report.
 */
static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct cell {
	int n;
	double v[MAXREP];
};

static double median(const struct cell *c)
{
	double s[MAXREP];

	if (!c->n)
		return 0;
	memcpy(s, c->v, c->n * sizeof *s);
	qsort(s, c->n, sizeof *s, cmp_double);
	return c->n % 2 ? s[c->n / 2] : (s[c->n / 2 - 1] + s[c->n / 2]) / 2;
}

static double minimum(const struct cell *c)
{
	double m = c->n ? c->v[0] : 0;

	for (int i = 1; i < c->n; i++)
		if (c->v[i] < m)
			m = c->v[i];
	return m;
}

static double maximum(const struct cell *c)
{
	double m = c->n ? c->v[0] : 0;

	for (int i = 1; i < c->n; i++)
		if (c->v[i] > m)
			m = c->v[i];
	return m;
}

static void add(struct cell *c, double v)
{
	if (c->n < MAXREP)
		c->v[c->n++] = v;
}

/* per variant, per client placement (0 = pinned, 1 = unpinned) */
static struct {
	struct cell xattr[2], stat[2], xattr_mean[2], stat_mean[2], reqs[2], ringpct[2], q0pct[2];
	long bad;
	char failed[160];
} res[NVARIANT];

static void usage(void)
{
	fprintf(stderr,
		"usage: floor [-n CALLS] [-w WARMUP] [-r REPS] [-d DEPTH] [-c CPU] [-C] [-v LIST]\n"
		"  -n CALLS   timed calls per loop (default 20000)\n"
		"  -w WARMUP  untimed calls before each loop (default 500)\n"
		"  -r REPS    repetitions, variants interleaved (default 5, max %d)\n"
		"  -d DEPTH   io_uring entries per queue (default 4)\n"
		"  -c CPU     CPU of the pinned client (default 0; a daemon thread sits there)\n"
		"  -C         also set IORING_SETUP_CQE32 (the kernel does not need it)\n"
		"  -v LIST    comma-separated variants (default all):\n"
		"             base-ext4,base-tmpfs,classic-1t,classic-2t,classic-2t-clone,\n"
		"             uring,uring-defer\n",
		MAXREP);
	exit(2);
}

static void print_row(const char *name, const char *what, const struct cell *c, const char *extra)
{
	if (!c->n)
		return;
	printf("  %-16s %-9s %7.2f  [%6.2f .. %6.2f]  %s\n", name, what, median(c), minimum(c),
	       maximum(c), extra);
}

int main(int argc, char **argv)
{
	int n = 20000, warm = 500, reps = 5, client_cpu = 0, opt;
	int enabled[NVARIANT];
	int pipe_cmd[2], pipe_res[2];
	struct sigaction sa;
	struct utsname u;
	char xpath[128], spath[128];
	const char *placement[2] = { "pinned", "unpinned" };

	fs.depth = 4;
	for (int i = 0; i < NVARIANT; i++)
		enabled[i] = 1;
	while ((opt = getopt(argc, argv, "n:w:r:d:c:Cv:h")) != -1) {
		switch (opt) {
		case 'n': n = atoi(optarg); break;
		case 'w': warm = atoi(optarg); break;
		case 'r': reps = atoi(optarg); break;
		case 'd': fs.depth = atoi(optarg); break;
		case 'c': client_cpu = atoi(optarg); break;
		case 'C': fs.extra_ring_flags |= IORING_SETUP_CQE32; break;
		case 'v': {
			char *list = strdup(optarg), *save = NULL;

			for (int i = 0; i < NVARIANT; i++)
				enabled[i] = 0;
			for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
				int i;

				for (i = 0; i < NVARIANT && strcmp(t, variants[i].name); i++)
					;
				if (i == NVARIANT)
					usage();
				enabled[i] = 1;
			}
			free(list);
			break;
		}
		default: usage();
		}
	}
	if (n < 1 || warm < 0 || reps < 1 || reps > MAXREP || fs.depth < 1 || fs.depth > 256)
		usage();
	if (geteuid() != 0) {
		fprintf(stderr, "floor: must run as root (mount(2), fuse.enable_uring)\n");
		return 1;
	}
	fs.ncpu = get_nprocs_conf();
	fs.t0 = time(NULL);

	/* Files: the mount point and the ext4 baseline side by side in /tmp,
	 * so the paths walked are alike; the tmpfs baseline in /dev/shm. */
	snprintf(fs.dir, sizeof fs.dir, "/tmp/fuse-floor.XXXXXX");
	if (!mkdtemp(fs.dir)) {
		perror("floor: mkdtemp");
		return 1;
	}
	snprintf(fs.mnt, sizeof fs.mnt, "%s/mnt", fs.dir);
	snprintf(fs.ext4_file, sizeof fs.ext4_file, "%s/base", fs.dir);
	snprintf(fs.tmpfs_file, sizeof fs.tmpfs_file, "/dev/shm/fuse-floor.%d", (int)getpid());

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_fatal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_stop_signal;	/* no SA_RESTART: blocking calls return EINTR */
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (mkdir(fs.mnt, 0755) < 0)
		die("mkdir mount point");
	for (int i = 0; i < 2; i++) {
		int fd = open(i ? fs.tmpfs_file : fs.ext4_file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);

		if (fd < 0)
			die("creating a baseline file");
		close(fd);
	}

	if (pipe2(pipe_cmd, O_CLOEXEC) || pipe2(pipe_res, O_CLOEXEC))
		die("pipe");
	client_pid = fork();
	if (client_pid < 0)
		die("fork");
	if (client_pid == 0) {
		close(pipe_cmd[1]);
		close(pipe_res[0]);
		client_main(pipe_cmd[0], pipe_res[1]);
	}
	close(pipe_cmd[0]);
	close(pipe_res[1]);
	cmd_fd = pipe_cmd[1];
	res_fd = pipe_res[0];

	uname(&u);
	printf("floor: kernel %s, %d CPUs, %d calls x %d reps (+%d warm-up), ring depth %u, "
	       "payload %d KiB, pinned client on CPU %d\n",
	       u.release, fs.ncpu, n, reps, warm, fs.depth, PAYLOAD_SZ / 1024, client_cpu);
	fflush(stdout);

	for (int rep = 0; rep < reps; rep++) {
		for (int k = 0; k < NVARIANT; k++) {
			/* rotate the order each repetition, so drift hits all variants */
			int vi = (k + rep) % NVARIANT;
			const struct variant *v = &variants[vi];
			const char *why = "";
			int err = 0;

			if (!enabled[vi] || res[vi].failed[0])
				continue;
			if (v->dev_threads) {
				err = fs_mount(v, &why);
				if (err) {
					snprintf(res[vi].failed, sizeof res[vi].failed, "%s: %s", why, strerror(-err));
					fprintf(stderr, "floor: %s: %s\n", v->name, res[vi].failed);
					fs_unmount();
					continue;
				}
				snprintf(xpath, sizeof xpath, "%s/f", fs.mnt);
				snprintf(spath, sizeof spath, "%s/g", fs.mnt);
			} else {
				const char *f = vi == V_EXT4 ? fs.ext4_file : fs.tmpfs_file;

				snprintf(xpath, sizeof xpath, "%s", f);
				snprintf(spath, sizeof spath, "%s", f);
			}
			for (int p = 0; p < 2; p++) {
				unsigned long dev0 = atomic_load(&fs.served_dev), ring0 = ring_served();
				unsigned long q00 = fs.nq ? atomic_load(&fs.queues[0].served) : 0;
				unsigned long dev, ring, q0;
				struct result r;

				if (run_client(p ? -1 : client_cpu, n, warm, xpath, spath, &r)) {
					fprintf(stderr, "floor: %s: the client did not answer\n", v->name);
					die("client timeout");
				}
				add(&res[vi].xattr[p], r.xattr_us);
				add(&res[vi].stat[p], r.stat_us);
				add(&res[vi].xattr_mean[p], r.xattr_mean);
				add(&res[vi].stat_mean[p], r.stat_mean);
				res[vi].bad += r.bad_xattr + r.bad_stat;
				if (r.bad_xattr)
					fprintf(stderr, "floor: %s: %ld getxattr not ENODATA (%s)\n", v->name,
						r.bad_xattr, strerror(r.xattr_errno));
				if (r.bad_stat)
					fprintf(stderr, "floor: %s: %ld stat failed (%s)\n", v->name, r.bad_stat,
						strerror(r.stat_errno));
				if (!v->dev_threads)
					continue;
				dev = atomic_load(&fs.served_dev) - dev0;
				ring = ring_served() - ring0;
				q0 = fs.nq ? atomic_load(&fs.queues[0].served) - q00 : 0;
				add(&res[vi].reqs[p], (double)(dev + ring) / (n + warm));
				if (v->uring && dev + ring) {
					add(&res[vi].ringpct[p], 100.0 * ring / (dev + ring));
					add(&res[vi].q0pct[p], ring ? 100.0 * q0 / ring : 0);
				}
			}
			if (v->dev_threads)
				fs_unmount();
			printf("  rep %d %-16s getxattr %6.2f/%6.2f  stat %6.2f/%6.2f us (pinned/unpinned)\n",
			       rep + 1, v->name, res[vi].xattr[0].v[res[vi].xattr[0].n - 1],
			       res[vi].xattr[1].v[res[vi].xattr[1].n - 1],
			       res[vi].stat[0].v[res[vi].stat[0].n - 1],
			       res[vi].stat[1].v[res[vi].stat[1].n - 1]);
			fflush(stdout);
		}
	}

	{
		struct cmd q = { .quit = 1 };

		if (write(cmd_fd, &q, sizeof q) != sizeof q)
			kill(client_pid, SIGKILL);
		waitpid(client_pid, NULL, 0);
		client_pid = 0;
	}
	cleanup_files();

	printf("\nmicroseconds per call: median [min .. max] over %d runs of each run's median\n"
	       "%d-call batch; 'mean' = median over runs of each run's plain mean (includes preemptions)\n",
	       reps, BATCH);
	for (int p = 0; p < 2; p++) {
		printf("\nclient %s%s\n", placement[p], p ? "" : " (same CPU as a daemon thread)");
		for (int vi = 0; vi < NVARIANT; vi++) {
			char extra[160], xmean[32];

			if (!enabled[vi])
				continue;
			if (res[vi].failed[0]) {
				printf("  %-16s FAILED: %s\n", variants[vi].name, res[vi].failed);
				continue;
			}
			snprintf(extra, sizeof extra, "mean %6.2f", median(&res[vi].stat_mean[p]));
			if (res[vi].reqs[p].n)
				snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "  req/iter %.2f",
					 median(&res[vi].reqs[p]));
			if (res[vi].ringpct[p].n)
				snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
					 ", ring %.1f%%, queue 0 %.0f%%", median(&res[vi].ringpct[p]),
					 median(&res[vi].q0pct[p]));
			snprintf(xmean, sizeof xmean, "mean %6.2f", median(&res[vi].xattr_mean[p]));
			print_row(variants[vi].name, "getxattr", &res[vi].xattr[p], xmean);
			print_row("", "stat", &res[vi].stat[p], extra);
		}
	}

	/* Round-trip cost: getxattr over FUSE minus getxattr on ext4 (same
	 * directory depth), and half of (stat of g minus stat on ext4). */
	if (enabled[V_EXT4] && res[V_EXT4].xattr[0].n) {
		printf("\nFUSE round trip = call minus the base-ext4 call (stat: two round trips, halved)\n");
		for (int p = 0; p < 2; p++) {
			double bx = median(&res[V_EXT4].xattr[p]), bs = median(&res[V_EXT4].stat[p]);
			double c1 = 0;

			printf("  client %s\n", placement[p]);
			for (int vi = V_CLASSIC1; vi < NVARIANT; vi++) {
				double rx, rs;

				if (!enabled[vi] || res[vi].failed[0] || !res[vi].xattr[p].n)
					continue;
				rx = median(&res[vi].xattr[p]) - bx;
				rs = (median(&res[vi].stat[p]) - bs) / 2;
				if (vi == V_CLASSIC1)
					c1 = rx;
				printf("    %-16s getxattr RT %6.2f us   stat RT %6.2f us", variants[vi].name, rx, rs);
				if (vi != V_CLASSIC1 && c1 > 0)
					printf("   getxattr RT vs classic-1t: %+.0f%%", 100.0 * (rx - c1) / c1);
				printf("\n");
			}
		}
	}
	for (int vi = 0; vi < NVARIANT; vi++)
		if (res[vi].bad)
			printf("WARNING: %s had %ld unexpected results\n", variants[vi].name, res[vi].bad);
	return 0;
}
