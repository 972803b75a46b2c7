"""Depth / shaded rendering of meshes by ray casting (deep_perception.sensors)."""

import numpy as np
import pytest

from deep_perception.sensors import Camera, MeshRenderer, box_mesh, orbit_cameras


def test_front_face_depth_and_extent():
    v, f = box_mesh((2.0, 4.0, 6.0))
    cam = Camera(eye=(0.0, -20.0, 0.0), target=(0.0, 0.0, 0.0), width=81, height=61, fov_deg=40.0)
    out = MeshRenderer(v, f).render(cam)
    # the face y = -2 is a plane at z-depth 18 from the camera
    assert np.allclose(out.depth[out.hit], 18.0, atol=1e-4)
    # its 2 x 6 m extent projected with the pinhole model (focal length from the vertical FOV)
    focal = cam.intrinsics()[1, 1]
    cols = np.flatnonzero(out.hit.any(axis=0))
    rows = np.flatnonzero(out.hit.any(axis=1))
    assert abs(len(cols) - 2.0 * focal / 18.0) <= 1.0
    assert abs(len(rows) - 6.0 * focal / 18.0) <= 1.0
    assert np.allclose(out.normals[out.hit], [0.0, -1.0, 0.0], atol=1e-5)  # facing the camera
    assert (out.depth[~out.hit] == 0).all() and (out.primitive_ids[~out.hit] == -1).all()


def test_image_orientation_top_row_is_up_left_column_is_left():
    # a small box up and to the left, seen from -y with z up: +x is to the right in the image
    v, f = box_mesh((1.0, 1.0, 1.0), centre=(-3.0, 0.0, 3.0))
    cam = Camera(eye=(0.0, -20.0, 0.0), target=(0.0, 0.0, 0.0), width=64, height=48, fov_deg=40.0)
    hit = MeshRenderer(v, f).render(cam).hit
    rows, cols = np.nonzero(hit)
    assert rows.mean() < 48 / 2 and cols.mean() < 64 / 2


def test_back_projection_lands_on_the_surface():
    v, f = box_mesh((3.0, 2.0, 1.5), centre=(0.5, -0.3, 0.2))
    cam = Camera(eye=(5.0, -4.0, 3.5), target=(0.5, -0.3, 0.2), width=40, height=30, fov_deg=50.0)
    out = MeshRenderer(v, f).render(cam)
    rays = cam.rays()
    pts = rays[..., :3] + rays[..., 3:] * out.depth[..., None]
    pts = pts[out.hit]
    lo, hi = v.min(axis=0), v.max(axis=0)
    on_box = (pts >= lo - 1e-3).all(axis=1) & (pts <= hi + 1e-3).all(axis=1)
    on_face = (np.isclose(pts, lo, atol=1e-3) | np.isclose(pts, hi, atol=1e-3)).any(axis=1)
    assert out.hit.sum() > 100 and on_box.all() and on_face.all()
    assert ((out.shaded[out.hit] > 0.2) & (out.shaded[out.hit] <= 1.0)).all()
    assert np.allclose(np.linalg.norm(out.normals[out.hit], axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("elevation", [30.0, 60.0, 90.0])
def test_orbit_cameras_keep_the_object_in_view(elevation):
    v, f = box_mesh((10.0, 6.0, 8.0), centre=(100.0, 50.0, 4.0))
    renderer = MeshRenderer(v, f)
    centre, radius = renderer.bounding_sphere()
    cams = orbit_cameras(centre, radius, [0, 90, 200, 315], elevation, width=48, height=32)
    for cam in cams:
        hit = renderer.render(cam).hit
        assert hit.sum() > 0.05 * hit.size
        assert not (hit[0].any() or hit[-1].any() or hit[:, 0].any() or hit[:, -1].any())


def test_gable_roof_depth_profile():
    """A gable roof seen from straight above: depth is smallest along the ridge."""
    v = np.array([[0, 0, 0], [10, 0, 0], [10, 6, 0], [0, 6, 0], [0, 3, 2], [10, 3, 2]], float)
    f = np.array([[0, 1, 5], [0, 5, 4], [3, 4, 5], [3, 5, 2]], np.int32)  # two roof planes
    cam = Camera(eye=(5.0, 3.0, 30.0), target=(5.0, 3.0, 0.0), up=(0.0, 1.0, 0.0), width=64, height=64)
    out = MeshRenderer(v, f).render(cam)
    col = out.depth[:, 32]
    hit_rows = np.flatnonzero(col > 0)
    ridge = hit_rows[np.argmin(col[hit_rows])]
    assert abs(ridge - 31.5) <= 1.5
    assert col[hit_rows].max() == pytest.approx(30.0, abs=0.3) and col[hit_rows].min() == pytest.approx(28.0, abs=0.3)


def test_bad_meshes_rejected():
    v, f = box_mesh()
    with pytest.raises(ValueError, match="out of range"):
        MeshRenderer(v, f + 8)
    with pytest.raises(ValueError, match="no faces"):
        MeshRenderer(v, np.zeros((0, 3), np.int32))
    with pytest.raises(ValueError, match="NaN"):
        MeshRenderer(np.full_like(v, np.nan), f)
    with pytest.raises(ValueError, match="coincide"):
        Camera(eye=(1, 1, 1), target=(1, 1, 1))
    with pytest.raises(ValueError, match="parallel"):
        Camera(eye=(0, 0, 5), target=(0, 0, 0), up=(0, 0, 1)).rays()
