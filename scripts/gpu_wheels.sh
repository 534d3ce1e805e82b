#!/usr/bin/env bash
# Run here, before a GPU machine is lent (it costs no GPU time): downloads into .whl/ the wheels the GPU checks
# need beyond what a lent machine's image holds (its python3 has PyTorch with CUDA, numpy, scipy, pytest and
# hypothesis, an older transformers, and neither soundfile nor soxr; nothing can be fetched there).
# Carry .whl to the machine; scripts/gpu_check.sh installs it first.
#   bash scripts/gpu_wheels.sh          # for the lent machines' Python 3.12
#   GPU_PYTHON=3.11 bash scripts/gpu_wheels.sh   # for another Python (this is how the set is checked on CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
python_version="${GPU_PYTHON:-3.12}"
pinned() { grep -E "^$1==" requirements.txt | head -n 1; }

rm -rf .whl
mkdir -p .whl
# transformers as the engine is written for; soundfile (with its cffi) and soxr for the audio helpers the tests and
# the benchmark import; a regex recent enough for that transformers
python -m pip download --quiet --no-deps --only-binary=:all: --dest .whl \
    --python-version "$python_version" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    "$(pinned transformers)" "$(pinned soundfile)" "$(pinned soxr)" \
    "cffi==2.0.0" "pycparser==3.0" "regex==2026.5.9"
ls -1 .whl
du -sh .whl
