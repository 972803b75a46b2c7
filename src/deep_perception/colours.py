"""Packed RGB colours as carried by point clouds (numpy only, no ROS)."""

import numpy as np


def pack_rgb(colours):
    """uint8 (…, 3) RGB → float32 values carrying 0x00RRGGBB, the PointCloud2 ``rgb`` convention of rviz/PCL."""
    c = np.asarray(colours, dtype=np.uint32)
    packed = (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]
    return packed.astype(np.uint32).view(np.float32)


def unpack_rgb(values):
    """Inverse of :func:`pack_rgb`: float32 ``rgb`` → uint8 (…, 3)."""
    v = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    return np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], axis=-1).astype(np.uint8)
