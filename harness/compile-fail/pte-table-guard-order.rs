// SPDX-License-Identifier: GPL-2.0

//! PTE table guards are always released in the reverse order of their creation.
//!
//! With `CONFIG_HIGHPTE` (32-bit arm with highmem), `pte_offset_map_lock()` maps the table with
//! `kmap_local_page()`, and `kunmap_local()` pops the top of the task's stack of such mappings,
//! whatever address it is given. A guard released before a guard made after it would unmap the
//! later guard's table, which a third guard could then map to another table: the later guard
//! would read and write the wrong page table. So `Pmd::pte_offset_map_lock()` lends the guard to
//! a closure, and the lifetime `'g` of `PteTableGuard<'a, 'g>` belongs to that call alone: a
//! guard can neither leave the closure (here, kept in a variable of the caller) nor take the
//! place of the guard of an enclosing call (here, `core::mem::swap()` of the two, of the same
//! VMA lock).
//!
//! A compile-fail check of `harness/uffdrs gates` (`harness/uffdrs_lib/compile_fail.py`): built
//! against the test kernel's `kernel` crate as it is, this must compile (the control); with
//! `--cfg misuse` it must fail with each error named on an `expect:` line below.
//!
//! expect: error[E0521]: borrowed data escapes outside of closure
//! expect: `gb` escapes the closure body here
//! expect: `g` escapes the closure body here

use kernel::mm::pgtable::{Pmd, PteTableGuard};

/// Reads the first entries of the PTE tables of `a` and `b`, the table of `b` locked inside the
/// call that locked the one of `a`.
pub fn nested<'a>(a: &Pmd<'a>, b: &Pmd<'a>) -> Option<bool> {
    a.pte_offset_map_lock(|ga| {
        b.pte_offset_map_lock(|gb| {
            #[cfg(misuse)]
            core::mem::swap(ga, gb);
            ga.ptep_get().none() && gb.ptep_get().none()
        })
    })
    .flatten()
}

/// Reads the first entry of the PTE table of `a`.
pub fn kept<'a>(a: &Pmd<'a>) -> Option<bool> {
    let mut _keep: Option<&mut PteTableGuard<'a, '_>> = None;
    a.pte_offset_map_lock(|g| {
        let none = g.ptep_get().none();
        #[cfg(misuse)]
        {
            _keep = Some(g);
        }
        none
    })
}
