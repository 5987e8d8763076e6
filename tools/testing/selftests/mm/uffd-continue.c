// SPDX-License-Identifier: GPL-2.0
/*
 * UFFDIO_CONTINUE on shmem: the contract of minor-fault resolution, as
 * userspace sees it.
 *
 * Every case runs on five kinds of memory (the fixture variants): a memfd
 * mapped shared, a memfd mapped private, a file on the /dev/shm tmpfs mapped
 * shared, a file on a huge=always tmpfs of our own, whose page cache holds
 * PMD-sized folios, and the memory type written in Rust of
 * samples/rust/rust_uffd_memory.rs ("rust_shared": /dev/rust-uffd-memory,
 * mapped shared, with its own fault handler and userfaultfd operations over
 * a shmem file of the device; skipped where the device is absent). The
 * mapping registered with userfaultfd is "area"; the page cache is written
 * and inspected through "alias", a shared mapping of the same memory that is
 * never registered. Each case checks the ioctl's result
 * and errno, the "mapped" field, the contents seen through area, and where it
 * matters the page table through /proc/self/pagemap (the page frame numbers
 * only when running as root). Two tests of the Rust memory type alone check
 * the references its mappings hold on its file and on its module, when
 * mmap() fails at each step and when mappings are split and merged, and
 * that the module cannot be unloaded while a mapping of it exists.
 *
 * The program does not choose between implementations of CONTINUE: it prints
 * debugfs userfaultfd/mfill_impl at the start and userfaultfd/stats at the end
 * (when the kernel has them), so that runs can be compared. It does judge
 * them: its last test, implementation.mapped_by_selected, fails if the pages
 * its CONTINUEs mapped were not all counted by the implementation selected,
 * or if another one counted any. On a kernel without the switch it is
 * skipped, and says which implementation the kernel was built with.
 *
 * With UFFD_FAULT_INJECT=1 in the environment, every CONTINUE runs with the
 * kernel's fault injection armed for the calling thread (make-it-fail), and
 * one that an allocation failure failed is retried without it, so every case
 * must still pass (see uffd-continue.h); a case fails if a CONTINUE under
 * injection had an outcome the admin guide does not document, and the
 * program if make-it-fail could not be set.
 */
#include "uffd-continue.h"

#include <limits.h>
#include <linux/falloc.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "kselftest_harness.h"

/* What "mapped" holds before the ioctl: early validation must leave it. */
#define MAPPED_UNTOUCHED	((__s64)0x5a5a5a5a5a5a5a5aLL)

/* Where writers store in a test page, past the tag. */
#define OFF_WRITE		1024

/* How long to wait for a thread that should finish. */
#define JOIN_MS			20000

static size_t page_size;
static size_t pmd_pages;

/* ------------------------------------------------------------------------ */
/* Page contents: a tag, then a byte that depends on the page and generation */

struct pgtag {
	uint64_t magic;
	uint64_t idx;
	uint64_t gen;
};

#define PG_MAGIC		0x636f6e74696e7565ULL

static uint8_t fill_byte(size_t idx, unsigned int gen)
{
	return (uint8_t)(idx * 7 + gen * 31 + 1);
}

/* 8 bytes of fill_byte(), as read from a page. */
static uint64_t fill64(size_t idx, unsigned int gen)
{
	return 0x0101010101010101ULL * fill_byte(idx, gen);
}

static void pg_fill(char *p, size_t idx, unsigned int gen)
{
	struct pgtag t = { PG_MAGIC, idx, gen };

	memset(p, fill_byte(idx, gen), page_size);
	memcpy(p, &t, sizeof(t));
}

/*
 * Returns the first offset at which page @p differs from pg_fill(@idx, @gen),
 * or -1 if it does not. Bytes [@from, @to) are not compared.
 */
static long pg_diff_span(const char *p, size_t idx, unsigned int gen,
			 size_t from, size_t to)
{
	struct pgtag t = { PG_MAGIC, idx, gen };
	uint8_t b = fill_byte(idx, gen);
	size_t o;

	if (memcmp(p, &t, sizeof(t)))
		return 0;
	for (o = sizeof(t); o < page_size; o++) {
		if (o >= from && o < to)
			continue;
		if ((uint8_t)p[o] != b)
			return o;
	}
	return -1;
}

/* The same, ignoring the 8 bytes at @skip (-1: none). */
static long pg_diff(const char *p, size_t idx, unsigned int gen, long skip)
{
	if (skip < 0)
		return pg_diff_span(p, idx, gen, 0, 0);
	return pg_diff_span(p, idx, gen, skip, skip + 8);
}

static bool pg_zero(const char *p, size_t from, size_t to)
{
	size_t o;

	for (o = from; o < to; o++)
		if (p[o])
			return false;
	return true;
}

/* ------------------------------------------------------------------------ */
/* userfaultfd */

static int uffd_wake(int uffd, void *addr, size_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };

	return ioctl(uffd, UFFDIO_WAKE, &r) ? -errno : 0;
}

static int uffd_wp(int uffd, void *addr, size_t len, bool protect)
{
	struct uffdio_writeprotect w = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &w) ? -errno : 0;
}

/* The outcome of one UFFDIO_CONTINUE. */
struct cres {
	int ret;	/* what ioctl() returned */
	int err;	/* errno, 0 if ret == 0 */
	__s64 mapped;
};

/*
 * The pages the CONTINUEs of this program mapped, in memory that the test
 * processes share: what the counters of the implementation must show.
 */
static uint64_t *pages_continued;

static struct cres uffd_continue(int uffd, const void *addr, size_t len,
				 __u64 mode)
{
	struct uffdio_continue c = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
		.mapped = MAPPED_UNTOUCHED,
	};
	struct cres r;

	r.ret = uffd_continue_ioctl(uffd, &c);
	r.err = r.ret ? errno : 0;
	r.mapped = c.mapped;
	/* All of it, or partial progress (EAGAIN with "mapped" > 0). */
	if (pages_continued && !r.ret)
		ADD(*pages_continued, len / page_size);
	else if (pages_continued && r.err == EAGAIN && r.mapped > 0)
		ADD(*pages_continued, r.mapped / page_size);
	return r;
}

/* A documented result of a CONTINUE of @len bytes, or false. */
static bool cres_documented(struct cres r, size_t len)
{
	if (!r.ret)
		return r.mapped == (__s64)len;
	if (r.ret != -1)
		return false;
	switch (r.err) {
	case EAGAIN:
		/* Partial progress, or the PTE table vanished under us. */
		return (r.mapped > 0 && r.mapped < (__s64)len &&
			!(r.mapped % page_size)) || r.mapped == -EAGAIN;
	case EFAULT:
	case EEXIST:
	case ENOENT:
	case EIO:
	case EINTR:
		return r.mapped == -r.err;
	}
	return false;
}

/* ------------------------------------------------------------------------ */
/* Signals: SIGBUS and SIGSEGV land here in the cases that expect them. */

static sigjmp_buf sig_jmp;
static int sig_armed;
static int sig_count;
static int sig_last;
static int sig_code;

static void sig_handler(int sig, siginfo_t *si, void *uc)
{
	INC(sig_count);
	SET(sig_last, sig);
	SET(sig_code, si->si_code);
	if (GET(sig_armed)) {
		SET(sig_armed, 0);
		siglongjmp(sig_jmp, 1);
	}
}

static int sig_catch(int sig)
{
	struct sigaction sa = {
		.sa_sigaction = sig_handler,
		.sa_flags = SA_SIGINFO | SA_NODEFER,
	};

	return sigaction(sig, &sa, NULL);
}

/* Reads a byte at @p; returns the signal that the read raised, or 0. */
static int probe_read(char *p)
{
	if (sigsetjmp(sig_jmp, 1))
		return GET(sig_last);
	SET(sig_armed, 1);
	FORCE_READ(*p);
	SET(sig_armed, 0);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Threads that fault on the registered mapping. */

struct faulter {
	pthread_t th;
	char *addr;		/* 8 bytes to access */
	bool write;
	uint64_t wval;		/* stored at addr if write */
	uint64_t seen;		/* read at addr after the access */
	long minflt;		/* page faults the thread took */
	int done;
	int *gate;		/* if set: wait until *gate is non-zero first */
};

static long thread_minflt(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		return -1;
	return ru.ru_minflt;
}

static void *faulter_fn(void *arg)
{
	struct faulter *f = arg;
	long before;

	/* Polled: a pipe's write may need memory, which may be short. */
	while (f->gate && !GET(*f->gate))
		usleep(1000);
	before = thread_minflt();
	if (f->write)
		STORE64(f->addr, f->wval);
	f->seen = LOAD64(f->addr);
	f->minflt = thread_minflt() - before;
	SET(f->done, 1);
	return NULL;
}

/*
 * With @gate, the access waits until *@gate is not 0 (and reads f->addr
 * then).
 */
static int faulter_start_gated(struct faulter *f, char *addr, bool write,
			       uint64_t wval, int *gate)
{
	f->addr = addr;
	f->write = write;
	f->wval = wval;
	f->seen = 0;
	f->minflt = -1;
	f->gate = gate;
	SET(f->done, 0);
	return pthread_create(&f->th, NULL, faulter_fn, f);
}

static int faulter_start(struct faulter *f, char *addr, bool write,
			 uint64_t wval)
{
	return faulter_start_gated(f, addr, write, wval, NULL);
}

static int join_ms(pthread_t th, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_timedjoin_np(th, NULL, &ts);
}

/* ------------------------------------------------------------------------ */
/* The fixture */

enum mem_kind {
	MEM_MEMFD,
	MEM_TMPFS,
	MEM_THP,
	MEM_RUST,
};

/* The Rust memory type of samples/rust/rust_uffd_memory.rs. */
#define RUST_UFFD_MEMORY		"/dev/rust-uffd-memory"
/* Returns a new fd of the device's shmem file, for ftruncate() and friends. */
#define RUST_UFFD_MEMORY_GET_FILE	_IO('|', 0xa0)

FIXTURE(uffd_continue)
{
	int uffd;
	__u64 features;		/* enabled on uffd */
	int fd;			/* the file: size, contents, holes */
	int dev;		/* MEM_RUST: the device, which area and alias map */
	size_t gran;		/* pages per folio in this variant: 1 or PMD */
	size_t npages;		/* pages of the file and of each mapping */
	size_t size;
	char *area;		/* the registered mapping */
	char *alias;		/* shared mapping of the same file, not registered */
	int pagemap_fd;
	int kpageflags_fd;	/* -1 unless readable (root) */
	bool pfns;		/* pagemap shows page frame numbers */
};

FIXTURE_VARIANT(uffd_continue)
{
	enum mem_kind kind;
	bool private;		/* area is MAP_PRIVATE */
};

FIXTURE_VARIANT_ADD(uffd_continue, memfd_shared)
{
	.kind = MEM_MEMFD,
	.private = false,
};

FIXTURE_VARIANT_ADD(uffd_continue, memfd_private)
{
	.kind = MEM_MEMFD,
	.private = true,
};

FIXTURE_VARIANT_ADD(uffd_continue, tmpfs_shared)
{
	.kind = MEM_TMPFS,
	.private = false,
};

FIXTURE_VARIANT_ADD(uffd_continue, thp_shared)
{
	.kind = MEM_THP,
	.private = false,
};

FIXTURE_VARIANT_ADD(uffd_continue, rust_shared)
{
	.kind = MEM_RUST,
	.private = false,
};

#define SELF	FIXTURE_DATA(uffd_continue)
#define VARIANT	FIXTURE_VARIANT(uffd_continue)

static char *pg_area(SELF *self, size_t idx)
{
	return self->area + idx * page_size;
}

static char *pg_alias(SELF *self, size_t idx)
{
	return self->alias + idx * page_size;
}

static uint64_t pm_area(SELF *self, size_t idx)
{
	return pagemap_get_entry(self->pagemap_fd, pg_area(self, idx));
}

/* The pagemap entry of the page-cache page idx, faulted in through alias. */
static uint64_t pm_cache(SELF *self, size_t idx)
{
	FORCE_READ(*pg_alias(self, idx));
	return pagemap_get_entry(self->pagemap_fd, pg_alias(self, idx));
}

/* The page flags of @pfn, 0 if they cannot be read. */
static uint64_t kpageflags(SELF *self, uint64_t pfn)
{
	uint64_t f;

	return pageflags_get(pfn, self->kpageflags_fd, &f) ? 0 : f;
}

/*
 * The number of pages of the folio that holds page @idx of the page cache and
 * the pfn of its head, from the page flags; 0 if they cannot be read.
 */
static size_t folio_pages(SELF *self, size_t idx, uint64_t *head)
{
	uint64_t pfn, h, n;

	if (!self->pfns || self->kpageflags_fd < 0)
		return 0;
	pfn = PAGEMAP_PFN(pm_cache(self, idx));
	if (!pfn)
		return 0;
	h = pfn;
	if (!(kpageflags(self, h) & (KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL))) {
		*head = h;
		return 1;
	}
	while (!(kpageflags(self, h) & KPF_COMPOUND_HEAD)) {
		if (pfn - h > 4 * pmd_pages)
			return 0;
		h--;
	}
	for (n = 1; kpageflags(self, h + n) & KPF_COMPOUND_TAIL; n++)
		;
	*head = h;
	return n;
}

/* Fills pages [first, first + n) of the page cache, through alias. */
static void fill(SELF *self, size_t first, size_t n, unsigned int gen)
{
	size_t i;

	for (i = first; i < first + n; i++)
		pg_fill(pg_alias(self, i), i, gen);
}

static struct cres cont(SELF *self, size_t first, size_t n, __u64 mode)
{
	return uffd_continue(self->uffd, pg_area(self, first), n * page_size,
			     mode);
}

/*
 * Maps self->size bytes of the file, or of the device that hands it out,
 * twice: alias always shared, area shared or private. 0, or -errno.
 */
static int map_file(SELF *self, bool private)
{
	int map_fd = self->dev >= 0 ? self->dev : self->fd;

	self->alias = mmap_aligned(self->size, pmd_pages * page_size,
				   MAP_SHARED, map_fd);
	if (self->alias == MAP_FAILED)
		return -errno;
	self->area = mmap_aligned(self->size, pmd_pages * page_size,
				  private ? MAP_PRIVATE : MAP_SHARED, map_fd);
	return self->area == MAP_FAILED ? -errno : 0;
}

FIXTURE_SETUP(uffd_continue)
{
	const char *why = NULL;
	uint64_t head;
	size_t got;
	__u64 avail = 0;
	int fd;

	self->uffd = -1;
	self->fd = -1;
	self->dev = -1;
	self->pagemap_fd = -1;
	self->kpageflags_fd = -1;
	self->area = MAP_FAILED;
	self->alias = MAP_FAILED;
	self->gran = variant->kind == MEM_THP ? pmd_pages : 1;
	self->npages = self->gran * 4 > 64 ? self->gran * 4 : 64;
	self->size = self->npages * page_size;

	switch (variant->kind) {
	case MEM_MEMFD:
		self->fd = memfd_create("uffd-continue", MFD_CLOEXEC);
		ASSERT_LE(0, self->fd);
		break;
	case MEM_TMPFS:
		self->fd = tmpfs_file("/dev/shm", &why);
		if (self->fd < 0)
			SKIP(return, "/dev/shm: %s", why);
		break;
	case MEM_THP:
		self->fd = thp_file(&why);
		if (self->fd < 0)
			SKIP(return, "%s", why);
		break;
	case MEM_RUST:
		self->dev = open(RUST_UFFD_MEMORY, O_RDWR | O_CLOEXEC);
		if (self->dev < 0 && errno == ENOENT)
			SKIP(return, "%s: absent (CONFIG_SAMPLE_RUST_UFFD_MEMORY)",
			     RUST_UFFD_MEMORY);
		ASSERT_LE(0, self->dev)
			TH_LOG("%s: %s", RUST_UFFD_MEMORY, strerror(errno));
		self->fd = ioctl(self->dev, RUST_UFFD_MEMORY_GET_FILE);
		ASSERT_LE(0, self->fd) TH_LOG("GET_FILE: %s", strerror(errno));
		break;
	}
	ASSERT_EQ(0, ftruncate(self->fd, self->size));

	fd = uffd_new(0, &avail);
	if (fd < 0)
		SKIP(return, "userfaultfd: %s", strerror(-fd));
	close(fd);
	if (!(avail & UFFD_FEATURE_MINOR_SHMEM))
		SKIP(return, "no UFFD_FEATURE_MINOR_SHMEM");
	self->features = avail & (UFFD_FEATURE_MINOR_SHMEM |
				  UFFD_FEATURE_WP_HUGETLBFS_SHMEM |
				  UFFD_FEATURE_POISON);
	self->uffd = uffd_new(self->features, NULL);
	ASSERT_LE(0, self->uffd);

	ASSERT_EQ(0, map_file(self, variant->private));

	self->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, self->pagemap_fd);
	self->kpageflags_fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	self->pfns = !!PAGEMAP_PFN(pm_cache(self, 0));

	/* Check the folio size the page cache uses, then empty it again. */
	got = folio_pages(self, 0, &head);
	if (variant->kind == MEM_THP) {
		if (!got)
			SKIP(return, "the folio size is only visible to root");
		if (got != pmd_pages)
			SKIP(return, "huge=always gave a %zu-page folio, not a PMD one",
			     got);
	} else if (got > 1) {
		SKIP(return, "shmem gave a %zu-page folio, this variant wants 4 KiB",
		     got);
	}
	ASSERT_EQ(0, fallocate(self->fd, FALLOC_FL_PUNCH_HOLE |
			       FALLOC_FL_KEEP_SIZE, 0, self->size));
}

/*
 * Faults in and locks every mapping of this process but the @size bytes at
 * @a and at @b, and those that cannot be accessed (a thread stack's guard):
 * 0, or how many could not be locked.
 */
static int mlock_all_but(const char *a, const char *b, size_t size)
{
	unsigned long start, end;
	char line[512], perms[8];
	int failed = 0;
	FILE *f;

	f = fopen("/proc/self/maps", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3)
			continue;
		if (!strncmp(perms, "---", 3))
			continue;
		if ((start < (unsigned long)a + size && end > (unsigned long)a) ||
		    (start < (unsigned long)b + size && end > (unsigned long)b))
			continue;
		/* The vsyscall page is not a mapping of this mm. */
		if (strstr(line, "[vsyscall]"))
			continue;
		failed += !!mlock((void *)start, end - start);
	}
	fclose(f);
	return failed;
}

/* Keeps this thread on the CPU it runs on now. */
static int pin_to_this_cpu(void)
{
	int cpu = sched_getcpu();
	cpu_set_t set;

	if (cpu < 0)
		return -errno;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

static void memcg_leave(void);

FIXTURE_TEARDOWN(uffd_continue)
{
	if (self->area != MAP_FAILED)
		munmap(self->area, self->size);
	if (self->alias != MAP_FAILED)
		munmap(self->alias, self->size);
	if (self->uffd >= 0)
		close(self->uffd);
	if (self->fd >= 0)
		close(self->fd);
	if (self->dev >= 0)
		close(self->dev);
	if (self->pagemap_fd >= 0)
		close(self->pagemap_fd);
	if (self->kpageflags_fd >= 0)
		close(self->kpageflags_fd);
	memcg_leave();
	/* Under fault injection (uffd-continue.h): what the case's calls did. */
	EXPECT_EQ(0, uffd_fi_undocumented)
		TH_LOG("fault injection: %s", uffd_fi->last);
}

/* ------------------------------------------------------------------------ */
/* Checks, as macros so that a failure reports the line of the case. */

#define ASSERT_CONT(r, e, m) do {					\
	struct cres __r = (r);						\
	int __e = (e);							\
	ASSERT_EQ(__e, __r.err)						\
		TH_LOG("CONTINUE: errno %d (%s), mapped %lld",		\
		       __r.err, strerror(__r.err), (long long)__r.mapped); \
	ASSERT_EQ(__e ? -1 : 0, __r.ret);				\
	ASSERT_EQ((__s64)(m), __r.mapped)				\
		TH_LOG("CONTINUE: mapped %lld", (long long)__r.mapped);	\
} while (0)

/* Page idx of area is mapped, to the page of the page cache. */
#define ASSERT_MAPS_CACHE(idx) do {					\
	size_t __i = (idx);						\
	uint64_t __e = pm_area(self, __i), __c = pm_cache(self, __i);	\
	ASSERT_TRUE(__e & PM_PRESENT)					\
		TH_LOG("page %zu of area is not mapped (pagemap %llx)",	\
		       __i, (unsigned long long)__e);			\
	ASSERT_TRUE(__e & PM_FILE)					\
		TH_LOG("page %zu of area is not a file page", __i);	\
	if (self->pfns)							\
		ASSERT_EQ(PAGEMAP_PFN(__c), PAGEMAP_PFN(__e))		\
			TH_LOG("page %zu of area maps another page", __i); \
} while (0)

#define ASSERT_NOT_MAPPED(idx) do {					\
	size_t __i = (idx);						\
	uint64_t __e = pm_area(self, __i);				\
	ASSERT_FALSE(__e & PM_PRESENT)					\
		TH_LOG("page %zu of area is mapped (pagemap %llx)",	\
		       __i, (unsigned long long)__e);			\
} while (0)

/* Page idx of area holds pg_fill(idx, gen), except 8 bytes at skip. */
#define ASSERT_AREA_PAGE(idx, gen, skip) do {				\
	size_t __i = (idx);						\
	ASSERT_TRUE(pm_area(self, __i) & PM_PRESENT)			\
		TH_LOG("page %zu of area is not mapped", __i);		\
	ASSERT_EQ(-1, pg_diff(pg_area(self, __i), __i, (gen), (skip)))	\
		TH_LOG("page %zu of area: wrong contents", __i);	\
} while (0)

#define ASSERT_CACHE_PAGE(idx, gen, skip) do {				\
	size_t __i = (idx);						\
	ASSERT_EQ(-1, pg_diff(pg_alias(self, __i), __i, (gen), (skip)))	\
		TH_LOG("page %zu of the page cache: wrong contents", __i); \
} while (0)

static bool in_cache(SELF *self, size_t idx)
{
	unsigned char vec = 0;

	if (mincore(pg_alias(self, idx), page_size, &vec))
		return true;
	return vec & 1;
}

/* ------------------------------------------------------------------------ */
/* A fault handler thread (or two, reading the same userfaultfd). */

struct handler {
	SELF *self;
	pthread_t th[2];
	int nthreads;
	int stop[2];
	__u64 mode;		/* CONTINUE mode for minor faults */
	unsigned int gen;	/* > 0: write this generation through alias first */
	unsigned int block;	/* > 1: at times, CONTINUE a block this size */
	/* Counts of events and of CONTINUE results; see SET(), GET(). */
	unsigned int minor, wp, writes, bad_event;
	unsigned int ok, partial, eexist, bad;
	uintptr_t last_addr;
	uint64_t last_flags;
};

static void handler_count(struct handler *h, struct cres r, size_t len)
{
	if (!r.ret && r.mapped == (__s64)len)
		INC(h->ok);
	else if (r.ret && r.err == EAGAIN && r.mapped > 0 &&
		 r.mapped < (__s64)len)
		INC(h->partial);
	else if (r.ret && r.err == EEXIST && r.mapped == -EEXIST)
		INC(h->eexist);
	else
		INC(h->bad);
}

static void handle_msg(struct handler *h, struct uffd_msg *msg,
		       unsigned int *seed)
{
	SELF *self = h->self;
	uint64_t flags = msg->arg.pagefault.flags;
	char *addr = (char *)(uintptr_t)(msg->arg.pagefault.address &
					 ~(uint64_t)(page_size - 1));
	size_t idx = (addr - self->area) / page_size, first = idx, n = 1;
	struct cres r;

	if (msg->event != UFFD_EVENT_PAGEFAULT) {
		INC(h->bad_event);
		return;
	}
	SET(h->last_addr, (uintptr_t)addr);
	SET(h->last_flags, flags);
	if (flags & UFFD_PAGEFAULT_FLAG_WRITE)
		INC(h->writes);
	if (flags & UFFD_PAGEFAULT_FLAG_WP) {
		INC(h->wp);
		if (uffd_wp(self->uffd, addr, page_size, false))
			INC(h->bad);
		return;
	}
	if (!(flags & UFFD_PAGEFAULT_FLAG_MINOR) || idx >= self->npages) {
		INC(h->bad_event);
		uffd_wake(self->uffd, addr, page_size);
		return;
	}
	INC(h->minor);
	if (h->gen)
		pg_fill(pg_alias(self, idx), idx, h->gen);
	if (h->block > 1 && rand_r(seed) % 2) {
		first = idx / h->block * h->block;
		n = h->block;
	}
	r = cont(self, first, n, h->mode);
	handler_count(h, r, n * page_size);
	if (!r.ret)
		return;
	/*
	 * Not all of it: another thread mapped a page of the range first. The
	 * faulting page may be one that was not reached; map it alone, and wake
	 * the waiters, which an ioctl that failed did not do.
	 */
	if (n > 1) {
		r = cont(self, idx, 1, h->mode);
		handler_count(h, r, page_size);
	}
	if (uffd_wake(self->uffd, addr, page_size))
		INC(h->bad);
}

static void *handler_fn(void *arg)
{
	struct handler *h = arg;
	unsigned int seed = (unsigned int)(uintptr_t)&seed;
	struct uffd_msg msg;
	struct pollfd pfd[2];

	for (;;) {
		pfd[0].fd = h->self->uffd;
		pfd[0].events = POLLIN;
		pfd[1].fd = h->stop[0];
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			INC(h->bad);
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & (POLLERR | POLLHUP)) {
			INC(h->bad);
			break;
		}
		if (read(h->self->uffd, &msg, sizeof(msg)) != sizeof(msg)) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			INC(h->bad);
			break;
		}
		handle_msg(h, &msg, &seed);
	}
	return NULL;
}

static int handler_start(struct handler *h, SELF *self, int nthreads)
{
	int i;

	h->self = self;
	h->nthreads = nthreads;
	if (pipe2(h->stop, O_CLOEXEC))
		return -1;
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&h->th[i], NULL, handler_fn, h))
			return -1;
	return 0;
}

static int handler_stop(struct handler *h)
{
	int i, ret = 0;

	if (write(h->stop[1], "x", 1) != 1)
		return -1;
	for (i = 0; i < h->nthreads; i++)
		if (join_ms(h->th[i], JOIN_MS))
			ret = -1;
	close(h->stop[0]);
	close(h->stop[1]);
	return ret;
}

/* Reads one message from the userfaultfd, waiting up to @ms. */
static int read_msg(int uffd, struct uffd_msg *msg, int ms)
{
	struct pollfd pfd = { .fd = uffd, .events = POLLIN };
	int ret;

	ret = poll(&pfd, 1, ms);
	if (ret <= 0)
		return ret ? -errno : -ETIMEDOUT;
	if (read(uffd, msg, sizeof(*msg)) != sizeof(*msg))
		return -errno;
	return 0;
}

static bool want_wp(SELF *self)
{
	return self->features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
}

/* ------------------------------------------------------------------------ */
/* Minor faults resolved by a handler that changed the page first */

static void minor_fault(struct __test_metadata *_metadata, SELF *self,
			const VARIANT *variant, bool write)
{
	struct handler h = { .gen = 2 };
	struct faulter f;
	size_t idx = 3 + self->gran;
	uint64_t e;
	uint64_t ioctls = 0;

	ASSERT_EQ(0, uffd_register_with_ioctls(self->uffd, self->area,
					       self->size, false, false, true,
					       &ioctls));
	ASSERT_TRUE(ioctls & (1ULL << _UFFDIO_CONTINUE));
	fill(self, idx - 2, 5, 1);

	ASSERT_EQ(0, handler_start(&h, self, 1));
	ASSERT_EQ(0, faulter_start(&f, pg_area(self, idx) +
				   (write ? OFF_WRITE :
				    offsetof(struct pgtag, gen)),
				   write, 0xfeedULL));
	ASSERT_EQ(0, join_ms(f.th, JOIN_MS))
		TH_LOG("the faulting thread did not resume");
	ASSERT_EQ(0, handler_stop(&h));

	ASSERT_EQ(1, GET(h.minor));
	ASSERT_EQ(0, GET(h.wp));
	ASSERT_EQ(0, GET(h.bad_event));
	ASSERT_EQ(1, GET(h.ok));
	ASSERT_EQ(0, GET(h.bad));
	ASSERT_EQ((uintptr_t)pg_area(self, idx), GET(h.last_addr));
	ASSERT_TRUE(GET(h.last_flags) & UFFD_PAGEFAULT_FLAG_MINOR);
	ASSERT_EQ(write, !!(GET(h.last_flags) & UFFD_PAGEFAULT_FLAG_WRITE));

	if (!write) {
		/* The reader saw what the handler wrote, not the old page. */
		ASSERT_EQ(2, f.seen);
		ASSERT_AREA_PAGE(idx, 2, -1);
		ASSERT_MAPS_CACHE(idx);
		ASSERT_CACHE_PAGE(idx, 2, -1);
	} else {
		ASSERT_EQ(0xfeedULL, f.seen);
		ASSERT_AREA_PAGE(idx, 2, OFF_WRITE);
		e = pm_area(self, idx);
		if (variant->private) {
			/* The write copied the page; the page cache kept its own. */
			ASSERT_FALSE(e & PM_FILE);
			if (self->pfns)
				ASSERT_NE(PAGEMAP_PFN(pm_cache(self, idx)),
					  PAGEMAP_PFN(e));
			ASSERT_CACHE_PAGE(idx, 2, -1);
		} else {
			ASSERT_MAPS_CACHE(idx);
			ASSERT_CACHE_PAGE(idx, 2, OFF_WRITE);
			ASSERT_EQ(0xfeedULL,
				  LOAD64(pg_alias(self, idx) + OFF_WRITE));
		}
	}
	/* Only the faulting page was mapped: no fault-around. */
	ASSERT_NOT_MAPPED(idx - 1);
	ASSERT_NOT_MAPPED(idx + 1);

	/* The page is mapped now: a second CONTINUE finds it there. */
	ASSERT_CONT(cont(self, idx, 1, 0), EEXIST, -EEXIST);
	if (!write)
		ASSERT_MAPS_CACHE(idx);
}

/*
 * A read minor fault: the handler writes a new generation of the page
 * through alias, then CONTINUEs; the reader sees the new contents, only that
 * page is mapped, and a second CONTINUE finds it there (-EEXIST).
 */
TEST_F(uffd_continue, minor_read)
{
	minor_fault(_metadata, self, variant, false);
}

/* The same with a write: shared, the page cache sees it; private, a copy. */
TEST_F(uffd_continue, minor_write)
{
	minor_fault(_metadata, self, variant, true);
}

/* ------------------------------------------------------------------------ */

/* A range of pages in one call; partial progress over a mapped page. */
TEST_F(uffd_continue, multi_page)
{
	/* 16 pages; with PMD folios, across the boundary of two. */
	size_t first = self->gran > 1 ? self->gran - 8 : 4, n = 16, i;

	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	fill(self, first - 1, n + 2, 1);

	ASSERT_CONT(cont(self, first, n, 0), 0, n * page_size);
	for (i = first; i < first + n; i++) {
		ASSERT_MAPS_CACHE(i);
		ASSERT_AREA_PAGE(i, 1, -1);
	}
	ASSERT_NOT_MAPPED(first - 1);
	ASSERT_NOT_MAPPED(first + n);

	/* Nothing new to map: the first page is there, no progress. */
	ASSERT_CONT(cont(self, first, n, 0), EEXIST, -EEXIST);

	/* Zap four in the middle: they are mapped again, then the rest is there. */
	ASSERT_EQ(0, madvise(pg_area(self, first + 4), 4 * page_size,
			     MADV_DONTNEED));
	for (i = first + 4; i < first + 8; i++)
		ASSERT_NOT_MAPPED(i);
	ASSERT_CONT(cont(self, first + 4, n - 4, 0), EAGAIN, 4 * page_size);
	for (i = first; i < first + n; i++)
		ASSERT_AREA_PAGE(i, 1, -1);
	ASSERT_NOT_MAPPED(first + n);
}

/* A hole stops the range: -EAGAIN and the bytes done, then -EFAULT. */
TEST_F(uffd_continue, hole_in_range)
{
	/* A hole of one folio at H, data on both sides. */
	size_t g = self->gran, H = g > 4 ? g : 4;

	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	fill(self, 0, H, 1);
	fill(self, H + g, g, 1);
	ASSERT_FALSE(in_cache(self, H));
	ASSERT_FALSE(in_cache(self, H + g - 1));

	/* Two pages done, then the hole: -EAGAIN and the bytes done. */
	ASSERT_CONT(cont(self, H - 2, 4, 0), EAGAIN, 2 * page_size);
	ASSERT_MAPS_CACHE(H - 2);
	ASSERT_MAPS_CACHE(H - 1);
	ASSERT_AREA_PAGE(H - 2, 1, -1);
	ASSERT_AREA_PAGE(H - 1, 1, -1);
	ASSERT_NOT_MAPPED(H);
	ASSERT_NOT_MAPPED(H + 1);

	/* Starting at the hole: nothing done, -EFAULT. */
	ASSERT_CONT(cont(self, H, 2, 0), EFAULT, -EFAULT);
	ASSERT_NOT_MAPPED(H);
	/* CONTINUE does not allocate: the hole is still one. */
	ASSERT_FALSE(in_cache(self, H));

	/* After the hole. */
	ASSERT_CONT(cont(self, H + g, 1, 0), 0, page_size);
	ASSERT_MAPS_CACHE(H + g);
	ASSERT_AREA_PAGE(H + g, 1, -1);
}

/* Beyond the end of the file after ftruncate(): -EFAULT, and no mapping. */
TEST_F(uffd_continue, beyond_eof)
{
	/* The new size ends half-way into page E (in the second folio). */
	size_t E = self->gran + 2, i;
	off_t isize = E * page_size + page_size / 2;

	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	fill(self, 0, E + 6, 1);
	ASSERT_CONT(cont(self, E + 2, 1, 0), 0, page_size);
	ASSERT_MAPS_CACHE(E + 2);

	ASSERT_EQ(0, ftruncate(self->fd, isize));
	/* Truncation unmapped what was mapped beyond the new end. */
	ASSERT_NOT_MAPPED(E + 2);
	ASSERT_CONT(cont(self, E + 2, 1, 0), EFAULT, -EFAULT);
	ASSERT_CONT(cont(self, E + 1, 1, 0), EFAULT, -EFAULT);
	ASSERT_CONT(cont(self, self->npages - 1, 1, 0), EFAULT, -EFAULT);
	ASSERT_NOT_MAPPED(E + 1);

	/* The last, partial page is inside the file; the next one is not. */
	ASSERT_CONT(cont(self, E, 2, 0), EAGAIN, page_size);
	ASSERT_MAPS_CACHE(E);
	ASSERT_NOT_MAPPED(E + 1);
	ASSERT_EQ(-1, pg_diff_span(pg_area(self, E), E, 1, page_size / 2,
				   page_size));
	ASSERT_TRUE(pg_zero(pg_area(self, E), page_size / 2, page_size))
		TH_LOG("the part of the last page beyond the end is not zero");
	for (i = 0; i < E; i++) {
		ASSERT_CONT(cont(self, i, 1, 0), 0, page_size);
		ASSERT_AREA_PAGE(i, 1, -1);
	}

	/* Growing the file again gives holes: still nothing to map there. */
	ASSERT_EQ(0, ftruncate(self->fd, self->size));
	ASSERT_CONT(cont(self, E + 1, 1, 0), EFAULT, -EFAULT);
	ASSERT_FALSE(in_cache(self, E + 1));
	ASSERT_NOT_MAPPED(E + 1);
}

/* A fallocated page that was never written is mapped, as zeroes. */
TEST_F(uffd_continue, fallocated_zero)
{
	/* A whole folio allocated and never written. */
	size_t g = self->gran, F = g > 8 ? g : 8, n = g > 4 ? g : 4, i;

	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	ASSERT_EQ(0, fallocate(self->fd, 0, F * page_size, n * page_size));

	/* Through area first: alias would make the page cache uptodate. */
	ASSERT_CONT(cont(self, F + 1, 2, 0), 0, 2 * page_size);
	ASSERT_TRUE(pm_area(self, F + 1) & PM_PRESENT);
	ASSERT_TRUE(pg_zero(pg_area(self, F + 1), 0, page_size));
	ASSERT_TRUE(pg_zero(pg_area(self, F + 2), 0, page_size));
	ASSERT_NOT_MAPPED(F);
	ASSERT_NOT_MAPPED(F + 3);
	ASSERT_MAPS_CACHE(F + 1);
	ASSERT_MAPS_CACHE(F + 2);
	for (i = F; i < F + n; i++)
		ASSERT_TRUE(pg_zero(pg_alias(self, i), 0, page_size));

	/* It is the page of the file. */
	pg_fill(pg_alias(self, F + 1), F + 1, 3);
	ASSERT_AREA_PAGE(F + 1, 3, -1);
}

/* FALLOC_FL_PUNCH_HOLE and MADV_REMOVE make holes: -EFAULT. */
TEST_F(uffd_continue, punched_hole)
{
	size_t g = self->gran, P = g, R = 2 * g, i;

	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	fill(self, 0, 4 * g, 1);
	ASSERT_CONT(cont(self, P, 1, 0), 0, page_size);
	ASSERT_MAPS_CACHE(P);

	/* FALLOC_FL_PUNCH_HOLE: the mapping goes, and CONTINUE finds a hole. */
	ASSERT_EQ(0, fallocate(self->fd, FALLOC_FL_PUNCH_HOLE |
			       FALLOC_FL_KEEP_SIZE, P * page_size,
			       g * page_size));
	ASSERT_NOT_MAPPED(P);
	ASSERT_FALSE(in_cache(self, P));
	ASSERT_CONT(cont(self, P, 1, 0), EFAULT, -EFAULT);
	ASSERT_NOT_MAPPED(P);
	ASSERT_FALSE(in_cache(self, P));

	/* MADV_REMOVE through the alias. */
	ASSERT_EQ(0, madvise(pg_alias(self, R), g * page_size, MADV_REMOVE));
	ASSERT_FALSE(in_cache(self, R + g - 1));
	ASSERT_CONT(cont(self, R + g - 1, 1, 0), EFAULT, -EFAULT);
	ASSERT_NOT_MAPPED(R + g - 1);

	/* The rest of the file is unaffected: the folios before and after. */
	for (i = P - 1; i <= 3 * g; i += 3 * g + 1 - P) {
		ASSERT_CONT(cont(self, i, 1, 0), 0, page_size);
		ASSERT_AREA_PAGE(i, 1, -1);
	}
}

/* A page-cache page is mapped read-only into a private mapping. */
TEST_F(uffd_continue, write_after_continue)
{
	size_t idx = self->gran + 1;
	struct faulter f;
	uint64_t e;

	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	fill(self, idx - 1, 3, 1);
	ASSERT_CONT(cont(self, idx, 1, 0), 0, page_size);
	ASSERT_MAPS_CACHE(idx);
	ASSERT_AREA_PAGE(idx, 1, -1);

	/* Write from a thread of its own, which counts its page faults. */
	ASSERT_EQ(0, faulter_start(&f, pg_area(self, idx) + OFF_WRITE, true,
				   0xc0ffeeULL));
	ASSERT_EQ(0, join_ms(f.th, JOIN_MS));
	ASSERT_EQ(0xc0ffeeULL, f.seen);
	ASSERT_AREA_PAGE(idx, 1, OFF_WRITE);
	e = pm_area(self, idx);
	ASSERT_TRUE(e & PM_PRESENT);
	if (variant->private) {
		/* Copy on write: a new anonymous page, the cache unchanged. */
		ASSERT_LE(1, f.minflt);
		ASSERT_FALSE(e & PM_FILE);
		if (self->pfns)
			ASSERT_NE(PAGEMAP_PFN(pm_cache(self, idx)),
				  PAGEMAP_PFN(e));
		ASSERT_CACHE_PAGE(idx, 1, -1);
	} else {
		/* Mapped writable and dirty: no fault at all. */
		ASSERT_EQ(0, f.minflt);
		ASSERT_MAPS_CACHE(idx);
		ASSERT_EQ(0xc0ffeeULL,
			  LOAD64(pg_alias(self, idx) + OFF_WRITE));
	}
	ASSERT_CONT(cont(self, idx, 1, 0), EEXIST, -EEXIST);
}

/*
 * What a memory type without alloc_folio() refuses. shmem has it: missing
 * faults can be registered, and UFFDIO_COPY and UFFDIO_ZEROPAGE fill holes
 * in a range registered for minor faults. The Rust memory type only supports
 * minor faults: MISSING registration fails with -EINVAL, and so do COPY and
 * ZEROPAGE (their result field says -EINVAL), which change nothing; CONTINUE
 * still works.
 */
TEST_F(uffd_continue, copy_zeropage_missing)
{
	bool rust = variant->kind == MEM_RUST;
	/* In three folios: filling D must not put C or Z in the page cache. */
	size_t D = self->gran, C = 2 * D, Z = 3 * D;
	struct uffdio_zeropage zp;
	struct uffdio_copy copy;
	char *src;
	int ret;

	ret = uffd_register(self->uffd, self->area, self->size, true, false,
			    false);
	ASSERT_EQ(rust ? -EINVAL : 0, ret);
	ret = uffd_register(self->uffd, self->area, self->size, true, false,
			    true);
	ASSERT_EQ(rust ? -EINVAL : 0, ret);
	if (!rust)
		ASSERT_EQ(0, uffd_unregister(self->uffd, self->area,
					     self->size));
	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	fill(self, D, 1, 1);

	src = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, src);
	pg_fill(src, C, 5);
	copy = (struct uffdio_copy) {
		.dst = (uintptr_t)pg_area(self, C),
		.src = (uintptr_t)src,
		.len = page_size,
		.copy = MAPPED_UNTOUCHED,
	};
	ret = ioctl(self->uffd, UFFDIO_COPY, &copy);
	ASSERT_EQ(rust ? EINVAL : 0, ret ? errno : 0);
	ASSERT_EQ(rust ? -EINVAL : (__s64)page_size, copy.copy);
	munmap(src, page_size);

	zp = (struct uffdio_zeropage) {
		.range = { .start = (uintptr_t)pg_area(self, Z),
			   .len = page_size },
		.zeropage = MAPPED_UNTOUCHED,
	};
	ret = ioctl(self->uffd, UFFDIO_ZEROPAGE, &zp);
	ASSERT_EQ(rust ? EINVAL : 0, ret ? errno : 0);
	ASSERT_EQ(rust ? -EINVAL : (__s64)page_size, zp.zeropage);

	if (rust) {
		/* Nothing was mapped or allocated. */
		ASSERT_NOT_MAPPED(C);
		ASSERT_NOT_MAPPED(Z);
		ASSERT_FALSE(in_cache(self, C));
		ASSERT_FALSE(in_cache(self, Z));
	} else {
		ASSERT_AREA_PAGE(C, 5, -1);
		ASSERT_TRUE(pm_area(self, Z) & PM_PRESENT);
		ASSERT_TRUE(pg_zero(pg_area(self, Z), 0, page_size));
	}
	ASSERT_CONT(cont(self, D, 1, 0), 0, page_size);
	ASSERT_MAPS_CACHE(D);
	ASSERT_AREA_PAGE(D, 1, -1);
}

/* ------------------------------------------------------------------------ */
/* Modes */

/*
 * UFFDIO_CONTINUE_MODE_WP maps the page write-protected: a write raises a WP
 * fault, resolved with UFFDIO_WRITEPROTECT. Without WP registered: -EINVAL.
 */
TEST_F(uffd_continue, mode_wp)
{
	struct handler h = { .mode = UFFDIO_CONTINUE_MODE_WP };
	size_t a = 2, b = 5;
	struct faulter f;
	uint64_t e;

	if (!want_wp(self))
		SKIP(return, "no UFFD_FEATURE_WP_HUGETLBFS_SHMEM");
	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, true, true));
	fill(self, 0, 8, 1);

	/* CONTINUE with MODE_WP maps the page write-protected. */
	ASSERT_CONT(cont(self, a, 1, UFFDIO_CONTINUE_MODE_WP), 0, page_size);
	e = pm_area(self, a);
	ASSERT_TRUE(e & PM_PRESENT);
	ASSERT_TRUE(e & PM_UFFD_WP);
	ASSERT_MAPS_CACHE(a);
	ASSERT_AREA_PAGE(a, 1, -1);

	/* A write raises a WP fault, resolved by un-protecting. */
	ASSERT_EQ(0, handler_start(&h, self, 1));
	ASSERT_EQ(0, faulter_start(&f, pg_area(self, a) + OFF_WRITE, true, 7));
	ASSERT_EQ(0, join_ms(f.th, JOIN_MS));
	ASSERT_EQ(1, GET(h.wp));
	ASSERT_EQ(0, GET(h.minor));
	ASSERT_EQ(0, GET(h.bad) + GET(h.bad_event));
	ASSERT_EQ((uintptr_t)pg_area(self, a), GET(h.last_addr));
	ASSERT_TRUE(GET(h.last_flags) & UFFD_PAGEFAULT_FLAG_WRITE);
	ASSERT_FALSE(pm_area(self, a) & PM_UFFD_WP);
	ASSERT_EQ(7, f.seen);
	ASSERT_AREA_PAGE(a, 1, OFF_WRITE);
	/* Private: the write went to a copy, the page cache is unchanged. */
	ASSERT_EQ(variant->private ? fill64(a, 1) : 7,
		  LOAD64(pg_alias(self, a) + OFF_WRITE));
	ASSERT_CACHE_PAGE(a, 1, OFF_WRITE);

	/* A write minor fault, resolved with MODE_WP, then raises WP. */
	ASSERT_EQ(0, faulter_start(&f, pg_area(self, b) + OFF_WRITE, true, 9));
	ASSERT_EQ(0, join_ms(f.th, JOIN_MS));
	ASSERT_EQ(0, handler_stop(&h));
	ASSERT_EQ(1, GET(h.minor));
	ASSERT_EQ(2, GET(h.wp));
	ASSERT_EQ(1, GET(h.ok));
	ASSERT_EQ(0, GET(h.bad) + GET(h.bad_event));
	ASSERT_EQ(9, f.seen);
	ASSERT_AREA_PAGE(b, 1, OFF_WRITE);

	/* MODE_WP where WP is not registered: -EINVAL, found after the checks. */
	ASSERT_EQ(0, uffd_unregister(self->uffd, self->area, self->size));
	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	ASSERT_CONT(cont(self, 6, 1, UFFDIO_CONTINUE_MODE_WP), EINVAL, -EINVAL);
	ASSERT_NOT_MAPPED(6);
	ASSERT_CONT(cont(self, 6, 1, 0), 0, page_size);
	ASSERT_FALSE(pm_area(self, 6) & PM_UFFD_WP);
}

/* With MODE_DONTWAKE the page is mapped but the waiter sleeps until WAKE. */
TEST_F(uffd_continue, mode_dontwake)
{
	size_t idx = self->gran + 3;
	struct uffd_msg msg;
	struct faulter f;

	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	fill(self, idx, 1, 1);
	ASSERT_EQ(0, faulter_start(&f, pg_area(self, idx) +
				   offsetof(struct pgtag, gen), false, 0));
	ASSERT_EQ(0, read_msg(self->uffd, &msg, JOIN_MS));
	ASSERT_EQ(UFFD_EVENT_PAGEFAULT, msg.event);
	ASSERT_TRUE(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR);
	ASSERT_EQ((uintptr_t)pg_area(self, idx), msg.arg.pagefault.address);

	pg_fill(pg_alias(self, idx), idx, 4);
	ASSERT_CONT(cont(self, idx, 1, UFFDIO_CONTINUE_MODE_DONTWAKE), 0,
		    page_size);
	ASSERT_MAPS_CACHE(idx);
	/* Mapped, but the waiter sleeps until told. */
	ASSERT_NE(0, join_ms(f.th, 300));
	ASSERT_EQ(0, GET(f.done));
	ASSERT_EQ(0, uffd_wake(self->uffd, pg_area(self, idx), page_size));
	ASSERT_EQ(0, join_ms(f.th, JOIN_MS));
	ASSERT_EQ(4, f.seen);
	ASSERT_AREA_PAGE(idx, 4, -1);
}

/* ------------------------------------------------------------------------ */
/* Arguments */

/*
 * Early validation fails with -EINVAL and leaves mapped alone; a range that
 * is not all in one registered VMA fails with -ENOENT, written to mapped.
 */
TEST_F(uffd_continue, invalid_ranges)
{
	struct {
		uint64_t start, len, mode;
	} early[] = {
		{ 0, page_size, 1ULL << 2 },		/* unknown mode bit */
		{ 0, page_size, 1ULL << 63 },
		{ 1, page_size, 0 },			/* unaligned start */
		{ page_size / 2, page_size, 0 },
		{ 0, page_size + 1, 0 },		/* unaligned length */
		{ 0, page_size / 2, 0 },
		{ 0, 0, 0 },				/* zero length */
		{ 0, -(uint64_t)page_size, 0 },		/* wraps */
	};
	uintptr_t base = (uintptr_t)self->area;
	char *hole;
	struct cres r;
	size_t i, half = self->npages / 2;

	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	fill(self, 0, 2, 1);
	fill(self, half - 1, 2, 1);
	fill(self, self->npages - 1, 1, 1);

	/* Early validation: -EINVAL, and mapped is not written. */
	for (i = 0; i < ARRAY_SIZE(early); i++) {
		r = uffd_continue(self->uffd, (void *)(base + early[i].start),
				  early[i].len, early[i].mode);
		ASSERT_EQ(-1, r.ret) TH_LOG("case %zu", i);
		ASSERT_EQ(EINVAL, r.err) TH_LOG("case %zu", i);
		ASSERT_EQ(MAPPED_UNTOUCHED, r.mapped) TH_LOG("case %zu", i);
	}
	/* Beyond the user address space. */
	r = uffd_continue(self->uffd, (void *)(1ULL << 63), page_size, 0);
	ASSERT_CONT(r, EINVAL, MAPPED_UNTOUCHED);
	ASSERT_NOT_MAPPED(0);
	ASSERT_NOT_MAPPED(1);

	/* Across the end of the VMA: -ENOENT, no partial progress. */
	ASSERT_CONT(uffd_continue(self->uffd, pg_area(self, self->npages - 1),
				  2 * page_size, 0), ENOENT, -ENOENT);
	ASSERT_NOT_MAPPED(self->npages - 1);

	/* A mapping that is not registered. */
	ASSERT_CONT(uffd_continue(self->uffd, pg_alias(self, 0), page_size, 0),
		    ENOENT, -ENOENT);

	/* Nothing mapped there. */
	hole = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	ASSERT_NE(MAP_FAILED, hole);
	ASSERT_EQ(0, munmap(hole, page_size));
	ASSERT_CONT(uffd_continue(self->uffd, hole, page_size, 0), ENOENT,
		    -ENOENT);

	/* Only the first half registered: a range over both halves. */
	ASSERT_EQ(0, uffd_unregister(self->uffd, pg_area(self, half),
				     self->size - half * page_size));
	ASSERT_CONT(cont(self, half - 1, 2, 0), ENOENT, -ENOENT);
	ASSERT_NOT_MAPPED(half - 1);
	ASSERT_CONT(cont(self, half, 1, 0), ENOENT, -ENOENT);
	ASSERT_CONT(cont(self, half - 1, 1, 0), 0, page_size);
	ASSERT_AREA_PAGE(half - 1, 1, -1);

	/* The valid request still works. */
	ASSERT_CONT(cont(self, 0, 2, 0), 0, 2 * page_size);
	ASSERT_AREA_PAGE(0, 1, -1);
	ASSERT_AREA_PAGE(1, 1, -1);
}

/* ------------------------------------------------------------------------ */
/* What may be in the PTE before: markers, guards, poisoned pages */

/* CONTINUE replaces a UFFDIO_POISON marker. */
TEST_F(uffd_continue, poison_marker)
{
	struct uffdio_poison p = { .mode = 0 };
	size_t idx = self->gran + 1;
	uint64_t e;

	if (!(self->features & UFFD_FEATURE_POISON))
		SKIP(return, "no UFFD_FEATURE_POISON");
	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	ASSERT_EQ(0, sig_catch(SIGBUS));
	fill(self, idx, 4, 1);

	p.range.start = (uintptr_t)pg_area(self, idx);
	p.range.len = 3 * page_size;
	ASSERT_EQ(0, ioctl(self->uffd, UFFDIO_POISON, &p));
	ASSERT_EQ(3 * page_size, p.updated);
	e = pm_area(self, idx);
	ASSERT_FALSE(e & PM_PRESENT);
	ASSERT_TRUE(e & PM_SWAP);
	ASSERT_FALSE(e & (PM_UFFD_WP | PM_GUARD_REGION));
	/* The marker is there: an access raises SIGBUS. */
	ASSERT_EQ(SIGBUS, probe_read(pg_area(self, idx)));
	ASSERT_EQ(BUS_MCEERR_AR, GET(sig_code));

	/* POISON refuses a marker; CONTINUE replaces it. */
	p.updated = 0;
	ASSERT_EQ(-1, ioctl(self->uffd, UFFDIO_POISON, &p));
	ASSERT_EQ(EEXIST, errno);
	ASSERT_CONT(cont(self, idx, 1, 0), 0, page_size);
	ASSERT_MAPS_CACHE(idx);
	ASSERT_AREA_PAGE(idx, 1, -1);
	/* Two markers and an empty entry, in one call. */
	ASSERT_CONT(cont(self, idx + 1, 3, 0), 0, 3 * page_size);
	ASSERT_AREA_PAGE(idx + 2, 1, -1);
	ASSERT_AREA_PAGE(idx + 3, 1, -1);
	ASSERT_FALSE(pm_area(self, idx + 2) & PM_SWAP);
}

/* CONTINUE replaces a uffd-wp marker; mode 0 drops the protection. */
TEST_F(uffd_continue, wp_marker)
{
	size_t a = self->gran + 1, b = a + 1, c = a + 2, i;
	struct uffd_msg msg;
	struct faulter f;
	uint64_t e;
	struct uffdio_poison p = { .mode = 0 };

	if (!want_wp(self))
		SKIP(return, "no UFFD_FEATURE_WP_HUGETLBFS_SHMEM");
	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, true, true));
	fill(self, a, 4, 1);

	/* Write-protecting entries that are empty leaves uffd-wp markers. */
	ASSERT_EQ(0, uffd_wp(self->uffd, pg_area(self, a), 3 * page_size, true));
	for (i = a; i < a + 3; i++) {
		e = pm_area(self, i);
		ASSERT_FALSE(e & PM_PRESENT);
		ASSERT_TRUE(e & PM_SWAP);
		ASSERT_TRUE(e & PM_UFFD_WP);
	}
	if (self->features & UFFD_FEATURE_POISON) {
		p.range.start = (uintptr_t)pg_area(self, c);
		p.range.len = page_size;
		ASSERT_EQ(-1, ioctl(self->uffd, UFFDIO_POISON, &p));
		ASSERT_EQ(EEXIST, errno);
	}

	/*
	 * CONTINUE in mode 0 over the marker: the protection is gone. Shared
	 * and writable, the write needs no fault; private, it copies the page
	 * and raises no WP fault either.
	 */
	ASSERT_CONT(cont(self, a, 1, 0), 0, page_size);
	e = pm_area(self, a);
	ASSERT_TRUE(e & PM_PRESENT);
	ASSERT_FALSE(e & PM_UFFD_WP);
	ASSERT_MAPS_CACHE(a);
	ASSERT_EQ(0, faulter_start(&f, pg_area(self, a) + OFF_WRITE, true, 5));
	ASSERT_EQ(0, join_ms(f.th, 5000)) {
		uffd_wp(self->uffd, pg_area(self, a), page_size, false);
		TH_LOG("the write blocked: the page is still write-protected");
	}
	ASSERT_EQ(-ETIMEDOUT, read_msg(self->uffd, &msg, 0));
	ASSERT_EQ(5, f.seen);
	ASSERT_AREA_PAGE(a, 1, OFF_WRITE);
	if (variant->private) {
		ASSERT_LE(1, f.minflt);
		ASSERT_FALSE(pm_area(self, a) & PM_FILE);
		ASSERT_CACHE_PAGE(a, 1, -1);
	} else {
		ASSERT_EQ(0, f.minflt);
		ASSERT_EQ(5, LOAD64(pg_alias(self, a) + OFF_WRITE));
	}

	/* With MODE_WP over the marker, the page stays protected. */
	ASSERT_CONT(cont(self, b, 1, UFFDIO_CONTINUE_MODE_WP), 0, page_size);
	e = pm_area(self, b);
	ASSERT_TRUE(e & PM_PRESENT);
	ASSERT_TRUE(e & PM_UFFD_WP);
	ASSERT_EQ(0, faulter_start(&f, pg_area(self, b) + OFF_WRITE, true, 6));
	ASSERT_EQ(0, read_msg(self->uffd, &msg, JOIN_MS));
	ASSERT_TRUE(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP);
	ASSERT_EQ((uintptr_t)pg_area(self, b), msg.arg.pagefault.address);
	ASSERT_EQ(0, GET(f.done));
	ASSERT_EQ(0, uffd_wp(self->uffd, pg_area(self, b), page_size, false));
	ASSERT_EQ(0, join_ms(f.th, JOIN_MS));
	ASSERT_EQ(6, f.seen);
	ASSERT_AREA_PAGE(b, 1, OFF_WRITE);

	/* A marker and an empty entry in one range. */
	ASSERT_CONT(cont(self, c, 2, 0), 0, 2 * page_size);
	ASSERT_AREA_PAGE(c, 1, -1);
	ASSERT_AREA_PAGE(c + 1, 1, -1);
	ASSERT_FALSE(pm_area(self, c) & PM_UFFD_WP);
}

/*
 * MADV_GUARD_INSTALL of a page, given ten seconds (a kernel without the fix
 * of the guard over a uffd-wp marker never returns): 0, -errno, or
 * -ETIMEDOUT.
 */
static int guard_install_timed(char *p)
{
	int ret;

	if (sig_catch(SIGALRM))
		return -errno;
	if (sigsetjmp(sig_jmp, 1))
		return -ETIMEDOUT;
	SET(sig_armed, 1);
	alarm(10);
	ret = madvise(p, page_size, MADV_GUARD_INSTALL) ? -errno : 0;
	alarm(0);
	SET(sig_armed, 0);
	return ret;
}

/*
 * A guard region is not a userfaultfd marker: -EEXIST, the guard stays. Nor
 * is a guard over a uffd-wp marker, which keeps the write protection.
 */
TEST_F(uffd_continue, guard_region)
{
	struct uffdio_poison p = { .mode = 0 };
	const uint64_t state = PM_PRESENT | PM_GUARD_REGION | PM_UFFD_WP;
	size_t g = self->gran + 2, w = g + 2;
	uint64_t e;
	int ret;

	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, want_wp(self), true));
	fill(self, g - 2, 5, 1);
	if (madvise(pg_area(self, g), page_size, MADV_GUARD_INSTALL))
		SKIP(return, "MADV_GUARD_INSTALL on shmem: %s", strerror(errno));
	e = pm_area(self, g);
	ASSERT_FALSE(e & PM_PRESENT);
	ASSERT_TRUE(e & PM_GUARD_REGION);

	ASSERT_CONT(cont(self, g, 1, 0), EEXIST, -EEXIST);
	ASSERT_TRUE(pm_area(self, g) & PM_GUARD_REGION);
	ASSERT_FALSE(pm_area(self, g) & PM_PRESENT);
	/* Up to the guard, then stop. */
	ASSERT_CONT(cont(self, g - 2, 4, 0), EAGAIN, 2 * page_size);
	ASSERT_AREA_PAGE(g - 2, 1, -1);
	ASSERT_AREA_PAGE(g - 1, 1, -1);
	ASSERT_TRUE(pm_area(self, g) & PM_GUARD_REGION);
	ASSERT_NOT_MAPPED(g + 1);
	ASSERT_CONT(cont(self, g + 1, 1, 0), 0, page_size);

	/* Once the guard is removed, CONTINUE maps the page. */
	ASSERT_EQ(0, madvise(pg_area(self, g), page_size, MADV_GUARD_REMOVE));
	ASSERT_FALSE(pm_area(self, g) & PM_GUARD_REGION);
	ASSERT_CONT(cont(self, g, 1, 0), 0, page_size);
	ASSERT_MAPS_CACHE(g);
	ASSERT_AREA_PAGE(g, 1, -1);

	/* A guard over a uffd-wp marker: one marker with both bits. */
	if (!want_wp(self))
		return;
	ASSERT_NOT_MAPPED(w);
	ASSERT_EQ(0, uffd_wp(self->uffd, pg_area(self, w), page_size, true));
	ret = guard_install_timed(pg_area(self, w));
	if (ret == -ETIMEDOUT)
		SKIP(return, "MADV_GUARD_INSTALL over a uffd-wp marker does not return");
	ASSERT_EQ(0, ret);
	e = pm_area(self, w);
	ASSERT_EQ(PM_GUARD_REGION | PM_UFFD_WP, e & state);
	ASSERT_CONT(cont(self, w, 1, 0), EEXIST, -EEXIST);
	ASSERT_CONT(cont(self, w, 1, UFFDIO_CONTINUE_MODE_WP), EEXIST, -EEXIST);
	if (self->features & UFFD_FEATURE_POISON) {
		p.range.start = (uintptr_t)pg_area(self, w);
		p.range.len = page_size;
		ASSERT_EQ(-1, ioctl(self->uffd, UFFDIO_POISON, &p));
		ASSERT_EQ(EEXIST, errno);
	}
	ASSERT_EQ(e, pm_area(self, w));
	/* Without the guard, the uffd-wp marker is CONTINUE's to replace. */
	ASSERT_EQ(0, madvise(pg_area(self, w), page_size, MADV_GUARD_REMOVE));
	ASSERT_EQ(PM_UFFD_WP, pm_area(self, w) & state);
	ASSERT_CONT(cont(self, w, 1, UFFDIO_CONTINUE_MODE_WP), 0, page_size);
	ASSERT_MAPS_CACHE(w);
	ASSERT_EQ(PM_PRESENT | PM_UFFD_WP, pm_area(self, w) & state);
	ASSERT_AREA_PAGE(w, 1, -1);
}

/* A hardware-poisoned page is not mapped: -EIO. Needs CAP_SYS_ADMIN. */
TEST_F(uffd_continue, hwpoison)
{
	size_t P = self->gran + 5;

	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	ASSERT_EQ(0, sig_catch(SIGBUS));
	fill(self, P - 2, 5, 1);

	/*
	 * The page is mapped by alias, so the injection also sends us an
	 * action-required SIGBUS; the handler counts it.
	 */
	if (madvise(pg_alias(self, P), page_size, MADV_HWPOISON)) {
		if (errno == EPERM)
			SKIP(return, "MADV_HWPOISON needs CAP_SYS_ADMIN");
		if (errno == EINVAL)
			SKIP(return, "MADV_HWPOISON: no CONFIG_MEMORY_FAILURE");
		ASSERT_EQ(0, errno) TH_LOG("MADV_HWPOISON: %s", strerror(errno));
	}
	ASSERT_EQ(SIGBUS, probe_read(pg_alias(self, P)))
		TH_LOG("the poisoned page can still be read");

	ASSERT_CONT(cont(self, P, 1, 0), EIO, -EIO);
	ASSERT_NOT_MAPPED(P);
	/* Up to the poisoned page, then -EIO. */
	ASSERT_CONT(cont(self, P - 2, 3, 0), EAGAIN, 2 * page_size);
	ASSERT_AREA_PAGE(P - 2, 1, -1);
	ASSERT_AREA_PAGE(P - 1, 1, -1);
	ASSERT_NOT_MAPPED(P);
	ASSERT_CONT(cont(self, P, 2, 0), EIO, -EIO);
	ASSERT_CONT(cont(self, P + 1, 1, 0), 0, page_size);
	ASSERT_AREA_PAGE(P + 1, 1, -1);
}

/* ------------------------------------------------------------------------ */
/* Large folios */

/*
 * CONTINUE of one page maps that page, not its neighbours in the folio; with
 * PMD-sized folios, the right subpage, and the folio stays whole.
 */
TEST_F(uffd_continue, one_page_of_folio)
{
	size_t g = self->gran, base = g, n, i;
	uint64_t head = 0, e;
	size_t pick[] = { 5, g > 8 ? g - 1 : 7 };

	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	n = g > 8 ? g : 8;
	fill(self, base, n, 1);
	if (g > 1) {
		ASSERT_EQ(g, folio_pages(self, base, &head));
		ASSERT_EQ(head, PAGEMAP_PFN(pm_cache(self, base)));
	}

	for (i = 0; i < ARRAY_SIZE(pick); i++) {
		ASSERT_CONT(cont(self, base + pick[i], 1, 0), 0, page_size);
		ASSERT_MAPS_CACHE(base + pick[i]);
		ASSERT_AREA_PAGE(base + pick[i], 1, -1);
		if (g > 1 && self->pfns)
			ASSERT_EQ(head + pick[i],
				  PAGEMAP_PFN(pm_area(self, base + pick[i])));
	}
	/* Exactly those pages of the folio are mapped, not their neighbours. */
	for (i = 0; i < n; i++) {
		e = pm_area(self, base + i);
		ASSERT_EQ(i == pick[0] || i == pick[1], !!(e & PM_PRESENT))
			TH_LOG("page %zu of the folio", i);
	}
	ASSERT_NOT_MAPPED(base - 1);
	ASSERT_NOT_MAPPED(base + n);

	/* The whole folio: up to the first mapped page, then the rest. */
	ASSERT_CONT(cont(self, base, n, 0), EAGAIN, pick[0] * page_size);
	ASSERT_CONT(cont(self, base + pick[0] + 1, pick[1] - pick[0] - 1, 0), 0,
		    (pick[1] - pick[0] - 1) * page_size);
	for (i = 0; i < n; i++) {
		ASSERT_MAPS_CACHE(base + i);
		if (g > 1 && self->pfns)
			ASSERT_EQ(head + i,
				  PAGEMAP_PFN(pm_area(self, base + i)));
	}
	ASSERT_AREA_PAGE(base, 1, -1);
	ASSERT_AREA_PAGE(base + n - 1, 1, -1);
	/* Mapping it by pages did not split it. */
	if (g > 1)
		ASSERT_EQ(g, folio_pages(self, base, &head));
}

/* ------------------------------------------------------------------------ */
/* Swap: pages of the page cache swapped out, and brought back by CONTINUE. */

/*
 * Swaps pages [first, first + n) of the page cache out, through alias
 * (MADV_PAGEOUT), and checks that they left the page cache (mincore() sees a
 * swapped-out shmem page as not resident). False if they did not: no swap.
 */
static bool swap_out(SELF *self, size_t first, size_t n)
{
	size_t i;
	int tries;

	for (tries = 0; tries < 10; tries++) {
		if (madvise(pg_alias(self, first), n * page_size, MADV_PAGEOUT))
			return false;
		for (i = first; i < first + n; i++)
			if (in_cache(self, i))
				break;
		if (i == first + n)
			return true;
	}
	return false;
}

/* A swapped-out page is swapped in by CONTINUE and mapped, with its data. */
TEST_F(uffd_continue, swapped_out)
{
	size_t g = self->gran, S = g, n = g > 2 ? g : 2, i;

	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	fill(self, S, n, 1);
	if (!swap_out(self, S, n))
		SKIP(return, "MADV_PAGEOUT did not swap the pages out: no swap?");
	ASSERT_NOT_MAPPED(S);

	ASSERT_CONT(cont(self, S, n, 0), 0, n * page_size);
	for (i = S; i < S + n; i++) {
		ASSERT_MAPS_CACHE(i);
		ASSERT_AREA_PAGE(i, 1, -1);
	}
	ASSERT_NOT_MAPPED(S + n);
	/* It is the page of the file again, not a copy. */
	pg_fill(pg_alias(self, S), S, 2);
	ASSERT_AREA_PAGE(S, 2, -1);
}

/* A fallocated page, zeroed by a read and swapped out, comes back zero. */
TEST_F(uffd_continue, swapped_out_fallocated)
{
	size_t g = self->gran, F = 2 * g, i;

	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	ASSERT_EQ(0, fallocate(self->fd, 0, F * page_size, g * page_size));
	for (i = F; i < F + g; i++)
		FORCE_READ(*pg_alias(self, i));
	if (!swap_out(self, F, g))
		SKIP(return, "MADV_PAGEOUT did not swap the pages out: no swap?");

	ASSERT_CONT(cont(self, F, g, 0), 0, g * page_size);
	for (i = F; i < F + g; i++) {
		ASSERT_MAPS_CACHE(i);
		ASSERT_TRUE(pg_zero(pg_area(self, i), 0, page_size))
			TH_LOG("page %zu is not zero", i);
	}
}

/*
 * A range of one folio each of resident, swapped-out, fallocated and hole:
 * the first three are mapped, then the hole ends the range with -EAGAIN and
 * the bytes done; from the hole on, -EFAULT. Nothing is allocated for the
 * hole.
 */
TEST_F(uffd_continue, swapped_out_mixed_range)
{
	size_t g = self->gran, i;

	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	fill(self, 0, 2 * g, 1);
	if (!swap_out(self, g, g))
		SKIP(return, "MADV_PAGEOUT did not swap the pages out: no swap?");
	ASSERT_TRUE(in_cache(self, 0));
	ASSERT_EQ(0, fallocate(self->fd, 0, 2 * g * page_size, g * page_size));
	ASSERT_FALSE(in_cache(self, 3 * g));

	ASSERT_CONT(cont(self, 0, 4 * g, 0), EAGAIN, 3 * g * page_size);
	for (i = 0; i < 2 * g; i++) {
		ASSERT_MAPS_CACHE(i);
		ASSERT_AREA_PAGE(i, 1, -1);
	}
	for (i = 2 * g; i < 3 * g; i++) {
		ASSERT_MAPS_CACHE(i);
		ASSERT_TRUE(pg_zero(pg_area(self, i), 0, page_size));
	}
	ASSERT_NOT_MAPPED(3 * g);
	ASSERT_CONT(cont(self, 3 * g, g, 0), EFAULT, -EFAULT);
	ASSERT_NOT_MAPPED(3 * g);
	ASSERT_FALSE(in_cache(self, 3 * g));
}

/* The number of pages swapped in (pswpin of /proc/vmstat), -1 if unknown. */
static long vmstat_pswpin(void)
{
	char line[128];
	long v = -1;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "pswpin %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/*
 * A fault on a swapped-out page in a range registered for minor faults: the
 * page cache has an entry for it, so it is a minor fault (shmem_fault()
 * decides on filemap_get_entry(), and so does the Rust memory type). The
 * handler gets the event while the page is still swapped out and unmapped;
 * only CONTINUE swaps it in.
 */
TEST_F(uffd_continue, minor_fault_swapped_out)
{
	size_t g = self->gran, S = g, i;
	struct uffd_msg msg;
	struct faulter f;
	long swpin;

	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	fill(self, S, g, 1);
	if (!swap_out(self, S, g))
		SKIP(return, "MADV_PAGEOUT did not swap the pages out: no swap?");
	swpin = vmstat_pswpin();
	ASSERT_EQ(0, faulter_start(&f, pg_area(self, S) +
				   offsetof(struct pgtag, gen), false, 0));
	ASSERT_EQ(0, read_msg(self->uffd, &msg, JOIN_MS))
		TH_LOG("no fault event for a swapped-out page");
	ASSERT_EQ(UFFD_EVENT_PAGEFAULT, msg.event);
	ASSERT_TRUE(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR);
	ASSERT_EQ((uintptr_t)pg_area(self, S),
		  msg.arg.pagefault.address & ~(uint64_t)(page_size - 1));
	/* Handed over as it stands: not swapped in, not mapped. */
	for (i = S; i < S + g; i++)
		ASSERT_FALSE(in_cache(self, i))
			TH_LOG("page %zu was swapped in before CONTINUE", i);
	if (swpin >= 0)
		ASSERT_EQ(swpin, vmstat_pswpin());
	ASSERT_NOT_MAPPED(S);
	ASSERT_FALSE(GET(f.done));

	ASSERT_CONT(cont(self, S, g, 0), 0, g * page_size);
	ASSERT_EQ(0, join_ms(f.th, JOIN_MS))
		TH_LOG("the faulting thread did not resume");
	ASSERT_EQ(1, f.seen);
	for (i = S; i < S + g; i++) {
		ASSERT_TRUE(in_cache(self, i));
		ASSERT_MAPS_CACHE(i);
		ASSERT_AREA_PAGE(i, 1, -1);
	}
	if (swpin >= 0)
		ASSERT_LT(swpin, vmstat_pswpin());
}

/* ------------------------------------------------------------------------ */
/* A memory cgroup of this test process */

/*
 * Moves this (single-threaded) process into a new memory cgroup of its own;
 * NULL, or why not.
 */
static const char *memcg_enter(void)
{
	const char *why = memcg_create("uffd-continue");

	if (why)
		return why;
	if (memcg_join()) {
		memcg_remove();
		return "cannot move into a new memory cgroup";
	}
	return NULL;
}

static void memcg_leave(void)
{
	if (!cg_dir[0])
		return;
	cg_write(cg_home, "cgroup.procs", "0");
	memcg_remove();
}

/*
 * Swapped-out pages of a file, resolved in a memory cgroup that has room to
 * swap in only some of them and may not swap anything out: swap-in fails
 * once the cgroup is full (its OOM killer finds nobody to kill), and CONTINUE
 * maps the pages before that and gives -EFAULT for the rest, which stay
 * swapped out, intact. A fault on one of those is a minor fault all the
 * same, handed over without a swap-in: the failure is CONTINUE's, not a
 * signal of the faulting thread. Once the limit is lifted, they are resolved
 * too, and the faulting thread goes on; and when the file is gone, so are
 * its charges and its swap.
 */
TEST_F(uffd_continue, memcg_swapin_limit)
{
	size_t n = pmd_pages, m = n - 1, i, k, k2;
	long base, oom;
	const char *why;
	char val[160];
	struct cres r, r2, r3;
	struct uffd_msg msg;
	struct faulter f;
	int fd, gate = 0, ev;

	if (variant->kind == MEM_THP)
		SKIP(return, "4 KiB pages only: a PMD-sized swap-in is charged in one piece");
	if (variant->private)
		SKIP(return, "shared mappings only: a private one resolves to the same swap-in");
	/*
	 * Allocation failures are what this case is about: under fault
	 * injection (uffd-continue.h), its CONTINUEs fail only where the
	 * cgroup is full, and are not retried, so that each failed charge
	 * makes the one OOM report expected of it.
	 */
	uffd_fi_paused = true;
	/*
	 * More pages than a memory cgroup keeps charged ahead per CPU (64), so
	 * that its limit is reached: the mappings grow to a PMD's worth, n.
	 */
	ASSERT_EQ(0, munmap(self->area, self->size));
	ASSERT_EQ(0, munmap(self->alias, self->size));
	self->npages = n;
	self->size = n * page_size;
	ASSERT_EQ(0, ftruncate(self->fd, self->size));
	ASSERT_EQ(0, map_file(self, false));
	/*
	 * Everything this process charges is kept ahead on the CPU it runs
	 * on (a memory cgroup's per-CPU stock). A failed charge drains this
	 * CPU's stock at once but other CPUs' only later, from a workqueue:
	 * a charge that failed would then succeed a moment later. So this
	 * process stays on one CPU, and only that CPU holds any stock.
	 */
	ASSERT_EQ(0, pin_to_this_cpu());
	why = memcg_enter();
	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, cg_read("memory.current", NULL));
	/* The thread that faults once the cgroup is full, waiting for it. */
	ASSERT_EQ(0, faulter_start_gated(&f, NULL, false, 0, &gate));
	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	fill(self, 0, n, 1);
	/*
	 * The PTE table of area, made before the limit, which is for pages:
	 * the last page stays mapped and keeps it; the m others are unmapped
	 * and swapped out.
	 */
	ASSERT_CONT(cont(self, 0, n, 0), 0, n * page_size);
	ASSERT_EQ(0, madvise(self->area, m * page_size, MADV_DONTNEED));
	if (!swap_out(self, 0, m))
		SKIP(return, "MADV_PAGEOUT did not swap the pages out: no swap?");
	ASSERT_NOT_MAPPED(0);
	ASSERT_LE(m * page_size, cg_read("memory.swap.current", NULL));

	fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(5, write(fd, "-1000", 5));
	close(fd);
	ASSERT_EQ(0, cg_write(cg_dir, "memory.swap.max", "0"));
	snprintf(val, sizeof(val), "%s/memory.max", cg_dir);
	fd = open(val, O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(3, pwrite(fd, "max", 3, 0));
	/*
	 * Room for few pages, and nothing may be swapped out to make more.
	 * Until the limit is lifted, nothing but the CONTINUEs may charge
	 * memory: a page fault of this process, which its cgroup's OOM killer
	 * may not kill, would wait for memory forever, and even opening a
	 * file needs some. So every page this process may touch is in memory
	 * and locked there (the cgroup's reclaim would evict its code, and a
	 * child of fork() has to fault it in again), all but area and alias,
	 * and the file is open already.
	 */
	ASSERT_EQ(0, mlock_all_but(self->area, self->alias, self->size));
	oom = cg_read("memory.events", "oom");
	/* Locking charged what it faulted in: count from here. */
	base = cg_read("memory.current", NULL);
	snprintf(val, sizeof(val), "%ld", base + (long)(8 * page_size));
	ASSERT_EQ(strlen(val), pwrite(fd, val, strlen(val), 0));
	r = cont(self, 0, m, 0);
	k = r.mapped > 0 ? r.mapped / page_size : 0;
	/*
	 * The next page, one at a time: memory the failed charge's reclaim
	 * and draining free a moment later may let a few more in, but one
	 * fails with -EFAULT before long.
	 */
	for (k2 = k; k2 < m && k2 < k + 64; k2++) {
		r2 = cont(self, k2, 1, 0);
		if (r2.ret)
			break;
	}
	/*
	 * The page that could not be swapped in, faulted on: an event for
	 * the handler, whose CONTINUE still fails.
	 */
	ev = -ENODATA;
	r3 = r2;
	if (k2 < m) {
		f.addr = pg_area(self, k2) + offsetof(struct pgtag, gen);
		SET(gate, 1);
		ev = read_msg(self->uffd, &msg, JOIN_MS);
		if (!ev)
			r3 = cont(self, k2, 1, 0);
	}
	ASSERT_EQ(3, pwrite(fd, "max", 3, 0));
	munlockall();
	close(fd);

	TH_LOG("%zu of %zu pages swapped in before the limit", k, m);
	ASSERT_EQ(EAGAIN, r.err)
		TH_LOG("CONTINUE of %zu swapped-out pages: ret %d errno %d mapped %lld",
		       m, r.ret, r.err, (long long)r.mapped);
	ASSERT_EQ(0, r.mapped % page_size);
	ASSERT_LT(0, k);
	ASSERT_GT(m, k);
	for (i = 0; i < k; i++) {
		ASSERT_MAPS_CACHE(i);
		ASSERT_AREA_PAGE(i, 1, -1);
	}
	TH_LOG("%zu more, one by one, before -EFAULT", k2 - k);
	for (i = k; i < k2; i++) {
		ASSERT_MAPS_CACHE(i);
		ASSERT_AREA_PAGE(i, 1, -1);
	}
	ASSERT_GT(m, k2);
	ASSERT_CONT(r2, EFAULT, -EFAULT);
	ASSERT_EQ(0, ev) TH_LOG("no fault event for page %zu: %s", k2,
				strerror(-ev));
	ASSERT_EQ(UFFD_EVENT_PAGEFAULT, msg.event);
	ASSERT_TRUE(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR);
	ASSERT_EQ((uintptr_t)pg_area(self, k2),
		  msg.arg.pagefault.address & ~(uint64_t)(page_size - 1));
	ASSERT_CONT(r3, EFAULT, -EFAULT);
	ASSERT_FALSE(GET(f.done));
	ASSERT_NOT_MAPPED(k2);
	ASSERT_FALSE(in_cache(self, k2));
	ASSERT_LT(oom, cg_read("memory.events", "oom"));

	ASSERT_CONT(cont(self, k2, m - k2, 0), 0, (m - k2) * page_size);
	for (i = k2; i < n; i++) {
		ASSERT_MAPS_CACHE(i);
		ASSERT_AREA_PAGE(i, 1, -1);
	}
	/* CONTINUE woke the faulting thread, which read the page. */
	ASSERT_EQ(0, join_ms(f.th, JOIN_MS))
		TH_LOG("the faulting thread did not resume");
	ASSERT_EQ(1, f.seen);

	/* Gone with the file: its pages, their charges and their swap. */
	munmap(self->area, self->size);
	munmap(self->alias, self->size);
	close(self->fd);
	/* The device's open owns the rust_shared variant's file. */
	if (self->dev >= 0)
		close(self->dev);
	self->area = MAP_FAILED;
	self->alias = MAP_FAILED;
	self->fd = -1;
	self->dev = -1;
	for (i = 0; i < 50 && cg_read("memory.swap.current", NULL); i++)
		usleep(100000);
	ASSERT_EQ(0, cg_read("memory.swap.current", NULL));
	/*
	 * Back to where it was before the limit (when one page of the file
	 * was charged), give or take what the cgroup has charged ahead on
	 * each CPU (up to 64 pages) and 64 KiB of kernel memory: not the n
	 * pages of the file.
	 */
	ASSERT_GE(base + (long)(64 * page_size * sysconf(_SC_NPROCESSORS_ONLN)) +
		  64 * 1024, cg_read("memory.current", NULL))
		TH_LOG("memory.current %ld, %ld before the limit",
		       cg_read("memory.current", NULL), base);
}

/* ------------------------------------------------------------------------ */
/* Concurrency */

struct reader {
	pthread_t th;
	SELF *self;
	size_t first, n;	/* pages */
	unsigned int id;
	unsigned int errors;
};

static void *reader_fn(void *arg)
{
	struct reader *r = arg;
	SELF *self = r->self;
	size_t k, idx, stride = 2 * r->id + 1;
	struct pgtag *t;

	for (k = 0; k < r->n; k++) {
		/* A permutation of the pages, different in each thread. */
		idx = r->first + (k * stride + r->id) % r->n;
		t = (struct pgtag *)pg_area(self, idx);
		if (LOAD64(&t->magic) != PG_MAGIC || LOAD64(&t->idx) != idx ||
		    LOAD64(&t->gen) != 1)
			r->errors++;
		if (r->id & 1)
			STORE64(pg_area(self, idx) + OFF_WRITE + 8 * r->id,
				((uint64_t)r->id << 24) | idx);
	}
	return NULL;
}

#define NR_READERS	8

/*
 * Eight threads fault on the same pages in different orders, half of them
 * writing; two handler threads resolve the faults, with single pages and
 * with blocks of four that overlap: -EEXIST and partial results happen and
 * are tolerated, and every thread sees the right data.
 */
TEST_F_TIMEOUT(uffd_continue, concurrent_faults, 120)
{
	struct handler h = { .block = 4 };
	struct reader rd[NR_READERS];
	size_t n = 64, first = self->gran > 1 ? self->gran - n / 2 : 0, i;
	unsigned int t;
	uint64_t v;

	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	fill(self, first, n, 1);
	ASSERT_EQ(0, handler_start(&h, self, 2));
	for (t = 0; t < NR_READERS; t++) {
		rd[t] = (struct reader){ .self = self, .first = first, .n = n,
					 .id = t };
		ASSERT_EQ(0, pthread_create(&rd[t].th, NULL, reader_fn, &rd[t]));
	}
	for (t = 0; t < NR_READERS; t++)
		ASSERT_EQ(0, join_ms(rd[t].th, 60000))
			TH_LOG("thread %u did not finish", t);
	ASSERT_EQ(0, handler_stop(&h));
	TH_LOG("%u minor faults; CONTINUE: %u ok, %u partial, %u EEXIST, %u other",
	       GET(h.minor), GET(h.ok), GET(h.partial), GET(h.eexist),
	       GET(h.bad));

	for (t = 0; t < NR_READERS; t++)
		ASSERT_EQ(0, rd[t].errors) TH_LOG("thread %u saw wrong data", t);
	ASSERT_EQ(0, GET(h.bad));
	ASSERT_EQ(0, GET(h.bad_event));
	ASSERT_EQ(0, GET(h.wp));
	ASSERT_LE(1, GET(h.minor));
	ASSERT_LE(GET(h.minor), n * NR_READERS);
	/* Every fault was resolved by a first CONTINUE or a retry. */
	ASSERT_LE(GET(h.minor), GET(h.ok) + GET(h.partial) + GET(h.eexist));

	for (i = first; i < first + n; i++) {
		ASSERT_TRUE(pm_area(self, i) & PM_PRESENT);
		if (!variant->private)
			ASSERT_MAPS_CACHE(i);
		ASSERT_EQ(-1, pg_diff_span(pg_area(self, i), i, 1, OFF_WRITE,
					   OFF_WRITE + 8 * NR_READERS))
			TH_LOG("page %zu", i);
		for (t = 1; t < NR_READERS; t += 2) {
			v = LOAD64(pg_area(self, i) + OFF_WRITE + 8 * t);
			ASSERT_EQ(((uint64_t)t << 24) | i, v);
			v = LOAD64(pg_alias(self, i) + OFF_WRITE + 8 * t);
			ASSERT_EQ(variant->private ? fill64(i, 1) :
				  ((uint64_t)t << 24) | i, v);
		}
	}
}

struct racer {
	pthread_t th;
	SELF *self;
	size_t n;		/* pages the race is about */
	unsigned int seed;
	int stop;
	unsigned int truncs, punches, writes, fallocs, errors;
};

static void *racer_fn(void *arg)
{
	struct racer *r = arg;
	SELF *self = r->self;
	unsigned int seed = r->seed, gen = 1;
	size_t g = self->gran, first, len, i;
	char *buf = malloc(16 * page_size);

	if (!buf) {
		r->errors++;
		return NULL;
	}
	while (!GET(r->stop)) {
		first = rand_r(&seed) % r->n;
		len = 1 + rand_r(&seed) % 16;
		if (g > 1 && rand_r(&seed) % 2) {
			/* Whole folios too, not just pieces of them. */
			first = first / g * g;
			len = g;
		}
		if (first + len > r->n)
			len = r->n - first;
		/* Truncation wipes out the most: do it less often. */
		switch (rand_r(&seed) % 8) {
		case 0:
			if (ftruncate(self->fd, first * page_size +
				      rand_r(&seed) % page_size) ||
			    ftruncate(self->fd, self->size))
				r->errors++;
			r->truncs++;
			break;
		case 1:
		case 2:
		case 3:
			if (fallocate(self->fd, FALLOC_FL_PUNCH_HOLE |
				      FALLOC_FL_KEEP_SIZE, first * page_size,
				      len * page_size))
				r->errors++;
			r->punches++;
			break;
		case 4:
		case 5:
			if (len > 16)
				len = 16;
			for (i = 0; i < len; i++)
				pg_fill(buf + i * page_size, first + i, ++gen);
			if (pwrite(self->fd, buf, len * page_size,
				   first * page_size) != (ssize_t)(len * page_size))
				r->errors++;
			r->writes++;
			break;
		default:
			if (fallocate(self->fd, 0, first * page_size,
				      len * page_size))
				r->errors++;
			r->fallocs++;
			break;
		}
	}
	free(buf);
	return NULL;
}

/* Rounds of half a second of racing. */
#ifndef RACE_ROUNDS
#define RACE_ROUNDS	6
#endif

/*
 * The race zaps the whole racing range with one MADV_DONTNEED. On a
 * huge=always tmpfs that is two PMDs, whose PTE tables the zap frees
 * (CONFIG_PT_RECLAIM) while a truncation may be unmapping the same folios.
 */
static void race_zap(struct __test_metadata *_metadata, SELF *self, size_t n)
{
	ASSERT_EQ(0, madvise(pg_area(self, 0), n * page_size, MADV_DONTNEED));
}

enum { OUT_OK, OUT_PARTIAL, OUT_EFAULT, OUT_EEXIST, OUT_EAGAIN, OUT_OTHER, OUT_NR };

/*
 * CONTINUE against truncation, hole punching, writes and fallocate() of the
 * same pages, for a few rounds of half a second. Every CONTINUE must return a
 * documented result, and after each round, every page that area maps must be
 * the page the file holds: nothing truncated or punched may stay mapped.
 */
TEST_F_TIMEOUT(uffd_continue, race_truncate_punch, 120)
{
	struct racer rc = { .self = self };
	unsigned int seed = 2, k = 0, out[OUT_NR] = { 0 }, round;
	size_t first, len, i, checked = 0;
	struct stat st;
	struct cres r;
	uint64_t end;
	int o;

	rc.n = self->gran > 1 ? 2 * self->gran : 32;
	ASSERT_EQ(0, uffd_register(self->uffd, self->area, self->size,
				   false, false, true));
	fill(self, 0, rc.n, 1);
	for (round = 0; round < RACE_ROUNDS; round++) {
		SET(rc.stop, 0);
		rc.seed = round + 1;
		ASSERT_EQ(0, pthread_create(&rc.th, NULL, racer_fn, &rc));
		end = now_ns() + 500000000ULL;
		while (now_ns() < end) {
			first = rand_r(&seed) % rc.n;
			len = 1 + rand_r(&seed) % 8;
			if (first + len > rc.n)
				len = rc.n - first;
			r = cont(self, first, len, 0);
			if (!cres_documented(r, len * page_size))
				o = OUT_OTHER;
			else if (!r.ret)
				o = OUT_OK;
			else if (r.err == EAGAIN)
				o = r.mapped > 0 ? OUT_PARTIAL : OUT_EAGAIN;
			else if (r.err == EFAULT)
				o = OUT_EFAULT;
			else if (r.err == EEXIST)
				o = OUT_EEXIST;
			else
				o = OUT_OTHER;	/* no ENOENT, EIO or EINTR here */
			out[o]++;
			if (o == OUT_OTHER)
				TH_LOG("CONTINUE(%zu, %zu): ret %d errno %d mapped %lld",
				       first, len, r.ret, r.err,
				       (long long)r.mapped);
			if (++k % 64 == 0)
				race_zap(_metadata, self, rc.n);
		}
		SET(rc.stop, 1);
		ASSERT_EQ(0, join_ms(rc.th, JOIN_MS));
		ASSERT_EQ(0, fstat(self->fd, &st));
		ASSERT_EQ(self->size, st.st_size);
		/*
		 * Whatever the race left mapped, page 0 is mapped now, so that
		 * every round checks at least one page: written through the
		 * alias after the race, then resolved.
		 */
		fill(self, 0, 1, round + 2);
		r = cont(self, 0, 1, 0);
		ASSERT_TRUE(!r.ret || r.err == EEXIST)
			TH_LOG("CONTINUE(0, 1) after the race: ret %d errno %d",
			       r.ret, r.err);
		for (i = 0; i < rc.n; i++) {
			if (!(pm_area(self, i) & PM_PRESENT))
				continue;
			checked++;
			ASSERT_TRUE(in_cache(self, i))
				TH_LOG("page %zu is mapped but not in the file", i);
			ASSERT_MAPS_CACHE(i);
			ASSERT_EQ(0, memcmp(pg_area(self, i), pg_alias(self, i),
					    page_size)) TH_LOG("page %zu", i);
		}
	}
	TH_LOG("%u CONTINUE: %u ok, %u partial, %u EFAULT, %u EEXIST, %u EAGAIN, %u other",
	       k, out[OUT_OK], out[OUT_PARTIAL], out[OUT_EFAULT],
	       out[OUT_EEXIST], out[OUT_EAGAIN], out[OUT_OTHER]);
	TH_LOG("racer: %u truncate, %u punch, %u write, %u fallocate, %u errors",
	       rc.truncs, rc.punches, rc.writes, rc.fallocs, rc.errors);
	TH_LOG("%zu mapped pages checked against the file", checked);
	ASSERT_EQ(0, rc.errors);
	ASSERT_EQ(0, out[OUT_OTHER]);
	ASSERT_LE(1, out[OUT_OK] + out[OUT_PARTIAL]);
	ASSERT_LE(RACE_ROUNDS, checked);
}

/* ------------------------------------------------------------------------ */
/* The references of the Rust memory type's mappings: its file, its module */

/* Test builds: make the next mmap() fail at a step; the file's references. */
#define RUST_UFFD_MEMORY_FAIL_MMAP	_IO('|', 0xa1)
#define RUST_UFFD_MEMORY_FILE_COUNT	_IO('|', 0xa2)
#define MMAP_FAIL_BEFORE_SET		1	/* in mmap_prepare, before it sets the memfd */
#define MMAP_FAIL_AFTER_SET		2	/* in mmap_prepare, after it */
#define MMAP_FAIL_MAPPED		3	/* in ->mapped(), once the VMA exists */

#define RUST_UFFD_MEMORY_MODULE		"rust_uffd_memory"
#define RUST_UFFD_MEMORY_REFCNT		"/sys/module/" RUST_UFFD_MEMORY_MODULE "/refcnt"

/* The module's reference count; -1 if it is built in. */
static long module_refcnt(void)
{
	FILE *f = fopen(RUST_UFFD_MEMORY_REFCNT, "r");
	long v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* @refs plus @n, or -1 if the module is built in (@refs is -1). */
static long plus(long refs, long n)
{
	return refs < 0 ? -1 : refs + n;
}

/* The number of VMAs of this process that overlap [@p, @p + @len). */
static int count_vmas(const char *p, size_t len)
{
	unsigned long start, end;
	char line[512];
	int n = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &start, &end) == 2 &&
		    start < (unsigned long)p + len && end > (unsigned long)p)
			n++;
	fclose(f);
	return n;
}

static int write_str(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		ret = -errno;
	close(fd);
	return ret;
}

#define FAILSLAB		"/sys/kernel/debug/failslab/"
#define FAILSLAB_VMA		"/sys/kernel/slab/vm_area_struct/failslab"

/*
 * Makes the next allocation of a VMA by this thread fail (failslab, on the
 * vm_area_struct cache and this thread only, silently); NULL, or why not.
 */
static const char *fail_next_vma_alloc(void)
{
	static const char *const attr[][2] = {
		{ "probability", "100" }, { "interval", "1" }, { "times", "1" },
		{ "space", "0" }, { "verbose", "0" }, { "task-filter", "Y" },
		{ "cache-filter", "Y" }, { "ignore-gfp-wait", "N" },
	};
	char path[128];
	size_t i;

	/* Under UFFD_FAULT_INJECT, failslab is set up by whoever runs us. */
	if (uffd_fi)
		return "failslab belongs to the fault injection of this run";
	if (access(FAILSLAB, F_OK))
		return "no failslab (CONFIG_FAILSLAB, CONFIG_FAULT_INJECTION_DEBUG_FS)";
	for (i = 0; i < ARRAY_SIZE(attr); i++) {
		snprintf(path, sizeof(path), FAILSLAB "%s", attr[i][0]);
		if (write_str(path, attr[i][1]))
			return "failslab cannot be set up";
	}
	if (write_str(FAILSLAB_VMA, "1"))
		return "the vm_area_struct cache cannot be failed";
	if (write_str("/proc/thread-self/make-it-fail", "1"))
		return "no make-it-fail";
	return NULL;
}

/* Undoes fail_next_vma_alloc(). */
static void fail_no_alloc(void)
{
	if (uffd_fi)
		return;
	write_str("/proc/thread-self/make-it-fail", "0");
	write_str(FAILSLAB_VMA, "0");
	write_str(FAILSLAB "probability", "0");
	write_str(FAILSLAB "cache-filter", "N");
}

/*
 * mmap() of the device fails at each step: in the driver's mmap_prepare
 * before and after it gave the VMA its memfd, in mmap() between the hook and
 * the VMA (the allocation of the VMA fails), and in ->mapped() once the VMA
 * exists, which unmaps it. None leaves a reference on the memfd or the
 * module behind. A mapping holds one of each, and so does every VMA it is
 * split into; a mapping that continues another merges into it, and takes
 * none. Everything is given back when the mappings go.
 */
TEST(rust_memory_mmap_references)
{
	const size_t ps = page_size;
	long refs, files;
	const char *why;
	int dev, fd, step, err;
	char *p, *q;

	dev = open(RUST_UFFD_MEMORY, O_RDWR | O_CLOEXEC);
	if (dev < 0 && errno == ENOENT)
		SKIP(return, "%s: absent (CONFIG_SAMPLE_RUST_UFFD_MEMORY)",
		     RUST_UFFD_MEMORY);
	ASSERT_LE(0, dev) TH_LOG("%s: %s", RUST_UFFD_MEMORY, strerror(errno));
	files = ioctl(dev, RUST_UFFD_MEMORY_FILE_COUNT);
	if (files < 0 && errno == ENOTTY)
		SKIP(return, "not a test build (CONFIG_USERFAULTFD_RUST_TEST)");
	ASSERT_LT(0, files);
	fd = ioctl(dev, RUST_UFFD_MEMORY_GET_FILE);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, 8 * ps));
	ASSERT_EQ(0, close(fd));
	refs = module_refcnt();
	TH_LOG("memfd references %ld, module references %ld%s", files, refs,
	       refs < 0 ? " (built in)" : "");

	for (step = MMAP_FAIL_BEFORE_SET; step <= MMAP_FAIL_MAPPED; step++) {
		ASSERT_EQ(0, ioctl(dev, RUST_UFFD_MEMORY_FAIL_MMAP, step));
		p = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_SHARED,
			 dev, 0);
		ASSERT_EQ(MAP_FAILED, p) TH_LOG("step %d", step);
		ASSERT_EQ(ECANCELED, errno) TH_LOG("step %d", step);
		ASSERT_EQ(files, ioctl(dev, RUST_UFFD_MEMORY_FILE_COUNT))
			TH_LOG("step %d: a reference on the memfd left", step);
		ASSERT_EQ(refs, module_refcnt())
			TH_LOG("step %d: a reference on the module left", step);
	}

	why = fail_next_vma_alloc();
	if (!why) {
		p = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_SHARED,
			 dev, 0);
		err = errno;
		fail_no_alloc();
		ASSERT_EQ(MAP_FAILED, p);
		ASSERT_EQ(ENOMEM, err);
		ASSERT_EQ(files, ioctl(dev, RUST_UFFD_MEMORY_FILE_COUNT))
			TH_LOG("failed VMA allocation: a reference on the memfd left");
		ASSERT_EQ(refs, module_refcnt());
	} else {
		fail_no_alloc();
		TH_LOG("failing mmap() before the VMA exists: not checked: %s", why);
	}

	p = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, dev, 0);
	ASSERT_NE(MAP_FAILED, p);
	p[0] = 1;
	ASSERT_EQ(files + 1, ioctl(dev, RUST_UFFD_MEMORY_FILE_COUNT));
	ASSERT_EQ(plus(refs, 1), module_refcnt());
	/* Split in two (->open() of the copy). */
	ASSERT_EQ(0, munmap(p + ps, ps));
	ASSERT_EQ(2, count_vmas(p, 4 * ps));
	ASSERT_EQ(files + 2, ioctl(dev, RUST_UFFD_MEMORY_FILE_COUNT));
	ASSERT_EQ(plus(refs, 2), module_refcnt());
	/* The page between them again, at its offset: it merges into the first. */
	q = mmap(p + ps, ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 dev, ps);
	ASSERT_EQ(p + ps, q);
	ASSERT_EQ(2, count_vmas(p, 4 * ps));
	ASSERT_EQ(files + 2, ioctl(dev, RUST_UFFD_MEMORY_FILE_COUNT))
		TH_LOG("the merged mapping left a reference on the memfd");
	ASSERT_EQ(plus(refs, 2), module_refcnt());
	ASSERT_EQ(1, q[-(long)ps]);
	q[0] = 2;
	ASSERT_EQ(0, munmap(p, 4 * ps));
	ASSERT_EQ(files, ioctl(dev, RUST_UFFD_MEMORY_FILE_COUNT));
	ASSERT_EQ(refs, module_refcnt());
	close(dev);
}

/*
 * The module of the Rust memory type cannot be unloaded while a mapping of
 * it exists, also once the device is closed, nor while a child's copy of the
 * mapping does; it can once they are gone (the guest script unloads it).
 */
TEST(rust_memory_module_pinned)
{
	const size_t ps = page_size;
	int dev, fd, gate[2], status;
	long refs, ret;
	pid_t pid;
	char *p;

	refs = module_refcnt();
	if (refs < 0)
		SKIP(return, "%s: not a loaded module", RUST_UFFD_MEMORY_MODULE);
	dev = open(RUST_UFFD_MEMORY, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, dev) TH_LOG("%s: %s", RUST_UFFD_MEMORY, strerror(errno));
	fd = ioctl(dev, RUST_UFFD_MEMORY_GET_FILE);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, ps));
	p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, dev, 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, close(fd));
	ASSERT_EQ(0, close(dev));
	ASSERT_EQ(refs + 1, module_refcnt());
	ret = syscall(__NR_delete_module, RUST_UFFD_MEMORY_MODULE, O_NONBLOCK);
	if (ret && errno == EPERM)
		SKIP(munmap(p, ps); return, "delete_module() needs CAP_SYS_MODULE");
	ASSERT_EQ(-1, ret) TH_LOG("the module was unloaded under a mapping");
	ASSERT_EQ(EWOULDBLOCK, errno)
		TH_LOG("delete_module() with a mapping: %s", strerror(errno));
	/* The fault handler is still there. */
	p[0] = 3;

	ASSERT_EQ(0, pipe2(gate, O_CLOEXEC));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		char c;

		close(gate[1]);
		if (read(gate[0], &c, 1) != 1)
			_exit(2);
		_exit(p[0] == 3 ? 0 : 1);
	}
	close(gate[0]);
	ASSERT_EQ(refs + 2, module_refcnt());
	ASSERT_EQ(0, munmap(p, ps));
	ASSERT_EQ(refs + 1, module_refcnt());
	ASSERT_EQ(-1, syscall(__NR_delete_module, RUST_UFFD_MEMORY_MODULE,
			      O_NONBLOCK));
	ASSERT_EQ(EWOULDBLOCK, errno)
		TH_LOG("delete_module() with a child's mapping: %s",
		       strerror(errno));
	ASSERT_EQ(1, write(gate[1], "x", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	close(gate[1]);
	ASSERT_EQ(refs, module_refcnt());
}

/* ------------------------------------------------------------------------ */
/* Which implementation mapped the pages */

/* The counters of debugfs userfaultfd/stats, and whose they are. */
static const struct {
	const char *name;
	const char *impls;	/* the implementations that count there */
} mfill_stats[] = {
	{ "continue_c",			" c " },
	{ "continue_rust",		" rust " },
	{ "continue_rust_batch",	" rust-batch " },
	{ "continue_rust_batch_steps",	" rust-batch " },
	{ "continue_rust_batch_pmd",	" rust-batch " },
	{ "install_c",			" c " },
	{ "install_rust",		" rust rust-batch " },
};

#define NR_STATS	ARRAY_SIZE(mfill_stats)

/* What the switch said and the counters held when the program started. */
static char impl_start[32];
static uint64_t stats_start[NR_STATS];

/* The implementation the switch selects, or false if it cannot be read. */
static bool read_impl(char *buf, size_t size)
{
	FILE *f = fopen(DEBUGFS_UFFD "mfill_impl", "r");
	bool ok;

	if (!f)
		return false;
	ok = fgets(buf, size, f);
	fclose(f);
	if (ok)
		buf[strcspn(buf, "\n")] = 0;
	return ok && *buf;
}

/* The counters, each 0 if the kernel does not have it; false if unreadable. */
static bool read_stats(uint64_t *v)
{
	FILE *f = fopen(DEBUGFS_UFFD "stats", "r");
	unsigned long long val;
	char name[64];
	size_t i;

	if (!f)
		return false;
	memset(v, 0, NR_STATS * sizeof(*v));
	while (fscanf(f, "%63s %llu", name, &val) == 2)
		for (i = 0; i < NR_STATS; i++)
			if (!strcmp(name, mfill_stats[i].name))
				v[i] = val;
	fclose(f);
	return true;
}

/* The counter of the pages each implementation's CONTINUEs map. */
static const char *continue_stat(const char *impl)
{
	if (!strcmp(impl, "c"))
		return "continue_c";
	if (!strcmp(impl, "rust"))
		return "continue_rust";
	if (!strcmp(impl, "rust-batch"))
		return "continue_rust_batch";
	return NULL;
}

/* Runs last: the fixture is declared after every other. */
FIXTURE(implementation) {};
FIXTURE_SETUP(implementation) {}
FIXTURE_TEARDOWN(implementation) {}

/*
 * The pages the CONTINUEs of the tests mapped were all counted by the
 * implementation userfaultfd/mfill_impl selected, and no other implementation
 * counted anything (UFFDIO_COPY's installations included) while they ran.
 */
TEST_F(implementation, mapped_by_selected)
{
	uint64_t now[NR_STATS], delta, cont = 0, steps = 0;
	uint64_t pages = GET(*pages_continued);
	const char *name, *cont_name;
	char impl[32], own[40];
	bool bad = false;
	size_t i;

	if (!*impl_start || !read_impl(impl, sizeof(impl)) ||
	    !read_stats(now))
		SKIP(return,
		     "no debugfs userfaultfd/mfill_impl and stats to read: the kernel was built with the %s implementation; which one mapped the %llu pages of this run is not checked",
		     built_impl(), (unsigned long long)pages);
	ASSERT_STREQ(impl_start, impl)
		TH_LOG("userfaultfd/mfill_impl changed during the run");
	cont_name = continue_stat(impl);
	ASSERT_NE(NULL, cont_name) TH_LOG("unknown implementation %s", impl);
	snprintf(own, sizeof(own), " %s ", impl);
	for (i = 0; i < NR_STATS; i++) {
		name = mfill_stats[i].name;
		delta = now[i] - stats_start[i];
		ksft_print_msg("%s: %s +%llu\n", impl, name,
			       (unsigned long long)delta);
		if (!strstr(mfill_stats[i].impls, own)) {
			if (delta) {
				TH_LOG("%s counted %llu with %s selected", name,
				       (unsigned long long)delta, impl);
				bad = true;
			}
		} else if (!strcmp(name, cont_name)) {
			cont = delta;
		} else if (!strcmp(name, "continue_rust_batch_steps")) {
			steps = delta;
		}
	}
	ksft_print_msg("%s: the CONTINUEs of this run mapped %llu pages\n",
		       impl, (unsigned long long)pages);
	if (cont < pages) {
		TH_LOG("%s counted %llu pages, fewer than the %llu mapped",
		       cont_name, (unsigned long long)cont,
		       (unsigned long long)pages);
		bad = true;
	}
	if (!strcmp(impl, "rust-batch") && !steps != !cont) {
		TH_LOG("%llu batched steps for %llu pages",
		       (unsigned long long)steps, (unsigned long long)cont);
		bad = true;
	}
	if (steps > cont) {
		TH_LOG("more batched steps (%llu) than pages (%llu)",
		       (unsigned long long)steps, (unsigned long long)cont);
		bad = true;
	}
	ASSERT_FALSE(bad);
}

/* ------------------------------------------------------------------------ */

static void print_file(const char *path, const char *what)
{
	char line[256];
	FILE *f = fopen(path, "r");

	if (!f) {
		printf("# %s: %s not readable (%s)\n", what, path,
		       strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		printf("# %s: %s\n", what, line);
	}
	fclose(f);
}

static void print_stats(void)
{
	print_file(DEBUGFS_UFFD "stats", "mfill stats");
	fflush(stdout);
}

#define KHUGEPAGED_SLEEP \
	"/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs"

static char khugepaged_sleep[32];

static void khugepaged_restore(void)
{
	int fd = open(KHUGEPAGED_SLEEP, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (write(fd, khugepaged_sleep, strlen(khugepaged_sleep)) < 0)
		printf("# khugepaged: cannot restore scan_sleep_millisecs: %s\n",
		       strerror(errno));
	close(fd);
}

/*
 * khugepaged collapses the small folios of a THP file range (those a case
 * swapped in, for one) into a THP, and unmaps them from every mapping of the
 * file while it does: a case could find a page that its CONTINUE had just
 * mapped unmapped again. Park it for the run (an hour between scans), as the
 * THP selftests do, and restore its setting at exit. Without the right to,
 * say so: the cases stay valid, only exposed to that race.
 */
static void khugepaged_park(void)
{
	static const char hour[] = "3600000";
	ssize_t n;
	int fd;

	fd = open(KHUGEPAGED_SLEEP, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("# khugepaged: %s: %s\n", KHUGEPAGED_SLEEP,
		       strerror(errno));
		return;
	}
	n = read(fd, khugepaged_sleep, sizeof(khugepaged_sleep) - 1);
	if (n <= 0 || pwrite(fd, hour, strlen(hour), 0) < 0) {
		printf("# khugepaged: cannot park it: %s\n", strerror(errno));
		khugepaged_sleep[0] = 0;
	} else {
		khugepaged_sleep[n] = 0;
		atexit(khugepaged_restore);
	}
	close(fd);
}

/* At exit, under injection: its summary, and failure if it went wrong. */
static void uffd_fi_exit(void)
{
	if (!uffd_fi_report())
		_exit(KSFT_FAIL);
}

int main(int argc, char **argv)
{
	uint64_t sz;

	page_size = sysconf(_SC_PAGESIZE);
	sz = read_pmd_pagesize();
	pmd_pages = (sz >= page_size ? sz : 2UL << 20) / page_size;
	pages_continued = mmap(NULL, sizeof(*pages_continued),
			       PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (pages_continued == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	if (!read_impl(impl_start, sizeof(impl_start)) ||
	    !read_stats(stats_start))
		*impl_start = 0;
	print_file(DEBUGFS_UFFD "mfill_impl", "mfill_impl");
	fflush(stdout);
	/* First: its exit handler must run last (it may _exit()). */
	if (uffd_fi_init()) {
		printf("# fault injection: every UFFDIO_CONTINUE under make-it-fail\n");
		atexit(uffd_fi_exit);
	}
	atexit(print_stats);
	khugepaged_park();
	fflush(stdout);
	/* It exits (ksft_exit()), through the handlers registered above. */
	return test_harness_run(argc, argv);
}
