#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the test VM: KUnit results, upstream uffd selftests, the
# project's selftests, on the Rust and on the C implementation in turn.
# Writes $1/results.tap, $1/logs/, $1/dmesg.txt.
# $2, optional: "kunit" to collect the KUnit results only (quick iteration),
# or "only=PROG[,PROG...]" to run only these selftest programs.
. "$(dirname "$0")/lib.sh"
guest_setup
kunit_results
if [ "${2:-all}" = kunit ]; then
	guest_finish
	exit 0
fi
ONLY=
case ${2:-all} in only=*) ONLY=",${2#only=}," ;; esac
want() { [ -z "$ONLY" ] || [[ $ONLY == *",$1,"* ]]; }

# The implementation switch (C or Rust) exists once the series adds it.
SWITCH=/sys/kernel/debug/userfaultfd/mfill_impl
STATS=/sys/kernel/debug/userfaultfd/stats
IMPLS=base
if [ -w "$SWITCH" ]; then
	IMPLS="rust c"
	# The batched CONTINUE, where the kernel has it.
	echo rust-batch > "$SWITCH" 2>/dev/null && IMPLS="rust rust-batch c"
	echo rust > "$SWITCH"
fi

stat() { awk -v k="$1" '$1 == k { print $2 }' "$STATS"; }

for impl in $IMPLS; do
	if [ "$impl" != base ]; then
		echo "$impl" > "$SWITCH"
		log "implementation: $(cat $SWITCH)"
		declare -A before
		for k in continue_rust continue_c install_rust install_c; do
			before[$k]=$(stat $k)
		done
	fi
	want uffd-unit-tests && run_tap "uffd-unit-tests[$impl]" 1800 "$ST/uffd-unit-tests"
	for mem in anon shmem shmem-private; do
		want uffd-stress &&
			run_one "uffd-stress $mem 32 16 [$impl]" 600 "$ST/uffd-stress" "$mem" 32 16
	done
	if [ -x "$ST/uffd-continue" ] && want uffd-continue; then
		run_tap "uffd-continue[$impl]" 900 "$ST/uffd-continue"
	fi
	# The reproducers of the bugs of the base that the series fixes.
	for prog in pt-reclaim-truncate guard-uffd-wp; do
		if [ -x "$ST/$prog" ] && want $prog; then
			run_tap "$prog[$impl]" 300 "$ST/$prog"
		fi
	done
	if [ "$impl" != base ] && [ -z "$ONLY" ]; then
		# The pages mapped in this phase must all come from $impl
		# (rust-batch counts as rust).
		fam=${impl%-batch}
		other=$([ "$fam" = rust ] && echo c || echo rust)
		d_cont=$(( $(stat continue_$fam) - before[continue_$fam] ))
		d_inst=$(( $(stat install_$fam) - before[install_$fam] ))
		o_cont=$(( $(stat continue_$other) - before[continue_$other] ))
		o_inst=$(( $(stat install_$other) - before[install_$other] ))
		msg="continue_$fam +$d_cont, install_$fam +$d_inst, $other +$((o_cont + o_inst))"
		log "stats [$impl]: $msg"
		name="mfill stats [$impl]: pages mapped by the selected implementation only"
		echo "$msg" > "$(logname "$name")"
		echo "# mfill stats [$impl]: $msg" >> "$RESULTS"
		if [ $d_cont -gt 0 ] && [ $d_inst -gt 0 ] && [ $((o_cont + o_inst)) -eq 0 ]; then
			result ok "$name"
		else
			result fail "$name"
		fi
	fi
done
[ -w "$SWITCH" ] && echo rust > "$SWITCH"
guest_finish
