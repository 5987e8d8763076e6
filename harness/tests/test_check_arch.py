# SPDX-License-Identifier: GPL-2.0
"""Tests of check-arch: the architectures, an unbuildable one, the table."""

import os
import unittest

from uffdrs_lib import check_arch
from uffdrs_lib.results import Results

RUSTAVAILABLE_S390 = """make[1]: Entering directory '/tmp/s390'
***
*** Rust compiler 'rustc' is too old.
***   Your version:    1.95.0
***   Minimum version: 1.96.0
***
"""


class CheckArchTest(unittest.TestCase):

    def test_every_rust_architecture(self) -> None:
        # Every architecture that selects HAVE_RUST in the base, PPC32 and
        # 64-bit little-endian powerpc separately; each one has its fragment.
        self.assertEqual(sorted(check_arch.ARCHES), sorted([
            "x86_64", "arm64", "arm", "loongarch", "ppc64le", "ppc32", "riscv", "s390",
            "um"]))
        cfg = os.path.join(os.path.dirname(__file__), "..", "config")
        self.assertTrue(os.path.exists(os.path.join(cfg, "check-arch.config")))
        for name, a in check_arch.ARCHES.items():
            if a.arch is not None:
                self.assertTrue(os.path.exists(os.path.join(cfg, f"{name}.config")), name)

    def test_rust_too_old(self) -> None:
        self.assertEqual(check_arch.rust_too_old(RUSTAVAILABLE_S390),
                         "the base wants rustc 1.96.0 for this architecture "
                         "(scripts/min-tool-version.sh), this is 1.95.0")
        self.assertIsNone(check_arch.rust_too_old("*** Source code for the 'core' "
                                                  "standard library could not be found"))

    def test_table(self) -> None:
        res = Results()
        res.ok("check-arch arm: vmlinux builds")
        res.ok("check-arch arm: no warning in the build (0 warning lines)")
        res.ok("check-arch riscv: vmlinux builds")
        res.fail("check-arch riscv: no warning in the build (1 warning lines)", "warning: x")
        res.skip("check-arch s390: cannot be built here", "the base wants rustc 1.96.0")
        text = check_arch.table(res, ["arm", "riscv", "s390", "um"], {"arm": 61.4})
        self.assertEqual(text.splitlines()[2:], [
            "| arm | arm | ARMv7 multiplatform, little endian, LPAE | passed | 61 s |",
            "| riscv | riscv | 64-bit, Svrsw60t59b (uffd-wp) | FAILED: no warning in the "
            "build (1 warning lines) | 0 s |",
            "| s390 | s390 | 64-bit | cannot be built here: the base wants rustc 1.96.0 | 0 s |",
            "| um | um | user-mode Linux on x86_64 | not run | 0 s |",
        ])

    def test_base_warnings(self) -> None:
        log = "\n".join([
            "  RUSTC L rust/core.o",
            "warning: unstable feature specified for `-Ctarget-feature`: `altivec`",
            "  |",
            "warning: unknown and unstable feature specified for `-Ctarget-feature`: `mma`",
            "  |",
            "  = note: this feature is not stably supported",
            "warning: 4 warnings emitted",
            "  CLIPPY L rust/kernel.o",
            "warning: unused import: `Page`",
            " --> rust/kernel/mm/pte.rs:26:5",
            "warning: 1 warning emitted",
        ])
        bad, base = check_arch.judge_warnings("ppc64le", log)
        self.assertEqual(base, ["warning: unstable feature specified for `-Ctarget-feature`: "
                                "`altivec`",
                                "warning: unknown and unstable feature specified for "
                                "`-Ctarget-feature`: `mma`"])
        self.assertEqual(len(bad), 1)
        self.assertTrue(bad[0].startswith("warning: unused import: `Page`"))
        # Elsewhere, the same line is a warning like any other.
        bad, base = check_arch.judge_warnings("arm64", log)
        self.assertEqual((len(bad), base), (3, []))

    def test_um_base_warnings(self) -> None:
        # The four lines of check-arch um on the series (7 December 2026).
        um = [
            "clang-22: warning: argument unused during compilation: '-mno-3dnow' "
            "[-Wunused-command-line-argument]",
            "/usr/bin/ld: warning: .tmp_vmlinux1 has a LOAD segment with RWX permissions",
            "/usr/bin/ld: warning: .tmp_vmlinux2 has a LOAD segment with RWX permissions",
            "/usr/bin/ld: warning: vmlinux.unstripped has a LOAD segment with RWX permissions",
        ]
        log = "\n".join(["  CC      arch/um/kernel/skas/stub.o", *um,
                         "mm/userfaultfd.c:10:5: warning: unused variable 'x' [-Wunused-variable]",
                         "clang-22: warning: argument unused during compilation: '-mno-sse' "
                         "[-Wunused-command-line-argument]",
                         "/usr/bin/ld: warning: mm/userfaultfd.o has a LOAD segment with RWX "
                         "permissions"])
        bad, base = check_arch.judge_warnings("um", log)
        self.assertEqual(base, um)
        self.assertEqual([b.splitlines()[0] for b in bad], [
            "mm/userfaultfd.c:10:5: warning: unused variable 'x' [-Wunused-variable]",
            "clang-22: warning: argument unused during compilation: '-mno-sse' "
            "[-Wunused-command-line-argument]",
            "/usr/bin/ld: warning: mm/userfaultfd.o has a LOAD segment with RWX permissions"])
        # Elsewhere they are warnings like any other.
        bad, base = check_arch.judge_warnings("x86_64", log)
        self.assertEqual((len(bad), base), (7, []))
        res = Results()
        res.ok("check-arch ppc64le: vmlinux builds")
        res.notes.append("check-arch ppc64le: 4 warning lines of the base itself, not counted")
        self.assertEqual(check_arch.outcome(res, "ppc64le"),
                         "passed (4 warning lines of the base itself, not counted)")
