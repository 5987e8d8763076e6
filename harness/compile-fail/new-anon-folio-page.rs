// SPDX-License-Identifier: GPL-2.0

//! The page of a `NewAnonFolio` is not handed out: safe code could map it (with
//! `VmaMixedMap::vm_insert_page()`, as a file page) before its anonymous rmap exists, which its
//! invariant says cannot happen. Only the PTE installation of the kernel crate takes it.
//!
//! A compile-fail check of `harness/uffdrs gates` (`harness/uffdrs_lib/compile_fail.py`): built
//! against the test kernel's `kernel` crate as it is, this must compile (the control); with
//! `--cfg misuse` it must fail with each error named on an `expect:` line below.
//!
//! expect: error[E0624]: method `page` is private

use kernel::mm::{folio::NewAnonFolio, virt::VmaMixedMap};

/// Maps the page of a new anonymous folio at the start of `vma`.
pub fn insert(vma: &VmaMixedMap, folio: &NewAnonFolio) -> usize {
    #[cfg(misuse)]
    let _ = vma.vm_insert_page(vma.start(), &folio.page());
    vma.start() + folio.pfn()
}
