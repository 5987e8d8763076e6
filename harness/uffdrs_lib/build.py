# SPDX-License-Identifier: GPL-2.0
"""build: configure and build the kernel (O= in the cache) and the selftests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Dict, List, Optional, Sequence, Tuple

from .common import (GCC, LLVM, Context, HarnessError, git, jobs, read, run, say,
                     truncate, warn)

# Upstream selftests the harness builds and runs, and our own.
SELFTEST_PROGRAMS = ["uffd-unit-tests", "uffd-stress", "uffd-continue",
                     "uffd-continue-pmd", "uffd-continue-stress", "uffd-continue-bench",
                     "pt-reclaim-truncate", "guard-uffd-wp"]

# A diagnostic of rustc, clippy, rustdoc or the C compiler in a build log:
# "warning: ...", "error[E0425]: ...", "file.c:1:2: warning: ...".
DIAGNOSTIC = re.compile(r"^(warning|error)(\[\w+\])?:|: (warning|error):")


def diagnostics(text: str) -> List[Tuple[int, str]]:
    """The lines of `text` that are a warning or an error, as (index, line)."""
    return [(i, line) for i, line in enumerate(text.splitlines())
            if DIAGNOSTIC.search(line)]


def config_fragments(ctx: Context) -> List[str]:
    frags = [os.path.join(ctx.harness, "config", "uffdrs.config")]
    if ctx.kasan:
        frags.append(os.path.join(ctx.harness, "config", "kasan.config"))
    return frags + list(ctx.extra_fragments)


def make(ctx: Context, *targets: str, odir: Optional[str] = None,
         log: Optional[str] = None, extra: Sequence[str] = (), check: bool = True,
         capture: bool = False) -> subprocess.CompletedProcess[str]:
    """make in ctx.tree with O= (ctx.build unless `odir`), LLVM (or GCC, see
    Context.cc) and our bindgen."""
    odir = odir or ctx.build
    arch = [f"ARCH={ctx.make_arch}"] if ctx.make_arch else []
    cc = [f"CC={GCC}"] if ctx.cc == "gcc" else [f"LLVM={LLVM}"]
    cmd = ["make", "-C", ctx.tree, f"O={odir}", *arch, *cc,
           f"BINDGEN={ctx.bindgen}", f"-j{jobs()}", *extra, *targets]
    return run(cmd, log=log, check=check, quiet=bool(log), capture=capture)


def kconfig_depends(tree: str, names: Sequence[str]) -> Dict[str, str]:
    """The `depends on` expressions of the Kconfig symbols `names` (without
    CONFIG_), read from the Kconfig files of `tree`; all of a symbol's
    `depends on` lines joined with " && "."""
    want = set(names)
    deps: Dict[str, List[str]] = {}
    for root, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith("Kconfig"):
                continue
            cur: Optional[str] = None
            try:
                with open(os.path.join(root, name), errors="replace") as f:
                    for line in f:
                        m = re.match(r"^\s*(?:menu)?config\s+(\w+)\s*$", line)
                        if m:
                            cur = m.group(1) if m.group(1) in want else None
                            continue
                        if re.match(r"^\s*(?:choice|endchoice|menu|endmenu|if|endif|"
                                    r"comment|source)\b", line):
                            cur = None
                            continue
                        m = re.match(r"^\s*depends\s+on\s+(.*)$", line)
                        if cur and m:
                            deps.setdefault(cur, []).append(m.group(1).strip())
            except OSError:
                continue
    return {k: " && ".join(v) for k, v in deps.items()}


def unapplied_options(fragments: Sequence[str], cfg: str,
                      depends: Optional[Dict[str, str]] = None) -> List[str]:
    """The lines of the fragments that the resolved .config `cfg` does not
    have. A later fragment overrides an earlier one, as merge_config.sh
    does, so only the last word on an option counts; and a later fragment
    that turns an option off also takes back the earlier fragments' values
    of the options that depend on it (`depends`, symbol -> its `depends on`
    expression, see kconfig_depends()), which Kconfig then leaves out of the
    .config: bench.config's "# CONFIG_DETECT_HUNG_TASK is not set" after
    uffdrs.config's CONFIG_DEFAULT_HUNG_TASK_TIMEOUT=120."""
    want: Dict[str, str] = {}
    for frag in fragments:
        with open(frag) as f:
            for line in f:
                line = line.strip()
                if line.startswith("CONFIG_"):
                    want[line.split("=")[0]] = line
                elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
                    key = line[2:].split()[0]
                    want[key] = line
                    off = key[len("CONFIG_"):]
                    for dep, expr in (depends or {}).items():
                        if (f"CONFIG_{dep}" in want and dep != off
                                and re.search(rf"\b{off}\b", expr)
                                and not re.search(rf"^CONFIG_{dep}[= ]", cfg, re.M)
                                and f"# CONFIG_{dep} is not set" not in cfg):
                            del want[f"CONFIG_{dep}"]
    lines = cfg.splitlines()
    missing = []
    for key, line in want.items():
        if line.startswith("CONFIG_"):
            if line not in lines:
                missing.append(line)
        elif re.search(rf"^{key}=", cfg, re.M):
            missing.append(line)
    return missing


def generate_config(ctx: Context, fragments: Sequence[str], odir: str) -> Tuple[str, List[str]]:
    """Builds a .config from allnoconfig + fragments in a scratch O= dir."""
    os.makedirs(odir, exist_ok=True)
    log = os.path.join(odir, "kconfig.log")
    make(ctx, "allnoconfig", odir=odir, log=log)
    run([os.path.join(ctx.tree, "scripts/kconfig/merge_config.sh"), "-m", "-O",
         odir, os.path.join(odir, ".config"), *fragments], cwd=ctx.tree, log=log)
    make(ctx, "olddefconfig", odir=odir, log=log)
    cfg = read(os.path.join(odir, ".config"))
    missing = unapplied_options(fragments, cfg)
    if missing:
        # Options that a later fragment's "is not set" hid: look up what they depend on.
        names = [m.split("=")[0][len("CONFIG_"):] for m in missing if m.startswith("CONFIG_")]
        missing = unapplied_options(fragments, cfg, kconfig_depends(ctx.tree, names))
    return cfg, missing


def configure(ctx: Context, fragments: Optional[Sequence[str]] = None,
              odir: Optional[str] = None, strict: bool = True) -> None:
    """Writes odir/.config if the fragments give a different one."""
    odir = odir or ctx.build
    fragments = fragments or config_fragments(ctx)
    cfg, missing = generate_config(ctx, fragments, odir + ".kconfig")
    if missing:
        msg = "config fragment options not applied: " + ", ".join(missing)
        if strict:
            raise HarnessError(msg)
        warn(msg)
    os.makedirs(odir, exist_ok=True)
    target = os.path.join(odir, ".config")
    old = read(target) if os.path.exists(target) else None
    if old != cfg:
        with open(target, "w") as f:
            f.write(cfg)
        say(".config updated")
    else:
        say(".config unchanged")


def check_rust_available(ctx: Context, odir: Optional[str] = None) -> None:
    """`make rustavailable`: the toolchain must be usable without a warning."""
    p = make(ctx, "rustavailable", odir=odir, extra=["-s"], check=False, capture=True)
    out = (p.stdout + p.stderr).strip()
    if p.returncode != 0 or "***" in out:
        raise HarnessError("make rustavailable failed or warned:\n" + out)
    say("make rustavailable: " + (out.splitlines()[-1] if out else "ok"))


def build_kernel(ctx: Context, clippy: bool = True) -> str:
    """Configures and builds the kernel and its headers; returns the log."""
    os.makedirs(ctx.build, exist_ok=True)
    log = os.path.join(ctx.build, "uffdrs-build.log")
    truncate(log)
    extra = ["CLIPPY=1"] if clippy else []
    with ctx.phase("kernel build (make, output in " + log + ")"):
        check_rust_available(ctx)
        configure(ctx)
        make(ctx, "olddefconfig", log=log, extra=extra)
        p = make(ctx, log=log, extra=extra, check=False)
        if p.returncode != 0:
            errors = [line for line in read(log).splitlines() if "error" in line]
            raise HarnessError("\n".join(errors[-30:]) + f"\nkernel build failed, see {log}")
    with ctx.phase("kernel headers"):
        make(ctx, "headers", log=log)
    return log


def build_selftests(ctx: Context) -> None:
    with ctx.phase("selftests build"):
        os.makedirs(ctx.selftests, exist_ok=True)
        log = os.path.join(ctx.selftests, "build.log")
        truncate(log)
        src = os.path.join(ctx.tree, "tools/testing/selftests/mm")
        progs = [p for p in SELFTEST_PROGRAMS
                 if os.path.exists(os.path.join(src, p + ".c"))]
        run(["make", "-C", src, f"-j{jobs()}", f"OUTPUT={ctx.selftests}",
             f"KHDR_INCLUDES=-isystem {ctx.build}/usr/include",
             *[os.path.join(ctx.selftests, p) for p in progs]], log=log)
        run(["gcc", "-O2", "-Wall", "-Werror", "-pthread", "-isystem",
             f"{ctx.build}/usr/include", "-o",
             os.path.join(ctx.selftests, "uffd-minor-demo"),
             os.path.join(ctx.harness, "demo", "uffd-minor-demo.c")], log=log)
        say("selftests: " + ", ".join(progs + ["uffd-minor-demo"]))


def clean(ctx: Context) -> None:
    """Removes every build directory of the cache and the check worktrees.

    The next build of each configuration starts from scratch; the download,
    the assembled tree and the guest run logs stay.
    """
    tree = ctx.base_tree
    for name in sorted(os.listdir(ctx.cache)):
        path = os.path.join(ctx.cache, name)
        if not os.path.isdir(path):
            continue
        if name.startswith("check-tree") or name == "am-check":
            # Worktrees of the tree: git has to forget them too.
            if os.path.isdir(tree):
                git("worktree", "remove", "--force", path, cwd=tree, check=False)
        elif not name.startswith(("build", "check-build", "check-built", "selftests")):
            continue
        if os.path.isdir(path):
            shutil.rmtree(path)
        say(f"removed {path}")
    if os.path.isdir(tree):
        git("worktree", "prune", cwd=tree, check=False)


def included_by_c_file(tree: str, f: str) -> bool:
    """Whether another .c file of the same directory of `tree` #includes `f`."""
    d, base = os.path.split(os.path.join(tree, f))
    if not os.path.isdir(d):
        return False
    for name in os.listdir(d):
        if name.endswith(".c") and name != base:
            if f'#include "{base}"' in read(os.path.join(d, name)):
                return True
    return False


def series_objects(tree: str, files: Sequence[str]) -> List[str]:
    """The objects of a build that the series' source files are compiled into."""
    objs = set()
    for f in files:
        if f.startswith("rust/kernel/"):
            objs.add("rust/kernel.o")
        elif f.startswith("rust/helpers/"):
            # helpers.bc with CONFIG_RUST_INLINE_HELPERS (linked into Rust).
            objs.update(("rust/helpers/helpers.o", "rust/helpers/helpers.bc"))
        elif f.endswith(".rs") and os.path.dirname(f) + ".rs" in files:
            continue  # a module of that crate (mm/userfaultfd_rust/batch.rs)
        elif f.endswith(".c") and included_by_c_file(tree, f):
            continue  # #included by another file (mm/userfaultfd_rust_test.c)
        elif f.endswith((".c", ".rs")) and not f.startswith(("tools/", "rust/")):
            objs.add(f[:-len(".c") if f.endswith(".c") else -len(".rs")] + ".o")
    return sorted(objs)


def remove_objects(odir: str, objs: Sequence[str]) -> None:
    """An incremental build prints nothing for objects that are up to date:
    removing them has them compiled again, with their diagnostics."""
    for obj in objs:
        path = os.path.join(odir, obj)
        if os.path.exists(path):
            os.unlink(path)
