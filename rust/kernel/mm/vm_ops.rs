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
    error::{code::*, to_result, Error, Result},
    fs::File,
    mm::{
        folio::{LockedFolio, PgOff},
        virt::{flags, VmaNew, VmaRef},
    },
    sync::aref::ARef,
};
use core::{marker::PhantomData, ptr::NonNull};
use macros::vtable;

#[cfg(CONFIG_USERFAULTFD)]
use crate::mm::userfaultfd::{UffdOps, UffdOpsVtable};

/// What a fault handler tells the fault path about the fault `'a` (`vm_fault_t`).
///
/// Only the [`VmFault`] of the fault `'a`, given up by value, makes one: a handler returns the
/// outcome of what it did with its fault and no other (not a failure after the page was set or
/// the lock dropped, not the outcome of another fault). It is neither `Clone` nor `Copy`, and
/// `'a` is invariant.
///
/// # Invariants
///
/// The value is `VM_FAULT_SIGBUS`, `VM_FAULT_OOM` or `VM_FAULT_HWPOISON` for the fault `'a`, left
/// as `->fault()` got it; `VM_FAULT_LOCKED` for the fault `'a` whose `vmf->page` was set to a
/// locked page-cache page by [`VmFault::set_folio`]; or what `handle_userfault()` returned for
/// the fault `'a`: values the fault path accepts from `->fault()` in the state the handler
/// leaves it.
#[must_use]
#[derive(PartialEq, Eq, Debug)]
pub struct VmFaultReason<'a>(bindings::vm_fault_t, PhantomData<VmFault<'a>>);

impl VmFaultReason<'_> {
    /// The result of a failure (`vmf_error()`): `ENOMEM` is `VM_FAULT_OOM`, `EHWPOISON`
    /// `VM_FAULT_HWPOISON`, any other error `VM_FAULT_SIGBUS`.
    fn from_error(err: Error) -> Self {
        let reason = if err == ENOMEM {
            bindings::vm_fault_reason_VM_FAULT_OOM
        } else if err == EHWPOISON {
            bindings::vm_fault_reason_VM_FAULT_HWPOISON
        } else {
            bindings::vm_fault_reason_VM_FAULT_SIGBUS
        };
        Self(reason, PhantomData)
    }

    /// Returns the raw `vm_fault_t`.
    #[inline]
    pub fn as_raw(self) -> bindings::vm_fault_t {
        self.0
    }
}

/// A page fault in a VMA whose operations are a [`VmOpsVtable`] (`struct vm_fault`).
///
/// A [`VmOps::fault`] handler gets one by value and gives it up to resolve the fault: with a
/// page-cache folio ([`set_folio`](Self::set_folio)) or by handing it to userfaultfd
/// ([`handle_userfault_minor`](Self::handle_userfault_minor)), which may drop the lock the fault
/// was taken under; nothing of the fault (its VMA among them) can be used after that.
///
/// The handler runs with the VMA read-locked: it must not take the mmap lock of the VMA's mm (a
/// writer waiting for it would deadlock with the fault), and must not hold a folio lock across
/// [`handle_userfault_minor`](Self::handle_userfault_minor) (the userfaultfd's handler would
/// wait for it in `UFFDIO_CONTINUE` while the fault waits for the handler). The fault may be in
/// the mm of another task (`get_user_pages()` of a remote mm): the handler must not assume
/// `current`'s mm.
///
/// # Invariants
///
/// For `'a`, `vmf` is the valid `struct vm_fault` that the fault path passed to `->fault()`; the
/// VMA `vmf->vma` is read-locked (mmap read lock or VMA read lock) and `vmf->page` is not set.
/// The value does not leave the thread that handles the fault (`NonNull` is neither `Send` nor
/// `Sync`), and `'a` is invariant, so that a [`VmFaultReason`] of one fault is not one of another.
pub struct VmFault<'a> {
    vmf: NonNull<bindings::vm_fault>,
    _p: PhantomData<fn(&'a ()) -> &'a ()>,
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

    /// Fails the fault: the task gets `SIGBUS` (`VM_FAULT_SIGBUS`).
    #[inline]
    pub fn sigbus(self) -> VmFaultReason<'a> {
        // INVARIANT: The fault is given up as `->fault()` got it.
        VmFaultReason(bindings::vm_fault_reason_VM_FAULT_SIGBUS, PhantomData)
    }

    /// Fails the fault for lack of memory (`VM_FAULT_OOM`).
    #[inline]
    pub fn oom(self) -> VmFaultReason<'a> {
        // INVARIANT: The fault is given up as `->fault()` got it.
        VmFaultReason(bindings::vm_fault_reason_VM_FAULT_OOM, PhantomData)
    }

    /// Fails the fault with the result of `err` (`vmf_error()`): `ENOMEM` is `VM_FAULT_OOM`,
    /// `EHWPOISON` `VM_FAULT_HWPOISON` (`SIGBUS` for a hardware memory error), any other error
    /// `VM_FAULT_SIGBUS`.
    #[inline]
    pub fn error(self, err: Error) -> VmFaultReason<'a> {
        // INVARIANT: The fault is given up as `->fault()` got it, with one of the three values.
        VmFaultReason::from_error(err)
    }

    /// Resolves the fault with a page of a locked page-cache folio (`vmf->page` and
    /// `VM_FAULT_LOCKED`).
    ///
    /// `folio` must be the uptodate page cache of the VMA's file that holds the faulting offset,
    /// within the file's size; the fault path then maps its page for that offset, with the
    /// protection of the VMA, and unlocks it. It takes over the lock and the reference. Any other
    /// folio is unlocked and dropped and the fault fails with `VM_FAULT_SIGBUS`, so that only
    /// pages that truncation can find and unmap are ever mapped. A hardware-poisoned page is
    /// refused by the fault path (`VM_FAULT_HWPOISON`).
    #[inline]
    pub fn set_folio(self, folio: LockedFolio) -> VmFaultReason<'a> {
        if !self.is_page_cache_here(&folio) {
            return self.sigbus();
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
    /// Returns what the fault's [`VmFault`] returned when given up: [`VmFault::set_folio`],
    /// [`VmFault::handle_userfault_minor`], or a failure ([`VmFault::sigbus`], [`VmFault::oom`],
    /// [`VmFault::error`]).
    fn fault<'a>(vmf: VmFault<'a>) -> VmFaultReason<'a>;
}

/// The `struct vm_operations_struct` of a [`VmOps`] implementation.
pub struct VmOpsVtable<T: VmOps>(PhantomData<T>);

/// Keeps the file a VMA was mapped from, which [`VmaNew::set_shmem_file`] replaced, in
/// `vm_private_data`: the VMA holds a reference on it, and so on the module that implements it
/// (its `f_op->owner`), whose code the VMA's operations are, for as long as the VMA exists.
/// `vm_private_data` is not used otherwise in the VMAs of a [`VmOpsVtable`].
///
/// # Safety
///
/// `vma` is a valid VMA whose operations are a [`VmOpsVtable`], called as `->open()` (it is a
/// copy of such a VMA, holding its `vm_private_data`).
unsafe extern "C" fn vm_ops_open(vma: *mut bindings::vm_area_struct) {
    // SAFETY: `vma` is valid; its `vm_private_data` is null or a file the VMA it was copied from
    // holds a reference on, which stays valid during this call.
    unsafe {
        let file = (*vma).vm_private_data.cast::<bindings::file>();
        if !file.is_null() {
            bindings::get_file(file);
        }
    }
}

/// Drops the reference of a VMA on the file [`VmaNew::set_shmem_file`] replaced, if any.
///
/// The module of that file's operations is released by `fput()` later, after the file is
/// released (from a task work or a workqueue, never during this call).
///
/// # Safety
///
/// `vma` is a valid VMA whose operations are a [`VmOpsVtable`], called as `->close()`.
unsafe extern "C" fn vm_ops_close(vma: *mut bindings::vm_area_struct) {
    // SAFETY: `vma` is valid; its `vm_private_data` is null or a file it holds a reference on,
    // which it gives up.
    unsafe {
        let file = (*vma).vm_private_data.cast::<bindings::file>();
        if !file.is_null() {
            (*vma).vm_private_data = core::ptr::null_mut();
            bindings::fput(file);
        }
    }
}

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
        open: Some(vm_ops_open),
        close: Some(vm_ops_close),
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
    /// Gives the VMA the operations of `T` (`vma->vm_ops`), for a VMA that maps the page cache
    /// of the file it is mapped from.
    ///
    /// The fault handler of `T` maps only what [`VmFault::set_folio`] accepts, the page cache
    /// of the VMA's file, and userfaultfd asks `T`'s [`UffdOps`] only for that page cache too:
    /// see [`set_shmem_file`](Self::set_shmem_file) for a VMA whose memory is the page cache of
    /// a shmem file.
    ///
    /// [`UffdOps`]: crate::mm::userfaultfd::UffdOps
    #[inline]
    pub fn set_vm_ops<T: VmOps>(&self) {
        // SAFETY: By the type invariants of `VmaNew`, the VMA is being set up in `->mmap()`, so
        // it is not shared yet and `vm_ops` may be set. The table is valid for as long as the
        // VMA: its code is built-in or in the module of the file the VMA maps, on which the VMA
        // holds a reference (`vm_file`, or `vm_private_data` once `set_shmem_file()` replaced
        // it). The VMA has a file (it is being mapped from one), so it does not become anonymous
        // or stop being so.
        unsafe { (*self.as_ptr()).vm_ops = VmOpsVtable::<T>::build() };
    }

    /// Makes `file`, a shmem file, the file the VMA maps, with the operations of `T`
    /// (`vma_set_file()`, [`set_vm_ops`](Self::set_vm_ops)): its page cache backs the VMA from
    /// now on, is what the fault handler of `T` and `UFFDIO_CONTINUE` may map, and truncation
    /// and hole punching of `file` unmap the VMA's pages. The VMA's offset (`vm_pgoff`) is an
    /// offset into `file`.
    ///
    /// The VMA keeps a reference on `file`, and one on the file it was mapped from (the
    /// driver's), so that the driver's module stays loaded while the VMA exists. It is the last
    /// thing a driver's `mmap` should do: if `mmap` fails after it, that reference is leaked.
    ///
    /// `mmap()` checked the driver's file; `file` gets the same checks, so that no driver hands
    /// out more than `mmap()` of `file` itself would:
    /// - `EINVAL` if `file` is not a shmem file;
    /// - `EACCES` if `file` is not open for reading, and for a shared mapping that may be made
    ///   writable (`VM_SHARED` and `VM_MAYWRITE`) if `file` is not open for writing or is
    ///   append-only;
    /// - `EPERM` for such a mapping if `file` is a memfd that is or may still be sealed against
    ///   writing, whose seals a writable mapping would break; and if `file` is on a `noexec`
    ///   mount and the mapping is executable (else `VM_MAYEXEC` is cleared);
    /// - `EOVERFLOW` if the VMA's offset and length do not fit in a file;
    /// - the error of the security modules (`security_mmap_file()`).
    #[cfg(CONFIG_SHMEM)]
    pub fn set_shmem_file<T: VmOps>(&self, file: &File) -> Result {
        let raw = file.as_ptr();
        // SAFETY: `file` is valid, and so is its `f_mapping`; `shmem_mapping()` only compares it.
        if !unsafe { bindings::shmem_mapping((*raw).f_mapping) } {
            return Err(EINVAL);
        }
        // SAFETY: `file` is valid; `f_mode` does not change once the file is open.
        let mode = unsafe { (*raw).f_mode };
        if mode & bindings::FMODE_READ == 0 {
            return Err(EACCES);
        }
        let vm_flags = self.flags();
        let shared_maywrite = flags::SHARED | flags::MAYWRITE;
        if vm_flags & shared_maywrite == shared_maywrite {
            // SAFETY: The inode of an open file is valid; `S_APPEND` is read without a lock, as
            // `IS_APPEND()` does in `do_mmap()`.
            let i_flags = unsafe { (*file.inode().as_ptr()).i_flags };
            if mode & bindings::FMODE_WRITE == 0 || i_flags & bindings::S_APPEND != 0 {
                return Err(EACCES);
            }
            // SAFETY: `file` is a valid shmem file.
            let seals = unsafe { bindings::memfd_get_seals(raw) };
            let write_seals = bindings::F_SEAL_WRITE | bindings::F_SEAL_FUTURE_WRITE;
            // A negative value: a kernel without memfd seals, where nothing denies writable
            // mappings.
            if let Ok(seals) = u32::try_from(seals) {
                if seals & bindings::F_SEAL_SEAL == 0 || seals & write_seals != 0 {
                    return Err(EPERM);
                }
            }
        }
        // SAFETY: `file` is valid, and so is its `f_path`.
        let noexec = unsafe { bindings::path_noexec(&(*raw).__bindgen_anon_1.f_path) };
        if noexec && vm_flags & flags::EXEC != 0 {
            return Err(EPERM);
        }
        // `file_mmap_ok()` for a regular file.
        let len = (self.end() - self.start()) as u64;
        let max = bindings::MAX_LFS_FILESIZE as u64;
        if len > max || self.pgoff() as u64 > (max - len) >> crate::page::PAGE_SHIFT {
            return Err(EOVERFLOW);
        }
        let mut prot = 0;
        for (vm, p) in [
            (flags::READ, bindings::PROT_READ),
            (flags::WRITE, bindings::PROT_WRITE),
            (flags::EXEC, bindings::PROT_EXEC),
        ] {
            if vm_flags & vm != 0 {
                prot |= p;
            }
        }
        let map = if vm_flags & flags::SHARED != 0 {
            bindings::MAP_SHARED
        } else {
            bindings::MAP_PRIVATE
        };
        // SAFETY: `file` is valid.
        to_result(unsafe { bindings::security_mmap_file(raw, prot as usize, map as usize) })?;
        if noexec {
            self.try_clear_mayexec()?;
        }
        let vma = self.as_ptr();
        let new: ARef<File> = file.into();
        // SAFETY: By the type invariants of `VmaNew`, the VMA is being set up in `->mmap()`: it
        // is not linked into any file's rmap yet, and `__mmap_new_file_vma()` takes the file it
        // ends up with (as for `shmem_zero_setup()`), linking the VMA to that file's mapping.
        // `file` is a shmem file, which can back any VMA: not hugetlbfs (whose VMAs must be
        // `VM_HUGETLB`), not secretmem. A shared writable VMA is only given a file open for
        // writing whose writable mappings cannot be denied (sealing is closed and no write
        // seal is set), so linking the VMA as a writable mapping keeps the seals. The reference
        // of the VMA on its previous file moves to `vm_private_data` the first time (the file
        // `mmap()` was called for); a file an earlier call set is put. The operations set below
        // put what `vm_private_data` holds when the VMA goes.
        unsafe {
            let old = (*vma).vm_file;
            (*vma).vm_file = ARef::into_raw(new).as_ptr().cast();
            if (*vma).vm_private_data.is_null() {
                (*vma).vm_private_data = old.cast();
            } else {
                bindings::fput(old);
            }
        }
        self.set_vm_ops::<T>();
        Ok(())
    }
}

#[cfg(all(CONFIG_RUST_MM_KUNIT_TEST, CONFIG_SHMEM, CONFIG_USERFAULTFD))]
#[macros::kunit_tests(rust_mm_vm_ops)]
mod tests {
    use super::*;
    use crate::{
        fs::{
            file::flags::{O_RDONLY, O_WRONLY},
            inode::Inode,
        },
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
                Ok(None) => return vmf.sigbus(),
                Err(e) => return vmf.error(e),
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
                Err(e) => return vmf.error(e),
            };
            match shmem_get_folio(inode, vmf.pgoff() + 1, 0, SgpType::Cache) {
                Ok(Some(folio)) => vmf.set_folio(folio),
                _ => vmf.sigbus(),
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
                Err(e) => return vmf.error(e),
            };
            match shmem_get_folio(other.inode(), 0, 0, SgpType::Cache) {
                Ok(Some(folio)) => vmf.set_folio(folio),
                _ => vmf.sigbus(),
            }
        }
    }

    /// A memory type whose allocations fail.
    struct NoMemory;

    #[vtable]
    impl VmOps for NoMemory {
        fn fault(vmf: VmFault<'_>) -> VmFaultReason<'_> {
            vmf.error(ENOMEM)
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
        assert_eq!(
            VmFaultReason::from_error(EHWPOISON).as_raw(),
            bindings::vm_fault_reason_VM_FAULT_HWPOISON
        );
        Ok(())
    }

    /// What a VMA under construction was left with: `vm_file`, `vm_private_data`, `vm_ops`.
    type Left = (
        *mut bindings::file,
        *mut bindings::file,
        *const bindings::vm_operations_struct,
    );

    /// Gives `f` a VMA under construction, as `->mmap()` has it: allocated, not linked anywhere,
    /// with `vm_flags`, `vm_pgoff` and a reference on `file`. Returns what `f` returned and what
    /// the VMA was left with, then closes (`->close()`) and frees the VMA.
    fn with_new_vma(
        file: &File,
        vm_flags: vm_flags_t,
        pgoff: PgOff,
        f: impl FnOnce(&VmaNew) -> Result,
    ) -> Result<(Result, Left)> {
        let mm = kunit::current_mm()?;
        // SAFETY: `mm` is a valid mm with users.
        let vma = unsafe { bindings::vm_area_alloc(mm.as_raw()) };
        if vma.is_null() {
            return Err(ENOMEM);
        }
        let file: ARef<File> = file.into();
        // SAFETY: The VMA is new and ours alone; set its flags, offset and file (with a
        // reference) as `__mmap_new_file_vma()` does.
        unsafe {
            (*vma).__bindgen_anon_2.vm_flags = vm_flags;
            (*vma).vm_pgoff = pgoff;
            (*vma).vm_file = ARef::into_raw(file).as_ptr().cast();
        }
        // SAFETY: The VMA is being set up and not linked anywhere; it is freed only after `f`.
        let ret = f(unsafe { VmaNew::from_raw(vma) });
        // SAFETY: The VMA is still ours.
        let left = unsafe { ((*vma).vm_file, (*vma).vm_private_data.cast(), (*vma).vm_ops) };
        // SAFETY: Close the VMA as its operations want, drop its reference on its file and free
        // it, unused.
        unsafe {
            if let Some(close) = left.2.as_ref().and_then(|ops| ops.close) {
                close(vma);
            }
            bindings::fput(left.0);
            bindings::vm_area_free(vma);
        }
        Ok((ret, left))
    }

    /// Opens the file of `file` again with `flags`.
    fn reopen(file: &File, flags: u32) -> Result<ARef<File>> {
        // SAFETY: `file` is a valid file; its path and credentials are valid for the call.
        let f = unsafe {
            bindings::dentry_open(
                &(*file.as_ptr()).__bindgen_anon_1.f_path,
                flags as i32,
                (*file.as_ptr()).f_cred,
            )
        };
        let f = crate::error::from_err_ptr(f)?;
        // SAFETY: `dentry_open()` returned a new file with one reference, which we own.
        Ok(unsafe { ARef::from_raw(NonNull::new_unchecked(f.cast())) })
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
        let table: *const _ = VmOpsVtable::<Shmem>::build();
        let shared_write = flags::SHARED | flags::MAYSHARE | flags::MAYWRITE | flags::WRITE;
        let shared_ro = flags::SHARED | flags::MAYSHARE | flags::READ;
        // Refused: the VMA keeps its file and nothing else.
        let refused = (dev.as_ptr(), core::ptr::null_mut());
        // A shmem file open for reading and writing, in a shared writable mapping: taken, with
        // the operations; the VMA keeps its first file (and its module) in `vm_private_data`.
        let (ret, left) = with_new_vma(&dev, shared_write, 0, |vma| {
            vma.set_shmem_file::<Shmem>(&mem)
        })?;
        assert_eq!(ret, Ok(()));
        assert_eq!(left, (mem.as_ptr(), dev.as_ptr(), table));
        // Twice: the VMA maps the second file and still keeps the first one it had.
        let (ret, left) = with_new_vma(&dev, shared_write, 0, |vma| {
            vma.set_shmem_file::<Shmem>(&mem)?;
            vma.set_shmem_file::<Shmem>(&dev)
        })?;
        assert_eq!(ret, Ok(()));
        assert_eq!(left, (dev.as_ptr(), dev.as_ptr(), table));
        // The same file open read-only: not for a shared mapping that may become writable.
        let ro = reopen(&mem, O_RDONLY)?;
        let (ret, left) = with_new_vma(&dev, shared_write, 0, |vma| {
            vma.set_shmem_file::<Shmem>(&ro)
        })?;
        assert_eq!((ret, (left.0, left.1)), (Err(EACCES), refused));
        let (ret, left) = with_new_vma(&dev, shared_ro, 0, |vma| vma.set_shmem_file::<Shmem>(&ro))?;
        assert_eq!((ret, left.0), (Ok(()), ro.as_ptr()));
        // Open write-only: not for any mapping.
        let wo = reopen(&mem, O_WRONLY)?;
        let (ret, left) = with_new_vma(&dev, shared_ro, 0, |vma| vma.set_shmem_file::<Shmem>(&wo))?;
        assert_eq!((ret, (left.0, left.1)), (Err(EACCES), refused));
        // Append-only: not for a shared mapping that may become writable.
        // SAFETY: The inode is valid; nothing else uses this file's flags during the test.
        unsafe { (*mem.inode().as_ptr()).i_flags |= bindings::S_APPEND };
        let (ret, left) = with_new_vma(&dev, shared_write, 0, |vma| {
            vma.set_shmem_file::<Shmem>(&mem)
        })?;
        // SAFETY: As above.
        unsafe { (*mem.inode().as_ptr()).i_flags &= !bindings::S_APPEND };
        assert_eq!((ret, (left.0, left.1)), (Err(EACCES), refused));
        // An offset no file reaches.
        let (ret, left) = with_new_vma(&dev, shared_ro, PgOff::MAX >> 1, |vma| {
            vma.set_shmem_file::<Shmem>(&mem)
        })?;
        assert_eq!((ret, (left.0, left.1)), (Err(EOVERFLOW), refused));
        // A memfd of `memfd_alloc_file()`: writable mappings cannot be denied, so it is taken.
        #[cfg(CONFIG_MEMFD_CREATE)]
        {
            let memfd = crate::mm::shmem::memfd_alloc_file(c"rust_mm_vm_ops_memfd")?;
            // SAFETY: `memfd` is a valid memfd.
            let seals = unsafe { bindings::memfd_get_seals(memfd.as_ptr()) };
            assert_eq!(
                seals,
                (bindings::F_SEAL_SEAL | bindings::F_SEAL_EXEC) as i32
            );
            // SAFETY: The inode is valid.
            assert_eq!(unsafe { (*memfd.inode().as_ptr()).i_mode } & 0o111, 0);
            let (ret, left) = with_new_vma(&dev, shared_write, 0, |vma| {
                vma.set_shmem_file::<Shmem>(&memfd)
            })?;
            assert_eq!((ret, left.0), (Ok(()), memfd.as_ptr()));
            // A memfd that may still be sealed, then one sealed against writing: not for a
            // shared mapping that may become writable, whose seals it would break (EPERM).
            use crate::str::CStrExt as _;
            let name = c"rust_mm_vm_ops_sealable";
            // SAFETY: `name` is a valid NUL-terminated string.
            let sealable = unsafe {
                bindings::memfd_alloc_file(name.as_char_ptr(), bindings::MFD_ALLOW_SEALING)
            };
            let sealable = crate::error::from_err_ptr(sealable)?;
            // SAFETY: `memfd_alloc_file()` returned a new file with one reference, which we own.
            let sealable: ARef<File> =
                unsafe { ARef::from_raw(NonNull::new_unchecked(sealable.cast())) };
            for seals in [0, bindings::F_SEAL_WRITE | bindings::F_SEAL_SEAL] {
                if seals != 0 {
                    // SAFETY: `sealable` is a valid memfd open for writing, not mapped.
                    to_result(unsafe { bindings::memfd_add_seals(sealable.as_ptr(), seals) })?;
                }
                let (ret, left) = with_new_vma(&dev, shared_write, 0, |vma| {
                    vma.set_shmem_file::<Shmem>(&sealable)
                })?;
                assert_eq!((ret, (left.0, left.1)), (Err(EPERM), refused));
                // A mapping that cannot become writable does not break them.
                let (ret, left) = with_new_vma(&dev, shared_ro, 0, |vma| {
                    vma.set_shmem_file::<Shmem>(&sealable)
                })?;
                assert_eq!((ret, left.0), (Ok(()), sealable.as_ptr()));
            }
        }
        // Not a shmem file: refused, the VMA keeps its file.
        #[cfg(CONFIG_HUGETLBFS)]
        {
            let huge = kunit::hugetlb_file(c"rust_mm_vm_ops_huge", 0)?;
            let (ret, left) = with_new_vma(&dev, shared_write, 0, |vma| {
                vma.set_shmem_file::<Shmem>(&huge)
            })?;
            assert_eq!((ret, (left.0, left.1)), (Err(EINVAL), refused));
        }
        Ok(())
    }

    #[test]
    fn table() -> Result {
        let ops = VmOpsVtable::<Shmem>::build();
        assert!(ops.fault.is_some());
        assert!(ops.map_pages.is_none() && ops.page_mkwrite.is_none());
        // `->open()` and `->close()` hold and put the file `set_shmem_file()` replaced.
        assert!(ops.open.is_some() && ops.close.is_some());
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
