"""A deterministic chat model for the pipeline tests: a real `BaseChatModel` answering by rule.

It answers from `bench.synth_rules` (order-inconsistent labels when the persona does not explain a
choice, malformed JSON on some first attempts and always for "garbled" questions), reports
`usage_metadata`, can sleep a fixed latency per call, and can fail its first calls with a
connection error to exercise retries. `make_model` is the `factory:` entry for the CLI; the
environment variables `SCRIPTED_LATENCY_S` and `SCRIPTED_FAIL_FIRST` configure it there.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.outputs import ChatResult
from pydantic import PrivateAttr

from bench.synth_rules import answer
from fspo_train.synth.offline import OfflineChatModel


class ScriptedChatModel(OfflineChatModel):
    """The packaged offline model plus the hazards of `bench.synth_rules`, latency, failures."""

    model_name: str = "scripted"
    latency_s: float = 0.0
    fail_first_calls: int = 0

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _calls: int = PrivateAttr(default=0)
    _failures: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def calls(self) -> int:
        """Requests received (including the ones that raised)."""
        return self._calls

    def _answer(self, messages: list[BaseMessage]) -> ChatResult:
        with self._lock:
            self._calls += 1
            if self._failures < self.fail_first_calls:
                self._failures += 1
                msg = "scripted connection reset"
                raise ConnectionError(msg)
        humans = [m for m in messages if isinstance(m, HumanMessage)]
        prompt = humans[0].text
        return self.result(answer(prompt, attempt=len(humans)), messages)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency_s:
            time.sleep(self.latency_s)
        return self._answer(messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return self._answer(messages)


def make_model(temperature: float | None = None, **kwargs: Any) -> ScriptedChatModel:
    """Factory for `--generator factory:tests.train.synth.scripted:make_model`."""
    return ScriptedChatModel(
        temperature=temperature,
        latency_s=float(os.environ.get("SCRIPTED_LATENCY_S", "0")),
        fail_first_calls=int(os.environ.get("SCRIPTED_FAIL_FIRST", "0")),
        **kwargs,
    )
