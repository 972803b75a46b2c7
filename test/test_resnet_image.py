"""Image preprocessing, the resnet_image task on bundled CityGML tiles, and the ImageClassifier."""

import numpy as np
import pytest
import torch

from deep_perception.inference.image import ImageClassifier, ImageInputError, ImagePreprocess, relative_depth
from deep_perception.train.checkpoint import save_checkpoint
from deep_perception.train.config import load_config
from deep_perception.vocab import ROOF_CLASSES, ROOF_INDEX


def test_relative_depth_and_encodings():
    pre = ImagePreprocess(size=(8, 8))
    d = np.array([[0.0, 10.0], [12.0, np.nan]], np.float32)
    assert np.allclose(relative_depth(d), [[1.0, 0.0], [1.0, 1.0]])
    mm = np.array([[0, 10000], [12000, 11000]], np.uint16)
    m = np.array([[0.0, 10.0], [12.0, 11.0]], np.float32)
    assert np.allclose(pre.unit_image(mm, "16UC1"), pre.unit_image(m, "32FC1"))  # mm vs metres
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 255
    assert np.allclose(pre.unit_image(rgb, "rgb8"), 0.299)
    assert np.allclose(pre.unit_image(rgb, "bgr8"), 0.114)  # the same bytes read as BGR: blue
    assert np.allclose(pre.unit_image(np.full((4, 4), 51, np.uint8), "mono8"), 0.2)


def test_preprocess_resizes_and_normalises():
    pre = ImagePreprocess(size=(16, 12), mean=0.5, std=0.25)
    for shape in [(32, 24), (8, 6), (17, 40)]:
        x = pre(np.full(shape, 191, np.uint8), "mono8")
        assert x.shape == (1, 16, 12)
        assert torch.allclose(x, torch.full_like(x, (191 / 255 - 0.5) / 0.25), atol=1e-5)


@pytest.mark.parametrize("array,encoding,match", [
    (np.zeros((4, 4), np.float32), "32FC1", "no valid"),
    (np.full((4, 4), np.nan, np.float32), "32FC1", "no valid"),
    (np.zeros((4, 4, 3), np.uint8), "mono8", "channel"),
    (np.zeros((4, 4), np.uint8), "rgb8", "channel"),
    (np.zeros((4, 4), np.uint8), "yuv422", "unsupported"),
    (np.zeros((1, 4), np.uint8), "mono8", "too small"),
])
def test_bad_images_rejected(array, encoding, match):
    with pytest.raises(ImageInputError, match=match):
        ImagePreprocess(size=(8, 8))(array, encoding)


def test_modality_not_trained_is_rejected():
    with pytest.raises(ImageInputError, match="depth image"):
        ImagePreprocess(modalities=("intensity",))(np.ones((4, 4), np.float32), "32FC1")


def _tiny_config(tmp_path):
    return load_config("config/resnet_image.yaml", overrides=[
        "data.sources=[data/citygml/nrw]", "data.splits.train=[nrw-wesel]", "data.splits.val=[nrw-koeln]",
        "data.splits.test=[]", f"data.cache={tmp_path / 'cache'}", "data.render.size=[32,32]",
        "data.render.views=2", "preprocess.size=[32,32]", "train.progress=false"])


def test_task_renders_splits_by_city_and_trains(tmp_path):
    from deep_perception.tasks.image import ImageClassificationTask

    task = ImageClassificationTask(_tiny_config(tmp_path))
    files = task.split_files()
    assert [p.split("/")[-1] for p in files["train"]] == ["LoD2_32_326_5726_1_NW.gml.gz"]
    assert [p.split("/")[-1] for p in files["val"]] == ["LoD2_32_363_5650_1_NW.gml.gz"]
    ds = task.datasets()
    train, val = ds["train"], ds["val"]
    assert train.n > 5 and val.n > 5 and train.views == 2
    assert len(val) == val.n * 2 * 2  # every view in both modalities
    assert set(train.targets()) <= set(range(len(ROOF_CLASSES)))
    assert (train.targets() == ROOF_INDEX["flat"]).any()
    # cached: a second task reads the same arrays without rendering
    again = ImageClassificationTask(_tiny_config(tmp_path)).datasets()["train"]
    assert np.array_equal(again.arrays["depth_unit"], train.arrays["depth_unit"])
    item = val[0]
    assert item["image"].shape == (1, 32, 32) and item["modality"] == 0
    assert val[len(val) - 1]["modality"] == 1
    # depth units are in [0, 1] with background 1; the building is nearer
    d = train.arrays["depth_unit"].astype(np.float32)
    assert d.min() >= 0 and d.max() <= 1 and (d < 1).mean() > 0.05

    torch.manual_seed(0)
    model = task.build_model()
    batch = torch.utils.data.default_collate([train[i] for i in range(min(8, len(train)))])
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    first = None
    for _ in range(6):
        loss, stats = task.loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first
    metrics = task.evaluate(model, torch.utils.data.DataLoader(val, batch_size=64))
    for key in ("accuracy", "score", "majority_baseline", "depth/accuracy", "intensity/accuracy"):
        assert 0.0 <= metrics[key] <= 1.0
    meta = task.metadata()
    assert meta["classes"] == list(ROOF_CLASSES) and meta["preprocess"]["size"] == [32, 32]


def test_overlapping_splits_rejected(tmp_path):
    from deep_perception.tasks.image import ImageClassificationTask
    from deep_perception.tasks.pointnet import ConfigKeyError

    cfg = _tiny_config(tmp_path)
    cfg["data"]["splits"]["val"] = ["nrw-wesel"]
    with pytest.raises(ConfigKeyError, match="both"):
        ImageClassificationTask(cfg).split_files()


def test_classifier_roundtrip_fp16_checkpoint(tmp_path):
    from deep_perception.models.resnet import resnet18

    torch.manual_seed(0)
    model = resnet18(num_classes=len(ROOF_CLASSES), in_channels=1).eval()
    pre = ImagePreprocess(size=(32, 32))
    meta = {"task": "resnet_image", "arch": "resnet18", "classes": list(ROOF_CLASSES), "in_channels": 1,
            "preprocess": pre.to_dict()}
    path = tmp_path / "m.pt"
    save_checkpoint(path, {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}, meta)
    clf = ImageClassifier(path)
    depth = np.random.default_rng(0).uniform(5, 9, (48, 40)).astype(np.float32)
    (pred,) = clf.classify([depth], ["32FC1"], top_k=3)
    with torch.no_grad():
        want = torch.softmax(model(pre(depth, "32FC1")[None]), 1)[0].numpy()
    assert np.allclose(pred.probabilities, want, atol=2e-2)  # fp16 weights
    assert pred.top_k_ids[0] == pred.class_id and len(pred.top_k_ids) == 3
    assert pred.top_k_scores == sorted(pred.top_k_scores, reverse=True)
    assert set(clf.last_timing) == {"preprocess_s", "forward_s"}
    assert "depth" in clf.input_spec()
    with pytest.raises(ValueError, match="metadata lacks"):
        save_checkpoint(tmp_path / "bad.pt", model.state_dict(), {"task": "x"})
        ImageClassifier(tmp_path / "bad.pt")


def test_evaluate_and_export_checkpoint(tmp_path):
    from deep_perception.tasks.image import ImageClassificationTask, evaluate_checkpoint, export_model

    cfg = _tiny_config(tmp_path)
    task = ImageClassificationTask(cfg)
    model = task.build_model()
    train_ckpt = tmp_path / "best.pt"
    save_checkpoint(train_ckpt, model.state_dict(), task.metadata(), optimizer={"state": {}}, epoch=3, step=9)
    report = evaluate_checkpoint(cfg, train_ckpt, split="val")
    assert set(report) >= {"all", "depth", "intensity"}
    assert report["all"]["count"] == 2 * report["depth"]["count"] == 2 * report["buildings"] * report["views"]
    shipped = tmp_path / "shipped.pt"
    export_model(train_ckpt, shipped)
    clf = ImageClassifier(shipped)
    assert clf.metadata["stored_dtype"] == "float16"
    assert shipped.stat().st_size < 0.6 * train_ckpt.stat().st_size
    val = task.datasets()["val"]
    (pred,) = clf.classify([val.unit(0, 0, "depth")], ["32FC1"])  # a unit image is a valid depth image
    with torch.no_grad():
        want = torch.softmax(model.eval()(val[0]["image"][None]), 1)[0].numpy()
    assert np.allclose(pred.probabilities, want, atol=2e-2)
