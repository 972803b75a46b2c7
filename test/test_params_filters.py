"""Parameter validation (clear errors naming the parameter) and the point-cloud filters."""

import numpy as np
import pytest

from deep_perception.cloud_filters import CloudFilter, select_points, voxel_downsample
from deep_perception.params import Param, ParamError, markdown_table, resolve, validate


def test_param_validation_names_the_parameter():
    p = Param("voxel_size", float, 0.0, min=0.0)
    assert validate(p, 1) == 1.0
    with pytest.raises(ParamError, match="~voxel_size.*minimum"):
        validate(p, -1.0)
    with pytest.raises(ParamError, match="~voxel_size.*number"):
        validate(p, "a lot")
    with pytest.raises(ParamError, match="~device.*one of"):
        validate(Param("device", str, "cpu", choices=("cpu", "cuda")), "tpu")
    with pytest.raises(ParamError, match="~box_min.*3 items"):
        validate(Param("box_min", list, [], length=3, item_type=float), [1.0, 2.0])
    with pytest.raises(ParamError, match="~flag.*true/false"):
        validate(Param("flag", bool, False), 1)
    with pytest.raises(ParamError, match="~points.*integer"):
        validate(Param("points", int, 1024), 10.5)


def test_resolve_uses_defaults_and_table():
    specs = [Param("a", int, 3, "first", min=1), Param("b", str, "x", "second")]
    assert resolve(specs, lambda n, d: {"b": "y"}.get(n, d)) == {"a": 3, "b": "y"}
    assert "`~a`" in markdown_table(specs)


def test_filter_range_box_and_indices(rng):
    pts = rng.uniform(-10, 10, (1000, 3)).astype(np.float32)
    flt = CloudFilter(min_range=2.0, max_range=8.0, box_min=[-5, -5, -5], box_max=[5, 5, 5])
    idx = flt.apply(pts, np.arange(1000) * 2)
    r = np.linalg.norm(pts, axis=1)
    ok = (r >= 2) & (r <= 8) & np.all(np.abs(pts) <= 5, axis=1)
    np.testing.assert_array_equal(idx, np.flatnonzero(ok) * 2)


def test_voxel_downsample_one_point_per_voxel(rng):
    centres = np.array([[0.5, 0.5, 0.5], [3.5, 0.5, 0.5], [0.5, 7.5, 2.5]])
    pts = np.concatenate([c + rng.uniform(-0.4, 0.4, (50, 3)) for c in centres]).astype(np.float32)
    kept = voxel_downsample(pts, 1.0)
    assert len(kept) == 3
    keys = {tuple(np.floor(pts[k]).astype(int)) for k in kept}
    assert keys == {(0, 0, 0), (3, 0, 0), (0, 7, 2)}


def test_bad_filter_settings_raise():
    with pytest.raises(ValueError):
        CloudFilter(min_range=5, max_range=1)
    with pytest.raises(ValueError):
        CloudFilter(box_min=[0, 0, 0])
    with pytest.raises(ValueError):
        CloudFilter(box_min=[0, 0, 0], box_max=[1, -1, 1])


def test_select_points_keeps_organised_shape():
    dt = np.dtype([("x", "f4"), ("y", "f4"), ("z", "f4"), ("i", "f4")])
    cloud = np.zeros((2, 3), dt)
    cloud["i"] = np.arange(6).reshape(2, 3)
    out = select_points(cloud, np.array([0, 4]), keep_organized=True)
    assert out.shape == (2, 3)
    assert np.isnan(out["x"]).sum() == 4
    np.testing.assert_array_equal(out["i"], cloud["i"])
    np.testing.assert_array_equal(select_points(cloud, np.array([0, 4]))["i"], [0, 4])
