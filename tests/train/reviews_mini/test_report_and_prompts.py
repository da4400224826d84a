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


def test_intervals_are_printed_beside_their_numbers() -> None:
    result = {
        "interval": "95% Wilson intervals",
        "methods": {
            "fspo": {
                "label": "FSPO",
                "win_rate": {"trained": 70.0, "interpolated": 60.0},
                "win_rate_ci": {"trained": [61.25, 77.5], "interpolated": [50.0, 69.0]},
                "accuracy": {"trained": 80.0},
                "accuracy_ci": {"trained": [72.0, 86.0]},
            }
        },
        "shots_curve": {"4": {"trained": 80.0}},
        "shots_curve_ci": {"4": {"trained": [72.0, 86.0]}},
    }
    table = markdown_table(result)
    assert "| FSPO | 70.0 (61.2-77.5) | 60.0 (50.0-69.0) | 80.0 (72.0-86.0) | - |" in table
    assert "| trained | 80.0 (72.0-86.0) |" in table
    assert "In parentheses: 95% Wilson intervals." in table


def test_wilson_interval_covers_the_rate_and_narrows_with_more_comparisons() -> None:
    from fspo_train.eval.intervals import wilson_interval

    small = wilson_interval([1.0] * 7 + [0.0] * 3)
    large = wilson_interval([1.0] * 70 + [0.0] * 30)
    assert small[0] < 0.7 < small[1]
    assert large[0] < 0.7 < large[1]
    assert large[1] - large[0] < small[1] - small[0]
    # Ties count half: ten ties are a rate of 0.5, inside its interval.
    ties = wilson_interval([0.5] * 10)
    assert ties[0] < 0.5 < ties[1]
    # About +-9 points at 96 comparisons and a rate near 50% (what the 4.7 SE implies).
    lo, hi = wilson_interval([1.0] * 48 + [0.0] * 48)
    assert 0.08 < (hi - lo) / 2 < 0.11


def test_seeds_combine_into_means_with_t_intervals() -> None:
    from fspo_train.reviews_mini.seeds import combine_seeds

    def one(seed: int, fspo: float) -> dict[str, object]:
        return {
            "meta": {"seed": seed, "wall_time_s": 10.0},
            "methods": {
                "fspo": {
                    "label": "FSPO",
                    "win_rate": {"trained": fspo, "interpolated": fspo - 10},
                    "win_rate_ci": {"trained": [0.0, 100.0]},
                    "accuracy": {"trained": fspo + 5},
                    "comparisons": {"trained": 96},
                }
            },
            "shots_curve": {"4": {"trained": fspo + 5}},
        }

    combined = combine_seeds([one(0, 70.0), one(1, 74.0), one(2, 72.0)])
    row = combined["methods"]["fspo"]
    assert row["win_rate"] == {"trained": 72.0, "interpolated": 62.0}
    assert row["win_rate_ci"]["trained"] == [67.0313, 76.9687]  # mean +- t(2) * sd / sqrt(3)
    assert row["win_rate_by_seed"]["trained"] == [70.0, 74.0, 72.0]
    assert row["comparisons"] == {"trained": 288}
    assert combined["shots_curve"] == {"4": {"trained": 77.0}}
    assert combined["meta"]["seeds"] == [0, 1, 2]
    assert "across 3 seeds" in combined["table_markdown"]
    assert (
        "| FSPO | 72.0 (67.0-77.0) | 62.0 (57.0-67.0) | 77.0 (72.0-82.0) | - |"
        in (combined["table_markdown"])
    )
    # Three seeds far apart: the t interval of a percentage is clipped to [0, 100].
    spread = combine_seeds([one(0, 60.0), one(1, 100.0), one(2, 95.0)])
    assert spread["methods"]["fspo"]["win_rate_ci"]["trained"] == [30.8551, 100.0]
