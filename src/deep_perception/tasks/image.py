"""Roof-class classification of rendered building images with a ResNet (task ``resnet_image``).

Buildings come from CityGML files (``deep_perception.citygml``); each labelled building (a roofType
that maps to ``vocab.ROOF_CLASSES``) is triangulated and rendered by ray casting from ``views``
oblique virtual cameras (``deep_perception.sensors.render_views``) as a depth image and a shaded grey
image. Both are stored as the [0, 1] "unit" images the node computes from a 32FC1 depth / mono8
message (``inference.image.ImagePreprocess.unit_image``), so training and inference share one path.
Splits are by city (``citygml.cities.city_of``) or file glob, never by random building.

Task-owned config keys (see config/resnet_image.yaml)::

    model: {arch: resnet18, in_channels: 1, zero_init_residual: true, conv_backend: torch}
    data:
      sources: [dir-or-file, ...]          # CityGML files, or folders searched for *.gml / *.gml.gz
      cache: cache/image_data              # rendered splits, keyed by a hash of everything they depend on
      lod: null
      render: {size: [64, 64], views: 4, fov_deg: 40, elevation_deg: [30, 65], margin: 1.05}
      max_buildings: {train: 3000, val: 400, test: null}   # seeded reservoir sample per split
      splits: {train: [...], val: [...], test: [...]}      # city names or globs (see data.dataset)
    preprocess: {size: [64, 64], modalities: [depth, intensity], depth_scale_16u: 0.001, mean: 0.5, std: 0.25}
    augment: {hflip: true}                 # train: random modality per sample, horizontal flips
    loss: {class_weights: inverse_log}     # none | inverse | inverse_log
"""

import argparse
import glob
import hashlib
import json
import os
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from deep_perception.data.dataset import select_files
from deep_perception.fileio import atomic_path
from deep_perception.inference.image import ImagePreprocess
from deep_perception.models.resnet import build_resnet
from deep_perception.sensors.views import ViewSpec, render_views
from deep_perception.tasks.metrics import confusion_matrix, metrics_from_confusion
from deep_perception.tasks.pointnet import ConfigKeyError, class_weights
from deep_perception.train.task import Task, eval_mode
from deep_perception.vocab import ROOF_CLASSES, ROOF_UNKNOWN

SPLITS = ("train", "val", "test")
MODALITIES = ("depth", "intensity")
CACHE_VERSION = 1


def find_citygml_files(sources):
    """Sorted CityGML files named by ``sources`` (files, or folders searched recursively)."""
    files = []
    for src in sources:
        if os.path.isdir(src):
            for pattern in ("*.gml", "*.gml.gz"):
                files += glob.glob(os.path.join(src, "**", pattern), recursive=True)
        elif os.path.isfile(src):
            files.append(src)
        else:
            raise FileNotFoundError(f"data.sources: {src} is neither a file nor a folder")
    return sorted(set(os.path.abspath(f) for f in files))


def select_split_files(files, selectors):
    """Files named by ``selectors`` (city from ``citygml.cities.city_of``, or globs; ``!`` excludes),
    with the selector rules of ``data.dataset.select_files``."""
    from deep_perception.citygml.cities import city_of

    entries = [{"path": f, "city": city_of(f)} for f in files]
    return [files[i] for i in select_files({"files": entries}, selectors)]


def _building_seed(seed, building_id):
    return np.random.default_rng([int(seed), zlib.crc32(str(building_id).encode())])


def iter_labelled_meshes(files, lod=None, progress=False, desc="buildings"):
    """Yield (file, building, mesh) for every building with a known roof class and a non-empty mesh."""
    from deep_perception.citygml import building_to_mesh, iter_buildings

    for path in tqdm(files, desc=desc, disable=not progress, unit="file"):
        for b in iter_buildings(path, lod=lod):
            if b.roof_class == ROOF_UNKNOWN or b.roof_class is None:
                continue
            mesh = building_to_mesh(b)
            if len(mesh.faces) == 0:
                continue
            yield path, b, mesh


def render_split(files, spec: ViewSpec, preprocess: ImagePreprocess, max_buildings=None, seed=0, lod=None,
                 progress=False, desc="render"):
    """Render every labelled building of ``files`` (or a seeded reservoir sample of ``max_buildings``).

    Returns arrays: depth_unit float16 (N,V,H,W), shaded uint8 (N,V,H,W), label int64 (N,),
    building_id, source_file (str arrays).
    """
    rng = np.random.default_rng([int(seed), 4711])
    chosen = []  # reservoir of (file, building id, roof class, mesh)
    seen = 0
    for path, b, mesh in iter_labelled_meshes(files, lod, progress, desc=f"{desc}: read"):
        item = (path, b.id, int(b.roof_class), mesh.vertices, mesh.faces)
        if max_buildings is None or len(chosen) < max_buildings:
            chosen.append(item)
        else:
            j = int(rng.integers(0, seen + 1))
            if j < max_buildings:
                chosen[j] = item
        seen += 1
    h, w = spec.size
    n = len(chosen)
    depth = np.ones((n, spec.views, h, w), np.float16)
    shaded = np.zeros((n, spec.views, h, w), np.uint8)
    keep = np.ones(n, bool)
    for i, (path, bid, _, verts, faces) in enumerate(tqdm(chosen, desc=f"{desc}: views", disable=not progress)):
        d, s, _ = render_views(verts, faces, spec, _building_seed(seed, bid))
        if not (d > 0).any(axis=(1, 2)).all():
            keep[i] = False  # a view missed the building (degenerate mesh): skip the building
            continue
        for v in range(spec.views):
            depth[i, v] = preprocess.unit_image(d[v], "32FC1")
        shaded[i] = np.round(s * 255).astype(np.uint8)
    return {
        "depth_unit": depth[keep], "shaded": shaded[keep],
        "label": np.array([c[2] for c in chosen], np.int64)[keep],
        "building_id": np.array([c[1] for c in chosen], dtype=str)[keep],
        "source_file": np.array([c[0] for c in chosen], dtype=str)[keep],
    }


class RenderedImages(torch.utils.data.Dataset):
    """Rendered views as network inputs. Training items are (building, view) with a random modality
    and random horizontal flip; evaluation items are every (modality, building, view)."""

    def __init__(self, arrays, preprocess: ImagePreprocess, train: bool, hflip: bool = True):
        self.arrays = arrays
        self.preprocess = preprocess
        self.train = train
        self.hflip = hflip
        self.modalities = [m for m in MODALITIES if m in preprocess.modalities]
        self.n, self.views = arrays["depth_unit"].shape[:2]

    def __len__(self):
        per_modality = self.n * self.views
        return per_modality if self.train else per_modality * len(self.modalities)

    def targets(self):
        return self.arrays["label"]

    def unit(self, building, view, modality):
        if modality == "depth":
            return self.arrays["depth_unit"][building, view].astype(np.float32)
        return self.arrays["shaded"][building, view].astype(np.float32) / 255.0  # as a mono8 image

    def __getitem__(self, i):
        i = int(i)
        if self.train:
            m = int(np.random.randint(len(self.modalities)))
        else:
            m, i = divmod(i, self.n * self.views)
        b, v = divmod(i, self.views)
        x = self.preprocess.tensor(self.unit(b, v, self.modalities[m]))
        if self.train and self.hflip and np.random.rand() < 0.5:
            x = torch.flip(x, dims=[-1])  # a mirrored roof keeps its class
        return {"image": x, "label": int(self.arrays["label"][b]), "modality": m}


class ImageClassificationTask(Task):
    """``resnet_image``: roof class of a building from one rendered depth or shaded image."""

    name = "resnet_image"
    class_names = ROOF_CLASSES

    def __init__(self, config):
        super().__init__(config)
        self.model_cfg = dict(config.get("model") or {})
        self.data = dict(config.get("data") or {})
        for key in ("sources", "splits"):
            if not self.data.get(key):
                raise ConfigKeyError(f"data.{key} is required for the resnet_image task")
        render = dict(self.data.get("render") or {})
        try:
            self.spec = ViewSpec(size=tuple(render.get("size", (64, 64))), views=int(render.get("views", 4)),
                                 fov_deg=float(render.get("fov_deg", 40.0)),
                                 elevation_deg=tuple(render.get("elevation_deg", (30.0, 65.0))),
                                 margin=float(render.get("margin", 1.05)))
            self.preprocess = ImagePreprocess(**dict(config.get("preprocess") or {}))
        except (TypeError, ValueError) as exc:
            raise ConfigKeyError(f"data.render / preprocess: {exc}") from exc
        if self.spec.views < 1:
            raise ConfigKeyError("data.render.views must be >= 1")
        self.arch = self.model_cfg.get("arch", "resnet18")
        self.in_channels = int(self.model_cfg.get("in_channels", 1))
        if self.in_channels != 1:
            raise ConfigKeyError("model.in_channels must be 1 (depth and shaded images are one grey channel)")
        self.augment = dict(config.get("augment") or {})
        self.loss_cfg = dict(config.get("loss") or {})
        self._datasets = None
        self._weights = None

    # --- data ------------------------------------------------------------------------------------
    def split_files(self):
        files = find_citygml_files(self.data["sources"])
        out = {s: select_split_files(files, self.data["splits"][s]) for s in SPLITS if self.data["splits"].get(s)}
        seen = {}
        for split, fs in out.items():
            for f in fs:
                if f in seen:
                    raise ConfigKeyError(f"file {f} is in both the {seen[f]} and {split} splits")
                seen[f] = split
        return out

    def cache_path(self, split, files):
        caps = self.data.get("max_buildings") or {}
        key = json.dumps({"v": CACHE_VERSION, "files": [(f, os.path.getsize(f)) for f in files],
                          "spec": self.spec.to_dict(), "pre": self.preprocess.to_dict(), "lod": self.data.get("lod"),
                          "cap": caps.get(split), "seed": int(self.config.get("seed", 0))}, sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return os.path.join(self.data.get("cache", "cache/image_data"), f"{split}-{digest}.npz")

    def load_split(self, split, files):
        """Rendered arrays of a split, from the cache or rendered now (and cached atomically)."""
        path = self.cache_path(split, files)
        if os.path.isfile(path):
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        caps = self.data.get("max_buildings") or {}
        arrays = render_split(files, self.spec, self.preprocess, caps.get(split), int(self.config.get("seed", 0)),
                              self.data.get("lod"), progress=bool(self.config.get("train", {}).get("progress", True)),
                              desc=split)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
        return arrays

    def datasets(self):
        if self._datasets is None:
            out = {}
            for split, files in self.split_files().items():
                arrays = self.load_split(split, files)
                out[split] = RenderedImages(arrays, self.preprocess, train=(split == "train"),
                                            hflip=bool(self.augment.get("hflip", True)))
            self._datasets = out
        return self._datasets

    # --- Task interface ----------------------------------------------------------------------------
    def build_model(self):
        torch.manual_seed(int(self.config.get("seed", 0)))
        return build_resnet(self.arch, num_classes=len(self.class_names), in_channels=self.in_channels,
                            zero_init_residual=bool(self.model_cfg.get("zero_init_residual", True)),
                            conv_backend=self.model_cfg.get("conv_backend", "torch"))

    def loss(self, model, batch):
        x, y = batch["image"], batch["label"]
        device = next(model.parameters()).device
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss = F.cross_entropy(logits, y, weight=self._class_weight(device))
        correct = float((logits.argmax(dim=1) == y).sum())
        return loss, {"correct": correct, "count": float(len(y))}

    @torch.no_grad()
    def evaluate(self, model, loader):
        """Flat metrics; ``score`` is the mean class accuracy (balanced accuracy) over all views."""
        report = self.report(model, loader)
        flat = {"accuracy": report["all"]["oa"], "score": report["all"]["mean_class_accuracy"],
                "mean_class_accuracy": report["all"]["mean_class_accuracy"],
                "majority_baseline": report["all"]["majority_baseline"]}
        for m in MODALITIES:
            if m in report:
                flat[f"{m}/accuracy"] = report[m]["oa"]
                flat[f"{m}/mean_class_accuracy"] = report[m]["mean_class_accuracy"]
        return flat

    def metadata(self):
        return {"task": self.name, "kind": "cls", "arch": self.arch, "classes": list(self.class_names),
                "in_channels": self.in_channels, "preprocess": self.preprocess.to_dict(),
                "render": self.spec.to_dict(), "splits": self.data["splits"],
                "sources": list(self.data["sources"])}

    # --- extras -------------------------------------------------------------------------------------
    @torch.no_grad()
    def report(self, model, loader):
        """Nested metrics over ``loader``: ``all`` and per modality (confusion, majority baseline, ...)."""
        device = next(model.parameters()).device
        k = len(self.class_names)
        cms = {}
        with eval_mode(model):
            for batch in loader:
                pred = model(batch["image"].to(device)).argmax(dim=1).cpu().numpy()
                y, mod = batch["label"].numpy(), batch["modality"].numpy()
                for m in np.unique(mod):
                    sel = mod == m
                    cm = confusion_matrix(y[sel], pred[sel], k)
                    cms[MODALITIES[int(m)]] = cms.get(MODALITIES[int(m)], 0) + cm
        names = list(self.class_names)
        out = {m: metrics_from_confusion(cm, names) for m, cm in cms.items()}
        out["all"] = metrics_from_confusion(sum(cms.values()) if cms else np.zeros((k, k), np.int64), names)
        return out

    def _class_weight(self, device):
        mode = self.loss_cfg.get("class_weights", "none")
        if mode in (None, "none", False):
            return None
        if self._weights is None:
            self._weights = class_weights(self.datasets()["train"].targets(), len(self.class_names), mode)
        return self._weights.to(device)


def export_views(config, split, count, size, out_path, seed=1):
    """Write ``count`` held-back buildings of ``split`` (classes taken in turn) rendered at ``size`` as they
    would come from a camera: metric 32FC1 depth (0 = no return) and mono8 shaded images, with labels."""
    task = ImageClassificationTask(config)
    files = task.split_files().get(split)
    if not files:
        raise ConfigKeyError(f"split {split!r} has no files")
    spec = ViewSpec(size=tuple(size), views=1, fov_deg=task.spec.fov_deg, elevation_deg=task.spec.elevation_deg,
                    margin=task.spec.margin)
    rng = np.random.default_rng(seed)
    items = list(iter_labelled_meshes(files, task.data.get("lod")))
    # round-robin over the classes present (seeded order inside each), so rare roofs are shown too
    by_class = {}
    for i in rng.permutation(len(items)):
        by_class.setdefault(int(items[i][1].roof_class), []).append(int(i))
    pick = []
    while len(pick) < min(count, len(items)):
        for c in sorted(by_class):
            if by_class[c] and len(pick) < count:
                pick.append(by_class[c].pop(0))
    depth, shaded, labels, ids = [], [], [], []
    for i in sorted(pick):
        _, b, mesh = items[i]
        d, s, _ = render_views(mesh.vertices, mesh.faces, spec, _building_seed(seed, b.id))
        depth.append(d[0])
        shaded.append(np.round(s[0] * 255).astype(np.uint8))
        labels.append(int(b.roof_class))
        ids.append(b.id)
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, depth=np.stack(depth), shaded=np.stack(shaded), label=np.array(labels),
                                building_id=np.array(ids, dtype=str), classes=np.array(ROOF_CLASSES, dtype=str))
    return len(ids)


def evaluate_checkpoint(config, checkpoint, split="test", batch_size=128):
    """Full report (all / depth / intensity: accuracy, mean class accuracy, majority baseline, confusion)
    of a checkpoint on a split of ``config`` (rendered or taken from the cache)."""
    from deep_perception.train.checkpoint import load_checkpoint

    task = ImageClassificationTask(config)
    files = task.split_files().get(split)
    if not files:
        raise ConfigKeyError(f"split {split!r} has no files")
    ds = RenderedImages(task.load_split(split, files), task.preprocess, train=False)
    model = task.build_model()
    state = load_checkpoint(checkpoint)["state_dict"]
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    report = task.report(model, torch.utils.data.DataLoader(ds, batch_size=batch_size))
    report["buildings"], report["views"] = int(ds.n), int(ds.views)
    return report


def export_model(checkpoint, output, half=True, extra_metadata=None):
    """Weights-only copy of a training checkpoint for shipping (fp16 floats when ``half``)."""
    from deep_perception.train.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(checkpoint)
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in ckpt["state_dict"].items()}
    meta = {**ckpt["metadata"], **(extra_metadata or {}), "stored_dtype": "float16" if half else "float32"}
    save_checkpoint(output, state, meta, epoch=ckpt.get("epoch", 0), step=ckpt.get("step", 0))


def main(argv=None):
    from deep_perception.train.config import load_config

    ap = argparse.ArgumentParser(description="Rendered-image data for the resnet_image task")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="render (and cache) every split of a config")
    r.add_argument("--config", required=True)
    e = sub.add_parser("export", help="write held-back views as camera-like depth/mono8 images (npz)")
    e.add_argument("--config", required=True)
    e.add_argument("--split", default="test")
    e.add_argument("--count", type=int, default=8)
    e.add_argument("--size", type=int, nargs=2, default=[120, 160], metavar=("H", "W"))
    e.add_argument("--seed", type=int, default=1)
    e.add_argument("-o", "--output", required=True)
    v = sub.add_parser("evaluate", help="metrics of a checkpoint on a split (JSON)")
    v.add_argument("--config", required=True)
    v.add_argument("--checkpoint", required=True)
    v.add_argument("--split", default="test")
    v.add_argument("-o", "--output", help="also write the report here (JSON)")
    x = sub.add_parser("export-model", help="weights-only fp16 copy of a training checkpoint")
    x.add_argument("--config", required=True)
    x.add_argument("--checkpoint", required=True)
    x.add_argument("-o", "--output", required=True)
    x.add_argument("--fp32", action="store_true", help="keep float32 weights")
    args = ap.parse_args(argv)
    config = load_config(args.config)
    if args.cmd == "evaluate":
        from deep_perception.fileio import write_json
        report = evaluate_checkpoint(config, args.checkpoint, args.split)
        if args.output:
            write_json(args.output, report)
        for key in ("all", "depth", "intensity"):
            if key in report:
                r = report[key]
                print(f"{args.split} {key:9s}: accuracy {r['oa']:.3f}  mean class accuracy {r['mean_class_accuracy']:.3f}"
                      f"  majority baseline {r['majority_baseline']:.3f}  ({r['count']} views)")
        return
    if args.cmd == "export-model":
        export_model(args.checkpoint, args.output, half=not args.fp32)
        print(f"wrote {args.output}")
        return
    if args.cmd == "render":
        for split, ds in ImageClassificationTask(config).datasets().items():
            counts = np.bincount(ds.targets(), minlength=len(ROOF_CLASSES))
            print(f"{split}: {ds.n} buildings x {ds.views} views; classes "
                  f"{dict((ROOF_CLASSES[i], int(c)) for i, c in enumerate(counts) if c)}")
    else:
        n = export_views(config, args.split, args.count, args.size, args.output, args.seed)
        print(f"wrote {n} views of split {args.split} to {args.output}")


if __name__ == "__main__":
    main()
