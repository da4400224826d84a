"""The state a pipeline run shares between stages: run folder, domain, models, settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from langchain_core.language_models import BaseChatModel

from fspo_train.synth.domain import DomainConfig
from fspo_train.synth.runner import RunnerSettings, StageOutcome
from fspo_train.synth.store import JsonlStore

__all__ = ["STAGE_FILES", "SynthContext"]

STAGE_FILES: dict[str, tuple[str, ...]] = {
    "personas": ("personas.jsonl",),
    "questions": ("questions.jsonl",),
    "views": ("views.jsonl",),
    "responses": ("responses.jsonl",),
    "labels": ("labels.jsonl",),
    "refine": ("refinements.jsonl", "relabels.jsonl"),
    "disagreement": ("disagreement.json",),
    "records": ("records.jsonl", "train.jsonl", "test.jsonl", "splits.json"),
    "report": ("report.json", "report.md", "disagreement.png", "usage.json"),
}
"""Files each stage writes in the run folder (deleting them re-runs the stage from scratch)."""


@dataclass
class SynthContext:
    """Everything a stage function needs.

    Attributes:
        run_dir: The run folder holding every stage's output.
        domain: The domain recipe with counts applied.
        seed: Seed of every random choice (see `fspo_train.synth.ids.rng`).
        models: Chat models by name.
        generators: Names (keys of `models`) of the response generators, used in turn.
        labeller: Name of the pairwise labeller.
        refiner: Name of the persona-refinement model.
        question_writer: Name of the model writing personas, questions and views.
        settings: Concurrency, retries, progress.
        outcomes: What each stage did in this process (for the report).
    """

    run_dir: Path
    domain: DomainConfig
    seed: int
    models: dict[str, BaseChatModel]
    generators: list[str]
    labeller: str
    refiner: str
    question_writer: str
    settings: RunnerSettings = field(default_factory=RunnerSettings)
    outcomes: dict[str, list[StageOutcome]] = field(default_factory=dict)
    _stores: dict[str, JsonlStore] = field(default_factory=dict, repr=False)

    def store(self, filename: str) -> JsonlStore:
        """The (cached) append-only store `run_dir/filename`."""
        if filename not in self._stores:
            self._stores[filename] = JsonlStore(self.run_dir / filename, fsync=self.settings.fsync)
        return self._stores[filename]

    def record(self, outcome: StageOutcome) -> None:
        """Remember a stage outcome for the report."""
        self.outcomes.setdefault(outcome.stage, []).append(outcome)

    def close(self) -> None:
        """Close every open stage file."""
        for store in self._stores.values():
            store.close()
        self._stores.clear()
