# SPDX-License-Identifier: GPL-2.0
# Shared helpers for the guest scripts (sourced; runs inside the VM).
#
# The guest only runs things and records their raw output: KTAP from debugfs,
# the programs' output and exit statuses. Each run is a line of
# $OUT/manifest, "KIND<TAB>NAME<TAB>STATUS<TAB>LOG" (LOG relative to $OUT);
# the harness parses it all on the host (harness/uffdrs_lib/results.py):
#   ktap   kunit: SUITE  -   the suite's KTAP from debugfs
#   tap    PREFIX        rc  the output of a TAP-producing program
#   exit   NAME          rc  a program whose exit status is its result
#   stats  IMPL          -   the mfill counters before and after a phase
#   nokunit -            -   no KUnit results in debugfs

OUT=${1:?usage: $0 RUNDIR}
CACHE=$(dirname "$(dirname "$OUT")")
ST=$CACHE/selftests
MANIFEST=$OUT/manifest
mkdir -p "$OUT/logs"
: > "$MANIFEST"

log() { echo "[guest $(date +%T)] $*"; }

guest_setup() {
	mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
	mountpoint -q /dev/shm || { mkdir -p /dev/shm; mount -t tmpfs tmpfs /dev/shm; }
	mkdir -p /tmp && { mountpoint -q /tmp || mount -t tmpfs tmpfs /tmp; }
	echo 0 > /proc/sys/kernel/randomize_va_space 2>/dev/null || true
	# Huge pages for upstream's hugetlb variants of the uffd tests.
	echo 128 > /proc/sys/vm/nr_hugepages
	# Swap on the zram device of the test kernel (CONFIG_ZRAM), so that
	# shmem pages really get swapped out and in: 1 GiB of compressed RAM.
	if [ -e /sys/block/zram0/disksize ] && ! grep -q zram0 /proc/swaps; then
		echo 1G > /sys/block/zram0/disksize &&
			mkswap /dev/zram0 > /dev/null && swapon /dev/zram0 ||
			log "no swap: setting up /dev/zram0 failed"
	fi
	log "kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/{print $2/1024 " MiB"}' /proc/meminfo)," \
	    "hugepages $(cat /proc/sys/vm/nr_hugepages)," \
	    "swap $(awk '/SwapTotal/{print $2/1024 " MiB"}' /proc/meminfo)"
}

record() { # kind name status log
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4#"$OUT/"}" >> "$MANIFEST"
}

logname() { echo "$OUT/logs/$(echo "$1" | sed 's/[^A-Za-z0-9_.-]/_/g').log"; }

# run_tap PREFIX TIMEOUT CMD...: run a TAP-producing program; the harness
# names its cases "PREFIX: test name", and its exit status is a result too.
run_tap() {
	local prefix=$1 tmo=$2; shift 2
	local lf; lf=$(logname "$prefix")
	log "run: $* (timeout ${tmo}s)"
	timeout -k 10 "$tmo" "$@" > "$lf" 2>&1
	local rc=$?
	record tap "$prefix" $rc "$lf"
	log "done: $prefix rc=$rc"
}

# run_one NAME TIMEOUT CMD...: a single pass/fail result (exit status 0).
run_one() {
	local name=$1 tmo=$2; shift 2
	local lf; lf=$(logname "$name")
	log "run: $* (timeout ${tmo}s)"
	timeout -k 10 "$tmo" "$@" > "$lf" 2>&1
	local rc=$?
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

# --- h6: the sample memory type (samples/rust/rust_uffd_memory.rs) as a
# module (CONFIG_SAMPLE_RUST_UFFD_MEMORY=m). UFFD_MEMORY_KO is its .ko in the
# build directory of the running kernel (the one whose UTS_VERSION is
# `uname -v`), empty if the sample is built in or not built at all.
UFFD_MEMORY_KO=
for d in "$CACHE"/build*; do
	if [ -f "$d/samples/rust/rust_uffd_memory.ko" ] &&
	   grep -qF "\"$(uname -v)\"" "$d/include/generated/utsversion.h" 2>/dev/null; then
		UFFD_MEMORY_KO=$d/samples/rust/rust_uffd_memory.ko
	fi
done

# uffd_memory_load [NAME]: loads it unless it is loaded already; with NAME,
# insmod's exit status is a result of that name.
uffd_memory_load() {
	[ -n "$UFFD_MEMORY_KO" ] && [ ! -d /sys/module/rust_uffd_memory ] || return 0
	if [ -n "$1" ]; then
		run_one "$1" 60 insmod "$UFFD_MEMORY_KO"
	else
		insmod "$UFFD_MEMORY_KO"
	fi
}
# --- end h6 ---

guest_finish() {
	dmesg > "$OUT/dmesg.txt"
	touch "$OUT/done"
	log "finished"
}
