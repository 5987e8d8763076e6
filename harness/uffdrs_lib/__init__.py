# SPDX-License-Identifier: GPL-2.0
"""The uffd-continue-rs harness, by concern (harness/uffdrs runs cli.main()):

  common.py        the run Context, HarnessError, progress lines, run(), git()
  host_setup.py    setup: Debian packages, rust-src, bindgen, virtme-ng, mypy
  base.py          fetch: the pinned base, committed as the `base` branch
  series.py        tree, series: the series as git commits, format-patch
  build.py         configuration, kernel and selftest builds, clean
  boot.py          virtme-ng boots running a guest script (harness/guest/)
  results.py       every result: KTAP/TAP (kunit_parser), exit statuses,
                   implementation comparison, kernel log; the TAP report
  coverage.py      a test run held against harness/expected.toml: expected
                   phases, programs, suites, requirements, skips, counters
                   and OOM reports
  gates.py         checkpatch, git am, clippy, rustfmt, rustdoc, mypy, and
                   the harness's unit tests
  compile_fail.py  the gate of misuses that must not compile (harness/compile-fail/)
  docs.py          the documentation gate (docutils on the series' .rst files)
  check_series.py  check-series (every patch on its own)
  check_arch.py    check-arch: cross-builds for every architecture with Rust
  bench.py         bench: the -icount boot and its table
  cli.py           the command line
"""
