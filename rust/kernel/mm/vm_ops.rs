// SPDX-License-Identifier: GPL-2.0

//! The operations of VMAs that memory types written in Rust create (`struct vm_operations_struct`).
//!
//! A driver gives the VMAs of its `mmap` hook a page-cache-backed memory type: it points the VMA
//! at the file whose page cache backs it ([`VmaNew::set_shmem_file`]) and at a table of
//! operations built from a [`VmOps`] implementation ([`VmaNew::set_vm_ops`]). The table's page
//! fault handler returns a locked page-cache folio as C fault handlers do (`VM_FAULT_LOCKED`
//! with `vmf->page` set), or hands the fault to userfaultfd; its `uffd_ops` are those of a
//! [`UffdOps`] implementation, through which userspace resolves minor faults with
//! `UFFDIO_CONTINUE`.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h)
//!
//! [`UffdOps`]: crate::mm::userfaultfd::UffdOps

use crate::{
    bindings,
    error::{code::*, Error, Result},
    fs::{
        file::flags::{O_ACCMODE, O_RDWR, O_WRONLY},
        File,
    },
    mm::{
        folio::{LockedFolio, PgOff},
        virt::{flags, VmaNew, VmaRef},
    },
};
use core::{marker::PhantomData, ptr::NonNull};
use macros::vtable;

#[cfg(CONFIG_USERFAULTFD)]
use crate::mm::userfaultfd::{UffdOps, UffdOpsVtable};

/// What a fault handler tells the fault path about the fault `'a` (`vm_fault_t`).
///
/// Neither `Clone` nor `Copy`, and tied to the fault it resolves: the outcome of one fault cannot
/// be returned for another (a `VM_FAULT_LOCKED` without a page, a `VM_FAULT_RETRY` with the lock
/// still held).
///
/// # Invariants
///
/// The value is `VM_FAULT_SIGBUS`, `VM_FAULT_OOM`, `VM_FAULT_LOCKED` for the fault `'a` whose
/// `vmf->page` was set to a locked page-cache page by [`VmFault::set_folio`], or what
/// `handle_userfault()` returned for the fault `'a`: values the fault path accepts from
/// `->fault()` in the state the handler leaves it.
#[must_use]
#[derive(PartialEq, Eq, Debug)]
pub struct VmFaultReason<'a>(bindings::vm_fault_t, PhantomData<VmFault<'a>>);

impl VmFaultReason<'_> {
    /// The access cannot be satisfied: the task gets `SIGBUS` (`VM_FAULT_SIGBUS`).
    pub const SIGBUS: Self = Self(bindings::vm_fault_reason_VM_FAULT_SIGBUS, PhantomData);

    /// Out of memory (`VM_FAULT_OOM`).
    pub const OOM: Self = Self(bindings::vm_fault_reason_VM_FAULT_OOM, PhantomData);

    /// Converts an error into a fault result (`vmf_error()`): `ENOMEM` is [`Self::OOM`], any
    /// other error [`Self::SIGBUS`].
    #[inline]
    pub fn from_error(err: Error) -> Self {
        if err == ENOMEM {
            Self::OOM
        } else {
            Self::SIGBUS
        }
    }

    /// Returns the raw `vm_fault_t`.
    #[inline]
    pub fn as_raw(self) -> bindings::vm_fault_t {
        self.0
    }
}

impl From<Error> for VmFaultReason<'_> {
    #[inline]
    fn from(err: Error) -> Self {
        Self::from_error(err)
    }
}

/// A page fault in a VMA whose operations are a [`VmOpsVtable`] (`struct vm_fault`).
///
/// A [`VmOps::fault`] handler gets one by value and gives it up to resolve the fault: with a
/// page-cache folio ([`set_folio`](Self::set_folio)) or by handing it to userfaultfd
/// ([`handle_userfault_minor`](Self::handle_userfault_minor)), which may drop the lock the fault
/// was taken under; nothing of the fault (its VMA among them) can be used after that.
///
/// # Invariants
///
/// For `'a`, `vmf` is the valid `struct vm_fault` that the fault path passed to `->fault()`; the
/// VMA `vmf->vma` is read-locked (mmap read lock or VMA read lock) and `vmf->page` is not set.
/// The value does not leave the thread that handles the fault.
pub struct VmFault<'a> {
    vmf: NonNull<bindings::vm_fault>,
    _p: PhantomData<&'a mut bindings::vm_fault>,
}

impl<'a> VmFault<'a> {
    /// Wraps the `struct vm_fault` of a `->fault()` call.
    ///
    /// # Safety
    ///
    /// `vmf` must be the `struct vm_fault` that the fault path passed to `->fault()`, and the
    /// returned value must be used only during that call (on that thread). `vmf->page` must not
    /// be set.
    #[inline]
    pub unsafe fn from_raw(vmf: *mut bindings::vm_fault) -> Self {
        // INVARIANT: The caller guarantees that this is a fault being handled by `->fault()`,
        // which the fault path calls with the VMA read-locked.
        Self {
            // SAFETY: The caller passes a valid, hence non-null, pointer.
            vmf: unsafe { NonNull::new_unchecked(vmf) },
            _p: PhantomData,
        }
    }

    /// Returns a raw pointer to the `struct vm_fault`.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::vm_fault {
        self.vmf.as_ptr()
    }

    /// Returns the VMA of the fault.
    #[inline]
    pub fn vma(&self) -> &VmaRef {
        // SAFETY: By the type invariants, `vmf` is valid and `vmf->vma` is read-locked for as
        // long as `self` is borrowed: the fault cannot be resolved, nor the lock dropped,
        // without giving up `self`.
        unsafe { VmaRef::from_raw((*self.as_ptr()).__bindgen_anon_1.vma) }
    }

    /// Returns the file offset of the faulting page, in pages (`vmf->pgoff`).
    #[inline]
    pub fn pgoff(&self) -> PgOff {
        // SAFETY: By the type invariants, `vmf` is valid; the field does not change.
        unsafe { (*self.as_ptr()).__bindgen_anon_1.pgoff }
    }

    /// Returns the faulting address, rounded down to the page (`vmf->address`).
    #[inline]
    pub fn address(&self) -> usize {
        // SAFETY: By the type invariants, `vmf` is valid; the field does not change.
        unsafe { (*self.as_ptr()).__bindgen_anon_1.address }
    }

    /// Returns whether the fault is a write access (`FAULT_FLAG_WRITE`).
    #[inline]
    pub fn is_write(&self) -> bool {
        // SAFETY: By the type invariants, `vmf` is valid; `->fault()` does not race with changes
        // of the flags.
        let flags = unsafe { (*self.as_ptr()).flags };
        flags & bindings::fault_flag_FAULT_FLAG_WRITE != 0
    }

    /// Returns whether `folio` is the uptodate page cache of the VMA's file at the faulting
    /// offset, inside the file.
    fn is_page_cache_here(&self, folio: &LockedFolio) -> bool {
        let Some(file) = self.vma().file() else {
            return false;
        };
        let pgoff = self.pgoff();
        // SAFETY: The VMA holds a reference on its file, whose `f_mapping` is stable.
        let mapping = unsafe { (*file.as_ptr()).f_mapping };
        let size = file.inode().i_size_read();
        let page_size = crate::page::PAGE_SIZE as i64;
        // The folio is locked: its mapping and index are stable, and truncation, which takes the
        // lock of every folio it removes, has not removed it.
        folio.in_mapping(mapping)
            && folio.test_uptodate()
            && pgoff
                .checked_sub(folio.index())
                .is_some_and(|n| n < folio.nr_pages())
            && i64::try_from(pgoff)
                .is_ok_and(|p| p < size.saturating_add(page_size - 1) / page_size)
    }

    /// Resolves the fault with a page of a locked page-cache folio (`vmf->page` and
    /// `VM_FAULT_LOCKED`).
    ///
    /// `folio` must be the uptodate page cache of the VMA's file that holds the faulting offset,
    /// within the file's size; the fault path then maps its page for that offset, with the
    /// protection of the VMA, and unlocks it. It takes over the lock and the reference. Any other
    /// folio is unlocked and dropped and the fault fails with [`VmFaultReason::SIGBUS`], so that
    /// only pages that truncation can find and unmap are ever mapped. A hardware-poisoned page is
    /// refused by the fault path (`VM_FAULT_HWPOISON`).
    #[inline]
    pub fn set_folio(self, folio: LockedFolio) -> VmFaultReason<'a> {
        if !self.is_page_cache_here(&folio) {
            return VmFaultReason::SIGBUS;
        }
        let page = folio.file_page(self.pgoff()).as_ptr();
        // SAFETY: By the type invariants, `vmf` is valid and `vmf->page` is not set yet; the page
        // belongs to the folio, locked and referenced, whose lock and reference go to the fault
        // path with `VM_FAULT_LOCKED`.
        unsafe { (*self.as_ptr()).page = page };
        let _ = folio.into_raw();
        // INVARIANT: `vmf->page` was set to a page of a locked page-cache folio.
        VmFaultReason(bindings::vm_fault_reason_VM_FAULT_LOCKED, PhantomData)
    }

    /// Hands the fault to userfaultfd as a minor fault (`handle_userfault(vmf, VM_UFFD_MINOR)`),
    /// if the VMA is registered for minor faults; gives the fault back otherwise.
    ///
    /// A memory type calls it when the faulting offset has a folio in the page cache, as shmem
    /// does. The handler of the userfaultfd then resolves the fault with `UFFDIO_CONTINUE` (or
    /// the task gets a signal); the lock the fault was taken under may be dropped
    /// (`VM_FAULT_RETRY`), which is why the fault is given up.
    #[cfg(CONFIG_USERFAULTFD)]
    #[inline]
    pub fn handle_userfault_minor(self) -> core::result::Result<VmFaultReason<'a>, Self> {
        if self.vma().flags() & flags::UFFD_MINOR == 0 {
            return Err(self);
        }
        // SAFETY: By the type invariants, this is a fault being handled by `->fault()` with the
        // VMA read-locked, in a VMA registered for minor faults: what `handle_userfault()` needs.
        // It may drop the lock; `self` is given up and nothing of the fault is used again.
        let ret = unsafe { bindings::handle_userfault(self.as_ptr(), flags::UFFD_MINOR) };
        // INVARIANT: What `handle_userfault()` returned for this fault.
        Ok(VmFaultReason(ret, PhantomData))
    }
}

/// The userfaultfd operations of a [`VmOps`] implementation: the `struct vm_uffd_ops` of a
/// [`UffdOps`] implementation.
///
/// Only [`UffdOpsTable::of`] makes one, so the C core never calls operations that safe code
/// wrote.
#[cfg(CONFIG_USERFAULTFD)]
#[repr(transparent)]
pub struct UffdOpsTable(bindings::vm_uffd_ops);

#[cfg(CONFIG_USERFAULTFD)]
struct UffdOpsTableOf<T: UffdOps>(PhantomData<T>);

#[cfg(CONFIG_USERFAULTFD)]
impl<T: UffdOps> UffdOpsTableOf<T> {
    const TABLE: UffdOpsTable = UffdOpsTable(UffdOpsVtable::<T>::VTABLE);
}

#[cfg(CONFIG_USERFAULTFD)]
impl UffdOpsTable {
    /// Returns the table of `T`.
    pub const fn of<T: UffdOps>() -> &'static Self {
        &UffdOpsTableOf::<T>::TABLE
    }

    /// Returns a raw pointer to the `struct vm_uffd_ops`.
    pub const fn as_ptr(&'static self) -> *const bindings::vm_uffd_ops {
        &self.0
    }
}

// SAFETY: The table is immutable, and its operations may be called from any thread.
#[cfg(CONFIG_USERFAULTFD)]
unsafe impl Sync for UffdOpsTable {}

/// The operations of the VMAs of a memory type written in Rust.
///
/// [`VmaNew::set_vm_ops`] gives a VMA the table of an implementation, [`VmOpsVtable`]. The fault
/// handler is called by the fault path with the VMA read-locked (mmap read lock or VMA lock),
/// for a page whose page table entry is empty (or a userfaultfd marker); it may sleep.
#[vtable]
pub trait VmOps: Sized + 'static {
    /// The userfaultfd operations of the memory type (`uffd_ops`), `None` (the default) if it
    /// does not support userfaultfd. Use [`UffdOpsTable::of`].
    #[cfg(CONFIG_USERFAULTFD)]
    const UFFD_OPS: Option<&'static UffdOpsTable> = None;

    /// Resolves a page fault (`->fault()`).
    ///
    /// Returns what [`VmFault::set_folio`] or [`VmFault::handle_userfault_minor`] returned, or a
    /// failure ([`VmFaultReason::SIGBUS`], [`VmFaultReason::OOM`], [`VmFaultReason::from_error`]).
    fn fault<'a>(vmf: VmFault<'a>) -> VmFaultReason<'a>;
}

/// The `struct vm_operations_struct` of a [`VmOps`] implementation.
pub struct VmOpsVtable<T: VmOps>(PhantomData<T>);

impl<T: VmOps> VmOpsVtable<T> {
    /// # Safety
    ///
    /// Only called by the fault path, as `->fault()` of a VMA whose operations are this table.
    unsafe extern "C" fn fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
        // SAFETY: The fault path calls `->fault()` with a valid `vm_fault` whose `page` is not
        // set yet, with the VMA read-locked; the value lives for this call only.
        let vmf = unsafe { VmFault::from_raw(vmf) };
        T::fault(vmf).as_raw()
    }

    const VTABLE: bindings::vm_operations_struct = bindings::vm_operations_struct {
        fault: Some(Self::fault),
        #[cfg(CONFIG_USERFAULTFD)]
        uffd_ops: match T::UFFD_OPS {
            Some(ops) => ops.as_ptr(),
            None => core::ptr::null(),
        },
        ..pin_init::zeroed()
    };

    /// Returns the operations table.
    pub const fn build() -> &'static bindings::vm_operations_struct {
        &Self::VTABLE
    }
}

impl VmaNew {
    /// Gives the VMA the operations of `T` (`vma->vm_ops`).
    ///
    /// The fault handler of `T` maps only what [`VmFault::set_folio`] accepts, the page cache
    /// of the VMA's file, and userfaultfd asks `T`'s [`UffdOps`] only for that page cache too:
    /// see [`set_shmem_file`](Self::set_shmem_file) for giving the VMA the file that holds it.
    ///
    /// [`UffdOps`]: crate::mm::userfaultfd::UffdOps
    #[inline]
    pub fn set_vm_ops<T: VmOps>(&self) {
        // SAFETY: By the type invariants of `VmaNew`, the VMA is being set up in `->mmap()`, so
        // it is not shared yet and `vm_ops` may be set; the table is static. The VMA has a file
        // (it is being mapped from one), so it does not become anonymous or stop being so.
        unsafe { (*self.as_ptr()).vm_ops = VmOpsVtable::<T>::build() };
    }

    /// Makes `file`, a shmem file, the file the VMA maps (`vma_set_file()`): its page cache
    /// backs the VMA from now on, is what its fault handler and `UFFDIO_CONTINUE` may map, and
    /// truncation and hole punching of `file` unmap the VMA's pages.
    ///
    /// The VMA keeps a reference on `file`. Fails with `EINVAL` if `file` is not a shmem file,
    /// and for a shared mapping that may be made writable (`VM_SHARED` and `VM_MAYWRITE`), with
    /// `EACCES` if `file` is not open for writing and `EPERM` if it is a memfd that is or may still
    /// be sealed against writing, whose seals a writable mapping would break.
    pub fn set_shmem_file(&self, file: &File) -> Result {
        // SAFETY: `file` is valid, and so is its `f_mapping`; `shmem_mapping()` only compares it.
        if !unsafe { bindings::shmem_mapping((*file.as_ptr()).f_mapping) } {
            return Err(EINVAL);
        }
        let shared_maywrite = flags::SHARED | flags::MAYWRITE;
        if self.flags() & shared_maywrite == shared_maywrite {
            let mode = file.flags() & O_ACCMODE;
            if mode != O_RDWR && mode != O_WRONLY {
                return Err(EACCES);
            }
            // SAFETY: `file` is a valid shmem file.
            let seals = unsafe { bindings::memfd_get_seals(file.as_ptr()) };
            let write_seals = bindings::F_SEAL_WRITE | bindings::F_SEAL_FUTURE_WRITE;
            // A negative value: a kernel without memfd seals, where nothing denies writable
            // mappings.
            if let Ok(seals) = u32::try_from(seals) {
                if seals & bindings::F_SEAL_SEAL == 0 || seals & write_seals != 0 {
                    return Err(EPERM);
                }
            }
        }
        // SAFETY: By the type invariants of `VmaNew`, the VMA is being set up in `->mmap()`: it
        // is not linked into any file's rmap yet, and `__mmap_new_file_vma()` takes the file it
        // ends up with (as for `shmem_zero_setup()`), linking the VMA to that file's mapping.
        // `file` is a shmem file, which can back any VMA: not hugetlbfs (whose VMAs must be
        // `VM_HUGETLB`), not secretmem. A shared writable VMA is only given a file open for
        // writing whose writable mappings cannot be denied (sealing is closed and no write
        // seal is set), so linking the VMA as a writable mapping keeps the seals.
        unsafe { bindings::vma_set_file(self.as_ptr(), file.as_ptr()) };
        Ok(())
    }
}

#[cfg(all(CONFIG_RUST_MM_KUNIT_TEST, CONFIG_SHMEM, CONFIG_USERFAULTFD))]
#[macros::kunit_tests(rust_mm_vm_ops)]
mod tests {
    use super::*;
    use crate::{
        fs::{file::flags::O_RDONLY, inode::Inode},
        mm::{
            folio::filemap_lock_folio_nowait,
            kunit,
            shmem::{shmem_file_setup, shmem_get_folio, SgpType},
            userfaultfd::VmUffdOps,
            virt::vm_flags_t,
        },
        page::PAGE_SIZE,
        sync::aref::ARef,
    };

    fn vma_inode(vma: &VmaRef) -> Result<&Inode> {
        Ok(vma.file().ok_or(EINVAL)?.inode())
    }

    /// A memory type backed by shmem, with minor faults.
    struct Shmem;

    #[vtable]
    impl UffdOps for Shmem {
        fn get_folio_noalloc(inode: &Inode, pgoff: PgOff) -> Result<LockedFolio> {
            shmem_get_folio(inode, pgoff, 0, SgpType::NoAlloc)?.ok_or(ENOENT)
        }
    }

    #[vtable]
    impl VmOps for Shmem {
        const UFFD_OPS: Option<&'static UffdOpsTable> = Some(UffdOpsTable::of::<Shmem>());

        fn fault(vmf: VmFault<'_>) -> VmFaultReason<'_> {
            let vmf = match vmf.handle_userfault_minor() {
                Ok(ret) => return ret,
                Err(vmf) => vmf,
            };
            let folio = match vma_inode(vmf.vma())
                .and_then(|inode| shmem_get_folio(inode, vmf.pgoff(), 0, SgpType::Cache))
            {
                Ok(Some(folio)) => folio,
                Ok(None) => return VmFaultReason::SIGBUS,
                Err(e) => return e.into(),
            };
            vmf.set_folio(folio)
        }
    }

    /// A broken memory type: returns the folio of the next offset.
    struct OffByOne;

    #[vtable]
    impl VmOps for OffByOne {
        fn fault(vmf: VmFault<'_>) -> VmFaultReason<'_> {
            let inode = match vma_inode(vmf.vma()) {
                Ok(inode) => inode,
                Err(e) => return e.into(),
            };
            match shmem_get_folio(inode, vmf.pgoff() + 1, 0, SgpType::Cache) {
                Ok(Some(folio)) => vmf.set_folio(folio),
                _ => VmFaultReason::SIGBUS,
            }
        }
    }

    /// A memory type that returns a folio of another file.
    struct OtherFile;

    #[vtable]
    impl VmOps for OtherFile {
        fn fault(vmf: VmFault<'_>) -> VmFaultReason<'_> {
            let other = match shmem_file_setup(c"rust_mm_vm_ops_other", PAGE_SIZE as i64) {
                Ok(file) => file,
                Err(e) => return e.into(),
            };
            match shmem_get_folio(other.inode(), 0, 0, SgpType::Cache) {
                Ok(Some(folio)) => vmf.set_folio(folio),
                _ => VmFaultReason::SIGBUS,
            }
        }
    }

    /// A memory type whose allocations fail.
    struct NoMemory;

    #[vtable]
    impl VmOps for NoMemory {
        fn fault(_vmf: VmFault<'_>) -> VmFaultReason<'_> {
            ENOMEM.into()
        }
    }

    /// Calls the `->fault()` of `ops` for page `n` of the VMA at `addr`, as the fault path does,
    /// with the mmap read lock held. Returns the result and the page set, unlocking and putting
    /// it.
    fn fault_in(
        ops: &'static bindings::vm_operations_struct,
        addr: usize,
        n: usize,
    ) -> Result<(bindings::vm_fault_t, Option<(PgOff, bool)>)> {
        let mm = kunit::current_mm()?;
        let mmap = mm.mmap_read_lock();
        let vma = mmap.vma_lookup(addr).ok_or(ENOENT)?;
        let address = addr + n * PAGE_SIZE;
        // SAFETY: All zeroes is a valid `vm_fault`.
        let mut vmf: bindings::vm_fault = unsafe { core::mem::zeroed() };
        vmf.__bindgen_anon_1.vma = vma.as_ptr();
        vmf.__bindgen_anon_1.address = address;
        vmf.__bindgen_anon_1.real_address = address;
        vmf.__bindgen_anon_1.pgoff = vma.linear_page_index(address);
        let fault = ops.fault.ok_or(EINVAL)?;
        // SAFETY: The VMA is valid and read-locked, `vmf` describes a fault in it, without a
        // page.
        let ret = unsafe { fault(&mut vmf) };
        if vmf.page.is_null() {
            return Ok((ret, None));
        }
        // SAFETY: The handler set a page of a locked, referenced folio, which we now own.
        let folio = unsafe {
            let folio = crate::mm::folio::page_folio(vmf.page);
            LockedFolio::from_raw(NonNull::new_unchecked(folio.as_ptr()))
        };
        let nr = (vmf.page as usize - folio.page(0).ok_or(EINVAL)?.as_ptr() as usize)
            / core::mem::size_of::<bindings::page>();
        Ok((ret, Some((folio.index() + nr, folio.test_locked()))))
    }

    const LOCKED: bindings::vm_fault_t = bindings::vm_fault_reason_VM_FAULT_LOCKED;
    const SIGBUS: bindings::vm_fault_t = bindings::vm_fault_reason_VM_FAULT_SIGBUS;
    const OOM: bindings::vm_fault_t = bindings::vm_fault_reason_VM_FAULT_OOM;

    #[test]
    fn fault_maps_page_cache() -> Result {
        let (file, addr) = kunit::shmem_mapped(
            c"rust_mm_vm_ops",
            4,
            [1],
            4,
            kunit::prot::READ | kunit::prot::WRITE,
            kunit::prot::MAP_SHARED,
        )?;
        let ops = VmOpsVtable::<Shmem>::build();
        // A page that was written: the page of its folio, locked, handed over.
        assert_eq!(fault_in(ops, addr, 1)?, (LOCKED, Some((1, true))));
        // A hole: a zeroed page allocated by the memory type.
        assert_eq!(fault_in(ops, addr, 2)?, (LOCKED, Some((2, true))));
        assert!(filemap_lock_folio_nowait(file.inode(), 2).is_some());
        // Beyond the end of the file: SIGBUS, nothing allocated.
        kunit::file_truncate(&file, 3 * PAGE_SIZE as i64)?;
        assert_eq!(fault_in(ops, addr, 3)?, (SIGBUS, None));
        assert!(filemap_lock_folio_nowait(file.inode(), 3).is_none());
        Ok(())
    }

    #[test]
    fn fault_refuses_other_pages() -> Result {
        let (file, addr) = kunit::shmem_mapped(
            c"rust_mm_vm_ops",
            4,
            [0, 1, 2],
            4,
            kunit::prot::READ,
            kunit::prot::MAP_SHARED,
        )?;
        // The folio of another offset is dropped, unlocked: SIGBUS, no page.
        assert_eq!(
            fault_in(VmOpsVtable::<OffByOne>::build(), addr, 0)?,
            (SIGBUS, None)
        );
        assert!(filemap_lock_folio_nowait(file.inode(), 1).is_some());
        // So is a folio of another file.
        assert_eq!(
            fault_in(VmOpsVtable::<OtherFile>::build(), addr, 0)?,
            (SIGBUS, None)
        );
        // Errors: ENOMEM is OOM.
        assert_eq!(
            fault_in(VmOpsVtable::<NoMemory>::build(), addr, 0)?,
            (OOM, None)
        );
        assert_eq!(VmFaultReason::from_error(EIO).as_raw(), SIGBUS);
        Ok(())
    }

    /// Gives `f` a VMA under construction, as `->mmap()` has it: allocated, not linked anywhere,
    /// with `vm_flags` and a reference on `file`. Returns what `f` returned and the VMA's file
    /// afterwards, then frees the VMA.
    fn with_new_vma(
        file: &File,
        vm_flags: vm_flags_t,
        f: impl FnOnce(&VmaNew) -> Result,
    ) -> Result<(Result, *mut bindings::file)> {
        let mm = kunit::current_mm()?;
        // SAFETY: `mm` is a valid mm with users.
        let vma = unsafe { bindings::vm_area_alloc(mm.as_raw()) };
        if vma.is_null() {
            return Err(ENOMEM);
        }
        let file: ARef<File> = file.into();
        // SAFETY: The VMA is new and ours alone; set its flags and file (with a reference) as
        // `__mmap_new_file_vma()` does.
        unsafe {
            (*vma).__bindgen_anon_2.vm_flags = vm_flags;
            (*vma).vm_file = ARef::into_raw(file).as_ptr().cast();
        }
        // SAFETY: The VMA is being set up and not linked anywhere; it is freed only after `f`.
        let ret = f(unsafe { VmaNew::from_raw(vma) });
        // SAFETY: The VMA is still ours; it holds one reference on its file.
        let vm_file = unsafe { (*vma).vm_file };
        // SAFETY: Drop the VMA's reference on its file and free the unused VMA.
        unsafe {
            bindings::fput(vm_file);
            bindings::vm_area_free(vma);
        }
        Ok((ret, vm_file))
    }

    #[test]
    fn set_shmem_file() -> Result {
        let dev = shmem_file_setup(c"rust_mm_vm_ops_dev", 0)?;
        let mem = shmem_file_setup(c"rust_mm_vm_ops", PAGE_SIZE as i64)?;
        // Attaches an mm to the test thread, for the VMAs.
        kunit::vm_mmap(
            Some(&mem),
            PAGE_SIZE,
            kunit::prot::READ,
            kunit::prot::MAP_SHARED,
            0,
        )?;
        let shared_write = flags::SHARED | flags::MAYSHARE | flags::MAYWRITE | flags::WRITE;
        // A shmem file open for writing, in a shared writable mapping: taken.
        let (ret, file) = with_new_vma(&dev, shared_write, |vma| vma.set_shmem_file(&mem))?;
        assert_eq!(ret, Ok(()));
        assert_eq!(file, mem.as_ptr());
        // The same file, open read-only: not for a shared mapping that may become writable.
        // SAFETY: `mem` is a valid file; its path and credentials are valid for the call.
        let ro = unsafe {
            bindings::dentry_open(
                &(*mem.as_ptr()).__bindgen_anon_1.f_path,
                O_RDONLY as i32,
                (*mem.as_ptr()).f_cred,
            )
        };
        let ro = crate::error::from_err_ptr(ro)?;
        // SAFETY: `dentry_open()` returned a new file with one reference, which we own.
        let ro: ARef<File> = unsafe { ARef::from_raw(NonNull::new_unchecked(ro.cast())) };
        let (ret, file) = with_new_vma(&dev, shared_write, |vma| vma.set_shmem_file(&ro))?;
        assert_eq!(ret, Err(EACCES));
        assert_eq!(file, dev.as_ptr());
        let shared_ro = flags::SHARED | flags::MAYSHARE | flags::READ;
        let (ret, file) = with_new_vma(&dev, shared_ro, |vma| vma.set_shmem_file(&ro))?;
        assert_eq!(ret, Ok(()));
        assert_eq!(file, ro.as_ptr());
        // Not a shmem file: refused, the VMA keeps its file.
        #[cfg(CONFIG_HUGETLBFS)]
        {
            let huge = kunit::hugetlb_file(c"rust_mm_vm_ops_huge", 0)?;
            let (ret, file) = with_new_vma(&dev, shared_write, |vma| vma.set_shmem_file(&huge))?;
            assert_eq!(ret, Err(EINVAL));
            assert_eq!(file, dev.as_ptr());
        }
        Ok(())
    }

    #[test]
    fn table() -> Result {
        let ops = VmOpsVtable::<Shmem>::build();
        assert!(ops.fault.is_some());
        assert!(ops.map_pages.is_none() && ops.page_mkwrite.is_none() && ops.open.is_none());
        assert!(!ops.uffd_ops.is_null());
        // SAFETY: The table is static.
        let uffd = unsafe { VmUffdOps::from_raw(ops.uffd_ops) };
        assert!(uffd.has_get_folio_noalloc());
        // SAFETY: The table is static.
        let raw = unsafe { &*ops.uffd_ops };
        assert!(raw.alloc_folio.is_none() && raw.can_userfault.is_some());
        // Without userfaultfd operations: none in the table.
        assert!(VmOpsVtable::<NoMemory>::build().uffd_ops.is_null());
        Ok(())
    }
}
