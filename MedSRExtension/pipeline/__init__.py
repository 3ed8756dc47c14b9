"""The pipeline: what one super-resolution run does around the engine's passes, the one entry point
of the CLI, the batch tasks, the worker process (Slicer, web) and the Python API.

``run_pipeline(volume, options)``: mode "auto" decided from the geometry; adaptation to the volume
(``adapt``) when asked; the engine (``inference.run_inference``, a pure pass runner); then,
for a through-plane network result, the do-no-harm gate (``adapt.selfcheck``): the network is kept only
when it beats cubic B-spline on held-out pairs of this very volume, else the B-spline result is
returned and the result says so (``meta["gate"]``, the provenance, the log). The same slice profile
(the header's thickness, else the estimate) first picks the shipped through-plane weights trained
nearest to it (contiguous slices, or thin slices with gaps: ``InferenceOptions.thickness_mm``), and
last makes the result reproduce the input slices under it (``core.slice_consistency``, ``meta["consistency"]``)
where the self-check measured that step no worse on this volume's held-out pairs (never the gate's B-spline).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

from MedSRExtension.core import geometry
from MedSRExtension.core.volume import AXES, Volume
from MedSRExtension.inference.options import InferenceOptions

Progress = Optional[Callable[[int, int], None]]
Cancel = Optional[Callable[[], bool]]

__all__ = ["run_pipeline", "super_resolve"]


def _gate_profile(volume: Volume, options: InferenceOptions, estimate: bool = True):
    """(axis, factor, profile) of a through-plane run, for the self-check; None when not through-plane.
    ``estimate=False``: no estimate from the volume when neither caller nor header gives the thickness."""
    from MedSRExtension.inference.engine import resolve_factors
    from MedSRExtension.adapt.profile import slice_profile
    factors, axis = resolve_factors(volume, "throughplane", options.axis,
                                    scale=None if options.spacing is not None else options.scale,
                                    spacing=options.spacing)
    factor = geometry.effective_factors(volume, factors)[AXES.index(axis)]
    if factor <= 1 or volume.array.shape[2 - AXES.index(axis)] < 2:
        return None
    adapt = options.adapt if isinstance(options.adapt, dict) else {}
    given = options.thickness_mm if options.thickness_mm is not None else adapt.get("thickness_mm")
    # the caller's, then the header's, else the estimate: measured on the real-volume study (README),
    # the estimate finds the gaps that make a network trained on contiguous slices lose to B-spline
    return axis, factor, slice_profile(volume, axis, factor, given, estimate=estimate)


def _through_plane_network(options: InferenceOptions) -> bool:
    from MedSRExtension.models.registry import get_spec
    return options.mode == "throughplane" and get_spec(options.model).kind == "network"


def _with_profile(volume: Volume, options: InferenceOptions):
    """(options, profile found) of a through-plane network run: the slice thickness of the profile
    (the caller's, the header's, else the estimate) picks the shipped weights trained nearest to it;
    other runs, and adaptation (which finds its own profile), unchanged."""
    if not _through_plane_network(options) or options.adapt not in (None, False):
        return options, None
    found = _gate_profile(volume, options)
    if found is None or options.thickness_mm is not None:
        return options, found
    return options.replace(thickness_mm=found[2].thickness_mm), found


def _gated(volume: Volume, options: InferenceOptions, result: Volume, found, progress: Progress,
           cancel: Cancel) -> tuple[Volume, object]:
    """(the result or the B-spline fallback, the self-check's report or None)."""
    from MedSRExtension.inference.engine import run_inference
    from MedSRExtension.adapt.selfcheck import self_check
    if not options.gate or not _through_plane_network(options):
        return result, None
    if "gate_report" in result.meta:  # the adaptation already checked its own network
        report = result.meta.pop("gate_report")
    else:
        if found is None:
            return result, None
        axis, factor, profile = found
        result.meta["profile"] = profile.describe()
        report = self_check(volume, options, axis, factor, profile.thickness, profile.shape)
    if report is None:
        return result, None
    if report.passed:
        result.meta["gate"] = report.describe()
        return result, report
    # B-spline along one axis gives the same result in both plane orientations: its spread says
    # nothing, so the network's (where the data leave the reconstruction open) stays the confidence
    fallback = run_inference(volume, options.replace(model="bspline", adapt=None, save_adapted=None,
                                                     confidence=False), progress=progress, cancel=cancel)
    fallback.meta.update({k: v for k, v in result.meta.items() if k not in fallback.meta})
    fallback.meta["gate"] = report.describe()
    fallback.meta["model_used"] = "bspline"
    return fallback, report


def _consistent(volume: Volume, options: InferenceOptions, result: Volume, found, report=None) -> Volume:
    """A through-plane network run's result made to reproduce the input slices
    under the slice profile (``core.slice_consistency``), the residual before and after in ``meta``; only
    when the profile is known (the header's or the caller's thickness), never an estimate, and not where
    the self-check's ``report`` measured the step worse on this volume's held-out pairs."""
    from MedSRExtension.core import intensity
    from MedSRExtension.core.slice_consistency import ITERATIONS, project, residual_db
    if not options.consistency or not _through_plane_network(options):
        return result
    found = found or _gate_profile(volume, options, estimate=False)  # only a given profile is used below
    if found is None:
        return result
    axis, _, profile = found
    if not profile.given:  # an estimated or assumed profile is no forward model to enforce
        result.meta["consistency"] = ("not applied: the slice thickness was not given (header or caller), and "
                                      "enforcing an estimated profile was measured to cost quality")
        return result
    if report is not None and report.consistency_pays is False:
        result.meta["consistency"] = (
            "not applied: the self-check returned B-spline, exactly as it compared it" if not report.passed else
            f"not applied: on the self-check's held-out pairs it made {report.candidate} worse "
            f"({report.psnr:.2f} -> {report.consistent_psnr:.2f} dB)")
        return result
    dim = 2 - AXES.index(axis)
    before = residual_db(volume.array, result.array, dim, profile.thickness, profile.shape)
    array = project(volume.array, result.array, dim, profile.thickness, profile.shape)
    if options.clamp == "input":
        intensity.clamp_to_input(array, volume.array)
    array = intensity.cast_like(array, result.array.dtype, inplace=True)
    after = residual_db(volume.array, array, dim, profile.thickness, profile.shape)
    out = Volume(array, result.spacing, result.origin, result.direction, meta=dict(result.meta))
    out.meta["consistency"] = (f"input slices re-made from the result to {after:.1f} dB below their range "
                               f"(before {before:.1f} dB; {ITERATIONS} back-projection steps, "
                               f"{profile.thickness:.3g} output voxels thick)")
    return out


def run_pipeline(volume: Volume, options: InferenceOptions, progress: Progress = None,
                 cancel: Cancel = None) -> Volume:
    """One run as ``options`` say (see the module docstring); the input is never modified."""
    from MedSRExtension.inference.engine import run_inference
    options = options.for_volume(volume)[0]
    options, found = _with_profile(volume, options)
    if options.adapt not in (None, False):
        from MedSRExtension.adapt import super_resolve_adapted
        result = super_resolve_adapted(volume, options, progress=progress, cancel=cancel)
    elif options.ensemble > 1:
        from MedSRExtension.inference.engine import resolve_factors
        from MedSRExtension.pipeline.ensemble import run_ensemble
        factors, axis = resolve_factors(volume, options.mode, options.axis,
                                        scale=None if options.spacing is not None else options.scale,
                                        spacing=options.spacing)
        result = run_ensemble(volume, options, factors, axis,
                              lambda v, o, p, c: run_inference(v, o, progress=p, cancel=c), progress, cancel)
    else:
        result = run_inference(volume, options, progress=progress, cancel=cancel)
    result, report = _gated(volume, options, result, found, progress, cancel)
    return _consistent(volume, options, result, found, report)


def super_resolve(volume: Volume, model: str = "bicubic", scale: Union[float, Sequence[float], None] = 2,
                  mode: str = "inplane", axis: str = "auto", device: str = "auto", progress: Progress = None,
                  cancel: Cancel = None, **options) -> Volume:
    """Super-resolve ``volume`` with ``model`` and return a new Volume on the upsampled grid.

    Args:
        volume: the input; never modified.
        model, scale, mode, axis, device: as in ``InferenceOptions`` (scale: one factor for the axes
            the mode scales, or (fi, fj, fk); mode "auto": from the geometry).
        progress: ``progress(done, total)`` after each batch.
        cancel: checked before each batch; returning True raises ``Cancelled``.
        **options: the other ``InferenceOptions`` fields by name: tile, batch, preset, weights,
            out_dtype, spacing (mm, instead of ``scale``), force, clamp, gate; adapt (throughplane: True
            or minutes, fine-tune the network on this volume first) and save_adapted.
    """
    return run_pipeline(volume, InferenceOptions(model=model, scale=scale, mode=mode, axis=axis, device=device,
                                                 **options), progress=progress, cancel=cancel)
