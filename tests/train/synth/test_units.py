"""Unit tests of the pipeline's parts: store, parsers, prompts, domains, models, runner."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from fspo_train.synth import (
    JsonlStore,
    OutputParseError,
    RunStateError,
    SynthConfigError,
    SynthIncompleteError,
    available_domains,
    available_prompts,
    load_chat_model,
    load_domain,
    load_prompt,
)
from fspo_train.synth.runner import RunnerSettings, WorkItem, run_items
from fspo_train.synth.schemas import JsonOutput, PairLabel, TextOutput, ViewsOut
from langchain_fspo.errors import InferenceServerError
from tests.train.synth.scripted import ScriptedChatModel

# --- store -----------------------------------------------------------------------------------


def test_store_appends_and_reloads(tmp_path):
    store = JsonlStore(tmp_path / "s.jsonl")
    store.append({"id": "b", "status": "ok", "v": 2})
    store.append({"id": "a", "status": "failed", "v": 1})
    store.close()
    again = JsonlStore(tmp_path / "s.jsonl")
    assert [r["id"] for r in again] == ["a", "b"]
    assert [r["id"] for r in again.ok_rows()] == ["b"]
    with pytest.raises(RunStateError, match="already holds id 'a'"):
        again.append({"id": "a"})


def test_store_cuts_a_half_written_last_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "a", "status": "ok"}\n{"id": "b", "sta')
    store = JsonlStore(path)
    assert len(store) == 1
    assert path.read_text() == '{"id": "a", "status": "ok"}\n'
    store.append({"id": "b", "status": "ok"})
    store.close()
    assert len(JsonlStore(path)) == 2


def test_store_refuses_corruption_in_the_middle(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "a"}\nnot json\n{"id": "c"}\n')
    with pytest.raises(RunStateError, match="line 2 is not valid JSON"):
        JsonlStore(path)


@given(cut=st.integers(min_value=0, max_value=10_000))
@settings(max_examples=60, deadline=None)
def test_store_recovers_from_a_crash_at_any_byte(tmp_path_factory, cut):
    folder = tmp_path_factory.mktemp("crash")
    rows = [{"id": f"r{i:02d}", "status": "ok", "output": {"text": "é" * i}} for i in range(30)]
    full = folder / "full.jsonl"
    with JsonlStore(full, fsync=False) as store:
        for row in rows:
            store.append(row)
    data = full.read_bytes()
    torn = folder / "torn.jsonl"
    torn.write_bytes(data[: cut % (len(data) + 1)])
    recovered = JsonlStore(torn, fsync=False)
    kept = list(recovered)
    assert kept == rows[: len(kept)]  # a prefix, never a garbled row
    assert torn.read_bytes() == data[: torn.stat().st_size]  # cut back to a line boundary
    with recovered:
        for row in rows[len(kept) :]:
            recovered.append(row)
    assert torn.read_bytes() == data


# --- parsers ---------------------------------------------------------------------------------


def test_json_parser_accepts_exact_json_and_one_fence():
    parser = JsonOutput(PairLabel)
    raw = '{"preferred": "B", "description_explains_choice": true, "rationale": " ok "}'
    assert parser.parse(raw) == {
        "preferred": "B",
        "description_explains_choice": True,
        "rationale": "ok",
    }
    assert parser.parse(f"```json\n{raw}\n```")["preferred"] == "B"


@pytest.mark.parametrize(
    "answer",
    [
        'Sure! {"preferred": "A", "description_explains_choice": true}',
        '{"preferred": "A", "description_explains_choice": tru',
        '{"preferred": "C", "description_explains_choice": true}',
        '{"preferred": "A", "description_explains_choice": true, "extra": 1}',
        '["A"]',
        "",
    ],
)
def test_json_parser_never_guesses(answer):
    with pytest.raises(OutputParseError):
        JsonOutput(PairLabel).parse(answer)


def test_text_parser_limits():
    assert TextOutput(max_chars=5).parse(" abc ") == {"text": "abc"}
    with pytest.raises(OutputParseError, match="empty"):
        TextOutput().parse("   ")
    with pytest.raises(OutputParseError, match="limit is 5"):
        TextOutput(max_chars=5).parse("abcdef")


# --- prompts ---------------------------------------------------------------------------------


def test_every_prompt_is_a_versioned_packaged_file():
    refs = available_prompts()
    expected = {
        "persona",
        "questions",
        "specific_questions",
        "views",
        "response_persona",
        "response_view",
        "label",
        "refine",
        "repair_json",
        "repair_text",
    }
    assert {r.split("@")[0] for r in refs} == expected
    for ref in refs:
        name, version = ref.split("@v")
        prompt = load_prompt(name, int(version))
        assert prompt.ref == ref
        assert len(prompt.sha256) == 64
        json_output = prompt.output not in {"text", "none"}
        assert ("schema" in prompt.input_variables) == (json_output or name == "repair_json")


def test_prompt_variables_are_checked():
    with pytest.raises(SynthConfigError, match="takes variables"):
        load_prompt("views").format(question="q")
    with pytest.raises(SynthConfigError, match="versions"):
        load_prompt("views", 99)
    with pytest.raises(SynthConfigError, match="No prompt named"):
        load_prompt("nope")


def test_prompts_and_domains_are_in_the_wheel(tmp_path):
    import zipfile

    from hatchling.builders.wheel import WheelBuilder

    root = Path(__file__).resolve().parents[3]
    builder = WheelBuilder(str(root))
    (wheel,) = list(builder.build(directory=str(tmp_path), versions=["standard"]))
    names = zipfile.ZipFile(wheel).namelist()
    for ref in available_prompts():
        name, version = ref.split("@v")
        assert f"fspo_train/synth/prompts/{name}.v{version}.txt" in names
    for domain in ("reviews", "elix", "roleplay"):
        assert f"fspo_train/synth/domains/{domain}.yaml" in names


# --- domains ---------------------------------------------------------------------------------


def test_packaged_domains_follow_the_paper():
    assert available_domains() == ["elix", "reviews", "roleplay"]
    reviews = load_domain("reviews")
    held_out = [u.id for u in reviews.users.users if u.held_out]
    assert len(reviews.users.users) == 8
    assert sorted(held_out) == sorted(u for u in [u.id for u in reviews.users.users] if "+" in u)
    assert reviews.responses.mode == "persona"
    elix = load_domain("elix")
    assert len(elix.users.users) == 5
    roleplay = load_domain("roleplay")
    combos = 1
    for values in roleplay.users.traits.values():
        combos *= len(values)
    assert sorted(roleplay.users.traits) == ["age", "gender", "location"]
    assert combos * roleplay.users.personas_per_combination == 1500
    assert roleplay.responses.mode == "view"
    assert roleplay.refine_rounds > 0


def test_domain_overrides_and_errors(tmp_path):
    cfg = load_domain("roleplay").with_overrides(global_count=3, per_question=2, max_users=None)
    assert (cfg.questions.global_count, cfg.responses.per_question) == (3, 2)
    with pytest.raises(SynthConfigError, match="Unknown domain override"):
        cfg.with_overrides(bogus=1)
    with pytest.raises(SynthConfigError, match="needs a trait domain"):
        load_domain("elix").with_overrides(personas_per_combination=2)
    with pytest.raises(SynthConfigError, match="Invalid domain config"):
        cfg.with_overrides(per_question=1)
    with pytest.raises(SynthConfigError, match="Unknown domain 'imdb'"):
        load_domain("imdb")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    with pytest.raises(SynthConfigError, match="Invalid domain config"):
        load_domain(bad)


# --- model specs -----------------------------------------------------------------------------


def test_model_specs():
    model = load_chat_model("openai:served-name@http://127.0.0.1:9/v1", temperature=0.7)
    assert type(model).__name__ == "ChatOpenAI"
    assert model.openai_api_base == "http://127.0.0.1:9/v1"
    assert model.temperature == 0.7
    scripted = load_chat_model("factory:tests.train.synth.scripted:make_model", temperature=1.0)
    assert isinstance(scripted, ScriptedChatModel)
    assert scripted.temperature == 1.0
    instance = ScriptedChatModel()
    assert load_chat_model(instance) is instance
    with pytest.raises(SynthConfigError, match="provider prefix"):
        load_chat_model("gpt-4o")
    with pytest.raises(SynthConfigError, match="base URL"):
        load_chat_model("openai:x@localhost:8000")
    with pytest.raises(SynthConfigError, match="Cannot import"):
        load_chat_model("factory:tests.train.synth.scripted:nope")


# --- runner ----------------------------------------------------------------------------------


class _Flaky(BaseChatModel):
    """Answers `answers` in turn; an Exception instance in the list is raised instead."""

    answers: list[Any]
    in_flight: int = 0
    max_in_flight: int = 0
    delay: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "flaky"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        raise NotImplementedError

    async def _agenerate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(self.delay)
        self.in_flight -= 1
        answer = self.answers.pop(0) if self.answers else '{"views": ["x"]}'
        if isinstance(answer, BaseException):
            raise answer
        usage = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage(answer, usage_metadata=usage))]
        )


class _HTTPError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


def _items(n: int) -> list[WorkItem]:
    return [
        WorkItem(
            id=f"v-{i}",
            model="m",
            prompt=load_prompt("views"),
            variables={"question": f"q{i}", "n": "1"},
            parser=JsonOutput(ViewsOut),
        )
        for i in range(n)
    ]


def _run(model: BaseChatModel, store: JsonlStore, n: int = 1, **settings: Any):
    cfg = RunnerSettings(progress=False, backoff_base=0.0, fsync=False, **settings)
    return asyncio.run(run_items("views", _items(n), store, {"m": model}, cfg))


def test_malformed_answers_are_repaired_or_counted(tmp_path):
    store = JsonlStore(tmp_path / "v.jsonl")
    model = _Flaky(answers=["nope", '{"views": ["a"]}', "bad", "bad", "bad"])
    outcome = _run(model, store, n=2, max_attempts=3, concurrency=1)
    assert (outcome.ok, outcome.failed) == (1, 1)
    ok, failed = store.get("v-0"), store.get("v-1")
    assert ok["output"] == {"views": ["a"]}
    assert ok["attempts"] == 2
    assert ok["usage"] == {
        "requests": 2,
        "input_tokens": 6,
        "output_tokens": 4,
        "total_tokens": 10,
        "missing_usage": 0,
    }
    assert failed["status"] == "failed"
    assert failed["output"] is None
    assert failed["attempts"] == 3
    assert "attempt 3" in failed["error"]
    assert failed["last_answer"] == "bad"
    assert ok is not None
    assert "last_answer" not in ok


def test_transport_errors_are_retried_then_left_for_the_next_run(tmp_path):
    store = JsonlStore(tmp_path / "v.jsonl")
    model = _Flaky(answers=[ConnectionError("reset"), _HTTPError(503), '{"views": ["a"]}'])
    assert _run(model, store, max_retries=2).ok == 1
    assert store.get("v-0")["usage"]["requests"] == 3

    store = JsonlStore(tmp_path / "w.jsonl")
    model = _Flaky(answers=[ConnectionError("reset")] * 3)
    with pytest.raises(SynthIncompleteError, match="run the same command again"):
        _run(model, store, max_retries=2)
    assert len(store) == 0
    assert _run(_Flaky(answers=[]), store).ok == 1  # the next run resumes it


def test_client_errors_fail_the_item_and_auth_errors_stop(tmp_path):
    store = JsonlStore(tmp_path / "v.jsonl")
    assert _run(_Flaky(answers=[_HTTPError(400)]), store).failed == 1
    assert "HTTP 400" in store.get("v-0")["error"]
    with pytest.raises(InferenceServerError, match="credentials"):
        _run(_Flaky(answers=[_HTTPError(401)]), JsonlStore(tmp_path / "w.jsonl"))


def test_concurrency_limit_and_resume(tmp_path):
    store = JsonlStore(tmp_path / "v.jsonl")
    model = _Flaky(answers=[], delay=0.01)
    outcome = _run(model, store, n=20, concurrency=3)
    assert outcome.ok == 20
    assert model.max_in_flight == 3
    again = _Flaky(answers=[])
    outcome = _run(again, store, n=25, concurrency=8)
    assert (outcome.skipped, outcome.ok) == (20, 5)
    assert again.max_in_flight <= 5


def test_scripted_model_reports_usage():
    model = ScriptedChatModel()
    message = model.invoke("<question>\nq\n</question>\n<view>\na frugal approach\n</view>")
    assert "frugal" in message.text
    assert message.usage_metadata["input_tokens"] > 0
