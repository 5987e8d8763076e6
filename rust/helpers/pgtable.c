// SPDX-License-Identifier: GPL-2.0

#include <linux/leafops.h>
#include <linux/mm.h>
#include <linux/pgtable.h>

__rust_helper pte_t rust_helper_ptep_get(pte_t *ptep)
{
	return ptep_get(ptep);
}

__rust_helper int rust_helper_pte_none(pte_t pte)
{
	return pte_none(pte);
}

__rust_helper int rust_helper_pte_present(pte_t pte)
{
	return pte_present(pte);
}

__rust_helper int rust_helper_pte_write(pte_t pte)
{
	return pte_write(pte);
}

__rust_helper int rust_helper_pte_dirty(pte_t pte)
{
	return pte_dirty(pte);
}

__rust_helper int rust_helper_pte_uffd(pte_t pte)
{
	return pte_uffd(pte);
}

__rust_helper unsigned long rust_helper_pte_pfn(pte_t pte)
{
	return pte_pfn(pte);
}

/*
 * u64: pteval_t is not defined on every architecture (powerpc, riscv,
 * loongarch, s390 and um have none), and pte_val() returns an unsigned long
 * or an unsigned long long.
 */
__rust_helper u64 rust_helper_pte_val(pte_t pte)
{
	return pte_val(pte);
}

__rust_helper pte_t rust_helper_pte_mkdirty(pte_t pte)
{
	return pte_mkdirty(pte);
}

__rust_helper pte_t rust_helper_pte_mkuffd(pte_t pte)
{
	return pte_mkuffd(pte);
}

/*
 * An out-of-line function on x86 and riscv (whose declaration bindgen then
 * uses instead of this helper), the generic static inline elsewhere.
 */
__rust_helper pte_t rust_helper_pte_mkwrite(pte_t pte, struct vm_area_struct *vma)
{
	return pte_mkwrite(pte, vma);
}

__rust_helper pte_t rust_helper_mk_pte(const struct page *page, pgprot_t prot)
{
	return mk_pte(page, prot);
}

__rust_helper pte_t rust_helper_make_pte_marker(pte_marker marker)
{
	return make_pte_marker(marker);
}

__rust_helper softleaf_t rust_helper_softleaf_from_pte(pte_t pte)
{
	return softleaf_from_pte(pte);
}

__rust_helper enum softleaf_type rust_helper_softleaf_type(softleaf_t entry)
{
	return softleaf_type(entry);
}

__rust_helper pte_marker rust_helper_softleaf_to_marker(softleaf_t entry)
{
	return softleaf_to_marker(entry);
}

__rust_helper void rust_helper_set_ptes(struct mm_struct *mm, unsigned long addr,
					pte_t *ptep, pte_t pte, unsigned int nr)
{
	set_ptes(mm, addr, ptep, pte, nr);
}

__rust_helper void rust_helper_pte_unmap_unlock(pte_t *pte, spinlock_t *ptl)
{
	pte_unmap_unlock(pte, ptl);
}

__rust_helper void rust_helper_update_mmu_cache_range(struct vm_area_struct *vma,
						      unsigned long addr,
						      pte_t *ptep, unsigned int nr)
{
	update_mmu_cache_range(NULL, vma, addr, ptep, nr);
}

__rust_helper pgd_t *rust_helper_pgd_offset(struct mm_struct *mm,
					    unsigned long addr)
{
	return pgd_offset(mm, addr);
}

__rust_helper p4d_t *rust_helper_p4d_alloc(struct mm_struct *mm, pgd_t *pgd,
					   unsigned long addr)
{
	return p4d_alloc(mm, pgd, addr);
}

__rust_helper pud_t *rust_helper_pud_alloc(struct mm_struct *mm, p4d_t *p4d,
					   unsigned long addr)
{
	return pud_alloc(mm, p4d, addr);
}

__rust_helper pmd_t *rust_helper_pmd_alloc(struct mm_struct *mm, pud_t *pud,
					   unsigned long addr)
{
	return pmd_alloc(mm, pud, addr);
}

__rust_helper pmd_t rust_helper_pmdp_get_lockless(pmd_t *pmdp)
{
	return pmdp_get_lockless(pmdp);
}

__rust_helper int rust_helper_pmd_none(pmd_t pmd)
{
	return pmd_none(pmd);
}

__rust_helper int rust_helper_pmd_present(pmd_t pmd)
{
	return pmd_present(pmd);
}

__rust_helper int rust_helper_pmd_leaf(pmd_t pmd)
{
	return pmd_leaf(pmd);
}

__rust_helper int rust_helper_pmd_bad(pmd_t pmd)
{
	return pmd_bad(pmd);
}

__rust_helper void rust_helper_add_mm_counter(struct mm_struct *mm, int member,
					      long value)
{
	add_mm_counter(mm, member, value);
}

__rust_helper unsigned long rust_helper_get_mm_counter(struct mm_struct *mm,
						       int member)
{
	return get_mm_counter(mm, member);
}

__rust_helper int rust_helper_mm_counter(struct folio *folio)
{
	return mm_counter(folio);
}

__rust_helper void rust_helper_inc_mm_counter(struct mm_struct *mm, int member)
{
	inc_mm_counter(mm, member);
}

__rust_helper void rust_helper_update_mmu_cache(struct vm_area_struct *vma,
						unsigned long addr, pte_t *ptep)
{
	update_mmu_cache(vma, addr, ptep);
}

__rust_helper unsigned long rust_helper_get_mm_counter_sum(struct mm_struct *mm,
							   int member)
{
	return get_mm_counter_sum(mm, member);
}

/*
 * PTRS_PER_PTE, for Rust code that reads it at run time: on 64-bit book3s
 * powerpc, a variable set at boot (1 << __pte_index_size), for the MMU found
 * there (radix or hash). Elsewhere kernel::mm::pgtable::ptrs_per_pte() has
 * the constant (RUST_CONST_HELPER_PTRS_PER_PTE), and only tests call this.
 */
__rust_helper unsigned int rust_helper_ptrs_per_pte(void)
{
	return PTRS_PER_PTE;
}

/*
 * kernel::mm::pgtable::pmd_size() is PTRS_PER_PTE pages: check it on every
 * architecture where both are constants (on 64-bit book3s powerpc, PMD_SHIFT
 * is PAGE_SHIFT + __pte_index_size, which says the same).
 */
#ifndef CONFIG_PPC_BOOK3S_64
static_assert(PMD_SIZE == PTRS_PER_PTE * PAGE_SIZE);
#endif

/*
 * Entry constructors, for the KUnit tests of the PTE classification only:
 * nothing outside a test may build such entries.
 */
#if IS_ENABLED(CONFIG_RUST_MM_KUNIT_TEST)
__rust_helper swp_entry_t rust_helper_swp_entry(unsigned long type, pgoff_t offset)
{
	return swp_entry(type, offset);
}

__rust_helper pte_t rust_helper_swp_entry_to_pte(swp_entry_t entry)
{
	return swp_entry_to_pte(entry);
}

__rust_helper swp_entry_t rust_helper_make_readable_migration_entry(pgoff_t offset)
{
	return make_readable_migration_entry(offset);
}

__rust_helper swp_entry_t
rust_helper_make_readable_exclusive_migration_entry(pgoff_t offset)
{
	return make_readable_exclusive_migration_entry(offset);
}

__rust_helper swp_entry_t rust_helper_make_writable_migration_entry(pgoff_t offset)
{
	return make_writable_migration_entry(offset);
}

__rust_helper swp_entry_t
rust_helper_make_readable_device_private_entry(pgoff_t offset)
{
	return make_readable_device_private_entry(offset);
}

__rust_helper swp_entry_t
rust_helper_make_writable_device_private_entry(pgoff_t offset)
{
	return make_writable_device_private_entry(offset);
}

__rust_helper swp_entry_t rust_helper_make_device_exclusive_entry(pgoff_t offset)
{
	return make_device_exclusive_entry(offset);
}

__rust_helper swp_entry_t rust_helper_make_hwpoison_entry(struct page *page)
{
	return make_hwpoison_entry(page);
}
#endif
