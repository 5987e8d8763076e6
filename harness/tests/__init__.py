# SPDX-License-Identifier: GPL-2.0
"""Unit tests of the harness, against recorded outputs in test_data/.

`harness/uffdrs unit` runs them (and `harness/uffdrs test`, first). By hand:

    python3 -m unittest discover -s harness/tests -t harness

The KTAP and TAP tests need the kernel's tools/testing/kunit: the base tree
of the cache (`harness/uffdrs fetch`), or UFFDRS_KUNIT_TOOL=<dir>.
"""

import os

from uffdrs_lib import results
from uffdrs_lib.common import Context

HARNESS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(HARNESS)
TEST_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_data")


def test_data(*path: str) -> str:
    return os.path.join(TEST_DATA, *path)


def read_test_data(*path: str) -> str:
    with open(test_data(*path)) as f:
        return f.read()


def use_kunit_tool() -> None:
    results.use_kunit_tool(os.environ.get("UFFDRS_KUNIT_TOOL")
                           or Context.create(REPO).kunit_tool)
