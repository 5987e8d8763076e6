# SPDX-License-Identifier: GPL-2.0
# Turns the result lines of a TAP/KTAP stream into harness results named
# "<prefix>: <test name>". Handles both skip forms:
#   ok 3 name # SKIP reason          (KTAP, kselftest_harness)
#   ok 3 # SKIP name (reason)        (kselftest ksft_test_result_skip)
# With indent=1 only indented lines (KUnit test cases) are taken.
{
	if (indent && $0 !~ /^[ \t]+(not ok|ok) [0-9]+ /)
		next
	if (!indent && $0 !~ /^(not ok|ok) [0-9]+ /)
		next
	line = $0
	sub(/^[ \t]*/, "", line)
	st = (line ~ /^not ok/) ? "not ok" : "ok"
	sub(/^(not ok|ok) [0-9]+ */, "", line)
	isskip = 0
	reason = ""
	if (line ~ /^# [Ss][Kk][Ii][Pp]/) {
		isskip = 1
		sub(/^# [Ss][Kk][Ii][Pp] */, "", line)
		if (match(line, / \(.*\)$/)) {
			reason = substr(line, RSTART + 2, RLENGTH - 3)
			line = substr(line, 1, RSTART - 1)
		}
	} else if (match(line, / # [Ss][Kk][Ii][Pp]/)) {
		isskip = 1
		reason = substr(line, RSTART + RLENGTH)
		line = substr(line, 1, RSTART - 1)
		sub(/^ */, "", reason)
	}
	if (isskip) {
		if (reason == "")
			reason = "no reason given"
		print "ok " prefix ": " line " # SKIP " reason
	} else {
		print st " " prefix ": " line
	}
}
