"""Export a network with its weights to ONNX, for ONNX Runtime, OpenVINO, TensorRT or Triton.

What a user gets (``medsr export``): ``OUT.onnx`` mapping a (N, 1, H, W) float32 image, robustly normalised
to about [0, 1] as the engine does, to its (N, 1, s·H, s·W) super-resolution; beside it ``OUT.json`` (model,
preset, scale, input/output names and shapes, the weights' file name and sha256, the ONNX file's sha256, the
measured max |ONNX − torch| on a real corpus slice) and ``OUT.md``, the weights' model card. Files are written
under temporary names in the output folder and renamed, so a failed export leaves nothing half-written.

Arbitrary-scale networks (pfmdn) are exported as a fixed-scale variant (``FixedScale``): ONNX graphs have
one output size rule, and integer factors run the Meta-SR head as one convolution + interleave.
Export uses torch's dynamo exporter (``torch.export`` + onnxscript). ``dynamic`` makes the height and width
symbolic; without it the graph is for the ``size`` it was exported at (LGSR must be: its global stages pool
to a fixed grid whose bins depend on the slice size, which ONNX cannot express for a symbolic size).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from MedSRExtension.core import atomic
from MedSRExtension.core.errors import MedSRError

FORMATS = ("onnx",)
OPSET = 18
#: Largest |ONNX − torch| accepted on the verification slice (float32 reassociation is ~1e-6).
TOLERANCE = 1e-4
_NOT_DYNAMIC = {"lgsr": "its global stages pool to a fixed grid whose bins depend on the slice size"}


class FixedScale(nn.Module):
    """An arbitrary-scale network frozen at one factor: ``forward(x) = net(x, scale=scale)``."""

    def __init__(self, net: nn.Module, scale: tuple[float, float]):
        super().__init__()
        self.net, self.scale = net, (float(scale[0]), float(scale[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, scale=self.scale)


@dataclass
class ExportResult:
    onnx: str
    metadata: str
    card: Optional[str]
    max_abs_diff: Optional[float]


def exportable(model: str, scale: float, preset: Optional[str] = None, weights: str = "auto") -> tuple[nn.Module, dict]:
    """The eval-mode network (fixed-scale for arbitrary-scale models) and its weights' entry.

    The entry is the shipped models.json record (with ``path``) for ``weights="auto"``, else a minimal
    record of the given .safetensors file."""
    from MedSRExtension.models.registry import get_spec
    from MedSRExtension.zoo import weights as zoo
    spec = get_spec(model)
    if spec.kind != "network":
        raise MedSRError(f"'{model}' is a classical baseline, not a network; export one of the networks")
    if not float(scale).is_integer():
        raise MedSRError(f"ONNX export needs an integer scale (2, 3, 4), got {scale:g}; "
                         "an arbitrary-scale network is exported at one fixed integer factor")
    pair = (float(scale), float(scale))
    spec.check_scale(pair)
    if weights == "auto":
        entry = zoo.find_weights(model, pair, preset)
        if entry is None:
            raise MedSRError(f"no shipped weights for '{model}'{' ' + preset if preset else ''} at x{scale:g}; "
                             "pass --weights FILE.safetensors or choose a shipped model/scale (medsr models)")
    else:
        entry = {"name": os.path.splitext(os.path.basename(weights))[0], "file": os.path.basename(weights),
                 "path": weights, "architecture": model, "preset": preset or "light"}
    net = zoo.load_network(model, pair, entry.get("preset", preset), weights=weights if weights != "auto" else "auto")
    if spec.arbitrary_scale:
        net = FixedScale(net, pair).eval()
    return net, entry


def _verification_slice(size: tuple[int, int]) -> np.ndarray:
    """A real image (the held-out MNI axial slice k=86, robustly normalised), cropped or padded to ``size``."""
    from MedSRExtension.core.intensity import normalize
    from MedSRExtension.data.corpus import validation_regions
    img = next(r.array for r in validation_regions() if r.name == "mni_k86")
    x = normalize(img)[0].astype(np.float32)
    h, w = size
    x = np.pad(x, ((0, max(0, h - x.shape[0])), (0, max(0, w - x.shape[1]))), mode="reflect")
    return np.ascontiguousarray(x[:h, :w])


def onnx_max_diff(path: str, net: nn.Module, x: np.ndarray) -> float:
    """max |ONNX Runtime (CPU) − torch| of the exported file on image ``x`` (H, W)."""
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    inp = x[None, None].astype(np.float32)
    got = sess.run(None, {sess.get_inputs()[0].name: inp})[0]
    with torch.no_grad():
        ref = net(torch.from_numpy(inp)).numpy()
    if got.shape != ref.shape:
        raise MedSRError(f"the exported graph gives shape {got.shape}, torch {ref.shape}; export failed")
    return float(np.abs(got - ref).max())


def default_output(entry: dict, model: str, scale: float) -> str:
    return f"{model}-{entry.get('preset', 'light')}-x{int(scale)}.onnx"


def _check_request(model: str, scale: float, out: Optional[str], entry: dict, dynamic: bool,
                   size: Sequence[int]) -> tuple[str, int, int, int]:
    """Refuse what cannot be exported before any work: (output path, height, width, minimum side)."""
    if dynamic and model in _NOT_DYNAMIC:
        raise MedSRError(f"'{model}' cannot be exported with a dynamic size ({_NOT_DYNAMIC[model]}); "
                         "export it without --dynamic at the slice size you will run (--size H,W)")
    h, w = int(size[0]), int(size[1])
    from MedSRExtension.models.registry import get_spec
    min_size = max(get_spec(model).min_size, 8)
    if min(h, w) < min_size:
        raise MedSRError(f"--size must be at least {min_size}x{min_size} for '{model}', got {h}x{w}")
    out = out or default_output(entry, model, scale)
    if not out.endswith(".onnx"):
        raise MedSRError(f"the output file must end in .onnx, got '{out}'")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise MedSRError(f"output folder '{folder}' does not exist; create it first")
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter's backend)
        import onnx  # noqa: F401
    except ImportError as exc:
        raise MedSRError("ONNX export needs the export extras: pip install 'medsr[export]'") from exc
    return out, h, w, min_size


def _export_graph(net, model: str, example: torch.Tensor, path: str, dynamic_shapes: Optional[dict]) -> None:
    """torch.onnx.export (dynamo) into ``path``, its chatter silenced, its failure one line."""
    kwargs = {"dynamic_shapes": dynamic_shapes} if dynamic_shapes else {}
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the exporter's progress lines and warnings are not the user's
        log = logging.getLogger("torch.onnx")
        level = log.level
        log.setLevel(logging.ERROR)
        try:
            torch.onnx.export(net, (example,), path, input_names=["x"], output_names=["y"], dynamo=True,
                              opset_version=OPSET, external_data=False, verbose=False, **kwargs)
        except MedSRError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise MedSRError(f"ONNX export of '{model}' failed ({first})") from exc
        finally:
            log.setLevel(level)


def _verified(path: str, net, x: np.ndarray) -> float:
    try:
        diff = onnx_max_diff(path, net, x)
    except ImportError as exc:
        raise MedSRError("checking the export needs onnxruntime: pip install 'medsr[export]'") from exc
    if not diff <= TOLERANCE:
        raise MedSRError(f"the ONNX graph differs from torch by {diff:.2g} (> {TOLERANCE:g}) on the "
                         "verification slice; nothing was written")
    return diff


def _metadata(model: str, scale: float, entry: dict, dynamic: bool, h: int, w: int, onnx_path: str,
              diff: Optional[float], verify: bool) -> dict:
    """What the .json beside the graph says: input/output contract, weights and graph sha256."""
    from MedSRExtension.zoo.weights import sha256
    f = int(scale)
    return {
        "model": model, "preset": entry.get("preset"), "scale": f, "format": "onnx", "opset": OPSET,
        "input": {"name": "x", "shape": ["N", 1, "H" if dynamic else h, "W" if dynamic else w],
                  "dtype": "float32", "intensity": "robustly normalised to about [0, 1]"},
        "output": {"name": "y", "shape": ["N", 1, f"{f}*H" if dynamic else h * f, f"{f}*W" if dynamic else w * f]},
        "dynamic": bool(dynamic), "weights": entry.get("file"), "weights_name": entry.get("name"),
        "weights_sha256": sha256(entry["path"]), "onnx_sha256": sha256(onnx_path),
        "verified_max_abs_diff": diff,
        "verified_on": "MedSR corpus held-out MNI axial slice k=86" if verify else None,
        "torch": torch.__version__,
    }


def export_onnx(model: str, scale: float, out: Optional[str] = None, preset: Optional[str] = None,
                dynamic: bool = False, size: Sequence[int] = (256, 256), weights: str = "auto",
                verify: bool = True) -> ExportResult:
    """Export ``model`` at ``scale`` to ``out`` (.onnx) with its metadata and card beside it (see module doc)."""
    net, entry = exportable(model, scale, preset, weights)
    out, h, w, min_size = _check_request(model, scale, out, entry, dynamic, size)
    x = _verification_slice((h, w)) if verify else np.random.default_rng(0).random((h, w), dtype=np.float32)
    dims = {"x": {2: torch.export.Dim("height", min=min_size, max=16384),
                  3: torch.export.Dim("width", min=min_size, max=16384)}} if dynamic else None
    stem = os.path.splitext(os.path.abspath(out))[0]
    tmp = tempfile.NamedTemporaryFile(dir=os.path.dirname(stem), prefix=atomic.owner_prefix() + "export-",
                                      suffix=".onnx", delete=False)
    tmp.close()
    atomic.follow_umask(tmp.name)  # tempfile makes it 0600; the .json and .md beside it follow the umask
    written: list[str] = [tmp.name, tmp.name[:-5] + ".json"]
    card_src = _card_path(entry)
    try:
        _export_graph(net, model, torch.from_numpy(x)[None, None], tmp.name, dims)
        diff = _verified(tmp.name, net, x) if verify else None
        with open(written[1], "w", encoding="utf-8") as f:
            json.dump(_metadata(model, scale, entry, dynamic, h, w, tmp.name, diff, verify), f, indent=2)
        if card_src:
            written.append(tmp.name[:-5] + ".md")
            shutil.copyfile(card_src, written[2])
        os.replace(written[1], stem + ".json")
        if card_src:
            os.replace(written[2], stem + ".md")
        os.replace(tmp.name, stem + ".onnx")
    finally:
        for path in written:
            if os.path.exists(path):
                os.remove(path)
    return ExportResult(stem + ".onnx", stem + ".json", stem + ".md" if card_src else None, diff)


def _card_path(entry: dict) -> Optional[str]:
    """The shipped model card (.md) of a zoo entry, if it has one."""
    from MedSRExtension.zoo.weights import models_dir
    card, d = entry.get("card"), models_dir()
    if not card or not d:
        return None
    path = os.path.join(d, card)
    return path if os.path.isfile(path) else None
