// SPDX-License-Identifier: GPL-2.0

#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/page-flags.h>
#include <linux/pagemap.h>

__rust_helper void rust_helper_folio_get(struct folio *folio)
{
	folio_get(folio);
}

__rust_helper void rust_helper_folio_put(struct folio *folio)
{
	folio_put(folio);
}

__rust_helper void rust_helper_folio_lock(struct folio *folio)
{
	folio_lock(folio);
}

__rust_helper bool rust_helper_folio_trylock(struct folio *folio)
{
	return folio_trylock(folio);
}

__rust_helper bool rust_helper_folio_test_locked(const struct folio *folio)
{
	return folio_test_locked(folio);
}

__rust_helper bool rust_helper_folio_test_uptodate(const struct folio *folio)
{
	return folio_test_uptodate(folio);
}

__rust_helper bool rust_helper_folio_test_anon(const struct folio *folio)
{
	return folio_test_anon(folio);
}

__rust_helper bool rust_helper_folio_test_swapbacked(const struct folio *folio)
{
	return folio_test_swapbacked(folio);
}

__rust_helper bool rust_helper_folio_test_lru(const struct folio *folio)
{
	return folio_test_lru(folio);
}

__rust_helper bool rust_helper_folio_test_large(const struct folio *folio)
{
	return folio_test_large(folio);
}

__rust_helper bool rust_helper_folio_test_dirty(const struct folio *folio)
{
	return folio_test_dirty(folio);
}

__rust_helper long rust_helper_folio_nr_pages(const struct folio *folio)
{
	return folio_nr_pages(folio);
}

__rust_helper unsigned int rust_helper_folio_order(const struct folio *folio)
{
	return folio_order(folio);
}

__rust_helper pgoff_t rust_helper_folio_index(const struct folio *folio)
{
	return folio->index;
}

__rust_helper unsigned long rust_helper_folio_pfn(const struct folio *folio)
{
	return folio_pfn(folio);
}

__rust_helper int rust_helper_folio_mapcount(const struct folio *folio)
{
	return folio_mapcount(folio);
}

__rust_helper int rust_helper_folio_ref_count(const struct folio *folio)
{
	return folio_ref_count(folio);
}

__rust_helper struct page *rust_helper_folio_page(struct folio *folio,
						  unsigned long n)
{
	return folio_page(folio, n);
}

__rust_helper struct page *rust_helper_folio_file_page(struct folio *folio,
						       pgoff_t index)
{
	return folio_file_page(folio, index);
}

__rust_helper void rust_helper___folio_mark_uptodate(struct folio *folio)
{
	__folio_mark_uptodate(folio);
}

__rust_helper struct folio *rust_helper_page_folio(struct page *page)
{
	return page_folio(page);
}

__rust_helper unsigned long rust_helper_page_to_pfn(const struct page *page)
{
	return page_to_pfn(page);
}

__rust_helper bool rust_helper_PageHWPoison(const struct page *page)
{
	return PageHWPoison(page);
}

__rust_helper struct folio *
rust_helper_vma_alloc_zeroed_movable_folio(struct vm_area_struct *vma,
					   unsigned long vaddr)
{
	return vma_alloc_zeroed_movable_folio(vma, vaddr);
}

__rust_helper int rust_helper_mem_cgroup_charge(struct folio *folio,
						struct mm_struct *mm, gfp_t gfp)
{
	return mem_cgroup_charge(folio, mm, gfp);
}

__rust_helper void rust_helper_folio_ref_add(struct folio *folio, int nr)
{
	folio_ref_add(folio, nr);
}

#if IS_ENABLED(CONFIG_RUST_MM_KUNIT_TEST) || \
	IS_ENABLED(CONFIG_USERFAULTFD_RUST_KUNIT_TEST)
/* For KUnit tests only, to simulate a memory error on a page they own. */
__rust_helper void rust_helper_SetPageHWPoison(struct page *page)
{
	SetPageHWPoison(page);
}

__rust_helper void rust_helper_ClearPageHWPoison(struct page *page)
{
	ClearPageHWPoison(page);
}

/* For KUnit tests only, to look at the folio a PTE maps. */
__rust_helper struct folio *rust_helper_pfn_folio(unsigned long pfn)
{
	return pfn_folio(pfn);
}
#endif
