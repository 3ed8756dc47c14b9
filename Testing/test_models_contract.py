"""The contract every registered network keeps, at its light preset and every supported integer scale.

Covers whatever ``names()`` lists as kind "network" (architectures register themselves on import), so a
new architecture is tested as soon as it is registered: output shape and finiteness, gradients reaching
every parameter in training mode, eval-mode determinism, batch independence, the light-preset budget,
the claimed receptive field, and tiled inference equal to untiled for tile-safe models.
"""
from __future__ import annotations

import pytest
import torch

from MedSRExtension.inference import tiling
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.models import ModelDescriptor, build, get_spec, names, sr_of
from MedSRExtension.models.complexity import count_gmacs, count_params

NETWORKS = [n for n in names() if get_spec(n).kind == "network"]
H, W = 21, 26  # small, odd and non-square: sizes of real slices are arbitrary


def _int_scales(name: str) -> list[int]:
    spec = get_spec(name)
    return list(spec.scales) if spec.scales is not None else [2, 3, 4]


CASES = [pytest.param(n, s, id=f"{n}-x{s}") for n in NETWORKS for s in _int_scales(n)]


def _image(n: int = 1, h: int = H, w: int = W, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # a smooth structure plus texture, in the robust-normalised [0, 1] range models see
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = 0.5 + 0.3 * torch.sin(6 * xx + 4 * yy)
    return (base + 0.2 * torch.rand(n, 1, h, w, generator=g)).clamp(0, 1)


def _model(name: str, scale: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build(name, preset="light", scale=scale)


def _tensors(out):
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, dict):
        for v in out.values():
            yield from _tensors(v)
    elif isinstance(out, (list, tuple)):
        for v in out:
            yield from _tensors(v)


def test_all_architectures_registered():
    assert {"edsr", "lgsr", "iconet", "pfmdn"} <= set(NETWORKS)
    for n in NETWORKS:
        spec = get_spec(n)
        assert "light" in spec.presets and spec.paper and spec.summary, n


@pytest.mark.parametrize("name,scale", CASES)
def test_eval_output_shape_finite_and_deterministic(name, scale):
    model = _model(name, scale).eval()
    x = _image(1)
    with torch.no_grad():
        y1 = model(x)
        y2 = model(x)
    assert isinstance(y1, torch.Tensor), "eval-mode forward must return the SR tensor"
    assert y1.shape == (1, 1, H * scale, W * scale)
    assert torch.isfinite(y1).all()
    assert torch.equal(y1, y2), "eval-mode forward must be deterministic"
    assert torch.equal(x, _image(1)), "the input must not be modified"


@pytest.mark.parametrize("name,scale", CASES)
def test_training_gradients_reach_every_parameter(name, scale):
    model = _model(name, scale).train()
    out = model(_image(2))
    sr = sr_of(out)
    assert sr.shape == (2, 1, H * scale, W * scale)
    g = torch.Generator().manual_seed(1)
    loss = sum((t * torch.rand(t.shape, generator=g)).mean() for t in _tensors(out))
    loss.backward()
    missing = [k for k, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient reaches: {missing}"


@pytest.mark.parametrize("name,scale", CASES)
def test_descriptor_call_gives_the_sr_tensor_in_both_modes(name, scale):
    """``descriptor(x, scale)`` is the one way to call any network: the SR tensor in eval and training mode."""
    model = _model(name, scale)
    call = ModelDescriptor.of(name, model)
    x = _image(1)
    with torch.no_grad():
        ev = call(x, (scale, scale))
        model.train()
        tr = call(x, (scale, scale))
    assert isinstance(ev, torch.Tensor) and ev.shape == (1, 1, H * scale, W * scale)
    assert isinstance(tr, torch.Tensor) and tr.shape == ev.shape


@pytest.mark.parametrize("name", NETWORKS)
def test_descriptor_refuses_images_below_min_size(name):
    spec = get_spec(name)
    call = ModelDescriptor.of(name, _model(name, _int_scales(name)[0]).eval())
    small = max(1, spec.min_size - 1)
    with pytest.raises(MedSRError, match=f"at least {spec.min_size}x{spec.min_size} pixels"):
        call(_image(1, small, W), (2.0, 2.0))


@pytest.mark.parametrize("name,scale", CASES)
def test_batch_independence(name, scale):
    model = _model(name, scale).eval()
    a, b = _image(1, seed=0), _image(1, seed=5)
    with torch.no_grad():
        alone = model(a)
        batch = model(torch.cat([a, b]))
    torch.testing.assert_close(batch[:1], alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NETWORKS)
def test_light_preset_fits_cpu_budget(name):
    model = _model(name, 2)
    assert count_params(model) <= 500_000
    assert count_gmacs(model, 256, 256) <= 30.0


def _receptive_field(name: str, model: torch.nn.Module) -> int:
    spec = get_spec(name)
    rf = getattr(model, "receptive_field", None)
    if rf is None:
        return spec.receptive_field
    assert rf <= spec.receptive_field, "the registry must claim at least every preset's receptive field"
    return int(rf)


TILE_SAFE = [c for c in CASES if get_spec(c.values[0]).tile_safe]


@pytest.mark.parametrize("name,scale", TILE_SAFE)
def test_receptive_field_claim_holds(name, scale):
    """Perturbing one LR pixel leaves every output pixel farther than the receptive field unchanged."""
    model = _model(name, scale).eval()
    rf = _receptive_field(name, model)
    n = 2 * rf + 12
    x = _image(1, n, n)
    x2 = x.clone()
    c = n // 2
    x2[..., c, c] += 0.5
    with torch.no_grad():
        diff = (model(x2) - model(x)).abs()[0, 0]
    coord = (torch.arange(diff.shape[-1]) + 0.5) / scale - 0.5  # LR coordinate of each output pixel
    dist = (coord - c).abs()
    far = (dist[:, None] > rf) | (dist[None, :] > rf)
    assert diff[~far].max() > 0, "the perturbed pixel must influence nearby outputs"
    assert diff[far].max() <= 1e-5 * max(1.0, float(diff.max())), "output depends on pixels beyond the receptive field"


def _tiling_geometry(overlap: int) -> tuple[int, int]:
    """(tile, size) so that run_tiled cuts ``size`` into exactly two tiles of ``tile`` LR pixels.

    A tile is its core plus ``overlap`` context pixels on each side; neighbouring cores share a blend
    band of about overlap/2, so two tiles cover 2·core − band. 96 pixels when that suffices.
    """
    band = max(1, overlap // 2)
    core = 2 * overlap + band + 4  # tile = core + 2·overlap must stay below size = 2·core − band
    size = max(96, 2 * core - band)
    core = (size + band + 1) // 2
    return core + 2 * overlap, size


@pytest.mark.parametrize("name,scale", TILE_SAFE)
def test_tiled_inference_equals_untiled(name, scale):
    """Tiles with the claimed overlap give the untiled result (x2: tiles in both axes; x3/x4: a strip)."""
    model = _model(name, scale).eval()
    overlap = _receptive_field(name, model)
    tile, size = _tiling_geometry(overlap)
    # 2D tiling (and its corners) once; a strip tiled along W for the other scales keeps the test fast
    x = _image(1, size if scale == 2 else 40, size, seed=3)
    calls = []

    def call(t):
        calls.append(tuple(t.shape[-2:]))
        return model(t)

    with torch.no_grad():
        full = model(x)
        tiled = tiling.run_tiled(model, x, scale=(scale, scale), tile=tile, overlap=overlap, call=call)
    assert len(calls) == (4 if scale == 2 else 2), f"expected the input to be split into tiles, got {calls}"
    assert tiled.shape == full.shape
    err = (tiled - full).abs().max() / full.abs().max()
    assert err <= 1e-4, f"tiled differs from untiled by {float(err):.2e} (relative)"


HALF = [pytest.param(n, h, id=f"{n}-{h}") for n in NETWORKS for h in get_spec(n).half]


@pytest.mark.parametrize("name,half", HALF)
def test_claimed_half_precision_runs_close_to_float32(name, half):
    """A model claiming fp16/bf16 gives a finite image within a few grey levels of float32 (run on CPU here)."""
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[half]
    model = _model(name, 2).eval()
    x = _image(1, 12, 14)  # CPU half-precision kernels are slow: keep it tiny
    with torch.no_grad():
        ref = model(x)
        low = model.to(dtype)(x.to(dtype))
    assert low.dtype == dtype and torch.isfinite(low).all()
    assert (low.float() - ref).abs().max() <= 0.05


# --- the complexity counter the budget test and `medsr models --detail` rely on -------------------

def test_gmacs_of_a_convolution_are_exact():
    conv = torch.nn.Conv2d(1, 8, 3, padding=1)
    assert count_gmacs(conv, 256, 128) == pytest.approx(8 * 9 * 256 * 128 / 1e9, rel=1e-12)
    assert count_params(conv) == 8 * 9 + 8


def test_gmacs_include_attention_and_deformable_sampling():
    """Ops torch's counter misses (CPU attention, grid_sample) are counted analytically, the same on
    the meta device and in a real CPU run."""
    from MedSRExtension.models.complexity import _count_flops
    from MedSRExtension.models.deform import DeformConv2d
    from MedSRExtension.models.lgsr import NonLocalBlock

    hw = 32 * 32
    nl = NonLocalBlock(8, kv=16, inner=4).eval()
    convs = 8 * 4 * hw + 2 * 8 * 4 * 256 + 4 * 8 * hw
    attention = hw * 256 * (4 + 4)
    assert count_gmacs(nl, 32, 32, channels=8) * 1e9 == pytest.approx(convs + attention, rel=1e-9)
    with torch.no_grad():
        real = _count_flops(nl, torch.rand(1, 8, 32, 32)) / 2
    assert real == pytest.approx(convs + attention, rel=1e-9)

    dcn = DeformConv2d(4, 6, 3)
    predictor = 4 * 27 * 9 * hw
    sampling = 4 * 4 * 9 * hw  # bilinear: 4 taps per sampled value, C·k² values per pixel
    contraction = 4 * 9 * 6 * hw
    x = torch.rand(1, 4, 32, 32)
    with torch.no_grad():
        assert _count_flops(dcn, x) / 2 == pytest.approx(predictor + sampling + contraction, rel=1e-9)
