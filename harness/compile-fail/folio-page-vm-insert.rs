// SPDX-License-Identifier: GPL-2.0

//! A page of a folio must not reach the kernel crate's `VmaMixedMap::vm_insert_page()`.
//!
//! It would map a page-cache page into a `VM_MIXEDMAP` VMA, outside its file's `i_mmap` tree,
//! where truncation never finds it (the folio would leave the page cache still mapped: the
//! `VM_BUG_ON_FOLIO(folio_mapped())` of `filemap_unaccount_folio()`), with a file rmap and a
//! reference taken behind the page cache's back.
//!
//! A compile-fail check of `harness/uffdrs gates` (`harness/uffdrs_lib/compile_fail.py`): built
//! against the test kernel's `kernel` crate as it is, this must compile (the control); with
//! `--cfg misuse` it must fail with each error named on an `expect:` line below.
//!
//! expect: error[E0308]: mismatched types
//! expect: expected `&Page`, found `&FolioPage<'_>`

use kernel::{
    mm::{folio::Folio, virt::VmaMixedMap},
    prelude::*,
};

/// Maps the page of `folio` that holds file offset `index` at the start of `vma`.
pub fn insert(vma: &VmaMixedMap, folio: &Folio, index: usize) -> Result {
    let page = folio.file_page(index);
    #[cfg(misuse)]
    vma.vm_insert_page(vma.start(), &page)?;
    #[cfg(not(misuse))]
    let _ = (vma.start(), page.as_ptr());
    Ok(())
}
