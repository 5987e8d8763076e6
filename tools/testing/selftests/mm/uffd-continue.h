/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What uffd-continue, uffd-continue-stress and uffd-continue-bench share:
 * accessors of test pages and shared variables, their userfaultfd, smaps, the
 * shmem files whose minor faults they resolve (a file on a tmpfs, or on a
 * huge=always tmpfs of their own), PMD-aligned mappings of them, and a
 * memory cgroup of their own.
 */
#ifndef __UFFD_CONTINUE_H__
#define __UFFD_CONTINUE_H__

#include "uffd-common.h"

#include <limits.h>
#include <linux/magic.h>
#include <linux/rseq.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/vfs.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif
#ifndef MADV_HWPOISON
#define MADV_HWPOISON		100
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL	102
#define MADV_GUARD_REMOVE	103
#endif

/* Accesses to test pages that the compiler must not elide or merge. */
#define LOAD64(p)		__atomic_load_n((uint64_t *)(p), __ATOMIC_RELAXED)
#define STORE64(p, v)		__atomic_store_n((uint64_t *)(p), (v), __ATOMIC_RELAXED)

/*
 * Variables shared with other threads and with signal handlers are accessed
 * with the (lock-free) __atomic builtins, through these.
 */
#define SET(x, v)		__atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define GET(x)			__atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define ADD(x, v)		__atomic_fetch_add(&(x), (v), __ATOMIC_SEQ_CST)
#define INC(x)			ADD(x, 1)

/* The C/Rust switch of test kernels, and its counters. */
#define DEBUGFS_UFFD		"/sys/kernel/debug/userfaultfd/"

/*
 * A userfaultfd with @features enabled, non-blocking; only for faults in
 * userspace if that is all we may have. Returns the fd or -errno, and the
 * features the kernel has in *@avail.
 */
static inline int uffd_new(__u64 features, __u64 *avail)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd, err;

	fd = uffd_open_sys(O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == EPERM)
		fd = uffd_open_sys(O_CLOEXEC | O_NONBLOCK |
				   UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api)) {
		err = errno;
		close(fd);
		return -err;
	}
	if (avail)
		*avail = api.features;
	return fd;
}

/*
 * Maps @size bytes of @fd, readable and writable, at an address aligned to
 * @align. Returns the address or MAP_FAILED.
 */
static inline char *mmap_aligned(size_t size, size_t align, int flags, int fd)
{
	char *resv, *p, *end;

	resv = mmap(NULL, size + align, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (resv == MAP_FAILED)
		return MAP_FAILED;
	p = (char *)(((uintptr_t)resv + align - 1) & ~(uintptr_t)(align - 1));
	end = resv + size + align;
	if (mmap(p, size, PROT_READ | PROT_WRITE, flags | MAP_FIXED, fd, 0) !=
	    p) {
		munmap(resv, size + align);
		return MAP_FAILED;
	}
	if (p > resv)
		munmap(resv, p - resv);
	if (end > p + size)
		munmap(p + size, end - (p + size));
	return p;
}

/* The value in kB of @field for the mapping at @addr in /proc/self/smaps. */
static inline long smaps_kb(const void *addr, const char *field)
{
	unsigned long start, end;
	bool in = false;
	char line[256];
	long kb = -1;
	FILE *f;

	f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = (uintptr_t)addr >= start && (uintptr_t)addr < end;
			continue;
		}
		if (in && !strncmp(line, field, strlen(field)) &&
		    line[strlen(field)] == ':') {
			kb = atol(line + strlen(field) + 1);
			break;
		}
	}
	fclose(f);
	return kb;
}

/* An unnamed file on the tmpfs at @dir, or -1 and why not in *@why. */
static inline int tmpfs_file(const char *dir, const char **why)
{
	char path[64];
	struct statfs sfs;
	int fd;

	if (statfs(dir, &sfs) || sfs.f_type != TMPFS_MAGIC) {
		*why = "not a tmpfs";
		return -1;
	}
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	snprintf(path, sizeof(path), "%s/uffd-continue.XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		*why = "cannot create a file there";
		return -1;
	}
	unlink(path);
	return fd;
}

/*
 * An unnamed file on a new huge=always tmpfs, in a mount namespace of ours,
 * whose page cache holds PMD-sized folios; or -1 and why not in *@why.
 */
static inline int thp_file(const char **why)
{
	static const char * const dirs[] = { "/tmp", "/dev/shm", "/mnt" };
	unsigned int i;
	int fd;

	if (unshare(CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		*why = "mounting a huge=always tmpfs needs CAP_SYS_ADMIN";
		return -1;
	}
	for (i = 0; i < ARRAY_SIZE(dirs); i++) {
		if (mount("tmpfs", dirs[i], "tmpfs", 0, "huge=always"))
			continue;
		fd = tmpfs_file(dirs[i], why);
		umount2(dirs[i], MNT_DETACH);
		return fd;
	}
	*why = "mount -t tmpfs -o huge=always failed (no CONFIG_TRANSPARENT_HUGEPAGE?)";
	return -1;
}

/* ------------------------------------------------------------------------ */
/* A memory cgroup of a test process */

#define CGROUP_ROOT	"/sys/fs/cgroup"

static char cg_dir[128];	/* the cgroup made by memcg_create(), or "" */
static char cg_home[300];	/* where this process was before */

static inline int cg_write(const char *dir, const char *file, const char *val)
{
	char path[256];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * A number from a file of cg_dir ("max": LONG_MAX), or the value of a key;
 * -1 if there is none.
 */
static inline long cg_read(const char *file, const char *key)
{
	char path[256], line[256];
	size_t n = key ? strlen(key) : 0;
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", cg_dir, file);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (key && (strncmp(line, key, n) || line[n] != ' '))
			continue;
		v = !strncmp(line + n, "max", 3) ? LONG_MAX :
		    strtol(line + n, NULL, 10);
		break;
	}
	fclose(f);
	return v;
}

/*
 * Makes a new memory cgroup, cg_dir, named @prefix and this process's pid;
 * NULL, or why not. Its swap is accounted (memory.swap.current) if the
 * kernel accounts swap at all.
 */
static inline const char *memcg_create(const char *prefix)
{
	char line[256];
	struct statfs sfs;
	FILE *f;

	if (statfs(CGROUP_ROOT, &sfs) || sfs.f_type != CGROUP2_SUPER_MAGIC)
		return "no cgroup2 at " CGROUP_ROOT;
	f = fopen("/proc/self/cgroup", "r");
	if (!f || !fgets(line, sizeof(line), f) || strncmp(line, "0::/", 4)) {
		if (f)
			fclose(f);
		return "not in the cgroup2 hierarchy";
	}
	fclose(f);
	line[strcspn(line, "\n")] = 0;
	snprintf(cg_home, sizeof(cg_home), CGROUP_ROOT "%s", line + 3);
	if (cg_write(CGROUP_ROOT, "cgroup.subtree_control", "+memory"))
		return "cannot enable the memory controller (CONFIG_MEMCG, root?)";
	snprintf(cg_dir, sizeof(cg_dir), CGROUP_ROOT "/%s-%d", prefix,
		 getpid());
	if (mkdir(cg_dir, 0700)) {
		cg_dir[0] = 0;
		return "cannot create a memory cgroup";
	}
	return NULL;
}

/* Moves this (single-threaded) process into cg_dir; 0 or -errno. */
static inline int memcg_join(void)
{
	return cg_write(cg_dir, "cgroup.procs", "0");
}

/* Removes cg_dir, which no process may be in any more. */
static inline void memcg_remove(void)
{
	if (!cg_dir[0])
		return;
	rmdir(cg_dir);
	cg_dir[0] = 0;
}

/* ------------------------------------------------------------------------ */
/* UFFDIO_CONTINUE, with the kernel's allocation failures injected if asked */

/*
 * With UFFD_FAULT_INJECT=1 in the environment, every UFFDIO_CONTINUE that
 * uffd_continue_ioctl() makes runs with the calling thread's
 * /proc/thread-self/make-it-fail set, and only these calls: the kernel's
 * fault injection (fail_page_alloc, failslab with task-filter=Y, configured
 * by whoever runs the program; harness/guest/run-tests.sh) then fails some of
 * the slab and page allocations of the call, and none of the program's own
 * set-up. An allocation failure may fail a CONTINUE with ENOMEM (a page
 * table, or the anon_vma of a private mapping, could not be allocated) or
 * EFAULT (the page could not be swapped in: a folio, an xarray node), after
 * pages were mapped or not (then EAGAIN and the bytes mapped). On any of
 * these, the wrapper does what a VMM does: it retries the rest of the range,
 * from start + mapped, without injection, and returns the outcome of the two
 * calls together, which is that of one call without injection; so the
 * callers' own checks (result, errno, mapped, pagemap, contents) hold as
 * they are. Any other outcome is returned as it is. The first call's outcome
 * must be one the admin guide documents for CONTINUE, or it is counted as
 * undocumented (uffd_fi_failed()).
 */
#define UFFD_FI_ENV		"UFFD_FAULT_INJECT"

/* Counts of all processes of the program (a shared page); see ADD(). */
struct uffd_fi_counts {
	unsigned long calls;		/* CONTINUE calls made under injection */
	unsigned long failed;		/* of which failed and were retried */
	unsigned long injected;		/* ... the retry did better: injected */
	unsigned long enomem, efault, partial;	/* ... by outcome */
	unsigned long undocumented;	/* first calls with an undocumented outcome */
	unsigned long errors;		/* make-it-fail could not be set */
	char last[160];			/* the last undocumented outcome or error */
};

static struct uffd_fi_counts *uffd_fi;	/* NULL: no injection */
/*
 * Held for reading from before a CONTINUE under injection until its
 * make-it-fail is clear again, for writing around a fork() of a thread that
 * may run meanwhile (uffd_fi_fork()); see uffd_fi_touch().
 */
static pthread_rwlock_t uffd_fi_fork_lock;
/* Of this process: a test of a kselftest_harness program runs in one. */
static unsigned long uffd_fi_undocumented;
static bool uffd_fi_paused;		/* no injection in this process */
static pthread_key_t uffd_fi_key;
/* This thread's make-it-fail, open, and the thread that opened it. */
static __thread int uffd_fi_fd = -1;
static __thread pid_t uffd_fi_tid;

static void uffd_fi_close(void *fdp)
{
	close((int)(uintptr_t)fdp - 1);
}

/*
 * Turns injection on if UFFD_FAULT_INJECT=1; call it once, before any
 * thread or child is made. Returns whether it is on.
 */
static inline bool uffd_fi_init(void)
{
	const char *env = getenv(UFFD_FI_ENV);
	pthread_rwlockattr_t attr;

	if (!env || strcmp(env, "1"))
		return false;
	uffd_fi = mmap(NULL, sizeof(*uffd_fi), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pthread_rwlockattr_init(&attr);
	/* A stream of CONTINUE must not starve a forking thread. */
	pthread_rwlockattr_setkind_np(&attr,
				      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	if (uffd_fi == MAP_FAILED ||
	    pthread_rwlock_init(&uffd_fi_fork_lock, &attr) ||
	    pthread_key_create(&uffd_fi_key, uffd_fi_close)) {
		fprintf(stderr, "%s=1: no memory for its counters\n",
			UFFD_FI_ENV);
		exit(KSFT_FAIL);
	}
	memset(uffd_fi, 0, sizeof(*uffd_fi));
	return true;
}

static void uffd_fi_note(bool undocumented, const char *fmt, ...)
{
	va_list ap;

	if (undocumented) {
		INC(uffd_fi->undocumented);
		uffd_fi_undocumented++;
	} else {
		INC(uffd_fi->errors);
	}
	va_start(ap, fmt);
	vsnprintf(uffd_fi->last, sizeof(uffd_fi->last), fmt, ap);
	va_end(ap);
}

/*
 * For a child that is done with CONTINUE: unmaps the counters, which its
 * parent keeps, so that its RssShmem is that of the files it tested only.
 * Its CONTINUE calls, if any, are no longer under injection.
 */
static inline void uffd_fi_detach(void)
{
	if (!uffd_fi)
		return;
	munmap(uffd_fi, sizeof(*uffd_fi));
	uffd_fi = NULL;
}

/*
 * Sets this thread's make-it-fail to @on. The file stays open (opening it
 * allocates): a thread opens its own, closed when it exits, and a child of
 * fork() opens its own too (/proc/thread-self is the opener's).
 */
static inline bool uffd_fi_set(bool on)
{
	static const char val[] = "01";
	pid_t tid = syscall(SYS_gettid);

	if (uffd_fi_fd < 0 || uffd_fi_tid != tid) {
		/* A copy of our parent's, after fork(). */
		if (uffd_fi_fd >= 0)
			close(uffd_fi_fd);
		uffd_fi_fd = open("/proc/thread-self/make-it-fail",
				  O_WRONLY | O_CLOEXEC);
		if (uffd_fi_fd < 0) {
			uffd_fi_note(false, "/proc/thread-self/make-it-fail: %s",
				     strerror(errno));
			return false;
		}
		uffd_fi_tid = tid;
		pthread_setspecific(uffd_fi_key,
				    (void *)(uintptr_t)(uffd_fi_fd + 1));
	}
	if (pwrite(uffd_fi_fd, &val[on], 1, 0) != 1) {
		uffd_fi_note(false, "make-it-fail = %d: %s", on,
			     strerror(errno));
		return false;
	}
	return true;
}

/* glibc's rseq area of each thread (glibc 2.35 and later; weak: or none). */
extern const ptrdiff_t __rseq_offset;
extern const unsigned int __rseq_size;
#pragma weak __rseq_offset
#pragma weak __rseq_size

/*
 * Under injection a CONTINUE must fail of its own allocations only. But on
 * its way back to user space the call also writes to the calling thread's own
 * memory: @c->mapped, and the thread's rseq area, which glibc registers for
 * every thread and the kernel updates after the thread was scheduled (and,
 * if it cannot, kills the thread with SIGSEGV, which it then cannot deliver
 * either). A page of these that a fork() left write-protected needs a new
 * page on that write, and injection may fail that allocation. So, with
 * uffd_fi_fork_lock held for reading (no fork() until make-it-fail is clear
 * again), write them first: a page that was shared with a child is copied
 * now, without injection.
 */
static inline void uffd_fi_touch(struct uffdio_continue *c)
{
	/*
	 * The first and the last field: @c may straddle two pages. Each
	 * written with the value it has, as a store the compiler keeps.
	 */
	STORE64(&c->range.start, LOAD64(&c->range.start));
	STORE64(&c->mapped, LOAD64(&c->mapped));
#ifdef __has_builtin
#if __has_builtin(__builtin_thread_pointer)
	/* rseq_cs is user space's own field, and 0 outside a critical section. */
	if (&__rseq_size && __rseq_size >= offsetof(struct rseq, rseq_cs) + 8) {
		char *cs = (char *)__builtin_thread_pointer() + __rseq_offset +
			   offsetof(struct rseq, rseq_cs);

		STORE64(cs, LOAD64(cs));
	}
#endif
#endif
}

/*
 * fork() for a program whose other threads may CONTINUE under injection
 * meanwhile: it write-protects their pages, which uffd_fi_touch() must not
 * see happen. The child must not CONTINUE (it inherits the lock held).
 */
static inline pid_t uffd_fi_fork(void)
{
	pid_t pid;

	if (!uffd_fi)
		return fork();
	pthread_rwlock_wrlock(&uffd_fi_fork_lock);
	pid = fork();
	if (pid)
		pthread_rwlock_unlock(&uffd_fi_fork_lock);
	return pid;
}

/*
 * An outcome the admin guide documents for a CONTINUE of @len bytes: all of
 * it, part of it (EAGAIN and the bytes mapped), or -errno in mapped.
 */
static inline bool uffd_fi_documented(int ret, int err, __s64 mapped,
				      __u64 len, size_t page)
{
	if (!ret)
		return mapped == (__s64)len;
	if (ret != -1)
		return false;
	if (err == EAGAIN && mapped > 0)
		return mapped < (__s64)len && !(mapped % page);
	switch (err) {
	case EAGAIN:
	case EEXIST:
	case EFAULT:
	case EINVAL:
	case EIO:
	case ENOENT:
	case ENOMEM:
	case ESRCH:
	case EINTR:
		/* Failed before any page, or validation left it alone. */
		return mapped == -err || err == EINVAL;
	}
	return false;
}

/* ioctl(@uffd, UFFDIO_CONTINUE, @c), under injection if it is on. */
static inline int uffd_continue_ioctl(int uffd, struct uffdio_continue *c)
{
	struct uffdio_continue rest = *c;
	size_t page = getpagesize();
	__s64 done = 0;
	int ret, err, first_err;

	if (!uffd_fi || uffd_fi_paused)
		return ioctl(uffd, UFFDIO_CONTINUE, c);
	pthread_rwlock_rdlock(&uffd_fi_fork_lock);
	uffd_fi_touch(c);
	if (!uffd_fi_set(true)) {
		pthread_rwlock_unlock(&uffd_fi_fork_lock);
		return ioctl(uffd, UFFDIO_CONTINUE, c);
	}
	ret = ioctl(uffd, UFFDIO_CONTINUE, c);
	err = errno;
	uffd_fi_set(false);
	pthread_rwlock_unlock(&uffd_fi_fork_lock);
	INC(uffd_fi->calls);
	if (!uffd_fi_documented(ret, err, c->mapped, c->range.len, page)) {
		uffd_fi_note(true, "CONTINUE(%#llx, %llu) under injection: ret %d errno %d mapped %lld",
			     (unsigned long long)c->range.start,
			     (unsigned long long)c->range.len, ret, err,
			     (long long)c->mapped);
		errno = err;
		return ret;
	}
	if (!ret || (err != ENOMEM && err != EFAULT &&
		     !(err == EAGAIN && c->mapped > 0))) {
		errno = err;
		return ret;
	}
	/* What an allocation failure may have done: retry the rest. */
	first_err = err;
	INC(uffd_fi->failed);
	if (err == EAGAIN) {
		done = c->mapped;
		INC(uffd_fi->partial);
	} else {
		INC(*(err == ENOMEM ? &uffd_fi->enomem : &uffd_fi->efault));
	}
	rest.range.start += done;
	rest.range.len -= done;
	rest.mapped = 0;
	ret = ioctl(uffd, UFFDIO_CONTINUE, &rest);
	err = errno;
	/*
	 * Caused by injection unless the retry fails the same page: the page
	 * after the part that was mapped, the same way if none was.
	 */
	if (!ret || rest.mapped > 0 || (!done && err != first_err))
		INC(uffd_fi->injected);
	if (!done) {
		c->mapped = rest.mapped;
		errno = err;
		return ret;
	}
	if (!ret) {
		c->mapped = c->range.len;
		return 0;
	}
	/* Part of the range, as one call reports it. */
	c->mapped = done + (rest.mapped > 0 ? rest.mapped : 0);
	errno = EAGAIN;
	return -1;
}

/*
 * The summary: one "# fault injection: ..." line. Returns whether injection
 * went as it should: make-it-fail could be set, no undocumented outcome.
 */
static inline bool uffd_fi_report(void)
{
	if (!uffd_fi)
		return true;
	printf("# fault injection: %lu CONTINUE under injection, %lu failed (%lu ENOMEM, %lu EFAULT, %lu partial) and were retried, %lu of them because of it; %lu undocumented outcomes, %lu errors\n",
	       GET(uffd_fi->calls), GET(uffd_fi->failed), GET(uffd_fi->enomem),
	       GET(uffd_fi->efault), GET(uffd_fi->partial),
	       GET(uffd_fi->injected), GET(uffd_fi->undocumented),
	       GET(uffd_fi->errors));
	if (uffd_fi->last[0])
		printf("# fault injection: last problem: %s\n", uffd_fi->last);
	fflush(stdout);
	return !GET(uffd_fi->undocumented) && !GET(uffd_fi->errors);
}

/* CLOCK_MONOTONIC in ns: under QEMU -icount shift=0, guest instructions. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/*
 * The implementation the running kernel was built with, from its config
 * (/proc/config.gz, else /boot/config-RELEASE), for a kernel without the
 * switch: "Rust (...)", "C (...)" or "unknown (...)".
 */
static inline const char *built_impl(void)
{
	const char *what = "unknown (no kernel config to read)";
	char cmd[128], line[256];
	struct utsname u;
	bool uffd = false;
	FILE *f = NULL;

	if (!access("/proc/config.gz", R_OK)) {
		f = popen("zcat /proc/config.gz 2>/dev/null", "r");
	} else if (!uname(&u)) {
		snprintf(cmd, sizeof(cmd), "/boot/config-%s", u.release);
		f = fopen(cmd, "r");
	}
	if (!f)
		return what;
	while (fgets(line, sizeof(line), f)) {
		if (!strcmp(line, "CONFIG_USERFAULTFD=y\n"))
			uffd = true;
		if (!strcmp(line, "CONFIG_USERFAULTFD_RUST=y\n"))
			what = "Rust (CONFIG_USERFAULTFD_RUST=y)";
	}
	if (!strncmp(what, "unknown", 7))
		what = uffd ? "C (CONFIG_USERFAULTFD_RUST not set)" :
			      "unknown (no CONFIG_USERFAULTFD=y in its config)";
	if (!access("/proc/config.gz", R_OK))
		pclose(f);
	else
		fclose(f);
	return what;
}

/*
 * The number after @key and @sep on a line of the file at @path ("key:
 * value" in /proc, "key value" in debugfs), or -1 if there is none.
 */
static inline long file_value(const char *path, const char *key, char sep)
{
	char line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == sep) {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* A counter of debugfs userfaultfd/stats (test kernels), or -1. */
static inline long mfill_stat(const char *name)
{
	return file_value(DEBUGFS_UFFD "stats", name, ' ');
}

#endif /* __UFFD_CONTINUE_H__ */
