# SPDX-License-Identifier: GPL-2.0
"""tree and series: the series as git commits on top of the base.

`series/series.toml` lists the patches in order; each has a subject, a
message, the new files it adds (`files`), the diffs to upstream files it
applies (`diffs`) and possibly the Kconfig snippet (`kconfig`). The commits
are made with git plumbing and a temporary index, so the worktree is only
switched to the new tip at the end and unchanged files keep their timestamps.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from typing import Any, Dict, List, Tuple

from .common import (BASE_REF, Context, HarnessError, git, say, tool_env)

Patch = Dict[str, Any]
Series = Dict[str, Any]


def load_series(ctx: Context) -> Series:
    with open(os.path.join(ctx.repo, "series", "series.toml"), "rb") as f:
        return tomllib.load(f)


def series_patches(series: Series, without_fixes: bool = False) -> List[Patch]:
    """The patches in order; without_fixes leaves out those marked fix = true
    (the fixes of the base), to show that the tests find what they fix."""
    return [p for p in series.get("patch", [])
            if not (without_fixes and p.get("fix"))]


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


def assemble_series(ctx: Context) -> List[Tuple[str, str]]:
    """Creates the series commits on top of base without touching the worktree.

    Returns the list of (commit, subject) in order.
    """
    series = load_series(ctx)
    name, email = user_ident(ctx)
    date = series_date(ctx)
    ident = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
             "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email,
             "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    parent = git("rev-parse", BASE_REF, cwd=ctx.tree)
    commits = []
    with tempfile.TemporaryDirectory() as tmp:
        idx_env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        git("read-tree", parent, cwd=ctx.tree, env=idx_env)
        for n, patch in enumerate(series_patches(series, ctx.without_fixes), 1):
            for entry in patch.get("files", []):
                rel, minus = file_entry(entry)
                src = os.path.join(ctx.repo, rel)
                if not os.path.isfile(src):
                    raise HarnessError(f"patch {n}: missing file {rel}")
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
                    raise HarnessError(f"{p.stderr}patch {n} ({patch['subject']}): "
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


def update_tree(ctx: Context) -> List[Tuple[str, str]]:
    """`tree`: assembles the series and checks its tip out in the tree."""
    with ctx.phase("assemble tree"):
        commits = assemble_series(ctx)
        tree = ctx.tree
        tip = commits[-1][0] if commits else git("rev-parse", BASE_REF, cwd=tree)
        head = git("rev-parse", "HEAD", cwd=tree, check=False)
        attached = git("symbolic-ref", "-q", "HEAD", cwd=tree, check=False)
        git("update-ref", "refs/heads/series", tip, cwd=tree)
        if head != tip or attached:
            # Switching commits rewrites only the files that differ, so the
            # timestamps of unchanged files (and the O= build) stay valid.
            # HEAD stays detached: "series" moves under it on every run.
            git("checkout", "-q", "-f", "--detach", tip, cwd=tree)
        git("status", "--porcelain", cwd=tree)  # refresh the index
        say(f"tree at {tip[:12]}: base + {len(commits)} patches")
        return commits


def write_series(ctx: Context, outdir: str) -> List[str]:
    """git format-patch of the series with its cover letter; returns the files."""
    commits = assemble_series(ctx)
    if not commits:
        raise HarnessError("the series has no patches")
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    series = load_series(ctx)
    tip = commits[-1][0]
    git("format-patch", "-q", "--cover-letter", "--base",
        git("rev-parse", BASE_REF, cwd=ctx.tree), "-o", outdir,
        "--subject-prefix", series.get("subject_prefix", "PATCH"),
        f"{BASE_REF}..{tip}", cwd=ctx.tree)
    cover = sorted(f for f in os.listdir(outdir) if f.startswith("0000-"))[0]
    cpath = os.path.join(outdir, cover)
    with open(cpath) as f:
        text = f.read()
    with open(os.path.join(ctx.repo, series["cover"])) as f:
        ctext = f.read()
    subject, _, body = ctext.partition("\n")
    text = text.replace("*** SUBJECT HERE ***", subject.strip())
    text = text.replace("*** BLURB HERE ***", body.strip())
    with open(cpath, "w") as f:
        f.write(text)
    return sorted(os.path.join(outdir, f) for f in os.listdir(outdir)
                  if f.endswith(".patch"))


def series_files(ctx: Context) -> List[str]:
    """Every file the series adds or changes, as paths in the tree."""
    files = []
    for p in series_patches(load_series(ctx), ctx.without_fixes):
        files += [file_entry(e)[0] for e in p.get("files", [])]
        for d in p.get("diffs", []):
            with open(os.path.join(ctx.repo, d)) as f:
                for line in f:
                    if line.startswith("+++ b/"):
                        files.append(line[6:].strip())
    return sorted(set(files))
