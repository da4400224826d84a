"""The benchmark end to end on CPU, reduced (`BenchConfig.tiny`), for one seed.

It trains a tiny Llama from scratch, then FSPO and the 0-shot IPO baseline with
`fspo_train.trainer.run.train` (in worker processes), and evaluates them with the exact judge; the
FSPO adapter is then served through LangChain (`ChatPromptTemplate | ChatFSPO |
StrOutputParser` with a SQLite `PreferenceMemory`), also as the demo serves it
(`fspo_train.demo._serve`): two opposite users' reviews must differ in length the way they
prefer, and must not when both get the same labelled pairs (personalisation turned off).

Every torch process it starts runs one thread (`BenchConfig.tiny` sets `torch_threads=1`; the
training workers get `OMP_NUM_THREADS=MKL_NUM_THREADS=1` and `torch.set_num_threads(1)`): on a
shared 2-core machine, more threads than free cores spin-wait and the run took over 30
minutes. Its cost is in `bench/results/reviews_mini_notes.md` (about 3.5 CPU-minutes).

The ordering check is the paper's claim, at a size that trains in minutes: for both user
groups, FSPO's implicit-reward accuracy on held-out pairs (every row against the same
reference, the base model zero-shot) is above few-shot prompting's and non-personalised
IPO's by more than 5 points, and on trained users it is higher with 4 shots than with none.
It checks the ordering, not the absolute numbers (those are in
`bench/results/reviews_mini.md`). Win rates are not
compared at this size: the reduced base LM's own greedy reviews are sometimes malformed, so a
win against it (4 questions per user) says more about fluency than about personalisation.
The held-out wiring is checked without training in `test_held_out_wiring.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.train, pytest.mark.slow]

SEED = 0
MARGIN = 5.0
"""Points of accuracy FSPO must lead few-shot prompting and IPO by, in both user groups."""
PAIRINGS = (("positive+concise", "negative+verbose"), ("negative+concise", "positive+verbose"))
"""(concise, verbose) users served side by side: the demo's pair and its mirror in sentiment."""
MIN_WORDS_GAP = 8.0
"""Mean words the verbose user's served reviews must exceed the concise user's by."""
CONTROL_SLACK = 2.0
"""Largest words gap left when both users are served from the same labelled pairs."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    pytest.importorskip("trl", reason="needs the [train] extra")
    from fspo_train.reviews_mini import BenchConfig, run_benchmark

    config = BenchConfig.tiny(SEED)
    assert config.torch_threads == 1
    return {SEED: run_benchmark(config, tmp_path_factory.mktemp(f"bench-{SEED}"))}


def test_every_method_is_measured_for_both_groups_with_intervals(runs: dict[int, Any]) -> None:
    result = runs[SEED]
    methods = result["methods"]
    assert list(methods) == ["base", "few_shot", "ipo", "fspo"]
    for name, row in methods.items():
        for group in ("trained", "interpolated"):
            assert 0.0 <= row["win_rate"][group] <= 100.0
            if name != "base":
                low, high = row["win_rate_ci"][group]
                assert low <= row["win_rate"][group] <= high
                low, high = row["accuracy_ci"][group]
                assert low <= row["accuracy"][group] <= high
                assert row["pairs"][group] == 4 * 32  # 4 users per group, 32 pairs each
    assert set(result["shots_curve"]) == {"0", "4"}
    # The curve's 4 shots and the table's FSPO row are the same measurement (same reference).
    assert result["shots_curve"]["4"] == methods["fspo"]["accuracy"]


def test_fspo_ranks_held_out_pairs_better_than_the_baselines(runs: dict[int, Any]) -> None:
    result = runs[SEED]
    methods, table = result["methods"], result["table_markdown"]
    for group in ("trained", "interpolated"):
        fspo = methods["fspo"]["accuracy"][group]
        # Above by more than noise-level slack (measured margins: 12 to 23 points).
        assert fspo > methods["few_shot"]["accuracy"][group] + MARGIN, table
        assert fspo > methods["ipo"]["accuracy"][group] + MARGIN, table
    curve = result["shots_curve"]
    assert curve["4"]["trained"] > curve["0"]["trained"], table


def test_result_records_machine_versions_seed_threads_and_table(runs: dict[int, Any]) -> None:
    result = runs[SEED]
    meta = result["meta"]
    for key in ("device", "torch", "transformers", "trl", "peft", "wall_time_s", "date"):
        assert meta[key]
    assert meta["seed"] == SEED
    assert meta["torch_threads"] == 1
    assert "| FSPO |" in result["table_markdown"]
    assert "Wilson" in result["table_markdown"]
    assert {s["method"] for s in result["samples"]} >= {"base", "fspo"}
    # Each training worker ran on one torch thread.
    for name in ("fspo", "ipo"):
        log = (Path(result["work_dir"]) / "jobs" / name / "train.log").read_text()
        assert "torch threads: 1" in log


def test_reports_are_written(runs: dict[int, Any], tmp_path: Path) -> None:
    import json

    from fspo_train.reviews_mini.report import write_results

    paths = write_results(runs[SEED], tmp_path, "reviews_mini")
    assert json.loads(paths["json"].read_text())["meta"]["seed"] == 0
    assert "| FSPO |" in paths["markdown"].read_text()
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trained_adapter_serves_through_a_langchain_chain(
    runs: dict[int, Any], tmp_path: Path
) -> None:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    from fspo_train.reviews_mini import BenchConfig
    from fspo_train.reviews_mini.data import build_records
    from fspo_train.reviews_mini.reviews import ReviewsMini
    from langchain_fspo import ChatFSPO, PreferenceMemory
    from langchain_fspo.prompt_format import PromptFormat

    adapter = Path(runs[SEED]["adapters"]["fspo"])
    assert PromptFormat.from_pretrained(adapter).num_shots == 4
    config = BenchConfig.tiny(SEED)
    domain = ReviewsMini(seed=SEED, num_questions=config.num_questions)  # the run's titles
    records = build_records(domain, [domain.user("positive")], seed=SEED)[:4]
    with PreferenceMemory.sqlite(tmp_path / "memory.sqlite") as memory:
        for r in records:
            memory.add("ada", prompt=r.question, chosen=r.chosen, rejected=r.rejected)
        chat = ChatFSPO.from_pretrained(adapter, backend="local", memory=memory, max_tokens=40)
        chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | chat | StrOutputParser()
        question = domain.questions("test")[0].text
        assert question not in {q.text for q in domain.questions("train")}  # unseen in training
        answer = chain.invoke({"q": question}, config={"configurable": {"user_id": "ada"}})
        prompt = chat.build_prompt([("human", question)], user_id="ada")
    assert isinstance(answer, str)
    assert answer.strip()
    assert records[0].chosen in prompt.text
    assert len(prompt.shots) == 4


def test_served_reviews_follow_each_users_length_preference(
    runs: dict[int, Any], tmp_path: Path
) -> None:
    """The demo's serving (`demo._serve`) with the trained FSPO adapter personalises length.

    For both pairings of opposite users, the concise user's 12 reviews are shorter on average
    than the verbose user's by more than `MIN_WORDS_GAP`; with the verbose user given the
    concise user's labelled pairs (`shots_from`), the gap is gone (greedy decoding: the same
    reviews), so it comes from the shots. Measured: seed 0, three trainings (bit-identical
    adapters), concise 7.0 words against verbose 24.8 / 26.0 (gaps 17.8 / 19.0), 0 in the
    control; seed 1, gaps 18.3 / 15.8. Sentiment is not asserted: at this size it does not
    follow the user (seed 0: negative+concise +0.65 against positive+verbose +0.05; seed 1:
    positive+concise -0.15 against negative+verbose +0.54).
    """
    from fspo_train import demo
    from fspo_train.reviews_mini import BenchConfig
    from fspo_train.reviews_mini.reviews import ReviewsMini

    adapter = Path(runs[SEED]["adapters"]["fspo"])
    config = BenchConfig.tiny(SEED)
    domain = ReviewsMini(seed=SEED, num_questions=config.num_questions)  # the run's titles
    for concise, verbose in PAIRINGS:
        for control in (False, True):
            out = tmp_path / f"{concise}-{control}"
            out.mkdir()
            shots_from = {verbose: concise} if control else None
            served = demo._serve(
                out, adapter, domain, [concise, verbose], SEED, shots_from=shots_from
            )
            words = {user: mean["words"] for user, mean in served["summary"].items()}
            gap = words[verbose] - words[concise]
            if control:
                assert abs(gap) < CONTROL_SLACK, served["summary"]
            else:
                assert gap > MIN_WORDS_GAP, served["summary"]
