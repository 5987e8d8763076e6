// SPDX-License-Identifier: GPL-2.0
/*
 * MADV_GUARD_INSTALL over userfaultfd write protection in a shmem VMA
 * registered for UFFDIO_REGISTER_MODE_WP: over a uffd-wp marker, over a
 * present write-protected page, and over a range that mixes both with an
 * existing guard region and an empty PTE.
 *
 * Zapping keeps uffd-wp markers in a file-backed VMA. A guard installation
 * that zaps and looks again until it finds room would never end; each
 * madvise() here must return within a few seconds (an alarm turns a call
 * that does not into a failure), and leave guard markers in place of the
 * write protection.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kselftest_harness.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL	102
#define MADV_GUARD_REMOVE	103
#endif

#ifndef BIT_ULL
#define BIT_ULL(nr)		(1ULL << (nr))
#endif

#define PM_UFFD_WP		BIT_ULL(57)
#define PM_GUARD_REGION		BIT_ULL(58)
#define PM_PRESENT		BIT_ULL(63)

#define NR_PAGES		8
#define GUARD_SECONDS		10

static size_t page_size;
static sigjmp_buf alarm_jmp;

static void on_alarm(int sig)
{
	siglongjmp(alarm_jmp, 1);
}

/*
 * madvise(MADV_GUARD_INSTALL), given GUARD_SECONDS to return: 0, -errno, or
 * -ETIMEDOUT. A call that restarts forever is only left by a signal handler
 * that does not return.
 */
static int guard_install(void *addr, size_t len)
{
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	int ret;

	if (sigaction(SIGALRM, &sa, &old))
		return -errno;
	if (sigsetjmp(alarm_jmp, 1)) {
		ret = -ETIMEDOUT;
	} else {
		alarm(GUARD_SECONDS);
		ret = madvise(addr, len, MADV_GUARD_INSTALL) ? -errno : 0;
	}
	alarm(0);
	sigaction(SIGALRM, &old, NULL);
	return ret;
}

static uint64_t pagemap_entry(void *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &e, sizeof(e),
		  (uintptr_t)addr / page_size * sizeof(e)) != sizeof(e))
		e = 0;
	close(fd);
	return e;
}

FIXTURE(guard_wp)
{
	int fd, uffd;
	char *area;
};

FIXTURE_SETUP(guard_wp)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
	};
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_WP };
	size_t i;

	page_size = sysconf(_SC_PAGESIZE);
	self->uffd = -1;
	self->fd = memfd_create("guard-uffd-wp", 0);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, ftruncate(self->fd, NR_PAGES * page_size));
	self->area = mmap(NULL, NR_PAGES * page_size, PROT_READ | PROT_WRITE,
			  MAP_SHARED, self->fd, 0);
	ASSERT_NE(MAP_FAILED, self->area);
	for (i = 0; i < NR_PAGES; i++)
		memset(self->area + i * page_size, 'a' + i, page_size);

	/* Guard regions in shmem, before anything else. */
	if (madvise(self->area, page_size, MADV_GUARD_INSTALL))
		SKIP(return, "MADV_GUARD_INSTALL on shmem: %s",
		     strerror(errno));
	ASSERT_EQ(0, madvise(self->area, page_size, MADV_GUARD_REMOVE));

	self->uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (self->uffd < 0 && errno == EPERM)
		self->uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK |
				     UFFD_USER_MODE_ONLY);
	if (self->uffd < 0)
		SKIP(return, "userfaultfd: %s", strerror(errno));
	if (ioctl(self->uffd, UFFDIO_API, &api))
		SKIP(return, "no uffd-wp on shmem: %s", strerror(errno));
	reg.range.start = (uintptr_t)self->area;
	reg.range.len = NR_PAGES * page_size;
	if (ioctl(self->uffd, UFFDIO_REGISTER, &reg))
		SKIP(return, "UFFDIO_REGISTER_MODE_WP: %s", strerror(errno));
}

FIXTURE_TEARDOWN(guard_wp)
{
	if (self->uffd >= 0)
		close(self->uffd);
	munmap(self->area, NR_PAGES * page_size);
	close(self->fd);
}

static int writeprotect(int uffd, void *addr, size_t len)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}

static char *pg(char *area, int i)
{
	return area + i * page_size;
}

/* Page i is a guard, then reads back the file's contents without it. */
static void assert_guarded_then_file(struct __test_metadata *_metadata,
				     char *area, int i)
{
	char *p = pg(area, i);

	ASSERT_TRUE(pagemap_entry(p) & PM_GUARD_REGION);
	ASSERT_EQ(0, madvise(p, page_size, MADV_GUARD_REMOVE));
	ASSERT_FALSE(pagemap_entry(p) & PM_GUARD_REGION);
	ASSERT_EQ('a' + i, __atomic_load_n(p, __ATOMIC_RELAXED));
}

/* A uffd-wp marker, left where a write-protected page was zapped. */
TEST_F(guard_wp, guard_wp_marker)
{
	uint64_t e;

	ASSERT_EQ(0, writeprotect(self->uffd, pg(self->area, 1), page_size));
	ASSERT_EQ(0, madvise(pg(self->area, 1), page_size, MADV_DONTNEED));
	e = pagemap_entry(pg(self->area, 1));
	if (!(e & PM_UFFD_WP) || (e & PM_PRESENT))
		SKIP(return, "no uffd-wp marker after MADV_DONTNEED");

	ASSERT_EQ(0, guard_install(pg(self->area, 1), page_size))
		TH_LOG("MADV_GUARD_INSTALL over a uffd-wp marker");
	assert_guarded_then_file(_metadata, self->area, 1);
}

/* A present, write-protected page. */
TEST_F(guard_wp, guard_wp_present)
{
	uint64_t e;

	ASSERT_EQ(0, writeprotect(self->uffd, pg(self->area, 2), page_size));
	e = pagemap_entry(pg(self->area, 2));
	ASSERT_TRUE(e & PM_PRESENT);
	ASSERT_TRUE(e & PM_UFFD_WP);

	ASSERT_EQ(0, guard_install(pg(self->area, 2), page_size))
		TH_LOG("MADV_GUARD_INSTALL over a write-protected page");
	assert_guarded_then_file(_metadata, self->area, 2);
}

/*
 * Both, an existing guard and an empty PTE in one range: every page ends up
 * guarded, and the guard installed first never went away.
 */
TEST_F(guard_wp, guard_wp_mixed)
{
	int i;

	ASSERT_EQ(0, madvise(pg(self->area, 2), page_size, MADV_GUARD_INSTALL));
	ASSERT_EQ(0, writeprotect(self->uffd, pg(self->area, 0), 2 * page_size));
	ASSERT_EQ(0, writeprotect(self->uffd, pg(self->area, 3), page_size));
	ASSERT_EQ(0, madvise(pg(self->area, 1), page_size, MADV_DONTNEED));
	ASSERT_EQ(0, madvise(pg(self->area, 4), page_size, MADV_DONTNEED));
	ASSERT_TRUE(pagemap_entry(pg(self->area, 1)) & PM_UFFD_WP);
	ASSERT_TRUE(pagemap_entry(pg(self->area, 2)) & PM_GUARD_REGION);

	ASSERT_EQ(0, guard_install(pg(self->area, 0), 5 * page_size))
		TH_LOG("MADV_GUARD_INSTALL over uffd-wp state");
	for (i = 0; i < 5; i++)
		assert_guarded_then_file(_metadata, self->area, i);
	/* The rest of the registered range is untouched. */
	ASSERT_TRUE(pagemap_entry(pg(self->area, 5)) & PM_PRESENT);
	ASSERT_FALSE(pagemap_entry(pg(self->area, 5)) & PM_GUARD_REGION);
}

TEST_HARNESS_MAIN
