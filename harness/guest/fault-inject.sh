# SPDX-License-Identifier: GPL-2.0
# The fault-injection phase of run-tests.sh ("kernel=fault-injection";
# sourced, runs inside the VM): uffd-continue and uffd-continue-stress with
# allocation failures injected into their UFFDIO_CONTINUE calls, on each
# implementation of the test kernel.
#
# The kernel's fault injection (CONFIG_FAILSLAB, CONFIG_FAIL_PAGE_ALLOC and
# their debugfs) fails FI_PROB percent of the slab and page allocations of
# the tasks whose make-it-fail is set, and only theirs (task-filter=Y). The
# programs, run with UFFD_FAULT_INJECT=1, set their thread's make-it-fail
# around each UFFDIO_CONTINUE and nothing else, and retry without it a
# CONTINUE that an allocation failure failed (tools/testing/selftests/mm/
# uffd-continue.h). Allocations that may sleep fail too (ignore-gfp-wait=N:
# page tables are GFP_KERNEL), and so do order-0 and highmem-capable page
# allocations (min-order=0, ignore-gfp-highmem=N: PTE tables, the folio of
# a swap-in).
#
# How many failures each program run had injected is read back from
# `times` (set to FI_TIMES, one less per failure) into a "faultinject"
# entry of the manifest, with the program's own count of the CONTINUE calls
# they failed; the harness fails a run that injected none. The injection's
# reports (a stack trace now and then) may only appear in the kernel log
# between the marks of these runs (lib.sh, run_start/run_finish).

FI_ATTRS="failslab fail_page_alloc"
FI_PROB=5
FI_TIMES=1000000000
FI_DEBUGFS=/sys/kernel/debug

# What the phase needs (require): both attributes in debugfs, make-it-fail.
have_fault_injection() {
	local a rc=0
	for a in $FI_ATTRS; do
		if [ -w "$FI_DEBUGFS/$a/probability" ]; then
			echo "$a: $(cd "$FI_DEBUGFS/$a" && grep -H . probability times task-filter | tr '\n' ' ')"
		else
			echo "$a: no $FI_DEBUGFS/$a (CONFIG_FAULT_INJECTION_DEBUG_FS?)"
			rc=1
		fi
	done
	if [ -e /proc/thread-self/make-it-fail ]; then
		echo "/proc/thread-self/make-it-fail: present"
	else
		echo "/proc/thread-self/make-it-fail: absent"
		rc=1
	fi
	return $rc
}

# fi_on: injection on, for the tasks with make-it-fail.
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
		# A report with its stack trace now and then: which allocations
		# failed, without flooding the kernel log.
		echo 2 > "$d/verbose"
		echo 20000 > "$d/verbose_ratelimit_interval_ms"
		echo 1 > "$d/verbose_ratelimit_burst"
	done
	echo N > "$FI_DEBUGFS/fail_page_alloc/ignore-gfp-highmem"
	echo 0 > "$FI_DEBUGFS/fail_page_alloc/min-order"
	for a in $FI_ATTRS; do
		echo "$FI_PROB" > "$FI_DEBUGFS/$a/probability"
	done
}

# fi_off LOG: injection off; "failslab N" and "fail_page_alloc N", the
# failures injected since fi_on, appended to LOG.
fi_off() {
	local a left
	for a in $FI_ATTRS; do
		echo 0 > "$FI_DEBUGFS/$a/probability"
		left=$(cat "$FI_DEBUGFS/$a/times")
		echo "$a $((FI_TIMES - left))" >> "$1"
		echo 1 > "$FI_DEBUGFS/$a/times"
	done
}

# fi_run NAME TIMEOUT CMD...: run_tap of a program with UFFD_FAULT_INJECT=1
# and injection on; its "faultinject" entry has the failures injected and
# the program's own count ("# fault injection: N CONTINUE under injection,
# ...", uffd_fi_report()).
fi_run() {
	local name=$1 tmo=$2; shift 2
	local lf; lf=$(logname "fault injection $name")
	: > "$lf"
	fi_on
	run_tap "$name" "$tmo" env UFFD_FAULT_INJECT=1 "$@"
	fi_off "$lf"
	grep -h '^# fault injection: [0-9]' "$(logname "$name")" >> "$lf"
	record faultinject "$name" - "$lf"
}

# fi_programs IMPL STRESS_SECS: the phase's programs on IMPL (selected).
fi_programs() {
	local impl=$1 secs=$2
	fi_run "uffd-continue under fault injection[$impl]" 900 "$ST/uffd-continue"
	fi_run "uffd-continue-stress under fault injection[$impl]" \
		$((4 * secs + 300)) "$ST/uffd-continue-stress" -t "$secs"
}
