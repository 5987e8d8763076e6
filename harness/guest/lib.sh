# SPDX-License-Identifier: GPL-2.0
# Shared helpers for the guest scripts (sourced; runs inside the VM).

OUT=${1:?usage: $0 RUNDIR}
CACHE=$(dirname "$(dirname "$OUT")")
ST=$CACHE/selftests
RESULTS=$OUT/results.tap
GUEST=$(dirname "${BASH_SOURCE[0]}")
mkdir -p "$OUT/logs"
: > "$RESULTS"

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

result() { # status name [skip-reason]
	case $1 in
	ok) echo "ok $2" >> "$RESULTS" ;;
	fail) echo "not ok $2" >> "$RESULTS" ;;
	skip) echo "ok $2 # SKIP $3" >> "$RESULTS" ;;
	esac
}

logname() { echo "$OUT/logs/$(echo "$1" | sed 's/[^A-Za-z0-9_.-]/_/g').log"; }

# run_tap PREFIX TIMEOUT CMD...: run a TAP-producing program; every TAP line
# becomes a result named "PREFIX: test name"; the exit status is a result too.
run_tap() {
	local prefix=$1 tmo=$2; shift 2
	local lf; lf=$(logname "$prefix")
	log "run: $* (timeout ${tmo}s)"
	timeout -k 10 "$tmo" "$@" > "$lf" 2>&1
	local rc=$?
	awk -v prefix="$prefix" -v indent=0 -f "$GUEST/tap2results.awk" "$lf" >> "$RESULTS"
	if [ $rc -eq 0 ] || [ $rc -eq 4 ]; then  # 4: KSFT_SKIP
		result ok "$prefix: exit status"
	else
		result fail "$prefix: exit status $rc$([ $rc -eq 124 ] && echo ' (timeout)')"
		cp "$lf" "$(logname "$prefix: exit status $rc$([ $rc -eq 124 ] && echo ' (timeout)')")"
	fi
	log "done: $prefix rc=$rc"
}

# run_one NAME TIMEOUT CMD...: a single pass/fail result.
run_one() {
	local name=$1 tmo=$2; shift 2
	local lf; lf=$(logname "$name")
	log "run: $* (timeout ${tmo}s)"
	timeout -k 10 "$tmo" "$@" > "$lf" 2>&1
	local rc=$?
	if [ $rc -eq 0 ]; then result ok "$name"; else result fail "$name"; fi
	log "done: $name rc=$rc"
}

# kunit_results: every KUnit case of every suite that ran at boot.
kunit_results() {
	local d suite
	if [ ! -d /sys/kernel/debug/kunit ]; then
		result fail "kunit: debugfs results present"
		return
	fi
	for d in /sys/kernel/debug/kunit/*/; do
		suite=$(basename "$d")
		cp "$d/results" "$(logname "kunit: $suite")"
		awk -v prefix="kunit: $suite" -v indent=1 -f "$GUEST/tap2results.awk" "$d/results" >> "$RESULTS"
		grep -q "^ok [0-9]* $suite" "$d/results" && result ok "kunit: $suite (suite)" \
			|| result fail "kunit: $suite (suite)"
	done
}

guest_finish() {
	dmesg > "$OUT/dmesg.txt"
	touch "$OUT/done"
	log "finished"
}
