"""``InferenceOptions``: what one super-resolution run is asked to do, as one JSON-serialisable value.

The CLI builds it from its arguments, ``super_resolve`` from its keywords, ``run_comparison`` and
``medsr eval`` from theirs; a worker process or a batch run receives it as JSON (``to_dict`` /
``from_dict``). The callbacks of a run (progress, cancel) are not options: they cannot cross a
process boundary and are passed beside it.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

from MedSRExtension.core import validation
from MedSRExtension.core.weight_families import FAMILIES
from MedSRExtension.core.errors import MedSRError

ScaleArg = Union[float, Sequence[float], None]
CLAMPS = ("input", "none")
ENSEMBLES = (1, 2, 4, 8)


class JsonOptions:
    """JSON round trip for a frozen dataclass of options: ``to_dict`` / ``from_dict`` and ``replace``."""

    def replace(self, **changes: Any):
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain JSON types only (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict):
        """The options ``to_dict`` wrote; an unknown key is a clear error (a typo must not be ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MedSRError(f"unknown option(s) {', '.join(unknown)} for {cls.__name__}; "
                             f"known: {', '.join(sorted(known))}")
        return cls(**data)


def adaptable_networks() -> list[str]:
    """The networks an adaptation can tune: those that run any per-axis factor."""
    from MedSRExtension.models.registry import get_spec, names
    return [n for n in names() if get_spec(n).kind == "network" and get_spec(n).per_axis
            and get_spec(n).arbitrary_scale]


def check_adaptable(model: str, default: bool = True) -> None:
    """Adaptation tunes a network that runs any per-axis factor; with ``default``, "bicubic" (the default
    model) stands for the first of them. Anything else is refused in one line."""
    if (default and model == "bicubic") or model in adaptable_networks():
        return
    from MedSRExtension.models.registry import get_spec
    get_spec(model)  # an unknown name is refused as such
    fits = ", ".join(adaptable_networks()) or "pfmdn"
    raise MedSRError(f"--adapt (adaptation to the volume) needs a network that runs per-axis factors ({fits}), "
                     f"not {model}: choose {fits.split(', ')[0]} or run without adapting")


def as_tuple(value):
    """A scalar as is, a sequence (a JSON list) as a tuple of floats: options compare and hash."""
    return value if value is None or isinstance(value, (int, float)) else tuple(float(v) for v in value)


@dataclass(frozen=True)
class InferenceOptions(JsonOptions):
    """Options of one run of the inference engine, checked once when they are made (``__post_init__``:
    tile, batch, out_dtype, the weights file, adapt only through-plane and of a network that runs per-axis
    factors, save_adapted only with adapt, ensemble, thickness, clamp), so
    every caller (CLI, batch, worker, API) refuses the same values with the same message.

    Args:
        model: registry name of the model (a network or a classical baseline).
        scale: one factor for the axes ``mode`` scales, or per-axis (fi, fj, fk); None with ``spacing``.
        spacing: target spacing in mm instead of a scale: one number, or (si, sj, sk).
        mode: "inplane", "throughplane" or "volumetric" (DESIGN.md "Modes"), or "auto": from the
            volume's geometry (``core.geometry.default_mode``: thick slices -> throughplane).
        axis: the slice axis "i", "j", "k", or "auto" (the largest spacing; k when isotropic).
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        tile: tile side in LR pixels (bounds memory); None: the engine's default for networks.
        batch: slices per batch; None: sized by the engine from the slice size and device.
        preset: network preset; None: the shipped one.
        weights: "auto" (shipped, verified), "random" (untrained; tests and benchmarks) or a
            .safetensors path.
        out_dtype: "float32", "input" (the input's type, clipped and rounded) or a numpy dtype name.
        force: allow outputs above the engine's size limit.
        fast: on the CPU, use the fast paths measured to pay for this model without costing quality
            (``inference.fastpath``: channels_last, bf16 autocast, flushing denormals); False runs
            plain fp32 NCHW, the reference the fast paths are measured against.
        adapt: throughplane only: True (the default budget) or minutes, or ``AdaptOptions`` fields as a
            dict: fine-tune the network on this volume first (``adapt``); None: no adaptation.
        save_adapted: with adapt, a .safetensors path for the tuned weights (nothing is saved without it).
        clamp: "input" (default) keeps the result inside the input's value range, as an acquired image's
            values are (a CT never below its air value; a network's overshoot at sharp edges removed);
            "none" keeps the raw network output. What was done is recorded in the provenance.
        gate: through-plane networks: keep the network's result only when it beats cubic B-spline on
            held-out pairs of the volume (``adapt.selfcheck``), else return the B-spline result and say so.
        confidence: through-plane: also return (``meta["confidence"]``, a Volume on the output grid, in
            the input's units) how far the two orientations of planes disagree at each voxel: where
            the result is least supported by the data, the two reconstructions differ most.
        ensemble: 1, 2, 4 or 8: average the network over that many flipped/transposed copies
            (``pipeline.ensemble``; "best quality"), at that many times the time.
        thickness_mm: through-plane: the acquired slice thickness in mm (thinner than the spacing: gaps
            between slices; thicker: overlap). It sets the slice profile of the do-no-harm check and
            picks the shipped weights trained nearest to it (``zoo.weights``: contiguous slices, or thin
            slices with gaps). None: the file header's, else ``run_pipeline`` estimates it from the
            volume (the engine alone then assumes contiguous slices).
        consistency: through-plane network runs: make the result reproduce the input slices when
            re-degraded with the slice profile (``core.slice_consistency``; measured on the corpus's
            validation regions never worse on average, docs/consistency.json); False: the network's
            (or the gate's B-spline) result as it is.
        trained_on: the weights family of in-plane passes: "bicubic" (default, as published results
            are measured) or "scanner" (trained on k-space truncation, PSFs, noise and shading:
            ``core.scanner_degradation``), for data made the way scanners make it.
        fallback: why ``model`` is a classical baseline nobody asked for (no ``--model`` and no shipped
            weights serve the scale: ``zoo.catalog.fallback_reason``); recorded in the provenance.
    """

    model: str = "bicubic"
    scale: ScaleArg = 2.0
    spacing: ScaleArg = None
    mode: str = "inplane"
    axis: str = "auto"
    device: str = "auto"
    tile: Optional[int] = None
    batch: Optional[int] = None
    preset: Optional[str] = None
    weights: str = "auto"
    out_dtype: str = "float32"
    force: bool = False
    fast: bool = True
    adapt: Union[bool, float, dict, None] = None
    save_adapted: Optional[str] = None
    clamp: str = "input"
    gate: bool = True
    confidence: bool = False
    ensemble: int = 1
    thickness_mm: Optional[float] = None
    consistency: bool = True
    trained_on: str = "bicubic"
    fallback: Optional[str] = None

    def for_volume(self, volume) -> tuple["InferenceOptions", Optional[str]]:
        """These options with mode "auto" decided from ``volume``'s geometry, and why (None when the
        mode was given)."""
        if self.mode != "auto":
            return self, None
        from MedSRExtension.core.geometry import default_mode
        mode, axis, why = default_mode(volume)
        chosen = self.replace(mode=mode, axis=self.axis if self.axis != "auto" else axis)
        if chosen.adapt not in (None, False) and mode != "throughplane":
            raise MedSRError(f"--adapt is for throughplane, and this volume is not thick-sliced ({why}); "
                             "give --mode throughplane to adapt anyway")
        return chosen, f"mode {mode}" + (f" along {chosen.axis}" if mode == "throughplane" else "") + f" ({why})"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", as_tuple(self.scale))
        object.__setattr__(self, "spacing", as_tuple(self.spacing))
        if isinstance(self.weights, os.PathLike):
            object.__setattr__(self, "weights", os.fspath(self.weights))
        for name in ("tile", "batch"):
            validation.check_positive_int(getattr(self, name), name)
        validation.check_out_dtype(self.out_dtype)
        if self.weights not in ("auto", "random"):
            validation.check_weights_file(self.weights)  # before any input is read
        self._check_adapt()
        if self.ensemble not in ENSEMBLES:
            raise MedSRError(f"ensemble must be one of {', '.join(map(str, ENSEMBLES))}, got {self.ensemble}; "
                             "use 8 for the best quality or 1 for none")
        if self.thickness_mm is not None:
            validation.check_thickness_mm(self.thickness_mm)
        if self.trained_on not in FAMILIES:
            raise MedSRError(f"trained_on must be one of {', '.join(FAMILIES)}, got '{self.trained_on}'")
        if self.clamp not in CLAMPS:
            raise MedSRError(f"clamp must be one of {', '.join(CLAMPS)}, got '{self.clamp}'; use input or none")

    def _check_adapt(self) -> None:
        if self.adapt in (None, False):
            if self.save_adapted:
                raise MedSRError("--save-adapted needs --adapt")
            return
        if self.mode not in ("throughplane", "auto"):
            raise MedSRError(f"--adapt (adaptation to the volume) is for --mode throughplane, not {self.mode}; "
                             "add --mode throughplane")
        check_adaptable(self.model)
