#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go (GPU time is scarce): the tests touching the GPU path, then the
# GPU benchmark, which writes benchmarks/results-cuda.md ($OUT/results-cuda.md where $OUT is set).
# About 5 to 8 minutes on an H100/H200-class GPU (an estimate: never run on one yet).
# Extra arguments go to the benchmark, e.g. `bash scripts/gpu_check.sh --short-clip 2`.
# On a lent machine, where nothing can be fetched: run `bash scripts/gpu_wheels.sh` here first and carry `.whl`.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"  # a lent machine's python3 is the one that holds PyTorch

if [ -d .whl ]; then  # wheels from scripts/gpu_wheels.sh, put ahead of the image's own packages
    "$PY" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" -c "import transformers, soundfile, soxr; print('transformers', transformers.__version__)"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA GPU'; print(torch.cuda.get_device_name(), torch.__version__)"

# 1. The GPU path's tests (CUDA graphs, half precision), and the static loop's CPU tests on this machine
"$PY" -m pytest -q -p no:cacheprovider tests/test_gpu_path.py tests/test_static_decoding.py

# 2. The GPU table: plain transformers vs Moodtape's GPU path on the same GPU
# (on a lent machine $OUT is the folder that comes back; progress lines print each figure as it is measured)
table="${OUT:-benchmarks}/results-cuda.md"
"$PY" -m benchmarks.bench --device cuda -v --out "$table" "$@"
echo "Table written to $table"
