#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the demo VM: the minor-fault demo, output in $1/demo.out.
. "$(dirname "$0")/lib.sh"
guest_setup > /dev/null
load_modules > /dev/null 2>&1
{
	echo "== $(uname -sr) =="
	"$ST/uffd-minor-demo"
	echo "== demo exit status: $? =="
} > "$OUT/demo.out" 2>&1
guest_finish
