"""PointCloud2 ⇄ Predictor glue for the ``pointcloud_perception`` node (messages only, no rospy).

``PerceptionHandler(predictor, ...).handle(msg)`` decodes a cloud, runs the PointNet Predictor and
returns the output messages: a ``Classification`` for a classification model, or for a segmentation
model a PointCloud2 with the input's fields plus ``label`` (uint8, 255 = no label: non-finite input or
score below the threshold), ``score`` (float32) and ``rgb`` (float32-packed), aligned point for point
with the input (organised clouds keep height × width). Headers are copied from the input.
"""

import numpy as np

from deep_perception.ros import messages
from deep_perception.ros import pointcloud2 as pc2
from deep_perception.ros.errors import MessageFormatError
from deep_perception.ros.node import copy_header
from deep_perception.vocab import SURFACE_CLASSES, SURFACE_COLOURS

NO_LABEL = 255
OUTPUT_FIELDS = ("label", "score", "rgb")
STAGES = ("decode", "preprocess", "inference", "postprocess", "encode")


def class_palette(class_names):
    """uint8 (k+1, 3) colours per class (surface colours by name, grey otherwise); last row = no label."""
    by_name = dict(zip(SURFACE_CLASSES, SURFACE_COLOURS))
    rng = np.random.default_rng(7)
    pal = [by_name.get(n, tuple(int(v) for v in rng.integers(40, 255, 3))) for n in class_names]
    return np.asarray(pal + [(0, 0, 0)], dtype=np.uint8)


def model_info_msg(predictor, model_name, stamp):
    """Latched description of the model answering on the node's topics (shared builder)."""
    return messages.model_info_msg(stamp, model_name, "segmentation" if predictor.kind == "seg" else "classification",
                                   predictor.class_names, predictor.input_spec(), predictor.checkpoint_path,
                                   predictor.checkpoint_sha256, predictor.device)


def classification_msg(header, prediction, class_names, threshold=0.0, top_k=3):
    """Classification message from a cls Prediction; class_id -1 / 'unknown' below ``threshold``."""
    return messages.classification_msg(header, prediction.probabilities, class_names, top_k, threshold)


def labelled_array(arr, labels, scores, palette, threshold=0.0):
    """The input structured array (minus any old label/score/rgb) with label, score and rgb appended.

    ``labels``/``scores`` are flat per input point (label -1 = none); the result has ``arr``'s shape.
    """
    keep = [n for n in arr.dtype.names if n not in OUTPUT_FIELDS]
    base = arr[keep] if len(keep) != len(arr.dtype.names) else arr
    lab = np.asarray(labels).reshape(arr.shape)
    sc = np.asarray(scores, dtype=np.float32).reshape(arr.shape)
    out_lab = np.where((lab < 0) | (sc < threshold), NO_LABEL, lab).astype(np.uint8)
    colours = palette[np.minimum(out_lab, len(palette) - 1)]
    return pc2.with_fields(base, [("label", np.uint8, out_lab), ("score", np.float32, sc),
                                  ("rgb", np.float32, pc2.pack_rgb(colours))])


class PerceptionHandler:
    """Turns one PointCloud2 into output messages with ``predictor``; times stages into ``timer``."""

    def __init__(self, predictor, timer, threshold=0.0, top_k=3, normal_fields=("normal_x", "normal_y", "normal_z"),
                 min_points=1):
        self.predictor = predictor
        self.timer = timer
        self.threshold = float(threshold)
        self.top_k = int(top_k)
        self.normal_fields = tuple(normal_fields)
        self.min_points = int(min_points)
        self.palette = class_palette(predictor.class_names)

    def decode(self, msg):
        """(structured array, xyz (M,3) of finite points, their flat indices, normals or None)."""
        arr = pc2.to_array(msg)
        pts, finite = pc2.xyz(arr)
        if len(pts) < self.min_points:
            raise MessageFormatError(f"cloud has {len(pts)} finite points (< {self.min_points})")
        normals = None
        names = arr.dtype.names or ()
        if self.predictor.needs_normals and all(f in names for f in self.normal_fields):
            flat = arr.reshape(-1)
            normals = np.stack([flat[f][finite] for f in self.normal_fields], axis=1).astype(np.float32)
        return arr, pts, finite, normals

    def handle(self, msg):
        """Output message for ``msg``: Classification (cls model) or labelled PointCloud2 (seg model)."""
        with self.timer.stage("decode"):
            arr, pts, finite, normals = self.decode(msg)
        try:
            pred = self.predictor.predict([pts], None if normals is None else [normals])[0]
        except ValueError as exc:  # e.g. every point has a non-finite normal
            raise MessageFormatError(str(exc)) from exc
        for stage, seconds in self.predictor.last_timing.items():
            self.timer.record(stage, seconds)
        with self.timer.stage("encode"):
            if self.predictor.kind == "cls":
                return classification_msg(msg.header, pred, self.predictor.class_names, self.threshold, self.top_k)
            n = int(np.prod(arr.shape))
            labels = np.full(n, -1, dtype=np.int64)
            scores = np.zeros(n, dtype=np.float32)
            labels[finite] = pred.labels
            scores[finite] = pred.scores
            out = labelled_array(arr, labels, scores, self.palette, self.threshold)
            return pc2.from_array(out, header=copy_header(msg.header))
