"""Evaluate an FSPO adapter against the paper's baselines, on trained and held-out users.

Two measures, per method and per split (e.g. `trained` users vs `held_out` users):

- **Implicit-reward accuracy** (`fspo_train.eval.metrics`): share of held-out preference pairs
  where β·log π/π_ref of the chosen response exceeds the rejected one's, log-probs summed over
  the completion tokens, every prompt rendered through the adapter's `PromptFormat`.
- **Win rate** against a baseline (default: the base model) with a user-aware judge
  (`fspo_train.eval.judges`): greedy generations of each method, judged pairwise.

Methods (the paper's baselines, §4.1):

| name       | model                   | prompt                  | accuracy reference        |
|------------|-------------------------|-------------------------|---------------------------|
| `fspo`     | the FSPO adapter        | K shots of the user     | stage-1 / given / base    |
| `base`     | base model, no adapter  | zero-shot (question)    | none (it is the reference)|
| `few_shot` | base model              | K shots (prompting)     | base, zero-shot prompt    |
| `pref_ft`  | stage-1 Pref-FT adapter | K shots                 | base, same prompt         |
| `ipo`      | a 0-shot IPO adapter    | zero-shot               | base, same prompt         |
| `oracle`   | base model              | true user description   | base, zero-shot prompt    |

For the prompting baselines the "implicit reward" is in-context: log pi(y | prompt with the
shots or description) - log pi(y | question only).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fspo_train.data.episodes import episodes_for_queries
from fspo_train.data.records import PreferenceRecord
from fspo_train.eval.judges import Judge, Judgement, compare_all, judge_name
from fspo_train.eval.metrics import (
    PairLogProbs,
    implicit_reward_accuracy,
    win_rate,
)
from langchain_fspo.errors import AdapterNotFoundError
from langchain_fspo.preference import PreferenceExample
from langchain_fspo.prompt_format import PromptFormat, RenderedPrompt

if TYPE_CHECKING:
    from fspo_train.eval.scoring import PolicySet

__all__ = [
    "METHODS",
    "EvalConfig",
    "EvalItem",
    "MethodSpec",
    "build_eval_items",
    "default_splits",
    "find_stage1_adapter",
    "generation_prompts",
    "load_records",
    "render_item",
    "run_evaluation",
    "tokenize_items",
]

logger = logging.getLogger(__name__)

RESULTS_FILENAME = "eval_results.json"
GENERATIONS_FILENAME = "eval_generations.jsonl"
PLOT_FILENAME = "eval_plot.png"
RESULTS_SCHEMA_VERSION = 1

PromptMode = Literal["few_shot", "zero_shot", "oracle"]
FSPO, BASE, FEW_SHOT, PREF_FT, IPO, ORACLE = "fspo", "base", "few_shot", "pref_ft", "ipo", "oracle"
REFERENCE_ADAPTER = "reference"


@dataclass(frozen=True)
class MethodSpec:
    """How one method answers: which adapter (None = base model) and which prompt."""

    name: str
    adapter: str | None
    prompt: PromptMode
    reference_adapter: str | None = None
    """Adapter of the accuracy reference (None = base model)."""
    reference_prompt: PromptMode | None = None
    """Prompt of the accuracy reference; None = no accuracy for this method."""
    description: str = ""


METHODS: dict[str, MethodSpec] = {
    FSPO: MethodSpec(FSPO, FSPO, "few_shot", REFERENCE_ADAPTER, "few_shot", "FSPO adapter"),
    BASE: MethodSpec(BASE, None, "zero_shot", None, None, "base model, zero-shot"),
    FEW_SHOT: MethodSpec(FEW_SHOT, None, "few_shot", None, "zero_shot", "few-shot prompting"),
    PREF_FT: MethodSpec(PREF_FT, PREF_FT, "few_shot", None, "few_shot", "few-shot Pref-FT"),
    IPO: MethodSpec(IPO, IPO, "zero_shot", None, "zero_shot", "non-personalised IPO"),
    ORACLE: MethodSpec(ORACLE, None, "oracle", None, "zero_shot", "oracle user description"),
}
"""The methods `run_evaluation` knows, by name."""


@dataclass(frozen=True)
class EvalItem:
    """One evaluation query: a user's held-out pair, with K shots from that same user."""

    user_id: str
    question: str
    chosen: str
    rejected: str
    shots: tuple[PreferenceExample, ...]
    user_description: str | None
    split: str


def load_records(path: str | Path) -> list[PreferenceRecord]:
    """Read a preference JSONL file (`fspo_train.data.records` schema); a bad line is an error.

    Evaluation refuses bad data rather than skipping it: a silently smaller split would
    change the numbers. Raises `InvalidExampleError` naming the file and line.
    """
    from fspo_train.data.loaders import load_records as load_jsonl

    return list(load_jsonl(path, strict=True).records)


def build_eval_items(
    records: Sequence[PreferenceRecord],
    *,
    split: str,
    num_shots: int,
    shot_records: Sequence[PreferenceRecord] | None = None,
    seed: int = 0,
    max_items: int | None = None,
) -> list[EvalItem]:
    """One item per record: the record is the query, K shots come from the same user.

    Shots are drawn (seeded, `fspo_train.data.episodes.episodes_for_queries`) from the user's
    other records in `records` and in `shot_records` (e.g. the users' training pairs); never a
    record with the query's question.

    Example:
        >>> recs = [
        ...     PreferenceRecord(user_id="u", question=f"q{i}", chosen="yes", rejected="no")
        ...     for i in range(3)
        ... ]
        >>> items = build_eval_items(recs, split="held_out", num_shots=2)
        >>> [len(item.shots) for item in items]
        [2, 2, 2]
    """
    episodes = episodes_for_queries(
        records, [*records, *(shot_records or [])], num_shots=num_shots, seed=seed
    )
    if episodes.skipped:
        logger.warning(
            "%s: %d queries got fewer than %d shots (e.g. %s)",
            split,
            len(episodes.skipped),
            num_shots,
            episodes.skipped[0],
        )
    items = [
        EvalItem(
            user_id=episode.user_id,
            question=episode.query.question,
            chosen=episode.query.chosen,
            rejected=episode.query.rejected,
            shots=tuple(s.to_example() for s in episode.shots),
            user_description=episode.query.user_description,
            split=split,
        )
        for episode in episodes.episodes
    ]
    if max_items is not None and len(items) > max_items:
        items = random.Random(seed).sample(items, max_items)  # noqa: S311 - not secrets
    return items


def render_item(
    fmt: PromptFormat,
    item: EvalItem,
    mode: PromptMode,
    *,
    count_tokens: Callable[[str], int] | None = None,
    reserve_tokens: int = 0,
) -> RenderedPrompt:
    """Render `item` for a prompt mode, through `PromptFormat.render` only.

    `few_shot`: the user's shots and the question (as in training; under RAT the model writes
    the user description first); `zero_shot`: the question alone; `oracle`: the question and
    the true user description. With `count_tokens`, the `max_prompt_tokens` budget applies.
    """
    kwargs: dict[str, Any] = {"count_tokens": count_tokens, "reserve_tokens": reserve_tokens}
    if mode == "few_shot":
        return fmt.render(list(item.shots), item.question, **kwargs)
    if mode == "oracle":
        if not item.user_description:
            msg = f"User {item.user_id!r} has no user_description; the oracle baseline needs one."
            raise ValueError(msg)
        return fmt.render([], item.question, user_description=item.user_description, **kwargs)
    return fmt.render([], item.question, **kwargs)


def tokenize_items(
    fmt: PromptFormat, tokenizer: Any, items: Sequence[EvalItem], mode: PromptMode
) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """Prompt, chosen-completion and rejected-completion token ids of each item.

    Tokenized exactly as training does (`fspo_train.data.tokenization`); under RAT the few-shot
    completions start with the user's description, as in training (it cancels in the margin).
    Over the format's token budget the oldest shots are dropped, keeping room for the answer.
    """
    from fspo_train.data.tokenization import completion_token_ids, prompt_token_ids, token_counter

    counter = token_counter(fmt, tokenizer) if fmt.max_prompt_tokens else None
    rat = fmt.rationale == "user_description" and mode == "few_shot"
    prompts, chosen, rejected = [], [], []
    for item in items:
        if rat and item.user_description is None:
            msg = (
                f"rationale='user_description' needs a user_description; {item.user_id!r} has none."
            )
            raise ValueError(msg)
        description = item.user_description if rat else None
        texts = [
            fmt.completion(r, user_description=description) for r in (item.chosen, item.rejected)
        ]
        reserve = 0
        if counter is not None:
            reserve = 1 + max(
                len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts
            )
        rendered = render_item(fmt, item, mode, count_tokens=counter, reserve_tokens=reserve)
        prompt = prompt_token_ids(fmt, tokenizer, rendered)
        prompts.append(prompt)
        chosen.append(completion_token_ids(fmt, tokenizer, rendered, texts[0], prompt))
        rejected.append(completion_token_ids(fmt, tokenizer, rendered, texts[1], prompt))
    return prompts, chosen, rejected


def generation_prompts(
    fmt: PromptFormat,
    tokenizer: Any,
    items: Sequence[EvalItem],
    mode: PromptMode,
    *,
    max_new_tokens: int = 0,
) -> list[list[int]]:
    """Prompt token ids to generate from, within the format's budget (if any)."""
    from fspo_train.data.tokenization import prompt_token_ids, token_counter

    counter = token_counter(fmt, tokenizer) if fmt.max_prompt_tokens else None
    return [
        prompt_token_ids(
            fmt,
            tokenizer,
            render_item(fmt, item, mode, count_tokens=counter, reserve_tokens=max_new_tokens),
        )
        for item in items
    ]


def find_stage1_adapter(adapter_dir: str | Path) -> Path | None:
    """The stage-1 (Pref-FT) adapter saved in a subfolder of a training output, if any."""
    adapter_dir = Path(adapter_dir)
    found = sorted(p.parent for p in adapter_dir.glob("*/adapter_config.json"))
    found = [p for p in found if not p.name.startswith("checkpoint-")]
    preferred = [p for p in found if any(k in p.name.lower() for k in ("pref", "stage1", "sft"))]
    if len(preferred) == 1:
        return preferred[0]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        logger.warning("Several adapters in %s (%s); give the stage-1 one.", adapter_dir, found)
    return None


@dataclass
class EvalConfig:
    """What to evaluate and how."""

    adapter: Path
    """The FSPO adapter folder (with `fspo_format.json`)."""
    splits: dict[str, Path] | None = None
    """Split name -> preference JSONL of the queries to evaluate (e.g. trained, held_out).
    Default: the training run's `splits/` (`test_questions.jsonl` as `trained`: trained
    users on held-out questions; `test_users.jsonl` as `held_out`: users never trained on)."""
    shots: Path | None = None
    """JSONL of extra shot records (default: the run's `splits/train.jsonl` when the splits
    are defaulted). Shots always come from the same user, never with the query's question."""
    base_model: str | None = None
    """Default: `fspo_format.json` `base_model_id`, else `adapter_config.json`."""
    reference: Path | None = None
    """Accuracy reference adapter; default the stage-1 adapter, else the base model."""
    pref_ft_adapter: Path | None = None
    """Stage-1 adapter; default: found in a subfolder of `adapter`."""
    ipo_adapter: Path | None = None
    """A 0-shot (non-personalised) IPO adapter, for the `ipo` baseline."""
    methods: list[str] | None = None
    """Default: every method whose inputs are available."""
    baseline: str = BASE
    beta: float | None = None
    """β of the implicit reward; default: the run's `fspo_train_config.yaml`, else 0.01.
    (Accuracy does not depend on β > 0; the reported rewards and margins scale with it.)"""
    num_shots: int | None = None
    """Default: the format's `num_shots`."""
    max_new_tokens: int = 128
    batch_size: int = 8
    max_items: int | None = None
    """Evaluate at most this many queries per split (seeded sample)."""
    seed: int = 0
    accuracy: bool = True
    win_rate: bool = True
    output_dir: Path | None = None
    """Default: `adapter` (so `fspo publish` puts the results in the model card)."""
    device: str | None = None


SPLITS_DIRNAME = "splits"
_DEFAULT_SPLITS = {"trained": "test_questions.jsonl", "held_out": "test_users.jsonl"}


def default_splits(adapter_dir: str | Path) -> tuple[dict[str, Path], Path | None]:
    """The evaluation splits a training run saved (`splits/`), and its shot pool.

    Returns `({"trained": test_questions.jsonl, "held_out": test_users.jsonl}, train.jsonl)`,
    leaving out empty or missing files.

    Raises:
        ValueError: The run saved no non-empty split.
    """
    folder = Path(adapter_dir) / SPLITS_DIRNAME
    splits = {
        name: folder / filename
        for name, filename in _DEFAULT_SPLITS.items()
        if (folder / filename).is_file() and (folder / filename).stat().st_size > 0
    }
    if not splits:
        msg = (
            f"No evaluation data given and {folder} holds no held-out split. Pass "
            "--split NAME=JSONL, or train with `holdout_users` / `holdout_question_fraction`."
        )
        raise ValueError(msg)
    train = folder / "train.jsonl"
    return splits, (train if train.is_file() else None)


def _run_beta(adapter: Path, default: float = 0.01) -> float:
    """β the run was trained with (`fspo_train_config.yaml`), else `default`."""
    import yaml

    path = adapter / "fspo_train_config.yaml"
    if path.is_file():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("beta"), int | float):
            return float(data["beta"])
    return default


def _adapter_base(adapter: Path) -> str | None:
    path = adapter / "adapter_config.json"
    if not path.is_file():
        return None
    value = json.loads(path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    return str(value) if value else None


def _resolve_methods(config: EvalConfig, items: Sequence[EvalItem]) -> list[str]:
    available = {FSPO, BASE, FEW_SHOT}
    if config.pref_ft_adapter is not None:
        available.add(PREF_FT)
    if config.ipo_adapter is not None:
        available.add(IPO)
    if items and all(item.user_description for item in items):
        available.add(ORACLE)
    if config.methods is None:
        return [m for m in METHODS if m in available]
    for name in config.methods:
        if name not in METHODS:
            msg = f"Unknown method {name!r}; choose from {sorted(METHODS)}."
            raise ValueError(msg)
        if name not in available:
            fixes = {
                PREF_FT: "give the stage-1 adapter (--pref-ft-adapter)",
                IPO: "give a 0-shot IPO adapter (--ipo-adapter)",
                ORACLE: "every record needs a user_description",
            }
            msg = f"Method {name!r} cannot run: {fixes.get(name, 'inputs missing')}."
            raise ValueError(msg)
    return list(config.methods)


class _Runner:
    """Computes and caches log-probs and generations per (adapter, prompt mode, split)."""

    def __init__(self, policies: PolicySet, fmt: PromptFormat, config: EvalConfig) -> None:
        self.policies = policies
        self.fmt = fmt
        self.config = config
        self._logps: dict[tuple[str | None, PromptMode, str], tuple[list[float], list[float]]] = {}
        self._gens: dict[tuple[str | None, PromptMode, str], list[str]] = {}

    def logprobs(
        self, adapter: str | None, mode: PromptMode, split: str, items: Sequence[EvalItem]
    ) -> tuple[list[float], list[float]]:
        key = (adapter, mode, split)
        if key not in self._logps:
            prompts, chosen, rejected = tokenize_items(
                self.fmt, self.policies.tokenizer, items, mode
            )
            pairs = list(zip(prompts * 2, chosen + rejected, strict=True))
            with self.policies.use(adapter):
                scores = self.policies.logprobs(
                    pairs,
                    batch_size=self.config.batch_size,
                    desc=f"log-probs {adapter or 'base'}/{mode}/{split}",
                )
            self._logps[key] = (scores[: len(items)], scores[len(items) :])
        return self._logps[key]

    def generations(
        self, adapter: str | None, mode: PromptMode, split: str, items: Sequence[EvalItem]
    ) -> list[str]:
        key = (adapter, mode, split)
        if key not in self._gens:
            prompts = generation_prompts(
                self.fmt,
                self.policies.tokenizer,
                items,
                mode,
                max_new_tokens=self.config.max_new_tokens,
            )
            with self.policies.use(adapter):
                raw = self.policies.generate(
                    prompts,
                    max_new_tokens=self.config.max_new_tokens,
                    batch_size=self.config.batch_size,
                    desc=f"generating {adapter or 'base'}/{mode}/{split}",
                )
            self._gens[key] = [self.fmt.parse_completion(text).response for text in raw]
        return self._gens[key]


def load_policies(config: EvalConfig, fmt: PromptFormat, methods: Sequence[str]) -> PolicySet:
    """Load the base model and the adapters `methods` need."""
    from fspo_train.eval.scoring import PolicySet

    base = config.base_model or fmt.base_model_id or _adapter_base(config.adapter)
    if base is None:
        msg = (
            f"No base model known for {config.adapter}: set `base_model_id` in fspo_format.json "
            "or pass --base-model."
        )
        raise AdapterNotFoundError(msg)
    adapters: dict[str, str | Path] = {FSPO: config.adapter}
    if config.reference is not None:
        adapters[REFERENCE_ADAPTER] = config.reference
    elif config.pref_ft_adapter is not None:
        adapters[REFERENCE_ADAPTER] = config.pref_ft_adapter
    if PREF_FT in methods and config.pref_ft_adapter is not None:
        adapters[PREF_FT] = config.pref_ft_adapter
    if IPO in methods and config.ipo_adapter is not None:
        adapters[IPO] = config.ipo_adapter
    return PolicySet(base, adapters, device=config.device)


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
    if config.beta is None:
        config.beta = _run_beta(config.adapter)
    if config.splits is None:
        config.splits, default_shots = default_splits(config.adapter)
        config.shots = config.shots or default_shots
    shot_records = load_records(config.shots) if config.shots is not None else None
    items_by_split = {
        name: build_eval_items(
            load_records(path),
            split=name,
            num_shots=num_shots,
            shot_records=shot_records,
            seed=config.seed,
            max_items=config.max_items,
        )
        for name, path in config.splits.items()
    }
    all_items = [item for items in items_by_split.values() for item in items]
    methods = _resolve_methods(config, all_items)
    if config.win_rate and config.baseline not in methods:
        methods.append(config.baseline)
    if config.win_rate and judge is None:
        msg = "Win rates need a judge: pass --judge / --judge-model, or --no-win-rate."
        raise ValueError(msg)
    if policies is None:
        say(f"Loading the base model and {len(methods)} method(s): {', '.join(methods)}")
        policies = load_policies(config, fmt, methods)
    runner = _Runner(policies, fmt, config)
    has_reference = REFERENCE_ADAPTER in policies.adapters
    reference_name = (
        str(config.reference or config.pref_ft_adapter) if has_reference else "base model"
    )

    accuracy: dict[str, dict[str, Any]] = {}
    if config.accuracy:
        for name in methods:
            spec = METHODS[name]
            if spec.reference_prompt is None:
                continue
            ref_adapter = spec.reference_adapter if has_reference else None
            say(f"Implicit-reward accuracy: {name}")
            for split, items in items_by_split.items():
                pol_c, pol_r = runner.logprobs(spec.adapter, spec.prompt, split, items)
                ref_c, ref_r = runner.logprobs(ref_adapter, spec.reference_prompt, split, items)
                pairs = [
                    PairLogProbs(*values) for values in zip(pol_c, pol_r, ref_c, ref_r, strict=True)
                ]
                result = implicit_reward_accuracy(pairs, config.beta)
                accuracy.setdefault(name, {})[split] = result.to_dict()

    win: dict[str, dict[str, Any]] = {}
    generations: list[dict[str, Any]] = []
    if config.win_rate and judge is not None:
        outputs: dict[str, dict[str, list[str]]] = {}
        for name in methods:
            spec = METHODS[name]
            say(f"Generating: {name}")
            outputs[name] = {
                split: runner.generations(spec.adapter, spec.prompt, split, items)
                for split, items in items_by_split.items()
            }
        for name in methods:
            if name == config.baseline:
                continue
            say(f"Judging {name} against {config.baseline}")
            for split, items in items_by_split.items():
                comparisons = [
                    Judgement(item.question, item.user_description, ours, theirs)
                    for item, ours, theirs in zip(
                        items, outputs[name][split], outputs[config.baseline][split], strict=True
                    )
                ]
                scores = compare_all(judge, comparisons, desc=f"judging {name}/{split}")
                win.setdefault(name, {})[split] = win_rate(scores).to_dict()
                generations += [
                    {
                        "method": name,
                        "baseline": config.baseline,
                        "split": split,
                        "user_id": item.user_id,
                        "question": item.question,
                        "output": c.a,
                        "baseline_output": c.b,
                        "score": score,
                    }
                    for item, c, score in zip(items, comparisons, scores, strict=True)
                ]

    results: dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "adapter": str(config.adapter),
        "base_model": config.base_model or fmt.base_model_id or _adapter_base(config.adapter),
        "reference": reference_name,
        "methods": {name: METHODS[name].description for name in methods},
        "splits": {name: len(items) for name, items in items_by_split.items()},
        "num_shots": num_shots,
        "beta": config.beta,
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
