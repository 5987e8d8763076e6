# SPDX-License-Identifier: GPL-2.0
"""Tests of series.py: the series assembled on a small throwaway git tree."""

import dataclasses
import os
import tempfile
import textwrap
from contextlib import redirect_stdout
import io
import unittest
from typing import List, Tuple

from uffdrs_lib import series
from uffdrs_lib.common import BASE_IDENT, Context, HarnessError, git

SERIES_TOML = '''
subject_prefix = "RFC PATCH"
cover = "series/cover-letter.txt"

[[patch]]
subject = "mm: fix the base"
fix = true
diffs = ["series/diffs/00-mm-old.c.diff"]
message = """
The fix of the base.

Fixes: 0123456789ab ("mm: old")
Cc: stable@vger.kernel.org
"""

[[patch]]
subject = "mm: add new.c"
files = [
    { path = "mm/new.c", minus = ["series/diffs/03-mm-new.c.diff"] },
    "tools/run.sh",
]
message = """
Adds new.c.
"""

[[patch]]
subject = "mm: Kconfig option for new.c"
kconfig = { file = "mm/Kconfig", snippet = "Kconfig.snippet", before = "# the end" }
message = """
The option.
"""

[[patch]]
subject = "mm: new.c: second function"
diffs = ["series/diffs/03-mm-new.c.diff"]
message = """
A second function.
"""
'''

NEW_C_FINAL = "int one(void) { return 1; }\nint two(void) { return 2; }\n"
NEW_C_FIRST = "int one(void) { return 1; }\n"
NEW_C_DIFF = """\
--- a/mm/new.c
+++ b/mm/new.c
@@ -1 +1,2 @@
 int one(void) { return 1; }
+int two(void) { return 2; }
"""
OLD_C = "int old(void) { return 0; }\n"
OLD_C_DIFF = """\
--- a/mm/old.c
+++ b/mm/old.c
@@ -1 +1 @@
-int old(void) { return 0; }
+int old(void) { return 1; }
"""
KCONFIG = "config OLD\n\tbool \"old\"\n\n# the end\n"
SNIPPET = "config NEW\n\tbool \"new\"\n"


def write(root: str, rel: str, text: str, mode: int = 0o644) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def make_fixture(root: str) -> Context:
    """A repository with a series of 4 patches, and a base tree, in `root`."""
    repo, tree = os.path.join(root, "repo"), os.path.join(root, "cache", "tree")
    # The repository: the final versions of the new files, the diffs.
    write(repo, "series/series.toml", SERIES_TOML)
    write(repo, "series/cover-letter.txt", "The cover subject\n\nThe cover text.\n")
    write(repo, "series/diffs/00-mm-old.c.diff", OLD_C_DIFF)
    write(repo, "series/diffs/03-mm-new.c.diff", NEW_C_DIFF)
    write(repo, "mm/new.c", NEW_C_FINAL)
    write(repo, "tools/run.sh", "#!/bin/sh\n", 0o755)
    write(repo, "Kconfig.snippet", SNIPPET)
    git("init", "-q", cwd=repo)
    git("config", "user.name", "Ada Author", cwd=repo)
    git("config", "user.email", "ada@example.org", cwd=repo)
    git("add", "-A", cwd=repo)
    env = dict(BASE_IDENT, GIT_COMMITTER_DATE="2026-11-30T12:00:00+00:00")
    git("commit", "-q", "-m", "repo", cwd=repo, env=env)
    # The base tree.
    write(tree, "mm/old.c", OLD_C)
    write(tree, "mm/Kconfig", KCONFIG)
    git("init", "-q", "-b", "base", cwd=tree)
    git("add", "-A", cwd=tree)
    git("commit", "-q", "-m", "base", cwd=tree, env=BASE_IDENT)
    return Context.create(repo, cache=os.path.join(root, "cache"))


class SeriesTest(unittest.TestCase):
    """On one fixture: the tests that only add git objects to its tree."""

    tmp: tempfile.TemporaryDirectory[str]
    ctx: Context
    commits: List[Tuple[str, str]]

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        cls.ctx = make_fixture(cls.tmp.name)
        cls.commits = series.assemble_series(cls.ctx)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def show(self, rev: str) -> str:
        return git("show", rev, cwd=self.ctx.tree) + "\n"

    def test_commits(self) -> None:
        commits = self.commits
        self.assertEqual([s for _, s in commits], [
            "mm: fix the base", "mm: add new.c", "mm: Kconfig option for new.c",
            "mm: new.c: second function"])
        c1, c2, c3, c4 = (c for c, _ in commits)
        # The diff to an upstream file.
        self.assertEqual(self.show(f"{c1}:mm/old.c"), "int old(void) { return 1; }\n")
        # A new file that a later patch changes comes with that diff reversed...
        self.assertEqual(self.show(f"{c2}:mm/new.c"), NEW_C_FIRST)
        # ... and the later patch gives the repository's version.
        self.assertEqual(self.show(f"{c4}:mm/new.c"), NEW_C_FINAL)
        # File modes.
        ls = git("ls-tree", c2, "tools/run.sh", cwd=self.ctx.tree)
        self.assertTrue(ls.startswith("100755 "), ls)
        # The Kconfig snippet, before its anchor.
        self.assertEqual(self.show(f"{c3}:mm/Kconfig"),
                         "config OLD\n\tbool \"old\"\n\n" + SNIPPET + "\n# the end\n")
        self.assertEqual(self.show(f"{c2}:mm/Kconfig"), KCONFIG)
        # The worktree is left alone.
        self.assertEqual(git("rev-parse", "HEAD", cwd=self.ctx.tree),
                         git("rev-parse", "base", cwd=self.ctx.tree))

    def test_messages_and_authorship(self) -> None:
        commits = self.commits
        fmt = "%an <%ae>%n%cn <%ce>%n%aI%n%B"
        log = git("log", "-1", f"--format={fmt}", commits[1][0], cwd=self.ctx.tree)
        self.assertEqual(log, "Ada Author <ada@example.org>\nAda Author <ada@example.org>\n"
                         "2026-11-30T12:00:00Z\nmm: add new.c\n\nAdds new.c.\n\n"
                         "Signed-off-by: Ada Author <ada@example.org>")
        # Trailers of the message and the Signed-off-by are one block.
        log = git("log", "-1", "--format=%B", commits[0][0], cwd=self.ctx.tree)
        self.assertTrue(log.endswith('("mm: old")\nCc: stable@vger.kernel.org\n'
                                     "Signed-off-by: Ada Author <ada@example.org>"), log)

    def test_reproducible(self) -> None:
        self.assertEqual(series.assemble_series(self.ctx), self.commits)

    def test_without_fixes(self) -> None:
        ctx = dataclasses.replace(self.ctx, without_fixes=True)
        self.assertEqual([s for _, s in series.assemble_series(ctx)][0], "mm: add new.c")
        self.assertEqual(series.series_files(ctx), ["mm/new.c", "tools/run.sh"])

    def test_series_files(self) -> None:
        self.assertEqual(series.series_files(self.ctx),
                         ["mm/new.c", "mm/old.c", "tools/run.sh"])

    def test_format_patch(self) -> None:
        out = os.path.join(self.tmp.name, "out")
        patches = series.write_series(self.ctx, out)
        self.assertEqual([os.path.basename(p) for p in patches], [
            "0000-cover-letter.patch", "0001-mm-fix-the-base.patch",
            "0002-mm-add-new.c.patch", "0003-mm-Kconfig-option-for-new.c.patch",
            "0004-mm-new.c-second-function.patch"])
        with open(patches[0]) as f:
            cover = f.read()
        self.assertIn("Subject: [RFC PATCH 0/4] The cover subject", cover)
        self.assertIn("The cover text.", cover)
        self.assertIn("base-commit: ", cover)

    def test_insert_snippet(self) -> None:
        self.assertEqual(series.insert_snippet("a\nb\n", "S\n", "b"), "a\nS\n\nb\n")
        with self.assertRaises(HarnessError):
            series.insert_snippet("a\n", "S\n", "zz")

    def test_commit_message(self) -> None:
        p = {"subject": "s", "message": textwrap.dedent("""
            Body.
            """)}
        self.assertEqual(series.commit_message(p, "N", "e@x"),
                         "s\n\nBody.\n\nSigned-off-by: N <e@x>\n")
        p = {"subject": "s", "message": "Body.\n\nReported-by: R <r@x>\n"}
        self.assertEqual(series.commit_message(p, "N", "e@x"),
                         "s\n\nBody.\n\nReported-by: R <r@x>\nSigned-off-by: N <e@x>\n")

    def test_real_series_file(self) -> None:
        # The repository's own series.toml: every file and diff exists.
        ctx = Context.create(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))))
        s = series.load_series(ctx)
        self.assertTrue(os.path.exists(os.path.join(ctx.repo, s["cover"])))
        for p in series.series_patches(s):
            self.assertTrue(p["subject"] and p["message"].strip(), p["subject"])
            for e in p.get("files", []):
                path, minus = series.file_entry(e)
                for f in [path, *minus]:
                    self.assertTrue(os.path.exists(os.path.join(ctx.repo, f)), f)
            for d in p.get("diffs", []):
                self.assertTrue(os.path.exists(os.path.join(ctx.repo, d)), d)
        self.assertLess(len(series.series_patches(s, without_fixes=True)),
                        len(series.series_patches(s)))


class SeriesChangeTest(unittest.TestCase):
    """Tests that change the fixture: one each."""

    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.ctx = make_fixture(self.tmp.name)

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def test_update_tree(self) -> None:
        with redirect_stdout(io.StringIO()):
            commits = series.update_tree(self.ctx)
        tree = self.ctx.tree
        self.assertEqual(git("rev-parse", "HEAD", cwd=tree), commits[-1][0])
        self.assertEqual(git("rev-parse", "series", cwd=tree), commits[-1][0])
        with open(os.path.join(tree, "mm", "new.c")) as f:
            self.assertEqual(f.read(), NEW_C_FINAL)

    def test_diff_does_not_apply(self) -> None:
        write(self.ctx.tree, "mm/old.c", "changed\n")
        git("commit", "-q", "-a", "-m", "changed", cwd=self.ctx.tree, env=BASE_IDENT)
        git("update-ref", "refs/heads/base", "HEAD", cwd=self.ctx.tree)
        with self.assertRaisesRegex(HarnessError, "00-mm-old.c.diff does not apply"):
            series.assemble_series(self.ctx)

    def test_missing_file(self) -> None:
        os.unlink(os.path.join(self.ctx.repo, "tools", "run.sh"))
        with self.assertRaisesRegex(HarnessError, "patch 2: missing file tools/run.sh"):
            series.assemble_series(self.ctx)


if __name__ == "__main__":
    unittest.main()
