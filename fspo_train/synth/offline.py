r"""An offline chat model for `fspo synth`: answers the pipeline's prompts by rule, with no model.

`fspo synth --generator offline --labeller offline` runs the whole pipeline on a laptop with no
network and no API key, to see how it works and what it writes. The data is a placeholder (every
answer is a fixed sentence, not a language model's text); for real data use a provider
(`openai:gpt-4o-mini`) or any local OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama:
`openai:NAME@http://127.0.0.1:8000/v1`).

The rules recognise each prompt by the output schema it embeds (or by its tags, for free text):

- personas like exactly one style (`Likes <style> advice.`);
- views are styles; a view-conditioned response names its style, a persona-steered response
  quotes the persona;
- the labeller prefers the response sharing more words with the user description (only words
  that differ between the two responses count); on a tie the description does not explain the
  choice and it picks "A", a position bias that flips under order swap;
- the refiner appends the words that distinguish the chosen response.

Example:
    >>> from langchain_core.messages import HumanMessage
    >>> reply = OfflineChatModel().invoke([HumanMessage("<question>\nHi?\n</question>")])
    >>> reply.content.startswith("Written for")
    True
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult

__all__ = ["OFFLINE_SPEC", "STYLES", "OfflineChatModel", "offline_answer"]

OFFLINE_SPEC = "offline"
"""The model spec of `OfflineChatModel` (`--generator offline`)."""

STYLES = (
    "practical",
    "humorous",
    "scientific",
    "historical",
    "frugal",
    "adventurous",
    "traditional",
    "minimalist",
)
_WORD = re.compile(r"[a-z]+")
_MIN_WORD = 4
"""Shorter words (the, and, a) do not count as shared with a user description."""


def _h(*parts: object) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def _tag(text: str, tag: str) -> str:
    match = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", text, re.DOTALL)
    return match.group(1) if match else ""


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) >= _MIN_WORD}


def _persona(prompt: str) -> str:
    traits = dict(
        line[2:].split(": ", 1) for line in _tag(prompt, "traits").splitlines() if ": " in line
    )
    index = re.search(r"persona number (\d+) of", prompt)
    number = index.group(1) if index else "1"
    style = STYLES[_h(sorted(traits.items()), number) % len(STYLES)]
    who = " ".join(traits[k] for k in sorted(traits))
    name = f"Persona {_h(who, number) % 10000:04d}"
    return json.dumps({"name": name, "description": f"Someone {who}. Likes {style} advice."})


def _number(pattern: str, prompt: str) -> int:
    match = re.search(pattern, prompt)
    return int(match.group(1)) if match else 1


def _questions(prompt: str) -> str:
    n = _number(r"Write (\d+)", prompt)
    persona = _tag(prompt, "persona")
    batch = re.search(r"\(batch (\d+)\)", prompt)
    key = persona or f"batch {batch.group(1) if batch else 0}"
    tag = _h(key) % 100000
    return json.dumps({"questions": [f"What should I do about topic {tag}-{i}?" for i in range(n)]})


def _views(prompt: str) -> str:
    n = _number(r"List (\d+)", prompt)
    start = _h(_tag(prompt, "question")) % len(STYLES)
    styles = [STYLES[(start + i) % len(STYLES)] for i in range(min(n, len(STYLES)))]
    return json.dumps({"views": [f"a {s} approach" for s in styles]})


def _label(prompt: str) -> str:
    description = _words(_tag(prompt, "user_description"))
    a, b = _words(_tag(prompt, "response_a")), _words(_tag(prompt, "response_b"))
    score_a, score_b = len(description & (a - b)), len(description & (b - a))
    if score_a == score_b:
        return json.dumps(
            {"preferred": "A", "description_explains_choice": False, "rationale": "no signal"}
        )
    preferred = "A" if score_a > score_b else "B"
    return json.dumps(
        {"preferred": preferred, "description_explains_choice": True, "rationale": "matches"}
    )


def _refine(prompt: str) -> str:
    chosen, other = _tag(prompt, "chosen_response"), _tag(prompt, "other_response")
    distinct = sorted(_words(chosen) - _words(other))[:3]
    if not distinct:
        return json.dumps({"addition": "Has no further preferences."})
    return json.dumps({"addition": f"Also likes {' '.join(distinct)} things."})


def offline_answer(prompt: str) -> str:
    """The rule's answer to `prompt` (the first user message of a pipeline request)."""
    if '"title": "PairLabel"' in prompt:
        return _label(prompt)
    if '"title": "PersonaOut"' in prompt:
        return _persona(prompt)
    if '"title": "QuestionsOut"' in prompt:
        return _questions(prompt)
    if '"title": "ViewsOut"' in prompt:
        return _views(prompt)
    if '"title": "PersonaAddition"' in prompt:
        return _refine(prompt)
    question = _tag(prompt, "question")
    view = _tag(prompt, "view")
    if view:
        style = view.split()[1] if len(view.split()) > 1 else view
        return f"A {style} answer to '{question}': go the {style} way ({_h(question, view) % 997})."
    persona = _tag(prompt, "persona")
    return f"Written for '{persona}': an answer to '{question}' ({_h(question, persona) % 997})."


class OfflineChatModel(BaseChatModel):
    """A LangChain chat model that answers `fspo synth`'s prompts by rule (see the module)."""

    model_name: str = OFFLINE_SPEC
    temperature: float | None = None
    """Accepted for the pipeline's calls; the answers do not depend on it."""

    @property
    def _llm_type(self) -> str:
        return OFFLINE_SPEC

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,  # noqa: ARG002 - answers are whole sentences
        run_manager: CallbackManagerForLLMRun | None = None,  # noqa: ARG002
        **kwargs: Any,  # noqa: ARG002
    ) -> ChatResult:
        humans = [m for m in messages if isinstance(m, HumanMessage)]
        return self.result(offline_answer(humans[0].text if humans else ""), messages)

    def result(self, text: str, messages: list[BaseMessage]) -> ChatResult:
        """`text` as this model's answer to `messages`, with word counts as token usage."""
        n_in = sum(len(m.text.split()) for m in messages)
        n_out = len(text.split())
        message = AIMessage(
            content=text,
            usage_metadata={
                "input_tokens": n_in,
                "output_tokens": n_out,
                "total_tokens": n_in + n_out,
            },
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
