# SPDX-License-Identifier: GPL-2.0
"""Tests of check-series: the keys of its records and check_once()."""

import io
import os
import tempfile
import unittest
from contextlib import redirect_stdout
from typing import List, Tuple

from uffdrs_lib import check_series
from uffdrs_lib.common import Context
from uffdrs_lib.results import Results

TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
CONFIG_SHA = "9322749a98a1a71570fb634df1c7e6de2a5a76d728e7f9d7b14f81c86638e499"


class RecordTest(unittest.TestCase):

    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.ctx = Context.create(self.tmp.name, cache=self.tmp.name)
        self.calls: List[str] = []

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def check(self, ok: bool) -> Tuple[bool, str]:
        self.calls.append("check")
        return ok, "" if ok else "warning: unused import"

    def test_record_key(self) -> None:
        # "<kind>-<tree>-<sha256 of .config>": the names of the records in
        # <cache>/check-built/, the same as earlier versions of the harness
        # wrote, so that their records stay valid.
        self.assertEqual(check_series.record_key("build", TREE, b"CONFIG_RUST=y\n"),
                         f"build-{TREE}-{CONFIG_SHA}")
        self.assertEqual(check_series.record_key("rustdoc", TREE, b"CONFIG_RUST=y\n"),
                         f"rustdoc-{TREE}-{CONFIG_SHA}")
        self.assertNotEqual(check_series.record_key("build", TREE, b"CONFIG_RUST=n\n"),
                            f"build-{TREE}-{CONFIG_SHA}")

    def test_check_once(self) -> None:
        res = Results()
        key = check_series.record_key("build", TREE, b"CONFIG_RUST=y\n")
        with redirect_stdout(io.StringIO()):
            self.assertTrue(check_series.check_once(
                self.ctx, res, key, "rust-on", "build rust-on patch 1: s",
                lambda: self.check(True)))
            # Recorded: another configuration with the same tree and .config
            # does not build it again.
            self.assertTrue(check_series.check_once(
                self.ctx, res, key, "production", "build production patch 1: s",
                lambda: self.check(False)))
        self.assertEqual(self.calls, ["check"])
        with open(os.path.join(self.ctx.checked, key)) as f:
            self.assertEqual(f.read(), "rust-on\n")
        self.assertEqual([(r.status, r.name) for r in res.items], [
            ("ok", "build rust-on patch 1: s"),
            ("ok", "build production patch 1: s (same tree and .config passed before, "
             "in rust-on)")])

    def test_failure_is_not_recorded(self) -> None:
        res = Results()
        with redirect_stdout(io.StringIO()):
            for _ in range(2):
                self.assertFalse(check_series.check_once(
                    self.ctx, res, "build-x", "rust-on", "n", lambda: self.check(False)))
        self.assertEqual(self.calls, ["check", "check"])
        self.assertEqual(res.summary(), "0 passed, 2 failed")
        self.assertFalse(os.path.exists(os.path.join(self.ctx.checked, "build-x")))

    def test_variants(self) -> None:
        self.assertEqual(list(check_series.VARIANTS),
                         ["rust-on", "production", "option-off", "rust-off"])
        self.assertEqual(check_series.VARIANTS["rust-off"], ["# CONFIG_RUST is not set"])


if __name__ == "__main__":
    unittest.main()
