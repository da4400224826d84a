"""Deterministic answers by rule to the pipeline's prompts, with the hazards tests need.

Shared by the fixed-latency server (`bench/fixed_latency_server.py --answers synth`) and the
in-process scripted chat model of the tests (`tests/synth/scripted.py`); it lives here because
benchmarks do not import from tests/. The answers are the packaged offline model's
(`fspo_train.synth.offline`: personas, questions, views, responses, labels, refinements), plus
malformed output to exercise repairs: labels of questions containing "garbled" are never JSON
(they fail for good), and the first answer to a label prompt whose hash is 0 mod 6 is truncated
JSON (the repair succeeds).
"""

from __future__ import annotations

from fspo_train.synth.offline import _h, _tag, offline_answer

__all__ = ["answer"]


def answer(prompt: str, *, attempt: int = 1) -> str:
    """The scripted answer to `prompt` (the first user message) on answer number `attempt`."""
    if '"title": "PairLabel"' in prompt:
        if "garbled" in _tag(prompt, "question").lower():
            return "I would go with the first one, it is better."
        if attempt == 1 and _h(prompt) % 6 == 0:
            return '{"preferred": "A", "description_explains_choice": tru'
    return offline_answer(prompt)
