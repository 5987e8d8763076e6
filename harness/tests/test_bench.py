# SPDX-License-Identifier: GPL-2.0
"""Tests of bench.py: a recorded bench.json in, the table out.

test_data/bench/bench.json and bench.txt were written by the table program
that ran in the guest before it moved to bench.py (bench.sh's heredoc), from
bench.raw: the module must give the same table and the same record.
"""

import json
import os
import tempfile
import unittest
from typing import Any, Dict

from uffdrs_lib import bench
from uffdrs_lib.common import HarnessError

from . import read_test_data


def recorded() -> Dict[str, Any]:
    rec: Dict[str, Any] = json.loads(read_test_data("bench", "bench.json"))
    return rec


class BenchTest(unittest.TestCase):

    def test_table_from_recorded_json(self) -> None:
        self.assertEqual(bench.table_from_json(recorded()),
                         read_test_data("bench", "bench.txt"))

    def test_record(self) -> None:
        rec = recorded()
        raw = read_test_data("bench", "bench.raw").splitlines()
        text, new = bench.summarize(raw, rec["command"], rec["kernel"], rec["rounds"],
                                    rec["scale"])
        self.assertEqual(new, rec)
        self.assertEqual(text, read_test_data("bench", "bench.txt"))

    def test_stats(self) -> None:
        rec = recorded()
        raw = read_test_data("bench", "bench.raw").splitlines()
        stats = ["stats round=1 impl=rust-batch prog=uffd-continue-bench "
                 "continue_rust_batch=1024 continue_rust_batch_pmd=2",
                 "stats round=2 impl=rust-batch prog=uffd-continue-bench "
                 "continue_rust_batch=1024 continue_rust_batch_pmd=2",
                 "stats round=1 impl=c prog=uffd-restore-thp continue_c=512"]
        text, new = bench.summarize(raw, rec["command"], rec["kernel"], rec["rounds"],
                                    rec["scale"], stats)
        self.assertIn("   rust-batch uffd-continue-bench      "
                      "continue_rust_batch=2048 continue_rust_batch_pmd=4\n", text)
        self.assertIn("   c          uffd-restore-thp         continue_c=512\n", text)
        self.assertEqual(new["stats"], stats)
        self.assertEqual(bench.table_from_json(new), text)

    def test_ratios_and_failed_runs(self) -> None:
        rec = recorded()
        # One of the six runs exited non-zero: its lines are left out.
        self.assertEqual(rec["failed_lines"], 20)
        self.assertIn("WARNING: 20 lines from failed runs were left out",
                      bench.table_from_json(rec))
        row = [r for r in rec["results"] if r["test"] == "continue"
               and r["mem"] == "thp" and r["pages"] == 512][0]
        self.assertEqual(row["rust-batch"]["rounds"], [row["rust-batch"]["median"]])
        self.assertAlmostEqual(row["rust/c"], row["rust"]["median"] / row["c"]["median"])

    def test_one_implementation(self) -> None:
        # The base kernel has no switch: "base" only, no ratios.
        raw = ["bench round=1 rc=0 impl=base test=continue mem=shmem4k pages=1 "
               "ns_per_page=10.0",
               "bench round=1 rc=0 impl=base test=populate_read mem=shmem4k pages=1 "
               "ns_per_page=5.0",
               "bench round=1 rc=0 impl=base test=roundtrip mem=shmem4k threads=1 "
               "median_ns=100 p99_ns=200"]
        text, rec = bench.summarize(raw, "harness/uffdrs bench", "k", 1, 1.0)
        self.assertIn("uffd-continue-bench, base\n", text)
        self.assertIn("   shmem4k      1       10.0       5.0       2.000   -", text)
        self.assertEqual(rec["impls"], ["base"])
        self.assertNotIn("base/c", rec["results"][0])

    def test_no_measurement(self) -> None:
        with self.assertRaises(HarnessError):
            bench.summarize([], "c", "k", 2, 0.5)

    def test_read_env(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "bench.env")
            with open(p, "w") as f:
                f.write("rounds=2\nscale=0.5\nkernel=7.3.4-uffdrs+\n")
            self.assertEqual(bench.read_env(p), {"rounds": "2", "scale": "0.5",
                                                 "kernel": "7.3.4-uffdrs+"})


if __name__ == "__main__":
    unittest.main()


class RestoreTest(unittest.TestCase):
    """The restore workload's lines: rates, faults, and the rate relative to C."""

    RAW = [f"bench round={r} rc=0 impl={i} test=restore mem={m} pages=262144 threads=4 "
           f"faults={f} pmd_mapped_kb=0 ns={ns} ns_per_page=1.0 pages_per_sec={rate}"
           for r in (1, 2)
           for i, m, f, ns, rate in (("rust-batch", "thp", 512, 1, 2000.0 + r),
                                     ("c", "thp", 512, 1, 1000.0),
                                     ("rust-batch", "shmem4k", 262144, 1, 500.0),
                                     ("c", "shmem4k", 262144, 1, 400.0))]

    def test_table(self) -> None:
        text, rec = bench.summarize(self.RAW, "harness/uffdrs bench", "k", 2, 1.0)
        self.assertIn("3. Restore workload", text)
        rows = [line.split() for line in text.splitlines()
                if line.startswith("   thp ") or line.startswith("   shmem4k ")]
        self.assertEqual(rows[0][:5], ["shmem4k", "262144", "500", "400", "1.250"])
        self.assertEqual(rows[1][:5], ["thp", "262144", "2002", "1000", "2.002"])
        self.assertEqual(rows[1][5], "512/512")
        r = [x for x in rec["results"] if x["test"] == "restore" and x["mem"] == "thp"
             and x["metric"] == "pages_per_sec"][0]
        self.assertEqual(r["rust-batch"]["rounds"], [2001.0, 2002.0])
        self.assertAlmostEqual(r["rust-batch/c"], 2001.5 / 1000.0)
