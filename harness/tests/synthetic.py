# SPDX-License-Identifier: GPL-2.0
"""A synthetic full test run, as the guest records it (harness/guest/lib.sh):
every phase, implementation, program, KUnit suite and requirement of an
expectation (harness/expected.toml), with the skips it allows, counters that
grow where they must, and a kernel log with the OOM reports it expects.
The unit tests break it in one place at a time; each break must fail."""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional

from uffdrs_lib import coverage, results

from . import read_test_data

# uffd-continue's fixture variants, and enough cases for its fewest.
VARIANTS = ("memfd_shared", "memfd_private", "tmpfs_shared", "thp_shared", "rust_shared")


def case_names(exp: coverage.Expected, prog: coverage.Program) -> List[str]:
    """Case names of a program: those its skips and OOMs name, and more up
    to its fewest."""
    names: List[str] = [s.case for s in exp.skips if s.program == prog.name]
    names.sort(key=lambda n: n.startswith("implementation."))
    for o in exp.ooms:
        if o.program == prog.name:
            names += [f"uffd_continue.{v}.{o.case}" for v in VARIANTS]
    names = list(dict.fromkeys(names))
    i = 0
    while len(names) < max(prog.min_cases, 1):
        names.append(f"case_{i}")
        i += 1
    return names


def tap(exp: coverage.Expected, prog: coverage.Program, impl: Optional[str]) -> str:
    """The TAP of a program run: its cases pass, but those the expectation
    skips on this implementation ("*" of a reason: 42)."""
    names = case_names(exp, prog)
    lines = ["TAP version 13", f"1..{len(names)}"]
    for i, n in enumerate(names, 1):
        skip = next((s for s in exp.skips if s.program == prog.name and s.case == n
                     and (not s.impls or impl in s.impls)), None)
        lines.append(f"ok {i} {n}" + (f" # SKIP {skip.reason.replace('*', '42')}"
                                      if skip else ""))
    return "\n".join(lines) + "\n"


def ktap(suite: str) -> str:
    return ("KTAP version 1\n1..1\n    KTAP version 1\n"
            f"    # Subtest: {suite}\n    1..1\n    ok 1 a_case\nok 1 {suite}\n")


def oom_report(comm: str, memcg: str) -> List[str]:
    """A memory-cgroup OOM report of this kernel (kernel-log/dmesg-oom.txt)."""
    lines = read_test_data("kernel-log", "dmesg-oom.txt").splitlines()
    end = next(i for i, line in enumerate(lines) if "no killable processes" in line)
    return [line.replace("uffd-continue invoked", f"{comm} invoked")
            .replace("/uffd-continue-322:", f"{memcg}:") for line in lines[:end + 1]]


def injection_report(comm: str) -> List[str]:
    """A report of the fault injection, with its stack trace, as verbose=2
    prints it (kernel-log/dmesg-fault-injection.txt)."""
    lines = read_test_data("kernel-log", "dmesg-fault-injection.txt").splitlines()
    start = next(i for i, line in enumerate(lines) if "FAULT_INJECTION: forcing" in line)
    end = next(i for i, line in enumerate(lines) if i > start and "</TASK>" in line)
    return [line.replace("Comm: uffd-continue ", f"Comm: {comm[:15]} ")
            for line in lines[start:end + 1]]


# What the guest records of a program run under fault injection.
FAULT_INJECTED = ("failslab 7\nfail_page_alloc 5\n"
                  "# fault injection: 812 CONTINUE under injection, 40 failed (9 ENOMEM, "
                  "30 EFAULT, 1 partial) and were retried, 10 of them because of it; "
                  "0 undocumented outcomes, 0 errors\n")


class Run:
    """The run directories of a synthetic run, one per phase, under root,
    as the guest writes them for `scope` (`test --only`, `--kunit-only`)."""

    def __init__(self, root: str, exp: coverage.Expected,
                 scope: coverage.Scope = coverage.Scope()) -> None:
        self.root = root
        self.exp = exp
        self.scope = scope
        self.dirs: Dict[str, str] = {}
        for phase in exp.phases.values():
            if scope.runs(exp, phase):
                self.dirs[phase.name] = self.write_phase(phase)

    def runs(self) -> List[tuple[coverage.Phase, str]]:
        return [(self.exp.phases[n], d) for n, d in self.dirs.items()]

    def write_phase(self, phase: coverage.Phase) -> str:
        d = os.path.join(self.root, phase.name)
        os.makedirs(os.path.join(d, "logs"))
        manifest: List[str] = []
        log = ["[    0.000000] Linux version 7.3.4-uffdrs+ (root@vm) #1 SMP",
               "[    0.000000] printk: log buffer data + meta data: 67108864 + 234881024"
               " = 301989888 bytes"]
        n = 0

        def write(name: str, text: str) -> str:
            nonlocal n
            n += 1
            path = f"logs/{n}.log"
            with open(os.path.join(d, path), "w") as f:
                f.write(text)
            return path

        def entry(kind: str, name: str, status: str, text: Optional[str]) -> None:
            manifest.append(f"{kind}\t{name}\t{status}\t"
                            + (write(name, text) if text is not None else "-"))

        def program(prog: coverage.Program, impl: Optional[str], selected: str) -> None:
            run = coverage.run_name(prog, impl)
            log.append(f"[    1.000000] uffdrs: run {run}")
            for o in self.exp.ooms:
                if o.program == prog.name:
                    for v in VARIANTS:
                        name = f"uffd_continue.{v}.{o.case}"
                        if not any(s.case == name for s in self.exp.skips):
                            for _ in range(o.per_case):
                                log.extend(oom_report(o.comm, f"{o.memcg}42"))
            if phase.fault_injection:
                log.extend(injection_report(prog.name))
            log.append(f"[    2.000000] uffdrs: done {run} rc=0")
            if prog.kind == "tap":
                entry("tap", run, "0", tap(self.exp, prog, impl))
            else:
                entry("exit", run, "0", f"ok 1 {prog.name}\n")
            if phase.fault_injection:
                entry("faultinject", run, "-", FAULT_INJECTED)
            counters = self.exp.impls[selected].counters
            if counters:
                entry("stats", run, selected, stats(self.exp, prog, selected))

        for w in phase.require:
            entry("require", w, "0", f"{w}: found\n")
        for s in phase.kunit:
            entry("ktap", f"kunit: {s}", "-", ktap(s))
        if not self.scope.kunit_only:
            for p in self.scope.programs(self.exp, phase.once):
                program(p, None, phase.impls[0])
            for impl in phase.impls:
                entry("phase", impl, "0", None)
                for p in self.scope.programs(self.exp, phase.programs):
                    program(p, impl, impl)
        for name, text in (("manifest", "\n".join(manifest) + "\n"),
                           ("dmesg.txt", "\n".join(log) + "\n"),
                           ("console.log", "$ vng --run ...\n" + "\n".join(log) + "\n"),
                           ("vng.rc", "0\n"), ("done", "")):
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        return d

    # Breaking it

    def path(self, phase: str, name: str) -> str:
        return os.path.join(self.dirs[phase], name)

    def read(self, phase: str, name: str) -> str:
        with open(self.path(phase, name)) as f:
            return f.read()

    def write(self, phase: str, name: str, text: str) -> None:
        with open(self.path(phase, name), "w") as f:
            f.write(text)

    def edit(self, phase: str, name: str, old: str, new: str, count: int = -1) -> None:
        text = self.read(phase, name)
        assert old in text, (old, name)
        self.write(phase, name, text.replace(old, new, count))

    def drop_entries(self, phase: str, pattern: str) -> None:
        """Removes the manifest lines that match a regular expression."""
        lines = self.read(phase, "manifest").splitlines(keepends=True)
        kept = [line for line in lines if not re.search(pattern, line)]
        assert len(kept) < len(lines), pattern
        self.write(phase, "manifest", "".join(kept))

    def entry_log(self, phase: str, kind: str, name: str) -> str:
        """The log file of a manifest entry."""
        for line in self.read(phase, "manifest").splitlines():
            f = line.split("\t")
            if f[0] == kind and f[1] == name:
                return f[3]
        raise KeyError((kind, name))

    def judge(self) -> results.Results:
        res = results.Results()
        coverage.judge(res, self.exp, self.scope, self.runs())
        return res


def stats(exp: coverage.Expected, prog: coverage.Program, impl: str) -> str:
    """Counters before and after a program run: every known counter, those
    of what the program maps on this implementation grown."""
    known = sorted(set().union(*(i.own() for i in exp.impls.values())))
    grow = {c for kind in prog.maps for c in exp.impls[impl].counters.get(kind, ())}
    return "".join(f"before {c} 100\n" for c in known) + \
        "".join(f"after {c} {100 + (7 if c in grow else 0)}\n" for c in known)
