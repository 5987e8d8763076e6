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
    ffi::{c_int, c_long, c_ulong},
    mm::{
        folio::{page_folio, LockedFolio, NewAnonFolio},
        pgtable::{Pmd, Pte, PteKind},
        shmem::shmem_get_folio_nowait,
        userfaultfd::UffdFlags,
        virt::{flags, VmaRef},
    },
    page::{BorrowedPage, Page, PAGE_SIZE},
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

/// Returns the first file offset, in pages, beyond the end of the VMA's file, if it has one.
///
/// Called with the PTE table lock held: truncation unmaps under that lock after updating
/// `i_size`, so a page that is inside the file here cannot be truncated before the PTE is
/// visible, and a truncation that already happened is seen here.
fn mfill_max_off(vma: &VmaRef) -> Option<usize> {
    let size = vma.file()?.inode().i_size_read();
    Some((size as u64).div_ceil(PAGE_SIZE as u64) as usize)
}

/// Returns whether `dst_addr` maps a file offset at or beyond the end of the file
/// (`mfill_file_over_size()`). Called with the PTE table lock held, see [`mfill_max_off`].
fn mfill_file_over_size(vma: &VmaRef, dst_addr: usize) -> bool {
    mfill_max_off(vma).is_some_and(|max_off| vma.linear_page_index(dst_addr) >= max_off)
}

/// Returns whether a fill may replace a page table entry of this kind.
///
/// Only an empty entry or a userfaultfd marker may be replaced: with both MISSING and WP
/// registered, an empty entry may have been write-protected (uffd-wp marker) before the page
/// was filled; a poison marker is replaced as well. Everything else is someone's mapping or
/// state and must not be overwritten.
fn mfill_may_replace(kind: PteKind) -> bool {
    match kind {
        PteKind::None => true,
        PteKind::Marker(marker) => marker.is_uffd(),
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

/// Builds the PTE that maps `page` into `vma` for a fill.
///
/// Dirty; writable if the VMA is writable, except that a page-cache page is never mapped
/// writable into a private mapping (a write must copy it first); write-protected with the
/// userfaultfd bit for `MFILL_ATOMIC_WP`.
fn mfill_mk_pte(vma: &VmaRef, page: &Page, page_in_cache: bool, flags: UffdFlags) -> Pte {
    let vm_flags = vma.flags();
    let writable =
        vm_flags & flags::WRITE != 0 && (!page_in_cache || vm_flags & flags::SHARED != 0);
    let mut pte = Pte::mk_pte(page, vma.page_prot()).mkdirty();
    if writable {
        pte = pte.mkwrite(vma);
    }
    if flags.wp() {
        pte = pte.mkuffd();
    }
    pte
}

/// Maps page `page_nr` of `folio` at `dst_addr` (`mfill_atomic_install_pte()`).
///
/// The PTE is built by [`mfill_mk_pte`]. Under the PTE table lock, the file size is checked
/// again (`EFAULT` beyond the end of the file) and the old entry must be one that
/// [`mfill_may_replace`] accepts (`EEXIST` otherwise). If the PTE table is gone, the error is
/// `EAGAIN`.
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
    let pte = match folio.page(page_nr) {
        Some(page) => mfill_mk_pte(vma, &page, page_in_cache, flags),
        None => return Err((EINVAL, folio)),
    };

    let Some(mut ptes) = pmd.pte_offset_map_lock(dst_addr) else {
        return Err((EAGAIN, folio));
    };

    if mfill_file_over_size(vma, dst_addr) {
        return Err((EFAULT, folio));
    }

    if !mfill_may_replace(ptes.ptep_get().kind()) {
        return Err((EEXIST, folio));
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

/// Resolves minor faults from `dst_addr` on, as many pages as one step can map
/// (`UFFDIO_CONTINUE` with batched PTE installation).
///
/// The first page is handled exactly as by [`mfill_atomic_pte_continue`], with the memory type's
/// `get_folio_noalloc()`, and its errors are returned. Then, under the same PTE table lock, the
/// following pages up to `dst_end`, the end of the PTE table and the end of the file are mapped
/// as long as each one would succeed on its own: the rest of a large folio with one `set_ptes()`,
/// and, for shmem, the next folios that are in the page cache, uptodate and unlocked (found
/// without sleeping by [`shmem_get_folio_nowait`]). The first page that would fail, or whose
/// lookup would have to sleep, ends the step; the caller's loop then handles that page on its
/// own, so the outcome is the one the page-by-page loop gives. Each page is checked as
/// [`mfill_atomic_install_pte`] checks it: inside the file, not hwpoisoned, an entry that
/// [`mfill_may_replace`] accepts.
///
/// Returns the number of pages mapped, at least one.
pub fn mfill_atomic_pte_continue_batch(
    pmd: &Pmd<'_>,
    dst_addr: usize,
    dst_end: usize,
    flags: UffdFlags,
) -> Result<usize> {
    let vma = pmd.vma();
    let (Some(ops), Some(file)) = (vma.uffd_ops(), vma.file()) else {
        // The caller only gets here for VMAs whose memory type supports minor faults.
        kernel::warn_on!(true);
        return Err(EOPNOTSUPP);
    };
    if dst_end <= dst_addr {
        return Err(EINVAL);
    }
    let inode = file.inode();
    let pgoff = vma.linear_page_index(dst_addr);
    let mut folio = ops.get_folio_noalloc(inode, pgoff).map_err(|_| EFAULT)?;
    let mut page_nr = folio.file_page_nr(pgoff);
    if folio.page_hwpoison(page_nr) {
        return Err(EIO);
    }
    let mut pte = match folio.page(page_nr) {
        Some(page) => mfill_mk_pte(vma, &page, true, flags),
        None => return Err(EINVAL),
    };

    let Some(mut ptes) = pmd.pte_offset_map_lock(dst_addr) else {
        return Err(EAGAIN);
    };
    let max_off = mfill_max_off(vma).unwrap_or(usize::MAX);
    if pgoff >= max_off {
        return Err(EFAULT);
    }
    if !mfill_may_replace(ptes.ptep_get().kind()) {
        return Err(EEXIST);
    }
    let limit = ptes
        .max_nr()
        .min((dst_end - dst_addr) / PAGE_SIZE)
        .min(max_off - pgoff);

    let mut done = 0;
    loop {
        // The run of this folio from `page_nr`; its first page was checked above.
        let mut n = 1;
        while done + n < limit
            && page_nr + n < folio.nr_pages()
            && !folio.page_hwpoison(page_nr + n)
            && ptes
                .ptep_get_nr(n)
                .is_some_and(|old| mfill_may_replace(old.kind()))
        {
            n += 1;
        }
        let folio_done = page_nr + n == folio.nr_pages();
        if let Err((e, _folio)) = ptes.set_ptes_file(folio, page_nr, n, pte) {
            return if done == 0 { Err(e) } else { Ok(done) };
        }
        done += n;
        // Stop at the limit, at a page of this folio that must be left to the slow path, or when
        // the memory type is not shmem, whose non-blocking lookup this relies on.
        if done == limit || !folio_done || !vma.is_shmem() || ptes.advance(n).is_err() {
            break;
        }
        let index = pgoff + done;
        let Some(next) = shmem_get_folio_nowait(inode, index) else {
            break;
        };
        let nr = next.file_page_nr(index);
        if next.page_hwpoison(nr) || !mfill_may_replace(ptes.ptep_get().kind()) {
            break;
        }
        pte = match next.page(nr) {
            Some(page) => mfill_mk_pte(vma, &page, true, flags),
            None => break,
        };
        folio = next;
        page_nr = nr;
    }
    Ok(done)
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

/// `rust_mfill_atomic_pte_continue_batch()`: [`mfill_atomic_pte_continue_batch`] for C.
///
/// Returns the number of pages mapped (at least one) or a negative errno.
///
/// # Safety
///
/// As for [`rust_mfill_atomic_pte_continue`]; `dst_end` is the end of the ioctl's range.
#[export]
pub unsafe extern "C" fn rust_mfill_atomic_pte_continue_batch(
    dst_vma: *mut bindings::vm_area_struct,
    dst_pmd: *mut bindings::pmd_t,
    dst_addr: c_ulong,
    dst_end: c_ulong,
    flags: bindings::uffd_flags_t,
) -> c_long {
    // SAFETY: The caller holds the VMA read lock for the duration of the call.
    let vma = unsafe { VmaRef::from_raw(dst_vma) };
    let Some(dst_pmd) = core::ptr::NonNull::new(dst_pmd) else {
        return EINVAL.to_errno() as c_long;
    };
    // SAFETY: The caller established `dst_pmd` for `dst_addr` in `vma`, which stays locked.
    let pmd = unsafe { Pmd::from_raw(vma, dst_pmd, dst_addr) };
    match mfill_atomic_pte_continue_batch(&pmd, dst_addr, dst_end, UffdFlags::from_raw(flags)) {
        Ok(nr) => nr as c_long,
        Err(e) => e.to_errno() as c_long,
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

#[cfg(CONFIG_USERFAULTFD_RUST_KUNIT_TEST)]
#[kunit_tests(userfaultfd_rust)]
mod tests {
    use super::*;
    use kernel::{
        fs::File,
        mm::{
            folio::Folio,
            kunit::{self, prot},
            pgtable::{MmCounter, PteMarker, PMD_SIZE, PTRS_PER_PTE},
            shmem::{shmem_file_setup, shmem_get_folio, SgpType},
        },
        str::CStr,
        sync::aref::ARef,
    };

    const PS: i64 = PAGE_SIZE as i64;

    /// A shmem file mapped into the KUnit mm.
    struct Mapping {
        file: ARef<File>,
        addr: usize,
    }

    /// Creates a shmem file of `size` pages whose pages `written` hold "page N", and maps
    /// `map_pages` pages of it.
    fn setup(
        size: usize,
        written: &[usize],
        map_pages: usize,
        rw: bool,
        shared: bool,
    ) -> Result<Mapping> {
        let file = shmem_file_setup(c"userfaultfd_rust", size as i64 * PS)?;
        for &n in written {
            kunit::file_write(&file, n as i64 * PS, &tag(n))?;
        }
        let addr = kunit::vm_mmap(
            Some(&file),
            map_pages * PAGE_SIZE,
            prot::READ | if rw { prot::WRITE } else { 0 },
            if shared {
                prot::MAP_SHARED
            } else {
                prot::MAP_PRIVATE
            },
            0,
        )?;
        Ok(Mapping { file, addr })
    }

    /// The contents the tests write at the start of page `n`.
    fn tag(n: usize) -> [u8; 8] {
        let mut t = *b"page 000";
        t[5] = b'0' + (n / 100 % 10) as u8;
        t[6] = b'0' + (n / 10 % 10) as u8;
        t[7] = b'0' + (n % 10) as u8;
        t
    }

    fn flags(wp: bool) -> UffdFlags {
        let mut f = bindings::mfill_atomic_mode_MFILL_ATOMIC_CONTINUE;
        if wp {
            f |= bindings::MFILL_ATOMIC_WP;
        }
        UffdFlags::from_raw(f)
    }

    /// Resolves a minor fault at `addr` the way `mfill_atomic()` does for one page: VMA read
    /// lock, PMD established, then the Rust CONTINUE.
    fn do_continue(addr: usize, wp: bool) -> Result {
        let mm = kunit::current_mm()?;
        let mmap = mm.mmap_read_lock();
        let vma = mmap.vma_lookup(addr).ok_or(ENOENT)?;
        let pmd = Pmd::establish(vma, addr)?;
        mfill_atomic_pte_continue(&pmd, addr, flags(wp))
    }

    /// Reads the PTE at `addr`.
    fn pte_at(addr: usize) -> Result<Pte> {
        let mm = kunit::current_mm()?;
        let mmap = mm.mmap_read_lock();
        let vma = mmap.vma_lookup(addr).ok_or(ENOENT)?;
        let pmd = Pmd::establish(vma, addr)?;
        let ptes = pmd.pte_offset_map_lock(addr).ok_or(EAGAIN)?;
        Ok(ptes.ptep_get())
    }

    /// Writes a marker into the empty PTE at `addr`.
    fn set_marker(addr: usize, marker: PteMarker) -> Result {
        let mm = kunit::current_mm()?;
        let mmap = mm.mmap_read_lock();
        let vma = mmap.vma_lookup(addr).ok_or(ENOENT)?;
        let pmd = Pmd::establish(vma, addr)?;
        let mut ptes = pmd.pte_offset_map_lock(addr).ok_or(EAGAIN)?;
        ptes.set_pte_marker(marker)
    }

    /// Looks up the page-cache folio at `index` (unlocked, with a reference).
    ///
    /// The per-CPU LRU batches are flushed first, so that the reference they hold on new
    /// folios does not change the counts under the test.
    fn cached(m: &Mapping, index: usize) -> Result<ARef<Folio>> {
        // SAFETY: Always safe to call from process context.
        unsafe { bindings::lru_add_drain_all() };
        let folio = shmem_get_folio(m.file.inode(), index, 0, SgpType::Read)?.ok_or(ENOENT)?;
        Ok(folio.unlock())
    }

    fn read8(addr: usize) -> Result<[u8; 8]> {
        let mut buf = [0u8; 8];
        kunit::read_user(addr, &mut buf)?;
        Ok(buf)
    }

    #[test]
    fn shared_writable() -> Result {
        let m = setup(4, &[0, 1, 2, 3], 4, true, true)?;
        let mm = kunit::current_mm()?;
        let shmem = mm.get_mm_counter_sum(MmCounter::ShmemPages);
        let folio = cached(&m, 2)?;
        let refs = folio.ref_count();
        assert_eq!(do_continue(m.addr + 2 * PAGE_SIZE, false), Ok(()));
        let pte = pte_at(m.addr + 2 * PAGE_SIZE)?;
        assert!(pte.present() && pte.write() && pte.dirty() && !pte.uffd());
        assert_eq!(pte.pfn(), folio.pfn());
        assert_eq!(folio.mapcount(), 1);
        assert_eq!(folio.ref_count(), refs + 1);
        assert!(!folio.test_locked());
        assert_eq!(mm.get_mm_counter_sum(MmCounter::ShmemPages), shmem + 1);
        // Only the requested page was mapped.
        assert!(pte_at(m.addr + PAGE_SIZE)?.none());
        assert!(pte_at(m.addr + 3 * PAGE_SIZE)?.none());
        assert_eq!(read8(m.addr + 2 * PAGE_SIZE)?, tag(2));
        // A second CONTINUE finds the page mapped, and drops its lookup reference.
        assert_eq!(do_continue(m.addr + 2 * PAGE_SIZE, false), Err(EEXIST));
        assert_eq!(folio.ref_count(), refs + 1);
        assert!(!folio.test_locked());
        Ok(())
    }

    #[test]
    fn shared_readonly() -> Result {
        let m = setup(2, &[0, 1], 2, false, true)?;
        assert_eq!(do_continue(m.addr, false), Ok(()));
        let pte = pte_at(m.addr)?;
        assert!(pte.present() && !pte.write() && pte.dirty());
        assert_eq!(read8(m.addr)?, tag(0));
        Ok(())
    }

    #[test]
    fn private_maps_readonly_then_cow() -> Result {
        let m = setup(2, &[0, 1], 2, true, false)?;
        let mm = kunit::current_mm()?;
        let shmem = mm.get_mm_counter_sum(MmCounter::ShmemPages);
        let anon = mm.get_mm_counter_sum(MmCounter::AnonPages);
        let folio = cached(&m, 1)?;
        let addr = m.addr + PAGE_SIZE;
        assert_eq!(do_continue(addr, false), Ok(()));
        let pte = pte_at(addr)?;
        // A page-cache page is never writable in a private mapping.
        assert!(pte.present() && !pte.write() && pte.dirty());
        assert_eq!(pte.pfn(), folio.pfn());
        assert_eq!(mm.get_mm_counter_sum(MmCounter::ShmemPages), shmem + 1);
        assert_eq!(read8(addr)?, tag(1));
        // A write copies the page; the page cache keeps its contents.
        kunit::write_user(addr, b"private!")?;
        let pte = pte_at(addr)?;
        assert!(pte.present() && pte.write());
        assert!(pte.pfn() != folio.pfn());
        assert_eq!(mm.get_mm_counter_sum(MmCounter::AnonPages), anon + 1);
        assert_eq!(mm.get_mm_counter_sum(MmCounter::ShmemPages), shmem);
        assert_eq!(read8(addr)?, *b"private!");
        let mut buf = [0u8; 8];
        let page = folio.page(0).ok_or(EINVAL)?;
        // SAFETY: `buf` has 8 bytes; the page is not being written.
        unsafe { page.read_raw(buf.as_mut_ptr(), 0, 8)? };
        assert_eq!(buf, tag(1));
        Ok(())
    }

    #[test]
    fn mode_wp() -> Result {
        let m = setup(1, &[0], 1, true, true)?;
        assert_eq!(do_continue(m.addr, true), Ok(()));
        let pte = pte_at(m.addr)?;
        assert!(pte.present() && pte.uffd() && !pte.write() && pte.dirty());
        Ok(())
    }

    #[test]
    fn hole_is_efault() -> Result {
        let m = setup(4, &[0, 2], 4, true, true)?;
        let folio_refs = cached(&m, 2)?.ref_count();
        assert_eq!(do_continue(m.addr + PAGE_SIZE, false), Err(EFAULT));
        assert!(pte_at(m.addr + PAGE_SIZE)?.none());
        assert_eq!(do_continue(m.addr + 2 * PAGE_SIZE, false), Ok(()));
        assert_eq!(cached(&m, 2)?.ref_count(), folio_refs + 1);
        Ok(())
    }

    #[test]
    fn beyond_eof_is_efault() -> Result {
        // Two pages of file, four pages of mapping.
        let m = setup(2, &[0, 1], 4, true, true)?;
        assert_eq!(do_continue(m.addr + 3 * PAGE_SIZE, false), Err(EFAULT));
        assert_eq!(do_continue(m.addr + 2 * PAGE_SIZE, false), Err(EFAULT));
        assert_eq!(do_continue(m.addr + PAGE_SIZE, false), Ok(()));
        Ok(())
    }

    #[test]
    fn truncate_then_continue() -> Result {
        let m = setup(4, &[0, 1, 2, 3], 4, true, true)?;
        kunit::file_truncate(&m.file, 2 * PS)?;
        assert_eq!(do_continue(m.addr + 3 * PAGE_SIZE, false), Err(EFAULT));
        assert_eq!(do_continue(m.addr + 2 * PAGE_SIZE, false), Err(EFAULT));
        assert!(pte_at(m.addr + 2 * PAGE_SIZE)?.none());
        assert_eq!(do_continue(m.addr + PAGE_SIZE, false), Ok(()));
        // Growing the file again leaves holes, which are still not mapped.
        kunit::file_truncate(&m.file, 4 * PS)?;
        assert_eq!(do_continue(m.addr + 3 * PAGE_SIZE, false), Err(EFAULT));
        Ok(())
    }

    #[test]
    fn fallocated_maps_zeroes() -> Result {
        let m = setup(2, &[0], 2, true, true)?;
        kunit::file_fallocate(&m.file, 0, PS, PS)?;
        assert_eq!(do_continue(m.addr + PAGE_SIZE, false), Ok(()));
        assert_eq!(read8(m.addr + PAGE_SIZE)?, [0u8; 8]);
        Ok(())
    }

    #[test]
    fn markers() -> Result {
        let m = setup(3, &[0, 1, 2], 3, true, true)?;
        assert_eq!(set_marker(m.addr, PteMarker::UFFD_WP), Ok(()));
        assert_eq!(set_marker(m.addr + PAGE_SIZE, PteMarker::POISONED), Ok(()));
        assert_eq!(set_marker(m.addr + 2 * PAGE_SIZE, PteMarker::GUARD), Ok(()));
        // Userfaultfd markers are replaced (mode 0 drops the write protection)...
        assert_eq!(do_continue(m.addr, false), Ok(()));
        let pte = pte_at(m.addr)?;
        assert!(pte.present() && pte.write() && !pte.uffd());
        assert_eq!(do_continue(m.addr + PAGE_SIZE, false), Ok(()));
        assert!(pte_at(m.addr + PAGE_SIZE)?.present());
        // ... a guard region is not.
        let refs = cached(&m, 2)?.ref_count();
        assert_eq!(do_continue(m.addr + 2 * PAGE_SIZE, false), Err(EEXIST));
        assert_eq!(
            pte_at(m.addr + 2 * PAGE_SIZE)?.kind(),
            PteKind::Marker(PteMarker::GUARD)
        );
        assert_eq!(cached(&m, 2)?.ref_count(), refs);
        Ok(())
    }

    #[test]
    fn hwpoison_is_eio() -> Result {
        let m = setup(1, &[0], 1, true, true)?;
        let folio = cached(&m, 0)?;
        let page = folio.page(0).ok_or(EINVAL)?;
        // SAFETY: The page is ours for the test: nothing maps it and the flag is cleared below.
        unsafe { bindings::SetPageHWPoison(page.as_ptr()) };
        let res = do_continue(m.addr, false);
        let pte = pte_at(m.addr);
        // SAFETY: As above.
        unsafe { bindings::ClearPageHWPoison(page.as_ptr()) };
        if !cfg!(CONFIG_MEMORY_FAILURE) {
            kunit::mark_skipped(c"CONFIG_MEMORY_FAILURE is off");
            return Ok(());
        }
        assert_eq!(res, Err(EIO));
        assert!(pte?.none());
        assert!(!folio.test_locked());
        Ok(())
    }

    /// A file of one PMD-sized folio on a huge=always tmpfs, its pages holding their tags.
    struct ThpFile {
        file: ARef<File>,
        folio: ARef<Folio>,
        _tmpfs: kunit::HugeTmpfs,
    }

    /// Creates a [`ThpFile`]; `None` (and the test marked skipped) if no large folio could be
    /// had.
    fn thp_file(name: &CStr) -> Result<Option<ThpFile>> {
        let Some(tmpfs) = kunit::HugeTmpfs::new()? else {
            kunit::mark_skipped(c"no tmpfs");
            return Ok(None);
        };
        let file = tmpfs.file(name, PMD_SIZE as i64)?;
        let mut data = KVec::with_capacity(PMD_SIZE, GFP_KERNEL)?;
        for n in 0..PTRS_PER_PTE {
            data.extend_from_slice(&tag(n), GFP_KERNEL)?;
            data.resize((n + 1) * PAGE_SIZE, 0, GFP_KERNEL)?;
        }
        kunit::file_write(&file, 0, &data)?;
        let folio = shmem_get_folio(file.inode(), 0, 0, SgpType::Read)?
            .ok_or(ENOENT)?
            .unlock();
        if !folio.test_large() {
            kunit::mark_skipped(c"shmem did not allocate a large folio");
            return Ok(None);
        }
        // SAFETY: Always safe to call from process context.
        unsafe { bindings::lru_add_drain_all() };
        Ok(Some(ThpFile {
            file,
            folio,
            _tmpfs: tmpfs,
        }))
    }

    #[test]
    fn large_folio_maps_one_page() -> Result {
        let Some(ThpFile {
            file,
            folio,
            _tmpfs,
        }) = thp_file(c"userfaultfd_rust_thp")?
        else {
            return Ok(());
        };
        let addr = kunit::vm_mmap(
            Some(&file),
            PMD_SIZE,
            prot::READ | prot::WRITE,
            prot::MAP_SHARED,
            0,
        )?;
        assert_eq!(do_continue(addr + 5 * PAGE_SIZE, false), Ok(()));
        let pte = pte_at(addr + 5 * PAGE_SIZE)?;
        assert!(pte.present());
        assert_eq!(pte.pfn(), folio.pfn() + 5);
        // Exactly one page of the folio is mapped, not its neighbours.
        assert!(pte_at(addr + 4 * PAGE_SIZE)?.none());
        assert!(pte_at(addr + 6 * PAGE_SIZE)?.none());
        assert_eq!(folio.mapcount(), 1);
        assert_eq!(read8(addr + 5 * PAGE_SIZE)?, tag(5));
        assert_eq!(do_continue(addr + 511 * PAGE_SIZE, false), Ok(()));
        assert_eq!(pte_at(addr + 511 * PAGE_SIZE)?.pfn(), folio.pfn() + 511);
        assert_eq!(folio.mapcount(), 2);
        Ok(())
    }

    /// One batched step from `addr`, with the range ending at `end`.
    fn do_batch(addr: usize, end: usize) -> Result<usize> {
        let mm = kunit::current_mm()?;
        let mmap = mm.mmap_read_lock();
        let vma = mmap.vma_lookup(addr).ok_or(ENOENT)?;
        let pmd = Pmd::establish(vma, addr)?;
        mfill_atomic_pte_continue_batch(&pmd, addr, end, flags(false))
    }

    /// Returns which of the `n` pages from `addr` are mapped.
    fn present(addr: usize, n: usize) -> Result<KVec<bool>> {
        let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
        for i in 0..n {
            v.push(pte_at(addr + i * PAGE_SIZE)?.present(), GFP_KERNEL)?;
        }
        Ok(v)
    }

    #[test]
    fn batch_maps_the_range() -> Result {
        let m = setup(8, &[0, 1, 2, 3, 4, 5, 6, 7], 8, true, true)?;
        let mm = kunit::current_mm()?;
        let shmem = mm.get_mm_counter_sum(MmCounter::ShmemPages);
        let f6 = cached(&m, 6)?;
        let refs6 = f6.ref_count();
        // The range ends at page 6: pages 6 and 7 stay unmapped.
        assert_eq!(do_batch(m.addr, m.addr + 6 * PAGE_SIZE), Ok(6));
        assert_eq!(
            &*present(m.addr, 8)?,
            &[true, true, true, true, true, true, false, false]
        );
        assert_eq!(mm.get_mm_counter_sum(MmCounter::ShmemPages), shmem + 6);
        for n in 0..6 {
            let pte = pte_at(m.addr + n * PAGE_SIZE)?;
            assert!(pte.write() && pte.dirty());
            assert_eq!(pte.pfn(), cached(&m, n)?.pfn());
            assert_eq!(cached(&m, n)?.mapcount(), 1);
            assert_eq!(read8(m.addr + n * PAGE_SIZE)?, tag(n));
        }
        assert_eq!(f6.ref_count(), refs6);
        assert_eq!(
            do_batch(m.addr + 6 * PAGE_SIZE, m.addr + 8 * PAGE_SIZE),
            Ok(2)
        );
        assert_eq!(do_batch(m.addr, m.addr + 8 * PAGE_SIZE), Err(EEXIST));
        Ok(())
    }

    #[test]
    fn batch_stops_where_a_page_would_fail() -> Result {
        // A hole at 2, a mapped page at 4, a guard marker at 6, a uffd-wp marker at 7.
        let m = setup(10, &[0, 1, 3, 4, 5, 6, 7, 8], 10, true, true)?;
        let page = |n: usize| m.addr + n * PAGE_SIZE;
        let end = page(10);
        assert_eq!(do_continue(page(4), false), Ok(()));
        assert_eq!(set_marker(page(6), PteMarker::GUARD), Ok(()));
        assert_eq!(set_marker(page(7), PteMarker::UFFD_WP), Ok(()));
        assert_eq!(do_batch(page(0), end), Ok(2));
        assert_eq!(do_batch(page(2), end), Err(EFAULT));
        assert_eq!(do_batch(page(3), end), Ok(1));
        assert_eq!(do_batch(page(4), end), Err(EEXIST));
        assert_eq!(do_batch(page(5), end), Ok(1));
        assert_eq!(do_batch(page(6), end), Err(EEXIST));
        // The uffd-wp marker is replaced; page 9 is a hole.
        assert_eq!(do_batch(page(7), end), Ok(2));
        assert_eq!(do_batch(page(9), end), Err(EFAULT));
        assert_eq!(
            &*present(m.addr, 10)?,
            &[true, true, false, true, true, true, false, true, true, false]
        );
        Ok(())
    }

    #[test]
    fn batch_leaves_fallocated_and_locked_pages_to_the_slow_path() -> Result {
        let m = setup(6, &[0, 1, 3, 4, 5], 6, true, true)?;
        kunit::file_fallocate(&m.file, 0, 2 * PS, PS)?;
        let end = m.addr + 6 * PAGE_SIZE;
        // Page 2 was fallocated: zeroing it may sleep, so the step ends before it, and the
        // next step, which starts with the memory type's own lookup, maps it.
        assert_eq!(do_batch(m.addr, end), Ok(2));
        assert_eq!(do_batch(m.addr + 2 * PAGE_SIZE, end), Ok(4));
        assert_eq!(read8(m.addr + 2 * PAGE_SIZE)?, [0u8; 8]);
        // A folio locked by someone else ends the step too.
        let m = setup(3, &[0, 1, 2], 3, true, true)?;
        let locked = shmem_get_folio(m.file.inode(), 1, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
        let res = do_batch(m.addr, m.addr + 3 * PAGE_SIZE);
        drop(locked);
        assert_eq!(res, Ok(1));
        Ok(())
    }

    #[test]
    fn batch_stops_at_eof_and_hwpoison() -> Result {
        let m = setup(4, &[0, 1, 2, 3], 6, true, true)?;
        let f2 = cached(&m, 2)?;
        let p2 = f2.page(0).ok_or(EINVAL)?;
        // SAFETY: The page is ours for the test: nothing maps it and the flag is cleared below.
        unsafe { bindings::SetPageHWPoison(p2.as_ptr()) };
        let first = do_batch(m.addr, m.addr + 6 * PAGE_SIZE);
        let second = do_batch(m.addr + 2 * PAGE_SIZE, m.addr + 6 * PAGE_SIZE);
        // SAFETY: As above.
        unsafe { bindings::ClearPageHWPoison(p2.as_ptr()) };
        if !cfg!(CONFIG_MEMORY_FAILURE) {
            kunit::mark_skipped(c"CONFIG_MEMORY_FAILURE is off");
            return Ok(());
        }
        assert_eq!(first, Ok(2));
        assert_eq!(second, Err(EIO));
        // The file has 4 pages, the mapping 6.
        assert_eq!(
            do_batch(m.addr + 3 * PAGE_SIZE, m.addr + 6 * PAGE_SIZE),
            Ok(1)
        );
        assert_eq!(
            do_batch(m.addr + 4 * PAGE_SIZE, m.addr + 6 * PAGE_SIZE),
            Err(EFAULT)
        );
        Ok(())
    }

    #[test]
    fn batch_large_folio() -> Result {
        let Some(ThpFile {
            file,
            folio,
            _tmpfs,
        }) = thp_file(c"userfaultfd_rust_batch")?
        else {
            return Ok(());
        };
        let addr = kunit::vm_mmap(
            Some(&file),
            PMD_SIZE,
            prot::READ | prot::WRITE,
            prot::MAP_SHARED,
            0,
        )?;
        let refs = folio.ref_count();
        // Ten pages from page 5, in one step.
        assert_eq!(
            do_batch(addr + 5 * PAGE_SIZE, addr + 15 * PAGE_SIZE),
            Ok(10)
        );
        assert!(pte_at(addr + 4 * PAGE_SIZE)?.none());
        assert!(pte_at(addr + 15 * PAGE_SIZE)?.none());
        for n in 5..15 {
            assert_eq!(pte_at(addr + n * PAGE_SIZE)?.pfn(), folio.pfn() + n);
        }
        assert_eq!(folio.mapcount(), 10);
        assert_eq!(folio.ref_count(), refs + 10);
        assert_eq!(read8(addr + 14 * PAGE_SIZE)?, tag(14));
        // The rest of the folio, to the end of the range and of the PTE table.
        assert_eq!(
            do_batch(addr + 15 * PAGE_SIZE, addr + PMD_SIZE),
            Ok(PTRS_PER_PTE - 15)
        );
        assert_eq!(folio.mapcount(), PTRS_PER_PTE as i32 - 5);
        Ok(())
    }

    /// `mfill_atomic_install_pte()` with a new anonymous folio, as `UFFDIO_COPY` into a private
    /// mapping does.
    #[test]
    fn install_new_anon() -> Result {
        let m = setup(2, &[0, 1], 2, true, false)?;
        // Writing to page 0 copies it, which gives the VMA its anon_vma, as
        // `anon_vma_prepare()` does for the C caller.
        kunit::write_user(m.addr, b"cow")?;
        let addr = m.addr + PAGE_SIZE;
        let mm = kunit::current_mm()?;
        let anon = mm.get_mm_counter_sum(MmCounter::AnonPages);
        let (res, held, again) = {
            let mmap = mm.mmap_read_lock();
            let vma = mmap.vma_lookup(addr).ok_or(ENOENT)?;
            let pmd = Pmd::establish(vma, addr)?;
            let folio = NewAnonFolio::alloc_zeroed(vma, addr)?;
            let held: ARef<Folio> = ARef::from(&*folio);
            let res =
                mfill_atomic_install_pte(&pmd, addr, MfillFolio::NewAnon(folio), 0, flags(true));
            let folio2 = NewAnonFolio::alloc_zeroed(vma, addr)?;
            let again =
                mfill_atomic_install_pte(&pmd, addr, MfillFolio::NewAnon(folio2), 0, flags(false));
            (res.map_err(|(e, _)| e), held, again.err().map(|(e, _)| e))
        };
        assert_eq!(res, Ok(()));
        assert_eq!(again, Some(EEXIST));
        // SAFETY: Always safe to call.
        unsafe { bindings::lru_add_drain_all() };
        assert!(held.test_anon() && held.test_lru());
        assert_eq!(held.mapcount(), 1);
        assert_eq!(mm.get_mm_counter_sum(MmCounter::AnonPages), anon + 1);
        let pte = pte_at(addr)?;
        assert_eq!(pte.pfn(), held.pfn());
        // A new anonymous page is writable in a private writable VMA; MODE_WP protects it.
        assert!(pte.present() && pte.uffd() && !pte.write() && pte.dirty());
        assert_eq!(read8(addr)?, [0u8; 8]);
        Ok(())
    }

    /// The C entry point keeps the C ownership rules: on failure the folio stays locked and the
    /// caller keeps its reference; on success the PTE owns it and the folio is unlocked.
    #[test]
    fn c_entry_point_ownership() -> Result {
        let m = setup(1, &[0], 1, true, true)?;
        let mm = kunit::current_mm()?;
        let mmap = mm.mmap_read_lock();
        let vma = mmap.vma_lookup(m.addr).ok_or(ENOENT)?;
        let pmd = Pmd::establish(vma, m.addr)?;
        // SAFETY: Always safe to call from process context.
        unsafe { bindings::lru_add_drain_all() };
        let folio = shmem_get_folio(m.file.inode(), 0, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
        let held: ARef<Folio> = ARef::from(&*folio);
        let raw = folio.into_raw().as_ptr();
        let refs = held.ref_count();
        // SAFETY: The VMA is read-locked, the PMD established, the folio locked and referenced.
        let first = unsafe {
            rust_mfill_atomic_install_pte(
                pmd.as_ptr(),
                vma.as_ptr(),
                m.addr,
                bindings::folio_page(raw, 0),
                flags(false).as_raw(),
            )
        };
        let after_first = (held.test_locked(), held.ref_count());
        // Again, with the folio locked and referenced once more as a C caller would hold it.
        let folio = LockedFolio::lock(held.clone());
        let raw = folio.into_raw().as_ptr();
        // SAFETY: As above.
        let second = unsafe {
            rust_mfill_atomic_install_pte(
                pmd.as_ptr(),
                vma.as_ptr(),
                m.addr,
                bindings::folio_page(raw, 0),
                flags(false).as_raw(),
            )
        };
        let after_second = (held.test_locked(), held.ref_count());
        // Give the caller's lock and reference back, as the C error path does.
        // SAFETY: The failed call left both with us.
        drop(unsafe { LockedFolio::from_raw(core::ptr::NonNull::new_unchecked(raw)) });
        drop(mmap);
        assert_eq!(first, 0);
        assert_eq!(after_first, (false, refs));
        assert_eq!(second, EEXIST.to_errno());
        assert_eq!(after_second, (true, refs + 1));
        assert_eq!(held.ref_count(), refs);
        Ok(())
    }
}
