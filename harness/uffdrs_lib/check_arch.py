# SPDX-License-Identifier: GPL-2.0
"""check-arch: the series cross-built for each architecture that selects
HAVE_RUST in the base, built but not booted, failing on any warning line.

Every build is LLVM 22 and rustc 1.95 (the kernel builds `core` from
rust-src for the target; nothing else is installed), `make ARCH=... LLVM=-22
vmlinux` (and `modules`, where the configuration has any) with CLIPPY=1 in
build-<name>/ of the cache, from allnoconfig plus
harness/config/check-arch.config (Rust, KUnit, the debug options and the
series' options and KUnit suites, which every one of these architectures
has: userfaultfd and shmem) plus harness/config/<name>.config (what the
architecture needs for Rust, and the memory-management options it has:
THP, hugetlbfs, uffd-wp, ...). x86_64 is the test kernel itself (build/,
harness/config/uffdrs.config). An architecture whose Rust minimum version
is above the installed rustc is reported as skipped, with the reason.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import time
from typing import Dict, List, Optional, Sequence, Tuple

from . import build, series
from .common import Context, HarnessError, read, say, truncate
from .results import FAIL, OK, SKIP, Results


@dataclasses.dataclass(frozen=True)
class Arch:
    """One cross-build: `make ARCH=<arch>` with harness/config/<name>.config."""
    name: str
    arch: Optional[str]  # ARCH=; None: the host's (the test kernel)
    what: str


ARCHES: Dict[str, Arch] = {a.name: a for a in [
    Arch("x86_64", None, "the test kernel (build/, uffdrs.config)"),
    Arch("arm64", "arm64", "4K pages, 48-bit VA, inline helpers"),
    Arch("arm", "arm", "ARMv7 multiplatform, little endian, LPAE"),
    Arch("loongarch", "loongarch", "64-bit"),
    Arch("ppc64le", "powerpc", "64-bit book3s, little endian, radix and hash MMU"),
    Arch("ppc32", "powerpc", "32-bit book3s"),
    Arch("riscv", "riscv", "64-bit, Svrsw60t59b (uffd-wp)"),
    Arch("s390", "s390", "64-bit"),
    Arch("um", "um", "user-mode Linux on x86_64"),
]}

# Warnings that the base itself gives with this toolchain on an architecture,
# whatever the series: they are counted and shown, not failed on. rustc 1.95
# calls the features that arch/powerpc/Makefile turns off for 64-bit Rust
# code (-Ctarget-feature=-mma,-vsx,-hard-float,-altivec) unstable (mma and
# hard-float "unknown and unstable"), once per crate. um builds its stub
# (arch/um/kernel/skas/stub_exe) with arch/x86/Makefile.um's -mno-3dnow, which
# clang 22 no longer uses, and links vmlinux through the compiler with the
# system's GNU ld, which finds its LOAD segment writable and executable (three
# links). A warning line that no pattern here matches fails the check.
BASE_WARNINGS: Dict[str, Tuple[str, ...]] = {
    "ppc64le": (r"^warning: (unknown and )?unstable feature specified for "
                r"`-Ctarget-feature`: `(mma|vsx|hard-float|altivec)`$",),
    "um": (r"^clang-\d+: warning: argument unused during compilation: '-mno-3dnow' "
           r"\[-Wunused-command-line-argument\]$",
           r"^/usr/bin/ld: warning: (\.tmp_vmlinux\d|vmlinux\.unstripped) has a LOAD segment "
           r"with RWX permissions$"),
}

# rustc's count of the warnings of one crate: it follows warning lines of
# their own, which are judged.
WARNING_COUNT = re.compile(r"^warning: \d+ warnings? emitted$")

# `make rustavailable` when the architecture's minimum rustc is newer than the
# installed one (scripts/min-tool-version.sh: s390 wants 1.96.0).
TOO_OLD = re.compile(r"Rust compiler '.*' is too old\.\s*\*+\s*Your version:\s*(\S+)"
                     r"\s*\*+\s*Minimum version:\s*(\S+)")


def arch_context(ctx: Context, a: Arch) -> Tuple[Context, List[str]]:
    """The context of a cross-build and its configuration fragments."""
    if a.arch is None:
        return ctx, build.config_fragments(ctx)
    cfg = os.path.join(ctx.harness, "config")
    actx = dataclasses.replace(ctx, make_arch=a.arch,
                               build=os.path.join(ctx.cache, f"build-{a.name}"))
    return actx, [os.path.join(cfg, "check-arch.config"), os.path.join(cfg, f"{a.name}.config")]


def judge_warnings(name: str, text: str) -> Tuple[List[str], List[str]]:
    """The warning lines of a build log that fail the check (each with the
    three lines after it), and those that are the base's own (BASE_WARNINGS)."""
    lines = text.splitlines()
    known = [re.compile(p) for p in BASE_WARNINGS.get(name, ())]
    bad: List[str] = []
    base: List[str] = []
    for i, line in build.diagnostics(text):
        if any(k.search(line) for k in known):
            base.append(line)
        elif not WARNING_COUNT.search(line):
            bad.append("\n".join(lines[i:i + 4]))
    return bad, base


def rust_too_old(message: str) -> Optional[str]:
    """The reason an architecture cannot be built with this rustc, if that
    is what `make rustavailable` said."""
    m = TOO_OLD.search(message)
    if not m:
        return None
    return (f"the base wants rustc {m.group(2)} for this architecture "
            f"(scripts/min-tool-version.sh), this is {m.group(1)}")


def check_arch(ctx: Context, name: str, res: Optional[Results] = None) -> Results:
    """Cross-builds the series for one architecture, with no warning line.

    The results: vmlinux builds, no warning line, the series' objects (the
    kernel crate, rust/helpers, every Rust and C file of the series) were
    built; or one skip, if this rustc cannot build the architecture.
    """
    a = ARCHES[name]
    res = res if res is not None else Results()
    actx, frags = arch_context(ctx, a)
    odir = actx.build
    os.makedirs(odir, exist_ok=True)
    log = os.path.join(odir, "uffdrs-check-arch.log")
    truncate(log)
    objs = build.series_objects(ctx.tree, series.series_files(ctx))
    with ctx.phase(f"check-arch {name}: vmlinux (and modules) with CLIPPY=1 (output in {log})"):
        try:
            build.check_rust_available(actx)
        except HarnessError as e:
            why = rust_too_old(str(e))
            if why is None:
                raise
            res.skip(f"check-arch {name}: cannot be built here", why)
            return res
        build.configure(actx, frags)
        build.make(actx, "olddefconfig", log=log)
        # An incremental build prints nothing for objects that are up to date.
        build.remove_objects(odir, objs)
        # The modules too where there are any: the test kernel's sample is one.
        modules = "CONFIG_MODULES=y" in read(os.path.join(odir, ".config")).splitlines()
        p = build.make(actx, "vmlinux", *(["modules"] if modules else []), log=log,
                       extra=["CLIPPY=1"], check=False)
    text = read(log)
    warns, known = judge_warnings(name, text)
    res.check(p.returncode == 0, f"check-arch {name}: vmlinux builds", text[-3000:])
    res.check(not warns, f"check-arch {name}: no warning in the build "
              f"({len(warns)} warning lines)", "\n".join(warns[:20]))
    if known:
        kinds = sorted(set(known))
        res.notes.append(f"check-arch {name}: {len(known)} warning lines of the base "
                         f"itself, not counted: " + "; ".join(kinds))
    inline = "CONFIG_RUST_INLINE_HELPERS=y" in read(os.path.join(odir, ".config")).splitlines()
    helpers = "rust/helpers/helpers.bc" if inline else "rust/helpers/helpers.o"
    want = [o for o in objs if not o.startswith("rust/helpers/")] + [helpers]
    missing = [o for o in want if not os.path.exists(os.path.join(odir, o))]
    res.check(not missing, f"check-arch {name}: the series' objects were "
              f"built ({len(want) - len(missing)} of {len(want)}: {', '.join(want)})",
              "missing: " + ", ".join(missing))
    return res


def outcome(res: Results, name: str) -> str:
    """One architecture's line of the table, from its results."""
    mine = [r for r in res.items if r.name.startswith(f"check-arch {name}:")]
    if not mine:
        return "not run"
    if all(r.status == SKIP for r in mine):
        return "cannot be built here: " + "; ".join(r.detail for r in mine)
    failed = [r.name.split(": ", 1)[1] for r in mine if r.status == FAIL]
    if failed:
        return "FAILED: " + "; ".join(failed)
    notes = [n.split(": ", 1)[1] for n in res.notes if n.startswith(f"check-arch {name}:")]
    return ("passed" if all(r.status == OK for r in mine) else "?") + \
        "".join(f" ({n})" for n in notes)


def table(res: Results, names: Sequence[str], secs: Dict[str, float]) -> str:
    """The result table of `check-arch all` (Markdown, as in the README)."""
    rows = ["| architecture | ARCH= | configuration | result | time |",
            "|---|---|---|---|---:|"]
    for n in names:
        a = ARCHES[n]
        rows.append(f"| {n} | {a.arch or 'x86_64'} | {a.what} | {outcome(res, n)} "
                    f"| {secs.get(n, 0):.0f} s |")
    return "\n".join(rows) + "\n"


def check_all(ctx: Context, names: Sequence[str], clean_passed: bool = False) -> Results:
    """check-arch for each architecture in turn (one build at a time); the
    table goes to out/check-arch.txt and to the output. With clean_passed,
    the build directory of an architecture that passed is removed."""
    res = Results()
    secs: Dict[str, float] = {}
    for n in names:
        t = time.monotonic()
        check_arch(ctx, n, res)
        secs[n] = time.monotonic() - t
        actx, _ = arch_context(ctx, ARCHES[n])
        if clean_passed and outcome(res, n) == "passed" and actx.build != ctx.build:
            shutil.rmtree(actx.build, ignore_errors=True)
            say(f"removed {actx.build}")
    text = table(res, names, secs)
    os.makedirs(ctx.out, exist_ok=True)
    with open(os.path.join(ctx.out, "check-arch.txt"), "w") as f:
        f.write(text)
    print(text)
    return res
