"""Warm-start fine-tuning of a shipped per-axis network on one volume's own pairs, within a budget.

Starting from trained weights is what makes minutes enough: the network already knows images; it
only has to learn this volume's slice profile, factor and contrast. L1 loss (the PSNR objective),
Adam with a cosine learning-rate decay over the budget (time or steps, whichever ends first).
Nothing is written to disk: the tuned network lives in memory until the caller saves it.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import torch
import torch.nn as nn

from MedSRExtension.core.errors import Cancelled, MedSRError
from MedSRExtension.adapt.pairs import PairSampler
from MedSRExtension.inference.options import check_adaptable

LEARNING_RATE = 2e-4
PIXELS_PER_BATCH = 24 * 48 * 8  # LR pixels per step: 8 patches of 24 x 48 (more, smaller ones when slabs are thin)


@dataclass
class Budget:
    """Stop after ``minutes`` of wall time or ``steps`` optimiser steps, whichever comes first."""

    minutes: Optional[float] = 3.0
    steps: Optional[int] = None

    def __post_init__(self):
        if self.minutes is None and self.steps is None:
            raise MedSRError("an adaptation budget needs minutes or steps")
        if self.minutes is not None and not (math.isfinite(self.minutes) and self.minutes > 0):
            raise MedSRError(f"adaptation minutes must be a positive number, got {self.minutes}")
        if self.steps is not None and int(self.steps) < 1:
            raise MedSRError(f"adaptation steps must be at least 1, got {self.steps}")

    def fraction(self, step: int, seconds: float) -> float:
        """How much of the budget is spent, 0..1."""
        parts = []
        if self.minutes is not None:
            parts.append(seconds / (60.0 * self.minutes))
        if self.steps is not None:
            parts.append(step / int(self.steps))
        return min(1.0, max(parts))


@dataclass
class FitReport:
    """What a fine-tune did: steps, seconds, the warm-start weights, and the L1 loss per step."""

    steps: int = 0
    seconds: float = 0.0
    start_weights: str = ""
    losses: list = field(default_factory=list)

    def loss_drop(self, window: int = 10) -> tuple[float, float]:
        """Mean loss over the first and the last ``window`` steps."""
        w = max(1, min(window, len(self.losses) // 2 or 1))
        return (sum(self.losses[:w]) / w, sum(self.losses[-w:]) / w)


def warm_start(model: str, scale: tuple[float, float], weights: Union[str, os.PathLike, nn.Module] = "auto",
               preset: Optional[str] = None, thickness: Optional[float] = None) -> tuple[nn.Module, str]:
    """A fresh copy of the network to tune and the name of its starting weights: ``auto`` takes the
    weights the engine's through-plane route reads at this factor (``zoo.route``: thickslice when an
    entry serves it, the one trained nearest the slice ``thickness``), else the architecture's best bicubic file (loaded at this factor even outside
    its trained range: tuning is what adapts it)."""
    from MedSRExtension.models.registry import build
    from MedSRExtension.zoo import weights as zoo

    check_adaptable(model, default=False)
    if isinstance(weights, nn.Module):
        return copy.deepcopy(weights).cpu(), "the given network"
    if weights == "random":
        return build(model, preset or "light", scale), "random (untrained)"
    if weights != "auto":
        return zoo.load_network(model, scale=scale, preset=preset, weights=weights), os.path.basename(str(weights))
    entry = zoo.find_weights(model, scale, preset, thickness=thickness)
    if entry is None:
        entries = [e for e in zoo.list_weights(model) if preset is None or e.get("preset") == preset]
        entries = [e for e in entries if e.get("degradation", "bicubic") == "bicubic"] or entries
        if not entries:
            raise MedSRError(f"no shipped weights for '{model}' to start the adaptation from; train it first")
        entry = max(entries, key=lambda e: zoo.val_psnr(e, 2))
    path = zoo.verify(entry)
    net = build(model, entry.get("preset", "light"), scale)
    zoo.load_into(net, path)
    return net, entry["name"]


def fine_tune(net: nn.Module, sampler: PairSampler, budget: Budget, device: torch.device,
              progress: Optional[Callable[[float], None]] = None, cancel: Optional[Callable[[], bool]] = None,
              lr: float = LEARNING_RATE, report: Optional[FitReport] = None) -> FitReport:
    """Tune ``net`` in place on ``sampler``'s pairs until the budget is spent; returns the report.
    ``progress(fraction)`` after each step; ``cancel()`` before each step raises Cancelled."""
    report = report or FitReport()
    batch = max(4, PIXELS_PER_BATCH // (sampler.rows * sampler.cols))
    net.to(device).eval()  # eval: the networks have no batch norm or dropout, and eval skips training-only heads
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    start = time.perf_counter()
    step = 0
    while True:
        if cancel is not None and cancel():
            raise Cancelled("adaptation cancelled; no output was made and nothing was saved")
        spent = budget.fraction(step, time.perf_counter() - start)
        if spent >= 1.0:
            break
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * spent))
        x, y, scale = sampler.sample(batch)
        x, y = x.to(device), y.to(device)
        with torch.enable_grad():
            out = net(x, scale=scale)
            loss = (out - y).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        step += 1
        report.losses.append(float(loss.detach()))
        if progress is not None:
            progress(budget.fraction(step, time.perf_counter() - start))
    report.steps = step
    report.seconds = time.perf_counter() - start
    return report
