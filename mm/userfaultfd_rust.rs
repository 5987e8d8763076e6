// SPDX-License-Identifier: GPL-2.0

//! Userfaultfd fills in Rust: `UFFDIO_CONTINUE`, and the PTE installation of every fill mode.
//!
//! This is the counterpart of `mfill_atomic_pte_continue()` and `mfill_atomic_install_pte()` in
//! `mm/userfaultfd.c`, which calls it instead of them when `CONFIG_USERFAULTFD_RUST` is enabled
//! (with `CONFIG_USERFAULTFD_RUST_TEST`, when the debugfs switch `userfaultfd/mfill_impl` says
//! `rust` or `rust-batch`). The C caller keeps what it owns: parsing the
//! ioctl, locking the VMA, `mmap_changing`, establishing the PMD, the loop, the write
//! barrier, `mapped` and the wake-ups. This file handles one page at a time:
//!
//! - [`mfill_atomic_pte_continue`] looks the folio up in the page cache without allocating and
//!   maps the page that holds the faulting offset;
//! - [`mfill_atomic_install_pte`] installs the PTE for a folio: a page-cache folio
//!   (`UFFDIO_CONTINUE`, or `UFFDIO_COPY`/`UFFDIO_ZEROPAGE` into a shared mapping once the folio
//!   was added to the page cache) or a new anonymous folio (`UFFDIO_COPY`/`UFFDIO_ZEROPAGE` into
//!   a private mapping).
//!
//! Its module `batch` resolves `UFFDIO_CONTINUE` for as many pages as one step can map, which
//! is what `mm/userfaultfd.c` calls for `UFFDIO_CONTINUE` in production builds.
//!
//! All of them run with the VMA read-locked (per-VMA lock or mmap read lock) and the PMD
//! established. The functions C calls are declared in `mm/userfaultfd_rust.h`.

use kernel::{
    bindings,
    error::{code::*, Error, Result},
    ffi::{c_int, c_ulong},
    mm::{
        folio::{page_folio, LockedFolio, NewAnonFolio},
        pgtable::{FolioAddLruVma, Pmd, VmaPteMapped},
        userfaultfd::UffdFlags,
        virt::VmaRef,
    },
};

// The KUnit tests' attribute and what they use; the code itself needs no more.
#[cfg(CONFIG_USERFAULTFD_RUST_KUNIT_TEST)]
use kernel::prelude::*;

#[path = "userfaultfd_rust/batch.rs"]
mod batch;

/// The functions internal to mm that this file calls, declared in `mm/internal.h`: the kernel
/// crate has no bindings for them.
// Pointers to C structs, some of whose members are empty on some configurations (as for
// bindgen's declarations, which `rust/bindings` allows the same lint for).
#[allow(improper_ctypes)]
mod mm_internal {
    use kernel::bindings;

    extern "C" {
        /// `mm/folio.c`.
        pub(super) fn folio_add_lru_vma(
            folio: *mut bindings::folio,
            vma: *mut bindings::vm_area_struct,
        );
    }
}

/// mm's `folio_add_lru_vma()`, for the installation of a new anonymous folio.
pub(crate) struct MmLru;

// SAFETY: It calls mm's `folio_add_lru_vma()` with its arguments, and nothing else.
unsafe impl FolioAddLruVma for MmLru {
    #[inline(always)]
    unsafe fn folio_add_lru_vma(folio: *mut bindings::folio, vma: *mut bindings::vm_area_struct) {
        // SAFETY: The caller upholds the requirements of the C function.
        unsafe { mm_internal::folio_add_lru_vma(folio, vma) }
    }
}

/// A folio on its way into a page table, with the state each kind must be in.
pub enum MfillFolio {
    /// A folio in the page cache, locked, with one reference for the new PTE.
    PageCache(LockedFolio),
    /// A new anonymous folio, with its only reference for the new PTE.
    NewAnon(NewAnonFolio),
}

impl MfillFolio {
    /// Gives the folio back to C, as it was before the call.
    fn into_raw(self) -> *mut bindings::folio {
        match self {
            MfillFolio::PageCache(folio) => folio.into_raw().as_ptr(),
            MfillFolio::NewAnon(folio) => folio.into_raw().as_ptr(),
        }
    }
}

/// Looks up the folio that holds the file offset `dst_addr` maps, for `UFFDIO_CONTINUE`.
///
/// The lookup is the memory type's `get_folio_noalloc()`: a fallocated folio is zeroed and
/// returned, a swapped-out one swapped in. Any lookup failure (a hole, beyond the end of the
/// file, an I/O error) is `EFAULT`; a hardware-poisoned page is `EIO`. The folio comes back
/// locked and with a reference.
#[inline]
fn mfill_get_folio(vma: &VmaRef, dst_addr: usize) -> Result<LockedFolio> {
    let (Some(ops), Some(file)) = (vma.uffd_ops(), vma.file()) else {
        // The C core only gets here for VMAs whose memory type supports minor faults.
        return Err(EINVAL);
    };
    let pgoff = vma.linear_page_index(dst_addr);
    // SAFETY: `ops` is the memory type's table of this VMA, and the inode that of its file.
    let folio = unsafe { ops.get_folio_noalloc(file.inode(), pgoff) }.map_err(|_| EFAULT)?;
    if folio.file_page_hwpoison(pgoff) {
        // Dropping the folio unlocks it and puts the reference.
        return Err(EIO);
    }
    Ok(folio)
}

/// Maps a folio at the address of `pmd` (`mfill_atomic_install_pte()`).
///
/// A page-cache folio is mapped at the page the VMA maps there, a new anonymous folio as is;
/// the PTE is built by the installation from the VMA and `flags` (see
/// [`PteTableGuard::set_ptes_file`]). The installation checks, under the PTE table lock, the
/// file size again (`EFAULT` beyond the end of the file, which serialises against truncation)
/// and the old entry, which must be one a fill may replace (`EEXIST` otherwise). If the PTE table
/// is gone, the error is `EAGAIN`.
///
/// On success the PTE owns the folio reference and a page-cache folio is unlocked. On failure
/// the folio comes back with the error, in the state it was passed in.
///
/// [`PteTableGuard::set_ptes_file`]: kernel::mm::pgtable::PteTableGuard::set_ptes_file
// Always inlined: the per-page step of every fill, and its callers pass one kind of folio each,
// so that only the installation of that kind is left.
#[inline(always)]
pub fn mfill_atomic_install_pte(
    pmd: &Pmd<'_>,
    folio: MfillFolio,
    flags: UffdFlags,
) -> Result<(), (Error, MfillFolio)> {
    pmd.pte_offset_map_lock_with(folio, |ptes, folio| match folio {
        MfillFolio::PageCache(folio) => ptes
            .set_ptes_file(folio, 1, flags.wp())
            .map_err(|(e, folio)| (e, MfillFolio::PageCache(folio))),
        MfillFolio::NewAnon(folio) => ptes
            .set_pte_new_anon::<MmLru>(folio, flags.wp())
            .map_err(|(e, folio)| (e, MfillFolio::NewAnon(folio))),
    })
    .unwrap_or_else(|folio| Err((EAGAIN, folio)))
}

/// Resolves a minor fault at the address of `pmd` (`mfill_atomic_pte_continue()`).
///
/// Looks the folio up with [`mfill_get_folio`], then maps the page that holds the offset, and
/// only that page, with [`mfill_atomic_install_pte`].
#[inline]
pub fn mfill_atomic_pte_continue(pmd: &Pmd<'_>, flags: UffdFlags) -> Result {
    let folio = mfill_get_folio(pmd.vma(), pmd.addr())?;
    mfill_atomic_install_pte(pmd, MfillFolio::PageCache(folio), flags).map_err(|(e, _folio)| e)
}

/// The checked prologue of the C entry points: the VMA and PMD entry of a fill step.
///
/// # Safety
///
/// `dst_vma` must be read-locked (VMA lock or mmap read lock) for `'a`, in its mm's VMA tree,
/// and a VMA the C fill paths install PTEs in (not hugetlb; registered with userfaultfd, which
/// excludes `VM_PFNMAP`, `VM_IO` and `VM_MIXEDMAP`); `dst_addr` must be a page-aligned address
/// inside it and `dst_pmd` NULL or the established PMD entry for `dst_addr`.
#[inline]
unsafe fn mfill_pmd<'a>(
    dst_vma: *mut bindings::vm_area_struct,
    dst_pmd: *mut bindings::pmd_t,
    dst_addr: c_ulong,
) -> Result<Pmd<'a>> {
    let dst_pmd = core::ptr::NonNull::new(dst_pmd).ok_or(EINVAL)?;
    // SAFETY: The caller guarantees the invariants of `VmaPteMapped` for 'a.
    let vma = unsafe { VmaPteMapped::from_raw(dst_vma) };
    // SAFETY: The caller established `dst_pmd` for `dst_addr` in `vma`, which stays locked.
    Ok(unsafe { Pmd::from_raw(vma, dst_pmd, dst_addr) })
}

/// `rust_mfill_atomic_pte_continue()`: [`mfill_atomic_pte_continue`] for C.
///
/// Returns 0 or a negative errno.
///
/// # Safety
///
/// As for [`mfill_pmd`], for the duration of the call.
// Declared in `mm/userfaultfd_rust.h`, which is internal to mm: bindgen does not see it.
#[no_mangle]
pub unsafe extern "C" fn rust_mfill_atomic_pte_continue(
    dst_vma: *mut bindings::vm_area_struct,
    dst_pmd: *mut bindings::pmd_t,
    dst_addr: c_ulong,
    flags: bindings::uffd_flags_t,
) -> c_int {
    // SAFETY: The caller upholds the requirements of `mfill_pmd()`.
    let res = unsafe { mfill_pmd(dst_vma, dst_pmd, dst_addr) }
        .and_then(|pmd| mfill_atomic_pte_continue(&pmd, UffdFlags::from_raw(flags)));
    match res {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `rust_mfill_atomic_install_pte()`: [`mfill_atomic_install_pte`] for C.
///
/// Like the C function, it tells a page-cache folio from a new anonymous one with
/// `folio_mapping()`. Returns 0 or a negative errno; on failure, the folio is left as it was
/// (locked if it is in the page cache, and with the caller's reference).
///
/// # Safety
///
/// As for [`mfill_pmd`], for the duration of the call. `page` must be a page of a folio that is
/// either in the page cache of `dst_vma`'s file, at the offset `dst_addr` maps, and locked, or
/// new and meant to become anonymous memory of `dst_vma` (see [`NewAnonFolio`]); the caller
/// holds one reference, which the new PTE takes over on success.
// Declared in `mm/userfaultfd_rust.h`, which is internal to mm: bindgen does not see it.
#[no_mangle]
pub unsafe extern "C" fn rust_mfill_atomic_install_pte(
    dst_pmd: *mut bindings::pmd_t,
    dst_vma: *mut bindings::vm_area_struct,
    dst_addr: c_ulong,
    page: *mut bindings::page,
    flags: bindings::uffd_flags_t,
) -> c_int {
    if page.is_null() {
        return EINVAL.to_errno();
    }
    // SAFETY: The caller upholds the requirements of `mfill_pmd()`.
    let pmd = match unsafe { mfill_pmd(dst_vma, dst_pmd, dst_addr) } {
        Ok(pmd) => pmd,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: `page` belongs to a folio on which the caller holds a reference.
    let folio = unsafe { page_folio(page) };
    // SAFETY: `folio` is valid and non-NULL.
    let raw = unsafe { core::ptr::NonNull::new_unchecked(folio.as_ptr()) };
    let folio = if folio.mapping().is_some() {
        // SAFETY: A page-cache folio passed here is locked; the caller lends us its lock and
        // reference, and gets them back on failure through `into_raw()`.
        MfillFolio::PageCache(unsafe { LockedFolio::from_raw(raw) })
    } else {
        // SAFETY: A folio outside the page cache passed here is a new folio for anonymous
        // memory of the VMA's mm; the caller lends us its reference, and gets it back on failure.
        MfillFolio::NewAnon(unsafe { NewAnonFolio::from_raw(raw, pmd.vma().mm()) })
    };
    match mfill_atomic_install_pte(&pmd, folio, UffdFlags::from_raw(flags)) {
        Ok(()) => 0,
        Err((e, folio)) => {
            let _ = folio.into_raw();
            e.to_errno()
        }
    }
}

#[cfg(CONFIG_USERFAULTFD_RUST_KUNIT_TEST)]
#[kunit_tests(userfaultfd_rust)]
mod tests {
    use super::*;
    use kernel::{
        error::{from_err_ptr, to_result},
        fs::{inode::Inode, File},
        mm::{
            folio::{filemap_lock_folio_nowait, Folio, PgOff},
            kunit::{self, mapped_folio, page_tag, prot, read_pte, with_pmd},
            pte::{PteKind, PteMarker},
            shmem::{shmem_get_folio, SgpType},
            userfaultfd::{GetFolioNowait, GetFolioNowaitOp, UffdOps, UffdOpsVtable},
            virt::{flags as vm, vm_flags_t},
            MmCounter,
        },
        page::PAGE_SIZE,
        str::CStr,
        sync::aref::ARef,
    };

    pub(crate) const PS: i64 = PAGE_SIZE as i64;

    /// The KUnit support of `mm/userfaultfd_rust_test.c`, declared in `mm/userfaultfd_rust.h`,
    /// which is internal to mm: bindgen does not see it.
    // As for `mm_internal`.
    #[allow(improper_ctypes)]
    pub(crate) mod uffd_kunit {
        use kernel::{
            bindings,
            ffi::{c_char, c_int, c_long, c_ulong},
        };

        extern "C" {
            pub(crate) fn uffd_kunit_open() -> *mut bindings::file;
            pub(crate) fn uffd_kunit_api(file: *mut bindings::file, features: u64) -> c_long;
            pub(crate) fn uffd_kunit_register(
                file: *mut bindings::file,
                start: c_ulong,
                len: c_ulong,
                vm_flags: bindings::vm_flags_t,
            ) -> c_long;
            pub(crate) fn uffd_kunit_copy(
                file: *mut bindings::file,
                dst: c_ulong,
                src: c_ulong,
                len: c_ulong,
                wp: bool,
                copy: *mut i64,
            ) -> c_long;
            pub(crate) fn uffd_kunit_zeropage(
                file: *mut bindings::file,
                start: c_ulong,
                len: c_ulong,
                zeropage: *mut i64,
            ) -> c_long;
            pub(crate) fn uffd_kunit_continue(
                file: *mut bindings::file,
                start: c_ulong,
                len: c_ulong,
                mode: u64,
                mapped: *mut i64,
            ) -> c_long;
            pub(crate) fn uffd_kunit_mfill_impl() -> *const c_char;
            pub(crate) fn uffd_kunit_mfill_stat(name: *const c_char) -> c_long;
            pub(crate) fn uffd_kunit_set_uffd_ops(
                addr: c_ulong,
                ops: *const bindings::vm_uffd_ops,
            ) -> c_int;
        }
    }

    /// Returns the implementation that `mm/userfaultfd.c` calls (debugfs `userfaultfd/mfill_impl`).
    pub(crate) fn mfill_impl() -> &'static CStr {
        // SAFETY: The names are static NUL-terminated strings.
        unsafe { CStr::from_char_ptr(uffd_kunit::uffd_kunit_mfill_impl()) }
    }

    /// Returns the counter of debugfs `userfaultfd/stats` called `name`.
    pub(crate) fn mfill_stat(name: &CStr) -> Result<u64> {
        // SAFETY: `name` is a NUL-terminated string.
        let v = unsafe { uffd_kunit::uffd_kunit_mfill_stat(name.as_char_ptr()) };
        if v < 0 {
            return Err(Error::from_errno(v as i32));
        }
        Ok(v as u64)
    }

    /// Makes the VMA at `addr` of the test's mm use `ops` as its memory type's userfaultfd
    /// operations (`uffd_kunit_set_uffd_ops()`), keeping its other `vm_operations_struct`
    /// members. One VMA at a time.
    pub(crate) fn set_uffd_ops(addr: usize, ops: &'static bindings::vm_uffd_ops) -> Result {
        // SAFETY: The table is static; the test's mm is attached.
        to_result(unsafe { uffd_kunit::uffd_kunit_set_uffd_ops(addr, ops) })
    }

    /// A userfaultfd context on the test's mm (`uffd_kunit_open()`), as
    /// `userfaultfd(UFFD_USER_MODE_ONLY)` makes it: a fault the kernel takes on a registered range
    /// fails instead of waiting for a handler. Released (and the ranges unregistered) on drop.
    pub(crate) struct Uffd {
        file: ARef<File>,
    }

    impl Uffd {
        pub(crate) fn new() -> Result<Self> {
            // SAFETY: Called from a KUnit test with an mm attached.
            let file = from_err_ptr(unsafe { uffd_kunit::uffd_kunit_open() })?;
            // SAFETY: The new file comes with one reference, which we own.
            let file: ARef<File> =
                unsafe { ARef::from_raw(core::ptr::NonNull::new_unchecked(file.cast())) };
            // SAFETY: `file` is a userfaultfd file.
            to_result(unsafe { uffd_kunit::uffd_kunit_api(file.as_ptr(), 0) } as i32)?;
            Ok(Self { file })
        }

        /// Registers `len` bytes at `addr` for the modes in `vm_flags` (`UFFDIO_REGISTER`).
        pub(crate) fn register(&self, addr: usize, len: usize, vm_flags: vm_flags_t) -> Result {
            // SAFETY: `file` is a userfaultfd file of the current mm.
            to_result(unsafe {
                uffd_kunit::uffd_kunit_register(self.file.as_ptr(), addr, len, vm_flags)
            } as i32)
        }

        /// `UFFDIO_COPY`: the result and the `copy` field.
        pub(crate) fn copy(&self, dst: usize, src: usize, len: usize) -> (Result, i64) {
            let mut copy = 0;
            // SAFETY: `file` is a userfaultfd file of the current mm; `copy` is writable.
            let ret = unsafe {
                uffd_kunit::uffd_kunit_copy(self.file.as_ptr(), dst, src, len, false, &mut copy)
            };
            (to_result(ret as i32), copy)
        }

        /// `UFFDIO_CONTINUE` of `len` bytes at `start`, through the ioctl: the result and the
        /// `mapped` field.
        pub(crate) fn continue_range(&self, start: usize, len: usize, mode: u64) -> (Result, i64) {
            let mut mapped = 0;
            // SAFETY: `file` is a userfaultfd file of the current mm; `mapped` is writable.
            let ret = unsafe {
                uffd_kunit::uffd_kunit_continue(self.file.as_ptr(), start, len, mode, &mut mapped)
            };
            (to_result(ret as i32), mapped)
        }

        /// `UFFDIO_ZEROPAGE`: the result and the `zeropage` field.
        pub(crate) fn zeropage(&self, start: usize, len: usize) -> (Result, i64) {
            let mut zeropage = 0;
            // SAFETY: `file` is a userfaultfd file of the current mm; `zeropage` is writable.
            let ret = unsafe {
                uffd_kunit::uffd_kunit_zeropage(self.file.as_ptr(), start, len, &mut zeropage)
            };
            (to_result(ret as i32), zeropage)
        }
    }

    /// A shmem file mapped into the KUnit mm.
    pub(crate) struct Mapping {
        pub(crate) file: ARef<File>,
        pub(crate) addr: usize,
        pub(crate) _uffd: Option<Uffd>,
    }

    /// Creates a shmem file of `size` pages whose pages `written` hold their [`page_tag`], and
    /// maps `map_pages` pages of it.
    pub(crate) fn setup(
        size: usize,
        written: &[usize],
        map_pages: usize,
        rw: bool,
        shared: bool,
    ) -> Result<Mapping> {
        let (file, addr) = kunit::shmem_mapped(
            c"userfaultfd_rust",
            size,
            written.iter().copied(),
            map_pages,
            prot::READ | if rw { prot::WRITE } else { 0 },
            if shared {
                prot::MAP_SHARED
            } else {
                prot::MAP_PRIVATE
            },
        )?;
        Ok(Mapping {
            file,
            addr,
            _uffd: None,
        })
    }

    /// Like [`setup`], with the whole mapping registered for minor faults and write protection.
    pub(crate) fn setup_registered(
        size: usize,
        written: &[usize],
        map_pages: usize,
        rw: bool,
        shared: bool,
    ) -> Result<Mapping> {
        let mut m = setup(size, written, map_pages, rw, shared)?;
        let uffd = Uffd::new()?;
        uffd.register(m.addr, map_pages * PAGE_SIZE, vm::UFFD_MINOR | vm::UFFD_WP)?;
        m._uffd = Some(uffd);
        Ok(m)
    }

    pub(crate) fn flags(wp: bool) -> UffdFlags {
        let mut f = bindings::mfill_atomic_mode_MFILL_ATOMIC_CONTINUE;
        if wp {
            f |= bindings::MFILL_ATOMIC_WP;
        }
        UffdFlags::from_raw(f)
    }

    /// Resolves a minor fault at `addr` the way `mfill_atomic()` does for one page.
    pub(crate) fn do_continue(addr: usize, wp: bool) -> Result {
        with_pmd(addr, |pmd| mfill_atomic_pte_continue(pmd, flags(wp)))
    }

    /// Writes a marker into the empty PTE at `addr`.
    pub(crate) fn set_marker(addr: usize, marker: PteMarker) -> Result {
        with_pmd(addr, |pmd| {
            pmd.pte_offset_map_lock(|ptes| ptes.set_pte_marker(marker))
                .unwrap_or(Err(EAGAIN))
        })
    }

    /// Makes the page at `addr` a guard region (`MADV_GUARD_INSTALL`).
    pub(crate) fn guard(addr: usize) -> Result {
        kunit::madvise(addr, PAGE_SIZE, bindings::MADV_GUARD_INSTALL as i32)
    }

    /// Looks up the page-cache folio at `index` (unlocked, with a reference).
    ///
    /// The per-CPU LRU batches are flushed first, so that the reference they hold on new
    /// folios does not change the counts under the test.
    pub(crate) fn cached(m: &Mapping, index: usize) -> Result<ARef<Folio>> {
        // SAFETY: Always safe to call from process context.
        unsafe { bindings::lru_add_drain_all() };
        let folio = shmem_get_folio(m.file.inode(), index, 0, SgpType::Read)?.ok_or(ENOENT)?;
        Ok(folio.unlock())
    }

    pub(crate) fn read8(addr: usize) -> Result<[u8; 8]> {
        let mut buf = [0u8; 8];
        kunit::read_user(addr, &mut buf)?;
        Ok(buf)
    }

    #[test]
    fn shared_writable() -> Result {
        let m = setup(4, &[0, 1, 2, 3], 4, true, true)?;
        let mm = kunit::current_mm()?;
        let shmem = mm.get_mm_counter_sum(MmCounter::ShmemPages);
        let folio = cached(&m, 2)?;
        let refs = kunit::settled_ref_count(&folio);
        assert_eq!(do_continue(m.addr + 2 * PAGE_SIZE, false), Ok(()));
        let pte = read_pte(m.addr + 2 * PAGE_SIZE)?;
        assert!(pte.present() && pte.write() && pte.dirty() && !pte.uffd());
        assert_eq!(pte.pfn(), folio.pfn());
        assert_eq!(folio.mapcount(), 1);
        assert_eq!(kunit::settled_ref_count(&folio), refs + 1);
        assert!(!folio.test_locked());
        assert_eq!(mm.get_mm_counter_sum(MmCounter::ShmemPages), shmem + 1);
        // Only the requested page was mapped.
        assert!(read_pte(m.addr + PAGE_SIZE)?.none());
        assert!(read_pte(m.addr + 3 * PAGE_SIZE)?.none());
        assert_eq!(read8(m.addr + 2 * PAGE_SIZE)?, page_tag(2));
        // A second CONTINUE finds the page mapped, and drops its lookup reference.
        assert_eq!(do_continue(m.addr + 2 * PAGE_SIZE, false), Err(EEXIST));
        assert_eq!(kunit::settled_ref_count(&folio), refs + 1);
        assert!(!folio.test_locked());
        Ok(())
    }

    #[test]
    fn shared_readonly() -> Result {
        let m = setup(2, &[0, 1], 2, false, true)?;
        assert_eq!(do_continue(m.addr, false), Ok(()));
        let pte = read_pte(m.addr)?;
        assert!(pte.present() && !pte.write() && pte.dirty());
        assert_eq!(read8(m.addr)?, page_tag(0));
        Ok(())
    }

    #[test]
    fn private_maps_readonly_then_cow() -> Result {
        let m = setup(2, &[0, 1], 2, true, false)?;
        let mm = kunit::current_mm()?;
        let shmem = mm.get_mm_counter_sum(MmCounter::ShmemPages);
        let anon = mm.get_mm_counter_sum(MmCounter::AnonPages);
        let folio = cached(&m, 1)?;
        let addr = m.addr + PAGE_SIZE;
        assert_eq!(do_continue(addr, false), Ok(()));
        let pte = read_pte(addr)?;
        // A page-cache page is never writable in a private mapping.
        assert!(pte.present() && !pte.write() && pte.dirty());
        assert_eq!(pte.pfn(), folio.pfn());
        assert_eq!(mm.get_mm_counter_sum(MmCounter::ShmemPages), shmem + 1);
        assert_eq!(read8(addr)?, page_tag(1));
        // A write copies the page; the page cache keeps its contents.
        kunit::write_user(addr, b"private!")?;
        let pte = read_pte(addr)?;
        assert!(pte.present() && pte.write());
        assert!(pte.pfn() != folio.pfn());
        assert_eq!(mm.get_mm_counter_sum(MmCounter::AnonPages), anon + 1);
        assert_eq!(mm.get_mm_counter_sum(MmCounter::ShmemPages), shmem);
        assert_eq!(read8(addr)?, *b"private!");
        let mut buf = [0u8; 8];
        let page = folio.page(0).ok_or(EINVAL)?;
        // SAFETY: The page is not being written.
        unsafe { kunit::read_folio_page(page, 0, &mut buf)? };
        assert_eq!(buf, page_tag(1));
        Ok(())
    }

    #[test]
    fn mode_wp() -> Result {
        let m = setup_registered(1, &[0], 1, true, true)?;
        assert_eq!(do_continue(m.addr, true), Ok(()));
        let pte = read_pte(m.addr)?;
        assert!(pte.present() && pte.uffd() && !pte.write() && pte.dirty());
        Ok(())
    }

    #[test]
    fn hole_is_efault() -> Result {
        let m = setup(4, &[0, 2], 4, true, true)?;
        let folio_refs = cached(&m, 2).map(|f| kunit::settled_ref_count(&f))?;
        assert_eq!(do_continue(m.addr + PAGE_SIZE, false), Err(EFAULT));
        assert!(read_pte(m.addr + PAGE_SIZE)?.none());
        assert_eq!(do_continue(m.addr + 2 * PAGE_SIZE, false), Ok(()));
        assert_eq!(
            cached(&m, 2).map(|f| kunit::settled_ref_count(&f))?,
            folio_refs + 1
        );
        Ok(())
    }

    #[test]
    fn beyond_eof_is_efault() -> Result {
        // Two pages of file, four pages of mapping.
        let m = setup(2, &[0, 1], 4, true, true)?;
        assert_eq!(do_continue(m.addr + 3 * PAGE_SIZE, false), Err(EFAULT));
        assert_eq!(do_continue(m.addr + 2 * PAGE_SIZE, false), Err(EFAULT));
        assert_eq!(do_continue(m.addr + PAGE_SIZE, false), Ok(()));
        Ok(())
    }

    #[test]
    fn truncate_then_continue() -> Result {
        let m = setup(4, &[0, 1, 2, 3], 4, true, true)?;
        kunit::file_truncate(&m.file, 2 * PS)?;
        assert_eq!(do_continue(m.addr + 3 * PAGE_SIZE, false), Err(EFAULT));
        assert_eq!(do_continue(m.addr + 2 * PAGE_SIZE, false), Err(EFAULT));
        assert!(read_pte(m.addr + 2 * PAGE_SIZE)?.none());
        assert_eq!(do_continue(m.addr + PAGE_SIZE, false), Ok(()));
        // Growing the file again leaves holes, which are still not mapped.
        kunit::file_truncate(&m.file, 4 * PS)?;
        assert_eq!(do_continue(m.addr + 3 * PAGE_SIZE, false), Err(EFAULT));
        Ok(())
    }

    #[test]
    fn fallocated_maps_zeroes() -> Result {
        let m = setup(2, &[0], 2, true, true)?;
        kunit::file_fallocate(&m.file, 0, PS, PS)?;
        assert_eq!(do_continue(m.addr + PAGE_SIZE, false), Ok(()));
        assert_eq!(read8(m.addr + PAGE_SIZE)?, [0u8; 8]);
        Ok(())
    }

    #[test]
    fn markers() -> Result {
        let m = setup_registered(3, &[0, 1, 2], 3, true, true)?;
        assert_eq!(set_marker(m.addr, PteMarker::UFFD_WP), Ok(()));
        assert_eq!(set_marker(m.addr + PAGE_SIZE, PteMarker::POISONED), Ok(()));
        assert_eq!(guard(m.addr + 2 * PAGE_SIZE), Ok(()));
        // Userfaultfd markers are replaced (mode 0 drops the write protection)...
        assert_eq!(do_continue(m.addr, false), Ok(()));
        let pte = read_pte(m.addr)?;
        assert!(pte.present() && pte.write() && !pte.uffd());
        assert_eq!(do_continue(m.addr + PAGE_SIZE, false), Ok(()));
        assert!(read_pte(m.addr + PAGE_SIZE)?.present());
        // ... a guard region is not.
        let refs = cached(&m, 2).map(|f| kunit::settled_ref_count(&f))?;
        assert_eq!(do_continue(m.addr + 2 * PAGE_SIZE, false), Err(EEXIST));
        assert_eq!(
            read_pte(m.addr + 2 * PAGE_SIZE)?.kind(),
            PteKind::Marker(PteMarker::GUARD)
        );
        assert_eq!(cached(&m, 2).map(|f| kunit::settled_ref_count(&f))?, refs);
        Ok(())
    }

    #[test]
    fn hwpoison_is_eio() -> Result {
        let m = setup(1, &[0], 1, true, true)?;
        let folio = cached(&m, 0)?;
        let page = folio.page(0).ok_or(EINVAL)?;
        // SAFETY: The page is ours for the test: nothing maps it and the flag is cleared below.
        unsafe { bindings::SetPageHWPoison(page.as_ptr()) };
        let res = do_continue(m.addr, false);
        let pte = read_pte(m.addr);
        // SAFETY: As above.
        unsafe { bindings::ClearPageHWPoison(page.as_ptr()) };
        if !cfg!(CONFIG_MEMORY_FAILURE) {
            kernel::kunit::mark_skipped(c"CONFIG_MEMORY_FAILURE is off");
            return Ok(());
        }
        assert_eq!(res, Err(EIO));
        assert!(pte?.none());
        assert!(!folio.test_locked());
        Ok(())
    }

    #[test]
    fn large_folio_maps_one_page() -> Result {
        let Some(t) = kunit::ThpFile::new(c"userfaultfd_rust_thp")? else {
            return Ok(());
        };
        let addr = t.map()?;
        let folio = &t.folio;
        assert_eq!(do_continue(addr + 5 * PAGE_SIZE, false), Ok(()));
        let pte = read_pte(addr + 5 * PAGE_SIZE)?;
        assert!(pte.present());
        assert_eq!(pte.pfn(), folio.pfn() + 5);
        // Exactly one page of the folio is mapped, not its neighbours.
        assert!(read_pte(addr + 4 * PAGE_SIZE)?.none());
        assert!(read_pte(addr + 6 * PAGE_SIZE)?.none());
        assert_eq!(folio.mapcount(), 1);
        assert_eq!(read8(addr + 5 * PAGE_SIZE)?, page_tag(5));
        let last = folio.nr_pages() - 1;
        assert_eq!(do_continue(addr + last * PAGE_SIZE, false), Ok(()));
        assert_eq!(read_pte(addr + last * PAGE_SIZE)?.pfn(), folio.pfn() + last);
        assert_eq!(folio.mapcount(), 2);
        Ok(())
    }

    /// `mfill_atomic_install_pte()` with a new anonymous folio, as `UFFDIO_COPY` into a private
    /// mapping does.
    #[test]
    fn install_new_anon() -> Result {
        let m = setup(2, &[0, 1], 2, true, false)?;
        // Writing to page 0 copies it, which gives the VMA its anon_vma, as
        // `anon_vma_prepare()` does for the C caller.
        kunit::write_user(m.addr, b"cow")?;
        let uffd = Uffd::new()?;
        uffd.register(m.addr, 2 * PAGE_SIZE, vm::UFFD_WP)?;
        let addr = m.addr + PAGE_SIZE;
        let mm = kunit::current_mm()?;
        let anon = mm.get_mm_counter_sum(MmCounter::AnonPages);
        let (res, pfn, again) = with_pmd(addr, |pmd| {
            let folio = NewAnonFolio::alloc_zeroed(pmd.vma(), addr)?;
            let pfn = folio.pfn();
            let res = mfill_atomic_install_pte(pmd, MfillFolio::NewAnon(folio), flags(true));
            let folio2 = NewAnonFolio::alloc_zeroed(pmd.vma(), addr)?;
            let again = mfill_atomic_install_pte(pmd, MfillFolio::NewAnon(folio2), flags(false));
            Ok((res.map_err(|(e, _)| e), pfn, again.err().map(|(e, _)| e)))
        })?;
        assert_eq!(res, Ok(()));
        assert_eq!(again, Some(EEXIST));
        let held = mapped_folio(addr)?;
        // SAFETY: Always safe to call.
        unsafe { bindings::lru_add_drain_all() };
        assert!(held.test_anon() && held.test_lru());
        assert_eq!(held.mapcount(), 1);
        assert_eq!(held.pfn(), pfn);
        assert_eq!(mm.get_mm_counter_sum(MmCounter::AnonPages), anon + 1);
        let pte = read_pte(addr)?;
        assert_eq!(pte.pfn(), pfn);
        // A new anonymous page is writable in a private writable VMA; MODE_WP protects it.
        assert!(pte.present() && pte.uffd() && !pte.write() && pte.dirty());
        assert_eq!(read8(addr)?, [0u8; 8]);
        Ok(())
    }

    /// A new anonymous folio without `MODE_WP`, in a mapping not registered with userfaultfd: a
    /// writable, dirty PTE, the folio anonymous, on the LRU (`folio_add_lru_vma()`, which only
    /// this crate can hand the installation) and counted, its contents zeroes.
    #[test]
    fn install_new_anon_writable() -> Result {
        let m = setup(2, &[0, 1], 2, true, false)?;
        kunit::write_user(m.addr, b"cow")?;
        let addr = m.addr + PAGE_SIZE;
        let mm = kunit::current_mm()?;
        let anon = mm.get_mm_counter_sum(MmCounter::AnonPages);
        let (res, pfn) = with_pmd(addr, |pmd| {
            let folio = NewAnonFolio::alloc_zeroed(pmd.vma(), addr)?;
            let pfn = folio.pfn();
            let res = mfill_atomic_install_pte(pmd, MfillFolio::NewAnon(folio), flags(false));
            Ok((res.map_err(|(e, _)| e), pfn))
        })?;
        assert_eq!(res, Ok(()));
        let pte = read_pte(addr)?;
        assert!(pte.present() && pte.write() && pte.dirty() && !pte.uffd());
        assert_eq!(pte.pfn(), pfn);
        let held = mapped_folio(addr)?;
        // SAFETY: Always safe to call.
        unsafe { bindings::lru_add_drain_all() };
        assert!(held.test_anon() && held.test_lru());
        assert_eq!(held.mapcount(), 1);
        assert_eq!(mm.get_mm_counter_sum(MmCounter::AnonPages), anon + 1);
        assert_eq!(read8(addr)?, [0u8; 8]);
        Ok(())
    }

    /// Tries to install a new anonymous folio at `addr`, which must be refused with `EINVAL`
    /// and change nothing (the entry, the anonymous counter).
    fn new_anon_refused(addr: usize, wp: bool) -> Result {
        let mm = kunit::current_mm()?;
        let anon = mm.get_mm_counter_sum(MmCounter::AnonPages);
        let res = with_pmd(addr, |pmd| {
            let folio = NewAnonFolio::alloc_zeroed(pmd.vma(), addr)?;
            let res = mfill_atomic_install_pte(pmd, MfillFolio::NewAnon(folio), flags(wp));
            Ok(res.err().map(|(e, _)| e))
        })?;
        assert_eq!(res, Some(EINVAL));
        assert_eq!(mm.get_mm_counter_sum(MmCounter::AnonPages), anon);
        assert!(read_pte(addr)?.none());
        Ok(())
    }

    /// Misuse: a new anonymous folio in a shared VMA is refused.
    #[test]
    fn new_anon_in_shared_vma() -> Result {
        let m = setup(1, &[0], 1, true, true)?;
        new_anon_refused(m.addr, false)
    }

    /// Misuse: a new anonymous folio write-protected in a VMA not registered for it is refused.
    #[test]
    fn new_anon_wp_needs_registration() -> Result {
        let m = setup(2, &[0, 1], 2, true, false)?;
        // A write to the first page gives the VMA its anon_vma.
        kunit::write_user(m.addr, b"cow")?;
        new_anon_refused(m.addr + PAGE_SIZE, true)
    }

    /// The C entry point keeps the C ownership rules: on failure the folio stays locked and the
    /// caller keeps its reference; on success the PTE owns it and the folio is unlocked.
    #[test]
    fn c_entry_point_ownership() -> Result {
        let m = setup(1, &[0], 1, true, true)?;
        let mm = kunit::current_mm()?;
        // Calls the C entry point as `mfill_atomic()` does, lending it the folio.
        let install = |folio: LockedFolio| -> Result<(c_int, *mut bindings::folio)> {
            let mmap = mm.mmap_read_lock();
            let vma = mmap.vma_lookup(m.addr).ok_or(ENOENT)?;
            let pmd = Pmd::establish(vma.as_pte_mapped().ok_or(EINVAL)?, m.addr)?;
            let raw = folio.into_raw().as_ptr();
            // SAFETY: The VMA is read-locked and the PMD established; the folio is locked and
            // the caller's reference is lent to the call.
            let ret = unsafe {
                rust_mfill_atomic_install_pte(
                    pmd.as_ptr(),
                    vma.as_ptr(),
                    m.addr,
                    bindings::folio_page(raw, 0),
                    flags(false).as_raw(),
                )
            };
            Ok((ret, raw))
        };
        let folio = shmem_get_folio(m.file.inode(), 0, 0, SgpType::NoAlloc)?.ok_or(ENOENT)?;
        let held: ARef<Folio> = ARef::from(&*folio);
        let refs = kunit::settled_ref_count(&held);
        let (first, _) = install(folio)?;
        let after_first = (held.test_locked(), kunit::settled_ref_count(&held));
        // Again over the new PTE, with the folio locked and referenced as a C caller holds it.
        let (second, raw) = install(LockedFolio::lock(held.clone()))?;
        let after_second = (held.test_locked(), kunit::settled_ref_count(&held));
        // Give the caller's lock and reference back, as the C error path does.
        // SAFETY: The failed call left both with us.
        drop(unsafe { LockedFolio::from_raw(core::ptr::NonNull::new_unchecked(raw)) });
        assert_eq!(first, 0);
        // The PTE took over the lent reference, and the folio is unlocked.
        assert_eq!(after_first, (false, refs));
        assert_eq!(second, EEXIST.to_errno());
        assert_eq!(after_second, (true, refs + 1));
        assert_eq!(kunit::settled_ref_count(&held), refs);
        Ok(())
    }

    /// The lookup of the Rust memory types below: shmem's, as `UFFDIO_CONTINUE` does it.
    fn shmem_noalloc(inode: &Inode, pgoff: PgOff) -> Result<LockedFolio> {
        shmem_get_folio(inode, pgoff, 0, SgpType::NoAlloc)?.ok_or(ENOENT)
    }

    /// A memory type written in Rust that serves minor faults from shmem, through
    /// [`UffdOpsVtable`]: its table has no `alloc_folio()`.
    pub(crate) struct MinorOnly;

    /// The owner of [`MinorOnly`]'s table: this file is built in, it is no module.
    pub(crate) struct BuiltIn;

    impl kernel::ModuleMetadata for BuiltIn {
        const NAME: &'static CStr = c"userfaultfd_rust";
        // SAFETY: A NULL module pointer stands for built-in code, which `try_module_get()` and
        // `module_put()` accept.
        const THIS_MODULE: kernel::ThisModule =
            unsafe { kernel::ThisModule::from_ptr(core::ptr::null_mut()) };
    }

    #[vtable]
    impl UffdOps for MinorOnly {
        type OwnerModule = BuiltIn;

        fn get_folio_noalloc(inode: &Inode, pgoff: PgOff) -> Result<LockedFolio> {
            shmem_noalloc(inode, pgoff)
        }
    }

    pub(crate) static MINOR_ONLY: bindings::vm_uffd_ops = UffdOpsVtable::<MinorOnly>::VTABLE;

    /// [`MinorOnly`] with `get_folio_nowait()`, for the batched step. It returns whatever the
    /// page cache holds, uptodate or not: the trampoline hands C only the uptodate ones.
    pub(crate) struct MinorNowait;

    #[vtable]
    impl UffdOps for MinorNowait {
        type OwnerModule = BuiltIn;

        fn get_folio_noalloc(inode: &Inode, pgoff: PgOff) -> Result<LockedFolio> {
            shmem_noalloc(inode, pgoff)
        }

        const GET_FOLIO_NOWAIT: Option<GetFolioNowaitOp> = Some(GetFolioNowaitOp::of::<Self>());
    }

    // SAFETY: `filemap_lock_folio_nowait()` does not sleep.
    unsafe impl GetFolioNowait for MinorNowait {
        fn get_folio_nowait(inode: &Inode, pgoff: PgOff) -> Option<LockedFolio> {
            filemap_lock_folio_nowait(inode, pgoff)
        }
    }

    pub(crate) static MINOR_NOWAIT: bindings::vm_uffd_ops = UffdOpsVtable::<MinorNowait>::VTABLE;

    /// A broken `get_folio_nowait()`: the folio of the next offset.
    pub(crate) struct NowaitOffByOne;

    #[vtable]
    impl UffdOps for NowaitOffByOne {
        type OwnerModule = BuiltIn;

        fn get_folio_noalloc(inode: &Inode, pgoff: PgOff) -> Result<LockedFolio> {
            shmem_noalloc(inode, pgoff)
        }

        const GET_FOLIO_NOWAIT: Option<GetFolioNowaitOp> = Some(GetFolioNowaitOp::of::<Self>());
    }

    // SAFETY: `filemap_lock_folio_nowait()` does not sleep.
    unsafe impl GetFolioNowait for NowaitOffByOne {
        fn get_folio_nowait(inode: &Inode, pgoff: PgOff) -> Option<LockedFolio> {
            filemap_lock_folio_nowait(inode, pgoff + 1)
        }
    }

    pub(crate) static NOWAIT_OFF_BY_ONE: bindings::vm_uffd_ops =
        UffdOpsVtable::<NowaitOffByOne>::VTABLE;

    /// `UFFDIO_COPY` and `UFFDIO_ZEROPAGE` into a shared mapping of a memory type without
    /// `alloc_folio()` get `EINVAL` from the C core, before anything is allocated or mapped,
    /// instead of a call through a NULL pointer; `UFFDIO_CONTINUE` goes through its table.
    #[test]
    fn misuse_copy_without_alloc_folio() -> Result {
        let m = setup(3, &[2], 3, true, true)?;
        set_uffd_ops(m.addr, &MINOR_ONLY)?;
        let uffd = Uffd::new()?;
        // Registration asks the Rust table (`can_userfault()`).
        assert_eq!(
            uffd.register(m.addr, 3 * PAGE_SIZE, vm::UFFD_MISSING),
            Err(EINVAL)
        );
        uffd.register(m.addr, 3 * PAGE_SIZE, vm::UFFD_MINOR)?;
        let src = kunit::vm_mmap(
            None,
            PAGE_SIZE,
            prot::READ | prot::WRITE,
            prot::MAP_PRIVATE,
            0,
        )?;
        kunit::write_user(src, b"copied!!")?;
        let mm = kunit::current_mm()?;
        let shmem = mm.get_mm_counter_sum(MmCounter::ShmemPages);
        assert_eq!(
            uffd.copy(m.addr, src, PAGE_SIZE),
            (Err(EINVAL), i64::from(EINVAL.to_errno()))
        );
        assert_eq!(
            uffd.zeropage(m.addr + PAGE_SIZE, PAGE_SIZE),
            (Err(EINVAL), i64::from(EINVAL.to_errno()))
        );
        // Nothing was mapped or added to the page cache.
        assert!(read_pte(m.addr)?.none() && read_pte(m.addr + PAGE_SIZE)?.none());
        for index in 0..2 {
            assert!(shmem_get_folio(m.file.inode(), index, 0, SgpType::Read)?.is_none());
        }
        assert_eq!(mm.get_mm_counter_sum(MmCounter::ShmemPages), shmem);
        // Minor faults are resolved through the Rust table.
        assert!(pmd_vma_uffd_ops_is(m.addr, &MINOR_ONLY)?);
        assert_eq!(do_continue(m.addr + 2 * PAGE_SIZE, false), Ok(()));
        assert_eq!(read8(m.addr + 2 * PAGE_SIZE)?, page_tag(2));
        assert_eq!(do_continue(m.addr, false), Err(EFAULT));
        Ok(())
    }

    /// Returns whether the VMA at `addr` has `ops` as its userfaultfd operations.
    fn pmd_vma_uffd_ops_is(addr: usize, ops: &bindings::vm_uffd_ops) -> Result<bool> {
        with_pmd(addr, |pmd| {
            Ok(pmd
                .vma()
                .uffd_ops()
                .is_some_and(|o| core::ptr::eq(o.as_ptr(), ops)))
        })
    }
}
