"""Predictor: checkpoint loading, training-identical preprocessing, fast == eager, label mapping."""

import numpy as np
import pytest
import torch

from deep_perception.data.dataset import BuildingDataset
from deep_perception.data.synthetic import sample_house, write_synthetic_dataset
from deep_perception.inference.fast_pointnet import FastPointNet
from deep_perception.inference.predictor import Predictor
from deep_perception.models.pointnet import TNet
from deep_perception.train.checkpoint import save_checkpoint
from deep_perception.train.task import build_task

torch.set_num_threads(1)  # small tensors: one thread is faster on a shared machine


def _config(manifest, task, channels="xyz+normals", points=128, use_tnets=True):
    return {"task": task, "seed": 0, "train": {"progress": False},
            "data": {"manifest": manifest, "points": points, "channels": channels,
                     "splits": {"train": ["alpha"], "val": ["beta"], "test": ["gamma"]}},
            "model": {"use_tnets": use_tnets}}


def _randomise_bn(model):
    """Non-trivial batch-norm statistics and affine parameters and T-Nets that are not the identity (their
    last layer starts at zero), as after training: a transposed transform fold then shows."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, TNet):
            m.out.weight.data.copy_(torch.randn(m.out.weight.shape, generator=g) * 0.05)
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    return write_synthetic_dataset(str(d), buildings_per_file=4, files_per_city=1, points=256, seed=3)


def _checkpoint(tmp_path, synth, task_name, **kw):
    task = build_task(_config(synth, task_name, **kw))
    model = task.build_model()
    _randomise_bn(model)
    path = tmp_path / f"{task_name}.pt"
    save_checkpoint(path, model.state_dict(), task.metadata())
    return path, task, model


@pytest.mark.parametrize("task_name", ["pointnet_cls", "pointnet_seg"])
@pytest.mark.parametrize("channels,use_tnets", [("xyz+normals", True), ("xyz", False)])
def test_fast_model_matches_eager(tmp_path, synth, task_name, channels, use_tnets):
    path, _, model = _checkpoint(tmp_path, synth, task_name, channels=channels, use_tnets=use_tnets)
    model.eval()
    fast = FastPointNet(model)
    for batch in (1, 3):  # batch 1 takes the mm path, larger batches bmm
        x = torch.randn(batch, 200, 6 if channels == "xyz+normals" else 3)
        with torch.inference_mode():
            torch.testing.assert_close(fast(x), model(x)[0], atol=1e-4, rtol=1e-4)
    p_fast, p_eager = Predictor(path, device="cpu"), Predictor(path, device="cpu", fast=False)
    h = sample_house(np.random.default_rng(0), 500)
    a = p_fast.predict([h[0]], [h[1]])[0]
    b = p_eager.predict([h[0]], [h[1]])[0]
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-4)


def test_preprocessing_is_the_training_preprocessing(tmp_path, synth):
    path, task, _ = _checkpoint(tmp_path, synth, "pointnet_seg", points=256)
    ds = BuildingDataset(synth, ["gamma"], points=256, channels="xyz+normals", train=False, progress=False)
    pred = Predictor(path, device="cpu")
    x, finite, idx = pred.prepare(ds.xyz[0], ds.normals[0])
    np.testing.assert_array_equal(np.sort(idx), np.arange(256))
    np.testing.assert_allclose(x[np.argsort(idx)], ds[0]["points"].numpy(), atol=1e-6)


def test_seg_labels_cover_every_input_point(tmp_path, synth):
    path, _, _ = _checkpoint(tmp_path, synth, "pointnet_seg", points=128)
    pred = Predictor(path, device="cpu", sampling="fps")
    pts, nrm, _, _ = sample_house(np.random.default_rng(5), 700)
    pts[::50] = np.nan
    res = pred.predict([pts], [nrm])[0]
    assert res.labels.shape == (700,) and res.scores.shape == (700,)
    bad = ~np.isfinite(pts).all(axis=1)
    assert (res.labels[bad] == -1).all() and (res.scores[bad] == 0).all()
    assert (res.labels[~bad] >= 0).all() and (res.scores[~bad] > 0).all()
    # a point not fed to the network takes the label of its nearest sampled neighbour (position + normal)
    x, finite, idx = pred.prepare(pts, nrm)
    sampled = finite[idx]
    rest = np.setdiff1d(finite, sampled)
    scale = np.linalg.norm(pts[sampled] - pts[sampled].mean(axis=0), axis=1).max()
    feats = np.concatenate([pts / scale, 0.5 * nrm], axis=1)
    d = np.linalg.norm(feats[rest][:, None] - feats[sampled][None], axis=2)
    np.testing.assert_array_equal(res.labels[rest], res.labels[sampled[d.argmin(axis=1)]])
    xyz_only = Predictor(path, device="cpu", sampling="fps", normal_weight=0.0).predict([pts], [nrm])[0]
    d = np.linalg.norm(pts[rest][:, None] - pts[sampled][None], axis=2)
    np.testing.assert_array_equal(xyz_only.labels[rest], xyz_only.labels[sampled[d.argmin(axis=1)]])


def test_batch_equals_single_and_is_deterministic(tmp_path, synth):
    path, _, _ = _checkpoint(tmp_path, synth, "pointnet_cls")
    pred = Predictor(path, device="cpu")
    rng = np.random.default_rng(2)
    houses = [sample_house(rng, n) for n in (300, 128, 90)]
    batch = pred.predict([h[0] for h in houses], [h[1] for h in houses])
    for h, r in zip(houses, batch):
        single = pred.predict([h[0]], [h[1]])[0]
        np.testing.assert_allclose(single.probabilities, r.probabilities, atol=1e-5)
        assert r.class_id == int(np.argmax(r.probabilities))
    assert set(pred.last_timing) == {"preprocess", "inference", "postprocess"}


def test_missing_normals_are_estimated(tmp_path, synth):
    path, _, _ = _checkpoint(tmp_path, synth, "pointnet_seg")
    pts = sample_house(np.random.default_rng(1), 400)[0]
    res = Predictor(path, device="cpu").predict([pts])[0]
    assert (res.labels >= 0).all()
    with pytest.raises(ValueError, match="no normals"):
        Predictor(path, device="cpu", estimate_missing_normals=False).predict([pts])


def test_bad_clouds_are_clear_errors(tmp_path, synth):
    path, _, _ = _checkpoint(tmp_path, synth, "pointnet_cls", channels="xyz")
    pred = Predictor(path, device="cpu")
    with pytest.raises(ValueError, match="no finite points"):
        pred.predict([np.full((10, 3), np.nan, np.float32)])
    with pytest.raises(ValueError, match=r"\(M, 3\)"):
        pred.predict([np.zeros((10, 4), np.float32)])


def test_fp16_stored_checkpoint_loads(tmp_path, synth):
    path, task, model = _checkpoint(tmp_path, synth, "pointnet_cls")
    half = tmp_path / "half.pt"
    save_checkpoint(half, {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()},
                    task.metadata())
    h = sample_house(np.random.default_rng(0), 256)
    a = Predictor(path, device="cpu").predict([h[0]], [h[1]])[0]
    b = Predictor(half, device="cpu").predict([h[0]], [h[1]])[0]
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=2e-2)


def test_not_a_pointnet_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    save_checkpoint(path, {"w": torch.zeros(1)}, {"task": "resnet_image"})
    with pytest.raises(ValueError, match="not a PointNet checkpoint"):
        Predictor(path, device="cpu")
