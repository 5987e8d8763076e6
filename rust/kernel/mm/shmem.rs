// SPDX-License-Identifier: GPL-2.0

//! Shared memory: files of the internal tmpfs mount and their page cache.
//!
//! C header: [`include/linux/shmem_fs.h`](srctree/include/linux/shmem_fs.h)

use crate::{
    bindings,
    error::{code::EINVAL, from_err_ptr, to_result, Result},
    fs::{inode::Inode, File},
    mm::folio::{LockedFolio, PgOff},
    str::{CStr, CStrExt},
    sync::aref::ARef,
};
use core::ptr::NonNull;

/// Returns whether `inode` is a shmem inode (`shmem_mapping()`): the lookups of this module
/// take the inode for one.
pub(crate) fn is_shmem_inode(inode: &Inode) -> bool {
    // SAFETY: `inode` is valid, and so is its mapping; `shmem_mapping()` only compares it.
    unsafe { bindings::shmem_mapping((*inode.as_ptr()).i_mapping) }
}

/// How [`shmem_get_folio`] behaves on a hole (`enum sgp_type`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum SgpType {
    /// Do not go beyond `i_size`; do not allocate: a hole is `Ok(None)` (`SGP_READ`).
    Read = bindings::sgp_type_SGP_READ,
    /// Like `Read`, but a hole is `ENOENT`; a fallocated folio is zeroed and returned
    /// uptodate (`SGP_NOALLOC`). This is the lookup `UFFDIO_CONTINUE` does.
    NoAlloc = bindings::sgp_type_SGP_NOALLOC,
    /// Do not go beyond `i_size`; allocate a zeroed folio for a hole (`SGP_CACHE`).
    Cache = bindings::sgp_type_SGP_CACHE,
    // `SGP_WRITE` and `SGP_FALLOC` return folios that may not be uptodate, whose contents are
    // whatever the allocator left: they are for the write and fallocate paths, not for callers
    // that might map or read the folio.
}

/// Creates an unlinked shmem file of `size` bytes on the internal mount (`shmem_file_setup()`).
///
/// No `VM_NORESERVE` is passed: the whole size is charged to the commit limit up front.
pub fn shmem_file_setup(name: &CStr, size: i64) -> Result<ARef<File>> {
    let flags = bindings::vma_flags_t::default();
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let file = unsafe { bindings::shmem_file_setup(name.as_char_ptr(), size, flags) };
    let file = from_err_ptr(file)?;
    // SAFETY: `shmem_file_setup()` returned a new file with one reference, which we now own.
    Ok(unsafe { ARef::from_raw(NonNull::new_unchecked(file.cast())) })
}

/// Finds, and with the right [`SgpType`] allocates, the folio at `index` in the page cache of a
/// shmem inode (`shmem_get_folio()`).
///
/// The folio comes back locked and with a reference. `Ok(None)` means a hole for
/// [`SgpType::Read`]. Errors: `ENOENT` for a hole with [`SgpType::NoAlloc`], `EINVAL` beyond
/// `i_size` where the type forbids it, `ENOMEM`/`ENOSPC` when allocating, `EIO` and others when
/// swapping in.
///
/// Fails with `EINVAL` if `inode` is not a shmem inode. May sleep.
pub fn shmem_get_folio(
    inode: &Inode,
    index: PgOff,
    write_end: i64,
    sgp: SgpType,
) -> Result<Option<LockedFolio>> {
    if !is_shmem_inode(inode) {
        return Err(EINVAL);
    }
    let mut folio: *mut bindings::folio = core::ptr::null_mut();
    // SAFETY: `inode` is a valid shmem inode for the duration of the call, `folio` is a valid
    // place for the result.
    to_result(unsafe {
        bindings::shmem_get_folio(inode.as_ptr(), index, write_end, &mut folio, sgp as u32)
    })?;
    // SAFETY: On success, a non-NULL folio is locked and referenced for us.
    Ok(NonNull::new(folio).map(|f| unsafe { LockedFolio::from_raw(f) }))
}

#[cfg(CONFIG_RUST_MM_KUNIT_TEST)]
#[macros::kunit_tests(rust_mm_pagecache)]
mod tests {
    use super::*;
    use crate::{
        mm::{folio::Folio, kunit},
        page::PAGE_SIZE,
        prelude::*,
    };

    const PS: i64 = PAGE_SIZE as i64;

    /// Reads the first `N` bytes of page `n` of a folio.
    fn folio_bytes<const N: usize>(folio: &Folio, n: usize) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        let page = folio.page(n).ok_or(EINVAL)?;
        // SAFETY: The folio is locked by the caller, so its contents do not change under us.
        unsafe { kunit::read_folio_page(page, 0, &mut buf)? };
        Ok(buf)
    }

    #[test]
    fn lookup_hit() -> Result {
        let file = shmem_file_setup(c"rust_mm_pagecache", 4 * PS)?;
        kunit::file_write(&file, PS, b"page one")?;
        let folio = shmem_get_folio(file.inode(), 1, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
        assert!(folio.test_locked());
        assert!(folio.test_uptodate());
        assert!(folio.test_swapbacked());
        assert!(!folio.test_anon());
        assert!(folio.mapping().is_some());
        assert_eq!(folio.index(), 1);
        assert_eq!(folio.mapcount(), 0);
        // One reference from the page cache per page, one for us.
        assert_eq!(
            kunit::settled_ref_count(&folio),
            folio.nr_pages() as i32 + 1
        );
        assert_eq!(&folio_bytes::<8>(&folio, 0)?, b"page one");
        // The page that holds index 1 is page 0 of this order-0 folio.
        assert_eq!(folio.file_page_nr(1), 0);
        assert!(!folio.page_hwpoison(0));
        let folio: ARef<Folio> = folio.unlock();
        assert!(!folio.test_locked());
        Ok(())
    }

    #[test]
    fn lookup_hole() -> Result {
        let file = shmem_file_setup(c"rust_mm_pagecache", 4 * PS)?;
        kunit::file_write(&file, 0, b"x")?;
        // Index 2 was never written: NOALLOC fails, READ reports a hole.
        assert_eq!(
            shmem_get_folio(file.inode(), 2, 0, SgpType::NoAlloc).err(),
            Some(ENOENT)
        );
        assert!(shmem_get_folio(file.inode(), 2, 0, SgpType::Read)?.is_none());
        Ok(())
    }

    #[test]
    fn lookup_beyond_eof() -> Result {
        let file = shmem_file_setup(c"rust_mm_pagecache", 4 * PS)?;
        assert_eq!(file.inode().i_size_read(), 4 * PS);
        for sgp in [SgpType::Read, SgpType::NoAlloc, SgpType::Cache] {
            assert_eq!(shmem_get_folio(file.inode(), 4, 0, sgp).err(), Some(EINVAL));
        }
        // Shrinking the file takes the page cache with it.
        kunit::file_write(&file, 3 * PS, b"last page")?;
        kunit::file_truncate(&file, 2 * PS)?;
        assert_eq!(file.inode().i_size_read(), 2 * PS);
        assert_eq!(
            shmem_get_folio(file.inode(), 3, 0, SgpType::NoAlloc).err(),
            Some(EINVAL)
        );
        Ok(())
    }

    #[test]
    fn fallocated_not_uptodate() -> Result {
        let file = shmem_file_setup(c"rust_mm_pagecache", 4 * PS)?;
        // Dirty the page first so that a stale value would show if it were not zeroed.
        kunit::file_write(&file, 2 * PS, b"stale")?;
        kunit::file_fallocate(
            &file,
            bindings::FALLOC_FL_PUNCH_HOLE as i32 | bindings::FALLOC_FL_KEEP_SIZE as i32,
            2 * PS,
            PS,
        )?;
        kunit::file_fallocate(&file, 0, 2 * PS, PS)?;
        // A fallocated folio that was never written is not uptodate: READ treats it as a hole.
        assert!(shmem_get_folio(file.inode(), 2, 0, SgpType::Read)?.is_none());
        // NOALLOC zeroes it and returns it uptodate.
        let folio = shmem_get_folio(file.inode(), 2, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
        assert!(folio.test_uptodate());
        assert_eq!(folio_bytes::<16>(&folio, 0)?, [0u8; 16]);
        Ok(())
    }

    #[test]
    fn large_folio_subpage() -> Result {
        let Some(tmpfs) = kunit::HugeTmpfs::new()? else {
            crate::kunit::mark_skipped(c"no tmpfs");
            return Ok(());
        };
        // A PMD-sized folio: PTRS_PER_PTE pages.
        // SAFETY: Reads a constant, or a variable that is set once, at boot.
        let ptrs_per_pte = unsafe { bindings::ptrs_per_pte() } as usize;
        let huge = (ptrs_per_pte * PAGE_SIZE) as i64;
        let file = tmpfs.file(c"rust_mm_pagecache_thp", 2 * huge)?;
        // A 2 MiB aligned write of 2 MiB makes a PMD-sized folio on a huge=always tmpfs.
        let mut chunk = KVec::with_capacity(huge as usize, GFP_KERNEL)?;
        chunk.resize(huge as usize, 0u8, GFP_KERNEL)?;
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = (i / PAGE_SIZE) as u8;
        }
        kunit::file_write(&file, huge, &chunk)?;
        let first = (huge / PS) as usize;
        let folio = shmem_get_folio(file.inode(), first + 5, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
        if folio.nr_pages() != ptrs_per_pte {
            crate::kunit::mark_skipped(c"shmem did not allocate a PMD-sized folio");
            return Ok(());
        }
        assert_eq!(folio.nr_pages(), ptrs_per_pte);
        assert_eq!(folio.index(), first);
        assert_eq!(folio.file_page_nr(first + 5), 5);
        let pfn = folio.file_page(first + 5).pfn();
        let pfn0 = folio.page(0).ok_or(EINVAL)?.pfn();
        assert_eq!(pfn, pfn0 + 5);
        assert_eq!(folio.pfn(), pfn0);
        assert_eq!(folio_bytes::<4>(&folio, 5)?, [5u8; 4]);
        let last = ptrs_per_pte - 1;
        assert_eq!(folio_bytes::<4>(&folio, last)?, [last as u8; 4]);
        assert!(folio.page(ptrs_per_pte).is_none());
        Ok(())
    }
}
