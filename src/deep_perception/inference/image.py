"""Images → ResNet class probabilities, with exactly the preprocessing the image task trained with.

Two input modalities, both reduced to one grey channel in [0, 1] before the network's mean/std:

- ``depth`` (encodings ``16UC1`` in millimetres by default, ``32FC1`` in metres): pixels that are not
  finite or not > 0 carry no measurement; the valid range is stretched to [0, 1] (nearest = 0,
  farthest = 1) and invalid pixels become 1 (background is far away). Relative depth makes the input
  independent of how far the camera stands from the building.
- ``intensity`` (``mono8``, ``rgb8``, ``bgr8``): grey value (ITU-R BT.601 luma for colour) / 255.

The image is then resized to the model's input size (area-averaging when shrinking, bilinear when
growing) and normalised by ``(x - mean) / std``. ``ImageClassifier`` loads a ``resnet_image``
checkpoint, runs it on the chosen conv backend and device, and reports per-stage times.
"""

import dataclasses
import time
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from deep_perception.models.resnet import build_resnet
from deep_perception.ops.conv import set_conv_backend
from deep_perception.train.checkpoint import file_sha256, load_checkpoint

DEPTH_ENCODINGS = ("16UC1", "32FC1")
INTENSITY_ENCODINGS = ("mono8", "rgb8", "bgr8")
ENCODINGS = DEPTH_ENCODINGS + INTENSITY_ENCODINGS


class ImageInputError(ValueError):
    """An image cannot be fed to the model (encoding, shape, modality or no valid pixels)."""


@dataclasses.dataclass
class ImagePreprocess:
    """Model input spec: (height, width), accepted modalities, depth scale of 16UC1, mean/std."""

    size: Sequence[int] = (64, 64)
    modalities: Sequence[str] = ("depth", "intensity")
    depth_scale_16u: float = 0.001  # metres per 16UC1 unit (ROS depth images are millimetres)
    mean: float = 0.5
    std: float = 0.25

    def __post_init__(self):
        self.size = tuple(int(s) for s in self.size)
        if len(self.size) != 2 or min(self.size) < 8:
            raise ValueError(f"image size must be [height, width] >= 8, got {self.size}")
        bad = set(self.modalities) - {"depth", "intensity"}
        if bad or not self.modalities:
            raise ValueError(f"modalities must be a non-empty subset of depth, intensity; got {self.modalities}")
        if self.std <= 0 or self.depth_scale_16u <= 0:
            raise ValueError("std and depth_scale_16u must be positive")

    def to_dict(self):
        return {"size": list(self.size), "modalities": list(self.modalities),
                "depth_scale_16u": self.depth_scale_16u, "mean": self.mean, "std": self.std}

    @staticmethod
    def modality_of(encoding: str) -> str:
        if encoding in DEPTH_ENCODINGS:
            return "depth"
        if encoding in INTENSITY_ENCODINGS:
            return "intensity"
        raise ImageInputError(f"unsupported encoding {encoding!r}; supported: {list(ENCODINGS)}")

    def unit_image(self, array: np.ndarray, encoding: str) -> np.ndarray:
        """Decoded image array → (H, W) float32 in [0, 1] for its modality (no resizing)."""
        modality = self.modality_of(encoding)
        if modality not in self.modalities:
            raise ImageInputError(f"{encoding} is a {modality} image; this model takes {list(self.modalities)}")
        a = np.asarray(array)
        want_channels = 3 if encoding in ("rgb8", "bgr8") else 1
        if a.ndim == 3 and want_channels == 1 and a.shape[2] == 1:
            a = a[:, :, 0]
        if (want_channels == 1 and a.ndim != 2) or (want_channels == 3 and (a.ndim != 3 or a.shape[2] != 3)):
            raise ImageInputError(f"{encoding} image must have {want_channels} channel(s), got shape {a.shape}")
        if a.shape[0] < 2 or a.shape[1] < 2:
            raise ImageInputError(f"image {a.shape[0]}x{a.shape[1]} is too small")
        if modality == "depth":
            return relative_depth(a.astype(np.float32) * (self.depth_scale_16u if encoding == "16UC1" else 1.0))
        if want_channels == 3:
            r, g, b = (a[..., i].astype(np.float32) for i in ((0, 1, 2) if encoding == "rgb8" else (2, 1, 0)))
            return (0.299 * r + 0.587 * g + 0.114 * b) / 255.0
        return a.astype(np.float32) / 255.0

    def tensor(self, unit: np.ndarray) -> torch.Tensor:
        """(H, W) unit image → (1, h, w) normalised network input at the model's size."""
        t = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32))[None, None]
        if tuple(t.shape[-2:]) != self.size:
            shrink = t.shape[-2] >= self.size[0] and t.shape[-1] >= self.size[1]
            t = F.interpolate(t, size=self.size, mode="area" if shrink else "bilinear",
                              **({} if shrink else {"align_corners": False}))
        return ((t[0] - self.mean) / self.std).contiguous()

    def __call__(self, array: np.ndarray, encoding: str) -> torch.Tensor:
        return self.tensor(self.unit_image(array, encoding))


def relative_depth(depth_m: np.ndarray) -> np.ndarray:
    """Depth in metres (0 / NaN / inf = no measurement) → [0, 1], nearest valid 0, invalid 1."""
    valid = np.isfinite(depth_m) & (depth_m > 0)
    if not valid.any():
        raise ImageInputError("depth image has no valid (finite, > 0) pixel")
    d = depth_m[valid]
    near, far = float(d.min()), float(d.max())
    out = np.ones(depth_m.shape, np.float32)
    out[valid] = (d - near) / max(far - near, 1e-6)
    return out


@dataclasses.dataclass
class ImagePrediction:
    probabilities: np.ndarray
    class_id: int
    score: float
    top_k_ids: List[int]
    top_k_scores: List[float]


class ImageClassifier:
    """A ``resnet_image`` checkpoint, ready to classify decoded images on a backend and device."""

    def __init__(self, checkpoint, device: str = "cpu", backend: str = "torch", threads: int = None):
        if threads:
            torch.set_num_threads(int(threads))
        ckpt = load_checkpoint(checkpoint, map_location="cpu")
        meta = ckpt["metadata"]
        for key in ("classes", "arch", "in_channels", "preprocess"):
            if key not in meta:
                raise ValueError(f"{checkpoint}: metadata lacks '{key}'; not a resnet_image checkpoint")
        self.metadata = meta
        self.class_names = list(meta["classes"])
        self.arch = meta["arch"]
        self.preprocess = ImagePreprocess(**meta["preprocess"])
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        model = build_resnet(self.arch, num_classes=len(self.class_names), in_channels=int(meta["in_channels"]))
        state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
        model.load_state_dict(state, strict=True)
        self.model = set_conv_backend(model.eval().to(self.device), backend)
        self.backend = backend
        self.checkpoint_path = str(checkpoint)
        self.checkpoint_sha256 = file_sha256(checkpoint)
        self.last_timing: Dict[str, float] = {}

    def input_spec(self) -> str:
        h, w = self.preprocess.size
        return (f"image 1x{h}x{w} ({'/'.join(self.preprocess.modalities)}: "
                f"{', '.join(e for e in ENCODINGS if self.preprocess.modality_of(e) in self.preprocess.modalities)})")

    @torch.inference_mode()
    def classify(self, images: Sequence[np.ndarray], encodings: Sequence[str], top_k: int = 3) -> List[ImagePrediction]:
        """Classify decoded images (one encoding each); raises ImageInputError for an unusable one."""
        t0 = time.perf_counter()
        batch = torch.stack([self.preprocess(img, enc) for img, enc in zip(images, encodings)])
        t1 = time.perf_counter()
        probs = torch.softmax(self.model(batch.to(self.device)).float(), dim=1).cpu().numpy()
        t2 = time.perf_counter()
        self.last_timing = {"preprocess_s": t1 - t0, "forward_s": t2 - t1}
        k = max(1, min(int(top_k), len(self.class_names)))
        out = []
        for p in probs:
            order = np.argsort(-p, kind="stable")[:k]
            out.append(ImagePrediction(p, int(order[0]), float(p[order[0]]), [int(i) for i in order],
                                       [float(p[i]) for i in order]))
        return out
