#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the benchmark VM (booted with -icount): uffd-continue-bench on
# the Rust, the batched Rust and the C implementation in turn, a few rounds
# each. Writes the raw lines to $1/logs/bench.raw and the parameters of the
# run to $1/bench.env; the harness makes the table of the medians and of the
# ratios to C from them, on the host. $2: the number of rounds (default 2).
# Each round also runs the restore workload, uffd-restore (harness/uffd-restore,
# a Rust program on the userfaultfd crate), on 4 KiB folios and on THPs, when
# the harness built it; $3: its memory in MiB (default 1024).
. "$(dirname "$0")/lib.sh"
guest_setup

SWITCH=/sys/kernel/debug/userfaultfd/mfill_impl
BENCH=$ST/uffd-continue-bench
ROUNDS=${2:-2}	# rust, rust-batch, c, rust, rust-batch, c, ...
SCALE=0.5	# repetition counts of uffd-continue-bench (-s): -icount repeats to ~0.1%
RAW=$OUT/logs/bench.raw
: > "$RAW"
# What each run mapped, from the counters of test builds (debugfs
# userfaultfd/stats): "stats round=R impl=I prog=P name=delta ...", the
# counters that grew. Shows, e.g., the PMD mappings of the batch on thp.
STATS=/sys/kernel/debug/userfaultfd/stats
STATSLOG=$OUT/logs/bench.stats
: > "$STATSLOG"
stats_before() { cat "$STATS" > "$OUT/logs/.stats.before" 2>/dev/null; }
stats_after() {
	[ -r "$STATS" ] || return 0
	awk -v label="$1" 'NR == FNR { b[$1] = $2; next }
		{ d = $2 - b[$1]; if (d) s = s " " $1 "=" d }
		END { print "stats " label s }' "$OUT/logs/.stats.before" "$STATS" >> "$STATSLOG"
}
RESTORE=$ST/uffd-restore
RESTORE_MIB=${3:-1024}
# uffd-restore's memfd gets PMD-sized folios where it asks for them.
SHMEM_ENABLED=/sys/kernel/mm/transparent_hugepage/shmem_enabled
shmem_was=$(sed 's/.*\[\(.*\)\].*/\1/' "$SHMEM_ENABLED" 2>/dev/null)
[ -n "$shmem_was" ] && echo advise > "$SHMEM_ENABLED"

if [ ! -x "$BENCH" ]; then
	log "uffd-continue-bench not found in $ST"
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
		stats_before
		timeout -k 10 1200 "$BENCH" -s "$SCALE" > "$lf" 2>&1
		rc=$?
		stats_after "round=$round impl=$impl prog=uffd-continue-bench"
		[ $rc -eq 0 ] || log "uffd-continue-bench exited with $rc, see $lf"
		# The program reports the implementation it ran on: check it.
		if [ "$impl" != base ] && grep "^bench " "$lf" | grep -qv " impl=$impl "; then
			log "uffd-continue-bench ran on another implementation than $impl"
			rc=1
		fi
		sed -n "s/^bench /bench round=$round rc=$rc /p" "$lf" >> "$RAW"
		[ -x "$RESTORE" ] || continue
		for mem in shmem4k thp; do
			lf=$(logname "restore round $round $impl $mem")
			stats_before
			timeout -k 10 1800 "$RESTORE" --size-mib "$RESTORE_MIB" \
				--threads 4 $([ $mem = thp ] && echo --thp) > "$lf" 2>&1
			rc=$?
			stats_after "round=$round impl=$impl prog=uffd-restore-$mem"
			[ $rc -eq 0 ] || log "uffd-restore ($mem) exited with $rc, see $lf"
			if [ "$impl" != base ] && grep "^bench " "$lf" | grep -qv " impl=$impl "; then
				log "uffd-restore ran on another implementation than $impl"
				rc=1
			fi
			sed -n "s/^bench /bench round=$round rc=$rc /p" "$lf" >> "$RAW"
		done
	done
done
[ -n "$shmem_was" ] && echo "$shmem_was" > "$SHMEM_ENABLED"
[ -w "$SWITCH" ] && echo rust > "$SWITCH"

# The harness makes the table on the host (harness/uffdrs_lib/bench.py).
printf 'rounds=%s\nscale=%s\nkernel=%s\n' "$ROUNDS" "$SCALE" "$(uname -r)" > "$OUT/bench.env"
guest_finish
