// SPDX-License-Identifier: GPL-2.0

//! The userfaultfd operations of memory types written in Rust.

use super::*;
use crate::{
    error::VTABLE_DEFAULT_ERROR,
    mm::virt::{flags, vm_flags_t, VmaRef},
    prelude::*,
};
use core::{marker::PhantomData, ptr::NonNull};

/// The userfaultfd operations of a memory type written in Rust.
///
/// A memory type that wants userfaultfd minor faults (`UFFDIO_REGISTER_MODE_MINOR` and
/// `UFFDIO_CONTINUE`) implements [`get_folio_noalloc`](UffdOps::get_folio_noalloc), and points
/// the `uffd_ops` of its `vm_operations_struct` at [`UffdOpsVtable::<T>::VTABLE`]. The C
/// userfaultfd core then calls it like the C memory types: `can_userfault()` when a range is
/// registered, `get_folio_noalloc()` for every page `UFFDIO_CONTINUE` maps.
///
/// Only minor faults are supported through this trait: the table has no `alloc_folio()`,
/// `filemap_add()` or `filemap_remove()`. Registering for missing faults is refused before
/// [`can_userfault`](UffdOps::can_userfault) is asked, and so is registering for minor faults
/// without `get_folio_noalloc()`. `UFFDIO_COPY` and `UFFDIO_ZEROPAGE` need no missing-fault
/// registration, so they can reach a range registered for minor faults or write protection:
/// the C core refuses them with `EINVAL` for a memory type without `alloc_folio()` (in a shared
/// mapping; a private one gets anonymous memory as for any file), and never calls the missing
/// operation.
///
/// A memory type whose page cache can also be searched without sleeping implements
/// [`GetFolioNowait`] as well, and names it in [`GET_FOLIO_NOWAIT`](UffdOps::GET_FOLIO_NOWAIT):
/// a batched `UFFDIO_CONTINUE` then maps several of its folios under one page table lock.
#[vtable]
pub trait UffdOps: Sized + 'static {
    /// Returns whether `vma` may be registered with the userfaultfd modes in `vm_flags`
    /// (`can_userfault()`).
    ///
    /// Called with the mmap lock held for writing. [`UffdOpsVtable`] has already refused missing
    /// faults, and minor faults if [`get_folio_noalloc`](UffdOps::get_folio_noalloc) is not
    /// implemented; read-write protection (`VM_UFFD_RWP`) and write protection are for the
    /// implementation to allow or refuse.
    /// Write protection (`VM_UFFD_WP`) needs the memory type to keep userfaultfd markers in
    /// empty page table entries, as shmem does.
    ///
    /// The answer must depend only on `vma` and `vm_flags`, and the call must change nothing:
    /// the core asks again when the range is registered and unregistered, and warns
    /// (`VM_WARN_ON_ONCE()`) if it no longer allows what it allowed.
    fn can_userfault(_vma: &VmaRef, _vm_flags: vm_flags_t) -> bool {
        true
    }

    /// Returns the folio at `pgoff` in the page cache of `inode`, locked and with a reference,
    /// without allocating one (`get_folio_noalloc()`).
    ///
    /// Called by `UFFDIO_CONTINUE` with the VMA read-locked; may sleep. A folio that was
    /// preallocated but never written must come back zeroed and uptodate, a swapped-out one
    /// swapped in. Any error (a hole, beyond the end of the file, an I/O error) makes
    /// `UFFDIO_CONTINUE` fail the page with `EFAULT`.
    ///
    /// The folio must be the uptodate one in the page cache of `inode` that holds `pgoff`: any
    /// other is dropped, and the lookup fails with `EFAULT`, before the C core sees it. It may be
    /// a large folio: its other pages are the page cache at the neighbouring offsets, and
    /// `UFFDIO_CONTINUE` may map them for those offsets without asking again.
    fn get_folio_noalloc(_inode: &Inode, _pgoff: PgOff) -> Result<LockedFolio> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The memory type's page-cache lookup that never sleeps (`get_folio_nowait()`, optional),
    /// for the batched `UFFDIO_CONTINUE`: `Some(GetFolioNowaitOp::of::<Self>())` for a memory
    /// type that implements [`GetFolioNowait`], `None` (the default) otherwise. Without it, a
    /// batched step maps the rest of the folio [`get_folio_noalloc`](UffdOps::get_folio_noalloc)
    /// returned, and no more.
    const GET_FOLIO_NOWAIT: Option<GetFolioNowaitOp> = None;
}

/// The page-cache lookup of a memory type written in Rust that never sleeps
/// (`get_folio_nowait()`), with which a batched `UFFDIO_CONTINUE` finds the folios after the
/// first one under the page table lock.
///
/// A memory type that implements it gives it to userfaultfd with
/// [`UffdOps::GET_FOLIO_NOWAIT`]` = Some(`[`GetFolioNowaitOp::of::<Self>()`]`)`.
///
/// # Safety
///
/// [`get_folio_nowait`](Self::get_folio_nowait) is called with a page table spinlock held, in
/// atomic context: it must not sleep, neither itself nor through anything it calls. No
/// allocation that may sleep, no I/O, no sleeping lock (a folio lock may only be tried, as
/// [`filemap_lock_folio_nowait`] does), nothing that calls `might_sleep()`. Nothing in its types
/// can check this (`CONFIG_DEBUG_ATOMIC_SLEEP` reports a violation when it happens), so an
/// implementation says why it holds.
///
/// [`filemap_lock_folio_nowait`]: crate::mm::folio::filemap_lock_folio_nowait
pub unsafe trait GetFolioNowait: UffdOps {
    /// Returns what [`UffdOps::get_folio_noalloc`] would return for `pgoff` if that needs no
    /// sleeping, `None` otherwise: the folio in the page cache of `inode` that holds `pgoff`,
    /// uptodate, locked (only if its lock was free) and with a reference.
    ///
    /// `None` for a hole, beyond the end of the file, and for a folio that would have to be read
    /// or swapped in, zeroed or waited for. A folio that is not the uptodate page cache of
    /// `inode` holding `pgoff` is dropped and taken for `None`.
    fn get_folio_nowait(inode: &Inode, pgoff: PgOff) -> Option<LockedFolio>;
}

/// The `get_folio_nowait()` of a [`GetFolioNowait`] implementation, for
/// [`UffdOps::GET_FOLIO_NOWAIT`].
///
/// Only [`GetFolioNowaitOp::of`] makes one, so the operation in the table of a memory type is
/// always one whose implementation promised not to sleep.
///
/// # Invariants
///
/// `0` is the `get_folio_nowait()` trampoline of a [`GetFolioNowait`] implementation, whose
/// `unsafe impl` promises the rules of that trait: it neither sleeps nor allocates, and returns
/// `NULL` or a locked, referenced folio of the page cache of the inode it is given.
#[derive(Clone, Copy)]
pub struct GetFolioNowaitOp(
    unsafe extern "C" fn(*mut bindings::inode, PgOff) -> *mut bindings::folio,
);

impl GetFolioNowaitOp {
    /// The `get_folio_nowait()` of `T`.
    pub const fn of<T: GetFolioNowait>() -> Self {
        Self(UffdOpsVtable::<T>::get_folio_nowait)
    }
}

/// The `struct vm_uffd_ops` of a [`UffdOps`] implementation.
pub struct UffdOpsVtable<T: UffdOps>(PhantomData<T>);

impl<T: UffdOps> UffdOpsVtable<T> {
    /// # Safety
    ///
    /// `vma` must be a valid VMA, with the mmap lock held (`userfaultfd_register()` holds it for
    /// writing) for the duration of the call.
    // `VM_UFFD_MINOR` is `VM_NONE` on 32-bit architectures (arm, ppc32), which have no minor
    // faults: no VMA is registered for them there, and the mask is 0.
    #[allow(clippy::bad_bit_mask)]
    unsafe extern "C" fn can_userfault(
        vma: *mut bindings::vm_area_struct,
        vm_flags: vm_flags_t,
    ) -> bool {
        if vm_flags & flags::UFFD_MISSING != 0 {
            return false;
        }
        if vm_flags & flags::UFFD_MINOR != 0 && !T::HAS_GET_FOLIO_NOALLOC {
            return false;
        }
        // SAFETY: The caller holds the mmap lock, as `VmaRef` needs, for the duration of the
        // call.
        let vma = unsafe { VmaRef::from_raw(vma) };
        T::can_userfault(vma, vm_flags)
    }

    /// # Safety
    ///
    /// `inode` must be a valid inode for the duration of the call.
    unsafe extern "C" fn get_folio_noalloc(
        inode: *mut bindings::inode,
        pgoff: PgOff,
    ) -> *mut bindings::folio {
        // SAFETY: The caller guarantees that the inode is valid during the call.
        let inode = unsafe { Inode::from_raw(inode) };
        match T::get_folio_noalloc(inode, pgoff) {
            // The C core maps what it gets: only the page cache of `inode` at `pgoff` is handed
            // over. Anything else is dropped (unlocked and put) and fails the lookup.
            Ok(folio) if Self::is_page_cache_at(&folio, inode, pgoff) => {
                // The caller takes over the lock and the reference.
                folio.into_raw().as_ptr()
            }
            Ok(_) => EFAULT.to_ptr(),
            Err(e) => e.to_ptr(),
        }
    }

    /// Returns whether `folio` is uptodate and in the page cache of `inode` at `pgoff`.
    fn is_page_cache_at(folio: &LockedFolio, inode: &Inode, pgoff: PgOff) -> bool {
        // SAFETY: `inode` is valid, and so is its mapping.
        let mapping = unsafe { (*inode.as_ptr()).i_mapping };
        // The folio is locked: its mapping and index are stable.
        !folio.test_anon()
            && folio.test_uptodate()
            && folio.mapping().map(NonNull::as_ptr) == Some(mapping)
            && pgoff
                .checked_sub(folio.index())
                .is_some_and(|n| n < folio.nr_pages())
    }

    /// The operations table, for `vm_operations_struct::uffd_ops`.
    pub const VTABLE: bindings::vm_uffd_ops = bindings::vm_uffd_ops {
        can_userfault: Some(Self::can_userfault),
        get_folio_noalloc: if T::HAS_GET_FOLIO_NOALLOC {
            Some(Self::get_folio_noalloc)
        } else {
            None
        },
        get_folio_nowait: match T::GET_FOLIO_NOWAIT {
            Some(op) => Some(op.0),
            None => None,
        },
        alloc_folio: None,
        filemap_add: None,
        filemap_remove: None,
    };
}

impl<T: GetFolioNowait> UffdOpsVtable<T> {
    /// # Safety
    ///
    /// `inode` must be a valid inode for the duration of the call. May be called in atomic
    /// context: `T` promised not to sleep.
    unsafe extern "C" fn get_folio_nowait(
        inode: *mut bindings::inode,
        pgoff: PgOff,
    ) -> *mut bindings::folio {
        // SAFETY: The caller guarantees that the inode is valid during the call.
        let inode = unsafe { Inode::from_raw(inode) };
        match T::get_folio_nowait(inode, pgoff) {
            // As for `get_folio_noalloc()`: only the page cache of `inode` at `pgoff`.
            Some(folio) if Self::is_page_cache_at(&folio, inode, pgoff) => {
                folio.into_raw().as_ptr()
            }
            _ => core::ptr::null_mut(),
        }
    }
}

#[cfg(all(CONFIG_RUST_MM_KUNIT_TEST, CONFIG_SHMEM))]
#[macros::kunit_tests(rust_mm_userfaultfd)]
mod tests {
    use super::*;
    use crate::{
        mm::{
            folio::filemap_lock_folio_nowait,
            kunit,
            shmem::{shmem_file_setup, shmem_get_folio, SgpType},
        },
        page::PAGE_SIZE,
        sync::atomic::{Atomic, Relaxed},
    };

    /// A memory type that serves minor faults from shmem, counting the lookups.
    struct CountingShmem;

    static LOOKUPS: Atomic<usize> = Atomic::new(0);

    #[vtable]
    impl UffdOps for CountingShmem {
        // `VM_UFFD_RWP` is `VM_NONE` where the architecture has no RWP (loongarch, powerpc).
        #[allow(clippy::bad_bit_mask)]
        fn can_userfault(_vma: &VmaRef, vm_flags: vm_flags_t) -> bool {
            vm_flags & flags::UFFD_RWP == 0
        }

        fn get_folio_noalloc(inode: &Inode, pgoff: PgOff) -> Result<LockedFolio> {
            LOOKUPS.fetch_add(1, Relaxed);
            shmem_get_folio(inode, pgoff, 0, SgpType::NoAlloc)?.ok_or(ENOENT)
        }

        const GET_FOLIO_NOWAIT: Option<GetFolioNowaitOp> = Some(GetFolioNowaitOp::of::<Self>());
    }

    // SAFETY: An atomic increment and `filemap_lock_folio_nowait()` do not sleep.
    unsafe impl GetFolioNowait for CountingShmem {
        fn get_folio_nowait(inode: &Inode, pgoff: PgOff) -> Option<LockedFolio> {
            LOOKUPS.fetch_add(1, Relaxed);
            filemap_lock_folio_nowait(inode, pgoff)
        }
    }

    /// A memory type without minor-fault support.
    struct NoMinor;

    #[vtable]
    impl UffdOps for NoMinor {}

    static COUNTING: bindings::vm_uffd_ops = UffdOpsVtable::<CountingShmem>::VTABLE;
    static NO_MINOR: bindings::vm_uffd_ops = UffdOpsVtable::<NoMinor>::VTABLE;

    #[test]
    fn vtable_modes() -> Result {
        let file = shmem_file_setup(c"rust_mm_userfaultfd", PAGE_SIZE as i64)?;
        let addr = kunit::vm_mmap(
            Some(&file),
            PAGE_SIZE,
            kunit::prot::READ,
            kunit::prot::MAP_SHARED,
            0,
        )?;
        let mm = kunit::current_mm()?;
        let answers = {
            let mmap = mm.mmap_read_lock();
            let vma = mmap.vma_lookup(addr).ok_or(ENOENT)?.as_ptr();
            let can = |ops: &bindings::vm_uffd_ops, f: vm_flags_t| {
                // SAFETY: The VMA is valid and the mmap lock is held.
                ops.can_userfault.map(|cb| unsafe { cb(vma, f) })
            };
            [
                can(&COUNTING, flags::UFFD_MINOR),
                can(&COUNTING, flags::UFFD_MINOR | flags::UFFD_WP),
                can(&COUNTING, flags::UFFD_MISSING),
                can(&COUNTING, flags::UFFD_MISSING | flags::UFFD_MINOR),
                can(&COUNTING, flags::UFFD_RWP),
                can(&NO_MINOR, flags::UFFD_MINOR),
                can(&NO_MINOR, flags::UFFD_WP),
            ]
        };
        assert_eq!(
            answers,
            [
                Some(true),
                Some(true),
                Some(false),
                Some(false),
                Some(false),
                Some(false),
                Some(true)
            ]
        );
        assert!(COUNTING.get_folio_noalloc.is_some());
        assert!(COUNTING.alloc_folio.is_none() && COUNTING.filemap_add.is_none());
        assert!(NO_MINOR.get_folio_noalloc.is_none());
        Ok(())
    }

    /// A broken memory type: returns the folio of the next offset.
    struct OffByOne;

    #[vtable]
    impl UffdOps for OffByOne {
        fn get_folio_noalloc(inode: &Inode, pgoff: PgOff) -> Result<LockedFolio> {
            shmem_get_folio(inode, pgoff + 1, 0, SgpType::NoAlloc)?.ok_or(ENOENT)
        }

        const GET_FOLIO_NOWAIT: Option<GetFolioNowaitOp> = Some(GetFolioNowaitOp::of::<Self>());
    }

    // SAFETY: `filemap_lock_folio_nowait()` does not sleep.
    unsafe impl GetFolioNowait for OffByOne {
        fn get_folio_nowait(inode: &Inode, pgoff: PgOff) -> Option<LockedFolio> {
            filemap_lock_folio_nowait(inode, pgoff + 1)
        }
    }

    static OFF_BY_ONE: bindings::vm_uffd_ops = UffdOpsVtable::<OffByOne>::VTABLE;

    #[test]
    fn get_folio_noalloc_through_the_table() -> Result {
        let file = shmem_file_setup(c"rust_mm_userfaultfd", 2 * PAGE_SIZE as i64)?;
        kunit::file_write(&file, 0, b"served by rust")?;
        kunit::file_write(&file, PAGE_SIZE as i64, b"page one")?;
        // SAFETY: A static table lives forever.
        let ops = unsafe { VmUffdOps::from_raw(&COUNTING) };
        assert!(ops.has_get_folio_noalloc());
        let before = LOOKUPS.load(Relaxed);
        // SAFETY: The tables serve shmem files, and `file` is one.
        let lookup = |ops: &VmUffdOps, pgoff| unsafe { ops.get_folio_noalloc(file.inode(), pgoff) };
        // A hit comes back locked, through the C function pointer and back.
        let (locked, index) = {
            let folio = lookup(ops, 0)?;
            (folio.test_locked(), folio.index())
        };
        assert!(locked);
        assert_eq!(index, 0);
        // The error of the Rust implementation reaches the caller as an errno.
        kunit::file_fallocate(
            &file,
            (bindings::FALLOC_FL_PUNCH_HOLE | bindings::FALLOC_FL_KEEP_SIZE) as i32,
            PAGE_SIZE as i64,
            PAGE_SIZE as i64,
        )?;
        assert_eq!(lookup(ops, 1).err(), Some(ENOENT));
        assert_eq!(lookup(ops, 5).err(), Some(EINVAL));
        assert_eq!(LOOKUPS.load(Relaxed), before + 3);
        // SAFETY: A static table lives forever.
        let none = unsafe { VmUffdOps::from_raw(&NO_MINOR) };
        assert_eq!(lookup(none, 0).err(), Some(EOPNOTSUPP));
        // A folio that is not the page cache at the offset asked never reaches the C core: it is
        // dropped (unlocked and put) and the lookup fails.
        kunit::file_write(&file, PAGE_SIZE as i64, b"page one")?;
        // SAFETY: A static table lives forever.
        let broken = unsafe { VmUffdOps::from_raw(&OFF_BY_ONE) };
        assert_eq!(lookup(broken, 0).err(), Some(EFAULT));
        // Its lock was released: a lookup that does not wait for it gets it.
        assert!(filemap_lock_folio_nowait(file.inode(), 1).is_some());
        Ok(())
    }

    #[test]
    fn lock_folio_nowait() -> Result {
        let file = shmem_file_setup(c"rust_mm_userfaultfd", 4 * PAGE_SIZE as i64)?;
        kunit::file_write(&file, 0, b"zero")?;
        kunit::file_fallocate(&file, 0, 2 * PAGE_SIZE as i64, PAGE_SIZE as i64)?;
        let inode = file.inode();
        let (hit, index) = {
            let folio = filemap_lock_folio_nowait(inode, 0).ok_or(ENOENT)?;
            (folio.test_locked() && folio.test_uptodate(), folio.index())
        };
        assert!(hit);
        assert_eq!(index, 0);
        // A hole, and an offset beyond the end of the file: nothing.
        assert!(filemap_lock_folio_nowait(inode, 1).is_none());
        assert!(filemap_lock_folio_nowait(inode, 9).is_none());
        // A fallocated folio is in the page cache, but not uptodate: read nothing into it.
        let fallocated = filemap_lock_folio_nowait(inode, 2).ok_or(ENOENT)?;
        assert!(!fallocated.test_uptodate());
        drop(fallocated);
        // A folio locked by someone else is not waited for.
        let held = shmem_get_folio(inode, 0, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
        let contended = filemap_lock_folio_nowait(inode, 0).is_none();
        drop(held);
        assert!(contended);
        assert!(filemap_lock_folio_nowait(inode, 0).is_some());
        Ok(())
    }

    /// Only shmem inodes are looked up: a locked folio of another file system's page cache in
    /// the hands of safe code could be changed behind the file system's back. A hugetlbfs file
    /// with a folio at offset 0 gives nothing, and the folio is left alone.
    #[cfg(CONFIG_HUGETLBFS)]
    #[test]
    fn lock_folio_nowait_shmem_only() -> Result {
        use crate::{mm::folio::Folio, sync::aref::ARef};
        let size = crate::mm::pgtable::pmd_size();
        let Ok(file) = kunit::hugetlb_file(c"rust_mm_userfaultfd", size) else {
            crate::kunit::mark_skipped(c"no hugetlb file");
            return Ok(());
        };
        if kunit::file_fallocate(&file, 0, 0, size as i64).is_err() {
            crate::kunit::mark_skipped(c"no free huge page");
            return Ok(());
        }
        // SAFETY: The file is valid, and so is its mapping; without flags the lookup only takes
        // a reference.
        let folio = crate::error::from_err_ptr(unsafe {
            bindings::__filemap_get_folio((*file.inode().as_ptr()).i_mapping, 0, 0, 0)
        })?;
        // SAFETY: On success the lookup returned a folio with a reference, which we now own.
        let folio: ARef<Folio> = unsafe { ARef::from_raw(NonNull::new_unchecked(folio.cast())) };
        let refs = folio.ref_count();
        let refused = filemap_lock_folio_nowait(file.inode(), 0).is_none();
        assert!(refused);
        assert!(!folio.test_locked());
        assert_eq!(folio.ref_count(), refs);
        Ok(())
    }

    /// `get_folio_nowait()` through the table: what the implementation returns reaches the
    /// caller only if it is the uptodate page cache at the offset asked.
    #[test]
    fn get_folio_nowait_through_the_table() -> Result {
        let file = shmem_file_setup(c"rust_mm_userfaultfd", 4 * PAGE_SIZE as i64)?;
        kunit::file_write(&file, 0, b"zero")?;
        kunit::file_write(&file, PAGE_SIZE as i64, b"one")?;
        kunit::file_fallocate(&file, 0, 2 * PAGE_SIZE as i64, PAGE_SIZE as i64)?;
        let inode = file.inode();
        // SAFETY: Static tables live forever.
        let (ops, broken, none) = unsafe {
            (
                VmUffdOps::from_raw(&COUNTING),
                VmUffdOps::from_raw(&OFF_BY_ONE),
                VmUffdOps::from_raw(&NO_MINOR),
            )
        };
        // SAFETY: The tables serve shmem files, and `file` is one.
        let lookup = |ops: &VmUffdOps, pgoff| unsafe { ops.get_folio_nowait(inode, pgoff) };
        let before = LOOKUPS.load(Relaxed);
        let (locked, index) = {
            let folio = lookup(ops, 1).ok_or(ENOENT)?;
            (folio.test_locked(), folio.index())
        };
        assert!(locked);
        assert_eq!(index, 1);
        // A hole; a fallocated folio, which is not uptodate and is dropped by the table.
        assert!(lookup(ops, 3).is_none());
        assert!(lookup(ops, 2).is_none());
        assert_eq!(LOOKUPS.load(Relaxed), before + 3);
        assert!(filemap_lock_folio_nowait(inode, 2).is_some());
        // The folio of the next offset is dropped, unlocked.
        assert!(lookup(broken, 0).is_none());
        assert!(filemap_lock_folio_nowait(inode, 1).is_some());
        // No operation, no folio.
        assert!(NO_MINOR.get_folio_nowait.is_none() && COUNTING.get_folio_nowait.is_some());
        assert!(lookup(none, 0).is_none());
        Ok(())
    }
}
