"""Distributed training throughput: PointNet classifier steps at np=1 and np=2, our sync all-reduce
vs our async parameter server vs torch DDP (gloo) on the same model, data and per-rank batch; plus
our bucketed gradient all-reduce vs one raw mpi4py ``Allreduce`` of the same bytes.

    python bench/distributed.py [--batch 8] [--points 256] [--epochs 4] [--steps 6] [--reps 30]

Data: the bundled CityGML samples (data/citygml) converted once to cache/bench/citygml. Every run
goes through mpirun with the venv's MPICH (np=1 runs a plain process). Throughput = median over
epochs 2.. of (samples in the epoch's training steps / their wall time), evaluation excluded.
Targets: sync >= 0.9x DDP at np=2; bucketed all-reduce >= 0.8x raw bandwidth. Ends with one JSON line.
"""

import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
PY = REPO / ".venv" / "bin" / "python"
MPIRUN = REPO / ".venv" / "bin" / "mpirun"
CACHE = REPO / "cache" / "bench"


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO / "bench")])
    e["OMP_NUM_THREADS"] = "1"
    return e


def ensure_shards(points):
    out = CACHE / f"citygml_{points}"
    if not (out / "manifest.json").exists():
        subprocess.run([str(PY), "-m", "deep_perception.citygml", str(REPO / "data" / "citygml"),
                        "-o", str(out), "--points", str(points), "--quiet"], check=True, env=env(),
                       cwd=REPO, stdout=subprocess.DEVNULL)
    return out


def write_config(args, shards, name):
    import yaml
    cfg = {
        "task": "pointnet_cls", "seed": 0, "threads": 1, "output": str(CACHE / "runs" / name),
        "data": {"manifest": str(shards), "points": args.points, "channels": "xyz+normals",
                 "splits": {"train": ["synthetic", "nrw-koeln", "vienna", "zurich*", "*change*"],
                            "val": ["nrw-wesel"]}},
        "model": {"use_tnets": True},
        "train": {"epochs": args.epochs, "batch_size": args.batch, "max_steps_per_epoch": args.steps,
                  "progress": False, "eval_batch_size": 64},
        "optimizer": {"name": "momentum", "lr": 0.01},
    }
    path = CACHE / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(cmd, label):
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise RuntimeError(f"{label}: exit {proc.returncode}")
    print(f"  {label}: {time.perf_counter() - start:.1f} s wall", file=sys.stderr)
    return proc.stdout


def trainer_throughput(config, np_, mode):
    name = pathlib.Path(config).stem
    cmd = [str(PY)] if np_ == 1 and mode == "none" else [str(MPIRUN), "-n", str(np_), str(PY), "-m", "mpi4py"]
    run(cmd + ["-m", "deep_perception.train", "--config", str(config), "--distributed", mode],
        f"{name} np={np_} {mode}")
    metrics = json.loads((CACHE / "runs" / name / "metrics.json").read_text())
    rates = [e["samples_per_s"] for e in metrics["epochs"][1:]]
    return statistics.median(rates), metrics


def mpi_worker_json(np_, *worker_args):
    out = run([str(MPIRUN), "-n", str(np_), str(PY), "-m", "mpi4py", __file__, *worker_args],
              " ".join(worker_args[:1]) + f" np={np_}")
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------ workers (inside mpirun)
def sync_vs_ddp_worker(config_path, port):
    """Our sync step (default blocking and overlapped all-reduce) and torch DDP (gloo) side by side in the
    same processes, taking turns within every epoch (who goes first rotates) on the same task, data
    order, per-rank batch, optimiser and starting weights, so the shared machine's load hits all alike."""
    import copy

    import torch
    import torch.distributed as dist
    from mpi4py import MPI
    from torch.nn.parallel import DistributedDataParallel

    from deep_perception.train.config import load_config
    from deep_perception.train.engine import (Trainer, collate, data_parallel_step, epoch_seed,
                                              global_batches, rank_share, seed_everything)
    from deep_perception.train.optim import build_optimizer
    from deep_perception.train.sync import build_sync

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    cfg = load_config(config_path)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=size)
    variants = {}
    for name, overlap in (("ours", False), ("ours_overlap", True)):
        cfg["distributed"]["overlap"] = overlap
        trainer = Trainer(cfg, rank, size, mode="sync")
        if name == "ours":
            ddp_model = copy.deepcopy(trainer.model)  # before build_sync registers its gradient hooks
            for p in ddp_model.parameters():
                p.grad = None
        sync = build_sync(comm, trainer)
        sync.broadcast_model(trainer.model)
        variants[name] = (trainer, sync)
    ddp = DistributedDataParallel(ddp_model)
    ddp_opt = build_optimizer(ddp_model.parameters(), cfg["optimizer"])
    task, data = trainer.task, trainer.datasets["train"]
    per_rank = cfg["train"]["batch_size"]

    def epoch_ours(name, batches):
        trainer, sync = variants[name]
        for b in batches:
            data_parallel_step(trainer, collate(data, rank_share(b, rank, per_rank)), per_rank, len(b), sync)
        sync.average_buffers(trainer.model)  # as train_data_parallel does at each epoch end

    def epoch_ddp(name, batches):
        for b in batches:
            batch = collate(data, rank_share(b, rank, per_rank))
            ddp_opt.zero_grad()
            loss, _ = task.loss(ddp, batch)
            loss.backward()
            ddp_opt.step()

    rates = {"ours": [], "ours_overlap": [], "ddp": []}
    order = [("ours", epoch_ours), ("ddp", epoch_ddp), ("ours_overlap", epoch_ours)]
    for epoch in range(cfg["train"]["epochs"]):
        batches = global_batches(len(data), per_rank * size, cfg["seed"], epoch,
                                 max_steps=cfg["train"]["max_steps_per_epoch"])
        for name, fn in order[epoch % 3:] + order[:epoch % 3]:  # rotate who goes first
            seed_everything(epoch_seed(cfg["seed"], epoch, rank))
            task.on_epoch_start(variants[name][0].model if name != "ddp" else ddp_model, epoch)
            comm.Barrier()
            start = time.perf_counter()
            fn(name, batches)
            comm.Barrier()
            rates[name].append(sum(map(len, batches)) / (time.perf_counter() - start))
    dist.destroy_process_group()
    if rank == 0:
        print(json.dumps({k: statistics.median(v[1:]) for k, v in rates.items()} | {"rates": rates}))


def allreduce_worker(reps, bucket_mb, numel=None):
    """Median seconds of our bucketed all-reduce of the PointNet classifier's gradients vs one raw
    Allreduce of a single array with the same number of floats (or ``numel`` floats of an MLP)."""
    import numpy as np
    import torch
    from mpi4py import MPI

    from deep_perception.models.pointnet import build_pointnet
    from deep_perception.train.flat import GradBuckets
    from deep_perception.train.sync import SyncAllreduce

    comm = MPI.COMM_WORLD
    if numel:
        model = torch.nn.Sequential(*[torch.nn.Linear(1024, 1024) for _ in range(max(1, numel // 1049600))])
    else:
        model = build_pointnet("cls", 9, 6, normal_channels=True)
    grads = GradBuckets(model, bucket_mb)
    sync = SyncAllreduce(comm, model)
    raw = np.ones(grads.numel, dtype=np.float32)

    def timed(fn):
        comm.Barrier()
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    def ours():
        sync.allreduce(grads)

    def plain():
        comm.Allreduce(MPI.IN_PLACE, raw, op=MPI.SUM)

    for fn in (ours, plain):  # warm-up
        timed(fn)
    t_ours, t_raw = [], []
    for i in range(reps):  # alternate so load changes on the shared machine hit both alike
        for fn, times in ([(ours, t_ours), (plain, t_raw)] if i % 2 == 0 else [(plain, t_raw), (ours, t_ours)]):
            times.append(timed(fn))
    if comm.Get_rank() == 0:
        nbytes = grads.numel * 4
        ours, rawt = statistics.median(t_ours), statistics.median(t_raw)
        print(json.dumps({"floats": grads.numel, "buckets": len(grads.buckets), "bucket_mb": bucket_mb,
                          "ours_s": ours, "raw_s": rawt, "ours_GBps": nbytes / ours / 1e9,
                          "raw_GBps": nbytes / rawt / 1e9}))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8, help="per-rank batch")
    ap.add_argument("--points", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=6, help="steps per epoch")
    ap.add_argument("--reps", type=int, default=20, help="all-reduce repetitions per round")
    ap.add_argument("--bucket-mb", type=float, default=8.0, help="as the config default distributed.bucket_mb")
    ap.add_argument("--sync-ddp-worker", nargs=2, metavar=("CONFIG", "PORT"), help=argparse.SUPPRESS)
    ap.add_argument("--allreduce-worker", nargs=3, metavar=("REPS", "MB", "NUMEL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sync_ddp_worker:
        return sync_vs_ddp_worker(args.sync_ddp_worker[0], int(args.sync_ddp_worker[1]))
    if args.allreduce_worker:
        reps, mb, numel = args.allreduce_worker
        return allreduce_worker(int(reps), float(mb), int(numel) or None)

    print(f"PointNet cls, {args.points} points, per-rank batch {args.batch}, {args.steps} steps x "
          f"{args.epochs} epochs (first = warm-up), 1 torch thread per process", file=sys.stderr)
    shards = ensure_shards(1024 if args.points > 512 else 512)
    single, _ = trainer_throughput(write_config(args, shards, "np1"), 1, "none")
    sync_trainer, _ = trainer_throughput(write_config(args, shards, "sync2"), 2, "sync")
    async_, am = trainer_throughput(write_config(args, shards, "async2"), 2, "async")
    side = mpi_worker_json(2, "--sync-ddp-worker", str(write_config(args, shards, "side2")), str(free_port()))
    sync, ddp = side["ours"], {"samples_per_s": side["ddp"]}
    sync_overlap = side["ours_overlap"]
    ar = mpi_worker_json(2, "--allreduce-worker", str(args.reps), str(args.bucket_mb), "0")
    ar11 = mpi_worker_json(2, "--allreduce-worker", str(args.reps), str(args.bucket_mb), str(11 * 1049600))
    res = {
        "bench": "distributed", "points": args.points, "batch_per_rank": args.batch,
        "np1_samples_per_s": single, "sync2_samples_per_s": sync, "sync2_trainer_samples_per_s": sync_trainer,
        "sync2_overlap_samples_per_s": sync_overlap, "ddp2_samples_per_s": ddp["samples_per_s"],
        "async2_samples_per_s": async_, "async2_staleness_mean": am["async"]["staleness_mean"],
        "sync_vs_ddp": sync / ddp["samples_per_s"], "sync2_vs_np1": sync / single,
        "async2_vs_np1": async_ / single,
        "allreduce_pointnet": ar, "allreduce_pointnet_ratio": ar["ours_GBps"] / ar["raw_GBps"],
        "allreduce_11M": ar11, "allreduce_11M_ratio": ar11["ours_GBps"] / ar11["raw_GBps"],
    }
    print(f"np=1 single             {single:8.1f} samples/s", file=sys.stderr)
    print(f"np=2 sync (full trainer){sync_trainer:8.1f} samples/s   {sync_trainer / single:.2f}x np=1", file=sys.stderr)
    print(f"np=2 sync (ours, side by side with DDP) {sync:8.1f} samples/s; with overlap {sync_overlap:.1f}",
          file=sys.stderr)
    print(f"np=2 DDP gloo           {ddp['samples_per_s']:8.1f} samples/s   sync/DDP = {res['sync_vs_ddp']:.2f}"
          " (target >= 0.9)", file=sys.stderr)
    print(f"np=2 async (1 server+1) {async_:8.1f} samples/s   {async_ / single:.2f}x np=1", file=sys.stderr)
    for key, r in (("pointnet", ar), ("11M", ar11)):
        print(f"allreduce {key:8s} {r['floats']:>9d} floats, {r['buckets']} buckets: ours "
              f"{r['ours_GBps']:.2f} GB/s vs raw {r['raw_GBps']:.2f} GB/s = "
              f"{r['ours_GBps'] / r['raw_GBps']:.2f} (target >= 0.8)", file=sys.stderr)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
