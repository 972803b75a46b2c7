#!/usr/bin/env python3
"""Benchmark: ResNet-18 CPU throughput at 224x224 (batch 1 and 16, backend ``torch``) and what our image
path costs around it.

    .venv/bin/python bench/resnet.py [--threads 2] [--repeats 15]

Side by side in one process, medians over ``--repeats`` after warm-up:
(a) forward of ResNet-18 (3 channels, 1000 classes, eval, inference mode) at batch 1 and 16 → images/s;
(b) our per-image path before the network, for a 640x480 camera frame: sensor_msgs/Image decode
    (``ros.image.to_array`` on a serialised-and-deserialised message) + preprocessing
    (``ImagePreprocess``: relative depth or grey, area-resize to 224x224, normalise), for 32FC1 depth
    and rgb8;
(c) the ratio (b) / (a, batch 1): the share of a frame's time that is ours rather than the network's.
Ends with ONE JSON line.
"""

import argparse
import io
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "src"))

from deep_perception.inference.image import ImagePreprocess  # noqa: E402
from deep_perception.models.resnet import resnet18  # noqa: E402


def median_s(fn, repeats, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def camera_message(encoding, rng):
    """A serialised 640x480 sensor_msgs/Image like a driver sends (None without ROS messages)."""
    try:
        from sensor_msgs.msg import Image
        from deep_perception.ros import image as ros_image
    except ImportError:
        return None, None
    if encoding == "32FC1":
        arr = rng.uniform(2.0, 30.0, (480, 640)).astype(np.float32)
        arr[rng.random(arr.shape) < 0.05] = np.nan
    else:
        arr = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    buf = io.BytesIO()
    ros_image.from_array(arr, encoding).serialize(buf)
    data = buf.getvalue()

    def decode():
        msg = Image()
        msg.deserialize(data)
        return ros_image.to_array(msg)
    return decode, len(data)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    model = resnet18().eval()
    result = {"bench": "resnet", "threads": args.threads, "repeats": args.repeats,
              "load_avg_1min": os.getloadavg()[0], "torch": torch.__version__}
    with torch.inference_mode():
        for batch in (1, 16):
            x = torch.randn(batch, 3, 224, 224)
            s = median_s(lambda: model(x), args.repeats if batch == 1 else max(3, args.repeats // 3))
            result[f"forward_b{batch}_ms"] = s * 1e3
            result[f"images_per_s_b{batch}"] = batch / s
            print(f"ResNet-18 forward batch {batch:2d}: {s * 1e3:8.1f} ms  {batch / s:7.1f} images/s", file=sys.stderr)

    pre = ImagePreprocess(size=(224, 224), modalities=("depth", "intensity"))
    for enc in ("32FC1", "rgb8"):
        decode, nbytes = camera_message(enc, rng)
        if decode is None:
            print("sensor_msgs not importable: source scripts/env.sh for the decode timing", file=sys.stderr)
            break
        arr = decode()
        t_dec = median_s(decode, args.repeats * 2)
        t_pre = median_s(lambda: pre(arr, enc), args.repeats * 2)
        ratio = (t_dec + t_pre) / (result["forward_b1_ms"] / 1e3)
        result[f"{enc}_decode_ms"] = t_dec * 1e3
        result[f"{enc}_preprocess_ms"] = t_pre * 1e3
        result[f"{enc}_ours_over_forward_b1"] = ratio
        print(f"{enc} 640x480 ({nbytes / 1e6:.2f} MB): decode {t_dec * 1e3:6.2f} ms  preprocess {t_pre * 1e3:6.2f} ms"
              f"  = {ratio:.3f} x the batch-1 forward", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
