#!/usr/bin/env bash
# The one prepared GPU run (scripts/gpu_run.py): train all four networks from the shipped weights for a
# fixed budget each, verify them, GPU throughput, the OOM fallback, CPU/GPU agreement; everything lands in
# $OUT (the device tool's output folder). Fits about 8 minutes on one H100/H200.
#
# The device image has PyTorch but not MedSR's readers: carry them as wheels made here first with
#   bash scripts/gpu_wheels.sh        (writes .whl/, ignored by git, for the device's Python 3.12)
# then run there (device tool):  bash scripts/gpu_run.sh   with carry [".whl"], timeout_s 560.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
if ! "$PY" -c "import SimpleITK, nibabel, nilearn, pydicom" 2>/dev/null; then
  [ -d .whl ] || { echo "gpu_run: SimpleITK/nibabel/nilearn/pydicom missing and no .whl/ carried (run scripts/gpu_wheels.sh here)"; exit 2; }
  "$PY" -m pip install -q --no-index --find-links .whl SimpleITK nibabel nilearn pydicom pydicom-data
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
nvidia-smi -L 2>/dev/null || true
"$PY" scripts/gpu_run.py --out "$OUT" --budget-s "${BUDGET_S:-75}" 2>&1 | tee "$OUT/gpu_run.log"
