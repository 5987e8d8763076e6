# SPDX-License-Identifier: GPL-2.0
"""Tests of the command line: targets, options, errors."""

import argparse
import contextlib
import io
import unittest
from unittest import mock

from uffdrs_lib import cli, coverage
from uffdrs_lib.common import Context, HarnessError

from . import HARNESS


class CliTest(unittest.TestCase):

    def parse(self, *argv: str) -> argparse.Namespace:
        return cli.parser().parse_args(list(argv))

    def test_targets(self) -> None:
        self.assertEqual(sorted(cli.COMMANDS), sorted([
            "setup", "fetch", "tree", "build", "demo", "test", "unit", "shell",
            "series", "clean", "bench", "check-series", "gates", "check-arch"]))

    def test_options(self) -> None:
        a = self.parse("--kasan", "--without-fixes", "test", "--no-gates", "--kunit-only",
                       "--only", "guard-uffd-wp", "--timeout", "60")
        self.assertEqual((a.kasan, a.without_fixes, a.cmd, a.no_gates, a.kunit_only,
                          a.only, a.timeout),
                         (True, True, "test", True, True, "guard-uffd-wp", 60))
        a = self.parse("test")
        self.assertEqual((a.no_gates, a.kunit_only, a.only, a.timeout, a.numa_nodes),
                         (False, False, "", 5400, 2))
        self.assertEqual(self.parse("test", "--numa-nodes", "1").numa_nodes, 1)
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
            self.parse("test", "--numa-nodes", "3")
        self.assertEqual(self.parse("check-arch", "arm64").arch, "arm64")
        self.assertEqual(self.parse("check-series", "--variants", "rust-on").variants,
                         "rust-on")
        a = self.parse("check-series", "--series", "fixes,rust")
        self.assertEqual((a.series, a.variants), ("fixes,rust", ""))
        self.assertEqual(self.parse("series", "--out", "/tmp/x").out, "/tmp/x")
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
            self.parse("check-arch", "mips")

    def test_guest_args(self) -> None:
        """What the guest script is asked to run."""
        self.assertEqual(cli.guest_args(self.parse("test")), "stress=30")
        self.assertEqual(cli.guest_args(self.parse("test", "--kunit-only")),
                         "kunit stress=30")
        self.assertEqual(cli.guest_args(self.parse(
            "test", "--only", "uffd-continue-stress", "--stress-secs", "600")),
            "only=uffd-continue-stress stress=600")

    def test_production_phase(self) -> None:
        """The production kernel: its own build directory and fragment, run
        directory and guest argument."""
        exp = coverage.load(HARNESS)
        ctx = Context.create("/r", cache="/c")
        prod = cli.phase_context(ctx, exp.phases["production"])
        self.assertEqual((prod.build, prod.extra_fragments),
                         ("/c/build-prod", ("/r/harness/config/prod.config",)))
        self.assertIs(cli.phase_context(ctx, exp.phases["test"]), ctx)
        kasan = Context.create("/r", cache="/c", kasan=True)
        self.assertEqual(cli.phase_context(kasan, exp.phases["production"]).build,
                         "/c/build-prod-kasan")
        self.assertEqual(cli.test_run_name(kasan, "production"), "test-kasan-production")
        self.assertEqual(cli.guest_args(self.parse("test", "--only", "uffd-continue"),
                                        "production"),
                         "only=uffd-continue stress=30 kernel=production")

    def test_context(self) -> None:
        ctx = Context.create("/r", cache="/c", kasan=True)
        self.assertEqual((ctx.tree, ctx.build, ctx.harness, ctx.checked),
                         ("/c/tree", "/c/build-kasan", "/r/harness", "/c/check-built"))
        self.assertEqual(Context.create("/r", cache="/c").build, "/c/build")
        self.assertEqual(cli.test_run_name(ctx), "test-kasan")
        self.assertEqual(cli.test_run_name(Context.create("/r", "/c", without_fixes=True)),
                         "test-without-fixes")

    def test_error_exit(self) -> None:
        # A HarnessError anywhere ends the command with its message and 1.
        def fail(ctx: Context, args: argparse.Namespace) -> int:
            raise HarnessError("kernel build failed, see build.log")
        err = io.StringIO()
        with mock.patch.dict(cli.COMMANDS, {"fetch": fail}), \
                mock.patch.dict("os.environ", {"UFFDRS_CACHE": "/tmp"}), \
                contextlib.redirect_stderr(err):
            self.assertEqual(cli.main("/nonexistent", ["fetch"]), 1)
        self.assertRegex(err.getvalue(), r"^\[uffdrs \d\d:\d\d\] error: kernel build failed")

    def test_unknown_variant(self) -> None:
        with mock.patch.object(cli, "prepare", return_value=[]), \
                self.assertRaisesRegex(HarnessError, "unknown variant"):
            cli.cmd_check_series(Context.create("/r", "/c"),
                                 self.parse("check-series", "--variants", "rust-onn"))


if __name__ == "__main__":
    unittest.main()


class BenchKernelsTest(unittest.TestCase):
    """bench --cc: which production kernels are built and measured."""

    def test_cc_option(self) -> None:
        p = cli.parser()
        self.assertEqual(p.parse_args(["bench"]).cc, "both")
        self.assertEqual(p.parse_args(["bench", "--cc", "gcc"]).cc, "gcc")
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
            p.parse_args(["bench", "--cc", "icc"])

    def test_kernels(self) -> None:
        ctx = Context.create("/r", cache="/c")
        both = cli.bench_kernels(ctx, "both")
        self.assertEqual([(n, k.build, k.cc) for n, k in both],
                         [("bench", "/c/build-bench", "llvm"),
                          ("bench-gcc", "/c/build-bench-gcc", "gcc")])
        self.assertEqual(both[1][1].extra_fragments,
                         ("/r/harness/config/bench.config",
                          "/r/harness/config/bench-gcc.config"))
        self.assertEqual([n for n, _ in cli.bench_kernels(ctx, "llvm")], ["bench"])
        self.assertEqual([n for n, _ in cli.bench_kernels(ctx, "gcc")], ["bench-gcc"])

    def test_make_compiler(self) -> None:
        """The GCC kernel's make has CC=gcc-12 and no LLVM=."""
        from uffdrs_lib import build
        ctx = Context.create("/r", cache="/c")
        seen = []
        with mock.patch.object(build, "run", side_effect=lambda cmd, **kw: seen.append(cmd)):
            build.make(ctx, "vmlinux")
            build.make(cli.bench_kernels(ctx, "gcc")[0][1], "vmlinux")
        self.assertIn("LLVM=-22", seen[0])
        self.assertNotIn("CC=gcc-12", seen[0])
        self.assertIn("CC=gcc-12", seen[1])
        self.assertFalse([w for w in seen[1] if w.startswith("LLVM=")])
        self.assertIn("O=/c/build-bench-gcc", seen[1])

    def test_gcc_is_production_only(self) -> None:
        args = cli.parser().parse_args(["bench", "--debug", "--cc", "gcc"])
        with self.assertRaises(HarnessError):
            cli.cmd_bench(Context.create("/r", cache="/c"), args)
