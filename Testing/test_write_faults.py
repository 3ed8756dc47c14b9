"""Interrupted and failed writes of `medsr run`: SIGTERM at several moments of a write, a full disk (a
small tmpfs), a file system out of inodes. Each case: the exit status, one line on stderr and no
traceback, the input untouched, and in the output folder either the complete output or nothing, never
a temporary file or staging folder."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from MedSRExtension import Volume, save_volume
from MedSRExtension.core import atomic
from MedSRExtension.core.errors import MedSRError
from dicom_series import write_source_series
from sample_volumes import mni_array


def _medsr(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "MedSRExtension", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _litter(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _one_line(stderr: str, needle: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert stderr.strip().count("\n") == 0 and needle in stderr, stderr


def _wait_for(predicate, proc, limit_s=90.0):
    """Poll (bounded) until ``predicate()`` or the process ends; True when the predicate held."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end and proc.poll() is None:
        if predicate():
            return True
        time.sleep(0.002)
    return False


@pytest.fixture(scope="module")
def big_input(tmp_path_factory):
    """A real MNI slab whose x2 NIfTI output (60 x 464 x 394 float32, ~44 MB) takes a while to write."""
    folder = tmp_path_factory.mktemp("sigterm")
    v = Volume(mni_array()[60:120], (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    save_volume(v, folder / "in.nii")
    return folder / "in.nii"


def _staging(out: Path):
    return [p for p in out.iterdir() if p.name.startswith(atomic.PREFIX)]


@pytest.mark.parametrize("moment", ["staging-made", "file-growing"])
def test_sigterm_during_the_write_leaves_nothing_half_written(big_input, tmp_path, moment):
    before = big_input.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    proc = _medsr(["run", str(big_input), "out/sr.nii.gz", "--model", "nearest", "--quiet"], cwd=tmp_path)

    def growing():
        return any(f.stat().st_size > (1 << 20) for s in _staging(out) for f in s.iterdir()) if _staging(out) else False
    try:
        landed = _wait_for(lambda: bool(_staging(out)) if moment == "staging-made" else growing(), proc)
        if landed:
            proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert landed, "the write ended before the signal could land"
    assert proc.returncode == 143, stderr
    _one_line(stderr, "terminated")
    assert list(out.iterdir()) == [] and big_input.read_bytes() == before


def test_sweep_removes_only_a_killed_processs_litter(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    host = atomic.owner_prefix()[len(atomic.PREFIX):].rsplit("-", 2)[0]
    (tmp_path / f".medsr-{host}-{pid}-abc").mkdir()
    (tmp_path / f".medsr-{host}-{pid}-abc" / "sr.nii.gz").write_bytes(b"half")
    (tmp_path / f".medsr-{host}-{pid}-3.sr.nrrd").write_bytes(b"half")
    mine = tmp_path / f"{atomic.owner_prefix()}live"  # this process still runs
    mine.mkdir()
    keep = [tmp_path / ".medsr-notes", tmp_path / "scan.nii.gz", tmp_path / f".medsr-otherhost-{pid}-x"]
    for p in keep:
        p.write_bytes(b"user")
    removed = atomic.sweep_stale(tmp_path)
    assert sorted(removed) == sorted([f".medsr-{host}-{pid}-abc", f".medsr-{host}-{pid}-3.sr.nrrd"])
    assert mine.is_dir() and all(p.read_bytes() == b"user" for p in keep)


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB tmpfs (skipped with the reason where mounting is not allowed); unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'}): the full-disk cases need one")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("name", ["sr.nii.gz", "sr.nii", "sr.nrrd", "series/"])
def test_full_disk_is_refused_in_one_line_and_leaves_nothing(small_disk, tmp_path, name):
    folder = tmp_path / "src"
    write_source_series(folder, mni_array()[70:78, 40:200, 30:190].astype(np.int16), (1.0, 1.0, 4.0),
                        np.zeros(3), np.eye(3))  # x2 in-plane: 8 x 320 x 320 float32, ~3.3 MB raw, x4 for the DICOM
    args = ["run", str(folder), str(small_disk / name), "--model", "bicubic", "--mode", "inplane",
            "--scale", "2" if "series" not in name
            else "4", "--quiet"]
    (small_disk / "filler").write_bytes(b"\0" * (4 << 20))  # 2 MB left
    proc = _medsr(args, cwd=tmp_path)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr
    _one_line(stderr, "no space left on device")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_a_file_system_out_of_inodes_mid_write_is_one_line(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    # root + the staging folder + ITK's uncompressed file: the final .nii.gz finds no inode
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,nr_inodes=3", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
    try:
        v = Volume(mni_array()[80:84], (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
        with pytest.raises(MedSRError, match="no space left on device") as err:
            save_volume(v, mnt / "sr.nii.gz", provenance={"model": "bicubic"})
        assert "\n" not in str(err.value)
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
