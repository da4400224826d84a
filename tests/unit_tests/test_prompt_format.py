"""PromptFormat behaviour beyond the golden layout: shots cap, token budget, persistence, drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langchain_fspo import PreferenceExample, PromptFormat
from langchain_fspo.errors import AdapterNotFoundError, PromptBudgetError, PromptFormatError
from langchain_fspo.prompt_format import FORMAT_FILENAME


def _shots(n: int) -> list[PreferenceExample]:
    return [
        PreferenceExample(
            prompt=f"question {i}", chosen=f"good {i}", rejected=f"bad {i}", id=f"e{i}"
        )
        for i in range(n)
    ]


def _words(text: str) -> int:
    return len(text.split())


def test_num_shots_keeps_the_newest_in_order() -> None:
    rendered = PromptFormat(num_shots=3).render(_shots(5), "q?")
    assert [s.id for s in rendered.shots] == ["e2", "e3", "e4"]
    assert rendered.example_ids == ["e2", "e3", "e4"]
    assert rendered.dropped == 2
    assert rendered.text.index("question 2") < rendered.text.index("question 4")
    assert "question 1" not in rendered.text


def test_zero_shots_renders_zero_shot_prompt() -> None:
    rendered = PromptFormat(num_shots=0, style="paper").render(_shots(3), "q?")
    assert rendered.shots == []
    assert rendered.text.startswith("# Task\nGenerate a response")


def test_budget_drops_oldest_shots_first_and_never_the_query() -> None:
    fmt = PromptFormat(num_shots=8, max_prompt_tokens=40, style="paper")
    full = fmt.model_copy(update={"max_prompt_tokens": None}).render(_shots(8), "the query")
    rendered = fmt.render(_shots(8), "the query", count_tokens=_words)
    assert _words(full.text) > 40
    assert rendered.num_tokens is not None
    assert rendered.num_tokens <= 40
    assert rendered.num_tokens == _words(rendered.text)
    assert rendered.text.endswith("## Question \nthe query\n")
    kept = [s.id for s in rendered.shots]
    assert kept == [f"e{i}" for i in range(8 - len(kept), 8)]  # a suffix: the newest survive
    assert 0 < len(kept) < 8


def test_budget_reserves_room_for_the_response() -> None:
    fmt = PromptFormat(num_shots=8, max_prompt_tokens=60, style="paper")
    loose = fmt.render(_shots(8), "q", count_tokens=_words)
    tight = fmt.render(_shots(8), "q", count_tokens=_words, reserve_tokens=25)
    assert len(tight.shots) < len(loose.shots)
    assert tight.num_tokens is not None
    assert tight.num_tokens + 25 <= 60


def test_query_over_budget_raises_instead_of_cutting() -> None:
    fmt = PromptFormat(max_prompt_tokens=5)
    with pytest.raises(PromptBudgetError, match="question alone"):
        fmt.render(_shots(2), "a very long question " * 5, count_tokens=_words)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    fmt = PromptFormat(
        style="chat",
        num_shots=4,
        system_prompt="sys",
        base_model_id="tiny/llama",
        chat_template_sha256=PromptFormat.template_sha256("{{ x }}"),
        special_tokens=("<eos>",),
    )
    path = fmt.save_pretrained(tmp_path)
    assert path == tmp_path / FORMAT_FILENAME
    assert PromptFormat.from_pretrained(tmp_path) == fmt
    assert json.loads(path.read_text())["schema_version"] == 1


def test_newer_schema_fails_with_upgrade_hint(tmp_path: Path) -> None:
    data = json.loads(PromptFormat().to_json())
    data["schema_version"] = 2
    data["a_field_from_the_future"] = True
    (tmp_path / FORMAT_FILENAME).write_text(json.dumps(data))
    with pytest.raises(PromptFormatError, match=r"schema_version` 2.*pip install -U"):
        PromptFormat.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("content", "match"),
    [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"), ('{"style": "poem"}', "style")],
)
def test_bad_files_name_the_file(tmp_path: Path, content: str, match: str) -> None:
    (tmp_path / FORMAT_FILENAME).write_text(content)
    with pytest.raises(PromptFormatError, match=match) as info:
        PromptFormat.from_pretrained(tmp_path)
    assert FORMAT_FILENAME in str(info.value)


def test_missing_file_in_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AdapterNotFoundError, match=r"No fspo_format\.json"):
        PromptFormat.from_pretrained(tmp_path)


def test_system_prompt_needs_chat_style(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="system_prompt"):  # pydantic's ValidationError
        PromptFormat(style="paper", system_prompt="x")
    (tmp_path / FORMAT_FILENAME).write_text('{"style": "paper", "system_prompt": "x"}')
    with pytest.raises(PromptFormatError, match="system_prompt"):
        PromptFormat.from_pretrained(tmp_path)


def test_chat_template_drift_is_detected() -> None:
    fmt = PromptFormat(chat_template_sha256=PromptFormat.template_sha256("A"), base_model_id="m")
    fmt.check_chat_template("A")
    with pytest.raises(PromptFormatError, match="drift"):
        fmt.check_chat_template("B")
    with pytest.raises(PromptFormatError, match="has none"):
        fmt.check_chat_template(None)


def test_rat_parse_of_truncated_generation_keeps_description() -> None:
    fmt = PromptFormat(style="paper", rationale="user_description")
    parsed = fmt.parse_completion("## User Description\nLikes short reviews.")
    assert parsed.user_description == "Likes short reviews."
    assert parsed.response == ""


def test_parse_stops_at_a_new_block() -> None:
    fmt = PromptFormat(style="paper")
    parsed = fmt.parse_completion(
        "## Preferred Response \nGreat film.\n# Example 9\n## Question \n"
    )
    assert parsed.response == "Great film."
