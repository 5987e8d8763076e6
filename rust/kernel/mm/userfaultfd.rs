// SPDX-License-Identifier: GPL-2.0

//! Userfaultfd support for memory types.
//!
//! A memory type plugs into userfaultfd through a table of operations, `struct vm_uffd_ops`,
//! reachable from its VMAs as `vm_ops->uffd_ops` (see [`VmaRef::uffd_ops`]). This module wraps
//! that table for callers ([`VmUffdOps`]), describes the flags of a fill operation
//! ([`UffdFlags`]), and lets a memory type written in Rust provide the table ([`UffdOps`],
//! [`GetFolioNowait`], [`UffdOpsVtable`]).
//!
//! C header: [`include/linux/userfaultfd_k.h`](srctree/include/linux/userfaultfd_k.h)
//!
//! [`VmaRef::uffd_ops`]: crate::mm::virt::VmaRef::uffd_ops

use crate::{
    bindings,
    error::{code::*, from_err_ptr, Result},
    fs::inode::Inode,
    mm::folio::{LockedFolio, PgOff},
    types::Opaque,
};
use core::ptr::NonNull;

mod ops;
pub use ops::{GetFolioNowait, GetFolioNowaitOp, UffdOps, UffdOpsVtable};

/// A memory type's userfaultfd operations (`struct vm_uffd_ops`).
///
/// # Invariants
///
/// The table is valid for as long as the reference to it (`'a` of [`VmUffdOps::from_raw`]).
#[repr(transparent)]
pub struct VmUffdOps(Opaque<bindings::vm_uffd_ops>);

// SAFETY: The table is immutable, and its operations may be called from any thread.
unsafe impl Sync for VmUffdOps {}

impl VmUffdOps {
    /// Creates a reference to an operations table.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid `struct vm_uffd_ops` that lives for `'a`.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *const bindings::vm_uffd_ops) -> &'a Self {
        // SAFETY: Transparent wrapper; validity for 'a is guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

    /// Returns a raw pointer to the table.
    #[inline]
    pub fn as_ptr(&self) -> *const bindings::vm_uffd_ops {
        self.0.get()
    }

    /// Returns whether the memory type supports minor faults, i.e. implements
    /// `get_folio_noalloc()`.
    #[inline]
    pub fn has_get_folio_noalloc(&self) -> bool {
        // SAFETY: The table is valid by the type invariants.
        unsafe { (*self.as_ptr()).get_folio_noalloc.is_some() }
    }

    /// Looks up the folio at `pgoff` in the page cache of `inode` without allocating
    /// (`get_folio_noalloc()`).
    ///
    /// The folio comes back locked and with a reference. A hole, an offset beyond the end of the
    /// file or an I/O error is an error, with the errno the memory type chose (`ENOENT` if it
    /// returned no folio and no error). Fails with `EOPNOTSUPP` if the memory type has no such
    /// operation.
    ///
    /// May sleep (e.g. to swap the folio in).
    ///
    /// # Safety
    ///
    /// `inode` must be an inode of the memory type this table belongs to: the inode of the file
    /// of a VMA whose `uffd_ops` this table is. The memory type's lookup may take it for one of
    /// its own (shmem's does), whatever it is.
    #[inline]
    pub unsafe fn get_folio_noalloc(&self, inode: &Inode, pgoff: PgOff) -> Result<LockedFolio> {
        // SAFETY: The table is valid by the type invariants.
        let op = unsafe { (*self.as_ptr()).get_folio_noalloc }.ok_or(EOPNOTSUPP)?;
        // SAFETY: `inode` is valid for the duration of the call; the memory type's contract is
        // to return a locked and referenced folio, an `ERR_PTR()` or NULL.
        let folio = from_err_ptr(unsafe { op(inode.as_ptr(), pgoff) })?;
        let folio = NonNull::new(folio).ok_or(ENOENT)?;
        // SAFETY: By the `get_folio_noalloc()` contract, we now own the lock and one reference.
        Ok(unsafe { LockedFolio::from_raw(folio) })
    }

    /// Looks up the folio at `pgoff` in the page cache of `inode` if that needs no sleeping
    /// (`get_folio_nowait()`, an optional operation, for the batched `UFFDIO_CONTINUE`).
    ///
    /// Returns what [`get_folio_noalloc`](Self::get_folio_noalloc) would return, locked and with
    /// a reference, when the folio is in the page cache, uptodate, and its lock is free; `None`
    /// when finding it would have to sleep, when the lookup would fail, and when the memory type
    /// has no such operation. May be called with a spinlock held.
    ///
    /// # Safety
    ///
    /// As for [`get_folio_noalloc`](Self::get_folio_noalloc): `inode` must be an inode of the
    /// memory type this table belongs to.
    #[inline]
    pub unsafe fn get_folio_nowait(&self, inode: &Inode, pgoff: PgOff) -> Option<LockedFolio> {
        // SAFETY: The table is valid by the type invariants.
        let op = unsafe { (*self.as_ptr()).get_folio_nowait }?;
        // SAFETY: `inode` is valid for the duration of the call; the memory type's contract is
        // to return a locked and referenced folio or NULL (an `ERR_PTR()` is taken for NULL),
        // without sleeping.
        let folio = NonNull::new(from_err_ptr(unsafe { op(inode.as_ptr(), pgoff) }).ok()?)?;
        // SAFETY: By the `get_folio_nowait()` contract, we now own the lock and one reference.
        Some(unsafe { LockedFolio::from_raw(folio) })
    }
}

/// The mode and flags of a userfaultfd fill operation (`uffd_flags_t`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct UffdFlags(bindings::uffd_flags_t);

impl UffdFlags {
    /// Wraps a raw `uffd_flags_t`.
    #[inline]
    pub fn from_raw(flags: bindings::uffd_flags_t) -> Self {
        Self(flags)
    }

    /// Returns the raw `uffd_flags_t`.
    #[inline]
    pub fn as_raw(self) -> bindings::uffd_flags_t {
        self.0
    }

    /// Returns whether the new mapping must be write-protected (`MFILL_ATOMIC_WP`, set by
    /// `UFFDIO_COPY_MODE_WP` and `UFFDIO_CONTINUE_MODE_WP`).
    #[inline]
    pub fn wp(self) -> bool {
        self.0 & bindings::MFILL_ATOMIC_WP != 0
    }
}
