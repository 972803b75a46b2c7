"""Converted CityGML as a stream of labelled clouds (the library side of the citygml_dataset node).

``prepare`` converts the inputs (or reuses an output whose manifest has the same inputs and options);
``DatasetClouds`` serves each sample as a structured array with ``x y z normal_x normal_y normal_z
label rgb`` (float32 / uint8 / packed float32), in metres relative to a dataset origin (the floor of the
first sample's offset, so a tile's buildings stand where they are, with float32 precision kept).
"""

import json
import os

import numpy as np

from deep_perception.citygml import convert
from deep_perception.colours import pack_rgb
from deep_perception.data.shards import MANIFEST_NAME, read_manifest, read_shard
from deep_perception.fileio import file_sha256
from deep_perception.vocab import ROOF_CLASSES, SURFACE_COLOURS

CLOUD_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("normal_x", "<f4"), ("normal_y", "<f4"),
                        ("normal_z", "<f4"), ("label", "u1"), ("rgb", "<f4")], align=True)


def prepare(inputs, output, opts, workers=1, reuse=True):
    """Manifest of ``output``: converted now, or reused when inputs, options and input files match."""
    inputs = [os.path.abspath(os.path.expanduser(p)) for p in inputs]
    if reuse and os.path.exists(os.path.join(output, MANIFEST_NAME)):
        man = read_manifest(output)
        if man.get("inputs") == inputs and man.get("options") == opts.manifest_dict() and _same_files(man, inputs):
            man["reused"] = True
            return man
    man = convert.convert_all(inputs, output, opts, workers=workers)
    man["reused"] = False
    return man


def _same_files(manifest, inputs):
    """True when ``inputs`` still expand to the manifest's files with the same sizes and SHA-256."""
    try:
        files = convert.find_inputs(inputs)
    except OSError:
        return False
    entries = manifest.get("files", [])
    if files != [f.get("path") for f in entries]:
        return False
    # the size check is cheap and catches most edits; the hash catches same-size ones
    return all(os.path.getsize(f["path"]) == f.get("bytes") and file_sha256(f["path"]) == f.get("sha256")
               for f in entries)


_RGB = pack_rgb(np.asarray(SURFACE_COLOURS, np.uint8))


class DatasetClouds:
    """Random access to the samples of a converted output folder, one shard in memory at a time."""

    def __init__(self, output):
        self.output = output
        self.manifest = read_manifest(output)
        self.index = []  # (shard entry, row)
        for entry in self.manifest["shards"]:
            self.index.extend((entry, row) for row in range(entry["count"]))
        self._cached = (None, None, None)
        self.origin = np.zeros(3)
        if self.index:
            self.origin = np.floor(self._load(self.index[0][0])[0]["offsets"][0])
        self._ids = None

    def __len__(self):
        return len(self.index)

    def _load(self, entry):
        if self._cached[0] is not entry:
            arrays = read_shard(os.path.join(self.output, entry["file"]))
            with open(os.path.join(self.output, entry["attributes"]), encoding="utf-8") as f:
                attrs = json.load(f)
            self._cached = (entry, arrays, attrs)
        return self._cached[1], self._cached[2]

    def find(self, building_id):
        """Index of the first sample with this building id, or None."""
        if self._ids is None:
            self._ids = {}
            i = 0
            for entry in self.manifest["shards"]:
                with open(os.path.join(self.output, entry["attributes"]), encoding="utf-8") as f:
                    for a in json.load(f):
                        self._ids.setdefault(a["id"], i)
                        i += 1
        return self._ids.get(building_id)

    def cloud(self, i):
        """(structured array (N,), info dict) of sample ``i``."""
        entry, row = self.index[i]
        arrays, attrs = self._load(entry)
        pts = (arrays["points"][row].astype(np.float64) + (arrays["offsets"][row] - self.origin)).astype(np.float32)
        out = np.zeros(len(pts), CLOUD_DTYPE)
        out["x"], out["y"], out["z"] = pts.T
        nrm = arrays["normals"][row]
        out["normal_x"], out["normal_y"], out["normal_z"] = nrm.T
        labels = arrays["labels"][row]
        out["label"] = labels
        out["rgb"] = _RGB[labels]
        info = dict(attrs[row])
        rc = int(arrays["roof_class"][row])
        info.update(index=i, roof_class_name=ROOF_CLASSES[rc] if rc >= 0 else "unknown",
                    file=self.manifest["files"][int(arrays["file_index"][row])]["path"],
                    offset=arrays["offsets"][row].tolist())
        return out, info

    def summary(self):
        """JSON-able summary for the latched topic."""
        m = self.manifest
        return {"output": self.output, "samples": len(self), "origin": self.origin.tolist(),
                "points_per_building": m["points_per_building"], "counts": m["counts"],
                "histograms": m["histograms"], "reused": m.get("reused", False),
                "files": [{"path": f["path"], "city": f["city"], "crs": f["crs"], "samples": f["samples"]}
                          for f in m["files"]]}


class Cursor:
    """Which sample the node publishes next: in order, wrapping on request; copes with an empty dataset."""

    def __init__(self, clouds):
        self.clouds = clouds
        self.next = 0

    def take(self, wrap=True):
        """Index of the next sample, or None when the dataset is empty (or, without ``wrap``, exhausted)."""
        n = len(self.clouds)
        if n == 0 or (self.next >= n and not wrap):
            return None
        i = self.next % n
        self.next = i + 1
        return i

    def resolve(self, request):
        """(index, None) for a request ("" = next sample, else a building id), or (None, reason to reject)."""
        if request:
            i = self.clouds.find(request)
            return (i, None) if i is not None else (None, f"unknown building id {request!r}")
        i = self.take(wrap=True)
        return (i, None) if i is not None else (None, f"dataset {self.clouds.output} has no samples")
