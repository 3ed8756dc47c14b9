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

from MedSRExtension.zoo.safetensors_io import export_safetensors
from MedSRExtension.core import atomic
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.models.descriptor import ModelDescriptor
from MedSRExtension.models.registry import ModelSpec
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
    thickness: Optional[list] = None  # thickslice: [lo, hi] slice thickness / spacing, drawn per batch

    def val_thickness(self) -> Optional[float]:
        """The thickness (fraction of the spacing) validation uses: the middle of the training range."""
        return None if self.thickness is None else 0.5 * (float(self.thickness[0]) + float(self.thickness[1]))

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


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class Validator:
    """Mean PSNR/SSIM of a network on fixed crops of every validation region (the user's path:
    robust normalisation of the LR input, the network, back to input units; scored in the HR's
    robust window, clipped to [0, 1])."""

    def __init__(self, cfg: TrainConfig):
        from MedSRExtension.evaluation.heldout import validation_set
        self.scale = cfg.model_scale()
        self.items = validation_set(self.scale, cfg.degradation, crop=cfg.val_crop, thickness=cfg.val_thickness())

    @torch.no_grad()
    def __call__(self, model: ModelDescriptor, device: torch.device) -> tuple[float, float]:
        from MedSRExtension.evaluation.heldout import network_upscale, psnr_ssim_in_window
        ps, ss = [], []
        for item in self.items:
            sr = network_upscale(model, item.lr, self.scale, device)
            p, s = psnr_ssim_in_window(sr, item.hr)
            ps.append(p)
            ss.append(s)
        return float(np.mean(ps)), float(np.mean(ss))


def _read_config(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _write_json(path: str, obj: dict) -> None:
    atomic.write_text(path, json.dumps(obj, indent=2))


def _truncate_log(path: str, last_iter: int) -> None:
    """Drop log rows written after the checkpoint we resume from (they will be redone)."""
    if not os.path.exists(path):
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= last_iter]
    buf = io.StringIO()
    csv.writer(buf).writerows(keep)
    atomic.write_text(path, buf.getvalue())


# --- the pieces of a run ------------------------------------------------------------------------

def check_config(cfg: TrainConfig) -> ModelSpec:
    """The spec of the network ``cfg`` trains; a clear error for settings no run can use."""
    from ..models.registry import get_spec
    spec = get_spec(cfg.model)
    if spec.kind != "network":
        raise MedSRError(f"'{cfg.model}' is a classical baseline with nothing to train; pick a network")
    if cfg.iters < 1 or cfg.batch < 1:
        raise MedSRError("--iters and --batch must be at least 1")
    if cfg.ckpt_every % cfg.log_every:
        raise MedSRError("checkpoint interval must be a multiple of the log interval")
    from ..data.patches import check_thickness_range
    check_thickness_range(cfg.thickness, cfg.degradation)
    return spec


def check_resume(cfg: TrainConfig, resume: bool) -> None:
    """Refuse to start over an existing run, or to resume one with different settings (--iters may
    change: the cosine schedule is then re-fitted to the new length)."""
    cfg_path = os.path.join(cfg.out, "config.json")
    if resume:
        if os.path.exists(cfg_path):
            saved = _read_config(cfg_path)
            for key in ("model", "preset", "scales", "degradation", "batch", "patch", "lr", "seed", "thickness"):
                if saved.get(key) != asdict(cfg).get(key):
                    raise MedSRError(f"--resume with a different {key} ({asdict(cfg).get(key)!r}, the run used "
                                     f"{saved.get(key)!r}); use the same settings or a new --out")
    elif os.path.exists(os.path.join(cfg.out, CHECKPOINT)):
        raise MedSRError(f"'{cfg.out}' already holds a training run; add --resume to continue it or pick a new --out")


def setup_device(cfg: TrainConfig) -> tuple[int, int, int, torch.device]:
    """(rank, local_rank, world_size, device): joins the torchrun process group when there is one."""
    from MedSRExtension.inference.devices import resolve_device
    wants_cuda = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
    rank, local_rank, world_size = ddp.init("cuda" if wants_cuda else "cpu")
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world_size > 1:
        device = torch.device(f"cuda:{local_rank}")
        torch.cuda.set_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return rank, local_rank, world_size, device


def load_init(model: nn.Module, path: str) -> tuple[int, int]:
    """Load the tensors of ``path`` that fit ``model`` (name and shape); returns (loaded, total)."""
    from safetensors.torch import load_file
    own = model.state_dict()
    given = {k: v for k, v in load_file(path).items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(given, strict=False)
    return len(given), len(own)


@dataclass
class TrainState:
    """Everything a checkpoint holds: weights, optimiser, EMA, grad scaler, progress and the best result."""

    model: nn.Module
    ema: EMA
    optimizer: torch.optim.Optimizer
    scaler: Optional[torch.amp.GradScaler]
    iteration: int = 0
    elapsed: float = 0.0
    best: dict = field(default_factory=lambda: {"val_psnr": -math.inf, "val_ssim": math.nan, "iter": 0})

    def checkpoint(self) -> dict:
        """The resume state, RNG included."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "ema": self.ema.state_dict(), "iteration": self.iteration, "elapsed": self.elapsed,
                 "best": self.best, "rng": ckpt.rng_state()}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def restore(self, state: dict) -> None:
        """Continue from a ``checkpoint()`` (RNG included)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.ema.load_state_dict(state["ema"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.iteration, self.elapsed = int(state["iteration"]), float(state["elapsed"])
        self.best = dict(state["best"])
        ckpt.set_rng_state(state["rng"])


def new_state(cfg: TrainConfig, device: torch.device, half: Optional[torch.dtype]) -> TrainState:
    """A fresh, seeded model (optionally initialised from ``cfg.init``) with its EMA and optimiser."""
    from ..models.registry import build
    seed_everything(cfg.seed)
    model = build(cfg.model, cfg.preset, cfg.model_scale()).to(device)
    if cfg.init:
        loaded, total = load_init(model, cfg.init)
        if ddp.is_main():
            print(f"initialised {loaded}/{total} tensors from {cfg.init} (the rest, e.g. a different "
                  "upsampler, start at random)")
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if half == torch.float16 else None
    return TrainState(model, EMA(model, cfg.ema_decay), optimizer, scaler)


def _as_float(output):
    """Outputs in float32 for the loss (autocast may give half precision)."""
    if isinstance(output, dict):
        return {k: (v.float() if torch.is_tensor(v) else [t.float() for t in v]) for k, v in output.items()}
    return output.float()


def train_step(net: ModelDescriptor, state: TrainState, loss_fn: Callable, lr_b: torch.Tensor, hr_b: torch.Tensor,
               scale, cfg: TrainConfig, half: Optional[torch.dtype], iteration: int) -> tuple[float, dict]:
    """One optimiser step on a batch (autocast, gradient scaling, clipping, EMA); returns (loss, parts)."""
    device = lr_b.device
    with torch.autocast(device.type, dtype=half, enabled=half is not None):
        out = net.outputs(lr_b, scale)
    total, parts = loss_fn(_as_float(out), hr_b, lr_b)
    if not torch.isfinite(total):
        raise MedSRError(f"training diverged at iteration {iteration} (loss {float(total)}); lower --lr")
    opt, scaler = state.optimizer, state.scaler
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(total).backward()
        scaler.unscale_(opt)
    else:
        total.backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    state.ema.update(state.model)
    return float(total.detach()), {k: float(v) for k, v in parts.items()}


class LossWindow:
    """Running sums of the loss and its parts between two log rows."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.n = 0

    def add(self, loss: float, parts: dict) -> None:
        for k, v in {"loss": loss, **parts}.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1

    def means(self) -> dict:
        return {k: v / self.n for k, v in self.sums.items()}


class CsvLog:
    """log.csv: the header comes from the first row (written once, also across resumes), then one row per call."""

    def __init__(self, path: str):
        self.path = path
        self.header: Optional[list] = None

    def write(self, row: dict) -> None:
        if self.header is None:
            self.header = list(row)
            if not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
                with open(self.path, "w", newline="", encoding="utf-8") as f:
                    csv.writer(f).writerow(self.header)
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow([row.get(h, "") for h in self.header])


def _progress_bar(cfg: TrainConfig, start: int):
    from tqdm import tqdm
    return tqdm(total=cfg.iters, initial=start, desc=f"train {cfg.model}", unit="it", dynamic_ncols=True,
                mininterval=1.0 if sys.stderr.isatty() else 30.0, file=sys.stderr)


def _summary(cfg: TrainConfig, state: TrainState, end: int, params: int, hardware: str,
             last_val: tuple[float, float]) -> dict:
    best = state.best
    return {"model": cfg.model, "preset": cfg.preset, "scales": cfg.scales, "degradation": cfg.degradation,
            "thickness": cfg.thickness,
            "iterations": end, "finished": end >= cfg.iters, "parameters": params,
            "train_seconds": round(state.elapsed, 1), "sec_per_iter": round(state.elapsed / max(1, end), 4),
            "hardware": hardware, "best_val_psnr": best["val_psnr"], "best_val_ssim": best["val_ssim"],
            "best_iter": best["iter"], "last_val_psnr": last_val[0], "last_val_ssim": last_val[1]}


# --- the loop ------------------------------------------------------------------------------------

@dataclass
class _Run:
    """One call of ``train``: its settings, where it runs, its state and the loop's tools."""

    cfg: TrainConfig
    spec: ModelSpec
    rank: int
    world_size: int
    device: torch.device
    half: Optional[torch.dtype]
    state: TrainState
    params: int
    ckpt_path: str
    sampler: object = None
    loss_fn: Optional[Callable] = None
    caller: Optional[ModelDescriptor] = None
    validator: Optional[Validator] = None
    log: Optional[CsvLog] = None
    bar: object = None

    @property
    def main(self) -> bool:
        """Rank 0: the one process that validates and writes files."""
        return self.rank == 0


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          stop_after: Optional[int] = None) -> dict:
    """Train (or resume) the run ``cfg`` describes; returns the summary written to summary.json.

    Args:
        cfg: the run's settings (saved as config.json).
        resume: continue the run in ``cfg.out`` from its checkpoint (the settings must match).
        progress: show a progress bar on stderr (rank 0).
        stop_after: stop (with a checkpoint) after this many iterations of this call, as an
            interruption would; used by the resume test.
    """
    from MedSRExtension.inference.devices import describe

    run, net = _start_run(cfg, resume)
    start = run.state.iteration
    _add_loop_tools(run, net, progress, start)
    end = cfg.iters if stop_after is None else min(cfg.iters, start + stop_after)
    last_val = _iterate(run, start, end)
    if run.bar is not None:
        run.bar.close()
    hardware = f"{describe(run.device)} x{run.world_size} ({platform.processor() or platform.machine()})"
    summary = _summary(cfg, run.state, end, run.params, hardware, last_val)
    if run.main:
        _finish(cfg, run.state, end, summary)
    ddp.barrier()
    ddp.shutdown()
    return summary


def _start_run(cfg: TrainConfig, resume: bool) -> tuple[_Run, nn.Module]:
    """Check the settings, set up the device, restore a checkpoint when resuming, write config.json and
    say what runs; returns the run and the network to train (DDP-wrapped on several ranks)."""
    from MedSRExtension.inference.devices import amp_dtype, describe

    spec = check_config(cfg)
    rank, local_rank, world_size, device = setup_device(cfg)
    os.makedirs(cfg.out, exist_ok=True)
    check_resume(cfg, resume)
    half = amp_dtype(device, spec.half) if cfg.amp else None
    state = new_state(cfg, device, half)
    ckpt_path, log_path = os.path.join(cfg.out, CHECKPOINT), os.path.join(cfg.out, LOG)
    if resume and os.path.exists(ckpt_path):
        state.restore(ckpt.load(ckpt_path))
        if rank == 0:
            _truncate_log(log_path, state.iteration)
    model = state.model
    net = model if world_size == 1 else nn.parallel.DistributedDataParallel(
        model, device_ids=[local_rank] if device.type == "cuda" else None)
    run = _Run(cfg, spec, rank, world_size, device, half, state, count_parameters(model), ckpt_path,
               log=CsvLog(log_path))
    if run.main:
        _write_json(os.path.join(cfg.out, "config.json"), asdict(cfg))
        print(f"{cfg.model}/{cfg.preset} x{cfg.model_scale()} {cfg.degradation}: {run.params:,} parameters on "
              f"{describe(device)} x{world_size}; iterations {state.iteration}..{cfg.iters}", flush=True)
    return run, net


def _add_loop_tools(run: _Run, net: nn.Module, progress: bool, start: int) -> None:
    """The patch sampler, loss, model caller, validator (rank 0) and progress bar of the loop."""
    from ..data.patches import PatchSampler

    cfg = run.cfg
    run.sampler = PatchSampler(cfg.patch, [tuple(s) for s in cfg.scales], cfg.degradation, seed=cfg.seed,
                               thickness=cfg.thickness)
    run.loss_fn, run.caller = _loss_fn(cfg.model), ModelDescriptor(run.spec, net)
    run.validator = Validator(cfg) if run.main else None
    run.bar = _progress_bar(cfg, start) if run.main and progress else None


def _iterate(run: _Run, start: int, end: int) -> tuple[float, float]:
    """Iterations ``start`` to ``end``, a log row (and validation, checkpoint as due) after each window
    of ``log_every``; returns the last validation (PSNR, SSIM)."""
    cfg, state = run.cfg, run.state
    window, last_val = LossWindow(), (math.nan, math.nan)
    t_window = time.perf_counter()
    state.model.train()
    for it in range(start, end):
        lr_now = _train_iteration(run, window, it)
        done = it + 1
        if run.bar is not None:
            run.bar.update(1)
        if done % cfg.log_every and done != end:
            continue
        now = time.perf_counter()
        sec, state.elapsed = (now - t_window) / window.n, state.elapsed + now - t_window
        last_val = _close_window(run, window, done, end, lr_now, sec, last_val)
        window = LossWindow()
        t_window = time.perf_counter()
    return last_val


def _train_iteration(run: _Run, window: LossWindow, it: int) -> float:
    """One optimiser step at iteration ``it`` (its losses added to ``window``); returns its learning rate."""
    cfg, state = run.cfg, run.state
    lr_now = learning_rate(cfg, it)
    for group in state.optimizer.param_groups:
        group["lr"] = lr_now
    lr_b, hr_b, scale = run.sampler.sample(cfg.batch, it, run.rank)
    lr_b, hr_b = lr_b.to(run.device, non_blocking=True), hr_b.to(run.device, non_blocking=True)
    window.add(*train_step(run.caller, state, run.loss_fn, lr_b, hr_b, scale, cfg, run.half, it))
    return lr_now


def _close_window(run: _Run, window: LossWindow, done: int, end: int, lr_now: float, sec: float,
                  last_val: tuple[float, float]) -> tuple[float, float]:
    """After ``done`` iterations: validate when due, write the log row, checkpoint when due; returns the
    latest validation."""
    cfg, state = run.cfg, run.state
    validated = done % cfg.val_every == 0 or done == cfg.iters
    if run.main and validated:
        last_val = _validate(run.validator, run.spec, state, run.device, cfg, done)
    if run.main:
        row = {"iter": done, **window.means(), "lr": lr_now, "val_psnr": last_val[0] if validated else "",
               "val_ssim": last_val[1] if validated else "", "sec_per_iter": sec}
        run.log.write(row)
        if run.bar is not None:
            run.bar.set_postfix(loss=f"{row['loss']:.4f}", val_psnr=f"{last_val[0]:.2f}", s_it=f"{sec:.2f}")
    state.iteration = done
    if run.main and (done % cfg.ckpt_every == 0 or done == end):
        ckpt.save_atomic(state.checkpoint(), run.ckpt_path)
    return last_val


def _validate(validator: Validator, spec: ModelSpec, state: TrainState, device: torch.device, cfg: TrainConfig,
              done: int) -> tuple[float, float]:
    """Validate the EMA weights; keep them as best.safetensors when they beat the best so far."""
    result = validator(ModelDescriptor(spec, state.ema.shadow), device)
    if result[0] > state.best["val_psnr"]:
        state.best = {"val_psnr": result[0], "val_ssim": result[1], "iter": done}
        export_safetensors(state.ema.shadow, os.path.join(cfg.out, "best.safetensors"),
                           {"model": cfg.model, "preset": cfg.preset, "iter": done})
    state.ema.shadow.eval()
    return result


def _finish(cfg: TrainConfig, state: TrainState, end: int, summary: dict) -> None:
    """ema.safetensors (a finished run only) and summary.json, then the closing line."""
    if summary["finished"]:
        export_safetensors(state.ema.shadow, os.path.join(cfg.out, "ema.safetensors"),
                           {"model": cfg.model, "preset": cfg.preset, "iter": end})
    _write_json(os.path.join(cfg.out, "summary.json"), summary)
    print(f"{end} iterations, {summary['sec_per_iter']} s/iter, best val PSNR {state.best['val_psnr']:.3f} dB "
          f"at {state.best['iter']}", flush=True)
