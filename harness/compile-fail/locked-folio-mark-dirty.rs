// SPDX-License-Identifier: GPL-2.0

//! A locked folio cannot be dirtied from safe code: with a page-cache lookup of another file
//! system's inode, that would change a file behind its file system's back (the `set_page_dirty()`
//! of pages pinned with GUP). `LockedFolio` has no `mark_dirty()`; the lookup that never sleeps,
//! `filemap_lock_folio_nowait()`, only looks up shmem inodes (the KUnit case
//! `rust_mm_userfaultfd.lock_folio_nowait_shmem_only`).
//!
//! A compile-fail check of `harness/uffdrs gates` (`harness/uffdrs_lib/compile_fail.py`): built
//! against the test kernel's `kernel` crate as it is, this must compile (the control); with
//! `--cfg misuse` it must fail with each error named on an `expect:` line below.
//!
//! expect: error[E0599]: no method named `mark_dirty` found for reference `&LockedFolio`

use kernel::mm::folio::LockedFolio;

/// Marks `folio` dirty.
pub fn dirty(folio: &LockedFolio) -> bool {
    #[cfg(misuse)]
    return folio.mark_dirty();
    #[cfg(not(misuse))]
    folio.test_dirty()
}
