"""Asynchronous parameter server under mpirun: very different worker speeds, bounded staleness,
clean shutdown; convergence on a small real task (PointNet roof classes of CityGML buildings)."""

import json

import pytest
import yaml

from _mpi_helpers import check, mpi_available, run_trainer

pytestmark = [pytest.mark.mpi, pytest.mark.skipif(not mpi_available(), reason="mpi4py/mpirun missing")]


def test_workers_at_very_different_speeds_finish_with_bounded_staleness(tmp_path):
    """Worker 2 sleeps 100 ms per batch, worker 1 does not: no deadlock, fast worker does more
    batches, pushes staler than max_staleness are dropped and counted, every sample batch of every
    epoch is handed out exactly once, clean exit."""
    cfg = {"task": "blobs", "task_target": "_train_tasks:BlobTask", "output": str(tmp_path / "out"),
           "train": {"epochs": 3, "batch_size": 4, "progress": False},
           "optimizer": {"name": "sgd", "lr": 0.05},
           "distributed": {"max_staleness": 2, "staleness_policy": "drop"},
           "blobs": {"n_train": 96, "slow_ranks": {2: 0.1}}}
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


@pytest.fixture(scope="module")
def real_shards(tmp_path_factory):
    """Real buildings (NRW LoD2 tiles, PLATEAU LoD1 blocks, Vienna) converted to 128-point shards."""
    from deep_perception.citygml.__main__ import main as citygml2pc
    from conftest import DATA

    out = tmp_path_factory.mktemp("real") / "shards"
    inputs = [DATA / "citygml" / d for d in ("nrw", "citygml-osm", "vienna")]
    assert citygml2pc([*map(str, inputs), "-o", str(out), "--points", "128", "--quiet"]) in (0, None)
    return out


def test_async_converges_on_real_buildings(tmp_path, real_shards):
    """Per-point ground/wall/roof segmentation, trained on Cologne + Japanese buildings, validated on
    the Wesel tile: the async run must beat the majority class clearly. Pushes one version stale are
    down-weighted (max_staleness 0, policy downweight)."""
    cfg = {"task": "pointnet_seg", "seed": 0, "threads": 1, "output": str(tmp_path / "out"),
           "data": {"manifest": str(real_shards), "points": 128, "channels": "xyz+normals",
                    "splits": {"train": ["nrw-koeln", "japan"], "val": ["nrw-wesel"], "test": ["vienna"]}},
           "model": {"use_tnets": False}, "augment": {"rotate": True},
           "train": {"epochs": 10, "batch_size": 8, "eval_batch_size": 32, "progress": False},
           "optimizer": {"name": "adam", "lr": 0.003}}
    path = tmp_path / "seg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc, _ = run_trainer(path, 3, "--distributed", "async", "--max-staleness", "0",
                          "--staleness-policy", "downweight", timeout=300)
    check(proc)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    epochs = metrics["epochs"]
    majority = epochs[0]["val_majority_baseline"]
    assert metrics["async"]["staleness_max"] >= 1 and metrics["async"]["pushes_dropped"] == 0
    assert max(e["val_accuracy"] for e in epochs) > majority + 0.25
    assert metrics["best"]["score"] == max(e["val_score"] for e in epochs)
    assert min(e["train_loss"] for e in epochs[-3:]) < 0.5 * epochs[0]["train_loss"]
    assert (tmp_path / "out" / "curves.png").exists() and "test" in metrics
