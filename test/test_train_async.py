"""Asynchronous parameter server under mpirun: very different worker speeds, bounded staleness,
clean shutdown; convergence on a small real task (PointNet roof classes of CityGML buildings)."""

import json

import pytest
import yaml

from _mpi_helpers import check, mpi_available, run_trainer

pytestmark = [pytest.mark.mpi, pytest.mark.skipif(not mpi_available(), reason="mpi4py/mpirun missing")]


def test_workers_at_very_different_speeds_finish_with_bounded_staleness(tmp_path):
    """Worker 2 sleeps 40 ms per batch, worker 1 does not: no deadlock, fast worker does more
    batches, pushes staler than max_staleness are dropped and counted, every sample batch of every
    epoch is handed out exactly once, clean exit."""
    cfg = {"task": "blobs", "task_target": "_train_tasks:BlobTask", "output": str(tmp_path / "out"),
           "train": {"epochs": 3, "batch_size": 4, "progress": False},
           "optimizer": {"name": "sgd", "lr": 0.05},
           "distributed": {"max_staleness": 2, "staleness_policy": "drop"},
           "blobs": {"n_train": 96, "slow_ranks": {2: 0.04}}}
    path = tmp_path / "async.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc, seconds = run_trainer(path, 3, "--distributed", "async", timeout=180)
    check(proc)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    stats = metrics["async"]
    assert stats["workers"] == 2
    assert stats["pushes"] == 3 * 96 // 4  # each batch of each epoch pushed once
    assert sum(stats["staleness_histogram"].values()) == stats["pushes"]
    assert stats["pushes_per_worker"]["1"] > 2 * stats["pushes_per_worker"]["2"] > 0
    assert stats["staleness_max"] > 2 and stats["pushes_dropped"] > 0
    dropped_by_histogram = sum(n for s, n in stats["staleness_histogram"].items() if int(s) > 2)
    assert stats["pushes_dropped"] == dropped_by_histogram
    assert metrics["steps"] == stats["pushes"] - stats["pushes_dropped"]
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert all(e["pushes"] == 24 for e in metrics["epochs"])
    assert "test" in metrics and (tmp_path / "out" / "best.pt").exists()
