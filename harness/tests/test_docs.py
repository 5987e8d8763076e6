# SPDX-License-Identifier: GPL-2.0
"""Tests of the documentation gate (docutils with stand-ins for Sphinx)."""

import os
import tempfile
import unittest

from uffdrs_lib import docs

DATA = os.path.join(os.path.dirname(__file__), "test_data", "docs")


def read(name: str) -> str:
    with open(os.path.join(DATA, name)) as f:
        return f.read()


class DocsTest(unittest.TestCase):

    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        os.makedirs(os.path.join(self.tmp.name, "Documentation", "mm"))
        with open(os.path.join(self.tmp.name, "Documentation", "mm", "index.rst"), "w") as f:
            f.write("Index\n=====\n")
        self.checker = docs.Checker(self.tmp.name)

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def test_clean_document(self) -> None:
        self.assertEqual(self.checker.render("Documentation/mm/rust.rst",
                                             read("table-ok.rst")), [])

    def test_stray_line_under_a_table(self) -> None:
        # The admin guide's errno table had a "+" line under its bottom
        # border (a diff line doubled): docutils takes it for the table.
        problems = self.checker.render("Documentation/mm/rust.rst",
                                       read("table-stray-plus.rst"))
        self.assertTrue(any("Malformed table" in p for p in problems), problems)

    def test_missing_targets(self) -> None:
        text = read("table-ok.rst").replace(":doc:`index`", ":doc:`/mm/nothing`") \
            .replace("   index", "   missing")
        problems = self.checker.render("Documentation/mm/rust.rst", text)
        self.assertEqual(problems, [
            "Documentation/mm/rust.rst: no document '/mm/nothing' "
            "(Documentation/mm/nothing.rst)",
            "Documentation/mm/rust.rst: no document 'missing' (Documentation/mm/missing.rst)",
        ])

    def test_doc_target(self) -> None:
        self.assertEqual(docs.doc_target("Documentation/admin-guide/mm/userfaultfd.rst",
                                         "/mm/rust"), "Documentation/mm/rust.rst")
        self.assertEqual(docs.doc_target("Documentation/mm/index.rst", "Rust <rust>"),
                         "Documentation/mm/rust.rst")
        self.assertEqual(docs.doc_target("Documentation/mm/index.rst", "../rust/index"),
                         "Documentation/rust/index.rst")
