#!/usr/bin/env python3
"""Demo client: sends rendered held-back building views (Berlin, never trained on) to the running
image_perception node as a 32FC1 depth image and as a mono8 shaded image each, prints the predicted roof
class next to the ground truth, and draws the views with both answers into a PNG."""

import argparse
import os
import sys
import time

import numpy as np
import rospy
from sensor_msgs.msg import Image

from deep_perception.msg import Classification
from deep_perception.ros import image as ros_image
from deep_perception.vocab import ROOF_CLASSES


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--views", default="data/samples/roof_views_berlin.npz")
    ap.add_argument("--input", default="/demo/image")
    ap.add_argument("--output-topic", default="/image_perception/classification")
    ap.add_argument("--out", default="cache/demo/image")
    args = ap.parse_args(rospy.myargv()[1:])
    z = np.load(args.views)
    rospy.init_node("image_demo_client")
    results = {}
    rospy.Subscriber(args.output_topic, Classification, lambda m: results.__setitem__(m.header.stamp.to_nsec(), m),
                     queue_size=10)
    pub = rospy.Publisher(args.input, Image, queue_size=1)
    deadline = time.time() + 120
    while pub.get_num_connections() < 1 and time.time() < deadline:
        time.sleep(0.1)
    if pub.get_num_connections() < 1:
        sys.exit("image_perception did not subscribe")
    time.sleep(0.5)
    rows = []
    print(f"{'building':50s} {'truth':>9s} | {'depth 32FC1':>17s} | {'shaded mono8':>17s} | {'ms':>5s}")
    for i in range(len(z["label"])):
        answers = []
        for j, (enc, arr) in enumerate((("32FC1", z["depth"][i].astype(np.float32)), ("mono8", z["shaded"][i]))):
            msg = ros_image.from_array(arr, enc)
            msg.header.frame_id, msg.header.stamp = "demo_camera", rospy.Time(5000 + i, j)
            key = msg.header.stamp.to_nsec()
            t0 = time.perf_counter()
            pub.publish(msg)
            while key not in results and time.perf_counter() - t0 < 60 and not rospy.is_shutdown():
                time.sleep(0.005)
            if key not in results:
                sys.exit(f"no answer for view {i} ({enc})")
            answers.append((results[key], (time.perf_counter() - t0) * 1e3))
        truth = ROOF_CLASSES[int(z["label"][i])]
        (d, d_ms), (s, s_ms) = answers
        rows.append((truth, d.label, d.score, s.label, s.score))
        print(f"{str(z['building_id'][i])[:50]:50s} {truth:>9s} | {d.label:>9s} ({d.score:.2f}) "
              f"{'ok' if d.label == truth else '  '} | {s.label:>9s} ({s.score:.2f}) {'ok' if s.label == truth else '  '}"
              f" | {d_ms:5.0f}")
    n = len(rows)
    print(f"roof class right: depth {sum(r[0] == r[1] for r in rows)}/{n}, shaded {sum(r[0] == r[3] for r in rows)}/{n}"
          f" (views chosen round-robin over classes, so rare roofs are over-represented here; "
          f"see data/models/resnet18_roof_images.md for test-split metrics)")
    os.makedirs(args.out, exist_ok=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, n, figsize=(1.9 * n, 4.2), squeeze=False)
    for i, (truth, dl, ds, sl, ss) in enumerate(rows):
        depth = np.where(z["depth"][i] > 0, z["depth"][i], np.nan)
        axes[0, i].imshow(depth, cmap="viridis_r")
        axes[0, i].set_title(f"truth {truth}\n{dl} {ds:.2f}", fontsize=7, color="green" if dl == truth else "red")
        axes[1, i].imshow(z["shaded"][i], cmap="gray", vmin=0, vmax=255)
        axes[1, i].set_title(f"{sl} {ss:.2f}", fontsize=7, color="green" if sl == truth else "red")
        for ax in axes[:, i]:
            ax.axis("off")
    fig.suptitle("image_perception on held-back Berlin views (top: 32FC1 depth, bottom: mono8 shaded)", fontsize=9)
    fig.tight_layout()
    path = os.path.join(args.out, "image_perception.png")
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
