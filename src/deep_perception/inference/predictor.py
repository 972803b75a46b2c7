"""Predictor: a trained PointNet checkpoint → results for raw point clouds, with the training preprocessing.

Per cloud: drop non-finite points → pick N points (random with a fixed seed, or farthest-point) →
centre/scale exactly as the training Dataset (``deep_perception.data.preprocess``) → forward (several
clouds batched) → softmax. Segmentation labels go back to EVERY input point: points not fed to the
network take the label and score of their nearest sampled neighbour (scipy cKDTree; with normals, nearest
in position and normal, so labels do not leak across a roof edge); non-finite input points get label -1
and score 0. Uses CUDA when present unless told otherwise.
"""

import dataclasses
import time
from typing import List, Optional

import numpy as np
import torch
from scipy.spatial import cKDTree

from deep_perception.data.preprocess import estimate_normals, normalise, sample_indices
from deep_perception.inference.fast_pointnet import FastPointNet
from deep_perception.models.pointnet import build_pointnet
from deep_perception.train.checkpoint import file_sha256, load_checkpoint

UNLABELLED = -1


@dataclasses.dataclass
class Prediction:
    """One cloud's result. cls: ``probabilities`` (k,), ``class_id``, ``score``. seg: ``labels`` and
    ``scores`` per INPUT point (-1 / 0 where the input was not finite), plus the class histogram."""

    kind: str
    probabilities: Optional[np.ndarray] = None
    class_id: int = UNLABELLED
    score: float = 0.0
    labels: Optional[np.ndarray] = None
    scores: Optional[np.ndarray] = None
    valid_points: int = 0


def pick_device(device="auto"):
    """'auto' → cuda when available, else cpu; otherwise the named device (validated)."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


class Predictor:
    """Load a ``pointnet_cls`` / ``pointnet_seg`` checkpoint and predict on raw clouds.

    ``fast=True`` runs :class:`FastPointNet` (BN folded, point-major matmuls; same outputs within 1e-4),
    ``fast=False`` the eager training model in eval mode. ``sampling``/``points`` default to the
    checkpoint's. ``seed`` fixes random sampling, so one cloud always gives one answer. A model trained
    with normals, given a cloud without them, estimates them (``estimate_normals``) unless told not to.
    Segmentation labels reach points that were not fed to the network from their nearest fed point in
    (xyz / cloud scale, ``normal_weight`` · normal) space for models with normals, in xyz otherwise.
    """

    def __init__(self, checkpoint, device="auto", fast=True, sampling=None, points=None, seed=0,
                 threads=None, estimate_missing_normals=True, normal_weight=0.5):
        if threads:
            torch.set_num_threads(int(threads))
        ckpt = load_checkpoint(checkpoint, map_location="cpu")
        meta = ckpt["metadata"]
        for key in ("kind", "classes", "points", "in_channels", "normalisation"):
            if key not in meta:
                raise ValueError(f"{checkpoint}: metadata lacks '{key}'; not a PointNet checkpoint")
        self.checkpoint_path = str(checkpoint)
        self.checkpoint_sha256 = file_sha256(checkpoint)
        self.metadata = meta
        self.kind = meta["kind"]
        self.class_names = list(meta["classes"])
        self.in_channels = int(meta["in_channels"])
        self.channels = meta.get("channels", "xyz" if self.in_channels == 3 else "xyz+normals")
        self.normalisation = meta["normalisation"]
        self.points = int(points or meta["points"])
        self.sampling = sampling or meta.get("sampling", "random")
        self.seed = int(seed)
        self.device = pick_device(device)
        model_cfg = meta.get("model", {})
        model = build_pointnet(self.kind, len(self.class_names), self.in_channels,
                               normal_channels=self.in_channels >= 6,
                               use_tnets=bool(model_cfg.get("use_tnets", True)),
                               dropout_keep=float(model_cfg.get("dropout_keep", 0.7)))
        state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
        model.load_state_dict(state)
        model.eval()
        self.eager = model.to(self.device)
        self.model = (FastPointNet(model).eval() if fast else model).to(self.device)
        self.fast = bool(fast)
        self.estimate_missing_normals = bool(estimate_missing_normals)
        self.normal_weight = float(normal_weight)
        self.last_timing = {}

    @property
    def needs_normals(self):
        return self.in_channels >= 6

    def input_spec(self):
        """Human-readable input description (ModelInfo.input_spec)."""
        return f"pointcloud {self.channels}, {self.points} points, {self.sampling} sampling, {self.normalisation}"

    def prepare(self, points, normals=None):
        """One cloud → (network input (N, C) float32, finite input indices, sampled indices into those)."""
        return self._prepare(points, normals)[:3]

    def _prepare(self, points, normals=None):
        """``prepare`` plus what label mapping needs: (x, finite, idx, (xyz, normals, scale) of finite points)."""
        pts = np.asarray(points, dtype=np.float32)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f"points must be (M, 3), got shape {pts.shape}")
        if self.needs_normals:
            if normals is None and not self.estimate_missing_normals:
                raise ValueError(f"model expects {self.channels} input; no normals given")
            if normals is None:
                ok = np.flatnonzero(np.isfinite(pts).all(axis=1))
                normals = np.full(pts.shape, np.nan, np.float32)
                normals[ok] = estimate_normals(pts[ok])
            nrm = np.asarray(normals, dtype=np.float32)
            if nrm.shape != pts.shape:
                raise ValueError(f"normals shape {nrm.shape} != points shape {pts.shape}")
            finite = np.flatnonzero(np.isfinite(pts).all(axis=1) & np.isfinite(nrm).all(axis=1))
        else:
            finite = np.flatnonzero(np.isfinite(pts).all(axis=1))
        if finite.size == 0:
            raise ValueError("cloud has no finite points")
        kept = pts[finite]
        rng = np.random.default_rng(self.seed)
        idx = sample_indices(len(kept), self.points, self.sampling, rng, kept)
        x, _, scale = normalise(kept[idx], self.normalisation)
        kept_normals = None
        if self.needs_normals:
            kept_normals = nrm[finite]
            x = np.concatenate([x, kept_normals[idx]], axis=1)
        return x, finite, idx, (kept, kept_normals, float(scale))

    @torch.inference_mode()
    def forward(self, batch):
        """Network logits for a prepared (B, N, C) float32 batch (numpy or tensor)."""
        x = torch.as_tensor(batch, dtype=torch.float32).to(self.device)
        out = self.model(x)
        return out[0] if isinstance(out, tuple) else out

    def predict(self, clouds: List[np.ndarray], normals: Optional[List[np.ndarray]] = None):
        """Predict a list of clouds (each (M_i, 3)); ``normals`` a parallel list when the model needs them."""
        if isinstance(clouds, np.ndarray):
            clouds = [clouds]
            normals = None if normals is None else [normals]
        t0 = time.perf_counter()
        prepared = [self._prepare(c, None if normals is None else normals[i]) for i, c in enumerate(clouds)]
        t1 = time.perf_counter()
        logits = self.forward(np.stack([p[0] for p in prepared]))
        probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        t2 = time.perf_counter()
        results = [self._result(c, p, pr) for c, p, pr in zip(clouds, prepared, probs)]
        t3 = time.perf_counter()
        self.last_timing = {"preprocess": t1 - t0, "inference": t2 - t1, "postprocess": t3 - t2}
        return results

    def _result(self, cloud, prepared, probs):
        x, finite, idx, (kept, kept_normals, scale) = prepared
        if self.kind == "cls":
            cid = int(np.argmax(probs))
            return Prediction("cls", probabilities=probs, class_id=cid, score=float(probs[cid]),
                              valid_points=int(finite.size))
        point_labels = probs.argmax(axis=1)
        point_scores = probs[np.arange(len(probs)), point_labels]
        labels = np.full(len(cloud), UNLABELLED, dtype=np.int64)
        scores = np.zeros(len(cloud), dtype=np.float32)
        if len(np.unique(idx)) == len(kept):  # every finite point was fed to the network
            labels[finite[idx]] = point_labels
            scores[finite[idx]] = point_scores
        else:
            feats = kept / scale
            if kept_normals is not None:  # nearest on the same surface: a roof point never takes a wall label
                feats = np.concatenate([feats, self.normal_weight * kept_normals], axis=1)
            _, nn = cKDTree(feats[idx]).query(feats, k=1)
            labels[finite] = point_labels[nn]
            scores[finite] = point_scores[nn]
        hist = np.bincount(point_labels, minlength=len(self.class_names)) / len(point_labels)
        return Prediction("seg", probabilities=hist.astype(np.float32), class_id=int(np.argmax(hist)),
                          score=float(hist.max()), labels=labels, scores=scores, valid_points=int(finite.size))
