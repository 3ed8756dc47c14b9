"""Which network runs a 2D pass at a given scale, loaded once per run.

A run may need several models: one per pass scale of a fixed-scale network, one per weight file of
an arbitrary-scale one (``zoo.weights.route`` picks the shipped file for the scale and the slice
thickness, and says whether the file learnt the thick axis as the rows, so the pass runs transposed).
The cache asks the zoo once per scale, loads each model once, and places it on the run's device in the
layout the fast path chose (channels_last, fused on the CPU). It owns the device: after CUDA runs out
of memory, ``to_cpu`` moves every model it holds. Kept apart from the slice-pass executor so that
"which weights" and "how slices are batched" can be read, and changed, one at a time.
"""
from __future__ import annotations

from typing import Optional

import torch

from MedSRExtension.inference import fastpath, fusion
from MedSRExtension.models.descriptor import ModelDescriptor
from MedSRExtension.models.registry import ModelSpec


def model_run_scale(spec: ModelSpec, scale: tuple[float, float]) -> tuple[tuple[float, float], bool]:
    """The scale to run the model at for a 2D pass at ``scale``, and whether a per-axis detour is
    needed (a fixed-scale model asked for (f, 1): run at (f, f) and average the extra axis back down)."""
    sh, sw = scale
    if sh != sw and not spec.per_axis and min(sh, sw) == 1:
        f = max(sh, sw)
        spec.check_scale((f, f))
        return (f, f), True
    spec.check_scale(scale)
    return scale, False


class ModelCache:
    """The models of one run, keyed by pass scale, on ``device``.

    Args:
        spec: the registry entry of the model.
        preset, weights: as ``InferenceOptions`` give them ("auto", "random" or a .safetensors path).
        device: where the models run.
        fast: the CPU fast path chosen for this model (``fastpath.FastPath()``: plain fp32).
        network: an in-memory network to run instead of loading weights (one adapted to the volume).
        thickness: through-plane: slice thickness / spacing, which picks the shipped weights.
        family: the weights family of in-plane passes (``zoo.weights.FAMILIES``).
    """

    def __init__(self, spec: ModelSpec, preset: Optional[str], weights: str, device: torch.device,
                 fast: fastpath.FastPath, network: Optional[torch.nn.Module] = None,
                 thickness: Optional[float] = None, family: str = "bicubic"):
        self.spec, self.preset, self.weights, self.family = spec, preset, weights, family
        self.device, self.fast = device, fast
        self.network, self.thickness = network, thickness
        self.models: dict[tuple, ModelDescriptor] = {}
        self.routes: dict[tuple[float, float], object] = {}

    @property
    def channels_last(self) -> bool:
        """NHWC on CUDA always; on the CPU where it measured faster for this model."""
        return self.device.type == "cuda" or self.fast.channels_last

    def run_scale(self, scale: tuple[float, float]) -> tuple[tuple[float, float], bool]:
        """``model_run_scale`` for this cache's model."""
        return model_run_scale(self.spec, scale)

    def route(self, scale: tuple[float, float]):
        """zoo.route for a pass at ``scale`` (which shipped weights, transposed or not), once per scale;
        an in-memory network or the user's weights file runs as given."""
        if scale not in self.routes:
            from MedSRExtension.zoo.weights import route
            weights = "own" if self.network is not None else self.weights
            self.routes[scale] = route(self.spec.name, scale, self.preset, weights, self.family)
        return self.routes[scale]

    def model(self, scale: tuple[float, float]) -> ModelDescriptor:
        """The model for ``scale`` (one per weight file's degradation when it is arbitrary-scale), loaded once."""
        key = (None if self.spec.arbitrary_scale else scale, self.route(scale).degradation)
        if key not in self.models:
            self.models[key] = self._placed(self._load(scale))
        return self.models[key]

    def _load(self, scale: tuple[float, float]) -> ModelDescriptor:
        if self.network is not None:  # an in-memory network (one adapted to this volume)
            return ModelDescriptor.of(self.spec.name, self.network.eval())
        from MedSRExtension.zoo.weights import load_model
        return load_model(self.spec.name, scale=scale, preset=self.preset, weights=self.weights, device="cpu",
                          thickness=self.thickness, family=self.family)

    def _placed(self, model: ModelDescriptor) -> ModelDescriptor:
        """``model`` on the device, in the memory layout and (CPU) fused form of the fast path."""
        model.module = model.module.to(self.device)
        if self.channels_last:
            model.module = model.module.to(memory_format=torch.channels_last)
        if self.fast.fuse and self.device.type == "cpu":
            model.module = fusion.fused(model.module)  # a copy: an adapted network stays as it is
        return model

    def prepare(self, scale: tuple[float, float]) -> None:
        """Route and load the model a pass at ``scale`` runs, before threads share the cache."""
        run_scale = self.run_scale(scale)[0]
        if self.route(run_scale).transpose:
            self.prepare(scale[::-1])
        else:
            self.model(run_scale)

    def to_cpu(self) -> None:
        """Move every model to the CPU, on the plain fp32 path (the fallback after CUDA out of memory)."""
        self.device = torch.device("cpu")
        self.fast = fastpath.FastPath()
        for model in self.models.values():
            model.module = model.module.to("cpu", memory_format=torch.contiguous_format)
