# SPDX-License-Identifier: GPL-2.0
"""bench: uffd-continue-bench and the restore workload under -icount, and their table.

The guest (harness/guest/bench.sh) runs uffd-continue-bench on every
implementation, a few rounds each, then the restore workload uffd-restore
(harness/uffd-restore, a Rust program on the userfaultfd crate, built here
with cargo), and records their raw lines
("bench round=1 rc=0 impl=rust test=continue mem=shmem4k pages=512 ...
ns_per_page=...") in logs/bench.raw, and the run's parameters in bench.env.
summarize() makes the table of the medians and of the ratios to C, and the
JSON record of every round, from them. The JSON keeps the raw lines, so a
recorded bench.json gives its table again (table_from_json()).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import boot, build
from .common import Context, HarnessError, read, run, say, tail, truncate

QEMU_OPTS = "-icount shift=0,align=off,sleep=off"
NOTE = ("Under TCG with -icount shift=0 the guest clock advances one "
        "nanosecond per guest instruction: every \"ns\" here counts guest "
        "instructions, not time. Compare implementations by their ratio in "
        "the same boot; the absolute numbers mean little (TCG).")
IMPL_ORDER = {"rust": 0, "rust-batch": 1, "c": 2}

Key = Tuple[str, str, int]  # (test, mem, pages or threads)
Data = Dict[Key, Dict[str, Dict[str, List[float]]]]  # key -> metric -> impl -> rounds


def parse_raw(lines: Sequence[str]) -> Tuple[Data, int]:
    """The measurements of the runs that exited 0, and the number of lines
    of the others."""
    data: Data = {}
    failed = 0
    for line in lines:
        kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        if kv.get("rc") != "0":
            failed += 1
            continue
        key: Key
        if kv["test"] == "roundtrip":
            key = (kv["test"], kv["mem"], int(kv["threads"]))
            metrics: Tuple[str, ...] = ("median_ns", "p99_ns")
        elif kv["test"] == "restore":
            key = (kv["test"], kv["mem"], int(kv["pages"]))
            metrics = ("pages_per_sec", "faults")
        else:
            key = (kv["test"], kv["mem"], int(kv["pages"]))
            metrics = ("ns_per_page",)
        for m in metrics:
            data.setdefault(key, {}).setdefault(m, {}).setdefault(
                kv["impl"], []).append(float(kv[m]))
    return data, failed


class Summary:
    """The medians over the rounds, per implementation, and their ratios to C
    (the baseline, when C was measured along with another one)."""

    def __init__(self, data: Data) -> None:
        self.data = data
        self.impls = sorted({i for k in data.values() for m in k.values() for i in m},
                            key=lambda i: IMPL_ORDER.get(i, 3))
        self.base = "c" if "c" in self.impls and len(self.impls) > 1 else None
        self.others = [i for i in self.impls if i != self.base]

    def rounds(self, key: Key, metric: str, impl: str) -> List[float]:
        return self.data.get(key, {}).get(metric, {}).get(impl, [])

    def median(self, key: Key, metric: str, impl: str) -> Optional[float]:
        v = self.rounds(key, metric, impl)
        return statistics.median(v) if v else None

    def spread(self, key: Key, metric: str, impl: str) -> Optional[float]:
        """(max - min) / median over the rounds, in percent."""
        v = self.rounds(key, metric, impl)
        if len(v) < 2:
            return None
        return (max(v) - min(v)) / statistics.median(v) * 100

    def ratio_name(self, impl: str) -> str:
        return f"{impl}/{self.base}"

    def keys(self, test: str) -> List[Key]:
        return sorted(k for k in self.data if k[0] == test)

    def floor(self, key: Key) -> Optional[float]:
        """MADV_POPULATE_READ of the same range (measured on the first impl)."""
        return self.median(("populate_read", key[1], key[2]), "ns_per_page", self.impls[0])


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def fmt(x: Optional[float], w: int = 10) -> str:
    return f"{x:>{w}.1f}" if x is not None else f"{'-':>{w}}"


def rfmt(x: Optional[float], w: int = 7) -> str:
    return f"{x:>{w}.3f}" if x is not None else f"{'-':>{w}}"


def stats_sums(stats: Sequence[str]) -> Dict[Tuple[str, str], Dict[str, int]]:
    """(impl, program) -> counter -> its growth summed over the rounds, from
    the "stats round=R impl=I prog=P name=delta ..." lines of bench.sh."""
    sums: Dict[Tuple[str, str], Dict[str, int]] = {}
    for line in stats:
        kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        if "impl" not in kv or "prog" not in kv:
            continue
        per = sums.setdefault((kv["impl"], kv["prog"]), {})
        for k, v in kv.items():
            if k not in ("round", "impl", "prog"):
                per[k] = per.get(k, 0) + int(v)
    return sums


def table(s: Summary, command: str, kernel: str, rounds: int, scale: float,
          failed: int, stats: Sequence[str] = ()) -> str:
    impls, base, others = s.impls, s.base, s.others
    if not impls:
        raise HarnessError("the benchmark has no measurement")
    t = []
    t.append("UFFDIO_CONTINUE benchmark: uffd-continue-bench, "
             + ", ".join(impls) + (f" (ratios to {base})" if base else ""))
    t.append(f"command:  {command}")
    t.append(f"kernel:   {kernel}, guest booted with {QEMU_OPTS}")
    t.append(f"rounds:   {rounds} per implementation, alternating; "
             f"repetition scale {scale:g}; medians over the rounds")
    t.append("")
    t.append("NOTE: " + NOTE)
    t.append("")
    t.append("1. UFFDIO_CONTINUE, \"ns\" per page (range of PAGES pages per call; "
             "1 and 16 pages in batches of calls)")
    t.append("   floor: MADV_POPULATE_READ of the same range on a mapping that "
             "is not registered")
    t.append("   (on thp the floor maps whole PMDs, so it is not a per-PTE cost)")
    t.append("   spread: (max - min) / median over the rounds, per implementation")
    hdr = f"   {'mem':<8}{'pages':>6}" + "".join(f"{i:>11}" for i in impls)
    if base:
        hdr += "".join(f"{s.ratio_name(i):>13}" for i in others)
    hdr += f"{'floor':>10}{impls[0] + '/floor':>12}   spread"
    t.append(hdr)
    for key in s.keys("continue"):
        _, mem, n = key
        v = {i: s.median(key, "ns_per_page", i) for i in impls}
        fl = s.floor(key)
        sp = "/".join(f"{x:.1f}%" if (x := s.spread(key, "ns_per_page", i)) is not None
                      else "-" for i in impls)
        row = f"   {mem:<8}{n:>6}" + "".join(fmt(v[i], 11) for i in impls)
        if base:
            row += "".join(rfmt(ratio(v[i], v[base]), 13) for i in others)
        row += f"{fmt(fl)}{rfmt(ratio(v[impls[0]], fl), 12)}   {sp}"
        t.append(row)
    t.append("")
    t.append("2. Minor-fault round trip (fault, handler reads the event, "
             "CONTINUE, the thread resumes), \"ns\";")
    t.append("   all threads on one CPU; median and 99th percentile of the "
             "samples, then the median over the rounds")
    for m, mname in (("median_ns", "median"), ("p99_ns", "p99")):
        hdr = f"   {mname:<8}{'mem':<8}{'threads':>8}" + "".join(f"{i:>11}" for i in impls)
        if base:
            hdr += "".join(f"{s.ratio_name(i):>13}" for i in others)
        t.append(hdr)
        for key in s.keys("roundtrip"):
            _, mem, n = key
            v = {i: s.median(key, m, i) for i in impls}
            row = f"   {'':<8}{mem:<8}{n:>8}" + "".join(fmt(v[i], 11) for i in impls)
            if base:
                row += "".join(rfmt(ratio(v[i], v[base]), 13) for i in others)
            t.append(row)
    if s.keys("restore"):
        t.append("")
        t.append("3. Restore workload (uffd-restore: 4 vCPU threads read every page of a shmem")
        t.append("   region once, in a random order; one handler thread resolves each minor fault")
        t.append("   with UFFDIO_CONTINUE of the page, on thp of its whole 2 MiB): pages restored")
        t.append("   per second of guest time (guest instructions under -icount), and the minor")
        t.append("   faults the handler saw; \"x c\": the rate relative to c (higher is faster)")
        hdr = f"   {'mem':<8}{'pages':>8}" + "".join(f"{i:>12}" for i in impls)
        if base:
            hdr += "".join(f"{i + ' x ' + base:>16}" for i in others)
        hdr += "   faults (" + "/".join(impls) + ")   spread"
        t.append(hdr)
        for key in s.keys("restore"):
            _, mem, n = key
            v = {i: s.median(key, "pages_per_sec", i) for i in impls}
            f = {i: s.median(key, "faults", i) for i in impls}
            row = f"   {mem:<8}{n:>8}" + "".join(
                f"{x:>12.0f}" if (x := v[i]) is not None else f"{'-':>12}" for i in impls)
            if base:
                row += "".join(rfmt(ratio(v[i], v[base]), 16) for i in others)
            row += "   " + "/".join(f"{x:.0f}" if (x := f[i]) is not None else "-"
                                    for i in impls)
            row += "   " + "/".join(
                f"{x:.1f}%" if (x := s.spread(key, "pages_per_sec", i)) is not None else "-"
                for i in impls)
            t.append(row)
    sums = stats_sums(stats)
    if sums:
        t.append("")
        t.append("4. What each implementation mapped (debugfs userfaultfd/stats, the counters that")
        t.append("   grew, summed over the rounds; pages, and PMD mappings for *_pmd)")
        for (impl, prog), per in sorted(sums.items(),
                                        key=lambda x: (IMPL_ORDER.get(x[0][0], 3), x[0][1])):
            t.append(f"   {impl:<11}{prog:<25}"
                     + " ".join(f"{k}={v}" for k, v in sorted(per.items())))
    if failed:
        t.append("")
        t.append(f"WARNING: {failed} lines from failed runs were left out, see logs/")
    return "\n".join(t) + "\n"


def record(s: Summary, raw: Sequence[str], command: str, kernel: str, rounds: int,
           scale: float, failed: int, stats: Sequence[str] = ()) -> Dict[str, Any]:
    """The JSON record: every round of every measurement, medians, ratios."""
    results = []
    for key in sorted(s.data):
        for m, per in sorted(s.data[key].items()):
            r: Dict[str, Any] = {
                "test": key[0], "mem": key[1],
                ("threads" if key[0] == "roundtrip" else "pages"): key[2],
                "metric": m}
            for i in s.impls:
                r[i] = {"median": s.median(key, m, i), "rounds": per.get(i, [])}
            if s.base:
                for i in s.others:
                    r[s.ratio_name(i)] = ratio(s.median(key, m, i),
                                               s.median(key, m, s.base))
            if key[0] == "continue":
                r["floor_populate_read"] = s.floor(key)
            results.append(r)
    rec = {"command": command, "kernel": kernel, "qemu_opts": QEMU_OPTS,
           "note": NOTE, "unit": "guest instructions (icount ns)",
           "rounds": rounds, "scale": scale, "impls": s.impls,
           "failed_lines": failed, "results": results, "raw": list(raw)}
    if stats:
        rec["stats"] = list(stats)
    return rec


def summarize(raw: Sequence[str], command: str, kernel: str, rounds: int,
              scale: float, stats: Sequence[str] = ()) -> Tuple[str, Dict[str, Any]]:
    """The table and the JSON record of a benchmark run's raw lines (and of
    its counter lines, bench.stats, where the kernel has the counters)."""
    lines = [line.strip() for line in raw if line.strip()]
    stats = [line.strip() for line in stats if line.strip()]
    data, failed = parse_raw(lines)
    s = Summary(data)
    return (table(s, command, kernel, rounds, scale, failed, stats),
            record(s, lines, command, kernel, rounds, scale, failed, stats))


def table_from_json(rec: Dict[str, Any]) -> str:
    """The table of a recorded bench.json (made again from its raw lines)."""
    text, _ = summarize(rec["raw"], rec["command"], rec["kernel"],
                        int(rec["rounds"]), float(rec["scale"]), rec.get("stats", []))
    return text


def read_env(path: str) -> Dict[str, str]:
    """bench.env of a run: "key=value" lines."""
    env = {}
    for line in read(path).splitlines():
        k, sep, v = line.partition("=")
        if sep:
            env[k.strip()] = v.strip()
    return env


def command_line(ctx: Context, target: str = "bench") -> str:
    opts = (["--kasan"] if ctx.kasan else []) + (["--without-fixes"] if ctx.without_fixes else [])
    return " ".join(["harness/uffdrs", *opts, target])


WORKLOAD = "uffd-restore"


def build_workload(ctx: Context) -> None:
    """Builds the restore workload (harness/uffd-restore) with cargo, its
    Cargo.lock as it is (--locked), into the cache, and puts the binary
    beside the selftests, where the guest finds it."""
    with ctx.phase(f"{WORKLOAD} build (cargo)"):
        target = os.path.join(ctx.cache, f"{WORKLOAD}-target")
        log = os.path.join(ctx.cache, f"{WORKLOAD}-build.log")
        truncate(log)
        run(["cargo", "build", "--release", "--locked", "--manifest-path",
             os.path.join(ctx.harness, WORKLOAD, "Cargo.toml"), "--target-dir", target],
            log=log)
        os.makedirs(ctx.selftests, exist_ok=True)
        shutil.copy2(os.path.join(target, "release", WORKLOAD),
                     os.path.join(ctx.selftests, WORKLOAD))


def bench(ctx: Context, name: str = "bench", command: Optional[str] = None,
          rounds: int = 2, restore_mib: int = 1024) -> str:
    """Builds ctx.build's kernel, boots it with -icount, runs the benchmark
    (`rounds` rounds per implementation; the restore workload on `restore_mib`
    MiB, 0: not at all) and writes NAME.txt and NAME.json
    to the run directory and to out/. Returns the table.

    A benchmark of another kernel is another `ctx`, with its own build
    directory and config fragments, e.g. dataclasses.replace(ctx,
    build=<cache>/build-bench, extra_fragments=(<harness>/config/bench.config,)),
    and another `name`.
    """
    build.build_kernel(ctx)
    build.build_selftests(ctx)
    workload = os.path.join(ctx.selftests, WORKLOAD)
    if restore_mib:
        build_workload(ctx)
    elif os.path.exists(workload):
        os.unlink(workload)
    rundir = boot.boot(ctx, "bench.sh", name, timeout=7200, qemu_opts=QEMU_OPTS,
                       memory="4G", args=f"{rounds} {restore_mib or 1024}")
    raw_path = os.path.join(rundir, "logs", "bench.raw")
    env_path = os.path.join(rundir, "bench.env")
    if not os.path.exists(env_path) or not os.path.exists(raw_path):
        raise HarnessError(tail(os.path.join(rundir, "console.log"), 60)
                           + "the benchmark did not produce output")
    env = read_env(env_path)
    stats_path = os.path.join(rundir, "logs", "bench.stats")
    stats = read(stats_path).splitlines() if os.path.exists(stats_path) else []
    text, rec = summarize(read(raw_path).splitlines(), command or command_line(ctx),
                          env.get("kernel", "?"), int(env.get("rounds", "0")),
                          float(env.get("scale", "1")), stats)
    os.makedirs(ctx.out, exist_ok=True)
    for d in (rundir, ctx.out):
        with open(os.path.join(d, f"{name}.txt"), "w") as f:
            f.write(text)
        with open(os.path.join(d, f"{name}.json"), "w") as f:
            json.dump(rec, f, indent=1)
    say(f"written {ctx.out}/{name}.txt and {ctx.out}/{name}.json")
    return text
