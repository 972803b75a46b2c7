#!/usr/bin/env python3
"""PointCloud2 ⇄ numpy speed: ours vs sensor_msgs.point_cloud2 (read_points/create_cloud) vs a raw copy.

Cloud: x, y, z, intensity (float32), ring (uint16), point_step 32 (padding), 5% NaN points.
Run: source scripts/env.sh && python bench/pointcloud2.py [--sizes 100000 1000000] [--repeats 5]
Prints medians and ratios, then one JSON line.
"""

import argparse
import json
import statistics
import time

import numpy as np
from sensor_msgs import point_cloud2 as ros_pc2
from sensor_msgs.msg import PointField
from std_msgs.msg import Header

from deep_perception.ros import pointcloud2 as pc2

DTYPE = np.dtype({"names": ["x", "y", "z", "intensity", "ring"], "formats": ["<f4", "<f4", "<f4", "<f4", "<u2"],
                  "offsets": [0, 4, 8, 16, 20], "itemsize": 32})
FIELDS = [PointField("x", 0, PointField.FLOAT32, 1), PointField("y", 4, PointField.FLOAT32, 1),
          PointField("z", 8, PointField.FLOAT32, 1), PointField("intensity", 16, PointField.FLOAT32, 1),
          PointField("ring", 20, PointField.UINT16, 1)]


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_cloud(n, rng):
    a = np.zeros(n, DTYPE)
    a["x"], a["y"], a["z"] = rng.uniform(-50, 50, (3, n)).astype(np.float32)
    a["intensity"] = rng.uniform(0, 1, n)
    a["ring"] = np.arange(n) % 64
    a["x"][rng.random(n) < 0.05] = np.nan
    return a


def our_decode(msg):
    """to_array is a zero-copy view (what ros_numpy users get); this also copies every field out."""
    arr = pc2.to_array(msg)
    return {name: np.array(arr[name]) for name in arr.dtype.names}


def bench(n, repeats, rng):
    arr = make_cloud(n, rng)
    header = Header(frame_id="lidar")
    msg = pc2.from_array(arr, header=header)
    slow_repeats = max(1, min(repeats, 3 if n >= 1_000_000 else repeats))
    tuples = [tuple(r) for r in arr.tolist()]
    res = {
        "points": n,
        "read_points_s": median_time(lambda: list(ros_pc2.read_points(msg)), slow_repeats),
        "decode_s": median_time(lambda: pc2.to_array(msg), repeats),
        "decode_materialised_s": median_time(lambda: our_decode(msg), repeats),
        "xyz_s": median_time(lambda: pc2.xyz(msg), repeats),
        "xyz_keep_nans_s": median_time(lambda: pc2.xyz(msg, remove_nans=False), repeats),
        "raw_copy_s": median_time(lambda: np.frombuffer(msg.data, np.uint8).copy(), repeats),
        "create_cloud_s": median_time(lambda: ros_pc2.create_cloud(header, FIELDS, tuples), slow_repeats),
        "encode_s": median_time(lambda: pc2.from_array(arr, header=header), repeats),
    }
    res["decode_speedup_vs_read_points"] = res["read_points_s"] / res["decode_s"]
    res["materialised_speedup_vs_read_points"] = res["read_points_s"] / res["decode_materialised_s"]
    res["xyz_vs_raw_copy"] = res["xyz_s"] / res["raw_copy_s"]
    res["xyz_keep_nans_vs_raw_copy"] = res["xyz_keep_nans_s"] / res["raw_copy_s"]
    res["encode_speedup_vs_create_cloud"] = res["create_cloud_s"] / res["encode_s"]
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    results = []
    for n in args.sizes:
        r = bench(n, args.repeats, rng)
        results.append(r)
        print(f"{n:>9,} pts | read_points {r['read_points_s'] * 1e3:9.1f} ms | to_array {r['decode_s'] * 1e3:6.3f} ms "
              f"({r['decode_speedup_vs_read_points']:,.0f}x), every field copied out "
              f"{r['decode_materialised_s'] * 1e3:6.2f} ms ({r['materialised_speedup_vs_read_points']:,.0f}x) | xyz {r['xyz_s'] * 1e3:6.2f} ms vs raw copy "
              f"{r['raw_copy_s'] * 1e3:6.2f} ms ({r['xyz_vs_raw_copy']:.2f}x; without NaN removal "
              f"{r['xyz_keep_nans_vs_raw_copy']:.2f}x) | create_cloud "
              f"{r['create_cloud_s'] * 1e3:8.1f} ms vs encode {r['encode_s'] * 1e3:6.2f} ms "
              f"({r['encode_speedup_vs_create_cloud']:,.0f}x)")
    ok = all(r["decode_speedup_vs_read_points"] >= 100 and r["xyz_vs_raw_copy"] <= 2.0 for r in results)
    print(json.dumps({"bench": "pointcloud2", "targets_met": ok, "results": results}))


if __name__ == "__main__":
    main()
