"""Cohort throughput of `medsr batch` (volumes/minute) on this machine for 1 and 2 local workers.

A cohort of real brain regions (MNI template, 16 x 96 x 96 voxels, NIfTI) super-resolved x2 in-plane
with the shipped pfmdn network; the time counts the tasks only (the cluster is started first), and
separately the cluster start. Prints figures; asserts nothing (a benchmark is not a test)."""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "Testing"))

from MedSRExtension import save_volume  # noqa: E402
from MedSRExtension.batch.cluster import open_client  # noqa: E402
from MedSRExtension.batch.inputs import collect  # noqa: E402
from MedSRExtension.batch.runner import run_batch  # noqa: E402
from sample_volumes import mni_region  # noqa: E402

N, MODEL = int(os.environ.get("MEDSR_BENCH_VOLUMES", "8")), os.environ.get("MEDSR_BENCH_MODEL", "pfmdn")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cohort = Path(tmp) / "in"
        cohort.mkdir()
        for i in range(N):
            save_volume(mni_region(shape_kji=(16, 96, 96), start_kji=(40 + 8 * i, 60, 50)), cohort / f"v{i}.nii.gz")
        for workers in (1, 2):
            out = Path(tmp) / f"out{workers}"
            tasks = collect(str(cohort), out)
            for t in tasks:
                t.options = {"model": MODEL, "device": "cpu"}
            start = time.perf_counter()
            with open_client(workers=workers) as (client, resources):
                client.wait_for_workers(workers)
                ready = time.perf_counter()
                rows = run_batch(tasks, out, client, resources, quiet=True)
                end = time.perf_counter()
            failed = sum(r["status"] != "done" for r in rows)
            print(f"medsr batch, {workers} worker(s): {N} volumes (16x96x96 -> 16x192x192, {MODEL}) in "
                  f"{end - ready:.1f} s = {60 * N / (end - ready):.1f} volumes/minute "
                  f"(cluster start {ready - start:.1f} s; {failed} failed)")


if __name__ == "__main__":
    main()
