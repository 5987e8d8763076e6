// SPDX-License-Identifier: GPL-2.0

//! CPU page tables: PTE tables and the installation of new mappings.
//!
//! - [`VmaPteMapped`] is a VMA whose pages are mapped by PTE tables of ordinary pages, the only
//!   kind this module allocates, maps and fills page tables for.
//! - [`Pmd`] is a PMD entry that points to a PTE table, valid while the VMA is read-locked.
//! - [`PteTableGuard`] is a PTE table that is mapped and locked (`pte_offset_map_lock()`), lent
//!   to a closure by [`Pmd::pte_offset_map_lock`]. When the closure returns, the full
//!   `pte_unmap_unlock()` is done: the page table lock is released *and* the table is unmapped,
//!   which leaves the RCU read-side critical section that `pte_offset_map_lock()` entered.
//! - New mappings are installed through [`PteTableGuard`] only, from a [`LockedFolio`] (page
//!   cache) or a [`NewAnonFolio`], so that installing a PTE cannot compile without the page table
//!   lock and, for the page cache, the folio lock.
//!
//! See `Documentation/mm/process_addrs.rst` for the locking rules encoded here.
//!
//! The entries themselves, and their classification, are in [`crate::mm::pte`].
//!
//! C header: [`include/linux/pgtable.h`](srctree/include/linux/pgtable.h)

use crate::{
    bindings,
    error::{code::*, Error, Result},
    fs::File,
    mm::{
        folio::{FolioPage, LockedFolio, NewAnonFolio, PgOff},
        pte::{Pte, PteMarker},
        virt::{flags, vm_flags_t, VmaRef},
        MmCounter,
    },
    page::PAGE_SIZE,
    types::NotThreadSafe,
};
use core::{marker::PhantomData, ops::Deref, ptr::NonNull};

/// mm's `folio_add_lru_vma()`, with which [`PteTableGuard::set_pte_new_anon`] puts a new
/// anonymous folio on the LRU list its VMA calls for, or mlocks it in an `mlock()`ed VMA.
///
/// `folio_add_lru_vma()` is internal to mm (`mm/internal.h`): the kernel crate has no binding
/// for it, and there is no public function with its semantics (`folio_add_lru()` does not mlock).
/// Rust code of mm, under `mm/`, declares it as mm's C files do and implements this trait, by
/// which it hands the function to the installation.
///
/// # Safety
///
/// [`folio_add_lru_vma`](Self::folio_add_lru_vma) must call mm's `folio_add_lru_vma()` with
/// the arguments it is given, and do nothing else.
pub unsafe trait FolioAddLruVma {
    /// Calls `folio_add_lru_vma(folio, vma)`.
    ///
    /// # Safety
    ///
    /// As for the C function: `folio` is a new folio on no LRU list, being mapped into `vma`,
    /// with its anonymous reverse mapping set up.
    unsafe fn folio_add_lru_vma(folio: *mut bindings::folio, vma: *mut bindings::vm_area_struct);
}

/// Returns the number of entries in a PTE table (`PTRS_PER_PTE`).
///
/// A constant on every architecture but 64-bit book3s powerpc, where the MMU found at boot
/// (radix or hash) decides it, and it is read from the kernel's variable.
#[inline(always)]
pub fn ptrs_per_pte() -> usize {
    #[cfg(not(CONFIG_PPC_BOOK3S_64))]
    let n = bindings::PTRS_PER_PTE;
    #[cfg(CONFIG_PPC_BOOK3S_64)]
    let n = {
        // SAFETY: Reads a variable that is set once, at boot.
        unsafe { bindings::ptrs_per_pte() }
    };
    n as usize
}

/// Returns the size of the virtual range one PMD entry covers (`PMD_SIZE`): [`ptrs_per_pte()`]
/// pages (which `rust/helpers/pgtable.c` checks at build time where both are constants).
#[inline(always)]
pub fn pmd_size() -> usize {
    ptrs_per_pte() * PAGE_SIZE
}

/// A VMA whose pages are mapped by PTE tables of ordinary pages, in which this module may
/// allocate page tables and install page-cache or anonymous pages.
///
/// That excludes hugetlb VMAs (their page tables have a layout of their own), `VM_PFNMAP`,
/// `VM_IO` and `VM_MIXEDMAP` VMAs (raw PFNs, no `struct page` rules), DAX VMAs (no page cache
/// pages), and a VMA that is still being set up by a driver's `mmap` hook ([`VmaNew`]): it is not
/// in the mm's VMA tree yet, and page tables built for it would be found by no one.
///
/// Obtained from a [`VmaRef`] with [`VmaRef::as_pte_mapped`], which checks all of this.
///
/// # Invariants
///
/// The VMA is read-locked (as for [`VmaRef`]), is in its mm's VMA tree, and is none of the
/// kinds above.
///
/// [`VmaNew`]: crate::mm::virt::VmaNew
#[repr(transparent)]
pub struct VmaPteMapped {
    vma: VmaRef,
}

impl Deref for VmaPteMapped {
    type Target = VmaRef;

    #[inline]
    fn deref(&self) -> &VmaRef {
        &self.vma
    }
}

impl VmaPteMapped {
    /// Access a VMA whose page tables may hold PTE tables of ordinary pages, without checking.
    ///
    /// # Safety
    ///
    /// The caller must ensure that the invariants of [`VmaPteMapped`] hold for the duration of
    /// `'a`: `vma` is read-locked, in its mm's VMA tree, and not a hugetlb, `VM_PFNMAP`, `VM_IO`,
    /// `VM_MIXEDMAP` or DAX VMA. The C userfaultfd fill paths call this after the hugetlb branch,
    /// on a VMA they looked up and locked.
    #[inline]
    pub unsafe fn from_raw<'a>(vma: *const bindings::vm_area_struct) -> &'a Self {
        // SAFETY: The caller ensures that the invariants are satisfied for the duration of 'a.
        unsafe { &*vma.cast() }
    }
}

impl VmaRef {
    /// Returns this VMA as a [`VmaPteMapped`] if its pages are mapped by PTE tables of ordinary
    /// pages, `None` otherwise (hugetlb, `VM_PFNMAP`, `VM_IO`, `VM_MIXEDMAP`, DAX, or a VMA that
    /// is not in its mm's VMA tree, such as one inside a driver's `mmap` hook).
    pub fn as_pte_mapped(&self) -> Option<&VmaPteMapped> {
        if self.flags() & (flags::HUGETLB | flags::PFNMAP | flags::IO | flags::MIXEDMAP) != 0 {
            return None;
        }
        // SAFETY: The VMA is valid and read-locked, so is the file it maps.
        if unsafe { bindings::vma_is_dax(self.as_ptr()) } {
            return None;
        }
        // SAFETY: The mm of a read-locked VMA is valid; `vma_lookup()` may be called with the
        // mmap lock or a VMA lock held (it walks the tree under RCU).
        let found = unsafe { bindings::vma_lookup(self.mm().as_raw(), self.start()) };
        if !core::ptr::eq(found, self.as_ptr()) {
            return None;
        }
        // SAFETY: Checked above: the VMA is in the tree and of none of the excluded kinds; it is
        // read-locked as `&self` guarantees.
        Some(unsafe { VmaPteMapped::from_raw(self.as_ptr()) })
    }
}

/// Allocates the page tables down to the PMD entry for `addr` in `vma`'s mm, if they are missing
/// (the C `mm_alloc_pmd()` of `mm/userfaultfd.c`), and returns that entry, which may be empty,
/// point to a PTE table or map a huge page.
///
/// Fails with `ENOMEM` if a table cannot be allocated.
pub(crate) fn mm_alloc_pmd(vma: &VmaPteMapped, addr: usize) -> Result<NonNull<bindings::pmd_t>> {
    let mm = vma.mm().as_raw();
    // SAFETY: The mm of a read-locked VMA is valid, and the allocation helpers may be called
    // with the mmap or VMA read lock held.
    let pmd = unsafe {
        let pgd = bindings::pgd_offset(mm, addr);
        let p4d = bindings::p4d_alloc(mm, pgd, addr);
        if p4d.is_null() {
            return Err(ENOMEM);
        }
        let pud = bindings::pud_alloc(mm, p4d, addr);
        if pud.is_null() {
            return Err(ENOMEM);
        }
        bindings::pmd_alloc(mm, pud, addr)
    };
    NonNull::new(pmd).ok_or(ENOMEM)
}

impl VmaPteMapped {
    /// Returns whether a page of the VMA's file may be mapped writable (and dirty) into the VMA
    /// by a fill, which is what the page-table installations of page-cache folios do: the VMA is
    /// shared (in a private one, a write must copy the page first) and its file does not want
    /// to be told of the first write to a page
    /// ([`ops_want_writenotify`](Self::ops_want_writenotify),
    /// [`file_can_writeback`](Self::file_can_writeback)).
    ///
    /// `vm_flags` are the VMA's flags, read once by the caller, who checked `VM_WRITE`;
    /// `prot_writable` is whether the VMA's `vm_page_prot` allows writes.
    #[inline(always)]
    pub(crate) fn maps_page_cache_writable(
        &self,
        vm_flags: vm_flags_t,
        prot_writable: bool,
    ) -> bool {
        vm_flags & flags::SHARED != 0
            && !self.ops_want_writenotify()
            && (prot_writable || !self.file_can_writeback())
    }

    /// Returns whether the VMA's `vm_ops` want a write fault before a page is written through a
    /// shared mapping: they have `page_mkwrite()` or `pfn_mkwrite()`. shmem's do not. A page of
    /// such a file is mapped read-only, so that the first write faults and the file system is
    /// asked.
    #[inline]
    fn ops_want_writenotify(&self) -> bool {
        // SAFETY: The VMA is read-locked, which keeps its `vm_ops` NULL or a valid table.
        let ops = unsafe { (*self.as_ptr()).vm_ops.as_ref() };
        ops.is_some_and(|ops| ops.page_mkwrite.is_some() || ops.pfn_mkwrite.is_some())
    }

    /// Returns whether the mapping of the VMA's file writes dirty pages back
    /// (`mapping_can_writeback()`), which also wants a write fault before a page is written
    /// through a shared mapping. shmem's does not.
    ///
    /// Only called if the VMA's `vm_page_prot` does not allow writes: if it does, the kernel did
    /// not ask for write faults to track dirty pages (`vma_set_page_prot()` makes it read-only if
    /// the mapping can write back), and this test, a call, is not needed.
    fn file_can_writeback(&self) -> bool {
        self.file().is_some_and(|file| {
            // SAFETY: The file of a read-locked VMA is valid, and so is its mapping.
            unsafe { bindings::mapping_can_writeback((*file.as_ptr()).f_mapping) }
        })
    }
}

/// A PMD entry that points to a PTE table, for one address.
///
/// The PTE table itself may go away at any time (khugepaged collapses page tables of file
/// mappings under the mmap read lock), which is why mapping it with
/// [`pte_offset_map_lock`](Pmd::pte_offset_map_lock) can fail. The PMD entry does not go away
/// while the VMA is read-locked.
///
/// # Invariants
///
/// `pmd` points to the PMD entry covering `addr` in the page tables of the mm of `vma`, and
/// `addr` is inside `vma`. The PMD entry stays valid while the VMA read lock (or the mmap read
/// lock) is held, which is at least `'a`.
pub struct Pmd<'a> {
    pmd: NonNull<bindings::pmd_t>,
    addr: usize,
    vma: &'a VmaPteMapped,
}

impl<'a> Pmd<'a> {
    /// Wraps a PMD entry established by C code.
    ///
    /// # Safety
    ///
    /// `pmd` must point to the PMD entry for `addr` in the page tables of `vma`'s mm, with `addr`
    /// inside `vma`, and the entry must stay valid for `'a` (the VMA is read-locked).
    #[inline]
    pub unsafe fn from_raw(
        vma: &'a VmaPteMapped,
        pmd: NonNull<bindings::pmd_t>,
        addr: usize,
    ) -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self { pmd, addr, vma }
    }

    /// Allocates the page tables down to a PTE table for `addr` (the C
    /// `mfill_establish_pmd()`).
    ///
    /// Fails with `ENOMEM` if a table cannot be allocated, `EEXIST` if the range is mapped by a
    /// huge PMD (or a non-present PMD entry), `EFAULT` if the PMD entry is bad, and `EINVAL` if
    /// `addr` is outside `vma` or not page aligned.
    pub fn establish(vma: &'a VmaPteMapped, addr: usize) -> Result<Self> {
        if addr < vma.start() || addr >= vma.end() || addr % PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        let pmd = mm_alloc_pmd(vma, addr)?;
        // SAFETY: `pmd` is the entry for `addr` in the VMA's mm, and `addr` is inside the VMA.
        unsafe { Self::pte_alloc(vma, pmd, addr) }
    }

    /// Allocates the PTE table of the PMD entry `pmd` if it is empty (`__pte_alloc()`), and
    /// checks that the entry points to a PTE table: the second half of [`establish`].
    ///
    /// Fails with `ENOMEM` if the table cannot be allocated, `EEXIST` if the entry maps a huge
    /// page (or is a non-present PMD entry), `EFAULT` if it is bad.
    ///
    /// # Safety
    ///
    /// `pmd` must point to the PMD entry for `addr` in the page tables of `vma`'s mm, with `addr`
    /// inside `vma`.
    ///
    /// [`establish`]: Self::establish
    pub(crate) unsafe fn pte_alloc(
        vma: &'a VmaPteMapped,
        pmd: NonNull<bindings::pmd_t>,
        addr: usize,
    ) -> Result<Self> {
        let mm = vma.mm().as_raw();
        // SAFETY: `pmd` is a valid PMD entry in this mm (guaranteed by the caller), which may
        // be read locklessly and populated with the mmap or VMA read lock held.
        unsafe {
            let val = bindings::pmdp_get_lockless(pmd.as_ptr());
            if bindings::pmd_none(val) != 0 && bindings::__pte_alloc(mm, pmd.as_ptr()) != 0 {
                return Err(ENOMEM);
            }
            // Re-read: a huge PMD may have been installed meanwhile.
            let val = bindings::pmdp_get_lockless(pmd.as_ptr());
            if bindings::pmd_present(val) == 0 || bindings::pmd_leaf(val) != 0 {
                return Err(EEXIST);
            }
            if bindings::pmd_bad(val) != 0 {
                return Err(EFAULT);
            }
        }
        // INVARIANT: `pmd` is the entry for `addr` in the VMA's mm, `addr` is inside the VMA; the
        // entry stays valid while the VMA is read-locked, which `&'a VmaPteMapped` guarantees.
        Ok(Self { pmd, addr, vma })
    }

    /// Returns a raw pointer to the PMD entry.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::pmd_t {
        self.pmd.as_ptr()
    }

    /// Returns the address this PMD entry was established for.
    #[inline]
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// Returns the VMA this PMD entry was established for.
    #[inline]
    pub fn vma(&self) -> &'a VmaPteMapped {
        self.vma
    }

    /// Maps and locks the PTE table, positioned at the entry for [`addr`](Self::addr)
    /// (`pte_offset_map_lock()`), calls `f` with it, then unlocks and unmaps it
    /// (`pte_unmap_unlock()`) and returns what `f` returned.
    ///
    /// Returns `None`, without calling `f`, if there is no PTE table any more (it was freed or
    /// replaced by a huge PMD since the PMD was established); the C fill paths report that as
    /// `EAGAIN`. Entries after the first are reached with [`PteTableGuard::advance`], which stays
    /// inside the table and the VMA.
    ///
    /// The guard lives only during `f`, so guards are always released in the reverse order of
    /// their creation: with `CONFIG_HIGHPTE` the table is mapped with `kmap_local_page()`, whose
    /// mappings are a stack that `kunmap_local()` pops from the top, whatever address it is
    /// given. `f` gets a guard of a type of its own (the lifetime `'g` is different for every
    /// call), so a guard cannot leave `f` or be swapped with the guard of an enclosing call.
    ///
    /// While `f` runs, the table's spinlock is held and the CPU is in an RCU read-side critical
    /// section: `f` must not sleep (no allocation but `GFP_ATOMIC`, no folio lock, no mmap or
    /// VMA lock), and must not take another page table lock: this table's again, or, without
    /// split page table locks, any other (all are `mm->page_table_lock`), deadlocks; with them,
    /// the PTE and PMD locks are of one lockdep class, and nesting two is reported as recursive
    /// locking (khugepaged nests them with `spin_lock_nested()`, which nothing here offers).
    #[inline]
    pub fn pte_offset_map_lock<R>(
        &self,
        f: impl for<'g> FnOnce(&mut PteTableGuard<'a, 'g>) -> R,
    ) -> Option<R> {
        self.pte_offset_map_lock_with((), |ptes, ()| f(ptes)).ok()
    }

    /// [`pte_offset_map_lock`](Self::pte_offset_map_lock) with a value `f` takes over, which
    /// comes back as the error if there is no PTE table any more.
    #[inline]
    pub fn pte_offset_map_lock_with<T, R>(
        &self,
        arg: T,
        f: impl for<'g> FnOnce(&mut PteTableGuard<'a, 'g>, T) -> R,
    ) -> Result<R, T> {
        let mut ptl: *mut bindings::spinlock_t = core::ptr::null_mut();
        // SAFETY: The PMD entry and the mm are valid by the type invariants, and `self.addr` is
        // in the range of the PMD entry.
        let ptep = unsafe {
            bindings::pte_offset_map_lock(
                self.vma.mm().as_raw(),
                self.as_ptr(),
                self.addr,
                &mut ptl,
            )
        };
        let Some(ptep) = NonNull::new(ptep) else {
            return Err(arg);
        };
        // INVARIANT: `pte_offset_map_lock()` succeeded: the table is mapped and `ptl` is held;
        // `self.addr` is inside the VMA by the invariants of `Pmd`. The guard is a local of this
        // call and dropped at its end: no other guard created after it is left when it goes.
        let mut guard = PteTableGuard {
            ptep,
            mapped: ptep,
            // SAFETY: On success `pte_offset_map_lock()` sets `ptl` to the (locked) table lock.
            ptl: unsafe { NonNull::new_unchecked(ptl) },
            addr: self.addr,
            vma: self.vma,
            _nts: NotThreadSafe,
            _call: PhantomData,
        };
        Ok(f(&mut guard, arg))
    }
}

/// A PTE table that is mapped and whose lock is held, positioned at the entry for one address.
///
/// Lent by [`Pmd::pte_offset_map_lock`] to its closure, for the duration of the call, as
/// `&mut PteTableGuard<'a, 'g>`: `'a` is the lifetime of the VMA's read lock, `'g` is different
/// for every call (invariant), so that the guards of two calls are of different types. The
/// entries from that address up to the end of the table or of the VMA, whichever comes first,
/// can be read and written through the guard; see [`max_nr`](Self::max_nr). The table is
/// unlocked and unmapped (`pte_unmap_unlock()`) when the call ends.
///
/// # Invariants
///
/// `mapped` is the entry that `pte_offset_map_lock()` returned when it mapped a PTE table of
/// `vma`'s mm and took its lock `ptl`; the table stays mapped and `ptl` held by this guard.
/// `ptep` is the entry for `addr` in the same table, and `addr` is inside `vma`.
pub struct PteTableGuard<'a, 'g> {
    ptep: NonNull<bindings::pte_t>,
    // The entry `pte_offset_map_lock()` returned, for `pte_unmap_unlock()`.
    mapped: NonNull<bindings::pte_t>,
    ptl: NonNull<bindings::spinlock_t>,
    addr: usize,
    vma: &'a VmaPteMapped,
    // The lock must be released on the CPU and in the RCU read-side section that took it.
    _nts: NotThreadSafe,
    // Invariant in `'g`: the guard of one call of `Pmd::pte_offset_map_lock()` cannot take the
    // place of another's.
    _call: PhantomData<fn(&'g ()) -> &'g ()>,
}

impl<'a> PteTableGuard<'a, '_> {
    /// Returns the address of the entry the guard is positioned at.
    #[inline]
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// Returns the VMA the table belongs to.
    #[inline]
    pub fn vma(&self) -> &'a VmaPteMapped {
        self.vma
    }

    /// Returns how many entries, from [`addr`](Self::addr) on, are in both this table and the
    /// VMA.
    #[inline]
    pub fn max_nr(&self) -> usize {
        // The entries left in the table: at least one, so no overflow.
        let ptrs = ptrs_per_pte();
        let in_table = ptrs - (self.addr / PAGE_SIZE) % ptrs;
        // `addr` is inside the VMA, so `end() > addr`.
        let in_vma = self.vma.end().saturating_sub(self.addr) / PAGE_SIZE;
        core::cmp::min(in_table, in_vma)
    }

    /// Moves the guard's position `nr` entries forward, keeping the table locked.
    ///
    /// Fails with `EINVAL`, without moving, if that is not before [`max_nr`](Self::max_nr).
    #[inline]
    pub fn advance(&mut self, nr: usize) -> Result {
        if nr >= self.max_nr() {
            return Err(EINVAL);
        }
        // INVARIANT: `nr < max_nr()`: the new entry is in the same table and inside the VMA.
        // SAFETY: As above, the result stays within the mapped table.
        self.ptep = unsafe { NonNull::new_unchecked(self.ptep.as_ptr().add(nr)) };
        self.addr += nr * PAGE_SIZE;
        Ok(())
    }

    /// Returns a pointer to the `i`th entry from the guard's position.
    ///
    /// The caller must have checked `i < self.max_nr()`.
    #[inline]
    fn ptep_nr(&self, i: usize) -> *mut bindings::pte_t {
        // SAFETY: `i < max_nr()`, so the result stays within the mapped table.
        unsafe { self.ptep.as_ptr().add(i) }
    }

    /// Reads the entry at the guard's position (`ptep_get()`).
    #[inline]
    pub fn ptep_get(&self) -> Pte {
        // SAFETY: The table is mapped and locked by the type invariants.
        Pte::from_raw(unsafe { bindings::ptep_get(self.ptep.as_ptr()) })
    }

    /// Reads the `i`th entry from the guard's position, if it is within [`max_nr`](Self::max_nr).
    #[inline]
    pub fn ptep_get_nr(&self, i: usize) -> Option<Pte> {
        if i >= self.max_nr() {
            return None;
        }
        // SAFETY: The table is mapped and locked, and `i` is within it.
        Some(Pte::from_raw(unsafe {
            bindings::ptep_get(self.ptep_nr(i))
        }))
    }

    /// Checks that `nr` entries from the position exist and that a fill may replace each of
    /// them ([`PteKind::is_fillable`](crate::mm::pte::PteKind::is_fillable)).
    #[inline]
    fn check_fillable(&self, nr: usize) -> Result {
        if nr == 0 || nr > self.max_nr() {
            return Err(EINVAL);
        }
        self.check_entries_fillable(nr)
    }

    /// Checks that a fill may replace each of the `nr` entries from the position, which the
    /// caller checked are within [`max_nr`](Self::max_nr).
    // Always inlined: a per-page check, whose loop folds away for a constant `nr`.
    #[inline(always)]
    fn check_entries_fillable(&self, nr: usize) -> Result {
        for i in 0..nr {
            // SAFETY: The table is mapped and locked, and `i < nr <= max_nr()`.
            let old = Pte::from_raw(unsafe { bindings::ptep_get(self.ptep_nr(i)) });
            if !old.none() && !old.kind().is_fillable() {
                return Err(EEXIST);
            }
        }
        Ok(())
    }

    /// Builds the PTE that maps `page` into the VMA for a fill.
    ///
    /// Dirty; writable if the VMA is writable, except that a page-cache page is only mapped
    /// writable where [`VmaPteMapped::maps_page_cache_writable`] allows it (a shared mapping of a
    /// file that does not want to be told of the first write to a page); with the userfaultfd
    /// write-protect bit if `wp`.
    ///
    /// `vm_flags` are the VMA's flags, read once by the caller.
    // Always inlined: both callers are per-page paths, and the PTE is built in registers.
    #[inline(always)]
    fn mk_fill_pte(
        &self,
        page: FolioPage<'_>,
        vm_flags: vm_flags_t,
        page_in_cache: bool,
        wp: bool,
    ) -> Pte {
        let mut pte = Pte::mk_pte(page, self.vma.page_prot());
        let writable = vm_flags & flags::WRITE != 0
            && (!page_in_cache || self.vma.maps_page_cache_writable(vm_flags, pte.write()));
        pte = pte.mkdirty();
        if writable {
            pte = pte.mkwrite(self.vma);
        }
        if wp {
            pte = pte.mkuffd();
        }
        pte
    }

    /// Maps `nr` consecutive pages of a page-cache folio at the guard's position: the pages of
    /// the file that the VMA maps at [`addr`](Self::addr) and after.
    ///
    /// The entries are built here, from the VMA and the folio, as every userfaultfd fill builds
    /// them: dirty, writable only if the VMA is shared and writable (a page-cache page in a
    /// private mapping is mapped read-only, so that a write copies it), and write-protected with
    /// the userfaultfd bit if `wp` (which needs a VMA registered for userfaultfd write
    /// protection).
    ///
    /// In order, like the C code that maps page-cache folios: the file reverse mapping is added
    /// (`folio_add_file_rmap_ptes()`), the mm counter of the folio is increased (after the rmap,
    /// as `mm_counter()` wants), the entries are written (`set_ptes()`), the folio is unlocked and
    /// the MMU cache is updated (`update_mmu_cache_range()`). The entries own the folio
    /// reference(s): the one in `folio`, plus `nr - 1` more taken here.
    ///
    /// On failure nothing is changed and the folio is handed back, still locked and referenced,
    /// with the error:
    /// - `EINVAL` if the folio is not the uptodate page cache of the VMA's file at the offsets
    ///   the `nr` entries map (another file's folio, another offset, an anonymous folio, a folio
    ///   whose contents were never read or zeroed, a VMA without a file), if `nr` is zero or the
    ///   entries leave the table or the VMA, or if `wp` is asked of a VMA not registered for
    ///   userfaultfd write protection;
    /// - `EIO` if one of the pages has a hardware memory error;
    /// - `EFAULT` if one of the pages is at or beyond the end of the file (`i_size`, read under
    ///   the PTE table lock: a truncation that updated it before is seen here, one that updates
    ///   it after unmaps the new entries);
    /// - `EEXIST` if an entry is not one that a fill may replace ([`PteKind::is_fillable`]:
    ///   empty, or a userfaultfd marker that is not a guard).
    ///
    /// The folio lock is what makes this safe against truncation: truncation locks the folio
    /// before it unmaps it and removes it from the page cache, so a folio that is still in the
    /// VMA's file here is unmapped by truncation afterwards.
    ///
    /// The entries are dirty, in any VMA, as userfaultfd makes them for shmem: the folio is
    /// dirtied when they are zapped, without the file system's `->page_mkwrite()`. That is right
    /// for the page cache of a file system that does not write back (`mapping_can_writeback()`
    /// false), which is the only page cache safe code can get a locked folio of: the lookups are
    /// shmem's ([`shmem_get_folio`], and `filemap_lock_folio_nowait()`, which refuses other
    /// inodes) and those of memory types built on them. A lookup of another page cache must not
    /// hand out a [`LockedFolio`] before this refuses folios of mappings that write back.
    ///
    /// [`PteKind::is_fillable`]: crate::mm::pte::PteKind::is_fillable
    /// [`shmem_get_folio`]: crate::mm::shmem::shmem_get_folio
    // Always inlined: this is the per-page path of the userfaultfd fills, and their callers pass
    // a constant `nr` (1 for the page-by-page ones), for which the loops below fold away.
    #[inline(always)]
    pub fn set_ptes_file(
        &mut self,
        folio: LockedFolio,
        nr: usize,
        wp: bool,
    ) -> Result<(), (Error, LockedFolio)> {
        // Read once: the VMA's flags and file, and the file offset of the guard's position.
        let vm_flags = self.vma.flags();
        let Some(file) = self.vma.file() else {
            return Err((EINVAL, folio));
        };
        let index = self.vma.linear_page_index(self.addr);
        let page_nr = match self.file_page_nr(&folio, file, index, nr, vm_flags, wp) {
            Ok(page_nr) => page_nr,
            Err(e) => return Err((e, folio)),
        };
        let page = |n: usize| {
            // SAFETY: For `n < nr`, `page_nr + n < folio.nr_pages()` (`file_page_nr()`), so the
            // sum does not wrap, and this is a page of the folio, valid for as long as we hold our
            // reference.
            unsafe { bindings::folio_page(folio.as_ptr(), page_nr.wrapping_add(n)) }
        };
        let first = page(0);
        // SAFETY: `first` is a valid page (above).
        if unsafe { bindings::PageHWPoison(first) }
            // SAFETY: As above, for the other pages.
            || (1..nr).any(|n| unsafe { bindings::PageHWPoison(page(n)) })
        {
            return Err((EIO, folio));
        }
        if self.over_file_size(file, index, nr) {
            return Err((EFAULT, folio));
        }
        // `file_page_nr()` checked that `nr` entries are left in the table.
        if let Err(e) = self.check_entries_fillable(nr) {
            return Err((e, folio));
        }
        // SAFETY: `first` is a page of the folio, which we hold a reference on.
        let first_page = unsafe { FolioPage::from_raw(first) };
        let pte = self.mk_fill_pte(first_page, vm_flags, true, wp);
        let vma = self.vma.as_ptr();
        let mm = self.vma.mm().as_raw();
        let counter = MmCounter::of_folio(&folio);
        // SAFETY: The page table lock is held and the `nr` entries may be replaced; the folio is
        // locked and in the page cache of the VMA's file at the offsets these entries map; the
        // pages are inside the folio; the entries are inside the VMA and the table. Each new
        // entry takes one folio reference: ours plus `nr - 1` new ones.
        unsafe {
            bindings::folio_add_file_rmap_ptes(folio.as_ptr(), first, nr as i32, vma);
            if nr == 1 {
                bindings::inc_mm_counter(mm, counter as i32);
            } else {
                bindings::add_mm_counter(mm, counter as i32, nr as isize);
                bindings::folio_ref_add(folio.as_ptr(), (nr - 1) as i32);
            }
            bindings::set_ptes(mm, self.addr, self.ptep.as_ptr(), pte.as_raw(), nr as u32);
        }
        // SAFETY: The entries just written own the reference.
        unsafe { folio.unlock_and_transfer() };
        // SAFETY: The table is still locked; no TLB flush: the entries were not present before.
        unsafe {
            if nr == 1 {
                bindings::update_mmu_cache(vma, self.addr, self.ptep.as_ptr());
            } else {
                bindings::update_mmu_cache_range(vma, self.addr, self.ptep.as_ptr(), nr as u32);
            }
        }
        Ok(())
    }

    /// Returns whether one of the `nr` pages that `file` has from offset `index` on is at or
    /// beyond the end of the file (`i_size`).
    ///
    /// Called with the PTE table lock held: truncation updates `i_size`, then unmaps under this
    /// lock, so a page inside the file here is unmapped by a truncation that comes after.
    #[inline]
    fn over_file_size(&self, file: &File, index: PgOff, nr: usize) -> bool {
        let size = u64::try_from(file.inode().i_size_read()).unwrap_or(0);
        let end = size.div_ceil(PAGE_SIZE as u64);
        let index = index as u64;
        // `index + nr - 1 >= end`, without overflow.
        index >= end || end - index < nr as u64
    }

    /// Returns the position, in `folio`, of the page the VMA maps at the guard's position, if
    /// `folio` is the page cache of the VMA's file there and holds the `nr` pages from it.
    ///
    /// `file` is the VMA's file, `index` the file offset of the guard's position and `vm_flags`
    /// the VMA's flags, read once by the caller.
    #[inline]
    fn file_page_nr(
        &self,
        folio: &LockedFolio,
        file: &File,
        index: PgOff,
        nr: usize,
        vm_flags: vm_flags_t,
        wp: bool,
    ) -> Result<usize> {
        if nr == 0 || nr > self.max_nr() || (wp && vm_flags & flags::UFFD_WP == 0) {
            return Err(EINVAL);
        }
        // SAFETY: The file of a read-locked VMA is valid, and so is its `f_mapping`.
        let mapping = unsafe { (*file.as_ptr()).f_mapping };
        if !folio.in_mapping(mapping) || !folio.test_uptodate() {
            return Err(EINVAL);
        }
        // The folio is locked and in the page cache, so its index is stable.
        let page_nr = index.checked_sub(folio.index()).ok_or(EINVAL)?;
        let nr_pages = folio.nr_pages();
        if page_nr >= nr_pages || nr > nr_pages - page_nr {
            return Err(EINVAL);
        }
        Ok(page_nr)
    }

    /// Maps a new anonymous folio at the guard's position.
    ///
    /// The entry is built here: dirty, writable if the VMA is writable, write-protected with the
    /// userfaultfd bit if `wp` (which needs a VMA registered for userfaultfd write protection).
    ///
    /// In order, like the C code that maps new anonymous memory: the folio becomes anonymous
    /// memory of the VMA, exclusively mapped (`folio_add_new_anon_rmap()` with `RMAP_EXCLUSIVE`),
    /// is added to the LRU or mlocked, as the VMA calls for (`folio_add_lru_vma()`, through
    /// `L`: see [`FolioAddLruVma`]), the anonymous mm counter is increased, the entry is written
    /// and the MMU cache updated. The entry owns the folio reference.
    ///
    /// On failure nothing is changed and the folio is handed back with the error: `EEXIST` if
    /// the entry is not one a fill may replace; `EFAULT` if the VMA maps a file and the address
    /// is at or beyond its end (as for [`set_ptes_file`](Self::set_ptes_file)); `EINVAL` if the
    /// VMA is shared (`VM_SHARED`: anonymous memory only goes into private mappings, as
    /// `mfill_atomic_pte()` decides; a `MAP_SHARED` mapping of a file opened read-only has only
    /// `VM_MAYSHARE`, and gets anonymous pages from C too), has no `anon_vma` (the caller
    /// prepares it, as `anon_vma_prepare()` does for the C fill paths), belongs to another mm
    /// than the one the folio was charged to, or if `wp` is asked of a VMA not registered for it.
    pub fn set_pte_new_anon<L: FolioAddLruVma>(
        &mut self,
        folio: NewAnonFolio,
        wp: bool,
    ) -> Result<(), (Error, NewAnonFolio)> {
        let vm_flags = self.vma.flags();
        if vm_flags & flags::SHARED != 0
            || !self.vma.has_anon_vma()
            || !folio.is_for_mm(self.vma.mm())
            || (wp && vm_flags & flags::UFFD_WP == 0)
        {
            return Err((EINVAL, folio));
        }
        if let Some(file) = self.vma.file() {
            if self.over_file_size(file, self.vma.linear_page_index(self.addr), 1) {
                return Err((EFAULT, folio));
            }
        }
        if let Err(e) = self.check_fillable(1) {
            return Err((e, folio));
        }
        let pte = self.mk_fill_pte(folio.page(), vm_flags, false, wp);
        let vma = self.vma.as_ptr();
        let mm = self.vma.mm().as_raw();
        let raw = folio.as_ptr();
        // SAFETY: The page table lock is held and the entry may be replaced; the VMA is private
        // and has an anon_vma; by the invariants of `NewAnonFolio` the folio is new, order 0,
        // uptodate, charged to this mm and seen by no one else, as `folio_add_new_anon_rmap()`
        // requires; `L` calls `folio_add_lru_vma()` (its safety contract), for a folio whose
        // rmap is now set up. The entry takes our reference.
        unsafe {
            bindings::folio_add_new_anon_rmap(raw, vma, self.addr, bindings::RMAP_EXCLUSIVE);
            L::folio_add_lru_vma(raw, vma);
            // After the rmap: `mm_counter()` looks at the anon bit that the rmap just set.
            let counter = bindings::mm_counter(raw);
            bindings::inc_mm_counter(mm, counter);
            bindings::set_ptes(mm, self.addr, self.ptep.as_ptr(), pte.as_raw(), 1);
            folio.transfer();
            // No TLB flush: the entry was not present before.
            bindings::update_mmu_cache(vma, self.addr, self.ptep.as_ptr());
        }
        Ok(())
    }

    /// Writes a marker into the empty entry at the guard's position.
    ///
    /// Markers own no page, so this is the one kind of entry that can be written without a folio.
    /// Only the userfaultfd markers can be written here: the write-protect marker, in a VMA
    /// registered for userfaultfd write protection, and the poison marker, in a VMA registered
    /// with userfaultfd. Guard regions are `madvise(MADV_GUARD_INSTALL)`'s, which checks the VMA
    /// for them (no `mlock()`ed or special VMA). Fails with `EINVAL` for any other marker, and
    /// with `EEXIST` if the entry is not empty (`pte_none()`).
    ///
    /// It is not `UFFDIO_POISON` or `UFFDIO_WRITEPROTECT`: it does not check the file size (a
    /// poison marker beyond the end of the file raises `SIGBUS` as the hole there would), nor
    /// whether the userfaultfd asked for markers in empty entries of anonymous memory
    /// (`UFFD_FEATURE_WP_UNPOPULATED`); the fault path handles a write-protect marker in any VMA
    /// registered for write protection.
    pub fn set_pte_marker(&mut self, marker: PteMarker) -> Result {
        let vm_flags = self.vma.flags();
        let uffd = flags::UFFD_MISSING | flags::UFFD_WP | flags::UFFD_MINOR;
        if marker.is_guard()
            || !(marker.is_uffd_wp() || marker.is_poisoned())
            || (marker.is_uffd_wp() && vm_flags & flags::UFFD_WP == 0)
            || (marker.is_poisoned() && vm_flags & uffd == 0)
        {
            return Err(EINVAL);
        }
        if !self.ptep_get().none() {
            return Err(EEXIST);
        }
        let pte = Pte::make_pte_marker(marker);
        // SAFETY: The page table lock is held and the entry is empty; a marker maps nothing.
        unsafe {
            bindings::set_ptes(
                self.vma.mm().as_raw(),
                self.addr,
                self.ptep.as_ptr(),
                pte.as_raw(),
                1,
            );
            bindings::update_mmu_cache(self.vma.as_ptr(), self.addr, self.ptep.as_ptr());
        }
        Ok(())
    }
}

impl Drop for PteTableGuard<'_, '_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariants, the table is mapped and locked by this guard; this
        // unlocks `ptl`, then unmaps the table and leaves the RCU read-side critical section.
        unsafe { bindings::pte_unmap_unlock(self.mapped.as_ptr(), self.ptl.as_ptr()) };
    }
}

#[cfg(CONFIG_RUST_MM_KUNIT_TEST)]
#[macros::kunit_tests(rust_mm_pgtable)]
mod tests {
    use super::*;
    use crate::{
        mm::{
            folio::Folio,
            kunit::{self, prot, read_pte, with_pmd},
            pte::PteKind,
            shmem::{shmem_file_setup, shmem_get_folio, SgpType},
        },
        sync::aref::ARef,
    };

    const PS: i64 = PAGE_SIZE as i64;

    #[test]
    fn marker_kinds() {
        let wp = Pte::make_pte_marker(PteMarker::UFFD_WP);
        let poison = Pte::make_pte_marker(PteMarker::POISONED);
        let guard = Pte::make_pte_marker(PteMarker::GUARD);
        assert!(!wp.none() && !wp.present());
        assert_eq!(wp.kind(), PteKind::Marker(PteMarker::UFFD_WP));
        assert_eq!(poison.kind(), PteKind::Marker(PteMarker::POISONED));
        assert_eq!(guard.kind(), PteKind::Marker(PteMarker::GUARD));
        assert!(wp.kind().is_uffd_marker());
        assert!(poison.kind().is_uffd_marker());
        assert!(!guard.kind().is_uffd_marker());
        assert!(PteMarker::GUARD.is_guard() && !PteMarker::GUARD.is_uffd());
        // A guard that keeps the uffd-wp bit has a userfaultfd bit, and is still a guard.
        let both = PteMarker::UFFD_WP | PteMarker::GUARD;
        assert!(both.is_uffd() && both.is_guard());
        assert!(!Pte::make_pte_marker(both).kind().is_uffd_marker());
        assert!(wp.kind().is_fillable() && poison.kind().is_fillable());
        // A guard marker is never replaced, not even with a userfaultfd bit next to it.
        assert!(!guard.kind().is_fillable());
        assert!(!Pte::make_pte_marker(both).kind().is_fillable());
        // SAFETY: `__pte(0)` is the empty entry on every architecture.
        let none = Pte::from_raw(unsafe { core::mem::zeroed() });
        assert!(none.none());
        assert_eq!(none.kind(), PteKind::None);
        assert!(none.kind().is_fillable() && !none.kind().is_uffd_marker());
    }

    #[test]
    fn leaf_kinds() {
        // SAFETY: These only compute entry values; nothing refers to them.
        let (swap, mig_r, mig_re, mig_w) = unsafe {
            (
                Pte::from_raw(bindings::swp_entry_to_pte(bindings::swp_entry(0, 42))),
                Pte::from_raw(bindings::swp_entry_to_pte(
                    bindings::make_readable_migration_entry(42),
                )),
                Pte::from_raw(bindings::swp_entry_to_pte(
                    bindings::make_readable_exclusive_migration_entry(42),
                )),
                Pte::from_raw(bindings::swp_entry_to_pte(
                    bindings::make_writable_migration_entry(42),
                )),
            )
        };
        assert_eq!(swap.kind(), PteKind::Swap);
        assert_eq!(mig_r.kind(), PteKind::MigrationRead);
        assert_eq!(mig_re.kind(), PteKind::MigrationReadExclusive);
        assert_eq!(mig_w.kind(), PteKind::MigrationWrite);
        for pte in [swap, mig_r, mig_re, mig_w] {
            assert!(!pte.none() && !pte.present());
            assert!(!pte.kind().is_fillable() && !pte.kind().is_uffd_marker());
        }
    }

    #[cfg(CONFIG_DEVICE_PRIVATE)]
    #[test]
    fn device_kinds() {
        // SAFETY: These only compute entry values; nothing refers to them.
        let (dev_r, dev_w, dev_x) = unsafe {
            (
                Pte::from_raw(bindings::swp_entry_to_pte(
                    bindings::make_readable_device_private_entry(42),
                )),
                Pte::from_raw(bindings::swp_entry_to_pte(
                    bindings::make_writable_device_private_entry(42),
                )),
                Pte::from_raw(bindings::swp_entry_to_pte(
                    bindings::make_device_exclusive_entry(42),
                )),
            )
        };
        assert_eq!(dev_r.kind(), PteKind::DevicePrivateRead);
        assert_eq!(dev_w.kind(), PteKind::DevicePrivateWrite);
        assert_eq!(dev_x.kind(), PteKind::DeviceExclusive);
        assert!(!dev_x.kind().is_fillable());
    }

    #[cfg(CONFIG_MEMORY_FAILURE)]
    #[test]
    fn hwpoison_kind() -> Result {
        let file = shmem_file_setup(c"rust_mm_pgtable", PS)?;
        kunit::file_write(&file, 0, b"poison")?;
        // `make_hwpoison_entry()` wants the page locked, as memory_failure() has it.
        let folio = shmem_get_folio(file.inode(), 0, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
        let page = folio.page(0).ok_or(EINVAL)?;
        // SAFETY: Only computes an entry value from a valid, locked page; nothing refers to it.
        let pte = unsafe {
            Pte::from_raw(bindings::swp_entry_to_pte(bindings::make_hwpoison_entry(
                page.as_ptr(),
            )))
        };
        assert_eq!(pte.kind(), PteKind::HwPoison);
        assert!(!pte.kind().is_fillable());
        Ok(())
    }

    #[test]
    fn present_pte_bits() -> Result {
        let file = shmem_file_setup(c"rust_mm_pgtable", 2 * PS)?;
        kunit::file_write(&file, 0, b"bits")?;
        // Read-only, so that `vm_page_prot` has no write permission of its own.
        let addr = kunit::vm_mmap(Some(&file), 2 * PAGE_SIZE, prot::READ, prot::MAP_SHARED, 0)?;
        let folio = shmem_get_folio(file.inode(), 0, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
        let mm = kunit::current_mm()?;
        let (clean, dirty, write, uffd) = {
            let mmap = mm.mmap_read_lock();
            let vma = mmap.vma_lookup(addr).ok_or(EINVAL)?;
            let page = folio.page(0).ok_or(EINVAL)?;
            let clean = Pte::mk_pte(page, vma.page_prot());
            let dirty = clean.mkdirty();
            let write = dirty.mkwrite(vma);
            (clean, dirty, write, write.mkuffd())
        };
        assert!(clean.present() && !clean.dirty() && !clean.write() && !clean.uffd());
        assert_eq!(clean.pfn(), folio.pfn());
        assert_eq!(clean.kind(), PteKind::Present);
        assert!(dirty.dirty() && !dirty.write());
        assert!(write.dirty() && write.write());
        // The userfaultfd bit write-protects.
        assert!(uffd.uffd() && !uffd.write() && uffd.present());
        assert_eq!(uffd.pfn(), folio.pfn());
        Ok(())
    }

    #[test]
    fn install_file_pte() -> Result {
        let file = shmem_file_setup(c"rust_mm_pgtable", 4 * PS)?;
        kunit::file_write(&file, PS, b"mapped by rust")?;
        let addr = kunit::vm_mmap(
            Some(&file),
            4 * PAGE_SIZE,
            prot::READ | prot::WRITE,
            prot::MAP_SHARED,
            0,
        )? + PAGE_SIZE;
        let mm = kunit::current_mm()?;
        let shmem_before = mm.get_mm_counter_sum(MmCounter::ShmemPages);
        let folio = shmem_get_folio(file.inode(), 1, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
        let held: ARef<Folio> = ARef::from(&*folio);
        let refs_before = kunit::settled_ref_count(&held);
        let (old, max_nr, again) = with_pmd(addr, |pmd| {
            let (old, max_nr, res) = pmd
                .pte_offset_map_lock(|ptes| {
                    let old = ptes.ptep_get();
                    (old, ptes.max_nr(), ptes.set_ptes_file(folio, 1, false))
                })
                .ok_or(EAGAIN)?;
            res.map_err(|(e, _)| e)?;
            // A second installation over the new entry is refused, and the folio comes back.
            let folio2 = shmem_get_folio(file.inode(), 1, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
            let again = pmd
                .pte_offset_map_lock(|ptes| ptes.set_ptes_file(folio2, 1, false))
                .ok_or(EAGAIN)?;
            Ok((old, max_nr, again.err().map(|(e, f)| (e, f.test_locked()))))
        })?;
        assert_eq!(old.kind(), PteKind::None);
        assert_eq!(max_nr, 3);
        assert_eq!(again, Some((EEXIST, true)));
        let now = read_pte(addr)?;
        // Built by the installation: dirty, and writable in a shared writable mapping.
        assert!(now.present() && now.write() && now.dirty() && !now.uffd());
        assert_eq!(now.pfn(), held.pfn());
        assert_eq!(held.mapcount(), 1);
        assert!(!held.test_locked());
        // The PTE took over the lookup's reference.
        assert_eq!(kunit::settled_ref_count(&held), refs_before);
        assert_eq!(
            mm.get_mm_counter_sum(MmCounter::ShmemPages),
            shmem_before + 1
        );
        // The mapping reads the page-cache contents.
        let mut buf = [0u8; 14];
        kunit::read_user(addr, &mut buf)?;
        assert_eq!(&buf, b"mapped by rust");
        Ok(())
    }

    #[test]
    fn table_guard_bounds() -> Result {
        let file = shmem_file_setup(c"rust_mm_pgtable", 4 * PS)?;
        let addr = kunit::vm_mmap(Some(&file), 4 * PAGE_SIZE, prot::READ, prot::MAP_SHARED, 0)?;
        let r = with_pmd(addr, |pmd| {
            pmd.pte_offset_map_lock(|ptes| {
                let nr = ptes.max_nr();
                let r = (nr, ptes.ptep_get_nr(nr - 1), ptes.ptep_get_nr(nr));
                // Moving past the end is refused; moving by one shrinks what is left by one.
                let past = ptes.advance(nr);
                let one = if nr > 1 { ptes.advance(1) } else { Ok(()) };
                let moved = (ptes.addr(), ptes.max_nr());
                (r, past, one, moved)
            })
            .ok_or(EAGAIN)
        })?;
        let ((nr, last, beyond), past, one, moved) = r;
        assert_eq!(past, Err(EINVAL));
        assert_eq!(one, Ok(()));
        if nr > 1 {
            assert_eq!(moved, (addr + PAGE_SIZE, nr - 1));
        }
        // The VMA is 4 pages; a PTE table holds `ptrs_per_pte()` entries and the VMA may straddle
        // two tables.
        assert!((1..=4).contains(&nr));
        assert!(last.is_some_and(|p| p.none()));
        assert!(beyond.is_none());
        Ok(())
    }
}

/// Misuse of the page table API from safe code: each case is refused with its documented error
/// and changes nothing (the entry, the folio's mapcount, lock and reference count, the mm
/// counters).
///
/// Some misuses no longer compile, and have no case here:
/// - installing a hand-made PTE value: the installation methods build the entry themselves from
///   the VMA and the folio, and take no [`Pte`];
/// - getting a [`Folio`] (and so an `ARef<Folio>`) from a [`NewAnonFolio`]: it has no `Deref`
///   to `Folio`, only [`NewAnonFolio::pfn`];
/// - mapping a page of a folio with a function of the kernel crate that takes a
///   [`Page`](crate::page::Page), such as `VmaMixedMap::vm_insert_page()`, which would map a
///   page-cache page outside its file's `i_mmap` (truncation would not unmap it) or the page of a
///   [`NewAnonFolio`] before its anonymous reverse mapping exists: [`Folio::page`] and
///   [`Folio::file_page`] give a [`FolioPage`], which is not a `Page` and does not deref to one,
///   and a [`NewAnonFolio`] gives out no page;
/// - a PMD entry or PTE table of a VMA that may not have one: [`Pmd::establish`] takes a
///   [`VmaPteMapped`], which only [`VmaRef::as_pte_mapped`] gives out (checked below for
///   hugetlb);
/// - a PTE table guard positioned outside the PMD entry's range: [`Pmd::pte_offset_map_lock`]
///   takes no address, [`PteTableGuard::advance`] stays inside the table and the VMA;
/// - test support (`kernel::mm::kunit`, the entry constructors and hwpoison helpers of
///   `rust/helpers/`) in a kernel without the KUnit tests: it is not built there.
///
/// The misuses of [`PteTableGuard::set_pte_new_anon`] (a shared VMA, `wp` without write-protect
/// registration) are tried by the tests of `mm/userfaultfd_rust.rs`, which has mm's
/// `folio_add_lru_vma()` to give it ([`FolioAddLruVma`]).
///
/// [`Folio`]: crate::mm::folio::Folio
#[cfg(CONFIG_RUST_MM_KUNIT_TEST)]
#[macros::kunit_tests(rust_mm_misuse)]
mod misuse_tests {
    use super::*;
    use crate::{
        mm::{
            folio::Folio,
            kunit::{self, prot, read_pte, with_pmd},
            pte::PteKind,
            shmem::{shmem_file_setup, shmem_get_folio, SgpType},
        },
        sync::aref::ARef,
    };

    const PS: i64 = PAGE_SIZE as i64;

    /// A shmem file of `pages` pages, each written, mapped with `prot` and `flags`.
    fn mapped_file(
        pages: usize,
        prot: usize,
        flags: usize,
    ) -> Result<(ARef<crate::fs::File>, usize)> {
        kunit::shmem_mapped(c"rust_mm_misuse", pages, 0..pages, pages, prot, flags)
    }

    /// The state a refused installation must leave alone.
    #[derive(PartialEq, Eq, Debug)]
    struct Seen {
        pte: u64,
        mapcount: i32,
        locked: bool,
        refs: i32,
        shmem: usize,
        anon: usize,
    }

    fn seen(addr: usize, folio: &Folio) -> Result<Seen> {
        let mm = kunit::current_mm()?;
        Ok(Seen {
            pte: read_pte(addr)?.val(),
            mapcount: folio.mapcount(),
            locked: folio.test_locked(),
            refs: kunit::settled_ref_count(folio),
            shmem: mm.get_mm_counter_sum(MmCounter::ShmemPages),
            anon: mm.get_mm_counter_sum(MmCounter::AnonPages),
        })
    }

    /// Tries to install `folio` at `addr` with `nr` entries, returns the error and whether the
    /// folio came back locked.
    fn try_install(
        addr: usize,
        folio: LockedFolio,
        nr: usize,
        wp: bool,
    ) -> Result<Option<(Error, bool)>> {
        with_pmd(addr, |pmd| {
            let res = pmd
                .pte_offset_map_lock(|ptes| ptes.set_ptes_file(folio, nr, wp))
                .ok_or(EAGAIN)?;
            Ok(res.err().map(|(e, f)| (e, f.test_locked())))
        })
    }

    #[test]
    fn another_files_folio() -> Result {
        let (_a, addr) = mapped_file(2, prot::READ | prot::WRITE, prot::MAP_SHARED)?;
        let other = shmem_file_setup(c"rust_mm_misuse", 2 * PS)?;
        kunit::file_write(&other, 0, b"other")?;
        let folio = shmem_get_folio(other.inode(), 0, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
        let held: ARef<Folio> = ARef::from(&*folio);
        drop(folio);
        let before = seen(addr, &held)?;
        let folio = LockedFolio::lock(held.clone());
        assert_eq!(try_install(addr, folio, 1, false)?, Some((EINVAL, true)));
        assert_eq!(seen(addr, &held)?, before);
        assert!(read_pte(addr)?.none());
        Ok(())
    }

    #[test]
    fn wrong_offset() -> Result {
        let (file, addr) = mapped_file(2, prot::READ | prot::WRITE, prot::MAP_SHARED)?;
        let held: ARef<Folio> = shmem_get_folio(file.inode(), 1, 0, SgpType::NoAlloc)?
            .ok_or(ENOENT)?
            .unlock();
        let before = seen(addr, &held)?;
        // Page 1 of the file at the address of page 0.
        let folio = LockedFolio::lock(held.clone());
        assert_eq!(try_install(addr, folio, 1, false)?, Some((EINVAL, true)));
        // The right page, but more pages than the folio has.
        let folio = LockedFolio::lock(held.clone());
        assert_eq!(
            try_install(addr + PAGE_SIZE, folio, 2, false)?,
            Some((EINVAL, true))
        );
        // No page at all.
        let folio = LockedFolio::lock(held.clone());
        assert_eq!(
            try_install(addr + PAGE_SIZE, folio, 0, false)?,
            Some((EINVAL, true))
        );
        assert_eq!(seen(addr, &held)?, before);
        assert!(read_pte(addr + PAGE_SIZE)?.none());
        Ok(())
    }

    #[test]
    fn write_bit_follows_the_vma() -> Result {
        // A private writable mapping and a shared read-only one: the page cache must not become
        // writable through either.
        for (prot, flags) in [
            (prot::READ | prot::WRITE, prot::MAP_PRIVATE),
            (prot::READ, prot::MAP_SHARED),
        ] {
            let (file, addr) = mapped_file(1, prot, flags)?;
            let folio = shmem_get_folio(file.inode(), 0, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
            assert_eq!(try_install(addr, folio, 1, false)?, None);
            let pte = read_pte(addr)?;
            assert!(pte.present() && pte.dirty() && !pte.write());
        }
        Ok(())
    }

    #[test]
    fn wp_needs_registration() -> Result {
        let (file, addr) = mapped_file(1, prot::READ | prot::WRITE, prot::MAP_SHARED)?;
        let held: ARef<Folio> = shmem_get_folio(file.inode(), 0, 0, SgpType::NoAlloc)?
            .ok_or(ENOENT)?
            .unlock();
        let before = seen(addr, &held)?;
        let folio = LockedFolio::lock(held.clone());
        assert_eq!(try_install(addr, folio, 1, true)?, Some((EINVAL, true)));
        // Nor may a userfaultfd marker be written into a VMA not registered for it.
        let markers = with_pmd(addr, |pmd| {
            pmd.pte_offset_map_lock(|ptes| {
                [
                    ptes.set_pte_marker(PteMarker::UFFD_WP),
                    ptes.set_pte_marker(PteMarker::POISONED),
                    // Guard regions are `MADV_GUARD_INSTALL`'s, which checks the VMA for them.
                    ptes.set_pte_marker(PteMarker::GUARD),
                ]
            })
            .ok_or(EAGAIN)
        })?;
        assert_eq!(markers, [Err(EINVAL), Err(EINVAL), Err(EINVAL)]);
        assert_eq!(seen(addr, &held)?, before);
        assert!(read_pte(addr)?.none());
        Ok(())
    }

    #[test]
    fn guard_marker_is_kept() -> Result {
        let (file, addr) = mapped_file(1, prot::READ | prot::WRITE, prot::MAP_SHARED)?;
        kunit::madvise(addr, PAGE_SIZE, bindings::MADV_GUARD_INSTALL as i32)?;
        let guard = read_pte(addr)?;
        assert_eq!(guard.kind(), PteKind::Marker(PteMarker::GUARD));
        let held: ARef<Folio> = shmem_get_folio(file.inode(), 0, 0, SgpType::NoAlloc)?
            .ok_or(ENOENT)?
            .unlock();
        let before = seen(addr, &held)?;
        let folio = LockedFolio::lock(held.clone());
        assert_eq!(try_install(addr, folio, 1, false)?, Some((EEXIST, true)));
        assert_eq!(seen(addr, &held)?, before);
        assert_eq!(read_pte(addr)?, guard);
        Ok(())
    }

    /// A page with a hardware memory error is not mapped: `EIO`, even when the caller did not
    /// look (the check under the PTE table lock is the installation's own; C's installation
    /// trusts `UFFDIO_CONTINUE`'s lookup to have checked before).
    #[test]
    fn hwpoison_page_is_refused() -> Result {
        let (file, addr) = mapped_file(1, prot::READ | prot::WRITE, prot::MAP_SHARED)?;
        let held: ARef<Folio> = shmem_get_folio(file.inode(), 0, 0, SgpType::NoAlloc)?
            .ok_or(ENOENT)?
            .unlock();
        let page = held.page(0).ok_or(EINVAL)?;
        let before = seen(addr, &held)?;
        // SAFETY: The page is the test's own: nothing maps it, and the flag is cleared below.
        unsafe { bindings::SetPageHWPoison(page.as_ptr()) };
        let folio = LockedFolio::lock(held.clone());
        let res = try_install(addr, folio, 1, false);
        // SAFETY: As above.
        unsafe { bindings::ClearPageHWPoison(page.as_ptr()) };
        if !cfg!(CONFIG_MEMORY_FAILURE) {
            crate::kunit::mark_skipped(c"CONFIG_MEMORY_FAILURE is off");
            return Ok(());
        }
        assert_eq!(res?, Some((EIO, true)));
        assert_eq!(seen(addr, &held)?, before);
        assert!(read_pte(addr)?.none());
        Ok(())
    }

    /// A guard marker that keeps the uffd-wp bit, as `MADV_GUARD_INSTALL` leaves it over a
    /// uffd-wp marker in a file VMA registered for write protection: still a guard, refused.
    #[test]
    fn guard_with_uffd_wp_is_kept() -> Result {
        let (file, addr) = mapped_file(1, prot::READ | prot::WRITE, prot::MAP_SHARED)?;
        kunit::madvise(addr, PAGE_SIZE, bindings::MADV_GUARD_INSTALL as i32)?;
        // This suite registers no userfaultfd: add the bit to the guard in the table itself.
        let both = Pte::make_pte_marker(PteMarker::GUARD | PteMarker::UFFD_WP);
        with_pmd(addr, |pmd| {
            pmd.pte_offset_map_lock(|ptes| {
                assert_eq!(ptes.ptep_get().kind(), PteKind::Marker(PteMarker::GUARD));
                // SAFETY: The table is mapped and locked, and the entry is a guard marker: a
                // marker that maps nothing replaces one that maps nothing.
                unsafe {
                    bindings::set_ptes(
                        ptes.vma.mm().as_raw(),
                        addr,
                        ptes.ptep.as_ptr(),
                        both.as_raw(),
                        1,
                    )
                };
            })
            .ok_or(EAGAIN)
        })?;
        let kind = read_pte(addr)?.kind();
        assert_eq!(kind, PteKind::Marker(PteMarker::GUARD | PteMarker::UFFD_WP));
        assert!(!kind.is_fillable() && !kind.is_uffd_marker());
        let held: ARef<Folio> = shmem_get_folio(file.inode(), 0, 0, SgpType::NoAlloc)?
            .ok_or(ENOENT)?
            .unlock();
        let before = seen(addr, &held)?;
        let folio = LockedFolio::lock(held.clone());
        assert_eq!(try_install(addr, folio, 1, false)?, Some((EEXIST, true)));
        assert_eq!(seen(addr, &held)?, before);
        assert_eq!(read_pte(addr)?, both);
        Ok(())
    }

    #[test]
    fn pmd_outside_the_vma() -> Result {
        let (_file, addr) = mapped_file(2, prot::READ, prot::MAP_SHARED)?;
        let mm = kunit::current_mm()?;
        let mmap = mm.mmap_read_lock();
        let vma = mmap
            .vma_lookup(addr)
            .ok_or(ENOENT)?
            .as_pte_mapped()
            .ok_or(EINVAL)?;
        assert_eq!(
            Pmd::establish(vma, addr + 2 * PAGE_SIZE).err(),
            Some(EINVAL)
        );
        assert_eq!(Pmd::establish(vma, addr - PAGE_SIZE).err(), Some(EINVAL));
        assert_eq!(Pmd::establish(vma, addr + 1).err(), Some(EINVAL));
        Ok(())
    }

    #[cfg(CONFIG_HUGETLBFS)]
    #[test]
    fn hugetlb_vma_has_no_pte_tables() -> Result {
        let size = 2 * 1024 * 1024;
        let Ok(file) = kunit::hugetlb_file(c"rust_mm_misuse", size) else {
            crate::kunit::mark_skipped(c"no hugetlb file");
            return Ok(());
        };
        let Ok(addr) = kunit::vm_mmap(Some(&file), size, prot::READ, prot::MAP_SHARED, 0) else {
            crate::kunit::mark_skipped(c"no huge page to map");
            return Ok(());
        };
        let mm = kunit::current_mm()?;
        let mmap = mm.mmap_read_lock();
        let vma = mmap.vma_lookup(addr).ok_or(ENOENT)?;
        assert!(vma.flags() & flags::HUGETLB != 0);
        assert!(vma.as_pte_mapped().is_none());
        drop(mmap);
        // Nor is a hugetlbfs inode taken for a shmem one.
        assert_eq!(
            shmem_get_folio(file.inode(), 0, 0, SgpType::Read).err(),
            Some(EINVAL)
        );
        Ok(())
    }
}
