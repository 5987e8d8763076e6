// SPDX-License-Identifier: GPL-2.0

#include <linux/cacheflush.h>
#include <linux/huge_mm.h>
#include <linux/mm.h>
#include <linux/pgtable.h>
#include <linux/vmstat.h>
#include <asm/pgalloc.h>

/* The PMD mapping of a whole PMD-sized folio (kernel::mm::pmd). */
#ifdef CONFIG_TRANSPARENT_HUGEPAGE
__rust_helper spinlock_t *rust_helper_pmd_lock(struct mm_struct *mm, pmd_t *pmd)
{
	return pmd_lock(mm, pmd);
}

__rust_helper pmd_t rust_helper_pmdp_get(pmd_t *pmdp)
{
	return pmdp_get(pmdp);
}

__rust_helper pmd_t rust_helper_folio_mk_pmd(const struct folio *folio,
					     pgprot_t pgprot)
{
	return folio_mk_pmd(folio, pgprot);
}

__rust_helper pmd_t rust_helper_pmd_mkdirty(pmd_t pmd)
{
	return pmd_mkdirty(pmd);
}

/*
 * An out-of-line function on x86 (whose declaration bindgen then uses
 * instead of this helper), a static inline elsewhere.
 */
__rust_helper pmd_t rust_helper_pmd_mkwrite(pmd_t pmd, struct vm_area_struct *vma)
{
	return pmd_mkwrite(pmd, vma);
}

__rust_helper int rust_helper_pmd_write(pmd_t pmd)
{
	return pmd_write(pmd);
}

__rust_helper int rust_helper_pmd_dirty(pmd_t pmd)
{
	return pmd_dirty(pmd);
}

__rust_helper unsigned long rust_helper_pmd_pfn(pmd_t pmd)
{
	return pmd_pfn(pmd);
}

__rust_helper void rust_helper_set_pmd_at(struct mm_struct *mm,
					  unsigned long addr, pmd_t *pmdp,
					  pmd_t pmd)
{
	set_pmd_at(mm, addr, pmdp, pmd);
}

__rust_helper void rust_helper_update_mmu_cache_pmd(struct vm_area_struct *vma,
						    unsigned long addr,
						    pmd_t *pmdp)
{
	update_mmu_cache_pmd(vma, addr, pmdp);
}

__rust_helper void rust_helper_flush_icache_pages(struct vm_area_struct *vma,
						  struct page *page,
						  unsigned int nr)
{
	flush_icache_pages(vma, page, nr);
}

__rust_helper void rust_helper_count_vm_event(enum vm_event_item item)
{
	count_vm_event(item);
}

__rust_helper bool rust_helper_thp_vma_suitable_order(struct vm_area_struct *vma,
						      unsigned long addr,
						      int order)
{
	return thp_vma_suitable_order(vma, addr, order);
}

__rust_helper bool rust_helper_thp_disabled_by_hw(void)
{
	return thp_disabled_by_hw();
}

__rust_helper bool rust_helper_vma_thp_disabled(struct vm_area_struct *vma,
						vm_flags_t vm_flags,
						bool forced_collapse)
{
	return vma_thp_disabled(vma, vm_flags, forced_collapse);
}

__rust_helper bool rust_helper_folio_test_has_hwpoisoned(const struct folio *folio)
{
	return folio_test_has_hwpoisoned(folio);
}

__rust_helper bool rust_helper_arch_needs_pgtable_deposit(void)
{
	return arch_needs_pgtable_deposit();
}

/* An out-of-line function on x86, a macro elsewhere. */
__rust_helper pgtable_t rust_helper_pte_alloc_one(struct mm_struct *mm)
{
	return pte_alloc_one(mm);
}

__rust_helper void rust_helper_pte_free(struct mm_struct *mm, pgtable_t pte)
{
	pte_free(mm, pte);
}

/* A static inline on powerpc, an out-of-line function elsewhere. */
__rust_helper void rust_helper_pgtable_trans_huge_deposit(struct mm_struct *mm,
							  pmd_t *pmdp,
							  pgtable_t pgtable)
{
	pgtable_trans_huge_deposit(mm, pmdp, pgtable);
}

__rust_helper void rust_helper_mm_inc_nr_ptes(struct mm_struct *mm)
{
	mm_inc_nr_ptes(mm);
}
#endif /* CONFIG_TRANSPARENT_HUGEPAGE */

/* For the KUnit tests of PMD mappings only. */
#if IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE) && \
	(IS_ENABLED(CONFIG_RUST_MM_KUNIT_TEST) || \
	 IS_ENABLED(CONFIG_USERFAULTFD_RUST_KUNIT_TEST))
__rust_helper int rust_helper_folio_entire_mapcount(const struct folio *folio)
{
	return folio_entire_mapcount(folio);
}

__rust_helper void rust_helper_folio_set_has_hwpoisoned(struct folio *folio)
{
	folio_set_has_hwpoisoned(folio);
}

__rust_helper void rust_helper_folio_clear_has_hwpoisoned(struct folio *folio)
{
	folio_clear_has_hwpoisoned(folio);
}
#endif
