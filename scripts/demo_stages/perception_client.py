#!/usr/bin/env python3
"""Demo client: sends held-out Berlin buildings (data/samples/berlin_buildings.npz, never trained on) to the
running pointcloud_perception nodes and prints per-building results against the ground truth."""

import argparse
import json
import os
import sys
import time

import numpy as np
import rospy
from sensor_msgs.msg import PointCloud2

from deep_perception.msg import Classification
from deep_perception.ros import pointcloud2 as pc2
from deep_perception.tasks.metrics import confusion_matrix, metrics_from_confusion
from deep_perception.vocab import ROOF_CLASSES, SURFACE_CLASSES


def wait_result(store, key, timeout=60.0):
    deadline = time.time() + timeout
    while key not in store and time.time() < deadline and not rospy.is_shutdown():
        time.sleep(0.005)
    return store.get(key)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", default="data/samples/berlin_buildings.npz")
    ap.add_argument("--input", default="/demo/points")
    ap.add_argument("--out", default="cache/demo/perception")
    args = ap.parse_args(rospy.myargv()[1:])
    z = np.load(args.samples)
    rospy.init_node("perception_demo_client")
    seg, cls = {}, {}
    rospy.Subscriber("/pointnet_segmentation/segmentation", PointCloud2,
                     lambda m: seg.__setitem__(m.header.stamp.to_nsec(), m), queue_size=10, buff_size=1 << 26)
    rospy.Subscriber("/pointnet_classification/classification", Classification,
                     lambda m: cls.__setitem__(m.header.stamp.to_nsec(), m), queue_size=10)
    pub = rospy.Publisher(args.input, PointCloud2, queue_size=1)
    deadline = time.time() + 120
    while pub.get_num_connections() < 2 and time.time() < deadline:
        time.sleep(0.1)
    if pub.get_num_connections() < 2:
        sys.exit("perception nodes did not subscribe")
    time.sleep(0.5)
    names = ["x", "y", "z", "normal_x", "normal_y", "normal_z"]
    cm = np.zeros((len(SURFACE_CLASSES),) * 2, np.int64)
    rows, roof_ok = [], 0
    print(f"{'building':38s} {'tile':15s} {'roof truth':>10s} {'roof pred':>10s} {'score':>6s} "
          f"{'seg acc':>7s} {'ms':>6s}")
    for i in range(len(z["points"])):
        a = np.zeros(z["points"].shape[1], np.dtype([(n, np.float32) for n in names]))
        a["x"], a["y"], a["z"] = z["points"][i].T
        a["normal_x"], a["normal_y"], a["normal_z"] = z["normals"][i].astype(np.float32).T
        msg = pc2.from_array(a, frame_id="building", stamp=rospy.Time(1000 + i))
        key = msg.header.stamp.to_nsec()
        t0 = time.perf_counter()
        pub.publish(msg)
        s, c = wait_result(seg, key), wait_result(cls, key)
        ms = (time.perf_counter() - t0) * 1e3
        if s is None or c is None:
            sys.exit(f"no result for building {i}")
        labels = pc2.to_array(s)["label"].astype(np.int64)
        truth = z["labels"][i].astype(np.int64)
        cm += confusion_matrix(truth, labels, len(SURFACE_CLASSES))
        acc = float((labels == truth).mean())
        rt = ROOF_CLASSES[int(z["roof_class"][i])]
        roof_ok += int(c.label == rt)
        rows.append({"building": str(z["building_ids"][i]), "tile": str(z["files"][i]), "roof_truth": rt,
                     "roof_pred": c.label, "roof_score": c.score, "seg_accuracy": acc, "ms": ms})
        print(f"{rows[-1]['building'][:38]:38s} {rows[-1]['tile'][:15]:15s} {rt:>10s} {c.label:>10s} "
              f"{c.score:6.2f} {acc:7.3f} {ms:6.0f}")
    m = metrics_from_confusion(cm, list(SURFACE_CLASSES), ["ground", "wall", "roof"])
    n = len(rows)
    print(f"\nroof class: {roof_ok}/{n} correct ({roof_ok / n:.2f}); segmentation OA {m['oa']:.3f}, "
          f"mIoU ground/wall/roof {m['miou_main']:.3f}, IoU " + ", ".join(f"{k} {v:.3f}" for k, v in m["iou"].items()))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"buildings": rows, "segmentation": m, "roof_accuracy": roof_ok / n}, f, indent=2)
    from deep_perception.viz.confusion import plot_confusion
    plot_confusion(cm, list(SURFACE_CLASSES), os.path.join(args.out, "segmentation_confusion.png"),
                   title="node on held-out Berlin buildings")
    print(f"results: {args.out}/results.json, {args.out}/segmentation_confusion.png")


if __name__ == "__main__":
    main()
