# SPDX-License-Identifier: GPL-2.0
"""Review gates, run on the host and counted in the result line: checkpatch,
git am, a CLIPPY=1 rebuild of the series' objects, rustfmt, rustdoc, the
compile-fail checks (compile_fail.py), the documentation (docs.py); and the
harness's own checks: its unit tests and its static type check (mypy)."""

from __future__ import annotations

import fnmatch
import io
import os
import subprocess
import sys
import unittest
from typing import Any, List, Optional, Sequence, Tuple

from . import build, compile_fail, docs, results, series
from .common import (BASE_IDENT, BASE_REF, Context, git, read, run, tool_env,
                     truncate)
from .results import Results


def gate_checkpatch(ctx: Context, res: Results, postings: Sequence[series.Posting]) -> None:
    """checkpatch --strict on every patch of every series."""
    for post in postings:
        for p in post.files:
            name = os.path.basename(p)
            if name.startswith("0000-"):
                continue
            # UNKNOWN_COMMIT_ID: the base is a source tarball without upstream
            # history, in which checkpatch cannot look up the commits of the
            # fixes' Fixes: tags.
            r = run(["perl", os.path.join(ctx.tree, "scripts/checkpatch.pl"), "--strict",
                     "--no-tree", "--quiet", "--show-types",
                     "--ignore", "UNKNOWN_COMMIT_ID", p],
                    capture=True, check=False)
            n = int(name.split("-", 1)[0])
            maintainers = (git("show", f"{post.commits[n - 1][0]}:MAINTAINERS", cwd=ctx.tree)
                           if 0 < n <= len(post.commits) else "")
            res.check(checkpatch_ok(r.stdout, read(p), maintainers),
                      f"gate: checkpatch --strict {post.name}/{name}", r.stdout)


def checkpatch_ok(output: str, patch: str, maintainers: str = "") -> bool:
    """No error, and every warning or check justified: a warning is justified
    when the commit message names its type (e.g. LONG_LINE). FILE_PATH_CHANGES
    asks whether MAINTAINERS needs updating for the files the patch adds: it
    is answered, and justified, when each of them has a MAINTAINERS section
    (`maintainers`, the file as the patch leaves it) other than THE REST."""
    lines = output.splitlines()
    errs = [line for line in lines if line.startswith("ERROR:")]
    warns = [line for line in lines if line.startswith(("WARNING:", "CHECK:"))]
    msg = patch.split("\n---\n")[0]

    def justified(warning: str) -> bool:
        kind = warning.split(":")[1]
        if kind == "FILE_PATH_CHANGES":
            return all(maintainers_sections(maintainers, f) for f in added_files(patch))
        return kind in msg

    return not errs and all(justified(w) for w in warns)


def maintainers_sections(text: str, path: str) -> List[str]:
    """The MAINTAINERS sections whose F: patterns cover `path`, matched as
    get_maintainer.pl matches them: a pattern ending in "/" covers everything
    below that directory, one with wildcards is a glob over the whole path
    ("*" crosses "/"), any other one names a file or a directory. THE REST,
    which covers everything, is left out."""
    sections: List[str] = []
    name = ""
    for line in text.splitlines():
        if line and not line.startswith("\t") and line[1:2] != ":":
            name = line.strip()
            continue
        if not line.startswith("F:") or name == "THE REST":
            continue
        pat = line[2:].strip()
        if pat.endswith("/"):
            hit = path.startswith(pat)
        elif any(c in pat for c in "*?["):
            hit = fnmatch.fnmatchcase(path, pat) or fnmatch.fnmatchcase(path, pat + "/*")
        else:
            hit = path == pat or path.startswith(pat + "/")
        if hit and name not in sections:
            sections.append(name)
    return sections


def added_files(patch: str) -> List[str]:
    """The files a patch (git format-patch output) adds."""
    files: List[str] = []
    current = ""
    for line in patch.splitlines():
        if line.startswith("diff --git a/"):
            current = line.split(" b/", 1)[1]
        elif line.startswith("new file mode") and current:
            files.append(current)
    return files


def am_check(ctx: Context, start: str, patches: Sequence[str], tree: str
             ) -> Tuple[bool, str]:
    """`git am` of `patches` on a fresh checkout of commit `start` (in the
    am-check worktree of the cache); ok if they all apply and the result
    is the source tree `tree`."""
    am = ctx.am_check
    if not os.path.isdir(am):
        git("worktree", "add", "-f", "--detach", am, BASE_REF, cwd=ctx.tree)
    git("am", "--abort", cwd=am, check=False)
    git("checkout", "-q", "-f", "--detach", start, cwd=am)
    pp = [p for p in patches if not os.path.basename(p).startswith("0000-")]
    r = subprocess.run(["git", "am", "-q", "--whitespace=error-all", *pp],
                       cwd=am, capture_output=True, text=True,
                       env=dict(tool_env(), **BASE_IDENT))
    got = git("rev-parse", "HEAD^{tree}", cwd=am) if r.returncode == 0 else ""
    if r.returncode != 0:
        git("am", "--abort", cwd=am, check=False)
    return (r.returncode == 0 and got == tree,
            r.stdout + r.stderr + (f"\ntree {got} != {tree}" if got and got != tree else ""))


def am_bases(defs: Sequence[series.SeriesDef], post: series.Posting) -> List[Tuple[str, ...]]:
    """What a series is applied on by the git am gate: the series it
    requires; and, for a series that does not require the fix series, those
    and the series it requires (the fixes go to stable on their own, and the
    other series must apply both before and after they land)."""
    fixes = [d.name for d in defs if d.fix and d.name != post.name and d.name not in post.on]
    bases = [post.on]
    if fixes and not any(d.fix for d in defs if d.name == post.name):
        bases.append(tuple(d.name for d in defs if d.name in fixes or d.name in post.on))
    return bases


def gate_git_am(ctx: Context, res: Results, postings: Sequence[series.Posting],
                asm: series.Assembly) -> None:
    """Each series, as written by `series`, applied with git am on each of
    its am_bases() gives the tree that the harness assembles for it there."""
    posted = [p.name for p in postings]
    defs = [d for d in asm.defs if d.name in posted]
    for post in postings:
        for on in am_bases(defs, post):
            ok, details = am_check(ctx, asm.tip(on), post.files,
                                   git("rev-parse", f"{asm.tip((*on, post.name))}^{{tree}}",
                                       cwd=ctx.tree))
            where = "+".join(("base", *on))
            k = len(post.commits)
            res.check(ok, f"gate: git am of {post.name} ({k} patch{'es' if k != 1 else ''}) "
                      f"on {where} gives the assembled tree", details)


def warnings_in_files(text: str, files: Sequence[str]) -> List[str]:
    """The diagnostics of a build log (with 3 lines of context) that are in `files`."""
    lines = text.splitlines()
    found = []
    for i, _ in build.diagnostics(text):
        ctx = "\n".join(lines[i:i + 4])
        if any(f in ctx for f in files):
            found.append(ctx)
    return found


def gate_build_warnings(ctx: Context, res: Results) -> None:
    """No compiler, clippy or rustc warning in the files the series adds.

    An incremental build prints nothing for objects that are up to date, so
    the objects of the series are rebuilt first (with CLIPPY=1).
    """
    name = "gate: CLIPPY=1 build without warnings in the series' files"
    ours = series.series_files(ctx)
    build.remove_objects(ctx.build, build.series_objects(ctx.tree, ours))
    log = os.path.join(ctx.build, "uffdrs-warnings.log")
    truncate(log)
    p = build.make(ctx, log=log, extra=["CLIPPY=1"], check=False)
    if p.returncode != 0:
        res.fail(name, read(log)[-3000:])
        return
    warns = warnings_in_files(read(log), ours)
    res.check(not warns, name, "\n".join(warns[:20]))


def gate_rustfmt(ctx: Context, res: Results) -> None:
    log = os.path.join(ctx.build, "uffdrs-rustfmt.log")
    truncate(log)
    p = build.make(ctx, "rustfmtcheck", log=log, check=False)
    res.check(p.returncode == 0, "gate: make rustfmtcheck", read(log)[-3000:])


def rustdoc(ctx: Context, odir: str) -> Tuple[bool, str]:
    """`make rustdoc`; returns (ok, details): ok means no warning and no error."""
    log = os.path.join(odir, "uffdrs-rustdoc.log")
    truncate(log)
    p = build.make(ctx, "rustdoc", odir=odir, log=log, check=False)
    text = read(log)
    warns = [line for _, line in build.diagnostics(text)]
    ok = p.returncode == 0 and not warns
    return ok, ("" if ok else "\n".join(warns[:20]) + text[-2000:])


def gate_rustdoc(ctx: Context, res: Results) -> None:
    ok, details = rustdoc(ctx, ctx.build)
    res.check(ok, "gate: make rustdoc without warnings", details)


def run_gates(ctx: Context, res: Results) -> None:
    with ctx.phase("gates"):
        asm = series.Assembly(ctx)
        postings = series.write_series(ctx, os.path.join(ctx.cache, "series-check"), asm)
        gate_checkpatch(ctx, res, postings)
        gate_git_am(ctx, res, postings, asm)
        gate_build_warnings(ctx, res)
        gate_rustfmt(ctx, res)
        gate_rustdoc(ctx, res)
        compile_fail.gate_compile_fail(ctx, res)
        docs.gate_docs(ctx, res)
        gate_mypy(ctx, res)


# ---------------------------------------------------------------------------
# The harness's own checks
# ---------------------------------------------------------------------------

def gate_mypy(ctx: Context, res: Results) -> None:
    """mypy --strict over the harness and its tests (harness/mypy.ini)."""
    h = ctx.harness
    env = dict(tool_env(), MYPYPATH=ctx.kunit_tool)
    p = run([sys.executable, "-m", "mypy", "--config-file", os.path.join(h, "mypy.ini"),
             "--cache-dir", os.path.join(ctx.cache, "mypy-cache"),
             os.path.join(h, "uffdrs"), os.path.join(h, "uffdrs_lib"),
             os.path.join(h, "tests")],
            capture=True, check=False, env=env, cwd=h)
    res.check(p.returncode == 0, "gate: mypy (static type check of the harness)",
              p.stdout + p.stderr)


class _Recorder(unittest.TextTestResult):
    """A unittest result that also keeps the tests that passed."""

    def __init__(self, stream: Any, descriptions: bool, verbosity: int) -> None:
        super().__init__(stream, descriptions, verbosity)
        self.passed: List[unittest.TestCase] = []

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self.passed.append(test)


def run_unit_tests(ctx: Context, res: Results, pattern: Optional[str] = None) -> None:
    """The harness's unit tests (harness/tests/), each one a result "unit: ID"."""
    with ctx.phase("harness unit tests"):
        results.use_kunit_tool(ctx.kunit_tool)
        loader = unittest.TestLoader()
        suite = loader.discover(os.path.join(ctx.harness, "tests"),
                                pattern=pattern or "test_*.py",
                                top_level_dir=ctx.harness)
        stream = io.StringIO()
        runner = unittest.TextTestRunner(stream=stream, verbosity=0,
                                         resultclass=_Recorder)
        r = runner.run(suite)
        assert isinstance(r, _Recorder)
        outcomes: List[Tuple[str, str, str]] = []
        outcomes += [(t.id(), results.OK, "") for t in r.passed]
        outcomes += [(t.id(), results.FAIL, tb) for t, tb in r.failures + r.errors]
        outcomes += [(t.id(), results.FAIL, "unexpected success")
                     for t in r.unexpectedSuccesses]
        outcomes += [(t.id(), results.SKIP, why) for t, why in r.skipped]
        for tid, status, detail in sorted(outcomes):
            res.add(status, f"unit: {tid}", detail)
        if not outcomes:
            res.fail("unit: tests found", stream.getvalue())
