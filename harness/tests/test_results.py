# SPDX-License-Identifier: GPL-2.0
"""Tests of results.py: counting, the summary line, KTAP and TAP (with the
kernel's kunit_parser), skip forms, guest runs, the implementation
comparison and the kernel-log diagnostics, on recorded outputs."""

import io
import os
import re
import shutil
import tempfile
import unittest
from typing import List, Tuple

from uffdrs_lib import results
from uffdrs_lib.results import Results

from . import read_test_data, test_data, use_kunit_tool


def setUpModule() -> None:
    use_kunit_tool()


def outcomes(res: Results) -> List[Tuple[str, str]]:
    return [(r.status, r.name) for r in res.items]


class ResultsTest(unittest.TestCase):

    def test_counts_and_summary(self) -> None:
        res = Results()
        res.ok("a")
        res.fail("b", "why")
        res.skip("c", "no swap")
        res.check(True, "d")
        res.check(False, "e")
        self.assertEqual(res.count(results.OK), 2)
        self.assertEqual(res.failed, 2)
        self.assertEqual(res.summary(), "2 passed, 2 failed, 1 skipped")

    def test_summary_without_skips(self) -> None:
        res = Results()
        res.ok("a")
        self.assertEqual(res.summary(), "1 passed, 0 failed")

    def test_empty(self) -> None:
        self.assertEqual(Results().summary(), "0 passed, 0 failed")

    def test_tap_report(self) -> None:
        res = Results()
        res.notes.append("mfill stats [rust]: continue_rust +1")
        res.ok("kunit: s: a")
        res.fail("kunit: s: b", "line 1\nline 2")
        res.skip("c", "no swap")
        out = io.StringIO()
        res.report(out)
        self.assertEqual(out.getvalue().splitlines(), [
            "TAP version 13",
            "# mfill stats [rust]: continue_rust +1",
            "1..3",
            "ok 1 kunit: s: a",
            "not ok 2 kunit: s: b",
            "#   line 1",
            "#   line 2",
            "ok 3 c # SKIP no swap",
        ])

    def test_tap_report_cuts_long_details(self) -> None:
        res = Results()
        res.fail("x", "\n".join(str(i) for i in range(100)))
        self.assertEqual(len(res.tap()), 3 + 40)

    def test_unknown_status(self) -> None:
        with self.assertRaises(AssertionError):
            Results().add("passed", "x")


class KtapTest(unittest.TestCase):
    """KUnit suites' debugfs results, recorded from this kernel."""

    def suite(self, name: str, text: str) -> Results:
        res = Results()
        results.add_ktap_suite(res, f"kunit: {name}", text)
        return res

    def test_real_suite(self) -> None:
        res = self.suite("rust_mm_misuse",
                         read_test_data("run-pass", "logs", "kunit__rust_mm_misuse.log"))
        self.assertEqual(res.summary(), "11 passed, 0 failed")
        self.assertEqual(res.items[0].name, "kunit: rust_mm_misuse: another_files_folio")
        self.assertEqual(res.items[-1].name, "kunit: rust_mm_misuse (suite)")

    def test_failed_case(self) -> None:
        text = read_test_data("run-pass", "logs", "kunit__rust_mm_misuse.log")
        text = text.replace(
            "    ok 2 wrong_offset",
            "    # wrong_offset: ASSERTION FAILED at rust/kernel/mm/pgtable.rs:1210\n"
            "    Expected r.is_err() to be true, but is false\n"
            "    not ok 2 wrong_offset")
        text = text.replace("ok 1 rust_mm_misuse", "not ok 1 rust_mm_misuse")
        res = self.suite("rust_mm_misuse", text)
        self.assertEqual(res.summary(), "9 passed, 2 failed")
        failed = [r for r in res.items if r.status == results.FAIL]
        self.assertEqual([r.name for r in failed], ["kunit: rust_mm_misuse: wrong_offset",
                                                    "kunit: rust_mm_misuse (suite)"])
        self.assertIn("ASSERTION FAILED at rust/kernel/mm/pgtable.rs:1210", failed[0].detail)

    def test_crashed_suite(self) -> None:
        # The kernel died after case 3: the suite's KTAP stops there.
        text = read_test_data("run-pass", "logs", "kunit__rust_mm_misuse.log")
        text = text[:text.index("    # wp_needs_registration.speed")]
        res = self.suite("rust_mm_misuse", text)
        self.assertEqual(res.count(results.OK), 3)
        self.assertTrue(res.failed >= 2, res.tap())
        self.assertEqual(res.items[-1].name, "kunit: rust_mm_misuse (suite)")
        self.assertEqual(res.items[-1].status, results.FAIL)

    def test_no_ktap(self) -> None:
        res = self.suite("x", "")
        self.assertEqual(outcomes(res), [("fail", "kunit: x (suite)")])

    def test_every_recorded_suite(self) -> None:
        res = Results()
        logs = test_data("run-pass", "logs")
        for f in sorted(os.listdir(logs)):
            if f.startswith("kunit__"):
                with open(os.path.join(logs, f)) as fh:
                    results.add_ktap_suite(res, "kunit: " + f[7:-4], fh.read())
        # 9 suites, 48 cases, all passed (the run of runs/test).
        self.assertEqual(res.summary(), "57 passed, 0 failed")

    def test_parameterised_and_skipped(self) -> None:
        # lib/kunit/kunit-example-test.c of this kernel, from debugfs.
        res = self.suite("example", read_test_data("ktap", "kunit-example.ktap"))
        names = {r.name: r for r in res.items}
        # The parameters of a parameterised case are results of their own
        # (nested KTAP, one level deeper than the cases), the case is not.
        params = [n for n in names if n.startswith("kunit: example: example_params_test: ")]
        self.assertEqual(params, [f"kunit: example: example_params_test: example value {i}"
                                  for i in (3, 2, 1, 0)])
        self.assertNotIn("kunit: example: example_params_test", names)
        # Parameters may share a name (fibonacci 1, 1): each is a result.
        self.assertEqual(len([r for r in res.items if "fibonacci param" in r.name]), 6)
        # Skipped cases and parameters keep their reason.
        skipped = {r.name: r.detail for r in res.items if r.status == results.SKIP}
        self.assertEqual(skipped, {
            "kunit: example: example_skip_test": "this test should be skipped",
            "kunit: example: example_mark_skipped_test": "this test should be skipped",
            "kunit: example: example_params_test: example value 3": "unsupported param value 3",
            "kunit: example: example_params_test: example value 0": "unsupported param value 0",
        })
        self.assertEqual(res.summary(), "19 passed, 0 failed, 4 skipped")  # and the suite
        self.assertEqual(names["kunit: example (suite)"].status, results.OK)

    def test_failed_parameter(self) -> None:
        text = read_test_data("ktap", "kunit-example.ktap").replace(
            "        ok 3 example value 1", "        not ok 3 example value 1").replace(
            "    ok 8 example_params_test", "    not ok 8 example_params_test").replace(
            "ok 1 example\n", "not ok 1 example\n")
        res = self.suite("example", text)
        self.assertEqual([r.name for r in res.items if r.status == results.FAIL],
                         ["kunit: example: example_params_test: example value 1",
                          "kunit: example (suite)"])

    def test_failed_case_with_passed_parameters(self) -> None:
        # A parameterised case that failed while each parameter passed (e.g.
        # in its exit function) is a failure of its own.
        text = read_test_data("ktap", "kunit-example.ktap").replace(
            "    ok 8 example_params_test", "    not ok 8 example_params_test")
        res = self.suite("example", text)
        self.assertEqual([r.name for r in res.items if r.status == results.FAIL][0],
                         "kunit: example: example_params_test")

    def test_skipped_suite(self) -> None:
        res = self.suite("example_skip_suite",
                         read_test_data("ktap", "kunit-example_skip_suite.ktap"))
        self.assertEqual([(r.status, r.name, r.detail) for r in res.items], [
            ("skip", "kunit: example_skip_suite (suite)", "Test suite expected to be skipped")])

    def test_init_suite(self) -> None:
        res = self.suite("example_init", read_test_data("ktap", "kunit-example_init.ktap"))
        self.assertEqual(outcomes(res), [("ok", "kunit: example_init: example_init_test"),
                                         ("ok", "kunit: example_init (suite)")])

    def test_nested_in_kernel_log(self) -> None:
        # The boot's KUnit output in the kernel log, timestamps and all: one
        # KTAP document with every suite, cases, parameters.
        main = results.parse_ktap(read_test_data("run-pass", "dmesg.txt").splitlines())
        self.assertEqual(len(main.subtests), 9)
        self.assertEqual(sum(len(s.subtests) for s in main.subtests), 48)
        self.assertEqual(main.counts.passed, 48)
        main = results.parse_ktap(read_test_data("ktap", "dmesg-kunit-boot.txt").splitlines())
        self.assertEqual([s.name for s in main.subtests][-2:], ["example", "example_skip_suite"])
        self.assertEqual((main.counts.passed, main.counts.skipped, main.counts.failed,
                          main.counts.errors), (48 + 1 + 18, 4 + 1, 0, 0))


class TapTest(unittest.TestCase):
    """The selftests' TAP, recorded."""

    def program(self, prefix: str, path: str) -> Results:
        res = Results()
        results.add_tap_program(res, prefix, read_test_data("tap", path))
        return res

    def test_uffd_unit_tests(self) -> None:
        res = self.program("uffd-unit-tests[rust]", "uffd-unit-tests-rust.log")
        self.assertEqual(res.summary(), "113 passed, 0 failed, 1 skipped")
        self.assertEqual(res.items[0].name, "uffd-unit-tests[rust]: UFFDIO_API (with syscall)")

    def test_ksft_skip_form(self) -> None:
        # "ok 83 # SKIP rwp-swap-cow on anon (MADV_PAGEOUT did not swap ...)"
        res = self.program("uffd-unit-tests[rust]", "uffd-unit-tests-rust.log")
        skip = [r for r in res.items if r.status == results.SKIP]
        self.assertEqual(skip, [results.Result(
            results.SKIP, "uffd-unit-tests[rust]: rwp-swap-cow on anon",
            "MADV_PAGEOUT did not swap the page; is swap enabled?")])

    def test_skip_forms(self) -> None:
        text = ("TAP version 13\n1..5\n"
                "ok 1 # SKIP plain name (the reason)\n"
                "ok 2 # SKIP name without reason\n"
                "ok 3 harness.case # SKIP harness reason\n"
                "ok 4 harness.bare # SKIP\n"
                "ok 5 passed\n")
        res = Results()
        results.add_tap_program(res, "p", text)
        self.assertEqual([(r.status, r.name, r.detail) for r in res.items], [
            ("skip", "p: plain name", "the reason"),
            ("skip", "p: name without reason", "no reason given"),
            ("skip", "p: harness.case", "harness reason"),
            ("skip", "p: harness.bare", "no reason given"),
            ("ok", "p: passed", ""),
        ])

    def test_uffd_continue(self) -> None:
        res = self.program("uffd-continue[rust]", "uffd-continue-rust.log")
        self.assertEqual(res.summary(), "72 passed, 0 failed")

    def test_uffd_continue_failure(self) -> None:
        res = self.program("uffd-continue[rust-batch]", "uffd-continue-rust-batch-fail.log")
        self.assertEqual(res.summary(), "71 passed, 1 failed")
        fail = [r for r in res.items if r.status == results.FAIL][0]
        self.assertEqual(fail.name,
                         "uffd-continue[rust-batch]: uffd_continue.memfd_shared.race_truncate_punch")
        self.assertIn("Expected 1 (1) <= checked (0)", fail.detail)

    def test_program_stopped(self) -> None:
        # Cut after case 6 of 72: the missing cases are failures.
        text = read_test_data("tap", "uffd-continue-rust.log")
        text = text[:text.index("#  RUN           uffd_continue.memfd_shared.punched_hole")]
        res = Results()
        results.add_tap_program(res, "uffd-continue[rust]", text)
        self.assertGreater(res.failed, 0)
        self.assertEqual(res.count(results.OK) + res.failed, 72, res.summary())

    def test_no_tap(self) -> None:
        res = Results()
        results.add_tap_program(res, "p", "Segmentation fault\n")
        self.assertEqual(outcomes(res), [("fail", "p: TAP output")])

    def test_exit_status(self) -> None:
        self.assertTrue(results.exit_status_ok("0", tap=True))
        self.assertTrue(results.exit_status_ok("4", tap=True))  # KSFT_SKIP
        self.assertFalse(results.exit_status_ok("4", tap=False))
        self.assertFalse(results.exit_status_ok("1", tap=True))
        self.assertEqual(results.exit_status_name("p", "0"), "p: exit status")
        self.assertEqual(results.exit_status_name("p", "1"), "p: exit status 1")
        self.assertEqual(results.exit_status_name("p", "124"), "p: exit status 124 (timeout)")


class GuestRunTest(unittest.TestCase):
    """Whole guest runs: the manifest, the logs, done, vng.rc."""

    def test_recorded_passing_run(self) -> None:
        # runs/test of the last full passing run; its manifest lists what
        # the guest ran. The results must be those the guest-side awk/sh
        # parser gave for the same output (results-old-guest.tap).
        res = Results()
        results.parse_guest_run(test_data("run-pass"), res)
        old = []
        for line in read_test_data("run-pass", "results-old-guest.tap").splitlines():
            m = re.match(r"^(not ok|ok) (.*?)(?: # SKIP (.*))?$", line)
            # The counters are judged by coverage.check_counters() now.
            if m and not m.group(2).startswith("mfill stats"):
                st, name, skip = m.groups()
                old.append((results.SKIP if skip is not None else
                            results.OK if st == "ok" else results.FAIL, name))
        self.assertEqual(outcomes(res)[:-1], old)
        self.assertEqual(res.items[-1].name, "guest run completed")
        self.assertEqual(res.summary(), "646 passed, 0 failed, 3 skipped")

    def test_crashed_run(self) -> None:
        # --without-fixes: pt-reclaim-truncate hit the BUG of the base, the
        # guest never came back: KUnit results, then no completion.
        rundir = test_data("run-crash")
        res = Results()
        results.parse_guest_run(rundir, res)
        self.assertEqual(res.items[-1].name, "guest run completed")
        self.assertEqual(res.items[-1].status, results.FAIL)
        self.assertIn("vng rc -9", res.items[-1].detail)
        self.assertEqual(res.failed, 1)
        results.scan_kernel_log(rundir, res)
        self.assertEqual(res.items[-1].status, results.FAIL)
        self.assertIn("kernel BUG at mm/filemap.c:155!", res.items[-1].detail)
        self.assertIn("console.log", res.items[-1].detail)

    def test_no_manifest(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            res = Results()
            results.parse_guest_run(d, res)
            self.assertEqual(outcomes(res), [("fail", "guest results"),
                                             ("fail", "guest run completed")])

    def test_entries(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "logs"))
            shutil.copy(test_data("tap", "uffd-continue-rust-batch-fail.log"),
                        os.path.join(d, "logs", "c.log"))
            with open(os.path.join(d, "logs", "s.log"), "w") as f:
                f.write("stress failed\n")
            with open(os.path.join(d, "logs", "st.log"), "w") as f:
                f.write("before continue_rust 5\nbefore install_rust 5\nbefore continue_c 0\n"
                        "after continue_rust 5\nafter install_rust 9\nafter continue_c 2\n")
            with open(os.path.join(d, "manifest"), "w") as f:
                f.write("nokunit\t-\t-\t-\n"
                        "require\tswap\t1\tlogs/s.log\n"
                        "phase\tc\t1\t-\n"
                        "tap\tuffd-continue[rust-batch]\t1\tlogs/c.log\n"
                        "exit\tuffd-stress anon 32 16 [rust]\t124\tlogs/s.log\n"
                        "stats\tuffd-continue[rust-batch]\trust-batch\tlogs/st.log\n"
                        "bogus\tx\t-\t-\n")
            open(os.path.join(d, "done"), "w").close()
            res = Results()
            results.parse_guest_run(d, res)
        failed = [r.name for r in res.items if r.status == results.FAIL]
        self.assertEqual(failed, [
            "kunit: debugfs results present",
            "required: swap",
            "phase [c]: implementation selected",
            "uffd-continue[rust-batch]: uffd_continue.memfd_shared.race_truncate_punch",
            "uffd-continue[rust-batch]: exit status 1",
            "uffd-stress anon 32 16 [rust]",
            "guest manifest",
        ])
        self.assertEqual(res.summary(), "72 passed, 7 failed")
        stress = [r for r in res.items if r.name.startswith("uffd-stress")][0]
        self.assertEqual(stress.detail, "stress failed\n")

class CompareTest(unittest.TestCase):
    """compare_implementations(): the same outcome on rust, rust-batch and c."""

    def test_recorded_difference(self) -> None:
        # A recorded run in which race_truncate_punch failed on rust-batch only.
        res = Results()
        for impl, log in (("rust", "uffd-continue-rust.log"),
                          ("rust-batch", "uffd-continue-rust-batch-fail.log"),
                          ("c", "uffd-continue-c.log")):
            results.add_tap_program(res, f"uffd-continue[{impl}]", read_test_data("tap", log))
        results.compare_implementations(res)
        last = res.items[-1]
        self.assertEqual(last.name, "uffd-continue: same outcome on every implementation "
                         "(c, rust, rust-batch; 72 cases)")
        self.assertEqual(last.status, results.FAIL)
        self.assertEqual(last.detail, ": uffd_continue.memfd_shared.race_truncate_punch: "
                         "c ok, rust ok, rust-batch fail")

    def test_same(self) -> None:
        res = Results()
        for impl in ("rust", "c"):
            res.ok(f"uffd-stress anon 32 16 [{impl}]")
            res.skip(f"uffd-unit-tests[{impl}]: swap", "no swap")
        results.compare_implementations(res)
        self.assertEqual(outcomes(res)[-2:], [
            ("ok", "uffd-stress anon 32 16: same outcome on every implementation (c, rust; 1 cases)"),
            ("ok", "uffd-unit-tests: same outcome on every implementation (c, rust; 1 cases)"),
        ])

    def test_missing_and_single(self) -> None:
        res = Results()
        res.ok("p[rust]: a")
        res.ok("p[c]: a")
        res.ok("p[c]: b")
        res.ok("q[rust]: only on rust")
        results.compare_implementations(res)
        self.assertEqual(len(res.items), 5)  # q is not compared
        self.assertEqual(res.items[-1].status, results.FAIL)
        self.assertEqual(res.items[-1].detail, ": b: not run on every implementation")

    def test_recorded_run(self) -> None:
        res = Results()
        results.parse_guest_run(test_data("run-pass"), res)
        n = len(res.items)
        results.compare_implementations(res)
        added = res.items[n:]
        self.assertEqual([r.name.split(":")[0] for r in added], [
            "guard-uffd-wp", "pt-reclaim-truncate", "uffd-continue",
            "uffd-stress anon 32 16", "uffd-stress shmem 32 16",
            "uffd-stress shmem-private 32 16", "uffd-unit-tests"])
        self.assertTrue(all(r.status == results.OK for r in added))
        self.assertIn("(c, rust, rust-batch; 115 cases)", added[-1].name)


class KernelLogTest(unittest.TestCase):

    def test_fault_injection_reports(self) -> None:
        """The fault injection's report and its stack trace are no problem
        in a run that may have them, and are one anywhere else; a WARN in
        such a run still is."""
        log = read_test_data("kernel-log", "dmesg-fault-injection.txt")
        run = "uffd-continue under fault injection[rust]"
        reports = results.injection_reports(log)
        self.assertEqual([r for r, _ in reports], [run])
        lines = log.splitlines()
        first, last = reports[0][1][0], reports[0][1][-1]
        self.assertIn("FAULT_INJECTION: forcing a failure.", lines[first])
        self.assertIn("</TASK>", lines[last])
        self.assertEqual(results.kernel_log_problems(log, injection_allowed=lambda r: r == run),
                         [])
        bad = results.kernel_log_problems(log)
        self.assertEqual(len(bad), 2)
        self.assertIn("FAULT_INJECTION: forcing a failure.", bad[0])
        self.assertIn("Call Trace:", bad[1])
        warn = log.replace("[   41.200000] FAULT_INJECTION",
                           "[   41.100000] WARNING: CPU: 1 PID: 401 at mm/userfaultfd.c:412 x\n"
                           "[   41.200000] FAULT_INJECTION")
        self.assertEqual(results.kernel_log_problems(warn, injection_allowed=lambda r: True),
                         ["[   41.100000] WARNING: CPU: 1 PID: 401 at mm/userfaultfd.c:412 x"])
        # Without its stack trace (verbose=1), the report is its first line;
        # a trace that follows later is another's.
        short = "\n".join(lines[:3] + ["[   42.0] x"] * 4 + lines[3:])
        self.assertEqual(results.kernel_log_problems(short, injection_allowed=lambda r: True),
                         ["[   41.200040] Call Trace:"])

    def test_allocation_failure_warning(self) -> None:
        log = ("[    1.0] uffdrs: run p[c]\n"
               "[    2.0] uffd-continue: page allocation failure: order:0, "
               "mode:0xcc0(GFP_KERNEL), nodemask=(null)\n"
               "[    2.1] CPU: 0 UID: 0 PID: 3 Comm: uffd-continue Not tainted 7.3.4\n"
               "[    2.2] Call Trace:\n[    2.3]  <TASK>\n[    2.4]  </TASK>\n"
               "[    2.5] Mem-Info:\n[    3.0] uffdrs: done p[c] rc=0\n")
        self.assertEqual(results.kernel_log_problems(log, injection_allowed=lambda r: r == "p[c]"),
                         [])
        self.assertEqual(len(results.kernel_log_problems(log)), 2)

    def test_fault_injection_counts(self) -> None:
        res = Results()
        results.add_fault_injection(res, "p[c]", "failslab 3\nfail_page_alloc 0\n"
                                    "# fault injection: 50 CONTINUE under injection, 4 failed "
                                    "(1 ENOMEM, 3 EFAULT, 0 partial) and were retried, 2 of "
                                    "them because of it; 0 undocumented outcomes, 0 errors\n")
        self.assertEqual(outcomes(res), [("ok", "p[c]: allocation failures injected"),
                                         ("ok", "p[c]: CONTINUE calls failed by them, and retried")])
        self.assertEqual(res.notes, ["p[c]: 3 allocation failures injected (failslab 3, "
                                     "fail_page_alloc 0); 50 CONTINUE under injection, 4 failed "
                                     "and were retried, 2 of them because of it"])
        res = Results()
        results.add_fault_injection(res, "p[c]", "failslab 0\nfail_page_alloc 0\n")
        self.assertEqual([s for s, _ in outcomes(res)], ["fail", "fail"])

    def test_clean(self) -> None:
        self.assertEqual(results.kernel_log_problems(read_test_data("run-pass", "dmesg.txt")), [])

    def test_planted_warn(self) -> None:
        bad = results.kernel_log_problems(read_test_data("kernel-log", "dmesg-warn.txt"))
        self.assertEqual(len(bad), 3)
        self.assertIn("cut here", bad[0])
        self.assertIn("WARNING: CPU: 1 PID: 2483 at mm/userfaultfd.c:412", bad[1])
        self.assertIn("Call Trace:", bad[2])

    def test_lockdep(self) -> None:
        bad = results.kernel_log_problems(read_test_data("kernel-log", "dmesg-lockdep.txt"))
        self.assertIn("WARNING: possible circular locking dependency detected", bad[0])
        self.assertIn("Call Trace:", bad[-1])

    def test_oom_report(self) -> None:
        """An OOM report is a problem, unless the caller excuses it (as
        uffd-continue's memcg case's are); then its stack is not, but a WARN
        after it, and its trace, still are."""
        text = read_test_data("kernel-log", "dmesg-oom.txt")
        bad = results.kernel_log_problems(text)
        self.assertEqual(len(bad), 5, bad)
        self.assertIn("uffd-continue invoked oom-killer", bad[0])
        self.assertIn("[   32.110406] Call Trace:", bad[1])
        self.assertEqual(results.oom_reports(text)[0][0], results.OomReport(
            "uffd-continue", "/uffd-continue-322", "", bad[0]))
        bad = results.kernel_log_problems(text, lambda r: True)
        self.assertEqual(len(bad), 3, bad)
        self.assertIn("cut here", bad[0])
        self.assertIn("WARNING: CPU: 1 PID: 322 at mm/userfaultfd.c:412", bad[1])
        self.assertIn("[   33.000003] Call Trace:", bad[2])
        # A report excuses its own trace only, not one that follows it.
        cut = "\n".join(line for line in
                        read_test_data("kernel-log", "dmesg-oom.txt").splitlines()
                        if "no killable processes" not in line)
        self.assertEqual(len(results.kernel_log_problems(cut, lambda r: True)), 3)

    def test_reports(self) -> None:
        for line in ("BUG: KASAN: slab-use-after-free in mfill_atomic+0x1/0x2",
                     "UBSAN: shift-out-of-bounds in mm/userfaultfd.c:1:2",
                     "WARNING: suspicious RCU usage",
                     "Oops: general protection fault, probably for non-canonical address",
                     "WARNING: inconsistent lock state",
                     "WARNING: possible recursive locking detected",
                     "Kernel panic - not syncing: Fatal exception"):
            self.assertEqual(results.kernel_log_problems(f"[    1.0] {line}\n"),
                             [f"[    1.0] {line}"], line)

    def test_scan(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            shutil.copy(test_data("kernel-log", "dmesg-lockdep.txt"),
                        os.path.join(d, "dmesg.txt"))
            res = Results()
            results.scan_kernel_log(d, res)
        self.assertEqual(outcomes(res), [
            ("fail", "kernel log clean (no WARN/BUG/Oops/lockdep/KASAN/hung task/bad page "
             "table)"),
            ("ok", "kernel log complete: starts at boot (45739 bytes of messages, "
             "log buffer 131072 bytes)")])
        self.assertIn("circular locking dependency", res.items[0].detail)
        # dmesg.txt there but no console.log: that is missing.
        self.assertIn("console.log: missing", res.items[0].detail)

    def test_scan_both_logs(self) -> None:
        """dmesg.txt and console.log are both judged; dmesg.txt must start
        at boot (with the "Linux version" line) or the buffer wrapped."""
        boot = read_test_data("run-pass", "dmesg.txt")
        for dmesg, console, bad in (
                (boot, boot, []),
                (boot, boot + "[ 99.0] WARNING: CPU: 0 PID: 1 at x\n", ["kernel log clean"]),
                (boot[boot.index("\n") + 1:], boot, ["kernel log complete"]),
                (boot, "", [])):
            with tempfile.TemporaryDirectory() as d:
                for name, text in (("dmesg.txt", dmesg), ("console.log", console)):
                    with open(os.path.join(d, name), "w") as f:
                        f.write(text)
                res = Results()
                log = results.scan_kernel_log(d, res)
                self.assertEqual([r.name.split(" (")[0].split(":")[0] for r in res.items
                                  if r.status == results.FAIL], bad)
                self.assertEqual(log, dmesg if not bad or bad[0] != "kernel log complete"
                                 else console)


if __name__ == "__main__":
    unittest.main()
