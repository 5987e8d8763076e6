#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the test VM. On a test kernel (CONFIG_USERFAULTFD_RUST_TEST):
# the KUnit results, then the upstream uffd selftests and the project's
# selftests on the Rust, the batched Rust and the C implementation in turn.
# On the production kernel ("kernel=production": CONFIG_USERFAULTFD_RUST=y,
# no switch, no KUnit): the selftests that map pages, once.
# Writes $1/manifest, $1/logs/, $1/dmesg.txt (see lib.sh); the harness turns
# them into results on the host and checks them against
# harness/expected.toml: whatever is missing there fails the run.
# On the test kernel booted for fault injection ("kernel=fault-injection"):
# uffd-continue and uffd-continue-stress on each implementation, with
# allocation failures injected into their CONTINUE calls (fault-inject.sh).
# Then, optional: "kunit" to collect the KUnit results only (quick
# iteration), "only=PROG[,PROG...]" to run only these selftest programs,
# "stress=SECONDS" for the time uffd-continue-stress spends on each kind of
# file (default 30), "kernel=production" or "kernel=fault-injection"
# (default "kernel=test").
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fault-inject.sh"
ONLY= KUNIT_ONLY= STRESS_SECS=30 KERNEL=test
for arg in "${@:2}"; do
	case $arg in
	kunit) KUNIT_ONLY=1 ;;
	only=*) ONLY=",${arg#only=}," ;;
	stress=*) STRESS_SECS=${arg#stress=} ;;
	kernel=*) KERNEL=${arg#kernel=} ;;
	esac
done
want() { [ -z "$ONLY" ] || [[ $ONLY == *",$1,"* ]]; }

guest_setup
load_modules

# What the run needs, whether or not a program would notice its absence:
# each is a result, and the host fails the run on one that is missing.
require swap have_swap
require "PMD-sized folios" have_pmd_folios
require "sample module" have_sample_module
require "sample device" have_sample_device
if [ "$KERNEL" = production ]; then
	require "production kernel" is_production
	IMPLS=production
elif [ "$KERNEL" = fault-injection ]; then
	require switch have_switch rust rust-batch c
	require "fault injection" have_fault_injection
	IMPLS="rust rust-batch c"
else
	require switch have_switch rust rust-batch c
	kunit_results
	IMPLS="rust rust-batch c"
fi
if [ -n "$KUNIT_ONLY" ]; then
	guest_finish
	exit 0
fi

# select IMPL: makes IMPL the implementation the programs run on.
select_impl() {
	IMPL=
	[ "$1" = production ] && return 0
	echo "$1" > "$SWITCH" && [ "$(cat "$SWITCH")" = "$1" ] || return 1
	IMPL=$1
}

# The stress's own checks find the violations planted for them.
if [ "$KERNEL" = test ] && want uffd-continue-stress; then
	if select_impl rust; then
		run_tap "uffd-continue-stress -X" 300 "$ST/uffd-continue-stress" -X
	fi
fi

for impl in $IMPLS; do
	select_impl "$impl"
	rc=$?
	record phase "$impl" $rc -
	kmsg "phase $impl rc=$rc"
	log "implementation $impl: rc=$rc${IMPL:+, mfill_impl $(cat "$SWITCH")}"
	# Not selected: its programs are missing from the results, which fails.
	[ $rc = 0 ] || continue
	if [ "$KERNEL" = fault-injection ]; then
		want fault-injection && fi_programs "$impl" "$STRESS_SECS"
		continue
	fi
	want uffd-unit-tests && run_tap "uffd-unit-tests[$impl]" 1800 "$ST/uffd-unit-tests"
	for mem in anon shmem shmem-private; do
		want uffd-stress &&
			run_one "uffd-stress $mem 32 16 [$impl]" 600 "$ST/uffd-stress" "$mem" 32 16
	done
	if want uffd-continue; then
		run_tap "uffd-continue[$impl]" 900 "$ST/uffd-continue"
		# No mapping of the sample's module is left, so it unloads
		# (uffd-continue's rust_memory_module_pinned checked that it
		# does not while one exists); loaded again, it works for the
		# next implementation's rust_shared cases.
		run_one "rmmod rust_uffd_memory [$impl]" 60 rmmod "$SAMPLE_MODULE"
		run_one "insmod rust_uffd_memory [$impl]" 60 insmod "$SAMPLE_KO"
	fi
	# Whole PMD-sized folios: one PMD where the implementation maps PMDs.
	want uffd-continue-pmd && run_tap "uffd-continue-pmd[$impl]" 600 "$ST/uffd-continue-pmd"
	# Threads racing CONTINUE against truncation, swap, migration, fork,
	# mremap...: two kinds of file, STRESS_SECS each, plus the checks.
	want uffd-continue-stress &&
		run_tap "uffd-continue-stress[$impl]" $((4 * STRESS_SECS + 300)) \
			"$ST/uffd-continue-stress" -t "$STRESS_SECS"
	[ "$KERNEL" = production ] && continue
	# The reproducers of the bugs of the base that the series fixes.
	for prog in pt-reclaim-truncate guard-uffd-wp; do
		want $prog && run_tap "$prog[$impl]" 300 "$ST/$prog"
	done
done
guest_finish
