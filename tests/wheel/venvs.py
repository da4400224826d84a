"""Build the wheel from the checkout and install it into fresh virtual environments.

Two kinds of environment, both fresh (`python -m venv`), neither able to import the checkout:

- `fresh_install`: `pip install <wheel>` from the package index, as a user would. Used for the
  base install (no extras), which is light, so that its metadata is resolved for real.
- `closure_install`: the heavy extras (`[local]`, `[train]`) would download and unpack torch and
  its stack for minutes. Instead, the distributions that the wheel's own `Requires-Dist` (for the
  extras asked) needs, followed recursively through each distribution's metadata, are linked in
  from the running environment: only those, so a dependency the wheel forgot is missing there
  as it would be for a user. Then `pip install --no-index "<wheel>[extras]"` must find every
  requirement already satisfied (a range the environment does not meet fails, with no index to
  fall back on), and installs the wheel itself, its console script and data files.

Namespace folders shared by several distributions (e.g. `google/`) are linked whole; that is
the one way such an environment can see more than the closure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "langchain-fspo"


def build(out: Path) -> tuple[Path, Path]:
    """(wheel, sdist) of the checkout, built with hatchling into `out`."""
    from hatchling.builders.sdist import SdistBuilder
    from hatchling.builders.wheel import WheelBuilder

    (wheel,) = WheelBuilder(str(REPO_ROOT)).build(directory=str(out), versions=["standard"])
    (sdist,) = SdistBuilder(str(REPO_ROOT)).build(directory=str(out), versions=["standard"])
    return Path(wheel), Path(sdist)


def wheel_requirements(wheel: Path) -> list[Requirement]:
    """`Requires-Dist` of the wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode()
    return [Requirement(line.split(":", 1)[1].strip()) for line in text.splitlines()
            if line.startswith("Requires-Dist:")]  # fmt: skip


def _wanted(requirement: Requirement, extras: Iterable[str]) -> bool:
    marker: Marker | None = requirement.marker
    if marker is None:
        return True
    return any(marker.evaluate({"extra": extra}) for extra in ("", *extras))


def closure(
    roots: Iterable[Requirement], extras: Iterable[str]
) -> dict[str, metadata.Distribution]:
    """The installed distributions that `roots` (with `extras` of the root) need, recursively.

    Raises:
        LookupError: A needed distribution is not installed in the running environment.
    """
    found: dict[str, metadata.Distribution] = {}
    extras_done: dict[str, set[str]] = {}
    todo = [(r, set(r.extras)) for r in roots if _wanted(r, extras)]
    while todo:
        requirement, wanted_extras = todo.pop()
        key = canonicalize_name(requirement.name)
        if key == PROJECT:  # `langchain-fspo[local]` inside `[train]`: the wheel itself
            todo += [(r, set(r.extras)) for r in roots if _wanted(r, wanted_extras)]
            continue
        if key in found and wanted_extras <= extras_done[key]:
            continue
        if key not in found:
            try:
                found[key] = metadata.distribution(requirement.name)
            except metadata.PackageNotFoundError as e:
                msg = f"{requirement} is needed but not installed in {sys.prefix}"
                raise LookupError(msg) from e
        extras_done[key] = extras_done.get(key, set()) | wanted_extras
        for line in found[key].requires or []:
            child = Requirement(line)
            if _wanted(child, extras_done[key]):
                todo.append((child, set(child.extras)))
    return found


def _top_level_paths(dist: metadata.Distribution) -> set[Path]:
    names = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
    return {Path(str(dist.locate_file(name))) for name in names}


def link_closure(dists: Mapping[str, metadata.Distribution], target: Path) -> None:
    """Symlink each distribution's top-level files and folders (and dist-info) into `target`."""
    target.mkdir(parents=True, exist_ok=True)
    for dist in dists.values():
        for path in _top_level_paths(dist):
            link = target / path.name
            if path.exists() and not link.exists():
                link.symlink_to(path)


def site_packages(venv: Path) -> Path:
    """The venv's site-packages folder."""
    (found,) = (venv / "lib").glob("python3.*/site-packages")
    return found


def run(argv: list[str], *, cwd: Path, env: Mapping[str, str], timeout: float = 600) -> str:
    """Run `argv`; return stdout+stderr; raise with the output when it fails."""
    done = subprocess.run(
        argv, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        msg = f"{' '.join(argv)} exited {done.returncode}:\n{output[-6000:]}"
        raise AssertionError(msg)
    return output


def clean_env(venv: Path, home: Path) -> dict[str, str]:
    """An environment where only `venv` is on PATH and nothing points at the checkout."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "PIP_FIND_LINKS", "PIP_CERT")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("PIP_")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    env.update(
        HOME=str(home),
        HF_HOME=str(home / "hf"),
        HF_HUB_DISABLE_TELEMETRY="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONDONTWRITEBYTECODE="1",
        MPLBACKEND="Agg",
    )
    return env


def new_venv(path: Path) -> Path:
    """A fresh virtual environment at `path`, with nothing installed (not even pip).

    pip and setuptools of its own would shadow the linked ones (torch needs a newer
    setuptools than `venv` bundles); `pip()` runs this process's pip against it instead.
    """
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(path)], check=True, timeout=300)
    return path


def pip(venv: Path, *args: str, home: Path, timeout: float = 900) -> str:
    """Run pip (this environment's) on the interpreter of `venv`."""
    argv = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), *args]
    return run(argv, cwd=home, env=clean_env(venv, home), timeout=timeout)


def fresh_install(wheel: Path, venv: Path, home: Path) -> None:
    """`pip install <wheel>` into the fresh `venv`, from the package index."""
    pip(venv, "install", "-q", str(wheel), home=home)


def closure_install(wheel: Path, extras: list[str], venv: Path, home: Path) -> dict[str, str]:
    """Install `<wheel>[extras]` into `venv`, its dependencies linked in (see the module).

    Returns:
        Name -> version of the linked distributions.
    """
    dists = closure(wheel_requirements(wheel), extras)
    deps = venv / "linked-dependencies"
    link_closure(dists, deps)
    (site_packages(venv) / "linked_dependencies.pth").write_text(f"{deps}\n", encoding="utf-8")
    pip(venv, "install", "-q", "--no-index", f"{wheel}[{','.join(extras)}]", home=home)
    return {name: dist.version for name, dist in dists.items()}


def shell_lines(block: str) -> list[str]:
    """The commands of a README bash block: continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = [line.split("  #", 1)[0].strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]
