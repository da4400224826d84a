"""`fspo synth` on the command line: parsing, bad input, a scripted run, the cost estimate."""

from __future__ import annotations

import argparse
import json

from fspo_train.cli.synth import main, register

# --- CLI -------------------------------------------------------------------------------------

SCRIPTED = "factory:tests.train.synth.scripted:make_model"
QUIET = ("--no-progress", "--no-fsync")


def _synth(domain, out, *more, model="a:b", labeller=None):
    """`synth` arguments for `domain` into `out`: `model` generates (and labels, by default)."""
    labeller = labeller or model
    return [
        "synth",
        "--domain",
        domain,
        "--out",
        str(out),
        "--generator",
        model,
        "--labeller",
        labeller,
        *more,
    ]


def test_register_adds_the_synth_subcommand():
    parser = argparse.ArgumentParser(prog="fspo")
    register(parser.add_subparsers(dest="command"))
    more = ["--generator", "c:d", "--questions", "7", "--concurrency", "32"]
    args = parser.parse_args(_synth("elix", "x", *more, labeller="e:f"))
    assert args.generator == ["a:b", "c:d"]
    assert (args.questions, args.concurrency) == (7, 32)
    assert callable(args.func)


def test_cli_reports_bad_input(tmp_path, capsys):
    status = main(_synth("imdb", tmp_path))
    assert status == 2
    assert "Unknown domain 'imdb'" in capsys.readouterr().err


def test_fspo_cli_runs_a_domain(tmp_path, capsys):
    from fspo_train.cli import main as fspo_main  # the `fspo` entry point

    sizes = ["--questions", "4", "--question-batch", "2", "--responses-per-question", "3"]
    status = fspo_main(_synth("elix", tmp_path / "r", *sizes, *QUIET, model=SCRIPTED))
    assert status == 0
    assert "5 users, 4 questions" in capsys.readouterr().out
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["records"]["records"] > 0


def test_cli_flags_too_much_disagreement(tmp_path, capsys):
    sizes = ["--questions", "4", "--responses-per-question", "4"]
    threshold = ["--disagreement-threshold", "0.0"]
    args = _synth("reviews", tmp_path / "r", *sizes, *threshold, *QUIET, model=SCRIPTED)
    assert main(args) == 0
    assert "disagreement is above the threshold" in capsys.readouterr().out
    assert main([*args, "--fail-on-disagreement"]) == 4
    flagged = json.loads((tmp_path / "r" / "disagreement.json").read_text())
    assert flagged["needs_regeneration"] is True
    assert flagged["mean_disagreement"] > 0.0


def test_cli_estimate_sends_nothing(tmp_path, capsys):
    unreachable = "openai:nope@http://127.0.0.1:9/v1"
    status = main(
        _synth("roleplay", tmp_path / "r", "--estimate", model=unreachable, labeller="openai:nope")
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "personas        1,500" in out
    assert not (tmp_path / "r").exists()
