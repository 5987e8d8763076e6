/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The Rust implementation of the userfaultfd fills (mm/userfaultfd_rust.rs,
 * CONFIG_USERFAULTFD_RUST) and, in kernels built for testing
 * (CONFIG_USERFAULTFD_RUST_TEST), the run-time switch between it and the C
 * one, with its counters (mm/userfaultfd_rust_test.c). Internal to mm/.
 *
 * mm/userfaultfd.c asks mfill_impl() which implementation to call and
 * counts what it mapped with mfill_count(). Without the test option these
 * are constants and nothing: the implementation chosen at build time is
 * called directly.
 */
#ifndef __MM_USERFAULTFD_RUST_H
#define __MM_USERFAULTFD_RUST_H

#include <linux/jump_label.h>
#include <linux/percpu.h>
#include <linux/userfaultfd_k.h>

/* mm/userfaultfd_rust.rs: 0 or a negative errno, as the C steps. */
int rust_mfill_atomic_pte_continue(struct vm_area_struct *dst_vma,
				   pmd_t *dst_pmd, unsigned long dst_addr,
				   uffd_flags_t flags);
int rust_mfill_atomic_install_pte(pmd_t *dst_pmd,
				  struct vm_area_struct *dst_vma,
				  unsigned long dst_addr, struct page *page,
				  uffd_flags_t flags);
/*
 * mm/userfaultfd_rust/batch.rs: UFFDIO_CONTINUE from dst_addr to at most
 * dst_end, as many pages as one step can map; the number of pages mapped
 * (at least one) or a negative errno.
 */
long rust_mfill_atomic_pte_continue_batch(struct vm_area_struct *dst_vma,
					  pmd_t *dst_pmd,
					  unsigned long dst_addr,
					  unsigned long dst_end,
					  uffd_flags_t flags);

/* The implementations of the fills. */
enum mfill_impl {
	MFILL_IMPL_C,
	MFILL_IMPL_RUST,	/* page by page */
	MFILL_IMPL_RUST_BATCH,	/* UFFDIO_CONTINUE batched */
};

/* The counters of debugfs userfaultfd/stats: pages mapped, unless said. */
enum mfill_stat_item {
	MFILL_CONTINUE_C,
	MFILL_CONTINUE_RUST,
	MFILL_CONTINUE_RUST_BATCH,
	MFILL_CONTINUE_RUST_BATCH_STEPS,	/* batched steps */
	MFILL_CONTINUE_RUST_BATCH_PMD,		/* PMD mappings */
	MFILL_INSTALL_C,
	MFILL_INSTALL_RUST,
	NR_MFILL_STATS,
};

#ifdef CONFIG_USERFAULTFD_RUST_TEST
DECLARE_STATIC_KEY_TRUE(mfill_impl_rust);
DECLARE_STATIC_KEY_TRUE(mfill_impl_rust_batch);
DECLARE_PER_CPU(unsigned long [NR_MFILL_STATS], mfill_stats);

/* The implementation that debugfs userfaultfd/mfill_impl selects. */
static __always_inline enum mfill_impl mfill_impl(void)
{
	if (!static_branch_likely(&mfill_impl_rust))
		return MFILL_IMPL_C;
	if (static_branch_likely(&mfill_impl_rust_batch))
		return MFILL_IMPL_RUST_BATCH;
	return MFILL_IMPL_RUST;
}

static inline void mfill_count(enum mfill_stat_item item, unsigned long nr)
{
	this_cpu_add(mfill_stats[item], nr);
}

/* For mm/userfaultfd_rust/batch.rs: counts one PMD mapping. */
void mfill_count_rust_batch_pmd(void);
#else
/* The implementation chosen at build time. */
static __always_inline enum mfill_impl mfill_impl(void)
{
	return IS_ENABLED(CONFIG_USERFAULTFD_RUST) ? MFILL_IMPL_RUST_BATCH :
						     MFILL_IMPL_C;
}

static inline void mfill_count(enum mfill_stat_item item, unsigned long nr)
{
}
#endif /* CONFIG_USERFAULTFD_RUST_TEST */

#if IS_ENABLED(CONFIG_KUNIT)
/* mm/userfaultfd.c: userfaultfd(2)'s context and file, for KUnit tests. */
struct file *userfaultfd_file_create(int flags);
#endif

#ifdef CONFIG_USERFAULTFD_RUST_KUNIT_TEST
/*
 * mm/userfaultfd_rust_test.c: userfaultfd contexts on the mm of a KUnit
 * test, for the tests of mm/userfaultfd_rust.rs, which declares these too.
 */
struct file *uffd_kunit_open(void);
long uffd_kunit_api(struct file *file, u64 features);
long uffd_kunit_register(struct file *file, unsigned long start,
			 unsigned long len, vm_flags_t vm_flags);
long uffd_kunit_copy(struct file *file, unsigned long dst, unsigned long src,
		     unsigned long len, bool wp, s64 *copy);
long uffd_kunit_zeropage(struct file *file, unsigned long start,
			 unsigned long len, s64 *zeropage);
long uffd_kunit_continue(struct file *file, unsigned long start,
			 unsigned long len, u64 mode, s64 *mapped);
const char *uffd_kunit_mfill_impl(void);
long uffd_kunit_mfill_stat(const char *name);
int uffd_kunit_set_uffd_ops(unsigned long addr, const struct vm_uffd_ops *ops);
#endif

#endif /* __MM_USERFAULTFD_RUST_H */
