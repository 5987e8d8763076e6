// SPDX-License-Identifier: GPL-2.0

//! A memory type written in Rust that supports userfaultfd minor faults.
//!
//! Every open of `/dev/rust-uffd-memory` gets memory of its own: an unlinked memfd of the device
//! (a shmem file, as `memfd_create(MFD_NOEXEC_SEAL)` makes it, with sealing closed), empty at
//! first. `mmap()` of the device (its `mmap_prepare` hook) maps that file's page cache with the
//! memory type's own page fault handler and userfaultfd operations, both written in Rust:
//!
//! - a page fault maps the page of the page cache at the faulting offset, allocating a zeroed
//!   one for a hole; beyond the end of the file it is `SIGBUS`;
//! - in a range registered for minor faults (`UFFDIO_REGISTER_MODE_MINOR`), a page fault on a
//!   page that has an entry in the page cache goes to the userfaultfd instead, whose handler
//!   resolves it with `UFFDIO_CONTINUE`. As for shmem, the entry decides, and nothing is done to
//!   it first: a swapped-out page stays swapped out until `UFFDIO_CONTINUE` swaps it in (and a
//!   swap-in error is that ioctl's, not a signal of the faulting task), a fallocated page stays
//!   unwritten until `UFFDIO_CONTINUE` zeroes it. Write protection (`UFFDIO_REGISTER_MODE_WP`) is
//!   supported, as for shmem; missing faults are not (the memory type cannot allocate for
//!   `UFFDIO_COPY`).
//!
//! It can be built as a module: every mapping holds a reference on it, so that it cannot be
//! unloaded while one exists, even once the device is closed.
//!
//! The `RUST_UFFD_MEMORY_GET_FILE` ioctl (`_IO('|', 0xa0)`) returns a new file descriptor of the
//! memfd (`O_RDWR | O_CLOEXEC`, for a device opened for reading and writing; `EBADF` otherwise),
//! through which userspace sizes the memory (`ftruncate()`), fills it (`pwrite()`), and allocates
//! or punches pages (`fallocate()`). A second mapping of the device that is not registered is the
//! other way to fill it.
//!
//! In kernels built for testing (`CONFIG_USERFAULTFD_RUST_TEST`), two more ioctls let the
//! selftests check that a failed `mmap()` leaves no reference behind: `RUST_UFFD_MEMORY_FAIL_MMAP`
//! (`_IO('|', 0xa1)`, the argument a step) makes the next `mmap()` of the device fail with
//! `ECANCELED` at that step: 1 in `mmap_prepare` before it sets the memfd, 2 right after, 3 once
//! the VMA exists (`->mapped()`); `RUST_UFFD_MEMORY_FILE_COUNT` (`_IO('|', 0xa2)`) returns the
//! number of references on the memfd of this open.

use kernel::{
    fs::{
        file::{flags, FileDescriptorReservation},
        inode::Inode,
        File,
    },
    ioctl::_IO,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    mm::{
        folio::{filemap_lock_folio_nowait, LockedFolio, PgOff},
        shmem::{memfd_alloc_file, shmem_find_entry, shmem_get_folio, SgpType, ShmemEntry},
        userfaultfd::{GetFolioNowait, GetFolioNowaitOp, UffdOps},
        virt::{flags as vm_flags, vm_flags_t, VmaRef},
        vm_ops::{UffdOpsTable, VmFault, VmFaultReason, VmOps, VmaDesc},
    },
    prelude::*,
    sync::aref::ARef,
};

const RUST_UFFD_MEMORY_GET_FILE: u32 = _IO('|' as u32, 0xa0);

/// Test builds: the failures of `mmap()` that a test may ask for, and the file's references.
#[cfg(CONFIG_USERFAULTFD_RUST_TEST)]
mod test_support {
    use kernel::{
        bindings,
        fs::File,
        ioctl::_IO,
        prelude::*,
        sync::atomic::{Atomic, Relaxed},
    };

    pub(crate) const RUST_UFFD_MEMORY_FAIL_MMAP: u32 = _IO('|' as u32, 0xa1);
    pub(crate) const RUST_UFFD_MEMORY_FILE_COUNT: u32 = _IO('|' as u32, 0xa2);

    /// Fail in `mmap_prepare`, before the memfd is set.
    pub(crate) const BEFORE_SET: u32 = 1;
    /// Fail in `mmap_prepare`, after the memfd is set.
    pub(crate) const AFTER_SET: u32 = 2;
    /// Fail in `->mapped()`, once the VMA exists.
    pub(crate) const MAPPED: u32 = 3;

    /// The step at which the next `mmap()` of the device fails, 0 for none.
    static FAIL_STEP: Atomic<u32> = Atomic::new(0);

    /// Arms a failure of the next `mmap()` at `step`.
    pub(crate) fn arm(step: usize) -> Result<isize> {
        let step = u32::try_from(step).map_err(|_| EINVAL)?;
        if step > MAPPED {
            return Err(EINVAL);
        }
        FAIL_STEP.store(step, Relaxed);
        Ok(0)
    }

    /// Fails with `ECANCELED` if a failure at `step` is armed, disarming it.
    pub(crate) fn fail_at(step: u32) -> Result {
        match FAIL_STEP.cmpxchg(step, 0, Relaxed) {
            Ok(_) => Err(ECANCELED),
            Err(_) => Ok(()),
        }
    }

    /// The number of references on `file` (`file_count()`).
    pub(crate) fn file_count(file: &File) -> isize {
        // SAFETY: `file` is valid; the count is read once.
        unsafe { bindings::file_ref_read(&raw mut (*file.as_ptr()).f_ref) as isize }
    }
}

module! {
    type: RustUffdMemoryModule,
    name: "rust_uffd_memory",
    authors: ["uffd-continue-rs"],
    description: "Rust memory type with userfaultfd minor faults",
    license: "GPL",
}

#[pin_data]
struct RustUffdMemoryModule {
    #[pin]
    _miscdev: MiscDeviceRegistration<RustUffdMemory>,
}

impl kernel::InPlaceModule for RustUffdMemoryModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let options = MiscDeviceOptions {
            name: c"rust-uffd-memory",
        };
        try_pin_init!(Self {
            _miscdev <- MiscDeviceRegistration::register(options),
        })
    }
}

/// The memory of one open of the device.
struct RustUffdMemory {
    /// The memfd whose page cache backs every mapping of this open.
    file: ARef<File>,
}

#[vtable]
impl MiscDevice for RustUffdMemory {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        let file = memfd_alloc_file(c"rust-uffd-memory")?;
        Ok(KBox::new(Self { file }, GFP_KERNEL)?)
    }

    fn mmap_prepare(me: &Self, _file: &File, desc: &VmaDesc) -> Result {
        #[cfg(CONFIG_USERFAULTFD_RUST_TEST)]
        test_support::fail_at(test_support::BEFORE_SET)?;
        // The VMA maps the memfd, with the operations of this type.
        desc.set_shmem_file::<Self>(&me.file)?;
        #[cfg(CONFIG_USERFAULTFD_RUST_TEST)]
        test_support::fail_at(test_support::AFTER_SET)?;
        Ok(())
    }

    fn ioctl(me: &Self, file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            RUST_UFFD_MEMORY_GET_FILE => {
                // The memfd is open for reading and writing: hand it out only to an open that
                // may do both.
                if file.flags() & flags::O_ACCMODE != flags::O_RDWR {
                    return Err(EBADF);
                }
                let fd = FileDescriptorReservation::get_unused_fd_flags(flags::O_CLOEXEC)?;
                let nr = fd.reserved_fd();
                fd.fd_install(me.file.clone());
                Ok(nr as isize)
            }
            #[cfg(CONFIG_USERFAULTFD_RUST_TEST)]
            test_support::RUST_UFFD_MEMORY_FAIL_MMAP => test_support::arm(arg),
            #[cfg(CONFIG_USERFAULTFD_RUST_TEST)]
            test_support::RUST_UFFD_MEMORY_FILE_COUNT => Ok(test_support::file_count(&me.file)),
            _ => {
                let _ = arg;
                Err(ENOTTY)
            }
        }
    }
}

#[vtable]
impl VmOps for RustUffdMemory {
    const UFFD_OPS: Option<&'static UffdOpsTable> = Some(UffdOpsTable::of::<Self>());

    #[cfg(CONFIG_USERFAULTFD_RUST_TEST)]
    fn mapped(_start: usize, _end: usize, _pgoff: PgOff, _file: &File) -> Result {
        test_support::fail_at(test_support::MAPPED)
    }

    // `VM_UFFD_MINOR` is `VM_NONE` on 32-bit architectures (arm, ppc32), which have no minor
    // faults: every fault is resolved here.
    #[allow(clippy::bad_bit_mask)]
    fn fault(vmf: VmFault<'_>) -> VmFaultReason<'_> {
        // As shmem decides (`shmem_fault()`): in a range registered for minor faults, a page
        // the page cache has an entry for, even one swapped out or not uptodate, is a minor
        // fault for the userfaultfd, as it stands; beyond the end of the file, `SIGBUS`.
        if vmf.vma().flags() & vm_flags::UFFD_MINOR == 0 {
            return Self::fault_in_page(vmf);
        }
        let entry = match vmf.vma().file() {
            Some(file) => shmem_find_entry(file.inode(), vmf.pgoff()),
            None => Err(EINVAL),
        };
        let vmf = match entry {
            Err(e) => return vmf.error(e),
            Ok(ShmemEntry::BeyondEof) => return vmf.sigbus(),
            Ok(ShmemEntry::Present) => match vmf.handle_userfault_minor() {
                Ok(ret) => return ret,
                Err(vmf) => vmf,
            },
            Ok(ShmemEntry::Hole) => vmf,
        };
        Self::fault_in_page(vmf)
    }
}

impl RustUffdMemory {
    /// Resolves a fault with the page of the page cache, allocating a zeroed one for a hole.
    fn fault_in_page(vmf: VmFault<'_>) -> VmFaultReason<'_> {
        let folio = match vmf.vma().file() {
            Some(file) => shmem_get_folio(file.inode(), vmf.pgoff(), 0, SgpType::Cache),
            None => Err(EINVAL),
        };
        match folio {
            Ok(Some(folio)) => vmf.set_folio(folio),
            Ok(None) => vmf.sigbus(),
            Err(e) => vmf.error(e),
        }
    }
}

#[vtable]
impl UffdOps for RustUffdMemory {
    // `VM_UFFD_RWP` is `VM_NONE` where the architecture has no RWP (loongarch, powerpc): then
    // no VMA is registered for it, and the mask is 0.
    #[allow(clippy::bad_bit_mask)]
    fn can_userfault(_vma: &VmaRef, vm_flags: vm_flags_t) -> bool {
        // Minor faults and write protection; no read-write protection.
        vm_flags & vm_flags::UFFD_RWP == 0
    }

    fn get_folio_noalloc(inode: &Inode, pgoff: PgOff) -> Result<LockedFolio> {
        shmem_get_folio(inode, pgoff, 0, SgpType::NoAlloc)?.ok_or(ENOENT)
    }

    const GET_FOLIO_NOWAIT: Option<GetFolioNowaitOp> = Some(GetFolioNowaitOp::of::<Self>());
}

// SAFETY: `get_folio_nowait()` only calls `filemap_lock_folio_nowait()`, which neither sleeps
// nor allocates.
unsafe impl GetFolioNowait for RustUffdMemory {
    fn get_folio_nowait(inode: &Inode, pgoff: PgOff) -> Option<LockedFolio> {
        // The page cache as `get_folio_noalloc()` would find it without sleeping: a hole, a
        // swapped-out page or a locked folio is `None`, and the table drops a folio that is not
        // uptodate (a fallocated one, which `shmem_get_folio()` would zero).
        filemap_lock_folio_nowait(inode, pgoff)
    }
}
