# SPDX-License-Identifier: GPL-2.0
"""What every part of the harness shares: the run context, errors, progress
lines, and running commands.

The state of a run (the cache, the tree and build directory it works on, the
options of the command line) is one `Context`, passed to whatever needs it.
Commands that build elsewhere (check-series' worktrees, check-arch's cross
build) derive a new `Context` from it with `dataclasses.replace()` instead of
changing a global.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import contextlib
import subprocess
import time
from typing import Iterator, List, Mapping, Optional, Sequence, Tuple

BASE_PACKAGE = "linux-source-7.3"
BASE_VERSION = "7.3.4-1~bpo13+1"
BASE_SUITE = "trixie-backports"
BASE_TARBALL = "usr/src/linux-source-7.3.tar.xz"
BASE_REF = "refs/heads/base"
BASE_IDENT = {
    "GIT_AUTHOR_NAME": "uffdrs harness",
    "GIT_AUTHOR_EMAIL": "harness@uffdrs.invalid",
    "GIT_COMMITTER_NAME": "uffdrs harness",
    "GIT_COMMITTER_EMAIL": "harness@uffdrs.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}

# bindgen before 0.72.1 may generate wrong bindings with libclang 22 (make
# rustavailable warns), and 0.73.2 drops the padding before an empty aligned
# struct member (task_struct::stats; see host_setup.check_bindgen_layout()):
# 0.72.1, installed in the cache, beside any other bindgen.
BINDGEN_VERSION = "0.72.1"
LLVM = "-22"
# The other compiler the benchmark builds a kernel with (bench --cc gcc):
# distributions build with GCC, where Rust cannot inline the C helpers.
GCC = "gcc-12"
LIBCLANG_PATH = "/usr/lib/llvm-22/lib"

T0 = time.monotonic()


class HarnessError(Exception):
    """A failure that ends the command: main() prints it and exits 1."""


class CommandError(HarnessError):
    """A command exited with a non-zero status."""


def default_cache() -> str:
    return os.environ.get("UFFDRS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "uffd-continue-rs")


@dataclasses.dataclass(frozen=True)
class Context:
    """Where a run reads and writes, and the options it was given.

    repo:  this repository (the series' files, harness/, series/)
    cache: downloads, the assembled tree, build directories, guest runs
    tree:  the kernel source tree that make builds (the assembled series,
           or a worktree of it for check-series)
    build: the O= directory of the kernel build
    """
    repo: str
    cache: str
    tree: str
    build: str
    kasan: bool = False
    without_fixes: bool = False
    make_arch: Optional[str] = None  # ARCH= for make; None: the host's
    # The C compiler: "llvm" (LLVM=-22, every build by default) or "gcc"
    # (CC=gcc-12 with the GNU binutils; bench --cc gcc). Rust, and bindgen's
    # libclang, are the same either way.
    cc: str = "llvm"
    # Config fragments after the test kernel's (e.g. a benchmark kernel's).
    extra_fragments: Tuple[str, ...] = ()
    timings: List[Tuple[str, float]] = dataclasses.field(default_factory=list)

    @classmethod
    def create(cls, repo: str, cache: Optional[str] = None, kasan: bool = False,
               without_fixes: bool = False) -> Context:
        cache = cache or default_cache()
        # --kasan: a separate build directory, so that both stay incremental.
        build = os.path.join(cache, "build-kasan" if kasan else "build")
        return cls(repo=repo, cache=cache, tree=os.path.join(cache, "tree"),
                   build=build, kasan=kasan, without_fixes=without_fixes)

    @property
    def harness(self) -> str:
        return os.path.join(self.repo, "harness")

    @property
    def base_tree(self) -> str:
        """The tree with the base and the series (not check-series' worktrees)."""
        return os.path.join(self.cache, "tree")

    @property
    def dl(self) -> str:
        return os.path.join(self.cache, "dl")

    @property
    def selftests(self) -> str:
        return os.path.join(self.cache, "selftests")

    @property
    def runs(self) -> str:
        return os.path.join(self.cache, "runs")

    @property
    def am_check(self) -> str:
        return os.path.join(self.cache, "am-check")

    @property
    def checked(self) -> str:
        return os.path.join(self.cache, "check-built")

    @property
    def out(self) -> str:
        return os.path.join(self.repo, "out")

    @property
    def bindgen_root(self) -> str:
        return os.path.join(self.cache, "tools", f"bindgen-{BINDGEN_VERSION}")

    @property
    def bindgen(self) -> str:
        return os.path.join(self.bindgen_root, "bin", "bindgen")

    @property
    def kunit_tool(self) -> str:
        """The kernel's own KUnit tool (kunit_parser.py), in the base tree."""
        return os.path.join(self.base_tree, "tools", "testing", "kunit")

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Prints the start and the duration of a phase, records the latter."""
        t = time.monotonic()
        say(f"{name} ...")
        ok = False
        try:
            yield
            ok = True
        finally:
            d = time.monotonic() - t
            self.timings.append((name, d))
            say(f"{name}: {'done' if ok else 'failed'} in {d:.0f}s")


# ---------------------------------------------------------------------------
# Progress lines
# ---------------------------------------------------------------------------

def elapsed() -> str:
    s = int(time.monotonic() - T0)
    return f"{s // 60:02d}:{s % 60:02d}"


def say(msg: str) -> None:
    print(f"[uffdrs {elapsed()}] {msg}", flush=True)


def warn(msg: str) -> None:
    bar = "!" * 78
    print(f"{bar}\n[uffdrs {elapsed()}] WARNING: {msg}\n{bar}", flush=True)


# ---------------------------------------------------------------------------
# Running commands
# ---------------------------------------------------------------------------

def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    cargo_bin = os.path.expanduser("~/.cargo/bin")
    env["PATH"] = cargo_bin + os.pathsep + env.get("PATH", "")
    env["LIBCLANG_PATH"] = LIBCLANG_PATH
    return env


def tail(path: str, n: int = 40) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def run(cmd: Sequence[str], check: bool = True, cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None, capture: bool = False,
        quiet: bool = False, log: Optional[str] = None,
        input: Optional[str] = None) -> subprocess.CompletedProcess[str]:
    """Runs a command; optionally captures its output or appends it to a log.

    With check, a non-zero exit raises CommandError, whose message has the
    captured output or the end of the log.
    """
    if not quiet and not capture:
        say("$ " + " ".join(cmd))
    env = dict(env) if env is not None else tool_env()
    if log:
        with open(log, "a") as f:
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            p = subprocess.run(cmd, cwd=cwd, env=env, stdout=f,
                               stderr=subprocess.STDOUT, input=input,
                               text=True)
    elif capture:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                           text=True, input=input)
    else:
        p = subprocess.run(cmd, cwd=cwd, env=env, input=input, text=True)
    if check and p.returncode != 0:
        out = ""
        if capture:
            out = (p.stdout or "") + (p.stderr or "")
        if log:
            out = tail(log) + f"(see {log})\n"
        raise CommandError(f"{out}command failed ({p.returncode}): {' '.join(cmd)}")
    return p


def git(*args: str, cwd: str, env: Optional[Mapping[str, str]] = None,
        check: bool = True, input: Optional[str] = None) -> str:
    """Runs git in `cwd`; returns its standard output, stripped."""
    e = tool_env()
    if env:
        e.update(env)
    p = subprocess.run(["git", *args], cwd=cwd, env=e, capture_output=True,
                       text=True, input=input)
    if check and p.returncode != 0:
        raise CommandError(p.stdout + p.stderr + f"git {' '.join(args)} failed (in {cwd})")
    return p.stdout.strip()


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sudo() -> List[str]:
    return [] if os.geteuid() == 0 else ["sudo"]


def jobs() -> str:
    return str((os.cpu_count() or 2) + 1)


def read(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read()


def truncate(path: str) -> None:
    """Creates `path` empty (a log that a phase then appends to)."""
    open(path, "w").close()
