"""``python -m deep_perception.train`` / ``dp-train``: one entry for every training mode.

Single process::

    python -m deep_perception.train --config config/pointnet_cls.yaml

MPI (sync all-reduce or async parameter server), one machine or several with ``-f hostfile``::

    mpirun -n 4 .venv/bin/python -m mpi4py -m deep_perception.train --config X --distributed sync
"""

import argparse
import logging
import os
import sys
import traceback

import yaml

from deep_perception.fileio import atomic_open
from deep_perception.train.config import ConfigError, load_config

log = logging.getLogger("deep_perception.train")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="dp-train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="training YAML (see docs/training.md)")
    ap.add_argument("--distributed", choices=["none", "sync", "async"], default=None,
                    help="training mode (default: the config's distributed.mode)")
    ap.add_argument("--output", help="output directory (overrides the config's output)")
    ap.add_argument("--resume", help="checkpoint to continue from, or 'auto' for OUTPUT/last.pt if present")
    ap.add_argument("--epochs", type=int, help="override train.epochs")
    ap.add_argument("--threads", type=int, help="torch threads per process (overrides threads)")
    ap.add_argument("--max-staleness", type=int, help="async: override distributed.max_staleness")
    ap.add_argument("--staleness-policy", choices=["drop", "downweight"],
                    help="async: override distributed.staleness_policy")
    ap.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                    help="override any config value (YAML-parsed), repeatable")
    return ap.parse_args(argv)


def build_config(args):
    overrides = list(args.set)
    if args.distributed:
        overrides.append(f"distributed.mode={args.distributed}")
    if args.output:
        overrides.append(f"output={args.output}")
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    if args.threads is not None:
        overrides.append(f"threads={args.threads}")
    if args.max_staleness is not None:
        overrides.append(f"distributed.max_staleness={args.max_staleness}")
    if args.staleness_policy:
        overrides.append(f"distributed.staleness_policy={args.staleness_policy}")
    return load_config(args.config, overrides)


def resolve_resume(resume, output):
    if resume is None:
        return None
    if resume == "auto":
        path = os.path.join(output, "last.pt")
        return path if os.path.isfile(path) else None
    if not os.path.isfile(resume):
        raise FileNotFoundError(f"--resume: checkpoint not found: {resume}")
    return resume


def run(config, resume=None, comm=None):
    """Train per ``config``; returns rank 0's test metrics (None elsewhere)."""
    from deep_perception.train.engine import Trainer, train_data_parallel

    mode = config["distributed"]["mode"]
    rank = comm.Get_rank() if comm is not None else 0
    size = comm.Get_size() if comm is not None else 1
    trainer = Trainer(config, rank=rank, world_size=size, mode=mode)
    if resume and (mode != "async" or rank == 0):  # async workers get everything from the server
        trainer.resume(resume)
        if rank == 0:
            log.info("resumed from %s at epoch %d, step %d", resume, trainer.epoch, trainer.step)
    if rank == 0:
        os.makedirs(config["output"], exist_ok=True)
        with atomic_open(os.path.join(config["output"], "config.yaml")) as f:
            yaml.safe_dump(config, f, sort_keys=False)
    if mode == "none":
        return train_data_parallel(trainer)
    if mode == "sync":
        from deep_perception.train.sync import run_sync
        return run_sync(trainer, comm)
    from deep_perception.train.async_ps import run_async
    return run_async(trainer, comm)


def main(argv=None):
    args = parse_args(argv)
    try:
        config = build_config(args)
    except ConfigError as exc:
        print(f"dp-train: config error: {exc}", file=sys.stderr)
        return 2
    mode = config["distributed"]["mode"]
    comm = None
    if mode != "none":
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
        if mode == "async" and comm.Get_size() < 2:
            print("dp-train: --distributed async needs at least 2 MPI ranks (1 server + workers)",
                  file=sys.stderr)
            return 2
    elif "OMPI_COMM_WORLD_SIZE" in os.environ or int(os.environ.get("PMI_SIZE", "1")) > 1:
        print("dp-train: started by mpirun with several ranks but --distributed is 'none'; "
              "pass --distributed sync|async", file=sys.stderr)
        return 2
    rank = comm.Get_rank() if comm is not None else 0
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"[rank {rank}] %(levelname)s %(message)s")
    try:
        resume = resolve_resume(args.resume, config["output"])
        test = run(config, resume, comm)
    except BaseException:
        # Print this rank's error, then bring the whole job down (other ranks may wait in a
        # collective forever otherwise); also covers runs started without ``-m mpi4py``.
        sys.stderr.write(f"[rank {rank}] training failed:\n{traceback.format_exc()}")
        sys.stderr.flush()
        if comm is not None and comm.Get_size() > 1:
            comm.Abort(1)
        return 1
    if rank == 0 and test is not None:
        log.info("test (best validation model): %s", test)
    return 0


if __name__ == "__main__":
    sys.exit(main())
