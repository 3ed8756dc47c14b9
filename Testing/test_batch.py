"""`medsr batch` on a real Dask LocalCluster on 127.0.0.1: a cohort with a corrupt input, a run killed
midway and resumed, a CSV manifest with per-row options (a DICOM series among them), and weights read
once per worker. Every cluster is closed by the run that started it; a killed run's process group
(scheduler, nannies, workers) is killed whole."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("distributed", reason="medsr batch needs dask[distributed]")

from MedSRExtension import load_volume, save_volume  # noqa: E402
from MedSRExtension.batch.cluster import open_client  # noqa: E402
from MedSRExtension.batch.inputs import collect  # noqa: E402
from MedSRExtension.batch.manifest import NAME, tree_sha256  # noqa: E402
from MedSRExtension.batch.runner import run_batch  # noqa: E402
from MedSRExtension.cli import main  # noqa: E402
from MedSRExtension.core.provenance import read_provenance  # noqa: E402
from MedSRExtension.zoo import weights as zoo  # noqa: E402
from dicom_series import write_source_series  # noqa: E402
from sample_volumes import mni_region, oblique_direction  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cohort(folder, n=6, corrupt=True, shape=(4, 32, 28)):
    """``n`` real brain regions as NIfTI/NRRD files (one in a subfolder); the last one truncated."""
    (folder / "sub").mkdir(parents=True)
    paths = []
    for i in range(n):
        ext = ".nrrd" if i == 1 else ".nii.gz"
        path = folder / ("sub" if i == 2 else "") / f"scan{i}{ext}"
        save_volume(mni_region(shape_kji=shape, start_kji=(60 + 6 * i, 90, 80)), path)
        paths.append(path)
    if corrupt:
        data = paths[-1].read_bytes()
        paths[-1].write_bytes(data[:len(data) // 3])
    return paths


def manifest_rows(outdir):
    with open(outdir / NAME, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_cohort_with_a_corrupt_input_gives_five_outputs_and_one_listed_failure(tmp_path, capsys):
    paths = cohort(tmp_path / "in")
    out = tmp_path / "out"
    code = main(["batch", str(tmp_path / "in"), str(out), "--workers", "2", "--model", "pfmdn", "--mode", "inplane",
                 "--quiet"])
    text = capsys.readouterr().out
    assert code == 1
    assert "5 done, 0 skipped, 1 failed" in text
    failed = [line for line in text.splitlines() if line.startswith("failed")]
    assert len(failed) == 1 and "scan5.nii.gz" in failed[0] and "incomplete" in failed[0]
    outputs = [out / "scan0.nii.gz", out / "scan1.nrrd", out / "sub" / "scan2.nii.gz", out / "scan3.nii.gz",
               out / "scan4.nii.gz"]
    rows = {r["input"]: r for r in manifest_rows(out)}
    entry = zoo.find_weights("pfmdn", (2.0, 2.0))
    for src, dst in zip(paths, outputs):
        row = rows[str(src)]
        assert row["status"] == "done" and row["output"] == str(dst)
        assert row["output_sha256"] == tree_sha256(dst) and row["input_sha256"] == tree_sha256(src)
        assert row["weights_sha256"] == entry["sha256"] and row["model"] == "pfmdn" and row["device"] == "cpu"
        assert load_volume(dst).shape_ijk == (56, 64, 4) and read_provenance(dst)["model"] == "pfmdn"
    assert rows[str(paths[-1])]["status"] == "failed" and not (out / "scan5.nii.gz").exists()
    assert len({r["worker"] for r in rows.values()}) == 2  # both workers took tasks


def test_weights_are_read_once_per_worker(tmp_path):
    cohort(tmp_path / "in", corrupt=False)
    tasks = collect(str(tmp_path / "in"), tmp_path / "out")
    for t in tasks:
        t.options = {"model": "pfmdn", "mode": "inplane"}
    with open_client(workers=2) as (client, resources):
        rows = run_batch(tasks, tmp_path / "out", client, resources, quiet=True)
    assert [r["status"] for r in rows] == ["done"] * 6
    path = os.path.realpath(zoo.find_weights("pfmdn", (2.0, 2.0))["path"])
    by_worker: dict = {}
    for r in rows:
        by_worker.setdefault(r["worker"], []).append(r["weights_loads"].get(path))
    assert max(len(v) for v in by_worker.values()) >= 2  # some worker ran several tasks...
    assert all(set(v) == {1} for v in by_worker.values())  # ...and read the weight file once


def _batch_process(args, env):
    return subprocess.Popen([sys.executable, "-m", "MedSRExtension", "batch", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_resume_after_a_killed_run_finishes_the_rest_without_redoing_verified_outputs(tmp_path):
    cohort(tmp_path / "in", corrupt=False, shape=(8, 64, 56))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": ROOT}
    args = [tmp_path / "in", out, "--workers", "1", "--model", "pfmdn", "--mode", "inplane", "--quiet"]
    first = _batch_process(args, env)
    done = []
    try:
        for _ in range(1200):  # at most 120 s: wait for the first finished task, then kill the whole run
            if (out / NAME).exists():
                done = [r for r in manifest_rows(out) if r["status"] == "done"]
                if done:
                    break
            if first.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # scheduler, nanny and worker with it
        first.communicate(timeout=30)
    assert 1 <= len(done) < 6, "the run should be killed midway"
    kept = {r["output"]: os.stat(r["output"]).st_mtime_ns for r in done}
    second = _batch_process([*args, "--resume"], env)
    try:
        stdout, stderr = second.communicate(timeout=300)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
    assert second.returncode == 0, stderr
    assert f"{6 - len(done)} done, {len(done)} skipped, 0 failed" in stdout
    rows = manifest_rows(out)
    assert len(rows) == 6 and all(r["status"] == "done" and tree_sha256(r["output"]) == r["output_sha256"]
                                  for r in rows)
    for output, mtime in kept.items():
        assert os.stat(output).st_mtime_ns == mtime  # a verified output is not written again
    assert [p for p in out.rglob(".*")] == []  # the killed run's staging folders were swept


def test_csv_manifest_with_per_row_options_and_a_dicom_series(tmp_path, capsys):
    cohort(tmp_path / "data", n=2, corrupt=False)
    slab = np.round(mni_region(shape_kji=(4, 32, 28), oblique=False).array).astype(np.int16)
    write_source_series(tmp_path / "data" / "series", slab, (0.9, 1.1, 4.0), np.array([-31.5, 12.25, 40.0]),
                        oblique_direction())
    sheet = tmp_path / "cohort.csv"
    sheet.write_text("input,output,model,scale,mode\n"
                     "data/scan0.nii.gz,a/x3.nrrd,pfmdn,3,\n"
                     "data/scan1.nrrd,,lanczos,,throughplane\n"
                     "data/series,series_sr/,bicubic,2,\n"
                     "data/gone.nii.gz,,bicubic,,\n"
                     "data/scan0.nii.gz,bad.nii.gz,bicubic,two,\n", encoding="utf-8")
    out = tmp_path / "out"
    code = main(["batch", str(sheet), str(out), "--workers", "2", "--scale", "4", "--mode", "inplane", "--quiet"])
    text = capsys.readouterr().out
    assert code == 1 and "3 done, 0 skipped, 2 failed" in text
    assert "not found" in text and "--scale must be a number" in text  # medsr run's own refusals
    x3 = load_volume(out / "a" / "x3.nrrd")
    assert x3.shape_ijk == (84, 96, 4) and read_provenance(out / "a" / "x3.nrrd")["model"] == "pfmdn"
    thick = load_volume(out / "scan1.nrrd")  # the command line's --scale 4 where the row gives none
    assert thick.shape_ijk == (28, 32, 16) and read_provenance(out / "scan1.nrrd")["mode"] == "throughplane"
    series = load_volume(out / "series_sr")
    assert series.shape_ijk == (56, 64, 4) and read_provenance(out / "series_sr")["model"] == "bicubic"
    assert np.allclose(series.edge_bounds(), load_volume(tmp_path / "data" / "series").edge_bounds(), atol=1e-6)
