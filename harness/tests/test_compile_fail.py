# SPDX-License-Identifier: GPL-2.0
"""Tests of the compile-fail checks: the command line borrowed from kbuild,
and what makes a check pass."""

import os
import unittest

from uffdrs_lib import compile_fail

CMD = ("savedcmd_mm/userfaultfd_rust.o := OBJTREE=/c/build RUST_MODFILE=mm/userfaultfd_rust "
       "clippy-driver --edition=2021 -Dunsafe_op_in_unsafe_fn --target=./scripts/target.json "
       "@./include/generated/rustc_cfg -Zcrate-attr='feature(asm_goto,used_with_arg)' "
       "--extern kernel --crate-type rlib -L ./rust/ --sysroot=/dev/null --out-dir mm/ "
       "--emit=dep-info=mm/.userfaultfd_rust.o.d --emit=llvm-bc=mm/userfaultfd_rust.bc "
       "/c/tree/mm/userfaultfd_rust.rs ;llvm-link-22 --internalize mm/userfaultfd_rust.bc "
       "./rust/helpers/helpers.bc -o mm/userfaultfd_rust.m.bc\n")


class CompileFailTest(unittest.TestCase):

    def test_command(self) -> None:
        template = compile_fail.saved_command("# cannot\n" + CMD)
        args, env = compile_fail.check_command(template, "/h/compile-fail/a-b.rs", "/tmp/x",
                                               misuse=True)
        self.assertEqual(env, {"RUSTC_BOOTSTRAP": "1", "OBJTREE": "/c/build",
                               "RUST_MODFILE": "mm/userfaultfd_rust"})
        self.assertEqual(args, [
            "rustc", "--edition=2021", "-Dunsafe_op_in_unsafe_fn",
            "--target=./scripts/target.json", "@./include/generated/rustc_cfg",
            "-Zcrate-attr=feature(asm_goto,used_with_arg)", "--extern", "kernel",
            "--crate-type", "rlib", "-L", "./rust/", "--sysroot=/dev/null",
            "--crate-name", "compile_fail_a_b", "--check-cfg=cfg(misuse)",
            "--emit=metadata=/tmp/x/liba_b.rmeta", "--cfg", "misuse",
            "/h/compile-fail/a-b.rs"])
        control, _ = compile_fail.check_command(template, "/h/a.rs", "/tmp/x", misuse=False)
        self.assertNotIn("misuse", control[-2:])

    def test_judge(self) -> None:
        said = "error[E0308]: mismatched types\n  expected `&Page`, found `&FolioPage<'_>`\n"
        expect = ["error[E0308]: mismatched types", "expected `&Page`, found `&FolioPage<'_>`"]
        self.assertEqual(compile_fail.judge(1, said, 0, "", expect), (True, ""))
        # The misuse compiles: the types no longer forbid it.
        self.assertFalse(compile_fail.judge(0, "", 0, "", expect)[0])
        # It fails, but not for the reason the check is about.
        self.assertFalse(compile_fail.judge(1, "error[E0432]: unresolved import", 0, "",
                                            expect)[0])
        # The control does not build: the check proves nothing.
        self.assertFalse(compile_fail.judge(1, said, 1, "error: no kernel crate", expect)[0])
        # A check without an expect: line proves nothing either.
        self.assertFalse(compile_fail.judge(1, said, 0, "", [])[0])

    def test_sources_have_expectations(self) -> None:
        d = os.path.join(os.path.dirname(__file__), "..", "compile-fail")
        files = sorted(f for f in os.listdir(d) if f.endswith(".rs"))
        self.assertTrue(files)
        for f in files:
            with open(os.path.join(d, f)) as fh:
                text = fh.read()
            self.assertTrue(compile_fail.expectations(text), f)
            self.assertIn("#[cfg(misuse)]", text, f)
