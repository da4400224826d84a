"""Token-by-token streaming for `LocalBackend`: `generate` in a worker thread, text as it comes.

Streams are not batched (`_local_batch` groups the non-streaming calls); each stream runs its own
`generate` with a transformers streamer feeding a queue, and stops at the next token once the
consumer closes the iterator or a stop sequence is seen.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from langchain_fspo.backends._local_generation import (
    StopText,
    cancel_criteria,
    finish_reason,
    generate_kwargs,
    generation_failed,
    import_stack,
    token_streamer,
)
from langchain_fspo.backends._local_model import LocalModelParts
from langchain_fspo.backends.base import GenerationChunk, GenerationParams

if TYPE_CHECKING:
    from langchain_fspo.prompt_format import RenderedPrompt

__all__ = ["TokenStreaming"]

_END = object()
"""Put on the token queue by the generation thread when it is done."""


class TokenStreaming(LocalModelParts):
    """`stream` for `LocalBackend` (mixed in; the model and helpers are the backend's)."""

    def stream(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Iterator[GenerationChunk]:
        """Stream the completion token by token (`generate` runs in a worker thread).

        Each chunk holds the text one new token adds (a token that ends mid-character
        waits for the next). The last chunk carries `finish_reason` and usage. Closing the
        iterator early stops the generation at the next token.
        """
        self.check_adapter(adapter)
        prompt_ids = self.encode_prompt(prompt)
        tokens: queue.Queue[Any] = queue.Queue()
        cancel = threading.Event()
        streamer = token_streamer(tokens)
        criteria = cancel_criteria(cancel)
        worker = threading.Thread(
            target=self._stream_worker,
            args=(prompt_ids, adapter, params, streamer, criteria, tokens),
            name="fspo-local-generate",
            daemon=True,
        )
        worker.start()
        stop = StopText(params.stop)
        new_ids: list[int] = []
        emitted = 0
        stopped = False
        try:
            while True:
                item = tokens.get()
                if item is _END:
                    break
                if isinstance(item, ValueError):
                    raise item  # invalid parameters: the caller's error, as in `generate`
                if isinstance(item, BaseException):
                    raise generation_failed(adapter, item) from item
                new_ids.extend(item)
                text = self._decode(new_ids)
                if text.endswith("\ufffd"):  # half a UTF-8 character: wait for the rest
                    continue
                text, stopped = stop.cut(text)
                upto = len(text) if stopped else stop.safe_len(text)
                if upto > emitted:
                    yield GenerationChunk(text=text[emitted:upto])
                    emitted = upto
                if stopped:
                    cancel.set()
                    break
            final, stopped_late = stop.cut(self._decode(new_ids))
            stopped = stopped or stopped_late
            tail = final[emitted:] if len(final) > emitted else ""
            max_new = self._max_new(params)
            yield GenerationChunk(
                text=tail,
                finish_reason=finish_reason(
                    new_ids, max_new, self.tokenizer.eos_token_id, stopped=stopped
                ),
                input_tokens=len(prompt_ids),
                output_tokens=len(new_ids),
                model_name=self._model_name(adapter),
            )
        finally:
            cancel.set()
            worker.join()

    def _stream_worker(
        self,
        prompt_ids: list[int],
        adapter: str | None,
        params: GenerationParams,
        streamer: Any,
        criteria: Any,
        tokens: queue.Queue[Any],
    ) -> None:
        torch, transformers, _ = import_stack()
        try:
            kwargs = generate_kwargs(
                params,
                tokenizer=self.tokenizer,
                default_max_tokens=self.default_max_tokens,
                prompt_len=len(prompt_ids),
            )
            kwargs["streamer"] = streamer
            kwargs["stopping_criteria"] = transformers.StoppingCriteriaList([criteria])
            input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.device)
            self._generate_locked(
                input_ids, torch.ones_like(input_ids), adapter, params.seed, kwargs
            )
        except Exception as e:  # noqa: BLE001 - handed to the consumer thread, raised there
            tokens.put(e)
        finally:
            tokens.put(_END)
