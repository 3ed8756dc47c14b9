"""``medsr train``: train a network on the corpus (see ``MedSRExtension.training``).

Multi-GPU: ``torchrun --nproc_per_node=N -m MedSRExtension train ...`` (each process draws its own
batches; rank 0 writes the files).
"""
from __future__ import annotations

import argparse

from MedSRExtension.core.degradations import KINDS
from MedSRExtension.core.scanner_degradation import NAME as SCANNER
from MedSRExtension.core.errors import MedSRError


def _scales(text: str) -> list[list[float]]:
    """"2" -> [[2, 2]]; "2,3,4" -> three square scales (mixed-scale training); "4x1" -> [[4, 1]]."""
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "x" in part:
                sh, sw = (float(v) for v in part.split("x"))
            else:
                sh = sw = float(part)
        except ValueError:
            raise MedSRError(f"--scale takes numbers like 2, 2,3,4 or 4x1 (rows x cols), got '{text}'") from None
        out.append([sh, sw])
    return out


def _range(text):
    """"0.25,0.7" -> [0.25, 0.7]; None stays None."""
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise MedSRError(f"--thickness takes LO,HI (fractions of the slice spacing), e.g. 0.25,0.7; got '{text}'") from None
    return [lo, hi]


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a network on the corpus (checkpoints, resume, EMA, CSV log)",
                              description="Train a network on the corpus of DESIGN.md; "
                                          "validation on its held-out regions.")
    p.add_argument("--model", required=True, help="network name (medsr models)")
    p.add_argument("--preset", default="light")
    p.add_argument("--scale", default="2", help="2, or 2,3,4 for mixed-scale training of an arbitrary-scale model, "
                   "or 4x1 (rows x cols) for through-plane (thickslice) training")
    p.add_argument("--degradation", default="bicubic", choices=KINDS + (SCANNER,),
                   help="how training LR patches are made (scanner: a random draw of k-space truncation, "
                        "PSF, noise and shading per patch; core/scanner_degradation.py)")
    p.add_argument("--thickness", default=None, metavar="LO,HI",
                   help="thickslice: train on slices LO to HI times as thick as they are spaced, drawn per batch "
                   "(e.g. 0.25,0.7: thin slices with gaps; default: contiguous)")
    p.add_argument("--iters", type=int, default=1000)
    p.add_argument("--out", required=True, help="output folder (checkpoint.pt, log.csv, ema.safetensors, ...)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=32, help="LR patch side in pixels")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--warmup", type=int, default=50, help="iterations of linear learning-rate warm-up")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                   help="autocast to bf16/fp16 on CUDA where the model allows (default on)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: default)")
    p.add_argument("--init", default=None, help="start from these .safetensors weights (e.g. the x2 model for x4)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..training import TrainConfig, train
    cfg = TrainConfig(model=args.model, out=args.out, preset=args.preset, scales=_scales(args.scale),
                      degradation=args.degradation, iters=args.iters, batch=args.batch, patch=args.patch,
                      lr=args.lr, warmup=args.warmup, seed=args.seed, val_every=args.val_every,
                      ckpt_every=args.ckpt_every,
                      device=args.device, amp=args.amp, threads=args.threads, init=args.init,
                      thickness=_range(args.thickness))
    if cfg.ckpt_every % cfg.log_every:
        cfg.log_every = 1
    train(cfg, resume=args.resume, progress=not args.quiet)
    return 0
