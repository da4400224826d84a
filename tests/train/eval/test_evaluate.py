"""`fspo eval` on tiny models: implicit-reward accuracy, baselines wiring, results, CLI.

Tiny random Llama + LoRA adapters built offline (`fspo_train.testing`); CPU, a few seconds each.
One module (about 480 lines) because its tests share module-scoped fixtures, the trained run
folder and the full evaluation over it; split, each part would build them again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from fspo_train.data.loaders import load_records
from fspo_train.data.records import PreferenceRecord
from fspo_train.eval.config import EvalConfig, find_stage1_adapter
from fspo_train.eval.evaluate import run_evaluation
from fspo_train.eval.items import build_eval_items
from fspo_train.eval.prompting import generation_prompts, tokenize_items
from langchain_fspo.prompt_format import PromptFormat

pytestmark = pytest.mark.train

torch = pytest.importorskip("torch")

USERS = {
    "trained": {"ana": "Ana likes cheerful, short answers.", "bo": "Bo likes gloomy answers."},
    "held_out": {"cy": "Cy wants formal answers.", "di": "Di wants playful answers."},
}
TOPICS = ["tea", "rain", "cats", "maps"]
ITEMS = 4  # queries per split in the full evaluation (a seeded sample of 8)


def _records(split: str) -> list[PreferenceRecord]:
    return [
        PreferenceRecord(
            user_id=user,
            question=f"What do you think about {topic}?",
            chosen=f"I love {topic}!",
            rejected=f"{topic.title()} is dull.",
            user_description=description,
        )
        for user, description in USERS[split].items()
        for topic in TOPICS
    ]


def _write_jsonl(path: Path, records: list[PreferenceRecord]) -> Path:
    path.write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
    return path


def length_judge(question: str, user_description: str | None, a: str, b: str) -> float:
    """A programmatic judge for the tests: the longer answer wins (ties on equal length)."""
    if len(a) == len(b):
        return 0.5
    return 1.0 if len(a) > len(b) else 0.0


@pytest.fixture(scope="module")
def chat_format(tiny_model_dir: Path) -> PromptFormat:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    return PromptFormat(
        style="chat",
        num_shots=2,
        base_model_id=str(tiny_model_dir.resolve()),
        chat_template_sha256=PromptFormat.template_sha256(tokenizer.chat_template),
        special_tokens=tuple(tokenizer.all_special_tokens),
    )


@pytest.fixture(scope="module")
def run_dir(
    tiny_model_dir: Path, chat_format: PromptFormat, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A training output: the FSPO adapter, the stage-1 adapter in `pref_ft/`, the config."""
    from fspo_train.testing.tiny import build_tiny_adapter

    root = tmp_path_factory.mktemp("eval-run") / "run"
    build_tiny_adapter(tiny_model_dir, root, prompt_format=chat_format, seed=11)
    build_tiny_adapter(tiny_model_dir, root / "pref_ft", prompt_format=chat_format, seed=12)
    (root / "fspo_train_config.yaml").write_text("beta: 0.02\n")
    return root


@pytest.fixture(scope="module")
def ipo_dir(
    tiny_model_dir: Path, chat_format: PromptFormat, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    from fspo_train.testing.tiny import build_tiny_adapter

    fmt = chat_format.model_copy(update={"num_shots": 0})
    return build_tiny_adapter(
        tiny_model_dir, tmp_path_factory.mktemp("ipo") / "ipo", prompt_format=fmt, seed=13
    )


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval-data")
    return {name: _write_jsonl(root / f"{name}.jsonl", _records(name)) for name in USERS}


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the run folder, so each test writes its results apart."""
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def test_items_take_shots_from_the_same_user_only() -> None:
    items = build_eval_items(_records("trained"), split="trained", num_shots=2, seed=3)
    assert len(items) == 8
    for item in items:
        assert len(item.shots) == 2
        same_user = {r.question for r in _records("trained") if r.user_id == item.user_id}
        assert {s.prompt for s in item.shots} <= same_user - {item.question}
    again = build_eval_items(_records("trained"), split="trained", num_shots=2, seed=3)
    assert again == items


def test_stage1_adapter_is_found(run_dir: Path) -> None:
    assert find_stage1_adapter(run_dir) == run_dir / "pref_ft"


def test_reference_equal_to_policy_gives_chance_accuracy(
    run_dir: Path, splits: dict[str, Path], tmp_path: Path
) -> None:
    out = _copy(run_dir, tmp_path)
    config = EvalConfig(
        adapter=out,
        splits=splits,
        reference=out,  # the reference is the policy itself: every reward is exactly 0
        methods=["fspo"],
        win_rate=False,
        max_items=ITEMS,
    )

    results = run_evaluation(config, plot=False)

    for split in USERS:
        acc = results["accuracy"]["fspo"][split]
        assert acc["n"] == ITEMS
        assert acc["ties"] == ITEMS
        assert acc["accuracy"] == 0.5
        assert acc["margin"] == 0.0


@pytest.mark.parametrize(("towards", "expected"), [("chosen", 1.0), ("rejected", 0.0)])
def test_policy_tuned_on_the_pairs_ranks_them_by_construction(
    tiny_model_dir: Path,
    tiny_adapter_dirs: dict[str, Path],
    splits: dict[str, Path],
    tmp_path: Path,
    towards: str,
    expected: float,
) -> None:
    """A LoRA tuned on the evaluated pairs ranks all of them right (or all wrong).

    DPO towards chosen (or rejected) runs until every implicit-reward margin against the base
    model is clear, so the accuracy is 1 (or 0) by construction.
    """
    from fspo_train.eval.scoring import PolicySet

    adapter = Path(shutil.copytree(tiny_adapter_dirs["paper"], tmp_path / "paper"))
    fmt = PromptFormat.from_pretrained(adapter)
    policies = PolicySet(tiny_model_dir, {"fspo": adapter})
    records = load_records(splits["held_out"]).records
    items = build_eval_items(records, split="held_out", num_shots=fmt.num_shots, max_items=4)
    prompts, chosen_ids, rejected_ids = tokenize_items(fmt, policies.tokenizer, items, "few_shot")
    chosen = list(zip(prompts, chosen_ids, strict=True))
    rejected = list(zip(prompts, rejected_ids, strict=True))
    with torch.no_grad(), policies.use(None):  # the reference: the base model
        ref_margin = policies.sequence_logprobs(chosen) - policies.sequence_logprobs(rejected)
    params = [p for n, p in policies.model.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=2e-2)
    sign = 1.0 if towards == "chosen" else -1.0
    reached = False
    with policies.use("fspo"):
        for _ in range(60):  # DPO on the evaluated pairs until every margin is clear
            margin = policies.sequence_logprobs(chosen) - policies.sequence_logprobs(rejected)
            implicit = sign * (margin - ref_margin)
            if bool((implicit > 0.5).all()):
                reached = True
                break
            loss = -torch.nn.functional.logsigmoid(implicit).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert reached, "the tiny LoRA did not separate the pairs; raise the steps"
    for p in params:
        p.requires_grad_(False)

    config = EvalConfig(
        adapter=adapter,
        splits={"held_out": splits["held_out"]},
        methods=["fspo"],
        win_rate=False,
        max_items=4,
        output_dir=tmp_path / "out",
    )
    results = run_evaluation(config, policies=policies, plot=False)

    acc = results["accuracy"]["fspo"]["held_out"]
    assert acc["accuracy"] == expected
    assert acc["ties"] == 0
    assert (acc["margin"] > 0) == (towards == "chosen")
    assert results["reference"] == "base model"


class RecordingJudge:
    """The length judge, recording every comparison it was asked."""

    name = "recording-length-judge"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, str, str]] = []

    def compare(self, question: str, user_description: str | None, a: str, b: str) -> float:
        self.calls.append((question, user_description, a, b))
        return length_judge(question, user_description, a, b)


@pytest.fixture(scope="module")
def full_eval(
    run_dir: Path,
    ipo_dir: Path,
    splits: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, Any], Path, RecordingJudge]:
    out = tmp_path_factory.mktemp("full-eval")
    judge = RecordingJudge()
    config = EvalConfig(
        adapter=run_dir,
        splits=splits,
        ipo_adapter=ipo_dir,
        max_items=ITEMS,
        max_new_tokens=6,
        batch_size=4,
        output_dir=out,
    )
    results = run_evaluation(config, judge=judge)
    return results, out, judge


def test_every_baseline_runs_and_is_judged_against_base(full_eval) -> None:
    results, _, judge = full_eval
    methods = ["fspo", "base", "few_shot", "pref_ft", "ipo", "oracle"]
    assert list(results["methods"]) == methods
    assert set(results["win_rate"]) == set(methods) - {"base"}
    assert set(results["accuracy"]) == set(methods) - {"base"}
    for per_split in results["win_rate"].values():
        assert set(per_split) == set(USERS)
        assert all(v["n"] == ITEMS for v in per_split.values())
    assert len(judge.calls) == 5 * 2 * ITEMS
    descriptions = {d for _, d, _, _ in judge.calls}
    assert descriptions == {d for users in USERS.values() for d in users.values()}
    assert results["reference"].endswith("pref_ft")
    assert results["judge"] == "recording-length-judge"
    assert results["beta"] == 0.02  # from the run's fspo_train_config.yaml


def test_each_method_generates_with_its_adapter_and_prompt(
    full_eval, run_dir: Path, ipo_dir: Path, tiny_model_dir: Path
) -> None:
    """Regenerate each method's answers directly and compare with what the judge saw."""
    from fspo_train.eval.scoring import PolicySet

    _, out, _ = full_eval
    rows = [json.loads(line) for line in (out / "eval_generations.jsonl").read_text().splitlines()]
    fmt = PromptFormat.from_pretrained(run_dir)
    policies = PolicySet(
        tiny_model_dir, {"fspo": run_dir, "pref_ft": run_dir / "pref_ft", "ipo": ipo_dir}
    )
    wiring = {
        "fspo": ("fspo", "few_shot"),
        "few_shot": (None, "few_shot"),
        "pref_ft": ("pref_ft", "few_shot"),
        "ipo": ("ipo", "zero_shot"),
        "oracle": (None, "oracle"),
    }
    held_out = build_eval_items(
        _records("held_out"), split="held_out", num_shots=2, max_items=ITEMS
    )
    by_question = {(i.user_id, i.question): i for i in held_out}
    outputs: dict[str, list[str]] = {}
    for method, (adapter, mode) in [*wiring.items(), ("base", (None, "zero_shot"))]:
        prompts = generation_prompts(fmt, policies.tokenizer, held_out, mode)
        with policies.use(adapter):
            raw = policies.generate(prompts, max_new_tokens=6)
        outputs[method] = [fmt.parse_completion(t).response for t in raw]
    for method in wiring:
        seen = [r for r in rows if r["method"] == method and r["split"] == "held_out"]
        assert len(seen) == ITEMS
        for row in seen:
            index = held_out.index(by_question[(row["user_id"], row["question"])])
            assert row["output"] == outputs[method][index], method
            assert row["baseline_output"] == outputs["base"][index]
    distinct = {tuple(v) for v in outputs.values()}
    assert len(distinct) > 1, "every method answered the same: the wiring test proves nothing"


def test_results_json_and_plot_are_written(full_eval) -> None:
    import matplotlib.image

    results, out, _ = full_eval
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved["win_rate"] == results["win_rate"]
    assert saved["accuracy"] == results["accuracy"]
    assert saved["splits"] == {"trained": ITEMS, "held_out": ITEMS}
    png = out / "eval_plot.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(png).shape
    assert width > height > 100


def _cli(argv: list[str]) -> int:
    from fspo_train.cli import main

    return main(argv)


def test_cli_eval(
    run_dir: Path,
    splits: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "cli-out"
    argv = [
        "eval",
        str(run_dir),
        "--split",
        f"trained={splits['trained']}",
        "--split",
        f"held_out={splits['held_out']}",
        "--methods",
        "fspo,base",
        "--judge",
        "tests.train.eval.test_evaluate:length_judge",
        "--max-new-tokens",
        "4",
        "--max-items",
        "2",
        "--output-dir",
        str(out),
    ]

    assert _cli(argv) == 0

    results = json.loads((out / "eval_results.json").read_text())
    assert set(results["win_rate"]) == {"fspo"}
    assert set(results["accuracy"]) == {"fspo"}
    assert results["splits"] == {"trained": 2, "held_out": 2}
    assert results["judge"] == "length_judge"
    assert (out / "eval_plot.png").is_file()
    stdout = capsys.readouterr().out
    assert "win_rate  fspo" in stdout
    assert str(out / "eval_results.json") in stdout


def test_cli_eval_needs_a_judge_for_win_rates(
    run_dir: Path, splits: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["eval", str(run_dir), "--split", f"held_out={splits['held_out']}"]) == 2
    assert "--judge" in capsys.readouterr().err


def test_results_render_in_the_model_card(full_eval, run_dir: Path, tmp_path: Path) -> None:
    from fspo_train.publish.model_card import build_model_card

    results, out, _ = full_eval
    folder = _copy(run_dir, tmp_path)
    shutil.copy(out / "eval_results.json", folder / "eval_results.json")

    body = str(build_model_card(folder, "org/tiny"))

    assert "## Evaluation" in body
    assert "against `base`, judged by recording-length-judge" in body
    for method, per_split in results["win_rate"].items():
        cells = " | ".join(
            f"{100 * per_split[s]['win_rate']:.1f} (n={ITEMS})" for s in ("trained", "held_out")
        )
        assert f"| {method} | {cells} |" in body
    assert "| trained | held_out |" in body


def test_prompt_budget_drops_the_oldest_shots(tiny_model_dir: Path, chat_format) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    items = build_eval_items(_records("trained"), split="trained", num_shots=2, max_items=3)
    full, _, _ = tokenize_items(chat_format, tokenizer, items, "few_shot")
    zero, _, _ = tokenize_items(chat_format, tokenizer, items, "zero_shot")
    budget = max(len(z) for z in zero) + 24  # room for the question and the answer only
    tight = chat_format.model_copy(update={"max_prompt_tokens": budget})

    prompts, chosen, rejected = tokenize_items(tight, tokenizer, items, "few_shot")

    for prompt, c, r, long in zip(prompts, chosen, rejected, full, strict=True):
        assert len(prompt) < len(long)
        assert len(prompt) + max(len(c), len(r)) <= budget
    generation = generation_prompts(tight, tokenizer, items, "few_shot", max_new_tokens=8)
    assert all(len(p) + 8 <= budget for p in generation)


def test_cli_eval_defaults_to_the_runs_saved_splits(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _copy(run_dir, tmp_path)
    trained = _records("trained")
    splits = out / "splits"
    splits.mkdir()
    _write_jsonl(splits / "train.jsonl", [r for r in trained if "tea" in r.question])
    _write_jsonl(splits / "test_questions.jsonl", [r for r in trained if "cats" in r.question])
    _write_jsonl(splits / "test_users.jsonl", _records("held_out"))

    argv = ["eval", str(out), "--no-win-rate", "--methods", "fspo", "--max-items", "2"]
    assert _cli(argv) == 0

    results = json.loads((out / "eval_results.json").read_text())
    assert results["splits"] == {"trained": 2, "held_out": 2}
    assert set(results["accuracy"]["fspo"]) == {"trained", "held_out"}
    assert results["win_rate"] == {}


def test_saved_split_queries_take_shots_from_the_training_records() -> None:
    trained = _records("trained")
    queries = [r for r in trained if "cats" in r.question]
    pool = [r for r in trained if "tea" in r.question]
    items = build_eval_items(queries, split="trained", num_shots=2, shot_records=pool)
    for item in items:
        assert [s.prompt for s in item.shots] == ["What do you think about tea?"]


def test_cli_eval_without_splits_says_what_to_pass(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _copy(run_dir, tmp_path)
    assert _cli(["eval", str(out), "--no-win-rate"]) == 2
    err = capsys.readouterr().err
    assert "--split" in err
    assert "holdout_users" in err


def test_rat_completions_start_with_the_user_description(
    tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path]
) -> None:
    from transformers import AutoTokenizer

    fmt = PromptFormat.from_pretrained(tiny_adapter_dirs["rat"])
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    items = build_eval_items(_records("held_out"), split="held_out", num_shots=2, max_items=2)

    prompts, chosen, _ = tokenize_items(fmt, tokenizer, items, "few_shot")
    _, zero_chosen, _ = tokenize_items(fmt, tokenizer, items, "zero_shot")

    for item, prompt, ids, zero in zip(items, prompts, chosen, zero_chosen, strict=True):
        text = tokenizer.decode(ids)
        assert text.startswith("## User Description\n" + str(item.user_description))
        assert str(item.user_description) not in tokenizer.decode(prompt)  # not teacher-forced
        assert "User Description" not in tokenizer.decode(zero)


def test_bad_eval_data_is_refused_with_its_line(run_dir: Path, tmp_path: Path) -> None:
    from langchain_fspo.errors import InvalidExampleError

    bad = tmp_path / "bad.jsonl"
    good = _records("held_out")[0].model_dump_json()
    bad.write_text(good + "\n" + '{"user_id": "x", "question": "q"}\n', encoding="utf-8")
    config = EvalConfig(adapter=run_dir, splits={"held_out": bad}, win_rate=False)
    with pytest.raises(InvalidExampleError, match=":2"):
        run_evaluation(config, plot=False)
