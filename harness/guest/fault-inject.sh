# SPDX-License-Identifier: GPL-2.0
# The "fault injection" phase of run-tests.sh (sourced; runs inside the VM):
# uffd-continue and uffd-continue-stress with allocation failures injected
# into their UFFDIO_CONTINUE calls, on each implementation.
#
# The kernel's fault injection (CONFIG_FAILSLAB, CONFIG_FAIL_PAGE_ALLOC,
# debugfs) fails slab and page allocations at random, FI_PROB percent of
# them, in tasks whose make-it-fail is set only (task-filter): the programs,
# run with UFFD_FAULT_INJECT=1, set their thread's make-it-fail around each
# UFFDIO_CONTINUE and nothing else (tools/testing/selftests/mm/uffd-continue.h).
# Allocations that may sleep fail too (ignore-gfp-wait=N: page tables are
# GFP_KERNEL), and order-0 and highmem-capable page allocations (min-order=0,
# ignore-gfp-highmem=N: PTE tables, the folios of a swap-in).
#
# The number of failures injected is read back from `times` (set to
# FI_TIMES, decremented by each), into a "faultinject" entry of the
# manifest, with the mfill counters before and after; the harness fails a
# phase that injected none. The kernel log gets a line where the phase
# starts and ends ("uffdrs: fault injection on/off [IMPL]"): only between
# them may it hold the injection's reports, and any WARN still fails the run.

FI_ATTRS="failslab fail_page_alloc"
FI_PROB=5
FI_TIMES=1000000000
FI_DEBUGFS=/sys/kernel/debug

fi_available() {
	local a
	for a in $FI_ATTRS; do
		[ -w "$FI_DEBUGFS/$a/probability" ] || return 1
	done
	[ -e /proc/self/make-it-fail ]
}

# fi_on IMPL: injection on for tasks with make-it-fail.
fi_on() {
	local a d
	for a in $FI_ATTRS; do
		d=$FI_DEBUGFS/$a
		echo 0 > "$d/probability"
		echo Y > "$d/task-filter"
		echo N > "$d/ignore-gfp-wait"
		echo 0 > "$d/space"
		echo 1 > "$d/interval"
		echo "$FI_TIMES" > "$d/times"
		# A report with a stack trace now and then: which allocations
		# failed, without flooding the kernel log.
		echo 2 > "$d/verbose"
		echo 20000 > "$d/verbose_ratelimit_interval_ms"
		echo 1 > "$d/verbose_ratelimit_burst"
	done
	echo N > "$FI_DEBUGFS/fail_page_alloc/ignore-gfp-highmem"
	echo 0 > "$FI_DEBUGFS/fail_page_alloc/min-order"
	echo "uffdrs: fault injection on [$1]" > /dev/kmsg
	for a in $FI_ATTRS; do
		echo "$FI_PROB" > "$FI_DEBUGFS/$a/probability"
	done
}

# fi_off IMPL LOG: injection off; "failslab N" and "fail_page_alloc N",
# the failures injected, appended to LOG.
fi_off() {
	local a left
	for a in $FI_ATTRS; do
		echo 0 > "$FI_DEBUGFS/$a/probability"
		left=$(cat "$FI_DEBUGFS/$a/times")
		echo "$a $((FI_TIMES - left))" >> "$2"
		echo 1 > "$FI_DEBUGFS/$a/times"
	done
	echo "uffdrs: fault injection off [$1]" > /dev/kmsg
}

# fi_summary PROG IMPL LOG: PROG's own count of its CONTINUE calls under
# injection (uffd_fi_report()), appended to LOG as "PROG: # fault injection: ...".
fi_summary() {
	grep -h '^# fault injection: [0-9]' "$(logname "$1 fault injection[$2]")" |
		sed "s/^/$1: /" >> "$3"
}

# fi_phase IMPL STRESS_SECS: the phase on IMPL (already selected); runs
# uffd-continue and uffd-continue-stress, or those of them that want() asks.
fi_phase() {
	local impl=$1 secs=$2 lf
	lf=$(logname "fault injection [$impl]")
	: > "$lf"
	[ -r "$STATS" ] && sed 's/^/before /' "$STATS" >> "$lf"
	if ! fi_available; then
		echo "no fault injection in this kernel (debugfs $FI_ATTRS, make-it-fail)" >> "$lf"
		record faultinject "$impl" - "$lf"
		return
	fi
	fi_on "$impl"
	if [ -x "$ST/uffd-continue" ] && fi_want uffd-continue; then
		run_tap "uffd-continue fault injection[$impl]" 900 \
			env UFFD_FAULT_INJECT=1 "$ST/uffd-continue"
		fi_summary uffd-continue "$impl" "$lf"
	fi
	if [ -x "$ST/uffd-continue-stress" ] && fi_want uffd-continue-stress; then
		run_tap "uffd-continue-stress fault injection[$impl]" \
			$((4 * secs + 300)) \
			env UFFD_FAULT_INJECT=1 "$ST/uffd-continue-stress" -t "$secs"
		fi_summary uffd-continue-stress "$impl" "$lf"
	fi
	fi_off "$impl" "$lf"
	[ -r "$STATS" ] && sed 's/^/after /' "$STATS" >> "$lf"
	record faultinject "$impl" - "$lf"
}
