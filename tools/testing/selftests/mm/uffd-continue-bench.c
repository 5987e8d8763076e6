// SPDX-License-Identifier: GPL-2.0
/*
 * UFFDIO_CONTINUE benchmark, for the implementation currently selected by
 * debugfs userfaultfd/mfill_impl (the caller switches between them).
 *
 *  continue       ns per page of UFFDIO_CONTINUE over ranges of 1, 16, 512
 *                 and 16384 pages, with the page cache populated through an
 *                 alias and the range zapped with MADV_DONTNEED between
 *                 repetitions. Single pages and 16-page ranges are timed in
 *                 batches of calls, so that the clock is not the cost.
 *  populate_read  the same ranges mapped by MADV_POPULATE_READ on a mapping
 *                 that is not registered: a floor for the cost of mapping.
 *  roundtrip      a minor fault resolved by a handler thread: fault, read
 *                 the event, CONTINUE, the faulting thread resumes; with 1
 *                 and 2 faulting threads, median and 99th percentile. All
 *                 threads run on one CPU so that no CPU idles in between.
 *
 * Each of these on 4 KiB-folio shmem (a memfd) and on PMD-sized folios (a
 * file on a huge=always tmpfs; skipped if one cannot be mounted). Times come
 * from clock_gettime(CLOCK_MONOTONIC); under QEMU -icount shift=0 that counts
 * guest instructions. One line per measurement:
 *
 *   bench impl=rust test=continue mem=shmem4k pages=512 ... ns_per_page=...
 *
 * Usage: uffd-continue-bench [-s SCALE] [-t TEST] [-m MEM]
 *   -s SCALE  multiply the repetition counts (default 1)
 *   -t TEST   only this test (continue, populate_read, roundtrip)
 *   -m MEM    only this memory (shmem4k, thp)
 */
#include "uffd-continue.h"

#define MAX_PAGES	16384UL
#define MAX_SAMPLES	4096
#define RT_PAGES	512UL	/* pages each faulting thread cycles through */

struct mem {
	const char *name;
	int fd;
	char *area;		/* registered MINOR */
	char *alias;		/* populates the page cache */
	char *plain;		/* not registered, for the floor */
	size_t size;
};

static size_t page_size;
static size_t pmd_size = 2UL << 20;
static double scale = 1.0;
static const char *only_test, *only_mem;
static char impl[16] = "unknown";
static int uffd = -1;
static unsigned long eagain_retries;

static void die(const char *what)
{
	fprintf(stderr, "uffd-continue-bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The value at quantile q (0..1) of n sorted samples. */
static uint64_t quantile(uint64_t *v, int n, double q)
{
	int i = (int)(q * (n - 1) + 0.5);

	return v[i < n ? i : n - 1];
}

static int reps(int base)
{
	int n = (int)(base * scale + 0.5);

	return n < 1 ? 1 : n > MAX_SAMPLES ? MAX_SAMPLES : n;
}

static bool wanted(const char *test, const char *mem)
{
	return (!only_test || !strcmp(only_test, test)) &&
	       (!only_mem || !strcmp(only_mem, mem));
}

static char *map_aligned(size_t size, int fd)
{
	char *p = mmap_aligned(size, pmd_size, MAP_SHARED, fd);

	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

/* Sets up a file of MAX_PAGES pages, its page cache filled, and mappings. */
static bool mem_setup(struct mem *m, const char *name)
{
	const char *why;
	size_t i;

	m->name = name;
	m->size = MAX_PAGES * page_size;
	if (!strcmp(name, "thp"))
		m->fd = thp_file(&why);
	else
		m->fd = memfd_create("uffd-continue-bench", MFD_CLOEXEC);
	if (m->fd < 0) {
		printf("# %s: skipped, cannot create the file (%s)\n", name,
		       strerror(errno));
		return false;
	}
	if (ftruncate(m->fd, m->size))
		die("ftruncate");
	m->alias = map_aligned(m->size, m->fd);
	m->area = map_aligned(m->size, m->fd);
	m->plain = map_aligned(m->size, m->fd);
	for (i = 0; i < m->size; i += page_size)
		memset(m->alias + i, (int)(i / page_size) | 1, page_size);
	if (!strcmp(name, "thp") &&
	    smaps_kb(m->alias, "ShmemPmdMapped") * 1024 != (long)m->size) {
		printf("# %s: skipped, no PMD-sized folios (ShmemPmdMapped %ld kB)\n",
		       name, smaps_kb(m->alias, "ShmemPmdMapped"));
		munmap(m->alias, m->size);
		munmap(m->area, m->size);
		munmap(m->plain, m->size);
		close(m->fd);
		return false;
	}
	if (uffd_register(uffd, m->area, m->size, false, false, true))
		die("UFFDIO_REGISTER");
	return true;
}

static void mem_teardown(struct mem *m)
{
	uffd_unregister(uffd, m->area, m->size);
	munmap(m->area, m->size);
	munmap(m->alias, m->size);
	munmap(m->plain, m->size);
	close(m->fd);
}

static void zap(char *addr, size_t len)
{
	if (madvise(addr, len, MADV_DONTNEED))
		die("MADV_DONTNEED");
}

/* Retries in a row that mapped nothing before a run is given up. */
#define EAGAIN_MAX_IN_A_ROW	1000

/*
 * EAGAIN is part of the contract: the PTE table can go away under the call
 * (khugepaged collapsing a PTE-mapped THP of the file, a reclaimed empty
 * table), and the caller goes on from where it stopped, as a VMM does. A
 * kernel that keeps answering EAGAIN without progress fails the run.
 */
static void do_continue(char *addr, size_t len)
{
	struct uffdio_continue c;
	unsigned int in_a_row = 0;

	for (;;) {
		c = (struct uffdio_continue) {
			.range = { .start = (uintptr_t)addr, .len = len },
		};
		if (!ioctl(uffd, UFFDIO_CONTINUE, &c)) {
			if (c.mapped != (__s64)len)
				die("UFFDIO_CONTINUE mapped less than asked");
			return;
		}
		if (errno != EAGAIN)
			die("UFFDIO_CONTINUE");
		eagain_retries++;
		if (c.mapped > 0) {
			addr += c.mapped;
			len -= c.mapped;
			in_a_row = 0;
		} else if (++in_a_row == EAGAIN_MAX_IN_A_ROW) {
			errno = EAGAIN;
			die("UFFDIO_CONTINUE: EAGAIN without progress, again and again");
		}
	}
}

static void do_populate(char *addr, size_t len)
{
	if (madvise(addr, len, MADV_POPULATE_READ))
		die("MADV_POPULATE_READ");
}

/*
 * Times @calls calls of @op over @pages pages each, on consecutive ranges of
 * @base, zapped first; @n repetitions. Prints ns per page and per call.
 */
static void bench_range(struct mem *m, const char *test, char *base,
			void (*op)(char *, size_t), size_t pages, int calls,
			int n)
{
	static uint64_t t[MAX_SAMPLES];
	size_t len = pages * page_size;
	uint64_t t0;
	int r, c;

	for (r = 0; r < n; r++) {
		zap(base, len * calls);
		t0 = now_ns();
		for (c = 0; c < calls; c++)
			op(base + c * len, len);
		t[r] = now_ns() - t0;
	}
	qsort(t, n, sizeof(t[0]), cmp_u64);
	printf("bench impl=%s test=%s mem=%s ", impl, test, m->name);
	printf("pages=%zu calls=%d reps=%d ns_per_page=%.1f ", pages, calls, n,
	       (double)quantile(t, n, 0.5) / (pages * calls));
	printf("ns_per_call=%.1f min_ns_per_page=%.1f\n",
	       (double)quantile(t, n, 0.5) / calls,
	       (double)t[0] / (pages * calls));
	fflush(stdout);
}

static void bench_ranges(struct mem *m)
{
	static const struct {
		size_t pages;
		int calls, reps;
	} sizes[] = {
		{ 1, 64, 40 },
		{ 16, 16, 40 },
		{ 512, 1, 30 },
		{ MAX_PAGES, 1, 4 },
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		if (wanted("continue", m->name))
			bench_range(m, "continue", m->area, do_continue,
				    sizes[i].pages, sizes[i].calls,
				    reps(sizes[i].reps));
		if (wanted("populate_read", m->name))
			bench_range(m, "populate_read", m->plain, do_populate,
				    sizes[i].pages, sizes[i].calls,
				    reps(sizes[i].reps));
	}
}

/* Minor-fault round trips. */

struct rt {
	struct mem *m;
	int nthreads;
	int samples;		/* per faulting thread */
	pthread_barrier_t start;
	uint64_t t[2][MAX_SAMPLES];
};

struct rt_thread {
	struct rt *rt;
	int id;
};

static void pin_cpu0(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void *rt_faulter(void *arg)
{
	struct rt_thread *th = arg;
	struct rt *rt = th->rt;
	char *base = rt->m->area + th->id * RT_PAGES * page_size;
	uint64_t t0;
	int i;

	pin_cpu0();
	pthread_barrier_wait(&rt->start);
	for (i = 0; i < rt->samples; i++) {
		char *p = base + (i % RT_PAGES) * page_size;

		/* Each thread zaps its own pages when it has used them all. */
		if (i && !(i % RT_PAGES))
			zap(base, RT_PAGES * page_size);
		t0 = now_ns();
		FORCE_READ(*p);
		rt->t[th->id][i] = now_ns() - t0;
	}
	return NULL;
}

static void *rt_handler(void *arg)
{
	struct rt *rt = arg;
	int todo = rt->nthreads * rt->samples;
	struct pollfd pfd = { .fd = uffd, .events = POLLIN };
	struct uffd_msg msg;

	pin_cpu0();
	while (todo) {
		if (read(uffd, &msg, sizeof(msg)) != sizeof(msg)) {
			if (errno != EAGAIN)
				die("read uffd");
			poll(&pfd, 1, -1);
			continue;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT ||
		    !(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR))
			die("unexpected uffd event");
		do_continue((char *)(uintptr_t)(msg.arg.pagefault.address &
						~(uint64_t)(page_size - 1)),
			    page_size);
		todo--;
	}
	return NULL;
}

static void bench_roundtrip(struct mem *m, int nthreads)
{
	static uint64_t all[2 * MAX_SAMPLES];
	struct rt_thread th[2];
	pthread_t ft[2], ht;
	struct rt *rt;
	int i, n = 0;

	rt = calloc(1, sizeof(*rt));
	if (!rt)
		die("calloc");
	rt->m = m;
	rt->nthreads = nthreads;
	rt->samples = reps(600);
	zap(m->area, m->size);
	pthread_barrier_init(&rt->start, NULL, nthreads);
	if (pthread_create(&ht, NULL, rt_handler, rt))
		die("pthread_create");
	for (i = 0; i < nthreads; i++) {
		th[i].rt = rt;
		th[i].id = i;
		if (pthread_create(&ft[i], NULL, rt_faulter, &th[i]))
			die("pthread_create");
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(ft[i], NULL);
	pthread_join(ht, NULL);
	pthread_barrier_destroy(&rt->start);

	for (i = 0; i < nthreads; i++) {
		memcpy(all + n, rt->t[i], rt->samples * sizeof(all[0]));
		n += rt->samples;
	}
	qsort(all, n, sizeof(all[0]), cmp_u64);
	printf("bench impl=%s test=roundtrip mem=%s threads=%d samples=%d ",
	       impl, m->name, nthreads, n);
	printf("median_ns=%llu p99_ns=%llu min_ns=%llu\n",
	       (unsigned long long)quantile(all, n, 0.5),
	       (unsigned long long)quantile(all, n, 0.99),
	       (unsigned long long)all[0]);
	fflush(stdout);
	free(rt);
}

static void read_impl(void)
{
	FILE *f = fopen(DEBUGFS_UFFD "mfill_impl", "r");

	if (!f)
		return;
	if (fscanf(f, "%15s", impl) != 1)
		snprintf(impl, sizeof(impl), "unknown");
	fclose(f);
}

int main(int argc, char **argv)
{
	static const char * const mems[] = { "shmem4k", "thp" };
	struct mem m;
	unsigned int i;
	int opt;

	while ((opt = getopt(argc, argv, "s:t:m:")) != -1) {
		switch (opt) {
		case 's':
			scale = atof(optarg);
			break;
		case 't':
			only_test = optarg;
			break;
		case 'm':
			only_mem = optarg;
			break;
		default:
			fprintf(stderr, "usage: %s [-s SCALE] [-t TEST] [-m MEM]\n",
				argv[0]);
			return 1;
		}
	}
	page_size = sysconf(_SC_PAGESIZE);
	read_impl();
	uffd = uffd_new(UFFD_FEATURE_MINOR_SHMEM, NULL);
	if (uffd < 0) {
		errno = -uffd;
		die("userfaultfd with UFFD_FEATURE_MINOR_SHMEM");
	}
	printf("# uffd-continue-bench: impl=%s page_size=%zu scale=%g\n", impl,
	       page_size, scale);

	for (i = 0; i < ARRAY_SIZE(mems); i++) {
		if (only_mem && strcmp(only_mem, mems[i]))
			continue;
		if (!mem_setup(&m, mems[i]))
			continue;
		bench_ranges(&m);
		if (wanted("roundtrip", m.name)) {
			bench_roundtrip(&m, 1);
			bench_roundtrip(&m, 2);
		}
		mem_teardown(&m);
	}
	printf("# UFFDIO_CONTINUE retried after EAGAIN: %lu\n", eagain_retries);
	return 0;
}
