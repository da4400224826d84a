"""`fspo`'s failures: one or two lines naming the problem and the fix, no traceback.

The parser tests here need no training stack: the commands whose packages are missing are
registered as stand-ins that name the extra (what a base install shows).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from fspo_train.cli.errors import describe, remove_if_left_empty

# `fspo_train.cli.main` is also the name of the function the package exports.
cli_main = importlib.import_module("fspo_train.cli.main")


def test_a_command_whose_packages_are_missing_names_its_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "needs_heavy.py").write_text("import no_such_package_for_fspo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    command = cli_main.Command("heavy", "needs_heavy", "Needs a heavy stack.", "train")
    monkeypatch.setattr(cli_main, "COMMANDS", (command,))

    parser = cli_main.build_parser()
    assert "heavy" in parser.format_help()
    assert "needs `[train]`" in parser.format_help()
    assert cli_main.main(["heavy", "--any", "flags"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "fspo heavy: needs the `[train]` extra (No module named 'no_such_package_for_fspo'); "
        'install it: pip install "langchain-fspo[train]"'
    )


def test_our_own_import_errors_are_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_cmd.py").write_text("import fspo_train.no_such_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    command = cli_main.Command("broken", "broken_cmd", "Broken.", "train")
    monkeypatch.setattr(cli_main, "COMMANDS", (command,))
    with pytest.raises(ModuleNotFoundError, match=r"fspo_train\.no_such_module"):
        cli_main.build_parser()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            ModuleNotFoundError("No module named 'trl'", name="trl"),
            'pip install "langchain-fspo[train]"',
        ),
        (ConnectionError("connection refused"), "cannot reach the server"),
        (ValueError("`beta` must be > 0, got 0."), "fspo train: `beta` must be > 0, got 0."),
        (KeyError("x"), "unexpected KeyError: 'x' (run again with --debug for the traceback)"),
    ],
)
def test_describe_names_the_problem_and_the_fix(error: BaseException, expected: str) -> None:
    line = describe("fspo train", "train", error)
    assert expected in line
    assert line.startswith("fspo train: ")
    assert "\n" not in line


def test_describe_explains_a_missing_api_key() -> None:
    import openai

    line = describe(
        "fspo synth", "train", openai.OpenAIError("The api_key client option must be set")
    )
    assert "OPENAI_API_KEY" in line
    assert "http://127.0.0.1:8000/v1" in line


def test_only_a_folder_the_command_created_and_left_empty_is_removed(tmp_path: Path) -> None:
    created = tmp_path / "new" / "checkpoints"
    created.mkdir(parents=True)
    remove_if_left_empty(tmp_path / "new", existed=False)
    assert not (tmp_path / "new").exists()

    kept = tmp_path / "had"
    kept.mkdir()
    remove_if_left_empty(kept, existed=True)
    assert kept.is_dir()

    written = tmp_path / "wrote"
    written.mkdir()
    (written / "records.jsonl").write_text("{}\n")
    remove_if_left_empty(written, existed=False)
    assert (written / "records.jsonl").is_file()


def test_the_top_level_refuses_abbreviations(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main.main(["--deb", "tiny", "out"])  # not taken for --debug
    err = capsys.readouterr().err
    assert err.startswith("usage: fspo tiny")
    assert "unrecognized arguments: --deb (did you mean --debug?)" in err


def test_python_dash_m_prints_help_without_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main([]) == 2
    out = capsys.readouterr().out
    for name in ("train", "eval", "publish", "synth", "tiny"):
        assert f"    {name} " in out


def test_eval_of_a_typo_names_the_folder_before_the_judge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["--no-win-rate"]):
        assert cli_main.main(["eval", "nope", *extra]) == 2
        assert capsys.readouterr().err.strip() == (
            "fspo eval: nope is not a folder; give the output folder of `fspo train` "
            "(e.g. runs/fspo)."
        )


def test_a_judge_module_in_the_current_folder_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fspo_train.cli.eval import load_judge
    from fspo_train.eval.judges import ChatModelJudge

    monkeypatch.chdir(tmp_path)
    # As the `fspo` console script starts: the working folder is not on the path.
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    (tmp_path / "my_judges.py").write_text(
        "from langchain_core.language_models.fake_chat_models import FakeListChatModel\n\n"
        "def make():\n    return FakeListChatModel(responses=['A'])\n"
    )
    assert isinstance(load_judge("my_judges:make", None), ChatModelJudge)
    with pytest.raises(ValueError, match="no module 'not_here' in"):
        load_judge("not_here:make", None)
    with pytest.raises(ValueError, match="has no 'missing'"):
        load_judge("my_judges:missing", None)


def test_a_judge_model_without_an_api_key_says_which_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("OPENAI_API_KEY", "OPENAI_ADMIN_KEY"):
        monkeypatch.delenv(key, raising=False)
    code = cli_main.main(["eval", str(tmp_path), "--judge-model", "openai:gpt-4o"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("fspo eval: Cannot build chat model 'openai:gpt-4o'")
    assert "OPENAI_API_KEY" in err
    assert "Traceback" not in err


def test_eval_falls_back_to_the_beta_training_defaults_to(tmp_path: Path) -> None:
    from fspo_train.eval.config import run_beta
    from fspo_train.trainer.config import FSPOTrainConfig

    default = FSPOTrainConfig(model_name_or_path="m").beta
    assert run_beta(tmp_path) == default == 0.005  # the paper's (App. A.3)
    parser = cli_main.build_parser()
    eval_help = " ".join(cli_main._subparser(parser, "eval").format_help().split())
    train_help = " ".join(cli_main._subparser(parser, "train").format_help().split())
    assert "training's default, 0.005" in eval_help
    assert "the paper's 0.005" in train_help
    assert "0.01" not in eval_help + train_help


def test_docstring_examples_run() -> None:
    import doctest

    import fspo_train.cli.errors

    result = doctest.testmod(fspo_train.cli.errors)
    assert (result.attempted, result.failed) == (1, 0)
