# SPDX-License-Identifier: GPL-2.0
"""Tests of the guest's machine: NUMA nodes, paging levels."""

import unittest

from uffdrs_lib import boot
from uffdrs_lib.common import Context


class NumaArgsTest(unittest.TestCase):

    def test_one_node(self) -> None:
        self.assertEqual(boot.numa_args("3G", 2, 1), [])

    def test_two_nodes(self) -> None:
        # Every CPU on node 0, the other nodes memory only.
        self.assertEqual(boot.numa_args("3G", 2, 2),
                         ["--numa", "1536M,cpus=0-1", "--numa", "1536M"])
        self.assertEqual(boot.numa_args("4096M", 1, 4),
                         ["--numa", "1024M,cpus=0", "--numa", "1024M",
                          "--numa", "1024M", "--numa", "1024M"])

    def test_bad_split(self) -> None:
        for memory, cpus, nodes in (("3", 2, 2), ("xG", 2, 2),
                                    ("3T", 2, 2), ("3M", 2, 2)):
            with self.subTest(memory=memory, cpus=cpus, nodes=nodes):
                with self.assertRaises(ValueError):
                    boot.numa_args(memory, cpus, nodes)


class VngCmdTest(unittest.TestCase):

    def test_kasan_boots_with_four_level_paging(self) -> None:
        kasan = boot.vng_cmd(Context.create("/r", cache="/c", kasan=True), "true")
        self.assertIn("/c/build-kasan/arch/x86/boot/bzImage", kasan)
        self.assertEqual(kasan[kasan.index("no5lvl") - 1], "--append")
        self.assertNotIn("no5lvl", boot.vng_cmd(Context.create("/r", cache="/c"), "true"))


if __name__ == "__main__":
    unittest.main()
