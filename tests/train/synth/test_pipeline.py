"""End to end: the whole pipeline on the tiny domain with the scripted chat model in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fspo_train.data.records import PreferenceRecord
from fspo_train.synth import RunStateError, SynthRun, estimate_requests, load_domain, run_synth
from fspo_train.synth.runner import RunnerSettings
from tests.train.synth.conftest import TINY_DOMAIN, make_run
from tests.train.synth.scripted import ScriptedChatModel

OUTPUT_FILES = ("records.jsonl", "train.jsonl", "test.jsonl", "splits.json", "disagreement.json")


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _labels_by_user_pair(run_dir: Path, filename: str, round_: int) -> dict[tuple[str, str], str]:
    """(user, pair) -> 'consistent' | 'flipped' for both-ok labels of one round."""
    rows = [r for r in _rows(run_dir / filename) if r["meta"]["round"] == round_]
    by_key: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault((r["meta"]["user_id"], r["meta"]["pair_id"]), {})[r["meta"]["order"]] = r
    out = {}
    for key, orders in by_key.items():
        ab, ba = orders.get("ab"), orders.get("ba")
        if ab and ba and ab["status"] == ba["status"] == "ok":
            same = ab["output"]["preferred"] != ba["output"]["preferred"]
            out[key] = "consistent" if same else "flipped"
    return out


def test_records_validate_and_splits_are_disjoint(reference_run):
    run_dir, summary = reference_run
    records = [PreferenceRecord.model_validate(r) for r in _rows(run_dir / "records.jsonl")]
    assert len(records) == summary["records"]["records"] > 0
    train = _rows(run_dir / "train.jsonl")
    test = _rows(run_dir / "test.jsonl")
    assert len(train) + len(test) == len(records)
    splits = json.loads((run_dir / "splits.json").read_text())
    assert splits["test_users"], "the tiny domain holds one user out"
    assert {r["user_id"] for r in train}.isdisjoint(splits["test_users"])
    assert {r["question_id"] for r in train}.isdisjoint(splits["test_questions"])
    assert {r["provenance"]["split"] for r in test} <= {"test_users", "test_questions", "test_both"}
    # Questions are shared across users, so users can be compared.
    assert len({r.question_id for r in records}) < len(records)


def test_order_inconsistent_pairs_are_dropped(reference_run):
    run_dir, summary = reference_run
    records = _rows(run_dir / "records.jsonl")
    kept = {
        (r["user_id"], r["provenance"]["pair_id"], r["provenance"]["label_round"]) for r in records
    }
    flipped = 0
    for round_, filename in ((0, "labels.jsonl"), (1, "relabels.jsonl"), (2, "relabels.jsonl")):
        for (user, pair), verdict in _labels_by_user_pair(run_dir, filename, round_).items():
            if verdict == "flipped":
                flipped += 1
                assert (user, pair, round_) not in kept
    assert flipped > 0
    assert summary["records"]["order_inconsistent"] > 0
    report = json.loads((run_dir / "report.json").read_text())
    assert report["labels"]["initial"]["flip_rate"] > report["labels"]["final"]["flip_rate"] > 0


def test_refinement_changes_persona_and_relabels(reference_run):
    run_dir, _ = reference_run
    seeds = {r["id"]: r["output"] for r in _rows(run_dir / "personas.jsonl")}
    refinements = [r for r in _rows(run_dir / "refinements.jsonl") if r["status"] == "ok"]
    assert refinements
    user = refinements[0]["meta"]["user_id"]
    seed_description = f"{seeds[user]['name']}: {seeds[user]['description']}"
    final = {
        r["user_description"] for r in _rows(run_dir / "records.jsonl") if r["user_id"] == user
    }
    assert len(final) == 1
    (description,) = final
    assert description != seed_description
    assert description.startswith(seed_description)
    assert refinements[0]["output"]["addition"] in description
    # The user's pairs were relabelled with the refined description ...
    relabels = [r for r in _rows(run_dir / "relabels.jsonl") if r["meta"]["user_id"] == user]
    assert {r["meta"]["round"] for r in relabels} >= {1}
    # ... and some choice that flipped with the seed persona is consistent (and kept) afterwards.
    before = _labels_by_user_pair(run_dir, "labels.jsonl", 0)
    kept = {(r["user_id"], r["provenance"]["pair_id"]) for r in _rows(run_dir / "records.jsonl")}
    fixed = [key for key, v in before.items() if v == "flipped" and key in kept]
    assert fixed


def test_malformed_outputs_are_retried_then_counted(reference_run):
    run_dir, summary = reference_run
    labels = _rows(run_dir / "labels.jsonl") + _rows(run_dir / "relabels.jsonl")
    repaired = [r for r in labels if r["status"] == "ok" and r["attempts"] > 1]
    failed = [r for r in labels if r["status"] == "failed"]
    assert repaired, "truncated JSON on a first attempt is repaired by the retry"
    assert all(r["usage"]["requests"] == r["attempts"] for r in repaired)
    assert failed, "the 'garbled' question is never answered in JSON"
    assert all(r["attempts"] == 3 and r["output"] is None for r in failed)
    assert all("not a JSON object" in r["error"] for r in failed)
    assert summary["records"]["label_failed"] > 0
    records = _rows(run_dir / "records.jsonl")
    assert not [r for r in records if "garbled" in r["question"]]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["stages"]["labels"]["failed"] == sum(
        1 for r in _rows(run_dir / "labels.jsonl") if r["status"] == "failed"
    )


def test_accounting_and_report(reference_run):
    run_dir, _ = reference_run
    usage = json.loads((run_dir / "usage.json").read_text())
    responses = _rows(run_dir / "responses.jsonl")
    assert usage["stages"]["responses"]["requests"] == len(responses)
    assert usage["stages"]["responses"]["input_tokens"] == sum(
        r["usage"]["input_tokens"] for r in responses
    )
    assert usage["stages"]["labels"]["total_tokens"] > 0
    report = json.loads((run_dir / "report.json").read_text())
    assert [r["round"] for r in report["refinement"]] == [1, 2]
    assert report["heatmap"]
    assert (run_dir / "disagreement.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (run_dir / "report.md").read_text()
    assert "## Cross-user disagreement" in markdown
    assert "flipped under order swap" in markdown
    disagreement = json.loads((run_dir / "disagreement.json").read_text())
    n = len(disagreement["users"])
    assert n == 4
    assert all(disagreement["matrix"][i][i] == 0 for i in range(n))
    assert 0 <= disagreement["mean_disagreement"] <= 1
    assert report["examples"]
    per_user = report["per_user"]
    assert set(per_user) == set(disagreement["users"])
    kept = _rows(run_dir / "records.jsonl")
    assert sum(u["kept"] for u in per_user.values()) == len(kept)
    assert any(u["flips_final"] < u["flips_initial"] for u in per_user.values())
    assert "| user | pairs | kept |" in markdown


def test_same_seed_same_bytes(reference_run, tmp_path):
    run_dir, _ = reference_run
    again = tmp_path / "again"
    run_synth(
        make_run(
            again,
            settings=RunnerSettings(concurrency=7, backoff_base=0, progress=False, fsync=False),
        )
    )
    for name in OUTPUT_FILES:
        assert (again / name).read_bytes() == (run_dir / name).read_bytes(), name


def test_rerunning_a_finished_run_sends_no_request(reference_run, tmp_path, monkeypatch):
    import shutil

    from tests.train.synth import scripted

    run_dir, _ = reference_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    made: list[ScriptedChatModel] = []
    original = scripted.make_model

    def counting_factory(**kwargs: Any) -> ScriptedChatModel:
        model = original(**kwargs)
        made.append(model)
        return model

    monkeypatch.setattr(scripted, "make_model", counting_factory)
    run_synth(make_run(copy))
    assert made
    assert sum(m.calls for m in made) == 0
    for name in OUTPUT_FILES:
        assert (copy / name).read_bytes() == (run_dir / name).read_bytes(), name


def test_a_different_seed_is_refused_in_the_same_folder(reference_run):
    run_dir, _ = reference_run
    with pytest.raises(RunStateError, match="seed"):
        run_synth(make_run(run_dir, seed=1))


def test_a_stage_reruns_alone(reference_run, tmp_path):
    import shutil

    run_dir, _ = reference_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "records.jsonl").write_text("")
    summary = run_synth(make_run(copy), stages=["records"], redo=True)
    assert (copy / "records.jsonl").read_bytes() == (run_dir / "records.jsonl").read_bytes()
    assert "report" not in summary


def test_persona_steering_domains_run_end_to_end(tmp_path):
    domain = load_domain("reviews").with_overrides(global_count=6, batch_size=3, per_question=3)
    run = SynthRun(
        domain=domain,
        out=tmp_path / "reviews",
        generators=[ScriptedChatModel(model_name="gen-a"), ScriptedChatModel(model_name="gen-b")],
        labeller=ScriptedChatModel(model_name="judge"),
        settings=RunnerSettings(concurrency=4, progress=False, fsync=False),
    )
    summary = run_synth(run)
    records = [
        PreferenceRecord.model_validate(r) for r in _rows(tmp_path / "reviews" / "records.jsonl")
    ]
    assert summary["users"] == 8
    assert records
    interpolated = {"positive+concise", "positive+verbose", "negative+concise", "negative+verbose"}
    train = _rows(tmp_path / "reviews" / "train.jsonl")
    assert train
    assert not interpolated & {r["user_id"] for r in train}
    assert {r.user_id for r in records} & interpolated
    responses = _rows(tmp_path / "reviews" / "responses.jsonl")
    assert {r["model"] for r in responses} == {"scripted:gen-a", "scripted:gen-b"}
    positive = [r for r in records if r.user_id == "positive"]
    assert positive
    assert all("positive" in r.chosen for r in positive)


def test_a_stage_without_its_inputs_is_refused(tmp_path):
    with pytest.raises(RunStateError, match="needs the output of 'personas'"):
        run_synth(make_run(tmp_path / "fresh"), stages=["labels"])


def test_a_stage_with_no_work_still_counts_as_run(tmp_path):
    # 3 global questions are all seeds: the questions stage sends no request, yet later
    # stages run alone find it done.
    domain = load_domain(TINY_DOMAIN).with_overrides(global_count=3, specific_per_user=0)
    run_synth(make_run(tmp_path / "r", domain=domain), stages=["personas", "questions"])
    assert (tmp_path / "r" / "questions.jsonl").read_text() == ""
    summary = run_synth(make_run(tmp_path / "r", domain=domain), stages=["views"])
    assert summary["questions"] == 3
    assert len((tmp_path / "r" / "views.jsonl").read_text().splitlines()) == 3


def test_one_spec_generates_hot_and_labels_cold(tmp_path, monkeypatch):
    from tests.train.synth import scripted

    made: list[ScriptedChatModel] = []
    original = scripted.make_model

    def recording_factory(**kwargs: Any) -> ScriptedChatModel:
        made.append(original(**kwargs))
        return made[-1]

    monkeypatch.setattr(scripted, "make_model", recording_factory)
    run_synth(make_run(tmp_path / "r"), stages=["personas"])
    assert sorted(str(m.temperature) for m in made) == ["0.0", "1.0"]
    by_temperature = {m.temperature: m for m in made}
    assert by_temperature[1.0].calls == 4  # the question writer wrote the 4 personas
    assert by_temperature[0.0].calls == 0


def test_the_estimate_matches_what_the_run_sent(reference_run):
    run_dir, _ = reference_run
    estimate = estimate_requests(load_domain(TINY_DOMAIN))
    for stage in ("personas", "questions", "views", "responses", "labels"):
        assert estimate[stage] == len(_rows(run_dir / f"{stage}.jsonl")), stage
    relabels = len(_rows(run_dir / "relabels.jsonl")) + len(_rows(run_dir / "refinements.jsonl"))
    assert 0 < relabels <= estimate["refine_at_most"]
