// SPDX-License-Identifier: GPL-2.0

//! PMD entries, the PMD lock, and the mapping of a whole PMD-sized page-cache folio with one PMD.
//!
//! - [`PmdEntry`] is the PMD entry for one address of a [`VmaPteMapped`]: empty, pointing to a
//!   PTE table, or mapping a huge page. It stays valid while the VMA is read-locked; the PTE
//!   table it points to may still go away, which is why [`PmdEntry::pte_alloc`] checks it again.
//! - [`PmdGuard`] is that entry with its lock held (`pmd_lock()`). Dropping it releases the lock.
//! - A PMD that maps a page-cache folio is installed through [`PmdGuard::set_pmd_file`] only, from
//!   a [`LockedFolio`], which checks that the mapping is one the kernel could have made itself
//!   in a page fault (`do_set_pmd()` in `mm/memory.c`): the folio is PMD-sized and is the page
//!   cache of the VMA's file at the offset the PMD maps, all of it inside the file, not
//!   hardware-poisoned; the VMA allows a huge mapping there; the entry is empty.
//! - [`PmdValue`] is a PMD entry value (`pmd_t`), read from a [`PmdGuard`].
//!
//! Only kernels with transparent huge pages have this module.
//!
//! See `Documentation/mm/process_addrs.rst` for the locking rules encoded here, and
//! `Documentation/mm/transhuge.rst` for huge mappings of files.
//!
//! C header: [`include/linux/huge_mm.h`](srctree/include/linux/huge_mm.h)

use crate::{
    bindings,
    error::{code::*, Error, Result},
    mm::{
        folio::LockedFolio,
        pgtable::{mm_alloc_pmd, pmd_size, ptrs_per_pte, Pmd, VmaPteMapped},
        virt::flags,
        MmCounter,
    },
    page::PAGE_SIZE,
    types::NotThreadSafe,
};
use core::ptr::NonNull;

/// Returns the number of pages a PMD entry maps (`HPAGE_PMD_NR`): one PTE table's worth,
/// [`ptrs_per_pte()`] (read at run time where the architecture decides it at boot).
#[inline(always)]
pub fn hpage_pmd_nr() -> usize {
    ptrs_per_pte()
}

/// Returns the order of a PMD-sized folio (`HPAGE_PMD_ORDER`).
#[inline(always)]
pub fn hpage_pmd_order() -> u32 {
    hpage_pmd_nr().trailing_zeros()
}

/// A PMD entry value (`pmd_t`).
///
/// This is a value, not a location: it is read from a table with [`PmdGuard::pmdp_get`], and
/// no installation method takes one.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct PmdValue(bindings::pmd_t);

impl PmdValue {
    /// Returns whether the entry is empty (`pmd_none()`).
    #[inline]
    pub fn none(self) -> bool {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pmd_none(self.0) != 0 }
    }

    /// Returns whether the entry is present (`pmd_present()`).
    #[inline]
    pub fn present(self) -> bool {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pmd_present(self.0) != 0 }
    }

    /// Returns whether the entry maps a huge page instead of pointing to a PTE table
    /// (`pmd_leaf()`).
    #[inline]
    pub fn leaf(self) -> bool {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pmd_leaf(self.0) != 0 }
    }

    /// Returns whether the entry allows writes (`pmd_write()`).
    #[inline]
    pub fn write(self) -> bool {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pmd_write(self.0) != 0 }
    }

    /// Returns whether the entry is dirty (`pmd_dirty()`).
    #[inline]
    pub fn dirty(self) -> bool {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pmd_dirty(self.0) != 0 }
    }

    /// Returns the page frame number of a present leaf entry (`pmd_pfn()`).
    #[inline]
    pub fn pfn(self) -> usize {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pmd_pfn(self.0) as usize }
    }
}

/// The PMD entry for one address of a VMA.
///
/// It may be empty, point to a PTE table, or map a huge page, and it may change from one to
/// another whenever its lock is not held: [`pmd_lock`](Self::pmd_lock) locks it,
/// [`pte_alloc`](Self::pte_alloc) makes it point to a PTE table, if it can, for the PTE API of
/// [`Pmd`].
///
/// # Invariants
///
/// `pmd` points to the PMD entry covering `addr` in the page tables of the mm of `vma`, and
/// `addr` is inside `vma`. The PMD entry (the slot, not its value) stays valid while the VMA
/// read lock (or the mmap read lock) is held, which is at least `'a`.
pub struct PmdEntry<'a> {
    pmd: NonNull<bindings::pmd_t>,
    addr: usize,
    vma: &'a VmaPteMapped,
}

impl<'a> PmdEntry<'a> {
    /// Wraps a PMD entry found or allocated by C code.
    ///
    /// # Safety
    ///
    /// `pmd` must point to the PMD entry for `addr` in the page tables of `vma`'s mm, with `addr`
    /// inside `vma`; the entry (the slot) stays valid for `'a` since the VMA is read-locked.
    #[inline]
    pub unsafe fn from_raw(
        vma: &'a VmaPteMapped,
        pmd: NonNull<bindings::pmd_t>,
        addr: usize,
    ) -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self { pmd, addr, vma }
    }

    /// Allocates the page tables down to the PMD entry for `addr`, without a PTE table.
    ///
    /// Fails with `ENOMEM` if a table cannot be allocated and `EINVAL` if `addr` is outside
    /// `vma` or not page aligned.
    pub fn alloc(vma: &'a VmaPteMapped, addr: usize) -> Result<Self> {
        if addr < vma.start() || addr >= vma.end() || addr % PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        let pmd = mm_alloc_pmd(vma, addr)?;
        // INVARIANT: `pmd` is the entry for `addr` in the VMA's mm, `addr` is inside the VMA; the
        // entry stays valid while the VMA is read-locked, which `&'a VmaPteMapped` guarantees.
        Ok(Self { pmd, addr, vma })
    }

    /// Returns a raw pointer to the PMD entry.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::pmd_t {
        self.pmd.as_ptr()
    }

    /// Returns the address this entry was found for.
    #[inline]
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// Returns the VMA this entry was found for.
    #[inline]
    pub fn vma(&self) -> &'a VmaPteMapped {
        self.vma
    }

    /// Returns whether the entry is empty, read without its lock (`pmdp_get_lockless()`): the
    /// answer may be stale by the time it is used.
    #[inline]
    pub fn is_none_lockless(&self) -> bool {
        // SAFETY: The entry is valid by the type invariants and may be read without its lock.
        unsafe { bindings::pmd_none(bindings::pmdp_get_lockless(self.as_ptr())) != 0 }
    }

    /// Makes the entry point to a PTE table if it is empty (allocating one, `__pte_alloc()`),
    /// and returns it as a [`Pmd`] for the PTE API.
    ///
    /// Fails with `ENOMEM` if the table cannot be allocated, `EEXIST` if the entry maps a huge
    /// page (or is a non-present PMD entry), `EFAULT` if it is bad: the errors of the C
    /// `mfill_establish_pmd()`.
    #[inline]
    pub fn pte_alloc(&self) -> Result<Pmd<'a>> {
        // SAFETY: By the type invariants, `pmd` is the entry for `addr` in the VMA's mm and
        // `addr` is inside the VMA.
        unsafe { Pmd::pte_alloc(self.vma, self.pmd, self.addr) }
    }

    /// Locks the entry (`pmd_lock()`).
    ///
    /// Where the architecture deposits a page table with every huge PMD
    /// (`arch_needs_pgtable_deposit()`: powerpc's hash MMU), that table is allocated first,
    /// which may sleep and fails with `ENOMEM`; the guard frees it if no huge PMD took it.
    /// Elsewhere this cannot fail. (C's `do_set_pmd()` allocates that table with the folio
    /// locked too, when the fault path did not preallocate it.)
    ///
    /// While the guard lives, the PMD lock, a spinlock, is held: the holder must not sleep, nor
    /// take another page table lock. This entry's again ([`pmd_lock`](Self::pmd_lock), and
    /// [`pte_alloc`](Self::pte_alloc) and `Pmd::establish()`, which take it to install a table)
    /// deadlocks, and so does any other without split page table locks (all are
    /// `mm->page_table_lock`); with them, the PMD and PTE locks are of one lockdep class, and
    /// nesting two is reported as recursive locking. Unlike a PTE table, the PMD entry is not
    /// mapped with `kmap_local()`, so guards may be dropped in any order.
    #[inline]
    pub fn pmd_lock(&self) -> Result<PmdGuard<'a>> {
        let mm = self.vma.mm().as_raw();
        let mut deposit: bindings::pgtable_t = core::ptr::null_mut();
        // SAFETY: Always safe to call.
        if unsafe { bindings::arch_needs_pgtable_deposit() } {
            // SAFETY: The mm is valid; the allocation may sleep, nothing is locked yet.
            deposit = unsafe { bindings::pte_alloc_one(mm) };
            if deposit.is_null() {
                return Err(ENOMEM);
            }
        }
        // SAFETY: The entry and the mm are valid by the type invariants.
        let ptl = unsafe { bindings::pmd_lock(mm, self.as_ptr()) };
        // INVARIANT: `pmd_lock()` took the lock of this entry and returned it; `deposit` is
        // null or a page table of our own.
        Ok(PmdGuard {
            pmd: self.pmd,
            // SAFETY: `pmd_lock()` returns the lock it took.
            ptl: unsafe { NonNull::new_unchecked(ptl) },
            addr: self.addr,
            vma: self.vma,
            deposit,
            _nts: NotThreadSafe,
        })
    }
}

/// A PMD entry whose lock is held (`pmd_lock()`).
///
/// Created by [`PmdEntry::pmd_lock`]; dropping it unlocks the entry (and frees the page table
/// it preallocated for a deposit, if no huge PMD took it).
///
/// # Invariants
///
/// `pmd` points to the PMD entry covering `addr` in the page tables of the mm of `vma`, `addr`
/// is inside `vma`, and `ptl`, the lock of that entry, is held by this guard. `deposit` is null
/// or a page table (`pte_alloc_one()`) that belongs to this guard.
pub struct PmdGuard<'a> {
    pmd: NonNull<bindings::pmd_t>,
    ptl: NonNull<bindings::spinlock_t>,
    addr: usize,
    vma: &'a VmaPteMapped,
    deposit: bindings::pgtable_t,
    // The lock must be released on the CPU that took it.
    _nts: NotThreadSafe,
}

impl<'a> PmdGuard<'a> {
    /// Returns the address the entry was found for.
    #[inline]
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// Returns the first address the entry maps: [`addr`](Self::addr) rounded down to a
    /// multiple of [`pmd_size()`].
    #[inline]
    pub fn pmd_addr(&self) -> usize {
        self.addr & !(pmd_size() - 1)
    }

    /// Returns the VMA the entry belongs to.
    #[inline]
    pub fn vma(&self) -> &'a VmaPteMapped {
        self.vma
    }

    /// Reads the entry (`pmdp_get()`).
    #[inline]
    pub fn pmdp_get(&self) -> PmdValue {
        // SAFETY: The entry is valid and locked by the type invariants.
        PmdValue(unsafe { bindings::pmdp_get(self.pmd.as_ptr()) })
    }

    /// Maps the whole PMD-sized page-cache folio `folio` with this entry: the file pages that
    /// the VMA maps from [`pmd_addr`](Self::pmd_addr) on, all [`hpage_pmd_nr()`] of them.
    ///
    /// The entry is built here, as for a PTE of a fill: dirty, writable only if the VMA is shared
    /// and writable and its file does not ask to be told of the first write (see
    /// [`PteTableGuard::set_ptes_file`]). Then, as `do_set_pmd()` maps a page-cache folio:
    /// [`hpage_pmd_nr()`] pages are added to the mm counter of the folio, the file reverse mapping
    /// of the whole folio is added (`folio_add_file_rmap_pmd()`), the preallocated page table is
    /// deposited where the architecture wants one, the entry is written (`set_pmd_at()`), the
    /// folio is unlocked, the MMU cache updated (`update_mmu_cache_pmd()`) and the mapping
    /// counted (`THP_FILE_MAPPED`). The entry owns the folio reference in `folio`.
    ///
    /// On failure nothing is changed and the folio is handed back, still locked and referenced,
    /// with the error:
    /// - `EINVAL` if the VMA may not map its file with a huge PMD here: it is registered for
    ///   userfaultfd write protection (a file PMD has no place for the uffd-wp bit of each page),
    ///   transparent huge pages are disabled for it or its process (`MADV_NOHUGEPAGE`,
    ///   `PR_SET_THP_DISABLE`, the hardware), or it does not cover the whole PMD range at a file
    ///   offset that is a multiple of [`hpage_pmd_nr()`] (`thp_vma_suitable_order()`);
    /// - `EINVAL` if the folio is not the uptodate page cache of the VMA's file at the offset the
    ///   entry maps, or not of [`hpage_pmd_order()`];
    /// - `EIO` if a page of the folio has a hardware memory error
    ///   (`folio_test_has_hwpoisoned()`);
    /// - `EEXIST` if the entry is not empty;
    /// - `EFAULT` if a page of the folio is at or beyond the end of the file (`i_size`).
    ///
    /// As for PTEs, the folio lock is what makes this safe against truncation: truncation sets
    /// `i_size` first, then locks each folio it removes or splits and unmaps it (splitting a file
    /// PMD unmaps it whole), so either it has not reached this folio yet and will unmap the PMD,
    /// or it has and the folio is no longer the page cache at this offset. The `i_size` test
    /// keeps a folio that crosses the end of the file out of a PMD in the steady state.
    ///
    /// [`PteTableGuard::set_ptes_file`]: crate::mm::pgtable::PteTableGuard::set_ptes_file
    pub fn set_pmd_file(&mut self, folio: LockedFolio) -> Result<(), (Error, LockedFolio)> {
        let haddr = self.pmd_addr();
        let index = match self.file_pmd_index(&folio, haddr) {
            Ok(index) => index,
            Err(e) => return Err((e, folio)),
        };
        // SAFETY: The folio is valid. `memory_failure()` sets the flag without the folio lock, so
        // the test is racy, as in `do_set_pmd()`: a page poisoned after it is unmapped again when
        // `memory_failure()` splits the folio.
        if unsafe { bindings::folio_test_has_hwpoisoned(folio.as_ptr()) } {
            return Err((EIO, folio));
        }
        if !self.pmdp_get().none() {
            return Err((EEXIST, folio));
        }
        // `file_pmd_index()` found the file.
        let Some(file) = self.vma.file() else {
            return Err((EINVAL, folio));
        };
        let size = u64::try_from(file.inode().i_size_read()).unwrap_or(0);
        if (index as u64).saturating_add(hpage_pmd_nr() as u64) > size.div_ceil(PAGE_SIZE as u64) {
            return Err((EFAULT, folio));
        }
        let vm_flags = self.vma.flags();
        let vma = self.vma.as_ptr();
        let mm = self.vma.mm().as_raw();
        let counter = MmCounter::of_folio(&folio);
        // SAFETY: The folio is valid and holds `HPAGE_PMD_NR` pages, the first one at index 0.
        let head = unsafe { bindings::folio_page(folio.as_ptr(), 0) };
        // SAFETY: The lock of the empty entry is held; the folio is locked, in the page cache of
        // the VMA's file at the offset the entry maps, uptodate and of PMD order; the VMA covers
        // the PMD range and may map it with a huge PMD. The entry takes our folio reference; the
        // deposited table, if any, is ours and becomes the entry's.
        unsafe {
            bindings::flush_icache_pages(vma, head, hpage_pmd_nr() as u32);
            let mut pmd = bindings::pmd_mkdirty(bindings::folio_mk_pmd(
                folio.as_ptr(),
                self.vma.page_prot().as_raw(),
            ));
            if vm_flags & flags::WRITE != 0
                && self
                    .vma
                    .maps_page_cache_writable(vm_flags, bindings::pmd_write(pmd) != 0)
            {
                pmd = bindings::pmd_mkwrite(pmd, vma);
            }
            bindings::add_mm_counter(mm, counter as i32, hpage_pmd_nr() as isize);
            bindings::folio_add_file_rmap_pmd(folio.as_ptr(), head, vma);
            if !self.deposit.is_null() {
                bindings::pgtable_trans_huge_deposit(mm, self.pmd.as_ptr(), self.deposit);
                bindings::mm_inc_nr_ptes(mm);
                self.deposit = core::ptr::null_mut();
            }
            bindings::set_pmd_at(mm, haddr, self.pmd.as_ptr(), pmd);
        }
        // SAFETY: The entry just written owns the reference.
        unsafe { folio.unlock_and_transfer() };
        // SAFETY: The entry is still locked; no TLB flush: it was empty before.
        unsafe {
            bindings::update_mmu_cache_pmd(vma, haddr, self.pmd.as_ptr());
            bindings::count_vm_event(bindings::vm_event_item_THP_FILE_MAPPED);
        }
        Ok(())
    }

    /// Returns the file offset of the PMD range at `haddr`, if the VMA may map it with a huge
    /// PMD and `folio` is the page cache of the VMA's file there, uptodate and of PMD order.
    ///
    /// The checks of [`set_pmd_file`](Self::set_pmd_file) that need no more than the VMA and
    /// the folio: on every call.
    #[inline]
    fn file_pmd_index(&self, folio: &LockedFolio, haddr: usize) -> Result<usize> {
        let vm_flags = self.vma.flags();
        let Some(file) = self.vma.file() else {
            return Err(EINVAL);
        };
        let vma = self.vma.as_ptr();
        if vm_flags & (flags::UFFD_WP | flags::UFFD_RWP) != 0 {
            return Err(EINVAL);
        }
        // As `do_set_pmd()`: an existing large folio may be mapped whole unless THPs are
        // disabled by the hardware or for the VMA or the whole process (it is not asked whether
        // new ones may be allocated for it).
        // SAFETY: The VMA is valid and read-locked; the helpers only read it and its mm.
        let allowed = unsafe {
            !bindings::thp_disabled_by_hw()
                && !bindings::vma_thp_disabled(vma, vm_flags, true)
                && bindings::thp_vma_suitable_order(vma, haddr, hpage_pmd_order() as i32)
        };
        if !allowed {
            return Err(EINVAL);
        }
        // SAFETY: The file of a read-locked VMA is valid, and so is its `f_mapping`.
        let mapping = unsafe { (*file.as_ptr()).f_mapping };
        let index = self.vma.linear_page_index(haddr);
        // The folio is locked and in the page cache, so its index is stable.
        if !folio.in_mapping(mapping)
            || !folio.test_uptodate()
            || folio.nr_pages() != hpage_pmd_nr()
            || folio.index() != index
        {
            return Err(EINVAL);
        }
        Ok(index)
    }
}

impl Drop for PmdGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariants, this guard holds the lock.
        unsafe { bindings::spin_unlock(self.ptl.as_ptr()) };
        if !self.deposit.is_null() {
            // SAFETY: The preallocated table is ours and nothing refers to it.
            unsafe { bindings::pte_free(self.vma.mm().as_raw(), self.deposit) };
        }
    }
}

#[cfg(CONFIG_RUST_MM_KUNIT_TEST)]
#[macros::kunit_tests(rust_mm_pmd)]
mod tests {
    use super::*;
    use crate::{
        alloc::{flags::GFP_KERNEL, KVec},
        fs::File,
        mm::{
            folio::Folio,
            kunit::{self, page_tag, prot, HugeTmpfs, ThpFile},
            shmem::{shmem_file_setup, shmem_get_folio, SgpType},
        },
        sync::aref::ARef,
    };

    const PS: i64 = PAGE_SIZE as i64;

    /// Runs `f` on the PMD entry for `addr` in the current mm, allocated down to the PMD level
    /// (no PTE table) under the mmap read lock.
    fn with_entry<R>(addr: usize, f: impl FnOnce(&PmdEntry<'_>) -> Result<R>) -> Result<R> {
        let mm = kunit::current_mm()?;
        let mmap = mm.mmap_read_lock();
        let vma = mmap.vma_lookup(addr).ok_or(ENOENT)?;
        let entry = PmdEntry::alloc(vma.as_pte_mapped().ok_or(EINVAL)?, addr)?;
        f(&entry)
    }

    /// Reads the PMD entry for `addr` under its lock.
    fn read_pmd(addr: usize) -> Result<PmdValue> {
        with_entry(addr, |e| Ok(e.pmd_lock()?.pmdp_get()))
    }

    /// Maps `folio` with the PMD entry for `addr`: `None`, or the error and whether the folio
    /// came back locked.
    fn try_map(addr: usize, folio: LockedFolio) -> Result<Option<(Error, bool)>> {
        with_entry(addr, |e| {
            let mut pmd = e.pmd_lock()?;
            let res = pmd.set_pmd_file(folio);
            drop(pmd);
            Ok(res.err().map(|(e, f)| (e, f.test_locked())))
        })
    }

    /// How many PMD mappings of file THPs were counted (`THP_FILE_MAPPED`, all CPUs).
    fn thp_file_mapped() -> Result<usize> {
        let mut events = KVec::with_capacity(
            bindings::vm_event_item_NR_VM_EVENT_ITEMS as usize,
            GFP_KERNEL,
        )?;
        events.resize(
            bindings::vm_event_item_NR_VM_EVENT_ITEMS as usize,
            0,
            GFP_KERNEL,
        )?;
        // SAFETY: `events` has room for every event counter.
        unsafe { bindings::all_vm_events(events.as_mut_ptr()) };
        Ok(events[bindings::vm_event_item_THP_FILE_MAPPED as usize])
    }

    /// The state a refused mapping must leave alone.
    #[derive(PartialEq, Eq, Debug)]
    struct Seen {
        none: bool,
        mapcount: i32,
        entire: i32,
        locked: bool,
        refs: i32,
        shmem: usize,
        file: usize,
        events: usize,
    }

    fn seen(addr: usize, folio: &Folio) -> Result<Seen> {
        let mm = kunit::current_mm()?;
        Ok(Seen {
            none: read_pmd(addr)?.none(),
            mapcount: folio.mapcount(),
            // Only a large folio has an entire mapcount.
            entire: if folio.test_large() {
                // SAFETY: The folio is valid and large.
                unsafe { bindings::folio_entire_mapcount(folio.as_ptr()) }
            } else {
                0
            },
            locked: folio.test_locked(),
            refs: kunit::settled_ref_count(folio),
            shmem: mm.get_mm_counter_sum(MmCounter::ShmemPages),
            file: mm.get_mm_counter_sum(MmCounter::FilePages),
            events: thp_file_mapped()?,
        })
    }

    /// A [`ThpFile`] mapped whole with `prot` and `flags`, at a PMD-aligned address, THPs
    /// allowed; `None` (the test skipped) if there is none.
    fn thp_mapped(prot: usize, flags: usize) -> Result<Option<(ThpFile, usize)>> {
        let Some(t) = ThpFile::new(c"rust_mm_pmd")? else {
            return Ok(None);
        };
        let addr = kunit::vm_mmap(Some(&t.file), ThpFile::size(), prot, flags, 0)?;
        if addr % pmd_size() != 0 {
            crate::kunit::mark_skipped(c"the mapping is not PMD aligned");
            return Ok(None);
        }
        Ok(Some((t, addr)))
    }

    /// Maps `len` bytes of `file` from `offset` at the fixed address `addr` of the test's mm.
    fn vm_mmap_at(file: &File, addr: usize, len: usize, offset: usize) -> Result {
        // SAFETY: Always safe to call; NULL outside of a KUnit test.
        let test = unsafe { bindings::kunit_get_current_test() };
        if test.is_null() {
            return Err(EINVAL);
        }
        let flags = prot::MAP_SHARED | bindings::MAP_FIXED as usize;
        // SAFETY: `test` is the running test and `file` a valid file.
        let got = unsafe {
            bindings::kunit_vm_mmap(test, file.as_ptr(), addr, len, prot::READ, flags, offset)
        };
        if got != addr {
            return Err(ENOMEM);
        }
        Ok(())
    }

    /// A PMD-aligned address with `pmds` PMD ranges of address space reserved after it.
    fn aligned_window(pmds: usize) -> Result<usize> {
        let base = kunit::vm_mmap(
            None,
            (pmds + 1) * pmd_size(),
            prot::READ,
            prot::MAP_PRIVATE,
            0,
        )?;
        Ok(base.next_multiple_of(pmd_size()))
    }

    #[test]
    fn install_file_pmd() -> Result {
        let Some((t, addr)) = thp_mapped(prot::READ | prot::WRITE, prot::MAP_SHARED)? else {
            return Ok(());
        };
        let mm = kunit::current_mm()?;
        let before = seen(addr, &t.folio)?;
        assert!(before.none && before.mapcount == 0 && before.entire == 0);
        assert_eq!(try_map(addr, LockedFolio::lock(t.folio.clone()))?, None);
        let pmd = read_pmd(addr)?;
        // Built like a PTE of a fill: dirty, and writable in a shared writable mapping.
        assert!(pmd.present() && pmd.leaf() && pmd.write() && pmd.dirty());
        assert_eq!(pmd.pfn(), t.folio.pfn());
        let after = seen(addr, &t.folio)?;
        // One mapping of the whole folio: its entire mapcount, no page mapped on its own.
        assert_eq!((after.mapcount, after.entire), (1, 1));
        assert!(!after.locked);
        // The PMD took over the reference of the folio that was passed.
        assert_eq!(after.refs, before.refs + 1);
        assert_eq!(after.shmem, before.shmem + hpage_pmd_nr());
        assert_eq!(after.file, before.file);
        assert!(after.events > before.events);
        // Every page reads its contents through the mapping, which stays a PMD.
        for n in [0, 1, hpage_pmd_nr() / 2, hpage_pmd_nr() - 1] {
            let mut buf = [0u8; 8];
            kunit::read_user(addr + n * PAGE_SIZE, &mut buf)?;
            assert_eq!(buf, page_tag(n));
        }
        assert!(read_pmd(addr + pmd_size() - PAGE_SIZE)?.leaf());
        // A second mapping over it is refused, and the folio comes back.
        assert_eq!(
            try_map(addr, LockedFolio::lock(t.folio.clone()))?,
            Some((EEXIST, true))
        );
        // Zapping the PMD takes back everything it added.
        kunit::madvise(addr, pmd_size(), bindings::MADV_DONTNEED as i32)?;
        assert!(read_pmd(addr)?.none());
        let zapped = seen(addr, &t.folio)?;
        assert_eq!((zapped.mapcount, zapped.entire), (0, 0));
        assert_eq!(zapped.refs, before.refs);
        assert_eq!(mm.get_mm_counter_sum(MmCounter::ShmemPages), before.shmem);
        Ok(())
    }

    /// A private mapping, or a shared read-only one, gets a read-only PMD: the page cache must
    /// not become writable through either.
    #[test]
    fn read_only_unless_shared_and_writable() -> Result {
        for (prot, flags) in [
            (prot::READ | prot::WRITE, prot::MAP_PRIVATE),
            (prot::READ, prot::MAP_SHARED),
        ] {
            let Some((t, addr)) = thp_mapped(prot, flags)? else {
                return Ok(());
            };
            assert_eq!(try_map(addr, LockedFolio::lock(t.folio.clone()))?, None);
            let pmd = read_pmd(addr)?;
            assert!(pmd.present() && pmd.leaf() && pmd.dirty() && !pmd.write());
        }
        Ok(())
    }

    /// Checks that mapping `folio` at `addr` is refused with `err`, hands the folio back locked
    /// and changes nothing.
    fn refused(addr: usize, folio: &ARef<Folio>, err: Error) -> Result {
        let before = seen(addr, folio)?;
        assert_eq!(
            try_map(addr, LockedFolio::lock(folio.clone()))?,
            Some((err, true))
        );
        assert_eq!(seen(addr, folio)?, before);
        Ok(())
    }

    #[test]
    fn refused_over_a_pte_table() -> Result {
        let Some((t, addr)) = thp_mapped(prot::READ | prot::WRITE, prot::MAP_SHARED)? else {
            return Ok(());
        };
        with_entry(addr, |e| e.pte_alloc().map(|_| ()))?;
        let before = t.folio.mapcount();
        assert_eq!(
            try_map(addr, LockedFolio::lock(t.folio.clone()))?,
            Some((EEXIST, true))
        );
        assert_eq!(t.folio.mapcount(), before);
        assert!(with_entry(addr, |e| Ok(!e.is_none_lockless()))?);
        Ok(())
    }

    #[test]
    fn refused_where_thps_are_disabled() -> Result {
        let Some((t, addr)) = thp_mapped(prot::READ | prot::WRITE, prot::MAP_SHARED)? else {
            return Ok(());
        };
        kunit::madvise(addr, pmd_size(), bindings::MADV_NOHUGEPAGE as i32)?;
        refused(addr, &t.folio, EINVAL)
    }

    /// A VMA that covers only part of the PMD range, and one whose file offsets are not aligned
    /// to the PMD ranges of its addresses.
    #[test]
    fn refused_where_the_vma_cannot_map_the_pmd() -> Result {
        let Some(t) = ThpFile::new(c"rust_mm_pmd")? else {
            return Ok(());
        };
        let win = aligned_window(2)?;
        // The file from its second page on, at the second page of a PMD range.
        vm_mmap_at(&t.file, win + PAGE_SIZE, pmd_size() - PAGE_SIZE, PAGE_SIZE)?;
        refused(win + PAGE_SIZE, &t.folio, EINVAL)?;
        // The file from its first page, one page into a PMD range: the next PMD range is inside
        // the VMA, but maps the folio from its last page on.
        vm_mmap_at(&t.file, win + PAGE_SIZE, pmd_size(), 0)?;
        refused(win + pmd_size(), &t.folio, EINVAL)
    }

    #[test]
    fn refused_for_a_small_folio() -> Result {
        let file = shmem_file_setup(c"rust_mm_pmd", pmd_size() as i64)?;
        kunit::file_write(&file, 0, b"small")?;
        let folio: ARef<Folio> = shmem_get_folio(file.inode(), 0, 0, SgpType::NoAlloc)?
            .ok_or(ENOENT)?
            .unlock();
        if folio.nr_pages() != 1 {
            crate::kunit::mark_skipped(c"shmem gave a large folio");
            return Ok(());
        }
        let win = aligned_window(1)?;
        vm_mmap_at(&file, win, pmd_size(), 0)?;
        refused(win, &folio, EINVAL)
    }

    #[test]
    fn refused_for_another_files_folio() -> Result {
        let Some((_t, addr)) = thp_mapped(prot::READ | prot::WRITE, prot::MAP_SHARED)? else {
            return Ok(());
        };
        let Some(other) = ThpFile::new(c"rust_mm_pmd")? else {
            return Ok(());
        };
        refused(addr, &other.folio, EINVAL)
    }

    #[cfg(CONFIG_USERFAULTFD_RUST_TEST)]
    #[test]
    fn refused_for_a_folio_not_uptodate() -> Result {
        let Some(tmpfs) = HugeTmpfs::new()? else {
            crate::kunit::mark_skipped(c"no tmpfs");
            return Ok(());
        };
        let file = tmpfs.file(c"rust_mm_pmd", pmd_size() as i64)?;
        kunit::file_fallocate(&file, 0, 0, pmd_size() as i64)?;
        let folio = crate::mm::folio::filemap_lock_folio_nowait(file.inode(), 0)
            .ok_or(ENOENT)?
            .unlock();
        if folio.nr_pages() != hpage_pmd_nr() || folio.test_uptodate() {
            crate::kunit::mark_skipped(c"fallocate() gave no PMD-sized folio to zero");
            return Ok(());
        }
        let addr = kunit::vm_mmap(Some(&file), pmd_size(), prot::READ, prot::MAP_SHARED, 0)?;
        if addr % pmd_size() != 0 {
            crate::kunit::mark_skipped(c"the mapping is not PMD aligned");
            return Ok(());
        }
        refused(addr, &folio, EINVAL)
    }

    #[cfg(CONFIG_MEMORY_FAILURE)]
    #[test]
    fn refused_for_a_hwpoisoned_folio() -> Result {
        let Some((t, addr)) = thp_mapped(prot::READ | prot::WRITE, prot::MAP_SHARED)? else {
            return Ok(());
        };
        // SAFETY: The folio is ours for the test: nothing maps it and the flag is cleared below.
        unsafe { bindings::folio_set_has_hwpoisoned(t.folio.as_ptr()) };
        let res = refused(addr, &t.folio, EIO);
        // SAFETY: As above.
        unsafe { bindings::folio_clear_has_hwpoisoned(t.folio.as_ptr()) };
        res
    }

    /// A PMD-sized folio that reaches beyond the end of its file.
    #[test]
    fn refused_beyond_eof() -> Result {
        let Some(tmpfs) = HugeTmpfs::new()? else {
            crate::kunit::mark_skipped(c"no tmpfs");
            return Ok(());
        };
        let file = tmpfs.file(c"rust_mm_pmd", 10 * PS)?;
        kunit::file_write(&file, 0, b"short")?;
        let folio: ARef<Folio> = shmem_get_folio(file.inode(), 0, 0, SgpType::NoAlloc)?
            .ok_or(ENOENT)?
            .unlock();
        if folio.nr_pages() != hpage_pmd_nr() {
            crate::kunit::mark_skipped(c"shmem did not allocate a PMD-sized folio");
            return Ok(());
        }
        let addr = kunit::vm_mmap(Some(&file), pmd_size(), prot::READ, prot::MAP_SHARED, 0)?;
        if addr % pmd_size() != 0 {
            crate::kunit::mark_skipped(c"the mapping is not PMD aligned");
            return Ok(());
        }
        refused(addr, &folio, EFAULT)
    }
}
