// SPDX-License-Identifier: GPL-2.0

//! The operations of VMAs that memory types written in Rust create (`struct vm_operations_struct`).
//!
//! A driver gives the VMAs of its `mmap_prepare` hook a page-cache-backed memory type: through
//! the descriptor of the VMA about to be created ([`VmaDesc`], `struct vm_area_desc`), it points
//! the VMA at the shmem file whose page cache backs it and at a table of operations built from a
//! [`VmOps`] implementation ([`VmaDesc::set_shmem_file`]). The table's page fault handler returns
//! a locked page-cache folio as C fault handlers do (`VM_FAULT_LOCKED` with `vmf->page` set), or
//! hands the fault to userfaultfd; its `uffd_ops` are those of a [`UffdOps`] implementation,
//! through which userspace resolves minor faults with `UFFDIO_CONTINUE`. The VMAs of the table
//! keep the module of the implementation loaded.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h)
//!
//! [`UffdOps`]: crate::mm::userfaultfd::UffdOps

use crate::{
    bindings, build_error,
    error::{code::*, to_result, Error, Result, VTABLE_DEFAULT_ERROR},
    fs::File,
    mm::{
        folio::{LockedFolio, PgOff},
        virt::{flags, vm_flags_t, VmaRef},
    },
    module::this_module,
    sync::aref::ARef,
};
use ::ffi::{c_int, c_void};
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
    // `VM_UFFD_MINOR` is `VM_NONE` on 32-bit architectures (arm, ppc32), which have no minor
    // faults: the fault is always given back there.
    #[allow(clippy::bad_bit_mask)]
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
///
/// # Invariants
///
/// `0` is the `struct vm_uffd_ops` of a [`UffdOps`] implementation (`UffdOpsVtable`).
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
/// A driver's `mmap_prepare` hook gives the VMA about to be created the table of an
/// implementation, [`VmOpsVtable`], with [`VmaDesc::set_shmem_file`]. The fault handler is called
/// by the fault path with the VMA read-locked (mmap read lock or VMA lock), for a page whose page
/// table entry is empty (or a userfaultfd marker); it may sleep.
///
/// Every VMA of the table holds a reference on the module of the implementation
/// (`OwnerModule`, which `#[vtable]` sets to the module of the `impl` block), from the moment
/// `->mapped()` succeeded until it is closed: the module cannot be unloaded while a VMA could
/// still call its code, even once the file the VMA was mapped from is closed. (A generic
/// implementation written in one crate and instantiated by a module would hold the wrong one:
/// the `impl` belongs in the module whose code the VMA runs.) The VMA's `vm_private_data` is
/// that module (`NULL` for built-in code, and until `->mapped()` succeeded); nothing else
/// writes it.
#[vtable]
pub trait VmOps: Sized + 'static {
    /// The userfaultfd operations of the memory type (`uffd_ops`), `None` (the default) if it
    /// does not support userfaultfd. Use [`UffdOpsTable::of`].
    #[cfg(CONFIG_USERFAULTFD)]
    const UFFD_OPS: Option<&'static UffdOpsTable> = None;

    /// Called once `mmap()` has created the VMA that covers `start..end` of the address space and
    /// maps `file` (the file [`VmaDesc::set_shmem_file`] gave it) from page `pgoff` on
    /// (`->mapped()`, optional).
    ///
    /// Not called when the new range merged into an existing VMA of the same file:
    /// `is_mergeable_vma()` compares the file, not the operations, so a range next to another
    /// mapping of `file` with the same flags (a direct `mmap()` of it, or another memory type's
    /// mapping of it) takes that VMA's operations, not these. A memory type that hands its file
    /// out cannot rely on its operations for every mapping of it.
    ///
    /// An error has `mmap()` unmap the VMA again and fail with it (a stacking driver that ran
    /// the hook from its own `->mmap()` frees the VMA without closing it). There is no `close`
    /// of the memory type: `mapped` checks, it does not take anything for the VMA to keep.
    /// Called with the mmap lock held for writing; may sleep.
    fn mapped(_start: usize, _end: usize, _pgoff: PgOff, _file: &File) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Resolves a page fault (`->fault()`).
    ///
    /// Returns what the fault's [`VmFault`] returned when given up: [`VmFault::set_folio`],
    /// [`VmFault::handle_userfault_minor`], or a failure ([`VmFault::sigbus`], [`VmFault::oom`],
    /// [`VmFault::error`]).
    fn fault<'a>(vmf: VmFault<'a>) -> VmFaultReason<'a>;
}

/// The `struct vm_operations_struct` of a [`VmOps`] implementation.
///
/// Only [`VmOpsVtable::table`] makes one, and only [`VmaDesc::set_shmem_file`] gives it to a
/// VMA: the operations are not public, so that no VMA gets them without `->mapped()` being
/// called for it (a legacy `->mmap()` hook does not call it), and so without the reference
/// `->close()` puts.
///
/// # Invariants
///
/// `0` is the table of a [`VmOps`] implementation, whose `->mapped()` is the one of
/// [`VmOpsVtable`] and whose `->open()` and `->close()` are `vm_ops_open()` and
/// `vm_ops_close()`. The `vm_private_data` of a VMA that has these operations (or a copy of
/// them, as a stacking file system makes) is `NULL` until `->mapped()` succeeds, then the
/// module of the implementation (`NULL` for built-in code), on which the VMA holds a reference
/// until `->close()` (a copy of the VMA, from `->open()`).
#[repr(transparent)]
pub struct VmOpsTable(bindings::vm_operations_struct);

impl VmOpsTable {
    /// Returns the `struct vm_operations_struct`.
    #[inline]
    pub(crate) const fn ops(&'static self) -> &'static bindings::vm_operations_struct {
        &self.0
    }
}

/// Returns the module a VMA of a [`VmOpsTable`] holds a reference on: its `vm_private_data`.
///
/// # Safety
///
/// `vma` must be a valid VMA whose operations are those of a [`VmOpsTable`] (or a copy of them).
unsafe fn owner_of(vma: *mut bindings::vm_area_struct) -> *mut bindings::module {
    // SAFETY: The VMA is valid; by the invariants of `VmOpsTable`, its `vm_private_data` is
    // `NULL` or the module it holds a reference on.
    unsafe { (*vma).vm_private_data.cast() }
}

/// The table of a [`VmOps`] implementation, see [`VmOpsTable`].
pub struct VmOpsVtable<T: VmOps>(PhantomData<T>);

/// Takes a reference on the module of the operations for a copy of a VMA (`->open()`: split,
/// `mremap()`, `fork()`), as [`VmOpsVtable::mapped`] did for the VMA it was copied from, whose
/// `vm_private_data` the copy has.
///
/// It is built into the kernel, whatever module the table belongs to. It does not look at the
/// VMA's operations: a stacking file system (Coda) may call it through a copy of them.
///
/// # Safety
///
/// `vma` is a valid VMA whose operations are those of a [`VmOpsTable`] (or a copy of them),
/// called as `->open()`.
unsafe extern "C" fn vm_ops_open(vma: *mut bindings::vm_area_struct) {
    // SAFETY: The VMA `vma` was copied from holds a reference on the module (if any), which
    // stays loaded during this call; taking one more cannot fail.
    unsafe { bindings::__module_get(owner_of(vma)) };
}

/// Puts the reference of a VMA on the module of its operations (`->close()`).
///
/// It is built into the kernel, so that no code of the module runs once its last reference may be
/// gone: nothing of the VMA's operations is called after `->close()`.
///
/// # Safety
///
/// `vma` is a valid VMA whose operations are those of a [`VmOpsTable`] (or a copy of them),
/// called as `->close()`.
unsafe extern "C" fn vm_ops_close(vma: *mut bindings::vm_area_struct) {
    // SAFETY: By the type invariants of `VmOpsTable`, the VMA holds a reference on the module in
    // its `vm_private_data` (if any), which it gives up.
    unsafe { bindings::module_put(owner_of(vma)) };
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

    /// Calls [`VmOps::mapped`], then, if it succeeded, takes the reference of the new VMA on the
    /// module of `T` and makes the module the VMA's `vm_private_data`.
    ///
    /// Nothing is taken if it fails: `mmap()` then unmaps the VMA, which closes it, but a
    /// stacking driver that ran the hook from its own `->mmap()` (`compat_vma_mmap()`) frees it
    /// without closing it.
    ///
    /// # Safety
    ///
    /// Only called by `mmap()` (or `compat_vma_mmap()`), as `->mapped()` of a VMA whose
    /// operations are this table, just created, whose `vm_private_data` `vm_private_data` points
    /// to (`NULL`: [`VmaDesc`] does not set it). `file` is the VMA's file, valid for the duration
    /// of the call.
    unsafe extern "C" fn mapped(
        start: usize,
        end: usize,
        pgoff: PgOff,
        file: *const bindings::file,
        vm_private_data: *mut *mut c_void,
    ) -> c_int {
        if T::HAS_MAPPED {
            // SAFETY: `file` is valid for the duration of the call. It is the VMA's, which holds a
            // reference on it: a descriptor of it is never its only one, so an `fdget_pos()` on
            // it took `f_pos_lock` unless the file does not need it (`file_needs_f_pos_lock()`).
            let file = unsafe { File::from_raw_file(file) };
            if let Err(err) = T::mapped(start, end, pgoff, file) {
                return err.to_errno();
            }
        }
        // SAFETY: The module is loaded: this is its code, called by `mmap()` of a file whose
        // `->mmap_prepare()` gave the VMA this table, so that file's module, which is or uses the
        // module of `T`, is held by the caller.
        unsafe { bindings::__module_get(Self::OWNER) };
        // INVARIANT: The reference of the new VMA on the module, which its `->close()` puts.
        // SAFETY: `vm_private_data` is valid for writes (the caller's copy of the VMA's
        // `vm_private_data`, which it stores in the VMA on success).
        unsafe { *vm_private_data = Self::OWNER.cast() };
        0
    }

    const OWNER: *mut bindings::module = this_module::<T::OwnerModule>().as_ptr();

    // INVARIANT: The table of `T`, with its `->mapped()`, `vm_ops_open()` and `vm_ops_close()`.
    const TABLE: VmOpsTable = VmOpsTable(bindings::vm_operations_struct {
        open: Some(vm_ops_open),
        close: Some(vm_ops_close),
        mapped: Some(Self::mapped),
        fault: Some(Self::fault),
        #[cfg(CONFIG_USERFAULTFD)]
        uffd_ops: match T::UFFD_OPS {
            Some(ops) => ops.as_ptr(),
            None => core::ptr::null(),
        },
        ..pin_init::zeroed()
    });

    /// Returns the table of `T`.
    pub const fn table() -> &'static VmOpsTable {
        &Self::TABLE
    }

    /// Returns the operations of `T`.
    pub(crate) const fn build() -> &'static bindings::vm_operations_struct {
        Self::table().ops()
    }
}

/// A VMA that `mmap()` is about to create, as `f_op->mmap_prepare()` sees it
/// (`struct vm_area_desc`).
///
/// A driver describes the mapping through it: [`set_shmem_file`](Self::set_shmem_file) gives
/// the VMA a shmem file and the operations of a memory type written in Rust, in place of the
/// driver's file. If the hook fails, that is undone before `mmap()` sees the descriptor again,
/// so no reference it took is left behind.
///
/// # Invariants
///
/// `desc` is the descriptor passed to an `f_op->mmap_prepare()` that is running, valid and
/// changed by nobody else until the hook returns. `first_file` and `first_ops` are the
/// `vm_file` and `vm_ops` it had when the hook was called; `desc->vm_file` is either
/// `first_file` or a shmem file on which the descriptor holds a reference, which passes to
/// `mmap()` if the hook succeeds.
pub struct VmaDesc {
    desc: NonNull<bindings::vm_area_desc>,
    first_file: *mut bindings::file,
    first_ops: *const bindings::vm_operations_struct,
}

impl VmaDesc {
    /// Calls `f`, the body of an `f_op->mmap_prepare()` hook, with the descriptor `desc`; if it
    /// fails, puts the file [`set_shmem_file`](Self::set_shmem_file) set, and gives the
    /// descriptor back its file and operations.
    ///
    /// # Safety
    ///
    /// `desc` must be the descriptor passed to an `f_op->mmap_prepare()` hook that is running
    /// (this call is its body), valid, and changed by nobody else during this call.
    pub unsafe fn prepare(
        desc: *mut bindings::vm_area_desc,
        f: impl FnOnce(&VmaDesc) -> Result,
    ) -> Result {
        // INVARIANT: The descriptor of a running hook, with its first file and operations.
        // SAFETY: `desc` is valid, hence not null.
        let this = unsafe {
            VmaDesc {
                desc: NonNull::new_unchecked(desc),
                first_file: (*desc).vm_file,
                first_ops: (*desc).vm_ops,
            }
        };
        let ret = f(&this);
        if ret.is_err() {
            this.undo();
        }
        ret
    }

    /// Puts the file [`set_shmem_file`](Self::set_shmem_file) set, if any, and gives the
    /// descriptor back its first file and operations.
    fn undo(&self) {
        let desc = self.as_ptr();
        // SAFETY: By the type invariants, the descriptor is valid and ours during the hook; its
        // `vm_file` is its first file, or a file it holds a reference on, which is put.
        unsafe {
            if (*desc).vm_file != self.first_file {
                bindings::fput((*desc).vm_file);
                (*desc).vm_file = self.first_file;
            }
            (*desc).vm_ops = self.first_ops;
        }
    }

    /// Returns a raw pointer to the descriptor.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::vm_area_desc {
        self.desc.as_ptr()
    }

    /// Returns the file being mapped (`desc->file`): the driver's.
    #[inline]
    pub fn file(&self) -> &File {
        // SAFETY: By the type invariants, the descriptor is valid; the file being mapped is held
        // by `mmap()` for the duration of the hook, with a reference of its own: a descriptor of
        // it is never its only one, so an `fdget_pos()` on it took `f_pos_lock` unless the file
        // does not need it (`file_needs_f_pos_lock()`).
        unsafe { File::from_raw_file((*self.as_ptr()).file) }
    }

    /// Returns the start address of the VMA.
    #[inline]
    pub fn start(&self) -> usize {
        // SAFETY: By the type invariants, the descriptor is valid; `start` does not change.
        unsafe { (*self.as_ptr()).start }
    }

    /// Returns the end address of the VMA (exclusive).
    #[inline]
    pub fn end(&self) -> usize {
        // SAFETY: By the type invariants, the descriptor is valid; `end` does not change.
        unsafe { (*self.as_ptr()).end }
    }

    /// Returns the offset of the VMA in its file, in pages (`desc->pgoff`).
    #[inline]
    pub fn pgoff(&self) -> PgOff {
        // SAFETY: By the type invariants, the descriptor is valid and ours during the hook.
        unsafe { (*self.as_ptr()).pgoff }
    }

    /// Returns the flags the VMA will have (`desc->vma_flags`, as `vm_flags_t`).
    #[inline]
    pub fn flags(&self) -> vm_flags_t {
        // SAFETY: By the type invariants, the descriptor is valid and ours during the hook. The
        // first word of `vma_flags_t` holds the legacy `vm_flags_t` bits.
        unsafe { (*self.as_ptr()).vma_flags.__vma_flags[0] }
    }

    /// Clears `VM_MAYEXEC`: the VMA cannot be made executable.
    #[cfg(CONFIG_SHMEM)]
    fn clear_mayexec(&self) {
        // SAFETY: By the type invariants, the descriptor is valid and ours during the hook; the
        // flags are a mutable field of it, and clearing `VM_MAYEXEC` only takes a right away.
        unsafe { (*self.as_ptr()).vma_flags.__vma_flags[0] &= !flags::MAYEXEC };
    }

    /// Makes `file`, a shmem file, the file the VMA maps, with the operations of `T`
    /// (`desc->vm_file`, `desc->vm_ops`), as `shmem_zero_setup_desc()` does for `/dev/zero`: its
    /// page cache backs the VMA, is what the fault handler of `T` and `UFFDIO_CONTINUE` may map,
    /// and truncation and hole punching of `file` unmap the VMA's pages. The VMA's offset
    /// (`pgoff`) is an offset into `file`.
    ///
    /// The VMA holds a reference on `file` once it exists, and one on the module of `T` (see
    /// [`VmOps`]); it holds none on the driver's file. If the hook fails, or `mmap()` fails after
    /// it, nothing of that is left behind. Calling it again replaces the file set before.
    ///
    /// `mmap()` checked the driver's file; `file` gets the same checks, so that no driver hands
    /// out more than `mmap()` of `file` itself would:
    /// - `ENODEV` if a stacking driver runs the hook for a VMA of a file of its own
    ///   (`desc->file`, the driver's, is not the VMA's `vm_file`: its `->mmap()` called
    ///   `compat_vma_mmap()` with the driver's file for its own VMA): such a caller would take a
    ///   reference of its own on `file` (`vma_set_file()`), leaking the one of the descriptor.
    ///   A stacking driver that first makes the driver's file the VMA's, as Coda's `->mmap()`
    ///   does, cannot be told from `mmap()`; `compat_vma_mmap()` leaks the reference there, as
    ///   it does the file of a shared mapping of `/dev/zero` (a bug of its own);
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
    #[inline]
    pub fn set_shmem_file<T: VmOps>(&self, file: &File) -> Result {
        self.set_shmem_file_table(file, VmOpsVtable::<T>::table())
    }

    /// [`set_shmem_file`](Self::set_shmem_file) with the table of the memory type, built into
    /// the kernel whatever module calls it.
    #[cfg(CONFIG_SHMEM)]
    fn set_shmem_file_table(&self, file: &File, table: &'static VmOpsTable) -> Result {
        // SAFETY: By the type invariants, the descriptor is valid; `file` does not change.
        if unsafe { (*self.as_ptr()).file } != self.first_file {
            return Err(ENODEV);
        }
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
            self.clear_mayexec();
        }
        let desc = self.as_ptr();
        // The file being mapped is held by `mmap()`, which takes the reference of the VMA on it
        // itself: no reference for it.
        let new = if raw == self.first_file {
            raw
        } else {
            let new: ARef<File> = file.into();
            ARef::into_raw(new).as_ptr().cast()
        };
        // SAFETY: By the type invariants, the descriptor is ours during the hook. `vm_file` and
        // `vm_ops` are fields `->mmap_prepare()` may change: `mmap()` maps `vm_file` from now on
        // and takes over the reference on it (it puts it if it fails before the VMA exists), or,
        // if the hook fails, `prepare()` puts it. A file set before is put. `file` is a shmem
        // file, which can back any VMA: not hugetlbfs (whose VMAs must be `VM_HUGETLB`), not
        // secretmem. A shared writable VMA is only given a file open for writing whose writable
        // mappings cannot be denied (sealing is closed and no write seal is set), so linking the
        // VMA as a writable mapping keeps the seals. `table` is a static of the module whose code
        // it calls (or of the kernel); every VMA that uses it holds that module from `->mapped()`
        // on.
        unsafe {
            let old = (*desc).vm_file;
            (*desc).vm_file = new;
            if old != self.first_file {
                bindings::fput(old);
            }
            (*desc).vm_ops = table.ops();
        }
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
        },
        page::PAGE_SIZE,
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

    /// What a descriptor was left with: `vm_file` and `vm_ops`.
    type Left = (*mut bindings::file, *const bindings::vm_operations_struct);

    /// The number of references on `file` (`file_count()`).
    fn file_count(file: &File) -> usize {
        // SAFETY: `file` is valid; the count is read once.
        unsafe { bindings::file_ref_read(&raw mut (*file.as_ptr()).f_ref) as usize }
    }

    /// The operations `mmap()` gave the descriptor before the hook: any static table other than
    /// the ones set by the tests.
    fn first_ops() -> *const bindings::vm_operations_struct {
        VmOpsVtable::<NoMemory>::build()
    }

    /// Runs `f` as the body of the `->mmap_prepare()` of `file`, with the descriptor `mmap()`
    /// makes for a one-page VMA with `vm_flags` and `pgoff`. Returns what `f` returned and what
    /// the descriptor was left with, then puts the file it was left with if that is not `file`,
    /// as `mmap()` does when it fails before the VMA exists.
    fn with_desc(
        file: &File,
        vm_flags: vm_flags_t,
        pgoff: PgOff,
        f: impl FnOnce(&VmaDesc) -> Result,
    ) -> Result<(Result, Left)> {
        with_stacked_desc(file, file, vm_flags, pgoff, f)
    }

    /// [`with_desc`] for a VMA of `vm_file`, as a stacking driver runs the hook of `file`,
    /// through `compat_vma_mmap()`, for a VMA of a file of its own.
    fn with_stacked_desc(
        file: &File,
        vm_file: &File,
        vm_flags: vm_flags_t,
        pgoff: PgOff,
        f: impl FnOnce(&VmaDesc) -> Result,
    ) -> Result<(Result, Left)> {
        let mut desc = bindings::vm_area_desc {
            file: file.as_ptr(),
            start: 256 * PAGE_SIZE,
            end: 257 * PAGE_SIZE,
            pgoff,
            vm_file: vm_file.as_ptr(),
            vm_ops: first_ops(),
            ..Default::default()
        };
        desc.vma_flags.__vma_flags[0] = vm_flags;
        // SAFETY: `desc` is a descriptor as `mmap()` passes it to the hook, ours for the call.
        let ret = unsafe { VmaDesc::prepare(&mut desc, f) };
        let left = (desc.vm_file, desc.vm_ops);
        if desc.vm_file != vm_file.as_ptr() {
            // SAFETY: The descriptor holds a reference on a file it was given in the hook, which
            // `mmap()` takes over.
            unsafe { bindings::fput(desc.vm_file) };
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
        let table: *const _ = VmOpsVtable::<Shmem>::build();
        let shared_write = flags::SHARED | flags::MAYSHARE | flags::MAYWRITE | flags::WRITE;
        let shared_ro = flags::SHARED | flags::MAYSHARE | flags::READ;
        // Refused: the descriptor keeps the file being mapped and its operations.
        let refused = (dev.as_ptr(), first_ops());
        let (dev_refs, mem_refs) = (file_count(&dev), file_count(&mem));
        // A shmem file open for reading and writing, in a shared writable mapping: taken, with
        // the operations and a reference for `mmap()`; none on the file being mapped.
        let mut during = 0;
        let (ret, left) = with_desc(&dev, shared_write, 0, |desc| {
            desc.set_shmem_file::<Shmem>(&mem)?;
            during = file_count(&mem);
            Ok(())
        })?;
        assert_eq!((ret, left), (Ok(()), (mem.as_ptr(), table)));
        assert_eq!(during, mem_refs + 1);
        assert_eq!((file_count(&dev), file_count(&mem)), (dev_refs, mem_refs));
        // Twice: the second file replaces the first, whose reference is put; the file being
        // mapped itself is held by `mmap()`, and gets no reference.
        let (ret, left) = with_desc(&dev, shared_write, 0, |desc| {
            desc.set_shmem_file::<Shmem>(&mem)?;
            desc.set_shmem_file::<Shmem>(&dev)?;
            during = file_count(&mem);
            Ok(())
        })?;
        assert_eq!((ret, left), (Ok(()), (dev.as_ptr(), table)));
        assert_eq!((during, file_count(&dev)), (mem_refs, dev_refs));
        // The hook fails after it: the descriptor is given back as it was, the reference put.
        let (ret, left) = with_desc(&dev, shared_write, 0, |desc| {
            desc.set_shmem_file::<Shmem>(&mem)?;
            during = file_count(&mem);
            Err(EIO)
        })?;
        assert_eq!((ret, left), (Err(EIO), refused));
        assert_eq!((during, file_count(&mem)), (mem_refs + 1, mem_refs));
        // The same file open read-only: not for a shared mapping that may become writable.
        let ro = reopen(&mem, O_RDONLY)?;
        let (ret, left) = with_desc(&dev, shared_write, 0, |desc| {
            desc.set_shmem_file::<Shmem>(&ro)
        })?;
        assert_eq!((ret, left), (Err(EACCES), refused));
        let (ret, left) = with_desc(&dev, shared_ro, 0, |desc| desc.set_shmem_file::<Shmem>(&ro))?;
        assert_eq!((ret, left), (Ok(()), (ro.as_ptr(), table)));
        // Open write-only: not for any mapping.
        let wo = reopen(&mem, O_WRONLY)?;
        let (ret, left) = with_desc(&dev, shared_ro, 0, |desc| desc.set_shmem_file::<Shmem>(&wo))?;
        assert_eq!((ret, left), (Err(EACCES), refused));
        // Append-only: not for a shared mapping that may become writable.
        // SAFETY: The inode is valid; nothing else uses this file's flags during the test.
        unsafe { (*mem.inode().as_ptr()).i_flags |= bindings::S_APPEND };
        let (ret, left) = with_desc(&dev, shared_write, 0, |desc| {
            desc.set_shmem_file::<Shmem>(&mem)
        })?;
        // SAFETY: As above.
        unsafe { (*mem.inode().as_ptr()).i_flags &= !bindings::S_APPEND };
        assert_eq!((ret, left), (Err(EACCES), refused));
        // An offset no file reaches.
        let (ret, left) = with_desc(&dev, shared_ro, PgOff::MAX >> 1, |desc| {
            desc.set_shmem_file::<Shmem>(&mem)
        })?;
        assert_eq!((ret, left), (Err(EOVERFLOW), refused));
        assert_eq!(file_count(&mem), mem_refs);
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
            let (ret, left) = with_desc(&dev, shared_write, 0, |desc| {
                desc.set_shmem_file::<Shmem>(&memfd)
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
                let (ret, left) = with_desc(&dev, shared_write, 0, |desc| {
                    desc.set_shmem_file::<Shmem>(&sealable)
                })?;
                assert_eq!((ret, left), (Err(EPERM), refused));
                // A mapping that cannot become writable does not break them.
                let (ret, left) = with_desc(&dev, shared_ro, 0, |desc| {
                    desc.set_shmem_file::<Shmem>(&sealable)
                })?;
                assert_eq!((ret, left.0), (Ok(()), sealable.as_ptr()));
            }
        }
        // Run by a stacking file system for a VMA of its own file: refused, the descriptor keeps
        // that file and its operations, and no reference is taken.
        let stacker = shmem_file_setup(c"rust_mm_vm_ops_stacker", 0)?;
        let stacker_refs = file_count(&stacker);
        let (ret, left) = with_stacked_desc(&dev, &stacker, shared_write, 0, |desc| {
            desc.set_shmem_file::<Shmem>(&mem)
        })?;
        assert_eq!((ret, left), (Err(ENODEV), (stacker.as_ptr(), first_ops())));
        assert_eq!(
            (file_count(&dev), file_count(&mem), file_count(&stacker)),
            (dev_refs, mem_refs, stacker_refs)
        );
        // Not a shmem file: refused, the descriptor keeps its file.
        #[cfg(CONFIG_HUGETLBFS)]
        {
            let huge = kunit::hugetlb_file(c"rust_mm_vm_ops_huge", 0)?;
            let (ret, left) = with_desc(&dev, shared_write, 0, |desc| {
                desc.set_shmem_file::<Shmem>(&huge)
            })?;
            assert_eq!((ret, left), (Err(EINVAL), refused));
        }
        assert_eq!((file_count(&dev), file_count(&mem)), (dev_refs, mem_refs));
        Ok(())
    }

    /// A memory type whose `->mapped()` fails.
    struct FailMapped;

    #[vtable]
    impl VmOps for FailMapped {
        fn mapped(start: usize, end: usize, pgoff: PgOff, file: &File) -> Result {
            if (start, end, pgoff) == (PAGE_SIZE, 3 * PAGE_SIZE, 7)
                && file.inode().i_size_read() == 0
            {
                Err(EBUSY)
            } else {
                Err(EINVAL)
            }
        }

        fn fault(vmf: VmFault<'_>) -> VmFaultReason<'_> {
            vmf.sigbus()
        }
    }

    #[test]
    fn table() -> Result {
        let ops = VmOpsVtable::<Shmem>::build();
        assert!(ops.fault.is_some());
        assert!(ops.map_pages.is_none() && ops.page_mkwrite.is_none());
        // `->mapped()` takes the reference of a new VMA on the module, `->open()` the one of a
        // copy, `->close()` puts it; the module, in `vm_private_data`, is `NULL` for built-in
        // code.
        assert!(ops.open.is_some() && ops.close.is_some() && ops.mapped.is_some());
        assert!(!ops.uffd_ops.is_null());
        // SAFETY: The table is static.
        let uffd = unsafe { VmUffdOps::from_raw(ops.uffd_ops) };
        assert!(uffd.has_get_folio_noalloc());
        // SAFETY: The table is static.
        let raw = unsafe { &*ops.uffd_ops };
        assert!(raw.alloc_folio.is_none() && raw.can_userfault.is_some());
        // Without userfaultfd operations: none in the table.
        assert!(VmOpsVtable::<NoMemory>::build().uffd_ops.is_null());
        // `->mapped()` calls the implementation's, with what the VMA maps, and returns its
        // error; without one, it succeeds.
        let file = shmem_file_setup(c"rust_mm_vm_ops", 0)?;
        let mut private = core::ptr::null_mut();
        let mut mapped = |ops: &bindings::vm_operations_struct| {
            // SAFETY: `file` is valid for the call; the module is built-in (`NULL`), and so
            // nothing needs to be put.
            ops.mapped
                .map(|f| unsafe { f(PAGE_SIZE, 3 * PAGE_SIZE, 7, file.as_ptr(), &mut private) })
        };
        assert_eq!(
            mapped(VmOpsVtable::<FailMapped>::build()),
            Some(EBUSY.to_errno())
        );
        assert_eq!(mapped(ops), Some(0));
        assert!(private.is_null());
        Ok(())
    }
}
