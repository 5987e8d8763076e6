// SPDX-License-Identifier: GPL-2.0

//! KUnit support for tests of the memory-management abstractions.
//!
//! Built only into kernels with the KUnit tests of the Rust mm code: it is test support, not an
//! API for drivers.
//!
//! Tests that need a real address space attach a fresh mm to the KUnit test thread with
//! [`vm_mmap`] (`kunit_vm_mmap()`), and map shmem files created with
//! [`shmem_file_setup`] into it. The mm is torn down with the
//! test thread, which also checks that whatever the test mapped was accounted correctly.
//!
//! C header: [`include/kunit/test.h`](srctree/include/kunit/test.h)

use crate::{
    alloc::{flags::GFP_KERNEL, KVec},
    bindings,
    error::{code::*, to_result, Error, Result},
    fs::File,
    mm::{
        folio::{Folio, FolioPage},
        pgtable::Pmd,
        pte::Pte,
        shmem::{shmem_file_setup, shmem_get_folio, SgpType},
        MmWithUser,
    },
    str::{CStr, CStrExt},
    sync::aref::ARef,
    uaccess::{UserPtr, UserSlice},
};

/// Protection and flags for [`vm_mmap`], as in `mmap(2)`.
pub mod prot {
    /// Pages may be read (`PROT_READ`).
    pub const READ: usize = bindings::PROT_READ as usize;
    /// Pages may be written (`PROT_WRITE`).
    pub const WRITE: usize = bindings::PROT_WRITE as usize;
    /// Share the mapping (`MAP_SHARED`).
    pub const MAP_SHARED: usize = bindings::MAP_SHARED as usize;
    /// Private copy-on-write mapping (`MAP_PRIVATE`).
    pub const MAP_PRIVATE: usize = bindings::MAP_PRIVATE as usize;
}

fn current_test() -> Result<*mut bindings::kunit> {
    // SAFETY: Always safe to call; NULL outside of a KUnit test.
    let test = unsafe { bindings::kunit_get_current_test() };
    if test.is_null() {
        Err(EINVAL)
    } else {
        Ok(test)
    }
}

/// Maps `file` (or anonymous memory) into the address space of the current KUnit test, creating
/// and attaching an mm first if the test thread has none (`kunit_vm_mmap()`).
///
/// Returns the address of the mapping. Must be called from a KUnit test.
pub fn vm_mmap(
    file: Option<&File>,
    len: usize,
    prot: usize,
    flags: usize,
    offset: usize,
) -> Result<usize> {
    let test = current_test()?;
    let file = file.map_or(core::ptr::null_mut(), |f| f.as_ptr());
    // SAFETY: `test` is the running test; `file` is NULL or a valid file.
    let addr = unsafe { bindings::kunit_vm_mmap(test, file, 0, len, prot, flags, offset) };
    if addr == 0 || addr >= (-4095isize) as usize {
        return Err(ENOMEM);
    }
    Ok(addr)
}

/// Returns a reference to the mm of the current KUnit test thread, attached by [`vm_mmap`]
/// (`mmget()`: the address space stays alive while the reference is held).
pub fn current_mm() -> Result<ARef<MmWithUser>> {
    crate::current!()
        .mm()
        .ok_or(EINVAL)?
        .mmget_not_zero()
        .ok_or(EINVAL)
}

/// Reads `buf.len()` bytes of user memory at `addr` in the current mm (`copy_from_user()`).
///
/// This goes through the page tables: an address whose PTE is missing is faulted in.
pub fn read_user(addr: usize, buf: &mut [u8]) -> Result {
    UserSlice::new(UserPtr::from_addr(addr), buf.len())
        .reader()
        .read_slice(buf)
}

/// Writes `data` to user memory at `addr` in the current mm (`copy_to_user()`).
pub fn write_user(addr: usize, data: &[u8]) -> Result {
    UserSlice::new(UserPtr::from_addr(addr), data.len())
        .writer()
        .write_slice(data)
}

/// Writes `data` at byte offset `pos` of `file` (`kernel_write()`).
pub fn file_write(file: &File, pos: i64, data: &[u8]) -> Result {
    let mut pos = pos;
    // SAFETY: `file` is valid, `data` is readable for its length, `pos` is writable.
    let ret = unsafe {
        bindings::kernel_write(file.as_ptr(), data.as_ptr().cast(), data.len(), &mut pos)
    };
    if ret < 0 {
        return Err(Error::from_errno(ret as i32));
    }
    if ret as usize != data.len() {
        return Err(EIO);
    }
    Ok(())
}

/// Preallocates `len` bytes at `offset` of `file` without writing them (`vfs_fallocate()`).
pub fn file_fallocate(file: &File, mode: i32, offset: i64, len: i64) -> Result {
    // SAFETY: `file` is valid.
    to_result(unsafe { bindings::vfs_fallocate(file.as_ptr(), mode, offset, len) })
}

/// Truncates or extends `file` to `len` bytes (`vfs_truncate()`).
pub fn file_truncate(file: &File, len: i64) -> Result {
    // SAFETY: `file` is valid, and so is its `f_path`.
    to_result(unsafe { bindings::vfs_truncate(&(*file.as_ptr()).__bindgen_anon_1.f_path, len) })
}

/// The contents tests write at the start of page `n` of a file: `page NNN`.
pub fn page_tag(n: usize) -> [u8; 8] {
    let mut t = *b"page 000";
    t[5] = b'0' + (n / 100 % 10) as u8;
    t[6] = b'0' + (n / 10 % 10) as u8;
    t[7] = b'0' + (n % 10) as u8;
    t
}

/// Reads `buf.len()` bytes at byte `offset` of a page of a folio (`memcpy_from_page()`).
///
/// Fails with `EINVAL`, reading nothing, if the range is not inside the page.
///
/// # Safety
///
/// Nothing may write to those bytes during the call (the folio is locked, or the test is the only
/// writer).
pub unsafe fn read_folio_page(page: FolioPage<'_>, offset: usize, buf: &mut [u8]) -> Result {
    let size = crate::page::PAGE_SIZE;
    if offset > size || buf.len() > size - offset {
        return Err(EINVAL);
    }
    // SAFETY: The page is a page of a folio that the caller holds a reference on; the mapping is
    // local to this task and undone before returning; `offset + buf.len()` is inside the page, and
    // the caller guarantees that nothing writes those bytes meanwhile.
    unsafe {
        let addr = bindings::kmap_local_page(page.as_ptr()).cast::<u8>();
        core::ptr::copy_nonoverlapping(addr.add(offset), buf.as_mut_ptr(), buf.len());
        bindings::kunmap_local(addr.cast());
    }
    Ok(())
}

/// Creates a shmem file of `pages` pages, writes [`page_tag`] at the start of each page in
/// `written`, and maps the first `map_pages` pages of it with `prot` and `flags` (see [`prot`]).
///
/// Returns the file and the address of the mapping.
pub fn shmem_mapped(
    name: &CStr,
    pages: usize,
    written: impl IntoIterator<Item = usize>,
    map_pages: usize,
    prot: usize,
    flags: usize,
) -> Result<(ARef<File>, usize)> {
    let page = crate::page::PAGE_SIZE;
    let file = shmem_file_setup(name, (pages * page) as i64)?;
    for n in written {
        file_write(&file, (n * page) as i64, &page_tag(n))?;
    }
    let addr = vm_mmap(Some(&file), map_pages * page, prot, flags, 0)?;
    Ok((file, addr))
}

/// A tmpfs instance mounted with `huge=always`, for tests that need large folios in the page
/// cache; unmounted on drop.
pub struct HugeTmpfs {
    mnt: core::ptr::NonNull<bindings::vfsmount>,
}

impl HugeTmpfs {
    /// Mounts a new instance (`vfs_kern_mount()`); `Ok(None)` if this kernel has no tmpfs.
    pub fn new() -> Result<Option<Self>> {
        // SAFETY: The name is a valid NUL-terminated string.
        let fs_type = unsafe { bindings::get_fs_type(c"tmpfs".as_char_ptr()) };
        if fs_type.is_null() {
            return Ok(None);
        }
        let mut opts = *b"huge=always\0";
        // SAFETY: `fs_type` is valid; the options are a writable NUL-terminated string, which
        // the mount may modify while parsing it.
        let mnt = unsafe {
            bindings::vfs_kern_mount(fs_type, 0, c"tmpfs".as_char_ptr(), opts.as_mut_ptr().cast())
        };
        // SAFETY: Drops the reference `get_fs_type()` took.
        unsafe { bindings::put_filesystem(fs_type) };
        let mnt = crate::error::from_err_ptr(mnt)?;
        // SAFETY: `vfs_kern_mount()` returned a valid mount or an error, handled above.
        let mnt = unsafe { core::ptr::NonNull::new_unchecked(mnt) };
        Ok(Some(Self { mnt }))
    }

    /// Creates an unlinked file of `size` bytes on this instance (`shmem_file_setup_with_mnt()`).
    pub fn file(&self, name: &CStr, size: i64) -> Result<ARef<File>> {
        // SAFETY: The mount is valid while `self` lives; the name is a valid string.
        let file = crate::error::from_err_ptr(unsafe {
            bindings::shmem_file_setup_with_mnt(
                self.mnt.as_ptr(),
                name.as_char_ptr(),
                size,
                Default::default(),
            )
        })?;
        // SAFETY: The new file comes with one reference, which we own.
        Ok(unsafe { ARef::from_raw(core::ptr::NonNull::new_unchecked(file.cast())) })
    }
}

impl Drop for HugeTmpfs {
    fn drop(&mut self) {
        // SAFETY: We own the mount reference from `vfs_kern_mount()`.
        unsafe { bindings::kern_unmount(self.mnt.as_ptr()) };
    }
}

/// A file of one PMD-sized folio on a [`HugeTmpfs`], each page holding its [`page_tag`].
pub struct ThpFile {
    /// The file.
    pub file: ARef<File>,
    /// Its folio, with a reference of its own.
    pub folio: ARef<Folio>,
    _tmpfs: HugeTmpfs,
}

impl ThpFile {
    /// Returns the size of the file, and of its folio: `PMD_SIZE`, a variable on 64-bit book3s
    /// powerpc.
    pub fn size() -> usize {
        // SAFETY: Reads a constant, or a variable that is set once, at boot.
        let ptrs_per_pte = unsafe { bindings::ptrs_per_pte() } as usize;
        ptrs_per_pte * crate::page::PAGE_SIZE
    }

    /// Creates a [`ThpFile`]; `None`, and the test marked skipped, if there is no tmpfs or no
    /// PMD-sized folio could be had (tmpfs falls back to smaller folios when memory is
    /// fragmented).
    pub fn new(name: &CStr) -> Result<Option<Self>> {
        let page = crate::page::PAGE_SIZE;
        let Some(tmpfs) = HugeTmpfs::new()? else {
            crate::kunit::mark_skipped(c"no tmpfs");
            return Ok(None);
        };
        let file = tmpfs.file(name, Self::size() as i64)?;
        let mut data = KVec::with_capacity(Self::size(), GFP_KERNEL)?;
        for n in 0..Self::size() / page {
            data.extend_from_slice(&page_tag(n), GFP_KERNEL)?;
            data.resize((n + 1) * page, 0, GFP_KERNEL)?;
        }
        file_write(&file, 0, &data)?;
        let folio = shmem_get_folio(file.inode(), 0, 0, SgpType::Read)?
            .ok_or(ENOENT)?
            .unlock();
        if folio.nr_pages() != Self::size() / page {
            crate::kunit::mark_skipped(c"shmem did not allocate a PMD-sized folio");
            return Ok(None);
        }
        // SAFETY: Always safe to call from process context.
        unsafe { bindings::lru_add_drain_all() };
        Ok(Some(Self {
            file,
            folio,
            _tmpfs: tmpfs,
        }))
    }

    /// Maps the file shared and writable, and keeps khugepaged away from the mapping
    /// (`MADV_NOHUGEPAGE`), so that the pages a test maps stay PTE-mapped instead of being
    /// collapsed into a PMD mapping.
    #[cfg(CONFIG_ADVISE_SYSCALLS)]
    pub fn map(&self) -> Result<usize> {
        let addr = vm_mmap(
            Some(&self.file),
            Self::size(),
            prot::READ | prot::WRITE,
            prot::MAP_SHARED,
            0,
        )?;
        madvise(addr, Self::size(), bindings::MADV_NOHUGEPAGE as i32)?;
        Ok(addr)
    }
}

/// Returns the reference count of `folio` once the per-CPU LRU batches have been drained
/// (`lru_add_drain_all()`), since folios waiting in them (to be added to the LRU, activated,
/// ...) carry an extra reference for a while.
///
/// Must not be called with the mmap lock or a page table lock held: it waits for work on every
/// CPU.
pub fn settled_ref_count(folio: &crate::mm::folio::Folio) -> i32 {
    // SAFETY: Always safe to call from process context.
    unsafe { bindings::lru_add_drain_all() };
    folio.ref_count()
}

/// Applies `madvise(2)` advice to a range of the current mm (`do_madvise()`).
#[cfg(CONFIG_ADVISE_SYSCALLS)]
pub fn madvise(addr: usize, len: usize, advice: i32) -> Result {
    let mm = current_mm()?;
    // SAFETY: The mm is valid; `do_madvise()` takes the locks it needs.
    to_result(unsafe { bindings::do_madvise(mm.as_raw(), addr, len, advice) })
}

/// Creates an unlinked hugetlbfs file of `size` bytes on the internal mount, with the default
/// huge page size (`hugetlb_file_setup()`).
#[cfg(CONFIG_HUGETLBFS)]
pub fn hugetlb_file(name: &CStr, size: usize) -> Result<ARef<File>> {
    // SAFETY: The name is a valid NUL-terminated string for the duration of the call.
    let file = crate::error::from_err_ptr(unsafe {
        bindings::hugetlb_file_setup(
            name.as_char_ptr(),
            size,
            Default::default(),
            bindings::HUGETLB_ANONHUGE_INODE as i32,
            0,
        )
    })?;
    // SAFETY: The new file comes with one reference, which we own.
    Ok(unsafe { ARef::from_raw(core::ptr::NonNull::new_unchecked(file.cast())) })
}

/// Runs `f` on the PMD entry for `addr`, established under the mmap read lock of the current mm
/// as `mfill_atomic()` has it for one page.
///
/// Fails with `ENOENT` if no VMA covers `addr`, `EINVAL` if its pages are not mapped by PTE
/// tables of ordinary pages.
pub fn with_pmd<R>(addr: usize, f: impl FnOnce(&Pmd<'_>) -> Result<R>) -> Result<R> {
    let mm = current_mm()?;
    let mmap = mm.mmap_read_lock();
    let vma = mmap.vma_lookup(addr).ok_or(ENOENT)?;
    let pmd = Pmd::establish(vma.as_pte_mapped().ok_or(EINVAL)?, addr)?;
    f(&pmd)
}

/// Reads the PTE for `addr`, with the locks taken and dropped inside.
pub fn read_pte(addr: usize) -> Result<Pte> {
    with_pmd(addr, |pmd| {
        pmd.pte_offset_map_lock(|ptes| ptes.ptep_get())
            .ok_or(EAGAIN)
    })
}

/// Returns the folio the PTE at `addr` maps, with a reference of its own; `ENOENT` if the entry
/// is not present.
pub fn mapped_folio(addr: usize) -> Result<ARef<Folio>> {
    with_pmd(addr, |pmd| {
        pmd.pte_offset_map_lock(|ptes| {
            let pte = ptes.ptep_get();
            if !pte.present() {
                return Err(ENOENT);
            }
            // SAFETY: The PTE tables the mapping of a file or anonymous memory uses map ordinary
            // pages, and a present entry holds a reference on its folio; the PTE table lock
            // keeps the entry in place until the new reference is taken.
            let folio = unsafe { Folio::from_raw(bindings::pfn_folio(pte.pfn())) };
            Ok(ARef::from(folio))
        })
        .unwrap_or(Err(EAGAIN))
    })
}
