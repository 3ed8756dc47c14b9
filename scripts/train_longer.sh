#!/usr/bin/env bash
# Issue 25's "longer training, safely": continue shipped in-plane weights on the grown corpus (the five
# added pydicom-data files), one network after another, each for as many iterations again as its shipped
# weights had (so its total doubles; pfmdn-x234: a shorter stage, what one session's CPU allowed). Every stage checkpoints every 100 iterations; rerunning this script
# resumes the unfinished stage and skips finished ones (RUNS=folder of the runs, default runs/). Publish a run only where it beats the shipped
# weights on the validation regions (scripts/publish_weights.py, then compare with `medsr eval`).
#
#   nice -n 10 bash scripts/train_longer.sh [STAGE ...]      # default: all stages, in order
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
THREADS=${THREADS:-1}
RUNS=${RUNS:-runs}
M=Resources/Models

# name  model  scale  iterations  lr  batch  patch  degradation  start weights (scanner: the new weights
# family, started from the bicubic weights)
STAGES=(
  "iconet-x2 iconet 2 9000 2e-4 6 32 bicubic iconet-light-x2"
  "edsr-x2-scanner edsr 2 2500 2e-4 8 32 scanner edsr-light-x2"
  "pfmdn-x234 pfmdn 2,3,4 5000 1.5e-4 6 24 bicubic pfmdn-light-x2-3-4"
  "iconet-x2-scanner iconet 2 4500 2e-4 6 32 scanner iconet-light-x2"
  "lgsr-x4 lgsr 4 9800 2e-4 6 20 bicubic lgsr-light-x4"
  "edsr-x2 edsr 2 2500 2e-4 8 32 bicubic edsr-light-x2"
  "iconet-x4 iconet 4 6400 2e-4 6 20 bicubic iconet-light-x4"
  "lgsr-x2 lgsr 2 11700 2e-4 3 48 bicubic lgsr-light-x2"
  "edsr-x4 edsr 4 600 2e-4 8 24 bicubic edsr-light-x4"
)
want=("$@")
for stage in "${STAGES[@]}"; do
  read -r name model scale iters lr batch patch degradation start <<<"$stage"
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " =~ " $name " ]]; then continue; fi
  out=$RUNS/c5-$name
  if [ -f "$out/done" ]; then echo "$name: done"; continue; fi
  resume=()
  [ -f "$out/checkpoint.pt" ] && resume=(--resume)
  echo "$name: training ($iters iterations from $M/$start.safetensors)"
  $PY -m MedSRExtension train --model "$model" --preset light --scale "$scale" --iters "$iters" \
    --lr "$lr" --batch "$batch" --patch "$patch" --degradation "$degradation" --init "$M/$start.safetensors" \
    --threads "$THREADS" --out "$out" --quiet "${resume[@]}"
  touch "$out/done"
done
