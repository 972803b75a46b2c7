#!/usr/bin/env python3
"""rostest for cloud_preprocessor: outputs, header copy, organised shape, voxel grid, dropped frames,
malformed-message survival and rejected counts, and a clear startup error on a bad parameter."""

import os
import subprocess
import sys
import time
import unittest

import numpy as np
import roslib.packages
import rospy
import rostest
from sensor_msgs.msg import PointCloud2, PointField

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rostest_utils import Collector, DiagnosticsWatcher, wait_for_subscribers  # noqa: E402

from deep_perception.ros import pointcloud2 as pc2  # noqa: E402

DTYPE = np.dtype({"names": ["x", "y", "z", "intensity", "ring"], "formats": ["<f4", "<f4", "<f4", "<f4", "<u2"],
                  "offsets": [0, 4, 8, 16, 20], "itemsize": 32})


def make_cloud(n=100, seed=0, shape=None):
    rng = np.random.default_rng(seed)
    a = np.zeros(n, DTYPE)
    a["x"], a["y"], a["z"] = (rng.uniform(-80, 80, (3, n))).astype(np.float32)
    a["intensity"] = np.arange(n, dtype=np.float32)
    a["ring"] = np.arange(n) % 16
    a["x"][::10] = np.nan
    return a.reshape(shape) if shape else a


def header(frame="lidar", secs=100, seq=0):
    msg = PointCloud2()
    msg.header.frame_id = frame
    msg.header.stamp = rospy.Time(secs, 500)
    msg.header.seq = seq
    return msg.header


class CloudPreprocessorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rospy.init_node("cloud_preprocessor_test", anonymous=True)
        cls.diag = DiagnosticsWatcher()

    def _pub(self, topic):
        pub = rospy.Publisher(topic, PointCloud2, queue_size=100)
        self.assertTrue(wait_for_subscribers(pub), f"nobody subscribed to {topic}")
        time.sleep(0.2)
        return pub

    def test_filter_keeps_fields_and_header(self):
        out = Collector("/prep/output", PointCloud2)
        pub = self._pub("/test/points")
        cloud = make_cloud(500)
        pub.publish(pc2.from_array(cloud, header=header("lidar_top", 123)))
        msgs = out.wait_for(1)
        self.assertEqual(len(msgs), 1)
        res = pc2.to_array(msgs[0])
        self.assertEqual(msgs[0].header.frame_id, "lidar_top")
        self.assertEqual(msgs[0].header.stamp, rospy.Time(123, 500))
        self.assertEqual(res.dtype.names, DTYPE.names)
        pts = np.stack([cloud["x"], cloud["y"], cloud["z"]], 1)
        ok = np.isfinite(pts).all(1) & (np.linalg.norm(pts, axis=1) <= 50.0)
        np.testing.assert_array_equal(res["intensity"], cloud["intensity"][ok])
        np.testing.assert_array_equal(res["ring"], cloud["ring"][ok])

    def test_organized_shape_kept(self):
        out = Collector("/prep_organized/output", PointCloud2)
        pub = self._pub("/test/organized")
        cloud = make_cloud(64 * 8, shape=(8, 64))
        pub.publish(pc2.from_array(cloud, header=header()))
        msgs = out.wait_for(1)
        self.assertEqual(len(msgs), 1)
        self.assertEqual((msgs[0].height, msgs[0].width), (8, 64))
        res = pc2.to_array(msgs[0])
        np.testing.assert_array_equal(res["intensity"], cloud["intensity"])
        self.assertTrue(np.isnan(res["x"][0, 0]))

    def test_voxel_grid(self):
        out = Collector("/prep_voxel/output", PointCloud2)
        pub = self._pub("/test/voxel")
        a = np.zeros(1000, DTYPE)
        a["x"] = np.repeat(np.arange(10), 100) + 0.5  # 10 voxels of 100 points each
        a["y"] = 0.5
        a["z"] = 0.5
        pub.publish(pc2.from_array(a, header=header()))
        msgs = out.wait_for(1)
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0].width * msgs[0].height, 10)

    def test_slow_consumer_drops_frames_takes_latest(self):
        out = Collector("/prep_slow/output", PointCloud2)
        pub = self._pub("/test/slow")
        for i in range(20):
            pub.publish(pc2.from_array(make_cloud(50, seed=i), header=header(secs=1000 + i, seq=i)))
            time.sleep(0.02)
        time.sleep(1.5)
        msgs = out.messages
        self.assertGreater(len(msgs), 0)
        self.assertLess(len(msgs), 20, "a slow node must drop superseded frames")
        self.assertEqual(msgs[-1].header.stamp.secs, 1019, "the newest message must be processed last")
        entry = self.diag.wait_value("/prep_slow", "dropped", lambda v: v > 0)
        self.assertIsNotNone(entry)
        self.assertGreater(int(entry[2]["dropped"]), 0)

    def test_malformed_messages_rejected_counted_node_survives(self):
        out = Collector("/prep/output", PointCloud2)
        pub = self._pub("/test/points")
        good = pc2.from_array(make_cloud(10), header=header())
        bad = []
        m = pc2.from_array(make_cloud(10), header=header()); m.data = m.data[:-5]; bad.append(m)
        m = pc2.from_array(make_cloud(10), header=header()); m.fields[0].datatype = 42; bad.append(m)
        m = pc2.from_array(make_cloud(10), header=header()); m.fields = m.fields[:2]; bad.append(m)
        m = pc2.from_array(make_cloud(10), header=header()); m.fields[1].offset = 2; bad.append(m)
        m = pc2.from_array(make_cloud(10), header=header()); m.row_step = 3; bad.append(m)
        m = pc2.from_array(make_cloud(10), header=header()); m.point_step = 0; bad.append(m)
        m = PointCloud2(); m.height, m.width, m.point_step, m.row_step = 1, 5, 4, 20
        m.fields = [PointField("x", 0, PointField.FLOAT32, 1)]; m.data = bytes(20); bad.append(m)
        for msg in bad:
            pub.publish(msg)
            time.sleep(0.05)  # one at a time, so none is superseded before it is judged
        entry = self.diag.wait_value("/prep", "rejected", lambda v: v >= len(bad))
        self.assertIsNotNone(entry)
        self.assertGreaterEqual(int(entry[2]["rejected"]), len(bad))
        out.clear()
        pub.publish(good)
        self.assertEqual(len(out.wait_for(1)), 1, "node must keep working after malformed input")

    def test_bad_parameter_is_a_clear_startup_error(self):
        node = roslib.packages.find_node("deep_perception", "cloud_preprocessor")[0]
        proc = subprocess.run([node, "__name:=bad_prep",
                               "_voxel_size:=-1.0"], capture_output=True, text=True, timeout=30)
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        self.assertIn("voxel_size", proc.stdout + proc.stderr)


if __name__ == "__main__":
    rostest.rosrun("deep_perception", "cloud_preprocessor", CloudPreprocessorTest)
