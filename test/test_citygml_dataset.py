"""Library side of the citygml_dataset node (no ROS): prepare/reuse, clouds with labels and colours."""

import pathlib

import numpy as np
import pytest

from deep_perception.citygml import convert
from deep_perception.citygml.dataset import CLOUD_DTYPE, DatasetClouds, prepare
from deep_perception.vocab import SURFACE_COLOURS

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "citygml"


def test_prepare_reuse_and_clouds(tmp_path):
    opts = convert.Options(points=128)
    inputs = [str(DATA / "nrw/LoD2_32_326_5726_1_NW.gml.gz")]
    man = prepare(inputs, tmp_path / "o", opts)
    assert not man["reused"] and man["counts"]["samples"] == 15
    assert prepare(inputs, tmp_path / "o", opts)["reused"]
    assert not prepare(inputs, tmp_path / "o", convert.Options(points=64))["reused"]
    clouds = DatasetClouds(tmp_path / "o")
    assert len(clouds) == 15
    arr, info = clouds.cloud(3)
    assert arr.dtype == CLOUD_DTYPE and len(arr) == 64
    rgb = arr["rgb"].view(np.uint32)
    expected = np.asarray(SURFACE_COLOURS, np.uint32)[arr["label"]]
    assert (rgb == (expected[:, 0] << 16 | expected[:, 1] << 8 | expected[:, 2])).all()
    assert np.abs(np.stack([arr["x"], arr["y"]])).max() < 1500
    assert clouds.find(info["id"]) == 3 and clouds.find("nope") is None
    s = clouds.summary()
    assert s["samples"] == 15 and s["files"][0]["city"] == "nrw-wesel"


def test_prepare_fails_cleanly(tmp_path):
    bad = tmp_path / "bad.gml"
    bad.write_text("<?xml version='1.0'?><a><b>")
    with pytest.raises(convert.ConversionError, match="bad.gml"):
        prepare([str(bad)], tmp_path / "o", convert.Options(points=8))
    assert not (tmp_path / "o" / "manifest.json").exists()
