# SPDX-License-Identifier: GPL-2.0
"""fetch: the pinned base (Debian's linux-source-7.3), committed once as the
`base` branch of a git tree in the cache."""

from __future__ import annotations

import os
import shutil

from .common import (BASE_IDENT, BASE_PACKAGE, BASE_REF, BASE_TARBALL,
                     BASE_VERSION, Context, HarnessError, git, run, say,
                     sha256, warn)


def pinned_sha(ctx: Context) -> str:
    with open(os.path.join(ctx.harness, "base.sha256")) as f:
        return f.read().split()[0]


def have_base(ctx: Context) -> bool:
    return os.path.isdir(os.path.join(ctx.base_tree, ".git")) and bool(
        git("rev-parse", "-q", "--verify", BASE_REF, cwd=ctx.base_tree, check=False))


def download(ctx: Context) -> tuple[str, str]:
    """Downloads the base package; returns (path of the .deb, its version).

    If the pinned version is gone from the archive, the newest one is used,
    with a loud warning.
    """
    version = BASE_VERSION
    deb = os.path.join(ctx.dl, f"{BASE_PACKAGE}_{version.replace(':', '%3a')}_all.deb")
    if os.path.exists(deb):
        return deb, version
    p = run(["apt-get", "download", f"{BASE_PACKAGE}={version}"], cwd=ctx.dl,
            check=False)
    if p.returncode == 0:
        return deb, version
    p = run(["apt-cache", "madison", BASE_PACKAGE], capture=True)
    versions = [line.split("|")[1].strip() for line in p.stdout.splitlines()]
    if not versions:
        raise HarnessError(f"{BASE_PACKAGE} is not in the archive at all")
    version = versions[0]
    warn(f"pinned {BASE_PACKAGE} {BASE_VERSION} is gone from the "
         f"archive; FALLING BACK to {version}. The series was "
         f"written for {BASE_VERSION}.")
    run(["apt-get", "download", f"{BASE_PACKAGE}={version}"], cwd=ctx.dl)
    debs = [d for d in os.listdir(ctx.dl) if d.endswith(".deb")
            and version.split(":")[-1] in d]
    return os.path.join(ctx.dl, debs[0]), version


def fetch(ctx: Context) -> None:
    with ctx.phase("fetch base"):
        os.makedirs(ctx.dl, exist_ok=True)
        tree = ctx.base_tree
        if have_base(ctx):
            say(f"base tree present: {tree} "
                f"({git('rev-parse', '--short', BASE_REF, cwd=tree)})")
            return
        deb, version = download(ctx)
        unpack = os.path.join(ctx.dl, "unpacked")
        shutil.rmtree(unpack, ignore_errors=True)
        run(["dpkg-deb", "-x", deb, unpack])
        tarball = os.path.join(unpack, BASE_TARBALL)
        digest = sha256(tarball)
        if version == BASE_VERSION:
            if digest != pinned_sha(ctx):
                raise HarnessError(f"sha256 mismatch for {tarball}: {digest}, "
                                   f"expected {pinned_sha(ctx)} (harness/base.sha256)")
            say(f"tarball verified: sha256 {digest}")
        else:
            warn(f"unpinned base tarball, sha256 {digest}")
        tmp = tree + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        run(["tar", "-xf", tarball, "-C", tmp, "--strip-components=1"])
        shutil.rmtree(unpack)
        git("init", "-q", "-b", "base", cwd=tmp)
        # Debian's top-level .gitignore ignores everything: add with -f.
        git("add", "-A", "-f", cwd=tmp)
        git("commit", "-q", "-m", f"Linux 7.3.4 (Debian {BASE_PACKAGE} {version})",
            cwd=tmp, env=BASE_IDENT)
        shutil.rmtree(tree, ignore_errors=True)
        os.rename(tmp, tree)
        say(f"base commit {git('rev-parse', '--short', BASE_REF, cwd=tree)} in {tree}")
