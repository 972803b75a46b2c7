"""Classification/ModelInfo builders (needs the catkin-generated messages: run via scripts/test.sh)."""

import numpy as np
import pytest

msg_pkg = pytest.importorskip("deep_perception.msg", reason="generated messages: source scripts/env.sh")
from std_msgs.msg import Header  # noqa: E402

from deep_perception.ros.messages import classification_msg, model_info_msg  # noqa: E402


def test_classification_top_k_threshold_and_header():
    h = Header(seq=3, frame_id="cam")
    m = classification_msg(h, [0.1, 0.7, 0.2], ["a", "b", "c"], top_k=2)
    assert (m.class_id, m.label, m.top_k_ids) == (1, "b", [1, 2])
    assert m.header.frame_id == "cam" and m.header is not h
    np.testing.assert_allclose(m.probabilities, [0.1, 0.7, 0.2], rtol=1e-6)
    low = classification_msg(h, [0.4, 0.35, 0.25], ["a", "b", "c"], score_threshold=0.5)
    assert (low.class_id, low.label) == (-1, "unknown")
    with pytest.raises(ValueError):
        classification_msg(h, [0.5, 0.5], ["a", "b", "c"])


def test_model_info():
    import rospy

    m = model_info_msg(rospy.Time(0), "pointnet_seg", "segmentation", ["ground", "wall"], "xyz 1024")
    assert m.class_names == ["ground", "wall"] and m.task == "segmentation"
