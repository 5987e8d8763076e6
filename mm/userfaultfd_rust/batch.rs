// SPDX-License-Identifier: GPL-2.0

//! Batched `UFFDIO_CONTINUE`: as many pages as one step can map under one page table lock.
//!
//! `mm/userfaultfd.c` calls this for `UFFDIO_CONTINUE` with `CONFIG_USERFAULTFD_RUST` (in test
//! builds, when `userfaultfd/mfill_impl` says `rust-batch`, the default). The lookup of the first
//! page and the installation checks are those of [`mfill_atomic_pte_continue`], page by page;
//! only the locking and the page table updates are shared. A range of one page is the
//! page-by-page step itself. A step that starts a PMD range and covers all of it maps a PMD-sized
//! folio there with one PMD, if the kernel could have mapped it so itself (see
//! [`mfill_continue_pmd`]).

use super::*;
use kernel::{
    ffi::{c_long, c_ulong},
    page::PAGE_SIZE,
};

#[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
use kernel::mm::{
    pgtable::pmd_size,
    pmd::{hpage_pmd_nr, PmdEntry},
    virt::flags as vm,
};

/// The counter of test builds that `mm/userfaultfd_rust_test.c` keeps for this file.
#[cfg(CONFIG_USERFAULTFD_RUST_TEST)]
mod test_counters {
    // Declared in `mm/userfaultfd_rust.h`, which is internal to mm: bindgen does not see it.
    extern "C" {
        /// Counts one PMD mapping made by a batched step in debugfs `userfaultfd/stats`.
        pub(super) fn mfill_count_rust_batch_pmd();
    }
}

/// What one batched step did: the pages it mapped, and whether it mapped them with one PMD.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct BatchStep {
    /// The pages mapped, at least one.
    pub(crate) pages: usize,
    /// Whether they were mapped with one PMD (then `pages` is `HPAGE_PMD_NR`).
    pub(crate) pmd: bool,
}

impl BatchStep {
    const fn ptes(pages: usize) -> Self {
        Self { pages, pmd: false }
    }
}

/// Returns the first file offset, in pages, beyond the end of the VMA's file, if it has one.
///
/// Called with the PTE table lock held, as the installation reads it too.
fn mfill_max_off(vma: &VmaRef) -> Option<usize> {
    let size = vma.file()?.inode().i_size_read();
    Some((size as u64).div_ceil(PAGE_SIZE as u64) as usize)
}

/// Resolves minor faults from the address of `pmd` on, as many pages as one step can map
/// (`UFFDIO_CONTINUE` with batched PTE installation).
///
/// The first page is handled exactly as by [`mfill_atomic_pte_continue`], with the memory type's
/// `get_folio_noalloc()`, and its errors are returned. Then, under the same PTE table lock, the
/// following pages up to `dst_end`, the end of the PTE table and the end of the file are mapped
/// as long as each one would succeed on its own: the rest of the folio the lookup returned,
/// which `vm_uffd_ops` defines as the page-cache folio at that offset (the installation checks
/// its mapping and index), with one `set_ptes()`, and the next folios that the memory type's
/// `get_folio_nowait()` finds without sleeping (see [`VmUffdOps::get_folio_nowait`]; shmem's
/// returns those that are in the page cache, uptodate and unlocked). Without that operation the
/// step ends with the first folio. The first page that would fail, or whose lookup would have to
/// sleep, ends the step; the caller's
/// loop then handles that page on its own, so the outcome is the one the page-by-page loop
/// gives. Each page is checked as [`mfill_atomic_install_pte`] checks it: inside the file, not
/// hwpoisoned, an entry a fill may replace.
///
/// A range that ends before the second page is the page-by-page step: the most common
/// `UFFDIO_CONTINUE`, a fault handler resolving the page that faulted, costs no more than there.
///
/// Returns the number of pages mapped, at least one.
#[inline]
pub(crate) fn mfill_atomic_pte_continue_batch(
    pmd: &Pmd<'_>,
    dst_end: usize,
    flags: UffdFlags,
) -> Result<usize> {
    // The range covers at least the page at the PMD's address: the C caller passes the
    // page-aligned end of the ioctl's range.
    if dst_end < pmd.addr().saturating_add(PAGE_SIZE) {
        return Err(EINVAL);
    }
    if dst_end - pmd.addr() < 2 * PAGE_SIZE {
        mfill_atomic_pte_continue(pmd, flags)?;
        return Ok(1);
    }
    let folio = mfill_get_folio(pmd.vma(), pmd.addr())?;
    mfill_continue_ptes(pmd, folio, dst_end, flags)
}

/// The PTE part of [`mfill_atomic_pte_continue_batch`], from the folio its lookup returned.
fn mfill_continue_ptes(
    pmd: &Pmd<'_>,
    mut folio: LockedFolio,
    dst_end: usize,
    flags: UffdFlags,
) -> Result<usize> {
    let vma = pmd.vma();
    let dst_addr = pmd.addr();
    // `mfill_get_folio()` found both.
    let (Some(ops), Some(file)) = (vma.uffd_ops(), vma.file()) else {
        return Err(EINVAL);
    };
    let inode = file.inode();
    let pgoff = vma.linear_page_index(dst_addr);
    let mut page_nr = folio.file_page_nr(pgoff);

    pmd.pte_offset_map_lock(|ptes| {
        let max_off = mfill_max_off(vma).unwrap_or(usize::MAX);
        if pgoff >= max_off {
            return Err(EFAULT);
        }
        if !ptes.ptep_get().kind().is_fillable() {
            return Err(EEXIST);
        }
        let limit = ptes
            .max_nr()
            .min((dst_end - dst_addr) / PAGE_SIZE)
            .min(max_off - pgoff);

        let mut done = 0;
        loop {
            // The run of this folio from `page_nr`; its first page was checked already.
            let mut n = 1;
            while done + n < limit
                && page_nr + n < folio.nr_pages()
                && !folio.page_hwpoison(page_nr + n)
                && ptes
                    .ptep_get_nr(n)
                    .is_some_and(|old| old.kind().is_fillable())
            {
                n += 1;
            }
            let folio_done = page_nr + n == folio.nr_pages();
            if let Err((e, _folio)) = ptes.set_ptes_file(folio, n, flags.wp()) {
                return if done == 0 { Err(e) } else { Ok(done) };
            }
            done += n;
            // Stop at the limit, or at a page of this folio that must be left to the slow path.
            if done >= limit || !folio_done || ptes.advance(n).is_err() {
                break;
            }
            let index = pgoff + done;
            // SAFETY: `ops` is the memory type's table of this VMA, and the inode that of its file.
            let Some(next) = (unsafe { ops.get_folio_nowait(inode, index) }) else {
                break;
            };
            page_nr = next.file_page_nr(index);
            if next.page_hwpoison(page_nr) || !ptes.ptep_get().kind().is_fillable() {
                break;
            }
            folio = next;
        }
        Ok(done)
    })
    .unwrap_or(Err(EAGAIN))
}

/// Returns whether a step from `dst_addr` to `dst_end` in `vma` may map a whole PMD: it starts a
/// PMD range, covers all of it, is not asked to write-protect what it maps (a file PMD has no
/// uffd-wp bit), and the VMA is shared and not registered for write protection (WP or RWP).
/// [`PmdGuard::set_pmd_file`] checks everything else, and these again; this only keeps the
/// steps that cannot map a PMD away from the lookup before the PTE table is allocated.
///
/// [`PmdGuard::set_pmd_file`]: kernel::mm::pmd::PmdGuard::set_pmd_file
#[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
#[inline(always)]
fn mfill_pmd_step(vma: &VmaRef, dst_addr: usize, dst_end: usize, flags: UffdFlags) -> bool {
    !flags.wp()
        && dst_addr % pmd_size() == 0
        && dst_end.saturating_sub(dst_addr) >= pmd_size()
        && vma.flags() & (vm::SHARED | vm::UFFD_WP | vm::UFFD_RWP) == vm::SHARED
}

/// A batched step from the PMD entry of `entry.addr()`, which `mfill_establish_pmd()` leaves
/// empty for a batched `UFFDIO_CONTINUE` (it allocates the PTE table of every other fill).
///
/// If the entry is empty and [`mfill_pmd_step`] allows it, the folio at the step's offset is
/// looked up as for any step (the same errors), and [`mfill_continue_pmd`] maps it with one PMD
/// if it can. Otherwise, or if that refuses, the entry gets a PTE table if it has none (as
/// `mfill_establish_pmd()` would have done: `ENOMEM`, or `EEXIST` for a huge PMD) and the step
/// maps PTEs, with the result of [`mfill_atomic_pte_continue_batch`].
///
/// A refused folio is unlocked and dropped before the PTE table is allocated, and the PTE step
/// looks it up again: an allocation may enter reclaim, which may wait for a locked folio, so
/// C allocates page tables before it takes a folio lock (`mfill_establish_pmd()` before the
/// lookup, `__do_fault()` before `->fault()`), and so does this.
#[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
fn mfill_continue_pmd_or_ptes(
    entry: &PmdEntry<'_>,
    dst_end: usize,
    flags: UffdFlags,
) -> Result<BatchStep> {
    if entry.is_none_lockless() && mfill_pmd_step(entry.vma(), entry.addr(), dst_end, flags) {
        let folio = mfill_get_folio(entry.vma(), entry.addr())?;
        if mfill_continue_pmd(entry, folio).is_ok() {
            return Ok(BatchStep {
                pages: hpage_pmd_nr(),
                pmd: true,
            });
        }
    }
    let pmd = entry.pte_alloc()?;
    mfill_atomic_pte_continue_batch(&pmd, dst_end, flags).map(BatchStep::ptes)
}

/// Maps the folio that the lookup of a [`mfill_pmd_step`] returned with one PMD, at the empty
/// entry `entry`, if [`PmdGuard::set_pmd_file`] accepts it: the folio is
/// PMD-sized, is the page cache at the offset the PMD maps, uptodate, not hwpoisoned and inside
/// the file, the VMA may map a huge PMD there, is not registered for write protection, and the
/// entry is still empty. Otherwise the folio comes back, locked, for the PTEs.
///
/// Private mappings keep PTEs ([`mfill_pmd_step`]): the first write to a page of a PMD would
/// split the PMD, which unmaps all of it, and raise minor faults again for the pages it mapped.
///
/// [`PmdGuard::set_pmd_file`]: kernel::mm::pmd::PmdGuard::set_pmd_file
#[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
fn mfill_continue_pmd(entry: &PmdEntry<'_>, folio: LockedFolio) -> Result<(), LockedFolio> {
    // The cheap test first: only a PMD-sized folio is worth the lock.
    if folio.nr_pages() != hpage_pmd_nr() {
        return Err(folio);
    }
    let Ok(mut pmd) = entry.pmd_lock() else {
        return Err(folio);
    };
    pmd.set_pmd_file(folio).map_err(|(_, folio)| folio)
}

/// One batched step from `dst_addr`, for C: a whole PMD where [`mfill_pmd_step`] allows it,
/// PTEs otherwise.
///
/// # Safety
///
/// As for [`rust_mfill_atomic_pte_continue_batch`].
#[inline(always)]
unsafe fn mfill_continue_batch(
    dst_vma: *mut bindings::vm_area_struct,
    dst_pmd: *mut bindings::pmd_t,
    dst_addr: usize,
    dst_end: usize,
    flags: UffdFlags,
) -> Result<BatchStep> {
    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    {
        let dst_pmd = core::ptr::NonNull::new(dst_pmd).ok_or(EINVAL)?;
        // SAFETY: The caller guarantees the invariants of `VmaPteMapped` for the call.
        let vma = unsafe { VmaPteMapped::from_raw(dst_vma) };
        // SAFETY: The caller found or allocated `dst_pmd` for `dst_addr` in `vma`, which stays
        // locked.
        let entry = unsafe { PmdEntry::from_raw(vma, dst_pmd, dst_addr) };
        // An entry that is not empty may have become a huge PMD since `mfill_establish_pmd()`
        // left it empty (a concurrent PMD step or fault): `EEXIST`, as for a mapped page.
        mfill_continue_pmd_or_ptes(&entry, dst_end, flags)
    }
    #[cfg(not(CONFIG_TRANSPARENT_HUGEPAGE))]
    {
        // SAFETY: The caller upholds the requirements of `mfill_pmd()`: without transparent huge
        // pages, `mfill_establish_pmd()` gave the entry a PTE table.
        let pmd = unsafe { mfill_pmd(dst_vma, dst_pmd, dst_addr) }?;
        mfill_atomic_pte_continue_batch(&pmd, dst_end, flags).map(BatchStep::ptes)
    }
}

/// `rust_mfill_atomic_pte_continue_batch()`: a batched step for C, see
/// [`mfill_atomic_pte_continue_batch`] and [`mfill_continue_pmd`].
///
/// Returns the number of pages mapped (at least one), or a negative errno. In test builds, a
/// step that mapped one PMD is counted in `continue_rust_batch_pmd` here (C counts the pages).
///
/// # Safety
///
/// As for [`rust_mfill_atomic_pte_continue`], except that with transparent huge pages `dst_pmd`
/// may be an empty PMD entry (`mfill_establish_pmd()` leaves it so for a batched
/// `UFFDIO_CONTINUE`); `dst_end` is the end of the ioctl's range.
// Declared in `mm/userfaultfd_rust.h`, which is internal to mm: bindgen does not see it.
#[no_mangle]
pub(crate) unsafe extern "C" fn rust_mfill_atomic_pte_continue_batch(
    dst_vma: *mut bindings::vm_area_struct,
    dst_pmd: *mut bindings::pmd_t,
    dst_addr: c_ulong,
    dst_end: c_ulong,
    flags: bindings::uffd_flags_t,
) -> c_long {
    // SAFETY: The caller upholds the requirements of `mfill_continue_batch()`.
    let res = unsafe {
        mfill_continue_batch(
            dst_vma,
            dst_pmd,
            dst_addr,
            dst_end,
            UffdFlags::from_raw(flags),
        )
    };
    match res {
        Ok(step) => {
            #[cfg(CONFIG_USERFAULTFD_RUST_TEST)]
            if step.pmd {
                // SAFETY: It only adds one to a per-CPU counter.
                unsafe { test_counters::mfill_count_rust_batch_pmd() };
            }
            // At most the pages of one PTE table, or of one PMD.
            step.pages as c_long
        }
        Err(e) => e.to_errno() as c_long,
    }
}

#[cfg(CONFIG_USERFAULTFD_RUST_KUNIT_TEST)]
#[kunit_tests(userfaultfd_rust_batch)]
mod tests {
    use super::*;
    use crate::tests::*;
    use kernel::mm::{
        folio::filemap_lock_folio_nowait,
        kunit::{self, page_tag, prot, read_pte, with_pmd},
        pgtable::{pmd_size, ptrs_per_pte},
        pte::PteMarker,
        shmem::{shmem_get_folio, SgpType},
        virt::flags as vm,
        MmCounter,
    };

    /// One batched step from `addr`, with the range ending at `end`.
    fn do_batch(addr: usize, end: usize) -> Result<usize> {
        with_pmd(addr, |pmd| {
            mfill_atomic_pte_continue_batch(pmd, end, flags(false))
        })
    }

    /// Returns which of the `n` pages from `addr` are mapped.
    fn present(addr: usize, n: usize) -> Result<KVec<bool>> {
        let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
        for i in 0..n {
            v.push(read_pte(addr + i * PAGE_SIZE)?.present(), GFP_KERNEL)?;
        }
        Ok(v)
    }

    #[test]
    fn batch_maps_the_range() -> Result {
        let m = setup(8, &[0, 1, 2, 3, 4, 5, 6, 7], 8, true, true)?;
        let mm = kunit::current_mm()?;
        let shmem = mm.get_mm_counter_sum(MmCounter::ShmemPages);
        let f6 = cached(&m, 6)?;
        let refs6 = kunit::settled_ref_count(&f6);
        // The range ends at page 6: pages 6 and 7 stay unmapped.
        assert_eq!(do_batch(m.addr, m.addr + 6 * PAGE_SIZE), Ok(6));
        assert_eq!(
            &*present(m.addr, 8)?,
            &[true, true, true, true, true, true, false, false]
        );
        assert_eq!(mm.get_mm_counter_sum(MmCounter::ShmemPages), shmem + 6);
        for n in 0..6 {
            let pte = read_pte(m.addr + n * PAGE_SIZE)?;
            assert!(pte.write() && pte.dirty());
            assert_eq!(pte.pfn(), cached(&m, n)?.pfn());
            assert_eq!(cached(&m, n)?.mapcount(), 1);
            assert_eq!(read8(m.addr + n * PAGE_SIZE)?, page_tag(n));
        }
        assert_eq!(kunit::settled_ref_count(&f6), refs6);
        assert_eq!(
            do_batch(m.addr + 6 * PAGE_SIZE, m.addr + 8 * PAGE_SIZE),
            Ok(2)
        );
        assert_eq!(do_batch(m.addr, m.addr + 8 * PAGE_SIZE), Err(EEXIST));
        Ok(())
    }

    /// A range that ends inside its first page maps nothing; one that ends inside its second
    /// page maps one page. Nothing beyond the range is mapped.
    #[test]
    fn batch_range_ends_mid_page() -> Result {
        let m = setup(4, &[0, 1, 2, 3], 4, true, true)?;
        assert_eq!(do_batch(m.addr, m.addr), Err(EINVAL));
        assert_eq!(do_batch(m.addr, m.addr + PAGE_SIZE / 2), Err(EINVAL));
        assert_eq!(do_batch(m.addr, m.addr + PAGE_SIZE + 100), Ok(1));
        assert_eq!(&*present(m.addr, 4)?, &[true, false, false, false]);
        Ok(())
    }

    #[test]
    fn batch_stops_where_a_page_would_fail() -> Result {
        // A hole at 2, a mapped page at 4, a guard marker at 6, a uffd-wp marker at 7.
        let m = setup_registered(10, &[0, 1, 3, 4, 5, 6, 7, 8], 10, true, true)?;
        let page = |n: usize| m.addr + n * PAGE_SIZE;
        let end = page(10);
        assert_eq!(do_continue(page(4), false), Ok(()));
        assert_eq!(guard(page(6)), Ok(()));
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
        // The file has 4 pages, the mapping 6.
        assert_eq!(
            do_batch(m.addr + 3 * PAGE_SIZE, m.addr + 6 * PAGE_SIZE),
            Ok(1)
        );
        assert_eq!(
            do_batch(m.addr + 4 * PAGE_SIZE, m.addr + 6 * PAGE_SIZE),
            Err(EFAULT)
        );
        let f2 = cached(&m, 2)?;
        let p2 = f2.page(0).ok_or(EINVAL)?;
        // SAFETY: The page is ours for the test: nothing maps it and the flag is cleared below.
        unsafe { bindings::SetPageHWPoison(p2.as_ptr()) };
        let first = do_batch(m.addr, m.addr + 3 * PAGE_SIZE);
        let second = do_batch(m.addr + 2 * PAGE_SIZE, m.addr + 3 * PAGE_SIZE);
        // SAFETY: As above.
        unsafe { bindings::ClearPageHWPoison(p2.as_ptr()) };
        if !cfg!(CONFIG_MEMORY_FAILURE) {
            kernel::kunit::mark_skipped(c"CONFIG_MEMORY_FAILURE is off");
            return Ok(());
        }
        assert_eq!(first, Ok(2));
        assert_eq!(second, Err(EIO));
        Ok(())
    }

    #[test]
    fn batch_large_folio() -> Result {
        let Some(t) = kunit::ThpFile::new(c"userfaultfd_rust_batch")? else {
            return Ok(());
        };
        let addr = t.map()?;
        let folio = &t.folio;
        let refs = kunit::settled_ref_count(folio);
        // Ten pages from page 5, in one step.
        assert_eq!(
            do_batch(addr + 5 * PAGE_SIZE, addr + 15 * PAGE_SIZE),
            Ok(10)
        );
        assert!(read_pte(addr + 4 * PAGE_SIZE)?.none());
        assert!(read_pte(addr + 15 * PAGE_SIZE)?.none());
        for n in 5..15 {
            assert_eq!(read_pte(addr + n * PAGE_SIZE)?.pfn(), folio.pfn() + n);
        }
        assert_eq!(folio.mapcount(), 10);
        assert_eq!(kunit::settled_ref_count(folio), refs + 10);
        assert_eq!(read8(addr + 14 * PAGE_SIZE)?, page_tag(14));
        // The rest of the folio, to the end of the range and of the PTE table.
        assert_eq!(
            do_batch(addr + 15 * PAGE_SIZE, addr + pmd_size()),
            Ok(ptrs_per_pte() - 15)
        );
        assert_eq!(folio.mapcount(), ptrs_per_pte() as i32 - 5);
        Ok(())
    }

    /// The counters of the batched `UFFDIO_CONTINUE` and of the page-by-page ones.
    fn stats() -> Result<[u64; 4]> {
        Ok([
            mfill_stat(c"continue_rust_batch")?,
            mfill_stat(c"continue_rust_batch_steps")?,
            mfill_stat(c"continue_rust")?,
            mfill_stat(c"continue_c")?,
        ])
    }

    /// `UFFDIO_CONTINUE` through the ioctl, as userspace calls it, where the batched step is the
    /// implementation `mm/userfaultfd.c` calls (the default of test builds, and production's):
    /// `mapped`, errors and the pages mapped are those of the page-by-page loop, and the loop
    /// advances by as many pages as each step mapped.
    #[test]
    fn continue_ioctl_takes_the_batch() -> Result {
        if mfill_impl() != c"rust-batch" {
            kernel::kunit::mark_skipped(c"userfaultfd/mfill_impl is not rust-batch");
            return Ok(());
        }
        // A hole at 5.
        let m = setup(8, &[0, 1, 2, 3, 4, 6, 7], 8, true, true)?;
        let uffd = Uffd::new()?;
        uffd.register(m.addr, 8 * PAGE_SIZE, vm::UFFD_MINOR)?;
        let before = stats()?;
        // One page: one step.
        assert_eq!(uffd.continue_range(m.addr, PAGE_SIZE, 0), (Ok(()), PS));
        let one = stats()?;
        assert_eq!(one, [before[0] + 1, before[1] + 1, before[2], before[3]]);
        // Pages 1 to 4 in one step, then the hole: partial progress, as page by page.
        assert_eq!(
            uffd.continue_range(m.addr + PAGE_SIZE, 7 * PAGE_SIZE, 0),
            (Err(EAGAIN), 4 * PS)
        );
        let partial = stats()?;
        assert_eq!(partial, [one[0] + 4, one[1] + 1, one[2], one[3]]);
        assert_eq!(
            &*present(m.addr, 8)?,
            &[true, true, true, true, true, false, false, false]
        );
        // The hole alone fails as a lookup failure does.
        assert_eq!(
            uffd.continue_range(m.addr + 5 * PAGE_SIZE, PAGE_SIZE, 0),
            (Err(EFAULT), i64::from(EFAULT.to_errno()))
        );
        // The pages after it, in one step; over a mapped page, EEXIST.
        assert_eq!(
            uffd.continue_range(m.addr + 6 * PAGE_SIZE, 2 * PAGE_SIZE, 0),
            (Ok(()), 2 * PS)
        );
        assert_eq!(
            uffd.continue_range(m.addr, 2 * PAGE_SIZE, 0),
            (Err(EEXIST), i64::from(EEXIST.to_errno()))
        );
        assert_eq!(stats()?, [partial[0] + 2, partial[1] + 1, one[2], one[3]]);
        for n in [0, 1, 2, 3, 4, 6, 7] {
            assert_eq!(read8(m.addr + n * PAGE_SIZE)?, page_tag(n));
        }
        Ok(())
    }

    /// Calls the `get_folio_nowait()` of the memory type of the VMA at `addr` for `index`, as a
    /// batched step does: the index of the folio it returns, if any.
    fn nowait(addr: usize, index: usize) -> Result<Option<usize>> {
        with_pmd(addr, |pmd| {
            let vma = pmd.vma();
            let (Some(ops), Some(file)) = (vma.uffd_ops(), vma.file()) else {
                return Err(EINVAL);
            };
            // SAFETY: `ops` is the memory type's table of this VMA, and the inode that of its
            // file.
            let folio = unsafe { ops.get_folio_nowait(file.inode(), index) };
            Ok(folio.map(|f| f.index()))
        })
    }

    #[test]
    fn shmem_get_folio_nowait() -> Result {
        let m = setup(4, &[0, 3], 4, true, true)?;
        kunit::file_fallocate(&m.file, 0, 2 * PS, PS)?;
        assert_eq!(nowait(m.addr, 0), Ok(Some(0)));
        // A hole, a fallocated folio (zeroing it may sleep), beyond the end of the file.
        assert_eq!(nowait(m.addr, 1), Ok(None));
        assert_eq!(nowait(m.addr, 2), Ok(None));
        assert_eq!(nowait(m.addr, 4), Ok(None));
        // A folio locked by someone else is not waited for.
        let held = shmem_get_folio(m.file.inode(), 3, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
        let contended = nowait(m.addr, 3);
        drop(held);
        assert_eq!(contended, Ok(None));
        assert_eq!(nowait(m.addr, 3), Ok(Some(3)));
        Ok(())
    }

    #[test]
    fn shmem_get_folio_nowait_stops_at_eof() -> Result {
        let Some(tmpfs) = kunit::HugeTmpfs::new()? else {
            kernel::kunit::mark_skipped(c"no tmpfs");
            return Ok(());
        };
        let file = tmpfs.file(c"userfaultfd_rust_batch", 10 * PS)?;
        kunit::file_write(&file, 0, b"large")?;
        let nr_pages = shmem_get_folio(file.inode(), 0, 0, SgpType::NoAlloc)?
            .ok_or(ENOENT)?
            .nr_pages();
        if nr_pages <= 10 {
            kernel::kunit::mark_skipped(c"shmem did not allocate a large folio");
            return Ok(());
        }
        let addr = kunit::vm_mmap(Some(&file), 10 * PAGE_SIZE, prot::READ, prot::MAP_SHARED, 0)?;
        // The folio covers offsets beyond i_size: they are not in the file.
        assert_eq!(nowait(addr, 5), Ok(Some(0)));
        assert_eq!(nowait(addr, 10), Ok(None));
        assert_eq!(nowait(addr, nr_pages - 1), Ok(None));
        Ok(())
    }

    /// A memory type without `get_folio_nowait()`: a step maps the rest of the folio that
    /// `get_folio_noalloc()` returned, and no more.
    #[test]
    fn batch_without_get_folio_nowait() -> Result {
        let m = setup(4, &[0, 1, 2, 3], 4, true, true)?;
        let end = m.addr + 4 * PAGE_SIZE;
        set_uffd_ops(m.addr, &MINOR_ONLY)?;
        assert_eq!(nowait(m.addr, 1), Ok(None));
        assert_eq!(do_batch(m.addr, end), Ok(1));
        assert_eq!(do_batch(m.addr + PAGE_SIZE, end), Ok(1));
        assert_eq!(&*present(m.addr, 4)?, &[true, true, false, false]);
        // With shmem's own table, the next folios are found without sleeping.
        let m = setup(4, &[0, 1, 2, 3], 4, true, true)?;
        assert_eq!(do_batch(m.addr, m.addr + 4 * PAGE_SIZE), Ok(4));
        Ok(())
    }

    /// A Rust memory type's `get_folio_nowait()`, through its trampoline under the PTE table
    /// lock: the next folios it finds are mapped in the same step.
    #[test]
    fn batch_through_a_rust_get_folio_nowait() -> Result {
        let m = setup(4, &[0, 1, 2, 3], 4, true, true)?;
        set_uffd_ops(m.addr, &MINOR_NOWAIT)?;
        assert_eq!(nowait(m.addr, 1), Ok(Some(1)));
        assert_eq!(do_batch(m.addr, m.addr + 4 * PAGE_SIZE), Ok(4));
        assert_eq!(&*present(m.addr, 4)?, &[true, true, true, true]);
        Ok(())
    }

    /// The trampoline drops, under the PTE table lock, a folio the Rust `get_folio_nowait()`
    /// should not have returned (here one that is not uptodate), and the step ends before it.
    #[test]
    fn batch_rust_get_folio_nowait_not_uptodate() -> Result {
        let m = setup(4, &[0, 1, 3], 4, true, true)?;
        kunit::file_fallocate(&m.file, 0, 2 * PS, PS)?;
        set_uffd_ops(m.addr, &MINOR_NOWAIT)?;
        assert_eq!(do_batch(m.addr, m.addr + 4 * PAGE_SIZE), Ok(2));
        // The dropped folio was unlocked.
        assert!(filemap_lock_folio_nowait(m.file.inode(), 2).is_some());
        assert_eq!(&*present(m.addr, 4)?, &[true, true, false, false]);
        Ok(())
    }

    /// A Rust `get_folio_nowait()` that returns the folio of the next offset: the trampoline
    /// drops it, unlocked, and the step maps the first page only.
    #[test]
    fn batch_rust_get_folio_nowait_wrong_offset() -> Result {
        let m = setup(4, &[0, 1, 2, 3], 4, true, true)?;
        set_uffd_ops(m.addr, &NOWAIT_OFF_BY_ONE)?;
        assert_eq!(do_batch(m.addr, m.addr + 4 * PAGE_SIZE), Ok(1));
        assert!(filemap_lock_folio_nowait(m.file.inode(), 2).is_some());
        assert_eq!(&*present(m.addr, 4)?, &[true, false, false, false]);
        Ok(())
    }
    /// A [`kunit::ThpFile`] mapped whole at a PMD-aligned address with `prot` and `flags`, THPs
    /// allowed, and registered for minor faults (and write protection if `wp`); `None` (the test
    /// skipped) if there is none.
    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    fn thp_registered(
        prot: usize,
        flags: usize,
        wp: bool,
    ) -> Result<Option<(kunit::ThpFile, usize, Uffd)>> {
        let Some(t) = kunit::ThpFile::new(c"userfaultfd_rust_batch")? else {
            return Ok(None);
        };
        let addr = kunit::vm_mmap(Some(&t.file), pmd_size(), prot, flags, 0)?;
        if addr % pmd_size() != 0 {
            kernel::kunit::mark_skipped(c"the mapping is not PMD aligned");
            return Ok(None);
        }
        let uffd = Uffd::new()?;
        let modes = vm::UFFD_MINOR | if wp { vm::UFFD_WP } else { 0 };
        uffd.register(addr, pmd_size(), modes)?;
        Ok(Some((t, addr, uffd)))
    }

    /// One step of `UFFDIO_CONTINUE` from `addr` to `end` as `mfill_atomic()` takes it with the
    /// batched implementation: `mfill_establish_pmd()` finds or allocates the PMD entry and
    /// leaves it empty if it is, for the step to allocate its PTE table or map a PMD.
    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    fn c_step(addr: usize, end: usize, wp: bool) -> Result<BatchStep> {
        let mm = kunit::current_mm()?;
        let mmap = mm.mmap_read_lock();
        let vma = mmap.vma_lookup(addr).ok_or(ENOENT)?;
        let vma = vma.as_pte_mapped().ok_or(EINVAL)?;
        let entry = PmdEntry::alloc(vma, addr)?;
        // SAFETY: The VMA is read-locked and in its mm's VMA tree; `entry` is the PMD entry of
        // `addr`.
        unsafe { mfill_continue_batch(vma.as_ptr(), entry.as_ptr(), addr, end, flags(wp)) }
    }

    /// Returns whether `addr` is mapped by a huge PMD.
    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    fn pmd_mapped(addr: usize) -> Result<bool> {
        let mm = kunit::current_mm()?;
        let mmap = mm.mmap_read_lock();
        let vma = mmap.vma_lookup(addr).ok_or(ENOENT)?;
        let entry = PmdEntry::alloc(vma.as_pte_mapped().ok_or(EINVAL)?, addr)?;
        let pmd = entry.pmd_lock()?.pmdp_get();
        Ok(pmd.present() && pmd.leaf())
    }

    /// A step over a whole PMD-sized folio from the start of its PMD range maps it with one PMD,
    /// with the counters and mapcounts of one mapping of the whole folio.
    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    #[test]
    fn batch_maps_a_whole_thp_with_one_pmd() -> Result {
        let Some((t, addr, _uffd)) =
            thp_registered(prot::READ | prot::WRITE, prot::MAP_SHARED, false)?
        else {
            return Ok(());
        };
        let mm = kunit::current_mm()?;
        let shmem = mm.get_mm_counter_sum(MmCounter::ShmemPages);
        let refs = kunit::settled_ref_count(&t.folio);
        assert_eq!(
            c_step(addr, addr + 2 * pmd_size(), false),
            Ok(BatchStep {
                pages: hpage_pmd_nr(),
                pmd: true
            })
        );
        assert!(pmd_mapped(addr)?);
        assert_eq!(t.folio.mapcount(), 1);
        assert_eq!(
            // SAFETY: The folio is valid.
            unsafe { bindings::folio_entire_mapcount(t.folio.as_ptr()) },
            1
        );
        assert_eq!(kunit::settled_ref_count(&t.folio), refs + 1);
        assert_eq!(
            mm.get_mm_counter_sum(MmCounter::ShmemPages),
            shmem + hpage_pmd_nr()
        );
        for n in [0, 7, hpage_pmd_nr() - 1] {
            assert_eq!(read8(addr + n * PAGE_SIZE)?, page_tag(n));
        }
        // As for the page-by-page loop, a mapped range is EEXIST.
        assert_eq!(c_step(addr, addr + pmd_size(), false), Err(EEXIST));
        assert_eq!(
            c_step(addr + PAGE_SIZE, addr + pmd_size(), false),
            Err(EEXIST)
        );
        Ok(())
    }

    /// Checks a step that must not map a PMD: it maps `pages` pages with PTEs from `from`, and
    /// the folio is mapped once per page.
    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    fn ptes_mapped(
        t: &kunit::ThpFile,
        base: usize,
        step: Result<BatchStep>,
        from: usize,
        pages: usize,
    ) -> Result {
        assert_eq!(step, Ok(BatchStep::ptes(pages)));
        assert!(!pmd_mapped(base)?);
        assert_eq!(t.folio.mapcount(), pages as i32);
        assert_eq!(
            // SAFETY: The folio is valid.
            unsafe { bindings::folio_entire_mapcount(t.folio.as_ptr()) },
            0
        );
        let first = read_pte(base + from * PAGE_SIZE)?;
        assert!(first.present());
        assert_eq!(first.pfn(), t.folio.pfn() + from);
        assert!(read_pte(base + (from + pages - 1) * PAGE_SIZE)?.present());
        if from > 0 {
            assert!(read_pte(base + (from - 1) * PAGE_SIZE)?.none());
        }
        if from + pages < hpage_pmd_nr() {
            assert!(read_pte(base + (from + pages) * PAGE_SIZE)?.none());
        }
        Ok(())
    }

    /// A step that does not start a PMD range, or does not cover it, or asks for
    /// write protection, maps PTEs, never more than the range.
    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    #[test]
    fn batch_pmd_needs_the_whole_aligned_range() -> Result {
        let rw = prot::READ | prot::WRITE;
        let Some((t, addr, _uffd)) = thp_registered(rw, prot::MAP_SHARED, false)? else {
            return Ok(());
        };
        let step = c_step(addr, addr + pmd_size() - PAGE_SIZE, false);
        ptes_mapped(&t, addr, step, 0, hpage_pmd_nr() - 1)?;
        let Some((t, addr, _uffd)) = thp_registered(rw, prot::MAP_SHARED, false)? else {
            return Ok(());
        };
        let step = c_step(addr + PAGE_SIZE, addr + pmd_size(), false);
        ptes_mapped(&t, addr, step, 1, hpage_pmd_nr() - 1)?;
        let Some((t, addr, _uffd)) = thp_registered(rw, prot::MAP_SHARED, true)? else {
            return Ok(());
        };
        let step = c_step(addr, addr + pmd_size(), true);
        ptes_mapped(&t, addr, step, 0, hpage_pmd_nr())?;
        assert!(read_pte(addr)?.uffd());
        Ok(())
    }

    /// Where the kernel would not map the folio with a PMD, the step maps it with PTEs, as the
    /// page-by-page loop does: a VMA registered for write protection (without `MODE_WP`), a
    /// private one, one with `MADV_NOHUGEPAGE`, a folio with a hwpoisoned page.
    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    #[test]
    fn batch_pmd_refusals_map_ptes() -> Result {
        let rw = prot::READ | prot::WRITE;
        let Some((t, addr, _uffd)) = thp_registered(rw, prot::MAP_SHARED, true)? else {
            return Ok(());
        };
        let step = c_step(addr, addr + pmd_size(), false);
        ptes_mapped(&t, addr, step, 0, hpage_pmd_nr())?;
        let Some((t, addr, _uffd)) = thp_registered(rw, prot::MAP_PRIVATE, false)? else {
            return Ok(());
        };
        let step = c_step(addr, addr + pmd_size(), false);
        ptes_mapped(&t, addr, step, 0, hpage_pmd_nr())?;
        assert!(!read_pte(addr)?.write());
        let Some((t, addr, _uffd)) = thp_registered(rw, prot::MAP_SHARED, false)? else {
            return Ok(());
        };
        kunit::madvise(addr, pmd_size(), bindings::MADV_NOHUGEPAGE as i32)?;
        let step = c_step(addr, addr + pmd_size(), false);
        ptes_mapped(&t, addr, step, 0, hpage_pmd_nr())?;
        if cfg!(CONFIG_MEMORY_FAILURE) {
            let Some((t, addr, _uffd)) = thp_registered(rw, prot::MAP_SHARED, false)? else {
                return Ok(());
            };
            // SAFETY: The folio is ours for the test; the flag is cleared below.
            unsafe { bindings::folio_set_has_hwpoisoned(t.folio.as_ptr()) };
            let step = c_step(addr, addr + pmd_size(), false);
            // SAFETY: As above.
            unsafe { bindings::folio_clear_has_hwpoisoned(t.folio.as_ptr()) };
            ptes_mapped(&t, addr, step, 0, hpage_pmd_nr())?;
        }
        Ok(())
    }

    /// A PTE table in place (a page mapped already) keeps the step on PTEs, up to that page.
    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    #[test]
    fn batch_pmd_not_over_a_pte_table() -> Result {
        let Some((t, addr, _uffd)) =
            thp_registered(prot::READ | prot::WRITE, prot::MAP_SHARED, false)?
        else {
            return Ok(());
        };
        assert_eq!(do_continue(addr + 5 * PAGE_SIZE, false), Ok(()));
        assert_eq!(
            c_step(addr, addr + pmd_size(), false),
            Ok(BatchStep::ptes(5))
        );
        assert!(!pmd_mapped(addr)?);
        assert_eq!(t.folio.mapcount(), 6);
        Ok(())
    }

    /// A PMD-sized folio that crosses the end of the file: PTEs up to the end of the file, and
    /// `EFAULT` for the next step, as page by page.
    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    #[test]
    fn batch_pmd_not_across_eof() -> Result {
        let Some(tmpfs) = kunit::HugeTmpfs::new()? else {
            kernel::kunit::mark_skipped(c"no tmpfs");
            return Ok(());
        };
        let file = tmpfs.file(c"userfaultfd_rust_batch", 10 * PS)?;
        kunit::file_write(&file, 0, &page_tag(0))?;
        let folio = shmem_get_folio(file.inode(), 0, 0, SgpType::NoAlloc)?
            .ok_or(ENOENT)?
            .unlock();
        if folio.nr_pages() != hpage_pmd_nr() {
            kernel::kunit::mark_skipped(c"shmem did not allocate a PMD-sized folio");
            return Ok(());
        }
        let addr = kunit::vm_mmap(
            Some(&file),
            pmd_size(),
            prot::READ | prot::WRITE,
            prot::MAP_SHARED,
            0,
        )?;
        if addr % pmd_size() != 0 {
            kernel::kunit::mark_skipped(c"the mapping is not PMD aligned");
            return Ok(());
        }
        let uffd = Uffd::new()?;
        uffd.register(addr, pmd_size(), vm::UFFD_MINOR)?;
        assert_eq!(
            c_step(addr, addr + pmd_size(), false),
            Ok(BatchStep::ptes(10))
        );
        assert!(!pmd_mapped(addr)?);
        assert_eq!(folio.mapcount(), 10);
        assert_eq!(
            c_step(addr + 10 * PAGE_SIZE, addr + pmd_size(), false),
            Err(EFAULT)
        );
        Ok(())
    }
}
