"""Perception node glue without a master: PointCloud2 in → labelled PointCloud2 / Classification out."""

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg")
pytest.importorskip("deep_perception.msg")

from deep_perception.data.synthetic import sample_house, write_synthetic_dataset  # noqa: E402
from deep_perception.inference.predictor import Predictor  # noqa: E402
from deep_perception.ros import pointcloud2 as pc2  # noqa: E402
from deep_perception.ros.errors import MessageFormatError  # noqa: E402
from deep_perception.ros.pointcloud_perception import (NO_LABEL, PerceptionHandler, classification_msg,  # noqa: E402
                                                       labelled_array, model_info_msg)
from deep_perception.timing import StageTimer  # noqa: E402
from deep_perception.train.checkpoint import save_checkpoint  # noqa: E402
from deep_perception.train.task import build_task  # noqa: E402


@pytest.fixture(scope="module")
def predictors(tmp_path_factory):
    d = tmp_path_factory.mktemp("ros")
    manifest = write_synthetic_dataset(str(d / "synth"), buildings_per_file=2, files_per_city=1, points=64)
    out = {}
    for name in ("pointnet_seg", "pointnet_cls"):
        task = build_task({"task": name, "seed": 0, "train": {"progress": False},
                           "data": {"manifest": manifest, "points": 128, "channels": "xyz+normals",
                                    "splits": {"train": ["alpha"], "val": ["beta"]}}})
        save_checkpoint(d / f"{name}.pt", task.build_model().state_dict(), task.metadata())
        out[name] = Predictor(d / f"{name}.pt", device="cpu")
    return out


def cloud(n=300, shape=None, normals=True, seed=0):
    pts, nrm, _, _ = sample_house(np.random.default_rng(seed), n)
    names = ["x", "y", "z", "label"] + (["normal_x", "normal_y", "normal_z"] if normals else [])
    a = np.zeros(n, np.dtype([(f, np.float32) for f in names]))
    a["x"], a["y"], a["z"] = pts.T
    a["label"] = 9  # an input field named like an output is replaced, not duplicated
    if normals:
        a["normal_x"], a["normal_y"], a["normal_z"] = nrm.T
    a["z"][::7] = np.nan
    return a.reshape(shape) if shape else a


def test_segmentation_output_is_aligned_and_keeps_shape(predictors):
    handler = PerceptionHandler(predictors["pointnet_seg"], StageTimer())
    arr = cloud(300, shape=(15, 20))
    msg = pc2.from_array(arr, frame_id="cam", stamp=None)
    msg.header.seq = 7
    out = handler.handle(msg)
    assert (out.height, out.width) == (15, 20) and out.header.frame_id == "cam"
    res = pc2.to_array(out)
    assert res.dtype.names == ("x", "y", "z", "normal_x", "normal_y", "normal_z", "label", "score", "rgb")
    np.testing.assert_array_equal(res["x"], arr["x"])
    nan = np.isnan(arr["z"])
    assert (res["label"][nan] == NO_LABEL).all() and (res["label"][~nan] < 7).all()
    assert set(handler.timer.last) >= {"decode", "preprocess", "inference", "postprocess", "encode"}


def test_score_threshold_and_classification(predictors):
    arr = cloud(50)
    lab = labelled_array(arr, np.zeros(50, np.int64), np.full(50, 0.3, np.float32),
                         np.zeros((8, 3), np.uint8), threshold=0.5)
    assert (lab["label"] == NO_LABEL).all()
    pred = predictors["pointnet_cls"]
    p = pred.predict([np.stack([arr["x"], arr["y"], arr["z"]], 1)], [np.ones((50, 3), np.float32)])[0]
    hdr = pc2.from_array(arr, frame_id="f").header
    m = classification_msg(hdr, p, pred.class_names, threshold=1.1, top_k=3)
    assert m.class_id == -1 and m.label == "unknown" and len(m.top_k_ids) == 3
    m = classification_msg(hdr, p, pred.class_names, threshold=0.0)
    assert m.class_id == p.class_id and m.label == pred.class_names[p.class_id]
    assert abs(sum(m.probabilities) - 1) < 1e-4 and m.header.frame_id == "f"
    import rospy
    info = model_info_msg(pred, "roofs", rospy.Time(5))
    assert info.task == "classification" and len(info.checkpoint_sha256) == 64


def test_clouds_without_points_are_rejected(predictors):
    handler = PerceptionHandler(predictors["pointnet_seg"], StageTimer(), min_points=16)
    arr = cloud(20)
    arr["x"][:] = np.nan
    with pytest.raises(MessageFormatError, match="finite points"):
        handler.handle(pc2.from_array(arr))
    few = cloud(10)
    with pytest.raises(MessageFormatError):
        handler.handle(pc2.from_array(few))
