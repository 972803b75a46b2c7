"""Preprocessing shared by training (Dataset) and inference (Predictor), so both see the same inputs.

Order, both sides: drop non-finite points → pick N points (random or farthest-point) → centre on the
centroid of the picked points → divide by their largest distance to it (unit sphere).
"""

import numpy as np

NORMALISATIONS = ("unit_sphere", "centre", "none")
SAMPLINGS = ("random", "fps")


def finite_mask(points):
    """Boolean mask of rows whose channels are all finite."""
    return np.isfinite(points).all(axis=1)


def farthest_point_indices(xyz, n, start=0):
    """Greedy farthest-point sampling of ``n`` indices from ``xyz`` (M,3); deterministic from ``start``."""
    m = xyz.shape[0]
    xyz = np.asarray(xyz, dtype=np.float64)
    chosen = np.empty(n, dtype=np.int64)
    dist = np.full(m, np.inf)
    idx = start
    for i in range(n):
        chosen[i] = idx
        d = np.einsum("ij,ij->i", xyz - xyz[idx], xyz - xyz[idx])
        np.minimum(dist, d, out=dist)
        idx = int(np.argmax(dist))
    return chosen


def sample_indices(num_points, n, method="random", rng=None, xyz=None):
    """Indices of ``n`` points out of ``num_points``: without replacement when enough, else padded by
    repeating random points (max pooling is unchanged by repeats)."""
    if num_points <= 0:
        raise ValueError("cannot sample from an empty cloud")
    if method not in SAMPLINGS:
        raise ValueError(f"unknown sampling {method!r}; use one of {SAMPLINGS}")
    rng = np.random.default_rng(0) if rng is None else rng
    if num_points <= n:
        extra = rng.integers(0, num_points, n - num_points) if n > num_points else np.empty(0, np.int64)
        return np.concatenate([np.arange(num_points), extra]).astype(np.int64)
    if method == "fps":
        return farthest_point_indices(xyz, n, start=int(rng.integers(num_points)))
    return np.sort(rng.choice(num_points, n, replace=False)).astype(np.int64)


def normalise(points, method="unit_sphere"):
    """Centre xyz (first 3 channels) on the centroid and scale; returns (points, centre, scale)."""
    if method not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {method!r}; use one of {NORMALISATIONS}")
    out = np.array(points, dtype=np.float32, copy=True)
    if method == "none":
        return out, np.zeros(3, np.float32), np.float32(1.0)
    centre = out[:, :3].mean(axis=0)
    out[:, :3] -= centre
    s = np.float32(1.0)
    if method == "unit_sphere":
        s = np.float32(max(float(np.sqrt((out[:, :3] ** 2).sum(axis=1)).max()), 1e-6))
        out[:, :3] /= s
    return out, centre, s


def estimate_normals(xyz, k=16):
    """Unit normals of a building-like cloud by k-NN PCA (open3d), flipped to point away from the
    centroid: ground down, walls out, roofs up, as the outward normals of the training meshes."""
    import open3d as o3d  # imported lazily: only clouds without normals need it

    pts = np.asarray(xyz, dtype=np.float64)
    if len(pts) < 3:
        return np.tile(np.array([[0.0, 0.0, 1.0]], np.float32), (len(pts), 1))
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=min(k, len(pts))))
    n = np.asarray(pcd.normals)
    outward = pts - pts.mean(axis=0)
    flip = (n * outward).sum(axis=1) < 0
    n[flip] *= -1
    return n.astype(np.float32)
