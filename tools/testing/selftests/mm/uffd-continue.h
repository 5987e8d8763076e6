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
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
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

/* CLOCK_MONOTONIC in ns: under QEMU -icount shift=0, guest instructions. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

#endif /* __UFFD_CONTINUE_H__ */
