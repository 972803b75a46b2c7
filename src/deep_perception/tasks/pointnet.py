"""PointNet training tasks: per-building roof class (``pointnet_cls``) and per-point surface class
(``pointnet_seg``), implementing ``deep_perception.train.task.Task``.

Task-owned config keys (the trainer owns task/seed/threads/output/train/optimizer/schedule/distributed)::

    data:
      manifest: cache/shards/nrw            # folder or manifest.json; a list joins several conversions
      points: 1024                          # points per cloud fed to the network
      channels: xyz+normals                 # xyz | xyz+normals
      sampling: random                      # random | fps
      normalisation: unit_sphere            # unit_sphere | centre | none
      max_buildings: {train: 4000, val: 500, test: null}   # optional caps (seeded subsample)
      splits: {train: [...], val: [...], test: [...]}      # city names or globs on file paths
    model: {use_tnets: true, dropout_keep: 0.7, reg_weight: 0.001,
            bn_momentum: {init: 0.5, decay: 0.5, decay_epochs: 20, minimum: 0.01}}
    loss: {class_weights: none}             # none | inverse | inverse_log (from the train split)
    augment: {rotate: true, jitter_sigma: 0.01, jitter_clip: 0.05, scale_low: 0.8, scale_high: 1.25,
              dropout_max: 0.875}           # or false
"""

import os

import numpy as np
import torch
import torch.nn.functional as F

from deep_perception.data.dataset import BuildingDataset, channel_count
from deep_perception.models.pointnet import (bn_momentum, build_pointnet, feature_transform_regulariser,
                                             set_bn_momentum)
from deep_perception.tasks.metrics import confusion_matrix, metrics_from_confusion
from deep_perception.train.checkpoint import file_sha256
from deep_perception.train.task import Task, eval_mode
from deep_perception.vocab import ROOF_CLASSES, SURFACE_CLASSES

SPLITS = ("train", "val", "test")
MAIN_SURFACES = ("ground", "wall", "roof")


class ConfigKeyError(ValueError):
    """A task config value is missing or invalid; the message names the key."""


def class_weights(targets, num_classes, mode):
    """Loss weights per class from training targets: None, 'inverse' (1/freq, mean 1 over present
    classes) or 'inverse_log' (1/ln(1.2 + freq), as PointNet++'s semantic segmentation)."""
    if mode in (None, "none", False):
        return None
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=num_classes).astype(np.float64)
    freq = counts / max(counts.sum(), 1.0)
    present = counts > 0
    if mode == "inverse":
        w = np.where(present, 1.0 / np.maximum(freq, 1e-12), 0.0)
    elif mode == "inverse_log":
        w = np.where(present, 1.0 / np.log(1.2 + freq), 0.0)
    else:
        raise ConfigKeyError(f"loss.class_weights must be none, inverse or inverse_log, got {mode!r}")
    w = w / w[present].mean()
    return torch.tensor(w, dtype=torch.float32)


class _PointNetTask(Task):
    kind = "cls"
    target = "roof_class"
    class_names = ROOF_CLASSES
    main_classes = None

    def __init__(self, config):
        super().__init__(config)
        data = config.get("data")
        if not isinstance(data, dict) or "manifest" not in data:
            raise ConfigKeyError("data.manifest is required (folder or manifest.json of converted shards)")
        splits = data.get("splits")
        if not isinstance(splits, dict) or not all(isinstance(splits.get(s), list) and splits[s]
                                                   for s in ("train", "val")):
            raise ConfigKeyError("data.splits.train and data.splits.val must be non-empty lists of cities/globs")
        self.data = data
        self.points = int(data.get("points", 1024))
        self.channels = data.get("channels", "xyz+normals")
        self.in_channels = channel_count(self.channels)
        self.sampling = data.get("sampling", "random")
        self.normalisation = data.get("normalisation", "unit_sphere")
        self.model_cfg = dict(config.get("model") or {})
        self.reg_weight = float(self.model_cfg.get("reg_weight", 0.001))
        self.loss_cfg = dict(config.get("loss") or {})
        self._datasets = None
        self._weights = None

    # --- Task interface -------------------------------------------------------------------------
    def build_model(self):
        torch.manual_seed(int(self.config.get("seed", 0)))
        return build_pointnet(self.kind, len(self.class_names), self.in_channels,
                              normal_channels=self.in_channels >= 6,
                              use_tnets=bool(self.model_cfg.get("use_tnets", True)),
                              dropout_keep=float(self.model_cfg.get("dropout_keep", 0.7)))

    def datasets(self):
        if self._datasets is None:
            caps = self.data.get("max_buildings") or {}
            seed = int(self.config.get("seed", 0))
            out = {}
            for split in SPLITS:
                selectors = self.data["splits"].get(split)
                if not selectors:
                    continue
                out[split] = BuildingDataset(
                    self.data["manifest"], selectors, points=self.points, channels=self.channels,
                    target=self.target, train=(split == "train"),
                    augment=self.config.get("augment", {}) if split == "train" else False,
                    sampling=self.sampling, normalisation=self.normalisation, seed=seed,
                    max_buildings=caps.get(split), progress=bool(self.config.get("train", {}).get("progress", True)))
            self._check_disjoint(out)
            self._datasets = out
        return self._datasets

    def loss(self, model, batch):
        x, y = batch["points"], batch["label"]
        logits, trans = model(x)
        weight = self._class_weight(x.device)
        if self.kind == "seg":
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), weight=weight)
        else:
            ce = F.cross_entropy(logits, y, weight=weight)
        reg = feature_transform_regulariser(trans, self.reg_weight).to(ce.device)
        pred = logits.argmax(dim=-1)
        stats = {"correct": float((pred == y).sum()), "count": float(y.numel()),
                 "ce": float(ce.detach()) * len(x), "reg": float(reg.detach()) * len(x), "samples": float(len(x))}
        return ce + reg, stats

    @torch.no_grad()
    def evaluate(self, model, loader):
        """Flat float metrics (accuracy, oa, miou, per-class iou/acc); ``score`` is mIoU (seg) or OA (cls)."""
        report = self.report(model, loader)
        flat = {k: v for k, v in report.items() if isinstance(v, float)}
        flat["accuracy"] = report["oa"]
        for name, v in report["iou"].items():
            flat[f"iou/{name}"] = v
        for name, v in report["class_accuracy"].items():
            flat[f"acc/{name}"] = v
        flat["score"] = report["miou"] if self.kind == "seg" else report["oa"]
        return flat

    def metadata(self):
        return {
            "task": self.name, "kind": self.kind, "classes": list(self.class_names),
            "points": self.points, "channels": self.channels, "in_channels": self.in_channels,
            "normalisation": self.normalisation, "sampling": self.sampling,
            "model": {"use_tnets": bool(self.model_cfg.get("use_tnets", True)),
                      "dropout_keep": float(self.model_cfg.get("dropout_keep", 0.7))},
            "splits": self.data["splits"], "manifest": self.data["manifest"],
            "manifest_sha256": self._manifest_hashes(),
        }

    def on_epoch_start(self, model, epoch):
        cfg = dict(self.model_cfg.get("bn_momentum") or {})
        set_bn_momentum(model, bn_momentum(epoch, **cfg))
        for ds in (self._datasets or {}).values():
            ds.set_epoch(epoch)

    # --- extras -----------------------------------------------------------------------------------
    def _manifest_hashes(self):
        """{manifest path: sha256 of its manifest.json} — which converted data a checkpoint saw."""
        paths = self.data["manifest"]
        out = {}
        for m in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
            f = os.path.join(m, "manifest.json") if os.path.isdir(m) else m
            out[str(m)] = file_sha256(f) if os.path.isfile(f) else None
        return out

    @torch.no_grad()
    def report(self, model, loader):
        """Full metrics (nested: per-class IoU, confusion matrix, majority baseline) over ``loader``."""
        device = next(model.parameters()).device
        k = len(self.class_names)
        cm = np.zeros((k, k), dtype=np.int64)
        with eval_mode(model):
            for batch in loader:
                logits, _ = model(batch["points"].to(device))
                cm += confusion_matrix(batch["label"].numpy(), logits.argmax(dim=-1).cpu().numpy(), k)
        return metrics_from_confusion(cm, list(self.class_names), self.main_classes)

    def _class_weight(self, device):
        mode = self.loss_cfg.get("class_weights", "none")
        if mode in (None, "none", False):
            return None
        if self._weights is None:
            self._weights = class_weights(self.datasets()["train"].targets(), len(self.class_names), mode)
        return self._weights.to(device)

    @staticmethod
    def _check_disjoint(datasets):
        seen = {}
        for split, ds in datasets.items():
            for f in ds.files:
                if f in seen:
                    raise ConfigKeyError(f"file {f} is in both the {seen[f]} and {split} splits")
                seen[f] = split


class PointNetClassificationTask(_PointNetTask):
    """Roof class per building (``vocab.ROOF_CLASSES``); buildings without a roofType are skipped."""

    name = "pointnet_cls"
    kind = "cls"
    target = "roof_class"
    class_names = ROOF_CLASSES


class PointNetSegmentationTask(_PointNetTask):
    """Surface class per point (``vocab.SURFACE_CLASSES``); ``miou_main`` is over ground/wall/roof."""

    name = "pointnet_seg"
    kind = "seg"
    target = "labels"
    class_names = SURFACE_CLASSES
    main_classes = MAIN_SURFACES
