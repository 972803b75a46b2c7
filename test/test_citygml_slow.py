"""Slow: convert the whole shared corpus and check the totals against the READMEs there.

Run with ``DP_SLOW=1 .venv/bin/python -m pytest test/test_citygml_slow.py -q -s`` (needs ../shared).
"""

import collections
import pathlib

import pytest

from deep_perception.citygml.__main__ import main
from deep_perception.data.shards import read_manifest, read_shard

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (SHARED / "citygml-nrw").is_dir(), reason="needs ../shared/data")]

# citygml-train/README.md: Buildings / Parts per folder
TRAIN = {"CityGML-Preprocessing-Demo": (83, 50), "AR-GIS": (432, 15), "TECDEM": (23, 0),
         "CityGML2GameObject": (44, 0), "CesiumCityGMLExp": (84, 0), "mapping-austrofascism": (5, 378),
         "PLATEAU": (223, 2), "cut-prototype-citygml-geojson": (5, 0), "UD-Sample-data": (2, 2)}


def _folder(path):
    name = path.split("citygml-train/")[1].split("/")[0]
    return "PLATEAU" if name in ("plateau-gis-converter", "PLATEAU-SDK-for-Unity", "SolarPotential",
                                 "PLATEAU-Builder") else name


def test_nrw_153_tiles_totals(tmp_path, capsys):
    out = tmp_path / "nrw"
    assert main([str(SHARED / "citygml-nrw"), "-o", str(out), "--workers", "2", "--points", "256"]) == 0
    man = read_manifest(out)
    with capsys.disabled():
        print("\nNRW:", man["counts"], man["histograms"]["roof_class"], f"{man['elapsed_s']} s")
    assert len(man["files"]) == 153
    assert man["counts"]["buildings"] == 10274
    assert man["counts"]["parts"] == 3252
    assert man["counts"]["samples"] == 10274
    assert set(man["counts"]["samples_per_city"]) == {"nrw-wesel", "nrw-koeln"}
    assert sum(read_shard(out / s["file"])["points"].shape[0] for s in man["shards"]) == 10274
    codes = sum(v for f in man["files"] for k, v in f["roof_codes"].items() if k != "(none)")
    assert codes == 12302  # README: 12,302 roofType values
    roof = man["histograms"]["roof_class"]
    assert roof["flat"] > roof["gable"] > roof["hip"]  # README: ~55 % flat, ~26 % gable


def test_citygml_train_totals(tmp_path, capsys):
    out = tmp_path / "train"
    assert main([str(SHARED / "citygml-train"), "-o", str(out), "--workers", "2", "--points", "256"]) == 0
    man = read_manifest(out)
    got = collections.defaultdict(lambda: [0, 0])
    for f in man["files"]:
        got[_folder(f["path"])][0] += f["buildings"]
        got[_folder(f["path"])][1] += f["parts"]
    with capsys.disabled():
        print("\ncitygml-train:", dict(got), man["counts"]["samples_per_city"])
    assert {k: tuple(v) for k, v in got.items()} == TRAIN
    assert set(man["counts"]["samples_per_city"]) == {"berlin", "helsinki", "nrw", "japan", "hamburg",
                                                      "lyon", "vienna"}


def test_shared_citygml_samples_convert(tmp_path, capsys):
    out = tmp_path / "samples"
    assert main([str(SHARED / "citygml"), "-o", str(out), "--points", "256"]) == 0
    man = read_manifest(out)
    with capsys.disabled():
        print("\ncitygml samples:", {pathlib.Path(f["path"]).name: (f["buildings"], f["parts"], f["triangles"])
                                     for f in man["files"]})
    assert man["counts"]["buildings"] == 345 and man["counts"]["parts"] == 62
