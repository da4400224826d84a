"""The result writers, and how the evaluation splits prompts, descriptions and answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fspo_train.reviews_mini.report import markdown_table, write_results
from langchain_fspo.preference import PreferenceExample
from langchain_fspo.prompt_format import PromptFormat

RESULT = {
    "title": "test",
    "meta": {"seed": 3, "device": "CPU"},
    "methods": {
        "base": {"label": "Base", "win_rate": {"trained": 50.0, "interpolated": 50.0}},
        "fspo": {
            "label": "FSPO",
            "win_rate": {"trained": 93.75, "interpolated": 81.25},
            "win_rate_by_user": {"positive": 100.0, "positive+concise": 62.5},
            "accuracy": {"trained": 97.5, "interpolated": 88.0},
        },
        "fspo_rat": {
            "label": "FSPO + RAT",
            "win_rate": {"trained": 90.0, "interpolated": 70.0},
            "accuracy": {},
            "description_match": {"trained": 100.0, "interpolated": 0.0},
        },
    },
    "shots_curve": {"0": {"trained": 51.0}, "8": {"trained": 96.0, "interpolated": 80.0}},
}


def test_markdown_table_rows_and_curve() -> None:
    table = markdown_table(RESULT)
    assert "| FSPO | 93.8 | 81.2 | 97.5 | 88.0 |" in table
    assert "| Base | 50.0 | 50.0 | - | - |" in table
    assert "| trained | 51.0 | 96.0 |" in table
    assert "| interpolated | - | 80.0 |" in table
    assert "trained 100.0%, interpolated 0.0%" in table
    assert "| Method | positive | positive+concise |" in table
    assert "| FSPO | 100.0 | 62.5 |" in table


def test_write_results_json_markdown_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    paths = write_results(RESULT, tmp_path, "reviews_mini")
    assert json.loads(paths["json"].read_text())["meta"]["seed"] == 3
    text = paths["markdown"].read_text()
    assert text.startswith("# test\n")
    assert "- seed: 3" in text
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.train
@pytest.mark.parametrize("rationale", ["none", "user_description"])
def test_scored_ids_are_the_whole_conversation_as_training_tokenizes_it(
    tiny_model_dir: Path, rationale: str
) -> None:
    from transformers import AutoTokenizer

    from fspo_train.eval.prompting import Prompter

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    fmt = PromptFormat(style="chat", num_shots=2, rationale=rationale)
    prompter = Prompter(fmt, tokenizer)
    shots = [PreferenceExample(prompt="Review X.", chosen="Good.", rejected="Bad.")]
    description = "This user prefers positive reviews." if rationale != "none" else None
    prompt, completion = prompter.pair(shots, "Review Y.", "Lovely film.", description)
    assert prompt == prompter.prompt(shots, "Review Y.")
    content = fmt.completion("Lovely film.", user_description=description)
    rendered = fmt.render(shots, "Review Y.")
    full = tokenizer.apply_chat_template(
        [*rendered.messages, {"role": "assistant", "content": content}],
        tokenize=True,
        return_dict=True,
    )["input_ids"]
    assert prompt + completion == list(full)
    text = tokenizer.decode(completion)
    assert text.rstrip().endswith(tokenizer.eos_token)
    if description is not None:
        assert text.startswith(prompter.prefix(description))
        prefixed = prompter.prefixed_prompt(shots, "Review Y.", description)
        assert prefixed == (prompt + completion)[: len(prefixed)]
        assert tokenizer.decode(completion[len(prefixed) - len(prompt) :]).startswith("Lovely")
    else:
        assert text.startswith("Lovely film.")
        assert prompter.prefix(None) == ""
