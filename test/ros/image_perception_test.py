#!/usr/bin/env python3
"""rostest for image_perception: held-back rendered building views (Berlin, never trained on) are
published as real sensor_msgs/Image depth (32FC1 metres, 16UC1 millimetres) and colour/mono (rgb8, bgr8,
mono8) messages; every result carries its input's header and equals the library's ImageClassifier on
the same pixels; malformed images are rejected and counted while the node lives on; ModelInfo is latched."""

import os
import sys
import time
import unittest

import numpy as np
import rospy
import rostest
from sensor_msgs.msg import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rostest_utils import Collector, DiagnosticsWatcher, wait_for_subscribers  # noqa: E402

from deep_perception.inference.image import ImageClassifier  # noqa: E402
from deep_perception.msg import Classification, ModelInfo  # noqa: E402
from deep_perception.ros import image as ros_image  # noqa: E402
from deep_perception.vocab import ROOF_CLASSES  # noqa: E402

ROOT = os.environ.get("DEEP_PERCEPTION_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SAMPLES = np.load(os.path.join(ROOT, "data", "samples", "roof_views_berlin.npz"))
CHECKPOINT = os.path.join(ROOT, "data", "models", "resnet18_roof_images.pt")
NODE = "/img"


def header(secs, frame, seq=0):
    h = Image().header
    h.frame_id, h.stamp, h.seq = frame, rospy.Time(secs, 500), seq
    return h


def variants(i):
    """(encoding, array) versions of sample i as a camera driver would send them."""
    depth = SAMPLES["depth"][i].astype(np.float32)  # metres, 0 = no return
    grey = SAMPLES["shaded"][i]
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    return [("32FC1", depth), ("16UC1", np.round(depth * 1000).astype(np.uint16)),
            ("mono8", grey), ("rgb8", rgb), ("bgr8", rgb[:, :, ::-1].copy())]


class ImagePerceptionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rospy.init_node("image_perception_test", anonymous=True)
        cls.diag = DiagnosticsWatcher()
        cls.out = Collector(NODE + "/classification", Classification)
        cls.pub = rospy.Publisher("/test/image", Image, queue_size=10)
        assert wait_for_subscribers(cls.pub, timeout=60)
        cls.reference = ImageClassifier(CHECKPOINT, device="cpu")
        time.sleep(0.3)

    def _one(self, msg, timeout=30.0):
        """Publish one image and wait for its result (matched by stamp), so none is superseded."""
        self.pub.publish(msg)
        deadline = time.time() + timeout
        while time.time() < deadline:
            for m in list(self.out.messages):
                if m.header.stamp == msg.header.stamp:
                    return m
            time.sleep(0.01)
        self.fail(f"no result for stamp {msg.header.stamp}")

    def test_model_info_latched(self):
        got = Collector(NODE + "/model_info", ModelInfo).wait_for(1, timeout=20)
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].task, "classification")
        self.assertEqual(tuple(got[0].class_names), tuple(ROOF_CLASSES))
        self.assertEqual(len(got[0].checkpoint_sha256), 64)
        self.assertIn("depth", got[0].input_spec)

    def test_depth_and_colour_images_header_copied_and_equal_to_library(self):
        correct = {}
        n = len(SAMPLES["label"])
        for i in range(n):
            for j, (enc, arr) in enumerate(variants(i)):
                secs = 2000 + 10 * i + j
                hdr = header(secs, frame=f"camera_{enc}", seq=secs)
                res = self._one(ros_image.from_array(arr, enc, header=hdr))
                self.assertEqual(res.header.stamp, hdr.stamp)
                self.assertEqual(res.header.frame_id, hdr.frame_id)
                self.assertEqual(len(res.probabilities), len(ROOF_CLASSES))
                self.assertEqual(len(res.top_k_ids), 3)
                self.assertEqual(list(res.top_k_scores), sorted(res.top_k_scores, reverse=True))
                self.assertEqual(res.label, ROOF_CLASSES[res.class_id])
                (want,) = self.reference.classify([arr], [enc])
                np.testing.assert_allclose(res.probabilities, want.probabilities, atol=1e-4)
                correct.setdefault(enc, []).append(res.class_id == int(SAMPLES["label"][i]))
        for enc, hits in correct.items():
            rospy.loginfo(f"{enc}: {sum(hits)}/{len(hits)} roof classes right on held-back Berlin views")

    def test_malformed_images_rejected_and_counted(self):
        before = self.diag.wait_value(NODE, "rejected", lambda v: v >= 0, timeout=20)
        start = int(before[2]["rejected"]) if before else 0
        good = ros_image.from_array(SAMPLES["depth"][0].astype(np.float32), "32FC1", header=header(3000, "cam"))
        bad = []
        m = ros_image.from_array(SAMPLES["depth"][0].astype(np.float32), "32FC1", header=header(3001, "cam"))
        m.data = bytes(m.data)[:-7]  # truncated
        bad.append(m)
        m = ros_image.from_array(SAMPLES["shaded"][0], "mono8", header=header(3002, "cam"))
        m.step = m.width - 1  # step shorter than a row
        bad.append(m)
        m = ros_image.from_array(SAMPLES["shaded"][0], "mono8", header=header(3003, "cam"))
        m.encoding = "yuv422"  # unsupported
        bad.append(m)
        bad.append(ros_image.from_array(np.zeros((40, 50), np.float32), "32FC1", header=header(3004, "cam")))  # no valid depth
        bad.append(ros_image.from_array(np.zeros((1, 50), np.uint8), "mono8", header=header(3005, "cam")))  # too small
        for k, msg in enumerate(bad):
            self.pub.publish(msg)
            entry = self.diag.wait_value(NODE, "rejected", lambda v, k=k: v >= start + k + 1, timeout=20)
            self.assertIsNotNone(entry)
            self.assertGreaterEqual(int(entry[2]["rejected"]), start + k + 1, f"bad image {k} not counted")
        stamps = {m.header.stamp for m in self.out.messages}
        for msg in bad:
            self.assertNotIn(msg.header.stamp, stamps)
        res = self._one(good)  # the node lives on
        self.assertEqual(res.header.stamp, good.header.stamp)


if __name__ == "__main__":
    rostest.rosrun("deep_perception", "image_perception", ImagePerceptionTest)
