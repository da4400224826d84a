"""Run methods on evaluation items: summed log-probabilities for accuracy, greedy answers.

`MethodRunner` is the one place where a `Method` (`fspo_train.eval.methods`) meets the models:
`fspo eval` and the Reviews-mini benchmark both score and generate through it, so the same
method on the same items gives the same numbers in both. Each model is prompted through its
own `PromptFormat` (a model without one uses the base model's), and each result is computed
once per (model, prompt mode, item set).

Accuracy reference: by default each method is scored against its own reference (the paper's
definition: FSPO against its stage 1, IPO against its own, ...), so the column measures how far
each training moved its own start. With `common_reference=(model, prompt mode)` every method is
scored against that one model instead, so the accuracy column compares the methods themselves
(the Reviews-mini benchmark scores every row against the base model, zero-shot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from fspo_train.eval.items import EvalItem, Query
from fspo_train.eval.methods import Method, PromptMode
from fspo_train.eval.metrics import PairLogProbs
from fspo_train.eval.prompting import Prompter
from langchain_fspo.prompt_format import ParsedCompletion, PromptFormat

if TYPE_CHECKING:
    from fspo_train.eval.scoring import PolicySet

__all__ = ["MethodRunner"]


class MethodRunner:
    """Scores and answers of methods, each model through its own prompt format; cached.

    Example:
        ```python
        runner = MethodRunner(policies, {None: fmt}, batch_size=8, max_new_tokens=128)
        pairs = runner.pair_logprobs(METHODS["fspo"], items, key="held_out")
        answers = runner.answers(METHODS["fspo"], items, key="held_out")
        ```
    """

    def __init__(
        self,
        policies: PolicySet,
        formats: Mapping[str | None, PromptFormat],
        *,
        batch_size: int = 8,
        max_new_tokens: int = 128,
        description_tokens: int = 0,
        common_reference: tuple[str | None, PromptMode] | None = None,
    ) -> None:
        """Run on `policies`.

        Args:
            policies: The base model with the adapters the methods name.
            formats: Model (adapter name; None = base model) -> its `PromptFormat`; a model
                without an entry uses `formats[None]`.
            batch_size: Sequences per forward pass.
            max_new_tokens: Tokens generated per answer.
            description_tokens: More tokens for a model that writes the user description
                before its answer (RAT).
            common_reference: (model, prompt mode) every method's accuracy is measured
                against; None: each method's own reference (`Method.reference_adapter`).
        """
        self.policies = policies
        self.formats = dict(formats)
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.description_tokens = description_tokens
        self.common_reference = common_reference
        self._prompters: dict[str | None, Prompter] = {}
        self._logps: dict[tuple[str | None, PromptMode, str], tuple[list[float], list[float]]] = {}
        self._answers: dict[tuple[str | None, PromptMode, str], list[ParsedCompletion]] = {}

    def prompter(self, model: str | None) -> Prompter:
        """The token ids of `model`'s prompt format."""
        if model not in self._prompters:
            fmt = self.formats.get(model, self.formats[None])
            self._prompters[model] = Prompter(fmt, self.policies.tokenizer)
        return self._prompters[model]

    def reference_of(self, method: Method) -> str | None:
        """The accuracy reference model of `method` (None = the base model).

        The common reference when one is set; else the method's reference adapter if loaded,
        else the base model.
        """
        if self.common_reference is not None:
            return self.common_reference[0]
        reference = method.reference_adapter
        return reference if reference in self.policies.adapters else None

    def reference_prompt_of(self, method: Method) -> PromptMode:
        """The prompt mode the accuracy reference of `method` is scored with."""
        if method.reference_prompt is None:
            msg = f"Method {method.name!r} has no accuracy reference (it is the reference)."
            raise ValueError(msg)
        if self.common_reference is not None:
            return self.common_reference[1]
        return method.reference_prompt

    def logprobs(
        self, model: str | None, mode: PromptMode, items: Sequence[EvalItem], *, key: str
    ) -> tuple[list[float], list[float]]:
        """Summed log-probs of each item's chosen and rejected completion under `model`.

        `key` names the item set (e.g. the split): the same key must mean the same items.
        """
        cache_key = (model, mode, key)
        if cache_key not in self._logps:
            prompter = self.prompter(model)
            pairs = []
            for item in items:
                prompt, chosen, rejected = prompter.item_ids(item, mode)
                pairs += [(prompt, chosen), (prompt, rejected)]
            with self.policies.use(model):
                scores = self.policies.logprobs(
                    pairs, batch_size=self.batch_size, desc=f"log-probs {model or 'base'}/{mode}"
                )
            self._logps[cache_key] = (scores[0::2], scores[1::2])
        return self._logps[cache_key]

    def pair_logprobs(
        self, method: Method, items: Sequence[EvalItem], *, key: str
    ) -> list[PairLogProbs]:
        """Policy and reference log-probs of every item, for the implicit-reward accuracy."""
        reference_prompt = self.reference_prompt_of(method)
        policy = self.logprobs(method.adapter, method.prompt, items, key=key)
        reference = self.logprobs(self.reference_of(method), reference_prompt, items, key=key)
        return [PairLogProbs(*v) for v in zip(*policy, *reference, strict=True)]

    def writes_description(self, method: Method) -> bool:
        """Whether `method`'s model writes the user description before its answer (RAT)."""
        return method.prompt == "few_shot" and self.prompter(method.adapter).writes_description

    def answers(
        self, method: Method, queries: Sequence[Query], *, key: str
    ) -> list[ParsedCompletion]:
        """Greedy answers of `method` to `queries`, parsed by its format (description, answer).

        `key` names the query set: the same key must mean the same queries.
        """
        cache_key = (method.adapter, method.prompt, key)
        if cache_key not in self._answers:
            prompter = self.prompter(method.adapter)
            budget = self.max_new_tokens
            if self.writes_description(method):
                budget += self.description_tokens
            prompts = [prompter.generation_ids(q, method.prompt, budget=budget) for q in queries]
            with self.policies.use(method.adapter):
                raw = self.policies.generate(
                    prompts,
                    max_new_tokens=budget,
                    batch_size=self.batch_size,
                    desc=f"generating {method.name}",
                )
            if method.prompt == "oracle_answer":  # the teacher-forced start is part of the answer
                starts = [prompter.prefix(q.user_description) for q in queries]
                raw = [start + text for start, text in zip(starts, raw, strict=True)]
            self._answers[cache_key] = [prompter.fmt.parse_completion(text) for text in raw]
        return self._answers[cache_key]
