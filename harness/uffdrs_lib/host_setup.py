# SPDX-License-Identifier: GPL-2.0
"""setup: the host tools (Debian packages, rust-src, bindgen, virtme-ng, mypy)."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from typing import List

from .common import (BASE_PACKAGE, BASE_SUITE, BINDGEN_VERSION, LLVM, Context,
                     HarnessError, run, say, sudo, tool_env)

# clang, lld and llvm 22 are in bookworm-security: LLVM 22 is rustc 1.95's, so
# that CONFIG_RUST_INLINE_HELPERS can inline the C helpers into Rust.
DEB_PACKAGES = [
    "clang-22", "lld-22", "llvm-22", "libclang-22-dev",
    "qemu-system-x86", "udev", "busybox-static",
    "flex", "bison", "bc", "libelf-dev", "libssl-dev", "cpio", "kmod",
    "dwarves", "xz-utils", "rsync", "make", "gcc", "libc6-dev",
    "perl", "python3", "python3-ply", "git", "procps",
]
# Python packages, pinned, installed with pip for the Python running the
# harness: virtme-ng boots the kernels, mypy is the harness's type check,
# docutils renders the series' documentation (the documentation gate).
PIP_PACKAGES = {
    "virtme-ng": "1.42",
    "mypy": "2.4.1",
    "docutils": "0.19",
}

BACKPORTS_SOURCES = "/etc/apt/sources.list.d/uffdrs-trixie-backports.sources"
BACKPORTS_PIN = "/etc/apt/preferences.d/uffdrs-trixie-backports"


def ensure_backports_source() -> bool:
    """Makes trixie-backports known to apt, pinned low so it upgrades nothing."""
    p = run(["apt-cache", "madison", BASE_PACKAGE], capture=True, check=False)
    if p.returncode == 0 and BASE_PACKAGE in p.stdout:
        return False
    say(f"adding apt source for {BASE_SUITE} (for {BASE_PACKAGE})")
    src = ("Types: deb\nURIs: http://deb.debian.org/debian\n"
           f"Suites: {BASE_SUITE}\nComponents: main\n"
           "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    pin = (f"Package: *\nPin: release n={BASE_SUITE}\nPin-Priority: 50\n")
    for path, text in ((BACKPORTS_SOURCES, src), (BACKPORTS_PIN, pin)):
        run(sudo() + ["tee", path], input=text, capture=True)
    return True


def missing_debs() -> List[str]:
    p = run(["dpkg-query", "-W", "-f=${Package} ${Status}\n", *DEB_PACKAGES],
            capture=True, check=False)
    have = {line.split()[0] for line in p.stdout.splitlines()
            if line.endswith("install ok installed")}
    return [d for d in DEB_PACKAGES if d not in have]


def install_debs() -> None:
    updated = ensure_backports_source()
    miss = missing_debs()
    if miss or updated:
        run(sudo() + ["apt-get", "update", "-q"])
    if not miss:
        say("Debian packages: all present")
        return
    llvm = [d for d in miss if d.endswith(LLVM)]
    if llvm:
        p = run(["apt-cache", "policy", *llvm], capture=True, check=False)
        if "Candidate: (none)" in p.stdout or p.stdout.count("Candidate:") < len(llvm):
            raise HarnessError(
                " ".join(llvm) + ": not in the apt sources; they come from "
                "Debian's bookworm-security suite (deb.debian.org/debian-security)")
    say("installing Debian packages: " + " ".join(miss))
    run(sudo() + ["apt-get", "install", "-y", "-q", "--no-install-recommends",
                  *miss], env=dict(tool_env(), DEBIAN_FRONTEND="noninteractive"))


def install_rust_src() -> None:
    if not shutil.which("rustup", path=tool_env()["PATH"]):
        raise HarnessError("rustup not found: this project needs the rustup toolchain")
    comps = run(["rustup", "component", "list", "--installed"], capture=True).stdout
    if "rust-src" not in comps:
        say("installing rustup component rust-src")
        run(["rustup", "component", "add", "rust-src"])
    else:
        say("rust-src: present")


def install_bindgen(ctx: Context) -> None:
    """Our own bindgen, passed to make as BINDGEN=: a bindgen in PATH (e.g.
    ~/.cargo/bin) is neither used nor replaced."""
    p = run([ctx.bindgen, "--version"], capture=True, check=False) \
        if os.access(ctx.bindgen, os.X_OK) else None
    if not p or BINDGEN_VERSION not in p.stdout:
        say(f"installing bindgen-cli {BINDGEN_VERSION} in {ctx.bindgen_root} (cargo install)")
        run(["cargo", "install", "--locked", "bindgen-cli",
             "--version", BINDGEN_VERSION, "--root", ctx.bindgen_root])
    else:
        say(f"bindgen {BINDGEN_VERSION}: present ({ctx.bindgen})")
    check_bindgen_layout(ctx.bindgen)


def pip_version(package: str) -> str:
    """The installed version of a Python package, or ""."""
    p = run([sys.executable, "-m", "pip", "show", package], capture=True, check=False)
    m = re.search(r"^Version: (\S+)", p.stdout, re.M)
    return m.group(1) if m else ""


def install_pip_packages() -> None:
    for package, version in PIP_PACKAGES.items():
        if pip_version(package) == version:
            say(f"{package} {version}: present")
            continue
        say(f"installing {package} {version} (pip)")
        run([sys.executable, "-m", "pip", "install", "-q", f"{package}=={version}"])


def setup(ctx: Context) -> None:
    with ctx.phase("setup"):
        install_debs()
        install_rust_src()
        install_bindgen(ctx)
        install_pip_packages()


def check_bindgen_layout(bindgen: str) -> None:
    """Refuses a bindgen that drops the padding before an empty aligned struct.

    `struct sched_statistics` is empty without CONFIG_SCHEDSTATS and
    `____cacheline_aligned`: C puts the next member of `task_struct` at the
    next 64-byte boundary. bindgen 0.73.2 leaves the padding out, so every
    `task_struct` field after it, `mm` among them, is read 48 bytes early
    from Rust (seen as an Oops in the first KUnit test). 0.71.1 and 0.72.1
    get it right.
    """
    hdr = ("struct empty { } __attribute__((aligned(64)));\n"
           "struct outer { long a; struct empty e; long b; };\n")
    with tempfile.TemporaryDirectory() as tmp:
        h = os.path.join(tmp, "probe.h")
        with open(h, "w") as f:
            f.write(hdr)
        p = run([bindgen, "--no-layout-tests", h], capture=True, check=False)
    m = re.search(r"pub struct outer \{(.*?)\n\}", p.stdout, re.S)
    if p.returncode != 0 or not m or "__bindgen_padding" not in m.group(1):
        raise HarnessError(
            f"{bindgen} lays out a struct with an empty aligned member "
            "differently from C (no padding before it): the kernel's Rust "
            "code would read task_struct fields at wrong offsets:\n" + p.stdout + p.stderr)
    say("bindgen: struct layout probe ok")
