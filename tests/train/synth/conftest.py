"""Shared fixtures of the synthetic-data tests: the tiny domain and one finished reference run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fspo_train.synth import RunnerSettings, SynthRun, load_domain, run_synth

REPO_ROOT = Path(__file__).resolve().parents[3]
TINY_DOMAIN = Path(__file__).parent / "fixtures" / "tiny_roleplay.yaml"
SCRIPTED = "factory:tests.train.synth.scripted:make_model"


def make_run(out: Path, **kwargs: Any) -> SynthRun:
    """A run of the tiny domain with the scripted model (by spec, as the CLI would build it)."""
    settings = kwargs.pop(
        "settings", RunnerSettings(concurrency=4, backoff_base=0.0, progress=False, fsync=False)
    )
    return SynthRun(
        domain=kwargs.pop("domain", load_domain(TINY_DOMAIN)),
        out=out,
        generators=kwargs.pop("generators", [SCRIPTED]),
        labeller=kwargs.pop("labeller", SCRIPTED),
        settings=settings,
        **kwargs,
    )


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The tiny domain run once, uninterrupted: (run folder, summary)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    return out, run_synth(make_run(out))
