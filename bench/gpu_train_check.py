r"""One short `fspo train` on CUDA with bf16 and gradient checkpointing, and an FSDP smoke run.

Part of `bench/gpu_check.sh` (the GPU check, one command when a GPU is lent). It builds a random
Llama offline (no network on the GPU machine): the Llama-3.2-1B layer shape (hidden 2048, 16
layers, 32 heads) with a small byte-level tokenizer, writes FSPO-shaped preference records, and
runs, as a user would:

1. `python -m fspo_train train ... --bf16 --gradient-checkpointing` (both stages, prefix sharing);
2. `accelerate launch --config_file examples/accelerate/fsdp.yaml --num_processes 1 -m fspo_train
   train ... --no-gradient-checkpointing` (FSDP 2 on one GPU: the sharded save path).

For each it records the exit status, wall time, the stage losses and steps from
`training_summary.json`, what the run logged about prefix sharing, the adapter files, and the peak
GPU memory seen by `nvidia-smi` (polled). `--dry-run` does the same on CPU with a tiny model, to
check the script itself (its results are not GPU results: written to a temporary folder).

    python bench/gpu_train_check.py --out bench/results/gpu_train_check.json
    python bench/gpu_train_check.py --dry-run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parents[1]

SHAPES: dict[str, dict[str, Any]] = {
    "llama-3.2-1b-layers": {"hidden_size": 2048, "num_layers": 16, "num_heads": 32},
    "tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 4},
}
USERS = ("kid", "expert", "poet", "critic")


def _records(path: Path, questions: int) -> Path:
    from fspo_train.data.loaders import write_records
    from fspo_train.data.records import PreferenceRecord

    words = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "runs"]
    body = " ".join(words * 6)
    rows = [
        PreferenceRecord(
            user_id=user,
            question=f"Question {i}: {body}?",
            chosen=f"The {user} answer {i}: {body}.",
            rejected=f"A plain answer {i}: {' '.join(words)}.",
            user_description=f"The user is a {user}.",
            question_id=f"q{i}",
        )
        for user in USERS
        for i in range(questions)
    ]
    return write_records(path, rows)


class _GpuMemory:
    """Polls `nvidia-smi` for the most memory used while a run goes (MiB; None without it)."""

    def __init__(self) -> None:
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        smi = shutil.which("nvidia-smi")
        while smi and not self._stop.wait(0.5):
            out = subprocess.run(
                [smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()
            if out and out[0].isdigit():
                self.peak = max(self.peak or 0, int(out[0]))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _run(name: str, command: list[str], out: Path, timeout: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    with _GpuMemory() as memory:
        try:
            done = subprocess.run(
                command,
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            code, stderr = done.returncode, done.stderr
        except subprocess.TimeoutExpired as e:
            code, stderr = -1, f"timed out after {timeout}s: {e.stderr!r}"
    result: dict[str, Any] = {
        "name": name,
        "command": " ".join(command),
        "exit_status": code,
        "wall_s": round(time.perf_counter() - start, 1),
        "peak_gpu_memory_mib": memory.peak,
        "prefix_sharing_on": "Prefix sharing is on" in stderr,
        "stderr_tail": stderr[-3000:],
    }
    summary_path = out / "training_summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        metrics = summary.get("metrics", {})
        result["metrics"] = {
            k: v for k, v in metrics.items() if k.endswith(("loss", "global_step", "checksum"))
        }
        result["losses"] = {
            stage: [e["loss"] for e in history if "loss" in e]
            for stage, history in summary.get("log_history", {}).items()
        }
    result["adapter_files"] = sorted(p.name for p in out.glob("adapter_*"))
    config = out / "fspo_train_config.yaml"
    if config.is_file():
        import yaml

        saved = yaml.safe_load(config.read_text())
        result["bf16"] = saved.get("bf16")
        result["gradient_checkpointing"] = saved.get("gradient_checkpointing")
    result["ok"] = code == 0 and bool(result["adapter_files"])
    return result


def _environment() -> dict[str, Any]:
    import accelerate
    import torch
    import transformers
    import trl

    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "accelerate": getattr(accelerate, "__version__", "?"),
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "bf16_supported": bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()),
    }
    return info


def main(argv: list[str] | None = None) -> int:
    """Run the checks; write the JSON report; exit 1 if a check failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model: test the script")
    parser.add_argument("--out", type=Path, default=None, help="JSON report path")
    parser.add_argument("--steps", type=int, default=6, help="steps per stage")
    parser.add_argument("--skip-fsdp", action="store_true", help="only the single-GPU run")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per run")
    args = parser.parse_args(argv)

    from fspo_train.testing.tiny import build_tiny_base_model

    work = Path(tempfile.mkdtemp(prefix="fspo-gpu-check-"))
    shape = SHAPES["tiny" if args.dry_run else "llama-3.2-1b-layers"]
    model = build_tiny_base_model(
        work / "base", initializer_range=0.02, max_position_embeddings=8192, **shape
    )
    data = _records(work / "prefs.jsonl", questions=12)
    common = ["train", "--model-name-or-path", str(model), "--train-file", str(data)]
    common += ["--num-shots", "4", "--max-steps", str(args.steps), "--save-steps", "3"]
    common += ["--per-device-train-batch-size", "2", "--warmup-steps", "0"]
    common += ["--sft-learning-rate", "1e-4", "--learning-rate", "1e-5", "--logging-steps", "1"]
    common += ["--bf16"]
    if args.dry_run:
        common += ["--use-cpu"]
    runs = []
    single = work / "single"
    checkpointing = ["--gradient-checkpointing"]
    runs.append(
        _run(
            "fspo train, bf16, gradient checkpointing",
            [
                sys.executable,
                "-m",
                "fspo_train",
                *common,
                "--output-dir",
                str(single),
                *checkpointing,
            ],
            single,
            args.timeout,
        )
    )
    if not args.skip_fsdp and not args.dry_run:
        fsdp = work / "fsdp"
        launch = [sys.executable, "-m", "accelerate.commands.launch"]
        launch += ["--config_file", str(REPO / "examples" / "accelerate" / "fsdp.yaml")]
        launch += ["--num_processes", "1", "-m", "fspo_train"]
        runs.append(
            _run(
                "fspo train under FSDP 2 (1 GPU), bf16",
                [*launch, *common, "--output-dir", str(fsdp), "--no-gradient-checkpointing"],
                fsdp,
                args.timeout,
            )
        )
    report = {
        "what": __doc__.splitlines()[0] if __doc__ else "",
        "dry_run": args.dry_run,
        "model_shape": shape,
        "environment": _environment(),
        "runs": runs,
    }
    out = args.out or (work / "gpu_train_check.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.out is not None:
        shutil.rmtree(work, ignore_errors=True)  # the model and runs; the report is kept
    sys.stdout.write(f"{out}\n")
    for run in runs:
        sys.stdout.write(f"{'ok ' if run['ok'] else 'FAIL'} {run['name']} ({run['wall_s']} s)\n")
    return 0 if all(run["ok"] for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
