#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the test VM: KUnit results, upstream uffd selftests, the
# project's selftests. Writes $1/results.tap, $1/logs/, $1/dmesg.txt.
# $2, optional: "kunit" to collect the KUnit results only (quick iteration).
. "$(dirname "$0")/lib.sh"
guest_setup
kunit_results
if [ "${2:-all}" = kunit ]; then
	guest_finish
	exit 0
fi

# The implementation switch (C or Rust) exists once the series adds it.
SWITCH=/sys/kernel/debug/userfaultfd/mfill_impl
if [ -w "$SWITCH" ]; then IMPLS="rust c"; else IMPLS="base"; fi

for impl in $IMPLS; do
	[ "$impl" != base ] && echo "$impl" > "$SWITCH" && log "implementation: $(cat $SWITCH)"
	run_tap "uffd-unit-tests[$impl]" 900 "$ST/uffd-unit-tests"
	for mem in anon shmem shmem-private; do
		run_one "uffd-stress $mem 32 16 [$impl]" 600 "$ST/uffd-stress" "$mem" 32 16
	done
	if [ -x "$ST/uffd-continue" ]; then
		run_tap "uffd-continue[$impl]" 900 "$ST/uffd-continue"
	fi
done
[ -w "$SWITCH" ] && echo rust > "$SWITCH"
guest_finish
