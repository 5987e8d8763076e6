# SPDX-License-Identifier: GPL-2.0
"""check-series: every patch of every series built on its own (each series on
the base and the series it requires, as it is posted), in several
configurations, and its rustdoc with Rust on; it fails on any warning line.
(check-arch, the cross-builds, is check_arch.py.)"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Callable, Dict, List, Sequence, Tuple

from . import build, series
from .common import BASE_REF, Context, git, read, say, truncate
from .gates import rustdoc
from .results import Results

# Configuration name -> lines added to the test fragment.
VARIANTS: Dict[str, List[str]] = {
    "rust-on": [],
    # The production build: the Rust implementation, no test switch.
    "production": ["# CONFIG_USERFAULTFD_RUST_TEST is not set",
                   "# CONFIG_USERFAULTFD_RUST_KUNIT_TEST is not set"],
    "option-off": ["# CONFIG_USERFAULTFD_RUST is not set"],
    "rust-off": ["# CONFIG_RUST is not set"],
}


def record_key(kind: str, tree: str, config: bytes) -> str:
    """The name of the record of a check that passed: `kind` ("build" or
    "rustdoc"), the source tree id and the sha256 of the resolved .config.

    A new commit of this repository gives the series new commit ids but the
    same trees, and before the patch that adds an option two configurations
    resolve to the same .config: neither is checked again.
    """
    return f"{kind}-{tree}-{hashlib.sha256(config).hexdigest()}"


def check_once(ctx: Context, res: Results, key: str, vname: str, name: str,
               check: Callable[[], Tuple[bool, str]]) -> bool:
    """Result `name`: `check()` -> (ok, details), unless `key` passed before.

    A pass is recorded under `key` in the cache (check-built/), with the
    configuration that passed it.
    """
    path = os.path.join(ctx.checked, key)
    if os.path.exists(path):
        by = read(path).strip()
        res.ok(f"{name} (same tree and .config passed before, in {by})")
        say(f"ok: {name}: same tree and .config passed before, in {by}")
        return True
    ok, details = check()
    res.check(ok, name, details)
    say(f"{'ok' if ok else 'FAILED'}: {name}")
    if ok:
        os.makedirs(ctx.checked, exist_ok=True)
        with open(path, "w") as f:
            f.write(vname + "\n")
    return ok


def build_patch(ctx: Context, vname: str, odir: str, phase: str) -> Tuple[bool, str]:
    """Builds ctx.tree into `odir`; ok means no error and no warning line."""
    log = os.path.join(odir, "build.log")
    truncate(log)
    with ctx.phase(phase):
        build.make(ctx, "olddefconfig", odir=odir, log=log)
        p = build.make(ctx, odir=odir, log=log, check=False,
                       extra=["CLIPPY=1"] if vname != "rust-off" else [])
    text = read(log)
    # A warning is a defect of the patch too (e.g. an item only a later
    # patch uses): a maintainer building this patch alone would see it.
    warns = [line for _, line in build.diagnostics(text)]
    return p.returncode == 0 and not warns, "\n".join(warns[:20]) + "\n" + text[-3000:]


def check_one_patch(ctx: Context, res: Results, vname: str, frag: str, odir: str,
                    n: int, total: int, commit: str, subj: str, sname: str = "") -> None:
    """Builds one commit of series `sname` in configuration `vname` (in
    ctx.tree, the configuration's worktree)."""
    git("checkout", "-q", "-f", "--detach", commit, cwd=ctx.tree)
    tree = git("rev-parse", f"{commit}^{{tree}}", cwd=ctx.tree)
    build.configure(ctx, [frag], odir=odir, strict=False)
    with open(os.path.join(odir, ".config"), "rb") as f:
        cfg = f.read()
    where = f"{sname} {n}/{total}" if sname else f"{n}/{total}"
    ok = check_once(ctx, res, record_key("build", tree, cfg), vname,
                    f"build {vname} {where}: {subj}",
                    lambda: build_patch(ctx, vname, odir,
                                        f"check-series {vname} {where} {subj}"))
    if vname == "rust-on" and ok:
        # Intra-doc links must resolve at every patch too.
        def doc() -> Tuple[bool, str]:
            with ctx.phase(f"check-series rustdoc {where}"):
                return rustdoc(ctx, odir)
        check_once(ctx, res, record_key("rustdoc", tree, cfg), vname,
                   f"rustdoc {vname} {where}: {subj}", doc)


def check_series(ctx: Context, groups: Sequence[Tuple[str, Sequence[Tuple[str, str]]]],
                 variants: Sequence[str]) -> Results:
    """Builds every commit on its own in each configuration; `groups` are
    (series name, its commits), each series on the base and what it
    requires, as it is posted."""
    base_frag = build.config_fragments(ctx)[0]
    res = Results()
    # One worktree and one build directory for every configuration, taken
    # one after the other: going from the last patch in one configuration
    # to the first patch that differs in the next rebuilds only what the
    # changed files and options reach (kbuild tracks both), where a build
    # directory of its own would start each configuration from nothing
    # (~20 min here). A file that is not rebuilt was built before from the
    # same sources with the same value of every option it reads.
    wt = os.path.join(ctx.cache, "check-tree")
    if not os.path.isdir(wt):
        git("worktree", "add", "-f", "--detach", wt, BASE_REF, cwd=ctx.base_tree)
    odir = os.path.join(ctx.cache, "check-build")
    for vname in variants:
        frag = os.path.join(ctx.cache, f"check-{vname}.config")
        with open(frag, "w") as f:
            f.write(read(base_frag) + "\n" + "\n".join(VARIANTS[vname]) + "\n")
        wctx = dataclasses.replace(ctx, tree=wt)
        for sname, commits in groups:
            for n, (c, subj) in enumerate(commits, 1):
                check_one_patch(wctx, res, vname, frag, odir, n, len(commits), c, subj,
                                sname)
    return res
