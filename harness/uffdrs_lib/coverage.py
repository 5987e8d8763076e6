# SPDX-License-Identifier: GPL-2.0
"""coverage: a test run held against what it must produce (harness/expected.toml).

results.py turns what the guest recorded into results; this module checks
that they are the results a run must have:

- every phase (kernel), implementation, program, KUnit suite and
  requirement that harness/expected.toml lists for the scope of the run
  (`test --only`, `--kunit-only` narrow it) has its results, and each
  program at least its fewest cases (check_coverage());
- the only skips are those listed there, with their exact reasons, and each
  of them happened (check_skips());
- each program run with an implementation selected mapped its pages with
  that implementation's counters only, and grew those of what it maps
  (check_counters());
- the only OOM reports in the kernel log are the expected ones, in the
  program run and memory cgroup that provoke them, as many as expected
  (oom_excused(), check_ooms()).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import tomllib
from typing import (AbstractSet, Any, Dict, FrozenSet, Iterable, List, Optional, Sequence,
                    Tuple)

from .common import HarnessError, read
from .results import (IMPL_NAME, SKIP, OomReport, Results, compare_implementations,
                      oom_reports, parse_guest_run, read_manifest, scan_kernel_log)


@dataclasses.dataclass(frozen=True)
class Program:
    name: str       # as results name it: "uffd-stress anon 32 16"
    select: str     # the word of `test --only` that selects it
    kind: str       # "tap": a result per case and the exit status; "exit"
    min_cases: int  # the fewest case results of a tap program
    maps: Tuple[str, ...]  # "continue", "install": counters that must grow


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str       # "test", "production": one boot of one kernel
    config: Tuple[str, ...]    # fragments of harness/config/ over uffdrs.config
    build: str                 # its build directory in the cache
    impls: Tuple[str, ...]
    require: Tuple[str, ...]
    kunit: Tuple[str, ...]
    programs: Tuple[str, ...]  # on every implementation
    once: Tuple[str, ...]      # once, on the implementation selected
    # Its programs run with allocation failures injected (fault-inject.sh):
    # each run must say how many, and the injection's reports in the kernel
    # log are allowed in their runs.
    fault_injection: bool = False

    @property
    def label(self) -> str:
        """What names its results that are not a program's or a suite's."""
        return "" if self.name == "test" else f"{self.name} kernel: "


@dataclasses.dataclass(frozen=True)
class Impl:
    name: str
    counters: Dict[str, Tuple[str, ...]]  # kind of mapping -> counters
    may_grow: Tuple[str, ...]

    def own(self) -> FrozenSet[str]:
        return frozenset(c for cs in self.counters.values() for c in cs) | set(self.may_grow)


@dataclasses.dataclass(frozen=True)
class Skip:
    program: str
    case: str
    reason: str     # exact; a "*" in it stands for any text (a number)
    impls: Tuple[str, ...]  # where it happens; empty: on every implementation

    def matches(self, prog: str, impl: str, case: str, reason: str) -> bool:
        return (prog == self.program and case == self.case
                and (not self.impls or impl in self.impls)
                and (reason == self.reason or
                     ("*" in self.reason and fnmatch.fnmatchcase(reason, self.reason))))


@dataclasses.dataclass(frozen=True)
class Oom:
    program: str
    case: str       # the case that provokes them (a suffix of its name)
    comm: str       # the task that invokes the OOM killer
    memcg: str      # the start of the memory cgroup's path
    per_case: int   # reports per run of the case that did not skip


@dataclasses.dataclass(frozen=True)
class Expected:
    phases: Dict[str, Phase]
    programs: Dict[str, Program]
    impls: Dict[str, Impl]
    skips: Tuple[Skip, ...]
    ooms: Tuple[Oom, ...]

    def phase_of(self, impl: str) -> Optional[Phase]:
        return next((p for p in self.phases.values() if impl in p.impls), None)


def _strs(d: Dict[str, Any], key: str) -> Tuple[str, ...]:
    v = d.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise HarnessError(f"expected.toml: {key} must be a list of strings")
    return tuple(v)


def parse(text: str) -> Expected:
    """The expectations of a TOML text (harness/expected.toml's format)."""
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise HarnessError(f"expected.toml: {e}") from e
    programs = {name: Program(name, p["select"], p["kind"], p.get("min_cases", 0),
                              _strs(p, "maps"))
                for name, p in d.get("program", {}).items()}
    impls = {name: Impl(name, {k: tuple(v) for k, v in i.get("counters", {}).items()},
                        _strs(i, "may_grow"))
             for name, i in d.get("impl", {}).items()}
    phases = {name: Phase(name, _strs(p, "config"), p.get("build", "build"),
                          _strs(p, "impls"), _strs(p, "require"), _strs(p, "kunit"),
                          _strs(p, "programs"), _strs(p, "once"),
                          p.get("fault_injection", False) is True)
              for name, p in d.get("phase", {}).items()}
    exp = Expected(phases, programs, impls,
                   tuple(Skip(s["program"], s["case"], s["reason"], _strs(s, "impls"))
                         for s in d.get("skip", [])),
                   tuple(Oom(o["program"], o["case"], o["comm"], o["memcg"], o["per_case"])
                         for o in d.get("oom", [])))
    errors = []
    for ph in phases.values():
        errors += [f"phase {ph.name}: unknown program {p!r}"
                   for p in ph.programs + ph.once if p not in programs]
        errors += [f"phase {ph.name}: unknown implementation {i!r}"
                   for i in ph.impls if i not in impls]
    errors += [f"program {p.name}: kind {p.kind!r}" for p in programs.values()
               if p.kind not in ("tap", "exit")]
    errors += [f"skip of unknown program {s.program!r}" for s in exp.skips
               if s.program not in programs]
    errors += [f"skip on unknown implementation {i!r}" for s in exp.skips for i in s.impls
               if i not in impls]
    errors += [f"oom of unknown program {o.program!r}" for o in exp.ooms
               if o.program not in programs]
    if errors:
        raise HarnessError("expected.toml: " + "; ".join(errors))
    return exp


def load(harness: str) -> Expected:
    return parse(read(os.path.join(harness, "expected.toml")))


@dataclasses.dataclass(frozen=True)
class Scope:
    """What a run was asked for: `test --only` (selection words, empty: all)
    and `--kunit-only`. It narrows what is expected."""
    only: FrozenSet[str] = frozenset()
    kunit_only: bool = False

    @classmethod
    def of(cls, only: str, kunit_only: bool) -> Scope:
        return cls(frozenset(w for w in only.split(",") if w), kunit_only)

    def programs(self, exp: Expected, names: Iterable[str]) -> List[Program]:
        if self.kunit_only:
            return []
        return [exp.programs[n] for n in names
                if not self.only or exp.programs[n].select in self.only]

    def runs(self, exp: Expected, phase: Phase) -> bool:
        """Whether the phase's kernel is booted at all: it has KUnit suites
        or a program of the scope."""
        return bool(phase.kunit) or bool(self.programs(exp, phase.programs + phase.once))


# ---------------------------------------------------------------------------
# Coverage and skips

def check_coverage(res: Results, exp: Expected, scope: Scope) -> None:
    """One result per phase: every implementation x program, KUnit suite and
    requirement the scope expects has its results."""
    names = {r.name for r in res.items}
    for phase in exp.phases.values():
        if not scope.runs(exp, phase):
            continue
        missing = [f"requirement not checked: {w}" for w in phase.require
                   if f"{phase.label}required: {w}" not in names]
        missing += [f"KUnit suite missing: {s}" for s in phase.kunit
                    if f"kunit: {s} (suite)" not in names]
        runs: List[Tuple[Program, Optional[str]]] = [
            (p, i) for p in scope.programs(exp, phase.programs) for i in phase.impls]
        runs += [(p, None) for p in scope.programs(exp, phase.once)]
        counted = any(exp.impls[i].counters for i in phase.impls)
        for prog, impl in runs:
            missing += program_missing(names, prog, impl, counted)
            run = run_name(prog, impl)
            if phase.fault_injection and f"{run}: allocation failures injected" not in names:
                missing.append(f"failures injected not recorded: {run}")
        res.check(not missing,
                  f"expected coverage of the {phase.name} kernel: "
                  f"{len(phase.impls)} implementations x "
                  f"{len(scope.programs(exp, phase.programs))} programs, "
                  f"{len(scope.programs(exp, phase.once))} once, "
                  f"{len(phase.kunit)} KUnit suites, {len(phase.require)} requirements",
                  "\n".join(missing))


def run_name(prog: Program, impl: Optional[str]) -> str:
    """The name of a program run: "uffd-continue[rust]", "uffd-stress anon
    32 16 [rust]" (as the guest names them), "uffd-continue-stress -X"."""
    if impl is None:
        return prog.name
    return f"{prog.name} [{impl}]" if prog.kind == "exit" else f"{prog.name}[{impl}]"


def program_missing(names: AbstractSet[str], prog: Program, impl: Optional[str],
                    counted: bool) -> List[str]:
    """What is missing of one program run's results (empty: nothing): its
    results (at least its fewest cases) and, where `counted`, its counters."""
    run = run_name(prog, impl)
    missing = []
    if prog.kind == "exit":
        if run not in names:
            missing.append(f"program run missing: {run}")
    else:
        cases = [n for n in names if n.startswith(f"{run}: ")
                 and not n.startswith((f"{run}: exit status", f"{run}: TAP output"))]
        if not any(n.startswith(f"{run}: exit status") for n in names):
            missing.append(f"program run missing: {run}")
        elif len(cases) < prog.min_cases:
            missing.append(f"{run}: {len(cases)} cases, at least {prog.min_cases} expected")
    if counted and impl is not None and not any(n.startswith(f"mfill stats {run}: ")
                                                for n in names):
        missing.append(f"counters not recorded: {run}")
    return missing


def skip_allowed(exp: Expected, name: str, reason: str) -> Optional[Skip]:
    """The [[skip]] that allows a skipped result of this name and reason."""
    m = IMPL_NAME.match(name)
    if not m or not m.group(3).startswith(": "):
        return None
    prog, impl, case = m.group(1).strip(), m.group(2), m.group(3)[2:]
    return next((s for s in exp.skips if s.matches(prog, impl, case, reason)), None)


def check_skips(res: Results, exp: Expected, scope: Scope) -> None:
    """Every skip is one of expected.toml's, with its reason, and every one
    of those that the scope runs happened."""
    seen = [(r, skip_allowed(exp, r.name, r.detail)) for r in res.items if r.status == SKIP]
    extra = [f"not an expected skip: {r.name} ({r.detail})" for r, s in seen if s is None]
    names = {r.name: r for r in res.items}
    expected = 0
    absent = []
    for phase in exp.phases.values():
        progs = {p.name for p in scope.programs(exp, phase.programs)}
        for s in exp.skips:
            if s.program not in progs:
                continue
            for impl in phase.impls:
                if s.impls and impl not in s.impls:
                    continue
                expected += 1
                name = f"{s.program}[{impl}]: {s.case}"
                r = names.get(name)
                if r is None or r.status != SKIP:
                    absent.append(f"expected skip did not happen: {name} ("
                                  + ("no such result" if r is None else r.status)
                                  + "; update harness/expected.toml if that is right)")
    res.check(not extra and not absent,
              f"expected skips only ({expected} expected, {len(seen)} seen)",
              "\n".join(extra + absent))


# ---------------------------------------------------------------------------
# The counters of the implementations

def counter_deltas(text: str) -> Tuple[Dict[str, int], List[str]]:
    """The growth of each counter between the "before" and "after" lines of
    a stats file, and the counters that are not in both."""
    values: Dict[str, Dict[str, int]] = {"before": {}, "after": {}}
    for line in text.splitlines():
        f = line.split()
        if len(f) == 3 and f[0] in values and f[2].isdigit():
            values[f[0]][f[1]] = int(f[2])
    keys = set(values["before"]) | set(values["after"])
    incomplete = sorted(k for k in keys if k not in values["before"]
                        or k not in values["after"])
    deltas = {k: values["after"].get(k, 0) - values["before"].get(k, 0) for k in sorted(keys)}
    return deltas, incomplete


def judge_counters(exp: Expected, run: str, impl: str, text: str) -> Tuple[bool, str]:
    """Whether program run `run` (with `impl` selected) grew only `impl`'s
    counters, and each of those of the kinds of mapping the program does.
    Returns (ok, what grew and what is wrong)."""
    problems = []
    im = exp.impls.get(impl)
    if im is None:
        return False, f"unknown implementation {impl}"
    m = IMPL_NAME.match(run)
    base = m.group(1).strip() if m else run
    prog = exp.programs.get(base)
    deltas, incomplete = counter_deltas(text)
    problems += [f"{k}: not in both snapshots" for k in incomplete]
    known = set().union(*(i.own() for i in exp.impls.values()))
    problems += [f"{k}: a counter expected.toml does not know" for k in deltas if k not in known]
    problems += [f"{k}: missing from debugfs userfaultfd/stats" for k in sorted(im.own())
                 if k not in deltas and k not in im.may_grow]
    own = im.own()
    problems += [f"{k} +{d}: another implementation's counter" for k, d in deltas.items()
                 if d and k not in own]
    problems += [f"{k}: went down by {-d}" for k, d in deltas.items() if d < 0]
    for kind in (prog.maps if prog else ()):
        for k in im.counters.get(kind, ()):
            if deltas.get(k, 0) <= 0:
                problems.append(f"{k} +0: {base} maps pages with {kind}")
    grew = ", ".join(f"{k} +{d}" for k, d in deltas.items() if d) or "nothing grew"
    return not problems, grew + ("\n" + "\n".join(problems) if problems else "")


def check_counters(rundir: str, res: Results, exp: Expected) -> Dict[str, Dict[str, int]]:
    """A result per program run of a guest run that recorded counters; notes
    with the growth per implementation. Returns the growth per
    implementation and counter."""
    totals: Dict[str, Dict[str, int]] = {}
    for e in read_manifest(rundir) or []:
        if e.kind != "stats":
            continue
        path = os.path.join(rundir, e.log)
        text = read(path) if os.path.exists(path) else ""
        ok, msg = judge_counters(exp, e.name, e.status, text)
        res.check(ok, f"mfill stats {e.name}: pages mapped by {e.status} only", msg)
        t = totals.setdefault(e.status, {})
        for k, d in counter_deltas(text)[0].items():
            t[k] = t.get(k, 0) + d
    for impl, t in totals.items():
        res.notes.append(f"mfill stats [{impl}], all its runs: "
                         + (", ".join(f"{k} +{d}" for k, d in t.items() if d) or "nothing"))
    return totals


# ---------------------------------------------------------------------------
# OOM reports

def oom_excused(exp: Expected, report: OomReport) -> bool:
    """Whether an OOM report is one expected.toml expects: its task and
    memory cgroup those of an [[oom]], in a run of its program."""
    m = IMPL_NAME.match(report.run)
    prog = m.group(1).strip() if m else report.run
    return any(o.program == prog and report.comm == o.comm
               and report.memcg.startswith(o.memcg) for o in exp.ooms)


def check_ooms(res: Results, exp: Expected, log: Optional[str], phase: Phase) -> int:
    """The expected OOM reports of the kernel log of a phase are as many as
    expected: per run of a program that provokes them, `per_case` for each
    of its results of the case that did not skip. Returns how many there
    were."""
    if log is None or not exp.ooms:
        return 0
    seen: Dict[str, int] = {}
    for report, _ in oom_reports(log):
        if oom_excused(exp, report):
            seen[report.run] = seen.get(report.run, 0) + 1
    want: Dict[str, int] = {}
    for r in res.items:
        m = IMPL_NAME.match(r.name)
        if not m or r.status == SKIP or m.group(2) not in phase.impls \
                or m.group(1).strip() not in phase.programs:
            continue
        run = m.group(1) + f"[{m.group(2)}]"
        for o in exp.ooms:
            if m.group(1).strip() == o.program and fnmatch.fnmatch(m.group(3), f": *{o.case}"):
                want[run] = want.get(run, 0) + o.per_case
    wrong = [f"{run}: {seen.get(run, 0)} OOM reports, {want.get(run, 0)} expected"
             for run in sorted(set(seen) | set(want)) if seen.get(run, 0) != want.get(run, 0)]
    total, expected = sum(seen.values()), sum(want.values())
    label = phase.label
    res.notes.append(f"{label}kernel log: {total} expected OOM reports "
                     f"({', '.join(f'{k} {v}' for k, v in sorted(seen.items())) or 'none'})")
    res.check(not wrong, f"{label}kernel log: the memory-cgroup OOM reports expected, "
              f"no other ({total} seen, {expected} expected)", "\n".join(wrong))
    return total



# ---------------------------------------------------------------------------
# Fault injection

def injection_allowed(exp: Expected, phase: Phase, run: str) -> bool:
    """Whether the fault injection's reports may appear in the kernel log
    during program run `run` of `phase`: a run of one of its programs, in a
    phase that injects failures."""
    m = IMPL_NAME.match(run)
    return (phase.fault_injection and m is not None and m.group(3) == ""
            and m.group(1).strip() in phase.programs and m.group(2) in phase.impls)


# ---------------------------------------------------------------------------
# A whole test run

def judge(res: Results, exp: Expected, scope: Scope, runs: Sequence[Tuple[Phase, str]]) -> None:
    """Every result and check of a test run: each phase's guest run (run
    directory) parsed, its counters and kernel log judged, then the
    expected coverage, the skips, and the comparison of the
    implementations."""
    for phase, rundir in runs:
        parse_guest_run(rundir, res, phase.label)
        check_counters(rundir, res, exp)
        log = scan_kernel_log(rundir, res, phase.label,
                              excused=lambda r: oom_excused(exp, r),
                              injection_allowed=lambda run: injection_allowed(
                                  exp, phase, run))
        check_ooms(res, exp, log, phase)
    check_coverage(res, exp, scope)
    check_skips(res, exp, scope)
    # A skip allowed on some implementations only is not a difference.
    compare_implementations(
        res, lambda r: r.status == SKIP and any(s.impls for s in exp.skips
                                                if skip_allowed(exp, r.name, r.detail) == s))
