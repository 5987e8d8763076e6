# SPDX-License-Identifier: GPL-2.0
"""Tests of coverage.py: a run held against harness/expected.toml.

A synthetic full run (synthetic.py) of the real expectation passes; each
test breaks it in one place (a missing phase, implementation, program, case,
suite or requirement, an extra or a missing skip, a foreign counter, a
wrapped log, a report on the console only, an OOM outside the memory-cgroup
case...), and the run must fail, on the check that says so."""

import os
import re
import shutil
import tempfile
import unittest
from typing import List

from uffdrs_lib import coverage, results
from uffdrs_lib.common import HarnessError, read
from uffdrs_lib.results import Results

from . import HARNESS, test_data, use_kunit_tool
from .synthetic import Run, injection_report, oom_report


def setUpModule() -> None:
    use_kunit_tool()


EXP = coverage.load(HARNESS)


def failed(res: Results) -> List[str]:
    return [r.name for r in res.items if r.status == results.FAIL]


class Names(set[str]):
    """A set of result names that does not print itself when a test fails."""

    def __repr__(self) -> str:
        return f"<{len(self)} result names>"


def detail(res: Results, start: str) -> str:
    return "\n".join(r.detail for r in res.items
                     if r.status == results.FAIL and r.name.startswith(start))


class CoverageTest(unittest.TestCase):

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="uffdrs-test-")
        self.syn = Run(self.tmp, EXP)

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp)

    def assertFailsOn(self, res: Results, *names: str) -> None:
        """The run failed, and on (at least) these checks (name prefixes)."""
        got = failed(res)
        for n in names:
            self.assertTrue(any(f.startswith(n) for f in got), (n, got))

    # --- the whole run ---

    def test_full_run_passes(self) -> None:
        res = self.syn.judge()
        self.assertEqual(failed(res), [])
        names = Names(r.name for r in res.items)
        self.assertIn("expected coverage of the test kernel: 3 implementations x 11 programs, "
                      "1 once, 10 KUnit suites, 5 requirements", names)
        self.assertIn("expected coverage of the production kernel: 1 implementations x "
                      "9 programs, 0 once, 0 KUnit suites, 5 requirements", names)
        self.assertIn("expected coverage of the fault-injection kernel: 3 implementations x "
                      "2 programs, 0 once, 0 KUnit suites, 6 requirements", names)
        self.assertIn("expected skips only (16 expected, 16 seen)", names)
        self.assertIn("kernel log: the memory-cgroup OOM reports expected, no other "
                      "(27 seen, 27 expected)", names)
        self.assertIn("production kernel: kernel log: the memory-cgroup OOM reports "
                      "expected, no other (9 seen, 9 expected)", names)
        self.assertIn("fault-injection kernel: kernel log: the memory-cgroup OOM reports "
                      "expected, no other (27 seen, 27 expected)", names)
        self.assertIn("uffd-continue: same outcome on every implementation "
                      "(c, production, rust, rust-batch; 124 cases)", names)
        self.assertIn("uffd-continue-stress under fault injection[c]: allocation failures "
                      "injected", names)
        self.assertEqual(res.count(results.SKIP), 16)

    def test_expected_toml(self) -> None:
        # The phases and implementations the guest knows, and a fault
        # injection phase is one more table.
        self.assertEqual(list(EXP.phases), ["test", "production", "fault-injection"])
        self.assertEqual(EXP.phases["test"].impls, ("rust", "rust-batch", "c"))
        self.assertEqual(EXP.phase_of("production"), EXP.phases["production"])
        self.assertTrue(EXP.phases["fault-injection"].fault_injection)
        self.assertFalse(EXP.phases["test"].fault_injection)
        extra = coverage.parse(read(os.path.join(HARNESS, "expected.toml")) + """
[phase.kasan-only]
config = ["kasan.config"]
build = "build-kasan-only"
impls = ["rust"]
require = ["swap"]
programs = ["uffd-continue"]
""")
        self.assertEqual(extra.phases["kasan-only"].label, "kasan-only kernel: ")
        with self.assertRaisesRegex(HarnessError, "unknown program 'nope'"):
            coverage.parse('[phase.x]\nimpls = []\nprograms = ["nope"]\n')
        with self.assertRaisesRegex(HarnessError, "unknown implementation 'x'"):
            coverage.parse('[phase.x]\nimpls = ["x"]\n')

    def test_guest_knows_the_expectation(self) -> None:
        # What expected.toml requires, the guest script checks, by the same
        # names; and it names every program it runs.
        script = read(os.path.join(HARNESS, "guest", "run-tests.sh"))
        for phase in EXP.phases.values():
            for req in phase.require:
                self.assertTrue(re.search(rf'require (\"{req}\"|{req}) ', script), req)
            for p in phase.programs + phase.once:
                self.assertTrue(p.split()[0] in script, p)

    # --- 1. expected coverage ---

    def test_missing_phase(self) -> None:
        # The production kernel was not booted (or its results are gone).
        res = Results()
        coverage.judge(res, EXP, coverage.Scope(), [(EXP.phases["test"], self.syn.dirs["test"])])
        self.assertFailsOn(res, "expected coverage of the production kernel")
        self.assertIn("requirement not checked: production kernel",
                      detail(res, "expected coverage of the production kernel"))

    def test_missing_implementation(self) -> None:
        # rust-batch could not be selected: its phase did not run.
        self.syn.edit("test", "manifest", "phase\trust-batch\t0", "phase\trust-batch\t1")
        self.syn.drop_entries("test", r"^(tap|exit|stats)\t[^\t]*\[rust-batch\]")
        res = self.syn.judge()
        self.assertFailsOn(res, "phase [rust-batch]: implementation selected",
                           "expected coverage of the test kernel")
        self.assertIn("program run missing: uffd-continue[rust-batch]",
                      detail(res, "expected coverage of the test kernel"))

    def test_missing_program(self) -> None:
        self.syn.drop_entries("test", r"^tap\tuffd-continue-stress\[c\]\t")
        res = self.syn.judge()
        self.assertEqual(failed(res)[0], "expected coverage of the test kernel: 3 "
                         "implementations x 11 programs, 1 once, 10 KUnit suites, "
                         "5 requirements")
        self.assertEqual(detail(res, "expected coverage"),
                         "program run missing: uffd-continue-stress[c]")

    def test_missing_exit_program(self) -> None:
        self.syn.drop_entries("production", r"^exit\tuffd-stress anon 32 16 \[production\]")
        res = self.syn.judge()
        self.assertIn("program run missing: uffd-stress anon 32 16 [production]",
                      detail(res, "expected coverage of the production kernel"))

    def test_missing_once(self) -> None:
        self.syn.drop_entries("test", r"^tap\tuffd-continue-stress -X\t")
        self.assertIn("program run missing: uffd-continue-stress -X",
                      detail(self.syn.judge(), "expected coverage of the test kernel"))

    def test_fewer_cases(self) -> None:
        # A program that announces fewer cases than it must have.
        log = self.syn.entry_log("test", "tap", "uffd-continue[rust]")
        text = self.syn.read("test", log)
        lines = text.splitlines()
        self.syn.write("test", log, "\n".join(["TAP version 13", "1..100"] + lines[2:102]) + "\n")
        res = self.syn.judge()
        self.assertIn("uffd-continue[rust]: 100 cases, at least 123 expected",
                      detail(res, "expected coverage of the test kernel"))

    def test_missing_suite(self) -> None:
        self.syn.drop_entries("test", r"^ktap\tkunit: userfaultfd_rust_batch\t")
        self.assertIn("KUnit suite missing: userfaultfd_rust_batch",
                      detail(self.syn.judge(), "expected coverage of the test kernel"))

    def test_no_kunit(self) -> None:
        self.syn.drop_entries("test", r"^ktap\t")
        self.syn.edit("test", "manifest", "require\tswitch", "nokunit\t-\t-\t-\nrequire\tswitch")
        self.assertFailsOn(self.syn.judge(), "kunit: debugfs results present",
                           "expected coverage of the test kernel")

    def test_missing_requirement(self) -> None:
        for req in EXP.phases["test"].require:
            with self.subTest(req=req):
                run = Run(os.path.join(self.tmp, req), EXP)
                run.drop_entries("test", rf"^require\t{req}\t")
                self.assertIn(f"requirement not checked: {req}",
                              detail(run.judge(), "expected coverage of the test kernel"))

    def test_requirement_not_met(self) -> None:
        for phase, req in (("test", "swap"), ("test", "switch"), ("test", "sample device"),
                           ("test", "PMD-sized folios"), ("production", "production kernel")):
            with self.subTest(phase=phase, req=req):
                run = Run(os.path.join(self.tmp, req), EXP)
                run.edit(phase, "manifest", f"require\t{req}\t0", f"require\t{req}\t1")
                label = EXP.phases[phase].label
                self.assertEqual(failed(run.judge()), [f"{label}required: {req}"])

    def test_guest_did_not_finish(self) -> None:
        os.unlink(self.syn.path("production", "done"))
        self.assertFailsOn(self.syn.judge(), "production kernel: guest run completed")

    # --- skips ---

    def test_extra_skip(self) -> None:
        log = self.syn.entry_log("test", "tap", "uffd-unit-tests[c]")
        self.syn.edit("test", log, "ok 6 case_5\n", "ok 6 case_5 # SKIP no swap?\n")
        res = self.syn.judge()
        self.assertFailsOn(res, "expected skips only")
        self.assertEqual(detail(res, "expected skips only"),
                         "not an expected skip: uffd-unit-tests[c]: case_5 (no swap?)")

    def test_skip_with_another_reason(self) -> None:
        log = self.syn.entry_log("production", "tap", "uffd-continue[production]")
        self.syn.edit("production", log, "# SKIP 4 KiB pages only", "# SKIP 4 kB pages only")
        self.assertIn("not an expected skip: uffd-continue[production]: "
                      "uffd_continue.thp_shared.memcg_swapin_limit",
                      detail(self.syn.judge(), "expected skips only"))

    def test_skip_that_did_not_happen(self) -> None:
        log = self.syn.entry_log("test", "tap", "uffd-continue[rust]")
        self.syn.edit("test", log, " # SKIP shared mappings only: a private one resolves to "
                      "the same swap-in", "")
        res = self.syn.judge()
        self.assertIn("expected skip did not happen: uffd-continue[rust]: "
                      "uffd_continue.memfd_private.memcg_swapin_limit (ok;",
                      detail(res, "expected skips only"))

    def test_skip_on_another_implementation(self) -> None:
        # Allowed on the production kernel only (no counters there); the
        # other implementations do not differ from it by that skip.
        self.assertEqual(failed(self.syn.judge()), [])
        log = self.syn.entry_log("test", "tap", "uffd-continue[rust]")
        self.syn.edit("test", log, "implementation.mapped_by_selected\n",
                      "implementation.mapped_by_selected # SKIP no debugfs userfaultfd/mfill_impl "
                      "and stats to read: the kernel was built with the unknown (no kernel config "
                      "to read) implementation; which one mapped the 7 pages of this run is not "
                      "checked\n")
        res = self.syn.judge()
        self.assertIn("not an expected skip: uffd-continue[rust]: "
                      "implementation.mapped_by_selected", detail(res, "expected skips only"))

    def test_skipped_suite(self) -> None:
        log = self.syn.entry_log("test", "ktap", "kunit: rust_mm_pgtable")
        self.syn.edit("test", log, "ok 1 rust_mm_pgtable", "ok 1 rust_mm_pgtable # SKIP no THP")
        self.assertIn("not an expected skip: kunit: rust_mm_pgtable (suite) (no THP)",
                      detail(self.syn.judge(), "expected skips only"))

    # --- scope: --only, --kunit-only ---

    def test_only_narrows(self) -> None:
        scope = coverage.Scope.of("uffd-continue", False)
        run = Run(os.path.join(self.tmp, "only"), EXP, scope)
        self.assertEqual(failed(run.judge()), [])
        self.assertIn("expected coverage of the production kernel: 1 implementations x "
                      "3 programs, 0 once, 0 KUnit suites, 5 requirements",
                      Names(r.name for r in run.judge().items))
        # But not the checks: counters, skips, requirements.
        run.drop_entries("test", r"^stats\tuffd-continue\[rust\]\t")
        self.assertIn("counters not recorded: uffd-continue[rust]",
                      detail(run.judge(), "expected coverage of the test kernel"))
        run = Run(os.path.join(self.tmp, "only-skip"), EXP, scope)
        log = run.entry_log("test", "tap", "uffd-continue[c]")
        run.edit("test", log, "ok 10 case_2\n", "ok 10 case_2 # SKIP no swap?\n")
        self.assertIn("not an expected skip: uffd-continue[c]: case_2 (no swap?)",
                      detail(run.judge(), "expected skips only"))
        run = Run(os.path.join(self.tmp, "only-req"), EXP, scope)
        run.drop_entries("production", r"^require\tswap\t")
        self.assertIn("requirement not checked: swap",
                      detail(run.judge(), "expected coverage of the production kernel"))
        # A program outside the scope is not expected.
        run = Run(os.path.join(self.tmp, "only-more"), EXP, scope)
        run.drop_entries("test", r"^tap\tuffd-continue\[rust\]\t")
        self.assertIn("program run missing: uffd-continue[rust]",
                      detail(run.judge(), "expected coverage of the test kernel"))

    def test_only_without_production_programs(self) -> None:
        scope = coverage.Scope.of("guard-uffd-wp", False)
        self.assertFalse(scope.runs(EXP, EXP.phases["production"]))
        self.assertTrue(scope.runs(EXP, EXP.phases["test"]))
        run = Run(os.path.join(self.tmp, "only"), EXP, scope)
        self.assertEqual(list(run.dirs), ["test"])
        self.assertEqual(failed(run.judge()), [])

    def test_kunit_only(self) -> None:
        scope = coverage.Scope.of("", True)
        self.assertFalse(scope.runs(EXP, EXP.phases["production"]))
        run = Run(os.path.join(self.tmp, "kunit"), EXP, scope)
        self.assertEqual(failed(run.judge()), [])
        run.drop_entries("test", r"^ktap\tkunit: rust_mm_vm_ops\t")
        self.assertIn("KUnit suite missing: rust_mm_vm_ops",
                      detail(run.judge(), "expected coverage"))

    # --- 2. counters ---

    def stats_of(self, run: str) -> str:
        return self.syn.entry_log("test", "stats", run)

    def test_foreign_counter(self) -> None:
        # C pages in a rust phase.
        self.syn.edit("test", self.stats_of("uffd-continue[rust]"),
                      "after continue_c 100", "after continue_c 101")
        res = self.syn.judge()
        self.assertEqual(failed(res), ["mfill stats uffd-continue[rust]: pages mapped by rust only"])
        self.assertIn("continue_c +1: another implementation's counter",
                      detail(res, "mfill stats"))

    def test_batch_counted_as_rust(self) -> None:
        # The batch's pages counted as page-by-page rust pages, as before.
        log = self.stats_of("uffd-continue[rust-batch]")
        self.syn.edit("test", log, "after continue_rust_batch 107", "after continue_rust_batch 100")
        self.syn.edit("test", log, "after continue_rust 100", "after continue_rust 107")
        msg = detail(self.syn.judge(), "mfill stats uffd-continue[rust-batch]")
        self.assertIn("continue_rust +7: another implementation's counter", msg)
        self.assertIn("continue_rust_batch +0: uffd-continue maps pages with continue", msg)

    def test_nothing_mapped(self) -> None:
        self.syn.edit("test", self.stats_of("uffd-stress shmem 32 16 [c]"),
                      "after install_c 107", "after install_c 100")
        self.assertIn("install_c +0: uffd-stress shmem 32 16 maps pages with install",
                      detail(self.syn.judge(), "mfill stats"))

    def test_unknown_and_missing_counters(self) -> None:
        log = self.stats_of("uffd-continue[c]")
        self.syn.edit("test", log, "before continue_c 100\n", "before continue_x 1\n")
        self.syn.edit("test", log, "after continue_c 107\n", "after continue_x 1\n")
        msg = detail(self.syn.judge(), "mfill stats uffd-continue[c]")
        self.assertIn("continue_x: a counter expected.toml does not know", msg)
        self.assertIn("continue_c: missing from debugfs userfaultfd/stats", msg)

    def test_counters_judged(self) -> None:
        self.assertEqual(coverage.judge_counters(
            EXP, "uffd-continue[rust-batch]", "rust-batch",
            "before continue_rust_batch 1\nbefore continue_rust_batch_steps 1\n"
            "before continue_rust_batch_pmd 0\nbefore continue_rust 0\nbefore install_rust 0\n"
            "before continue_c 0\nbefore install_c 0\n"
            "after continue_rust_batch 513\nafter continue_rust_batch_steps 3\n"
            "after continue_rust_batch_pmd 1\nafter continue_rust 0\nafter install_rust 0\n"
            "after continue_c 0\nafter install_c 0\n"),
            (True, "continue_rust_batch +512, continue_rust_batch_pmd +1, "
             "continue_rust_batch_steps +2"))

    def test_counter_notes(self) -> None:
        res = self.syn.judge()
        self.assertIn("mfill stats [rust-batch], all its runs: continue_rust_batch +28, "
                      "continue_rust_batch_steps +28, install_rust +28", res.notes)

    # --- 3. the kernel log ---

    def test_wrapped_log(self) -> None:
        # The first messages of the boot are gone: the buffer wrapped.
        self.syn.edit("test", "dmesg.txt", "[    0.000000] Linux version", "[    0.000000] Linu")
        res = self.syn.judge()
        self.assertEqual(len(failed(res)), 1)
        self.assertRegex(failed(res)[0], r"^kernel log complete: starts at boot "
                         r"\(\d+ bytes of messages, log buffer 67108864 bytes\)$")
        self.assertIn("the log buffer wrapped", detail(res, "kernel log complete"))

    def test_report_on_the_console_only(self) -> None:
        self.syn.edit("production", "console.log", "$ vng --run ...\n",
                      "$ vng --run ...\n[   10.0] BUG: Bad rss-counter state mm:0 type:MM_SHMEMPAGES val:1\n")
        res = self.syn.judge()
        self.assertFailsOn(res, "production kernel: kernel log clean")
        self.assertIn("console.log:\n[   10.0] BUG: Bad rss-counter state",
                      detail(res, "production kernel: kernel log clean"))

    def test_reports(self) -> None:
        for line in ("mm/memory.c:123: bad pmd ffff8880(0000000012345067)",
                     "arch/x86/include/asm/pgtable_64.h:33: bad pte ffff88(8000000012345)",
                     "Bad swap file entry 3c000000000",
                     "BUG: Bad rss-counter state mm:00000000 type:MM_FILEPAGES val:-1",
                     "page dumped because: VM_BUG_ON_FOLIO(folio_mapped(folio))",
                     "INFO: task uffd-continue:321 blocked for more than 120 seconds.",
                     "watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [uffd-stress:500]",
                     "rcu: INFO: rcu_preempt self-detected stall on CPU"):
            with self.subTest(line=line):
                run = Run(os.path.join(self.tmp, str(hash(line))), EXP)
                run.edit("test", "dmesg.txt", "uffdrs: done guard-uffd-wp[c] rc=0\n",
                         f"uffdrs: done guard-uffd-wp[c] rc=0\n[  100.0] {line}\n")
                res = run.judge()
                self.assertIn(line, detail(res, "kernel log clean"))

    def test_oom_outside_the_memcg_case(self) -> None:
        # The memory-cgroup case's OOM reports, while another program runs.
        text = self.syn.read("test", "dmesg.txt")
        text = text.replace("uffdrs: done uffd-continue[rust] rc=0", "uffdrs: X")
        text = text.replace("uffdrs: run uffd-continue-stress[rust]", "uffdrs: X")
        text = text.replace("uffdrs: run uffd-continue[rust]",
                            "uffdrs: run uffd-continue-stress[rust]")
        self.syn.write("test", "dmesg.txt", text)
        res = self.syn.judge()
        self.assertFailsOn(res, "kernel log clean", "kernel log: the memory-cgroup OOM reports")
        self.assertIn("uffd-continue invoked oom-killer", detail(res, "kernel log clean"))
        self.assertIn("uffd-continue[rust]: 0 OOM reports, 9 expected",
                      detail(res, "kernel log: the memory-cgroup"))

    def test_oom_of_another_cgroup_or_task(self) -> None:
        for old, new in (("Memory cgroup stats for /uffd-continue-42:",
                          "Memory cgroup stats for /system.slice:"),
                         ("uffd-continue invoked oom-killer", "kworker/0:1 invoked oom-killer")):
            with self.subTest(new=new):
                run = Run(os.path.join(self.tmp, new.replace("/", "_")), EXP)
                run.edit("production", "dmesg.txt", old, new, 1)
                res = run.judge()
                self.assertIn("invoked oom-killer", detail(res, "production kernel: kernel log clean"))
                self.assertIn("uffd-continue[production]: 8 OOM reports, 9 expected",
                              detail(res, "production kernel: kernel log: the memory-cgroup"))

    def test_oom_count(self) -> None:
        # One report more than the case provokes.
        report = "\n".join(oom_report("uffd-continue", "/uffd-continue-42"))
        self.syn.edit("test", "dmesg.txt", "[    2.000000] uffdrs: done uffd-continue[c] rc=0",
                      report + "\n[    2.000000] uffdrs: done uffd-continue[c] rc=0")
        res = self.syn.judge()
        self.assertEqual(failed(res), ["kernel log: the memory-cgroup OOM reports expected, no "
                                       "other (28 seen, 27 expected)"])
        self.assertEqual(detail(res, "kernel log: the"),
                         "uffd-continue[c]: 10 OOM reports, 9 expected")

    def test_warning_inside_an_expected_oom_report(self) -> None:
        self.syn.edit("test", "dmesg.txt", "Memory cgroup stats for /uffd-continue-42:",
                      "WARNING: CPU: 1 PID: 1 at mm/memcontrol.c:1 x\n"
                      "[    1.0] Memory cgroup stats for /uffd-continue-42:", 1)
        self.assertIn("WARNING: CPU: 1 PID: 1 at mm/memcontrol.c:1",
                      detail(self.syn.judge(), "kernel log clean"))

    # --- 4. fault injection ---

    def test_no_failure_injected(self) -> None:
        # A run of the fault-injection phase that injected nothing fails,
        # and so does one whose program saw no CONTINUE fail of it.
        run = "uffd-continue under fault injection[rust-batch]"
        log = self.syn.entry_log("fault-injection", "faultinject", run)
        self.syn.edit("fault-injection", log, "failslab 7\nfail_page_alloc 5",
                      "failslab 0\nfail_page_alloc 0")
        self.syn.edit("fault-injection", log, "10 of them because of it",
                      "0 of them because of it")
        res = self.syn.judge()
        self.assertEqual(failed(res), [f"{run}: allocation failures injected",
                                       f"{run}: CONTINUE calls failed by them, and retried",
                                       "uffd-continue under fault injection: same outcome on "
                                       "every implementation (c, rust, rust-batch; 128 cases)"])
        self.assertIn(f"{run}: 0 allocation failures injected (failslab 0, fail_page_alloc 0); "
                      "812 CONTINUE under injection, 40 failed and were retried, 0 of them "
                      "because of it", res.notes)

    def test_failures_injected_not_recorded(self) -> None:
        self.syn.drop_entries("fault-injection", r"^faultinject\tuffd-continue-stress under "
                              r"fault injection\[c\]")
        res = self.syn.judge()
        self.assertFailsOn(res, "expected coverage of the fault-injection kernel")
        self.assertIn("failures injected not recorded: uffd-continue-stress under fault "
                      "injection[c]", detail(res, "expected coverage of the fault-injection"))

    def test_injection_reports_elsewhere(self) -> None:
        # The injection's report in the test kernel's log, and in the
        # fault-injection kernel's log outside the runs of its programs.
        report = "\n".join(injection_report("uffd-continue"))
        self.syn.edit("test", "dmesg.txt", "[    2.000000] uffdrs: done uffd-continue[c] rc=0",
                      report + "\n[    2.000000] uffdrs: done uffd-continue[c] rc=0")
        self.syn.edit("fault-injection", "dmesg.txt",
                      "uffdrs: done uffd-continue under fault injection[c] rc=0\n",
                      "uffdrs: done uffd-continue under fault injection[c] rc=0\n"
                      + report + "\n")
        res = self.syn.judge()
        self.assertEqual(failed(res), [
            "kernel log clean (no WARN/BUG/Oops/lockdep/KASAN/hung task/bad page table)",
            "fault-injection kernel: kernel log clean (no WARN/BUG/Oops/lockdep/KASAN/hung "
            "task/bad page table)"])
        for label in ("", "fault-injection kernel: "):
            bad = detail(res, f"{label}kernel log clean").splitlines()
            self.assertEqual([b for b in bad if "FAULT_INJECTION" in b or "Call Trace" in b],
                             ["[   41.200000] FAULT_INJECTION: forcing a failure.",
                              "[   41.200040] Call Trace:"])

    def test_warning_in_a_fault_injection_run(self) -> None:
        # Inside a run that may have the injection's reports, a WARN is still one,
        # and so is a stack trace that is not a report's.
        done = "[    2.000000] uffdrs: done uffd-continue under fault injection[rust] rc=0\n"
        self.syn.edit("fault-injection", "dmesg.txt", done,
                      "[   44.0] WARNING: CPU: 1 PID: 401 at mm/userfaultfd.c:412 x\n"
                      "[   44.1] Call Trace:\n" + done, 1)
        res = self.syn.judge()
        self.assertEqual(failed(res), ["fault-injection kernel: kernel log clean (no WARN/BUG/"
                                       "Oops/lockdep/KASAN/hung task/bad page table)"])
        self.assertEqual(detail(res, "fault-injection kernel: kernel log clean").splitlines()[:3],
                         ["dmesg.txt:", "[   44.0] WARNING: CPU: 1 PID: 401 at "
                          "mm/userfaultfd.c:412 x", "[   44.1] Call Trace:"])


class RecordedRunTest(unittest.TestCase):
    """run-stress/: `test --no-gates --only uffd-continue-stress --stress-secs
    10` with this guest, on the test kernel from before the counters named
    the batch: its rust-batch pages were counted as continue_rust."""

    def judge(self, rundir: str) -> Results:
        res = Results()
        coverage.judge(res, EXP, coverage.Scope.of("uffd-continue-stress", False),
                       [(EXP.phases["test"], rundir)])
        return res

    def test_batch_counted_as_rust(self) -> None:
        res = self.judge(test_data("run-stress"))
        msg = detail(res, "mfill stats uffd-continue-stress[rust-batch]")
        self.assertIn("continue_rust +6819: another implementation's counter", msg)
        self.assertIn("continue_rust_batch: missing from debugfs userfaultfd/stats", msg)
        # Its other failures: no production kernel booted, the guest of
        # then did not check the sample module yet, under a load of 25 on
        # two cores 10 s gave the thp file one or two rounds, in which no
        # munmap, or no swap-out, happened on rust and c, and the stress
        # had two kinds of file then (15 cases), not the three of now.

        self.assertEqual(failed(res), [
            "uffd-continue-stress[rust]: thp: every racer ran without an error",
            "uffd-continue-stress[rust]: exit status 1",
            "uffd-continue-stress[c]: thp: every racer ran without an error",
            "uffd-continue-stress[c]: exit status 1",
            "mfill stats uffd-continue-stress[rust-batch]: pages mapped by rust-batch only",
            "expected coverage of the test kernel: 3 implementations x 1 programs, "
            "1 once, 10 KUnit suites, 5 requirements",

            "expected coverage of the production kernel: 1 implementations x 1 programs, "
            "0 once, 0 KUnit suites, 5 requirements",
            "uffd-continue-stress: same outcome on every implementation "
            "(c, rust, rust-batch; 15 cases)"])
        for impl in ("rust", "rust-batch", "c"):
            self.assertIn(f"uffd-continue-stress[{impl}]: 15 cases, at least 22 expected",
                          detail(res, "expected coverage of the test kernel"))
        self.assertIn("thp: no munmap in the whole run",
                      detail(res, "uffd-continue-stress[rust]: thp"))
        self.assertIn("thp: no page was swapped out in the whole run",
                      detail(res, "uffd-continue-stress[c]: thp"))
        names = Names(r.name for r in res.items if r.status == results.OK)
        self.assertEqual(detail(res, "expected coverage of the test kernel").splitlines()[0],
                         "requirement not checked: sample module")
        for req in EXP.phases["test"].require:
            if req != "sample module":
                self.assertIn(f"required: {req}", names)
        self.assertIn("mfill stats uffd-continue-stress[c]: pages mapped by c only", names)
        self.assertIn("kernel log complete: starts at boot (39094 bytes of messages, "
                      "log buffer 67108864 bytes)", names)

    def test_checks_of_the_checks(self) -> None:
        res = self.judge(test_data("run-stress"))
        x = [r for r in res.items if r.name.startswith("uffd-continue-stress -X: ")]
        self.assertEqual(len(x), 14)
        self.assertTrue(all(r.status == results.OK for r in x))
        for case in ("a clean state passes every check",
                     "finds a forked child that read a foreign word",
                     "finds a CONTINUE with an undocumented outcome",
                     "finds a probe that could not map its page",
                     "finds a racer's errors",
                     "finds pages held by a pipe, their file closed",
                     "finds nothing once the file and the pipe are closed"):
            self.assertIn(f"uffd-continue-stress -X: checker: {case}", {r.name for r in x})
        log = read(test_data("run-stress", "logs", "uffd-continue-stress_-X.log"))
        self.assertIn("# checker: a page held by a pipe: 16384 bytes still charged", log)
        self.assertIn("left in the cgroup: shmem 0, swap 0, all 0 bytes", log)
        # And the run's own leak check found its cgroup empty.
        log = read(test_data("run-stress", "logs", "uffd-continue-stress_rust_.log"))
        self.assertIn("bytes left in its memory cgroup after reclaim: shmem 0, swap 0, all 0",
                      log)

    def test_wrapped(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            run = os.path.join(d, "run")
            shutil.copytree(test_data("run-stress"), run)
            path = os.path.join(run, "dmesg.txt")
            lines = read(path).splitlines(keepends=True)
            with open(path, "w") as f:
                f.write("".join(lines[300:]))
            res = self.judge(run)
        self.assertIn("the log buffer wrapped", detail(res, "kernel log complete"))


if __name__ == "__main__":
    unittest.main()
