# SPDX-License-Identifier: GPL-2.0
"""tree and series: the series as git commits on top of the base.

`series/series.toml` holds the series in order, each a `[[series]]` table
(name, subject_prefix, cover letter, `requires`: the series it applies on,
`fix`: the fixes of the base) with its patches, `[[series.patch]]`; each
patch has a subject, a message, the new files it adds (`files`), the diffs
it applies (`diffs`, series/<series>/NN-<path>.diff) and possibly the
Kconfig snippet (`kconfig`).

The commits are made with git plumbing and a temporary index, so the
worktree is only switched to the new tip at the end and unchanged files keep
their timestamps. `tree` assembles every series in order (base + fixes +
rust + batch; --without-fixes leaves out the fix series); `series` writes
each series on its own, on the base and what it requires, with its cover
letter (out/series/<name>/).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .common import (BASE_REF, Context, HarnessError, git, run, say, tool_env)

Patch = Dict[str, Any]
Commit = Tuple[str, str]  # (commit id, subject)

# The line of a cover letter that becomes the diffstat of the core mm files.
DIFFSTAT_MARK = "{core-mm-diffstat}"
# Core mm: what the cover letters count, as `git diff --stat` pathspecs.
CORE_MM = ("mm/", "include/linux/")
# Files there that only test builds compile (left out of that diffstat).
TEST_ONLY = ("*_test.c", "*_test.h", "*_test.rs", "*kunit*")


@dataclasses.dataclass(frozen=True)
class SeriesDef:
    """One `[[series]]` of series.toml."""
    name: str
    subject_prefix: str
    cover: str
    requires: Tuple[str, ...]
    fix: bool
    patches: Tuple[Patch, ...]


def parse_series(data: Dict[str, Any]) -> List[SeriesDef]:
    """The `[[series]]` tables of series.toml, checked: unique names, each
    requiring only series before it, each with patches."""
    if "patch" in data or "series" not in data:
        raise HarnessError("series.toml: expected [[series]] tables, each with its "
                           "[[series.patch]] (see the comment at its top)")
    defs: List[SeriesDef] = []
    for t in data["series"]:
        name = str(t.get("name", ""))
        if not re.fullmatch(r"[a-z0-9-]+", name) or any(d.name == name for d in defs):
            raise HarnessError(f"series.toml: bad or duplicate series name {name!r}")
        requires = tuple(str(r) for r in t.get("requires", []))
        for r in requires:
            if not any(d.name == r for d in defs):
                raise HarnessError(f"series.toml: series {name} requires {r!r}, "
                                   "which is not a series before it")
        patches = tuple(t.get("patch", []))
        if not patches:
            raise HarnessError(f"series.toml: series {name} has no patches")
        defs.append(SeriesDef(name=name, subject_prefix=str(t.get("subject_prefix", "PATCH")),
                              cover=str(t["cover"]), requires=requires,
                              fix=bool(t.get("fix", False)), patches=patches))
    return defs


def load_series(ctx: Context) -> List[SeriesDef]:
    with open(os.path.join(ctx.repo, "series", "series.toml"), "rb") as f:
        return parse_series(tomllib.load(f))


def selected_series(defs: Sequence[SeriesDef], without_fixes: bool = False) -> List[SeriesDef]:
    """The series a command works on, in order; without_fixes leaves out
    those marked fix = true (the fixes of the base), to show that the tests
    find what they fix."""
    return [d for d in defs if not (without_fixes and d.fix)]


def chain(defs: Sequence[SeriesDef], name: str) -> List[str]:
    """`name` and every series it requires, directly or not, in file order."""
    by_name = {d.name: d for d in defs}
    if name not in by_name:
        raise HarnessError(f"no series {name!r}; known: {', '.join(by_name)}")
    need = {name}
    for d in reversed(defs):
        if d.name in need:
            need.update(d.requires)
    return [d.name for d in defs if d.name in need]


def series_patches(defs: Sequence[SeriesDef], names: Optional[Sequence[str]] = None
                   ) -> List[Tuple[SeriesDef, int, Patch]]:
    """(series, number within it, patch) of the named series (default all), in order."""
    return [(d, n, p) for d in defs if names is None or d.name in names
            for n, p in enumerate(d.patches, 1)]


def user_ident(ctx: Context) -> Tuple[str, str]:
    name = git("config", "user.name", cwd=ctx.repo, check=False) or "uffdrs user"
    email = git("config", "user.email", cwd=ctx.repo, check=False) or "user@uffdrs.invalid"
    return name, email


def series_date(ctx: Context) -> str:
    d = git("log", "-1", "--format=%cI", cwd=ctx.repo, check=False)
    return d or "2026-01-01T00:00:00Z"


def insert_snippet(text: str, snippet: str, before: str) -> str:
    """Inserts `snippet` before the line starting with `before`."""
    idx = text.find("\n" + before)
    if idx < 0:
        raise HarnessError(f"Kconfig anchor not found: {before!r}")
    return text[:idx + 1] + snippet.rstrip("\n") + "\n\n" + text[idx + 1:]


def file_entry(entry: str | Dict[str, Any]) -> Tuple[str, List[str]]:
    """A patch's `files` entry: a path, or {path, minus = [later diffs]}."""
    if isinstance(entry, str):
        return entry, []
    return entry["path"], entry.get("minus", [])


def file_blob(ctx: Context, rel: str, minus: List[str]) -> str:
    """Writes the blob of `rel` as a patch introduces it; returns its id.

    The repository holds the final version of each file. A file that a later
    patch of the series changes is introduced with that patch's diff (the
    `minus` list) reverse-applied, so that each version exists once.
    """
    src = os.path.join(ctx.repo, rel)
    if not minus:
        return git("hash-object", "-w", src, cwd=ctx.tree)
    with tempfile.TemporaryDirectory() as tmp:
        dst = os.path.join(tmp, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(src, dst)
        for d in reversed(minus):
            p = subprocess.run(["git", "apply", "-R", os.path.join(ctx.repo, d)],
                               cwd=tmp, capture_output=True, text=True)
            if p.returncode != 0:
                raise HarnessError(f"{p.stderr}{d} does not reverse-apply to {rel}")
        return git("hash-object", "-w", dst, cwd=ctx.tree)


def commit_message(patch: Patch, name: str, email: str) -> str:
    """Subject, message and our Signed-off-by; trailers (Fixes:, Cc:) and the
    Signed-off-by form one block."""
    body = str(patch["message"]).strip()
    trailers = all(re.match(r"[\w-]+: ", line)
                   for line in body.split("\n\n")[-1].splitlines())
    return (str(patch["subject"]) + "\n\n" + body + ("\n" if trailers else "\n\n")
            + f"Signed-off-by: {name} <{email}>\n")


class Assembly:
    """Assembles series as commits on the base, and remembers them: a chain
    of series that starts with one already assembled continues from its tip
    (the commits depend only on the repository, the base and the identity)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.defs = load_series(ctx)
        self.done: Dict[Tuple[str, ...], List[Commit]] = {}
        self.base = git("rev-parse", BASE_REF, cwd=ctx.tree)

    def default(self) -> List[str]:
        """What tree/build/test assemble: every series, in order (without
        the fix series with --without-fixes)."""
        return [d.name for d in selected_series(self.defs, self.ctx.without_fixes)]

    def commits(self, names: Sequence[str]) -> List[Commit]:
        """The commits of the named series, in that order, on the base."""
        key = tuple(names)
        if key in self.done:
            return self.done[key]
        by_name = {d.name: d for d in self.defs}
        for n in key:
            if n not in by_name:
                raise HarnessError(f"no series {n!r}; known: {', '.join(by_name)}")
        k = len(key)
        while k and key[:k] not in self.done:
            k -= 1
        commits = list(self.done[key[:k]]) if k else []
        for i in range(k, len(key)):
            commits += self._assemble(by_name[key[i]], commits[-1][0] if commits else self.base)
            self.done[key[:i + 1]] = list(commits)
        return commits

    def tip(self, names: Sequence[str]) -> str:
        """The commit the named series leave (the base if none)."""
        c = self.commits(names)
        return c[-1][0] if c else self.base

    def own_commits(self, name: str) -> List[Commit]:
        """The commits of series `name` alone, on the base and what it requires."""
        names = chain(self.defs, name)
        return self.commits(names)[len(self.commits(names[:-1])):]

    def _assemble(self, s: SeriesDef, parent: str) -> List[Commit]:
        ctx = self.ctx
        name, email = user_ident(ctx)
        date = series_date(ctx)
        ident = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
                 "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email,
                 "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        commits = []
        with tempfile.TemporaryDirectory() as tmp:
            idx_env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            git("read-tree", parent, cwd=ctx.tree, env=idx_env)
            for n, patch in enumerate(s.patches, 1):
                where = f"{s.name} patch {n}"
                for entry in patch.get("files", []):
                    rel, minus = file_entry(entry)
                    src = os.path.join(ctx.repo, rel)
                    if not os.path.isfile(src):
                        raise HarnessError(f"{where}: missing file {rel}")
                    blob = file_blob(ctx, rel, minus)
                    mode = "100755" if os.access(src, os.X_OK) else "100644"
                    git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{rel}",
                        cwd=ctx.tree, env=idx_env)
                for d in patch.get("diffs", []):
                    p = subprocess.run(["git", "apply", "--cached", "--recount",
                                        os.path.join(ctx.repo, d)], cwd=ctx.tree,
                                       env=dict(tool_env(), **idx_env),
                                       capture_output=True, text=True)
                    if p.returncode != 0:
                        raise HarnessError(f"{p.stderr}{where} ({patch['subject']}): "
                                           f"{d} does not apply")
                kc = patch.get("kconfig")
                if kc:
                    target = kc["file"]
                    text = git("show", f":{target}", cwd=ctx.tree, env=idx_env) + "\n"
                    with open(os.path.join(ctx.repo, kc["snippet"])) as f:
                        snippet = f.read()
                    new = insert_snippet(text, snippet, kc["before"])
                    blob = git("hash-object", "-w", "--stdin", cwd=ctx.tree, input=new)
                    git("update-index", "--cacheinfo", f"100644,{blob},{target}",
                        cwd=ctx.tree, env=idx_env)
                tree = git("write-tree", cwd=ctx.tree, env=idx_env)
                parent = git("commit-tree", tree, "-p", parent, "-F", "-", cwd=ctx.tree,
                             env=ident, input=commit_message(patch, name, email))
                commits.append((parent, patch["subject"]))
        return commits


def assemble_series(ctx: Context, names: Optional[Sequence[str]] = None) -> List[Commit]:
    """Creates the commits of the named series (default: those tree/build/test
    assemble) on top of base without touching the worktree.

    Returns the list of (commit, subject) in order.
    """
    asm = Assembly(ctx)
    return asm.commits(asm.default() if names is None else names)


def update_tree(ctx: Context) -> List[Commit]:
    """`tree`: assembles the series and checks its tip out in the tree."""
    with ctx.phase("assemble tree"):
        asm = Assembly(ctx)
        names = asm.default()
        commits = asm.commits(names)
        tree = ctx.tree
        tip = asm.tip(names)
        head = git("rev-parse", "HEAD", cwd=tree, check=False)
        attached = git("symbolic-ref", "-q", "HEAD", cwd=tree, check=False)
        git("update-ref", "refs/heads/series", tip, cwd=tree)
        if head != tip or attached:
            # Switching commits rewrites only the files that differ, so the
            # timestamps of unchanged files (and the O= build) stay valid.
            # HEAD stays detached: "series" moves under it on every run.
            git("checkout", "-q", "-f", "--detach", tip, cwd=tree)
        git("status", "--porcelain", cwd=tree)  # refresh the index
        counts = ", ".join(f"{n} {len(asm.own_commits(n))}" for n in names)
        say(f"tree at {tip[:12]}: base + {len(commits)} patches ({counts})")
        return commits


def is_test_only(path: str) -> bool:
    return any(fnmatch.fnmatchcase(os.path.basename(path), p) for p in TEST_ONLY)


def core_mm_diffstat(tree: str, start: str, tip: str) -> str:
    """The paragraph that takes the place of DIFFSTAT_MARK in a cover letter:
    `git diff --stat` of the core mm files (CORE_MM) from `start` to `tip`,
    test-only files (TEST_ONLY) left out and named."""
    files = git("diff", "--name-only", start, tip, "--", *CORE_MM, cwd=tree).split()
    prod = [f for f in files if not is_test_only(f)]
    test = [f for f in files if is_test_only(f)]
    head = "Core mm files this series changes (under mm/ and include/linux/):"
    # git() strips the output, and with it the first line's indentation.
    stat = (run(["git", "diff", "--stat=72", start, tip, "--", *prod], cwd=tree,
                capture=True).stdout if prod else " (none)")
    text = head + "\n\n" + stat.rstrip() + "\n"
    if test:
        text += "\nLeft out as test-only: " + ", ".join(test) + ".\n"
    return text


def cover_blurb(ctx: Context, s: SeriesDef, start: str, tip: str) -> Tuple[str, str]:
    """The subject and text of a series' cover letter, the diffstat in place."""
    with open(os.path.join(ctx.repo, s.cover)) as f:
        ctext = f.read()
    subject, _, body = ctext.partition("\n")
    lines = body.strip().split("\n")
    if DIFFSTAT_MARK not in [line.strip() for line in lines]:
        raise HarnessError(f"{s.cover} has no line {DIFFSTAT_MARK} (where the "
                           "diffstat of the core mm files goes)")
    stat = core_mm_diffstat(ctx.tree, start, tip).rstrip("\n")
    body = "\n".join(stat if line.strip() == DIFFSTAT_MARK else line for line in lines)
    return subject.strip(), body


@dataclasses.dataclass(frozen=True)
class Posting:
    """One series as `harness/uffdrs series` writes it."""
    name: str
    on: Tuple[str, ...]     # the series it applies on, besides the base
    commits: Tuple[Commit, ...]  # its own commits, on the base and `on`
    files: Tuple[str, ...]  # git format-patch output, the cover letter first
    directory: str


def write_posting(ctx: Context, asm: Assembly, s: SeriesDef, outdir: str) -> Posting:
    """git format-patch of series `s` on the base and what it requires, with
    its cover letter, into `outdir`; base-commit: is the base, and the
    patches of the required series are listed as prerequisite-patch-id:."""
    on = tuple(chain(asm.defs, s.name)[:-1])
    start = asm.tip(on)
    commits = asm.own_commits(s.name)
    tip = commits[-1][0]
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    git("format-patch", "-q", "--cover-letter", f"--base={asm.base}", "-o", outdir,
        "--subject-prefix", s.subject_prefix, f"{start}..{tip}", cwd=ctx.tree)
    files = sorted(os.path.join(outdir, f) for f in os.listdir(outdir)
                   if f.endswith(".patch"))
    cpath = files[0]
    if not os.path.basename(cpath).startswith("0000-"):
        raise HarnessError(f"no cover letter in {outdir}")
    with open(cpath) as f:
        text = f.read()
    subject, blurb = cover_blurb(ctx, s, start, tip)
    text = text.replace("*** SUBJECT HERE ***", subject)
    text = text.replace("*** BLURB HERE ***", blurb)
    with open(cpath, "w") as f:
        f.write(text)
    return Posting(name=s.name, on=on, commits=tuple(commits), files=tuple(files),
                   directory=outdir)


def write_series(ctx: Context, outdir: str, asm: Optional[Assembly] = None) -> List[Posting]:
    """Every series (without the fix series with --without-fixes) into
    `outdir`/<name>/, each with its cover letter."""
    asm = asm or Assembly(ctx)
    os.makedirs(outdir, exist_ok=True)
    # The patches of the one-series layout of earlier versions do not stay
    # next to the directories of the series.
    for old in os.listdir(outdir):
        if old.endswith(".patch"):
            os.unlink(os.path.join(outdir, old))
    return [write_posting(ctx, asm, s, os.path.join(outdir, s.name))
            for s in selected_series(asm.defs, ctx.without_fixes)]


def series_files(ctx: Context, names: Optional[Sequence[str]] = None) -> List[str]:
    """Every file the series (default: those tree assembles) add or change,
    as paths in the tree."""
    defs = load_series(ctx)
    if names is None:
        names = [d.name for d in selected_series(defs, ctx.without_fixes)]
    files = []
    for _, _, p in series_patches(defs, names):
        files += [file_entry(e)[0] for e in p.get("files", [])]
        for d in p.get("diffs", []):
            with open(os.path.join(ctx.repo, d)) as f:
                for line in f:
                    if line.startswith("+++ b/"):
                        files.append(line[6:].strip())
    return sorted(set(files))
