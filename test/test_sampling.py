"""Area-weighted and Poisson-disk sampling: exact N, reproducible, on the surface, area-proportional."""

import numpy as np
import pytest

from deep_perception.citygml import polygons_to_mesh
from deep_perception.citygml.geometry import Mesh, triangulate_batch
from deep_perception.sampling import SamplingError, sample_arrays, sample_batch, sample_points


def two_squares():
    """A 1x1 square labelled 0 and a 3x3 square labelled 2 (areas 1 and 9), both in z=0."""
    small = np.array([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)], float)
    big = np.array([(5, 0, 0), (8, 0, 0), (8, 3, 0), (5, 3, 0)], float)
    return polygons_to_mesh([([small], 0, 2), ([big], 2, 2)], offset=(0, 0, 0))


def test_exact_n_and_reproducible():
    m = two_squares()
    for n in (1, 7, 1000, 2048):
        p, nrm, lab = sample_points(m, n, seed=5)
        assert p.shape == (n, 3) and nrm.shape == (n, 3) and lab.shape == (n,)
        assert p.dtype == np.float32 and nrm.dtype == np.float32 and lab.dtype == np.uint8
    a = sample_points(m, 500, seed=5)
    b = sample_points(m, 500, seed=5)
    c = sample_points(m, 500, seed=6)
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()
    assert a[0].tobytes() != c[0].tobytes()


def test_area_proportional_labels_normals_on_surface():
    m = two_squares()
    p, nrm, lab = sample_points(m, 10000, seed=1)
    # stratified: the share of each triangle is its expected share within one point
    assert abs((lab == 2).sum() - 9000) <= 2
    assert np.allclose(p[:, 2], 0) and np.allclose(nrm, [0, 0, 1])
    small = lab == 0
    assert (p[small, 0] >= 0).all() and (p[small, 0] <= 1).all()
    assert (p[~small, 0] >= 5).all() and (p[~small, 0] <= 8).all()
    # uniform inside: mean of the big square's points is its centre
    assert np.allclose(p[~small, :2].mean(0), [6.5, 1.5], atol=0.05)


def test_prefix_is_spread_over_surface():
    m = two_squares()
    _, _, lab = sample_points(m, 2048, seed=2)
    assert 80 <= (lab[:100] == 2).sum() <= 100   # first 100 points already ~90 % on the big square


def test_batch_matches_area_shares_and_flags_empty_items():
    sq = [np.array([(0, 0, 0), (2, 0, 0), (2, 2, 0), (0, 2, 0)], float)]
    degenerate = [np.array([(0, 0, 0), (1, 0, 0), (2, 0, 0)], float)]
    batch = triangulate_batch([[(sq, 1, 2)], [], [(degenerate, 1, 2)], [(sq, 2, 2)]])
    pts, nrm, lab, ok = sample_batch(batch, 64, seed=0)
    assert ok.tolist() == [True, False, False, True]
    assert pts.shape == (4, 64, 3)
    assert (lab[0] == 1).all() and (lab[3] == 2).all()
    assert (pts[1] == 0).all()


def test_no_area_raises():
    m = Mesh(np.zeros((3, 3)), np.array([[0, 1, 2]], np.int32), np.zeros(1, np.uint8), np.zeros(3))
    with pytest.raises(SamplingError):
        sample_points(m, 10)
    with pytest.raises(ValueError, match="unknown sampling method"):
        sample_points(two_squares(), 10, method="grid")


def test_poisson_exact_n_with_labels_and_spacing():
    m = two_squares()
    p, nrm, lab = sample_points(m, 300, seed=3, method="poisson")
    assert p.shape == (300, 3) and set(np.unique(lab).tolist()) == {0, 2}
    d = np.linalg.norm(p[:, None] - p[None], axis=2) + np.eye(300) * 1e9
    u, _, _ = sample_points(m, 300, seed=3)
    du = np.linalg.norm(u[:, None] - u[None], axis=2) + np.eye(300) * 1e9
    assert d.min(1).mean() > 1.2 * du.min(1).mean()  # more even than i.i.d. area sampling
    again = sample_points(m, 300, seed=3, method="poisson")
    assert again[0].tobytes() == p.tobytes()


def test_sampling_throughput_is_measured_in_bench_not_here():
    # speed is measured by bench/citygml.py; this only checks the large-n path works
    v = np.random.default_rng(0).random((3000, 3))
    f = np.arange(3000).reshape(-1, 3).astype(np.int32)
    pts, _, _, ok = sample_arrays(v, f, np.zeros(1000, np.uint8), np.array([0, 1000]), 200000,
                                  np.random.default_rng(0))
    assert ok[0] and pts.shape == (1, 200000, 3)
