"""One way to call a model: ``ModelDescriptor`` (after spandrel's), a built module beside its spec.

Networks differ in how they are called: an arbitrary-scale network takes the factors at call time
(``forward(x, scale=(sh, sw))``), a fixed-scale one was built for them; in training mode some return
a dict of outputs (the SR image under ``"sr"``, plus gradient maps or per-stage images) for their loss.
A descriptor hides both: ``sr = descriptor(x, scale)`` is the SR tensor for every registered model,
``descriptor.outputs(x, scale)`` everything the training loss needs. It also enforces the spec's
``min_size`` on every input, so a too-small image is a clear error instead of a shape error deep
inside a network.
"""
from __future__ import annotations

from typing import Union

import torch
import torch.nn as nn

from .registry import ModelSpec, Scale, as_pair, get_spec

Output = Union[torch.Tensor, dict]


def sr_of(output: Output) -> torch.Tensor:
    """The SR image of a forward pass: the tensor itself, or a training dict's ``"sr"`` entry."""
    return output["sr"] if isinstance(output, dict) else output


class ModelDescriptor:
    """A model ready to call: ``descriptor(x, scale)`` maps (N, 1, H, W) to its SR tensor.

    ``module`` is the built network or baseline (it may be wrapped, e.g. in DistributedDataParallel);
    ``spec`` says what it supports. ``scale`` is the per-axis (sh, sw) of this call: an arbitrary-scale
    model is run at it, a fixed-scale model ignores it (it was built for its scale).
    """

    def __init__(self, spec: ModelSpec, module: nn.Module):
        self.spec = spec
        self.module = module

    @classmethod
    def of(cls, name: str, module: nn.Module) -> "ModelDescriptor":
        """The descriptor of ``module``, built for registered model ``name``."""
        return cls(get_spec(name), module)

    @property
    def receptive_field(self) -> int:
        """LR pixels of context one output pixel depends on: the preset's own reach, else the spec's."""
        inner = getattr(self.module, "module", self.module)  # DistributedDataParallel keeps it as .module
        return int(getattr(inner, "receptive_field", self.spec.receptive_field))

    def outputs(self, x: torch.Tensor, scale: Scale) -> Output:
        """Every output of one forward pass (a training dict where the network returns one)."""
        self.spec.check_size(int(x.shape[-2]), int(x.shape[-1]))
        if self.spec.arbitrary_scale:
            return self.module(x, scale=as_pair(scale))
        return self.module(x)

    def __call__(self, x: torch.Tensor, scale: Scale) -> torch.Tensor:
        """The SR image of ``x`` at ``scale``."""
        return sr_of(self.outputs(x, scale))
