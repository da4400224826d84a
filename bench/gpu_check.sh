#!/usr/bin/env bash
# The GPU check (issue 18), one command on a machine with one CUDA GPU, from the repository root:
#
#   bash bench/gpu_check.sh              # about 10 minutes on an H100
#   FULL=1 bash bench/gpu_check.sh       # the benchmark at all three settings (3000, 1000, 6000)
#   bash bench/gpu_check.sh --dry-run    # on CPU with tiny sizes: checks the script, writes to /tmp
#
# 1. The prefix-sharing benchmark (bench/train_throughput.py) at the anchor setting: Llama-3.2-1B
#    shape, bf16, LoRA r=16, gradient checkpointing, P=3000 prompt / R=250 answer tokens, batch 4,
#    TRL's stock DPOTrainer against the prefix-shared one
#    -> bench/results/train_throughput_h100.{json,md}
# 2. One short `fspo train` on CUDA with bf16 and gradient checkpointing (both stages), then the
#    same under FSDP 2 on the one GPU (bench/gpu_train_check.py)
#    -> bench/results/gpu_train_check.json
# Each step runs even if the one before failed; the exit status is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0

if [[ "${1:-}" == "--dry-run" ]]; then
    out=$(mktemp -d /tmp/fspo-gpu-check-dry.XXXXXX)
    echo "dry run on CPU: results in $out (not GPU results)"
    OMP_NUM_THREADS=1 "$PY" bench/train_throughput.py --device cpu --model cpu-small \
        --setting 200:20 --batch 2 --steps 2 --warmup 1 --threads 1 \
        --out "$out/train_throughput_dry.json" || status=1
    OMP_NUM_THREADS=1 "$PY" bench/gpu_train_check.py --dry-run --steps 2 \
        --out "$out/gpu_train_check_dry.json" || status=1
    exit $status
fi

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA GPU visible to torch; use --dry-run on CPU" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee bench/results/gpu_check_device.txt

settings=(--setting 3000:250)
if [[ -n "${FULL:-}" ]]; then
    settings=(--setting 3000:250 --setting 1000:250 --setting 6000:250)
fi
"$PY" bench/train_throughput.py --device cuda --batch 4 --steps 12 "${settings[@]}" \
    --out bench/results/train_throughput_h100.json || status=1
"$PY" bench/gpu_train_check.py --out bench/results/gpu_train_check.json || status=1
exit $status
