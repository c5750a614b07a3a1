#!/usr/bin/env bash
# What each GPU speed option buys on a ResNet-20 NEB step, 16 pivots x batch 512:
# the plain fp32 step, then bf16, channels-last, cuDNN benchmark, torch.compile,
# and all of them together, each a breakdown and one JSON line from bench/neb_step.py (batched,
# vmap and loop against one training step at batch 16 x 512). Each run has its
# own time limit (60 s, 120 s with torch.compile's compilation), 540 s at most
# in all: one device call of 600 s holds the whole script.
#
#   bash bench/gpu_options.sh [python]     (default: .venv/bin/python, else python3)
set -u
cd "$(dirname "$0")/.."
PY=${1:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "bench/gpu_options.sh: no CUDA device visible to $PY: run it on a GPU machine" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
common=(--nets resnet20 --pivots 16 --batch 512 --steps 5 --rounds 2)
for options in "" "--bf16" "--channels-last" "--cudnn-benchmark" "--compile" \
               "--bf16 --channels-last --cudnn-benchmark" "--bf16 --channels-last --cudnn-benchmark --compile"; do
    echo "# options: ${options:-none (fp32)}"
    limit=60
    case "$options" in *--compile*) limit=120 ;; esac
    # shellcheck disable=SC2086  # the options are meant to split into words
    timeout "$limit" "$PY" bench/neb_step.py "${common[@]}" $options \
        || echo "# options ${options:-none}: failed or timed out after ${limit} s (exit $?)"
done
