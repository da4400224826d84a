r"""`fspo synth`: run the synthetic preference data pipeline from the command line.

Example:
    ```console
    fspo synth --domain roleplay --users 50 --questions 40 \\
        --generator openai:gpt-4o-mini --generator "openai:llama-3.1-8b@http://127.0.0.1:8000/v1" \\
        --labeller openai:gpt-4o --out runs/roleplay-50
    ```

Running the same command again resumes the run; `--stages labels --redo` recomputes one stage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from fspo_train.cli.errors import remove_if_left_empty
from fspo_train.synth.domain import available_domains, load_domain
from fspo_train.synth.errors import SynthIncompleteError
from fspo_train.synth.estimate import estimate_requests
from fspo_train.synth.pipeline import STAGES, SynthRun, run_synth
from fspo_train.synth.runner import RunnerSettings
from langchain_fspo.errors import FSPOError

__all__ = ["build_parser", "main", "register", "run_command"]

_OVERRIDES = {
    "users": "max_users",
    "personas_per_combination": "personas_per_combination",
    "questions": "global_count",
    "specific_questions": "specific_per_user",
    "question_batch": "batch_size",
    "responses_per_question": "per_question",
    "pairs_per_question": "pairs_per_question",
    "questions_per_user": "questions_per_user",
    "refine_rounds": "refine_rounds",
    "disagreement_threshold": "disagreement_threshold",
    "test_user_fraction": "test_user_fraction",
    "test_question_fraction": "test_question_fraction",
}


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--domain",
        required=True,
        help=f"packaged domain ({', '.join(available_domains())}) or a .yaml/.json config path",
    )
    p.add_argument("--out", required=True, help="run folder (created; reused to resume)")
    models = p.add_argument_group("models (init_chat_model specs; see fspo_train.synth.models)")
    models.add_argument(
        "--generator",
        action="append",
        required=True,
        metavar="SPEC",
        help="response generator, repeatable: 'openai:gpt-4o-mini', "
        "'openai:NAME@http://127.0.0.1:8000/v1' (any local OpenAI-compatible server: vLLM, "
        "SGLang, llama.cpp, Ollama), 'factory:pkg.module:fn', or 'offline' (rule-based "
        "placeholder answers: no model, no network, to try the pipeline)",
    )
    models.add_argument("--labeller", required=True, metavar="SPEC", help="pairwise labeller")
    models.add_argument("--refiner", metavar="SPEC", help="persona refiner (default: labeller)")
    models.add_argument(
        "--question-writer",
        metavar="SPEC",
        help="writes personas, questions, views (default: first generator)",
    )
    models.add_argument("--generator-temperature", type=float, default=1.0)
    models.add_argument("--labeller-temperature", type=float, default=0.0)
    counts = p.add_argument_group("counts (override the domain config)")
    counts.add_argument("--users", type=int, help="keep a seeded sample of this many users")
    counts.add_argument("--personas-per-combination", type=int)
    counts.add_argument("--questions", type=int, help="global questions, seeds included")
    counts.add_argument("--specific-questions", type=int, help="persona-specific questions each")
    counts.add_argument("--question-batch", type=int, help="questions per augmentation request")
    counts.add_argument("--responses-per-question", type=int)
    counts.add_argument("--pairs-per-question", type=int)
    counts.add_argument("--questions-per-user", type=int)
    counts.add_argument("--refine-rounds", type=int)
    counts.add_argument("--disagreement-threshold", type=float)
    counts.add_argument("--test-user-fraction", type=float)
    counts.add_argument("--test-question-fraction", type=float)
    run = p.add_argument_group("execution")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    run.add_argument("--max-attempts", type=int, default=3, help="answers per item before failing")
    run.add_argument("--max-retries", type=int, default=4, help="retries of a failed request")
    run.add_argument("--backoff", type=float, default=0.5, help="first retry delay, seconds")
    run.add_argument(
        "--requests-per-minute",
        type=float,
        help="the provider's request limit: pace the run below it (default: no limit)",
    )
    run.add_argument(
        "--tokens-per-minute",
        type=float,
        help="the provider's token limit (prompt + answer): pace the run below it",
    )
    run.add_argument(
        "--max-rate-limit-wait",
        type=float,
        default=900.0,
        help="longest wait on 429 answers per request, seconds (429s spend no retries)",
    )
    run.add_argument(
        "--stages", help=f"comma-separated subset of {','.join(STAGES)} (default: all)"
    )
    run.add_argument("--redo", action="store_true", help="delete the selected stages' files first")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    run.add_argument("--no-fsync", action="store_true", help="flush lines without fsync")
    run.add_argument(
        "--estimate",
        action="store_true",
        help="print the requests each stage will send for these counts, and exit",
    )
    run.add_argument(
        "--structured-output",
        choices=["prompt", "json_schema"],
        default="prompt",
        help="json_schema: also send the schema as response_format (constrained decoding)",
    )
    run.add_argument(
        "--fail-on-disagreement",
        action="store_true",
        help="exit with status 4 when cross-user disagreement is above the threshold",
    )
    run.add_argument(
        "--request-seeds",
        action="store_true",
        help="send a per-item `seed` (vLLM/SGLang/OpenAI sample reproducibly)",
    )


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `synth` subcommand to an `argparse` subparsers object (`fspo synth`)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "synth",
        help="generate synthetic per-user preference data (the paper's pipeline)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    _add_arguments(parser)
    parser.set_defaults(func=run_command)
    return parser


def run_command(args: argparse.Namespace) -> int:
    """Run `fspo synth` with parsed arguments; return the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out)
    existed = out.exists()
    try:
        code = _run(args)
    except BaseException:
        remove_if_left_empty(out, existed=existed)
        raise
    if code != 0:
        remove_if_left_empty(out, existed=existed)
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        overrides = {dest: getattr(args, arg) for arg, dest in _OVERRIDES.items()}
        domain = load_domain(args.domain).with_overrides(**overrides)
        if args.estimate:
            for stage, count in estimate_requests(domain).items():
                sys.stdout.write(f"{stage:>16} {count:>12,}\n")
            return 0
        run = SynthRun(
            domain=domain,
            out=args.out,
            generators=args.generator,
            labeller=args.labeller,
            refiner=args.refiner,
            question_writer=args.question_writer,
            seed=args.seed,
            settings=RunnerSettings(
                concurrency=args.concurrency,
                max_attempts=args.max_attempts,
                max_retries=args.max_retries,
                backoff_base=args.backoff,
                requests_per_minute=args.requests_per_minute,
                tokens_per_minute=args.tokens_per_minute,
                max_rate_limit_wait=args.max_rate_limit_wait,
                progress=not args.no_progress,
                fsync=not args.no_fsync,
                structured_output=args.structured_output,
            ),
            generator_temperature=args.generator_temperature,
            labeller_temperature=args.labeller_temperature,
            request_seeds=args.request_seeds,
        )
        stages = [s.strip() for s in args.stages.split(",")] if args.stages else None
        summary = run_synth(run, stages, redo=args.redo)
    except SynthIncompleteError as e:
        sys.stderr.write(f"fspo synth: incomplete: {e}\n")
        return 3
    except (FSPOError, ValueError) as e:
        sys.stderr.write(f"fspo synth: error: {e}\n")
        return 2
    records = summary.get("records", {})
    sys.stdout.write(
        f"{summary['users']} users, {summary['questions']} questions, {summary['pairs']} pairs, "
        f"{records.get('records', 0)} records in {summary['run_dir']}\n"
    )
    if summary.get("disagreement", {}).get("needs_regeneration"):
        sys.stdout.write("warning: cross-user disagreement is above the threshold; regenerate.\n")
        if args.fail_on_disagreement:
            return 4
    return 0


def build_parser() -> argparse.ArgumentParser:
    """A standalone parser with only the `synth` subcommand (`python -m fspo_train.synth`)."""
    parser = argparse.ArgumentParser(prog="fspo")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m fspo_train.synth synth ...`."""
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status
