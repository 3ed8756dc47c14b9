"""Architecture registry: what each model supports, and how to build it.

Every entry (network or classical baseline) is a ``ModelSpec``. ``build(name, preset, scale)``
returns an ``nn.Module`` whose eval-mode ``forward(x)`` maps (N, 1, H, W) to
(N, 1, round(H·sh), round(W·sw)). Arbitrary-scale models also accept ``forward(x, scale=(sh, sw))``
at call time; the output pixel p along an axis of scale s has its centre at LR coordinate
(p + 0.5)/s − 0.5 (the voxel-edge-preserving grid of DESIGN.md). Callers never branch on that:
they run a model through ``ModelDescriptor`` (``models/descriptor.py``), ``sr = descriptor(x, scale)``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Sequence, Union

import torch.nn as nn

from MedSRExtension.core.errors import MedSRError

Scale = Union[float, Sequence[float]]


@dataclass(frozen=True)
class ModelSpec:
    """What a model is and what it supports.

    scales: the integer factors it supports, or None when any real factor >= 1 works.
    per_axis: different factors for H and W (needed for through-plane SR without a detour).
    presets: preset name -> one-line description (``light`` for CPU, ``base`` near the paper).
    tile_safe: tiled inference equals untiled given ``receptive_field`` pixels of LR overlap.
    min_size: smallest LR height/width the model accepts (``check_size``; enforced on every call
    through ``ModelDescriptor`` and before any work in ``super_resolve``).
    half: the reduced precisions it runs in on CUDA ("fp16", "bf16").
    """

    name: str
    kind: str  # "network" | "classical"
    title: str
    paper: str
    builder: Callable[..., nn.Module]
    scales: tuple[int, ...] | None = (2, 3, 4)
    per_axis: bool = False
    presets: dict = field(default_factory=lambda: {"light": "CPU-sized"})
    tile_safe: bool = True
    receptive_field: int = 16
    min_size: int = 8
    half: tuple[str, ...] = ()
    summary: str = ""

    @property
    def arbitrary_scale(self) -> bool:
        return self.scales is None

    def check_scale(self, scale: tuple[float, float]) -> None:
        """Raise MedSRError unless this model can produce the per-axis (sh, sw) factors."""
        sh, sw = scale
        if min(sh, sw) < 1:
            raise MedSRError(f"scale factors must be >= 1, got {scale}")
        if self.scales is None:
            if sh != sw and not self.per_axis:
                raise MedSRError(f"model '{self.name}' needs the same factor on both axes, got {scale}")
            return
        if sh != sw or not float(sh).is_integer() or int(sh) not in self.scales:
            raise MedSRError(
                f"model '{self.name}' supports scales {list(self.scales)} only, got {scale}; "
                "choose one of those or an arbitrary-scale model (pfmdn, bicubic, bspline, ...)"
            )

    def check_size(self, rows: int, cols: int) -> None:
        """Raise MedSRError when an LR image of rows x cols pixels is smaller than ``min_size``."""
        if min(rows, cols) < self.min_size:
            raise MedSRError(
                f"model '{self.name}' needs images of at least {self.min_size}x{self.min_size} pixels, got a "
                f"{rows}x{cols} slice; use a classical baseline such as bicubic for images this small"
            )


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry (import-time, one call per architecture file)."""
    _REGISTRY[spec.name] = spec
    return spec


ARCHITECTURES = ("classical", "edsr", "lgsr", "iconet", "pfmdn")


def _ensure_loaded() -> None:
    """Import every architecture file once, for its register() side effect (lazy: no import cycles)."""
    for module in ARCHITECTURES:
        importlib.import_module(f"{__package__}.{module}")


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model; a clear error names the known models otherwise."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise MedSRError(f"unknown model '{name}'; known models: {', '.join(names())}")
    return _REGISTRY[name]


def names() -> list[str]:
    """All registered model names, networks first."""
    _ensure_loaded()
    return sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].kind != "network", n))


def as_pair(scale: Scale) -> tuple[float, float]:
    """A scalar or (sh, sw) scale as a float pair."""
    if isinstance(scale, (int, float)):
        return (float(scale), float(scale))
    sh, sw = scale
    return (float(sh), float(sw))


def build(name: str, preset: str = "light", scale: Scale = 2) -> nn.Module:
    """Construct model ``name`` at ``preset`` for ``scale`` (untrained; weights are loaded by the zoo)."""
    spec = get_spec(name)
    if preset not in spec.presets:
        raise MedSRError(f"model '{name}' has presets {list(spec.presets)}, not '{preset}'")
    pair = as_pair(scale)
    spec.check_scale(pair)
    return spec.builder(preset=preset, scale=pair)
