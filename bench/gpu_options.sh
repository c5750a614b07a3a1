#!/usr/bin/env bash
# One prepared GPU check in a single 10-minute device call: the full NEB step against
# the training step at N x B for the digits MLP (N = 16, B = 128), the small CNN with
# BatchNorm (N = 16, B = 128) and ResNet-20 (16 x 512: plain fp32, then bf16 +
# channels-last + cuDNN benchmark, then torch.compile on top), each a breakdown and a
# JSON line from bench/neb_step.py (batched against vmap, each at its own best), and
# the host synchronisations per step (torch.cuda.set_sync_debug_mode) of the MLP and
# the CNN. Every run has its own time limit; 540 s at most in all.
#
# Without CUDA it runs the same script quickly on the CPU (a step or two of the MLP
# and the CNN, nothing of ResNet-20, no sync count), so that it can be checked anywhere.
#
#   bash bench/gpu_options.sh [python]     (default: .venv/bin/python, else python3)
set -u
cd "$(dirname "$0")/.."
PY=${1:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
run() {  # run LIMIT LABEL ARGS...: one bench run under its own time limit
    local limit=$1 label=$2
    shift 2
    echo "# $label"
    timeout "$limit" "$PY" bench/neb_step.py "$@" || echo "# $label: failed or timed out after ${limit} s (exit $?)"
}
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    small=(--strategies batched,vmap --pivots 16 --batch 128 --steps 10 --rounds 3 --count-syncs 20)
    run 60 "digits MLP, 16 x 128" --nets mlp "${small[@]}"
    run 60 "small CNN with BatchNorm, 16 x 128" --nets cnn "${small[@]}"
    resnet=(--nets resnet20 --strategies batched,vmap --pivots 16 --batch 512 --steps 5 --rounds 2)
    run 100 "ResNet-20, 16 x 512, fp32" "${resnet[@]}" --count-syncs 10
    run 100 "ResNet-20, 16 x 512, bf16 + channels-last + cuDNN benchmark" "${resnet[@]}" \
        --bf16 --channels-last --cudnn-benchmark
    run 200 "ResNet-20, 16 x 512, bf16 + channels-last + cuDNN benchmark + torch.compile (loop)" \
        --nets resnet20 --strategies loop --pivots 16 --batch 512 --steps 5 --rounds 2 \
        --bf16 --channels-last --cudnn-benchmark --compile
else
    echo "# no CUDA device visible to $PY: the CPU check (a step or two, no ResNet-20, no sync count)"
    quick=(--strategies batched --pivots 4 --batch 32 --steps 2 --rounds 1 --count-syncs 5)
    run 120 "digits MLP, 4 x 32 (CPU check)" --nets mlp "${quick[@]}"
    run 120 "small CNN with BatchNorm, 4 x 32 (CPU check)" --nets cnn "${quick[@]}"
fi
