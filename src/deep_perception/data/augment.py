"""Training augmentations for point clouds (numpy, one cloud at a time, z is up).

The paper's two (random rotation about the up axis, Gaussian jitter σ 0.01 clipped at 0.05) plus
anisotropic-free uniform scaling and random point dropout (dropped points repeat the first point, as in
PointNet++, so the cloud keeps N points and max pooling is unchanged by the duplicates).
Normals, when given, are rotated with the points; scaling and jitter leave them alone.
"""

import numpy as np


def rotate_up(points, normals, rng):
    """Rotate about the z axis by a uniform random angle."""
    theta = rng.uniform(0.0, 2.0 * np.pi)
    c, s = np.cos(theta), np.sin(theta)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=points.dtype)
    return points @ rot.T, (None if normals is None else normals @ rot.T)


def jitter(points, rng, sigma=0.01, clip=0.05):
    """Add N(0, σ²) noise clipped to ±clip to every coordinate."""
    noise = np.clip(sigma * rng.standard_normal(points.shape), -clip, clip)
    return points + noise.astype(points.dtype)


def scale(points, rng, low=0.8, high=1.25):
    """Multiply by one uniform random factor."""
    return points * np.asarray(rng.uniform(low, high), dtype=points.dtype)


def point_dropout(points, normals, labels, rng, max_ratio=0.875):
    """Replace a random fraction (up to ``max_ratio``) of points by the first point (with its label)."""
    ratio = rng.uniform(0.0, max_ratio)
    drop = np.flatnonzero(rng.random(points.shape[0]) <= ratio)
    if drop.size:
        points = points.copy()
        points[drop] = points[0]
        if normals is not None:
            normals = normals.copy()
            normals[drop] = normals[0]
        if labels is not None:
            labels = labels.copy()
            labels[drop] = labels[0]
    return points, normals, labels


class Augment:
    """Configured augmentation chain; ``cfg`` keys: rotate, jitter_sigma, jitter_clip, scale_low,
    scale_high, dropout_max (0 disables each one that is numeric, False disables rotate)."""

    def __init__(self, cfg=None):
        cfg = dict(cfg or {})
        self.rotate = bool(cfg.get("rotate", True))
        self.jitter_sigma = float(cfg.get("jitter_sigma", 0.01))
        self.jitter_clip = float(cfg.get("jitter_clip", 0.05))
        self.scale_low = float(cfg.get("scale_low", 0.8))
        self.scale_high = float(cfg.get("scale_high", 1.25))
        self.dropout_max = float(cfg.get("dropout_max", 0.875))

    def __call__(self, points, normals, labels, rng):
        """Augment one cloud; returns (points, normals, labels)."""
        if self.rotate:
            points, normals = rotate_up(points, normals, rng)
        if self.scale_high > self.scale_low:
            points = scale(points, rng, self.scale_low, self.scale_high)
        if self.jitter_sigma > 0:
            points = jitter(points, rng, self.jitter_sigma, self.jitter_clip)
        if self.dropout_max > 0:
            points, normals, labels = point_dropout(points, normals, labels, rng, self.dropout_max)
        return points, normals, labels
