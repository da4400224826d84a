"""`fspo eval`: an FSPO adapter against the paper's baselines, on trained and held-out users.

Two measures, per method and per split (e.g. `trained` users vs `held_out` users):

- **Implicit-reward accuracy** (`fspo_train.eval.metrics`): share of held-out preference pairs
  where β·log π/π_ref of the chosen response exceeds the rejected one's, log-probs summed over
  the completion tokens, every prompt rendered through the adapter's `PromptFormat`.
- **Win rate** against a baseline (default: the base model) with a user-aware judge
  (`fspo_train.eval.judges`): greedy generations of each method, judged pairwise.

The methods are the rows of `fspo_train.eval.methods.METHODS` that `fspo eval` can load
(`EVAL_METHODS`), run by `fspo_train.eval.engine.MethodRunner` as the benchmark runs them. For
the prompting baselines the "implicit reward" is in-context: log pi(y | prompt with the shots
or description) - log pi(y | question only).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fspo_train.data.loaders import load_records
from fspo_train.data.records import PreferenceRecord
from fspo_train.eval.config import (
    EvalConfig,
    adapter_base_model,
    default_splits,
    find_stage1_adapter,
    run_beta,
)
from fspo_train.eval.engine import MethodRunner
from fspo_train.eval.items import EvalItem, build_eval_items
from fspo_train.eval.judges import Judge, Judgement, compare_all, judge_name
from fspo_train.eval.methods import (
    BASE,
    FEW_SHOT,
    FSPO,
    IPO,
    METHODS,
    ORACLE,
    PREF_FT,
    REFERENCE,
)
from fspo_train.eval.metrics import implicit_reward_accuracy, win_rate
from langchain_fspo.artifact import check_base_model_exists
from langchain_fspo.errors import AdapterNotFoundError
from langchain_fspo.prompt_format import PromptFormat

if TYPE_CHECKING:
    from fspo_train.eval.scoring import PolicySet

__all__ = ["EVAL_METHODS", "load_policies", "run_evaluation"]

logger = logging.getLogger(__name__)

RESULTS_FILENAME = "eval_results.json"
GENERATIONS_FILENAME = "eval_generations.jsonl"
PLOT_FILENAME = "eval_plot.png"
RESULTS_SCHEMA_VERSION = 1

EVAL_METHODS = (FSPO, BASE, FEW_SHOT, PREF_FT, IPO, ORACLE)
"""The methods `fspo eval` runs (all whose inputs it has), in the order it reports them."""

_MISSING_INPUT = {
    PREF_FT: "give the stage-1 adapter (--pref-ft-adapter)",
    IPO: "give a 0-shot IPO adapter (--ipo-adapter)",
    ORACLE: "every record needs a user_description",
}


def _read_strict(path: Path) -> list[PreferenceRecord]:
    # Evaluation refuses bad data rather than skipping it: a smaller split changes the numbers.
    return list(load_records(path, strict=True).records)


def _resolve_methods(config: EvalConfig, items: Sequence[EvalItem]) -> list[str]:
    available = {FSPO, BASE, FEW_SHOT}
    if config.pref_ft_adapter is not None:
        available.add(PREF_FT)
    if config.ipo_adapter is not None:
        available.add(IPO)
    if items and all(item.user_description for item in items):
        available.add(ORACLE)
    if config.methods is None:
        return [m for m in EVAL_METHODS if m in available]
    for name in config.methods:
        if name not in EVAL_METHODS:
            msg = f"Unknown method {name!r}; choose from {sorted(EVAL_METHODS)}."
            raise ValueError(msg)
        if name not in available:
            fix = _MISSING_INPUT.get(name, "inputs missing")
            msg = f"Method {name!r} cannot run: {fix}."
            raise ValueError(msg)
    return list(config.methods)


def load_policies(config: EvalConfig, fmt: PromptFormat, methods: Sequence[str]) -> PolicySet:
    """Load the base model and the adapters `methods` need."""
    from fspo_train.eval.scoring import PolicySet

    base = config.base_model or fmt.base_model_id or adapter_base_model(config.adapter)
    if base is None:
        msg = (
            f"No base model known for {config.adapter}: set `base_model_id` in fspo_format.json "
            "or pass --base-model."
        )
        raise AdapterNotFoundError(msg)
    if config.base_model is None:
        try:
            check_base_model_exists(base, source=config.adapter)
        except AdapterNotFoundError as e:
            msg = f"{e} Or pass --base-model."
            raise AdapterNotFoundError(msg) from e
    adapters: dict[str, str | Path] = {FSPO: config.adapter}
    if config.reference is not None:
        adapters[REFERENCE] = config.reference
    elif config.pref_ft_adapter is not None:
        adapters[REFERENCE] = config.pref_ft_adapter
    if PREF_FT in methods and config.pref_ft_adapter is not None:
        adapters[PREF_FT] = config.pref_ft_adapter
    if IPO in methods and config.ipo_adapter is not None:
        adapters[IPO] = config.ipo_adapter
    return PolicySet(base, adapters, device=config.device)


def _accuracy(
    runner: MethodRunner,
    methods: Sequence[str],
    items_by_split: dict[str, list[EvalItem]],
    beta: float,
    say: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    accuracy: dict[str, dict[str, Any]] = {}
    for name in methods:
        method = METHODS[name]
        if method.reference_prompt is None:
            continue
        say(f"Implicit-reward accuracy: {name}")
        for split, items in items_by_split.items():
            pairs = runner.pair_logprobs(method, items, key=split)
            accuracy.setdefault(name, {})[split] = implicit_reward_accuracy(pairs, beta).to_dict()
    return accuracy


def _win_rates(
    runner: MethodRunner,
    methods: Sequence[str],
    baseline: str,
    items_by_split: dict[str, list[EvalItem]],
    judge: Judge,
    say: Callable[[str], None],
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    outputs: dict[str, dict[str, list[str]]] = {}
    for name in methods:
        say(f"Generating: {name}")
        outputs[name] = {
            split: [p.response for p in runner.answers(METHODS[name], items, key=split)]
            for split, items in items_by_split.items()
        }
    win: dict[str, dict[str, Any]] = {}
    generations: list[dict[str, Any]] = []
    for name in methods:
        if name == baseline:
            continue
        say(f"Judging {name} against {baseline}")
        for split, items in items_by_split.items():
            judgements = [
                Judgement(item.question, item.user_description, ours, theirs)
                for item, ours, theirs in zip(
                    items, outputs[name][split], outputs[baseline][split], strict=True
                )
            ]
            scores = compare_all(judge, judgements, desc=f"judging {name}/{split}")
            win.setdefault(name, {})[split] = win_rate(scores).to_dict()
            generations += [
                {
                    "method": name,
                    "baseline": baseline,
                    "split": split,
                    "user_id": item.user_id,
                    "question": item.question,
                    "output": j.a,
                    "baseline_output": j.b,
                    "score": score,
                }
                for item, j, score in zip(items, judgements, scores, strict=True)
            ]
    return win, generations


def run_evaluation(
    config: EvalConfig,
    *,
    judge: Judge | None = None,
    policies: PolicySet | None = None,
    plot: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the evaluation; write `eval_results.json`, generations and a plot; return results.

    Args:
        config: What to evaluate.
        judge: Needed for win rates (`config.win_rate`); see `fspo_train.eval.judges`.
        policies: An already loaded `PolicySet` (base + adapters named `fspo`, `reference`,
            `pref_ft`, `ipo` as needed); loaded from `config` when None.
        plot: Write `eval_plot.png` beside the JSON.
        progress: Called with a short line as each stage starts (the CLI prints them).

    Example:
        ```python
        from fspo_train.eval.evaluate import EvalConfig, run_evaluation
        from fspo_train.eval.judges import ChatModelJudge

        config = EvalConfig(adapter=Path("out/run"), splits={"held_out": Path("eval.jsonl")})
        results = run_evaluation(config, judge=ChatModelJudge(judge_llm))
        ```
    """
    say = progress or (lambda line: logger.info("%s", line))
    config = replace(config)  # defaults are filled in below; the caller's object stays as it is
    fmt = PromptFormat.from_pretrained(config.adapter)
    if config.pref_ft_adapter is None:
        config.pref_ft_adapter = find_stage1_adapter(config.adapter)
    num_shots = fmt.num_shots if config.num_shots is None else config.num_shots
    beta = run_beta(config.adapter) if config.beta is None else config.beta
    if config.splits is None:
        config.splits, default_shots = default_splits(config.adapter)
        config.shots = config.shots or default_shots
    shot_records = _read_strict(config.shots) if config.shots is not None else None
    items_by_split = {
        name: build_eval_items(
            _read_strict(path),
            split=name,
            num_shots=num_shots,
            shot_records=shot_records,
            seed=config.seed,
            max_items=config.max_items,
        )
        for name, path in config.splits.items()
    }
    methods = _resolve_methods(config, [i for items in items_by_split.values() for i in items])
    if config.win_rate and config.baseline not in methods:
        methods.append(config.baseline)
    if config.win_rate and judge is None:
        msg = "Win rates need a judge: pass --judge / --judge-model, or --no-win-rate."
        raise ValueError(msg)
    if policies is None:
        say(f"Loading the base model and {len(methods)} method(s): {', '.join(methods)}")
        policies = load_policies(config, fmt, methods)
    runner = MethodRunner(
        policies, {None: fmt}, batch_size=config.batch_size, max_new_tokens=config.max_new_tokens
    )
    has_reference = REFERENCE in policies.adapters
    accuracy = _accuracy(runner, methods, items_by_split, beta, say) if config.accuracy else {}
    win: dict[str, dict[str, Any]] = {}
    generations: list[dict[str, Any]] = []
    if config.win_rate and judge is not None:
        win, generations = _win_rates(runner, methods, config.baseline, items_by_split, judge, say)

    results: dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "adapter": str(config.adapter),
        "base_model": config.base_model or fmt.base_model_id or adapter_base_model(config.adapter),
        "reference": (
            str(config.reference or config.pref_ft_adapter) if has_reference else "base model"
        ),
        "methods": {name: METHODS[name].description for name in methods},
        "splits": {name: len(items) for name, items in items_by_split.items()},
        "num_shots": num_shots,
        "beta": beta,
        "max_new_tokens": config.max_new_tokens,
        "seed": config.seed,
        "baseline": config.baseline if config.win_rate else None,
        "judge": judge_name(judge) if judge is not None and config.win_rate else None,
        "judge_unparsed_verdicts": getattr(judge, "unparsed", None) if config.win_rate else None,
        "accuracy": accuracy,
        "win_rate": win,
    }
    out_dir = config.output_dir or config.adapter
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RESULTS_FILENAME).write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    if generations:
        with (out_dir / GENERATIONS_FILENAME).open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in generations)
    if plot:
        from fspo_train.eval.plots import plot_results

        plot_results(results, out_dir / PLOT_FILENAME)
    return results
