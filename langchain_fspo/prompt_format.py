"""`PromptFormat`: the one contract between training and serving, saved as `fspo_format.json`.

Training renders every prompt through a `PromptFormat`; the format is saved beside the LoRA
adapter; serving loads it and renders the same bytes. Two styles:

- `style="paper"`: the official FSPO markdown layout byte for byte, raw text, no chat template.
- `style="chat"`: the same text as one user message (plus an optional system message); the
  tokenizer's chat template is applied by the server or by TRL.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)

from langchain_fspo._neutralize import neutralize, special_token_finder
from langchain_fspo.artifact import FORMAT_FILENAME, MAX_JSON_BYTES, read_json_object, resolve_file
from langchain_fspo.errors import PromptBudgetError, PromptFormatError
from langchain_fspo.preference import PreferenceExample

__all__ = [
    "FORMAT_FILENAME",
    "SCHEMA_VERSION",
    "ParsedCompletion",
    "PromptFormat",
    "RenderedPrompt",
    "neutralize",
]

SCHEMA_VERSION = 1
"""The newest `fspo_format.json` schema this version reads and writes."""
MAX_SYSTEM_PROMPT_CHARS = 100_000
"""Longest `system_prompt` (about 25k tokens; real ones are a few hundred)."""
MAX_SPECIAL_TOKENS = 16_384
"""Most `special_tokens` (Llama 3 has 256, Gemma 3 a few thousand)."""
MAX_SPECIAL_TOKEN_CHARS = 256
"""Longest special token."""
MAX_NAME_CHARS = 1_000
"""Longest base model id or revision."""
_FIX = "Save the format again with `PromptFormat.save_pretrained` (fspo_train does)."

_Name = Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME_CHARS)]
_SpecialToken = Annotated[StrictStr, Field(min_length=1, max_length=MAX_SPECIAL_TOKEN_CHARS)]

# The markers of the authors' released code (arXiv 2502.19312, §4). Note the trailing spaces.
_EXAMPLE = "# Example {i}\n"
_QUESTION = "## Question \n"
_PREFERRED = "## Preferred Response \n"
_RESPONSE = "## Response \n"
_DISPREFERRED = "## Dispreferred Response \n"
_TASK = "# Task\n"
_DESCRIPTION = "## User Description\n"
_INSTRUCTION_ZERO_SHOT = "Generate a response to the following question.\n"
_INSTRUCTION_PREFERRED = (
    "Given the examples above, generate a preferred response to the following question.\n"
)
_INSTRUCTION_PLAIN = "Given the examples above, generate a response to the following question.\n"
_RAT_PREFIX = "Generate a user description based on the examples above. Then, "


@dataclass(frozen=True)
class RenderedPrompt:
    """What the model reads for one query, and which shots made it in."""

    text: str
    """The whole prompt as raw text (`style="paper"` sends exactly this)."""
    messages: list[dict[str, Any]]
    """The prompt as OpenAI-style chat messages (`style="chat"` sends these)."""
    shots: list[PreferenceExample]
    """The shots rendered, oldest first, after the `num_shots` cap and the token budget."""
    dropped: int = 0
    """How many of the shots offered were left out (cap or budget)."""
    num_tokens: int | None = None
    """Prompt length in tokens, when a token counter was given."""
    style: Literal["paper", "chat"] = "chat"

    @property
    def example_ids(self) -> list[str]:
        """Ids of the shots used (examples never stored have none and are skipped)."""
        return [shot.id for shot in self.shots if shot.id is not None]


@dataclass(frozen=True)
class ParsedCompletion:
    """A generated completion split into its optional user description and the answer."""

    response: str
    user_description: str | None = None
    raw: str = field(default="", repr=False)


class PromptFormat(BaseModel):
    """How K preference examples and a question become the prompt an FSPO adapter reads.

    The format is frozen and versioned; `save_pretrained` writes it as `fspo_format.json`
    beside `adapter_config.json`, and serving reads it back with `from_pretrained`.

    Example:
        >>> fmt = PromptFormat(style="paper", num_shots=2)
        >>> shots = [PreferenceExample(prompt="Review 'Dune'.", chosen="Epic!", rejected="Slow.")]
        >>> print(fmt.render(shots, "Review 'Heat'.").text, end="")
        # Example 1
        ## Question
        Review 'Dune'.
        ## Preferred Response
        Epic!
        ## Dispreferred Response
        Slow.
        <BLANKLINE>
        # Task
        Given the examples above, generate a preferred response to the following question.
        ## Question
        Review 'Heat'.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: StrictInt = Field(default=SCHEMA_VERSION, ge=1)
    """Version of this schema; a newer file than the code understands is refused."""
    style: Literal["paper", "chat"] = "chat"
    """`paper`: raw markdown as the official code; `chat`: the same inside chat messages."""
    num_shots: StrictInt = Field(default=8, ge=0, le=256)
    """K: the most shots rendered (the newest K of those offered). The paper recommends 8."""
    include_rejected: StrictBool = True
    """Show each shot's dispreferred response, as the paper does."""
    rationale: Literal["none", "user_description"] = "none"
    """`user_description` is RAT: the model writes a description of the user, then answers."""
    system_prompt: Annotated[StrictStr, Field(max_length=MAX_SYSTEM_PROMPT_CHARS)] | None = None
    """Optional system message (`style="chat"` only), at most `MAX_SYSTEM_PROMPT_CHARS`."""
    base_model_id: _Name | None = None
    """Hub id (or path) of the base model the adapter was trained on."""
    base_model_revision: _Name | None = None
    """Revision (commit or tag) of the base model."""
    chat_template_sha256: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """sha256 of the tokenizer's chat template used in training (`style="chat"`)."""
    max_prompt_tokens: StrictInt | None = Field(default=None, ge=1)
    """Prompt token budget: over it the oldest shots are dropped, never the query."""
    special_tokens: tuple[_SpecialToken, ...] = Field(default=(), max_length=MAX_SPECIAL_TOKENS)
    """The tokenizer's own special tokens, neutralised in user text besides the usual ones
    (at most `MAX_SPECIAL_TOKENS`, each at most `MAX_SPECIAL_TOKEN_CHARS` characters)."""

    def model_post_init(self, context: Any, /) -> None:  # noqa: ARG002
        """Reject combinations that cannot be served."""
        if self.schema_version > SCHEMA_VERSION:
            msg = (
                f"This prompt format has `schema_version` {self.schema_version}, but this "
                f"langchain-fspo reads up to {SCHEMA_VERSION}. "
                "Upgrade: pip install -U langchain-fspo"
            )
            raise PromptFormatError(msg)
        if self.system_prompt is not None and self.style == "paper":
            msg = "`system_prompt` needs `style='chat'`: the paper layout is raw text."
            raise PromptFormatError(msg)

    # ------------------------------------------------------------------ rendering

    def _clean(self, text: str) -> str:
        finder = special_token_finder(self.special_tokens)
        return neutralize(text, self.special_tokens, finder=finder)

    def _response_header(self) -> str:
        return _PREFERRED if self.include_rejected else _RESPONSE

    def _shot_block(self, index: int, shot: PreferenceExample) -> str:
        block = _EXAMPLE.format(i=index) + _QUESTION + self._clean(shot.prompt) + "\n"
        block += self._response_header() + self._clean(shot.chosen) + "\n"
        if self.include_rejected and shot.rejected is not None:
            block += _DISPREFERRED + self._clean(shot.rejected) + "\n"
        return block + "\n"

    def _task_block(self, question: str, n_shots: int, user_description: str | None) -> str:
        if n_shots == 0:
            instruction = _INSTRUCTION_ZERO_SHOT
        elif self.include_rejected:
            instruction = _INSTRUCTION_PREFERRED
        else:
            instruction = _INSTRUCTION_PLAIN
        if self.rationale == "user_description" and n_shots > 0:
            instruction = _RAT_PREFIX + instruction.removeprefix("Given the examples above, ")
        block = _TASK + instruction + _QUESTION + self._clean(question) + "\n"
        if user_description is not None:
            block += _DESCRIPTION + self._clean(user_description) + "\n"
        return block

    def _assemble(
        self, shots: Sequence[PreferenceExample], question: str, user_description: str | None
    ) -> str:
        blocks = [self._shot_block(i, s) for i, s in enumerate(shots, start=1)]
        return "".join(blocks) + self._task_block(question, len(shots), user_description)

    def _messages(self, text: str) -> list[dict[str, Any]]:
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*system, {"role": "user", "content": text}]

    def render(
        self,
        shots: Sequence[PreferenceExample],
        question: str,
        *,
        user_description: str | None = None,
        count_tokens: Callable[[str], int] | None = None,
        reserve_tokens: int = 0,
    ) -> RenderedPrompt:
        """Render `shots` (oldest first) and `question` into the prompt the model reads.

        Args:
            shots: The user's examples, oldest first. Only the newest `num_shots` are used.
            question: The new query. It is never cut.
            user_description: Teacher-forced RAT: the (oracle) description of the user is put
                in the prompt after the question, so the model only writes the answer.
            count_tokens: Counts the tokens of a string (e.g. a tokenizer's). With
                `max_prompt_tokens` set, the oldest shots are dropped until the prompt plus
                `reserve_tokens` fits.
            reserve_tokens: Tokens to keep free for the response (training: its length).

        Raises:
            PromptBudgetError: The question alone does not fit the budget.
        """
        offered = len(shots)
        kept = list(shots[-self.num_shots :]) if self.num_shots else []
        text = self._assemble(kept, question, user_description)
        num_tokens = None
        if count_tokens is not None:
            num_tokens = count_tokens(self._countable(text))
            budget = self.max_prompt_tokens
            while budget is not None and num_tokens + reserve_tokens > budget:
                if not kept:
                    msg = (
                        f"The question alone is {num_tokens} tokens (+{reserve_tokens} reserved), "
                        f"over `max_prompt_tokens`={budget}. Shorten the question or raise the "
                        "budget."
                    )
                    raise PromptBudgetError(msg)
                kept = kept[1:]
                text = self._assemble(kept, question, user_description)
                num_tokens = count_tokens(self._countable(text))
        return RenderedPrompt(
            text=text,
            messages=self._messages(text),
            shots=kept,
            dropped=offered - len(kept),
            num_tokens=num_tokens,
            style=self.style,
        )

    def _countable(self, text: str) -> str:
        if self.style == "chat" and self.system_prompt:
            return self.system_prompt + "\n" + text
        return text

    def completion(self, response: str, *, user_description: str | None = None) -> str:
        r"""The text the model is trained to write after the prompt (the loss is taken on it).

        `style="paper"` reproduces the official code: `## Preferred Response \\n` + response +
        `\\n` (with a `## User Description` block first under RAT, unless the description was
        teacher-forced into the prompt). `style="chat"` is the assistant message: the bare
        response, or the two blocks under RAT.
        """
        answer = self._clean(response)
        description = (
            _DESCRIPTION + self._clean(user_description) + "\n"
            if self.rationale == "user_description" and user_description is not None
            else ""
        )
        if self.style == "chat" and not description:
            return answer
        text = description + self._response_header() + answer + "\n"
        return text.rstrip("\n") if self.style == "chat" else text

    def parse_completion(self, text: str) -> ParsedCompletion:
        """Split generated text into the user description (RAT) and the answer.

        Headers the format writes are removed; text with no headers is the answer itself.
        """
        description = None
        body = text
        if body.startswith(_DESCRIPTION) or f"\n{_DESCRIPTION}" in body:
            start = body.index(_DESCRIPTION) + len(_DESCRIPTION)
            rest = body[start:]
            header_at = rest.find(self._response_header())
            if header_at == -1:
                return ParsedCompletion(response="", user_description=rest.strip(), raw=text)
            description = rest[:header_at].strip()
            body = rest[header_at:]
        header = self._response_header()
        body = body.removeprefix(header)
        # A model may run on into a new block; the answer ends where the next marker starts.
        cut = re.search(r"\n#{1,2} ", body)
        if cut:
            body = body[: cut.start()]
        return ParsedCompletion(
            response=body.strip("\n").rstrip(), user_description=description, raw=text
        )

    # ------------------------------------------------------------------ chat template

    @staticmethod
    def template_sha256(chat_template: str) -> str:
        """sha256 hex digest of a chat template, as stored in `chat_template_sha256`."""
        return hashlib.sha256(chat_template.encode()).hexdigest()

    def check_chat_template(self, chat_template: str | None) -> None:
        """Raise `PromptFormatError` if `chat_template` is not the one trained with."""
        if self.style != "chat" or self.chat_template_sha256 is None:
            return
        if chat_template is None:
            msg = "This adapter was trained with a chat template, but the tokenizer has none."
            raise PromptFormatError(msg)
        digest = self.template_sha256(chat_template)
        if digest != self.chat_template_sha256:
            msg = (
                f"Chat template drift for {self.base_model_id!r}: trained with sha256 "
                f"{self.chat_template_sha256[:12]}..., the tokenizer has {digest[:12]}.... "
                "Serve the adapter with the tokenizer it was trained with."
            )
            raise PromptFormatError(msg)

    # ------------------------------------------------------------------ persistence

    def to_json(self) -> str:
        """The `fspo_format.json` text (sorted keys, stable across runs)."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, save_directory: str | Path) -> Path:
        """Write `fspo_format.json` into `save_directory` and return its path."""
        path = Path(save_directory) / FORMAT_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, text: str, *, source: str = FORMAT_FILENAME) -> PromptFormat:
        """Parse `fspo_format.json` text, with an error that names `source` when it is bad."""
        if len(text) > MAX_JSON_BYTES:
            msg = f"{source} is {len(text):,} characters, over {MAX_JSON_BYTES:,}. {_FIX}"
            raise PromptFormatError(msg)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            msg = f"{source} is not valid JSON: {e}. {_FIX}"
            raise PromptFormatError(msg) from e
        except RecursionError as e:
            msg = f"{source} is nested too deeply to be a prompt format. {_FIX}"
            raise PromptFormatError(msg) from e
        if not isinstance(data, dict):
            msg = f"{source} must hold a JSON object, got {type(data).__name__}. {_FIX}"
            raise PromptFormatError(msg)
        return cls._from_data(data, source)

    @classmethod
    def _from_data(cls, data: dict[str, Any], source: str) -> PromptFormat:
        """Validate a parsed `fspo_format.json`; wrong types are refused, never coerced."""
        version = data.get("schema_version", SCHEMA_VERSION)
        if type(version) is int and version > SCHEMA_VERSION:
            msg = (
                f"{source} has `schema_version` {version}, but this langchain-fspo reads up to "
                f"{SCHEMA_VERSION}. Upgrade: pip install -U langchain-fspo"
            )
            raise PromptFormatError(msg)
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            msg = f"{source} is not a valid FSPO prompt format: {e}\n{_FIX}"
            raise PromptFormatError(msg) from e
        except PromptFormatError as e:
            msg = f"{source}: {e}"
            raise PromptFormatError(msg) from e

    @classmethod
    def from_pretrained(
        cls,
        directory_or_repo_id: str | Path,
        *,
        revision: str | None = None,
        token: str | None = None,
    ) -> PromptFormat:
        """Load `fspo_format.json` from a local folder or a Hugging Face Hub repo id.

        Example:
            >>> import tempfile
            >>> folder = tempfile.mkdtemp()
            >>> _ = PromptFormat(style="paper", num_shots=4).save_pretrained(folder)
            >>> PromptFormat.from_pretrained(folder).num_shots
            4
        """
        path = resolve_file(directory_or_repo_id, FORMAT_FILENAME, revision=revision, token=token)
        data = read_json_object(path, error=PromptFormatError, fix=_FIX)
        return cls._from_data(data, str(path))
