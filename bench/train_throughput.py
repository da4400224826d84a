r"""Training throughput: TRL's stock `DPOTrainer` vs `PrefixSharingDPOTrainer`, same everything.

Synthetic FSPO-shaped pairs built offline (byte-level tokenizer: one token per byte, so prompts
of P tokens and answers of R tokens exactly, each length jittered by +-10% so that batches are
padded, as real ones are), a randomly initialised Llama-shaped model, IPO loss
(``loss_type=["ipo"]``, beta=0.005), LoRA r=16 (alpha 32) on all linear layers and gradient
checkpointing: TRL's stock DPOTrainer set up as a user would. On CUDA: bf16 and the
Llama-3.2-1B shape; on CPU: float32 and a small Llama (``--model cpu-small``).

Each (setting, trainer) runs in its own process, so peak memory is per trainer. Reported per run:
median step time after warm-up, pairs/s, tokens/s (data tokens, ``2 (P + R)`` per pair, equal for
both trainers, and processed tokens, what the forward actually runs), peak memory (CUDA: max
allocated; CPU: peak RSS of the process), an estimate of model FLOP utilisation, and the IPO loss of
both trainers on the same first batch (LoRA B matrices random, ``init_lora_weights=False``, so that
the loss is not its trivial initial value ``(1 / (2 beta))^2``).

Commands:
    python bench/train_throughput.py --device cpu --out bench/results/train_throughput_cpu.json
    python bench/train_throughput.py --device cuda --batch 4 --steps 12 \\
        --setting 3000:250 --setting 1000:250 --setting 6000:250 \\
        --out bench/results/train_throughput_h100.json

Over the house's ~400 lines because the model set-up, both trainers, the per-process runner
and the report are kept in the one script that the committed result names.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.recorded import recorded_command  # noqa: E402

MODELS: dict[str, dict[str, Any]] = {
    # The anchor's shape (Llama-3.2-1B).
    "llama-3.2-1b": {
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_layers": 16,
        "num_heads": 32,
        "num_kv_heads": 8,
        "vocab_size": 128256,
        "rope_theta": 500000.0,
    },
    # A Llama small enough for two CPU cores.
    "cpu-small": {
        "hidden_size": 256,
        "intermediate_size": 1024,
        "num_layers": 4,
        "num_heads": 4,
        "num_kv_heads": 2,
        "vocab_size": 320,
    },
}

GPU_COMMAND = (
    "python bench/train_throughput.py --device cuda --batch 4 --steps 12 --setting 3000:250 "
    "--setting 1000:250 --setting 6000:250 --out bench/results/train_throughput_h100.json"
)

NOTES = {
    "common": (
        "Both trainers run the same model, data, batch, seed and hardware; each (setting,",
        "trainer) in its own process. pairs/s and data tokens/s (2(P+R) per pair, the tokens",
        "the data holds) compare the trainers; processed tokens are what the forward runs",
        "(P+2R+1 per pair when shared).",
    ),
    "mfu": (
        "approx MFU: 8 x params x processed tokens per step (the anchor's 6N policy + 2N",
        "reference convention, attention FLOPs not counted) / step time / peak; on CPU the",
        "peak is a nominal estimate ({cpu_peak}).",
    ),
    "loss": (
        "First-batch loss: IPO on the same first batch before any update, with random LoRA B",
        "matrices (init_lora_weights=False) so that policy and reference differ; the losses",
        "agree when |difference| <= 1e-3 x max(1, |stock loss|).",
    ),
    "cpu": (
        "CPU run: no GPU was lent to the session that measured this. The model is a small",
        "Llama and P/R are scaled down; CPU peak memory is the process peak RSS (weights,",
        "activations and Python), not an allocator statistic. The CPU was shared with other",
        "jobs (load_average_start/end, 1/5/15 min), so wall-clock step times are noisy and",
        "slow; the trainers' runs alternate (--repeats), and the process CPU time per step",
        "(user + system, all threads) is reported as a measure less sensitive to that load.",
        "With --threads 1 no thread spin-waits for a descheduled sibling, so CPU time is the",
        "work done.",
    ),
    "gpu_pending": (
        "The H100 run at the anchor setting (Llama-3.2-1B shape, bf16, batch 4, P=3000 R=250,",
        "plus P=1000 and P=6000) is left to a session with a GPU: ",
    ),
}

# Dense peak TFLOP/s per GPU for the training dtype (bf16), from the vendors' data sheets.
GPU_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_peak_tflops(threads: int) -> tuple[float, str]:
    """Nominal fp32 peak: threads x clock x 32 FLOP/cycle (two 256-bit FMA pipes)."""
    mhz = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                mhz = float(line.split(":", 1)[1])
                break
    except OSError:
        pass
    mhz = mhz or 2500.0
    peak = threads * mhz * 1e6 * 32 / 1e12
    return peak, f"{threads} threads x {mhz:.0f} MHz x 32 fp32 FLOP/cycle (nominal estimate)"


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers
    import trl

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "peft": peft.__version__,
    }


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    sys.path.insert(0, str(REPO))
    from fspo_train.trainer._prefix_synthetic import (
        byte_tokenizer,
        random_causal_lm,
        synthetic_pairs,
    )
    from fspo_train.trainer.prefix_sharing import PrefixSharingDPOTrainer

    cuda = spec["device"] == "cuda"
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    prompt, answer, batch, steps = spec["P"], spec["R"], spec["batch"], spec["steps"]
    jitter = spec["jitter"]
    shape = dict(MODELS[spec["model"]])
    model: Any = random_causal_lm(
        "llama",
        hidden_size=shape["hidden_size"],
        intermediate_size=shape["intermediate_size"],
        num_layers=shape["num_layers"],
        num_heads=shape["num_heads"],
        num_kv_heads=shape["num_kv_heads"],
        vocab_size=shape["vocab_size"],
        attn_implementation="sdpa",
        seed=0,
        **({"rope_theta": shape["rope_theta"]} if "rope_theta" in shape else {}),
    )
    if cuda:
        model = model.to(torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())

    def spread(n: int) -> tuple[int, int]:
        return (max(1, round(n * (1 - jitter))), max(1, round(n * (1 + jitter))))

    rows = synthetic_pairs(batch * (steps + 1), spread(prompt), spread(answer), seed=0)
    shared = spec["mode"].startswith("prefix_shared")
    precompute = spec["mode"].endswith("_precompute")
    base_class = PrefixSharingDPOTrainer if shared else DPOTrainer
    precompute_s = [0.0]

    class TimedTrainer(base_class):  # type: ignore[valid-type,misc]
        def _precompute_ref_logps(self, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = super()._precompute_ref_logps(*args, **kwargs)
            precompute_s[0] += time.perf_counter() - start
            return out

    args = DPOConfig(
        output_dir=str(Path(spec["tmp"]) / spec["mode"]),
        per_device_train_batch_size=batch,
        max_steps=steps,
        learning_rate=1e-5,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        bf16=cuda,
        use_cpu=not cuda,
        loss_type=["ipo"],
        beta=0.005,
        gradient_checkpointing=True,
        max_length=int(1.3 * (prompt + answer)),
        precompute_ref_log_probs=precompute,
        disable_tqdm=True,
        seed=0,
    )
    torch.manual_seed(1)
    lora = LoraConfig(
        r=16,
        lora_alpha=32,
        target_modules=[
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
        init_lora_weights=False,
    )
    trainer: Any = TimedTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=byte_tokenizer(),
        peft_config=lora,
    )

    # The loss on the same first batch, before any update.
    first = trainer.data_collator([trainer.train_dataset[i] for i in range(batch)])
    first = trainer._prepare_inputs(first)  # noqa: SLF001 - the trainer's own device placement
    trainer.model.train()
    with torch.no_grad(), trainer.compute_loss_context_manager():
        first_loss = float(trainer.compute_loss(trainer.model, first))
    first_metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}  # noqa: SLF001
    trainer._metrics["train"].clear()  # noqa: SLF001

    processed: list[int] = []
    data_tokens: list[int] = []
    collate = trainer.data_collator

    def counting_collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = collate(examples)
        data_tokens.append(int(out["attention_mask"].sum()))
        if "prefix_sharing_segment_ids" in out:
            processed.append(int((out["prefix_sharing_segment_ids"] != 3).sum()))
        else:
            processed.append(data_tokens[-1])
        return out

    trainer.data_collator = counting_collate
    times: list[float] = []
    cpu_times: list[float] = []

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    class Timer(TrainerCallback):
        start = 0.0
        cpu_start = 0.0

        def on_step_begin(self, *_: Any, **__: Any) -> None:
            sync()
            self.start = time.perf_counter()
            self.cpu_start = time.process_time()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            sync()
            times.append(time.perf_counter() - self.start)
            cpu_times.append(time.process_time() - self.cpu_start)

    trainer.add_callback(Timer())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    trainer.train()
    warm = spec["warmup"]
    timed = times[warm:]
    step_s = statistics.median(timed)
    # Token counts of the timed steps (the dataloader may prefetch one batch ahead).
    proc = statistics.mean(processed[warm : warm + len(timed)])
    data = statistics.mean(data_tokens[warm : warm + len(timed)])
    # Anchor convention: 6N (policy forward + backward) + 2N (reference forward) per token,
    # N = all parameters, attention FLOPs not counted.
    flops = 8 * n_params * proc
    if cuda:
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in GPU_PEAK_TFLOPS.items() if k in name), spec["peak_tflops"])
        peak_note = f"{name}, dense bf16 data-sheet peak"
        memory = {"peak_gpu_memory_gb": torch.cuda.max_memory_allocated() / 1e9}
    else:
        peak, peak_note = _cpu_peak_tflops(torch.get_num_threads())
        memory = {
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            "peak_rss_before_train_gb": rss_before,
        }
    peak = spec["peak_tflops"] or peak
    return {
        "mode": spec["mode"],
        "precompute_ref_log_probs": precompute,
        "precompute_s": precompute_s[0],
        "rows": len(rows),
        "amortized_pairs_per_s": 1 / (step_s / batch + precompute_s[0] / len(rows)),
        "prefix_sharing": bool(getattr(trainer, "prefix_sharing", False)),
        "fallback_reason": getattr(trainer, "prefix_sharing_fallback_reason", None),
        "params": n_params,
        "steps_timed": len(timed),
        "step_s_median": step_s,
        "step_s_all": times,
        "step_cpu_s_median": statistics.median(cpu_times[warm:]),
        "step_cpu_s_all": cpu_times,
        "pairs_per_s": batch / step_s,
        "data_tokens_per_step": data,
        "data_tokens_per_s": data / step_s,
        "processed_tokens_per_step": proc,
        "processed_tokens_per_s": proc / step_s,
        "approx_mfu": flops / step_s / (peak * 1e12),
        "peak_tflops": peak,
        "peak_tflops_note": peak_note,
        **memory,
        "first_batch_loss": first_loss,
        "first_batch_logps_chosen": first_metrics.get("logps/chosen"),
        "first_batch_logps_rejected": first_metrics.get("logps/rejected"),
        "first_batch_reward_margin": first_metrics.get("rewards/margins"),
        "threads": torch.get_num_threads(),
    }


def _pool(runs: list[dict[str, Any]], batch: int, warmup: int) -> dict[str, Any]:
    """One result from repeated runs: the median over every timed step of every run."""
    pooled = dict(runs[0])
    timed = [t for run in runs for t in run["step_s_all"][warmup:]]
    step_s = statistics.median(timed)
    cpu_s = statistics.median(t for run in runs for t in run["step_cpu_s_all"][warmup:])
    processed = statistics.mean(run["processed_tokens_per_step"] for run in runs)
    data = statistics.mean(run["data_tokens_per_step"] for run in runs)
    pooled.update(
        repeats=len(runs),
        steps_timed=len(timed),
        step_s_median=step_s,
        step_s_all=[run["step_s_all"] for run in runs],
        step_cpu_s_median=cpu_s,
        step_cpu_s_all=[run["step_cpu_s_all"] for run in runs],
        pairs_per_s=batch / step_s,
        data_tokens_per_step=data,
        data_tokens_per_s=data / step_s,
        processed_tokens_per_step=processed,
        processed_tokens_per_s=processed / step_s,
        approx_mfu=statistics.mean(run["approx_mfu"] * run["step_s_median"] for run in runs)
        / step_s,
    )
    precompute_s = statistics.mean(run["precompute_s"] for run in runs)
    pooled["precompute_s"] = precompute_s
    pooled["amortized_pairs_per_s"] = 1 / (step_s / batch + precompute_s / pooled["rows"])
    for key in ("peak_gpu_memory_gb", "peak_rss_gb"):
        if key in pooled:
            pooled[key] = max(run[key] for run in runs)
    return pooled


def _run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    done = subprocess.run(  # noqa: PLW1510 - the return code is checked below
        command, cwd=REPO, capture_output=True, text=True, env=None
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
        msg = f"worker failed for {spec['mode']} P={spec['P']} R={spec['R']}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Training throughput: stock TRL DPOTrainer vs prefix-shared trainer",
        "",
        f"- Date: {report['date']}",
        f"- Machine: {report['machine']}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}",
        f"- Command: `{report['command']}`",
        (
            f"- Load average (1/5/15 min) at start {report['load_average_start']}, "
            f"at end {report['load_average_end']}"
        ),
        (
            f"- Model: {report['model']} ({report['params'] / 1e6:.1f}M params), device "
            f"{report['device']}, dtype {report['dtype']}, LoRA r=16 all linear, gradient "
            "checkpointing, IPO beta=0.005"
        ),
        "",
        (
            "| P | R | batch | trainer | step s | CPU s/step | pairs/s | data tok/s | "
            "processed tok/step | "
            "peak mem GB | approx MFU | first-batch loss |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setting in report["settings"]:
        for run in (setting["stock"], setting["prefix_shared"]):
            memory = run.get("peak_gpu_memory_gb", run.get("peak_rss_gb"))
            lines.append(
                f"| {setting['P']} | {setting['R']} | {setting['batch']} | {run['mode']} | "
                f"{run['step_s_median']:.3f} | {run.get('step_cpu_s_median', float('nan')):.3f} | "
                f"{run['pairs_per_s']:.3f} | "
                f"{run['data_tokens_per_s']:.0f} | {run['processed_tokens_per_step']:.0f} | "
                f"{memory:.2f} | {run['approx_mfu']:.4f} | {run['first_batch_loss']:.6f} |"
            )
    lines += [
        "",
        (
            "| P | R | speed-up (pairs/s) | speed-up (process CPU time) | processed-token ratio | "
            "first-batch loss abs. diff | loss agrees (1e-3) | logps/chosen diff | "
            "logps/rejected diff |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report["settings"]:
        stock, shared = s["stock"], s["prefix_shared"]
        chosen = abs(stock["first_batch_logps_chosen"] - shared["first_batch_logps_chosen"])
        rejected = abs(stock["first_batch_logps_rejected"] - shared["first_batch_logps_rejected"])
        lines.append(
            f"| {s['P']} | {s['R']} | {s['speedup_pairs_per_s']:.2f}x | "
            f"{s.get('speedup_cpu_time', float('nan')):.2f}x | "
            f"{s['processed_token_ratio']:.3f} | {s['first_batch_loss_abs_diff']:.2e} | "
            f"{s['first_batch_loss_agrees']} | {chosen:.2e} | {rejected:.2e} |"
        )
    extra = [m for m in report["settings"][0].get("speedup_vs_stock", {}) if m != "stock"]
    if any(m.endswith("_precompute") for m in extra):
        lines += [
            "",
            (
                "Speed-up over stock (precompute modes: the one-off reference pass in __init__, "
                "amortised over this run's rows, which counts its fixed set-up cost against a few "
                "rows only, is counted in 'amortised'):"
            ),
            "",
            "| P | R | trainer | steps only | amortised | precompute s | rows |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in report["settings"]:
            for mode in extra:
                speed = s["speedup_vs_stock"][mode]
                lines.append(
                    f"| {s['P']} | {s['R']} | {mode} | {speed['pairs_per_s']:.2f}x | "
                    f"{speed['amortized']:.2f}x | {s[mode]['precompute_s']:.1f} | "
                    f"{s[mode]['rows']} |"
                )
    lines += ["", "Notes:", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--setting",
        action="append",
        metavar="P:R",
        help="prompt:answer tokens; repeat for several (CPU default 1000:100 and 600:200, "
        "CUDA default 3000:250, 1000:250, 6000:250)",
    )
    parser.add_argument("--batch", type=int, default=None, help="pairs per step (CPU 2, CUDA 4)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (CPU 3, CUDA 12)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps (1 / 2)")
    parser.add_argument("--model", choices=sorted(MODELS), default=None)
    parser.add_argument("--jitter", type=float, default=0.1, help="+- fraction of P and R")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="override the peak")
    parser.add_argument(
        "--modes",
        default="stock,prefix_shared",
        help="comma-separated among stock, prefix_shared, stock_precompute, "
        "prefix_shared_precompute (the last two: precompute_ref_log_probs=True)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads per run (0: torch's default); 1 avoids spin-waiting on a busy CPU",
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs per trainer, alternated; step times pooled"
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON path (.md written beside)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(_worker(json.loads(args.worker))), flush=True)
        return

    import tempfile

    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    cuda = device == "cuda"
    settings = args.setting or (
        ["3000:250", "1000:250", "6000:250"] if cuda else ["1000:100", "600:200"]
    )
    batch = args.batch or (4 if cuda else 2)
    steps = args.steps or (12 if cuda else 3)
    warmup = args.warmup if args.warmup is not None else (2 if cuda else 1)
    model = args.model or ("llama-3.2-1b" if cuda else "cpu-small")
    modes = args.modes.split(",")
    known = {"stock", "prefix_shared", "stock_precompute", "prefix_shared_precompute"}
    if set(modes) - known:
        parser.error(f"unknown modes {sorted(set(modes) - known)}; choose among {sorted(known)}")
    machine = torch.cuda.get_device_name() if cuda else _cpu_model()
    threads = args.threads or torch.get_num_threads()
    machine += f" ({os.cpu_count()} CPUs, {threads} torch threads per run, {platform.machine()})"
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "device": device,
        "dtype": "bfloat16" if cuda else "float32",
        "versions": _versions(),
        "command": recorded_command("bench/train_throughput.py", argv),
        "model": model,
        "model_shape": MODELS[model],
        "batch": batch,
        "steps": steps,
        "warmup_steps": warmup,
        "jitter": args.jitter,
        "repeats": args.repeats,
        "settings": [],
    }
    report["load_average_start"] = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for setting in settings:
            prompt, answer = (int(x) for x in setting.split(":"))
            entry: dict[str, Any] = {"P": prompt, "R": answer, "batch": batch}
            runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
            # Repeats alternate the trainers, so that a change of load on a shared machine
            # falls on both.
            for repeat in range(args.repeats):
                for mode in modes:
                    spec = {
                        "mode": mode,
                        "device": device,
                        "P": prompt,
                        "R": answer,
                        "batch": batch,
                        "steps": steps,
                        "warmup": warmup,
                        "model": model,
                        "jitter": args.jitter,
                        "peak_tflops": args.peak_tflops,
                        "threads": args.threads,
                        "tmp": tmp,
                    }
                    print(f"P={prompt} R={answer} batch={batch} {mode} #{repeat} ...", flush=True)
                    runs[mode].append(_run_worker(spec))
                    print(f"  {runs[mode][-1]['pairs_per_s']:.3f} pairs/s", flush=True)
            for mode in modes:
                entry[mode] = _pool(runs[mode], batch, warmup)
            if {"stock", "prefix_shared"} <= entry.keys():
                stock, shared = entry["stock"], entry["prefix_shared"]
                diff = abs(stock["first_batch_loss"] - shared["first_batch_loss"])
                scale = max(abs(stock["first_batch_loss"]), 1.0)
                rel = diff / scale
                entry.update(
                    speedup_pairs_per_s=shared["pairs_per_s"] / stock["pairs_per_s"],
                    speedup_cpu_time=stock["step_cpu_s_median"] / shared["step_cpu_s_median"],
                    processed_token_ratio=shared["processed_tokens_per_step"]
                    / stock["processed_tokens_per_step"],
                    first_batch_loss_abs_diff=diff,
                    first_batch_loss_rel_diff=rel,
                    first_batch_loss_agrees=diff <= 1e-3 * scale,
                )
                print(f"  speed-up {entry['speedup_pairs_per_s']:.2f}x", flush=True)
            if "stock" in entry:
                entry["speedup_vs_stock"] = {
                    mode: {
                        "pairs_per_s": entry[mode]["pairs_per_s"] / entry["stock"]["pairs_per_s"],
                        "amortized": entry[mode]["amortized_pairs_per_s"]
                        / entry["stock"]["pairs_per_s"],
                    }
                    for mode in modes
                }
            report["params"] = entry[modes[0]]["params"]
            report["settings"].append(entry)
    report["load_average_end"] = os.getloadavg()
    report["notes"] = [
        " ".join(NOTES["common"]),
        " ".join(NOTES["mfu"]).format(cpu_peak=_cpu_peak_tflops(threads)[1]),
        " ".join(NOTES["loss"]),
    ]
    if not cuda:
        report["notes"] += [" ".join(NOTES["cpu"]), " ".join(NOTES["gpu_pending"]) + GPU_COMMAND]
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        args.out.with_suffix(".md").write_text(_markdown(report))
        print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    else:
        print(text)


if __name__ == "__main__":
    main()
