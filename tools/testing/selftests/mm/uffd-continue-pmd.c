// SPDX-License-Identifier: GPL-2.0
/*
 * UFFDIO_CONTINUE of whole PMD-sized folios.
 *
 * A CONTINUE that starts at a PMD-aligned address and covers the whole PMD
 * range of a PMD-sized page-cache folio may map it with one PMD, as a page
 * fault would, instead of 512 PTEs; the batched Rust implementation does so
 * ("rust-batch" in debugfs userfaultfd/mfill_impl). This checks, on a file of
 * a huge=always tmpfs and on a memfd whose page cache holds PMD-sized folios:
 *
 * - that such a CONTINUE maps the range with a PMD (ShmemPmdMapped in
 *   /proc/self/smaps, where the implementation maps PMDs, and 0 where it
 *   does not), with the right contents, and no minor fault afterwards;
 * - that a partial, unaligned, write-protecting or private CONTINUE, or one
 *   whose folio crosses the end of the file, maps PTEs, and nothing the
 *   request did not cover;
 * - that after mprotect() of half the range, munmap() of half, MADV_DONTNEED
 *   of a sub-range, an unaligned mremap(), fork(), migration to the other
 *   NUMA node, swap-out, truncation and hole punching, the contents are
 *   intact and minor faults come again for exactly the pages that lost their
 *   mapping (a file PMD that is split is unmapped whole): the pages the
 *   pagemap shows not present fault, once each, and the others do not.
 *
 * A handler thread resolves every minor fault with a CONTINUE of the
 * faulting page alone, and records which pages faulted. khugepaged is kept
 * away from the registered mappings (PR_THP_DISABLE_EXCEPT_ADVISED), so that
 * only the operations under test change what they map.
 */
#include "uffd-continue.h"

#include <linux/falloc.h>
#include <linux/mempolicy.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "kselftest_harness.h"

#define THP_SYSFS	"/sys/kernel/mm/transparent_hugepage/"
#define NR_PMDS		4	/* PMD ranges in the file and the mapping */
#define HOLE_FIRST	100	/* a sub-range of a PMD range, in pages */
#define HOLE_PAGES	16

static size_t page_size;
static size_t pmd_pages;
static size_t pmd_size;

/* What a CONTINUE of a whole PMD of a PMD-sized folio does on this kernel. */
enum { PMD_UNKNOWN, PMD_NEVER, PMD_ALWAYS } want_pmd;

/* ------------------------------------------------------------------------ */
/* Page contents */

#define PG_MAGIC	0x706d647061676521ULL

struct pgtag {
	uint64_t magic;
	uint64_t idx;
};

static void pg_fill(char *p, size_t idx)
{
	STORE64(p, PG_MAGIC);
	STORE64(p + 8, idx);
	memset(p + 16, (int)(idx * 7 + 1) & 0xff, 64);
}

/* Whether the page at @p holds the contents of file page @idx. */
static bool pg_ok(const char *p, size_t idx)
{
	size_t i;

	if (LOAD64(p) != PG_MAGIC || LOAD64(p + 8) != idx)
		return false;
	for (i = 16; i < 80; i++)
		if ((uint8_t)p[i] != (uint8_t)(idx * 7 + 1))
			return false;
	return true;
}

/* ------------------------------------------------------------------------ */
/* /proc and sysfs */

/* Reads a sysfs file into @buf, without the newline; 0 or -errno. */
static int sysfs_read(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

/* The selected word of a sysfs setting ("always [never]" gives "never"). */
static void sysfs_selected(const char *buf, char *out, size_t size)
{
	const char *a = strchr(buf, '['), *b = a ? strchr(a, ']') : NULL;

	if (!a || !b || (size_t)(b - a) > size) {
		snprintf(out, size, "%s", buf);
		return;
	}
	snprintf(out, size, "%.*s", (int)(b - a - 1), a + 1);
}

/* ------------------------------------------------------------------------ */
/* The fixture */

FIXTURE(pmd)
{
	int uffd;
	int fd;
	size_t npages;
	size_t size;
	char *area;		/* the registered mapping */
	int pagemap_fd;
	__u64 features;		/* enabled on uffd */
	/* shmem THP settings changed for the memfd variant, to restore */
	char shmem_enabled[32];
	char shmem_enabled_pmd[32];
	/* the fault handler */
	pthread_t handler;
	bool running;
	int stop[2];
	uintptr_t base;		/* page idx of a fault: (addr - base) / page */
	unsigned int *faulted;	/* per page: minor faults seen */
	unsigned int faults;	/* all minor faults, also outside the range */
	unsigned int bad;	/* failed CONTINUEs and unexpected events */
};

FIXTURE_VARIANT(pmd)
{
	bool memfd;	/* a memfd instead of a huge=always tmpfs file */
};

FIXTURE_VARIANT_ADD(pmd, tmpfs)
{
	.memfd = false,
};

FIXTURE_VARIANT_ADD(pmd, memfd)
{
	.memfd = true,
};

#define SELF	FIXTURE_DATA(pmd)

static char *pg(SELF *self, size_t idx)
{
	return self->area + idx * page_size;
}

static bool present(SELF *self, size_t idx)
{
	return pagemap_get_entry(self->pagemap_fd, pg(self, idx)) & PM_PRESENT;
}

static struct uffdio_continue cont_arg(const void *addr, size_t len,
				       __u64 mode)
{
	struct uffdio_continue c = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};
	return c;
}

/* CONTINUE of @n pages from page @first: 0, or -errno; *mapped if asked. */
static int cont(SELF *self, size_t first, size_t n, __u64 mode,
		__s64 *mapped)
{
	struct uffdio_continue c = cont_arg(pg(self, first), n * page_size,
					    mode);
	int ret = ioctl(self->uffd, UFFDIO_CONTINUE, &c) ? -errno : 0;

	if (mapped)
		*mapped = c.mapped;
	return ret;
}

static void *handler_fn(void *arg)
{
	SELF *self = arg;
	struct uffd_msg msg;
	struct pollfd pfd[2];

	for (;;) {
		pfd[0] = (struct pollfd){ .fd = self->uffd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = self->stop[0], .events = POLLIN };
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			INC(self->bad);
			break;
		}
		if (pfd[1].revents)
			break;
		if (read(self->uffd, &msg, sizeof(msg)) != sizeof(msg)) {
			if (errno != EAGAIN)
				INC(self->bad);
			continue;
		}
		if (msg.event == UFFD_EVENT_REMAP)
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT ||
		    !(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR)) {
			INC(self->bad);
			continue;
		}
		{
			uintptr_t addr = msg.arg.pagefault.address &
					 ~(uintptr_t)(page_size - 1);
			size_t idx = (addr - GET(self->base)) / page_size;
			struct uffdio_continue c = cont_arg((void *)addr,
							    page_size, 0);

			INC(self->faults);
			if (addr >= GET(self->base) && idx < self->npages)
				INC(self->faulted[idx]);
			if (ioctl(self->uffd, UFFDIO_CONTINUE, &c)) {
				struct uffdio_range r = {
					.start = addr, .len = page_size,
				};

				int err = errno;

				/* Raced with a CONTINUE of ours: wake. */
				if (err != EEXIST) {
					INC(self->bad);
					printf("# CONTINUE of page %zu: %s\n",
					       idx, strerror(err));
					fflush(stdout);
				}
				if (ioctl(self->uffd, UFFDIO_WAKE, &r))
					INC(self->bad);
			}
		}
	}
	return NULL;
}

/* Sets up the memfd's shmem THP settings so that its page cache can be huge. */
static const char *memfd_thp_setup(SELF *self)
{
	char buf[128], sel[32];

	if (sysfs_read(THP_SYSFS "shmem_enabled", buf, sizeof(buf)))
		return "no " THP_SYSFS "shmem_enabled (CONFIG_TRANSPARENT_HUGEPAGE)";
	sysfs_selected(buf, sel, sizeof(sel));
	if (strcmp(sel, "always") && strcmp(sel, "advise") &&
	    strcmp(sel, "force")) {
		snprintf(self->shmem_enabled, sizeof(self->shmem_enabled), "%s",
			 sel);
		if (cg_write(THP_SYSFS, "shmem_enabled", "advise"))
			return "cannot set shmem_enabled to advise (not root?)";
	}
	if (!sysfs_read(THP_SYSFS "hugepages-2048kB/shmem_enabled", buf,
			sizeof(buf))) {
		sysfs_selected(buf, sel, sizeof(sel));
		if (!strcmp(sel, "never")) {
			snprintf(self->shmem_enabled_pmd,
				 sizeof(self->shmem_enabled_pmd), "%s", sel);
			if (cg_write(THP_SYSFS, "hugepages-2048kB/shmem_enabled",
				     "inherit"))
				return "cannot enable PMD-sized shmem THPs";
		}
	}
	return NULL;
}

/*
 * Fills pages [0, self->npages) of the file through a mapping of its own,
 * which gives the page cache PMD-sized folios; NULL, or why not.
 */
static const char *fill_file(SELF *self)
{
	const char *why = NULL;
	long kb;
	char *alias;
	size_t i;

	alias = mmap_aligned(self->size, pmd_size, MAP_SHARED, self->fd);
	if (alias == MAP_FAILED)
		return "cannot map the file";
	if (madvise(alias, self->size, MADV_HUGEPAGE))
		why = "MADV_HUGEPAGE failed";
	for (i = 0; !why && i < self->npages; i++)
		pg_fill(alias + i * page_size, i);
	kb = smaps_kb(alias, "ShmemPmdMapped");
	if (!why && kb != (long)(self->size >> 10))
		why = "the page cache did not get PMD-sized folios";
	munmap(alias, self->size);
	return why;
}

/*
 * Registers the area for minor faults (and write protection if @wp) and
 * starts the handler.
 */
static int start(SELF *self, bool wp)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)self->area, .len = self->size },
		.mode = UFFDIO_REGISTER_MODE_MINOR |
			(wp ? UFFDIO_REGISTER_MODE_WP : 0),
	};

	if (ioctl(self->uffd, UFFDIO_REGISTER, &reg))
		return -errno;
	SET(self->base, (uintptr_t)self->area);
	if (pipe2(self->stop, O_CLOEXEC))
		return -errno;
	if (pthread_create(&self->handler, NULL, handler_fn, self))
		return -EAGAIN;
	self->running = true;
	return 0;
}

FIXTURE_SETUP(pmd)
{
	const char *why = NULL;
	__u64 avail = 0;
	int fd;

	self->uffd = -1;
	self->fd = -1;
	self->pagemap_fd = -1;
	self->area = MAP_FAILED;
	self->running = false;
	self->npages = NR_PMDS * pmd_pages;
	self->size = self->npages * page_size;
	self->faulted = calloc(self->npages, sizeof(*self->faulted));
	ASSERT_NE(NULL, self->faulted);

	if (variant->memfd) {
		why = memfd_thp_setup(self);
		if (why)
			SKIP(return, "%s", why);
		self->fd = memfd_create("uffd-continue-pmd", MFD_CLOEXEC);
		ASSERT_LE(0, self->fd);
	} else {
		self->fd = thp_file(&why);
		if (self->fd < 0)
			SKIP(return, "%s", why);
	}
	ASSERT_EQ(0, ftruncate(self->fd, self->size));
	why = fill_file(self);
	if (why)
		SKIP(return, "%s", why);

	fd = uffd_new(0, &avail);
	if (fd < 0)
		SKIP(return, "userfaultfd: %s", strerror(-fd));
	close(fd);
	if (!(avail & UFFD_FEATURE_MINOR_SHMEM))
		SKIP(return, "no UFFD_FEATURE_MINOR_SHMEM");
	self->features = avail & (UFFD_FEATURE_MINOR_SHMEM |
				  UFFD_FEATURE_WP_HUGETLBFS_SHMEM |
				  UFFD_FEATURE_EVENT_REMAP);
	self->uffd = uffd_new(self->features, NULL);
	ASSERT_LE(0, self->uffd);
	self->area = mmap_aligned(self->size, pmd_size, MAP_SHARED, self->fd);
	ASSERT_NE(MAP_FAILED, self->area);
	self->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, self->pagemap_fd);
}

FIXTURE_TEARDOWN(pmd)
{
	if (self->running) {
		if (write(self->stop[1], "x", 1) == 1)
			pthread_join(self->handler, NULL);
		close(self->stop[0]);
		close(self->stop[1]);
	}
	if (self->area != MAP_FAILED)
		munmap(self->area, self->size);
	if (self->uffd >= 0)
		close(self->uffd);
	if (self->fd >= 0)
		close(self->fd);
	if (self->pagemap_fd >= 0)
		close(self->pagemap_fd);
	if (self->shmem_enabled[0])
		cg_write(THP_SYSFS, "shmem_enabled", self->shmem_enabled);
	if (self->shmem_enabled_pmd[0])
		cg_write(THP_SYSFS, "hugepages-2048kB/shmem_enabled",
			 self->shmem_enabled_pmd);
	free(self->faulted);
}

/* The kB of the area mapped with PMDs, from smaps. */
static long pmd_kb(SELF *self, const void *addr)
{
	return smaps_kb(addr ? addr : self->area, "ShmemPmdMapped");
}

/* Checks that the area has @pmds PMD ranges mapped with PMDs, if known. */
#define ASSERT_PMDS(addr, pmds) do {					\
	long __kb = pmd_kb(self, (addr));				\
	long __want = want_pmd == PMD_ALWAYS ?				\
		(long)((pmds) * pmd_size >> 10) : 0;			\
	TH_LOG("ShmemPmdMapped: %ld kB", __kb);			\
	if (want_pmd != PMD_UNKNOWN) {					\
		ASSERT_EQ(__want, __kb);				\
	}								\
} while (0)

#define ASSERT_NO_PMD(addr) ASSERT_EQ(0, pmd_kb(self, (addr)))

/*
 * Reads the pages [first, first + n) of the file at @addr (the area if NULL),
 * and checks that minor faults came for exactly the pages that the pagemap
 * showed not present before, once each, and that every page holds its
 * contents. Pages [hole, hole + nhole) were punched out: they read zeros, and
 * fault in without a minor fault.
 */
static void check_refaults(struct __test_metadata *_metadata, SELF *self,
			   char *addr, size_t first, size_t n, size_t hole,
			   size_t nhole)
{
	size_t i, lost = 0, wrong = 0, missed = 0, extra = 0;
	bool *was;
	char *p;

	if (!addr)
		addr = pg(self, first);
	was = calloc(n, sizeof(*was));
	ASSERT_NE(NULL, was);
	for (i = 0; i < n; i++) {
		was[i] = pagemap_get_entry(self->pagemap_fd,
					   addr + i * page_size) & PM_PRESENT;
		lost += !was[i];
	}
	memset(self->faulted, 0, self->npages * sizeof(*self->faulted));
	SET(self->base, (uintptr_t)addr - first * page_size);
	for (i = 0; i < n; i++) {
		bool in_hole = first + i >= hole && first + i < hole + nhole;

		p = addr + i * page_size;
		if (in_hole) {
			if (LOAD64(p) || LOAD64(p + 8))
				wrong++;
		} else if (!pg_ok(p, first + i)) {
			wrong++;
		}
	}
	for (i = 0; i < n; i++) {
		unsigned int f = GET(self->faulted[first + i]);
		bool in_hole = first + i >= hole && first + i < hole + nhole;
		unsigned int want = !was[i] && !in_hole;

		if (f < want)
			missed++;
		else if (f > want)
			extra++;
	}
	TH_LOG("%zu of %zu pages had lost their mapping", lost, n);
	free(was);
	ASSERT_EQ(0, wrong);
	ASSERT_EQ(0, missed);
	ASSERT_EQ(0, extra);
	ASSERT_EQ(0, GET(self->bad));
}

/* CONTINUE of the whole PMD range @p (1 .. NR_PMDS - 1) and checks. */
static void map_pmd(struct __test_metadata *_metadata, SELF *self, size_t p)
{
	__s64 mapped = 0;

	ASSERT_EQ(0, cont(self, p * pmd_pages, pmd_pages, 0, &mapped));
	ASSERT_EQ((__s64)pmd_size, mapped);
}

TEST_F(pmd, whole_pmd)
{
	long before = mfill_stat("continue_rust_batch_pmd"), after;
	size_t i;

	ASSERT_EQ(0, start(self, false));
	map_pmd(_metadata, self, 1);
	ASSERT_PMDS(NULL, 1);
	/* Two whole PMD ranges in one request. */
	map_pmd(_metadata, self, 2);
	ASSERT_PMDS(NULL, 2);
	after = mfill_stat("continue_rust_batch_pmd");
	if (want_pmd != PMD_UNKNOWN && before >= 0) {
		ASSERT_EQ(before + (want_pmd == PMD_ALWAYS ? 2 : 0), after);
	}
	/* Nothing outside the request was mapped. */
	for (i = 0; i < pmd_pages; i++) {
		ASSERT_FALSE(present(self, i));
		ASSERT_FALSE(present(self, 3 * pmd_pages + i));
	}
	/* Contents right, no minor fault. */
	check_refaults(_metadata, self, NULL, pmd_pages, 2 * pmd_pages, 0, 0);
	ASSERT_EQ(0, GET(self->faults));
	/* Already mapped: EEXIST, as page by page. */
	ASSERT_EQ(-EEXIST, cont(self, pmd_pages, pmd_pages, 0, NULL));
}

TEST_F(pmd, partial)
{
	ASSERT_EQ(0, start(self, false));
	ASSERT_EQ(0, cont(self, pmd_pages, pmd_pages - 1, 0, NULL));
	ASSERT_NO_PMD(NULL);
	ASSERT_FALSE(present(self, 2 * pmd_pages - 1));
	check_refaults(_metadata, self, NULL, pmd_pages, pmd_pages, 0, 0);
	ASSERT_EQ(1, GET(self->faults));
}

TEST_F(pmd, unaligned)
{
	ASSERT_EQ(0, start(self, false));
	ASSERT_EQ(0, cont(self, pmd_pages + 1, pmd_pages, 0, NULL));
	ASSERT_NO_PMD(NULL);
	ASSERT_FALSE(present(self, pmd_pages));
	ASSERT_TRUE(present(self, 2 * pmd_pages));
	ASSERT_FALSE(present(self, 2 * pmd_pages + 1));
	check_refaults(_metadata, self, NULL, pmd_pages, 2 * pmd_pages, 0, 0);
	ASSERT_EQ(pmd_pages, GET(self->faults));
}

TEST_F(pmd, write_protected)
{
	size_t i;

	if (!(self->features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
		SKIP(return, "no UFFD_FEATURE_WP_HUGETLBFS_SHMEM");
	ASSERT_EQ(0, start(self, true));
	/* MODE_WP: each page keeps its uffd-wp bit, in a PTE. */
	ASSERT_EQ(0, cont(self, pmd_pages, pmd_pages, UFFDIO_CONTINUE_MODE_WP,
			  NULL));
	for (i = pmd_pages; i < 2 * pmd_pages; i++)
		ASSERT_TRUE(pagemap_get_entry(self->pagemap_fd, pg(self, i)) &
			    PM_UFFD_WP);
	/* A VMA registered for write protection: PTEs too. */
	ASSERT_EQ(0, cont(self, 2 * pmd_pages, pmd_pages, 0, NULL));
	ASSERT_NO_PMD(NULL);
	check_refaults(_metadata, self, NULL, pmd_pages, 2 * pmd_pages, 0, 0);
	ASSERT_EQ(0, GET(self->faults));
}

TEST_F(pmd, private)
{
	char *priv;

	priv = mmap_aligned(self->size, pmd_size, MAP_PRIVATE, self->fd);
	ASSERT_NE(MAP_FAILED, priv);
	munmap(self->area, self->size);
	self->area = priv;
	ASSERT_EQ(0, start(self, false));
	ASSERT_EQ(0, cont(self, pmd_pages, pmd_pages, 0, NULL));
	ASSERT_NO_PMD(NULL);
	check_refaults(_metadata, self, NULL, pmd_pages, pmd_pages, 0, 0);
	ASSERT_EQ(0, GET(self->faults));
}

/* The number of pages of the folio at file page @idx, 0 if unknown. */
static size_t folio_pages_at(SELF *self, size_t idx)
{
	uint64_t pfn, h, f, n;
	int kpf;
	char *map;

	map = mmap(NULL, page_size, PROT_READ, MAP_SHARED, self->fd,
		   idx * page_size);
	if (map == MAP_FAILED)
		return 0;
	FORCE_READ(*map);
	pfn = PAGEMAP_PFN(pagemap_get_entry(self->pagemap_fd, map));
	munmap(map, page_size);
	kpf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (!pfn || kpf < 0) {
		if (kpf >= 0)
			close(kpf);
		return 0;
	}
	h = pfn;
	n = 0;
	if (!pageflags_get(h, kpf, &f) &&
	    !(f & (KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL)))
		n = 1;
	while (!n && !pageflags_get(h, kpf, &f) && !(f & KPF_COMPOUND_HEAD) &&
	       pfn - h < 2 * pmd_pages)
		h--;
	for (n = n ? n : 1; !pageflags_get(h + n, kpf, &f) &&
	     (f & KPF_COMPOUND_TAIL); n++)
		;
	close(kpf);
	return n;
}

/* Fills pages [0, @n) of the file again, through a mapping: 0 or -errno. */
static int refill(SELF *self, size_t n)
{
	char *alias = mmap_aligned(self->size, pmd_size, MAP_SHARED, self->fd);
	size_t i;

	if (alias == MAP_FAILED)
		return -errno;
	madvise(alias, self->size, MADV_HUGEPAGE);
	for (i = 0; i < n; i++)
		pg_fill(alias + i * page_size, i);
	munmap(alias, self->size);
	return 0;
}

TEST_F(pmd, crossing_eof)
{
	size_t last = (NR_PMDS - 1) * pmd_pages, inside = 10;
	__s64 mapped = 0;

	/* A file that ends 10 pages into its last PMD-sized folio. */
	ASSERT_EQ(0, ftruncate(self->fd, 0));
	ASSERT_EQ(0, ftruncate(self->fd, (last + inside) * page_size));
	ASSERT_EQ(0, refill(self, last + inside));
	if (folio_pages_at(self, last) != pmd_pages)
		SKIP(return, "no PMD-sized folio across the end of the file (not root?)");
	ASSERT_EQ(0, start(self, false));
	/* As page by page: the pages inside the file, then EFAULT. */
	ASSERT_EQ(-EAGAIN, cont(self, last, pmd_pages, 0, &mapped));
	ASSERT_EQ((__s64)(inside * page_size), mapped);
	ASSERT_EQ(-EFAULT, cont(self, last + inside, 1, 0, &mapped));
	ASSERT_NO_PMD(NULL);
	check_refaults(_metadata, self, NULL, last, inside, 0, 0);
	ASSERT_EQ(0, GET(self->faults));
}

TEST_F(pmd, mprotect_half)
{
	ASSERT_EQ(0, start(self, false));
	map_pmd(_metadata, self, 1);
	map_pmd(_metadata, self, 2);
	ASSERT_PMDS(NULL, 2);
	ASSERT_EQ(0, mprotect(pg(self, pmd_pages + pmd_pages / 2),
			      pmd_size / 2, PROT_READ));
	check_refaults(_metadata, self, NULL, pmd_pages, 2 * pmd_pages, 0, 0);
	/* The other PMD was left alone. */
	ASSERT_PMDS(pg(self, 2 * pmd_pages), 1);
}

TEST_F(pmd, munmap_half)
{
	ASSERT_EQ(0, start(self, false));
	map_pmd(_metadata, self, 1);
	map_pmd(_metadata, self, 2);
	ASSERT_EQ(0, munmap(pg(self, pmd_pages + pmd_pages / 2),
			    pmd_size / 2));
	check_refaults(_metadata, self, NULL, pmd_pages, pmd_pages / 2, 0, 0);
	check_refaults(_metadata, self, NULL, 2 * pmd_pages, pmd_pages, 0, 0);
	ASSERT_PMDS(pg(self, 2 * pmd_pages), 1);
}

TEST_F(pmd, dontneed_sub_range)
{
	ASSERT_EQ(0, start(self, false));
	map_pmd(_metadata, self, 1);
	map_pmd(_metadata, self, 2);
	ASSERT_EQ(0, madvise(pg(self, pmd_pages + HOLE_FIRST),
			     HOLE_PAGES * page_size, MADV_DONTNEED));
	check_refaults(_metadata, self, NULL, pmd_pages, 2 * pmd_pages, 0, 0);
}

TEST_F(pmd, mremap_unaligned)
{
	char *resv, *to;

	if (!(self->features & UFFD_FEATURE_EVENT_REMAP))
		SKIP(return, "no UFFD_FEATURE_EVENT_REMAP");
	ASSERT_EQ(0, start(self, false));
	map_pmd(_metadata, self, 1);
	resv = mmap_aligned(3 * pmd_size, pmd_size, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1);
	ASSERT_NE(MAP_FAILED, resv);
	to = mremap(pg(self, pmd_pages), pmd_size, pmd_size,
		    MREMAP_MAYMOVE | MREMAP_FIXED, resv + page_size);
	ASSERT_EQ(resv + page_size, to);
	ASSERT_NO_PMD(to);
	check_refaults(_metadata, self, to, pmd_pages, pmd_pages, 0, 0);
	munmap(resv, 3 * pmd_size);
}

TEST_F(pmd, fork)
{
	int status;
	pid_t pid;

	ASSERT_EQ(0, start(self, false));
	map_pmd(_metadata, self, 1);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		size_t i;

		/* The child's mapping is not registered: plain faults. */
		for (i = pmd_pages; i < 2 * pmd_pages; i++)
			if (!pg_ok(pg(self, i), i))
				_exit(1);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	ASSERT_PMDS(NULL, 1);
	check_refaults(_metadata, self, NULL, pmd_pages, pmd_pages, 0, 0);
	ASSERT_EQ(0, GET(self->faults));
}

TEST_F(pmd, migrate)
{
	int node = -1, target, status[1];
	void *page[1];
	long ret;

	if (access("/sys/devices/system/node/node1", F_OK))
		SKIP(return, "one NUMA node");
	ASSERT_EQ(0, start(self, false));
	map_pmd(_metadata, self, 1);
	page[0] = pg(self, pmd_pages);
	ASSERT_EQ(0, syscall(__NR_move_pages, 0, 1, page, NULL, status, 0));
	node = status[0];
	ASSERT_LE(0, node);
	target = node ? 0 : 1;
	/* The whole folio moves with its first page. */
	ret = syscall(__NR_move_pages, 0, 1, page, &target, status,
		      MPOL_MF_MOVE_ALL);
	if (ret || status[0] != target)
		SKIP(return, "move_pages(): %ld, status %d", ret, status[0]);
	TH_LOG("moved from node %d to %d", node, target);
	check_refaults(_metadata, self, NULL, pmd_pages, pmd_pages, 0, 0);
}

TEST_F(pmd, swap_out)
{
	ASSERT_EQ(0, start(self, false));
	map_pmd(_metadata, self, 1);
	if (madvise(pg(self, pmd_pages), pmd_size, MADV_PAGEOUT))
		SKIP(return, "MADV_PAGEOUT: %s", strerror(errno));
	check_refaults(_metadata, self, NULL, pmd_pages, pmd_pages, 0, 0);
}

TEST_F(pmd, truncate)
{
	size_t keep = pmd_pages / 2;

	ASSERT_EQ(0, start(self, false));
	map_pmd(_metadata, self, 1);
	ASSERT_EQ(0, ftruncate(self->fd, (pmd_pages + keep) * page_size));
	check_refaults(_metadata, self, NULL, pmd_pages, keep, 0, 0);
}

TEST_F(pmd, punch_hole)
{
	ASSERT_EQ(0, start(self, false));
	map_pmd(_metadata, self, 1);
	ASSERT_EQ(0, fallocate(self->fd, FALLOC_FL_PUNCH_HOLE |
			       FALLOC_FL_KEEP_SIZE,
			       (pmd_pages + HOLE_FIRST) * page_size,
			       HOLE_PAGES * page_size));
	check_refaults(_metadata, self, NULL, pmd_pages, pmd_pages,
		       pmd_pages + HOLE_FIRST, HOLE_PAGES);
}

int main(int argc, char **argv)
{
	char impl[32] = "";
	uint64_t sz;

	page_size = sysconf(_SC_PAGESIZE);
	sz = read_pmd_pagesize();
	pmd_pages = (sz >= page_size ? sz : 2UL << 20) / page_size;
	pmd_size = pmd_pages * page_size;
	if (!sysfs_read(DEBUGFS_UFFD "mfill_impl", impl, sizeof(impl)))
		want_pmd = strcmp(impl, "rust-batch") ? PMD_NEVER : PMD_ALWAYS;
	else if (!strncmp(built_impl(), "Rust", 4))
		/* Without the switch, CONFIG_USERFAULTFD_RUST runs the batch. */
		want_pmd = PMD_ALWAYS;
	else if (!strncmp(built_impl(), "C", 1))
		want_pmd = PMD_NEVER;
	else
		want_pmd = PMD_UNKNOWN;
	/*
	 * khugepaged must not collapse the registered mappings behind our
	 * back (it may PMD-map a THP whose pages are all PTE-mapped, or
	 * retract the page tables of a file's other mappings): THPs only
	 * where MADV_HUGEPAGE asks for them, which the mappings that fill
	 * the page cache do, and the registered ones do not. A whole folio
	 * that CONTINUE maps is not concerned: like a fault, it maps an
	 * existing THP unless THPs are disabled altogether.
	 */
	if (prctl(PR_SET_THP_DISABLE, 1, PR_THP_DISABLE_EXCEPT_ADVISED, 0, 0))
		printf("# PR_SET_THP_DISABLE(PR_THP_DISABLE_EXCEPT_ADVISED): %s\n",
		       strerror(errno));
	printf("# mfill_impl: %s; built with %s; PMD mappings %s\n",
	       impl[0] ? impl : "-", built_impl(),
	       want_pmd == PMD_ALWAYS ? "expected" :
	       want_pmd == PMD_NEVER ? "not expected" : "not checked");
	fflush(stdout);
	return test_harness_run(argc, argv);
}
