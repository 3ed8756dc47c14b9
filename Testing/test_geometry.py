"""The upsampled grid of DESIGN.md: voxel-edge extent kept, spacing s·n/n', direction unchanged."""
import numpy as np
import pytest

from MedSRExtension import Volume
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.geometry import effective_factors, factors_for_spacing, upsampled_geometry
from sample_volumes import oblique_direction


def _volume(shape_kji=(7, 11, 13), spacing=(0.7, 1.3, 4.1)):
    return Volume(np.zeros(shape_kji, np.float32), spacing=spacing, origin=(10.0, -20.0, 33.3),
                  direction=oblique_direction())


@pytest.mark.parametrize("factors", [(2, 2, 1), (2.5, 3, 1.7), (1, 1, 4), (3.3, 1.01, 2.2)])
def test_edges_are_preserved_on_oblique_anisotropic_grid(factors):
    v = _volume()
    shape, spacing, origin, direction = upsampled_geometry(v, factors)
    up = Volume(np.zeros(shape, np.float32), spacing, origin, direction)
    np.testing.assert_allclose(up.edge_bounds(), v.edge_bounds(), atol=1e-9)
    np.testing.assert_array_equal(direction, v.direction)
    n = np.array(v.shape_ijk)
    n_new = np.array(up.shape_ijk)
    np.testing.assert_array_equal(n_new, np.round(n * np.array(factors)).astype(int))
    np.testing.assert_allclose(spacing, np.array(v.spacing) * n / n_new, rtol=1e-12)


def test_voxel_centres_interleave_input_centres_at_x2():
    # At x2 the input voxel centre lies exactly between two output voxel centres.
    v = _volume()
    shape, spacing, origin, direction = upsampled_geometry(v, (2, 2, 2))
    up = Volume(np.zeros(shape, np.float32), spacing, origin, direction)
    mid = (up.index_to_physical([0, 0, 0]) + up.index_to_physical([1, 1, 1])) / 2
    np.testing.assert_allclose(mid, v.index_to_physical([0, 0, 0]), atol=1e-9)


def test_target_spacing_becomes_factors():
    v = _volume(spacing=(1.0, 1.0, 5.0))
    f = factors_for_spacing(v, (1.0, 1.0, 1.25))
    assert f == (1.0, 1.0, 4.0)
    assert factors_for_spacing(v, 0.5) == (2.0, 2.0, 10.0)
    with pytest.raises(MedSRError):
        factors_for_spacing(v, -1)


def test_effective_factors_follow_rounding():
    v = _volume(shape_kji=(5, 5, 5))
    assert effective_factors(v, (2.5, 2.0, 1.1)) == (12 / 5, 2.0, 6 / 5)


def test_non_positive_factor_is_refused():
    with pytest.raises(MedSRError, match="positive"):
        upsampled_geometry(_volume(), (0, 1, 1))
