# SPDX-License-Identifier: GPL-2.0
"""Results: the one place where test output becomes pass, fail or skip.

The guest records raw output (see harness/guest/lib.sh): the KTAP of every
KUnit suite from debugfs, the TAP of the selftest programs, exit statuses and
the mfill counters, listed in the run's `manifest`. They are parsed here, on
the host; KTAP and TAP with the kernel's own parser,
tools/testing/kunit/kunit_parser.py of the base tree (use_kunit_tool()).

Every result has a status (ok, fail, skip), a name and, for a failure, the
lines that explain it. The report is TAP, and its last line is
"N passed, N failed[, N skipped]".
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Optional, TextIO, Tuple

from .common import HarnessError, read, tail

if TYPE_CHECKING:
    import kunit_parser

OK, FAIL, SKIP = "ok", "fail", "skip"


@dataclasses.dataclass
class Result:
    status: str  # OK, FAIL or SKIP
    name: str
    detail: str = ""  # for a failure: what to show; for a skip: the reason


class Results:
    """The results of a command, in order, and notes printed with them."""

    def __init__(self) -> None:
        self.items: List[Result] = []
        self.notes: List[str] = []  # printed as TAP comments

    def add(self, status: str, name: str, detail: str = "") -> None:
        assert status in (OK, FAIL, SKIP), status
        self.items.append(Result(status, name, detail))

    def ok(self, name: str, detail: str = "") -> None:
        self.add(OK, name, detail)

    def fail(self, name: str, detail: str = "") -> None:
        self.add(FAIL, name, detail)

    def skip(self, name: str, reason: str) -> None:
        self.add(SKIP, name, reason)

    def check(self, cond: bool, name: str, detail: str = "") -> None:
        self.add(OK if cond else FAIL, name, detail)

    def count(self, status: str) -> int:
        return sum(1 for r in self.items if r.status == status)

    @property
    def failed(self) -> int:
        return self.count(FAIL)

    def summary(self) -> str:
        """The last line of every command: "N passed, N failed[, N skipped]"."""
        line = f"{self.count(OK)} passed, {self.count(FAIL)} failed"
        if self.count(SKIP):
            line += f", {self.count(SKIP)} skipped"
        return line

    def tap(self) -> List[str]:
        """The results as TAP, with the first 40 lines of each failure's detail."""
        lines = ["TAP version 13"]
        lines += [f"# {note}" for note in self.notes]
        lines.append(f"1..{len(self.items)}")
        for i, r in enumerate(self.items, 1):
            line = f"{'not ok' if r.status == FAIL else 'ok'} {i} {r.name}"
            if r.status == SKIP:
                line += f" # SKIP {r.detail}"
            lines.append(line)
            if r.status == FAIL and r.detail:
                lines += [f"#   {d}" for d in r.detail.splitlines()[:40]]
        return lines

    def report(self, out: TextIO = sys.stdout) -> None:
        for line in self.tap():
            print(line, file=out)


# ---------------------------------------------------------------------------
# KTAP and TAP, with the kernel's kunit_parser
# ---------------------------------------------------------------------------

def use_kunit_tool(kunit_dir: str) -> None:
    """Makes tools/testing/kunit of a kernel tree importable."""
    if not os.path.exists(os.path.join(kunit_dir, "kunit_parser.py")):
        raise HarnessError(f"no kunit_parser.py in {kunit_dir} (fetch the base first)")
    if kunit_dir not in sys.path:
        sys.path.insert(0, kunit_dir)


def parse_ktap(lines: Iterable[str]) -> kunit_parser.Test:
    """The main test of KTAP or TAP output, with kunit_parser, silently."""
    import kunit_parser
    import kunit_printer
    return kunit_parser.parse_run_tests(lines, kunit_printer.Printer(print=False))


# kselftest's ksft_test_result_skip(): "ok 3 # SKIP name (reason)"; KTAP
# and kselftest_harness: "ok 3 name # SKIP reason". kunit_parser takes the
# first as a test without a name, skipped for "name (reason)".
KSFT_SKIP = re.compile(r"^(.*?)(?: \((.*)\))?$")


def case_name_and_reason(test: kunit_parser.Test) -> Tuple[str, str]:
    """The name and skip reason of a test, in either skip form."""
    name, reason = test.name.strip(), test.skip_reason.strip()
    if not name and reason:
        m = KSFT_SKIP.match(reason)
        assert m
        name, reason = m.group(1), m.group(2) or ""
    return name, reason or "no reason given"


def add_test(res: Results, prefix: str, test: kunit_parser.Test, num: int) -> None:
    """Results for one test of a KTAP tree: its cases, or itself if it has none.

    A parameterised KUnit case has its parameters as subtests: each one is a
    result, "PREFIX: case: parameter"; the case itself is one only if it
    failed while none of its parameters did.
    """
    from kunit_parser import TestStatus
    name, reason = case_name_and_reason(test)
    if not name:
        name = f"test {num} (no result line: crashed or missing)"
    full = f"{prefix}: {name}"
    before = res.failed
    for i, sub in enumerate(test.subtests, 1):
        add_test(res, full, sub, i)
    if test.subtests and (test.ok_status() or res.failed > before):
        return
    if test.status == TestStatus.SUCCESS:
        res.ok(full)
    elif test.status == TestStatus.SKIPPED:
        res.skip(full, reason)
    else:
        status = test.status.name.lower().replace("_", " ")
        res.fail(full, f"status: {status}\n" + "\n".join(test.log))


def add_ktap_suite(res: Results, prefix: str, text: str) -> None:
    """The results of a KUnit suite's debugfs `results` file.

    Each case is a result named "PREFIX: case" (parameters of a
    parameterised case are their own results), and the suite is one, named
    "PREFIX (suite)": it passes if its own result line is ok and the KTAP
    has the cases its plan announced, and is skipped if the suite was.
    """
    from kunit_parser import TestStatus
    main = parse_ktap(text.splitlines())
    suites = main.subtests
    if not suites:
        res.fail(f"{prefix} (suite)", "no KTAP results:\n" + text[-2000:])
        return
    for suite in suites:
        for i, case in enumerate(suite.subtests, 1):
            add_test(res, prefix, case, i)
        if suite.status == TestStatus.SKIPPED and main.counts.errors == 0:
            res.skip(f"{prefix} (suite)", case_name_and_reason(suite)[1])
            continue
        res.check(suite.ok_status() and suite.counts.errors == 0
                  and main.counts.errors == 0, f"{prefix} (suite)",
                  f"suite status {suite.status.name}, {suite.counts}\n"
                  + "\n".join(suite.log[-40:]))


def add_tap_program(res: Results, prefix: str, text: str) -> None:
    """The cases of a selftest program's TAP output, "PREFIX: case"."""
    main = parse_ktap(text.splitlines())
    if not main.subtests:
        res.fail(f"{prefix}: TAP output", "no TAP results in the output:\n" + text[-2000:])
        return
    for i, case in enumerate(main.subtests, 1):
        add_test(res, prefix, case, i)


def exit_status_ok(rc: str, tap: bool) -> bool:
    """0, or for a kselftest 4 (KSFT_SKIP: every case skipped)."""
    return rc == "0" or (tap and rc == "4")


def exit_status_name(prefix: str, rc: str) -> str:
    if rc == "0" or rc == "4":
        return f"{prefix}: exit status"
    return f"{prefix}: exit status {rc}" + (" (timeout)" if rc == "124" else "")


# ---------------------------------------------------------------------------
# A guest run
# ---------------------------------------------------------------------------

def mfill_deltas(text: str) -> Callable[[str], int]:
    """How much each debugfs counter grew: `text` has them before and after
    ("before continue_rust 12", "after continue_rust 20")."""
    values: Dict[str, Dict[str, int]] = {"before": {}, "after": {}}
    for line in text.splitlines():
        f = line.split()
        if len(f) == 3 and f[0] in values:
            values[f[0]][f[1]] = int(f[2])

    def delta(key: str) -> int:
        return values["after"].get(key, 0) - values["before"].get(key, 0)
    return delta


def mfill_stats(text: str, impl: str) -> Tuple[bool, str]:
    """Whether a phase mapped its pages with the selected implementation only.

    `text` has the debugfs counters before and after the phase ("before
    continue_rust 12"); rust-batch counts as rust. Returns (ok, summary).
    """
    delta = mfill_deltas(text)
    fam = impl.removesuffix("-batch")
    other = "c" if fam == "rust" else "rust"
    d_cont, d_inst = delta(f"continue_{fam}"), delta(f"install_{fam}")
    o = delta(f"continue_{other}") + delta(f"install_{other}")
    msg = f"continue_{fam} +{d_cont}, install_{fam} +{d_inst}, {other} +{o}"
    return d_cont > 0 and d_inst > 0 and o == 0, msg


# The fault-injection phase (harness/guest/fault-inject.sh): its log has the
# failures each attribute injected ("failslab 12"), the mfill counters before
# and after, and the programs' summaries ("uffd-continue: # fault injection:
# 812 CONTINUE under injection, ..., 9 of them because of it; ...").
FI_ATTRS = ("failslab", "fail_page_alloc")
FI_SUMMARY = re.compile(r"^([\w-]+): # fault injection: (\d+) CONTINUE under injection, "
                        r"(\d+) failed .* (\d+) of them because of it;")


def add_fault_injection(res: Results, prefix: str, impl: str, text: str) -> None:
    """The results of the fault-injection phase on `impl`: failures were
    injected (a phase that injected none fails), some of them failed a
    CONTINUE, and the pages were mapped by `impl` only."""
    injected: Dict[str, int] = {}
    calls = failed = caused = 0
    progs = []
    for line in text.splitlines():
        f = line.split()
        if len(f) == 2 and f[0] in FI_ATTRS and re.fullmatch(r"-?\d+", f[1]):
            injected[f[0]] = int(f[1])
        m = FI_SUMMARY.match(line)
        if m:
            progs.append(f"{m.group(1)} {m.group(4)}/{m.group(3)}/{m.group(2)}")
            calls += int(m.group(2))
            failed += int(m.group(3))
            caused += int(m.group(4))
    total = sum(injected.values())
    counts = ", ".join(f"{a} {injected[a]}" for a in FI_ATTRS if a in injected)
    res.notes.append(f"fault injection [{impl}]: {total} allocation failures injected "
                     f"({counts or 'no counts'}); CONTINUE failed by them/failed/made: "
                     f"{', '.join(progs) or 'none'}")
    name = f"{prefix}fault injection[{impl}]"
    res.check(len(injected) == len(FI_ATTRS) and total > 0,
              f"{name}: allocation failures injected", text[-3000:])
    res.check(caused > 0, f"{name}: CONTINUE calls failed by them, and retried",
              f"{calls} CONTINUE under injection, {failed} failed, {caused} because of it\n"
              + text[-3000:])
    # CONTINUE only: no UFFDIO_COPY in this phase, so no install_ counts.
    delta = mfill_deltas(text)
    fam = impl.removesuffix("-batch")
    other = "c" if fam == "rust" else "rust"
    mine = delta(f"continue_{fam}")
    theirs = delta(f"continue_{other}") + delta(f"install_{other}")
    res.check(mine > 0 and theirs == 0,
              f"{name}: pages mapped by the selected implementation only",
              f"continue_{fam} +{mine}, {other} +{theirs}")


@dataclasses.dataclass
class ManifestEntry:
    kind: str
    name: str
    status: str
    log: str  # path relative to the run directory, or "-"


def read_manifest(rundir: str) -> Optional[List[ManifestEntry]]:
    path = os.path.join(rundir, "manifest")
    if not os.path.exists(path):
        return None
    entries = []
    for line in read(path).splitlines():
        f = line.split("\t")
        if len(f) == 4:
            entries.append(ManifestEntry(*f))
    return entries


def parse_guest_run(rundir: str, res: Results, prefix: str = "") -> None:
    """Adds the results of a guest run: everything its manifest lists, and
    whether the guest script finished."""
    entries = read_manifest(rundir)
    if entries is None:
        res.fail(f"{prefix}guest results",
                 f"the guest wrote no results (see {rundir}/console.log)")
        entries = []
    for e in entries:
        log = os.path.join(rundir, e.log)
        text = read(log) if e.log != "-" and os.path.exists(log) else ""
        name = prefix + e.name
        if e.kind == "ktap":
            add_ktap_suite(res, name, text)
        elif e.kind == "nokunit":
            res.fail(f"{prefix}kunit: debugfs results present")
        elif e.kind == "tap":
            add_tap_program(res, name, text)
            res.check(exit_status_ok(e.status, tap=True), exit_status_name(name, e.status),
                      tail(log))
        elif e.kind == "exit":
            res.check(exit_status_ok(e.status, tap=False), name, tail(log))
        elif e.kind == "faultinject":
            add_fault_injection(res, prefix, e.name, text)
        elif e.kind == "stats":
            ok, msg = mfill_stats(text, e.name)
            res.notes.append(f"mfill stats [{e.name}]: {msg}")
            res.check(ok, f"{prefix}mfill stats [{e.name}]: pages mapped by the "
                      "selected implementation only", msg)
        else:
            res.fail(f"{prefix}guest manifest", f"unknown entry {e}")
    done = os.path.exists(os.path.join(rundir, "done"))
    rc_path = os.path.join(rundir, "vng.rc")
    rc = read(rc_path).strip() if os.path.exists(rc_path) else "?"
    res.check(done, f"{prefix}guest run completed",
              "" if done else f"guest script did not finish (vng rc {rc}, see "
              f"{rundir}/console.log)")


# ---------------------------------------------------------------------------
# Checks over the results and the kernel log
# ---------------------------------------------------------------------------

IMPL_NAME = re.compile(r"^(.*)\[(rust|rust-batch|c)\](.*)$")


def compare_implementations(res: Results) -> None:
    """Every test run on several implementations must have the same outcome.

    Results are grouped by program ("uffd-unit-tests[rust]: minor on shmem"
    is case "minor on shmem" of "uffd-unit-tests" on "rust"); a program run
    on one implementation only is not compared.
    """
    by_prog: Dict[str, Dict[str, Dict[str, str]]] = {}
    for r in res.items:
        m = IMPL_NAME.match(r.name)
        if m:
            prog, impl, case = m.groups()
            by_prog.setdefault(prog.strip(), {}).setdefault(case, {})[impl] = r.status
    for prog, cases in sorted(by_prog.items()):
        impls = sorted({i for v in cases.values() for i in v})
        if len(impls) < 2:
            continue
        both = {c: v for c, v in cases.items() if len(v) == len(impls)}
        diff = [f"{c}: " + ", ".join(f"{i} {v[i]}" for i in impls)
                for c, v in sorted(both.items()) if len(set(v.values())) > 1]
        missing = [c for c, v in sorted(cases.items()) if len(v) != len(impls)]
        res.check(not diff and not missing,
                  f"{prog}: same outcome on every implementation "
                  f"({', '.join(impls)}; {len(both)} cases)",
                  "\n".join(diff + [f"{c}: not run on every implementation"
                                    for c in missing]))


KERNEL_LOG_BAD = re.compile(
    r"(WARNING:|BUG:|Oops|kernel BUG at|general protection fault|"
    r"KASAN:|UBSAN:|Kernel panic|possible recursive locking|"
    r"circular locking dependency|inconsistent lock state|"
    r"suspicious RCU usage|Call Trace:|cut here)")


# An OOM report: the kernel doing its job (uffd-continue's memcg case fills
# a memory cgroup on purpose). The one stack trace it prints, from its first
# line to the end of that trace, is not a problem; anything else still is.
OOM_REPORT_START = re.compile(r" invoked oom-killer: ")
OOM_REPORT_END = re.compile(r"</TASK>|Out of memory and no killable processes|"
                            r"oom-kill:constraint=")


# The fault-injection phase (harness/guest/fault-inject.sh) marks where it
# starts and ends. Between the marks, and only there, the kernel may report
# the failures it injects ("FAULT_INJECTION: forcing a failure.", the
# attribute's line and, with verbose=2, a dump_stack()) and the allocation
# failure warnings they cause (warn_alloc(): "COMM: page allocation failure:
# ...", a dump_stack() and the memory state). The stack trace of such a
# report is no problem: a "Call Trace:" at most FI_TRACE_LINES lines after
# its first line. Anywhere else, an injection report is one.
FI_PHASE_ON = re.compile(r"uffdrs: fault injection on \[")
FI_PHASE_OFF = re.compile(r"uffdrs: fault injection off \[")
FI_REPORT_START = re.compile(r"FAULT_INJECTION: forcing a failure|: page allocation failure: ")
FI_TRACE_LINES = 6


def kernel_log_problems(text: str) -> List[str]:
    """The lines of a kernel log that report a WARN, BUG, Oops, lockdep,
    KASAN, UBSAN or RCU problem, or a call trace outside an OOM report and
    outside a report of the fault-injection phase's own failures."""
    bad = []
    in_oom = in_fi = False
    fi_report = -1  # lines since the start of an injection report, -1: none
    for line in text.splitlines():
        if OOM_REPORT_START.search(line):
            in_oom = True
        elif in_oom and OOM_REPORT_END.search(line):
            in_oom = False
        if FI_PHASE_ON.search(line):
            in_fi = True
        elif FI_PHASE_OFF.search(line):
            in_fi = False
        if FI_REPORT_START.search(line):
            if not in_fi:
                bad.append(line.rstrip())
            fi_report = 0 if in_fi else -1
        elif fi_report >= 0:
            fi_report = fi_report + 1 if fi_report < FI_TRACE_LINES else -1
        m = KERNEL_LOG_BAD.search(line)
        if m and not (m.group(0) == "Call Trace:" and (in_oom or fi_report >= 0)):
            bad.append(line.rstrip())
        if m and m.group(0) == "Call Trace:":
            fi_report = -1
    return bad


def scan_kernel_log(rundir: str, res: Results, prefix: str = "") -> None:
    """The guest's kernel log (dmesg.txt, else the console) must be clean."""
    dmesg = os.path.join(rundir, "dmesg.txt")
    src = dmesg if os.path.exists(dmesg) else os.path.join(rundir, "console.log")
    bad = kernel_log_problems(read(src)) if os.path.exists(src) else [f"{src}: missing"]
    res.check(not bad, f"{prefix}kernel log clean (no WARN/BUG/Oops/lockdep/KASAN)",
              "\n".join(bad[:30]) + f"\n(full log: {src})")
