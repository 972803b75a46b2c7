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


def test_prepare_reconverts_edited_inputs(tmp_path):
    import gzip
    src = tmp_path / "tile.gml"
    src.write_bytes(gzip.open(DATA / "nrw/LoD2_32_326_5726_1_NW.gml.gz").read())
    opts = convert.Options(points=16)
    assert not prepare([str(src)], tmp_path / "o", opts)["reused"]
    assert prepare([str(src)], tmp_path / "o", opts)["reused"]
    # same size, one coordinate digit changed: only the hash tells
    text = src.read_text()
    i = text.index("<gml:posList")
    j = text.index(">", i) + 1
    digit = text[j:].index("1") + j
    src.write_text(text[:digit] + "2" + text[digit + 1:])
    assert src.stat().st_size == len(text.encode())
    assert not prepare([str(src)], tmp_path / "o", opts)["reused"]
    assert prepare([str(src)], tmp_path / "o", opts)["reused"]
    # a file added to an input folder is an input change too
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.gml").write_bytes(src.read_bytes())
    assert not prepare([str(folder)], tmp_path / "p", opts)["reused"]
    (folder / "b.gml").write_bytes(src.read_bytes())
    man = prepare([str(folder)], tmp_path / "p", opts)
    assert not man["reused"] and len(man["files"]) == 2


def test_empty_dataset_cursor_rejects_instead_of_dividing_by_zero(tmp_path):
    from deep_perception.citygml.dataset import Cursor
    man = prepare([str(DATA / "nrw/LoD2_32_326_5726_1_NW.gml.gz")], tmp_path / "o",
                  convert.Options(points=16, lod=4))
    assert man["counts"]["samples"] == 0
    clouds = DatasetClouds(tmp_path / "o")
    assert len(clouds) == 0 and clouds.summary()["samples"] == 0
    cursor = Cursor(clouds)
    assert cursor.take(wrap=True) is None and cursor.take(wrap=False) is None
    i, reason = cursor.resolve("")
    assert i is None and "no samples" in reason
    i, reason = cursor.resolve("DENW123")
    assert i is None and "unknown building id" in reason


def test_cursor_order_wrap_and_ids(tmp_path):
    from deep_perception.citygml.dataset import Cursor
    prepare([str(DATA / "CityGML-3.0Encodings/Building_and_garage_LOD2-EPSG25832.gml")], tmp_path / "o",
            convert.Options(points=8, split_parts=True))
    clouds = DatasetClouds(tmp_path / "o")
    cursor = Cursor(clouds)
    assert [cursor.take(wrap=False) for _ in range(3)] == [0, 1, None]
    assert cursor.resolve("") == (0, None)  # requests wrap around
    _, info = clouds.cloud(1)
    assert cursor.resolve(info["id"]) == (1, None)


def test_colours_and_sha256_live_in_ros_free_modules(tmp_path):
    import hashlib
    import subprocess
    import sys

    from deep_perception import colours, fileio
    from deep_perception.citygml import dataset
    from deep_perception.train import checkpoint
    c = np.array([[255, 0, 1], [12, 200, 7]], np.uint8)
    packed = colours.pack_rgb(c)
    assert packed.dtype == np.float32
    assert packed.view(np.uint32).tolist() == [0xFF0001, 0x0CC807]
    np.testing.assert_array_equal(colours.unpack_rgb(packed), c)
    assert dataset.pack_rgb is colours.pack_rgb and not hasattr(dataset, "_pack_rgb")
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc" * 1000)
    assert fileio.file_sha256(f) == hashlib.sha256(b"abc" * 1000).hexdigest()
    assert checkpoint.file_sha256 is fileio.file_sha256 and convert.file_sha256 is fileio.file_sha256
    code = ("import sys, deep_perception.colours, deep_perception.citygml.dataset; "
            "sys.exit(int('rospy' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
