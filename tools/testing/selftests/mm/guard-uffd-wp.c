// SPDX-License-Identifier: GPL-2.0
/*
 * MADV_GUARD_INSTALL over userfaultfd write protection in a shmem VMA
 * registered for UFFDIO_REGISTER_MODE_WP.
 *
 * Zapping keeps uffd-wp markers in a file-backed VMA, and so does a guard
 * installation: the guard marker keeps the uffd-wp bit of the entry it
 * replaces. Each MADV_GUARD_INSTALL here must return within a few seconds
 * (an alarm turns a call that does not into a failure); then the guard wins
 * over the protection (SIGSEGV, no userfaultfd event), and after
 * MADV_GUARD_REMOVE the entry is write-protected again: PM_UFFD_WP in
 * pagemap, and a write raises a uffd-wp fault. The bit under a guard is set
 * and cleared by UFFDIO_WRITEPROTECT and set by PAGEMAP_SCAN, kept by
 * MADV_DONTNEED and by fork() into a child that keeps the registration,
 * dropped (the guard kept) for a child that does not and by mremap()
 * without UFFD_FEATURE_EVENT_REMAP; UFFDIO_CONTINUE and UFFDIO_POISON
 * refuse such an entry.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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
#define PM_SWAP			BIT_ULL(62)
#define PM_PRESENT		BIT_ULL(63)
/* The bits that say what an entry is, for the checks below. */
#define PM_STATE		(PM_PRESENT | PM_SWAP | PM_GUARD_REGION | PM_UFFD_WP)

#define NR_PAGES		8
#define GUARD_SECONDS		10
#define EVENT_MS		5000
#define NO_EVENT_MS		1000

static size_t page_size;
static sigjmp_buf signal_jmp;
static volatile sig_atomic_t signal_caught;

static void on_signal(int sig)
{
	signal_caught = sig;
	siglongjmp(signal_jmp, 1);
}

enum attempt { ATTEMPT_READ, ATTEMPT_WRITE, ATTEMPT_GUARD };

/*
 * Reads or writes *p, or installs a guard over len bytes at p, with SIGSEGV,
 * SIGBUS and, after GUARD_SECONDS, SIGALRM caught: returns the signal that
 * ended it, or 0 (*ret, if not NULL, then says what madvise() returned: 0 or
 * -errno). A guard installation that restarts forever is only left by a
 * signal handler that does not return.
 */
static int attempt(char *p, size_t len, enum attempt how, int *ret)
{
	struct sigaction sa = { .sa_handler = on_signal }, old[3];
	const int sigs[3] = { SIGSEGV, SIGBUS, SIGALRM };
	int i, r = 0;

	for (i = 0; i < 3; i++)
		sigaction(sigs[i], &sa, &old[i]);
	signal_caught = 0;
	if (!sigsetjmp(signal_jmp, 1)) {
		alarm(GUARD_SECONDS);
		if (how == ATTEMPT_READ)
			(void)__atomic_load_n(p, __ATOMIC_RELAXED);
		else if (how == ATTEMPT_WRITE)
			__atomic_store_n(p, 'X', __ATOMIC_RELAXED);
		else
			r = madvise(p, len, MADV_GUARD_INSTALL) ? -errno : 0;
	}
	alarm(0);
	for (i = 0; i < 3; i++)
		sigaction(sigs[i], &old[i], NULL);
	if (ret)
		*ret = r;
	return signal_caught;
}

/* MADV_GUARD_INSTALL: 0, -errno, or -ETIMEDOUT if it did not return. */
static int guard_install(void *addr, size_t len)
{
	int ret;

	return attempt(addr, len, ATTEMPT_GUARD, &ret) ? -ETIMEDOUT : ret;
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

static uint64_t pm_state(void *addr)
{
	return pagemap_entry(addr) & PM_STATE;
}

/*
 * A userfaultfd with these features (-errno); *offered, if not NULL, says
 * which features the kernel has.
 */
static int uffd_open(uint64_t features, uint64_t *offered)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int uffd;

	uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0 && errno == EPERM)
		uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK |
			       UFFD_USER_MODE_ONLY);
	if (uffd < 0)
		return -errno;
	if (ioctl(uffd, UFFDIO_API, &api)) {
		int err = -errno;

		close(uffd);
		return err;
	}
	if (offered)
		*offered = api.features;
	return uffd;
}

static int uffd_register(int uffd, void *addr, size_t len, uint64_t mode)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};

	return ioctl(uffd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

static int writeprotect(int uffd, void *addr, size_t len, bool wp)
{
	struct uffdio_writeprotect w = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &w) ? -errno : 0;
}

/* Waits up to ms for a message: 0, -ETIMEDOUT or -errno. */
static int read_msg(int uffd, struct uffd_msg *msg, int ms)
{
	struct pollfd pfd = { .fd = uffd, .events = POLLIN };
	int n = poll(&pfd, 1, ms);

	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	if (read(uffd, msg, sizeof(*msg)) != sizeof(*msg))
		return -errno;
	return 0;
}

FIXTURE(guard_wp)
{
	int fd, uffd;
	uint64_t features;
	char *area;
};

FIXTURE_SETUP(guard_wp)
{
	int uffd;
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

	uffd = uffd_open(0, &self->features);
	if (uffd < 0)
		SKIP(return, "userfaultfd: %s", strerror(-uffd));
	close(uffd);
	if (!(self->features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
		SKIP(return, "no uffd-wp on shmem");
	self->uffd = uffd_open(UFFD_FEATURE_WP_HUGETLBFS_SHMEM, NULL);
	ASSERT_LE(0, self->uffd);
	if (uffd_register(self->uffd, self->area, NR_PAGES * page_size,
			  UFFDIO_REGISTER_MODE_WP))
		SKIP(return, "UFFDIO_REGISTER_MODE_WP: %s", strerror(errno));
}

FIXTURE_TEARDOWN(guard_wp)
{
	if (self->uffd >= 0)
		close(self->uffd);
	munmap(self->area, NR_PAGES * page_size);
	close(self->fd);
}

/*
 * Replaces the fixture's userfaultfd with one with these features too, and
 * registers the area with these modes too.
 */
static int reopen_uffd(FIXTURE_DATA(guard_wp) *self, uint64_t features,
		       uint64_t modes)
{
	close(self->uffd);
	self->uffd = uffd_open(UFFD_FEATURE_WP_HUGETLBFS_SHMEM | features,
			       NULL);
	if (self->uffd < 0)
		return self->uffd;
	return uffd_register(self->uffd, self->area, NR_PAGES * page_size,
			     UFFDIO_REGISTER_MODE_WP | modes);
}

static char *pg(char *area, int i)
{
	return area + i * page_size;
}

struct writer {
	pthread_t th;
	char *p;
	char val;
	int done;
};

static void *writer_fn(void *arg)
{
	struct writer *w = arg;

	__atomic_store_n(w->p, w->val, __ATOMIC_RELAXED);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Waits up to ms for the writer to be done. */
static bool writer_done(struct writer *w, int ms)
{
	for (; ms > 0; ms -= 10) {
		if (__atomic_load_n(&w->done, __ATOMIC_ACQUIRE))
			return true;
		usleep(10000);
	}
	return __atomic_load_n(&w->done, __ATOMIC_ACQUIRE);
}

/*
 * A write to page i of area raises a uffd-wp fault; once the protection is
 * resolved, the write goes through to the file and the rest of the page is
 * the file's.
 */
static void assert_write_faults(struct __test_metadata *_metadata,
				FIXTURE_DATA(guard_wp) *self, char *area, int i)
{
	struct writer w = { .p = pg(area, i), .val = 'A' + i };
	struct uffd_msg msg;
	char c;

	ASSERT_EQ(0, pthread_create(&w.th, NULL, writer_fn, &w));
	ASSERT_EQ(0, read_msg(self->uffd, &msg, EVENT_MS))
		TH_LOG("a write to page %d raised no userfaultfd event", i);
	ASSERT_EQ(UFFD_EVENT_PAGEFAULT, msg.event);
	ASSERT_TRUE(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP);
	ASSERT_EQ((uintptr_t)w.p, msg.arg.pagefault.address);
	ASSERT_FALSE(writer_done(&w, 0));
	ASSERT_EQ(0, writeprotect(self->uffd, w.p, page_size, false));
	ASSERT_TRUE(writer_done(&w, EVENT_MS));
	pthread_join(w.th, NULL);
	ASSERT_EQ(1, pread(self->fd, &c, 1, i * page_size));
	ASSERT_EQ('A' + i, c);
	ASSERT_EQ('a' + i, __atomic_load_n(w.p + 1, __ATOMIC_RELAXED));
}

/* A write to page i of area goes through without a userfaultfd event. */
static void assert_write_free(struct __test_metadata *_metadata,
			      FIXTURE_DATA(guard_wp) *self, char *area, int i)
{
	struct writer w = { .p = pg(area, i), .val = 'A' + i };
	struct uffd_msg msg;
	char c;

	ASSERT_EQ(0, pthread_create(&w.th, NULL, writer_fn, &w));
	if (!writer_done(&w, EVENT_MS)) {
		/* Let it go before failing. */
		writeprotect(self->uffd, w.p, page_size, false);
		ASSERT_TRUE(false) TH_LOG("a write to page %d blocked", i);
	}
	pthread_join(w.th, NULL);
	ASSERT_EQ(-ETIMEDOUT, read_msg(self->uffd, &msg, 0));
	ASSERT_EQ(1, pread(self->fd, &c, 1, i * page_size));
	ASSERT_EQ('A' + i, c);
	ASSERT_EQ(PM_PRESENT, pm_state(w.p));
}

/*
 * Page i is write-protected: MADV_GUARD_INSTALL makes it a guard that keeps
 * the protection, the guard wins (SIGSEGV, no event), and after
 * MADV_GUARD_REMOVE a write raises a uffd-wp fault.
 */
static void assert_guard_keeps_wp(struct __test_metadata *_metadata,
				  FIXTURE_DATA(guard_wp) *self, int i)
{
	char *p = pg(self->area, i);
	struct uffd_msg msg;

	ASSERT_EQ(0, guard_install(p, page_size))
		TH_LOG("MADV_GUARD_INSTALL over write protection");
	ASSERT_EQ(PM_SWAP | PM_GUARD_REGION | PM_UFFD_WP, pm_state(p));
	ASSERT_EQ(SIGSEGV, attempt(p, 0, ATTEMPT_READ, NULL));
	ASSERT_EQ(SIGSEGV, attempt(p, 0, ATTEMPT_WRITE, NULL));
	ASSERT_EQ(-ETIMEDOUT, read_msg(self->uffd, &msg, NO_EVENT_MS));

	ASSERT_EQ(0, madvise(p, page_size, MADV_GUARD_REMOVE));
	ASSERT_EQ(PM_SWAP | PM_UFFD_WP, pm_state(p));
	assert_write_faults(_metadata, self, self->area, i);
}

/* UFFDIO_WRITEPROTECT over an entry that is not mapped: a uffd-wp marker. */
TEST_F(guard_wp, over_wp_hole)
{
	char *p = pg(self->area, 1);

	ASSERT_EQ(0, madvise(p, page_size, MADV_DONTNEED));
	ASSERT_EQ(0, pm_state(p));
	ASSERT_EQ(0, writeprotect(self->uffd, p, page_size, true));
	ASSERT_EQ(PM_SWAP | PM_UFFD_WP, pm_state(p));
	assert_guard_keeps_wp(_metadata, self, 1);
}

/* A present, write-protected page: the installation zaps it first. */
TEST_F(guard_wp, over_wp_present)
{
	char *p = pg(self->area, 2);

	ASSERT_EQ(0, writeprotect(self->uffd, p, page_size, true));
	ASSERT_EQ(PM_PRESENT | PM_UFFD_WP, pm_state(p));
	assert_guard_keeps_wp(_metadata, self, 2);
}

/* A uffd-wp marker left where a write-protected page was zapped. */
TEST_F(guard_wp, over_wp_zapped)
{
	char *p = pg(self->area, 3);

	ASSERT_EQ(0, writeprotect(self->uffd, p, page_size, true));
	ASSERT_EQ(0, madvise(p, page_size, MADV_DONTNEED));
	ASSERT_EQ(PM_SWAP | PM_UFFD_WP, pm_state(p));
	assert_guard_keeps_wp(_metadata, self, 3);
}

/*
 * All of these in one range, with an existing guard and an entry that was
 * never protected: every page becomes a guard, the older guard never goes
 * away, and each entry comes back as it was.
 */
TEST_F(guard_wp, over_mixed)
{
	const bool wp[5] = { true, true, false, true, false };
	int i;

	ASSERT_EQ(0, madvise(pg(self->area, 2), page_size, MADV_GUARD_INSTALL));
	ASSERT_EQ(0, writeprotect(self->uffd, pg(self->area, 0),
				  2 * page_size, true));
	ASSERT_EQ(0, writeprotect(self->uffd, pg(self->area, 3), page_size,
				  true));
	ASSERT_EQ(0, madvise(pg(self->area, 1), page_size, MADV_DONTNEED));
	ASSERT_EQ(0, madvise(pg(self->area, 4), page_size, MADV_DONTNEED));
	ASSERT_EQ(PM_SWAP | PM_UFFD_WP, pm_state(pg(self->area, 1)));
	ASSERT_EQ(PM_SWAP | PM_GUARD_REGION, pm_state(pg(self->area, 2)));
	ASSERT_EQ(0, pm_state(pg(self->area, 4)));

	ASSERT_EQ(0, guard_install(pg(self->area, 0), 5 * page_size))
		TH_LOG("MADV_GUARD_INSTALL over uffd-wp state");
	for (i = 0; i < 5; i++)
		ASSERT_EQ(PM_SWAP | PM_GUARD_REGION | (wp[i] ? PM_UFFD_WP : 0),
			  pm_state(pg(self->area, i))) TH_LOG("page %d", i);
	ASSERT_EQ(0, madvise(pg(self->area, 0), 5 * page_size,
			     MADV_GUARD_REMOVE));
	for (i = 0; i < 5; i++) {
		ASSERT_EQ(wp[i] ? PM_SWAP | PM_UFFD_WP : 0,
			  pm_state(pg(self->area, i))) TH_LOG("page %d", i);
		ASSERT_EQ('a' + i, __atomic_load_n(pg(self->area, i),
						   __ATOMIC_RELAXED));
	}
	/* The rest of the registered range is untouched. */
	ASSERT_EQ(PM_PRESENT, pm_state(pg(self->area, 5)));
	for (i = 0; i < 5; i++) {
		if (wp[i])
			assert_write_faults(_metadata, self, self->area, i);
		else
			assert_write_free(_metadata, self, self->area, i);
	}
}

/*
 * UFFDIO_WRITEPROTECT under a guard changes the protection it keeps, not the
 * guard: cleared, the page is writable after MADV_GUARD_REMOVE; set over a
 * guard installed on an unprotected page, a write after MADV_GUARD_REMOVE
 * faults.
 */
TEST_F(guard_wp, writeprotect_under_guard)
{
	char *p = pg(self->area, 1), *q = pg(self->area, 2);

	ASSERT_EQ(0, writeprotect(self->uffd, p, page_size, true));
	ASSERT_EQ(0, guard_install(p, page_size));
	ASSERT_EQ(0, guard_install(q, page_size));
	ASSERT_EQ(PM_SWAP | PM_GUARD_REGION | PM_UFFD_WP, pm_state(p));
	ASSERT_EQ(PM_SWAP | PM_GUARD_REGION, pm_state(q));

	ASSERT_EQ(0, writeprotect(self->uffd, p, page_size, false));
	ASSERT_EQ(0, writeprotect(self->uffd, q, page_size, true));
	ASSERT_EQ(PM_SWAP | PM_GUARD_REGION, pm_state(p));
	ASSERT_EQ(PM_SWAP | PM_GUARD_REGION | PM_UFFD_WP, pm_state(q));
	ASSERT_EQ(SIGSEGV, attempt(q, 0, ATTEMPT_WRITE, NULL));

	ASSERT_EQ(0, madvise(p, 2 * page_size, MADV_GUARD_REMOVE));
	ASSERT_EQ(0, pm_state(p));
	ASSERT_EQ(PM_SWAP | PM_UFFD_WP, pm_state(q));
	assert_write_free(_metadata, self, self->area, 1);
	assert_write_faults(_metadata, self, self->area, 2);
}

/* A zap of the range keeps both the guard and the protection under it. */
TEST_F(guard_wp, zap_keeps_both)
{
	char *p = pg(self->area, 4);

	ASSERT_EQ(0, writeprotect(self->uffd, pg(self->area, 3),
				  2 * page_size, true));
	ASSERT_EQ(0, guard_install(p, page_size));
	ASSERT_EQ(0, madvise(pg(self->area, 3), 3 * page_size, MADV_DONTNEED));
	ASSERT_EQ(PM_SWAP | PM_GUARD_REGION | PM_UFFD_WP, pm_state(p));
	ASSERT_EQ(PM_SWAP | PM_UFFD_WP, pm_state(pg(self->area, 3)));
	ASSERT_EQ(0, madvise(p, page_size, MADV_GUARD_REMOVE));
	ASSERT_EQ(PM_SWAP | PM_UFFD_WP, pm_state(p));
	assert_write_faults(_metadata, self, self->area, 4);
}

/*
 * fork() into a child without the registration (no UFFD_FEATURE_EVENT_FORK):
 * the child's entry is a guard without the protection, the parent's keeps
 * both.
 */
TEST_F(guard_wp, fork_without_uffd)
{
	char *p = pg(self->area, 3);
	int status;
	pid_t pid;

	ASSERT_EQ(0, writeprotect(self->uffd, pg(self->area, 2),
				  2 * page_size, true));
	ASSERT_EQ(0, guard_install(p, page_size));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		alarm(GUARD_SECONDS);
		if (pm_state(p) != (PM_SWAP | PM_GUARD_REGION))
			_exit(1);
		if (attempt(p, 0, ATTEMPT_READ, NULL) != SIGSEGV)
			_exit(2);
		if (madvise(p, page_size, MADV_GUARD_REMOVE) || pm_state(p))
			_exit(3);
		__atomic_store_n(p + 2, 'F', __ATOMIC_RELAXED);
		_exit(p[1] == 'a' + 3 ? 0 : 4);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status)) TH_LOG("the child's entry");

	ASSERT_EQ(PM_SWAP | PM_GUARD_REGION | PM_UFFD_WP, pm_state(p));
	ASSERT_EQ(0, madvise(p, page_size, MADV_GUARD_REMOVE));
	ASSERT_EQ(PM_SWAP | PM_UFFD_WP, pm_state(p));
	assert_write_faults(_metadata, self, self->area, 3);
	ASSERT_EQ('F', p[2]);
}

struct event_reader {
	pthread_t th;
	int uffd, ret;
	struct uffd_msg msg;
};

static void *event_reader_fn(void *arg)
{
	struct event_reader *r = arg;

	r->ret = read_msg(r->uffd, &r->msg, GUARD_SECONDS * 1000);
	return NULL;
}

/*
 * fork() into a child that keeps the registration (UFFD_FEATURE_EVENT_FORK):
 * its entry keeps both, and the protection after MADV_GUARD_REMOVE.
 */
TEST_F(guard_wp, fork_with_uffd)
{
	struct event_reader r = { 0 };
	char *p = pg(self->area, 5);
	int status;
	pid_t pid;

	if (!(self->features & UFFD_FEATURE_EVENT_FORK))
		SKIP(return, "no UFFD_FEATURE_EVENT_FORK");
	ASSERT_EQ(0, reopen_uffd(self, UFFD_FEATURE_EVENT_FORK, 0));
	ASSERT_EQ(0, writeprotect(self->uffd, p, page_size, true));
	ASSERT_EQ(0, guard_install(p, page_size));

	/* fork() waits until the event is read. */
	r.uffd = self->uffd;
	ASSERT_EQ(0, pthread_create(&r.th, NULL, event_reader_fn, &r));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (pm_state(p) != (PM_SWAP | PM_GUARD_REGION | PM_UFFD_WP))
			_exit(1);
		if (madvise(p, page_size, MADV_GUARD_REMOVE))
			_exit(2);
		_exit(pm_state(p) == (PM_SWAP | PM_UFFD_WP) ? 0 : 3);
	}
	pthread_join(r.th, NULL);
	ASSERT_EQ(0, r.ret);
	ASSERT_EQ(UFFD_EVENT_FORK, r.msg.event);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	close(r.msg.arg.fork.ufd);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status)) TH_LOG("the child's entry");
	ASSERT_EQ(PM_SWAP | PM_GUARD_REGION | PM_UFFD_WP, pm_state(p));
}

/*
 * mremap() without UFFD_FEATURE_EVENT_REMAP: the new VMA is not registered,
 * so the protection goes, and the guard stays.
 */
TEST_F(guard_wp, mremap_keeps_guard)
{
	size_t len = NR_PAGES * page_size;
	char *dst, *p;

	ASSERT_EQ(0, writeprotect(self->uffd, pg(self->area, 2),
				  2 * page_size, true));
	ASSERT_EQ(0, guard_install(pg(self->area, 3), page_size));
	dst = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, dst);
	dst = mremap(self->area, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ASSERT_NE(MAP_FAILED, dst);
	self->area = dst;
	p = pg(dst, 3);
	ASSERT_EQ(PM_SWAP | PM_GUARD_REGION, pm_state(p));
	ASSERT_EQ(SIGSEGV, attempt(p, 0, ATTEMPT_READ, NULL));
	ASSERT_EQ(PM_PRESENT, pm_state(pg(dst, 2)));
	ASSERT_EQ(0, madvise(p, page_size, MADV_GUARD_REMOVE));
	ASSERT_EQ(0, pm_state(p));
	assert_write_free(_metadata, self, dst, 3);
}

/*
 * PAGEMAP_SCAN write-protecting a guard (UFFD_FEATURE_WP_ASYNC): the
 * protection is in the guard's marker, and stays after MADV_GUARD_REMOVE.
 */
TEST_F(guard_wp, pagemap_scan_under_guard)
{
	char *p = pg(self->area, 6);
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = (uintptr_t)p,
		.end = (uintptr_t)p + page_size,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	int pagemap;

	if (!(self->features & UFFD_FEATURE_WP_ASYNC))
		SKIP(return, "no UFFD_FEATURE_WP_ASYNC");
	ASSERT_EQ(0, reopen_uffd(self, UFFD_FEATURE_WP_ASYNC, 0));
	ASSERT_EQ(0, guard_install(p, page_size));
	ASSERT_EQ(PM_SWAP | PM_GUARD_REGION, pm_state(p));
	pagemap = open("/proc/self/pagemap", O_RDONLY);
	ASSERT_LE(0, pagemap);
	ASSERT_LE(0, ioctl(pagemap, PAGEMAP_SCAN, &arg));
	close(pagemap);
	ASSERT_EQ(PM_SWAP | PM_GUARD_REGION | PM_UFFD_WP, pm_state(p));

	ASSERT_EQ(0, madvise(p, page_size, MADV_GUARD_REMOVE));
	ASSERT_EQ(PM_SWAP | PM_UFFD_WP, pm_state(p));
	/* Asynchronous: the kernel resolves the fault itself. */
	__atomic_store_n(p, 'W', __ATOMIC_RELAXED);
	ASSERT_EQ(PM_PRESENT, pm_state(p));
}

/* Neither UFFDIO_CONTINUE nor UFFDIO_POISON may replace a guard. */
TEST_F(guard_wp, continue_poison_refused)
{
	struct uffdio_continue cont = { .mode = 0 };
	struct uffdio_poison poison = { .mode = 0 };
	char *p = pg(self->area, 5);

	if (!(self->features & UFFD_FEATURE_MINOR_SHMEM))
		SKIP(return, "no UFFD_FEATURE_MINOR_SHMEM");
	ASSERT_EQ(0, reopen_uffd(self, UFFD_FEATURE_MINOR_SHMEM |
				 (self->features & UFFD_FEATURE_POISON),
				 UFFDIO_REGISTER_MODE_MINOR));
	ASSERT_EQ(0, madvise(p, page_size, MADV_DONTNEED));
	ASSERT_EQ(0, writeprotect(self->uffd, p, page_size, true));
	ASSERT_EQ(0, guard_install(p, page_size));
	ASSERT_EQ(PM_SWAP | PM_GUARD_REGION | PM_UFFD_WP, pm_state(p));

	cont.range.start = (uintptr_t)p;
	cont.range.len = page_size;
	ASSERT_EQ(-1, ioctl(self->uffd, UFFDIO_CONTINUE, &cont));
	ASSERT_EQ(EEXIST, errno);
	ASSERT_EQ(-EEXIST, cont.mapped);
	cont.mode = UFFDIO_CONTINUE_MODE_WP;
	ASSERT_EQ(-1, ioctl(self->uffd, UFFDIO_CONTINUE, &cont));
	ASSERT_EQ(EEXIST, errno);
	if (self->features & UFFD_FEATURE_POISON) {
		poison.range = cont.range;
		ASSERT_EQ(-1, ioctl(self->uffd, UFFDIO_POISON, &poison));
		ASSERT_EQ(EEXIST, errno);
	}
	ASSERT_EQ(PM_SWAP | PM_GUARD_REGION | PM_UFFD_WP, pm_state(p));

	/* Without the guard, CONTINUE replaces the uffd-wp marker. */
	ASSERT_EQ(0, madvise(p, page_size, MADV_GUARD_REMOVE));
	ASSERT_EQ(0, ioctl(self->uffd, UFFDIO_CONTINUE, &cont));
	ASSERT_EQ(page_size, cont.mapped);
	ASSERT_EQ(PM_PRESENT | PM_UFFD_WP, pm_state(p));
	ASSERT_EQ('a' + 5, __atomic_load_n(p, __ATOMIC_RELAXED));
}

TEST_HARNESS_MAIN
