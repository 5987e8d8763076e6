# SPDX-License-Identifier: GPL-2.0
"""Tests of the build helpers and of the gates' decisions on recorded text."""

import dataclasses
import os
import tempfile
import unittest

from uffdrs_lib import build, gates
from uffdrs_lib.common import Context


class DiagnosticsTest(unittest.TestCase):

    LOG = """\
  CC      mm/userfaultfd.o
mm/userfaultfd.c:12:5: warning: unused variable 'x' [-Wunused-variable]
  CC      mm/shmem.o
  CC      mm/memory.o
  RUSTC L rust/kernel.o
warning: unused import: `Foo`
 --> rust/kernel/mm/folio.rs:9:5
error[E0425]: cannot find value `y` in this scope
  --> mm/userfaultfd_rust.rs:44:9
  LD      vmlinux
the warning: word is not a diagnostic
"""

    def test_diagnostics(self) -> None:
        self.assertEqual([i for i, _ in build.diagnostics(self.LOG)], [1, 5, 7])

    def test_warnings_in_files(self) -> None:
        found = gates.warnings_in_files(self.LOG, ["rust/kernel/mm/folio.rs",
                                                   "mm/userfaultfd_rust.rs"])
        self.assertEqual(len(found), 2)
        self.assertTrue(found[0].startswith("warning: unused import"))
        self.assertTrue(found[1].startswith("error[E0425]"))
        self.assertEqual(gates.warnings_in_files(self.LOG, ["mm/other.c"]), [])


class ObjectsTest(unittest.TestCase):

    def test_series_objects(self) -> None:
        with tempfile.TemporaryDirectory() as tree:
            os.makedirs(os.path.join(tree, "mm"))
            with open(os.path.join(tree, "mm", "userfaultfd.c"), "w") as f:
                f.write('#include "userfaultfd_rust_test.c"\n')
            open(os.path.join(tree, "mm", "userfaultfd_rust_test.c"), "w").close()
            files = ["rust/kernel/mm/folio.rs", "rust/helpers/folio.c",
                     "mm/userfaultfd_rust.rs", "mm/userfaultfd_rust/batch.rs",
                     "mm/userfaultfd_rust_test.c", "mm/memory.c",
                     "tools/testing/selftests/mm/uffd-continue.c",
                     "Documentation/mm/rust.rst"]
            self.assertEqual(build.series_objects(tree, files), [
                "mm/memory.o", "mm/userfaultfd_rust.o", "rust/helpers/helpers.bc",
                "rust/helpers/helpers.o", "rust/kernel.o"])


class ConfigTest(unittest.TestCase):

    def test_unapplied_options(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            frag = os.path.join(d, "f.config")
            with open(frag, "w") as f:
                f.write("CONFIG_RUST=y\nCONFIG_KUNIT=y\n# CONFIG_KASAN is not set\n"
                        "# CONFIG_SWAP is not set\n# a comment\n")
            cfg = "CONFIG_RUST=y\n# CONFIG_KUNIT is not set\nCONFIG_SWAP=y\n"
            self.assertEqual(build.unapplied_options([frag], cfg),
                             ["CONFIG_KUNIT=y", "# CONFIG_SWAP is not set"])


class FragmentsTest(unittest.TestCase):

    def test_config_fragments(self) -> None:
        ctx = Context.create("/r", cache="/c")
        self.assertEqual(build.config_fragments(ctx), ["/r/harness/config/uffdrs.config"])
        self.assertEqual(build.config_fragments(Context.create("/r", "/c", kasan=True)),
                         ["/r/harness/config/uffdrs.config", "/r/harness/config/kasan.config"])
        # Another kernel (e.g. a benchmark's): its build directory, its fragment.
        other = dataclasses.replace(ctx, build="/c/build-bench",
                                    extra_fragments=("/r/harness/config/bench.config",))
        self.assertEqual(build.config_fragments(other), ["/r/harness/config/uffdrs.config",
                                                         "/r/harness/config/bench.config"])


class FragmentTest(unittest.TestCase):

    def test_later_fragment_overrides(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            a, b = os.path.join(d, "a.config"), os.path.join(d, "b.config")
            with open(a, "w") as f:
                f.write("CONFIG_DEBUG_VM=y\nCONFIG_KUNIT=y\nCONFIG_SWAP=y\n")
            with open(b, "w") as f:
                f.write("# CONFIG_DEBUG_VM is not set\n# CONFIG_KUNIT is not set\n")
            cfg = "CONFIG_SWAP=y\n# CONFIG_DEBUG_VM is not set\nCONFIG_KUNIT=y\n"
            # DEBUG_VM is off as b wants; KUNIT stayed on against b's wish.
            self.assertEqual(build.unapplied_options([a, b], cfg), ["# CONFIG_KUNIT is not set"])
            self.assertEqual(build.unapplied_options([a], cfg), ["CONFIG_DEBUG_VM=y"])

    def test_later_fragment_hides_dependents(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            a, b = os.path.join(d, "a.config"), os.path.join(d, "b.config")
            with open(a, "w") as f:
                f.write("CONFIG_DETECT_HUNG_TASK=y\nCONFIG_DEFAULT_HUNG_TASK_TIMEOUT=120\n"
                        "CONFIG_PRINTK_TIME=y\n")
            with open(b, "w") as f:
                f.write("# CONFIG_DETECT_HUNG_TASK is not set\n")
            # Kconfig leaves the timeout out: its dependency is off.
            cfg = "# CONFIG_DETECT_HUNG_TASK is not set\n"
            deps = {"DEFAULT_HUNG_TASK_TIMEOUT": "DETECT_HUNG_TASK", "PRINTK_TIME": "PRINTK"}
            self.assertEqual(build.unapplied_options([a, b], cfg, deps), ["CONFIG_PRINTK_TIME=y"])
            # Without b, the missing timeout is an error.
            self.assertEqual(build.unapplied_options([a], cfg, deps),
                             ["CONFIG_DETECT_HUNG_TASK=y", "CONFIG_DEFAULT_HUNG_TASK_TIMEOUT=120",
                              "CONFIG_PRINTK_TIME=y"])
            # In a tree under a hidden directory, as the cache is (~/.cache).
            d = os.path.join(d, ".cache", "tree")
            os.makedirs(d)
            with open(os.path.join(d, "Kconfig"), "w") as f:
                f.write("config DEFAULT_HUNG_TASK_TIMEOUT\n\tint \"t\"\n"
                        "\tdepends on DETECT_HUNG_TASK\n\tdefault 120\n")
            self.assertEqual(build.kconfig_depends(d, ["DEFAULT_HUNG_TASK_TIMEOUT"]),
                             {"DEFAULT_HUNG_TASK_TIMEOUT": "DETECT_HUNG_TASK"})


class CheckpatchTest(unittest.TestCase):

    PATCH = "Subject: [PATCH 1/2] x\n\nLONG_LINE: the table is wider.\n---\n diff\n"

    def test_clean(self) -> None:
        self.assertTrue(gates.checkpatch_ok("", self.PATCH))

    def test_error(self) -> None:
        self.assertFalse(gates.checkpatch_ok("ERROR:TRAILING_WHITESPACE: x\n", self.PATCH))

    def test_justified_warning(self) -> None:
        self.assertTrue(gates.checkpatch_ok("WARNING:LONG_LINE: line length\n", self.PATCH))
        self.assertFalse(gates.checkpatch_ok("CHECK:CAMELCASE: Avoid CamelCase\n", self.PATCH))

    def test_named_below_the_cut(self) -> None:
        # Only the commit message justifies a warning, not the diff.
        self.assertFalse(gates.checkpatch_ok("WARNING:SPACING: x\n",
                                             self.PATCH + "+SPACING:\n"))

    MAINTAINERS = ("THE REST\nM:\tLinus\nF:\t*\nF:\t*/\n\n"
                   "MEMORY MANAGEMENT - RUST\nM:\tsomeone\nF:\trust/kernel/mm/\n"
                   "F:\trust/helpers/mm.c\n\n"
                   "MEMORY MANAGEMENT - USERFAULTFD\nF:\tmm/userfaultfd.c\n"
                   "F:\ttools/testing/selftests/mm/uffd-*.[ch]\n")
    NEW_FILES = ("Subject: [PATCH 3/9] y\n\nAdd files.\n---\n"
                 "diff --git a/rust/kernel/mm/pte.rs b/rust/kernel/mm/pte.rs\n"
                 "new file mode 100644\n"
                 "diff --git a/tools/testing/selftests/mm/uffd-continue.h "
                 "b/tools/testing/selftests/mm/uffd-continue.h\nnew file mode 100644\n"
                 "diff --git a/mm/userfaultfd.c b/mm/userfaultfd.c\nindex 1..2 100644\n")

    def test_maintainers_sections(self) -> None:
        m = self.MAINTAINERS
        self.assertEqual(gates.maintainers_sections(m, "rust/kernel/mm/a/b.rs"),
                         ["MEMORY MANAGEMENT - RUST"])
        self.assertEqual(gates.maintainers_sections(m, "tools/testing/selftests/mm/uffd-x.c"),
                         ["MEMORY MANAGEMENT - USERFAULTFD"])
        self.assertEqual(gates.maintainers_sections(m, "rust/helpers/mm.c"),
                         ["MEMORY MANAGEMENT - RUST"])
        # Only THE REST: no section.
        self.assertEqual(gates.maintainers_sections(m, "rust/helpers/folio.c"), [])
        self.assertEqual(gates.maintainers_sections(m, "mm/userfaultfd_rust.rs"), [])

    def test_added_files(self) -> None:
        self.assertEqual(gates.added_files(self.NEW_FILES),
                         ["rust/kernel/mm/pte.rs", "tools/testing/selftests/mm/uffd-continue.h"])

    def test_file_path_changes(self) -> None:
        warn = "WARNING:FILE_PATH_CHANGES: added, moved or deleted file(s)\n"
        # Every new file has a section: the question is answered.
        self.assertTrue(gates.checkpatch_ok(warn, self.NEW_FILES, self.MAINTAINERS))
        # A new file with no section: MAINTAINERS needs updating.
        orphan = self.NEW_FILES.replace("rust/kernel/mm/pte.rs", "rust/helpers/pte.c")
        self.assertFalse(gates.checkpatch_ok(warn, orphan, self.MAINTAINERS))
        self.assertFalse(gates.checkpatch_ok(warn, self.NEW_FILES))


if __name__ == "__main__":
    unittest.main()
