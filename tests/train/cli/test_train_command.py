"""`fspo train` from the command line, in-process (`fspo_train.cli.main`)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import yaml

from fspo_train.cli import SUBCOMMAND_MODULES, build_parser, main
from fspo_train.data.loaders import load_records, write_records
from fspo_train.trainer.config import CONFIG_FILENAME, load_config
from langchain_fspo.prompt_format import PromptFormat
from tests.train.records import tiny_run_config, toy_records

ROOT = Path(__file__).resolve().parents[3]


def _yaml(path: Path, data: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_subcommands_are_registered_from_modules() -> None:
    assert SUBCOMMAND_MODULES[0] == "fspo_train.cli.train"
    parser = build_parser()
    args = parser.parse_args(["train", "--config", "x.yaml", "--num-shots", "3"])
    assert args.func.__module__ == "fspo_train.cli.train"
    assert args.num_shots == 3


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "train" in capsys.readouterr().out


def test_flags_override_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _yaml(
        tmp_path / "run.yaml",
        {"model_name_or_path": "m", "train_file": "d.jsonl", "num_shots": 8, "beta": 0.01},
    )
    code = main(
        [
            "train",
            "--config",
            str(config),
            "--num-shots",
            "4",
            "--no-include-rejected",
            "--lora-target-modules",
            "q_proj",
            "v_proj",
            "--min_shots",
            "none",
            "--print-config",
        ]
    )
    assert code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["num_shots"] == 4  # the flag wins
    assert printed["beta"] == 0.01  # the YAML value stays
    assert printed["include_rejected"] is False
    assert printed["lora_target_modules"] == ["q_proj", "v_proj"]
    assert printed["min_shots"] is None


def test_unknown_yaml_key_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _yaml(tmp_path / "run.yaml", {"model_name_or_path": "m", "num_shot": 4})
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Unknown setting(s)" in err
    assert "'num_shot' (did you mean 'num_shots'?)" in err
    with pytest.raises(ValueError, match="must be one of"):
        load_config(_yaml(tmp_path / "bad.yaml", {"model_name_or_path": "m", "loss": "kto"}))


def test_missing_data_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _yaml(
        tmp_path / "run.yaml",
        {"model_name_or_path": "m", "train_file": str(tmp_path / "nope.jsonl")},
    )
    assert main(["train", "--config", str(config), "--output-dir", str(tmp_path / "o")]) == 1
    assert "No such data file" in capsys.readouterr().err


@pytest.mark.train
def test_fspo_train_runs_end_to_end(
    tmp_path: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Chat style, RAT, DPO, full fine-tuning: the other code paths, through the CLI.

    The base model is given as a relative path: the artifact records it as an absolute one.
    """
    monkeypatch.chdir(tmp_path)
    tiny = Path(os.path.relpath(tiny_model_dir, tmp_path))
    data = write_records(tmp_path / "prefs.jsonl", toy_records())
    config = tiny_run_config(
        tmp_path / "run.yaml",
        tiny,
        data,
        tmp_path / "out",
        max_steps=1,
        holdout_users=1,
        holdout_question_fraction=0.2,
    )
    argv = ["train", "--config", str(config), "--style", "chat", "--rationale", "user_description"]
    argv += ["--loss", "dpo", "--beta", "0.1", "--full-finetune", "--learning-rate", "1e-3"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(argv)
    assert code == 0
    out = tmp_path / "out"
    printed = capsys.readouterr()
    assert f"FSPO adapter: {out}" in printed.out
    # Quiet where we load, and each trainer's bar names its stage.
    assert "Loading weights" not in printed.err
    assert "Stage 1 (Pref-FT)" in printed.err
    assert "Stage 2 (DPO)" in printed.err
    # Our arguments use transformers' current names (`activation_checkpointing`).
    assert not [w for w in caught if "`gradient_checkpointing` is deprecated" in str(w.message)]
    assert (out / "model.safetensors").is_file()  # full fine-tuning writes a whole model
    assert (out / "stage1" / "model.safetensors").is_file()
    fmt = PromptFormat.from_pretrained(out)
    assert fmt.style == "chat"
    assert fmt.rationale == "user_description"
    assert fmt.chat_template_sha256 is not None
    saved = load_config(out / CONFIG_FILENAME)
    assert (saved.loss, saved.beta, saved.full_finetune) == ("dpo", 0.1, True)
    absolute = str(tiny_model_dir.resolve())
    assert (saved.model_name_or_path, fmt.base_model_id) == (absolute, absolute)
    card = (out / "README.md").read_text(encoding="utf-8")  # ours, not PEFT's template
    assert "FSPO" in card
    assert "More Information Needed" not in card
    metrics = json.loads((out / "training_summary.json").read_text())["metrics"]
    assert metrics["stage1/global_step"] == 1
    assert metrics["stage2/global_step"] == 1
    # 1 of 3 users and 1 of 6 questions held out: 2 users x 5 questions -> 2 episodes of K+1=3.
    assert metrics["data/episodes"] == 2
    held_users = {r.user_id for r in load_records(out / "splits" / "test_users.jsonl").records}
    train_users = {r.user_id for r in load_records(out / "splits" / "train.jsonl").records}
    assert len(held_users) == 1
    assert not held_users & train_users
    assert len(load_records(out / "splits" / "test_questions.jsonl").records) == 2


def test_example_config_is_valid() -> None:
    config = load_config(ROOT / "examples" / "run.yaml")
    assert config.style == "chat"
    assert (config.num_shots, config.loss, config.beta) == (8, "ipo", 0.005)
    assert (config.sft_learning_rate, config.learning_rate) == (1e-7, 1e-6)
    all_linear = "q_proj k_proj v_proj o_proj gate_proj up_proj down_proj"
    assert " ".join(config.lora_target_modules) == all_linear


def test_an_unknown_or_abbreviated_flag_prints_the_subcommand_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--num-shot", "3"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: fspo train")
    assert err.strip().endswith("unrecognized arguments: --num-shot 3 (did you mean --num-shots?)")


def test_flags_named_in_messages_exist() -> None:
    """The messages name `--no-resume` and `--strict-data`: the parser takes both."""
    args = build_parser().parse_args(["train", "--no-resume", "--strict-data"])
    assert (args.resume, args.strict_data) == (False, True)


def test_bad_data_names_the_flag_and_leaves_no_empty_output_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "prefs.jsonl"
    data.write_text("not json\n", encoding="utf-8")
    out = tmp_path / "out"
    argv = ["train", "--model-name-or-path", "org/base", "--train-file", str(data)]
    assert main([*argv, "--output-dir", str(out), "--strict-data"]) == 1
    err = capsys.readouterr().err
    assert "leave out `--strict-data`" in err
    assert "strict=False" not in err
    assert not out.exists()


def test_a_missing_local_base_model_is_named_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_records(tmp_path / "prefs.jsonl", toy_records())
    out = tmp_path / "out"
    argv = ["train", "--model-name-or-path", "./no-such-base", "--train-file", str(data)]
    assert main([*argv, "--output-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "'./no-such-base' is neither a folder" in err
    assert not out.exists()


def test_the_example_config_is_printed_for_pip_users(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--example-config"]) == 0
    assert capsys.readouterr().out == (ROOT / "examples" / "run.yaml").read_text(encoding="utf-8")


def test_train_warns_about_an_adapter_an_engine_would_cut(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The warning comes before any data is read (here the data file is missing)."""
    config = _yaml(
        tmp_path / "run.yaml",
        {"model_name_or_path": "m", "train_file": str(tmp_path / "nope.jsonl")},
    )
    argv = ["train", "--config", str(config), "--output-dir", str(tmp_path / "o")]
    with caplog.at_level("WARNING", logger="fspo_train"):
        assert main([*argv, "--lora-target-modules", "q_proj", "lm_head"]) == 1
    assert "TGI drops it: LoRA on ['lm_head']" in caplog.text
    assert "--allow-engine-problems" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="fspo_train"):
        assert main(argv) == 1  # the default target modules fit every engine
    assert "engine" not in caplog.text
