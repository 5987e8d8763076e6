// SPDX-License-Identifier: GPL-2.0

//! Page table entry values and their classification.
//!
//! [`Pte`] is a page table entry value (`pte_t`), built with [`Pte::mk_pte`] and the `pte_mk*()`
//! modifiers, and classified with [`Pte::kind`] into a [`PteKind`]: an empty entry, a present
//! mapping, or one of the software leaf entries of `include/linux/leafops.h` (swap, migration,
//! device-private, device-exclusive, hardware poison, markers). Code that decides whether an
//! entry may be overwritten is a `match` on that enum, so the compiler checks that every kind was
//! considered.
//!
//! A [`Pte`] is only a value: reading one from a page table and installing a new one are methods
//! of [`PteTableGuard`], which builds the entries it installs itself.
//!
//! Predicates that wrap a C predicate keep its name without the type prefix (`pte_present()` is
//! [`Pte::present`], `pte_is_uffd_marker()` is [`PteKind::is_uffd_marker`]); predicates of this
//! module's own start with `is_`.
//!
//! C header: [`include/linux/pgtable.h`](srctree/include/linux/pgtable.h),
//! [`include/linux/leafops.h`](srctree/include/linux/leafops.h)
//!
//! [`PteTableGuard`]: crate::mm::pgtable::PteTableGuard

use crate::{
    bindings,
    mm::{
        folio::FolioPage,
        virt::{PgProt, VmaRef},
    },
};
use core::fmt;

/// A page table entry value (`pte_t`).
///
/// This is a value, not a location: reading it from a table is
/// [`PteTableGuard::ptep_get`](crate::mm::pgtable::PteTableGuard::ptep_get). No installation
/// method takes one: they build the entries they install.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Pte(bindings::pte_t);

impl Pte {
    /// Wraps a raw `pte_t`, read from a page table (or built by a test).
    ///
    /// Not public: [`Pte::kind`] of a value no page table holds, such as a swap entry of a type
    /// that does not exist, would trip a `VM_WARN_ON_ONCE()` of `softleaf_type()`.
    #[inline]
    pub(crate) fn from_raw(pte: bindings::pte_t) -> Self {
        Self(pte)
    }

    /// Returns the raw `pte_t`.
    #[inline]
    pub fn as_raw(self) -> bindings::pte_t {
        self.0
    }

    /// Builds a present entry that maps `page` with protection `prot` (`mk_pte()`).
    #[inline]
    pub fn mk_pte(page: FolioPage<'_>, prot: PgProt) -> Self {
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
        unsafe { bindings::pte_val(self.0) }
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
    /// Returns whether the entry is a userfaultfd-owned marker (`pte_is_uffd_marker()`): a
    /// userfaultfd bit without the guard bit.
    #[inline]
    pub fn is_uffd_marker(self) -> bool {
        matches!(self, PteKind::Marker(m) if m.is_uffd() && !m.is_guard())
    }

    /// Returns whether a new mapping may be installed over the entry: it is empty, or a
    /// userfaultfd marker (write-protect or poison) without the guard bit.
    ///
    /// This is the rule of every userfaultfd fill (`mfill_atomic_install_pte()`): a marker left
    /// by userfaultfd stands for an empty entry that userfaultfd tracks; anything else is
    /// someone's mapping or state (a page, a swap slot, a migration or device entry, hardware
    /// poison, a guard region) and must not be overwritten. The match names every kind, so a new
    /// kind cannot be forgotten.
    #[inline]
    pub fn is_fillable(self) -> bool {
        match self {
            PteKind::None => true,
            // A guard keeps the uffd-wp bit of the entry it replaced: still a guard.
            PteKind::Marker(marker) => marker.is_uffd() && !marker.is_guard(),
            PteKind::Present
            | PteKind::Swap
            | PteKind::MigrationRead
            | PteKind::MigrationReadExclusive
            | PteKind::MigrationWrite
            | PteKind::DevicePrivateRead
            | PteKind::DevicePrivateWrite
            | PteKind::DeviceExclusive
            | PteKind::HwPoison
            | PteKind::Unknown => false,
        }
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

    /// Returns whether a userfaultfd bit is set: write-protect or poison. A guard marker may
    /// carry the write-protect bit too, and is still not a userfaultfd marker
    /// ([`PteKind::is_uffd_marker`]).
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
