// SPDX-License-Identifier: GPL-2.0
/*
 * A race stress of UFFDIO_CONTINUE on shmem: for a bounded time, threads
 * resolve minor faults and CONTINUE single pages and ranges, with and without
 * MODE_WP, while others truncate, punch, fallocate and write the file, zap,
 * swap out and collapse its pages, migrate them between NUMA nodes, toggle
 * write protection, fork children that read the range, and mremap and munmap
 * a second registered window of it.
 *
 * The race runs in rounds. After each round, with every thread stopped, it
 * checks what must hold whatever the interleaving was:
 *  - every CONTINUE returned a documented result (ok, partial progress with
 *    EAGAIN, or EEXIST, EFAULT, EAGAIN, ENOENT with mapped = -errno);
 *  - every page the registered mappings map is the page-cache page of its
 *    file offset (pagemap; as root, the page frame of the alias mapping);
 *  - no page at or beyond EOF is mapped, but as part of a PMD mapping of a
 *    shmem THP, which the kernel makes across EOF on purpose: a fault that
 *    allocates a THP for a hole (finish_fault()) and MADV_COLLAPSE both do,
 *    also where the mapping is registered for minor faults;
 *  - every 8-byte word of a mapped page is 0 or was written for that page
 *    (writers only store words tagged with their page's offset);
 *  - every forked child read only such words.
 * The stress runs in a child process, in a memory cgroup of its own where
 * there is cgroup2. Once it has exited: Shmem is back where it started, the
 * child's RssShmem was 0 at its end, and its cgroup holds no shmem and, after
 * reclaim, no swap (without the cgroup: swap in use other than by the swap
 * cache is back where it started).
 *
 *	uffd-continue-stress [-t SECONDS] [-r ROUND_MS] [-s SEED] [-v]
 *	uffd-continue-stress -X
 *
 * -t is the time per file kind; default 30 s each. The kinds: a memfd, a file
 * on a huge=always tmpfs whose page cache holds PMD-sized folios ("thp",
 * registered for write protection too where the kernel can, so that the
 * CONTINUEs map PTEs only), and that file registered for minor faults only
 * ("thp-pmd", where a CONTINUE of a whole PMD-sized folio may map it with one
 * PMD: with mfill_impl rust-batch, some must). -X checks the checks instead:
 * each violation, planted, must be found.
 *
 * With UFFD_FAULT_INJECT=1 in the environment, every CONTINUE (of the racing
 * threads and of the fault handler) runs with the kernel's fault injection
 * armed for its thread, and is retried without it where an allocation
 * failure failed it (uffd-continue.h); one more result says that every
 * CONTINUE under injection had a documented outcome.
 */
#include "uffd-continue.h"

#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/mempolicy.h>
#include <dirent.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "kselftest.h"

/*
 * A word written to page @idx: the tag in the top 16 bits, the page in the
 * next 24, a writer's sequence number in the low 24.
 */
#define WORD_TAG		0xc0deULL
#define WORD(idx, seq)		((WORD_TAG << 48) | ((uint64_t)(idx) << 24) | \
				 ((seq) & 0xffffff))

/* Word @w of page @idx was written for that page, or is 0. */
static inline bool word_ok(uint64_t w, size_t idx)
{
	return !w || (w >> 48 == WORD_TAG && ((w >> 24) & 0xffffff) == idx);
}

/*
 * Word @w of page @idx, read while pwrite() or truncation may be writing it:
 * as word_ok(), or torn between 0 and a word of that page. The kernel copies
 * into and clears the page cache with no promise of a word at a time (under
 * TCG, byte by byte from the lowest address up), so a reader may see the low
 * bytes of a word written over 0 with the rest still 0, or the low bytes of a
 * word cleared with the rest still there. Either way, the bytes that are
 * there must be those of a word of page @idx (its sequence number aside).
 */
static inline bool word_ok_racing(uint64_t w, size_t idx)
{
	const uint64_t page = WORD(idx, 0), seq = 0xffffff;
	uint64_t low;
	int k;

	if (word_ok(w, idx))
		return true;
	for (k = 1; k < 8; k++) {
		low = (1ULL << (8 * k)) - 1;
		if (!(w & ~low) && !((w ^ page) & low & ~seq))
			return true;
		if (!(w & low) && !((w ^ page) & ~low & ~seq))
			return true;
	}
	return false;
}

/* The window that is mremapped and munmapped: W pages at file page WIN_OFF. */
#define WIN_PAGES		16
#define WIN_SLOTS		3
/*
 * The slots, and one more on each side that stays PROT_NONE: munmap() and
 * mremap() of the window leave a slot empty for a moment, and an mmap() of
 * another thread could land there (and be replaced by slot_clear()) if that
 * hole bordered free address space. Enclosed, it fits WIN_PAGES at most, and
 * the threads map nothing while they race.
 */
#define RESV_LEN		((WIN_SLOTS + 2) * WIN_PAGES * page_size)

enum outcome {
	O_OK, O_PARTIAL, O_EEXIST, O_EFAULT, O_EAGAIN, O_ENOENT, O_BAD, O_NR
};

static const char * const outcome_name[O_NR] = {
	"ok", "partial", "EEXIST", "EFAULT", "EAGAIN", "ENOENT", "undocumented"
};

enum op {
	OP_TRUNCATE, OP_PUNCH, OP_FALLOCATE, OP_WRITE, OP_DONTNEED,
	OP_DONTNEED_ALL, OP_PAGEOUT, OP_COLLAPSE, OP_WP, OP_UNWP, OP_MIGRATE,
	OP_COMPACT, OP_FORK, OP_MREMAP, OP_MUNMAP, OP_FAULT, OP_MINOR, OP_NR
};

static const char * const op_name[OP_NR] = {
	"truncate", "punch", "fallocate", "write", "dontneed", "dontneed-all",
	"pageout", "collapse", "wp", "unwp", "migrate", "compact", "fork",
	"mremap", "munmap", "fault", "minor-fault"
};

static size_t page_size, pmd_pages;
static bool verbose, is_root, have_swap, check_checker, fault_inject;
static int nr_nodes;

/* One file kind under stress. */
struct stress {
	const char *kind;
	int fd, uffd, pagemap_fd;
	size_t n;		/* pages of the file at full size */
	char *area;		/* registered MINOR (and WP where possible) */
	char *alias;		/* the same pages, not registered */
	bool wp;		/* area is registered for WP too */
	char *resv;		/* WIN_SLOTS slots of WIN_PAGES, PROT_NONE */
	uint64_t *wbuf;		/* the file thread's pwrite() buffer */
	char *win;		/* the slot the window is in, NULL if none */
	size_t win_off;		/* file page of the window's first page */
	int stop, stop_handler;
	/* Counters; see ADD(), INC(). */
	unsigned long outcomes[O_NR], ops[OP_NR], op_errors[OP_NR];
	unsigned long pages_mapped, moved, collapsed, swapped, child_bad;
	unsigned long bad_events;
	char last_bad[160];
	/* PMD mappings made by CONTINUE (debugfs; -1: not counted), wanted. */
	long pmds;
	bool want_pmds;
};

static void note_bad(struct stress *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->last_bad, sizeof(s->last_bad), fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* SIGBUS (beyond EOF) and SIGSEGV (a window slot that is PROT_NONE). */

struct catcher {
	sigjmp_buf jb;
};

/* Where this thread's SIGBUS and SIGSEGV go, NULL: nowhere (they kill). */
static __thread struct catcher *catcher;

static void sig_handler(int sig, siginfo_t *si, void *uc)
{
	char msg[160], name[16] = "";
	int n;

	if (catcher)
		siglongjmp(catcher->jb, sig);
	/* Unexpected: say where, then die of it. */
	prctl(PR_GET_NAME, name);
	n = snprintf(msg, sizeof(msg),
		     "# unexpected %s at %p (si_code %d) in thread %s\n",
		     sig == SIGBUS ? "SIGBUS" : "SIGSEGV", si->si_addr,
		     si->si_code, name);
	(void)!write(STDOUT_FILENO, msg, n);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Reads the word at @p; false if that faulted (SIGBUS, SIGSEGV). */
static bool try_load(const char *p, uint64_t *w)
{
	struct catcher c;

	if (sigsetjmp(c.jb, 1)) {
		catcher = NULL;
		return false;
	}
	catcher = &c;
	*w = LOAD64(p);
	catcher = NULL;
	return true;
}

static bool try_store(char *p, uint64_t w)
{
	struct catcher c;

	if (sigsetjmp(c.jb, 1)) {
		catcher = NULL;
		return false;
	}
	catcher = &c;
	STORE64(p, w);
	catcher = NULL;
	return true;
}

/* ------------------------------------------------------------------------ */
/* CONTINUE and its outcomes */

static enum outcome classify(int ret, int err, __s64 mapped, size_t len)
{
	if (!ret)
		return mapped == (__s64)len ? O_OK : O_BAD;
	if (ret != -1)
		return O_BAD;
	switch (err) {
	case EAGAIN:
		if (mapped > 0 && mapped < (__s64)len && !(mapped % page_size))
			return O_PARTIAL;
		return mapped == -EAGAIN ? O_EAGAIN : O_BAD;
	case EEXIST:
		return mapped == -EEXIST ? O_EEXIST : O_BAD;
	case EFAULT:
		return mapped == -EFAULT ? O_EFAULT : O_BAD;
	case ENOENT:
		return mapped == -ENOENT ? O_ENOENT : O_BAD;
	}
	return O_BAD;
}

static enum outcome do_continue(struct stress *s, char *addr, size_t len,
				__u64 mode)
{
	struct uffdio_continue c = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};
	int ret = uffd_continue_ioctl(s->uffd, &c);
	int err = ret ? errno : 0;
	enum outcome o = classify(ret, err, c.mapped, len);
	bool in_area = addr >= s->area && addr < s->area + s->n * page_size;

	INC(s->outcomes[o]);
	if (c.mapped > 0)
		ADD(s->pages_mapped, c.mapped / page_size);
	if (o == O_BAD)
		note_bad(s, "CONTINUE(%s+%#lx, %zu, mode %llx): ret %d errno %d mapped %lld",
			 in_area ? "area" : "window slots",
			 (unsigned long)(addr - (in_area ? s->area : s->resv)),
			 len, (unsigned long long)mode, ret, err,
			 (long long)c.mapped);
	return o;
}

/* ------------------------------------------------------------------------ */
/* The threads of a round */

struct thread {
	pthread_t th;
	struct stress *s;
	unsigned int seed;
};

static unsigned int rnd(struct thread *t, unsigned int n)
{
	return rand_r(&t->seed) % n;
}

/* A random range [first, first + len) of the file, in pages. */
static void pick(struct thread *t, size_t max_len, size_t *first, size_t *len)
{
	struct stress *s = t->s;

	*first = rnd(t, s->n);
	*len = 1 + rnd(t, max_len);
	if (!rnd(t, 4) && s->n >= pmd_pages) {
		/* Whole PMD-sized blocks too. */
		*first = *first / pmd_pages * pmd_pages;
		*len = pmd_pages;
	}
	if (*first + *len > s->n)
		*len = s->n - *first;
}

static __u64 pick_mode(struct thread *t)
{
	return t->s->wp && !rnd(t, 4) ? UFFDIO_CONTINUE_MODE_WP : 0;
}

/* CONTINUE of single pages (and, at times, of a page of the window). */
static void *single_fn(void *arg)
{
	struct thread *t = arg;
	struct stress *s = t->s;
	char *win;

	while (!GET(s->stop)) {
		win = GET(s->win);
		if (win && !rnd(t, 8))
			do_continue(s, win + rnd(t, WIN_PAGES) * page_size,
				    page_size, pick_mode(t));
		else
			do_continue(s, s->area + rnd(t, s->n) * page_size,
				    page_size, pick_mode(t));
	}
	return NULL;
}

/*
 * Where CONTINUE may map a PMD (no WP registration), the block at file page
 * @first is at times made ready for one before a CONTINUE of all of it: a
 * THP in the page cache (collapsed through the alias), then no page table
 * there (a zap of the whole block frees it, CONFIG_PT_RECLAIM), in that
 * order, so that the other racers have little time to undo either.
 */
static void pmd_ready(struct thread *t, size_t first)
{
	struct stress *s = t->s;

	/* As for the mm thread's, failing is allowed. */
	if (!madvise(s->alias + first * page_size, pmd_pages * page_size,
		     MADV_COLLAPSE))
		INC(s->collapsed);
	INC(s->ops[OP_COLLAPSE]);
	if (madvise(s->area + first * page_size, pmd_pages * page_size,
		    MADV_DONTNEED))
		INC(s->op_errors[OP_DONTNEED]);
	INC(s->ops[OP_DONTNEED]);
}

/* CONTINUE of ranges. */
static void *range_fn(void *arg)
{
	struct thread *t = arg;
	struct stress *s = t->s;
	size_t first, len;
	char *win;

	while (!GET(s->stop)) {
		win = GET(s->win);
		if (win && !rnd(t, 8)) {
			do_continue(s, win, WIN_PAGES * page_size, pick_mode(t));
			continue;
		}
		pick(t, 64, &first, &len);
		if (!s->wp && len == pmd_pages && !(first % pmd_pages) &&
		    rnd(t, 2))
			pmd_ready(t, first);
		do_continue(s, s->area + first * page_size, len * page_size,
			    pick_mode(t));
	}
	return NULL;
}

/* Reads and writes through the registered mapping: minor and WP faults. */
static void *fault_fn(void *arg)
{
	struct thread *t = arg;
	struct stress *s = t->s;
	unsigned int seq = 0;
	size_t idx, off;
	uint64_t w;

	while (!GET(s->stop)) {
		idx = rnd(t, s->n);
		off = rnd(t, page_size / 8) * 8;
		if (rnd(t, 2)) {
			if (try_load(s->area + idx * page_size + off, &w) &&
			    !word_ok_racing(w, idx)) {
				INC(s->bad_events);
				note_bad(s, "fault: page %zu word %zu is %llx",
					 idx, off / 8, (unsigned long long)w);
			}
		} else {
			try_store(s->area + idx * page_size + off,
				  WORD(idx, ++seq));
		}
		INC(s->ops[OP_FAULT]);
	}
	return NULL;
}

/* Resolves the faults of fault_fn() (and of nobody else). */
static void *handler_fn(void *arg)
{
	struct thread *t = arg;
	struct stress *s = t->s;
	struct pollfd pfd = { .fd = s->uffd, .events = POLLIN };
	struct uffdio_range r;
	struct uffd_msg msg;
	uintptr_t addr;
	enum outcome o;

	while (!GET(s->stop_handler)) {
		if (poll(&pfd, 1, 10) <= 0)
			continue;
		if (read(s->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT) {
			INC(s->bad_events);
			note_bad(s, "unexpected uffd event %u", msg.event);
			continue;
		}
		addr = msg.arg.pagefault.address & ~(uintptr_t)(page_size - 1);
		if (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) {
			struct uffdio_writeprotect wp = {
				.range = { .start = addr, .len = page_size },
			};

			/* Unprotects, and wakes the writer. */
			if (ioctl(s->uffd, UFFDIO_WRITEPROTECT, &wp) &&
			    errno != ENOENT)
				INC(s->op_errors[OP_UNWP]);
			continue;
		}
		if (!(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR)) {
			INC(s->bad_events);
			note_bad(s, "a fault that is not minor: flags %llx",
				 (unsigned long long)msg.arg.pagefault.flags);
			continue;
		}
		INC(s->ops[OP_MINOR]);
		o = do_continue(s, (char *)addr, page_size, pick_mode(t));
		if (o != O_OK) {
			/* Whatever happened, the faulting thread retries. */
			r.start = addr;
			r.len = page_size;
			ioctl(s->uffd, UFFDIO_WAKE, &r);
		}
	}
	return NULL;
}

/* Truncation, hole punching, fallocate() and writes of the file. */
static void *file_fn(void *arg)
{
	struct thread *t = arg;
	struct stress *s = t->s;
	uint64_t *buf = s->wbuf;
	unsigned int seq = 0;
	size_t first, len, i, w;
	enum op op;
	int ret;

	while (!GET(s->stop)) {
		pick(t, 64, &first, &len);
		switch (rnd(t, 12)) {
		case 0:
			op = OP_TRUNCATE;
			/*
			 * Into a page or to a page boundary, and at times back
			 * to full size at once; else it stays short for a
			 * while, and a round may end with it short. Into a
			 * page, between words: truncation zeroes the rest of
			 * the page, which must not tear a word.
			 */
			ret = ftruncate(s->fd, first * page_size +
					(rnd(t, 2) ? rnd(t, page_size / 8) * 8 : 0));
			if (!ret && rnd(t, 2))
				ret = ftruncate(s->fd, s->n * page_size);
			break;
		case 1:
			op = OP_TRUNCATE;
			ret = ftruncate(s->fd, s->n * page_size);
			break;
		case 2:
		case 3:
			op = OP_PUNCH;
			ret = fallocate(s->fd, FALLOC_FL_PUNCH_HOLE |
					FALLOC_FL_KEEP_SIZE, first * page_size,
					len * page_size);
			break;
		case 4:
			op = OP_FALLOCATE;
			ret = fallocate(s->fd, FALLOC_FL_KEEP_SIZE,
					first * page_size, len * page_size);
			break;
		default:
			op = OP_WRITE;
			if (len > 64)
				len = 64;
			seq++;
			for (i = 0; i < len; i++)
				for (w = 0; w < page_size / 8; w++)
					buf[i * page_size / 8 + w] =
						WORD(first + i, seq);
			/* Within the file at full size: may extend a short one. */
			ret = pwrite(s->fd, buf, len * page_size,
				     first * page_size) < 0;
			break;
		}
		INC(s->ops[op]);
		if (ret)
			INC(s->op_errors[op]);
	}
	return NULL;
}

static int nr_numa_nodes(void)
{
	struct dirent *d;
	DIR *dir = opendir("/sys/devices/system/node");
	int n = 0;

	if (!dir)
		return 1;
	while ((d = readdir(dir)))
		if (!strncmp(d->d_name, "node", 4) &&
		    d->d_name[4] >= '0' && d->d_name[4] <= '9')
			n++;
	closedir(dir);
	return n ? n : 1;
}

/* Moves pages of the file to another node; returns how many moved. */
static long migrate(struct thread *t, size_t first, size_t len)
{
	struct stress *s = t->s;
	void *pages[64];
	int nodes[64], status[64];
	size_t i;
	long moved = 0;

	if (len > 64)
		len = 64;
	for (i = 0; i < len; i++) {
		pages[i] = s->alias + (first + i) * page_size;
		nodes[i] = rnd(t, nr_nodes);
		status[i] = -1;
	}
	/* Pages mapped twice (area and alias) move only with MOVE_ALL. */
	if (syscall(__NR_move_pages, 0, len, pages, nodes, status,
		    is_root ? MPOL_MF_MOVE_ALL : MPOL_MF_MOVE) < 0)
		return -1;
	for (i = 0; i < len; i++)
		moved += status[i] == nodes[i];
	return moved;
}

static void compact(void)
{
	int fd = open("/proc/sys/vm/compact_memory", O_WRONLY);

	if (fd < 0)
		return;
	/* Best effort: not being able to compact is not a failure. */
	(void)!write(fd, "1", 1);
	close(fd);
}

/* What happens to the pages of a mapping: zap, swap, collapse, WP, move. */
static void *mm_fn(void *arg)
{
	struct thread *t = arg;
	struct stress *s = t->s;
	size_t first, len, i;
	unsigned char vec[64];
	bool compacted = false;
	long ret;
	enum op op;

	while (!GET(s->stop)) {
		pick(t, 64, &first, &len);
		ret = 0;
		switch (rnd(t, 16)) {
		case 0:
			/* Empties whole PTE tables: their reclaim races too. */
			op = OP_DONTNEED_ALL;
			ret = madvise(s->area, s->n * page_size, MADV_DONTNEED);
			break;
		case 1:
		case 2:
			op = OP_DONTNEED;
			ret = madvise(s->area + first * page_size,
				      len * page_size, MADV_DONTNEED);
			break;
		case 3:
		case 4:
			op = OP_PAGEOUT;
			/* Through the alias: area's PTEs go with them. */
			ret = madvise(s->alias + first * page_size,
				      len * page_size, MADV_PAGEOUT);
			if (!ret && len <= 64 &&
			    !mincore(s->alias + first * page_size,
				     len * page_size, vec))
				for (i = 0; i < len; i++)
					ADD(s->swapped, !(vec[i] & 1));
			break;
		case 5:
			op = OP_COLLAPSE;
			first = first / pmd_pages * pmd_pages;
			if (first + pmd_pages > s->n)
				first = 0;
			/*
			 * Failing is allowed (a hole, a page under writeback,
			 * a racing truncation); success is counted.
			 */
			if (!madvise(rnd(t, 2) ? s->alias + first * page_size :
				     s->area + first * page_size,
				     pmd_pages * page_size, MADV_COLLAPSE))
				INC(s->collapsed);
			break;
		case 6:
		case 7:
		case 8:
			if (!s->wp)
				continue;
			op = rnd(t, 2) ? OP_WP : OP_UNWP;
			{
				struct uffdio_writeprotect wp = {
					.range = {
						.start = (uintptr_t)(s->area +
							first * page_size),
						.len = len * page_size,
					},
					.mode = op == OP_WP ?
						UFFDIO_WRITEPROTECT_MODE_WP : 0,
				};

				ret = ioctl(s->uffd, UFFDIO_WRITEPROTECT, &wp);
			}
			break;
		case 9:
		case 10:
			if (nr_nodes < 2) {
				if (compacted)
					continue;
				/* Migration without NUMA: once a round. */
				op = OP_COMPACT;
				compacted = true;
				compact();
				break;
			}
			op = OP_MIGRATE;
			ret = migrate(t, first, len);
			if (ret > 0)
				ADD(s->moved, ret);
			ret = ret < 0;
			break;
		default:
			continue;
		}
		INC(s->ops[op]);
		if (ret)
			INC(s->op_errors[op]);
	}
	return NULL;
}

/*
 * A child found word @w of page @idx of area holding @v: says what that was,
 * what the same word holds on a second read, and, through the child's and
 * (as root) the alias's page frames, which page it read.
 */
static void child_report(struct stress *s, size_t idx, size_t w, uint64_t v)
{
	char *p = s->area + idx * page_size;
	uint64_t again = 0, e = 0, a = 0;
	char msg[240];
	int fd, n;

	try_load(p + w * 8, &again);
	fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd >= 0) {
		e = pagemap_get_entry(fd, p);
		/* Fault the alias's page in first: only then it has a frame. */
		try_load(s->alias + idx * page_size, &a);
		a = pagemap_get_entry(fd, s->alias + idx * page_size);
		close(fd);
	}
	n = snprintf(msg, sizeof(msg),
		     "# child: page %zu word %zu holds %#llx (page %llu seq %llu), then %#llx; pfn %#llx, alias pfn %#llx\n",
		     idx, w, (unsigned long long)v,
		     (unsigned long long)((v >> 24) & 0xffffff),
		     (unsigned long long)(v & 0xffffff),
		     (unsigned long long)again,
		     (unsigned long long)PAGEMAP_PFN(e),
		     (unsigned long long)PAGEMAP_PFN(a));
	(void)!write(STDOUT_FILENO, msg, n);
}

/* A child reads pages of the range and checks them; 0 if all were fine. */
static int child_reads(struct stress *s, unsigned int seed)
{
	size_t k, idx, w;
	uint64_t v;

	for (k = 0; k < 32; k++) {
		idx = rand_r(&seed) % s->n;
		for (w = 0; w < page_size / 8; w += 61) {
			/* Beyond EOF: SIGBUS, fine. */
			if (!try_load(s->area + idx * page_size + w * 8, &v))
				break;
			if (!word_ok_racing(v, idx)) {
				child_report(s, idx, w, v);
				return 1;
			}
		}
	}
	return 0;
}

/* Forks a child that reads pages of the range, and counts what it found. */
static void fork_child(struct thread *t)
{
	struct stress *s = t->s;
	int status;
	pid_t pid;

	/* The other threads may CONTINUE under injection meanwhile. */
	pid = uffd_fi_fork();
	if (pid == 0)
		_exit(child_reads(s, t->seed + 1));
	INC(s->ops[OP_FORK]);
	if (pid < 0 || waitpid(pid, &status, 0) != pid) {
		INC(s->op_errors[OP_FORK]);
		return;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		INC(s->child_bad);
		note_bad(s, "a forked child read a foreign word (status %x)",
			 status);
	}
	t->seed++;
}

static void *fork_fn(void *arg)
{
	struct thread *t = arg;

	while (!GET(t->s->stop)) {
		fork_child(t);
		usleep(1000);
	}
	return NULL;
}

/* Maps the window at slot @slot and registers it; false on failure. */
static bool win_map(struct stress *s, unsigned int slot)
{
	char *p = s->resv + slot * WIN_PAGES * page_size;

	if (mmap(p, WIN_PAGES * page_size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, s->fd, s->win_off * page_size) != p)
		return false;
	if (uffd_register(s->uffd, p, WIN_PAGES * page_size, false, s->wp,
			  true))
		return false;
	SET(s->win, p);
	return true;
}

/* Replaces slot @slot by an inaccessible anonymous mapping. */
static bool slot_clear(struct stress *s, unsigned int slot)
{
	char *p = s->resv + slot * WIN_PAGES * page_size;

	return mmap(p, WIN_PAGES * page_size, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
		    -1, 0) == p;
}

static unsigned int win_slot(struct stress *s)
{
	return (GET(s->win) - s->resv) / (WIN_PAGES * page_size);
}

/* mremap() and munmap() of the window under the CONTINUEs that use it. */
static void *remap_fn(void *arg)
{
	struct thread *t = arg;
	struct stress *s = t->s;
	unsigned int from, to;
	char *src, *dst;
	bool ok;

	while (!GET(s->stop)) {
		from = win_slot(s);
		to = (from + 1 + rnd(t, WIN_SLOTS - 1)) % WIN_SLOTS;
		src = s->resv + from * WIN_PAGES * page_size;
		dst = s->resv + to * WIN_PAGES * page_size;
		if (rnd(t, 2)) {
			/*
			 * The moved VMA loses its registration (no
			 * EVENT_REMAP); the old slot is left with nothing.
			 */
			ok = mremap(src, WIN_PAGES * page_size,
				    WIN_PAGES * page_size,
				    MREMAP_MAYMOVE | MREMAP_FIXED, dst) == dst;
			ok = ok && slot_clear(s, from);
			ok = ok && !uffd_register(s->uffd, dst,
						  WIN_PAGES * page_size,
						  false, s->wp, true);
			SET(s->win, dst);
			INC(s->ops[OP_MREMAP]);
			if (!ok)
				INC(s->op_errors[OP_MREMAP]);
		} else {
			ok = !munmap(src, WIN_PAGES * page_size);
			ok = ok && slot_clear(s, from) && win_map(s, to);
			INC(s->ops[OP_MUNMAP]);
			if (!ok)
				INC(s->op_errors[OP_MUNMAP]);
		}
		usleep(500);
	}
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Invariants */

struct check {
	unsigned long mapped, pfn_checked, probes, probe_failed;
	unsigned long wrong_pfn, beyond_eof, foreign_word, slot_mapped;
	unsigned long beyond_eof_pmd;	/* allowed: see check_page() */
	unsigned long pfn_raced;	/* ... re-read: see check_page() */
	char what[160];
};

static void check_fail(struct check *c, const char *fmt, ...)
{
	va_list ap;

	if (c->what[0])
		return;
	va_start(ap, fmt);
	vsnprintf(c->what, sizeof(c->what), fmt, ap);
	va_end(ap);
}

/*
 * Whether the page at @p is mapped by a PMD that maps a page of a file
 * (PAGEMAP_SCAN's PAGE_IS_HUGE: a PMD, not PTEs, whatever the folio's size).
 */
static bool pmd_mapped(struct stress *s, const char *p)
{
	const __u64 want = PAGE_IS_PRESENT | PAGE_IS_HUGE | PAGE_IS_FILE;
	struct page_region r;
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (uintptr_t)p,
		.end = (uintptr_t)p + page_size,
		.vec = (uintptr_t)&r,
		.vec_len = 1,
		.category_mask = want,
		.return_mask = want,
	};

	return ioctl(s->pagemap_fd, PAGEMAP_SCAN, &arg) == 1 &&
	       (r.categories & want) == want;
}

/*
 * Page @i of @map, which maps file page @idx; @eof: pages below EOF. A page
 * at or beyond EOF may be mapped only as a part of a PMD mapping of a shmem
 * THP: finish_fault() ("shmem/tmpfs that for long time intentionally mapped
 * with PMDs across i_size") and MADV_COLLAPSE make those; its words are
 * checked, but not its page frame (the alias would fault with SIGBUS there).
 * A PTE there is a bug: CONTINUE and the fault path check i_size for those.
 */
static void check_page(struct stress *s, struct check *c, char *map,
		       size_t i, size_t idx, size_t eof)
{
	uint64_t e = pagemap_get_entry(s->pagemap_fd, map + i * page_size);
	uint64_t a, e2, w;
	int tries;
	size_t k;
	bool pmd_beyond_eof = false;

	if (!(e & PM_PRESENT))
		return;
	c->mapped++;
	if (idx >= eof) {
		pmd_beyond_eof = pmd_mapped(s, map + i * page_size);
		if (pmd_beyond_eof) {
			c->beyond_eof_pmd++;
		} else {
			c->beyond_eof++;
			check_fail(c, "file page %zu is mapped with a PTE, EOF at page %zu",
				   idx, eof);
			return;
		}
	}
	for (k = 0; k < page_size / 8; k++) {
		w = LOAD64(map + i * page_size + k * 8);
		if (!word_ok(w, idx)) {
			c->foreign_word++;
			check_fail(c, "file page %zu, word %zu: %llx", idx, k,
				   (unsigned long long)w);
			break;
		}
	}
	if (!PAGEMAP_PFN(e) || pmd_beyond_eof)
		return;		/* not root: no page frames */
	c->pfn_checked++;
	for (tries = 0; ; tries++) {
		FORCE_READ(*(s->alias + idx * page_size));
		a = pagemap_get_entry(s->pagemap_fd, s->alias + idx * page_size);
		if (PAGEMAP_PFN(a) == PAGEMAP_PFN(e))
			return;
		/*
		 * The racers are stopped, but khugepaged and compaction are
		 * not: a collapse or a migration between the two reads
		 * replaced the folio in the page cache and unmapped the old
		 * one, so the page is no longer mapped, or maps the new one.
		 * A stale mapping stays as it was.
		 */
		e2 = pagemap_get_entry(s->pagemap_fd, map + i * page_size);
		if (e2 == e || tries == 3)
			break;
		c->pfn_raced++;
		if (!(e2 & PM_PRESENT) || !PAGEMAP_PFN(e2))
			return;
		e = e2;
	}
	c->wrong_pfn++;
	check_fail(c, "file page %zu: mapped pfn %llx, page cache %llx",
		   idx, (unsigned long long)PAGEMAP_PFN(e),
		   (unsigned long long)PAGEMAP_PFN(a));
}

/*
 * Whatever the race left mapped, one page below EOF is mapped now, so that
 * every round checks at least one: written, then resolved.
 */
static void probe_page(struct stress *s, struct check *c, unsigned int seed)
{
	uint64_t *buf = malloc(page_size);
	struct stat st;
	size_t idx, w;
	enum outcome o;

	if (!buf || fstat(s->fd, &st) || st.st_size < (off_t)page_size) {
		free(buf);
		return;
	}
	idx = rand_r(&seed) % (st.st_size / page_size);
	for (w = 0; w < page_size / 8; w++)
		buf[w] = WORD(idx, seed);
	if (pwrite(s->fd, buf, page_size, idx * page_size) == (ssize_t)page_size) {
		o = do_continue(s, s->area + idx * page_size, page_size, 0);
		if (o != O_OK && o != O_EEXIST && ++c->probe_failed)
			check_fail(c, "CONTINUE of file page %zu after the round: %s",
				   idx, outcome_name[o]);
		c->probes++;
		check_page(s, c, s->area, idx, idx, st.st_size / page_size);
	}
	free(buf);
}

static void check_round(struct stress *s, struct check *c)
{
	struct stat st;
	size_t eof, i;
	unsigned int slot;
	char *p;

	if (fstat(s->fd, &st)) {
		check_fail(c, "fstat: %s", strerror(errno));
		return;
	}
	eof = (st.st_size + page_size - 1) / page_size;
	for (i = 0; i < s->n; i++)
		check_page(s, c, s->area, i, i, eof);
	for (slot = 0; slot < WIN_SLOTS; slot++) {
		p = s->resv + slot * WIN_PAGES * page_size;
		if (p == s->win) {
			for (i = 0; i < WIN_PAGES; i++)
				check_page(s, c, p, i, s->win_off + i, eof);
			continue;
		}
		/* A cleared slot maps nothing. */
		for (i = 0; i < WIN_PAGES; i++) {
			if (pagemap_get_entry(s->pagemap_fd,
					      p + i * page_size) & PM_PRESENT) {
				c->slot_mapped++;
				check_fail(c, "cleared window slot %u maps page %zu",
					   slot, i);
			}
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Leaks */

/* A field of a /proc file, in kB; -1 if absent. */
static long proc_kb(const char *path, const char *field)
{
	return file_value(path, field, ':');
}

struct usage {
	long shmem, swap_used, swap_cached, shmem_huge;
};

static struct usage usage_now(void)
{
	struct usage u;

	u.shmem = proc_kb("/proc/meminfo", "Shmem");
	u.shmem_huge = proc_kb("/proc/meminfo", "ShmemHugePages");
	u.swap_used = proc_kb("/proc/meminfo", "SwapTotal") -
		      proc_kb("/proc/meminfo", "SwapFree");
	u.swap_cached = proc_kb("/proc/meminfo", "SwapCached");
	return u;
}

/*
 * Swap slots in use for other reasons than the swap cache: a slot whose last
 * reference goes while its page is in the swap cache and locked (by
 * MADV_PAGEOUT, migration, a swap-in) or under writeback stays with that page
 * until reclaim drops it. Without a memory cgroup of our own, that is the
 * best guess of what we leaked.
 */
static long swap_held(struct usage u)
{
	return u.swap_used - u.swap_cached;
}

/* ------------------------------------------------------------------------ */

static int setup(struct stress *s, const char *kind, const char **why)
{
	__u64 feat = UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
	      avail = 0;
	size_t i;
	int err;

	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->n = 2 * pmd_pages;
	s->win_off = pmd_pages - WIN_PAGES / 2;	/* across a PMD boundary */
	if (!strcmp(kind, "memfd"))
		s->fd = memfd_create("uffd-continue-stress", MFD_CLOEXEC);
	else
		s->fd = thp_file(why);
	if (s->fd < 0) {
		if (!*why)
			*why = "no file";
		return -1;
	}
	if (ftruncate(s->fd, s->n * page_size)) {
		*why = "ftruncate failed";
		return -1;
	}
	s->uffd = uffd_new(feat, &avail);
	if (s->uffd == -EINVAL)
		s->uffd = uffd_new(UFFD_FEATURE_MINOR_SHMEM, &avail);
	if (s->uffd < 0) {
		*why = "no userfaultfd with UFFD_FEATURE_MINOR_SHMEM";
		return -1;
	}
	s->area = mmap_aligned(s->n * page_size, pmd_pages * page_size,
			       MAP_SHARED, s->fd);
	s->alias = mmap_aligned(s->n * page_size, pmd_pages * page_size,
				MAP_SHARED, s->fd);
	s->resv = mmap(NULL, RESV_LEN, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s->resv != MAP_FAILED)
		s->resv += WIN_PAGES * page_size;
	if (s->area == MAP_FAILED || s->alias == MAP_FAILED ||
	    s->resv == MAP_FAILED) {
		*why = "mmap failed";
		return -1;
	}
	s->wbuf = malloc(64 * page_size);
	if (!s->wbuf) {
		*why = "out of memory";
		return -1;
	}
	/* "thp-pmd": minor faults only, where CONTINUE may map PMDs. */
	s->wp = (avail & UFFD_FEATURE_WP_HUGETLBFS_SHMEM) &&
		strcmp(kind, "thp-pmd");
	err = uffd_register(s->uffd, s->area, s->n * page_size, false, s->wp,
			    true);
	if (err && s->wp) {
		s->wp = false;
		err = uffd_register(s->uffd, s->area, s->n * page_size, false,
				    false, true);
	}
	if (err || !win_map(s, 0)) {
		*why = "UFFDIO_REGISTER_MODE_MINOR failed";
		return -1;
	}
	s->pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
	if (s->pagemap_fd < 0) {
		*why = "no /proc/self/pagemap";
		return -1;
	}
	/* The whole file, written through the alias. */
	for (i = 0; i < s->n * page_size / 8; i++)
		STORE64(s->alias + i * 8, WORD(i * 8 / page_size, 0));
	return 0;
}

static void teardown(struct stress *s)
{
	if (s->area && s->area != MAP_FAILED)
		munmap(s->area, s->n * page_size);
	if (s->alias && s->alias != MAP_FAILED)
		munmap(s->alias, s->n * page_size);
	if (s->resv && s->resv != MAP_FAILED)
		munmap(s->resv - WIN_PAGES * page_size, RESV_LEN);
	free(s->wbuf);
	if (s->uffd > 0)
		close(s->uffd);
	if (s->fd > 0)
		close(s->fd);
	if (s->pagemap_fd > 0)
		close(s->pagemap_fd);
}

enum { T_SINGLE, T_RANGE, T_FAULT, T_FILE, T_MM, T_FORK, T_REMAP, T_NR };

static void *(*const thread_fn[T_NR])(void *) = {
	single_fn, range_fn, fault_fn, file_fn, mm_fn, fork_fn, remap_fn,
};

static const char *const thread_name[T_NR] = {
	"single", "range", "fault", "file", "mm", "fork", "remap",
};

/* One round: every thread races for @ms; false if a thread did not start. */
static bool round_run(struct stress *s, unsigned int seed, unsigned int ms)
{
	struct thread th[T_NR], handler = { .s = s, .seed = seed };
	bool ok = true;
	int i;

	SET(s->stop, 0);
	SET(s->stop_handler, 0);
	if (pthread_create(&handler.th, NULL, handler_fn, &handler))
		return false;
	for (i = 0; i < T_NR; i++) {
		th[i].s = s;
		th[i].seed = seed * T_NR + i + 1;
		if (pthread_create(&th[i].th, NULL, thread_fn[i], &th[i])) {
			th[i].th = 0;
			ok = false;
			continue;
		}
		pthread_setname_np(th[i].th, thread_name[i]);
	}
	usleep(ms * 1000);
	SET(s->stop, 1);
	for (i = 0; i < T_NR; i++)
		if (th[i].th)
			pthread_join(th[i].th, NULL);
	/* The faulting thread is done: nothing waits for the handler. */
	SET(s->stop_handler, 1);
	pthread_join(handler.th, NULL);
	return ok;
}

static void report(struct stress *s, unsigned int rounds, struct check *c)
{
	char buf[1024];
	int n = 0, i;

	for (i = 0; i < O_NR; i++)
		n += snprintf(buf + n, sizeof(buf) - n, " %s %lu",
			      outcome_name[i], s->outcomes[i]);
	ksft_print_msg("%s: %u rounds; CONTINUE:%s; %lu pages mapped\n",
		       s->kind, rounds, buf, s->pages_mapped);
	for (n = 0, i = 0; i < OP_NR; i++)
		n += snprintf(buf + n, sizeof(buf) - n, " %s %lu/%lu",
			      op_name[i], s->ops[i], s->op_errors[i]);
	ksft_print_msg("%s: racers (done/failed):%s\n", s->kind, buf);
	ksft_print_msg("%s: %lu pages swapped out, %lu collapses, %lu pages moved (%d nodes)\n",
		       s->kind, s->swapped, s->collapsed, s->moved, nr_nodes);
	ksft_print_msg("%s: invariants: %lu mapped pages checked, %lu by page frame (%lu re-read after a race), %lu beyond EOF in a PMD mapping\n",
		       s->kind, c->mapped, c->pfn_checked, c->pfn_raced,
		       c->beyond_eof_pmd);
	if (s->last_bad[0])
		ksft_print_msg("%s: last problem: %s\n", s->kind, s->last_bad);
	if (c->what[0])
		ksft_print_msg("%s: first violation: %s\n", s->kind, c->what);
}

/* ------------------------------------------------------------------------ */
/*
 * Verdicts: what a run of one file kind must show. The run reports each one
 * as a result, and -X plants a violation of each one, which it must find.
 * Each returns NULL, or what is wrong.
 */

static char wrong_buf[256];

static const char *wrong(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(wrong_buf, sizeof(wrong_buf), fmt, ap);
	va_end(ap);
	return wrong_buf;
}

/* What the racers may not fail at (collapse and compaction may). */
static const enum op must_succeed[] = {
	OP_TRUNCATE, OP_PUNCH, OP_FALLOCATE, OP_WRITE, OP_DONTNEED,
	OP_DONTNEED_ALL, OP_PAGEOUT, OP_WP, OP_UNWP, OP_MIGRATE, OP_FORK,
	OP_MREMAP, OP_MUNMAP,
};

/* What must have happened in every run. */
static const enum op must_happen[] = {
	OP_MINOR, OP_FORK, OP_MREMAP, OP_MUNMAP,
};

/*
 * Every racer ran without an error, and the race did what it is there for:
 * minor faults, forks, mremap and munmap of the window, pages mapped by
 * CONTINUE, pages swapped out (a kernel without swap fails this).
 */
static const char *racers_wrong(const struct stress *s, bool started)
{
	size_t i;

	if (!started)
		return "a racing thread did not start";
	for (i = 0; i < ARRAY_SIZE(must_succeed); i++)
		if (s->op_errors[must_succeed[i]])
			return wrong("%s failed %lu of %lu times",
				     op_name[must_succeed[i]],
				     s->op_errors[must_succeed[i]],
				     s->ops[must_succeed[i]]);
	for (i = 0; i < ARRAY_SIZE(must_happen); i++)
		if (!s->ops[must_happen[i]])
			return wrong("no %s in the whole run",
				     op_name[must_happen[i]]);
	if (!s->pages_mapped)
		return "CONTINUE mapped no page in the whole run";
	if (!s->swapped)
		return have_swap ? "no page was swapped out in the whole run" :
				   "no swap: no page could be swapped out";
	if (s->want_pmds && s->pmds <= 0)
		return "CONTINUE made no PMD mapping in the whole run";
	return NULL;
}

static const char *outcomes_wrong(const struct stress *s)
{
	if (s->outcomes[O_BAD])
		return wrong("%lu CONTINUEs with an undocumented outcome; last problem: %s",
			     s->outcomes[O_BAD], s->last_bad);
	if (s->bad_events)
		return wrong("%lu faults or events went wrong; last problem: %s",
			     s->bad_events, s->last_bad);
	return NULL;
}

static const char *pages_wrong(const struct check *c)
{
	if (c->wrong_pfn)
		return wrong("%lu mapped pages are not the page cache's; first violation: %s",
			     c->wrong_pfn, c->what);
	if (c->probe_failed)
		return wrong("%lu probes could not map their page; first violation: %s",
			     c->probe_failed, c->what);
	if (c->mapped < c->probes)
		return wrong("%lu pages checked, fewer than the %lu probes",
			     c->mapped, c->probes);
	return NULL;
}

static const char *eof_wrong(const struct check *c)
{
	return c->beyond_eof ? wrong("%lu pages mapped at or beyond EOF with a PTE; first violation: %s",
				     c->beyond_eof, c->what) : NULL;
}

static const char *words_wrong(const struct check *c)
{
	return c->foreign_word ? wrong("%lu pages hold a foreign word; first violation: %s",
				       c->foreign_word, c->what) : NULL;
}

static const char *slots_wrong(const struct check *c)
{
	return c->slot_mapped ? wrong("%lu pages mapped in empty window slots; first violation: %s",
				      c->slot_mapped, c->what) : NULL;
}

static const char *children_wrong(const struct stress *s)
{
	return s->child_bad ? wrong("%lu forked children read a foreign word",
				    s->child_bad) : NULL;
}

/* A result named "@kind: @what"; a failure says why first. */
static void result(const char *kind, const char *why, const char *what)
{
	if (why)
		ksft_print_msg("%s: %s\n", kind, why);
	ksft_test_result(!why, "%s: %s\n", kind, what);
}

#define NR_TESTS_PER_KIND	7

/* The implementation debugfs userfaultfd/mfill_impl selects, or "". */
static const char *mfill_impl(void)
{
	static char impl[32];
	FILE *f = fopen(DEBUGFS_UFFD "mfill_impl", "r");

	impl[0] = 0;
	if (f) {
		if (!fgets(impl, sizeof(impl), f))
			impl[0] = 0;
		impl[strcspn(impl, "\n")] = 0;
		fclose(f);
	}
	return impl;
}

static void stress_kind(const char *kind, unsigned int secs,
			unsigned int round_ms, unsigned int seed)
{
	struct check c = { 0 };
	struct stress s;
	const char *why = NULL;
	unsigned int rounds = 0;
	const char *impl = mfill_impl();
	long pmds_before;
	uint64_t end;
	bool started = true;
	int i;

	if (setup(&s, kind, &why)) {
		teardown(&s);
		for (i = 0; i < NR_TESTS_PER_KIND; i++)
			ksft_test_result_skip("%s: %s\n", kind, why);
		return;
	}
	/*
	 * Where the batch runs and CONTINUE may map PMDs, some must have been
	 * mapped, or the kind does not race what it is there for.
	 */
	s.want_pmds = !strcmp(kind, "thp-pmd") && !strcmp(impl, "rust-batch");
	pmds_before = mfill_stat("continue_rust_batch_pmd");
	end = now_ns() + secs * 1000000000ULL;
	do {
		started &= round_run(&s, seed + rounds, round_ms);
		check_round(&s, &c);
		probe_page(&s, &c, seed + rounds);
		rounds++;
		if (verbose)
			report(&s, rounds, &c);
	} while (now_ns() < end && !c.what[0] && !s.outcomes[O_BAD]);
	report(&s, rounds, &c);
	s.pmds = pmds_before < 0 ? -1 :
		 mfill_stat("continue_rust_batch_pmd") - pmds_before;
	if (s.pmds < 0)
		ksft_print_msg("%s: PMD mappings made by CONTINUE: not counted (no debugfs userfaultfd/stats)\n",
			       kind);
	else
		ksft_print_msg("%s: %ld PMD mappings made by CONTINUE (mfill_impl %s)%s\n",
			       kind, s.pmds, impl,
			       s.want_pmds ? ", some required" : "");

	result(kind, racers_wrong(&s, started), "every racer ran without an error");
	result(kind, outcomes_wrong(&s),
	       "every CONTINUE and fault had a documented outcome");
	result(kind, pages_wrong(&c),
	       "every mapped page is the page cache's page of its offset");
	result(kind, eof_wrong(&c), "no page at or beyond EOF is mapped");
	result(kind, words_wrong(&c),
	       "mapped pages hold only their own offset's data");
	result(kind, slots_wrong(&c),
	       "nothing stays mapped where the window was");
	result(kind, children_wrong(&s),
	       "forked children read only their own offsets' data");
	teardown(&s);
}

/*
 * What the memory cgroup cg_dir still charges once its processes have exited
 * and their memory that nobody holds has been reclaimed: no page at all. A
 * folio that left the page cache but is still held by a reference (a leaked
 * get, a pipe) is neither shmem nor swap any more, but still charged.
 */
#define CG_LEFT_MAX		0

/* What is left after a stress, for leaks_wrong(). */
struct left {
	struct usage after;
	long cg_shmem, cg_swap, cg_current, cg_kernel;	/* bytes; -1: unknown */
};

/*
 * What cg_dir still holds once reclaim has had a go at it: bytes of shmem,
 * of swap (-1: swap is not accounted) and in all (memory.current). Setting
 * memory.high to 0 first drains the charges kept ahead per CPU (which
 * memory.current counts) and reclaims what it can, and never OOM-kills.
 */
static void cg_left(struct left *l)
{
	/*
	 * What the process wrote to its output (a log file, say) is charged
	 * to the cgroup too, as page cache that drop_caches leaves alone
	 * while it is dirty: write it back first.
	 *
	 * A folio that truncation or reclaim let go of may still sit in
	 * another CPU's per-CPU LRU batch, which holds a reference until that
	 * CPU drains it: drop_caches drains them all (lru_add_drain_all();
	 * 4: without a line in the kernel log).
	 */
	sync();
	cg_write("/proc/sys/vm", "drop_caches", "5");
	cg_write(cg_dir, "memory.high", "0");
	cg_write(cg_dir, "memory.high", "max");
	l->cg_shmem = cg_read("memory.stat", "shmem");
	l->cg_swap = cg_read("memory.swap.current", NULL);
	l->cg_current = cg_read("memory.current", NULL);
	l->cg_kernel = cg_read("memory.stat", "kernel");
}

/*
 * The bytes cg_dir charges that are not kernel memory (memory.stat's
 * "kernel": slab, page tables, stacks, per-CPU, which the exited tasks leave
 * to RCU and per-CPU caches for a while): folios, -1 if unknown.
 */
static long cg_folio_bytes(const struct left *l)
{
	if (l->cg_current < 0)
		return -1;
	return l->cg_current - (l->cg_kernel > 0 ? l->cg_kernel : 0);
}

/*
 * The leak check, after closing everything: back where we started, within
 * @slack_kb, with @rss the RssShmem of the process that ran the stress, at
 * its end. If it ran in a memory cgroup of its own (cg_dir), that charges
 * nothing any more once reclaim has dropped the swap cache's pages that
 * nobody uses: no shmem, no swap (a swap slot that only the swap cache holds
 * is freed with its page, a leaked reference keeps it), and no memory at all
 * (a folio truncated while someone held a reference). Waits up to 5 s for
 * what is left to go; NULL, or what is left, and the figures in *@l.
 */
static const char *leaks_wrong(struct usage before, long slack_kb, long rss,
			       struct left *l)
{
	const char *why;
	int tries;

	for (tries = 0; tries < 50; tries++) {
		if (tries)
			usleep(100000);
		l->after = usage_now();
		l->cg_shmem = -1;
		l->cg_swap = -1;
		l->cg_current = -1;
		l->cg_kernel = -1;
		if (cg_dir[0])
			cg_left(l);
		if (rss)
			return wrong("RssShmem %ld kB at the end of the stress", rss);
		why = NULL;
		if (l->after.shmem > before.shmem + slack_kb ||
		    l->after.shmem_huge > before.shmem_huge)
			why = wrong("Shmem %ld -> %ld kB, ShmemHugePages %ld -> %ld kB",
				    before.shmem, l->after.shmem,
				    before.shmem_huge, l->after.shmem_huge);
		else if (l->cg_shmem > 0)
			why = wrong("%ld bytes of shmem left in %s", l->cg_shmem,
				    cg_dir);
		else if (l->cg_swap > 0)
			why = wrong("%ld bytes of swap left in %s", l->cg_swap,
				    cg_dir);
		else if (l->cg_swap < 0 &&
			 swap_held(l->after) > swap_held(before) + slack_kb)
			why = wrong("swap in use outside the swap cache %ld -> %ld kB",
				    swap_held(before), swap_held(l->after));
		else if (cg_folio_bytes(l) > CG_LEFT_MAX)
			why = wrong("%ld bytes still charged to %s after reclaim, %ld of them not kernel memory (no shmem, no swap: a folio held by a reference)",
				    l->cg_current, cg_dir, cg_folio_bytes(l));
		if (!why)
			return NULL;
	}
	return why;
}

/* The non-zero lines of cg_dir's memory.stat: what is left, by kind. */
static void cg_print_stat(void)
{
	char path[256], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/memory.stat", cg_dir);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		const char *v = strchr(line, ' ');

		if (v && strtol(v, NULL, 10))
			ksft_print_msg("%s memory.stat: %s", cg_dir, line);
	}
	fclose(f);
}

static void check_leaks(struct usage before, long slack_kb, long rss)
{
	struct left l;
	const char *why = leaks_wrong(before, slack_kb, rss, &l);

	ksft_print_msg("kB before -> after: Shmem %ld -> %ld, ShmemHugePages %ld -> %ld\n",
		       before.shmem, l.after.shmem, before.shmem_huge,
		       l.after.shmem_huge);
	ksft_print_msg("kB before -> after: swap used %ld -> %ld, by the swap cache %ld -> %ld\n",
		       before.swap_used, l.after.swap_used, before.swap_cached,
		       l.after.swap_cached);
	ksft_print_msg("kB at the end of the stress: RssShmem %ld\n", rss);
	if (cg_dir[0])
		ksft_print_msg("bytes left in its memory cgroup after reclaim: shmem %ld, swap %ld%s, all %ld, kernel memory %ld\n",
			       l.cg_shmem, l.cg_swap,
			       l.cg_swap < 0 ? " (not accounted: judged system-wide)" : "",
			       l.cg_current, l.cg_kernel);
	if (why) {
		ksft_print_msg("leak: %s\n", why);
		if (cg_dir[0])
			cg_print_stat();
	}
	ksft_test_result(!why, "nothing leaked: shmem, its swap, RssShmem and its memory cgroup's charge back where they started\n");
	memcg_remove();
}

/* What the process that ran the stress tells its parent. */
struct report {
	int pass, fail, xfail, xpass, skip, error;
	long rss;
	bool in_cgroup;
};

/*
 * Runs the stress of every kind in a child, in the memory cgroup cg_dir if
 * there is one, so that what it charged can be told from the rest of the
 * system. False if it died without reporting.
 */
static bool run_stress(const char * const *kinds, unsigned int nr_kinds,
		       unsigned int secs, unsigned int round_ms,
		       unsigned int seed, struct report *r)
{
	int p[2], status = 0;
	unsigned int i;
	ssize_t n;
	pid_t pid;

	if (pipe(p))
		return false;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return false;
	if (!pid) {
		close(p[0]);
		r->in_cgroup = cg_dir[0] && !memcg_join();
		if (cg_dir[0] && !r->in_cgroup)
			ksft_print_msg("cannot move into %s: leak check system-wide only\n",
				       cg_dir);
		for (i = 0; i < nr_kinds; i++)
			stress_kind(kinds[i], secs, round_ms, seed);
		r->pass = ksft_get_pass_cnt();
		r->fail = ksft_get_fail_cnt();
		r->xfail = ksft_get_xfail_cnt();
		r->xpass = ksft_get_xpass_cnt();
		r->skip = ksft_get_xskip_cnt();
		r->error = ksft_get_error_cnt();
		/* The counters of injection are shmem too, and mapped here. */
		uffd_fi_detach();
		r->rss = proc_kb("/proc/self/status", "RssShmem");
		fflush(stdout);
		_exit(write(p[1], r, sizeof(*r)) == sizeof(*r) ? 0 : 1);
	}
	close(p[1]);
	n = read(p[0], r, sizeof(*r));
	close(p[0]);
	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status))
		ksft_print_msg("the stress process died of signal %d\n",
			       WTERMSIG(status));
	if (n != sizeof(*r) || !WIFEXITED(status) || WEXITSTATUS(status))
		return false;
	if (!r->in_cgroup)
		memcg_remove();
	return true;
}

/*
 * -X: the checks find what they look for, through the functions the run
 * judges with (check_round(), probe_page(), fork_child(), do_continue() and
 * the verdicts). With no thread running, each violation is planted on a
 * memfd through the back door (a private copy, an anonymous page, a word
 * written through the alias, the range unregistered) and must be found; a
 * clean state must pass.
 */
#define NR_SELF_CHECKS		8

static void self_check(void)
{
	struct uffdio_range range;
	struct thread t = { 0 };
	enum outcome o, o2;
	struct stress s;
	struct check c;
	const char *why = NULL;
	size_t i;
	char *p;

	if (setup(&s, "memfd", &why)) {
		teardown(&s);
		for (i = 0; i < NR_SELF_CHECKS; i++)
			ksft_test_result_skip("checker: %s\n", why);
		return;
	}
	t.s = &s;
	t.seed = 1;
	do_continue(&s, s.area, 8 * page_size, 0);
	memset(&c, 0, sizeof(c));
	check_round(&s, &c);
	probe_page(&s, &c, 1);
	fork_child(&t);
	ksft_test_result(c.mapped >= 8 && c.probes == 1 && !pages_wrong(&c) &&
			 !eof_wrong(&c) && !words_wrong(&c) &&
			 !slots_wrong(&c) && !outcomes_wrong(&s) &&
			 !children_wrong(&s),
			 "checker: a clean state passes every check\n");

	STORE64(s.alias + 3 * page_size + 64, WORD(4, 1));
	memset(&c, 0, sizeof(c));
	check_round(&s, &c);
	ksft_test_result(c.foreign_word == 1 && words_wrong(&c),
			 "checker: finds a word written for another offset\n");
	STORE64(s.alias + 3 * page_size + 64, WORD(3, 1));

	/* Word 0 of every page written for the next: a child reads one. */
	for (i = 0; i < s.n; i++)
		STORE64(s.alias + i * page_size, WORD(i + 1, 1));
	fork_child(&t);
	ksft_test_result(s.child_bad == 1 && children_wrong(&s),
			 "checker: finds a forked child that read a foreign word\n");
	for (i = 0; i < s.n; i++)
		STORE64(s.alias + i * page_size, WORD(i, 1));
	s.child_bad = 0;

	/* Page 0 is mapped: EEXIST is documented; half a page (EINVAL) not. */
	o = do_continue(&s, s.area, page_size, 0);
	o2 = do_continue(&s, s.area + page_size, page_size / 2, 0);
	ksft_test_result(o == O_EEXIST && o2 == O_BAD &&
			 s.outcomes[O_BAD] == 1 && outcomes_wrong(&s),
			 "checker: finds a CONTINUE with an undocumented outcome\n");
	s.outcomes[O_BAD] = 0;
	s.last_bad[0] = 0;

	/* The range unregistered: the probe's CONTINUE cannot map its page. */
	range.start = (uintptr_t)s.area;
	range.len = s.n * page_size;
	memset(&c, 0, sizeof(c));
	if (!ioctl(s.uffd, UFFDIO_UNREGISTER, &range))
		probe_page(&s, &c, 2);
	ksft_test_result(c.probe_failed == 1 && pages_wrong(&c) &&
			 !uffd_register(s.uffd, s.area, s.n * page_size, false,
					s.wp, true),
			 "checker: finds a probe that could not map its page\n");

	/* A private copy of page 5 in place of the page cache's page. */
	p = mmap(s.area + 5 * page_size, page_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_FIXED, s.fd, 5 * page_size);
	if (p != MAP_FAILED)
		STORE64(p, WORD(5, 2));
	memset(&c, 0, sizeof(c));
	check_round(&s, &c);
	if (!c.pfn_checked)
		ksft_test_result_skip("checker: page frames are only visible to root\n");
	else
		ksft_test_result(p != MAP_FAILED && c.wrong_pfn == 1 &&
				 pages_wrong(&c),
				 "checker: finds a page that is not the page cache's\n");

	/* The last page cut off the file, with a page still mapped there. */
	p = mmap(s.area + (s.n - 1) * page_size, page_size,
		 PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (p != MAP_FAILED)
		STORE64(p, 0);
	memset(&c, 0, sizeof(c));
	ksft_test_result(p != MAP_FAILED &&
			 !ftruncate(s.fd, (s.n - 1) * page_size) &&
			 (check_round(&s, &c), c.beyond_eof == 1) &&
			 eof_wrong(&c),
			 "checker: finds a page mapped beyond EOF\n");

	/* Something in a window slot that should hold nothing. */
	p = mmap(s.resv + WIN_PAGES * page_size, page_size,
		 PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (p != MAP_FAILED)
		STORE64(p, 1);
	memset(&c, 0, sizeof(c));
	check_round(&s, &c);
	ksft_test_result(p != MAP_FAILED && s.win == s.resv &&
			 c.slot_mapped == 1 && slots_wrong(&c),
			 "checker: finds a page where the window is not\n");
	teardown(&s);
}

/*
 * -X, racer errors: a short round of every thread, with the file open
 * read-only, so that the file thread's truncations, hole punches and writes
 * (and the window's new mappings) fail.
 */
static void self_check_racers(void)
{
	const char *why = NULL;
	struct stress s;
	bool started;
	char path[64];
	int fd, rw;

	if (setup(&s, "memfd", &why)) {
		teardown(&s);
		ksft_test_result_skip("checker: %s\n", why);
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", s.fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	rw = s.fd;
	if (fd >= 0)
		s.fd = fd;
	started = round_run(&s, 1, 300);
	s.fd = rw;
	why = racers_wrong(&s, started);
	ksft_print_msg("checker: racers on a read-only file: %s\n",
		       why ? why : "nothing found");
	ksft_test_result(fd >= 0 && why && strstr(why, " failed "),
			 "checker: finds a racer's errors\n");
	if (fd >= 0)
		close(fd);
	teardown(&s);
}

/*
 * -X, the end-of-file rule, on a THP file registered for minor faults only:
 * EOF is moved three pages before the end of the last PMD-sized block, made
 * a hole, and a read of the registered mapping there (no minor fault: there
 * is no page) makes the kernel allocate a THP and map it with one PMD, across
 * EOF; the check lets those pages be. Then one of them is replaced by an
 * anonymous page, a PTE beyond EOF, which the check must find.
 */
static void self_check_eof_pmd(void)
{
	const char *why = NULL;
	struct stress s;
	struct check c;
	bool pmd = false;
	uint64_t w;
	char *p;

	if (setup(&s, "thp-pmd", &why)) {
		teardown(&s);
		ksft_test_result_skip("checker: %s\n", why);
		ksft_test_result_skip("checker: %s\n", why);
		return;
	}
	if (!fallocate(s.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		       pmd_pages * page_size, pmd_pages * page_size) &&
	    !ftruncate(s.fd, (s.n - 3) * page_size) &&
	    try_load(s.area + pmd_pages * page_size, &w))
		pmd = pmd_mapped(&s, s.area + (s.n - 1) * page_size);
	memset(&c, 0, sizeof(c));
	check_round(&s, &c);
	ksft_print_msg("checker: a THP across EOF: %s; %lu pages mapped, %lu beyond EOF in a PMD mapping, %lu with a PTE\n",
		       pmd ? "mapped with a PMD" : "not mapped with a PMD",
		       c.mapped, c.beyond_eof_pmd, c.beyond_eof);
	ksft_test_result(pmd && c.beyond_eof_pmd == 3 && !eof_wrong(&c) &&
			 !pages_wrong(&c) && !words_wrong(&c),
			 "checker: pages beyond EOF in a PMD mapping of a shmem THP pass\n");

	p = mmap(s.area + (s.n - 1) * page_size, page_size,
		 PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (p != MAP_FAILED)
		STORE64(p, 0);
	memset(&c, 0, sizeof(c));
	check_round(&s, &c);
	ksft_test_result(p != MAP_FAILED && c.beyond_eof == 1 &&
			 !c.beyond_eof_pmd && eof_wrong(&c),
			 "checker: finds a page beyond EOF mapped with a PTE next to a THP\n");
	teardown(&s);
}

/*
 * -X, a run on rust-batch of the kind where CONTINUE may map PMDs, whose
 * CONTINUEs made none (the verdict on its counters, everything else clean).
 */
static void self_check_pmds(void)
{
	struct stress s = { .want_pmds = true, .pmds = 1 };
	const char *clean, *planted;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(must_happen); i++)
		s.ops[must_happen[i]] = 1;
	s.pages_mapped = 1;
	s.swapped = 1;
	clean = racers_wrong(&s, true);
	s.pmds = 0;
	planted = racers_wrong(&s, true);
	ksft_test_result(!clean && planted && strstr(planted, "no PMD"),
			 "checker: finds a run where CONTINUE made no PMD mapping though it should\n");
}

/* -X, words read while they are written: torn ones pass, foreign ones not. */
static void self_check_torn(void)
{
	const uint64_t w = WORD(788, 0x59), other = WORD(789, 0x59);

	ksft_test_result(word_ok_racing(w & 0xff, 788) &&
			 word_ok_racing(w & 0xffffffff, 788) &&
			 word_ok_racing(w & ~0xffffffULL, 788) &&
			 !word_ok_racing(other, 788) &&
			 !word_ok_racing(other & 0xffffffff, 788) &&
			 !word_ok_racing(other & ~0xffffffULL, 788) &&
			 !word_ok_racing(w | 1ULL << 56, 788),
			 "checker: a word torn by a racing write passes, one of another page not\n");
}

/*
 * A child in the memory cgroup cg_dir leaves memory behind: with @fd, two
 * pages of that file (one swapped out); with @pipe_w, four pages of a memfd
 * it writes, splices into that pipe and closes. True if it did.
 */
static bool leak_child(int fd, int pipe_w)
{
	int status = -1, mfd;
	loff_t off = 0;
	pid_t pid;
	char *p;

	pid = fork();
	if (!pid) {
		if (memcg_join())
			_exit(1);
		if (fd >= 0) {
			p = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE,
				 MAP_SHARED, fd, 0);
			if (p == MAP_FAILED)
				_exit(1);
			STORE64(p, 1);
			STORE64(p + page_size, 2);
			madvise(p + page_size, page_size, MADV_PAGEOUT);
			_exit(0);
		}
		mfd = memfd_create("uffd-continue-stress-X", MFD_CLOEXEC);
		p = malloc(4 * page_size);
		if (mfd < 0 || !p)
			_exit(1);
		memset(p, 0x5a, 4 * page_size);
		if (pwrite(mfd, p, 4 * page_size, 0) != (ssize_t)(4 * page_size) ||
		    splice(mfd, &off, pipe_w, NULL, 4 * page_size, 0) !=
		    (ssize_t)(4 * page_size))
			_exit(1);
		close(mfd);
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, &status, 0);
	return !status;
}

/*
 * -X, the leak check, as the run calls it (leaks_wrong()), on what a child
 * in a memory cgroup of our own leaves behind: pages of a memfd that this
 * process keeps open (found as shmem or swap), then pages of a memfd it
 * closed but spliced into a pipe that this process keeps open (neither shmem
 * nor swap any more: found as memory still charged); once both are closed,
 * nothing is found.
 */
static void self_check_leaks(void)
{
	const char *why = memcg_create("uffd-continue-stress-X");
	struct usage before = usage_now();
	int fd = -1, pipefd[2] = { -1, -1 };
	const char *found = NULL;
	struct left l;

	if (!why) {
		fd = memfd_create("uffd-continue-stress-X", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, 2 * page_size))
			why = "no memfd";
	}
	if (!why && pipe(pipefd))
		why = "no pipe";
	if (why) {
		ksft_test_result_skip("checker: %s\n", why);
		ksft_test_result_skip("checker: %s\n", why);
		ksft_test_result_skip("checker: %s\n", why);
		goto out;
	}
	if (leak_child(fd, -1))
		found = leaks_wrong(before, 256, 0, &l);
	ksft_print_msg("checker: a file still open: %s\n",
		       found ? found : "nothing found");
	ksft_test_result(found, "checker: finds the shmem or swap of a file still open\n");
	close(fd);
	fd = -1;

	found = NULL;
	if (leak_child(-1, pipefd[1]))
		found = leaks_wrong(before, 256, 0, &l);
	ksft_print_msg("checker: a page held by a pipe: %s\n",
		       found ? found : "nothing found");
	ksft_test_result(found && strstr(found, " still charged "),
			 "checker: finds pages held by a pipe, their file closed\n");
	close(pipefd[0]);
	close(pipefd[1]);
	pipefd[0] = -1;
	pipefd[1] = -1;

	found = leaks_wrong(before, 256, 0, &l);
	ksft_print_msg("checker: all closed: %s; left in the cgroup: shmem %ld, swap %ld, all %ld bytes, kernel memory %ld\n",
		       found ? found : "nothing found", l.cg_shmem, l.cg_swap,
		       l.cg_current, l.cg_kernel);
	ksft_test_result(!found, "checker: finds nothing once the file and the pipe are closed\n");
out:
	if (fd >= 0)
		close(fd);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	memcg_remove();
}

int main(int argc, char **argv)
{
	static const char * const kinds[] = { "memfd", "thp", "thp-pmd" };
	unsigned int secs = 30, round_ms = 1000, seed = 1, i;
	struct sigaction sa = {
		.sa_sigaction = sig_handler,
		.sa_flags = SA_SIGINFO | SA_NODEFER,
	};
	struct usage before;
	const char *why;
	struct report r;
	int opt;

	while ((opt = getopt(argc, argv, "t:r:s:vX")) != -1) {
		switch (opt) {
		case 't':
			secs = atoi(optarg);
			break;
		case 'r':
			round_ms = atoi(optarg);
			break;
		case 's':
			seed = atoi(optarg);
			break;
		case 'v':
			verbose = true;
			break;
		case 'X':
			check_checker = true;
			break;
		default:
			fprintf(stderr, "usage: %s [-t SECONDS] [-r ROUND_MS] [-s SEED] [-v]\n"
				"       %s -X\n", argv[0], argv[0]);
			return KSFT_FAIL;
		}
	}
	page_size = getpagesize();
	pmd_pages = read_pmd_pagesize() / page_size;
	if (!pmd_pages)
		pmd_pages = 512;
	is_root = !geteuid();
	have_swap = proc_kb("/proc/meminfo", "SwapTotal") > 0;
	nr_nodes = nr_numa_nodes();
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);

	ksft_print_header();
	if (check_checker) {
		ksft_set_plan(1 + NR_SELF_CHECKS + 2 + 1 + 1 + 3);
		self_check_torn();
		self_check();
		self_check_eof_pmd();
		self_check_pmds();
		self_check_racers();
		self_check_leaks();
		ksft_finished();
	}
	fault_inject = uffd_fi_init();
	ksft_set_plan(ARRAY_SIZE(kinds) * NR_TESTS_PER_KIND + 1 + fault_inject);
	if (fault_inject)
		ksft_print_msg("fault injection: every UFFDIO_CONTINUE under make-it-fail\n");
	ksft_print_msg("%u s per file kind, rounds of %u ms, seed %u, %d NUMA nodes%s\n",
		       secs, round_ms, seed, nr_nodes,
		       nr_nodes < 2 ? " (migration by compaction)" : "");
	why = memcg_create("uffd-continue-stress");
	if (why)
		ksft_print_msg("leak check system-wide only: %s\n", why);
	before = usage_now();
	if (!run_stress(kinds, ARRAY_SIZE(kinds), secs, round_ms, seed, &r)) {
		memcg_remove();
		ksft_exit_fail_msg("the stress process did not report\n");
	}
	/* Its results, counted here, and the leak check after them. */
	for (i = 0; i < (unsigned int)r.pass; i++)
		ksft_inc_pass_cnt();
	for (i = 0; i < (unsigned int)r.fail; i++)
		ksft_inc_fail_cnt();
	for (i = 0; i < (unsigned int)r.xfail; i++)
		ksft_inc_xfail_cnt();
	for (i = 0; i < (unsigned int)r.xpass; i++)
		ksft_inc_xpass_cnt();
	for (i = 0; i < (unsigned int)r.skip; i++)
		ksft_inc_xskip_cnt();
	for (i = 0; i < (unsigned int)r.error; i++)
		ksft_inc_error_cnt();
	/* Some slack: the rest of the system may use a page or two meanwhile. */
	check_leaks(before, 256, r.rss);
	if (fault_inject)
		ksft_test_result(uffd_fi_report() && GET(uffd_fi->calls),
				 "fault injection: every CONTINUE under it had a documented outcome\n");
	ksft_finished();
}
