"""The training data pipeline: held-out validation regions, tissue-preferring patches, augmentation."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.data import corpus
from MedSRExtension.data.patches import PatchSampler, Source, dihedral, is_tissue, load_sources


@pytest.fixture(scope="module")
def sources():
    return load_sources()


def _index_coded_sources():
    """Each training region replaced by the absolute index, along its held-out axis, of every pixel
    in the source image; sampled HR patches then tell exactly where they came from."""
    out = []
    for r in corpus.training_regions():
        shape = r.array.shape
        idx = np.arange(shape[r.axis], dtype=np.float32) + r.start
        coded = np.broadcast_to(idx.reshape([-1 if a == r.axis else 1 for a in range(len(shape))]), shape)
        out.append(Source(r.name, np.ascontiguousarray(coded)))
    return out


def test_validation_regions_are_the_documented_parts_of_each_file():
    val = {r.name: r for r in corpus.validation_regions()}
    mni = corpus.read("mni")
    for k in corpus.MNI_VAL_SLICES:
        assert corpus.MNI_VAL_SLAB[0] <= k < corpus.MNI_VAL_SLAB[1]
        np.testing.assert_array_equal(val[f"mni_k{k}"].array, mni[k])
    assert set(corpus.HELD_OUT_AXIS) == set(corpus.NAMES) - {"mni"}
    for name, axis in corpus.HELD_OUT_AXIS.items():
        img = corpus.read(name)
        n = img.shape[axis]
        held = n - int(np.floor(0.8 * n))
        # the held-out 20 % lie at the end, or at the start where the end is empty background
        want = np.arange(0, held) if name in corpus.HELD_OUT_FIRST else np.arange(n - held, n)
        np.testing.assert_array_equal(val[name].array, np.take(img, want, axis=axis))
        assert val[name].start == want[0]
        lo, hi = np.percentile(img, [0.5, 99.5])
        tissue = float((val[name].array > lo + 0.1 * (hi - lo)).mean())
        assert tissue > 0.1, f"validation region of {name} is mostly background ({tissue:.0%})"


def test_training_regions_stop_before_the_validation_regions():
    train = {r.name: r for r in corpus.training_regions()}
    k0, k1 = corpus.MNI_VAL_SLAB
    assert train["mni_inferior"].array.shape[0] == k0 and train["mni_superior"].start == k1
    for name, axis in corpus.HELD_OUT_AXIS.items():
        img = corpus.read(name)
        n = img.shape[axis]
        assert train[name].array.shape[axis] == int(np.floor(0.8 * n))
        start = n - train[name].array.shape[axis] if name in corpus.HELD_OUT_FIRST else 0
        assert train[name].start == start
        np.testing.assert_array_equal(train[name].array, np.take(img, np.arange(start, start + int(np.floor(0.8 * n))),
                                                                 axis=axis))


@pytest.mark.parametrize("scale,kind", [((2.0, 2.0), "bicubic"), ((4.0, 4.0), "kspace"), ((4.0, 1.0), "thickslice")])
def test_no_training_patch_touches_a_validation_region_in_any_orientation(scale, kind):
    coded = _index_coded_sources()
    sampler = PatchSampler(16, [scale], kind, seed=3, sources=coded, tissue=False)
    held = {r.source: (r.start, r.start + r.array.shape[r.axis]) for r in corpus.validation_regions()
            if r.source != "mni"}
    k0, k1 = corpus.MNI_VAL_SLAB
    seen_mni_ranges = set()
    for it in range(60):
        rng = sampler.rng(it)
        for _ in range(4):
            code = int(rng.integers(8))
            patch, where = sampler._cut(rng, 40, 40 if code % 2 == 0 else 24)
            name = where.split(":")[0]
            if name.startswith("mni"):
                # values are k indices: axial patches hold one k, coronal/sagittal ones a range of k
                assert not np.any((patch >= k0) & (patch < k1)), where
                seen_mni_ranges.add(where.split(":")[1])
            else:  # values are indices along the held-out axis
                v0, v1 = held[name]
                assert not np.any((patch >= v0) & (patch < v1)), where
    assert seen_mni_ranges == {"axial", "coronal", "sagittal"}


def test_patches_prefer_tissue_over_background(sources):
    with_pref = PatchSampler(16, [(2.0, 2.0)], "bicubic", seed=0, sources=sources, tissue=True)
    without = PatchSampler(16, [(2.0, 2.0)], "bicubic", seed=0, sources=sources, tissue=False)
    frac = []
    for sampler in (with_pref, without):
        hits = 0
        for it in range(24):
            rng = sampler.rng(it)
            for _ in range(8):
                hits += is_tissue(sampler._cut(rng, 32, 32)[0])
        frac.append(hits / (24 * 8))
    assert frac[0] >= 0.95
    assert frac[0] > frac[1] + 0.05  # the corpus has enough background for this to matter


def test_dihedral_gives_eight_distinct_flips_and_rotations():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    outs = [dihedral(a, c) for c in range(8)]
    assert len({o.tobytes() + bytes(o.shape) for o in outs}) == 8
    assert all(sorted(o.shape) == [3, 4] for o in outs)
    assert all(np.array_equal(np.sort(o, axis=None), np.sort(a, axis=None)) for o in outs)


@pytest.mark.parametrize("scale,kind", [((2.0, 2.0), "bicubic"), ((4.0, 4.0), "bicubic"), ((3.0, 3.0), "kspace"),
                                        ((4.0, 1.0), "thickslice")])
def test_batches_have_matching_lr_hr_shapes_and_content(sources, scale, kind):
    sampler = PatchSampler(12, [scale], kind, seed=1, sources=sources)
    lr, hr, s = sampler.sample(6, iteration=5)
    sh, sw = scale
    assert s == scale and lr.dtype == torch.float32
    assert lr.shape == (6, 1, 12, 12) and hr.shape == (6, 1, int(12 * sh), int(12 * sw))
    # each LR patch is the degraded HR patch (same place, same augmentation): close to its box average
    assert float((F.avg_pool2d(hr, (int(sh), int(sw))) - lr).abs().mean()) < 0.03
    lr2, hr2, _ = sampler.sample(6, iteration=5)
    assert torch.equal(lr, lr2) and torch.equal(hr, hr2)  # a pure function of the iteration
    lr3, _, _ = sampler.sample(6, iteration=6)
    assert not torch.equal(lr, lr3)


def test_mixed_scale_sampler_draws_each_scale(sources):
    sampler = PatchSampler(12, [(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)], "bicubic", seed=0, sources=sources)
    seen = {sampler.sample(1, it)[2] for it in range(30)}
    assert seen == {(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)}


def test_sources_are_robustly_normalised_like_inference(sources):
    for src in sources:
        lo, hi = np.percentile(src.array, [0.5, 99.5])
        assert abs(lo) < 1e-3 and abs(hi - 1) < 1e-3, src.name


def test_large_x4_patches_skip_planes_too_small_to_hold_them(sources):
    """An HR patch taller than the MNI training sub-volumes (80 and 85 slices) still samples, from
    axial MNI slices and the 2D images only."""
    sampler = PatchSampler(24, [(4.0, 4.0)], "bicubic", seed=0, sources=sources)
    lr, hr, _ = sampler.sample(4, iteration=0)
    assert lr.shape == (4, 1, 24, 24) and hr.shape == (4, 1, 96, 96)
    wheres = {sampler._cut(sampler.rng(it), 112, 112)[1] for it in range(40)}
    assert not any(w.endswith(("coronal", "sagittal")) for w in wheres)
    assert "mni_inferior:axial" in wheres or "mni_superior:axial" in wheres


def test_thin_slice_training_pairs_sample_the_hr_rows_with_gaps_between(sources):
    """A thickness range (fractions of the spacing) gives LR rows that are thin samples of the HR rows,
    not their average over the whole spacing: what a network for slices with gaps learns from."""
    thin = PatchSampler(12, [(4.0, 1.0)], "thickslice", seed=1, sources=sources, thickness=(0.2, 0.3))
    lr, hr, _ = thin.sample(6, iteration=5)
    def centre(x):  # the two HR rows at the centre of each LR slice's 4 rows
        return 0.5 * (x[:, :, 1::4, :] + x[:, :, 2::4, :])
    assert float((lr - centre(hr)).abs().mean()) < 0.5 * float((lr - F.avg_pool2d(hr, (4, 1))).abs().mean())
    contiguous = PatchSampler(12, [(4.0, 1.0)], "thickslice", seed=1, sources=sources)
    lr_c, hr_c, _ = contiguous.sample(6, iteration=5)
    assert float((lr_c - F.avg_pool2d(hr_c, (4, 1))).abs().mean()) < float((lr_c - centre(hr_c)).abs().mean())


@pytest.mark.parametrize("thickness,kind,message", [((0.7, 0.2), "thickslice", "0 < LO <= HI"),
                                                    ((0.0, 0.5), "thickslice", "0 < LO <= HI"),
                                                    ((0.2, 0.7), "bicubic", "for the thickslice degradation")])
def test_a_thickness_range_no_run_can_use_is_refused(sources, thickness, kind, message):
    with pytest.raises(MedSRError, match=message):
        PatchSampler(12, [(4.0, 1.0) if kind == "thickslice" else (2.0, 2.0)], kind, sources=sources,
                     thickness=thickness)


def test_compressed_corpus_files_decode_to_their_modality_units():
    """The JPEG 2000 / JPEG lossless CTs decode (pylibjpeg plugins) and come out in Hounsfield units, as
    does each frame of the enhanced CT (its rescale lives in the shared functional groups)."""
    for name in ("ctj2k", "ctpancreas", "ctneck", "ect_f0", "ect_f1"):
        img = corpus.read(name)
        assert img.shape == (512, 512), name
        assert float(img.min()) <= -900, f"{name}: no air (about -1000 HU)"
        soft = float(((img > -50) & (img < 100)).mean())
        assert soft > 0.1, f"{name}: only {soft:.0%} of pixels at soft-tissue HU: rescale not applied?"
    assert not np.array_equal(corpus.read("ect_f0"), corpus.read("ect_f1"))
    assert corpus.read("nmbody").shape == (1024, 256)
