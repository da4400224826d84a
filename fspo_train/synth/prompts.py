"""Versioned prompt templates, stored as data files in `fspo_train/synth/prompts/`.

Each file is `<name>.v<version>.txt`: a YAML header between `---` lines (name, version, output,
purpose) followed by the template body, a LangChain f-string `PromptTemplate`. Runs record every
prompt's name, version and sha256 in `run.json`, so a changed prompt is a new version, not a silent
edit, and a resumed run refuses to mix prompt versions.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml
from langchain_core.prompts import PromptTemplate

from fspo_train.synth.errors import SynthConfigError

__all__ = ["SynthPrompt", "available_prompts", "load_prompt"]

_FILE_RE = re.compile(r"^(?P<name>[a-z_]+)\.v(?P<version>[0-9]+)\.txt$")


@dataclass(frozen=True)
class SynthPrompt:
    """One versioned prompt template.

    Example:
        >>> p = load_prompt("views")
        >>> p.ref
        'views@v1'
        >>> "question" in p.input_variables
        True
    """

    name: str
    version: int
    output: str
    template: str
    sha256: str
    _compiled: PromptTemplate = field(repr=False, compare=False, hash=False)

    @property
    def ref(self) -> str:
        """`name@vN`, the id written into stage rows and provenance."""
        return f"{self.name}@v{self.version}"

    @property
    def input_variables(self) -> list[str]:
        """The template's variables."""
        return list(self._compiled.input_variables)

    def format(self, **variables: Any) -> str:
        """Render the template; missing or unknown variables raise `SynthConfigError`."""
        expected = set(self._compiled.input_variables)
        if set(variables) != expected:
            msg = f"Prompt {self.ref} takes variables {sorted(expected)}, got {sorted(variables)}."
            raise SynthConfigError(msg)
        return self._compiled.format(**variables)


def _parse(filename: str, raw: str) -> SynthPrompt:
    match = _FILE_RE.match(filename)
    if match is None:
        msg = f"Prompt file {filename!r} must be named <name>.v<N>.txt."
        raise SynthConfigError(msg)
    parts = raw.split("---\n", 2)
    if len(parts) != 3 or parts[0]:  # noqa: PLR2004 - header, front matter, body
        msg = f"Prompt file {filename} must start with a '---' YAML header closed by '---'."
        raise SynthConfigError(msg)
    header = yaml.safe_load(parts[1]) or {}
    name, version = match.group("name"), int(match.group("version"))
    if header.get("name") != name or header.get("version") != version:
        msg = (
            f"Prompt file {filename} declares name={header.get('name')!r} "
            f"version={header.get('version')!r}; they must match the file name."
        )
        raise SynthConfigError(msg)
    body = parts[2]
    return SynthPrompt(
        name=name,
        version=version,
        output=str(header.get("output", "text")),
        template=body,
        sha256=hashlib.sha256(raw.encode()).hexdigest(),
        _compiled=PromptTemplate.from_template(body),
    )


@cache
def _all_prompts() -> dict[tuple[str, int], SynthPrompt]:
    folder = resources.files("fspo_train.synth") / "prompts"
    out: dict[tuple[str, int], SynthPrompt] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".txt"):
            prompt = _parse(entry.name, entry.read_text(encoding="utf-8"))
            out[prompt.name, prompt.version] = prompt
    return out


def available_prompts() -> list[str]:
    """Every packaged prompt as `name@vN`, sorted."""
    return sorted(p.ref for p in _all_prompts().values())


def load_prompt(name: str, version: int | None = None) -> SynthPrompt:
    """The packaged prompt `name` at `version` (default: the highest version).

    Raises:
        SynthConfigError: no such prompt or version; the message lists what exists.
    """
    versions = sorted(v for (n, v) in _all_prompts() if n == name)
    if not versions:
        msg = f"No prompt named {name!r}; packaged prompts: {available_prompts()}."
        raise SynthConfigError(msg)
    chosen = versions[-1] if version is None else version
    if chosen not in versions:
        msg = f"Prompt {name!r} has versions {versions}, not {version}."
        raise SynthConfigError(msg)
    return _all_prompts()[name, chosen]
