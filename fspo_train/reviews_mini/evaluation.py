"""Evaluate the benchmark's methods on held-out questions: win rate and implicit-reward accuracy.

Every method is one trained adapter (or the base model) and a way of prompting it:

| method     | model                        | prompt                     | accuracy reference      |
|------------|------------------------------|----------------------------|-------------------------|
| `base`     | base LM                      | question only              | - (it is the reference) |
| `few_shot` | base LM                      | K shots                    | base LM, question only  |
| `pref_ft`  | FSPO stage 1 (Pref-FT)       | K shots                    | base LM, K shots        |
| `ipo`      | 0-shot Pref-FT + IPO         | question only              | its stage 1, same       |
| `fspo`     | FSPO (Pref-FT + IPO)         | K shots                    | its stage 1, same       |
| `fspo_rat` | FSPO trained with RAT        | K shots; writes the        | its stage 1, true       |
|            |                              | description, then answers  | description given       |
| `oracle`   | 0-shot, trained with the     | question; the TRUE         | its stage 1, same       |
|            | teacher-forced description   | description starts answer  |                         |

Win rate: each method's greedy review of a held-out question, for each user, against the base
model's review of the same question, judged by the domain's exact judge in both orders (ties
count half). Accuracy: the share of held-out preference pairs (the user's test records, shots
from their training records) where beta * log pi/pi_ref is higher for the chosen response
(`fspo_train.eval.metrics.implicit_reward_accuracy`). Every prompt goes through the adapter's own
`PromptFormat`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fspo_train.data.records import PreferenceRecord
from fspo_train.reviews_mini.data import ExactJudge
from fspo_train.reviews_mini.domain import Domain, Question, SimUser
from langchain_fspo.preference import PreferenceExample
from langchain_fspo.prompt_format import PromptFormat

__all__ = ["METHODS", "EvalSettings", "Method", "evaluate_methods", "shots_curve"]

logger = logging.getLogger(__name__)

Description = Literal["none", "generated", "oracle"]


@dataclass(frozen=True)
class Method:
    """One row of the table: which adapter answers and how it is prompted."""

    name: str
    label: str
    adapter: str | None
    """Adapter name in the `PolicySet` (None = the base LM)."""
    shots: bool
    """Whether the user's K shots are in the prompt."""
    description: Description = "none"
    """`generated`: the model writes the user description (RAT); `oracle`: the true one is
    given as the start of the answer (teacher forcing); `none`: no description."""
    reference: str | None = None
    """Adapter of the accuracy reference (None = base LM)."""
    reference_shots: bool | None = None
    """Reference prompt has the shots; None = no accuracy for this method."""


METHODS: tuple[Method, ...] = (
    Method("base", "Base (tiny LM)", None, shots=False),
    Method("few_shot", "Few-shot prompting", None, shots=True, reference_shots=False),
    Method("pref_ft", "Few-shot Pref-FT", "fspo_stage1", shots=True, reference_shots=True),
    Method(
        "ipo",
        "IPO (not personalised)",
        "ipo",
        shots=False,
        reference="ipo_stage1",
        reference_shots=False,
    ),
    Method("fspo", "FSPO", "fspo", shots=True, reference="fspo_stage1", reference_shots=True),
    Method(
        "fspo_rat",
        "FSPO + RAT",
        "rat",
        shots=True,
        description="generated",
        reference="rat_stage1",
        reference_shots=True,
    ),
    Method(
        "oracle",
        "Oracle (true description)",
        "oracle",
        shots=False,
        description="oracle",
        reference="oracle_stage1",
        reference_shots=False,
    ),
)
"""The benchmark's methods, in table order."""


@dataclass(frozen=True)
class EvalSettings:
    """How much to evaluate."""

    num_shots: int = 4
    questions_per_user: int = 24
    """Held-out questions generated for, per user (win rate)."""
    pairs_per_user: int = 24
    """Held-out preference pairs scored, per user (accuracy)."""
    max_new_tokens: int = 64
    beta: float = 0.1
    batch_size: int = 32
    seed: int = 0


@dataclass(frozen=True)
class _Query:
    user: SimUser
    question: Question
    shots: tuple[PreferenceExample, ...]


def _by_user(records: Sequence[PreferenceRecord]) -> dict[str, list[PreferenceRecord]]:
    out: dict[str, list[PreferenceRecord]] = {}
    for record in records:
        out.setdefault(record.user_id, []).append(record)
    return out


class _Prompter:
    """Token ids of prompts and completions for one adapter's `PromptFormat`, as in training.

    Prompts and completions are tokenized by `fspo_train.data.tokenization`, exactly as the
    trainer tokenized them (the chat template applied to the whole conversation).
    """

    def __init__(self, fmt: PromptFormat, tokenizer: Any) -> None:
        self.fmt = fmt
        self.tokenizer = tokenizer

    def prompt(self, shots: Sequence[PreferenceExample], question: str) -> list[int]:
        """Prompt token ids (generation prompt included)."""
        from fspo_train.data.tokenization import prompt_token_ids

        return prompt_token_ids(self.fmt, self.tokenizer, self.fmt.render(list(shots), question))

    def prefix(self, description: str | None) -> str:
        """The start of the answer when the description is given (teacher forcing)."""
        if description is None:
            return ""
        marker = "\x00"
        content = self.fmt.completion(marker, user_description=description)
        return content[: content.index(marker)]

    def prefixed_prompt(
        self, shots: Sequence[PreferenceExample], question: str, description: str
    ) -> list[int]:
        """Prompt ids followed by the answer's start: the true description, then the header."""
        ids = self.tokenizer(self.prefix(description), add_special_tokens=False)["input_ids"]
        return self.prompt(shots, question) + [int(i) for i in ids]

    def pair(
        self,
        shots: Sequence[PreferenceExample],
        question: str,
        response: str,
        description: str | None,
    ) -> tuple[list[int], list[int]]:
        """(prompt ids, completion ids) of `response`, as training tokenizes them.

        Under RAT the completion starts with the user description, as in training; it is
        the same for the chosen and the rejected response, so it cancels in the margin.
        """
        from fspo_train.data.tokenization import completion_token_ids, prompt_token_ids

        rendered = self.fmt.render(list(shots), question)
        prompt = prompt_token_ids(self.fmt, self.tokenizer, rendered)
        text = self.fmt.completion(response, user_description=description)
        return prompt, completion_token_ids(self.fmt, self.tokenizer, rendered, text, prompt)


def _eval_queries(
    domain: Domain,
    shot_records: Sequence[PreferenceRecord],
    settings: EvalSettings,
) -> list[_Query]:
    rng = random.Random(settings.seed)  # noqa: S311 - seeded sampling, not secrets
    pool = _by_user(shot_records)
    questions = domain.questions("test")
    queries = []
    for user in domain.users():
        chosen = rng.sample(questions, min(settings.questions_per_user, len(questions)))
        for question in chosen:
            shots = rng.sample(pool[user.id], min(settings.num_shots, len(pool[user.id])))
            queries.append(_Query(user, question, tuple(s.to_example() for s in shots)))
    return queries


def _accuracy_items(
    test_records: Sequence[PreferenceRecord],
    shot_records: Sequence[PreferenceRecord],
    settings: EvalSettings,
    num_shots: int,
) -> list[tuple[PreferenceRecord, tuple[PreferenceExample, ...]]]:
    rng = random.Random(settings.seed + 1)  # noqa: S311 - seeded sampling, not secrets
    pool = _by_user(shot_records)
    items = []
    for user_id, rows in sorted(_by_user(test_records).items()):
        picked = rng.sample(rows, min(settings.pairs_per_user, len(rows)))
        for record in picked:
            shots = rng.sample(pool[user_id], min(num_shots, len(pool[user_id])))
            items.append((record, tuple(s.to_example() for s in shots)))
    return items


def _accuracy(
    policies: Any,
    prompters: dict[str | None, _Prompter],
    method: Method,
    items: Sequence[tuple[PreferenceRecord, tuple[PreferenceExample, ...]]],
    settings: EvalSettings,
    shots_override: bool | None = None,
) -> list[float]:
    """Per-item implicit-reward correctness (1, 0.5, 0) of `method` on `items`."""
    from fspo_train.eval.metrics import PairLogProbs

    def logps(adapter: str | None, with_shots: bool) -> tuple[list[float], list[float]]:
        prompter = prompters[adapter]
        rat = prompter.fmt.rationale == "user_description"
        pairs = []
        for record, shots in items:
            desc = record.user_description if rat else None
            use = shots if with_shots else ()
            pairs.append(prompter.pair(use, record.question, record.chosen, desc))
            pairs.append(prompter.pair(use, record.question, record.rejected, desc))
        with policies.use(adapter):
            scores = policies.logprobs(
                pairs, batch_size=settings.batch_size, desc=f"log-probs {adapter or 'base'}"
            )
        return scores[0::2], scores[1::2]

    policy_shots = method.shots if shots_override is None else shots_override
    ref_shots = method.reference_shots if shots_override is None else shots_override
    pc, pr = logps(method.adapter, policy_shots)
    rc, rr = logps(method.reference, bool(ref_shots))
    out = []
    for values in zip(pc, pr, rc, rr, strict=True):
        chosen, rejected = PairLogProbs(*values).rewards(settings.beta)
        margin = chosen - rejected
        out.append(0.5 if abs(margin) <= 1e-6 else float(margin > 0))  # noqa: PLR2004
    return out


def _generate(
    policies: Any,
    prompter: _Prompter,
    method: Method,
    queries: Sequence[_Query],
    settings: EvalSettings,
) -> list[Any]:
    prompts = []
    for query in queries:
        shots = query.shots if method.shots else ()
        if method.description == "oracle":
            ids = prompter.prefixed_prompt(shots, query.question.text, query.user.description)
        else:
            ids = prompter.prompt(shots, query.question.text)
        prompts.append(ids)
    budget = settings.max_new_tokens + (24 if method.description == "generated" else 0)
    with policies.use(method.adapter):
        raw = policies.generate(
            prompts,
            max_new_tokens=budget,
            batch_size=settings.batch_size,
            desc=f"generating {method.name}",
        )
    if method.description == "oracle":
        raw = [prompter.prefix(q.user.description) + r for q, r in zip(queries, raw, strict=True)]
    return [prompter.fmt.parse_completion(text) for text in raw]


def _description_match(queries: Sequence[_Query], parsed: Sequence[Any]) -> dict[str, float]:
    """Share (%) of generated user descriptions equal to the true one, per user group."""
    hits: dict[str, list[float]] = {}
    for query, p in zip(queries, parsed, strict=True):
        same = (p.user_description or "").strip() == query.user.description
        hits.setdefault(query.user.group, []).append(float(same))
    return {g: 100 * sum(v) / len(v) for g, v in hits.items()}


def evaluate_methods(
    domain: Domain,
    policies: Any,
    formats: dict[str | None, PromptFormat],
    methods: Sequence[Method],
    *,
    shot_records: Sequence[PreferenceRecord],
    test_records: Sequence[PreferenceRecord],
    settings: EvalSettings,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Win rates against the base model and implicit-reward accuracies, per user group.

    Args:
        domain: Supplies the held-out questions, the users and the judge.
        policies: A `fspo_train.eval.scoring.PolicySet` with every adapter `methods` name.
        formats: Adapter name (None = base) -> its `PromptFormat`.
        methods: The rows to evaluate (`base` is always generated: it is the baseline).
        shot_records: Records the shots are drawn from (the users' training-split records).
        test_records: Held-out preference pairs for the accuracy.
        settings: Sizes and decoding.
        progress: Called with a short line before each stage.

    Returns:
        `{"methods": {name: {"label", "win_rate": {group: ...}, "win_rate_by_user": {user:
        ...}, "accuracy": {group: ...}}}, "samples": [...]}`.
    """
    say = progress or (lambda line: logger.info("%s", line))
    judge = ExactJudge(domain)
    prompters = {name: _Prompter(fmt, policies.tokenizer) for name, fmt in formats.items()}
    queries = _eval_queries(domain, shot_records, settings)
    groups = {u.id: u.group for u in domain.users()}
    base = next(m for m in METHODS if m.name == "base")
    say("generating: base")
    base_out = [p.response for p in _generate(policies, prompters[None], base, queries, settings)]
    items = _accuracy_items(test_records, shot_records, settings, settings.num_shots)
    results: dict[str, Any] = {"methods": {}, "samples": []}
    for method in methods:
        row: dict[str, Any] = {"label": method.label, "win_rate": {}, "accuracy": {}}
        if method.name != "base":
            say(f"generating: {method.name}")
            parsed = _generate(policies, prompters[method.adapter], method, queries, settings)
            outs = [p.response for p in parsed]
            if method.description == "generated":
                row["description_match"] = _description_match(queries, parsed)
            scores: dict[str, list[float]] = {}
            by_user: dict[str, list[float]] = {}
            for query, ours, theirs in zip(queries, outs, base_out, strict=True):
                score = judge.compare(query.question.text, query.user.description, ours, theirs)
                scores.setdefault(query.user.group, []).append(score)
                by_user.setdefault(query.user.id, []).append(score)
            row["win_rate"] = {g: 100 * sum(s) / len(s) for g, s in scores.items()}
            row["win_rate_by_user"] = {u: 100 * sum(s) / len(s) for u, s in by_user.items()}
            results["samples"] += [
                {"method": method.name, "user": q.user.id, "question": q.question.text, "output": o}
                for q, o in list(zip(queries, outs, strict=True))[:: max(1, len(queries) // 16)]
            ]
        else:
            row["win_rate"] = dict.fromkeys(("trained", "interpolated"), 50.0)
        if method.reference_shots is not None:
            say(f"scoring: {method.name}")
            correct = _accuracy(policies, prompters, method, items, settings)
            acc: dict[str, list[float]] = {}
            for (record, _), value in zip(items, correct, strict=True):
                acc.setdefault(groups[record.user_id], []).append(value)
            row["accuracy"] = {g: 100 * sum(v) / len(v) for g, v in acc.items()}
        results["methods"][method.name] = row
    results["samples"] += [
        {"method": "base", "user": q.user.id, "question": q.question.text, "output": o}
        for q, o in list(zip(queries, base_out, strict=True))[:: max(1, len(queries) // 16)]
    ]
    return results


def shots_curve(
    policies: Any,
    formats: dict[str | None, PromptFormat],
    method: Method,
    *,
    shot_records: Sequence[PreferenceRecord],
    test_records: Sequence[PreferenceRecord],
    settings: EvalSettings,
    shots: Sequence[int] = (0, 1, 2, 4, 8),
    groups: dict[str, str],
) -> dict[str, dict[str, float]]:
    """Implicit-reward accuracy of `method` (and its reference) with k shots, per user group."""
    curve: dict[str, dict[str, float]] = {}
    for k in shots:
        fmts = {name: fmt.model_copy(update={"num_shots": k}) for name, fmt in formats.items()}
        prompters = {name: _Prompter(fmt, policies.tokenizer) for name, fmt in fmts.items()}
        items = _accuracy_items(test_records, shot_records, settings, k)
        correct = _accuracy(policies, prompters, method, items, settings, shots_override=k > 0)
        acc: dict[str, list[float]] = {}
        for (record, _), value in zip(items, correct, strict=True):
            acc.setdefault(groups[record.user_id], []).append(value)
        curve[str(k)] = {g: 100 * sum(v) / len(v) for g, v in acc.items()}
    return curve
