// SPDX-License-Identifier: GPL-2.0
/*
 * MADV_DONTNEED of a whole PTE table of dirty shmem pages, which frees the
 * table (CONFIG_PT_RECLAIM), racing with hole punching and truncation of the
 * same file.
 *
 * The zap removes the rmaps of dirty file PTEs late, after the TLB flush
 * (delayed rmaps). If it cleared the PMD before removing them, a truncation
 * that unmaps the folio meanwhile would find no page table, skip the range,
 * and then find the folio still mapped when it takes it out of the page
 * cache: VM_BUG_ON_FOLIO(folio_mapped(folio)) in filemap_unaccount_folio(),
 * or "Bad page cache" without CONFIG_DEBUG_VM.
 *
 * The race runs in a child process for a few seconds (PT_RECLAIM_SECONDS in
 * the environment, 15 by default); the test fails if the kernel taints
 * itself with a BUG or a bad page meanwhile, or if the child does not finish
 * (a thread that died in the kernel leaves the file's locks held).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"

#ifndef BIT
#define BIT(nr)			(1UL << (nr))
#endif

/* /proc/sys/kernel/tainted: TAINT_BAD_PAGE and TAINT_DIE */
#define TAINT_BAD_PAGE_BIT	BIT(5)
#define TAINT_DIE_BIT		BIT(7)

#define SET(x, v)		__atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define GET(x)			__atomic_load_n(&(x), __ATOMIC_SEQ_CST)

static size_t page_size, pmd_size;

static unsigned long taint_flags(void)
{
	unsigned long t = 0;
	FILE *f = fopen("/proc/sys/kernel/tainted", "r");

	if (f) {
		if (fscanf(f, "%lu", &t) != 1)
			t = 0;
		fclose(f);
	}
	return t;
}

/* VmPTE of this process, in kB, or -1. */
static long vm_pte_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPTE: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct race {
	int fd;
	char *area;		/* pmd_size, PMD-aligned, maps the file */
	size_t npages;		/* pages written in each round */
	double end;
	bool stop;
	unsigned long zaps, punches, truncs, sigbus;
	int err;
};

/* Only the zapper touches the mapping, so only it can take a SIGBUS. */
static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	siglongjmp(bus_jmp, 1);
}

/* Write faults on npages pages, then zap the whole PTE table. */
static void *zapper(void *arg)
{
	struct race *r = arg;
	size_t i;

	while (!GET(r->stop) && now_s() < r->end) {
		/* Pages beyond a concurrent truncation raise SIGBUS. */
		if (sigsetjmp(bus_jmp, 1))
			r->sigbus++;
		else
			for (i = 0; i < r->npages; i++)
				r->area[i * page_size] = (char)i;
		if (madvise(r->area, pmd_size, MADV_DONTNEED)) {
			r->err = errno;
			break;
		}
		r->zaps++;
	}
	SET(r->stop, true);
	return NULL;
}

/*
 * Punch one of the last written pages out of the file, or truncate it, and
 * repeat. The zap removes the delayed rmaps in the order it zapped the
 * PTEs, so those of the last pages are removed last.
 */
static void *truncator(void *arg)
{
	struct race *r = arg;
	unsigned int seed = 1;
	off_t off;

	while (!GET(r->stop)) {
		off = (r->npages - 1 - rand_r(&seed) % 16) * page_size;
		if (rand_r(&seed) % 4) {
			if (fallocate(r->fd, FALLOC_FL_PUNCH_HOLE |
				      FALLOC_FL_KEEP_SIZE, off, page_size)) {
				r->err = errno;
				break;
			}
			r->punches++;
		} else {
			if (ftruncate(r->fd, off) ||
			    ftruncate(r->fd, pmd_size)) {
				r->err = errno;
				break;
			}
			r->truncs++;
		}
	}
	SET(r->stop, true);
	return NULL;
}

/* The race, in the child process: 0, or -errno. */
static int race_child(struct race *r)
{
	struct sigaction sa = { .sa_handler = on_sigbus };
	pthread_t tz, tt;

	if (sigaction(SIGBUS, &sa, NULL))
		return -errno;
	if (pthread_create(&tz, NULL, zapper, r) ||
	    pthread_create(&tt, NULL, truncator, r))
		return -EAGAIN;
	pthread_join(tz, NULL);
	pthread_join(tt, NULL);
	printf("# %lu zaps, %lu hole punches, %lu truncations, %lu SIGBUS\n",
	       r->zaps, r->punches, r->truncs, r->sigbus);
	fflush(stdout);
	return -r->err;
}

FIXTURE(pt_reclaim)
{
	char dir[64];
	bool mounted;
	int fd;
	char *map, *area;
};

FIXTURE_SETUP(pt_reclaim)
{
	char path[128];
	FILE *f;

	page_size = sysconf(_SC_PAGESIZE);
	pmd_size = 2UL << 20;
	f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "r");
	if (f) {
		if (fscanf(f, "%zu", &pmd_size) != 1)
			pmd_size = 2UL << 20;
		fclose(f);
	}

	/* Small folios only, mapped by PTEs: a tmpfs of our own, huge=never. */
	strcpy(self->dir, "/tmp/pt-reclaim-XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	self->mounted = !mount("tmpfs", self->dir, "tmpfs", 0,
			       "huge=never,size=16m");
	if (self->mounted) {
		snprintf(path, sizeof(path), "%s/file", self->dir);
		self->fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	} else {
		/* Not root: a memfd, which is huge=never unless told otherwise. */
		TH_LOG("mount tmpfs: %s; using a memfd", strerror(errno));
		self->fd = memfd_create("pt-reclaim", 0);
	}
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, ftruncate(self->fd, pmd_size));

	/* One PMD-aligned PMD of address space, mapping the whole file. */
	self->map = mmap(NULL, 2 * pmd_size, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->map);
	self->area = (char *)(((uintptr_t)self->map + pmd_size - 1) &
			      ~(pmd_size - 1));
	ASSERT_EQ(self->area, mmap(self->area, pmd_size,
				   PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_FIXED, self->fd, 0));
	madvise(self->area, pmd_size, MADV_NOHUGEPAGE);
}

FIXTURE_TEARDOWN(pt_reclaim)
{
	munmap(self->map, 2 * pmd_size);
	close(self->fd);
	if (self->mounted)
		umount2(self->dir, MNT_DETACH);
	rmdir(self->dir);
}

TEST_F_TIMEOUT(pt_reclaim, pt_reclaim_punch_truncate, 120)
{
	const unsigned long bad = TAINT_DIE_BIT | TAINT_BAD_PAGE_BIT;
	struct race *r;
	unsigned long t0, t;
	long before, after;
	double secs = 15, deadline;
	const char *env = getenv("PT_RECLAIM_SECONDS");
	int status = 0;
	size_t i;
	pid_t pid;

	if (env)
		secs = atof(env);

	/* Half the table: more dirty PTEs than that may not fit one batch. */
	r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, r);
	r->fd = self->fd;
	r->area = self->area;
	r->npages = pmd_size / page_size / 2;

	/* The zap must free the PTE table, or this tests nothing. */
	for (i = 0; i < r->npages; i++)
		self->area[i * page_size] = 1;
	before = vm_pte_kb();
	ASSERT_EQ(0, madvise(self->area, pmd_size, MADV_DONTNEED));
	after = vm_pte_kb();
	if (before < 0 || after >= before)
		SKIP(return,
		     "MADV_DONTNEED frees no PTE table (VmPTE %ld -> %ld kB)",
		     before, after);

	t0 = taint_flags();
	if (t0 & bad)
		TH_LOG("already tainted (0x%lx): only a hang is detected", t0);

	r->end = now_s() + secs;
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		_exit(-race_child(r));

	/* A thread that died in the kernel may leave the child stuck. */
	deadline = r->end + 30;
	while (waitpid(pid, &status, WNOHANG) == 0) {
		t = taint_flags();
		if ((t & bad) & ~t0) {
			kill(pid, SIGKILL);
			ASSERT_EQ(0, (t & bad) & ~t0)
				TH_LOG("kernel BUG or bad page (tainted 0x%lx)",
				       t);
		}
		if (now_s() > deadline) {
			kill(pid, SIGKILL);
			ASSERT_TRUE(false)
				TH_LOG("the race is stuck (tainted 0x%lx)", t);
		}
		usleep(100 * 1000);
	}
	t = taint_flags();
	TH_LOG("%lu zaps, %lu hole punches, %lu truncations", r->zaps,
	       r->punches, r->truncs);
	ASSERT_EQ(0, (t & bad) & ~t0)
		TH_LOG("kernel BUG or bad page (tainted 0x%lx)", t);
	ASSERT_TRUE(WIFEXITED(status)) TH_LOG("child status 0x%x", status);
	ASSERT_EQ(0, WEXITSTATUS(status))
		TH_LOG("race: %s", strerror(WEXITSTATUS(status)));
	ASSERT_LT(0, r->zaps);
	ASSERT_LT(0, r->punches + r->truncs);
	munmap(r, sizeof(*r));
}

TEST_HARNESS_MAIN
