#!/usr/bin/env python3
"""Predictor forward (BN folded, point-major matmuls, inference_mode) vs plain eager PyTorch of the same
trained PointNet, two baselines:

* ``eager``: ``model.eval(); model(x)``, autograd left on, as pointnet.pytorch's scripts run it (the
  issue's baseline; inference mode is one of the listed optimisations);
* ``eager_no_grad``: the same under ``torch.no_grad()``, the stricter comparison.

Same process, same input (a held-out Berlin building prepared as in training), interleaved runs; medians
of wall-clock time AND of this process's CPU time (``time.process_time``): on a machine shared with other
jobs the wall clock mostly measures the queue, CPU time (best with --threads 1) measures the work.
Ratios, the largest output difference, and one JSON line at the end.

    python bench/predictor.py [--checkpoints data/models/pointnet_cls.pt data/models/pointnet_seg.pt]
                              [--points 1024] [--batch 1] [--reps 30] [--threads 2]
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))
from deep_perception.inference.predictor import Predictor  # noqa: E402


def sample_input(pred, points, batch):
    z = np.load(os.path.join(ROOT, "data", "samples", "berlin_buildings.npz"))
    xs = []
    for i in range(batch):
        pts = z["points"][i % len(z["points"])]
        nrm = z["normals"][i % len(z["points"])].astype(np.float32)
        reps = -(-points // len(pts))  # more points than stored: repeat with a little jitter
        pts = np.concatenate([pts + 0.01 * k for k in range(reps)])
        nrm = np.concatenate([nrm] * reps)
        xs.append(pred.prepare(pts, nrm if pred.needs_normals else None)[0])
    return torch.from_numpy(np.stack(xs))


def time_it(fn, x, reps):
    """(wall seconds, CPU seconds) per call."""
    fn(x)  # warm-up
    wall, cpu = [], []
    for _ in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        fn(x)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", nargs="+", default=[os.path.join(ROOT, "data/models/pointnet_cls.pt"),
                                                         os.path.join(ROOT, "data/models/pointnet_seg.pt")])
    ap.add_argument("--points", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {"points": args.points, "batch": args.batch, "threads": args.threads, "torch": torch.__version__,
               "load_avg_start": os.getloadavg()[0], "models": {}}
    for path in args.checkpoints:
        pred = Predictor(path, device="cpu", points=args.points)
        eager = pred.eager.eval()
        x = sample_input(pred, args.points, args.batch)

        def run_eager(inp):
            return eager(inp)[0]

        def run_eager_no_grad(inp):
            with torch.no_grad():
                return eager(inp)[0]

        fns = {"eager": run_eager, "eager_no_grad": run_eager_no_grad, "predictor": pred.forward}
        with torch.no_grad():
            diff = float((run_eager(x) - pred.forward(x)).abs().max())
        wall = {k: [] for k in fns}
        cpu = {k: [] for k in fns}
        for _ in range(3):  # interleave so all see the same machine load
            for k, fn in fns.items():
                w, c = time_it(fn, x, args.reps // 3)
                wall[k] += w
                cpu[k] += c
        ms = {k: float(np.median(v)) * 1e3 for k, v in wall.items()}
        cms = {k: float(np.median(v)) * 1e3 for k, v in cpu.items()}
        name = pred.metadata.get("task", os.path.basename(path))
        p = ms["predictor"]
        print(f"{name:14s} wall: eager {ms['eager']:7.2f} ms  eager no_grad {ms['eager_no_grad']:7.2f} ms  "
              f"predictor {p:7.2f} ms  -> {ms['eager'] / p:4.2f}x / {ms['eager_no_grad'] / p:4.2f}x | CPU "
              f"{cms['eager'] / cms['predictor']:4.2f}x / {cms['eager_no_grad'] / cms['predictor']:4.2f}x | "
              f"max |diff| {diff:.2e} ({args.batch} x {args.points} points, {args.threads} threads)")
        results["models"][name] = {
            "eager_ms": ms["eager"], "eager_no_grad_ms": ms["eager_no_grad"], "predictor_ms": p,
            "speedup": ms["eager"] / p, "speedup_vs_no_grad": ms["eager_no_grad"] / p,
            "eager_cpu_ms": cms["eager"], "eager_no_grad_cpu_ms": cms["eager_no_grad"],
            "predictor_cpu_ms": cms["predictor"], "speedup_cpu": cms["eager"] / cms["predictor"],
            "speedup_cpu_vs_no_grad": cms["eager_no_grad"] / cms["predictor"], "max_abs_diff": diff}
    results["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
