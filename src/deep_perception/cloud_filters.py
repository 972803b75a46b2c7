"""Point-cloud front end: non-finite removal, range and box crops, voxel downsampling.

Functions return *indices* into the input points, so callers keep every field of the kept points
(intensity, ring, ...) and results stay traceable to the input.
"""

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class CloudFilter:
    """Settings of the preprocessing chain (all optional; the default keeps every finite point)."""

    min_range: float = 0.0
    max_range: float = float("inf")
    box_min: Optional[Sequence[float]] = None
    box_max: Optional[Sequence[float]] = None
    voxel_size: float = 0.0

    def __post_init__(self):
        if self.min_range < 0 or self.max_range <= self.min_range:
            raise ValueError(f"need 0 <= min_range < max_range, got {self.min_range}, {self.max_range}")
        if (self.box_min is None) != (self.box_max is None):
            raise ValueError("box_min and box_max go together")
        if self.box_min is not None:
            lo, hi = np.asarray(self.box_min, float), np.asarray(self.box_max, float)
            if lo.shape != (3,) or hi.shape != (3,) or np.any(lo >= hi):
                raise ValueError(f"box_min must be 3 values below box_max, got {self.box_min}, {self.box_max}")
        if self.voxel_size < 0:
            raise ValueError(f"voxel_size must be >= 0, got {self.voxel_size}")

    def apply(self, points, indices=None):
        """Filter finite float32 (N,3) ``points``; returns the kept subset of ``indices`` (default 0..N-1)."""
        idx = np.arange(len(points)) if indices is None else np.asarray(indices)
        keep = np.ones(len(points), dtype=bool)
        if self.min_range > 0 or np.isfinite(self.max_range):
            r2 = np.einsum("ij,ij->i", points, points)
            keep &= (r2 >= self.min_range ** 2) & (r2 <= self.max_range ** 2)
        if self.box_min is not None:
            keep &= np.all((points >= np.asarray(self.box_min, np.float32))
                           & (points <= np.asarray(self.box_max, np.float32)), axis=1)
        sel = np.flatnonzero(keep)
        if self.voxel_size > 0 and sel.size:
            sel = sel[voxel_downsample(points[sel], self.voxel_size)]
        return idx[sel]


def voxel_downsample(points, voxel_size):
    """Indices of one point per occupied voxel (the point nearest the voxel's centroid), sorted."""
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64)
    keys = np.floor(points / voxel_size).astype(np.int64)
    keys -= keys.min(axis=0)
    dims = keys.max(axis=0) + 1
    if np.prod(dims.astype(np.float64)) < 2 ** 62:
        flat = (keys[:, 0] * dims[1] + keys[:, 1]) * dims[2] + keys[:, 2]
        _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    else:
        _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    centroids = np.zeros((len(counts), 3))
    np.add.at(centroids, inverse, points)
    centroids /= counts[:, None]
    d2 = np.einsum("ij,ij->i", points - centroids[inverse], points - centroids[inverse])
    # Sort by (voxel, distance) and take the first of each voxel.
    order = np.lexsort((d2, inverse))
    first = np.ones(len(order), dtype=bool)
    first[1:] = inverse[order[1:]] != inverse[order[:-1]]
    return np.sort(order[first])


def select_points(cloud, kept, keep_organized=False):
    """The kept points of a structured cloud (any fields), by flat index.

    With ``keep_organized`` the cloud keeps its shape and removed points get NaN x, y, z (the ROS
    convention for invalid points of organised clouds); otherwise a 1-D cloud of the kept points.
    """
    flat = cloud.reshape(-1)
    if not keep_organized:
        return flat[kept]
    out = flat.copy()
    drop = np.ones(out.shape[0], dtype=bool)
    drop[kept] = False
    for c in "xyz":
        out[c][drop] = np.nan
    return out.reshape(cloud.shape)
