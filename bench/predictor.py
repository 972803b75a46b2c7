#!/usr/bin/env python3
"""Predictor forward (BN folded, point-major matmuls, inference_mode) vs plain eager PyTorch of the same
trained PointNet (model.eval() under torch.no_grad(), what pointnet.pytorch users run).

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
            with torch.no_grad():
                return eager(inp)[0]

        ours = pred.forward
        with torch.no_grad():
            diff = float((run_eager(x) - ours(x)).abs().max())
        te, to, ce, co = [], [], [], []
        for _ in range(3):  # interleave so both see the same machine load
            w, c = time_it(run_eager, x, args.reps // 3)
            te, ce = te + w, ce + c
            w, c = time_it(ours, x, args.reps // 3)
            to, co = to + w, co + c
        me, mo = float(np.median(te)) * 1e3, float(np.median(to)) * 1e3
        cme, cmo = float(np.median(ce)) * 1e3, float(np.median(co)) * 1e3
        name = pred.metadata.get("task", os.path.basename(path))
        print(f"{name:14s} wall: eager {me:8.2f} ms  predictor {mo:8.2f} ms  {me / mo:5.2f}x | CPU: eager "
              f"{cme:8.2f} ms  predictor {cmo:8.2f} ms  {cme / cmo:5.2f}x | max |diff| {diff:.2e} "
              f"({args.batch} x {args.points} points, {args.threads} threads)")
        results["models"][name] = {"eager_ms": me, "predictor_ms": mo, "speedup": me / mo,
                                   "eager_cpu_ms": cme, "predictor_cpu_ms": cmo, "speedup_cpu": cme / cmo,
                                   "max_abs_diff": diff}
    results["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
