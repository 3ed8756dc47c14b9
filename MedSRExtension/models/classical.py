"""Classical interpolation baselines as registry models, run through the same pipeline as networks.

``nearest``, ``linear`` and ``bicubic`` use torch interpolation; ``bspline`` (cubic B-spline) and
``lanczos`` (Lanczos windowed sinc, radius 3) use SimpleITK resampling, as Slicer's own resampling
does. All map output pixel p to LR coordinate (p + 0.5)·n/n' − 0.5, the voxel-edge-preserving grid.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import out_size
from .registry import ModelSpec, as_pair, register


class TorchInterpolation(nn.Module):
    """Resize by ``torch.nn.functional.interpolate`` (align_corners=False: centre-based, edge-preserving)."""

    def __init__(self, mode: str, scale: tuple[float, float]):
        super().__init__()
        self.mode = mode
        self.scale = scale

    def forward(self, x: torch.Tensor, scale=None) -> torch.Tensor:
        size = out_size(x.shape[-2], x.shape[-1], as_pair(scale) if scale is not None else self.scale)
        kwargs = {} if self.mode == "nearest-exact" else {"align_corners": False}
        return F.interpolate(x, size=size, mode=self.mode, **kwargs)


class SitkInterpolation(nn.Module):
    """Resize each 2D image with SimpleITK's resampler (CPU; not differentiable)."""

    def __init__(self, interpolator: int, scale: tuple[float, float]):
        super().__init__()
        self.interpolator = interpolator
        self.scale = scale

    def forward(self, x: torch.Tensor, scale=None) -> torch.Tensor:
        n, c, h, w = x.shape
        oh, ow = out_size(h, w, as_pair(scale) if scale is not None else self.scale)
        sy, sx = h / oh, w / ow  # output spacing in LR pixel units
        arr = x.detach().to("cpu", torch.float32).numpy()
        out = np.empty((n, c, oh, ow), dtype=np.float32)
        resampler = sitk.ResampleImageFilter()
        resampler.SetInterpolator(self.interpolator)
        resampler.SetSize((ow, oh))
        resampler.SetOutputSpacing((sx, sy))
        resampler.SetOutputOrigin(((sx - 1) / 2, (sy - 1) / 2))
        resampler.SetDefaultPixelValue(0.0)
        for b in range(n):
            for ch in range(c):
                img = sitk.GetImageFromArray(arr[b, ch])
                out[b, ch] = sitk.GetArrayFromImage(resampler.Execute(img))
        return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)


def _torch_builder(mode: str):
    return lambda preset="light", scale=(2.0, 2.0): TorchInterpolation(mode, scale)


def _sitk_builder(interp: int):
    return lambda preset="light", scale=(2.0, 2.0): SitkInterpolation(interp, scale)


_COMMON = dict(kind="classical", paper="", scales=None, per_axis=True, presets={"light": "no parameters"},
               tile_safe=True, min_size=1, half=("fp16", "bf16"))

register(ModelSpec(name="nearest", title="Nearest neighbour", builder=_torch_builder("nearest-exact"),
                   receptive_field=1, summary="Each output voxel copies the nearest input voxel.", **_COMMON))
register(ModelSpec(name="linear", title="Bilinear", builder=_torch_builder("bilinear"), receptive_field=2,
                   summary="Separable linear interpolation.", **_COMMON))
register(ModelSpec(name="bicubic", title="Bicubic", builder=_torch_builder("bicubic"), receptive_field=4,
                   summary="Separable cubic convolution (a = -0.75), the usual SR baseline.", **_COMMON))
_SITK = dict(_COMMON, half=())
register(ModelSpec(name="bspline", title="Cubic B-spline (SimpleITK)", builder=_sitk_builder(sitk.sitkBSpline),
                   receptive_field=16, summary="Cubic B-spline interpolation, as Slicer's resampling offers.",
                   **_SITK))
register(ModelSpec(name="lanczos", title="Lanczos windowed sinc (SimpleITK)",
                   builder=_sitk_builder(sitk.sitkLanczosWindowedSinc), receptive_field=8,
                   summary="Windowed-sinc interpolation (Lanczos window, radius 3).", **_SITK))
