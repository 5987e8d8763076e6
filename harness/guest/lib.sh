# SPDX-License-Identifier: GPL-2.0
# Shared helpers for the guest scripts (sourced; runs inside the VM).
#
# The guest only runs things and records their raw output: KTAP from debugfs,
# the programs' output and exit statuses, the mfill counters, what the run
# needs from the machine. Each record is a line of $OUT/manifest,
# "KIND<TAB>NAME<TAB>STATUS<TAB>LOG" (LOG relative to $OUT, or "-"); the
# harness parses it all on the host (harness/uffdrs_lib/results.py) and
# holds it against harness/expected.toml (harness/uffdrs_lib/coverage.py):
#   ktap    kunit: SUITE  -     the suite's KTAP from debugfs
#   nokunit -             -     no KUnit results in debugfs
#   require WHAT          rc    something the run needs (swap, the switch,
#                               the sample device, ...); LOG says what was found
#   phase   IMPL          rc    an implementation phase starts; rc != 0: the
#                               implementation could not be selected
#   tap     PREFIX        rc    the output of a TAP-producing program
#   exit    NAME          rc    a program whose exit status is its result
#   stats   NAME          IMPL  the mfill counters before and after the run
#                               NAME, with IMPL selected
#   faultinject NAME      -     the allocation failures injected into the run
#                               NAME (fault-inject.sh)
# Every program run is also marked in the kernel log ("uffdrs: run NAME",
# "uffdrs: done NAME rc=N"), so that the host can tell which run a kernel
# message belongs to.

OUT=${1:?usage: $0 RUNDIR}
CACHE=$(dirname "$(dirname "$OUT")")
ST=$CACHE/selftests
MANIFEST=$OUT/manifest
# The test kernels' run-time switch between the implementations and its
# counters (CONFIG_USERFAULTFD_RUST_TEST).
SWITCH=/sys/kernel/debug/userfaultfd/mfill_impl
STATS=/sys/kernel/debug/userfaultfd/stats
# The implementation the programs run on now, for the counters ("" if none).
IMPL=
mkdir -p "$OUT/logs"
: > "$MANIFEST"

log() { echo "[guest $(date +%T)] $*"; }

# A line in the kernel log, between its messages.
kmsg() { echo "uffdrs: $*" > /dev/kmsg; }

guest_setup() {
	mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
	mountpoint -q /dev/shm || { mkdir -p /dev/shm; mount -t tmpfs tmpfs /dev/shm; }
	mkdir -p /tmp && { mountpoint -q /tmp || mount -t tmpfs tmpfs /tmp; }
	echo 0 > /proc/sys/kernel/randomize_va_space 2>/dev/null || true
	# Huge pages for upstream's hugetlb variants of the uffd tests.
	echo 128 > /proc/sys/vm/nr_hugepages
	# Swap on the zram device of the test kernel (CONFIG_ZRAM), so that
	# shmem pages really get swapped out and in: 1 GiB of compressed RAM.
	# require_swap says whether it worked.
	if [ -e /sys/block/zram0/disksize ] && ! grep -q zram0 /proc/swaps; then
		echo 1G > /sys/block/zram0/disksize &&
			mkswap /dev/zram0 > /dev/null && swapon /dev/zram0 ||
			log "no swap: setting up /dev/zram0 failed"
	fi
	log "kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/{print $2/1024 " MiB"}' /proc/meminfo)," \
	    "hugepages $(cat /proc/sys/vm/nr_hugepages)," \
	    "swap $(awk '/SwapTotal/{print $2/1024 " MiB"}' /proc/meminfo)"
}

# Modules of the series, loaded before the requirements are checked: the
# sample memory type (samples/rust/rust_uffd_memory.rs,
# CONFIG_SAMPLE_RUST_UFFD_MEMORY=m). SAMPLE_KO is its .ko in the build
# directory of the running kernel (the one whose UTS_VERSION is `uname -v`),
# empty if there is none (built in, or not built).
SAMPLE_MODULE=rust_uffd_memory
SAMPLE_KO=
for d in "$CACHE"/build*; do
	if [ -f "$d/samples/rust/$SAMPLE_MODULE.ko" ] &&
	   grep -qF "\"$(uname -v)\"" "$d/include/generated/utsversion.h" 2>/dev/null; then
		SAMPLE_KO=$d/samples/rust/$SAMPLE_MODULE.ko
	fi
done

# sample_load: loads the sample's module unless it is loaded already.
sample_load() {
	[ -n "$SAMPLE_KO" ] || return 1
	[ -d /sys/module/$SAMPLE_MODULE ] && return 0
	insmod "$SAMPLE_KO"
}

# A failure shows in the requirements (have_sample_module,
# have_sample_device), which are results.
load_modules() {
	sample_load || log "the sample's module could not be loaded (${SAMPLE_KO:-no .ko for this kernel})"
}

record() { # kind name status log
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4#"$OUT/"}" >> "$MANIFEST"
}

logname() { echo "$OUT/logs/$(echo "$1" | sed 's/[^A-Za-z0-9_.-]/_/g').log"; }

# require WHAT CMD...: CMD checks something the run needs and prints what
# it found; its exit status is the result (the host fails the run on
# anything but 0, and on a requirement that is not recorded at all).
require() {
	local what=$1; shift
	local lf; lf=$(logname "require $what")
	"$@" > "$lf" 2>&1
	local rc=$?
	record require "$what" $rc "$lf"
	log "require $what: rc=$rc, $(head -c 200 "$lf" | tr '\n' ' ')"
	return $rc
}

# stats_snapshot WHEN FILE: the counters, each line prefixed with WHEN.
stats_snapshot() {
	[ -n "$IMPL" ] && [ -r "$STATS" ] && sed "s/^/$1 /" "$STATS" >> "$2"
}

# run_start NAME / run_finish NAME RC: around every program run, the kernel-log
# marks and the counters of the implementation selected ($IMPL).
run_start() {
	local sf; sf=$(logname "mfill stats $1")
	: > "$sf"
	stats_snapshot before "$sf"
	kmsg "run $1"
}

run_finish() {
	local sf; sf=$(logname "mfill stats $1")
	kmsg "done $1 rc=$2"
	stats_snapshot after "$sf"
	[ -s "$sf" ] && record stats "$1" "$IMPL" "$sf"
}

# run_tap PREFIX TIMEOUT CMD...: run a TAP-producing program; the harness
# names its cases "PREFIX: test name", and its exit status is a result too.
# A program that is missing is a failure (exit status 127, no TAP), not a
# silent omission.
run_tap() {
	local prefix=$1 tmo=$2; shift 2
	local lf; lf=$(logname "$prefix")
	log "run: $* (timeout ${tmo}s)"
	run_start "$prefix"
	timeout -k 10 "$tmo" "$@" > "$lf" 2>&1
	local rc=$?
	run_finish "$prefix" $rc
	record tap "$prefix" $rc "$lf"
	log "done: $prefix rc=$rc"
}

# run_one NAME TIMEOUT CMD...: a single pass/fail result (exit status 0).
run_one() {
	local name=$1 tmo=$2; shift 2
	local lf; lf=$(logname "$name")
	log "run: $* (timeout ${tmo}s)"
	run_start "$name"
	timeout -k 10 "$tmo" "$@" > "$lf" 2>&1
	local rc=$?
	run_finish "$name" $rc
	record exit "$name" $rc "$lf"
	log "done: $name rc=$rc"
}

# kunit_results: the KTAP of every KUnit suite that ran at boot.
kunit_results() {
	local d suite lf
	if [ ! -d /sys/kernel/debug/kunit ]; then
		record nokunit - - -
		return
	fi
	for d in /sys/kernel/debug/kunit/*/; do
		suite=$(basename "$d")
		lf=$(logname "kunit: $suite")
		cp "$d/results" "$lf"
		record ktap "kunit: $suite" - "$lf"
	done
}

# ---------------------------------------------------------------------------
# What a run needs (require ...): each prints what it found.

# Swap on the zram device, so that shmem pages are really swapped out.
have_swap() {
	grep '^/dev/zram0 ' /proc/swaps || { cat /proc/swaps; return 1; }
	[ "$(awk '/SwapTotal/{print $2}' /proc/meminfo)" -gt 0 ]
}

# Shmem hands out PMD-sized folios: a file on a huge=always tmpfs is made
# of them.
have_pmd_folios() {
	local d=/tmp/uffdrs-thp pmd kb before after rc=1
	pmd=$(cat /sys/kernel/mm/transparent_hugepage/hpage_pmd_size) || return 1
	kb=$((pmd / 1024))
	mkdir -p $d && mount -t tmpfs -o huge=always,size=$((4 * kb))k tmpfs $d || return 1
	before=$(awk '/ShmemHugePages/{print $2}' /proc/meminfo)
	head -c $((2 * pmd)) /dev/zero > $d/f
	after=$(awk '/ShmemHugePages/{print $2}' /proc/meminfo)
	echo "PMD size ${kb} kB; ShmemHugePages ${before} -> ${after} kB for a file of $((2 * kb)) kB"
	[ $((after - before)) -ge $((2 * kb)) ] && rc=0
	rm -f $d/f
	umount $d
	return $rc
}

# The Rust memory type of samples/rust/rust_uffd_memory.rs.
have_sample_device() {
	ls -l /dev/rust-uffd-memory && [ -c /dev/rust-uffd-memory ]
}

# The sample is a module, loaded (load_modules), not built in: the
# rust_shared cases of uffd-continue run against a memory type in a module,
# and rust_memory_module_pinned checks that its mappings pin it.
have_sample_module() {
	local m=/sys/module/$SAMPLE_MODULE
	echo "module file: ${SAMPLE_KO:-none for this kernel}"
	echo "initstate: $(cat $m/initstate 2>&1), refcnt: $(cat $m/refcnt 2>&1)"
	[ "$(cat $m/initstate 2>/dev/null)" = live ]
}

# The run-time switch selects each of the implementations.
have_switch() {
	local impl rc=0
	for impl in "$@"; do
		if echo "$impl" > "$SWITCH" && [ "$(cat "$SWITCH")" = "$impl" ]; then
			echo "$impl: selected"
		else
			echo "$impl: cannot be selected (mfill_impl: $(cat "$SWITCH" 2>&1))"
			rc=1
		fi
	done
	cat "$STATS" || rc=1
	return $rc
}

# A production kernel: the Rust implementation is built in, the switch, its
# counters and the KUnit suites are not.
is_production() {
	local rc=0
	echo "kernel $(uname -r)"
	if grep -qw rust_mfill_atomic_pte_continue /proc/kallsyms; then
		echo "rust_mfill_atomic_pte_continue: built in"
	else
		echo "rust_mfill_atomic_pte_continue: not in /proc/kallsyms"
		rc=1
	fi
	for f in "$SWITCH" "$STATS" /sys/kernel/debug/kunit; do
		if [ -e "$f" ]; then
			echo "$f: present (a test kernel's)"
			rc=1
		fi
	done
	if grep -qw mfill_impl_write /proc/kallsyms; then
		echo "mfill_impl_write: built in (the switch of a test kernel)"
		rc=1
	fi
	return $rc
}

guest_finish() {
	dmesg > "$OUT/dmesg.txt"
	touch "$OUT/done"
	log "finished"
}
