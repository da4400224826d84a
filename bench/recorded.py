"""What a committed result records about how it was run, free of this machine's paths.

`recorded_command` is the command line a reader can run again: the repository's own path
becomes `.`, the temporary directory `$TMPDIR` and the home directory `~`, in every argument
(flags, URLs with a unix-socket `host=`, cache folders).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

__all__ = ["portable", "recorded_command"]


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
