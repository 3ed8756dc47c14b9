"""A pip-installed MedSR is the whole product: the wheel and sdist built from the checkout, the wheel
installed into a fresh environment outside the repository, and its ``medsr`` run from a folder with no
source gives the same models, the same default network, the web page and batch runs as the checkout."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import pytest

from MedSRExtension import save_volume
from MedSRExtension.core.provenance import read_provenance
from MedSRExtension.version import from_pyproject
from packaging_env import ROOT, Installed, build_and_install
from sample_volumes import mni_region

NETWORKS = ("edsr", "iconet", "lgsr", "pfmdn")


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Installed:
    """Built and installed once per test session, shared by the xdist workers (a file lock)."""
    from filelock import FileLock
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    base = base / "medsr-wheel"
    base.mkdir(exist_ok=True)
    with FileLock(str(base) + ".lock"):
        return build_and_install(base)


def small_volume(path: Path, start_k: int = 80) -> Path:
    """A small real brain region (3 slices of 40x36, 1 mm) as NIfTI."""
    save_volume(mni_region((3, 40, 36), start_kji=(start_k, 90, 80), oblique=False, spacing=(1.0, 1.0, 1.0)), path)
    return path


def test_the_wheel_carries_the_weights_the_fast_paths_the_cards_and_the_panel_model(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    index = json.loads((ROOT / "Resources" / "Models" / "models.json").read_text())
    entries = index.get("models", index) if isinstance(index, dict) else index
    shipped = "MedSRExtension/zoo/shipped/"
    for e in entries:
        assert shipped + e["file"] in names
        if e.get("card"):
            assert shipped + e["card"] in names
    assert {shipped + "models.json", shipped + "cpu_fastpaths.json", "MedSRLib/panel.py",
            "MedSRWeb/server.py"} <= names
    assert not any(n.startswith(("Testing/", "MedSRModule/", "scripts/")) for n in names)


def test_the_sdist_holds_the_test_generators_and_weights_but_no_generated_files(installed):
    with tarfile.open(installed.sdist) as tar:
        members = {m.name.split("/", 1)[1]: m.size for m in tar.getmembers() if m.isfile()}
    assert {"Testing/sample_volumes.py", "Testing/dicom_series.py", "Testing/damaged_files.py",
            "Testing/sample_zoo.py", "Resources/Models/models.json", "MedSRModule/MedSRLib/panel.py",
            "setup.py", "MANIFEST.in", "README.md"} <= set(members)
    others = {n: s for n, s in members.items() if not n.startswith("Resources/Models/")}
    assert not [n for n in others if n.endswith((".nrrd", ".nii", ".nii.gz", ".mha", ".raw", ".dcm", ".png"))]
    assert max(others.values()) < 200_000, max(others, key=others.get)


def test_imports_come_from_the_installed_distribution_not_the_source(installed):
    code = ("import MedSRExtension, MedSRLib.panel, MedSRWeb.server\n"
            "from MedSRExtension.inference import fastpath\n"
            "print(MedSRExtension.__file__, MedSRLib.panel.__file__, MedSRWeb.server.__file__, "
            "len(fastpath.measurements()))")
    done = subprocess.run([installed.python, "-c", code], cwd=installed.workdir, env=installed.env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    *files, measured = done.stdout.split()
    assert all(Path(f).is_relative_to(installed.prefix) for f in files), files
    assert int(measured) > 0  # cpu_fastpaths.json found as package data


def test_version_comes_from_pyproject(installed):
    done = installed.run("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"medsr {from_pyproject(str(ROOT / 'pyproject.toml'))}"


def test_models_are_the_checkouts_with_all_four_networks_trained(installed):
    from MedSRExtension.zoo.catalog import list_models
    text = installed.run("models")
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0] == f"weights from {installed.prefix}/lib/python{sys.version_info.major}." \
                                          f"{sys.version_info.minor}/site-packages/MedSRExtension/zoo/shipped"
    assert "none (untrained)" not in text.stdout
    done = installed.run("models", "--json")
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert records == list_models()
    assert all(r["weights"] for r in records if r["name"] in NETWORKS)


def test_run_without_model_uses_the_checkouts_default_network(installed, tmp_path):
    from MedSRExtension.zoo.catalog import default_model
    source, out = small_volume(tmp_path / "in.nii.gz"), tmp_path / "out.nii.gz"
    done = installed.run("run", str(source), str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "running bicubic" not in done.stderr
    record = read_provenance(out)
    assert record["model"] == default_model(2.0) and record["model"] in NETWORKS
    assert record["kind"] == "network" and record["weights"].endswith(".safetensors")
    assert record["medsr_version"] == from_pyproject(str(ROOT / "pyproject.toml"))
    assert "fallback" not in record


def test_a_scale_no_shipped_network_serves_says_it_runs_bicubic(installed, tmp_path):
    source, out = small_volume(tmp_path / "in.nii.gz"), tmp_path / "out.nii.gz"
    done = installed.run("run", str(source), str(out), "--scale", "7", "--mode", "inplane", "--quiet")
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "running bicubic" in line]
    assert len(said) == 1 and "no shipped network serves x7" in said[0]
    record = read_provenance(out)
    assert record["model"] == "bicubic" and "no shipped network serves x7" in record["fallback"]


def test_an_engine_without_weights_says_where_it_looked_and_that_it_runs_bicubic(tmp_path):
    """A copy of the engine with no weights anywhere (what a wheel without package data was): the run
    says so in one line and records it; ``medsr models`` says where it looked."""
    shutil.copytree(ROOT / "MedSRExtension", tmp_path / "src" / "MedSRExtension",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "MEDSR_MODELS_DIR"}
    env["PYTHONPATH"] = str(tmp_path / "src")
    cmd = [sys.executable, "-m", "MedSRExtension"]
    models = subprocess.run([*cmd, "models"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert models.returncode == 0, models.stderr
    looked = models.stdout.splitlines()[0]
    assert looked.startswith("no trained weights found") and str(tmp_path / "src" / "Resources" / "Models") in looked
    source, out = small_volume(tmp_path / "in.nii.gz"), tmp_path / "out.nii.gz"
    done = subprocess.run([*cmd, "run", str(source), str(out), "--quiet"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "running bicubic" in line]
    assert len(said) == 1 and "no trained weights found" in said[0], done.stderr
    record = read_provenance(out)
    assert record["model"] == "bicubic" and "no trained weights found" in record["fallback"]


def test_serve_answers_on_loopback(installed):
    pytest.importorskip("trame_slicer", reason="the web extra is not installed: pip install -e \".[web]\"")
    from web_browser import running_server
    with running_server(command=[installed.medsr], cwd=str(installed.workdir), env=installed.env()) as server:
        assert server.local_url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.local_url, timeout=30) as page:
            assert page.status == 200 and b"<html" in page.read(4096).lower()


def test_batch_runs_two_volumes(installed, tmp_path):
    pytest.importorskip("distributed", reason="the batch extra is not installed: pip install -e \".[batch]\"")
    (tmp_path / "in").mkdir()
    small_volume(tmp_path / "in" / "a.nii.gz", 80)
    small_volume(tmp_path / "in" / "b.nii.gz", 90)
    done = installed.run("batch", str(tmp_path / "in"), str(tmp_path / "out"), "--workers", "1", "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    with open(tmp_path / "out" / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert sorted(Path(r["input"]).name for r in rows) == ["a.nii.gz", "b.nii.gz"]
    assert all(r["status"] == "done" and r["model"] in NETWORKS for r in rows), rows
    for r in rows:
        assert read_provenance(r["output"])["model"] in NETWORKS
