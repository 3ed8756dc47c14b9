"""`medsr batch` under the faults a hospital's cohort meets, on a real Dask LocalCluster on 127.0.0.1: a
worker SIGKILLed mid-batch, Ctrl-C, outputs that are one file through a symlink or land on an input, a
damaged manifest, a full disk (a small tmpfs), files a folder scan cannot take, staging left by an
interrupted run. Each checks the exit status, one line and no traceback, and that the manifest agrees
with every output file (sha256) with no staging litter. Every cluster and process is stopped by the
test that started it."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("distributed", reason="medsr batch needs dask[distributed]")

from MedSRExtension.batch.cluster import open_client  # noqa: E402
from MedSRExtension.batch.inputs import collect  # noqa: E402
from MedSRExtension.batch.manifest import NAME, tree_sha256  # noqa: E402
from MedSRExtension.batch.runner import run_batch  # noqa: E402
from MedSRExtension.batch.staging import make_stage  # noqa: E402
from MedSRExtension.cli import main  # noqa: E402
from dicom_series import write_source_series  # noqa: E402
from sample_volumes import mni_region, oblique_direction  # noqa: E402
from test_batch import _batch_process, cohort, manifest_rows  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOLUMES = (".nii.gz", ".nrrd", ".nii", ".mha", ".mhd")


def output_files(outdir: Path) -> list[Path]:
    """The outputs a batch put in ``outdir``: volume files and DICOM series folders (not the manifest)."""
    files = [p for p in outdir.rglob("*") if p.is_file() and p.name.endswith(VOLUMES)]
    series = {p.parent for p in outdir.rglob("*.dcm")}
    return sorted(files + list(series))


def hidden_entries(outdir: Path) -> list[Path]:
    """Staging folders and temporary files (every MedSR one is hidden) anywhere in ``outdir``."""
    return sorted(p for p in outdir.rglob(".*"))


def assert_manifest_is_the_files(outdir: Path) -> list[dict]:
    """Every done row's output exists with its sha256, every output file has a done row, no litter."""
    rows = manifest_rows(outdir)
    done = {os.path.realpath(r["output"]): r for r in rows if r["status"] == "done"}
    for path, row in done.items():
        assert os.path.exists(path) and tree_sha256(path) == row["output_sha256"], row["output"]
    assert {str(p.resolve()) for p in output_files(outdir)} == set(done)
    assert hidden_entries(outdir) == []
    return rows


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    return lines[0]


def test_a_worker_sigkilled_mid_batch_leaves_a_manifest_that_matches_every_file(tmp_path):
    cohort(tmp_path / "in", n=6, corrupt=False, shape=(6, 48, 40))
    out = tmp_path / "out"
    tasks = collect(str(tmp_path / "in"), out)
    for t in tasks:
        t.options = {"model": "pfmdn"}
    killed: dict = {}
    with open_client(workers=2) as (client, resources):
        def kill_a_busy_worker() -> None:
            """Once a task is recorded, SIGKILL a worker that has run tasks and is running another."""
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not killed:
                ran = {r["worker"] for r in manifest_rows(out) if r["status"] == "done"} if (out / NAME).exists() \
                    else set()
                names = {a: str(w["name"]) for a, w in client.scheduler_info()["workers"].items()}
                busy = [w for w, keys in client.processing().items() if keys and names.get(w) in ran]
                if busy:
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    killed.update(pid=pid, rows_before=len(manifest_rows(out)))
                    os.kill(pid, signal.SIGKILL)
                time.sleep(0.05)

        killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
        killer.start()
        rows = run_batch(tasks, out, client, resources, quiet=True)
        killer.join(timeout=130)
    assert killed and killed["rows_before"] < len(tasks), "the worker should be killed mid-batch"
    assert all(r["status"] == "done" for r in rows)  # Dask re-ran the lost task elsewhere
    recorded = assert_manifest_is_the_files(out)
    assert len(recorded) == len(tasks) and len(output_files(out)) == len(tasks)


def test_ctrl_c_stops_with_one_line_and_keeps_the_rows_of_finished_outputs(tmp_path):
    cohort(tmp_path / "in", n=6, corrupt=False, shape=(6, 48, 40))
    out = tmp_path / "out"
    run = _batch_process([tmp_path / "in", out, "--workers", "2", "--model", "pfmdn", "--quiet"],
                         {**os.environ, "PYTHONPATH": ROOT})
    seen = []
    try:
        for _ in range(1200):  # at most 120 s: wait for a recorded output, then press Ctrl-C
            if (out / NAME).exists():
                seen = [r["output"] for r in manifest_rows(out) if r["status"] == "done"]
                if seen or run.poll() is not None:
                    break
            time.sleep(0.1)
        os.killpg(run.pid, signal.SIGINT)  # as a terminal does: the whole process group
        _, stderr = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate(timeout=30)
    assert seen, "the run should be interrupted midway"
    assert run.returncode == 130
    assert one_line(stderr) == "medsr batch: interrupted"
    rows = assert_manifest_is_the_files(out)
    done = [r["output"] for r in rows if r["status"] == "done"]
    assert set(seen) <= set(done) and len(done) < 6
    with pytest.raises(ProcessLookupError):  # the cluster went with it: no process of the group is left
        for _ in range(100):
            os.killpg(run.pid, 0)
            time.sleep(0.1)


def test_outputs_that_are_one_file_through_a_link_or_an_input_are_refused_before_any_work(tmp_path, capsys):
    cohort(tmp_path / "data", n=2, corrupt=False)
    slab = np.round(mni_region(shape_kji=(4, 32, 28), oblique=False).array).astype(np.int16)
    write_source_series(tmp_path / "data" / "series", slab, (0.9, 1.1, 4.0), np.array([-31.5, 12.25, 40.0]),
                        oblique_direction())
    out = tmp_path / "out"
    (out / "real").mkdir(parents=True)
    (out / "link").symlink_to("real")
    sheets = {
        "files.csv": "input,output\ndata/scan0.nii.gz,real/a.nii.gz\ndata/scan1.nrrd,link/a.nii.gz\n",
        "series.csv": "input,output,model\ndata/series,real/s/,bicubic\ndata/series,link/s/,bicubic\n",
        "onto_input.csv": "input,output\ndata/scan0.nii.gz,real/x.nii.gz\ndata/scan1.nrrd,../data/scan0.nii.gz\n",
        "into_series.csv": "input,output\ndata/scan0.nii.gz,../data/series/x.nii.gz\ndata/series,s.nii.gz\n",
    }
    for name, text in sheets.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        code = main(["batch", str(tmp_path / name), str(out), "--workers", "1", "--model", "bicubic", "--quiet"])
        line = one_line(capsys.readouterr().err)
        assert code == 2, name
        assert ("through a link" in line) if name in ("files.csv", "series.csv") else ("the input" in line), line
    assert output_files(out) == [] and output_files(tmp_path / "data") != []
    assert not (out / NAME).exists() and hidden_entries(out) == []


def test_a_damaged_dicom_output_is_redone_whole_and_a_folder_with_user_files_is_never_touched(tmp_path):
    slab = np.round(mni_region(shape_kji=(3, 24, 20), oblique=False).array).astype(np.int16)
    write_source_series(tmp_path / "series", slab, (0.9, 1.1, 4.0), np.array([-31.5, 12.25, 40.0]), np.eye(3))
    out = tmp_path / "out"
    tasks = collect(str(tmp_path / "series"), out)
    for t in tasks:
        t.options = {"model": "bicubic"}
    result = out / "series"
    with open_client(workers=1) as (client, resources):
        assert [r["status"] for r in run_batch(tasks, out, client, resources, quiet=True)] == ["done"]
        slices = sorted(p.name for p in result.iterdir())
        (result / slices[1]).unlink()  # damaged: a slice lost
        rows = run_batch(tasks, out, client, resources, resume=True, quiet=True)
        assert [r["status"] for r in rows] == ["done"]  # redone, the whole series replaced
        assert sorted(p.name for p in result.iterdir()) == slices
        assert_manifest_is_the_files(out)
        (result / slices[0]).unlink()
        (result / "notes.txt").write_text("the user's")
        rows = run_batch(tasks, out, client, resources, resume=True, quiet=True)
    assert [r["status"] for r in rows] == ["failed"] and "notes.txt" in rows[0]["reason"]
    assert (result / "notes.txt").read_text() == "the user's" and len(list(result.iterdir())) == len(slices)
    assert manifest_rows(out)[0]["status"] == "failed" and hidden_entries(out) == []


def test_a_manifest_that_is_not_utf8_is_refused_in_one_line_and_kept(tmp_path, capsys):
    cohort(tmp_path / "in", n=1, corrupt=False)
    out = tmp_path / "out"
    out.mkdir()
    damaged = b"input,output,status\n\xff\xfe\x00scan0\n"
    (out / NAME).write_bytes(damaged)
    code = main(["batch", str(tmp_path / "in"), str(out), "--workers", "1", "--model", "bicubic", "--resume",
                 "--quiet"])
    line = one_line(capsys.readouterr().err)
    assert code == 2 and "damaged" in line and "not UTF-8" in line and str(out / NAME) in line
    assert (out / NAME).read_bytes() == damaged and output_files(out) == []


def test_folder_run_tells_what_it_skipped_and_resume_sweeps_only_medsrs_own_staging(tmp_path, capsys):
    data = tmp_path / "in"
    cohort(data, n=1, corrupt=False)
    slab = np.round(mni_region(shape_kji=(3, 24, 20), oblique=False).array).astype(np.int16)
    write_source_series(data / "series", slab, (0.9, 1.1, 4.0), np.array([-31.5, 12.25, 40.0]), np.eye(3))
    sitk.WriteImage(sitk.Image(16, 12, sitk.sitkUInt8), str(data / "photo.png"))
    (data / "sub" / "notes.txt").write_text("not an image\n")
    out = tmp_path / "out"
    out.mkdir()
    # what an interrupted run leaves: a batch attempt's staging folder with half an output, a core
    # staging folder, the DICOM output's stages and an atomic temporary file beside an output; and the
    # user's own, among them a folder named like the stage of a series this cohort does not write
    stale = [Path(make_stage(str(out / "scan0.nii.gz"), "0123abcd")).parent, out / ".medsr-k3j_9x2q",
             out / ".series.ab12cd34", out / ".series.old.zz_0cd34"]
    for folder in stale:
        folder.mkdir(exist_ok=True)
        (folder / "part.nii.gz").write_bytes(b"\x1f\x8b half")
    (out / ".scan0.nii.gz.4242.0.tmp.nii.gz").write_bytes(b"half")
    users = [out / ".medsr-notes", out / ".medsr-settings.json", out / "notes.txt", out / ".config" / "x",
             out / ".series_sr.ab12cd34" / "x"]
    for path in users:
        path.parent.mkdir(exist_ok=True)
        path.write_text("the user's")
    code = main(["batch", str(data), str(out), "--workers", "1", "--model", "bicubic", "--resume", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0 and "2 done, 0 skipped, 0 failed" in captured.out
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert "Traceback" not in captured.err and len(lines) == 3, captured.err
    assert "skipped 1 2D image(s)" in lines[0] and "photo.png" in lines[0] and "glob or a CSV manifest" in lines[0]
    assert "skipped 1 file(s)" in lines[1] and "notes.txt" in lines[1]
    assert "removed 5 staging folder(s) or temporary file(s)" in lines[2]
    assert not any(os.path.lexists(p) for p in stale) and not (out / ".scan0.nii.gz.4242.0.tmp.nii.gz").exists()
    assert all(p.read_text() == "the user's" for p in users)
    for path in hidden_entries(out):  # the user's hidden files, kept: out of the way of the check below
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    assert_manifest_is_the_files(out)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs (needs root or CAP_SYS_ADMIN; skipped with the reason otherwise), unmounted after."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_manifest_write_on_a_full_disk_is_one_line_and_the_earlier_manifest_stays(tmp_path, small_disk, capsys):
    cohort(tmp_path / "in", n=2, corrupt=False)
    out = small_disk / "out"
    args = ["batch", str(tmp_path / "in"), str(out), "--workers", "1", "--model", "bicubic", "--quiet"]
    assert main(args) == 0
    capsys.readouterr()
    before = (out / NAME).read_bytes()
    with open(small_disk / "filler", "wb", buffering=0) as f:  # fill the disk to the last block
        for block in (1 << 16, 1):
            try:
                for _ in range(1 << 20):
                    f.write(b"\0" * block)
            except OSError:
                pass
    code = main([*args, "--resume"])
    line = one_line(capsys.readouterr().err)
    assert code == 2 and line.startswith("medsr batch: error: no space left on device") and str(out / NAME) in line
    assert (out / NAME).read_bytes() == before
    (small_disk / "filler").unlink()
    assert_manifest_is_the_files(out)


def test_resume_sweeps_the_temporary_names_a_killed_writer_leaves(tmp_path):
    """core.atomic's names carry host and PID: a dead process's are swept beside the outputs, a live
    one's (another batch writing there now) are kept."""
    import subprocess
    import sys as _sys
    from MedSRExtension.batch.staging import sweep_stale
    from MedSRExtension.core import atomic
    dead = int(subprocess.run([_sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    host = atomic.owner_prefix()[len(atomic.PREFIX):].rsplit("-", 2)[0]
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    litter = [out / "sub" / f".medsr-{host}-{dead}-abcd1234", out / "sub" / f".medsr-{host}-{dead}-3.a.nii.gz"]
    litter[0].mkdir()
    litter[1].write_bytes(b"half")
    live = out / "sub" / f"{atomic.owner_prefix()}efgh5678"
    live.mkdir()
    removed = sweep_stale(out, [str(out / "sub" / "a.nii.gz")], "manifest.csv")
    assert sorted(map(str, removed)) == sorted(map(str, litter)) and live.is_dir()
