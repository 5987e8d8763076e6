#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the benchmark VM (booted with -icount): uffd-continue-bench on
# the Rust, the batched Rust and the C implementation in turn, a few rounds
# each, then a table of the medians and of the ratios to C.
# Writes $1/bench.txt, $1/bench.json, the raw lines in $1/logs/bench.raw.
# $2, if given, is the harness command line after "harness/uffdrs", for the
# "command:" line (e.g. "bench --debug"); $3 the number of rounds (default 2).
. "$(dirname "$0")/lib.sh"
guest_setup

SWITCH=/sys/kernel/debug/userfaultfd/mfill_impl
BENCH=$ST/uffd-continue-bench
ROUNDS=${3:-2}	# rust, rust-batch, c, rust, rust-batch, c, ...
SCALE=0.5	# repetition counts of uffd-continue-bench (-s): -icount repeats to ~0.1%
RAW=$OUT/logs/bench.raw
: > "$RAW"

if [ ! -x "$BENCH" ]; then
	echo "uffd-continue-bench not found in $ST" > "$OUT/bench.txt"
	guest_finish
	exit 0
fi
IMPLS=base
if [ -w "$SWITCH" ]; then
	IMPLS="rust c"
	# The batched CONTINUE, where the kernel has it.
	echo rust-batch > "$SWITCH" 2>/dev/null && IMPLS="rust rust-batch c"
	echo rust > "$SWITCH"
fi

for round in $(seq $ROUNDS); do
	for impl in $IMPLS; do
		[ "$impl" != base ] && echo "$impl" > "$SWITCH"
		log "round $round/$ROUNDS: $impl"
		lf=$(logname "bench round $round $impl")
		timeout -k 10 1200 "$BENCH" -s "$SCALE" > "$lf" 2>&1
		rc=$?
		[ $rc -eq 0 ] || log "uffd-continue-bench exited with $rc, see $lf"
		# The program reports the implementation it ran on: check it.
		if [ "$impl" != base ] && grep "^bench " "$lf" | grep -qv " impl=$impl "; then
			log "uffd-continue-bench ran on another implementation than $impl"
			rc=1
		fi
		sed -n "s/^bench /bench round=$round rc=$rc /p" "$lf" >> "$RAW"
	done
done
[ -w "$SWITCH" ] && echo rust > "$SWITCH"

python3 - "$RAW" "$OUT" "$ROUNDS" "$SCALE" "$(uname -r)" \
	"harness/uffdrs ${2:-bench}" <<'EOF'
import json, statistics, sys

raw, out, rounds, scale, kernel, COMMAND = sys.argv[1:7]
QEMU = "-icount shift=0,align=off,sleep=off"
NOTE = ("Under TCG with -icount shift=0 the guest clock advances one "
        "nanosecond per guest instruction: every \"ns\" here counts guest "
        "instructions, not time. Compare implementations by their ratio in "
        "the same boot; the absolute numbers mean little (TCG).")

# (test, mem, size) -> metric -> impl -> [value per round]
data, lines, failed = {}, [], 0
for line in open(raw):
    line = line.strip()
    lines.append(line)
    kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
    if kv.get("rc") != "0":
        failed += 1
        continue
    if kv["test"] == "roundtrip":
        key = (kv["test"], kv["mem"], int(kv["threads"]))
        metrics = ("median_ns", "p99_ns")
    else:
        key = (kv["test"], kv["mem"], int(kv["pages"]))
        metrics = ("ns_per_page",)
    for m in metrics:
        data.setdefault(key, {}).setdefault(m, {}).setdefault(
            kv["impl"], []).append(float(kv[m]))

order = {"rust": 0, "rust-batch": 1, "c": 2}
impls = sorted({i for k in data.values() for m in k.values() for i in m},
               key=lambda i: order.get(i, 3))
# Ratios are to C, the baseline, when C was measured.
BASE = "c" if "c" in impls and len(impls) > 1 else None
OTHERS = [i for i in impls if i != BASE]
def med(key, metric, impl):
    v = data.get(key, {}).get(metric, {}).get(impl)
    return statistics.median(v) if v else None
def spread(key, metric, impl):
    v = data.get(key, {}).get(metric, {}).get(impl)
    if not v or len(v) < 2:
        return None
    return (max(v) - min(v)) / statistics.median(v) * 100
def fmt(x, w=10):
    return f"{x:>{w}.1f}" if x is not None else f"{'-':>{w}}"
def ratio(a, b):
    return a / b if a is not None and b else None
def rfmt(x, w=7):
    return f"{x:>{w}.3f}" if x is not None else f"{'-':>{w}}"
def rname(i):
    return f"{i}/{BASE}"

t = []
t.append("UFFDIO_CONTINUE benchmark: uffd-continue-bench, "
         + ", ".join(impls) + (f" (ratios to {BASE})" if BASE else ""))
t.append(f"command:  {COMMAND}")
t.append(f"kernel:   {kernel}, guest booted with {QEMU}")
t.append(f"rounds:   {rounds} per implementation, alternating; "
         f"repetition scale {scale}; medians over the rounds")
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
if BASE:
    hdr += "".join(f"{rname(i):>13}" for i in OTHERS)
hdr += f"{'floor':>10}{impls[0] + '/floor':>12}   spread"
t.append(hdr)
for (test, mem, n) in sorted(k for k in data if k[0] == "continue"):
    key = (test, mem, n)
    v = {i: med(key, "ns_per_page", i) for i in impls}
    fl = med(("populate_read", mem, n), "ns_per_page", impls[0])
    sp = "/".join(f"{spread(key, 'ns_per_page', i):.1f}%"
                  if spread(key, "ns_per_page", i) is not None else "-"
                  for i in impls)
    row = f"   {mem:<8}{n:>6}" + "".join(fmt(v[i], 11) for i in impls)
    if BASE:
        row += "".join(rfmt(ratio(v[i], v[BASE]), 13) for i in OTHERS)
    row += f"{fmt(fl)}{rfmt(ratio(v[impls[0]], fl), 12)}   {sp}"
    t.append(row)
t.append("")
t.append("2. Minor-fault round trip (fault, handler reads the event, "
         "CONTINUE, the thread resumes), \"ns\";")
t.append("   all threads on one CPU; median and 99th percentile of the "
         "samples, then the median over the rounds")
for m, mname in (("median_ns", "median"), ("p99_ns", "p99")):
    hdr = f"   {mname:<8}{'mem':<8}{'threads':>8}" + "".join(
        f"{i:>11}" for i in impls)
    if BASE:
        hdr += "".join(f"{rname(i):>13}" for i in OTHERS)
    t.append(hdr)
    for (test, mem, n) in sorted(k for k in data if k[0] == "roundtrip"):
        key = (test, mem, n)
        v = {i: med(key, m, i) for i in impls}
        row = f"   {'':<8}{mem:<8}{n:>8}" + "".join(fmt(v[i], 11)
                                               for i in impls)
        if BASE:
            row += "".join(rfmt(ratio(v[i], v[BASE]), 13) for i in OTHERS)
        t.append(row)
if failed:
    t.append("")
    t.append(f"WARNING: {failed} lines from failed runs were left out, "
             "see logs/")
open(f"{out}/bench.txt", "w").write("\n".join(t) + "\n")

results = []
for key in sorted(data):
    for m, per in sorted(data[key].items()):
        r = {"test": key[0], "mem": key[1],
             ("threads" if key[0] == "roundtrip" else "pages"): key[2],
             "metric": m}
        for i in impls:
            r[i] = {"median": med(key, m, i), "rounds": per.get(i, [])}
        for i in OTHERS if BASE else ():
            r[rname(i)] = ratio(med(key, m, i), med(key, m, BASE))
        if key[0] == "continue":
            r["floor_populate_read"] = med(("populate_read", key[1], key[2]),
                                           "ns_per_page", impls[0])
        results.append(r)
json.dump({"command": COMMAND, "kernel": kernel, "qemu_opts": QEMU,
           "note": NOTE, "unit": "guest instructions (icount ns)",
           "rounds": int(rounds), "scale": float(scale), "impls": impls,
           "failed_lines": failed, "results": results, "raw": lines},
          open(f"{out}/bench.json", "w"), indent=1)
EOF
[ $? -eq 0 ] || log "bench.txt: the summary failed"
guest_finish
