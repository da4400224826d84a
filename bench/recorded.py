"""What a committed result records about how it was run, free of this machine's paths.

`recorded_command` is the command line a reader can run again: the repository's own path
becomes `.`, the temporary directory `$TMPDIR` and the home directory `~`, in every argument
(flags, URLs with a unix-socket `host=`, cache folders). `write_report` writes a result's JSON
and its Markdown twin.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]

__all__ = ["portable", "recorded_command", "write_report"]


def portable(text: str) -> str:
    """`text` with the repository, temporary and home folders replaced by placeholders.

    >>> portable(str(REPO_ROOT / "bench"))
    './bench'
    """
    replacements = [
        (str(REPO_ROOT), "."),
        (tempfile.gettempdir(), "$TMPDIR"),
        (str(Path.home()), "~"),
    ]
    for path, placeholder in sorted(replacements, key=lambda r: -len(r[0])):
        if len(path) > 1:  # never rewrite "/" itself
            text = text.replace(path, placeholder)
    return text


def recorded_command(script: str, argv: Sequence[str] | None = None) -> str:
    """`python <script> <args>` as run, with `portable` paths (default args: `sys.argv[1:]`)."""
    args = sys.argv[1:] if argv is None else argv
    return portable(" ".join(["python", script, *args]))


def write_report(
    report: dict[str, Any], out: Path, render: Callable[[dict[str, Any]], str]
) -> None:
    """`out` (JSON) and its Markdown twin beside it; the Markdown printed too."""
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(render(report))
    print(render(report))
