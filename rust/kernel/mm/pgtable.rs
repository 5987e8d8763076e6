// SPDX-License-Identifier: GPL-2.0

//! CPU page tables: entries, PTE tables and the installation of new mappings.
//!
//! - [`Pte`] is a page table entry value (`pte_t`), built with [`Pte::mk_pte`] and the
//!   `pte_mk*()` modifiers, and classified with [`Pte::kind`] into a [`PteKind`]: an empty entry,
//!   a present mapping, or one of the software leaf entries of `include/linux/leafops.h` (swap,
//!   migration, device-private, device-exclusive, hardware poison, markers). Code that decides
//!   whether an entry may be overwritten is a `match` on that enum, so the compiler checks that
//!   every kind was considered.
//! - [`Pmd`] is a PMD entry that points to a PTE table, valid while the VMA is read-locked.
//! - [`PteTableGuard`] is a PTE table that is mapped and locked (`pte_offset_map_lock()`).
//!   Dropping it does the full `pte_unmap_unlock()`: the page table lock is released *and* the
//!   table is unmapped, which leaves the RCU read-side critical section that
//!   `pte_offset_map_lock()` entered.
//! - New mappings are installed through [`PteTableGuard`] only, from a [`LockedFolio`] (page
//!   cache) or a [`NewAnonFolio`], so that installing a PTE cannot compile without the page table
//!   lock and, for the page cache, the folio lock.
//!
//! See `Documentation/mm/process_addrs.rst` for the locking rules encoded here.
//!
//! C header: [`include/linux/pgtable.h`](srctree/include/linux/pgtable.h),
//! [`include/linux/leafops.h`](srctree/include/linux/leafops.h)

use crate::{
    bindings,
    error::{code::*, Error, Result},
    mm::{
        folio::{Folio, LockedFolio, NewAnonFolio},
        virt::VmaRef,
        MmWithUser,
    },
    page::{Page, PAGE_SIZE},
    types::NotThreadSafe,
};
use core::{fmt, ptr::NonNull};

pub use crate::mm::virt::PgProt;

/// The number of entries in a PTE table (`PTRS_PER_PTE`).
pub const PTRS_PER_PTE: usize = bindings::PTRS_PER_PTE as usize;

/// The size of the virtual range one PMD entry covers (`PMD_SIZE`).
pub const PMD_SIZE: usize = PTRS_PER_PTE * PAGE_SIZE;

/// A page table entry value (`pte_t`).
///
/// This is a value, not a location: reading it from a table is [`PteTableGuard::ptep_get`],
/// writing it is one of the installation methods of [`PteTableGuard`].
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Pte(bindings::pte_t);

impl Pte {
    /// Wraps a raw `pte_t`.
    #[inline]
    pub fn from_raw(pte: bindings::pte_t) -> Self {
        Self(pte)
    }

    /// Returns the raw `pte_t`.
    #[inline]
    pub fn as_raw(self) -> bindings::pte_t {
        self.0
    }

    /// Builds a present entry that maps `page` with protection `prot` (`mk_pte()`).
    #[inline]
    pub fn mk_pte(page: &Page, prot: PgProt) -> Self {
        // SAFETY: `page` is a valid page; `mk_pte()` only computes a value from it.
        Self(unsafe { bindings::mk_pte(page.as_ptr(), prot.as_raw()) })
    }

    /// Builds a marker entry (`make_pte_marker()`).
    #[inline]
    pub fn make_pte_marker(marker: PteMarker) -> Self {
        // SAFETY: Pure computation on a value.
        Self(unsafe { bindings::make_pte_marker(marker.0) })
    }

    /// Returns the entry with the dirty bit set (`pte_mkdirty()`).
    #[inline]
    pub fn mkdirty(self) -> Self {
        // SAFETY: Pure computation on a value.
        Self(unsafe { bindings::pte_mkdirty(self.0) })
    }

    /// Returns the entry made writable for `vma` (`pte_mkwrite()`).
    #[inline]
    pub fn mkwrite(self, vma: &VmaRef) -> Self {
        // SAFETY: `vma` is valid; `pte_mkwrite()` only reads its flags to compute a value.
        Self(unsafe { bindings::pte_mkwrite(self.0, vma.as_ptr()) })
    }

    /// Returns the entry with the userfaultfd write-protect bit set and write permission
    /// removed (`pte_mkuffd()`).
    #[inline]
    pub fn mkuffd(self) -> Self {
        // SAFETY: Pure computation on a value.
        Self(unsafe { bindings::pte_mkuffd(self.0) })
    }

    /// Returns whether the entry is empty (`pte_none()`).
    #[inline]
    pub fn none(self) -> bool {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pte_none(self.0) != 0 }
    }

    /// Returns whether the entry maps a page (`pte_present()`).
    #[inline]
    pub fn present(self) -> bool {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pte_present(self.0) != 0 }
    }

    /// Returns whether a present entry allows writes (`pte_write()`).
    #[inline]
    pub fn write(self) -> bool {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pte_write(self.0) != 0 }
    }

    /// Returns whether a present entry is dirty (`pte_dirty()`).
    #[inline]
    pub fn dirty(self) -> bool {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pte_dirty(self.0) != 0 }
    }

    /// Returns whether a present entry has the userfaultfd bit (`pte_uffd()`).
    #[inline]
    pub fn uffd(self) -> bool {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pte_uffd(self.0) != 0 }
    }

    /// Returns the page frame number a present entry maps (`pte_pfn()`).
    #[inline]
    pub fn pfn(self) -> usize {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pte_pfn(self.0) }
    }

    /// Returns the raw bits of the entry (`pte_val()`).
    #[inline]
    pub fn val(self) -> u64 {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pte_val(self.0) as u64 }
    }

    /// Classifies the entry.
    ///
    /// Every value a PTE can hold maps to exactly one [`PteKind`].
    pub fn kind(self) -> PteKind {
        if self.none() {
            return PteKind::None;
        }
        if self.present() {
            return PteKind::Present;
        }
        // SAFETY: Pure computation on a value.
        let entry = unsafe { bindings::softleaf_from_pte(self.0) };
        // SAFETY: Pure computation on a value.
        let ty = unsafe { bindings::softleaf_type(entry) };
        match ty {
            bindings::softleaf_type_SOFTLEAF_SWAP => PteKind::Swap,
            bindings::softleaf_type_SOFTLEAF_MIGRATION_READ => PteKind::MigrationRead,
            bindings::softleaf_type_SOFTLEAF_MIGRATION_READ_EXCLUSIVE => {
                PteKind::MigrationReadExclusive
            }
            bindings::softleaf_type_SOFTLEAF_MIGRATION_WRITE => PteKind::MigrationWrite,
            bindings::softleaf_type_SOFTLEAF_DEVICE_PRIVATE_READ => PteKind::DevicePrivateRead,
            bindings::softleaf_type_SOFTLEAF_DEVICE_PRIVATE_WRITE => PteKind::DevicePrivateWrite,
            bindings::softleaf_type_SOFTLEAF_DEVICE_EXCLUSIVE => PteKind::DeviceExclusive,
            bindings::softleaf_type_SOFTLEAF_HWPOISON => PteKind::HwPoison,
            bindings::softleaf_type_SOFTLEAF_MARKER => {
                // SAFETY: The entry is a marker, as `softleaf_to_marker()` requires.
                PteKind::Marker(PteMarker(unsafe { bindings::softleaf_to_marker(entry) }))
            }
            // `softleaf_type()` answers `SOFTLEAF_NONE` (and warns) for a type it does not know.
            _ => PteKind::Unknown,
        }
    }
}

impl PartialEq for Pte {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.val() == other.val()
    }
}

impl Eq for Pte {}

impl fmt::Debug for Pte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pte({:#x})", self.val())
    }
}

/// What a page table entry holds: the classification of a [`Pte`].
///
/// The variants after `Present` are the software leaf entries of `enum softleaf_type`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PteKind {
    /// Nothing is mapped and nothing is recorded (`pte_none()`).
    None,
    /// The entry maps a page (`pte_present()`), including `PROT_NONE` entries used for NUMA
    /// hinting and userfaultfd read-write protection.
    Present,
    /// The page was swapped out; the entry holds a swap slot.
    Swap,
    /// The page is being migrated; it was mapped read-only.
    MigrationRead,
    /// The page is being migrated; it was mapped read-only and exclusive.
    MigrationReadExclusive,
    /// The page is being migrated; it was mapped writable.
    MigrationWrite,
    /// The page lives in device-private memory; it was mapped read-only.
    DevicePrivateRead,
    /// The page lives in device-private memory; it was mapped writable.
    DevicePrivateWrite,
    /// A device has exclusive access to the page for atomic operations.
    DeviceExclusive,
    /// The page had a hardware memory error.
    HwPoison,
    /// A marker: no page, but state that must survive in an otherwise empty slot.
    Marker(PteMarker),
    /// An entry of a type this kernel does not know.
    Unknown,
}

impl PteKind {
    /// Returns whether the entry is a userfaultfd-owned marker (`pte_is_uffd_marker()`).
    #[inline]
    pub fn is_uffd_marker(self) -> bool {
        matches!(self, PteKind::Marker(m) if m.is_uffd())
    }

    /// Returns whether the entry holds no page and no resource: empty or a marker.
    ///
    /// Only such entries can be replaced by a new mapping without first tearing down what the
    /// entry refers to. Whether a given marker *may* be replaced is the caller's policy.
    #[inline]
    pub fn is_vacant(self) -> bool {
        matches!(self, PteKind::None | PteKind::Marker(_))
    }
}

/// The bits of a PTE marker (`pte_marker`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PteMarker(bindings::pte_marker);

impl PteMarker {
    /// A userfaultfd write-protected empty entry (`PTE_MARKER_UFFD_WP`).
    pub const UFFD_WP: Self = Self(bindings::PTE_MARKER_UFFD_WP);
    /// A poisoned entry; faults raise `SIGBUS` (`PTE_MARKER_POISONED`), as set by
    /// `UFFDIO_POISON`.
    pub const POISONED: Self = Self(bindings::PTE_MARKER_POISONED);
    /// A guard region entry; faults raise `SIGSEGV` (`PTE_MARKER_GUARD`), as set by
    /// `MADV_GUARD_INSTALL`.
    pub const GUARD: Self = Self(bindings::PTE_MARKER_GUARD);

    /// Returns the raw marker bits.
    #[inline]
    pub fn bits(self) -> usize {
        self.0
    }

    /// Returns whether the userfaultfd write-protect bit is set.
    #[inline]
    pub fn is_uffd_wp(self) -> bool {
        self.0 & Self::UFFD_WP.0 != 0
    }

    /// Returns whether the poison bit is set.
    #[inline]
    pub fn is_poisoned(self) -> bool {
        self.0 & Self::POISONED.0 != 0
    }

    /// Returns whether the guard bit is set.
    #[inline]
    pub fn is_guard(self) -> bool {
        self.0 & Self::GUARD.0 != 0
    }

    /// Returns whether the marker belongs to userfaultfd: write-protect or poison, the markers
    /// that `pte_is_uffd_marker()` accepts.
    #[inline]
    pub fn is_uffd(self) -> bool {
        self.is_uffd_wp() || self.is_poisoned()
    }
}

impl core::ops::BitOr for PteMarker {
    type Output = Self;

    #[inline]
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Debug for PteMarker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PteMarker({:#x})", self.0)
    }
}

/// The per-mm RSS counters (`enum` `MM_FILEPAGES`, ...).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum MmCounter {
    /// Resident file-backed pages (`MM_FILEPAGES`).
    FilePages = bindings::MM_FILEPAGES,
    /// Resident anonymous pages (`MM_ANONPAGES`).
    AnonPages = bindings::MM_ANONPAGES,
    /// Anonymous swap entries (`MM_SWAPENTS`).
    SwapEnts = bindings::MM_SWAPENTS,
    /// Resident shmem pages (`MM_SHMEMPAGES`).
    ShmemPages = bindings::MM_SHMEMPAGES,
}

impl MmCounter {
    /// Returns the counter that accounts mappings of `folio` (`mm_counter()`).
    ///
    /// This depends on whether the folio is anonymous, so for a new anonymous folio it must be
    /// asked after the anonymous reverse mapping was added.
    #[inline]
    pub fn of_folio(folio: &Folio) -> Self {
        // SAFETY: The folio is valid.
        match unsafe { bindings::mm_counter(folio.as_ptr()) } as u32 {
            bindings::MM_ANONPAGES => Self::AnonPages,
            bindings::MM_SHMEMPAGES => Self::ShmemPages,
            bindings::MM_SWAPENTS => Self::SwapEnts,
            _ => Self::FilePages,
        }
    }
}

impl MmWithUser {
    /// Returns the value of an RSS counter (`get_mm_counter()`).
    ///
    /// This is the cheap, approximate value: updates still batched on other CPUs are not
    /// included.
    #[inline]
    pub fn get_mm_counter(&self, counter: MmCounter) -> usize {
        // SAFETY: The mm is valid; reading a counter is always allowed.
        unsafe { bindings::get_mm_counter(self.as_raw(), counter as i32) }
    }

    /// Returns the exact value of an RSS counter, summed over all CPUs
    /// (`get_mm_counter_sum()`).
    #[inline]
    pub fn get_mm_counter_sum(&self, counter: MmCounter) -> usize {
        // SAFETY: The mm is valid; reading a counter is always allowed.
        unsafe { bindings::get_mm_counter_sum(self.as_raw(), counter as i32) }
    }
}

/// Returns the start of the range covered by the PMD entry for `addr`.
#[inline]
fn pmd_base(addr: usize) -> usize {
    addr & !(PMD_SIZE - 1)
}

/// A PMD entry that points to a PTE table.
///
/// The PTE table itself may go away at any time (khugepaged collapses page tables of file
/// mappings under the mmap read lock), which is why mapping it with
/// [`pte_offset_map_lock`](Pmd::pte_offset_map_lock) can fail. The PMD entry does not go away
/// while the VMA is read-locked.
///
/// # Invariants
///
/// `pmd` points to the PMD entry covering `base..base + PMD_SIZE` in the page tables of the mm of
/// `vma`, and `vma` covers at least part of that range. The PMD entry stays valid while the VMA
/// read lock (or the mmap read lock) is held, which is at least `'a`.
pub struct Pmd<'a> {
    pmd: NonNull<bindings::pmd_t>,
    base: usize,
    vma: &'a VmaRef,
}

impl<'a> Pmd<'a> {
    /// Wraps a PMD entry established by C code.
    ///
    /// # Safety
    ///
    /// `pmd` must point to the PMD entry for `addr` in the page tables of `vma`'s mm, with `addr`
    /// inside `vma`, and the entry must stay valid for `'a` (the VMA is read-locked).
    #[inline]
    pub unsafe fn from_raw(vma: &'a VmaRef, pmd: NonNull<bindings::pmd_t>, addr: usize) -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self {
            pmd,
            base: pmd_base(addr),
            vma,
        }
    }

    /// Allocates the page tables down to a PTE table for `addr` (the C
    /// `mfill_establish_pmd()`).
    ///
    /// Fails with `ENOMEM` if a table cannot be allocated, `EEXIST` if the range is mapped by a
    /// huge PMD (or a non-present PMD entry), `EFAULT` if the PMD entry is bad, and `EINVAL` if
    /// `addr` is outside `vma`.
    pub fn establish(vma: &'a VmaRef, addr: usize) -> Result<Self> {
        if addr < vma.start() || addr >= vma.end() {
            return Err(EINVAL);
        }
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
        let pmd = NonNull::new(pmd).ok_or(ENOMEM)?;
        // SAFETY: `pmd` is a valid PMD entry in this mm.
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
        // INVARIANT: `pmd` is the entry for `addr` in the VMA's mm; it stays valid while the VMA
        // is read-locked, which `&'a VmaRef` guarantees for 'a.
        Ok(Self {
            pmd,
            base: pmd_base(addr),
            vma,
        })
    }

    /// Returns a raw pointer to the PMD entry.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::pmd_t {
        self.pmd.as_ptr()
    }

    /// Returns the VMA this PMD entry was established for.
    #[inline]
    pub fn vma(&self) -> &'a VmaRef {
        self.vma
    }

    /// Maps and locks the PTE table, positioned at the entry for `addr`
    /// (`pte_offset_map_lock()`).
    ///
    /// Returns `None` if there is no PTE table any more (it was freed or replaced by a huge
    /// PMD since the PMD was established), or if `addr` is not covered by both this PMD entry and
    /// the VMA (a caller bug, which also warns).
    pub fn pte_offset_map_lock(&self, addr: usize) -> Option<PteTableGuard<'_>> {
        if crate::warn_on!(
            pmd_base(addr) != self.base || addr < self.vma.start() || addr >= self.vma.end()
        ) {
            return None;
        }
        let mut ptl: *mut bindings::spinlock_t = core::ptr::null_mut();
        // SAFETY: The PMD entry and the mm are valid by the type invariants, and `addr` is in the
        // range of the PMD entry.
        let ptep = unsafe {
            bindings::pte_offset_map_lock(self.vma.mm().as_raw(), self.as_ptr(), addr, &mut ptl)
        };
        let ptep = NonNull::new(ptep)?;
        // INVARIANT: `pte_offset_map_lock()` succeeded: the table is mapped and `ptl` is held.
        Some(PteTableGuard {
            ptep,
            mapped: ptep,
            // SAFETY: On success `pte_offset_map_lock()` sets `ptl` to the (locked) table lock.
            ptl: unsafe { NonNull::new_unchecked(ptl) },
            addr,
            vma: self.vma,
            _nts: NotThreadSafe,
        })
    }
}

/// A PTE table that is mapped and whose lock is held, positioned at the entry for one address.
///
/// Created by [`Pmd::pte_offset_map_lock`]. The entries from that address up to the end of the
/// table or of the VMA, whichever comes first, can be read and written through the guard; see
/// [`max_nr`](Self::max_nr). Dropping the guard unlocks and unmaps the table
/// (`pte_unmap_unlock()`).
///
/// # Invariants
///
/// `mapped` is the entry that `pte_offset_map_lock()` returned when it mapped a PTE table of
/// `vma`'s mm and took its lock `ptl`; the table stays mapped and `ptl` held by this guard.
/// `ptep` is the entry for `addr` in the same table, and `addr` is inside `vma`.
pub struct PteTableGuard<'a> {
    ptep: NonNull<bindings::pte_t>,
    // The entry `pte_offset_map_lock()` returned, for `pte_unmap_unlock()`.
    mapped: NonNull<bindings::pte_t>,
    ptl: NonNull<bindings::spinlock_t>,
    addr: usize,
    vma: &'a VmaRef,
    // The lock must be released on the CPU and in the RCU read-side section that took it.
    _nts: NotThreadSafe,
}

impl<'a> PteTableGuard<'a> {
    /// Returns the address of the entry the guard is positioned at.
    #[inline]
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// Returns the VMA the table belongs to.
    #[inline]
    pub fn vma(&self) -> &'a VmaRef {
        self.vma
    }

    /// Returns how many entries, from [`addr`](Self::addr) on, are in both this table and the
    /// VMA.
    #[inline]
    pub fn max_nr(&self) -> usize {
        let table_end = pmd_base(self.addr) + PMD_SIZE;
        let end = core::cmp::min(table_end, self.vma.end());
        (end - self.addr) / PAGE_SIZE
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
        Pte(unsafe { bindings::ptep_get(self.ptep.as_ptr()) })
    }

    /// Reads the `i`th entry from the guard's position, if it is within [`max_nr`](Self::max_nr).
    #[inline]
    pub fn ptep_get_nr(&self, i: usize) -> Option<Pte> {
        if i >= self.max_nr() {
            return None;
        }
        // SAFETY: The table is mapped and locked, and `i` is within it.
        Some(Pte(unsafe { bindings::ptep_get(self.ptep_nr(i)) }))
    }

    /// Checks that `nr` entries from the position exist and are all vacant (empty or markers).
    fn check_vacant(&self, nr: usize) -> Result {
        if nr == 0 || nr > self.max_nr() {
            return Err(EINVAL);
        }
        for i in 0..nr {
            // SAFETY: The table is mapped and locked, and `i < nr <= max_nr()`.
            let old = Pte(unsafe { bindings::ptep_get(self.ptep_nr(i)) });
            if !old.kind().is_vacant() {
                return Err(EEXIST);
            }
        }
        Ok(())
    }

    /// Maps `nr` consecutive pages of a page-cache folio at the guard's position, starting with
    /// page `page_nr` of the folio, using the PTE value `pte` for the first page (the next ones
    /// map the following pages with the same bits).
    ///
    /// In order, like the C code that maps page-cache folios: the file reverse mapping is added
    /// (`folio_add_file_rmap_ptes()`), the mm counter of the folio is increased (after the rmap,
    /// as `mm_counter()` wants), the entries are written (`set_ptes()`), the folio is unlocked and
    /// the MMU cache is updated (`update_mmu_cache_range()`). The entries own the folio
    /// reference(s): the one in `folio`, plus `nr - 1` more taken here.
    ///
    /// The entries must be vacant ([`PteKind::is_vacant`]); which vacant entries may be
    /// replaced (e.g. which markers) is for the caller to decide before calling this.
    ///
    /// On failure the folio is handed back, still locked and referenced, with the error:
    /// `EEXIST` if an entry is not vacant, `EINVAL` if `pte` does not map page `page_nr` of the
    /// folio, if the folio is anonymous, or if the range leaves the folio, the table or the VMA.
    pub fn set_ptes_file(
        &mut self,
        folio: LockedFolio,
        page_nr: usize,
        nr: usize,
        pte: Pte,
    ) -> Result<(), (Error, LockedFolio)> {
        if folio.test_anon()
            || page_nr
                .checked_add(nr)
                .is_none_or(|end| end > folio.nr_pages())
            || !pte.present()
            || pte.pfn() != folio.pfn() + page_nr
        {
            return Err((EINVAL, folio));
        }
        if let Err(e) = self.check_vacant(nr) {
            return Err((e, folio));
        }
        let vma = self.vma.as_ptr();
        let mm = self.vma.mm().as_raw();
        // SAFETY: `page_nr < nr_pages`: the page is inside the folio.
        let page = unsafe { bindings::folio_page(folio.as_ptr(), page_nr) };
        let counter = MmCounter::of_folio(&folio);
        // SAFETY: The page table lock is held and the `nr` entries are vacant; the folio is
        // locked, so it stays in the page cache; the pages are inside the folio; the entries are
        // inside the VMA. Each new entry takes one folio reference: ours plus `nr - 1` new ones.
        unsafe {
            bindings::folio_add_file_rmap_ptes(folio.as_ptr(), page, nr as i32, vma);
            if nr == 1 {
                bindings::inc_mm_counter(mm, counter as i32);
            } else {
                bindings::add_mm_counter(mm, counter as i32, nr as isize);
                bindings::folio_ref_add(folio.as_ptr(), nr as i32 - 1);
            }
            bindings::set_ptes(mm, self.addr, self.ptep.as_ptr(), pte.0, nr as u32);
            folio.unlock_and_transfer();
            // No TLB flush: the entries were not present before.
            if nr == 1 {
                bindings::update_mmu_cache(vma, self.addr, self.ptep.as_ptr());
            } else {
                bindings::update_mmu_cache_range(vma, self.addr, self.ptep.as_ptr(), nr as u32);
            }
        }
        Ok(())
    }

    /// Maps a new anonymous folio at the guard's position, with the PTE value `pte`.
    ///
    /// In order, like the C code that maps new anonymous memory: the folio becomes anonymous
    /// memory of the VMA, exclusively mapped (`folio_add_new_anon_rmap()` with `RMAP_EXCLUSIVE`),
    /// is added to the LRU (`folio_add_lru_vma()`), the anonymous mm counter is increased, the
    /// entry is written and the MMU cache updated. The entry owns the folio reference.
    ///
    /// On failure the folio is handed back with the error: `EEXIST` if the entry is not vacant,
    /// `EINVAL` if `pte` does not map the folio or the VMA has no `anon_vma` (the caller prepares
    /// it, as `anon_vma_prepare()` does for the C fill paths).
    pub fn set_pte_new_anon(
        &mut self,
        folio: NewAnonFolio,
        pte: Pte,
    ) -> Result<(), (Error, NewAnonFolio)> {
        if !pte.present() || pte.pfn() != folio.pfn() || !self.vma.has_anon_vma() {
            return Err((EINVAL, folio));
        }
        if let Err(e) = self.check_vacant(1) {
            return Err((e, folio));
        }
        let vma = self.vma.as_ptr();
        let mm = self.vma.mm().as_raw();
        // SAFETY: The page table lock is held and the entry is vacant; the VMA has an anon_vma;
        // by the invariants of `NewAnonFolio` the folio is new, order 0, uptodate and seen by no
        // one else, as `folio_add_new_anon_rmap()` requires. The entry takes our reference.
        unsafe {
            bindings::folio_add_new_anon_rmap(
                folio.as_ptr(),
                vma,
                self.addr,
                bindings::RMAP_EXCLUSIVE,
            );
            bindings::folio_add_lru_vma(folio.as_ptr(), vma);
            // After the rmap: `mm_counter()` looks at the anon bit that the rmap just set.
            let counter = MmCounter::of_folio(&folio);
            bindings::inc_mm_counter(mm, counter as i32);
            bindings::set_ptes(mm, self.addr, self.ptep.as_ptr(), pte.0, 1);
            folio.transfer();
            // No TLB flush: the entry was not present before.
            bindings::update_mmu_cache(vma, self.addr, self.ptep.as_ptr());
        }
        Ok(())
    }

    /// Writes a marker into the empty entry at the guard's position.
    ///
    /// Markers own no page, so this is the one kind of entry that can be written without a folio.
    /// Fails with `EEXIST` if the entry is not empty (`pte_none()`), like `UFFDIO_POISON`.
    pub fn set_pte_marker(&mut self, marker: PteMarker) -> Result {
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
                pte.0,
                1,
            );
            bindings::update_mmu_cache(self.vma.as_ptr(), self.addr, self.ptep.as_ptr());
        }
        Ok(())
    }
}

impl Drop for PteTableGuard<'_> {
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
            kunit::{self, prot},
            shmem::{shmem_file_setup, shmem_get_folio, SgpType},
        },
        sync::aref::ARef,
    };

    const PS: i64 = PAGE_SIZE as i64;

    /// Builds the PTE a fill would build for page `nr` of `folio` in `vma`.
    fn file_pte(vma: &VmaRef, folio: &Folio, nr: usize, write: bool) -> Result<Pte> {
        let page = folio.page(nr).ok_or(EINVAL)?;
        let pte = Pte::mk_pte(&page, vma.page_prot()).mkdirty();
        Ok(if write { pte.mkwrite(vma) } else { pte })
    }

    /// Reads the PTE for `addr`, with the locks taken and dropped inside.
    fn read_pte(addr: usize) -> Result<Pte> {
        let mm = kunit::current_mm()?;
        let mmap = mm.mmap_read_lock();
        let vma = mmap.vma_lookup(addr).ok_or(EINVAL)?;
        let pmd = Pmd::establish(vma, addr)?;
        let ptes = pmd.pte_offset_map_lock(addr).ok_or(EAGAIN)?;
        Ok(ptes.ptep_get())
    }

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
        // A combined marker is a userfaultfd marker if it has a userfaultfd bit.
        let both = PteMarker::UFFD_WP | PteMarker::GUARD;
        assert!(both.is_uffd() && both.is_guard());
        assert!(wp.kind().is_vacant() && guard.kind().is_vacant());
        // SAFETY: `__pte(0)` is the empty entry on every architecture.
        let none = Pte::from_raw(unsafe { core::mem::zeroed() });
        assert!(none.none());
        assert_eq!(none.kind(), PteKind::None);
        assert!(none.kind().is_vacant() && !none.kind().is_uffd_marker());
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
            assert!(!pte.kind().is_vacant() && !pte.kind().is_uffd_marker());
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
        assert!(!dev_x.kind().is_vacant());
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
        assert!(!pte.kind().is_vacant());
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
            let clean = Pte::mk_pte(&page, vma.page_prot());
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
        // Flush the per-CPU LRU batches, which hold references on new folios.
        // SAFETY: Always safe to call from process context.
        unsafe { bindings::lru_add_drain_all() };
        let folio = shmem_get_folio(file.inode(), 1, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
        let held: ARef<Folio> = ARef::from(&*folio);
        let refs_before = kunit::settled_ref_count(&held);
        let (old, max_nr, pte, again) = {
            let mmap = mm.mmap_read_lock();
            let vma = mmap.vma_lookup(addr).ok_or(EINVAL)?;
            let pmd = Pmd::establish(vma, addr)?;
            let pte = file_pte(vma, &folio, 0, true)?;
            let mut ptes = pmd.pte_offset_map_lock(addr).ok_or(EAGAIN)?;
            let old = ptes.ptep_get();
            let max_nr = ptes.max_nr();
            let res = ptes.set_ptes_file(folio, 0, 1, pte);
            drop(ptes);
            res.map_err(|(e, _)| e)?;
            // A second installation over the new entry is refused, and the folio comes back.
            let folio2 = shmem_get_folio(file.inode(), 1, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
            let pte2 = file_pte(vma, &folio2, 0, true)?;
            let mut ptes = pmd.pte_offset_map_lock(addr).ok_or(EAGAIN)?;
            let again = ptes.set_ptes_file(folio2, 0, 1, pte2);
            drop(ptes);
            (
                old,
                max_nr,
                pte,
                again.err().map(|(e, f)| (e, f.test_locked())),
            )
        };
        assert_eq!(old.kind(), PteKind::None);
        assert_eq!(max_nr, 3);
        assert_eq!(again, Some((EEXIST, true)));
        let now = read_pte(addr)?;
        assert_eq!(now, pte);
        assert!(now.present() && now.write() && now.dirty());
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
    fn marker_then_install() -> Result {
        let file = shmem_file_setup(c"rust_mm_pgtable", PS)?;
        kunit::file_write(&file, 0, b"m")?;
        let addr = kunit::vm_mmap(Some(&file), PAGE_SIZE, prot::READ, prot::MAP_SHARED, 0)?;
        let mm = kunit::current_mm()?;
        let folio = shmem_get_folio(file.inode(), 0, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
        let (first, second, marker, installed) = {
            let mmap = mm.mmap_read_lock();
            let vma = mmap.vma_lookup(addr).ok_or(EINVAL)?;
            let pmd = Pmd::establish(vma, addr)?;
            let pte = file_pte(vma, &folio, 0, false)?;
            let mut ptes = pmd.pte_offset_map_lock(addr).ok_or(EAGAIN)?;
            let first = ptes.set_pte_marker(PteMarker::UFFD_WP);
            let second = ptes.set_pte_marker(PteMarker::POISONED);
            let marker = ptes.ptep_get();
            let installed = ptes.set_ptes_file(folio, 0, 1, pte);
            drop(ptes);
            (first, second, marker, installed.map_err(|(e, _)| e))
        };
        assert_eq!(first, Ok(()));
        assert_eq!(second, Err(EEXIST));
        assert_eq!(marker.kind(), PteKind::Marker(PteMarker::UFFD_WP));
        assert_eq!(installed, Ok(()));
        let now = read_pte(addr)?;
        assert!(now.present() && !now.write());
        Ok(())
    }

    #[test]
    fn install_rejects_wrong_page() -> Result {
        let file = shmem_file_setup(c"rust_mm_pgtable", 2 * PS)?;
        kunit::file_write(&file, 0, &[1u8; 2 * PAGE_SIZE])?;
        let addr = kunit::vm_mmap(Some(&file), 2 * PAGE_SIZE, prot::READ, prot::MAP_SHARED, 0)?;
        let mm = kunit::current_mm()?;
        let f0 = shmem_get_folio(file.inode(), 0, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
        let f1 = shmem_get_folio(file.inode(), 1, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
        let (wrong, past, after) = {
            let mmap = mm.mmap_read_lock();
            let vma = mmap.vma_lookup(addr).ok_or(EINVAL)?;
            let pmd = Pmd::establish(vma, addr)?;
            let pte1 = file_pte(vma, &f1, 0, false)?;
            let mut ptes = pmd.pte_offset_map_lock(addr).ok_or(EAGAIN)?;
            // The PTE maps f1's page, but f0 is passed: refused.
            let wrong = ptes.set_ptes_file(f0, 0, 1, pte1);
            // More pages than the folio has: refused.
            let past = ptes.set_ptes_file(f1, 0, 2, pte1);
            let after = ptes.ptep_get();
            drop(ptes);
            (
                wrong.err().map(|(e, f)| (e, f.index())),
                past.err().map(|(e, f)| (e, f.index())),
                after,
            )
        };
        assert_eq!(wrong, Some((EINVAL, 0)));
        assert_eq!(past, Some((EINVAL, 1)));
        assert!(after.none());
        Ok(())
    }

    #[test]
    fn install_new_anon() -> Result {
        let file = shmem_file_setup(c"rust_mm_pgtable", 2 * PS)?;
        kunit::file_write(&file, 0, &[7u8; 2 * PAGE_SIZE])?;
        let base = kunit::vm_mmap(
            Some(&file),
            2 * PAGE_SIZE,
            prot::READ | prot::WRITE,
            prot::MAP_PRIVATE,
            0,
        )?;
        // A write to the first page copies it, which gives the VMA its anon_vma.
        kunit::write_user(base, b"cow")?;
        let addr = base + PAGE_SIZE;
        let mm = kunit::current_mm()?;
        let anon_before = mm.get_mm_counter_sum(MmCounter::AnonPages);
        let (res, held, pte) = {
            let mmap = mm.mmap_read_lock();
            let vma = mmap.vma_lookup(addr).ok_or(EINVAL)?;
            let has_anon_vma = vma.has_anon_vma();
            let folio = NewAnonFolio::alloc_zeroed(vma, addr)?;
            let held: ARef<Folio> = ARef::from(&*folio);
            let pte = {
                let page = folio.page(0).ok_or(EINVAL)?;
                Pte::mk_pte(&page, vma.page_prot()).mkdirty().mkwrite(vma)
            };
            let pmd = Pmd::establish(vma, addr)?;
            let mut ptes = pmd.pte_offset_map_lock(addr).ok_or(EAGAIN)?;
            let res = ptes.set_pte_new_anon(folio, pte);
            drop(ptes);
            ((has_anon_vma, res.map_err(|(e, _)| e)), held, pte)
        };
        assert_eq!(res, (true, Ok(())));
        // SAFETY: Always safe to call.
        unsafe { bindings::lru_add_drain_all() };
        assert!(held.test_anon());
        assert!(held.test_lru());
        assert_eq!(held.mapcount(), 1);
        assert_eq!(mm.get_mm_counter_sum(MmCounter::AnonPages), anon_before + 1);
        assert_eq!(read_pte(addr)?, pte);
        // The new page is zeroed, not the file's contents.
        let mut buf = [1u8; 8];
        kunit::read_user(addr, &mut buf)?;
        assert_eq!(buf, [0u8; 8]);
        Ok(())
    }

    #[test]
    fn table_guard_bounds() -> Result {
        let file = shmem_file_setup(c"rust_mm_pgtable", 4 * PS)?;
        let addr = kunit::vm_mmap(Some(&file), 4 * PAGE_SIZE, prot::READ, prot::MAP_SHARED, 0)?;
        let mm = kunit::current_mm()?;
        let r = {
            let mmap = mm.mmap_read_lock();
            let vma = mmap.vma_lookup(addr).ok_or(EINVAL)?;
            let pmd = Pmd::establish(vma, addr)?;
            let mut ptes = pmd.pte_offset_map_lock(addr).ok_or(EAGAIN)?;
            let nr = ptes.max_nr();
            let r = (nr, ptes.ptep_get_nr(nr - 1), ptes.ptep_get_nr(nr));
            // Moving past the end is refused; moving by one shrinks what is left by one.
            let past = ptes.advance(nr);
            let one = if nr > 1 { ptes.advance(1) } else { Ok(()) };
            let moved = (ptes.addr(), ptes.max_nr());
            drop(ptes);
            (r, past, one, moved)
        };
        let ((nr, last, beyond), past, one, moved) = r;
        assert_eq!(past, Err(EINVAL));
        assert_eq!(one, Ok(()));
        if nr > 1 {
            assert_eq!(moved, (addr + PAGE_SIZE, nr - 1));
        }
        // The VMA is 4 pages; a PTE table holds PTRS_PER_PTE entries and the VMA may straddle
        // two tables.
        assert!((1..=4).contains(&nr));
        assert!(last.is_some_and(|p| p.none()));
        assert!(beyond.is_none());
        Ok(())
    }
}
