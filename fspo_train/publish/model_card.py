"""The model card (`README.md`) of a published FSPO adapter.

The card's YAML metadata follows what PEFT writes for a LoRA adapter (`library_name: peft`,
`base_model`, `pipeline_tag`, `base_model:adapter:<base>` tag) plus FSPO tags; the body says
what FSPO is, the prompt contract the adapter was trained with, evaluation results when an
`eval_results.json` sits in the folder, and how to serve it (TGI, vLLM, LangChain).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from langchain_fspo.artifact import (
    ADAPTER_CONFIG_FILENAME,
    FORMAT_FILENAME,
    MODEL_CARD_FILENAME,
    base_model_path,
    read_adapter_config,
)
from langchain_fspo.engine_limits import (
    adapter_rank,
    describe_problems,
    engine_problems,
    vllm_max_lora_rank,
)
from langchain_fspo.prompt_format import PromptFormat

__all__ = ["CARD_FILENAME", "EVAL_RESULTS_FILENAME", "build_model_card", "write_model_card"]

logger = logging.getLogger(__name__)

CARD_FILENAME = MODEL_CARD_FILENAME
EVAL_RESULTS_FILENAME = "eval_results.json"

_FSPO_TAGS = ("fspo", "lora", "peft", "personalization", "preference-optimization")


def _base_model(fmt: PromptFormat, adapter_config: dict[str, Any]) -> str | None:
    base = fmt.base_model_id or adapter_config.get("base_model_name_or_path")
    return str(base) if base else None


def _base_link(base: str | None) -> str:
    """The base model in the card's first line: a Hub link, or the local folder it names."""
    if base is None:
        return "its base model"
    if base_model_path(base) is None:
        return f"[`{base}`](https://huggingface.co/{base})"
    return (
        f"the local model `{base}` (a folder, not a Hub repo: whoever loads this adapter "
        "needs the same weights at that path)"
    )


def _contract_table(fmt: PromptFormat) -> str:
    rows = [
        ("style", fmt.style, "`paper`: raw markdown, no chat template; `chat`: chat messages"),
        ("num_shots", fmt.num_shots, "K, the most preference examples rendered per prompt"),
        ("include_rejected", fmt.include_rejected, "each shot shows the dispreferred response"),
        ("rationale", fmt.rationale, "`user_description`: the model first describes the user"),
        ("system_prompt", fmt.system_prompt, "system message (chat style only)"),
        ("base_model_id", fmt.base_model_id, "the model the adapter was trained on"),
        ("base_model_revision", fmt.base_model_revision, "its revision"),
        ("chat_template_sha256", fmt.chat_template_sha256, "drift check of the chat template"),
        ("max_prompt_tokens", fmt.max_prompt_tokens, "prompt budget; oldest shots dropped"),
        ("schema_version", fmt.schema_version, f"version of `{FORMAT_FILENAME}`"),
    ]
    lines = ["| field | value | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | `{value}` | {meaning} |" for name, value, meaning in rows]
    return "\n".join(lines)


def _percent(value: Any) -> str:
    return f"{100 * float(value):.1f}" if isinstance(value, int | float) else "-"


def _results_table(section: dict[str, Any], metric: str) -> str:
    splits: list[str] = []
    for per_split in section.values():
        splits += [s for s in per_split if s not in splits]
    lines = ["| method | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
    for method, per_split in section.items():
        cells = [
            f"{_percent(per_split[s].get(metric))} (n={per_split[s].get('n', '?')})"
            if s in per_split
            else "-"
            for s in splits
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _eval_section(results: dict[str, Any]) -> str:
    parts = ["## Evaluation", ""]
    if results.get("win_rate"):
        judge = results.get("judge", "a user-aware judge")
        baseline = results.get("baseline", "the base model")
        parts += [
            (
                f"Pairwise win rate (%) against `{baseline}`, judged by {judge} with the user's "
                "description, both orders, order-inconsistent verdicts counted as ties (half a "
                "win)."
            ),
            "",
            _results_table(results["win_rate"], "win_rate"),
            "",
        ]
    if results.get("accuracy"):
        beta = results.get("beta", "?")
        parts += [
            (
                "Implicit-reward accuracy (%): share of held-out pairs where beta * "
                f"log(pi/pi_ref) (beta={beta}) of the chosen response exceeds the rejected one's."
            ),
            "",
            _results_table(results["accuracy"], "accuracy"),
            "",
        ]
    parts.append(f"Raw numbers: [`{EVAL_RESULTS_FILENAME}`]({EVAL_RESULTS_FILENAME}).")
    return "\n".join(parts)


_TGI_PAPER = """\
The adapter was trained on the paper's raw markdown layout (`style: paper`): send the rendered
prompt to `/generate` with `adapter_id`:

```bash
curl localhost:8080/generate -H 'Content-Type: application/json' -d '{{
  "inputs": "# Example 1\\n## Question \\n...\\n# Task\\n...",
  "parameters": {{"adapter_id": "{repo_id}", "max_new_tokens": 256}}
}}'
```"""

_TGI_CHAT = """\
The adapter was trained with the chat template (`style: chat`): call `/v1/chat/completions`
with `model` set to the adapter:

```bash
curl localhost:8080/v1/chat/completions -H 'Content-Type: application/json' -d '{{
  "model": "{repo_id}",
  "messages": [{{"role": "user", "content": "# Example 1\\n..."}}]
}}'
```"""

_INTRO = """\
# {name}

A LoRA adapter for {base_link} trained with **FSPO** (Few-Shot
Preference Optimization, Singh et al. 2025, arXiv:2502.19312). The model reads K of a user's own
labelled preferences (question, preferred answer, dispreferred answer) in its prompt and answers
a new question the way that user would prefer: one adapter personalises to every user in
context, with no per-user training.

## Prompt contract

Training and serving must render the same prompt. The format is saved as
[`{format_file}`]({format_file}) next to the adapter; `langchain_fspo.PromptFormat.from_pretrained`
reads it and renders prompts exactly as in training (oldest shots dropped first when over
budget, user text neutralised).

{contract}
"""

_SERVING = """\
## Serving

### Text Generation Inference (TGI)

```bash
docker run --gpus all -p 8080:80 \\
  -e LORA_ADAPTERS={repo_id} \\
  ghcr.io/huggingface/text-generation-inference:3.3.7 --model-id {base}
```

TGI does no prefix caching while it serves LoRA adapters, so each call recomputes the user's
block of examples; for long few-shot prompts prefer vLLM, whose prefix cache reuses it.

{tgi_call}

TGI serves the base model for an adapter id it did not load; `langchain-fspo` checks the
adapter is served before sending prompts.

### vLLM

```bash
vllm serve {base} --enable-lora --lora-modules fspo={repo_id}{rank_flag}
```

Then call the OpenAI-compatible API with `model="fspo"`. {rank_note}
{limits}
### LangChain

```python
from langchain_fspo import ChatFSPO, PreferenceMemory

memory = PreferenceMemory()  # each user's stored preferences
memory.add(
    "ada", prompt="Review Dune.", chosen="Epic and moving.", rejected="Too long."
)
chat = ChatFSPO.from_pretrained(
    "{repo_id}",
    base_url="http://localhost:8080",  # TGI launched with LORA_ADAPTERS={repo_id}
    adapters=["{repo_id}"],  # what the server loaded: other ids raise, never fall back
    memory=memory,
)
chat.invoke("Review Heat.", user_id="ada")
```

For vLLM pass `backend="openai", base_url="http://localhost:8000", adapter_name="fspo"`.
Without a server, `backend="local"` runs the base model and adapter in-process
(transformers + PEFT).

## Training

Trained with `fspo_train` (TRL + PEFT): few-shot Pref-FT (SFT on the preferred response), then
IPO with the Pref-FT policy as reference.
"""


def _body(
    repo_id: str,
    fmt: PromptFormat,
    adapter_config: dict[str, Any],
    base: str | None,
    eval_results: dict[str, Any] | None,
) -> str:
    base_name = base or "<base-model>"
    rank = adapter_rank(adapter_config)
    try:
        max_rank = vllm_max_lora_rank(adapter_config)
    except ValueError as e:  # vLLM cannot serve it; the limits below say so
        rank_flag, rank_note = "", str(e)
    else:
        rank_flag = f" --max-lora-rank {max_rank}"
        rank_note = (
            f"`--max-lora-rank {max_rank}` is the smallest value vLLM accepts for this "
            f"adapter's rank ({rank})."
        )
    problems = engine_problems(adapter_config)
    limits = (
        f"\nServing limits of this adapter:\n\n{describe_problems(problems)}\n" if problems else ""
    )
    tgi_call = (_TGI_PAPER if fmt.style == "paper" else _TGI_CHAT).format(repo_id=repo_id)
    parts = [
        _INTRO.format(
            name=repo_id.rsplit("/", 1)[-1],
            base_link=_base_link(base),
            format_file=FORMAT_FILENAME,
            contract=_contract_table(fmt),
        )
    ]
    if eval_results:
        parts.append(_eval_section(eval_results) + "\n")
    parts.append(
        _SERVING.format(
            repo_id=repo_id,
            base=base_name,
            tgi_call=tgi_call,
            rank_flag=rank_flag,
            rank_note=rank_note,
            limits=limits,
        )
    )
    return "\n".join(parts)


def build_model_card(
    folder: str | Path,
    repo_id: str,
    *,
    license: str | None = None,  # noqa: A002 - the card field's name
    datasets: list[str] | None = None,
) -> ModelCard:
    """Build the model card of the adapter in `folder`, to be published as `repo_id`.

    Reads `fspo_format.json`, `adapter_config.json` and, when present, `eval_results.json`.

    Example:
        >>> import json, tempfile
        >>> from langchain_fspo.prompt_format import PromptFormat
        >>> folder = tempfile.mkdtemp()
        >>> _ = PromptFormat(style="chat", base_model_id="org/base").save_pretrained(folder)
        >>> _ = open(f"{folder}/adapter_config.json", "w").write(json.dumps({"r": 8}))
        >>> card = build_model_card(folder, "org/fspo-adapter")
        >>> card.data.library_name, card.data.base_model
        ('peft', 'org/base')
    """
    folder = Path(folder)
    fmt = PromptFormat.from_pretrained(folder)
    adapter_config: dict[str, Any] = (
        read_adapter_config(folder, require_base_model=False)
        if (folder / ADAPTER_CONFIG_FILENAME).is_file()
        else {}
    )
    results_path = folder / EVAL_RESULTS_FILENAME
    eval_results: dict[str, Any] | None = None
    if results_path.is_file():
        eval_results = json.loads(results_path.read_text(encoding="utf-8"))
    base = _base_model(fmt, adapter_config)
    hub_base = base if base is not None and base_model_path(base) is None else None
    tags = list(_FSPO_TAGS)
    if hub_base:
        tags.append(f"base_model:adapter:{hub_base}")
    data = ModelCardData(
        library_name="peft",
        base_model=hub_base,
        pipeline_tag="text-generation",
        tags=tags,
        license=license,
        datasets=datasets,
    )
    content = f"---\n{data.to_yaml()}\n---\n\n" + _body(
        repo_id, fmt, adapter_config, base, eval_results
    )
    return ModelCard(content)


def write_model_card(folder: str | Path, repo_id: str, **kwargs: Any) -> Path:
    """Write `README.md` (the model card) into `folder` and return its path."""
    card = build_model_card(folder, repo_id, **kwargs)
    path = Path(folder) / CARD_FILENAME
    if path.exists():
        logger.info("Replacing the model card %s", path)
    card.save(path)
    return path
