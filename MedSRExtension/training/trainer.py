"""The training loop behind ``medsr train``.

Adam with linear warm-up then cosine decay (the learning rate is a pure function of the iteration),
EMA weights, validation PSNR/SSIM on fixed crops of the corpus validation regions, a CSV log,
atomic checkpoints every ``ckpt_every`` iterations and exact resume: a run interrupted and resumed
ends with bit-identical weights to an uninterrupted one (same thread count and device), because the
batches depend only on (seed, iteration, rank) and all optimiser, EMA and RNG state is checkpointed.

Runs on CPU, on CUDA with autocast (bf16, or fp16 with a GradScaler, as the architecture allows)
and on several GPUs under ``torchrun`` (DistributedDataParallel; each rank draws its own batches;
only rank 0 writes files).

Files in ``out``: ``checkpoint.pt`` (resume state), ``log.csv``, ``config.json``, ``summary.json``,
``ema.safetensors`` (the EMA weights at the end) and ``best.safetensors`` (the EMA weights with the
best mean validation PSNR seen).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn

from MedSRExtension.core import atomic
from MedSRExtension.core.errors import MedSRError
from . import checkpoint as ckpt
from . import ddp
from .ema import EMA

CHECKPOINT = "checkpoint.pt"
LOG = "log.csv"


@dataclass
class TrainConfig:
    """Everything that defines a run (saved as config.json; a resume must use the same values)."""

    model: str
    out: str
    preset: str = "light"
    scales: list = field(default_factory=lambda: [[2.0, 2.0]])
    degradation: str = "bicubic"
    iters: int = 1000
    batch: int = 8
    patch: int = 32  # LR patch side
    lr: float = 4e-4
    min_lr: float = 1e-6
    warmup: int = 50
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    val_every: int = 250
    val_crop: int = 96  # HR side of the validation crops used during training
    ckpt_every: int = 100
    log_every: int = 10
    device: str = "auto"
    amp: bool = True
    threads: int = 0  # 0: leave torch's default
    init: Optional[str] = None  # safetensors file to start from (strict=False), e.g. a x2 model for x4

    def model_scale(self) -> tuple[float, float]:
        """The scale the network is built for (the largest requested)."""
        return tuple(max(self.scales, key=lambda s: s[0] * s[1]))


def learning_rate(cfg: TrainConfig, iteration: int) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at ``iters``."""
    if iteration < cfg.warmup:
        return cfg.lr * (iteration + 1) / cfg.warmup
    t = (iteration - cfg.warmup) / max(1, cfg.iters - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _loss_fn(model_name: str) -> Callable:
    """The architecture's training loss (models.losses), as callable(output, hr, lr) -> (total, parts)."""
    from ..models.losses import loss_for
    return loss_for(model_name)


def _sr_of(output):
    return output["sr"] if isinstance(output, dict) else output


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def export_safetensors(module: nn.Module, path: str, metadata: Optional[dict] = None) -> None:
    """Write a module's state dict as safetensors (atomic; contiguous CPU float tensors)."""
    from safetensors.torch import save_file
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    atomic.write_with(path, lambda tmp: save_file(state, tmp, metadata={k: str(v) for k, v in (metadata or {}).items()}))


class Validator:
    """Mean PSNR/SSIM of a network on fixed crops of every validation region (the user's path:
    robust normalisation of the LR input, the network, back to input units; scored in the HR's
    robust window, clipped to [0, 1])."""

    def __init__(self, cfg: TrainConfig):
        from MedSRExtension.evaluation.heldout import validation_set
        self.scale = cfg.model_scale()
        self.items = validation_set(self.scale, cfg.degradation, crop=cfg.val_crop)

    @torch.no_grad()
    def __call__(self, module: nn.Module, device: torch.device, arbitrary: bool) -> tuple[float, float]:
        from MedSRExtension.evaluation.heldout import network_upscale, score
        ps, ss = [], []
        for item in self.items:
            sr = network_upscale(module, item.lr, self.scale, device, arbitrary)
            p, s = score(sr, item.hr)
            ps.append(p)
            ss.append(s)
        return float(np.mean(ps)), float(np.mean(ss))


def _read_config(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _write_json(path: str, obj: dict) -> None:
    atomic.write_text(path, json.dumps(obj, indent=2))


def _truncate_log(path: str, last_iter: int) -> None:
    """Drop log rows written after the checkpoint we resume from (they will be redone)."""
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= last_iter]
    buf = io.StringIO()
    csv.writer(buf).writerows(keep)
    atomic.write_text(path, buf.getvalue())


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          stop_after: Optional[int] = None) -> dict:
    """Train (or resume) the run ``cfg`` describes; returns the summary written to summary.json.

    ``stop_after``: stop (with a checkpoint) after this many iterations of this call, as an
    interruption would; used by the resume test.
    """
    from MedSRExtension.inference.devices import amp_dtype, describe, resolve_device
    from ..models.registry import build, get_spec
    from ..data.patches import PatchSampler

    spec = get_spec(cfg.model)
    if spec.kind != "network":
        raise MedSRError(f"'{cfg.model}' is a classical baseline with nothing to train; pick a network")
    if cfg.iters < 1 or cfg.batch < 1:
        raise MedSRError("--iters and --batch must be at least 1")
    if cfg.ckpt_every % cfg.log_every:
        raise MedSRError("checkpoint interval must be a multiple of the log interval")
    rank, local_rank, world_size = ddp.init("cuda" if cfg.device.startswith("cuda") or
                                            (cfg.device == "auto" and torch.cuda.is_available()) else "cpu")
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world_size > 1:
        device = torch.device(f"cuda:{local_rank}")
        torch.cuda.set_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    main = rank == 0
    os.makedirs(cfg.out, exist_ok=True)
    ckpt_path = os.path.join(cfg.out, CHECKPOINT)
    log_path = os.path.join(cfg.out, LOG)
    cfg_path = os.path.join(cfg.out, "config.json")

    if resume:
        if os.path.exists(cfg_path):
            saved = _read_config(cfg_path)
            # --iters may change on resume (the cosine schedule is then re-fitted to the new length)
            for key in ("model", "preset", "scales", "degradation", "batch", "patch", "lr", "seed"):
                if saved.get(key) != asdict(cfg).get(key):
                    raise MedSRError(f"--resume with a different {key} ({asdict(cfg).get(key)!r}, the run used "
                                     f"{saved.get(key)!r}); use the same settings or a new --out")
    elif os.path.exists(ckpt_path):
        raise MedSRError(f"'{cfg.out}' already holds a training run; add --resume to continue it or pick a new --out")

    seed_everything(cfg.seed)
    model = build(cfg.model, cfg.preset, cfg.model_scale()).to(device)
    if cfg.init:
        from safetensors.torch import load_file
        own = model.state_dict()
        given = {k: v for k, v in load_file(cfg.init).items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(given, strict=False)
        if main:
            print(f"initialised {len(given)}/{len(own)} tensors from {cfg.init} (the rest, e.g. a different "
                  "upsampler, start at random)")
    ema = EMA(model, cfg.ema_decay)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    half = amp_dtype(device, spec.half) if cfg.amp else None
    scaler = torch.amp.GradScaler("cuda") if half == torch.float16 else None
    start, elapsed, best = 0, 0.0, {"val_psnr": -math.inf, "val_ssim": math.nan, "iter": 0}
    if resume and os.path.exists(ckpt_path):
        state = ckpt.load(ckpt_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        ema.load_state_dict(state["ema"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        start, elapsed = int(state["iteration"]), float(state["elapsed"])
        best = dict(state["best"])
        ckpt.set_rng_state(state["rng"])
        if main:
            _truncate_log(log_path, start)
    net = model
    if world_size > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)
    params = count_parameters(model)
    if main:
        _write_json(cfg_path, asdict(cfg))
        print(f"{cfg.model}/{cfg.preset} x{cfg.model_scale()} {cfg.degradation}: {params:,} parameters on "
              f"{describe(device)} x{world_size}; iterations {start}..{cfg.iters}", flush=True)

    sampler = PatchSampler(cfg.patch, [tuple(s) for s in cfg.scales], cfg.degradation, seed=cfg.seed)
    loss_fn = _loss_fn(cfg.model)
    validator = Validator(cfg) if main else None
    arbitrary = spec.arbitrary_scale
    header = None
    window: dict[str, float] = {}
    window_n = 0
    last_val = (math.nan, math.nan)
    bar = None
    if main and progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.iters, initial=start, desc=f"train {cfg.model}", unit="it", dynamic_ncols=True,
                   mininterval=1.0 if sys.stderr.isatty() else 30.0, file=sys.stderr)
    end = cfg.iters if stop_after is None else min(cfg.iters, start + stop_after)
    t_window = time.perf_counter()
    model.train()
    for it in range(start, end):
        lr_now = learning_rate(cfg, it)
        for group in optimizer.param_groups:
            group["lr"] = lr_now
        lr_b, hr_b, scale = sampler.sample(cfg.batch, it, rank)
        lr_b, hr_b = lr_b.to(device, non_blocking=True), hr_b.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=half, enabled=half is not None):
            out = net(lr_b, scale=scale) if arbitrary else net(lr_b)
        out = {k: (v.float() if torch.is_tensor(v) else [t.float() for t in v]) for k, v in out.items()} \
            if isinstance(out, dict) else out.float()
        total, parts = loss_fn(out, hr_b, lr_b)
        if not torch.isfinite(total):
            raise MedSRError(f"training diverged at iteration {it} (loss {float(total)}); lower --lr")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(total).backward()
            scaler.unscale_(optimizer)
        else:
            total.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        ema.update(model)

        window["loss"] = window.get("loss", 0.0) + float(total.detach())
        for k, v in parts.items():
            window[k] = window.get(k, 0.0) + float(v)
        window_n += 1
        done = it + 1
        if bar is not None:
            bar.update(1)
        if done % cfg.log_every == 0 or done == end:
            now = time.perf_counter()
            sec = (now - t_window) / window_n
            elapsed += now - t_window
            if main and (done % cfg.val_every == 0 or done == cfg.iters):
                last_val = validator(ema.shadow, device, arbitrary)
                if last_val[0] > best["val_psnr"]:
                    best = {"val_psnr": last_val[0], "val_ssim": last_val[1], "iter": done}
                    export_safetensors(ema.shadow, os.path.join(cfg.out, "best.safetensors"),
                                       {"model": cfg.model, "preset": cfg.preset, "iter": done})
                ema.shadow.eval()
            if main:
                row = {"iter": done, **{k: v / window_n for k, v in window.items()}, "lr": lr_now,
                       "val_psnr": last_val[0] if done % cfg.val_every == 0 or done == cfg.iters else "",
                       "val_ssim": last_val[1] if done % cfg.val_every == 0 or done == cfg.iters else "",
                       "sec_per_iter": sec}
                if header is None:
                    header = list(row)
                    if not os.path.exists(log_path) or os.path.getsize(log_path) == 0:
                        with open(log_path, "w", newline="") as f:
                            csv.writer(f).writerow(header)
                with open(log_path, "a", newline="") as f:
                    csv.writer(f).writerow([row.get(h, "") for h in header])
                if bar is not None:
                    bar.set_postfix(loss=f"{row['loss']:.4f}", val_psnr=f"{last_val[0]:.2f}", s_it=f"{sec:.2f}")
            window, window_n = {}, 0
            if main and (done % cfg.ckpt_every == 0 or done == end):
                state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "ema": ema.state_dict(),
                         "iteration": done, "elapsed": elapsed, "best": best, "rng": ckpt.rng_state()}
                if scaler is not None:
                    state["scaler"] = scaler.state_dict()
                ckpt.save_atomic(state, ckpt_path)
            t_window = time.perf_counter()
    if bar is not None:
        bar.close()
    finished = end >= cfg.iters
    summary = {"model": cfg.model, "preset": cfg.preset, "scales": cfg.scales, "degradation": cfg.degradation,
               "iterations": end, "finished": finished, "parameters": params, "train_seconds": round(elapsed, 1),
               "sec_per_iter": round(elapsed / max(1, end), 4),
               "hardware": f"{describe(device)} x{world_size} ({platform.processor() or platform.machine()})",
               "best_val_psnr": best["val_psnr"], "best_val_ssim": best["val_ssim"], "best_iter": best["iter"],
               "last_val_psnr": last_val[0], "last_val_ssim": last_val[1]}
    if main:
        if finished:
            export_safetensors(ema.shadow, os.path.join(cfg.out, "ema.safetensors"),
                               {"model": cfg.model, "preset": cfg.preset, "iter": end})
        _write_json(os.path.join(cfg.out, "summary.json"), summary)
        print(f"{end} iterations, {summary['sec_per_iter']} s/iter, best val PSNR {best['val_psnr']:.3f} dB "
              f"at {best['iter']}", flush=True)
    ddp.barrier()
    ddp.shutdown()
    return summary
