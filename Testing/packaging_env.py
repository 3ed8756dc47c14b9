"""Helpers of the packaging tests: build the sdist and wheel once, install the wheel into a fresh
virtual environment outside the repository, and run its ``medsr`` from a folder that holds no source.

The fresh environment gets no packages of its own but the wheel: its dependencies (the CPU torch
above all) are those already installed in the test environment, made visible by one ``.pth`` line,
and pip runs with ``--no-index``, so nothing is downloaded and a missing dependency fails the install.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = "web,batch,export"
STEP_TIMEOUT_S = 300


@dataclass(frozen=True)
class Installed:
    """A built distribution installed into a fresh environment."""

    wheel: Path
    sdist: Path
    prefix: Path  # the fresh virtual environment
    workdir: Path  # an empty folder to run commands from

    @property
    def medsr(self) -> str:
        return str(self.prefix / "bin" / "medsr")

    @property
    def python(self) -> str:
        return str(self.prefix / "bin" / "python")

    def env(self) -> dict:
        """The environment of a user of the fresh install: no source path, no models override."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "MEDSR_MODELS_DIR", "VIRTUAL_ENV")}
        env["PATH"] = os.pathsep.join([str(self.prefix / "bin"), env.get("PATH", "")])
        return env

    def run(self, *args: str, timeout: float = STEP_TIMEOUT_S) -> subprocess.CompletedProcess:
        """``medsr ARGS`` of the fresh install, run from its empty folder."""
        return subprocess.run([self.medsr, *args], cwd=self.workdir, env=self.env(), capture_output=True,
                              text=True, timeout=timeout)


def _check(cmd: list[str], **kw) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, **kw)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def source_copy(target: Path) -> Path:
    """The checkout's files (tracked and untracked-but-not-ignored, as git lists them; without git, the
    tree less what .gitignore names) copied to ``target``: the build writes its egg-info there, never
    into the checkout another test run may be building at the same time."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, timeout=60)
    if listed.returncode == 0:
        for name in filter(None, listed.stdout.decode().split("\0")):
            if (ROOT / name).is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, target / name)
    else:
        shutil.copytree(ROOT, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", "out", "runs", ".pytest_cache"))
    return target


def build(outdir: Path) -> tuple[Path, Path]:
    """``python -m build`` of a copy of the checkout (sdist, then the wheel from the sdist), without an
    isolated build environment (offline: the installed setuptools builds it)."""
    source = source_copy(outdir.parent / "source")
    _check([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(outdir), str(source)])
    return next(outdir.glob("medsr-*.whl")), next(outdir.glob("medsr-*.tar.gz"))


def install(wheel: Path, prefix: Path) -> None:
    """A fresh venv at ``prefix`` with the wheel and its extras; dependencies come from this environment."""
    _check([sys.executable, "-m", "venv", "--without-pip", str(prefix)])
    purelib = subprocess.run([str(prefix / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "medsr-test-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _check([sys.executable, "-m", "pip", "--python", str(prefix / "bin" / "python"), "install", "--no-index",
            "--no-input", "--disable-pip-version-check", "-q", f"medsr[{EXTRAS}] @ {wheel.as_uri()}"],
           cwd=prefix)


def build_and_install(base: Path) -> Installed:
    """Build and install into ``base`` once; later calls (other xdist workers) read what the first wrote."""
    marker = base / "installed.json"
    if marker.is_file():
        return Installed(**{k: Path(v) for k, v in json.loads(marker.read_text()).items()})
    wheel, sdist = build(base / "dist")
    install(wheel, base / "venv")
    (base / "work").mkdir(exist_ok=True)
    done = Installed(wheel, sdist, base / "venv", base / "work")
    marker.write_text(json.dumps({k: str(v) for k, v in vars(done).items()}))
    return done
