// SPDX-License-Identifier: GPL-2.0

//! Folios.
//!
//! A folio is a physically, virtually and logically contiguous set of pages: the unit that the
//! page cache, the LRU and reverse mapping deal with. It is also the unit of reference counting:
//! a `struct page` inside a folio has no reference count of its own that callers may use.
//!
//! This module provides:
//!
//! - [`Folio`], used through [`ARef<Folio>`] (`folio_get()` / `folio_put()`),
//! - [`FolioLockGuard`], a borrowed `folio_lock()` that unlocks on drop,
//! - [`LockedFolio`], a reference *and* the folio lock, owned together: this is what a page-cache
//!   lookup such as `shmem_get_folio()` or `vm_uffd_ops->get_folio_noalloc()` hands back, and
//!   what a PTE installation consumes (see [`PteTableGuard`]),
//! - [`NewAnonFolio`], a freshly allocated folio that no one else can see yet, about to become
//!   anonymous memory of a VMA,
//! - [`FolioPage`], a page of a folio: not a [`Page`], which owns its allocation and which the
//!   functions that map a page anywhere take.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h),
//! [`include/linux/pagemap.h`](srctree/include/linux/pagemap.h)
//!
//! [`Page`]: crate::page::Page
//! [`PteTableGuard`]: crate::mm::pgtable::PteTableGuard

use crate::{
    bindings,
    error::{code::*, Result},
    mm::{virt::VmaRef, MmWithUser},
    sync::aref::{ARef, AlwaysRefCounted},
    types::Opaque,
};
use core::{marker::PhantomData, mem::ManuallyDrop, ops::Deref, ptr::NonNull};

/// A page-cache offset, in units of pages (`pgoff_t`).
pub type PgOff = usize;

/// A wrapper for the kernel's `struct folio`.
///
/// # Invariants
///
/// Whoever creates a `&Folio` guarantees that the folio's reference count stays elevated for the
/// lifetime of the reference, so the folio is not freed (it may still be truncated from the page
/// cache or unmapped unless the folio lock is held).
#[repr(transparent)]
pub struct Folio(Opaque<bindings::folio>);

// SAFETY: A folio reference may be dropped on any thread: `folio_put()` has no thread affinity.
unsafe impl Send for Folio {}
// SAFETY: The methods of `&Folio` only read atomic flags and fields that are stable while a
// reference is held, or take locks; they can be called from several threads at once.
unsafe impl Sync for Folio {}

// SAFETY: By the type invariants, a `Folio` is always reference counted, and `folio_get()` /
// `folio_put()` are the functions that manage that count.
unsafe impl AlwaysRefCounted for Folio {
    #[inline]
    fn inc_ref(&self) {
        // SAFETY: The folio is valid and has a non-zero reference count by the type invariants.
        unsafe { bindings::folio_get(self.as_ptr()) };
    }

    #[inline]
    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller gives up one reference, which it owned.
        unsafe { bindings::folio_put(obj.cast().as_ptr()) };
    }
}

impl Folio {
    /// Creates a `&Folio` from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid folio whose reference count the caller keeps elevated for the
    /// duration of `'a`.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::folio) -> &'a Self {
        // SAFETY: `Folio` is a transparent wrapper around `struct folio`; the caller guarantees
        // validity for `'a`.
        unsafe { &*ptr.cast() }
    }

    /// Returns a raw pointer to the `struct folio`.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::folio {
        self.0.get()
    }

    /// Returns the folio's index in its mapping, in pages (`folio->index`).
    ///
    /// For a page-cache folio this is stable while the folio is locked.
    #[inline]
    pub fn index(&self) -> PgOff {
        // SAFETY: The folio is valid by the type invariants.
        unsafe { bindings::folio_index(self.as_ptr()) }
    }

    /// Returns the number of pages in the folio (`folio_nr_pages()`).
    #[inline]
    pub fn nr_pages(&self) -> usize {
        // SAFETY: The folio is valid by the type invariants.
        unsafe { bindings::folio_nr_pages(self.as_ptr()) as usize }
    }

    /// Returns the allocation order of the folio (`folio_order()`).
    #[inline]
    pub fn order(&self) -> u32 {
        // SAFETY: The folio is valid by the type invariants.
        unsafe { bindings::folio_order(self.as_ptr()) }
    }

    /// Returns the page frame number of the folio's first page (`folio_pfn()`).
    #[inline]
    pub fn pfn(&self) -> usize {
        // SAFETY: The folio is valid by the type invariants.
        unsafe { bindings::folio_pfn(self.as_ptr()) }
    }

    /// Returns the `address_space` the folio belongs to, if any (`folio_mapping()`).
    ///
    /// This is `None` for anonymous folios and for folios that were truncated from the page
    /// cache; it is `Some` for page-cache folios (and the swap cache).
    #[inline]
    pub fn mapping(&self) -> Option<NonNull<bindings::address_space>> {
        // SAFETY: The folio is valid by the type invariants.
        NonNull::new(unsafe { bindings::folio_mapping(self.as_ptr()) })
    }

    /// Returns the number of page table entries that map the folio (`folio_mapcount()`).
    #[inline]
    pub fn mapcount(&self) -> i32 {
        // SAFETY: The folio is valid by the type invariants.
        unsafe { bindings::folio_mapcount(self.as_ptr()) }
    }

    /// Returns the folio's reference count (`folio_ref_count()`).
    ///
    /// Only meaningful as a snapshot, e.g. in tests.
    #[inline]
    pub fn ref_count(&self) -> i32 {
        // SAFETY: The folio is valid by the type invariants.
        unsafe { bindings::folio_ref_count(self.as_ptr()) }
    }

    /// Returns whether the folio's contents are valid (`folio_test_uptodate()`).
    #[inline]
    pub fn test_uptodate(&self) -> bool {
        // SAFETY: The folio is valid by the type invariants.
        unsafe { bindings::folio_test_uptodate(self.as_ptr()) }
    }

    /// Returns whether the folio is locked by someone (`folio_test_locked()`).
    #[inline]
    pub fn test_locked(&self) -> bool {
        // SAFETY: The folio is valid by the type invariants.
        unsafe { bindings::folio_test_locked(self.as_ptr()) }
    }

    /// Returns whether the folio is anonymous memory (`folio_test_anon()`).
    #[inline]
    pub fn test_anon(&self) -> bool {
        // SAFETY: The folio is valid by the type invariants.
        unsafe { bindings::folio_test_anon(self.as_ptr()) }
    }

    /// Returns whether the folio is backed by swap, as shmem and anonymous folios are
    /// (`folio_test_swapbacked()`).
    #[inline]
    pub fn test_swapbacked(&self) -> bool {
        // SAFETY: The folio is valid by the type invariants.
        unsafe { bindings::folio_test_swapbacked(self.as_ptr()) }
    }

    /// Returns whether the folio is on an LRU list (`folio_test_lru()`).
    #[inline]
    pub fn test_lru(&self) -> bool {
        // SAFETY: The folio is valid by the type invariants.
        unsafe { bindings::folio_test_lru(self.as_ptr()) }
    }

    /// Returns whether the folio has more than one page (`folio_test_large()`).
    #[inline]
    pub fn test_large(&self) -> bool {
        // SAFETY: The folio is valid by the type invariants.
        unsafe { bindings::folio_test_large(self.as_ptr()) }
    }

    /// Returns whether the folio is dirty (`folio_test_dirty()`).
    #[inline]
    pub fn test_dirty(&self) -> bool {
        // SAFETY: The folio is valid by the type invariants.
        unsafe { bindings::folio_test_dirty(self.as_ptr()) }
    }

    /// Returns the `n`th page of the folio (`folio_page()`), or `None` if `n` is out of range.
    #[inline]
    pub fn page(&self, n: usize) -> Option<FolioPage<'_>> {
        if n >= self.nr_pages() {
            return None;
        }
        // SAFETY: The folio is valid and `n` is within it.
        let page = unsafe { bindings::folio_page(self.as_ptr(), n) };
        // SAFETY: A page of a folio is valid for as long as the folio is, which is at least the
        // lifetime of `&self` by the type invariants.
        Some(unsafe { FolioPage::from_raw(page) })
    }

    /// Returns the page of the folio that holds file offset `index` (`folio_file_page()`).
    ///
    /// `index` must be an index the folio covers in its file; the page returned is the one at
    /// `index` modulo the folio size, which is the right one in that case.
    #[inline]
    pub fn file_page(&self, index: PgOff) -> FolioPage<'_> {
        // SAFETY: The folio is valid; `folio_file_page()` always returns a page inside it.
        let page = unsafe { bindings::folio_file_page(self.as_ptr(), index) };
        // SAFETY: As in `page()`: the page lives as long as the folio.
        unsafe { FolioPage::from_raw(page) }
    }

    /// Returns the position of the page holding file offset `index` within the folio.
    #[inline]
    pub fn file_page_nr(&self, index: PgOff) -> usize {
        // A folio has at least one page: the subtraction cannot wrap.
        index & self.nr_pages().wrapping_sub(1)
    }

    /// Returns whether the page holding file offset `index` has a hardware memory error
    /// (`PageHWPoison(folio_file_page())`).
    #[inline]
    pub fn file_page_hwpoison(&self, index: PgOff) -> bool {
        // SAFETY: The folio is valid; `folio_file_page()` always returns a page inside it, which
        // is valid for as long as the folio is.
        unsafe { bindings::PageHWPoison(bindings::folio_file_page(self.as_ptr(), index)) }
    }

    /// Returns whether the `n`th page of the folio has a hardware memory error (`PageHWPoison()`).
    ///
    /// Returns `false` when `n` is out of range.
    #[inline]
    pub fn page_hwpoison(&self, n: usize) -> bool {
        self.page(n).is_some_and(FolioPage::hwpoison)
    }

    /// Locks the folio (`folio_lock()`), sleeping until the lock is available.
    ///
    /// Must be called from a context that may sleep.
    #[inline]
    pub fn lock(&self) -> FolioLockGuard<'_> {
        // SAFETY: The folio is valid by the type invariants.
        unsafe { bindings::folio_lock(self.as_ptr()) };
        // INVARIANT: We just took the lock.
        FolioLockGuard { folio: self }
    }

    /// Tries to lock the folio without sleeping (`folio_trylock()`).
    #[inline]
    pub fn trylock(&self) -> Option<FolioLockGuard<'_>> {
        // SAFETY: The folio is valid by the type invariants.
        if unsafe { bindings::folio_trylock(self.as_ptr()) } {
            // INVARIANT: We just took the lock.
            Some(FolioLockGuard { folio: self })
        } else {
            None
        }
    }
}

/// A page of a folio, borrowed from a reference to the folio (`folio_page()`,
/// `folio_file_page()`).
///
/// This is deliberately not a [`Page`] (nor a [`BorrowedPage`], which derefs to one): a `Page`
/// stands for a page that its owner allocated, and the functions that take one may map it
/// wherever they like. `VmaMixedMap::vm_insert_page()` gives the page a file reverse mapping and a
/// reference in a `VM_MIXEDMAP` VMA, outside the `i_mmap` tree of any file: for a page-cache page,
/// truncation would never find that mapping and would remove the folio from the page cache still
/// mapped; for the page of a [`NewAnonFolio`], it would be mapped and shared before its anonymous
/// reverse mapping exists. A page of a folio is mapped only by the PTE installation of
/// `kernel::mm::pgtable`, which takes the folio itself and checks it.
///
/// What it gives is what is safe to have: its page frame number, its hardware-poison flag, and
/// its raw pointer for C. Code that turns the pointer into a [`Page`] or [`BorrowedPage`] (both
/// `unsafe`) must not hand the result to anything that maps or frees pages.
///
/// # Invariants
///
/// `page` is a page of a folio on which a reference is held for at least `'a`.
///
/// [`Page`]: crate::page::Page
/// [`BorrowedPage`]: crate::page::BorrowedPage
#[derive(Clone, Copy)]
pub struct FolioPage<'a> {
    page: NonNull<bindings::page>,
    _folio: PhantomData<&'a Folio>,
}

impl FolioPage<'_> {
    /// Wraps a page of a folio.
    ///
    /// # Safety
    ///
    /// `page` must be a page of a folio on which a reference is held for the lifetime of the
    /// returned value.
    #[inline]
    pub(crate) unsafe fn from_raw(page: *mut bindings::page) -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self {
            // SAFETY: A page of a folio is not null.
            page: unsafe { NonNull::new_unchecked(page) },
            _folio: PhantomData,
        }
    }

    /// Returns a raw pointer to the `struct page`.
    #[inline]
    pub fn as_ptr(self) -> *mut bindings::page {
        self.page.as_ptr()
    }

    /// Returns the page frame number of the page (`page_to_pfn()`).
    #[inline]
    pub fn pfn(self) -> usize {
        // SAFETY: The page is valid by the type invariants.
        unsafe { bindings::page_to_pfn(self.as_ptr()) }
    }

    /// Returns whether the page has a hardware memory error (`PageHWPoison()`).
    #[inline]
    pub fn hwpoison(self) -> bool {
        // SAFETY: The page is valid by the type invariants.
        unsafe { bindings::PageHWPoison(self.as_ptr()) }
    }
}

/// Returns the folio a page belongs to (`page_folio()`).
///
/// # Safety
///
/// `page` must be a valid page of a folio on which the caller keeps a reference for `'a`.
#[inline]
pub unsafe fn page_folio<'a>(page: *mut bindings::page) -> &'a Folio {
    // SAFETY: The caller guarantees that the page is valid and its folio referenced for 'a.
    unsafe { Folio::from_raw(bindings::page_folio(page)) }
}

/// A borrowed folio lock, released on drop (`folio_unlock()`).
///
/// # Invariants
///
/// The folio is locked, and this guard is responsible for unlocking it.
pub struct FolioLockGuard<'a> {
    folio: &'a Folio,
}

impl Deref for FolioLockGuard<'_> {
    type Target = Folio;

    #[inline]
    fn deref(&self) -> &Folio {
        self.folio
    }
}

impl Drop for FolioLockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariants, we hold the lock.
        unsafe { bindings::folio_unlock(self.folio.as_ptr()) };
    }
}

/// A folio that is locked and on which one reference is held, both owned by this value.
///
/// Dropping it unlocks the folio and drops the reference, in that order (the same as the C
/// `folio_unlock(folio); folio_put(folio);` pair). A page-cache folio held this way cannot be
/// truncated or migrated.
///
/// # Invariants
///
/// `self.folio` is locked, and the lock and one reference belong to this value.
pub struct LockedFolio {
    folio: ManuallyDrop<ARef<Folio>>,
}

impl LockedFolio {
    /// Takes ownership of a locked and referenced folio from C.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid, locked folio; the caller transfers both the lock and one
    /// reference to the returned value.
    #[inline]
    pub unsafe fn from_raw(ptr: NonNull<bindings::folio>) -> Self {
        // SAFETY: The caller transfers one reference to us.
        let folio = unsafe { ARef::from_raw(ptr.cast()) };
        // INVARIANT: The caller transfers the lock.
        Self {
            folio: ManuallyDrop::new(folio),
        }
    }

    /// Locks `folio` (`folio_lock()`), sleeping if needed, and keeps the reference with the lock.
    #[inline]
    pub fn lock(folio: ARef<Folio>) -> Self {
        // SAFETY: The folio is valid: we hold a reference.
        unsafe { bindings::folio_lock(folio.as_ptr()) };
        // INVARIANT: We just took the lock and own the reference.
        Self {
            folio: ManuallyDrop::new(folio),
        }
    }

    /// Gives the lock and the reference back to C, returning the raw folio pointer.
    #[inline]
    pub fn into_raw(self) -> NonNull<bindings::folio> {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the reference we read out is not dropped twice.
        let folio = unsafe { core::ptr::read(&*this.folio) };
        ARef::into_raw(folio).cast()
    }

    /// Unlocks the folio (`folio_unlock()`) and returns the reference.
    #[inline]
    pub fn unlock(self) -> ARef<Folio> {
        // SAFETY: By the type invariants, we hold the lock.
        unsafe { bindings::folio_unlock(self.as_ptr()) };
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the reference is moved out exactly once.
        unsafe { core::ptr::read(&*this.folio) }
    }

    /// Unlocks the folio and leaks the reference to whoever now owns it.
    ///
    /// Used when the reference is handed over to page table entries.
    ///
    /// # Safety
    ///
    /// The caller must have made some other owner (a page table entry) responsible for the
    /// reference, which is otherwise leaked.
    #[inline]
    pub(crate) unsafe fn unlock_and_transfer(self) {
        let folio = self.unlock();
        let _ = ARef::into_raw(folio);
    }

    /// Returns whether the folio is in the page cache of `mapping` (`folio->mapping == mapping`).
    ///
    /// The field is stable while the folio is locked. An anonymous folio, a folio in the swap
    /// cache or one that was truncated never compares equal to an `address_space`.
    #[inline]
    pub(crate) fn in_mapping(&self, mapping: *const bindings::address_space) -> bool {
        // SAFETY: The folio is valid, and locked by the type invariants, so `mapping` is stable.
        let raw = unsafe { (*self.as_ptr()).__bindgen_anon_1.__bindgen_anon_1.mapping };
        core::ptr::eq(raw, mapping)
    }
}

impl Deref for LockedFolio {
    type Target = Folio;

    #[inline]
    fn deref(&self) -> &Folio {
        &self.folio
    }
}

impl Drop for LockedFolio {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariants, we hold the lock.
        unsafe { bindings::folio_unlock(self.folio.as_ptr()) };
        // SAFETY: `self.folio` is not used again; this drops our reference exactly once.
        unsafe { ManuallyDrop::drop(&mut self.folio) };
    }
}

/// Looks up the folio at `index` in the page cache of the shmem inode `inode` and locks it if
/// its lock is free (`__filemap_get_folio()` with `FGP_LOCK | FGP_NOWAIT`).
///
/// Returns the folio, still in the page cache at `index`, locked and with a reference, or `None`
/// for a hole (or a swap or shadow entry) and for a folio that someone else holds locked. Neither
/// sleeps nor allocates, and reads nothing in: the folio may not be uptodate, and part of it may
/// lie beyond the end of the file. May be called with a spinlock held: the lookup of a
/// [`GetFolioNowait`] implementation.
///
/// Only shmem inodes are looked up (`shmem_mapping()`); any other inode gives `None`. The page
/// cache of a file system that writes back is not for a lookup that bypasses it: a locked folio
/// of such a file, in the hands of safe code, is a way to write to it behind the file system's
/// back (what `set_page_dirty()` on pages pinned with GUP did).
///
/// [`GetFolioNowait`]: crate::mm::userfaultfd::GetFolioNowait
#[cfg(CONFIG_SHMEM)]
pub fn filemap_lock_folio_nowait(
    inode: &crate::fs::inode::Inode,
    index: PgOff,
) -> Option<LockedFolio> {
    if !crate::mm::shmem::is_shmem_inode(inode) {
        return None;
    }
    // SAFETY: `inode` is valid, and so is its mapping; with `FGP_NOWAIT` the lookup does not
    // sleep, and without `FGP_CREAT` it does not allocate.
    let folio = unsafe {
        bindings::__filemap_get_folio(
            (*inode.as_ptr()).i_mapping,
            index,
            bindings::FGP_LOCK | bindings::FGP_NOWAIT,
            0,
        )
    };
    let folio = NonNull::new(crate::error::from_err_ptr(folio).ok()?)?;
    // SAFETY: On success the folio is locked and referenced for us, and `__filemap_get_folio()`
    // checked under the lock that it is still in the mapping.
    Some(unsafe { LockedFolio::from_raw(folio) })
}

/// A newly allocated order-0 folio that will become anonymous memory of a VMA.
///
/// Until it is mapped, no one else can see it: it is not in the page cache, not on the LRU and
/// not in the reverse map, and this value owns the only reference. It is installed with
/// [`PteTableGuard::set_pte_new_anon`], which adds the anonymous reverse mapping and puts the
/// folio on the LRU.
///
/// There is deliberately no way to get a [`Folio`] (and so an [`ARef<Folio>`]) from it: another
/// owner could lock or map the folio while the reverse map is being set up non-atomically. It
/// only gives out its page frame number.
///
/// # Invariants
///
/// `self.folio` is an order-0 folio that is not anonymous, not in the page cache, not on the
/// LRU and not mapped; its contents are uptodate; it is charged to the memory cgroup of the mm
/// `self.mm`, and no reference to it exists outside this value.
///
/// [`PteTableGuard::set_pte_new_anon`]: crate::mm::pgtable::PteTableGuard::set_pte_new_anon
pub struct NewAnonFolio {
    folio: ARef<Folio>,
    // Only compared, never dereferenced.
    mm: *const bindings::mm_struct,
}

impl NewAnonFolio {
    /// Allocates a zeroed folio for anonymous memory at `addr` in `vma`, charged to the VMA's
    /// memory cgroup (`vma_alloc_zeroed_movable_folio()` + `mem_cgroup_charge()` +
    /// `__folio_mark_uptodate()`).
    pub fn alloc_zeroed(vma: &VmaRef, addr: usize) -> Result<Self> {
        // SAFETY: The VMA is valid and read-locked by the invariants of `VmaRef`.
        let folio = unsafe { bindings::vma_alloc_zeroed_movable_folio(vma.as_ptr(), addr) };
        let folio = NonNull::new(folio).ok_or(ENOMEM)?;
        // SAFETY: The allocation returned a folio with a reference that we now own.
        let folio: ARef<Folio> = unsafe { ARef::from_raw(folio.cast()) };
        let mm = vma.mm().as_raw();
        // SAFETY: The folio is valid; the mm of a read-locked VMA is valid.
        let ret = unsafe { bindings::mem_cgroup_charge(folio.as_ptr(), mm, bindings::GFP_KERNEL) };
        if ret != 0 {
            return Err(ENOMEM);
        }
        // SAFETY: The folio is ours alone; it was zeroed (with the architecture's cache
        // maintenance for user pages where it needs any). The barrier in
        // `__folio_mark_uptodate()` orders the zeroing before the folio becomes visible.
        unsafe { bindings::__folio_mark_uptodate(folio.as_ptr()) };
        // INVARIANT: A new order-0 folio, charged to `mm`, uptodate, nowhere else.
        Ok(Self { folio, mm })
    }

    /// Takes ownership of a new folio prepared by C code for anonymous memory of `mm`.
    ///
    /// # Safety
    ///
    /// `ptr` must satisfy the type invariants with `mm` as the mm it is charged to, and the
    /// caller transfers its only reference.
    #[inline]
    pub unsafe fn from_raw(ptr: NonNull<bindings::folio>, mm: &MmWithUser) -> Self {
        // SAFETY: The caller transfers its reference to us.
        let folio = unsafe { ARef::from_raw(ptr.cast()) };
        // INVARIANT: Guaranteed by the caller.
        Self {
            folio,
            mm: mm.as_raw(),
        }
    }

    /// Gives the reference back to C, returning the raw folio pointer.
    #[inline]
    pub fn into_raw(self) -> NonNull<bindings::folio> {
        ARef::into_raw(self.folio).cast()
    }

    /// Returns the page frame number of the folio's page (`folio_pfn()`).
    #[inline]
    pub fn pfn(&self) -> usize {
        self.folio.pfn()
    }

    /// Returns whether the folio was charged to `mm`, the mm it may be mapped into.
    #[inline]
    pub fn is_for_mm(&self, mm: &MmWithUser) -> bool {
        core::ptr::eq(self.mm, mm.as_raw())
    }
}

impl NewAnonFolio {
    /// Returns a raw pointer to the folio, for the PTE installation that maps it.
    #[inline]
    pub(crate) fn as_ptr(&self) -> *mut bindings::folio {
        self.folio.as_ptr()
    }

    /// Returns the folio's page (`folio_page(folio, 0)`), for the PTE installation that maps it.
    #[inline]
    pub(crate) fn page(&self) -> FolioPage<'_> {
        // SAFETY: The folio is valid; an order-0 folio has a page 0.
        let page = unsafe { bindings::folio_page(self.folio.as_ptr(), 0) };
        // SAFETY: The page lives as long as the folio, which lives at least as long as `&self`.
        unsafe { FolioPage::from_raw(page) }
    }

    /// Leaks the reference to whoever now owns it (a page table entry).
    ///
    /// # Safety
    ///
    /// The caller must have made some other owner responsible for the reference.
    #[inline]
    pub(crate) unsafe fn transfer(self) {
        let _ = ARef::into_raw(self.folio);
    }
}
