"""The whole pipeline: run folder, manifest, stage selection, resumption.

`run_synth` runs the selected stages in order over a run folder. Each stage appends to its own
JSONL file keyed by deterministic work-item ids, so running the same command again after a crash
(or a SIGKILL) repeats no finished request and loses none, and gives the same records as an
uninterrupted run. `run.json` pins what must not change between the runs of one folder (domain
recipe, seed, models, prompt versions); counts may grow.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from fspo_train.synth.context import STAGE_FILES, SynthContext
from fspo_train.synth.domain import DomainConfig
from fspo_train.synth.errors import RunStateError, SynthConfigError
from fspo_train.synth.models import ModelLike, load_chat_model, model_name
from fspo_train.synth.prompts import available_prompts, load_prompt
from fspo_train.synth.report import run_report
from fspo_train.synth.runner import RunnerSettings
from fspo_train.synth.stages.disagreement import run_disagreement
from fspo_train.synth.stages.labels import assign_questions, build_pairs, run_labels, verdicts
from fspo_train.synth.stages.personas import load_users, run_personas
from fspo_train.synth.stages.questions import load_questions, run_questions
from fspo_train.synth.stages.records import run_records
from fspo_train.synth.stages.refine import final_verdicts, refine_state, run_refine
from fspo_train.synth.stages.responses import load_responses, run_responses, run_views
from fspo_train.synth.store import write_json_atomic

__all__ = ["STAGES", "SynthRun", "arun_synth", "run_synth"]

logger = logging.getLogger(__name__)

STAGES = tuple(STAGE_FILES)
"""Stage names in pipeline order."""

_COUNT_FIELDS = {
    "questions": ("global_count", "specific_per_user", "batch_size", "examples_per_batch"),
    "responses": ("per_question",),
    "labels": ("pairs_per_question", "questions_per_user"),
    "users": ("personas_per_combination",),
}
_TOP_COUNTS = (
    "refine_rounds",
    "refine_pairs_per_call",
    "disagreement_threshold",
    "max_users",
    "splits",
)


@dataclass
class SynthRun:
    """The inputs of one pipeline run.

    Attributes:
        domain: The recipe (see `load_domain`), counts applied.
        out: The run folder.
        generators: Response generators (model specs or instances), used in turn.
        labeller: The pairwise labeller.
        refiner: The persona refiner (default: the labeller).
        question_writer: Writes personas, questions and views (default: the first generator).
        seed: Seed of every random choice.
        settings: Concurrency, retries, progress bars.
        generator_temperature: Temperature for generators and the question writer built from
            spec strings (the paper samples at high temperature); None keeps the default.
        labeller_temperature: Temperature for the labeller and refiner built from spec strings.
        request_seeds: Send each request a seed derived from `seed` and the work-item id, so
            that servers honouring `seed` (vLLM, SGLang, OpenAI) sample reproducibly.

    Example:
        ```python
        from fspo_train.synth import SynthRun, load_domain, run_synth

        run = SynthRun(
            domain=load_domain("roleplay").with_overrides(max_users=10, global_count=20),
            out="runs/roleplay-small",
            generators=["openai:gpt-4o-mini", "openai:llama-3.1-8b@http://127.0.0.1:8000/v1"],
            labeller="openai:gpt-4o",
        )
        report = run_synth(run)
        ```
    """

    domain: DomainConfig
    out: Path | str
    generators: Sequence[ModelLike]
    labeller: ModelLike
    refiner: ModelLike | None = None
    question_writer: ModelLike | None = None
    seed: int = 0
    settings: RunnerSettings = field(default_factory=RunnerSettings)
    generator_temperature: float | None = 1.0
    labeller_temperature: float | None = 0.0
    request_seeds: bool = False


def _identity(run: SynthRun, names: dict[str, Any]) -> dict[str, Any]:
    domain = run.domain.model_dump(mode="json")
    for section, keys in _COUNT_FIELDS.items():
        for key in keys:
            domain[section].pop(key, None)
    for key in _TOP_COUNTS:
        domain.pop(key, None)
    prompts = {ref: load_prompt(*_split_ref(ref)).sha256 for ref in available_prompts()}
    return {"domain": domain, "seed": run.seed, "models": names, "prompts": prompts}


def _split_ref(ref: str) -> tuple[str, int]:
    name, _, version = ref.partition("@v")
    return name, int(version)


def _check_manifest(run_dir: Path, identity: dict[str, Any], domain: DomainConfig) -> None:
    path = run_dir / "run.json"
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    created = now
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("identity") != identity:
            keys = sorted(k for k in identity if old.get("identity", {}).get(k) != identity[k])
            msg = (
                f"{run_dir} was created with a different {', '.join(keys)}; resuming would mix "
                "incompatible data. Use a new --out folder (or delete this one)."
            )
            raise RunStateError(msg)
        created = old.get("created_at", now)
    try:
        version = metadata.version("langchain-fspo")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        version = "unknown"
    write_json_atomic(
        path,
        {
            "identity": identity,
            "config": domain.model_dump(mode="json"),
            "created_at": created,
            "updated_at": now,
            "langchain_fspo_version": version,
        },
    )


def _build_context(run: SynthRun) -> SynthContext:
    if not run.generators:
        msg = "At least one generator model is needed (--generator)."
        raise SynthConfigError(msg)
    models: dict[str, Any] = {}

    def add(spec: ModelLike, temperature: float | None) -> str:
        # A spec string is built once per temperature (the same model can generate at 1.0 and
        # label at 0.0); an instance is used as it is.
        name = model_name(spec)
        if isinstance(spec, str) and temperature is not None:
            name = f"{name} t={temperature:g}"
        if name not in models:
            models[name] = load_chat_model(spec, temperature=temperature)
        return name

    generators = list(dict.fromkeys(add(g, run.generator_temperature) for g in run.generators))
    writer = add(run.question_writer or run.generators[0], run.generator_temperature)
    labeller_spec = run.labeller
    labeller = add(labeller_spec, run.labeller_temperature)
    refiner = add(run.refiner or labeller_spec, run.labeller_temperature)
    run_dir = Path(run.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    return SynthContext(
        run_dir=run_dir,
        domain=run.domain,
        seed=run.seed,
        models=models,
        generators=generators,
        labeller=labeller,
        refiner=refiner,
        question_writer=writer,
        settings=(
            dataclasses.replace(run.settings, request_seed=run.seed)
            if run.request_seeds
            else run.settings
        ),
    )


def _select(stages: Sequence[str] | None) -> list[str]:
    if stages is None:
        return list(STAGES)
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        msg = f"Unknown stages {unknown}; stages are {list(STAGES)}."
        raise SynthConfigError(msg)
    return [s for s in STAGES if s in stages]


def _require(ctx: SynthContext, stage: str, selected: list[str]) -> None:
    """Raise if a stage before `stage` was neither selected nor run before."""
    index = STAGES.index(stage)
    for earlier in STAGES[:index]:
        if earlier in {"views", "refine", "disagreement", "report"} or earlier in selected:
            continue
        if not (ctx.run_dir / STAGE_FILES[earlier][0]).exists():
            msg = f"Stage {stage!r} needs the output of {earlier!r}; run that stage first."
            raise RunStateError(msg)


async def arun_synth(
    run: SynthRun, stages: Sequence[str] | None = None, *, redo: bool = False
) -> dict[str, Any]:
    """Run the selected stages (default: all) and return a summary (the report when it ran).

    Args:
        run: The run's inputs.
        stages: Stage names to run (any subset of `STAGES`); the others' outputs are read.
        redo: Delete the selected stages' files first, so they run from scratch.
    """
    selected = _select(stages)
    ctx = _build_context(run)
    names = {
        "generators": ctx.generators,
        "labeller": ctx.labeller,
        "refiner": ctx.refiner,
        "question_writer": ctx.question_writer,
    }
    _check_manifest(ctx.run_dir, _identity(run, names), run.domain)
    if redo:
        for stage in selected:
            for filename in STAGE_FILES[stage]:
                (ctx.run_dir / filename).unlink(missing_ok=True)
    for stage in selected:
        _require(ctx, stage, selected)
    try:
        return await _run(ctx, selected)
    finally:
        ctx.close()


async def _run(ctx: SynthContext, selected: list[str]) -> dict[str, Any]:
    if "personas" in selected:
        await run_personas(ctx)
    users = load_users(ctx)
    if "questions" in selected:
        await run_questions(ctx)
    questions = load_questions(ctx)
    if "views" in selected:
        await run_views(ctx)
    if "responses" in selected:
        await run_responses(ctx)
    pairs = build_pairs(ctx, questions, load_responses(ctx))
    assigned = assign_questions(ctx, users, questions)
    if "labels" in selected:
        await run_labels(ctx, users, assigned, pairs)
    if "refine" in selected:
        state = await run_refine(ctx, users, assigned, pairs)
    else:
        state = refine_state(ctx, users)
    initial = verdicts(ctx, dict.fromkeys(state.rounds, 0), assigned, pairs)
    final = final_verdicts(ctx, state, assigned, pairs)
    summary: dict[str, Any] = {
        "run_dir": str(ctx.run_dir),
        "users": len(users),
        "questions": len(questions),
        "pairs": sum(len(p) for p in pairs.values()),
    }
    disagreement_path = ctx.run_dir / "disagreement.json"
    if "disagreement" in selected:
        summary["disagreement"] = run_disagreement(ctx, final)
    elif disagreement_path.exists():
        summary["disagreement"] = json.loads(disagreement_path.read_text(encoding="utf-8"))
    if "records" in selected:
        summary["records"] = run_records(ctx, users, questions, state, final)
    elif (ctx.run_dir / "splits.json").exists():
        splits = json.loads((ctx.run_dir / "splits.json").read_text(encoding="utf-8"))
        summary["records"] = splits.get("counts", {})
    if "report" in selected:
        summary["report"] = run_report(
            ctx,
            initial=initial,
            final=final,
            records=summary.get("records", {}),
            disagreement=summary.get("disagreement", {"users": []}),
        )
    return summary


def run_synth(
    run: SynthRun, stages: Sequence[str] | None = None, *, redo: bool = False
) -> dict[str, Any]:
    """Synchronous `arun_synth` (runs its own event loop)."""
    return asyncio.run(arun_synth(run, stages, redo=redo))
