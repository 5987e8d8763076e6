# SPDX-License-Identifier: GPL-2.0
"""Compile-fail checks: misuses of the Rust mm API that the types forbid.

Each file of harness/compile-fail/ is a small crate built against the test
kernel's `kernel` crate, with the rustc command line kbuild used for a Rust
object of the series (mm/userfaultfd_rust.o, from its .cmd file in the build
directory), type-checked only (--emit=metadata). Built as it is, it must
compile: the control, which shows that the names it uses exist and that the
build works. Built with `--cfg misuse`, it must fail, and rustc's output must
contain every line of the file that starts with `//! expect: ` (the rest of
the line). A misuse that compiles, or fails for another reason, fails the
check.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

from .common import Context, read, tool_env
from .results import Results

# Rust objects of the series whose kbuild command line is borrowed, in order
# of preference: crates that use the kernel crate like any driver does.
TEMPLATE_OBJECTS = ("mm/userfaultfd_rust.o", "samples/rust/rust_uffd_memory.o")


def expectations(source: str) -> List[str]:
    """The `//! expect: ` lines of a check."""
    prefix = "//! expect: "
    return [line[len(prefix):].strip() for line in source.splitlines()
            if line.startswith(prefix)]


def saved_command(cmd_file_text: str) -> str:
    """The first command of a kbuild .cmd file's `savedcmd_... := ...` line
    (the rustc or clippy-driver invocation; what follows `;` links bitcode)."""
    for line in cmd_file_text.splitlines():
        if line.startswith("savedcmd_") and " := " in line:
            return line.split(" := ", 1)[1].split(" ;", 1)[0].strip()
    raise ValueError("no savedcmd line")


def check_command(template: str, source: str, outdir: str,
                  misuse: bool) -> Tuple[List[str], Dict[str, str]]:
    """The rustc command line (and environment) that type-checks `source`
    the way kbuild compiled the object of `template`."""
    words = shlex.split(template)
    # The kernel's Makefile exports it: kbuild uses unstable options (-Z).
    env: Dict[str, str] = {"RUSTC_BOOTSTRAP": "1"}
    while words and "=" in words[0] and not words[0].startswith("-"):
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    words = words[1:]  # rustc or clippy-driver: rustc type-checks
    args: List[str] = ["rustc"]
    skip = False
    for w in words:
        if skip:
            skip = False
            continue
        if w == "--out-dir":
            skip = True
            continue
        if w.startswith(("--out-dir=", "--emit=", "--crate-name")) or w.endswith(".rs"):
            continue
        args.append(w)
    name = os.path.basename(source)[:-len(".rs")].replace("-", "_")
    args += ["--crate-name", f"compile_fail_{name}", "--check-cfg=cfg(misuse)",
             f"--emit=metadata={os.path.join(outdir, 'lib' + name + '.rmeta')}"]
    if misuse:
        args += ["--cfg", "misuse"]
    return args + [source], env


def template_command(build_dir: str) -> Optional[str]:
    for obj in TEMPLATE_OBJECTS:
        d, base = os.path.split(obj)
        path = os.path.join(build_dir, d, f".{base}.cmd")
        if os.path.exists(path):
            return saved_command(read(path))
    return None


def judge(misuse_rc: int, misuse_out: str, control_rc: int, control_out: str,
          expect: Sequence[str]) -> Tuple[bool, str]:
    """Whether a check passed: the control compiled, the misuse did not, and
    rustc said every expected line about it."""
    if control_rc != 0:
        return False, "the control does not compile:\n" + control_out[-3000:]
    if misuse_rc == 0:
        return False, "the misuse compiles:\n" + misuse_out[-3000:]
    missing = [e for e in expect if e not in misuse_out]
    if not expect or missing:
        return False, ("rustc did not say: " + "; ".join(missing or ["(no expect: line)"])
                       + "\n" + misuse_out[-3000:])
    return True, ""


def gate_compile_fail(ctx: Context, res: Results) -> None:
    """One result per file of harness/compile-fail/."""
    srcdir = os.path.join(ctx.harness, "compile-fail")
    sources = sorted(f for f in os.listdir(srcdir) if f.endswith(".rs"))
    template = template_command(ctx.build)
    for f in sources:
        name = f"gate: does not compile: harness/compile-fail/{f}"
        if template is None:
            res.fail(name, "no kbuild command of " + " or ".join(TEMPLATE_OBJECTS)
                     + f" in {ctx.build} to build it with")
            continue
        path = os.path.join(srcdir, f)
        outs = []
        with tempfile.TemporaryDirectory() as tmp:
            for misuse in (True, False):
                args, env = check_command(template, path, tmp, misuse)
                p = subprocess.run(args, cwd=ctx.build, env=dict(tool_env(), **env),
                                   capture_output=True, text=True)
                outs.append((p.returncode, p.stdout + p.stderr))
        ok, detail = judge(outs[0][0], outs[0][1], outs[1][0], outs[1][1],
                           expectations(read(path)))
        res.check(ok, name, detail)
