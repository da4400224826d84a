"""How `LocalBackend` runs a group of batched requests as one left-padded `model.generate`.

`BatchedGeneration` is the backend's batch worker (`MicroBatcher` calls `_run_batch`): it
encodes what is not encoded yet, groups requests by `batch_key`, and runs each group with
`left_pad` inputs and a `row_stops` criterion that gives every row its own `max_tokens`, stop
strings, end of sequence and cancellation, then cuts each row where it ended. torch and
transformers are imported inside the functions only (`import langchain_fspo` stays light).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import Any

from langchain_fspo.backends._local_batch import BatchRequest, batch_key, runs_alone
from langchain_fspo.backends._local_generation import (
    StopText,
    finish_reason,
    generate_kwargs,
    generation_failed,
    import_stack,
)
from langchain_fspo.backends._local_model import LocalModelParts
from langchain_fspo.backends.base import Generation

__all__ = ["BatchedGeneration", "left_pad", "row_stops"]


def left_pad(torch: Any, rows: Sequence[list[int]], pad_id: int, device: str) -> tuple[Any, Any]:
    """`input_ids` and `attention_mask` of `rows`, padded on the left to the longest."""
    width = max(len(r) for r in rows)
    ids = [[pad_id] * (width - len(r)) + list(r) for r in rows]
    mask = [[0] * (width - len(r)) + [1] * len(r) for r in rows]
    return (
        torch.tensor(ids, dtype=torch.long, device=device),
        torch.tensor(mask, dtype=torch.long, device=device),
    )


def row_stops(
    *,
    prompt_len: int,
    max_new: Sequence[int],
    stops: Sequence[list[str] | None],
    eos_ids: Sequence[int],
    cancels: Sequence[threading.Event],
    tokenizer: Any,
) -> Any:
    """A stopping criterion that ends each row at its own limit and records where.

    A row ends at its `max_new` tokens, at an end-of-sequence id, once its text ends with one
    of its stop strings (transformers' `StopStringCriteria`, as `stop_strings=` would), or when
    its caller gave up. `.ended[i]` is the number of tokens row `i` had generated then (None:
    still running); `.max_new` and `.stops` are the rows' limits. `generate` pads the rows
    that ended until the whole batch is done.
    """
    import torch
    from transformers import StoppingCriteria
    from transformers.generation.stopping_criteria import StopStringCriteria

    by_stop: dict[tuple[str, ...], list[int]] = {}
    for row, stop in enumerate(stops):
        cleaned = tuple(s for s in stop or () if s)
        if cleaned:
            by_stop.setdefault(cleaned, []).append(row)
    string_criteria = [
        (StopStringCriteria(tokenizer, list(stop)), rows) for stop, rows in by_stop.items()
    ]
    eos = torch.tensor(sorted(set(eos_ids)), dtype=torch.long)

    class _RowStops(StoppingCriteria):
        def __init__(self) -> None:
            self.ended: list[int | None] = [None] * len(max_new)
            self.max_new = list(max_new)
            self.stops = [list(s) if s else None for s in stops]

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:  # noqa: ARG002
            produced = input_ids.shape[1] - prompt_len
            done = torch.isin(input_ids[:, -1].cpu(), eos)
            for criterion, rows in string_criteria:
                hit = criterion(input_ids, scores).cpu()
                done[rows] |= hit[rows]
            for row, limit in enumerate(max_new):
                if produced >= limit or cancels[row].is_set():
                    done[row] = True
                if done[row] and self.ended[row] is None:
                    self.ended[row] = produced
            return done.to(input_ids.device)

    return _RowStops()


class BatchedGeneration(LocalModelParts):
    """`LocalBackend`'s batch worker (a mixin: the backend provides the model side)."""

    def _run_batch(self, requests: list[BatchRequest]) -> None:
        """The batcher's worker: encode, group by `batch_key`, one `generate` per group."""
        ready: list[BatchRequest] = []
        for request in requests:
            try:
                if request.prompt_ids is None:  # agenerate: encoded here, off the event loop
                    request.prompt_ids = self.encode_prompt(request.prompt)
            except Exception as e:  # noqa: BLE001 - this caller's error, the others go on
                request.future.set_exception(e)
            else:
                ready.append(request)
        groups: dict[tuple[Any, ...], list[BatchRequest]] = {}
        for request in ready:
            groups.setdefault(batch_key(request), []).append(request)
        for group in groups.values():
            try:
                results = self._generate_rows(group)
            except ValueError as e:  # invalid parameters: the callers' error
                error: BaseException = e
            except RuntimeError as e:  # out of memory, device errors
                error = generation_failed(group[0].adapter, e)
                error.__cause__ = e
            else:
                for request, result in zip(group, results, strict=True):
                    request.future.set_result(result)
                continue
            for request in group:
                request.future.set_exception(error)

    def _generate_rows(self, group: list[BatchRequest]) -> list[Generation]:
        """Run `group` (one `batch_key`) as one left-padded `generate` call."""
        if runs_alone(group[0].params):
            return [self._generate_alone(group[0])]
        torch, transformers, _ = import_stack()
        rows = [r.prompt_ids or [] for r in group]
        input_ids, attention_mask = left_pad(torch, rows, self.tokenizer.pad_token_id, self.device)
        prompt_len = int(input_ids.shape[1])
        max_new = [self._max_new(r.params) for r in group]
        first = group[0]
        kwargs = generate_kwargs(
            dataclasses.replace(first.params, stop=None, max_tokens=max(max_new)),
            tokenizer=self.tokenizer,
            default_max_tokens=self.default_max_tokens,
            prompt_len=prompt_len,
        )
        stops = row_stops(
            prompt_len=prompt_len,
            max_new=max_new,
            stops=[r.params.stop for r in group],
            eos_ids=self._eos_ids,
            cancels=[r.cancel for r in group],
            tokenizer=self.tokenizer,
        )
        kwargs["stopping_criteria"] = transformers.StoppingCriteriaList([stops])
        output = self._generate_locked(
            input_ids, attention_mask, first.adapter, first.params.seed, kwargs
        )
        results = []
        for i, request in enumerate(group):
            ended = stops.ended[i]
            length = max_new[i] if ended is None else min(ended, max_new[i])
            new_ids = [int(t) for t in output[i, prompt_len : prompt_len + length].tolist()]
            text, stopped = StopText(request.params.stop).cut(self._decode(new_ids))
            results.append(
                Generation(
                    text=text,
                    finish_reason=finish_reason(
                        new_ids, max_new[i], self.tokenizer.eos_token_id, stopped=stopped
                    ),
                    input_tokens=len(rows[i]),
                    output_tokens=len(new_ids),
                    model_name=self._model_name(request.adapter),
                    token_ids=new_ids,
                )
            )
        return results

    def _generate_alone(self, request: BatchRequest) -> Generation:
        """One request as its own `generate` (a beam search): `stop_strings`, first row."""
        torch, _, _ = import_stack()
        prompt_ids = request.prompt_ids or []
        params = request.params
        kwargs = generate_kwargs(
            params,
            tokenizer=self.tokenizer,
            default_max_tokens=self.default_max_tokens,
            prompt_len=len(prompt_ids),
        )
        input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.device)
        output = self._generate_locked(
            input_ids, torch.ones_like(input_ids), request.adapter, params.seed, kwargs
        )
        new_ids = [int(t) for t in output[0, len(prompt_ids) :].tolist()]
        text, stopped = StopText(params.stop).cut(self._decode(new_ids))
        return Generation(
            text=text,
            finish_reason=finish_reason(
                new_ids, self._max_new(params), self.tokenizer.eos_token_id, stopped=stopped
            ),
            input_tokens=len(prompt_ids),
            output_tokens=len(new_ids),
            model_name=self._model_name(request.adapter),
            token_ids=new_ids,
        )
