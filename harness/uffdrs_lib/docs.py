# SPDX-License-Identifier: GPL-2.0
"""The documentation gate: every reStructuredText file the series adds or
changes under Documentation/ is rendered to HTML with docutils, as the
series leaves it, and any warning or error is a failure.

docutils knows no Sphinx: the roles and directives of Sphinx that these
files use are stood in for here, and they check what they can without a
Sphinx build: a `:doc:` target and every `toctree` entry must be a file of
the tree. (The kernel's `make htmldocs` needs Sphinx and the kernel's
extensions, and builds all of Documentation/: minutes, and warnings of
files the series does not touch.)
"""

from __future__ import annotations

import io
import os
import posixpath
import re
from typing import Any, Callable, Dict, List, Sequence, Tuple

from docutils import nodes  # type: ignore[import-untyped]
from docutils.core import publish_string  # type: ignore[import-untyped]
from docutils.parsers.rst import Directive, directives, roles  # type: ignore[import-untyped]

from .common import Context, git
from .results import Results

# Sphinx roles that render as literal text here (C domain, cross-references
# whose targets only Sphinx knows).
LITERAL_ROLES = ("ref", "c:func", "c:type", "c:macro", "c:member", "c:data",
                 "c:enum", "c:struct", "c:union", "c:expr", "kbd", "file",
                 "manpage", "abbr", "command", "envvar", "option")

Role = Callable[..., Tuple[List[Any], List[Any]]]


def doc_target(docname: str, target: str) -> str:
    """The file a `:doc:` target or toctree entry of `docname` (a path in the
    tree, Documentation/...) names: relative to the document's directory,
    or to Documentation/ if it starts with "/"."""
    target = re.sub(r"^.*<(.*)>$", r"\1", target.strip())
    base = "Documentation" if target.startswith("/") else posixpath.dirname(docname)
    return posixpath.normpath(posixpath.join(base, target.lstrip("/"))) + ".rst"


class Checker:
    """Renders documents of the tree `tree` and collects their problems."""

    def __init__(self, tree: str) -> None:
        self.tree = tree
        self.docname = ""
        self.missing: List[str] = []
        self._register()

    def exists(self, target: str) -> None:
        path = doc_target(self.docname, target)
        if not os.path.isfile(os.path.join(self.tree, path)):
            self.missing.append(f"{self.docname}: no document {target!r} ({path})")

    def _register(self) -> None:
        checker = self

        def literal(name: str, rawtext: str, text: str, lineno: int, inliner: Any,
                    options: Dict[str, Any] = {}, content: List[str] = []
                    ) -> Tuple[List[Any], List[Any]]:
            return [nodes.literal(rawtext, re.sub(r"^.*<(.*)>$", r"\1", text))], []

        def doc(name: str, rawtext: str, text: str, lineno: int, inliner: Any,
                options: Dict[str, Any] = {}, content: List[str] = []
                ) -> Tuple[List[Any], List[Any]]:
            checker.exists(text)
            return literal(name, rawtext, text, lineno, inliner)

        class TocTree(Directive):  # type: ignore[misc]
            has_content = True
            option_spec = {"maxdepth": directives.unchanged, "caption": directives.unchanged,
                           "hidden": directives.flag, "numbered": directives.unchanged,
                           "titlesonly": directives.flag, "glob": directives.flag}

            def run(self) -> List[Any]:
                for line in self.content:
                    if line.strip():
                        checker.exists(line)
                return []

        class KernelDoc(Directive):  # type: ignore[misc]
            required_arguments = 1
            optional_arguments = 0
            has_content = True
            final_argument_whitespace = True
            option_spec = {k: directives.unchanged for k in
                           ("doc", "export", "internal", "identifiers",
                            "no-identifiers", "functions")}

            def run(self) -> List[Any]:
                src = self.arguments[0].split()[0]
                if not os.path.isfile(os.path.join(checker.tree, src)):
                    checker.missing.append(f"{checker.docname}: kernel-doc of a "
                                           f"missing file {src}")
                return []

        for r in LITERAL_ROLES:
            roles.register_local_role(r, literal)
        roles.register_local_role("doc", doc)
        directives.register_directive("toctree", TocTree)
        directives.register_directive("kernel-doc", KernelDoc)

    def render(self, docname: str, text: str) -> List[str]:
        """Renders `text` (the document `docname`) to HTML; its problems."""
        self.docname = docname
        self.missing = []
        warnings = io.StringIO()
        publish_string(text, source_path=docname, writer_name="html5",
                       settings_overrides={
                           "report_level": 2,       # warnings and above
                           "halt_level": 5,         # never stop: report all
                           "warning_stream": warnings,
                           "file_insertion_enabled": False,
                           "raw_enabled": False,
                           "embed_stylesheet": False,
                           "output_encoding": "unicode",
                       })
        return [line for line in warnings.getvalue().splitlines() if line.strip()] \
            + self.missing


def doc_files(ctx: Context, ref: str = "series") -> List[str]:
    """The .rst files under Documentation/ that the series adds or changes."""
    out = git("diff", "--name-only", "--diff-filter=AM", f"base..{ref}", "--",
              "Documentation/*.rst", cwd=ctx.tree)
    return sorted(out.split())


def gate_docs(ctx: Context, res: Results, files: Sequence[str] = ()) -> None:
    """One result per file: rendered by docutils without a warning."""
    files = list(files) or doc_files(ctx)
    if not files:
        res.fail("gate: documentation of the series renders without warnings",
                 "the series changes no file under Documentation/")
        return
    checker = Checker(ctx.tree)
    for f in files:
        text = git("show", f"series:{f}", cwd=ctx.tree)
        problems = checker.render(f, text + "\n")
        res.check(not problems, f"gate: documentation renders without warnings (docutils): {f}",
                  "\n".join(problems[:40]))
