"""Training shards: fixed-size labelled point clouds of buildings, plus a JSON manifest.

A shard is an uncompressed ``.npz`` holding B buildings of N points each:

=============  ==============  =====================================================================
key            dtype, shape    meaning
=============  ==============  =====================================================================
points         float32 (B,N,3) metres, relative to ``offsets`` (keeps millimetres at UTM magnitudes)
normals        float32 (B,N,3) unit surface normal of the triangle each point was sampled on
labels         uint8   (B,N)   index into ``vocab.SURFACE_CLASSES``
roof_class     int16   (B,)    index into ``vocab.ROOF_CLASSES``, ``vocab.ROOF_UNKNOWN`` (-1) if none
offsets        float64 (B,3)   per-building origin in the output CRS (metres)
building_ids   str     (B,)    gml:id of the building
file_index     int32   (B,)    index into the manifest's ``files`` list
=============  ==============  =====================================================================

The manifest (``manifest.json``) lists ``files`` (path, city, sha256, crs), ``shards`` (file name,
count), ``points_per_building``, class names, counts and histograms. Everything is written atomically.
"""

import json
import os

import numpy as np

from deep_perception.fileio import atomic_path, write_json

SHARD_KEYS = ("points", "normals", "labels", "roof_class", "offsets", "building_ids", "file_index")
MANIFEST_NAME = "manifest.json"


class ShardFormatError(ValueError):
    """A shard or manifest does not follow the documented layout."""


def validate_shard(arrays):
    """Check keys, dtypes and shapes of a shard's arrays; raise ShardFormatError with the reason."""
    missing = [k for k in SHARD_KEYS if k not in arrays]
    if missing:
        raise ShardFormatError(f"shard lacks arrays {missing}")
    pts = arrays["points"]
    if pts.ndim != 3 or pts.shape[2] != 3 or pts.dtype != np.float32:
        raise ShardFormatError(f"points must be float32 (B,N,3), got {pts.dtype} {pts.shape}")
    b, n = pts.shape[:2]
    expected = {
        "normals": ((b, n, 3), np.float32),
        "labels": ((b, n), np.uint8),
        "roof_class": ((b,), np.int16),
        "offsets": ((b, 3), np.float64),
        "building_ids": ((b,), None),
        "file_index": ((b,), np.int32),
    }
    for key, (shape, dtype) in expected.items():
        a = arrays[key]
        if a.shape != shape or (dtype is not None and a.dtype != dtype):
            raise ShardFormatError(f"{key} must be {dtype} {shape}, got {a.dtype} {a.shape}")


def write_shard(path, arrays):
    """Validate and write one shard atomically (uncompressed npz)."""
    validate_shard(arrays)
    arrays = dict(arrays)
    arrays["building_ids"] = np.asarray(arrays["building_ids"], dtype=np.str_)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: arrays[k] for k in SHARD_KEYS})


def read_shard(path):
    """Load a shard into a dict of numpy arrays (validated)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ShardFormatError(f"{path}: cannot read shard: {exc}") from exc
    validate_shard(arrays)
    return arrays


def write_manifest(directory, manifest):
    """Write ``manifest.json`` in ``directory`` atomically."""
    write_json(os.path.join(directory, MANIFEST_NAME), manifest)


def read_manifest(directory_or_file):
    """Read a manifest given its folder or its path."""
    path = directory_or_file
    if os.path.isdir(path):
        path = os.path.join(path, MANIFEST_NAME)
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    for key in ("files", "shards", "points_per_building"):
        if key not in manifest:
            raise ShardFormatError(f"{path}: manifest lacks '{key}'")
    return manifest
