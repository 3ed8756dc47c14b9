#!/usr/bin/env bash
# Wheels the device image lacks, for its Python 3.12 on x86-64, into .whl/ (ignored by git), so that
# scripts/gpu_run.sh can install them there without a network.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d .whl \
  SimpleITK nibabel nilearn pydicom pydicom-data
ls .whl
