// SPDX-License-Identifier: GPL-2.0

//! Userfaultfd fills in Rust: `UFFDIO_CONTINUE`, and the PTE installation of every fill mode.
//!
//! This is the counterpart of `mfill_atomic_pte_continue()` and `mfill_atomic_install_pte()` in
//! `mm/userfaultfd.c`, which calls it when `CONFIG_USERFAULTFD_RUST` is enabled and the debugfs
//! switch `userfaultfd/mfill_impl` says `rust`. The C caller keeps what it owns: parsing the
//! ioctl, locking the VMA, `mmap_changing`, establishing the PMD, the per-page loop, the write
//! barrier, `mapped` and the wake-ups. This file handles one page at a time:
//!
//! - [`mfill_atomic_pte_continue`] looks the folio up in the page cache without allocating and
//!   maps the page that holds the faulting offset;
//! - [`mfill_atomic_install_pte`] installs the PTE for a folio: a page-cache folio
//!   (`UFFDIO_CONTINUE`, or `UFFDIO_COPY`/`UFFDIO_ZEROPAGE` into a shared mapping once the folio
//!   was added to the page cache) or a new anonymous folio (`UFFDIO_COPY`/`UFFDIO_ZEROPAGE` into
//!   a private mapping).
//!
//! Both run with the VMA read-locked (per-VMA lock or mmap read lock) and the PMD established.

use kernel::{
    bindings,
    error::{code::*, Error, Result},
    ffi::{c_int, c_ulong},
    mm::{
        folio::{page_folio, LockedFolio, NewAnonFolio},
        pgtable::{Pmd, Pte, PteKind},
        userfaultfd::UffdFlags,
        virt::{flags, VmaRef},
    },
    page::{BorrowedPage, PAGE_SIZE},
    prelude::*,
};

/// A folio on its way into a page table, with the state each kind must be in.
pub enum MfillFolio {
    /// A folio in the page cache, locked, with one reference for the new PTE.
    PageCache(LockedFolio),
    /// A new anonymous folio, with its only reference for the new PTE.
    NewAnon(NewAnonFolio),
}

impl MfillFolio {
    /// Returns the `nr`th page of the folio.
    fn page(&self, nr: usize) -> Option<BorrowedPage<'_>> {
        match self {
            MfillFolio::PageCache(folio) => folio.page(nr),
            MfillFolio::NewAnon(folio) => folio.page(nr),
        }
    }

    /// Gives the folio back to C, as it was before the call.
    fn into_raw(self) -> *mut bindings::folio {
        match self {
            MfillFolio::PageCache(folio) => folio.into_raw().as_ptr(),
            MfillFolio::NewAnon(folio) => folio.into_raw().as_ptr(),
        }
    }
}

/// Returns whether `dst_addr` maps a file offset at or beyond the end of the file.
///
/// Called with the PTE table lock held: truncation unmaps under that lock after updating
/// `i_size`, so a page that is inside the file here cannot be truncated before the PTE is
/// visible, and a truncation that already happened is seen here.
fn mfill_file_over_size(vma: &VmaRef, dst_addr: usize) -> bool {
    let Some(file) = vma.file() else {
        return false;
    };
    let offset = vma.linear_page_index(dst_addr);
    let size = file.inode().i_size_read();
    let max_off = (size as u64).div_ceil(PAGE_SIZE as u64);
    offset as u64 >= max_off
}

/// Maps page `page_nr` of `folio` at `dst_addr` (`mfill_atomic_install_pte()`).
///
/// The PTE is dirty; writable if the VMA is writable, except that a page-cache page is never
/// mapped writable into a private mapping (a write must copy it first); write-protected with the
/// userfaultfd bit if the fill asked for `MFILL_ATOMIC_WP`.
///
/// Under the PTE table lock, the file size is checked again (`EFAULT` beyond the end of the
/// file) and the old entry must be empty or a userfaultfd marker (`EEXIST` otherwise). If the
/// PTE table is gone, the error is `EAGAIN`.
///
/// On success the PTE owns the folio reference and a page-cache folio is unlocked. On failure
/// the folio comes back with the error, in the state it was passed in.
pub fn mfill_atomic_install_pte(
    pmd: &Pmd<'_>,
    dst_addr: usize,
    folio: MfillFolio,
    page_nr: usize,
    flags: UffdFlags,
) -> Result<(), (Error, MfillFolio)> {
    let vma = pmd.vma();
    let page_in_cache = matches!(folio, MfillFolio::PageCache(_));
    let vm_flags = vma.flags();
    let writable = vm_flags & flags::WRITE != 0 && (!page_in_cache || vm_flags & flags::SHARED != 0);

    let Some(page) = folio.page(page_nr) else {
        return Err((EINVAL, folio));
    };
    let mut pte = Pte::mk_pte(&page, vma.page_prot()).mkdirty();
    drop(page);
    if writable {
        pte = pte.mkwrite(vma);
    }
    if flags.wp() {
        pte = pte.mkuffd();
    }

    let Some(mut ptes) = pmd.pte_offset_map_lock(dst_addr) else {
        return Err((EAGAIN, folio));
    };

    if mfill_file_over_size(vma, dst_addr) {
        return Err((EFAULT, folio));
    }

    // Only an empty entry or a userfaultfd marker may be replaced: with both MISSING and WP
    // registered, an empty entry may have been write-protected (uffd-wp marker) before the page
    // was filled; a poison marker is replaced as well. Everything else is someone's mapping or
    // state and must not be overwritten.
    match ptes.ptep_get().kind() {
        PteKind::None => {}
        PteKind::Marker(marker) if marker.is_uffd() => {}
        PteKind::Marker(_)
        | PteKind::Present
        | PteKind::Swap
        | PteKind::MigrationRead
        | PteKind::MigrationReadExclusive
        | PteKind::MigrationWrite
        | PteKind::DevicePrivateRead
        | PteKind::DevicePrivateWrite
        | PteKind::DeviceExclusive
        | PteKind::HwPoison
        | PteKind::Unknown => return Err((EEXIST, folio)),
    }

    match folio {
        MfillFolio::PageCache(folio) => ptes
            .set_ptes_file(folio, page_nr, 1, pte)
            .map_err(|(e, folio)| (e, MfillFolio::PageCache(folio))),
        MfillFolio::NewAnon(folio) => ptes
            .set_pte_new_anon(folio, pte)
            .map_err(|(e, folio)| (e, MfillFolio::NewAnon(folio))),
    }
}

/// Resolves a minor fault at `dst_addr` (`mfill_atomic_pte_continue()`).
///
/// Looks the folio up in the page cache of the VMA's file with the memory type's
/// `get_folio_noalloc()`: a fallocated folio is zeroed and returned, a swapped-out one swapped
/// in. Any lookup failure (a hole, beyond the end of the file, an I/O error) is `EFAULT`, which
/// is what the caller reports. A hardware-poisoned page is `EIO`. Then the page that holds the
/// offset, and only that page, is mapped with [`mfill_atomic_install_pte`].
pub fn mfill_atomic_pte_continue(pmd: &Pmd<'_>, dst_addr: usize, flags: UffdFlags) -> Result {
    let vma = pmd.vma();
    let (Some(ops), Some(file)) = (vma.uffd_ops(), vma.file()) else {
        // The caller only gets here for VMAs whose memory type supports minor faults.
        kernel::warn_on!(true);
        return Err(EOPNOTSUPP);
    };
    let pgoff = vma.linear_page_index(dst_addr);
    let folio = ops
        .get_folio_noalloc(file.inode(), pgoff)
        .map_err(|_| EFAULT)?;
    let page_nr = folio.file_page_nr(pgoff);
    if folio.page_hwpoison(page_nr) {
        // Dropping the folio unlocks it and puts the reference.
        return Err(EIO);
    }
    mfill_atomic_install_pte(pmd, dst_addr, MfillFolio::PageCache(folio), page_nr, flags)
        .map_err(|(e, _folio)| e)
}

/// `rust_mfill_atomic_pte_continue()`: [`mfill_atomic_pte_continue`] for C.
///
/// Returns 0 or a negative errno.
///
/// # Safety
///
/// `dst_vma` must be read-locked (VMA lock or mmap read lock) for the duration of the call,
/// `dst_addr` inside it, and `dst_pmd` the established PMD entry for `dst_addr`.
#[export]
pub unsafe extern "C" fn rust_mfill_atomic_pte_continue(
    dst_vma: *mut bindings::vm_area_struct,
    dst_pmd: *mut bindings::pmd_t,
    dst_addr: c_ulong,
    flags: bindings::uffd_flags_t,
) -> c_int {
    let dst_addr = dst_addr as usize;
    // SAFETY: The caller holds the VMA read lock for the duration of the call.
    let vma = unsafe { VmaRef::from_raw(dst_vma) };
    let Some(dst_pmd) = core::ptr::NonNull::new(dst_pmd) else {
        return EINVAL.to_errno();
    };
    // SAFETY: The caller established `dst_pmd` for `dst_addr` in `vma`, which stays locked.
    let pmd = unsafe { Pmd::from_raw(vma, dst_pmd, dst_addr) };
    match mfill_atomic_pte_continue(&pmd, dst_addr, UffdFlags::from_raw(flags)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `rust_mfill_atomic_install_pte()`: [`mfill_atomic_install_pte`] for C.
///
/// Like the C function, it tells a page-cache folio from a new anonymous one with
/// `folio_mapping()`. Returns 0 or a negative errno; on failure, the folio is left as it was
/// (locked if it is in the page cache, and with the caller's reference).
///
/// # Safety
///
/// `dst_vma` must be read-locked for the duration of the call, `dst_addr` inside it, and
/// `dst_pmd` the established PMD entry for `dst_addr`. `page` must be a page of a folio that is
/// either in the page cache and locked, or new and meant to become anonymous memory of
/// `dst_vma` (see [`NewAnonFolio`]); the caller holds one reference, which the new PTE takes
/// over on success.
#[export]
pub unsafe extern "C" fn rust_mfill_atomic_install_pte(
    dst_pmd: *mut bindings::pmd_t,
    dst_vma: *mut bindings::vm_area_struct,
    dst_addr: c_ulong,
    page: *mut bindings::page,
    flags: bindings::uffd_flags_t,
) -> c_int {
    let dst_addr = dst_addr as usize;
    // SAFETY: The caller holds the VMA read lock for the duration of the call.
    let vma = unsafe { VmaRef::from_raw(dst_vma) };
    let (Some(dst_pmd), false) = (core::ptr::NonNull::new(dst_pmd), page.is_null()) else {
        return EINVAL.to_errno();
    };
    // SAFETY: The caller established `dst_pmd` for `dst_addr` in `vma`, which stays locked.
    let pmd = unsafe { Pmd::from_raw(vma, dst_pmd, dst_addr) };
    // SAFETY: `page` belongs to a folio on which the caller holds a reference.
    let folio = unsafe { page_folio(page) };
    // SAFETY: `page` is valid.
    let page_nr = unsafe { bindings::page_to_pfn(page) } - folio.pfn();
    // SAFETY: `folio` is valid and non-NULL.
    let raw = unsafe { core::ptr::NonNull::new_unchecked(folio.as_ptr()) };
    let folio = if folio.mapping().is_some() {
        // SAFETY: A page-cache folio passed here is locked; the caller lends us its lock and
        // reference, and gets them back on failure through `into_raw()`.
        MfillFolio::PageCache(unsafe { LockedFolio::from_raw(raw) })
    } else {
        // SAFETY: A folio outside the page cache passed here is a new folio for anonymous
        // memory; the caller lends us its reference, and gets it back on failure.
        MfillFolio::NewAnon(unsafe { NewAnonFolio::from_raw(raw) })
    };
    match mfill_atomic_install_pte(&pmd, dst_addr, folio, page_nr, UffdFlags::from_raw(flags)) {
        Ok(()) => 0,
        Err((e, folio)) => {
            let _ = folio.into_raw();
            e.to_errno()
        }
    }
}
