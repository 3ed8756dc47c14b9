"""A models folder for routing tests: the shipped bicubic entries (their real files, linked) plus a
thickslice-trained pfmdn entry whose weights are a seeded random init saved as safetensors with
its real sha256 (different from every shipped file, so the file a run reads shows in its output)."""
from __future__ import annotations

import hashlib
import json
import os

import torch
from safetensors.torch import save_file

from MedSRExtension.models.registry import build

REPO_MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Resources", "Models")
THICK_NAME = "pfmdn-light-thickslice-x1.5-3"
GAP_NAME = "pfmdn-light-thickslice-gap-x1.5-3"


def shipped_entries() -> list[dict]:
    """The shipped bicubic entries (a shipped thickslice entry would compete with the test's own)."""
    with open(os.path.join(REPO_MODELS, "models.json"), encoding="utf-8") as f:
        return [e for e in json.load(f)["models"] if e.get("degradation", "bicubic") == "bicubic"]


def _random_pfmdn(folder, name: str, seed: int) -> tuple[str, str]:
    """A seeded random pfmdn init saved as ``name``.safetensors: (path, sha256)."""
    torch.manual_seed(seed)
    path = os.path.join(folder, f"{name}.safetensors")
    save_file({k: v.contiguous() for k, v in build("pfmdn", "light", 2).state_dict().items()}, path)
    return path, hashlib.sha256(open(path, "rb").read()).hexdigest()


def write_thickslice_zoo(folder, scale_range=(1.0, 3.0), gap_range=None) -> dict:
    """Fill ``folder`` with the shipped bicubic entries and a thickslice pfmdn entry serving (f, 1) for f in
    ``scale_range`` (contiguous slices); with ``gap_range`` (lo, hi) also a second one trained on slices
    that thick (fractions of the spacing), ``GAP_NAME``, with a lower validation PSNR. Returns the first
    entry with its absolute ``path``."""
    entries = shipped_entries()
    for e in entries:
        os.symlink(os.path.join(REPO_MODELS, e["file"]), os.path.join(folder, e["file"]))
    path, digest = _random_pfmdn(folder, THICK_NAME, 11)
    thick = {"name": THICK_NAME, "file": os.path.basename(path), "sha256": digest, "architecture": "pfmdn",
             "preset": "light", "scales": [1.5, 2, 3], "scale_range": list(scale_range), "degradation": "thickslice",
             "val_psnr": 30.0, "val": {"2": {"psnr": 30.0}, "3": {"psnr": 28.0}}}
    extra = []
    if gap_range is not None:
        gap_path, gap_digest = _random_pfmdn(folder, GAP_NAME, 12)
        extra.append({**thick, "name": GAP_NAME, "file": os.path.basename(gap_path), "sha256": gap_digest,
                      "thickness": list(gap_range), "val_psnr": 25.0, "val": {}})
    with open(os.path.join(folder, "models.json"), "w", encoding="utf-8") as f:
        json.dump({"models": entries + [thick] + extra}, f)
    return {**thick, "path": path}
