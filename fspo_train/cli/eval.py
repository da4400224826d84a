r"""`fspo eval`: implicit-reward accuracy and judged win rates against the paper's baselines.

Example:
    fspo eval out/fspo-run --split trained=data/eval_trained.jsonl \\
        --split held_out=data/eval_heldout.jsonl --judge-model openai:gpt-4o
    fspo eval out/fspo-run --split held_out=eval.jsonl --judge mypkg.judges:ReviewJudge
    fspo eval out/fspo-run --split held_out=eval.jsonl --no-win-rate   # accuracy only
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

__all__ = ["load_judge", "register", "run"]


def _split(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        msg = f"--split takes NAME=PATH (e.g. held_out=eval.jsonl), got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return name, Path(path)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `eval` subcommand to an `argparse` subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "eval",
        help="Evaluate an FSPO adapter: implicit-reward accuracy and win rates vs baselines.",
        description=(
            "Score an FSPO adapter on held-out preferences of trained and held-out users, "
            "against the paper's baselines (base, few-shot prompting, few-shot Pref-FT, "
            "0-shot IPO, oracle description). Writes eval_results.json, "
            "eval_generations.jsonl and eval_plot.png."
        ),
    )
    parser.add_argument(
        "adapter", type=Path, help="the FSPO adapter folder (the output folder of `fspo train`)"
    )
    parser.add_argument(
        "--split",
        action="append",
        type=_split,
        metavar="NAME=JSONL",
        help=(
            "a named set of users' preference records (repeat: trained=..., held_out=...); "
            "default: the run's splits/ (test_questions as trained, test_users as held_out)"
        ),
    )
    parser.add_argument(
        "--shots", type=Path, help="extra JSONL the shots are drawn from (same user only)"
    )
    parser.add_argument("--base-model", help="base model id or path (default: from the adapter)")
    parser.add_argument("--reference", type=Path, help="accuracy reference adapter")
    parser.add_argument("--pref-ft-adapter", type=Path, help="stage-1 adapter (default: found)")
    parser.add_argument("--ipo-adapter", type=Path, help="a 0-shot IPO adapter (ipo baseline)")
    parser.add_argument(
        "--methods",
        help="comma-separated: fspo,base,few_shot,pref_ft,ipo,oracle (default: all available)",
    )
    parser.add_argument("--baseline", default="base", help="the method win rates are against")
    judge = parser.add_mutually_exclusive_group()
    judge.add_argument(
        "--judge-model",
        help=(
            "a LangChain chat model as judge: 'provider:model' (init_chat_model), "
            "'provider:model@http://host:port/v1' (a local OpenAI-compatible server) or "
            "'factory:pkg.module:fn'"
        ),
    )
    judge.add_argument(
        "--judge",
        help="'module:attr': a Judge, a LangChain chat model, or a factory returning one",
    )
    parser.add_argument("--no-win-rate", action="store_true", help="skip generation + judge")
    parser.add_argument("--no-accuracy", action="store_true", help="skip implicit rewards")
    parser.add_argument(
        "--beta",
        type=float,
        help="β of the implicit reward (default: the run's, else training's default, 0.005)",
    )
    parser.add_argument("--num-shots", type=int, help="K (default: the format's num_shots)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-items", type=int, help="at most this many queries per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--output-dir", type=Path, help="default: the adapter folder")
    parser.add_argument("--no-plot", action="store_true")
    parser.set_defaults(func=run)
    return parser


def load_judge(spec: str | None, model: str | None) -> Any:
    """The judge named on the command line (`--judge module:attr` or `--judge-model`).

    `--judge-model` takes a model spec of `fspo synth` (`provider:model`,
    `provider:model@http://host:port/v1`, `factory:pkg.module:fn`). A `--judge` module is
    imported with the current folder on `sys.path`, as `python -m` would.

    Raises:
        ValueError: The spec is malformed, or its module or attribute cannot be found.
    """
    from fspo_train.eval.judges import as_judge

    if model is not None:
        from fspo_train.synth.models import load_chat_model

        return as_judge(load_chat_model(model, temperature=0))
    if spec is None:
        return None
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        msg = f"--judge takes 'module:attr' (e.g. my_judges:ReviewJudge), got {spec!r}."
        raise ValueError(msg)
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except ModuleNotFoundError as e:
        if e.name is None or not module_name.startswith(e.name):
            raise
        msg = (
            f"--judge {spec}: no module {module_name!r} in {Path.cwd()} or on the Python path; "
            "run fspo from the folder that holds it, or set PYTHONPATH."
        )
        raise ValueError(msg) from e
    except AttributeError as e:
        msg = f"--judge {spec}: module {module_name!r} has no {attr!r}."
        raise ValueError(msg) from e
    from langchain_core.language_models import BaseChatModel

    from fspo_train.eval.judges import Judge

    if isinstance(obj, type) or (
        callable(obj) and not isinstance(obj, BaseChatModel | Judge) and _takes_no_args(obj)
    ):
        obj = obj()
    return as_judge(obj)


def _takes_no_args(fn: Any) -> bool:
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params
    )


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")


def run(args: argparse.Namespace) -> int:
    """Run `fspo eval` with parsed arguments; returns the exit code."""
    from fspo_train.eval.config import EvalConfig
    from fspo_train.eval.evaluate import run_evaluation
    from langchain_fspo.errors import FSPOError

    if not args.adapter.is_dir():
        sys.stderr.write(
            f"fspo eval: {args.adapter} is not a folder; give the output folder of `fspo train` "
            "(e.g. runs/fspo).\n"
        )
        return 2
    win = not args.no_win_rate
    try:
        judge = load_judge(args.judge, args.judge_model) if win else None
    except (ValueError, FSPOError) as e:
        sys.stderr.write(f"fspo eval: {e}\n")
        return 2
    if win and judge is None:
        sys.stderr.write(
            "fspo eval: win rates need a judge: --judge-model provider:model or --judge "
            "module:attr (or --no-win-rate for accuracy only).\n"
        )
        return 2
    config = EvalConfig(
        adapter=args.adapter,
        splits=dict(args.split) if args.split else None,
        shots=args.shots,
        base_model=args.base_model,
        reference=args.reference,
        pref_ft_adapter=args.pref_ft_adapter,
        ipo_adapter=args.ipo_adapter,
        methods=[m.strip() for m in args.methods.split(",")] if args.methods else None,
        baseline=args.baseline,
        beta=args.beta,
        num_shots=args.num_shots,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        max_items=args.max_items,
        seed=args.seed,
        accuracy=not args.no_accuracy,
        win_rate=win,
        output_dir=args.output_dir,
        device=args.device,
    )
    try:
        results = run_evaluation(config, judge=judge, plot=not args.no_plot, progress=_say)
    except (ValueError, FSPOError) as e:
        sys.stderr.write(f"fspo eval: {e}\n")
        return 2
    out = config.output_dir or config.adapter
    for section, metric in (("win_rate", "win_rate"), ("accuracy", "accuracy")):
        for method, per_split in results[section].items():
            cells = ", ".join(
                f"{s} {100 * v[metric]:.1f}% (n={v['n']})" for s, v in per_split.items()
            )
            sys.stdout.write(f"{section:9s} {method:9s} {cells}\n")
    sys.stdout.write(f"Wrote {out / 'eval_results.json'}\n")
    return 0
