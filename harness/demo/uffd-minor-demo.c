// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-minor-demo: resolve shmem minor faults with UFFDIO_CONTINUE, on a
 * memfd and then on the memory type written in Rust of
 * samples/rust/rust_uffd_memory.rs (/dev/rust-uffd-memory, if present).
 *
 * The memory is mapped twice: once registered with userfaultfd in MINOR mode,
 * once as a plain alias. The page cache is populated up front, so touching
 * the registered mapping raises minor faults (the page exists, only the PTE
 * is missing). A reader thread touches every page; the handler receives each
 * fault, rewrites the page through the alias and maps it with
 * UFFDIO_CONTINUE. The reader then sees the handler's contents.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NPAGES 8

/* The Rust memory type of samples/rust/rust_uffd_memory.rs. */
#define RUST_UFFD_MEMORY		"/dev/rust-uffd-memory"
#define RUST_UFFD_MEMORY_GET_FILE	_IO('|', 0xa0)

static long psize;
static char *area;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void *reader(void *arg)
{
	for (int i = 0; i < NPAGES; i++) {
		/* Each access to a page not yet mapped is a minor fault. */
		char *p = area + i * psize;
		char buf[64];

		snprintf(buf, sizeof(buf), "%s", p);
		printf("  reader: page %d reads \"%s\"\n", i, buf);
	}
	return NULL;
}

static void show_counters(void)
{
	const char *files[] = { "/sys/kernel/debug/userfaultfd/mfill_impl",
				"/sys/kernel/debug/userfaultfd/stats" };

	for (unsigned int i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char buf[512];
		FILE *f = fopen(files[i], "r");
		size_t n;

		if (!f)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = 0;
		fclose(f);
		printf("%s:\n%s", files[i], buf);
	}
}

/*
 * Minor faults on @NPAGES pages of memory that @map_fd maps and whose size
 * @file_fd sets; returns the number resolved.
 */
static int demo(const char *what, int map_fd, int file_fd)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_MINOR_SHMEM };
	struct uffdio_register reg = { 0 };
	struct uffdio_continue cont = { 0 };
	pthread_t thr;
	char *alias;
	int uffd, resolved = 0;

	printf("== %s: %d pages, minor faults resolved with UFFDIO_CONTINUE ==\n",
	       what, NPAGES);
	if (ftruncate(file_fd, NPAGES * psize))
		die("ftruncate");
	alias = mmap(NULL, NPAGES * psize, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
	area = mmap(NULL, NPAGES * psize, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
	if (alias == MAP_FAILED || area == MAP_FAILED)
		die("mmap");
	/* Populate the page cache through the alias. */
	for (int i = 0; i < NPAGES; i++)
		snprintf(alias + i * psize, psize, "page %d: initial contents", i);

	uffd = syscall(__NR_userfaultfd, O_CLOEXEC);
	if (uffd < 0)
		die("userfaultfd");
	if (ioctl(uffd, UFFDIO_API, &api))
		die("UFFDIO_API");
	reg.range.start = (unsigned long)area;
	reg.range.len = NPAGES * psize;
	reg.mode = UFFDIO_REGISTER_MODE_MINOR;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER");
	printf("registered [%p, +%ld) in MINOR mode; ioctls 0x%llx\n", area,
	       NPAGES * psize, (unsigned long long)reg.ioctls);

	if (pthread_create(&thr, NULL, reader, NULL))
		die("pthread_create");

	while (resolved < NPAGES) {
		struct pollfd pfd = { .fd = uffd, .events = POLLIN };
		struct uffd_msg msg;
		unsigned long off;

		if (poll(&pfd, 1, 10000) != 1)
			die("poll (no fault within 10 s)");
		if (read(uffd, &msg, sizeof(msg)) != sizeof(msg))
			die("read uffd_msg");
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		off = (msg.arg.pagefault.address & ~(psize - 1)) - (unsigned long)area;
		printf("handler: fault at page %lu, flags %s%s\n", off / psize,
		       msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR ? "MINOR" : "?",
		       msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE ? "|WRITE" : "");
		snprintf(alias + off, psize, "page %lu: written by the fault handler",
			 off / psize);
		cont.range.start = (unsigned long)area + off;
		cont.range.len = psize;
		cont.mode = 0;
		if (ioctl(uffd, UFFDIO_CONTINUE, &cont))
			die("UFFDIO_CONTINUE");
		printf("handler: UFFDIO_CONTINUE page %lu -> mapped %lld bytes\n",
		       off / psize, (long long)cont.mapped);
		resolved++;
	}
	pthread_join(thr, NULL);

	/* Mapping a page twice is refused. */
	cont.range.start = (unsigned long)area;
	cont.range.len = psize;
	if (ioctl(uffd, UFFDIO_CONTINUE, &cont) == 0 || errno != EEXIST) {
		fprintf(stderr, "second UFFDIO_CONTINUE: expected EEXIST\n");
		return 1;
	}
	printf("second UFFDIO_CONTINUE on page 0 -> %s (mapped %lld), as expected\n",
	       strerror(errno), (long long)cont.mapped);
	close(uffd);
	munmap(area, NPAGES * psize);
	munmap(alias, NPAGES * psize);
	printf("%s: %d minor faults resolved\n", what, resolved);
	return resolved;
}

int main(void)
{
	int memfd, dev, file, resolved;

	psize = sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	show_counters();

	memfd = memfd_create("uffd-minor-demo", 0);
	if (memfd < 0)
		die("memfd");
	resolved = demo("memfd (shmem)", memfd, memfd);
	close(memfd);

	dev = open(RUST_UFFD_MEMORY, O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		printf("== %s: %s, skipped (CONFIG_SAMPLE_RUST_UFFD_MEMORY) ==\n",
		       RUST_UFFD_MEMORY, strerror(errno));
	} else {
		/* Its memory is a memfd of the device; this fd sizes it. */
		file = ioctl(dev, RUST_UFFD_MEMORY_GET_FILE);
		if (file < 0)
			die("RUST_UFFD_MEMORY_GET_FILE");
		resolved += demo("the Rust memory type " RUST_UFFD_MEMORY, dev,
				 file);
		close(file);
		close(dev);
	}
	show_counters();
	printf("uffd-minor-demo: %d minor faults resolved\n", resolved);
	return 0;
}
