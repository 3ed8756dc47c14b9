#!/usr/bin/env python3
"""Publish a training run into the model zoo: weights, sha256, models.json entry, model card, curve.

    python scripts/publish_weights.py runs/edsr-light-x2 [--which best|ema] [--models-dir Resources/Models]
        [--name NAME] [--note "how it was trained"] [--crop 192] [--prior-log OLD_RUN/log.csv]

Copies the run's EMA weights (``best.safetensors``: the EMA weights at the best training-time
validation PSNR; or ``ema.safetensors``: at the end) as ``<name>.safetensors`` (refused over 4 MB),
measures validation PSNR/SSIM of the network and of bicubic on the ``medsr eval`` protocol
(``MedSRExtension/evaluation/heldout.py``) through ``super_resolve``, and writes ``cards/<name>.md`` with the
training curve ``cards/<name>.png`` from the run's ``log.csv``. Every file is written atomically.

A run started with ``--init`` from a shipped file continues that model: its iterations and minutes
add to the shipped entry's (kept as ``stages``; republishing a run replaces its own stage), and
``--prior-log`` prepends the earlier stage's log to the curve.

A ``thickslice`` run (scales (f, 1), e.g. 1.5x1 ... 6x1) publishes a through-plane entry: ``scales``
are its factors f, ``scale_range`` [1, max f] (the engine's through-plane route reads it for those
factors), validation at its whole factors 2..max f on the held-out regions degraded to thick slices
along the rows, against cubic interpolation along that axis (``bicubic`` at (f, 1)); its default
name is ``<model>-<preset>-thickslice-x<min f>-<max f>``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from MedSRExtension.core import atomic  # noqa: E402

MAX_BYTES = 4 * 2**20
TRAINING_DATA = ("MedSR corpus training regions: MNI ICBM152 2009a T1 (nilearn; axial, coronal and sagittal "
                 "slices outside the axial slab k in [80,104)), pydicom-data RG1_UNCI/RG3_UNCI radiographs, "
                 "MR2_UNCI shoulder MR, 693_UNCI head CT, scikit-image retina.jpg (green), and (from 2026-12-07) "
                 "pydicom-data eCT_Supplemental (2 frames), J2K_pixelrep_mismatch, explicit_VR-UN, bad_sequence "
                 "CTs and JPEG2000_UNC whole-body NM - each 2D file without its held-out 20 % "
                 "(MedSRExtension/data/corpus.py); stages of a continued model before that date saw the first six")
LICENCE = ("training data: MNI ICBM152 2009a template (c) McConnell Brain Imaging Centre, free use with notice "
           "(nilearn lists it as 'unknown'); pydicom-data test files (package MIT); retina.jpg CC0 1.0. "
           "Weights: Apache-2.0, as MedSR")


def _atomic_write(path: str, text: str) -> None:
    atomic.write_text(path, text)


def _read_log(run: str) -> list[dict]:
    with open(os.path.join(run, "log.csv"), encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _prior_entry(cfg: dict, index: str) -> dict | None:
    """The shipped entry whose weights file the run started from (``--init``), if any."""
    if not cfg.get("init") or not os.path.exists(index):
        return None
    base = os.path.basename(cfg["init"])
    return next((e for e in json.load(open(index, encoding="utf-8"))["models"] if e["file"] == base), None)


def _stages(prior: dict | None, summary: dict, cfg: dict, hardware: str) -> list[dict]:
    """Every training stage of the model so far: the prior entry's stages plus this run (named by its
    ``--out`` folder, so publishing the same run again replaces its stage instead of adding it twice).
    A run on another degradation than the prior entry's names each stage's degradation."""
    earlier = []
    if prior:
        earlier = prior.get("stages") or [{"iterations": prior["iterations"], "minutes": prior["train_minutes"],
                                           "lr": None, "hardware": prior["hardware"]}]
    run = os.path.normpath(cfg["out"])
    earlier = [st for st in earlier if st.get("run") != run]
    this = {"run": run, "iterations": summary["iterations"], "minutes": round(summary["train_seconds"] / 60, 1),
            "lr": cfg["lr"], "hardware": hardware}
    before = (prior or {}).get("degradation", "bicubic")
    if prior and before != cfg.get("degradation", "bicubic"):
        earlier = [dict(st, degradation=st.get("degradation", before)) for st in earlier]
        this["degradation"] = cfg["degradation"]
    if cfg.get("thickness"):  # a thin-slice stage says the slice thickness it drew (fractions of the spacing)
        this["degradation"] = f"{cfg['degradation']}, thickness {cfg['thickness'][0]:g}-{cfg['thickness'][1]:g}"
    return earlier + [this]


def through_plane_factors(cfg: dict) -> list | None:
    """The factors f of a thickslice run's (f, 1) scales (ints where whole); None for other runs."""
    if cfg.get("degradation") != "thickslice":
        return None
    if any(float(s[1]) != 1.0 for s in cfg["scales"]):
        raise SystemExit(f"a thickslice run trains (f, 1) scales; this one has {cfg['scales']}")
    return sorted({int(s[0]) if float(s[0]).is_integer() else float(s[0]) for s in cfg["scales"]})


def _joined_log(prior_log: str | None, rows: list[dict]) -> list[dict]:
    """The earlier stage's log followed by this run's, iterations counted from the first stage."""
    if not prior_log:
        return rows
    with open(prior_log, encoding="utf-8") as f:
        old = list(csv.DictReader(f))
    offset = int(old[-1]["iter"]) if old else 0
    return old + [dict(r, iter=str(int(r["iter"]) + offset)) for r in rows]


def curve(rows: list[dict], path: str, title: str) -> None:
    """Training loss (log scale) and validation PSNR against the iteration, as a small PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    it = [int(r["iter"]) for r in rows]
    loss = [float(r["loss"]) for r in rows]
    val = [(int(r["iter"]), float(r["val_psnr"])) for r in rows if r.get("val_psnr")]
    fig, ax = plt.subplots(figsize=(5, 2.6))
    ax.semilogy(it, loss, lw=0.8, color="tab:blue")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss", color="tab:blue")
    if val:
        ax2 = ax.twinx()
        ax2.plot(*zip(*val), "o-", ms=3, color="tab:red")
        ax2.set_ylabel("val PSNR (dB)", color="tab:red")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    try:
        atomic.write_with(path, lambda tmp: fig.savefig(tmp, dpi=90))
    finally:
        plt.close(fig)


def measure(model: str, weights: str, scales: list[int], crop: int, through: bool = False,
            thickness: float | None = None, degradation: str = "bicubic") -> dict:
    """{scale: {psnr, ssim, bicubic_psnr, bicubic_ssim}} on the eval protocol (mean over images), the
    LR made by ``degradation`` (bicubic, or the scanner family's fixed validation draws);
    ``through``: at (f, 1) on thick slices (``thickness``: as a fraction of their spacing, default
    contiguous), the baseline cubic along the thick axis."""
    import numpy as np

    from MedSRExtension.evaluation.heldout import psnr_ssim_in_window, upscale_like_users, validation_set
    out = {}
    for s in scales:
        net, bic = [], []
        pair, up = ((float(s), 1.0), (float(s), 1.0)) if through else ((float(s), float(s)), float(s))
        for item in validation_set(pair, "thickslice" if through else degradation, crop=crop, thickness=thickness):
            net.append(psnr_ssim_in_window(upscale_like_users(model, item.lr, up, weights=weights), item.hr))
            bic.append(psnr_ssim_in_window(upscale_like_users("bicubic", item.lr, up), item.hr))
        out[str(s)] = {"psnr": round(float(np.mean([p for p, _ in net])), 3),
                       "ssim": round(float(np.mean([q for _, q in net])), 4),
                       "bicubic_psnr": round(float(np.mean([p for p, _ in bic])), 3),
                       "bicubic_ssim": round(float(np.mean([q for _, q in bic])), 4)}
    return out


THROUGH_TEXT = {  # the card's wording for a thickslice (through-plane) entry
    "serves": lambda e, cfg: (
        f"through-plane passes (f, 1) for f in [{e['scale_range'][0]:g}, {e['scale_range'][1]:g}] (trained on "
        + ", ".join(f"×{s:g}" for s in e["scales"]) + "): the engine reads these weights for every 2D pass that "
        "scales one axis by such an f (`--mode throughplane`), never for in-plane (f, f) passes; degradation "
        "`thickslice` (simulated thick slices: a Gaussian "
        + ("slice profile of FWHM f integrated every f pixels along the rows)" if not cfg.get("thickness") else
           f"slice profile of FWHM t·f every f pixels along the rows, t drawn in [{cfg['thickness'][0]:g}, "
           f"{cfg['thickness'][1]:g}] per batch: thin slices with gaps; the engine reads these weights for runs "
           "whose slice thickness lies nearest that range)")),
    "data": "as thick slices along the rows (the `thickslice` degradation of each HR patch after its flip/rotation, "
            "so the thick axis is always the rows)",
    "baseline": "cubic along the thick axis",
    "lr": "degraded to thick slices along the rows (`thickslice` at (f, 1)), restored by a through-plane (f, 1) pass",
    "limit": lambda e: (
        "Trained on simulated thick slices from the corpus (a Gaussian slice profile of FWHM "
        + (f"t·f with t in [{e['thickness'][0]:g}, {e['thickness'][1]:g}], thin slices with gaps"
           if e.get("thickness") else "f, contiguous slices")
        + ", made from 2D images and MNI slices): real thick-slice acquisitions (other slice profiles, "
        "motion between slices, noise) differ; gains there are not measured by these numbers (the study on "
        "real volumes in the README measures some)."),
}


DEGRADATION_TEXT = {
    "bicubic": "the engine's antialiased bicubic downsampling",
    "scanner": "the scanner family, core/scanner_degradation.py: per patch a random draw of k-space truncation "
               "with or without a Tukey window, or a Gaussian PSF; Gaussian or Rician noise at 0.5-4 % of the "
               "range; smooth shading; validated on the fixed scanner draw of each validation region, against "
               "bicubic interpolation of the same LR",
}
LIMIT_TEXT = {
    "bicubic": "Trained on bicubic-degraded pairs only: real scanner low-resolution images (k-space truncation, thick\n"
               "  slices, noise) differ; gains there are not measured by these numbers (`medsr eval --degradation "
               "scanner`).",
    "scanner": "Trained on simulated scanner degradations: a real scanner's PSF, noise and reconstruction may lie\n"
               "  outside the drawn ranges; on clean bicubic-like data the bicubic family scores higher.",
}


def validation_and_limits(entry: dict) -> str:
    """The card's "Validation" and "Limitations" sections, from the models.json entry alone (so
    ``--refresh-cards`` can rewrite them after a re-measurement without the training run)."""
    from MedSRExtension.data import corpus
    through = entry["degradation"] == "thickslice"
    val_lines = "\n".join(
        f"| ×{s}{'×1' if through else ''} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['bicubic_psnr']:.2f} | "
        f"{v['psnr'] - v['bicubic_psnr']:+.2f} |" for s, v in entry["val"].items())
    baseline = THROUGH_TEXT["baseline"] if through else "bicubic"
    limit = THROUGH_TEXT["limit"](entry) if through else LIMIT_TEXT[entry["degradation"]]
    regions = corpus.__doc__.split("Validation regions", 1)[1].split("\n\n", 1)[1].split("\n\n", 1)[0]
    note = f"\nThese figures were {entry['val_note']}.\n" if entry.get("val_note") else ""
    return f"""## Validation (held-out regions, never trained on)

{regions}

Scored as `medsr eval` does (most structured {entry['eval_crop']}×{entry['eval_crop']} window of each region, PSNR/SSIM in
the HR's robust window, through `super_resolve`){(', each region ' + THROUGH_TEXT['lr']) if through else ''}:

| scale | PSNR (dB) | SSIM | {baseline} PSNR | Δ vs {baseline} |
|---|---|---|---|---|
{val_lines}
{note}
## Limitations

- Trained for minutes to hours on a shared 2-core CPU, on a corpus of at most eleven images (see Data):
  far from converged and far less data than the paper; expect smaller gains than published, and check
  results against the input.
- {limit}
- Intensities are robustly normalised per volume; images with extreme outliers or mostly empty
  background may be normalised differently from training.
- For research use; not a medical device.
"""


def card(entry: dict, summary: dict, cfg: dict, spec, note: str) -> str:
    through = entry["degradation"] == "thickslice"
    serves = THROUGH_TEXT["serves"](entry, cfg) if through else (
        f"{', '.join(f'×{s}' for s in entry['scales'])}"
        + (' (arbitrary-scale network; trained on ' + ', '.join('×' + str(int(s[0])) for s in cfg['scales']) + ')'
           if len(cfg['scales']) > 1 else '')
        + f";\ndegradation `{entry['degradation']}` ({DEGRADATION_TEXT[entry['degradation']]})")
    hours = entry["train_minutes"] / 60
    stages = entry.get("stages", [])
    stage_lines = "" if len(stages) < 2 else "- Stages (each a warm restart from the previous weights): " + "; ".join(
        f"{i + 1}: {st['iterations']} iterations, {st['minutes']:.0f} min"
        + (f", `{st['degradation']}` degradation" if st.get("degradation") else "")
        + (f", peak learning rate {st['lr']:g}" if st.get("lr") else "") + f", {st['hardware']}"
        for i, st in enumerate(stages)) + ".\n"
    return f"""# {entry['name']}

**Architecture:** `{entry['architecture']}` ({spec.title}), preset `{entry['preset']}`
({spec.presets.get(entry['preset'], '')}), {summary['parameters']:,} parameters.
Paper: {spec.paper or '-'}

**Serves{'' if through else ' scales'}:** {serves}.

**Weights:** `{entry['file']}` (EMA of the training weights, {entry['which']}), sha256 `{entry['sha256']}`.

## Training

- Data: {TRAINING_DATA}{(', ' + THROUGH_TEXT['data']) if through else ''}.
- Patches: LR {cfg['patch']}×{cfg['patch']} px, batch {cfg['batch']}, tissue-preferring sampling, 8 flips/rotations,
  each image robustly normalised (0.5/99.5 percentiles) as at inference.
- Optimiser: Adam (β = 0.9, 0.99), learning rate {cfg['lr']:g} with {cfg['warmup']}-iteration warm-up and cosine decay,
  gradient clipping {cfg['grad_clip']}, EMA decay {cfg['ema_decay']}, seed {cfg['seed']}; loss: the architecture's
  training loss (`MedSRExtension/models/losses.py`).
- Iterations: {entry['iterations']} (weights from iteration {entry['weights_iter']});
  training time {entry['train_minutes']:.0f} min ({hours:.2f} h) on {entry['hardware']}.
{stage_lines}{('- ' + note) if note else ''}

![training curve]({os.path.basename(entry['curve'])})

{validation_and_limits(entry)}"""


def refresh_cards(models_dir: str) -> int:
    """Rewrite each shipped card's sections below its training curve from its models.json entry."""
    marker = "## Validation (held-out regions"
    data = json.load(open(os.path.join(models_dir, "models.json"), encoding="utf-8"))
    for entry in data["models"]:
        path = os.path.join(models_dir, entry["card"])
        text = open(path, encoding="utf-8").read()
        if marker not in text:
            raise SystemExit(f"{path} has no '{marker}' section to refresh")
        new = text[:text.index(marker)] + validation_and_limits(entry)
        if new != text:
            _atomic_write(path, new)
            print(f"refreshed {entry['card']}")
    return 0


def refuse_unless_better(cfg: dict, name: str, val: dict, scales: list, args, through: bool,
                         thickness: float | None, degradation: str) -> None:
    """Exit without publishing unless ``val`` beats the shipped weights the run would replace (same name),
    or, for a new name, the default shipped weights of the model on the same protocol and degradation."""
    from MedSRExtension.zoo import weights as zoo
    shipped = os.path.join(args.models_dir, f"{name}.safetensors")
    if not os.path.exists(shipped):
        scale = (float(scales[0]), 1.0) if through else (float(scales[0]), float(scales[0]))
        entry = zoo.find_weights(cfg["model"], scale, cfg["preset"])
        if entry is None:
            return  # nothing shipped to beat
        shipped = entry["path"]
    old = measure(cfg["model"], shipped, scales, args.crop, through=through, thickness=thickness,
                  degradation=degradation)
    worse = [f"x{s}: {val[str(s)]['psnr']:.3f} <= {old[str(s)]['psnr']:.3f} dB" for s in scales
             if val[str(s)]["psnr"] <= old[str(s)]["psnr"]]
    print(f"{name}: run " + ", ".join(f"x{s} {val[str(s)]['psnr']:.3f}" for s in scales) + " dB vs shipped "
          f"{os.path.basename(shipped)} " + ", ".join(f"x{s} {old[str(s)]['psnr']:.3f}" for s in scales) + " dB")
    if worse:
        raise SystemExit(f"not published: the run does not beat {os.path.basename(shipped)} ({'; '.join(worse)})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", help="the training run folder to publish")
    ap.add_argument("--refresh-cards", action="store_true",
                    help="instead of publishing: rewrite every card's Validation and Limitations sections from "
                         "models.json (after a re-measurement such as medsr eval on new validation regions)")
    ap.add_argument("--which", default="best", choices=("best", "ema"))
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "Resources", "Models"))
    ap.add_argument("--name", default=None)
    ap.add_argument("--note", default="")
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--hardware", default="a 2-core CPU shared with other jobs (1 torch thread, nice 10)")
    ap.add_argument("--prior-log", default=None, help="log.csv of the stage this run continues (for the curve)")
    ap.add_argument("--only-if-better", action="store_true",
                    help="publish only if the run beats, at every measured scale, the shipped weights it would "
                         "replace (a new family: the default bicubic weights on this family's degradation)")
    args = ap.parse_args(argv)
    if args.refresh_cards:
        return refresh_cards(args.models_dir)
    if not args.run:
        ap.error("give a training run folder, or --refresh-cards")

    from MedSRExtension.zoo import weights as zoo
    from MedSRExtension.models.registry import get_spec

    cfg = json.load(open(os.path.join(args.run, "config.json"), encoding="utf-8"))
    summary = json.load(open(os.path.join(args.run, "summary.json"), encoding="utf-8"))
    src = os.path.join(args.run, f"{args.which}.safetensors")
    if not os.path.exists(src):
        src = os.path.join(args.run, "ema.safetensors")
    if os.path.getsize(src) > MAX_BYTES:
        raise SystemExit(f"{src} is {os.path.getsize(src) / 2**20:.1f} MB, over the 4 MB limit")
    from safetensors import safe_open
    with safe_open(src, "pt") as f:
        weights_iter = int((f.metadata() or {}).get("iter", summary["iterations"]))
    through = through_plane_factors(cfg)
    spec = get_spec(cfg["model"])
    if through is None:
        scales = sorted({int(s[0]) for s in cfg["scales"]})
        measured = scales
        family = "" if cfg["degradation"] == "bicubic" else f"{cfg['degradation']}-"
        name = args.name or f"{cfg['model']}-{cfg['preset']}-{family}x{'-'.join(str(s) for s in scales)}"
    else:
        if not (spec.per_axis and spec.arbitrary_scale):
            raise SystemExit(f"'{cfg['model']}' cannot run a through-plane (f, 1) pass; only per-axis networks can")
        scales, measured = through, [int(f) for f in through if f >= 2 and float(f).is_integer()]
        if not measured:
            raise SystemExit(f"the run trained no whole factor f >= 2 to validate at (scales {cfg['scales']})")
        kind = "thickslice-gap" if cfg.get("thickness") and max(cfg["thickness"]) < 1 else "thickslice"
        name = args.name or f"{cfg['model']}-{cfg['preset']}-{kind}-x{min(through):g}-{max(through):g}"
    os.makedirs(os.path.join(args.models_dir, "cards"), exist_ok=True)
    dst = os.path.join(args.models_dir, f"{name}.safetensors")
    # measure from the run's file first: a file that does not fit the current architecture never
    # reaches the models folder
    thickness = cfg.get("thickness")
    val_thickness = None if not thickness else 0.5 * (thickness[0] + thickness[1])
    degradation = "thickslice" if through is not None else cfg["degradation"]
    val = measure(cfg["model"], src, measured, args.crop, through=through is not None, thickness=val_thickness,
                  degradation=degradation)
    if args.only_if_better:
        refuse_unless_better(cfg, name, val, measured, args, through is not None, val_thickness, degradation)
    index = os.path.join(args.models_dir, "models.json")
    prior = _prior_entry(cfg, index)
    stages = _stages(prior, summary, cfg, args.hardware)
    before = sum(st["iterations"] for st in stages[:-1])
    first = val[str(measured[0])]
    atomic.copy_file(src, dst)
    entry = {"name": name, "file": os.path.basename(dst), "sha256": zoo.sha256(dst),
             "architecture": cfg["model"], "preset": cfg["preset"], "scales": scales,
             "degradation": cfg["degradation"], "training_data": TRAINING_DATA,
             "iterations": before + summary["iterations"], "weights_iter": before + weights_iter,
             "train_minutes": round(sum(st["minutes"] for st in stages), 1),
             "hardware": "; then ".join(dict.fromkeys(st["hardware"] for st in stages)), "stages": stages,
             "val_psnr": first["psnr"], "val_ssim": first["ssim"], "val": val, "eval_crop": args.crop,
             "licence": LICENCE, "card": f"cards/{name}.md", "curve": f"cards/{name}.png",
             "which": "the EMA weights at the best training-time validation PSNR" if "best" in src
             else "the EMA weights at the end of training"}
    if spec.arbitrary_scale:
        entry["scale_range"] = [1.0, float(max(scales))]
    if thickness:  # the slice thickness range (fractions of the spacing) it serves best; validated at its middle
        entry["thickness"], entry["val_thickness"] = [float(t) for t in thickness], val_thickness
    curve(_joined_log(args.prior_log, _read_log(args.run)), os.path.join(args.models_dir, entry["curve"]),
          f"{name}: loss and validation PSNR")
    _atomic_write(os.path.join(args.models_dir, entry["card"]), card(entry, summary, cfg, spec, args.note))
    data = json.load(open(index, encoding="utf-8")) if os.path.exists(index) else {"models": []}
    data["models"] = [e for e in data["models"] if e["name"] != name] + [entry]
    data["models"].sort(key=lambda e: e["name"])
    _atomic_write(index, json.dumps(data, indent=2) + "\n")
    print(f"published {name}: " + ", ".join(f"x{s}{'x1' if through else ''} {v['psnr']:.2f} dB "
                                            f"({'cubic' if through else 'bicubic'} {v['bicubic_psnr']:.2f})"
                                            for s, v in val.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
