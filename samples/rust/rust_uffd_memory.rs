// SPDX-License-Identifier: GPL-2.0

//! A memory type written in Rust that supports userfaultfd minor faults.
//!
//! Every open of `/dev/rust-uffd-memory` gets memory of its own: an unlinked memfd of the device
//! (a shmem file, as `memfd_create(MFD_NOEXEC_SEAL)` makes it, with sealing closed), empty at
//! first. `mmap()` of the device maps that
//! file's page cache with the memory type's own page fault handler and userfaultfd operations,
//! both written in Rust:
//!
//! - a page fault maps the page of the page cache at the faulting offset, allocating a zeroed
//!   one for a hole; beyond the end of the file it is `SIGBUS`;
//! - in a range registered for minor faults (`UFFDIO_REGISTER_MODE_MINOR`), a page fault on a
//!   page that is in the page cache goes to the userfaultfd instead, whose handler resolves it
//!   with `UFFDIO_CONTINUE`; write protection (`UFFDIO_REGISTER_MODE_WP`) is supported, as for
//!   shmem; missing faults are not (the memory type cannot allocate for `UFFDIO_COPY`).
//!
//! The `RUST_UFFD_MEMORY_GET_FILE` ioctl (`_IO('|', 0xa0)`) returns a new file descriptor of the
//! memfd (`O_RDWR | O_CLOEXEC`, for a device opened for reading and writing; `EBADF` otherwise),
//! through which userspace sizes the memory (`ftruncate()`), fills it (`pwrite()`), and allocates
//! or punches pages (`fallocate()`). A second mapping of the device that is not registered is the
//! other way to fill it.

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
        shmem::{memfd_alloc_file, shmem_get_folio, SgpType},
        userfaultfd::{GetFolioNowait, GetFolioNowaitOp, UffdOps},
        virt::{flags as vm_flags, vm_flags_t, VmaNew, VmaRef},
        vm_ops::{UffdOpsTable, VmFault, VmFaultReason, VmOps},
    },
    prelude::*,
    sync::aref::ARef,
};

const RUST_UFFD_MEMORY_GET_FILE: u32 = _IO('|' as u32, 0xa0);

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

    fn mmap(me: &Self, _file: &File, vma: &VmaNew) -> Result {
        // The last step of `mmap`: the VMA maps the memfd, with the operations of this type.
        vma.set_shmem_file::<Self>(&me.file)
    }

    fn ioctl(me: &Self, file: &File, cmd: u32, _arg: usize) -> Result<isize> {
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
            _ => Err(ENOTTY),
        }
    }
}

/// Returns whether the page cache of `inode` has a page at `pgoff` (a hole: no; beyond the end
/// of the file: an error).
fn in_page_cache(inode: &Inode, pgoff: PgOff) -> Result<bool> {
    match shmem_get_folio(inode, pgoff, 0, SgpType::NoAlloc) {
        Ok(folio) => Ok(folio.is_some()),
        Err(e) if e == ENOENT => Ok(false),
        Err(e) => Err(e),
    }
}

#[vtable]
impl VmOps for RustUffdMemory {
    const UFFD_OPS: Option<&'static UffdOpsTable> = Some(UffdOpsTable::of::<Self>());

    fn fault(vmf: VmFault<'_>) -> VmFaultReason<'_> {
        // A page in the page cache, not mapped here, in a range registered for minor faults: a
        // minor fault, for the userfaultfd.
        let vmf = if vmf.vma().flags() & vm_flags::UFFD_MINOR != 0 {
            let cached = match vmf.vma().file() {
                Some(file) => in_page_cache(file.inode(), vmf.pgoff()),
                None => Err(EINVAL),
            };
            match cached {
                Ok(true) => match vmf.handle_userfault_minor() {
                    Ok(ret) => return ret,
                    Err(vmf) => vmf,
                },
                Ok(false) => vmf,
                Err(e) => return vmf.error(e),
            }
        } else {
            vmf
        };
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
