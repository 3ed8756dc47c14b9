#!/usr/bin/env bash
# The thick-slice study of the README ("Adapting to the volume"): medsr compare on the held-out MNI152
# slab at x2-x5 (contiguous slices) and x4 with a 1 mm gap; tables land in out/study16_*/metrics.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MNI=$($PY -c "from MedSRExtension.data.corpus import mni_path; print(mni_path())")
slab() {  # slab NAME SCALE MODELS [extra args]
  local name=$1 scale=$2 models=$3; shift 3
  $PY -m MedSRExtension compare --hr "$MNI" --crop 0,0,80,197,233,24 --degradation thickslice \
    --scale "$scale" --mode throughplane --axis k --seg otsu3 --mask foreground --quiet \
    --models "$models" --out "out/study16_$name" "$@"
  echo "== $name"; sed -n '/^| method/,/^$/p' "out/study16_$name/metrics.md"
}
slab x4 4 bspline,lanczos,edsr,iconet,pfmdn,pfmdn+adapt
slab x2 2 bspline,lanczos,edsr,iconet,pfmdn,pfmdn+adapt
slab x3 3 bspline,lanczos,pfmdn,pfmdn+adapt
slab x5 5 bspline,lanczos,pfmdn,pfmdn+adapt
slab x4gap 4 bspline,lanczos,iconet,pfmdn,pfmdn+adapt --slice-thickness 3
