"""What the panel offers: models (from the engine's ``list_models``), the scales each supports, and
which controls a mode uses. Pure functions, so the widget stays a thin view of them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from MedSRExtension.core.geometry import MODES  # noqa: F401 (re-exported; numpy only: the panel opens without torch)
from MedSRExtension.evaluation.segmentation_methods import METHODS as SEGMENTATION_METHODS  # noqa: F401 (no scipy)
from MedSRExtension.core.weight_families import FAMILIES  # noqa: F401 (re-exported; dependency-free)

AXES = ("auto", "i", "j", "k")
DEVICES = ("auto", "cpu", "cuda", "mps")
BASELINES = ("bicubic", "bspline", "lanczos", "linear", "nearest")
#: Scales listed for models that accept any real factor (the user may type another one).
ARBITRARY_SCALE_PRESETS = (2.0, 3.0, 4.0)


@dataclass(frozen=True)
class ModelChoice:
    name: str
    title: str
    kind: str                              # "network" or "classical"
    scales: Optional[tuple[float, ...]]    # None: any real factor >= 1
    usable: bool                           # classical, or a network with shipped trained weights
    summary: str = ""

    @property
    def label(self) -> str:
        text = f"{self.title} ({self.name})" if self.title and self.title.lower() != self.name else self.name
        return text if self.usable else f"{text}: no trained weights"


def _weight_scales(entries: Iterable[dict]) -> set[float]:
    found: set[float] = set()
    for entry in entries:
        value = entry.get("scales")
        if value is None:
            continue
        for s in (value if isinstance(value, (list, tuple)) else [value]):
            try:
                found.add(float(s))
            except (TypeError, ValueError):
                continue
    return found


def model_choices(records: Optional[list[dict]] = None) -> list[ModelChoice]:
    """One choice per model of ``records`` (default: ``MedSRExtension.list_models()``), usable ones
    first. A network is usable only with shipped weights, and only at the scales it was trained for."""
    if records is None:
        from MedSRExtension import list_models
        records = list_models()
    out = []
    for r in records:
        kind = r.get("kind", "network")
        weights = r.get("weights") or []
        scales = None if r.get("scales") in (None, "any") else tuple(float(s) for s in r["scales"])
        usable = kind == "classical" or bool(weights)
        if kind == "network" and weights and scales is not None:
            trained = _weight_scales(weights)
            if trained:
                scales = tuple(s for s in scales if s in trained) or scales
        out.append(ModelChoice(r["name"], r.get("title", r["name"]), kind, scales, usable, r.get("summary", "")))
    return sorted(out, key=lambda c: (not c.usable, c.kind != "network"))


def scale_options(choice: ModelChoice) -> tuple[list[float], bool]:
    """(scales to list, whether the user may type another factor)."""
    if choice.scales is None:
        return list(ARBITRARY_SCALE_PRESETS), True
    return list(choice.scales), False


def pick_scale(choice: ModelChoice, wanted: float) -> float:
    """``wanted`` when the model supports it, else its nearest supported scale."""
    if choice.scales is None:
        return float(wanted) if wanted and wanted >= 1 else 2.0
    return min(choice.scales, key=lambda s: (abs(s - wanted), s))


def default_model(choices: list[ModelChoice], scale: float = 2.0) -> str:
    """The engine's default for ``scale`` (the CLI's too: the shipped network with the best validation
    PSNR), when it is among ``choices``; else bicubic (always available)."""
    from MedSRExtension.zoo.catalog import default_model as engine_default
    name = engine_default(scale)
    return name if find(choices, name) is not None else "bicubic"


def find(choices: list[ModelChoice], name: str) -> Optional[ModelChoice]:
    return next((c for c in choices if c.name == name), None)


def axis_applies(mode: str) -> bool:
    """The slicing axis matters to in-plane (not scaled) and through-plane (the scaled axis) modes;
    volumetric mode scales all three axes and picks its own order."""
    return mode in ("inplane", "throughplane")


def effective_axis(mode: str, axis: str) -> str:
    """The axis to pass to the engine: the user's choice where the mode uses it, else 'auto'."""
    return axis if axis_applies(mode) else "auto"


def parse_scale(text: str) -> float:
    """A scale typed by the user ('2', '2.5', '×3', '3x'); raises ValueError with a clear message."""
    cleaned = str(text).strip().lower().replace("×", "").replace("x", "").strip()
    try:
        value = float(cleaned)
    except ValueError:
        raise ValueError(f"scale '{text}' is not a number; type a factor such as 2 or 2.5") from None
    if not value >= 1:
        raise ValueError(f"scale {value:g} is below 1; super-resolution needs a factor of at least 1")
    return value
