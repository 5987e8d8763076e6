# SPDX-License-Identifier: GPL-2.0
"""boot: the built kernel in QEMU with virtme-ng, running a guest script.

The guest scripts (harness/guest/) write raw output only, in the run
directory of the cache: KTAP from debugfs, the selftests' output, exit
statuses, listed in its `manifest`. results.py reads them on the host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import List, Optional, Sequence

from .common import Context, tool_env


def kvm_usable() -> bool:
    """True if /dev/kvm can boot a stock kernel.

    The paravirtual KVM of PVM hosts (module kvm_pvm) exposes /dev/kvm, but a
    stock kernel hangs in its decompressor there: use TCG on such hosts.
    UFFDRS_KVM=0/1 overrides the detection.
    """
    if os.environ.get("UFFDRS_KVM") in ("0", "1"):
        return os.environ["UFFDRS_KVM"] == "1"
    if os.path.exists("/sys/module/kvm_pvm"):
        return False
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def vng_cmd(ctx: Context, command: Optional[str], kvm: bool = False,
            rwdir: Optional[str] = None, memory: str = "3G", cpus: int = 2,
            append: Sequence[str] = (), qemu_opts: Optional[str] = None,
            verbose: bool = True, numa_nodes: int = 1) -> List[str]:
    cmd = ["vng", "--run", os.path.join(ctx.build, "arch/x86/boot/bzImage"),
           "--user", "root", "--cpus", str(cpus), "--memory", memory]
    cmd += numa_args(memory, cpus, numa_nodes)
    if not kvm:
        cmd.append("--disable-kvm")
    if rwdir:
        cmd += ["--rwdir", rwdir]
    for a in append:
        cmd += ["--append", a]
    if ctx.kasan:
        # Four-level paging under KASAN: with five (TCG's CPU has LA57), an
        # interrupt in the window where identify_boot_cpu() has cleared the
        # boot CPU's capabilities sees pgtable_l5_enabled() false, hence a
        # 4-level KASAN_SHADOW_START, and KASAN reports a wild-memory-access
        # on any direct-map address it touches (seen once in three boots, in
        # handle_edge_irq()). A bug of the base's x86 boot, not of the series.
        cmd += ["--append", "no5lvl"]
    if qemu_opts:
        cmd += ["--qemu-opts", qemu_opts]
    if verbose:
        cmd.append("--verbose")
    if command is not None:
        cmd += ["--exec", command]
    return cmd


def numa_args(memory: str, cpus: int, nodes: int) -> List[str]:
    """vng options that split the guest's memory into `nodes` NUMA nodes of
    equal size (none for one node).

    Every CPU is on node 0, the others have memory only: CPUs of one
    package on different nodes would share a cache across nodes, which
    the x86 topology code warns about at boot. `memory` is a size in MiB
    or GiB ("3072M", "3G").
    """
    if nodes <= 1:
        return []
    units = {"M": 1, "G": 1024}
    if memory[-1:].upper() not in units or not memory[:-1].isdigit():
        raise ValueError(f"memory size {memory!r}: want <N>M or <N>G")
    mib = int(memory[:-1]) * units[memory[-1].upper()]
    if mib % nodes:
        raise ValueError(f"{mib} MiB do not split into {nodes} NUMA nodes")
    span = "0" if cpus == 1 else f"0-{cpus - 1}"
    args = ["--numa", f"{mib // nodes}M,cpus={span}"]
    for _ in range(1, nodes):
        args += ["--numa", f"{mib // nodes}M"]
    return args


# The kernel log buffer of the guests: a full test run writes a few MiB.
LOG_BUF_LEN = "64M"


def guest_script(ctx: Context, name: str) -> str:
    return os.path.join(ctx.harness, "guest", name)


def boot(ctx: Context, script: str, name: str, timeout: int,
         append: Sequence[str] = (), qemu_opts: Optional[str] = None,
         memory: str = "3G", args: str = "", numa_nodes: int = 1) -> str:
    """Boots the built kernel and runs `guest/SCRIPT RUNDIR ARGS` as root.

    Returns the run directory (runs/NAME in the cache), which has the
    console log and the exit status of vng (vng.rc, "timeout" if the
    guest was stopped after `timeout` seconds).
    """
    rundir = os.path.join(ctx.runs, name)
    # A kernel log buffer that holds a whole run: the harness judges it at
    # the end (results.scan_kernel_log() fails a log that wrapped).
    append = (f"log_buf_len={LOG_BUF_LEN}", *append)
    shutil.rmtree(rundir, ignore_errors=True)
    os.makedirs(rundir)
    console = os.path.join(rundir, "console.log")
    kvm = kvm_usable()
    command = f"{guest_script(ctx, script)} {rundir} {args}".rstrip()
    cmd = vng_cmd(ctx, command, kvm=kvm, rwdir=rundir, append=append,
                  qemu_opts=qemu_opts, memory=memory, numa_nodes=numa_nodes)
    with ctx.phase(f"boot and run '{name}' ({'KVM' if kvm else 'TCG'}, "
                   f"console in {console})"):
        # Append mode: vng reopens its stdout, which must not rewind the log.
        with open(console, "a") as f:
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            p = subprocess.Popen(cmd, env=tool_env(), stdout=f,
                                 stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, cwd=ctx.repo,
                                 start_new_session=True)
            rc: int | str
            try:
                rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                rc = "timeout"
                # vng and its QEMU are in their own process group.
                os.killpg(p.pid, 9)
                p.wait()
        with open(os.path.join(rundir, "vng.rc"), "w") as f:
            f.write(f"{rc}\n")
    return rundir
