#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go (GPU time is scarce): the tests touching the GPU path, then the
# GPU benchmark, which writes benchmarks/results-cuda.md. About 5 to 8 minutes on an H100/H200-class GPU.
# Extra arguments go to the benchmark, e.g. `bash scripts/gpu_check.sh --short-clip 2`.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA GPU'; print(torch.cuda.get_device_name(), torch.__version__)"

# 1. The GPU path's tests (CUDA graphs, half precision), and the static loop's CPU tests on this machine
python -m pytest -q -p no:cacheprovider tests/test_gpu_path.py tests/test_static_decoding.py

# 2. The GPU table: plain transformers vs Moodtape's GPU path on the same GPU
python -m benchmarks.bench --device cuda -v "$@"
echo "Table written to benchmarks/results-cuda.md"
