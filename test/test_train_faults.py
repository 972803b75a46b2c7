"""Faults: an exception on any rank ends the whole MPI job quickly, non-zero, error printed,
last checkpoint intact; the shared-memory files of the aborted MPICH job are cleaned up."""

import glob
import json
import os
import time

import pytest
import torch
import yaml

from _mpi_helpers import mpi_available, run_trainer
from deep_perception.train.checkpoint import file_sha256, load_checkpoint

pytestmark = [pytest.mark.mpi, pytest.mark.skipif(not mpi_available(), reason="mpi4py/mpirun missing")]


def fault_config(tmp_path, fault, n_train=64):
    cfg = {"task": "blobs", "task_target": "_train_tasks:BlobTask", "output": str(tmp_path / "out"),
           "train": {"epochs": 50, "batch_size": 8, "progress": False},
           "optimizer": {"name": "adam", "lr": 0.01},
           "blobs": {"n_train": n_train, "fault": {**fault, "stamp": str(tmp_path / "fault_time")}}}
    path = tmp_path / "fault.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def check_aborted(tmp_path, proc, expected_error, epochs_done):
    end = time.time()
    assert proc.returncode != 0
    assert expected_error in proc.stdout + proc.stderr
    fault_time = float((tmp_path / "fault_time").read_text())
    assert end - fault_time < 30, f"job took {end - fault_time:.1f} s to end after the fault"
    last = tmp_path / "out" / "last.pt"
    ckpt = load_checkpoint(last)
    sidecar = json.loads((tmp_path / "out" / "last.pt.json").read_text())
    assert sidecar["sha256"] == file_sha256(last)
    assert ckpt["epoch"] == sidecar["epoch"] == epochs_done
    assert "optimizer" in ckpt and all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
    assert not glob.glob(str(tmp_path / "out" / ".*.tmp"))
    mine = [p for p in glob.glob("/dev/shm/mpich_shm_*") if os.stat(p).st_uid == os.getuid()
            and os.stat(p).st_mtime >= fault_time - 120]
    assert not mine, f"aborted job left shared memory: {mine}"


def test_worker_exception_in_sync_mode_aborts_the_job(tmp_path):
    # 64 samples / (2 ranks x 8) = 4 steps per epoch: rank 1 fails in epoch 3, after 2 checkpoints
    cfg = fault_config(tmp_path, {"rank": 1, "where": "loss", "after": 10})
    proc, _ = run_trainer(cfg, 2, "--distributed", "sync", timeout=120)
    check_aborted(tmp_path, proc, "injected fault on rank 1 in loss", epochs_done=2)


def test_server_exception_in_async_mode_aborts_the_job(tmp_path):
    # rank 0 (the parameter server) fails in the second validation, after epoch 1's checkpoint,
    # while both workers wait for parameters
    cfg = fault_config(tmp_path, {"rank": 0, "where": "evaluate", "after": 1})
    proc, _ = run_trainer(cfg, 3, "--distributed", "async", timeout=120)
    check_aborted(tmp_path, proc, "injected fault on rank 0 in evaluate", epochs_done=1)
