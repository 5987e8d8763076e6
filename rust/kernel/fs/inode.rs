// SPDX-License-Identifier: GPL-2.0

//! Inodes.
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h)

use crate::{bindings, fs::File, types::Opaque};

/// A wrapper for the kernel's `struct inode`, borrowed from something that keeps it alive.
///
/// This type does not own a reference: a `&Inode` is obtained from an object that pins the
/// inode, such as an open [`File`] (see [`File::inode`]).
///
/// # Invariants
///
/// Whoever creates a `&Inode` guarantees that the inode stays valid for the lifetime of the
/// reference.
#[repr(transparent)]
pub struct Inode(Opaque<bindings::inode>);

// SAFETY: The methods of `Inode` can be used from any thread; they read fields with the accessors
// that C provides for lockless readers.
unsafe impl Sync for Inode {}

impl Inode {
    /// Creates an `&Inode` from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid inode that stays valid for the duration of `'a`.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *const bindings::inode) -> &'a Self {
        // SAFETY: `Inode` is a transparent wrapper; the caller guarantees validity for 'a.
        unsafe { &*ptr.cast() }
    }

    /// Returns a raw pointer to the `struct inode`.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::inode {
        self.0.get()
    }

    /// Returns the size of the file in bytes (`i_size_read()`).
    ///
    /// The value may change at any time unless the caller serialises against truncation, e.g.
    /// by holding the lock of a page table that maps the file (truncation must take it to unmap).
    #[inline]
    pub fn i_size_read(&self) -> i64 {
        // SAFETY: The inode is valid by the type invariants; `i_size_read()` is the lockless
        // accessor for `i_size`.
        unsafe { bindings::i_size_read(self.as_ptr()) }
    }
}

impl File {
    /// Returns the inode of the file (`file_inode()`).
    ///
    /// The file holds a reference on its inode for as long as it is open, and the returned
    /// reference borrows from the file.
    #[inline]
    pub fn inode(&self) -> &Inode {
        // SAFETY: `self` is a valid file, so `file_inode()` returns its valid inode.
        let inode = unsafe { bindings::file_inode(self.as_ptr()) };
        // SAFETY: An open file pins its inode; the reference cannot outlive `self`.
        unsafe { Inode::from_raw(inode) }
    }
}
