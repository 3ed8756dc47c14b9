"""Check a user's own weight file against a network before a run, without loading or unpickling it.

A .safetensors header lists every tensor's name and shape; comparing it with the state dict of the
network built for the chosen model, preset and scale tells whether the file fits (and which preset
it was trained with) before any work starts, so a mismatch is a one-line message, not a failure
minutes into a run in a worker process.
"""
from __future__ import annotations

import os

from MedSRExtension.core.errors import MedSRError


def tensor_shapes(path: str) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a .safetensors file (reads the header only)."""
    from safetensors import safe_open

    from MedSRExtension.core.validation import check_weights_file
    check_weights_file(path)
    try:
        with safe_open(path, framework="pt") as f:
            return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except Exception as exc:
        raise MedSRError(f"cannot read '{os.path.basename(path)}' as safetensors ({type(exc).__name__}); "
                         "weights must be .safetensors files") from None


def mismatch(expected: dict, found: dict) -> str:
    """'' when the name -> shape maps agree, else how many tensors are missing, unexpected or of another
    shape, naming the first of each (one short line)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(n for n in set(expected) & set(found) if tuple(expected[n]) != tuple(found[n]))
    parts = []
    if missing:
        parts.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        parts.append(f"{len(wrong)} of another shape (e.g. {wrong[0]}: {tuple(found[wrong[0]])} "
                     f"instead of {tuple(expected[wrong[0]])})")
    return ", ".join(parts)


def check_custom_weights(path: str, model: str, scale) -> str:
    """The preset of ``model`` that the file at ``path`` fits at ``scale``; MedSRError when none does.

    Never loads tensor data and never unpickles anything."""
    from MedSRExtension.models.registry import as_pair, build, get_spec
    spec = get_spec(model)
    if spec.kind != "network":
        raise MedSRError(f"'{model}' is a classical method without weights; clear the custom weights or "
                         "choose a network")
    found = tensor_shapes(path)
    closest = None
    for preset in spec.presets:
        expected = {k: tuple(v.shape) for k, v in build(model, preset, as_pair(scale)).state_dict().items()}
        problem = mismatch(expected, found)
        if not problem:
            return preset
        if closest is None or len(problem) < len(closest[1]):
            closest = (preset, problem)
    raise MedSRError(f"'{os.path.basename(path)}' does not fit {model} at x{float(as_pair(scale)[0]):g} "
                     f"({closest[1]} for preset {closest[0]}); choose the model and scale it was trained for")
