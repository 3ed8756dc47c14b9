"""Training losses for the SR networks, and ``loss_for(name)`` that picks the right one per model.

Every loss maps (prediction, target) tensors of shape (N, C, H, W) to a scalar. The model-level losses
take the raw training-mode output of a network (a tensor, or the dict that ICONet / PFMDN return in
training mode), the HR target and the LR input, and return ``(total, parts)`` where ``parts`` maps
a short name to a float for logging.

- ``l1_loss``: mean absolute error, the SR default (EDSR, LGSR).
- ``gradient_map`` / ``gradient_loss``: L1 between gradient-magnitude maps (SPSR's gradient loss).
- ``contextual_loss``: the contextual loss of Mechrez et al. (ECCV 2018) on feature vectors, with the
  number of vectors capped at ``max_samples`` so its K×K similarity matrix stays small on any image.
- ``ICONetLoss``: multi-stage SR supervision plus reconstruction supervision (see its docstring).
- ``PFMDNLoss``: L1 on the SR image + contextual loss + L1 of the gradient branch vs the HR gradient map.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.models.descriptor import Output, sr_of

LossFn = Callable[[Output, torch.Tensor, torch.Tensor], "tuple[torch.Tensor, dict[str, float]]"]


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    _check_same_shape(pred, target)
    return (pred - target).abs().mean()


def gradient_map(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Gradient magnitude of each channel of ``x`` (N, C, H, W), same shape and dtype.

    Central differences halved (a per-pixel derivative estimate) with replicate padding, so the image
    border shows no artificial edge. Magnitude m²/sqrt(m² + eps) with m² = gx² + gy²: within 1e-5 of
    |∇x| for slopes above 0.01, exactly 0 on flat regions, and differentiable everywhere (including
    at 0, where sqrt is not). Computed in float32. Local: each value depends on a 3×3 neighbourhood.
    """
    xp = F.pad(x.float(), (1, 1, 1, 1), mode="replicate")
    gx = (xp[..., 1:-1, 2:] - xp[..., 1:-1, :-2]) * 0.5
    gy = (xp[..., 2:, 1:-1] - xp[..., :-2, 1:-1]) * 0.5
    m2 = gx * gx + gy * gy
    return (m2 / torch.sqrt(m2 + eps)).to(x.dtype)


def gradient_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 distance between the gradient maps of ``pred`` and ``target`` (edge sharpness and placement)."""
    _check_same_shape(pred, target)
    return (gradient_map(pred) - gradient_map(target)).abs().mean()


def _sample_vectors(x: torch.Tensor, y: torch.Tensor, max_samples: int, patch: int,
                    generator: Optional[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature vectors (N, D, K) of ``x`` and ``y`` at the same K <= max_samples random positions.

    With ``patch`` > 1 the vector at a position is the patch×patch neighbourhood of all channels
    (zero-padded), gathered only at the sampled positions so memory stays O(K·D).
    """
    n, c, h, w = x.shape
    total = h * w
    k = min(total, int(max_samples))
    if k < total:
        idx = torch.randperm(total, generator=generator, device="cpu")[:k].to(x.device)
    else:
        idx = torch.arange(total, device=x.device)
    if patch <= 1:
        return x.reshape(n, c, total)[:, :, idx], y.reshape(n, c, total)[:, :, idx]
    r = patch // 2
    rows = (idx // w)[:, None] + torch.arange(patch, device=x.device)[None, :]  # padded coordinates
    cols = (idx % w)[:, None] + torch.arange(patch, device=x.device)[None, :]
    flat = (rows[:, :, None] * (w + 2 * r) + cols[:, None, :]).reshape(k, patch * patch)

    def gather(t: torch.Tensor) -> torch.Tensor:
        tp = F.pad(t, (r, r, r, r)).reshape(n, c, -1)
        v = tp[:, :, flat.reshape(-1)].reshape(n, c, k, patch * patch)
        return v.permute(0, 1, 3, 2).reshape(n, c * patch * patch, k)

    return gather(x), gather(y)


def contextual_loss(x: torch.Tensor, y: torch.Tensor, h: float = 0.5, max_samples: int = 1024,
                    patch: int = 1, eps: float = 1e-5, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Contextual loss (Mechrez, Talmi, Zelnik-Manor, ECCV 2018) between feature maps ``x`` and ``y``.

    Feature vectors x_i, y_j (at most ``max_samples`` each, the same random positions in both; with
    ``patch`` > 1 each vector is a patch×patch neighbourhood) are centred on the mean of the y_j;
    d_ij = 1 − cos(x_i, y_j); relative distance d̃_ij = d_ij / (min_k d_ik + eps); affinity
    CX_ij = softmax_j((1 − d̃_ij) / h) (i.e. exp(...)/Σ_k exp(...), normalised per x_i); similarity
    CX = mean_j max_i CX_ij; loss = −log(CX), averaged over the batch. Use ``patch`` > 1 on images with
    few channels: a 1-channel value has no direction, so its cosine distances are degenerate. It compares
    the *distributions*
    of features, not their positions, so it is tolerant to sub-pixel misalignment. Memory is
    O(N·K²) for K = min(H·W, max_samples).
    """
    _check_same_shape(x, y)
    if max_samples < 1 or h <= 0:
        raise ValueError("contextual_loss needs max_samples >= 1 and bandwidth h > 0")
    with torch.autocast(device_type=x.device.type, enabled=False):  # distances near 0 matter: float32
        xs, ys = _sample_vectors(x.float(), y.float(), max_samples, patch, generator)
        mu = ys.mean(dim=2, keepdim=True)
        xn = F.normalize(xs - mu, dim=1, eps=1e-8)
        yn = F.normalize(ys - mu, dim=1, eps=1e-8)
        dist = (1.0 - torch.einsum("ndi,ndj->nij", xn, yn)).clamp_min(0.0)  # (N, Kx, Ky)
        rel = dist / (dist.min(dim=2, keepdim=True).values + eps)
        cx = torch.softmax((1.0 - rel) / h, dim=2)
        similarity = cx.max(dim=1).values.mean(dim=1)  # (N,)
        return -torch.log(similarity.clamp_min(1e-12)).mean()


def _check_same_shape(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise MedSRError(f"loss inputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}; "
                         "crop the HR target to the SR output size")


def resize_target(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The clean target at ``size``: ``img`` itself when it already has that size, else area averaging.

    Area averaging (an s×s box mean for integer ratios, adaptive box means otherwise) is the
    degradation-free downsampling used for intermediate SR targets and reconstruction targets.
    """
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    return F.interpolate(img, size=tuple(size), mode="area")


def L1Loss() -> LossFn:
    """Plain L1 on the SR image; accepts a tensor or a training dict with key ``sr``."""
    def fn(output: Output, hr: torch.Tensor, lr: torch.Tensor):
        loss = l1_loss(sr_of(output), hr)
        return loss, {"l1": float(loss.detach())}
    return fn


class ICONetLoss:
    """ICONet's multi-stage loss with reconstruction supervision.

    For training output {"sr", "stages_sr": [S_1..S_T], "stages_rec": [R_1..R_T]} of a ×2^T model:

        total = Σ_t  L1(S_t, down(HR, size(S_t)))  +  λ_rec · L1(R_t, down(HR, size(R_t)))

    where ``down`` is area averaging (``resize_target``). S_t is the SR output of stage t (×2^t of the LR
    size), so S_T is compared with HR itself and, for ×4, S_1 with HR averaged 2×2. R_t is stage t's
    reconstruction, an artifact-free image at that stage's *input* resolution (LR for t = 1, ×2^(t−1)
    for later stages), so its target is the clean image at that size: HR averaged 2^(T−t+1)× — i.e. the
    clean LR for stage 1, never the degraded LR input itself. Every stage is weighted equally (the paper
    supervises every stage; its weights are not public), λ_rec = 1 by default. A plain tensor output
    (eval mode) falls back to L1 on the final SR.
    """

    def __init__(self, rec_weight: float = 1.0, stage_weight: float = 1.0):
        self.rec_weight = rec_weight
        self.stage_weight = stage_weight

    def __call__(self, output: Output, hr: torch.Tensor, lr: torch.Tensor):
        if not isinstance(output, dict):
            return L1Loss()(output, hr, lr)
        parts: dict[str, float] = {}
        total = hr.new_zeros(())
        stages_sr, stages_rec = output["stages_sr"], output["stages_rec"]
        last = len(stages_sr)
        for t, (s, r) in enumerate(zip(stages_sr, stages_rec), start=1):
            w = 1.0 if t == last else self.stage_weight
            l_sr = l1_loss(s, resize_target(hr, s.shape[-2:]))
            l_rec = l1_loss(r, resize_target(hr, r.shape[-2:]))
            total = total + w * l_sr + self.rec_weight * l_rec
            parts[f"sr{t}"] = float(l_sr.detach())
            parts[f"rec{t}"] = float(l_rec.detach())
        parts["total"] = float(total.detach())
        return total, parts


class PFMDNLoss:
    """PFMDN's combined loss: L1(SR, HR) + λ_cx · CX(SR, HR) + λ_grad · L1(G, ∇HR).

    G is the gradient branch's output (training mode key ``grad``), ∇HR the gradient map of the HR
    target (``gradient_map``). The contextual loss (CX) runs on 5×5 intensity patches of the SR and HR
    images sampled at ``max_samples`` shared random positions: the paper computes it on deep features,
    but pretrained VGG weights cannot be shipped or downloaded here, and on single-channel medical
    images raw patches are a faithful, weight-free feature space. Weights λ_cx = 0.01, λ_grad = 0.5 are
    our choice (the paper's are not public): CX values are O(1) while L1 is O(0.01), so a small λ_cx
    keeps the PSNR-oriented L1 dominant and CX as a texture regulariser.
    """

    def __init__(self, cx_weight: float = 0.01, grad_weight: float = 0.5, h: float = 0.5,
                 max_samples: int = 1024, patch: int = 5):
        self.cx_weight, self.grad_weight = cx_weight, grad_weight
        self.h, self.max_samples, self.patch = h, max_samples, patch

    def __call__(self, output: Output, hr: torch.Tensor, lr: torch.Tensor):
        sr = sr_of(output)
        l1 = l1_loss(sr, hr)
        cx = contextual_loss(sr, hr, h=self.h, max_samples=self.max_samples, patch=self.patch)
        total = l1 + self.cx_weight * cx
        parts = {"l1": float(l1.detach()), "contextual": float(cx.detach())}
        if isinstance(output, dict) and output.get("grad") is not None:
            lg = l1_loss(output["grad"], gradient_map(hr))
            total = total + self.grad_weight * lg
            parts["gradient"] = float(lg.detach())
        parts["total"] = float(total.detach())
        return total, parts


def loss_for(model_name: str) -> LossFn:
    """The training loss of a registered model: ``fn(output, hr, lr) -> (total, parts)``.

    ``iconet`` -> ``ICONetLoss``; ``pfmdn`` -> ``PFMDNLoss``; every other model (``edsr``, ``lgsr``, ...) ->
    L1 on the SR image. Unknown names raise MedSRError listing the known models.
    """
    from .registry import get_spec

    spec = get_spec(model_name)
    if spec.kind != "network":
        raise MedSRError(f"model '{model_name}' is a classical interpolator with nothing to train; "
                         "choose a network model")
    if model_name == "iconet":
        return ICONetLoss()
    if model_name == "pfmdn":
        return PFMDNLoss()
    return L1Loss()
