"""The benchmark end to end on CPU, reduced: two seeds must give the same ordering.

`BenchConfig.tiny` trains a tiny Llama from scratch, then FSPO and the 0-shot IPO baseline
with `fspo_train.train.train`, and evaluates them with the exact judge. The checks are about
the ordering the paper reports (FSPO above few-shot prompting and non-personalised IPO on
trained users; FSPO's implicit-reward accuracy above chance and rising with shots), never
about absolute numbers. The FSPO adapter of the first seed is then served through LangChain
(`ChatPromptTemplate | ChatFSPO | StrOutputParser` with a SQLite `PreferenceMemory`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.train, pytest.mark.slow]

SEEDS = (0, 1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    pytest.importorskip("trl", reason="needs the [train] extra")
    from fspo_train.bench.runner import BenchConfig, run_benchmark

    return {
        seed: run_benchmark(BenchConfig.tiny(seed), tmp_path_factory.mktemp(f"bench-{seed}"))
        for seed in SEEDS
    }


@pytest.mark.parametrize("seed", SEEDS)
def test_fspo_beats_the_baselines_on_trained_users(runs: dict[int, Any], seed: int) -> None:
    methods = runs[seed]["methods"]
    fspo = methods["fspo"]["win_rate"]["trained"]
    assert fspo > methods["few_shot"]["win_rate"]["trained"], runs[seed]["table_markdown"]
    assert fspo > methods["ipo"]["win_rate"]["trained"], runs[seed]["table_markdown"]
    assert fspo > 50.0, runs[seed]["table_markdown"]


@pytest.mark.parametrize("seed", SEEDS)
def test_fspo_accuracy_is_above_chance_and_rises_with_shots(
    runs: dict[int, Any], seed: int
) -> None:
    result = runs[seed]
    assert result["methods"]["fspo"]["accuracy"]["trained"] > 60.0, result["table_markdown"]
    curve = result["shots_curve"]
    shots = sorted(curve, key=int)
    assert curve[shots[-1]]["trained"] > curve[shots[0]]["trained"], result["table_markdown"]


def test_result_records_machine_versions_seed_and_table(runs: dict[int, Any]) -> None:
    result = runs[0]
    meta = result["meta"]
    for key in ("device", "torch", "transformers", "trl", "peft", "seed", "wall_time_s", "date"):
        assert key in meta
    assert meta["seed"] == 0
    assert "| FSPO |" in result["table_markdown"]
    assert {s["method"] for s in result["samples"]} >= {"base", "fspo"}


def test_reports_are_written(runs: dict[int, Any], tmp_path: Path) -> None:
    import json

    from fspo_train.bench.report import write_results

    paths = write_results(runs[0], tmp_path, "reviews_mini")
    assert json.loads(paths["json"].read_text())["meta"]["seed"] == 0
    assert "| FSPO |" in paths["markdown"].read_text()
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trained_adapter_serves_through_a_langchain_chain(
    runs: dict[int, Any], tmp_path: Path
) -> None:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    from fspo_train.bench.data import build_records
    from fspo_train.bench.reviews_mini import ReviewsMini
    from langchain_fspo import ChatFSPO, PreferenceMemory
    from langchain_fspo.prompt_format import PromptFormat

    adapter = Path(runs[0]["adapters"]["fspo"])
    assert PromptFormat.from_pretrained(adapter).num_shots == 4
    domain = ReviewsMini(seed=0, num_questions=120)
    records = build_records(domain, [domain.user("positive")], seed=0)[:4]
    with PreferenceMemory.sqlite(tmp_path / "memory.sqlite") as memory:
        for r in records:
            memory.add("ada", prompt=r.question, chosen=r.chosen, rejected=r.rejected)
        chat = ChatFSPO.from_pretrained(adapter, backend="local", memory=memory, max_tokens=40)
        chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | chat | StrOutputParser()
        question = domain.questions("test")[0].text
        answer = chain.invoke({"q": question}, config={"configurable": {"user_id": "ada"}})
        prompt = chat.build_prompt([("human", question)], user_id="ada")
    assert isinstance(answer, str)
    assert answer.strip()
    assert records[0].chosen in str(prompt)
