"""torch Dataset over building shards (``deep_perception.data.shards``), split by file or city.

A split is a list of selectors matched against the manifest's ``files``: a selector equal to a file's
``city``, or a glob (``fnmatch``) on its ``path`` or base name; a selector starting with ``!`` removes
the files it names (e.g. ``[nrw-wesel, "!LoD2_32_33[3-6]_*"]``). Buildings are never split at random
inside a file, so neighbours in one tile never straddle train and test.
"""

import fnmatch
import os

import numpy as np
import torch
from tqdm import tqdm

from deep_perception.data import shards
from deep_perception.data.augment import Augment
from deep_perception.data.preprocess import normalise, sample_indices
from deep_perception.vocab import ROOF_UNKNOWN

CHANNELS = {"xyz": 3, "xyz+normals": 6}


def channel_count(channels):
    """Number of network input channels for a channel spec ('xyz' or 'xyz+normals')."""
    if channels not in CHANNELS:
        raise ValueError(f"unknown channels {channels!r}; use one of {sorted(CHANNELS)}")
    return CHANNELS[channels]


def file_matches(entry, selector):
    """True when a manifest ``files`` entry is named by ``selector`` (city, or glob on path/base name)."""
    path = str(entry.get("path", ""))
    return (selector == entry.get("city") or fnmatch.fnmatch(path, selector)
            or fnmatch.fnmatch(os.path.basename(path), selector))


def select_files(manifest, selectors):
    """Indices of the manifest's files named by a selector and not excluded by a ``!selector``."""
    include = [s for s in selectors if not str(s).startswith("!")]
    exclude = [str(s)[1:] for s in selectors if str(s).startswith("!")]
    return [i for i, f in enumerate(manifest["files"])
            if any(file_matches(f, s) for s in include) and not any(file_matches(f, s) for s in exclude)]


def load_buildings(manifest_path, selectors, need_normals=True, progress=False):
    """Load every building of the files named by ``selectors`` from one manifest's shards.

    Returns a dict of arrays (points, normals?, labels, roof_class, file, building_ids) with ``file``
    as 'manifest-path::file-path' strings, and the list of selected file paths.
    """
    manifest = shards.read_manifest(manifest_path)
    root = manifest_path if os.path.isdir(manifest_path) else os.path.dirname(manifest_path)
    wanted = set(select_files(manifest, selectors))
    files = manifest["files"]
    out = {k: [] for k in ("points", "normals", "labels", "roof_class", "file", "building_ids")}
    for entry in tqdm(manifest["shards"], desc=f"shards {os.path.basename(root)}", disable=not progress):
        name = entry["file"] if isinstance(entry, dict) else entry
        arrays = shards.read_shard(os.path.join(root, name))
        keep = np.isin(arrays["file_index"], list(wanted))
        if not keep.any():
            continue
        out["points"].append(arrays["points"][keep])
        if need_normals:
            out["normals"].append(arrays["normals"][keep])
        out["labels"].append(arrays["labels"][keep])
        out["roof_class"].append(arrays["roof_class"][keep])
        out["file"].extend(f"{manifest_path}::{files[i]['path']}" for i in arrays["file_index"][keep])
        out["building_ids"].extend(arrays["building_ids"][keep].tolist())
    for key in ("points", "normals", "labels", "roof_class"):
        out[key] = np.concatenate(out[key]) if out[key] else None
    return out, [files[i]["path"] for i in sorted(wanted)]


class BuildingDataset(torch.utils.data.Dataset):
    """Buildings of one split as ``{'points': (n, C) float32, 'label': ...}`` samples.

    ``target`` 'labels' gives per-point surface labels (n,) int64; 'roof_class' gives the building's
    roof class (int64 scalar) and drops buildings without one. Training picks ``points`` random points
    and augments each time; evaluation picks them with a per-item fixed seed, so metrics repeat.
    """

    def __init__(self, manifests, selectors, points=1024, channels="xyz+normals", target="labels",
                 train=False, augment=None, sampling="random", normalisation="unit_sphere", seed=0,
                 max_buildings=None, progress=True):
        if target not in ("labels", "roof_class"):
            raise ValueError(f"unknown target {target!r}")
        self.points = int(points)
        self.channels = channels
        self.in_channels = channel_count(channels)
        self.target = target
        self.train = train
        self.augment = Augment(augment) if (train and augment is not False) else None
        self.sampling = sampling
        self.normalisation = normalisation
        self.seed = seed
        self.epoch = 0
        manifests = [manifests] if isinstance(manifests, (str, os.PathLike)) else list(manifests)
        parts, self.files = [], []
        for m in manifests:
            part, files = load_buildings(str(m), selectors, need_normals=self.in_channels > 3, progress=progress)
            if part["points"] is not None:
                parts.append(part)
            self.files.extend(f"{m}::{f}" for f in files)
        if not parts:
            raise ValueError(f"no buildings match split {selectors} in {manifests}")
        data = {}
        for k in parts[0]:
            if isinstance(parts[0][k], np.ndarray):
                data[k] = np.concatenate([p[k] for p in parts])
            elif isinstance(parts[0][k], list):
                data[k] = [v for p in parts for v in p[k]]
        keep = np.arange(len(data["points"]))
        if target == "roof_class":
            keep = keep[data["roof_class"] != ROOF_UNKNOWN]
        if max_buildings is not None and len(keep) > max_buildings:
            keep = np.sort(np.random.default_rng(seed).choice(keep, int(max_buildings), replace=False))
        self.xyz = data["points"][keep]
        self.normals = data["normals"][keep] if self.in_channels > 3 else None
        self.labels = data["labels"][keep]
        self.roof_class = data["roof_class"][keep].astype(np.int64)
        self.building_files = [data["file"][i] for i in keep]
        self.building_ids = [data["building_ids"][i] for i in keep]

    def __len__(self):
        return len(self.xyz)

    def set_epoch(self, epoch):
        """Vary the training randomness per epoch (also across DataLoader worker processes)."""
        self.epoch = int(epoch)

    def targets(self):
        """All targets of the split (per-point labels flattened, or roof classes) for class weights."""
        return self.labels.reshape(-1).astype(np.int64) if self.target == "labels" else self.roof_class

    def __getitem__(self, i):
        rng = np.random.default_rng((self.seed, self.epoch if self.train else 0, int(i), int(self.train)))
        xyz = self.xyz[i]
        idx = sample_indices(len(xyz), self.points, self.sampling, rng, xyz)
        pts = xyz[idx]
        nrm = self.normals[i][idx] if self.normals is not None else None
        lab = self.labels[i][idx]
        pts, _, _ = normalise(pts, self.normalisation)
        if self.augment is not None:
            pts, nrm, lab = self.augment(pts, nrm, lab, rng)
        x = pts if nrm is None else np.concatenate([pts, nrm], axis=1)
        label = lab.astype(np.int64) if self.target == "labels" else np.int64(self.roof_class[i])
        return {"points": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                "label": torch.as_tensor(label)}
