#!/usr/bin/env bash
# The GPU checks, as one script for a machine with CUDA and PyTorch but no ROS (the device
# machines of this workplace): CUDA tests of the ROS-free packages, the tem2d step benchmark on
# CUDA and CPU (no slam soak: it needs gtsam), and the spiral experiments on both. Results go
# to $OUT (or ./gpu-results).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-results}"
mkdir -p "$OUT"
export PYTHONPATH=src/treeworld_schema:src/treeworld_sim:src/spiral_controller:src/tem_localizer:src/treeworld_bringup
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -m pytest -c /dev/null --rootdir . --import-mode=importlib -p no:cacheprovider -q \
    src/treeworld_schema/test src/treeworld_sim src/spiral_controller src/tem_localizer \
    2>&1 | tee "$OUT/pytest.txt"
python3 -m treeworld_bringup.speed --device cuda --out "$OUT" --lengths 1000 10000 36000 \
    --no-soak 2>/dev/null | tee "$OUT/bench_cuda.txt"
python3 -m treeworld_bringup.speed --device cpu --out "$OUT/cpu" --lengths 1000 10000 \
    --no-soak 2>/dev/null | tee "$OUT/bench_cpu_same_machine.txt"
python3 scripts/gpu_check.py 2>&1 | tee "$OUT/experiments.txt"
