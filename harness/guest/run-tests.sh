#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the test VM: KUnit results, upstream uffd selftests, the
# project's selftests, on the Rust and on the C implementation in turn.
# Writes $1/manifest, $1/logs/, $1/dmesg.txt (see lib.sh); the harness
# turns them into results on the host.
# Then, optional: "kunit" to collect the KUnit results only (quick
# iteration), "only=PROG[,PROG...]" to run only these selftest programs,
# "stress=SECONDS" for the time uffd-continue-stress spends on each kind of
# file (default 30).
. "$(dirname "$0")/lib.sh"
ONLY= KUNIT_ONLY= STRESS_SECS=30
for arg in "${@:2}"; do
	case $arg in
	kunit) KUNIT_ONLY=1 ;;
	only=*) ONLY=",${arg#only=}," ;;
	stress=*) STRESS_SECS=${arg#stress=} ;;
	esac
done
guest_setup
kunit_results
if [ -n "$KUNIT_ONLY" ]; then
	guest_finish
	exit 0
fi
# --- h6: the sample memory type, when it is a module, is loaded before the
# selftests (see lib.sh).
uffd_memory_load "insmod rust_uffd_memory"
# --- end h6 ---
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

# The stress's own checks find the violations planted for them.
if [ -x "$ST/uffd-continue-stress" ] && want uffd-continue-stress; then
	run_tap "uffd-continue-stress -X" 300 "$ST/uffd-continue-stress" -X
fi

for impl in $IMPLS; do
	if [ "$impl" != base ]; then
		echo "$impl" > "$SWITCH"
		log "implementation: $(cat $SWITCH)"
		stats=$(logname "mfill stats [$impl]")
		sed 's/^/before /' "$STATS" > "$stats"
	fi
	want uffd-unit-tests && run_tap "uffd-unit-tests[$impl]" 1800 "$ST/uffd-unit-tests"
	for mem in anon shmem shmem-private; do
		want uffd-stress &&
			run_one "uffd-stress $mem 32 16 [$impl]" 600 "$ST/uffd-stress" "$mem" 32 16
	done
	if [ -x "$ST/uffd-continue" ] && want uffd-continue; then
		run_tap "uffd-continue[$impl]" 900 "$ST/uffd-continue"
		# --- h6: no mapping of the sample's module is left, so it
		# unloads (uffd-continue's rust_memory_module_pinned checked
		# that it does not while one exists); then it is loaded again.
		if [ -n "$UFFD_MEMORY_KO" ]; then
			run_one "rmmod rust_uffd_memory [$impl]" 60 rmmod rust_uffd_memory
			uffd_memory_load "insmod rust_uffd_memory [$impl]"
		fi
		# --- end h6 ---
	fi
	# Threads racing CONTINUE against truncation, swap, migration, fork,
	# mremap...: two kinds of file, STRESS_SECS each, plus the checks.
	if [ -x "$ST/uffd-continue-stress" ] && want uffd-continue-stress; then
		run_tap "uffd-continue-stress[$impl]" $((4 * STRESS_SECS + 300)) \
			"$ST/uffd-continue-stress" -t "$STRESS_SECS"
	fi
	# The reproducers of the bugs of the base that the series fixes.
	for prog in pt-reclaim-truncate guard-uffd-wp; do
		if [ -x "$ST/$prog" ] && want $prog; then
			run_tap "$prog[$impl]" 300 "$ST/$prog"
		fi
	done
	if [ "$impl" != base ] && [ -z "$ONLY" ]; then
		# The harness checks that the pages mapped in this phase all
		# come from $impl (rust-batch counts as rust).
		sed 's/^/after /' "$STATS" >> "$stats"
		record stats "$impl" - "$stats"
	fi
done
[ -w "$SWITCH" ] && echo rust > "$SWITCH"
guest_finish
