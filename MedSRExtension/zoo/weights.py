"""The model zoo: shipped weights, verified by sha256 before use, loaded without pickle.

``models.json`` lists one entry per weight file::

    {"name": "edsr-light-x2", "file": "edsr-light-x2.safetensors", "sha256": "...",
     "architecture": "edsr", "preset": "light", "scales": [2], "degradation": "bicubic",
     "training_data": "...", "iterations": 6000, "val_psnr": 36.1, "val_ssim": 0.95,
     "licence": "...", "card": "cards/edsr-light-x2.md"}

``scales`` lists the integer factors the file serves (an arbitrary-scale network may list several,
with ``scale_range`` [lo, hi] for the real factors it serves and a per-scale ``val`` table
{"2": {"psnr": .., "ssim": .., "bicubic_psnr": ..}, ...}). A ``"degradation": "thickslice"`` entry
serves through-plane passes only: ``scales`` (floats allowed) and ``scale_range`` are the factors f
of a 2D pass at (f, 1), and its ``val`` table is keyed by f.

**The through-plane route** (``route``): a 2D pass that scales one axis only, (f, 1) or (1, f) with
f > 1, of a per-axis network reads the shipped ``thickslice`` weights when an entry serves f, and
runs the slice transposed at (1, f) (those weights learnt the thick axis as the rows); every other
pass, and a factor no thickslice entry serves, reads the ``bicubic`` weights, or is refused when none
serve it. A user's own weights file is never re-routed.

Where the zoo looks for ``models.json`` (first folder that has one wins):

1. the folder in the environment variable ``MEDSR_MODELS_DIR``;
2. the package data ``MedSRExtension.zoo.shipped`` (through importlib.resources): an installed wheel
   carries ``Resources/Models`` there (setup.py maps it);
3. ``Resources/Models`` beside the ``MedSRExtension`` package folder: the repository's own in a source
   checkout, ``<qt-scripted-modules>/Resources/Models`` in an installed Slicer extension (CMake copies
   it there).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from typing import NamedTuple, Optional, Union

import torch
import torch.nn as nn

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.validation import check_weights_file
from MedSRExtension.models.descriptor import ModelDescriptor
from MedSRExtension.models.registry import as_pair, build, get_spec
from MedSRExtension.zoo.custom_weights import mismatch

ENV = "MEDSR_MODELS_DIR"
STATE_CACHE_SIZE = 8
_SHA256: dict = {}
_STATES: "OrderedDict[tuple, dict]" = OrderedDict()
#: How many times this process read each weight file (real path -> count): one per file in a batch worker.
LOADS: dict = {}
INDEX = "models.json"
THICKSLICE = "thickslice"
#: The MedSRExtension package folder; Resources/Models lies beside it (in a checkout and in Slicer).
_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


#: The data package an installed wheel carries the shipped weights in (setup.py maps Resources/Models to it).
SHIPPED = "MedSRExtension.zoo.shipped"


def packaged_dir() -> Optional[str]:
    """The folder of the package data ``SHIPPED`` when it holds a models.json (an installed wheel), else None."""
    from importlib.resources import files
    try:
        index = files(SHIPPED).joinpath(INDEX)
        return os.path.dirname(os.fspath(index)) if index.is_file() else None
    except (ImportError, TypeError, ValueError, OSError):  # not installed as package data, or not on disk
        return None


def search_dirs() -> list[str]:
    """Candidate model folders in the documented order."""
    dirs = []
    if os.environ.get(ENV):
        dirs.append(os.environ[ENV])
    packaged = packaged_dir()
    if packaged:
        dirs.append(packaged)
    beside = os.path.join(os.path.dirname(_PKG), "Resources", "Models")
    if beside not in dirs:
        dirs.append(beside)
    return dirs


def where_looked() -> str:
    """One line for users: the folder the weights come from, or every folder searched when none has them."""
    found = models_dir()
    if found:
        return f"weights from {found}"
    searched = ([] if os.environ.get(ENV) else [f"{ENV} (unset)"]) + search_dirs()
    return (f"no trained weights found: no {INDEX} in {', '.join(searched)}; "
            f"set {ENV} to a folder with {INDEX}, or reinstall medsr")


def models_dir() -> Optional[str]:
    """The first folder of ``search_dirs()`` holding a models.json, or None."""
    for d in search_dirs():
        if os.path.isfile(os.path.join(d, INDEX)):
            return d
    return None


def _index() -> tuple[Optional[str], list[dict]]:
    d = models_dir()
    if d is None:
        return None, []
    path = os.path.join(d, INDEX)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise MedSRError(f"cannot read the model index '{path}' ({exc}); reinstall the extension") from exc
    entries = data.get("models", data) if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise MedSRError(f"the model index '{path}' has no list of models; reinstall the extension")
    return d, entries


def list_weights(model: Optional[str] = None) -> list[dict]:
    """Every shipped weight entry (of ``model`` only, if given), each with its absolute ``path``."""
    d, entries = _index()
    out = []
    for e in entries:
        if model is None or e.get("architecture") == model:
            out.append({**e, "path": os.path.join(d, e["file"])})
    return out


def _scale_int(scale) -> Optional[int]:
    sh, sw = as_pair(scale)
    if sh == sw and float(sh).is_integer():
        return int(sh)
    return None


def through_plane_factor(scale) -> Optional[float]:
    """f for a 2D pass that scales one axis only, (f, 1) or (1, f) with f > 1; None otherwise."""
    sh, sw = as_pair(scale)
    return max(sh, sw) if min(sh, sw) == 1 < max(sh, sw) else None


def _serves(entry: dict, scale) -> bool:
    ranged = get_spec(entry["architecture"]).arbitrary_scale and entry.get("scale_range")
    if entry.get("degradation", "bicubic") == THICKSLICE:  # through-plane passes only, at factor f
        f = through_plane_factor(scale)
        if f is None:
            return False
        return f in [float(v) for v in entry.get("scales", [])] or bool(
            ranged and entry["scale_range"][0] <= f <= entry["scale_range"][1])
    s = _scale_int(scale)
    if s is not None and s in [int(v) for v in entry.get("scales", [])]:
        return True
    # an arbitrary-scale network trained on a range serves every factor inside it
    if ranged:
        lo, hi = entry["scale_range"]
        return all(lo <= f <= hi for f in as_pair(scale))
    return False


def thickness_range(entry: dict) -> tuple[float, float]:
    """The slice thickness, as a fraction of the slice spacing, a thickslice entry was trained on: its
    ``thickness`` [lo, hi], or contiguous slices (1, 1) when it names none."""
    lo, hi = entry.get("thickness") or (1.0, 1.0)
    return float(lo), float(hi)


def _profile_distance(entry: dict, thickness: Optional[float]) -> float:
    """How far ``thickness`` (fraction of the spacing; None: contiguous) lies outside the entry's range."""
    t = 1.0 if thickness is None else float(thickness)
    lo, hi = thickness_range(entry)
    return max(lo - t, t - hi, 0.0)


def _best(model: str, scale, preset: Optional[str], degradation: str,
          thickness: Optional[float] = None) -> Optional[dict]:
    """The entry of ``degradation`` serving ``scale``: for thickslice, the one trained nearest the slice
    ``thickness`` (then the best validation PSNR), else the best validation PSNR."""
    cands = [e for e in list_weights(model)
             if _serves(e, scale) and (preset is None or e.get("preset") == preset)
             and e.get("degradation", "bicubic") == degradation]
    if degradation == THICKSLICE:
        return max(cands, key=lambda e: (-_profile_distance(e, thickness), val_psnr(e, scale))) if cands else None
    return max(cands, key=lambda e: val_psnr(e, scale)) if cands else None


class Route(NamedTuple):
    """Which shipped weights a 2D pass reads and how: ``degradation`` of the entry (None: the user's
    own file, run as given), ``transpose``: run the slice transposed (thick axis as the rows)."""

    degradation: Optional[str]
    transpose: bool


def route(model: str, scale, preset: Optional[str] = None, weights: Union[str, os.PathLike] = "auto",
          family: str = "bicubic") -> Route:
    """The through-plane route (module docstring): thickslice weights for a one-axis pass of a per-axis
    network when an entry serves its factor, else the weights ``family`` (bicubic by default, or
    scanner: trained on scanner-like degradations); an explicit weights file is never re-routed."""
    if os.fspath(weights) != "auto":
        return Route(None, False)
    spec = get_spec(model)
    if spec.kind == "network" and spec.per_axis and through_plane_factor(scale) is not None \
            and _best(model, scale, preset, THICKSLICE) is not None:
        return Route(THICKSLICE, as_pair(scale)[0] == 1)
    return Route(family, False)


def find_weights(model: str, scale, preset: Optional[str] = None, degradation: Optional[str] = None,
                 thickness: Optional[float] = None, family: str = "bicubic") -> Optional[dict]:
    """The best shipped entry for (model, scale, preset): of ``degradation``, or by default the one
    ``route`` picks for a pass at ``scale`` in weights ``family``; through-plane, the one trained nearest
    the slice ``thickness`` (fraction of the spacing; None: contiguous). None when none serves it."""
    return _best(model, scale, preset, degradation or route(model, scale, preset, family=family).degradation,
                 thickness)


def val_psnr(entry: dict, scale) -> float:
    """The entry's validation PSNR at ``scale``: its per-scale ``val`` table if it has one (multi-scale
    networks; a thickslice entry's is keyed by the through-plane factor), else ``val_psnr``; -inf when unknown."""
    f = through_plane_factor(scale) if entry.get("degradation") == THICKSLICE else _scale_int(scale)
    per = entry.get("val") or {}
    key = f"{f:g}" if f is not None else None
    if key in per and per[key].get("psnr") is not None:
        return float(per[key]["psnr"])
    v = entry.get("val_psnr")
    return float(v) if v is not None else float("-inf")


def _file_key(path: str) -> tuple:
    """What identifies a file's content cheaply: real path, size and modification time."""
    st = os.stat(path)
    return os.path.realpath(path), st.st_size, st.st_mtime_ns


def sha256(path: str) -> str:
    """The file's sha256, computed once per process for an unchanged file (a batch worker verifies
    each weight file once, not once per task)."""
    key = _file_key(path)
    if key not in _SHA256:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA256[key] = h.hexdigest()
    return _SHA256[key]


def verify(entry: dict) -> str:
    """Check the entry's file exists and matches its sha256; returns the path."""
    path = entry["path"]
    if not os.path.isfile(path):
        raise MedSRError(f"weight file '{path}' is missing; re-download the repository or reinstall the extension")
    if sha256(path) != entry.get("sha256"):
        raise MedSRError(f"weight file '{path}' is corrupt (sha256 mismatch with models.json); "
                         "re-download the repository or reinstall the extension")
    return path


def _load_state(path: str) -> dict:
    """The file's tensors, read once per process while the file is unchanged (a small LRU cache:
    a batch worker loads its weights once, whatever the number of tasks it runs). Callers copy
    them into a network (load_state_dict), so the cached tensors are never modified."""
    from safetensors.torch import load_file
    key = _file_key(path)
    if key in _STATES:
        _STATES.move_to_end(key)
        return _STATES[key]
    try:
        state = load_file(path)
    except Exception as exc:
        raise MedSRError(f"cannot read weight file '{path}' as safetensors ({exc.__class__.__name__}); "
                         "weights must be .safetensors files") from exc
    LOADS[key[0]] = LOADS.get(key[0], 0) + 1
    _STATES[key] = state
    while len(_STATES) > STATE_CACHE_SIZE:
        _STATES.popitem(last=False)
    return state


def weights_used(model: str, scales, preset: Optional[str] = None, weights: Union[str, os.PathLike] = "auto",
                 degradation: Optional[str] = None, thickness: Optional[float] = None,
                 family: str = "bicubic") -> list[tuple[str, str, Optional[str]]]:
    """(file, sha256, preset) of each weight file a run of ``model`` at the model scales ``scales`` reads:
    the shipped entries ``route`` picks for "auto" (through-plane: for the slice ``thickness``), the
    user's file, or nothing for classical models and "random"."""
    weights = os.fspath(weights)
    if get_spec(model).kind != "network" or weights == "random":
        return []
    if weights != "auto":
        return [(weights, sha256(weights), preset)]
    out = []
    for scale in scales:
        entry = find_weights(model, as_pair(scale), preset, degradation, thickness, family)
        item = None if entry is None else (entry["path"], entry.get("sha256", ""), entry.get("preset"))
        if item is not None and item not in out:
            out.append(item)
    return out


def load_network(model: str, scale=2, preset: Optional[str] = None,
                 weights: Union[str, os.PathLike] = "auto", device: Union[str, torch.device] = "cpu",
                 degradation: Optional[str] = None, thickness: Optional[float] = None,
                 family: str = "bicubic") -> nn.Module:
    """Build network ``model`` for ``scale`` and load its weights, in eval mode.

    weights: "auto" (the shipped entry for model/scale/preset that ``route`` picks, or of
    ``degradation`` when given; through-plane, the one for the slice ``thickness``; sha256-verified
    before loading),
    "random" (untrained; tests and benchmarks only) or a path to a .safetensors file.
    """
    spec = get_spec(model)
    if spec.kind != "network":
        raise MedSRError(f"'{model}' is a classical baseline without weights")
    pair = as_pair(scale)
    weights = os.fspath(weights) if isinstance(weights, os.PathLike) else weights
    if weights == "random":
        net = build(model, preset or "light", pair)
    elif weights == "auto":
        entry = find_weights(model, pair, preset, degradation, thickness, family)
        if entry is None:
            of = "" if family == "bicubic" else f" of the {family} family"
            raise MedSRError(f"no trained weights{of} for '{model}'{' ' + preset if preset else ''} at scale "
                             f"{pair[0]:g}x{pair[1]:g}; shipped weights cover {_coverage(model, preset)}; "
                             "pick one of those, another model, or a classical baseline such as bicubic")
        path = verify(entry)
        net = build(model, entry.get("preset", "light"), pair)
        _load_into(net, _load_state(path), path)
    else:
        path = str(weights)
        check_weights_file(path)
        net = build(model, preset or "light", pair)
        _load_into(net, _load_state(path), path)
    return net.to(device).eval()


def _coverage(model: str, preset: Optional[str]) -> str:
    """What the shipped weights of ``model`` serve, for a refusal: square scales, then through-plane factors."""
    entries = [e for e in list_weights(model) if preset is None or e.get("preset") == preset]
    square = [e for e in entries if e.get("degradation", "bicubic") != THICKSLICE]
    have = sorted({int(s) for e in square for s in e.get("scales", [])})
    ranges = sorted({tuple(e["scale_range"]) for e in square if e.get("scale_range")})
    through = [e.get("scale_range") or [min(e["scales"]), max(e["scales"])] for e in entries
               if e not in square and e.get("scales")]
    return ((f"scales {have}" if have else "no scale")
            + "".join(f" (any factors in [{lo:g}, {hi:g}])" for lo, hi in ranges)
            + "".join(f", through-plane (f, 1) for f in [{lo:g}, {hi:g}] (thickslice)" for lo, hi in through))


def load_model(model: str, scale=2, preset: Optional[str] = None, weights: Union[str, os.PathLike] = "auto",
               device: Union[str, torch.device] = "cpu", thickness: Optional[float] = None,
               family: str = "bicubic") -> ModelDescriptor:
    """Any registered model ready to call, in eval mode on ``device``: a classical baseline as built,
    a network with its weights (``load_network``: "auto", "random" or a .safetensors path; through-plane
    "auto" weights for the slice ``thickness``)."""
    if get_spec(model).kind == "classical":
        module = build(model, preset=preset or "light", scale=scale).to(device).eval()
    else:
        module = load_network(model, scale=scale, preset=preset, weights=weights, device=device, thickness=thickness,
                              family=family)
    return ModelDescriptor.of(model, module)


def load_into(net: nn.Module, path: str) -> None:
    """Load the safetensors file ``path`` into ``net`` strictly (a warm start: adaptation, ``--init``)."""
    _load_into(net, _load_state(path), path)


def _load_into(net: nn.Module, state: dict, path: str) -> None:
    """Load ``state`` strictly; a mismatch is one line: how many tensors are missing, unexpected or
    of the wrong shape, naming the first of each."""
    problem = mismatch({k: tuple(v.shape) for k, v in net.state_dict().items()},
                       {k: tuple(v.shape) for k, v in state.items()})
    if problem:
        raise MedSRError(f"weight file '{os.path.basename(path)}' does not fit this network: {problem}; "
                         "check the model name, preset and scale")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise MedSRError(f"weight file '{os.path.basename(path)}' does not fit this network "
                         f"({str(exc).splitlines()[0][:80]}); check the model name, preset and scale") from None


def best_model_for(scale, degradation: str = "bicubic") -> str:
    """The network with the best validation PSNR in models.json for ``scale``; "bicubic" when none."""
    best, name = float("-inf"), "bicubic"
    for e in list_weights():
        try:
            ok = _serves(e, scale) and e.get("degradation", "bicubic") == degradation
        except MedSRError:  # an architecture not registered in this build
            ok = False
        if ok and val_psnr(e, scale) > best:
            best, name = val_psnr(e, scale), e["architecture"]
    return name
