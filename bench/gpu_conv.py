#!/usr/bin/env python3
"""Our tiled CUDA convolution (cuda/tiled_conv2d.cu via pycuda) against cuDNN, on one GPU.

1. Correctness: every case's output against cuDNN fp32 (TF32 off): max abs and max relative error
   (``correct`` when the error relative to the output's largest magnitude is <= 1e-4).
2. Timing (CUDA events, warm-up, median of repeats) of ours vs cuDNN fp32 with TF32 off and on
   (cudnn.benchmark on, so cuDNN picks its best algorithm), for
   - the seed's case: one 4096x4096 single-channel image, 5x5 mask, 'same' padding;
   - every convolution shape of ResNet-18 at batch 32, 224x224 (with how often each occurs),
     plus the whole ResNet-18 convolution stack (sum of shape time x count).
   Our time is the whole ``conv2d`` call: the launch plan's __constant__ filter copies and all launches.
   Two kernel configurations are timed (16x16 tile / 8 output channels per thread, and 32x8 / 16);
   ``ours`` is the faster of the two per shape.
Ends with one JSON line on stdout. Installs nothing. On the GPU machine (Python 3.12, pycuda wheels in
../shared/wheels/pycuda-cp312/ copied to a git-ignored .whl/ in the checkout, carried with the run):

    python3 -m pip install -q --no-index --no-deps --no-compile --target .site .whl/*.whl && \
    PYTHONPATH=$PWD/.site:$PWD/src python3 bench/gpu_conv.py

``--quick`` runs fewer repeats (and a 2048x2048 seed case) for a smoke test.
"""

import argparse
import json
import statistics
import sys
import time

SEED_CASE = ("seed 1x1x4096x4096 k5", 1, 1, 4096, 4096, 1, 5, 1, 2, 1)

# (name, N, Cin, H, W, Cout, k, stride, pad, occurrences in ResNet-18)
RESNET18_B32 = [
    ("conv1 3->64 k7 s2 @224", 32, 3, 224, 224, 64, 7, 2, 3, 1),
    ("layer1 64->64 k3 @56", 32, 64, 56, 56, 64, 3, 1, 1, 4),
    ("layer2.0 64->128 k3 s2 @56", 32, 64, 56, 56, 128, 3, 2, 1, 1),
    ("layer2 ds 64->128 k1 s2 @56", 32, 64, 56, 56, 128, 1, 2, 0, 1),
    ("layer2 128->128 k3 @28", 32, 128, 28, 28, 128, 3, 1, 1, 3),
    ("layer3.0 128->256 k3 s2 @28", 32, 128, 28, 28, 256, 3, 2, 1, 1),
    ("layer3 ds 128->256 k1 s2 @28", 32, 128, 28, 28, 256, 1, 2, 0, 1),
    ("layer3 256->256 k3 @14", 32, 256, 14, 14, 256, 3, 1, 1, 3),
    ("layer4.0 256->512 k3 s2 @14", 32, 256, 14, 14, 512, 3, 2, 1, 1),
    ("layer4 ds 256->512 k1 s2 @14", 32, 256, 14, 14, 512, 1, 2, 0, 1),
    ("layer4 512->512 k3 @7", 32, 512, 7, 7, 512, 3, 1, 1, 3),
]


REL_TOL = 1e-4  # max |ours - cuDNN fp32| / max |cuDNN fp32| per case, both kernel configurations


def time_cuda(fn, warmup, repeats):
    """Median milliseconds of ``fn()`` by CUDA events (each repeat timed on its own)."""
    import torch
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few repeats, smaller seed case (smoke test)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args(argv)
    repeats = args.repeats or (5 if args.quick else 30)

    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(json.dumps({"bench": "gpu_conv", "error": f"torch missing: {e}"}))
        return 2
    from deep_perception.ops import KernelConfig, backend_availability
    from deep_perception.ops.tiled_cuda import tiled_kernel

    ok, why = backend_availability("tiled")
    if not ok:
        print(f"tiled backend unavailable: {why}", file=sys.stderr)
        print(json.dumps({"bench": "gpu_conv", "error": why}))
        return 2

    t0 = time.time()
    configs = {"16x16x8": KernelConfig(), "32x8x16": KernelConfig(tile_w=32, tile_h=8, cout_tile=16)}
    kernels = {name: tiled_kernel(cfg) for name, cfg in configs.items()}
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__} cuDNN "
          f"{torch.backends.cudnn.version()}  kernels compiled in {time.time() - t0:.1f} s", file=sys.stderr)
    torch.backends.cudnn.benchmark = True

    seed = list(SEED_CASE)
    if args.quick:
        seed[0], seed[3], seed[4] = "seed 1x1x2048x2048 k5", 2048, 2048
    cases = [tuple(seed)] + RESNET18_B32
    rows = []
    gen = torch.Generator(device="cuda").manual_seed(0)
    for name, n, cin, h, w, cout, k, stride, pad, count in cases:
        x = torch.randn(n, cin, h, w, device="cuda", generator=gen)
        wt = torch.randn(cout, cin, k, k, device="cuda", generator=gen) / (cin * k * k) ** 0.5

        torch.backends.cudnn.allow_tf32 = False
        ref = F.conv2d(x, wt, None, stride, pad)
        row = {"case": name, "count": count, "shape": [n, cin, h, w, cout, k, stride, pad]}
        ours_ms = {}
        for cname, kernel in kernels.items():
            out = kernel.conv2d(x, wt, None, stride, pad)
            err = (out - ref).abs().max().item()
            row[f"max_abs_err_{cname}"] = err
            row[f"max_rel_err_{cname}"] = err / max(ref.abs().max().item(), 1e-30)
            ours_ms[cname] = time_cuda(lambda: kernel.conv2d(x, wt, None, stride, pad), args.warmup, repeats)
            row[f"ours_{cname}_ms"] = ours_ms[cname]
        row["correct"] = all(row[f"max_rel_err_{c}"] <= REL_TOL for c in kernels)
        row["ours_ms"] = min(ours_ms.values())
        row["ours_best_config"] = min(ours_ms, key=ours_ms.get)
        row["cudnn_fp32_ms"] = time_cuda(lambda: F.conv2d(x, wt, None, stride, pad), args.warmup, repeats)
        torch.backends.cudnn.allow_tf32 = True
        row["cudnn_tf32_ms"] = time_cuda(lambda: F.conv2d(x, wt, None, stride, pad), args.warmup, repeats)
        torch.backends.cudnn.allow_tf32 = False
        row["speedup_vs_cudnn_fp32"] = row["cudnn_fp32_ms"] / row["ours_ms"]
        row["speedup_vs_cudnn_tf32"] = row["cudnn_tf32_ms"] / row["ours_ms"]
        flops = 2.0 * n * cout * ref.shape[2] * ref.shape[3] * cin * k * k
        row["ours_tflops"] = flops / row["ours_ms"] / 1e9
        rows.append(row)
        print(f"{name:32s} ours {row['ours_ms']:9.3f} ms ({row['ours_best_config']})  cuDNN fp32 "
              f"{row['cudnn_fp32_ms']:8.3f}  tf32 {row['cudnn_tf32_ms']:8.3f}  ours/cuDNN speed "
              f"x{row['speedup_vs_cudnn_fp32']:.3f} (fp32) x{row['speedup_vs_cudnn_tf32']:.3f} (tf32)  "
              f"max abs err {min(row[f'max_abs_err_{c}'] for c in configs):.2e}", file=sys.stderr)
        del x, wt, ref

    resnet = rows[1:]
    total = {key: sum(r[key] * r["count"] for r in resnet) for key in ("ours_ms", "cudnn_fp32_ms", "cudnn_tf32_ms")}
    summary = {
        "bench": "gpu_conv",
        "device": torch.cuda.get_device_name(),
        "repeats": repeats,
        "seed_case": {k: rows[0][k] for k in ("case", "ours_ms", "cudnn_fp32_ms", "cudnn_tf32_ms",
                                              "speedup_vs_cudnn_fp32", "speedup_vs_cudnn_tf32")},
        "resnet18_b32_conv_total_ms": total,
        "resnet18_b32_speedup_vs_cudnn_fp32": total["cudnn_fp32_ms"] / total["ours_ms"],
        "resnet18_b32_speedup_vs_cudnn_tf32": total["cudnn_tf32_ms"] / total["ours_ms"],
        "max_rel_err": max(r[f"max_rel_err_{c}"] for c in configs for r in rows),
        "all_correct": all(r["correct"] for r in rows),
        "rel_tol": REL_TOL,
        "rows": rows,
        "wall_s": time.time() - t0,
    }
    print(f"seed case: ours/cuDNN speed x{summary['seed_case']['speedup_vs_cudnn_fp32']:.3f} (fp32), "
          f"ResNet-18 b32 conv stack x{summary['resnet18_b32_speedup_vs_cudnn_fp32']:.3f} (fp32) "
          f"x{summary['resnet18_b32_speedup_vs_cudnn_tf32']:.3f} (tf32)", file=sys.stderr)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
