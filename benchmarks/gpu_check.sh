#!/usr/bin/env bash
# GPU check of `--preset gpu` (benchmarks/gpu_check.py): tokens/s sampled, step time per method,
# MFU of the training step against the GPU's bf16 peak, peak GPU memory, gold win rate vs SFT.
# At most 8 minutes (hard limit below) on one H100/H200; installs nothing (torch + transformers only).
#
#   bash benchmarks/gpu_check.sh                                  # on the GPU machine, from the repo root
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh   # CPU proof that the script runs
#   bash benchmarks/gpu_check.sh --smoke --out DIR                 # seconds-long CPU run (the CI smoke test)
#
# Writes $GPU_CHECK_OUT/gpu_check.json (default runs/gpu_check) after every phase.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export TOKENIZERS_PARALLELISM=false
PYTHON="${PYTHON:-python3}"
exec timeout --signal=INT --kill-after=15 "${GPU_CHECK_TIMEOUT_S:-480}" "$PYTHON" benchmarks/gpu_check.py "$@"
