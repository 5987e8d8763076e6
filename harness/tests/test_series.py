# SPDX-License-Identifier: GPL-2.0
"""Tests of series.py (the series assembled, written with format-patch) and of
the git am gate, on a small throwaway git tree; and of series/series.toml."""

import dataclasses
import os
import re
import tempfile
import textwrap
import tomllib
from contextlib import redirect_stdout
import io
import unittest
from typing import Any, Callable, Dict, List, Tuple

from tests import REPO
from uffdrs_lib import gates, series
from uffdrs_lib.common import BASE_IDENT, Context, HarnessError, git, read
from uffdrs_lib.results import Results

SERIES_TOML = '''
[[series]]
name = "fixes"
subject_prefix = "PATCH"
cover = "series/fixes/cover-letter.txt"
fix = true

[[series.patch]]
subject = "mm: fix the base"
diffs = ["series/fixes/01-mm-old.c.diff"]
message = """
The fix of the base.

Fixes: 0123456789ab ("mm: old")
Cc: stable@vger.kernel.org
"""

[[series]]
name = "main"
subject_prefix = "PATCH"
cover = "series/main/cover-letter.txt"

[[series.patch]]
subject = "mm: add new.c"
files = [
    { path = "mm/new.c", minus = ["series/main/03-mm-new.c.diff", "series/rfc/01-mm-new.c.diff"] },
    "tools/run.sh",
]
message = """
Adds new.c.
"""

[[series.patch]]
subject = "mm: Kconfig option for new.c"
kconfig = { file = "mm/Kconfig", snippet = "Kconfig.snippet", before = "# the end" }
message = """
The option.
"""

[[series.patch]]
subject = "mm: new.c: second function"
diffs = ["series/main/03-mm-new.c.diff"]
message = """
A second function.
"""

[[series]]
name = "rfc"
subject_prefix = "RFC PATCH"
cover = "series/rfc/cover-letter.txt"
requires = ["main"]

[[series.patch]]
subject = "mm: new.c: third function"
diffs = ["series/rfc/01-mm-new.c.diff", "series/rfc/01-include-linux-new.h.diff"]
message = """
A third function.
"""
'''

NEW_C_FINAL = ("int one(void) { return 1; }\nint two(void) { return 2; }\n"
               "int three(void) { return 3; }\n")
NEW_C_MAIN = "int one(void) { return 1; }\nint two(void) { return 2; }\n"
NEW_C_FIRST = "int one(void) { return 1; }\n"
NEW_C_DIFF = """\
--- a/mm/new.c
+++ b/mm/new.c
@@ -1 +1,2 @@
 int one(void) { return 1; }
+int two(void) { return 2; }
"""
NEW_C_RFC_DIFF = """\
--- a/mm/new.c
+++ b/mm/new.c
@@ -1,2 +1,3 @@
 int one(void) { return 1; }
 int two(void) { return 2; }
+int three(void) { return 3; }
"""
NEW_H = "int one(void);\n"
NEW_H_DIFF = """\
--- a/include/linux/new.h
+++ b/include/linux/new.h
@@ -1 +1,2 @@
 int one(void);
+int three(void);
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
    """A repository with three series (fixes: 1 patch, main: 3, rfc: 1 on
    main), and a base tree, in `root`."""
    repo, tree = os.path.join(root, "repo"), os.path.join(root, "cache", "tree")
    # The repository: the final versions of the new files, the diffs.
    write(repo, "series/series.toml", SERIES_TOML)
    for name in ("fixes", "main", "rfc"):
        write(repo, f"series/{name}/cover-letter.txt",
              f"The {name} subject\n\nThe {name} text.\n\n{series.DIFFSTAT_MARK}\n\nBase.\n")
    write(repo, "series/fixes/01-mm-old.c.diff", OLD_C_DIFF)
    write(repo, "series/main/03-mm-new.c.diff", NEW_C_DIFF)
    write(repo, "series/rfc/01-mm-new.c.diff", NEW_C_RFC_DIFF)
    write(repo, "series/rfc/01-include-linux-new.h.diff", NEW_H_DIFF)
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
    write(tree, "include/linux/new.h", NEW_H)
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

    def tree_of(self, rev: str) -> str:
        return git("rev-parse", f"{rev}^{{tree}}", cwd=self.ctx.tree)

    def test_commits(self) -> None:
        commits = self.commits
        # Every series, in order.
        self.assertEqual([s for _, s in commits], [
            "mm: fix the base", "mm: add new.c", "mm: Kconfig option for new.c",
            "mm: new.c: second function", "mm: new.c: third function"])
        c1, c2, c3, c4, c5 = (c for c, _ in commits)
        # The diff to an upstream file.
        self.assertEqual(self.show(f"{c1}:mm/old.c"), "int old(void) { return 1; }\n")
        # A new file that later patches change comes with their diffs
        # reversed, those of a later series too...
        self.assertEqual(self.show(f"{c2}:mm/new.c"), NEW_C_FIRST)
        # ... and the later patches give the repository's version.
        self.assertEqual(self.show(f"{c4}:mm/new.c"), NEW_C_MAIN)
        self.assertEqual(self.show(f"{c5}:mm/new.c"), NEW_C_FINAL)
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

    def test_assembly_reuses_prefixes(self) -> None:
        asm = series.Assembly(self.ctx)
        # A chain that continues one already assembled gives the same commits
        # as one assembled from the base.
        main = asm.commits(["fixes", "main"])
        self.assertEqual(asm.commits(["fixes", "main", "rfc"]), self.commits)
        self.assertEqual(main, self.commits[:4])
        self.assertEqual(asm.tip([]), asm.base)
        # Each series on the base and what it requires, as it is posted: main
        # without the fixes, rfc on main.
        own_main = asm.own_commits("main")
        self.assertEqual([s for _, s in own_main], [s for _, s in self.commits[1:4]])
        self.assertEqual(git("rev-parse", f"{own_main[0][0]}^", cwd=self.ctx.tree), asm.base)
        self.assertEqual(self.show(f"{own_main[0][0]}:mm/old.c"), OLD_C)
        own_rfc = asm.own_commits("rfc")
        self.assertEqual(git("rev-parse", f"{own_rfc[0][0]}^", cwd=self.ctx.tree),
                         own_main[-1][0])
        self.assertEqual(self.show(f"{own_rfc[0][0]}:mm/new.c"), NEW_C_FINAL)
        with self.assertRaisesRegex(HarnessError, "no series 'nope'"):
            asm.commits(["nope"])

    def test_without_fixes(self) -> None:
        ctx = dataclasses.replace(self.ctx, without_fixes=True)
        self.assertEqual([s for _, s in series.assemble_series(ctx)][0], "mm: add new.c")
        self.assertEqual(series.series_files(ctx),
                         ["include/linux/new.h", "mm/new.c", "tools/run.sh"])

    def test_series_files(self) -> None:
        self.assertEqual(series.series_files(self.ctx),
                         ["include/linux/new.h", "mm/new.c", "mm/old.c", "tools/run.sh"])
        self.assertEqual(series.series_files(self.ctx, ["fixes"]), ["mm/old.c"])

    def test_format_patch(self) -> None:
        out = os.path.join(self.tmp.name, "out")
        # The one-series layout of earlier versions is cleaned up.
        write(out, "0001-old.patch", "old\n")
        posts = series.write_series(self.ctx, out)
        self.assertEqual([(p.name, p.on, len(p.commits)) for p in posts],
                         [("fixes", (), 1), ("main", (), 3), ("rfc", ("main",), 1)])
        self.assertEqual(sorted(os.listdir(out)), ["fixes", "main", "rfc"])
        self.assertEqual([os.path.basename(p) for p in posts[1].files], [
            "0000-cover-letter.patch", "0001-mm-add-new.c.patch",
            "0002-mm-Kconfig-option-for-new.c.patch",
            "0003-mm-new.c-second-function.patch"])
        self.assertEqual(posts[1].directory, os.path.join(out, "main"))
        base = git("rev-parse", "base", cwd=self.ctx.tree)
        covers = {p.name: read(p.files[0]) for p in posts}
        self.assertIn("Subject: [PATCH 0/1] The fixes subject", covers["fixes"])
        self.assertIn("Subject: [PATCH 0/3] The main subject", covers["main"])
        self.assertIn("Subject: [RFC PATCH 0/1] The rfc subject", covers["rfc"])
        self.assertIn("The main text.", covers["main"])
        for name, cover in covers.items():
            # Every series is based on the base; rfc lists main's patches as
            # prerequisites.
            self.assertIn(f"base-commit: {base}\n", cover)
            self.assertEqual(cover.count("prerequisite-patch-id: "),
                             3 if name == "rfc" else 0, name)
        # The diffstat of the core mm files in place of the mark: main adds
        # mm/new.c (mm/Kconfig too), rfc changes mm/new.c and a header.
        self.assertNotIn(series.DIFFSTAT_MARK, covers["main"])
        self.assertIn("The main text.\n\nCore mm files this series changes (under mm/ and "
                      "include/linux/):\n\n mm/Kconfig | 3 +++\n mm/new.c   | 2 ++\n"
                      " 2 files changed, 5 insertions(+)\n\nBase.", covers["main"])
        self.assertIn(" include/linux/new.h | 1 +\n mm/new.c            | 1 +\n"
                      " 2 files changed, 2 insertions(+)\n", covers["rfc"])
        self.assertIn(" mm/old.c | 2 +-\n 1 file changed, 1 insertion(+), 1 deletion(-)",
                      covers["fixes"])
        # The rfc's patch is made against main.
        self.assertIn("@@ -1,2 +1,3 @@", read(posts[2].files[1]))

    def test_core_mm_diffstat(self) -> None:
        # Test-only files are named, not counted.
        self.assertTrue(series.is_test_only("mm/userfaultfd_rust_test.c"))
        self.assertTrue(series.is_test_only("mm/kunit_helpers.h"))
        self.assertFalse(series.is_test_only("mm/userfaultfd_rust.rs"))
        asm = series.Assembly(self.ctx)
        text = series.core_mm_diffstat(self.ctx.tree, asm.base, asm.tip(["fixes"]))
        self.assertEqual(text, "Core mm files this series changes (under mm/ and "
                         "include/linux/):\n\n mm/old.c | 2 +-\n"
                         " 1 file changed, 1 insertion(+), 1 deletion(-)\n")

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

    def test_am_bases(self) -> None:
        asm = series.Assembly(self.ctx)
        posts = series.write_series(self.ctx, os.path.join(self.tmp.name, "am-out"), asm)
        # The fixes on the base; main on the base and on the fixes; rfc on
        # main, and on the fixes and main.
        self.assertEqual([gates.am_bases(asm.defs, p) for p in posts],
                         [[()], [(), ("fixes",)], [("main",), ("fixes", "main")]])

    def test_real_series_file(self) -> None:
        # The repository's own series.toml: three series, every file, diff
        # and cover letter exists, and every diff is named after its series,
        # its patch and the file it changes.
        ctx = Context.create(REPO)
        defs = series.load_series(ctx)
        self.assertEqual([(d.name, d.subject_prefix, d.requires, d.fix) for d in defs], [
            ("fixes", "PATCH", (), True), ("rust", "PATCH", (), False),
            ("batch", "RFC PATCH", ("rust",), False)])
        for d in defs:
            self.assertEqual(d.cover, f"series/{d.name}/cover-letter.txt")
            self.assertIn(series.DIFFSTAT_MARK + "\n", read(os.path.join(ctx.repo, d.cover)))
        for d, n, p in series.series_patches(defs):
            self.assertTrue(p["subject"] and p["message"].strip(), p["subject"])
            for e in p.get("files", []):
                path, minus = series.file_entry(e)
                for f in [path, *minus]:
                    self.assertTrue(os.path.exists(os.path.join(ctx.repo, f)), f)
            for diff in p.get("diffs", []):
                text = read(os.path.join(ctx.repo, diff))
                target = re.search(r"^\+\+\+ b/(\S+)$", text, re.M)
                assert target, diff
                self.assertEqual(diff, f"series/{d.name}/{n:02d}-"
                                 f"{target.group(1).replace('/', '-')}.diff")
        # Nothing else under series/ but the TOML and the series' directories.
        named = {d.name for d in defs}
        self.assertEqual(sorted(os.listdir(os.path.join(ctx.repo, "series"))),
                         sorted(named | {"series.toml"}))
        files = {os.path.join("series", d.name, f) for d in defs
                 for f in os.listdir(os.path.join(ctx.repo, "series", d.name))}
        used = {d.cover for d in defs} | {diff for _, _, p in series.series_patches(defs)
                                          for diff in p.get("diffs", [])}
        self.assertEqual(sorted(files - used), [])


class SeriesChangeTest(unittest.TestCase):
    """Tests that change the fixture: one each."""

    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.ctx = make_fixture(self.tmp.name)

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def test_update_tree(self) -> None:
        with redirect_stdout(io.StringIO()) as out:
            commits = series.update_tree(self.ctx)
        tree = self.ctx.tree
        self.assertEqual(git("rev-parse", "HEAD", cwd=tree), commits[-1][0])
        self.assertEqual(git("rev-parse", "series", cwd=tree), commits[-1][0])
        with open(os.path.join(tree, "mm", "new.c")) as f:
            self.assertEqual(f.read(), NEW_C_FINAL)
        self.assertIn("base + 5 patches (fixes 1, main 3, rfc 1)", out.getvalue())

    def test_diff_does_not_apply(self) -> None:
        write(self.ctx.tree, "mm/old.c", "changed\n")
        git("commit", "-q", "-a", "-m", "changed", cwd=self.ctx.tree, env=BASE_IDENT)
        git("update-ref", "refs/heads/base", "HEAD", cwd=self.ctx.tree)
        with self.assertRaisesRegex(HarnessError,
                                    "fixes patch 1 .*01-mm-old.c.diff does not apply"):
            series.assemble_series(self.ctx)

    def test_missing_file(self) -> None:
        os.unlink(os.path.join(self.ctx.repo, "tools", "run.sh"))
        with self.assertRaisesRegex(HarnessError, "main patch 1: missing file tools/run.sh"):
            series.assemble_series(self.ctx)

    def test_cover_without_diffstat_mark(self) -> None:
        write(self.ctx.repo, "series/main/cover-letter.txt", "Subject\n\nNo mark.\n")
        with self.assertRaisesRegex(HarnessError, "cover-letter.txt has no line "
                                    "{core-mm-diffstat}"):
            series.write_series(self.ctx, os.path.join(self.tmp.name, "out"))

    def test_loader_errors(self) -> None:
        ok = tomllib.loads(SERIES_TOML)
        self.assertEqual([d.name for d in series.parse_series(ok)], ["fixes", "main", "rfc"])
        # The one-series format of earlier versions.
        with self.assertRaisesRegex(HarnessError, r"expected \[\[series\]\] tables"):
            series.parse_series({"patch": [{"subject": "s"}]})
        changes: List[Tuple[Callable[[Dict[str, Any]], None], str]] = [
            (lambda t: t["series"][2].update(requires=["later"]), "requires 'later'"),
            (lambda t: t["series"].reverse(), "requires 'main'"),
            (lambda t: t["series"][1].update(name="fixes"), "bad or duplicate series name"),
            (lambda t: t["series"][1].update(name="Main Series"), "bad or duplicate"),
            (lambda t: t["series"][0].update(patch=[]), "series fixes has no patches")]
        for change, error in changes:
            data = tomllib.loads(SERIES_TOML)
            change(data)
            with self.assertRaisesRegex(HarnessError, error):
                series.parse_series(data)
        self.assertEqual(series.chain(series.parse_series(ok), "rfc"), ["main", "rfc"])
        self.assertEqual(series.chain(series.parse_series(ok), "fixes"), ["fixes"])


class GitAmGateTest(unittest.TestCase):
    """The git am gate on the fixture: each series on what it requires."""

    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.ctx = make_fixture(self.tmp.name)
        self.asm = series.Assembly(self.ctx)
        self.posts = series.write_series(self.ctx, os.path.join(self.tmp.name, "out"),
                                         self.asm)

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def tree_of(self, rev: str) -> str:
        return git("rev-parse", f"{rev}^{{tree}}", cwd=self.ctx.tree)

    def test_every_series_applies(self) -> None:
        res = Results()
        gates.gate_git_am(self.ctx, res, self.posts, self.asm)
        self.assertEqual([(r.status, r.name) for r in res.items], [
            ("ok", "gate: git am of fixes (1 patch) on base gives the assembled tree"),
            ("ok", "gate: git am of main (3 patches) on base gives the assembled tree"),
            ("ok", "gate: git am of main (3 patches) on base+fixes gives the assembled tree"),
            ("ok", "gate: git am of rfc (1 patch) on base+main gives the assembled tree"),
            ("ok", "gate: git am of rfc (1 patch) on base+fixes+main gives the "
             "assembled tree")])

    def test_failures(self) -> None:
        rfc = self.posts[2]
        # The RFC on the base alone: its patch does not apply (mm/new.c is not
        # there), and the worktree is left with no am in progress.
        ok, details = gates.am_check(self.ctx, self.asm.base, rfc.files,
                                     self.tree_of(self.asm.tip(["main", "rfc"])))
        self.assertFalse(ok)
        self.assertIn("mm/new.c", details)
        self.assertFalse(os.path.exists(os.path.join(
            git("rev-parse", "--absolute-git-dir", cwd=self.ctx.am_check), "rebase-apply")))
        # Patches that apply but give another tree than the assembled one.
        ok, details = gates.am_check(self.ctx, self.asm.base, self.posts[0].files,
                                     self.tree_of(self.asm.tip(["main"])))
        self.assertFalse(ok)
        self.assertIn(f"tree {self.tree_of(self.asm.tip(['fixes']))} != ", details)
        # And the gate counts such a failure: the fix changed after the
        # series was written.
        write(self.ctx.repo, "series/fixes/01-mm-old.c.diff",
              OLD_C_DIFF.replace("return 1;", "return 2;"))
        res = Results()
        gates.gate_git_am(self.ctx, res, self.posts[0:1], series.Assembly(self.ctx))
        self.assertEqual([(r.status, r.name) for r in res.items], [
            ("fail", "gate: git am of fixes (1 patch) on base gives the assembled tree")])


if __name__ == "__main__":
    unittest.main()
