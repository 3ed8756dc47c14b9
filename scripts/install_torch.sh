#!/usr/bin/env bash
# Install PyTorch into the given interpreter's environment without pulling CUDA
# packages on a CPU-only machine.
#   - NVIDIA GPU present (nvidia-smi works): the default PyPI build, which ships CUDA.
#   - otherwise: the pinned CPU build. TORCH_CPU_INDEX (e.g. https://download.pytorch.org/whl/cpu)
#     is added as an extra index when set, for machines without a local CPU wheel.
# Skips everything when a torch is already importable.
set -euo pipefail
PY=${1:?usage: install_torch.sh PYTHON}
TORCH_CPU_VERSION=${TORCH_CPU_VERSION:-2.13.0}
if "$PY" -c "import torch" 2>/dev/null; then
  exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "NVIDIA GPU found: installing the CUDA build of torch from PyPI"
  "$PY" -m pip install "torch>=2.3"
else
  echo "No NVIDIA GPU: installing the CPU build torch==$TORCH_CPU_VERSION"
  extra=()
  [ -n "${TORCH_CPU_INDEX:-}" ] && extra=(--extra-index-url "$TORCH_CPU_INDEX")
  "$PY" -m pip install "torch==$TORCH_CPU_VERSION" "${extra[@]}"
fi
