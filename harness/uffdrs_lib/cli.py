# SPDX-License-Identifier: GPL-2.0
"""uffdrs: build, boot and test the uffd-continue-rs series on Linux 7.3.4.

Phases (each one is idempotent and skips what is already done):

  setup    install the host tools (Debian packages, bindgen, rust-src,
           virtme-ng, mypy)
  fetch    download and verify the pinned base (Debian linux-source-7.3)
  tree     assemble a git tree: base commit + one commit per patch of every
           series (fixes, rust, batch: series/series.toml)
  build    configure and build the kernel (O= in the cache) and the selftests
  boot     boot the kernel in QEMU with virtme-ng and run a guest script

Commands (see README.md):

  demo            build the series, boot it and show minor faults resolved
  test            the harness's unit tests, then build and boot the test and
                  the production kernel, run every test and every gate, and
                  hold the run against harness/expected.toml; last line is
                  "N passed, N failed"
  unit            the harness's unit tests and type check only (seconds)
  shell           interactive shell in the booted test kernel
  series          write the mailable series, each in out/series/<name>/
                  (git format-patch --cover-letter --base)
  gates           the review gates only (checkpatch, git am of each series on
                  what it requires, clippy, rustfmt, rustdoc, mypy)
  bench           boot with -icount and run the CONTINUE benchmark on the
                  production kernel (--debug: on the test kernel)
  check-series    build every patch of every series on its own, in several
                  configurations, and its rustdoc (slow)
  check-arch ARCH cross-build the series for ARCH (arm64) with no warning
  clean           remove the build directories and check worktrees (next
                  builds are from scratch)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Callable, Dict, List, Optional, Sequence

from . import (base, bench, boot, build, check_series, coverage, gates, host_setup,
               results, series)
from .common import Context, HarnessError, elapsed, say, tail, tool_env
from .results import Results


def prepare(ctx: Context) -> List[tuple[str, str]]:
    """setup, fetch and tree: what every command that builds needs first."""
    host_setup.setup(ctx)
    base.fetch(ctx)
    return series.update_tree(ctx)


def finish(res: Results) -> int:
    """Prints the results and their summary line; the exit status."""
    res.report()
    print(res.summary())
    return 1 if res.failed else 0


def cmd_setup(ctx: Context, args: argparse.Namespace) -> int:
    host_setup.setup(ctx)
    return 0


def cmd_fetch(ctx: Context, args: argparse.Namespace) -> int:
    base.fetch(ctx)
    return 0


def cmd_tree(ctx: Context, args: argparse.Namespace) -> int:
    base.fetch(ctx)
    series.update_tree(ctx)
    return 0


def cmd_build(ctx: Context, args: argparse.Namespace) -> int:
    prepare(ctx)
    build.build_kernel(ctx)
    build.build_selftests(ctx)
    return 0


def cmd_clean(ctx: Context, args: argparse.Namespace) -> int:
    build.clean(ctx)
    return 0


def cmd_demo(ctx: Context, args: argparse.Namespace) -> int:
    cmd_build(ctx, args)
    rundir = boot.boot(ctx, "demo.sh", "demo", timeout=900)
    out = os.path.join(rundir, "demo.out")
    if not os.path.exists(out):
        raise HarnessError(tail(os.path.join(rundir, "console.log"), 60)
                           + "the demo did not produce output")
    with open(out) as f:
        print(f.read(), end="")
    res = Results()
    results.scan_kernel_log(rundir, res)
    return finish(res)


def test_run_name(ctx: Context, phase: str = "test") -> str:
    return ("test-kasan" if ctx.kasan else "test") + \
        ("-without-fixes" if ctx.without_fixes else "") + \
        ("" if phase == "test" else f"-{phase}")


def guest_args(args: argparse.Namespace, phase: str = "test") -> str:
    """The arguments of guest/run-tests.sh after its run directory."""
    words = ["kunit"] if args.kunit_only else []
    if args.only:
        words.append(f"only={args.only}")
    words.append(f"stress={args.stress_secs}")
    if phase != "test":
        words.append(f"kernel={phase}")
    return " ".join(words)


def phase_context(ctx: Context, phase: coverage.Phase) -> Context:
    """The Context that builds and boots the kernel of a phase: the test
    kernel's, or its own build directory and fragments on top (--kasan:
    with KASAN too, in a directory of its own)."""
    if phase.build == "build" and not phase.config:
        return ctx
    build_dir = phase.build + ("-kasan" if ctx.kasan else "")
    return dataclasses.replace(
        ctx, build=os.path.join(ctx.cache, build_dir),
        extra_fragments=tuple(os.path.join(ctx.harness, "config", c) for c in phase.config))


def cmd_test(ctx: Context, args: argparse.Namespace) -> int:
    host_setup.setup(ctx)
    base.fetch(ctx)
    res = Results()
    # First, in seconds: the harness's own unit tests (they need the base's
    # tools/testing/kunit).
    gates.run_unit_tests(ctx, res)
    exp = coverage.load(ctx.harness)
    scope = coverage.Scope.of(args.only, args.kunit_only)
    phases = [p for p in exp.phases.values() if scope.runs(exp, p)]
    commits = series.update_tree(ctx)
    built = set()
    for phase in phases:
        # Each kernel once: phases may boot the same one (fault-injection).
        pctx = phase_context(ctx, phase)
        if (pctx.build, pctx.extra_fragments) not in built:
            build.build_kernel(pctx)
            built.add((pctx.build, pctx.extra_fragments))
    build.build_selftests(ctx)
    runs = []
    for phase in phases:
        # Huge pages from boot on, so that the KUnit suites (which run before
        # the guest script sets vm.nr_hugepages) can map hugetlb files too;
        # a kernel log buffer that holds the whole run.
        runs.append((phase, boot.boot(phase_context(ctx, phase), "run-tests.sh",
                                      test_run_name(ctx, phase.name), timeout=args.timeout,
                                      append=("hugepages=128",
                                              f"log_buf_len={boot.LOG_BUF_LEN}"),
                                      numa_nodes=args.numa_nodes,
                                      args=guest_args(args, phase.name))))
    coverage.judge(res, exp, scope, runs)
    if not args.no_gates and commits:
        gates.run_gates(ctx, res)
    with open(os.path.join(ctx.runs, test_run_name(ctx), "results.tap"), "w") as f:
        res.report(f)
    print()
    print("Phase timings:")
    for name, d in ctx.timings:
        print(f"  {d:7.0f}s  {name}")
    print()
    return finish(res)


def cmd_unit(ctx: Context, args: argparse.Namespace) -> int:
    """The harness's unit tests and mypy, without building anything."""
    base.fetch(ctx)
    res = Results()
    gates.run_unit_tests(ctx, res)
    gates.gate_mypy(ctx, res)
    return finish(res)


def cmd_gates(ctx: Context, args: argparse.Namespace) -> int:
    """The review gates alone: checkpatch, git am, clippy, rustfmt, rustdoc, mypy."""
    prepare(ctx)
    build.build_kernel(ctx)
    res = Results()
    gates.run_gates(ctx, res)
    return finish(res)


def cmd_shell(ctx: Context, args: argparse.Namespace) -> int:
    cmd_build(ctx, args)
    cmd = boot.vng_cmd(ctx, None, kvm=boot.kvm_usable(), verbose=False)
    say("$ " + " ".join(cmd))
    os.execvpe(cmd[0], cmd, tool_env())


def cmd_series(ctx: Context, args: argparse.Namespace) -> int:
    base.fetch(ctx)
    with ctx.phase("format-patch"):
        postings = series.write_series(ctx, args.out or os.path.join(ctx.out, "series"))
    for post in postings:
        on = "+".join(("base", *post.on))
        print(f"{post.name}: {len(post.commits)} patches on {on}, in {post.directory}")
        for p in post.files:
            print(f"  {os.path.basename(p)}")
    return 0


def bench_kernels(ctx: Context, cc: str) -> List[tuple[str, Context]]:
    """The production benchmark kernels of `--cc` (llvm, gcc or both), each
    with its output name: build-bench/ (LLVM 22, bench.config on top of the
    test configuration) and build-bench-gcc/ (GCC 12, bench-gcc.config after
    that)."""
    config = os.path.join(ctx.harness, "config")
    kernels = []
    if cc in ("llvm", "both"):
        kernels.append(("bench", dataclasses.replace(
            ctx, build=os.path.join(ctx.cache, "build-bench"),
            extra_fragments=(os.path.join(config, "bench.config"),))))
    if cc in ("gcc", "both"):
        kernels.append(("bench-gcc", dataclasses.replace(
            ctx, build=os.path.join(ctx.cache, "build-bench-gcc"), cc="gcc",
            extra_fragments=(os.path.join(config, "bench.config"),
                             os.path.join(config, "bench-gcc.config")))))
    return kernels


def cmd_bench(ctx: Context, args: argparse.Namespace) -> int:
    """The production kernels (LLVM and GCC, or the one --cc names), or with
    --debug (or --kasan) the test kernel."""
    if (args.debug or ctx.kasan) and args.cc == "gcc":
        raise HarnessError("bench --cc gcc measures the production kernel: "
                           "no --debug or --kasan")
    prepare(ctx)
    command = " ".join(["harness/uffdrs", *(["--kasan"] if ctx.kasan else []),
                        *(["--without-fixes"] if ctx.without_fixes else []), "bench",
                        *(["--debug"] if args.debug else []),
                        *([f"--cc {args.cc}"] if args.cc != "both" else []),
                        *([f"--rounds {args.rounds}"] if args.rounds != 2 else []),
                        *([f"--restore-mib {args.restore_mib}"]
                          if args.restore_mib != 1024 else [])])
    if args.debug or ctx.kasan:
        print(bench.bench(ctx, "bench-debug", command, args.rounds, args.restore_mib),
              end="")
        return 0
    for name, kctx in bench_kernels(ctx, args.cc):
        print(bench.bench(kctx, name, command, args.rounds, args.restore_mib), end="")
    return 0


def cmd_check_series(ctx: Context, args: argparse.Namespace) -> int:
    variants = args.variants.split(",") if args.variants else list(check_series.VARIANTS)
    unknown = [v for v in variants if v not in check_series.VARIANTS]
    if unknown:
        raise HarnessError(f"unknown variant(s) {', '.join(unknown)}; known: "
                           + ",".join(check_series.VARIANTS))
    prepare(ctx)
    asm = series.Assembly(ctx)
    names = args.series.split(",") if args.series else asm.default()
    known = [d.name for d in asm.defs]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise HarnessError(f"unknown series {', '.join(unknown)}; known: {','.join(known)}")
    # Each series as it is posted: on the base and the series it requires.
    groups = [(n, asm.own_commits(n)) for n in known if n in names]
    return finish(check_series.check_series(ctx, groups, variants))


def cmd_check_arch(ctx: Context, args: argparse.Namespace) -> int:
    prepare(ctx)
    return finish(check_series.check_arch(ctx, args.arch))


COMMANDS: Dict[str, Callable[[Context, argparse.Namespace], int]] = {
    "setup": cmd_setup, "fetch": cmd_fetch, "tree": cmd_tree,
    "build": cmd_build, "demo": cmd_demo, "test": cmd_test, "unit": cmd_unit,
    "shell": cmd_shell, "series": cmd_series, "clean": cmd_clean,
    "bench": cmd_bench, "check-series": cmd_check_series,
    "gates": cmd_gates, "check-arch": cmd_check_arch,
}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="uffdrs", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kasan", action="store_true",
                    help="build and boot a KASAN kernel (build-kasan/ in the cache)")
    ap.add_argument("--without-fixes", action="store_true",
                    help="assemble (tree, build, test, ...) without the series "
                    "marked fix = true (the fixes of the base)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("setup", "fetch", "tree", "build", "demo", "shell", "clean",
                 "gates", "unit"):
        sub.add_parser(name)
    b = sub.add_parser("bench")
    b.add_argument("--debug", action="store_true",
                   help="benchmark the test kernel (lockdep, DEBUG_VM, KUnit) instead "
                   "of the production one (build-bench/ in the cache)")
    b.add_argument("--cc", choices=("llvm", "gcc", "both"), default="both",
                   help="the production kernel built with LLVM 22 (build-bench/), "
                   "with GCC 12 (build-bench-gcc/, no RUST_INLINE_HELPERS), or both "
                   "(default), one after the other")
    b.add_argument("--rounds", type=int, default=2,
                   help="rounds per implementation (default 2)")
    b.add_argument("--restore-mib", type=int, default=1024, metavar="N",
                   help="memory of the restore workload uffd-restore, in MiB "
                   "(default 1024; 0: do not run it)")
    t = sub.add_parser("test")
    t.add_argument("--no-gates", action="store_true",
                   help="skip checkpatch/rustfmt/clippy/rustdoc/git-am/mypy gates")
    t.add_argument("--kunit-only", action="store_true",
                   help="in the guest, collect the KUnit results only")
    t.add_argument("--stress-secs", type=int, default=30, metavar="N",
                   help="seconds uffd-continue-stress races on each kind of file, "
                   "per implementation (default 30)")
    t.add_argument("--only", default="",
                   help="comma-separated selftest programs: run only these "
                   "in the guest (on every implementation, and on the production "
                   "kernel if it runs them), and the KUnit results")
    t.add_argument("--numa-nodes", type=int, default=2, choices=(1, 2), metavar="N",
                   help="NUMA nodes of the guest, 1 or 2 (default 2: "
                   "uffd-continue-stress migrates pages between them)")
    t.add_argument("--timeout", type=int, default=5400,
                   help="seconds the guest may run (default 5400)")
    s = sub.add_parser("series")
    s.add_argument("--out", default="", help="directory (default: out/series)")
    a = sub.add_parser("check-arch")
    a.add_argument("arch", choices=sorted(check_series.CHECK_ARCHES))
    c = sub.add_parser("check-series")
    c.add_argument("--variants", default="",
                   help="comma-separated subset of " + ",".join(check_series.VARIANTS))
    c.add_argument("--series", default="",
                   help="comma-separated series of series/series.toml to check "
                   "(default: all; --without-fixes: all but the fixes)")
    return ap


def main(repo: str, argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    ctx = Context.create(repo, kasan=args.kasan, without_fixes=args.without_fixes)
    try:
        os.makedirs(ctx.cache, exist_ok=True)
        return COMMANDS[args.cmd](ctx, args)
    except HarnessError as e:
        print(f"[uffdrs {elapsed()}] error: {e}", file=sys.stderr, flush=True)
        return 1
