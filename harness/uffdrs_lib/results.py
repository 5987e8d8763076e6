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
    whether the guest script finished. `prefix` names the results that are
    not a program's (requirements, completion): "" for the test kernel.
    The counters (stats entries) are judged by coverage.check_counters()."""
    entries = read_manifest(rundir)
    if entries is None:
        res.fail(f"{prefix}guest results",
                 f"the guest wrote no results (see {rundir}/console.log)")
        entries = []
    for e in entries:
        log = os.path.join(rundir, e.log)
        text = read(log) if e.log != "-" and os.path.exists(log) else ""
        if e.kind == "ktap":
            add_ktap_suite(res, e.name, text)
        elif e.kind == "nokunit":
            res.fail(f"{prefix}kunit: debugfs results present")
        elif e.kind == "require":
            res.check(e.status == "0", f"{prefix}required: {e.name}", text)
        elif e.kind == "phase":
            where = f" ({prefix.removesuffix(': ')})" if prefix else ""
            res.check(e.status == "0", f"phase [{e.name}]{where}: implementation selected",
                      f"selecting {e.name} failed ({e.status}): its programs did not run")
        elif e.kind == "tap":
            add_tap_program(res, e.name, text)
            res.check(exit_status_ok(e.status, tap=True), exit_status_name(e.name, e.status),
                      tail(log))
        elif e.kind == "exit":
            res.check(exit_status_ok(e.status, tap=False), e.name, tail(log))
        elif e.kind == "stats":
            pass
        elif e.kind == "faultinject":
            add_fault_injection(res, e.name, text)
        else:
            res.fail(f"{prefix}guest manifest", f"unknown entry {e}")
    done = os.path.exists(os.path.join(rundir, "done"))
    rc_path = os.path.join(rundir, "vng.rc")
    rc = read(rc_path).strip() if os.path.exists(rc_path) else "?"
    res.check(done, f"{prefix}guest run completed",
              "" if done else f"guest script did not finish (vng rc {rc}, see "
              f"{rundir}/console.log)")


# The fault-injection phase (harness/guest/fault-inject.sh): for each program
# run, the failures each fault attribute injected ("failslab 12") and the
# program's own count ("# fault injection: 812 CONTINUE under injection, 40
# failed (...) and were retried, 9 of them because of it; ...").
FI_ATTRS = ("failslab", "fail_page_alloc")
FI_SUMMARY = re.compile(r"^# fault injection: (\d+) CONTINUE under injection, (\d+) failed "
                        r".* (\d+) of them because of it;")


def add_fault_injection(res: Results, run: str, text: str) -> None:
    """The results of a program run under fault injection: failures were
    injected (a run that injected none fails), and some failed a CONTINUE
    that was then retried; the counts go into the notes."""
    injected: Dict[str, int] = {}
    summary = None
    for line in text.splitlines():
        f = line.split()
        if len(f) == 2 and f[0] in FI_ATTRS and re.fullmatch(r"-?\d+", f[1]):
            injected[f[0]] = int(f[1])
        summary = summary or FI_SUMMARY.match(line)
    total = sum(injected.values())
    calls, failed, caused = (int(g) for g in summary.groups()) if summary else (0, 0, 0)
    res.notes.append(f"{run}: {total} allocation failures injected ("
                     + (", ".join(f"{a} {injected[a]}" for a in FI_ATTRS if a in injected)
                        or "none recorded")
                     + f"); {calls} CONTINUE under injection, {failed} failed and were "
                     f"retried, {caused} of them because of it")
    res.check(len(injected) == len(FI_ATTRS) and total > 0,
              f"{run}: allocation failures injected", text)
    res.check(caused > 0, f"{run}: CONTINUE calls failed by them, and retried",
              text if summary else "no summary line from the program\n" + text)


# ---------------------------------------------------------------------------
# Checks over the results and the kernel log
# ---------------------------------------------------------------------------

IMPLS = ("rust", "rust-batch", "c", "production")
IMPL_NAME = re.compile(r"^(.*)\[(" + "|".join(IMPLS) + r")\](.*)$")
# Results with an implementation in their name that are not a program's.
NOT_PROGRAMS = ("mfill stats", "phase")


def compare_implementations(res: Results,
                            exempt: Callable[[Result], bool] = lambda r: False) -> None:
    """Every test run on several implementations must have the same outcome.

    Results are grouped by program ("uffd-unit-tests[rust]: minor on shmem"
    is case "minor on shmem" of "uffd-unit-tests" on "rust"); a program run
    on one implementation only is not compared. An `exempt` result (a skip
    that happens on some implementations only, by design) counts as run, but
    its outcome is not compared.
    """
    by_prog: Dict[str, Dict[str, Dict[str, Optional[str]]]] = {}
    for r in res.items:
        m = IMPL_NAME.match(r.name)
        if m and not r.name.startswith(NOT_PROGRAMS):
            prog, impl, case = m.groups()
            by_prog.setdefault(prog.strip(), {}).setdefault(case, {})[impl] = \
                None if exempt(r) else r.status
    for prog, cases in sorted(by_prog.items()):
        impls = sorted({i for v in cases.values() for i in v})
        if len(impls) < 2:
            continue
        both = {c: v for c, v in cases.items() if len(v) == len(impls)}
        diff = [f"{c}: " + ", ".join(f"{i} {v[i] or 'exempt'}" for i in impls)
                for c, v in sorted(both.items())
                if len({st for st in v.values() if st is not None}) > 1]
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
    r"suspicious RCU usage|Call Trace:|cut here|"
    # Broken page tables and swap entries (pmd_ERROR(), pte_ERROR(),
    # swapfile.c), dump_page(), check_mm().
    r"bad pmd|bad pte|Bad swap|Bad rss-counter|page dumped because|"
    # The hung-task and lockup detectors, RCU stalls.
    r"blocked for more than|soft lockup|hard LOCKUP|detected stall|"
    r"self-detected stall|"
    # An OOM report outside the ones expected (see OomReport).
    r"invoked oom-killer|"
    # A failure injected, or the warning of one, outside the runs of the
    # fault-injection phase (see injection_reports()).
    r"FAULT_INJECTION:|page allocation failure:)")


# An OOM report: from its first line to its end. Some are the kernel doing
# its job (uffd-continue's memory-cgroup case fills a memory cgroup on
# purpose); which, is for the caller to say (coverage.py, expected.toml).
OOM_REPORT_START = re.compile(r" (\S+) invoked oom-killer: ")
OOM_REPORT_END = re.compile(r"Out of memory and no killable processes|"
                            r"oom-kill:constraint=|Killed process \d+")
OOM_MEMCG = re.compile(r"Memory cgroup stats for (\S+):")
# What the guest writes to the kernel log around each program (lib.sh).
RUN_MARK = re.compile(r"uffdrs: (run|done) (.*?)(?: rc=\S+)?$")


@dataclasses.dataclass
class OomReport:
    """An OOM report of the kernel log: the task that invoked the OOM
    killer, the memory cgroup whose limit it hit ("" for a system-wide
    OOM), the program run it happened in ("" outside one), its first line."""
    comm: str
    memcg: str
    run: str
    line: str


def oom_reports(text: str) -> List[Tuple[OomReport, List[int]]]:
    """The OOM reports of a kernel log, each with the indexes of its lines
    up to the end of its stack trace (its first "</TASK>")."""
    reports: List[Tuple[OomReport, List[int]]] = []
    run = ""
    cur: Optional[Tuple[OomReport, List[int]]] = None
    in_stack = False
    for i, line in enumerate(text.splitlines()):
        m = RUN_MARK.search(line)
        if m:
            run = m.group(2) if m.group(1) == "run" else ""
        m = OOM_REPORT_START.search(line)
        if m:
            cur = (OomReport(m.group(1), "", run, line.rstrip()), [])
            reports.append(cur)
            in_stack = True
        if cur is None:
            continue
        if in_stack:
            cur[1].append(i)
            in_stack = "</TASK>" not in line
        m = OOM_MEMCG.search(line)
        if m:
            cur[0].memcg = m.group(1)
        if OOM_REPORT_END.search(line):
            cur = None
    return reports


# The fault injection's own reports: fail_dump() prints its first line and
# the attribute's ("name failslab, interval 1, ...") and, with verbose=2, a
# dump_stack(); an allocation that fails because of it may warn
# (warn_alloc(): "COMM: page allocation failure: order:0, ...", a
# dump_stack(), the memory state).
INJECTION_REPORT_START = re.compile(r"FAULT_INJECTION: forcing a failure|"
                                    r": page allocation failure: ")
DUMP_STACK_START = re.compile(r"CPU: \d+ .*Comm: ")


def injection_reports(text: str) -> List[Tuple[str, List[int]]]:
    """The fault-injection reports of a kernel log: the program run each
    happened in ("" outside one) and the indexes of its lines, from its
    first to the end of its stack trace (its first "</TASK>"), if a
    dump_stack() starts within its next 3 lines."""
    lines = text.splitlines()
    reports: List[Tuple[str, List[int]]] = []
    run = ""
    for i, line in enumerate(lines):
        m = RUN_MARK.search(line)
        if m:
            run = m.group(2) if m.group(1) == "run" else ""
        if not INJECTION_REPORT_START.search(line):
            continue
        end = i
        if any(DUMP_STACK_START.search(x) for x in lines[i + 1:i + 4]):
            end = next((j for j in range(i + 1, min(len(lines), i + 200))
                        if "</TASK>" in lines[j]), i)
        reports.append((run, list(range(i, end + 1))))
    return reports


def kernel_log_problems(text: str,
                        excused: Callable[[OomReport], bool] = lambda r: False,
                        injection_allowed: Callable[[str], bool] = lambda run: False
                        ) -> List[str]:
    """The lines of a kernel log that report a WARN, BUG, Oops, lockdep,
    KASAN, UBSAN or RCU problem, a hung task, a lockup, a broken page table
    or swap entry, an OOM, an injected failure, or a call trace; the lines of
    an OOM report that `excused` accepts, and of a fault-injection report in
    a program run that `injection_allowed` accepts, are not problems: their
    first line and their stack trace's "Call Trace:" (anything else in them
    still is, a WARN of another CPU printed in the middle of one, say)."""
    quiet = set()
    for report, lines in oom_reports(text):
        if excused(report):
            quiet.update(lines)
    for run, lines in injection_reports(text):
        if injection_allowed(run):
            quiet.update(lines)
    bad = []
    for i, line in enumerate(text.splitlines()):
        m = KERNEL_LOG_BAD.search(line)
        if m and not (i in quiet and m.group(0) in (
                "Call Trace:", "invoked oom-killer", "FAULT_INJECTION:",
                "page allocation failure:")):
            bad.append(line.rstrip())
    return bad


# printk's size of its ring buffer, when log_buf_len= set it.
LOG_BUF_SIZE = re.compile(r"log buffer data \+ meta data: (\d+) \+ (\d+) = (\d+) bytes")


def log_buffer_size(text: str) -> Optional[int]:
    m = LOG_BUF_SIZE.search(text)
    return int(m.group(1)) if m else None


def log_starts_at_boot(text: str) -> bool:
    """Whether a kernel log has its first message: "Linux version" is the
    first line the kernel prints, and the first a ring buffer drops."""
    for line in text.splitlines():
        if line.strip():
            return "Linux version" in line
    return False


def scan_kernel_log(rundir: str, res: Results, prefix: str = "",
                    excused: Callable[[OomReport], bool] = lambda r: False,
                    finished: Optional[bool] = None,
                    injection_allowed: Callable[[str], bool] = lambda run: False
                    ) -> Optional[str]:
    """The guest's kernel log, as `dmesg` gave it at the end of the run
    (dmesg.txt) and as the serial console printed it (console.log): both
    must be clean, and dmesg.txt must start at boot (a log that wrapped has
    lost its first messages, and with them maybe a report). Returns the text
    of the most complete of the two (dmesg.txt if it is complete), or None.

    `finished`: whether the guest script got to writing dmesg.txt (by
    default: whether it is there); if it did not, the console is all there
    is, and the run fails elsewhere (guest run completed).
    """
    dmesg_path = os.path.join(rundir, "dmesg.txt")
    console_path = os.path.join(rundir, "console.log")
    dmesg = read(dmesg_path) if os.path.exists(dmesg_path) else None
    console = read(console_path) if os.path.exists(console_path) else None
    if finished is None:
        finished = dmesg is not None
    bad: List[str] = []
    for path, text in ((dmesg_path, dmesg), (console_path, console)):
        if text is None:
            if path == console_path or finished:
                bad.append(f"{path}: missing")
            continue
        found = kernel_log_problems(text, excused, injection_allowed)
        if found:
            bad += [f"{os.path.basename(path)}:"] + found[:30]
    res.check(not bad, f"{prefix}kernel log clean (no WARN/BUG/Oops/lockdep/KASAN/"
              "hung task/bad page table)",
              "\n".join(bad[:60]) + f"\n(logs: {dmesg_path}, {console_path})")
    if dmesg is not None or finished:
        size = log_buffer_size(dmesg or "") or log_buffer_size(console or "")
        used = len((dmesg or "").encode())
        complete = dmesg is not None and log_starts_at_boot(dmesg)
        what = (f"{used} bytes of messages, log buffer {size} bytes"
                if size else f"{used} bytes of messages, log buffer size not reported")
        res.notes.append(f"{prefix}kernel log: {what}")
        res.check(complete, f"{prefix}kernel log complete: starts at boot ({what})",
                  "dmesg.txt does not start with the kernel's \"Linux version\" line: "
                  "the log buffer wrapped and lost messages, reports maybe among "
                  f"them (see {dmesg_path}; log_buf_len= on the command line)"
                  if dmesg is not None else f"{dmesg_path}: missing")
    if dmesg is not None and log_starts_at_boot(dmesg):
        return dmesg
    return console
