// SPDX-License-Identifier: GPL-2.0

//! Batched `UFFDIO_CONTINUE`: as many pages as one step can map under one PTE table lock.
//!
//! `mm/userfaultfd.c` calls this for `UFFDIO_CONTINUE` with `CONFIG_USERFAULTFD_RUST` (in test
//! builds, when `userfaultfd/mfill_impl` says `rust-batch`, the default). The lookup of the first
//! page and the installation checks are those of [`mfill_atomic_pte_continue`], page by page;
//! only the locking and the page table updates are shared. A range of one page is the
//! page-by-page step itself.

use super::*;
use kernel::{
    ffi::{c_long, c_ulong},
    page::PAGE_SIZE,
};

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
    let vma = pmd.vma();
    let dst_addr = pmd.addr();
    // The range covers at least the page at `dst_addr`: the C caller passes the page-aligned
    // end of the ioctl's range.
    if dst_end < dst_addr.saturating_add(PAGE_SIZE) {
        return Err(EINVAL);
    }
    if dst_end - dst_addr < 2 * PAGE_SIZE {
        mfill_atomic_pte_continue(pmd, flags)?;
        return Ok(1);
    }
    let mut folio = mfill_get_folio(vma, dst_addr)?;
    // `mfill_get_folio()` found both.
    let (Some(ops), Some(file)) = (vma.uffd_ops(), vma.file()) else {
        return Err(EINVAL);
    };
    let inode = file.inode();
    let pgoff = vma.linear_page_index(dst_addr);
    let mut page_nr = folio.file_page_nr(pgoff);

    let Some(mut ptes) = pmd.pte_offset_map_lock() else {
        return Err(EAGAIN);
    };
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
}

/// `rust_mfill_atomic_pte_continue_batch()`: [`mfill_atomic_pte_continue_batch`] for C.
///
/// Returns the number of pages mapped (at least one), or a negative errno.
///
/// # Safety
///
/// As for [`rust_mfill_atomic_pte_continue`]; `dst_end` is the end of the ioctl's range.
// Declared in `mm/userfaultfd_rust.h`, which is internal to mm: bindgen does not see it.
#[no_mangle]
pub(crate) unsafe extern "C" fn rust_mfill_atomic_pte_continue_batch(
    dst_vma: *mut bindings::vm_area_struct,
    dst_pmd: *mut bindings::pmd_t,
    dst_addr: c_ulong,
    dst_end: c_ulong,
    flags: bindings::uffd_flags_t,
) -> c_long {
    // SAFETY: The caller upholds the requirements of `mfill_pmd()`.
    let res = unsafe { mfill_pmd(dst_vma, dst_pmd, dst_addr) }
        .and_then(|pmd| mfill_atomic_pte_continue_batch(&pmd, dst_end, UffdFlags::from_raw(flags)));
    match res {
        // At most the pages of one PTE table (or PMD).
        Ok(nr) => nr as c_long,
        Err(e) => e.to_errno() as c_long,
    }
}

#[cfg(CONFIG_USERFAULTFD_RUST_KUNIT_TEST)]
#[kunit_tests(userfaultfd_rust_batch)]
mod tests {
    use super::*;
    use crate::tests::*;
    use kernel::{
        mm::{
            folio::filemap_lock_folio_nowait,
            kunit::{self, page_tag, prot, read_pte, with_pmd},
            pgtable::{pmd_size, ptrs_per_pte},
            pte::PteMarker,
            shmem::{shmem_get_folio, SgpType},
            virt::flags as vm,
            MmCounter,
        },
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
}
