#!/usr/bin/env python3
"""rostest for citygml_dataset: conversion on start, one labelled PointCloud2 per building at a rate,
latched JSON summary (start and end of the pass), on-demand requests by id, rejected unknown ids,
an empty dataset (LoD selects nothing) rejecting requests, clear startup errors (bad parameter, bad input
file). Each run converts into fresh /tmp/$(anon ...) folders, removed at the end."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np
import roslib.packages
import rospy
import rostest
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import String

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rostest_utils import Collector, DiagnosticsWatcher, wait_for_subscribers  # noqa: E402

from deep_perception.ros import pointcloud2 as pc2  # noqa: E402
from deep_perception.vocab import SURFACE_COLOURS  # noqa: E402

FIELDS = ("x", "y", "z", "normal_x", "normal_y", "normal_z", "label", "rgb")


def wait_summary(topic, predicate, timeout=120.0):
    got = {}

    def cb(msg):
        got["s"] = json.loads(msg.data)
    sub = rospy.Subscriber(topic, String, cb, queue_size=5)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if "s" in got and predicate(got["s"]):
            break
        time.sleep(0.05)
    sub.unregister()
    return got.get("s")


class CityGMLDatasetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rospy.init_node("citygml_dataset_test", anonymous=True)
        cls.diag = DiagnosticsWatcher()
        cls.clouds = Collector("/dataset/cloud", PointCloud2)

    @classmethod
    def tearDownClass(cls):
        for node in ("dataset", "on_demand", "empty"):
            s = wait_summary(f"/{node}/summary", lambda s: True, timeout=5.0)
            out = (s or {}).get("output", "")
            if os.path.basename(out).startswith("deep_perception_rostest_citygml_"):
                shutil.rmtree(out, ignore_errors=True)

    def test_publishes_every_building_then_final_summary(self):
        final = wait_summary("/dataset/summary", lambda s: s.get("done"))
        self.assertIsNotNone(final, "no final summary")
        self.assertEqual(final["samples"], 18)
        self.assertEqual(final["published"], 18)
        self.assertEqual(final["counts"]["buildings"], 18)
        self.assertEqual(final["counts"]["parts"], 4)
        self.assertEqual(final["files"][0]["crs"], ["EPSG:25832"])
        msgs = self.clouds.wait_for(18, timeout=30)
        self.assertGreaterEqual(len(msgs), 18)
        origin = np.array(final["origin"])
        self.assertTrue(3.6e5 < origin[0] < 3.7e5 and 5.6e6 < origin[1] < 5.7e6)
        for msg in msgs[:18]:
            self.assertEqual(msg.header.frame_id, "city")
            self.assertEqual(msg.width * msg.height, 512)
            arr = pc2.to_array(msg)
            self.assertEqual(arr.dtype.names, FIELDS)
            self.assertTrue((arr["label"] < 7).all())
            rgb = pc2.unpack_rgb(arr["rgb"])
            np.testing.assert_array_equal(rgb, np.asarray(SURFACE_COLOURS, np.uint8)[arr["label"]])
            xyz, _ = pc2.xyz(arr)
            self.assertLess(np.abs(xyz).max(), 2000.0)  # relative to the dataset origin, inside the 1 km tile
            n = np.stack([arr["normal_x"], arr["normal_y"], arr["normal_z"]], 1)
            np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-4)

    def test_on_demand_by_id_and_unknown_id_rejected(self):
        summary = wait_summary("/on_demand/summary", lambda s: True)
        self.assertIsNotNone(summary)
        self.assertEqual(summary["samples"], 2)  # split_parts: building + garage part
        out = Collector("/on_demand/cloud", PointCloud2)
        pub = rospy.Publisher("/on_demand/request", String, queue_size=10)
        self.assertTrue(wait_for_subscribers(pub))
        time.sleep(0.5)
        self.assertEqual(out.messages, [], "rate 0: nothing before a request")
        pub.publish(String(data=""))
        self.assertEqual(len(out.wait_for(1)), 1)
        pub.publish(String(data="no-such-building"))
        entry = self.diag.wait_value("/on_demand", "rejected", lambda v: v >= 1)
        self.assertIsNotNone(entry, "unknown id must be counted as rejected")
        pub.publish(String(data=""))
        self.assertEqual(len(out.wait_for(2)), 2)
        self.assertEqual(out.messages[0].width, 256)

    def test_empty_dataset_warns_rejects_requests_and_keeps_running(self):
        final = wait_summary("/empty/summary", lambda s: s.get("done"))
        self.assertIsNotNone(final, "an empty dataset must still publish its (final) summary")
        self.assertEqual((final["samples"], final["published"]), (0, 0))
        self.assertTrue(os.path.basename(final["output"]).startswith("deep_perception_rostest_citygml_empty"))
        out = Collector("/empty/cloud", PointCloud2)
        pub = rospy.Publisher("/empty/request", String, queue_size=10)
        self.assertTrue(wait_for_subscribers(pub))
        pub.publish(String(data=""))
        entry = self.diag.wait_value("/empty", "rejected", lambda v: v >= 1)
        self.assertIsNotNone(entry, "no diagnostics from /empty")
        self.assertGreaterEqual(int(float(entry[2].get("rejected", 0))), 1,
                                "a request to an empty dataset must be counted as rejected")
        self.assertEqual(out.messages, [])

    def test_output_folders_are_unique_per_run(self):
        for node in ("dataset", "on_demand"):
            s = wait_summary(f"/{node}/summary", lambda s: True)
            self.assertIsNotNone(s)
            name = os.path.basename(s["output"])
            self.assertTrue(name.startswith(f"deep_perception_rostest_citygml_{node}_"), s["output"])

    def _run_node(self, *args):
        node = roslib.packages.find_node("deep_perception", "citygml_dataset")[0]
        return subprocess.run([node, "__name:=bad_dataset", *args], capture_output=True, text=True, timeout=60)

    def test_shutdown_while_publishing_exits_quietly(self):
        # simulated time without a /clock: rate.sleep() waits until shutdown, then raises ROSInterruptException
        node = roslib.packages.find_node("deep_perception", "citygml_dataset")[0]
        gml = os.path.join(roslib.packages.get_pkg_dir("deep_perception"), "data", "citygml",
                           "CityGML-3.0Encodings", "Building_and_garage_LOD2-EPSG25832.gml")
        rospy.set_param("/use_sim_time", True)  # read once, at init_node: only the node started here uses it
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.Popen([node, "__name:=looping", f"_inputs:=[{gml}]", f"_output_dir:={tmp}/out",
                                     "_points:=16", "_rate:=50.0", "_loop:=true"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                self.assertIsNotNone(wait_summary("/looping/summary", lambda s: True, timeout=60.0))
                rospy.delete_param("/use_sim_time")
                time.sleep(0.5)  # inside the publishing loop (rate.sleep) now
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=30)
            finally:
                if rospy.has_param("/use_sim_time"):
                    rospy.delete_param("/use_sim_time")
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            self.assertEqual(proc.returncode, 0, out + err)
            self.assertNotIn("Traceback", out + err)

    def test_bad_parameter_is_a_clear_startup_error(self):
        proc = self._run_node("_points:=-5", "_inputs:=[/nonexistent]")
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        self.assertIn("points", proc.stdout + proc.stderr)

    def test_bad_input_file_is_a_clear_startup_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            bad = os.path.join(tmp, "truncated.gml")
            with open(bad, "w") as f:
                f.write('<?xml version="1.0"?>\n<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0">\n'
                        '<core:cityObjectMember><bldg:Building')
            proc = self._run_node(f"_inputs:=[{bad}]", f"_output_dir:={tmp}/out")
            self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
            self.assertIn("truncated.gml:", proc.stdout + proc.stderr)
            self.assertFalse(os.path.exists(os.path.join(tmp, "out", "manifest.json")))


if __name__ == "__main__":
    rostest.rosrun("deep_perception", "citygml_dataset", CityGMLDatasetTest)
