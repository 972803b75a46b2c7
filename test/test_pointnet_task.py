"""PointNet tasks: city splits, datasets, augmentations, metrics, class weights, trainer round trip."""

import json

import numpy as np
import pytest
import torch

from deep_perception.data.augment import Augment, jitter, rotate_up
from deep_perception.data.dataset import BuildingDataset
from deep_perception.data.preprocess import farthest_point_indices, normalise, sample_indices
from deep_perception.data.synthetic import write_synthetic_dataset
from deep_perception.tasks.metrics import confusion_matrix, metrics_from_confusion
from deep_perception.tasks.pointnet import ConfigKeyError, class_weights
from deep_perception.train.task import build_task
from deep_perception.vocab import ROOF_UNKNOWN

torch.set_num_threads(1)  # small tensors: one thread is faster on a shared machine


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic_dataset(str(tmp_path_factory.mktemp("synth")), buildings_per_file=6,
                                   files_per_city=2, points=256, seed=1)


def _config(manifest, task="pointnet_seg", splits=None, **data):
    d = {"manifest": manifest, "points": 64, "channels": "xyz+normals",
         "splits": splits or {"train": ["alpha"], "val": ["beta/*"], "test": ["gamma"]}}
    d.update(data)
    return {"task": task, "seed": 0, "train": {"progress": False}, "data": d}


def test_splits_are_by_city_or_file_and_disjoint(synth):
    ds = build_task(_config(synth)).datasets()
    assert {k: len(v) for k, v in ds.items()} == {"train": 12, "val": 12, "test": 12}
    for name, city in (("train", "alpha"), ("val", "beta"), ("test", "gamma")):
        assert all(f"::{city}/" in f for f in ds[name].building_files)
    one_file = build_task(_config(synth, splits={"train": ["alpha/tile_0.gml"], "val": ["tile_1.gml"]}))
    assert len(one_file.datasets()["train"]) == 6 and len(one_file.datasets()["val"]) == 18
    minus = build_task(_config(synth, splits={"train": ["alpha", "beta", "!beta/tile_1.gml"], "val": ["beta/tile_1.gml"]}))
    assert len(minus.datasets()["train"]) == 18
    overlap = build_task(_config(synth, splits={"train": ["alpha"], "val": ["alpha/tile_1.gml"]}))
    with pytest.raises(ConfigKeyError, match="both"):
        overlap.datasets()


def test_missing_split_or_manifest_is_a_clear_error(synth):
    with pytest.raises(ConfigKeyError, match="data.manifest"):
        build_task({"task": "pointnet_seg", "data": {}})
    with pytest.raises(ConfigKeyError, match="splits"):
        build_task(_config(synth, splits={"train": ["alpha"]}))
    with pytest.raises(ValueError, match="no buildings"):
        build_task(_config(synth, splits={"train": ["nowhere"], "val": ["beta"]})).datasets()


def test_samples_shapes_and_eval_determinism(synth):
    ds = build_task(_config(synth)).datasets()
    s = ds["train"][0]
    assert s["points"].shape == (64, 6) and s["label"].shape == (64,) and s["label"].dtype == torch.int64
    a, b = ds["val"][3], ds["val"][3]
    torch.testing.assert_close(a["points"], b["points"])
    ds["train"].set_epoch(1)
    assert not torch.equal(ds["train"][0]["points"], s["points"])
    cls = build_task(_config(synth, task="pointnet_cls", channels="xyz")).datasets()
    assert cls["train"][0]["points"].shape == (64, 3) and cls["train"][0]["label"].shape == ()


def test_cls_skips_buildings_without_roof_class(tmp_path):
    manifest = write_synthetic_dataset(str(tmp_path), cities=("a", "b"), buildings_per_file=4, files_per_city=1)
    from deep_perception.data import shards
    path = tmp_path / "shard_0000.npz"
    arrays = shards.read_shard(path)
    arrays["roof_class"][:2] = ROOF_UNKNOWN
    shards.write_shard(path, arrays)
    ds = BuildingDataset(manifest, ["a"], points=32, channels="xyz", target="roof_class", progress=False)
    assert len(ds) == 2
    assert len(BuildingDataset(manifest, ["a"], points=32, channels="xyz", progress=False)) == 4


def test_augmentations(rng):
    pts = rng.normal(size=(500, 3)).astype(np.float32)
    nrm = np.tile(np.array([[1.0, 0.0, 0.0]], np.float32), (500, 1))
    r, rn = rotate_up(pts, nrm, rng)
    np.testing.assert_allclose(r[:, 2], pts[:, 2])  # about the up axis only
    np.testing.assert_allclose(np.linalg.norm(r[:, :2], axis=1), np.linalg.norm(pts[:, :2], axis=1), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(rn, axis=1), 1.0, rtol=1e-5)
    j = jitter(pts, rng)
    assert np.abs(j - pts).max() <= 0.05 + 1e-6 and 0.005 < np.std(j - pts) < 0.015
    labels = np.arange(500) % 3
    p2, n2, l2 = Augment({"rotate": False, "jitter_sigma": 0, "scale_low": 1, "scale_high": 1})(pts, nrm, labels, rng)
    dropped = np.flatnonzero((p2 == p2[0]).all(axis=1))[1:]
    assert (l2[dropped] == labels[0]).all() and p2.shape == pts.shape


def test_sampling_and_normalisation(rng):
    xyz = rng.normal(size=(300, 3)) * 5 + 100
    idx = sample_indices(300, 64, "random", rng)
    assert len(np.unique(idx)) == 64
    pad = sample_indices(10, 64, "random", rng)
    assert len(pad) == 64 and set(pad) == set(range(10))
    fps = farthest_point_indices(np.array([[0, 0, 0], [1, 0, 0], [10, 0, 0], [5, 0, 0.]]), 3)
    assert list(fps) == [0, 2, 3]
    out, centre, scale = normalise(xyz.astype(np.float32))
    np.testing.assert_allclose(out[:, :3].mean(axis=0), 0, atol=1e-4)
    assert np.sqrt((out ** 2).sum(axis=1)).max() == pytest.approx(1.0, abs=1e-5)


def test_metrics_on_a_known_confusion():
    target = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 1, 0])
    cm = confusion_matrix(target, pred, 4)
    assert cm.tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    m = metrics_from_confusion(cm, ["a", "b", "c", "d"], main_classes=["a", "b"])
    assert m["oa"] == pytest.approx(4 / 6)
    assert m["iou"] == pytest.approx({"a": 2 / 4, "b": 2 / 3, "c": 0.0})  # d absent from ground truth
    assert m["miou"] == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    assert m["miou_main"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert m["majority_baseline"] == pytest.approx(0.5)
    json.dumps(m)


def test_class_weights():
    t = np.array([0] * 90 + [1] * 10)
    w = class_weights(t, 3, "inverse")
    assert float(w[1] / w[0]) == pytest.approx(9.0) and float(w[2]) == 0.0
    assert class_weights(t, 3, "none") is None
    with pytest.raises(ConfigKeyError):
        class_weights(t, 3, "bogus")


def test_trainer_round_trip_keeps_best_on_validation(synth, tmp_path):
    """The project's trainer runs the task; metadata carries what the Predictor needs."""
    from deep_perception.train.__main__ import run
    from deep_perception.train.config import load_config
    from deep_perception.train.checkpoint import load_checkpoint

    cfg = _config(synth)
    cfg.update({"output": str(tmp_path / "run"), "threads": 1,
                "train": {"epochs": 2, "batch_size": 4, "eval_batch_size": 8, "max_steps_per_epoch": 2,
                          "progress": False},
                "loss": {"class_weights": "inverse_log"}})
    config = load_config(base=cfg)
    test = run(config)
    assert 0.0 <= test["miou"] <= 1.0 and "iou/roof" in test
    meta = load_checkpoint(tmp_path / "run" / "best.pt")["metadata"]
    assert meta["kind"] == "seg" and meta["in_channels"] == 6 and meta["classes"][2] == "roof"
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    assert all("val_score" in h for h in history)


def test_evaluate_cli_writes_report_pngs_card_and_fp16_export(synth, tmp_path):
    """The model-card path: evaluate a checkpoint on its test split, export fp16, write card and PNGs."""
    import yaml

    from deep_perception.tasks.evaluate import main as evaluate_main
    from deep_perception.train.checkpoint import load_checkpoint, save_checkpoint

    cfg = _config(synth)
    task = build_task(cfg)
    ckpt = tmp_path / "best.pt"
    save_checkpoint(ckpt, task.build_model().state_dict(), task.metadata(), epoch=3)
    cfg_path = tmp_path / "seg.yaml"
    cfg_path.write_text(yaml.safe_dump({**cfg, "output": str(tmp_path / "run")}))
    out = tmp_path / "eval"
    assert evaluate_main(["--config", str(cfg_path), "--checkpoint", str(ckpt), "-o", str(out),
                          "--export", str(tmp_path / "small.pt"), "--card", str(tmp_path / "card.md"),
                          "--clouds", "1", "--threads", "1"]) == 0
    report = json.loads((out / "report_test.json").read_text())
    assert report["count"] == 12 * 64 and len(report["confusion"]) == 7
    assert (out / "confusion_test.png").stat().st_size > 1000
    assert len(list(out.glob("cloud_test_*.png"))) == 1
    card = (tmp_path / "card.md").read_text()
    assert "mIoU ground/wall/roof" in card and "best epoch on validation: 3" in card and "float16" in card
    small = load_checkpoint(tmp_path / "small.pt")
    assert small["metadata"]["weights_dtype"] == "float16" and "optimizer" not in small
    assert small["metadata"]["metrics"]["count"] == 12 * 64 and small["metadata"]["source_checkpoint"]["sha256"]
    assert len(small["metadata"]["manifest_sha256"][synth]) == 64
