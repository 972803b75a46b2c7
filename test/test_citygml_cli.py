"""CLI: shards + manifest, reproducible bytes across workers / MPI ranks / runs, fatal errors."""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from deep_perception.citygml.__main__ import main
from deep_perception.data.shards import read_manifest, read_shard
from deep_perception.vocab import ROOF_INDEX, SURFACE_CLASSES

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "citygml"
SMALL = [DATA / "nrw", DATA / "CityGML-3.0Encodings/Building_and_garage_LOD2-EPSG25832.gml",
         DATA / "vienna"]


def _hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((pathlib.Path(folder) / "shards").glob("*"))}


def test_cli_writes_shards_and_manifest(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*map(str, SMALL), "-o", str(out), "--points", "256", "--shard-size", "16"]) == 0
    table = capsys.readouterr().out
    assert "TOTAL" in table and "nrw-wesel" in table and "nrw-koeln" in table
    man = read_manifest(out)
    assert man["points_per_building"] == 256
    assert [f["city"] for f in man["files"]] == ["synthetic", "nrw-wesel", "nrw-koeln", "vienna"]
    assert man["counts"]["buildings"] == 1 + 15 + 18 + 1
    assert man["counts"]["parts"] == 1 + 6 + 4 + 10
    assert man["counts"]["samples"] == 35
    total = 0
    for entry in man["shards"]:
        arrays = read_shard(out / entry["file"])
        attrs = json.loads((out / entry["attributes"]).read_text())
        assert len(attrs) == entry["count"] == len(arrays["points"])
        assert [a["id"] for a in attrs] == arrays["building_ids"].tolist()
        assert arrays["points"].shape[1:] == (256, 3)
        assert (arrays["labels"] < len(SURFACE_CLASSES)).all()
        np.testing.assert_allclose(np.linalg.norm(arrays["normals"], axis=2), 1, atol=1e-5)
        assert np.abs(arrays["points"]).max() < 1000
        total += entry["count"]
    assert total == 35
    assert sum(man["histograms"]["point_labels"].values()) == 35 * 256
    assert all(len(f["sha256"]) == 64 for f in man["files"])
    assert not list(out.glob(".staging-*"))


def test_same_bytes_with_workers_and_reruns(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    args = [*map(str, SMALL), "--points", "128", "--shard-size", "8", "--quiet"]
    assert main(args + ["-o", str(a)]) == 0
    assert main(args + ["-o", str(b), "--workers", "2"]) == 0
    assert _hashes(a) == _hashes(b) and len(_hashes(a)) > 4
    assert main(args + ["-o", str(a)]) == 0  # rerun over an existing output
    assert _hashes(a) == _hashes(b)
    assert main(args + ["-o", str(b), "--seed", "1"]) == 0
    assert _hashes(a) != _hashes(b)


def test_chunked_file_gives_same_buildings(tmp_path):
    src = DATA / "citygml4j/LOD2_Buildings_v100.gml"
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([str(src), "-o", str(a), "--points", "64", "--quiet"]) == 0
    assert main([str(src), "-o", str(b), "--points", "64", "--quiet", "--chunk-mb", "0.05", "--workers", "2"]) == 0
    ma, mb = read_manifest(a), read_manifest(b)
    assert len(mb["shards"]) > len(ma["shards"])
    ids_a = np.concatenate([read_shard(a / s["file"])["building_ids"] for s in ma["shards"]])
    ids_b = np.concatenate([read_shard(b / s["file"])["building_ids"] for s in mb["shards"]])
    assert ids_a.tolist() == ids_b.tolist() and len(ids_a) == 100
    assert ma["counts"]["triangles"] == mb["counts"]["triangles"] == 1600


def test_split_parts(tmp_path):
    out = tmp_path / "o"
    src = DATA / "CityGML-3.0Encodings/Building_and_garage_LOD2-EPSG25832.gml"
    assert main([str(src), "-o", str(out), "--points", "64", "--split-parts", "--quiet"]) == 0
    arrays = read_shard(out / read_manifest(out)["shards"][0]["file"])
    assert arrays["roof_class"].tolist() == [ROOF_INDEX["gable"], ROOF_INDEX["shed"]]


def test_fatal_error_exit_code_and_previous_output_untouched(tmp_path, capsys):
    out = tmp_path / "o"
    good = DATA / "citygml-change-detection/Polygon_Multi_Interior_1.gml"
    assert main([str(good), "-o", str(out), "--points", "32", "--quiet"]) == 0
    before = (out / "manifest.json").read_bytes(), _hashes(out)
    bad_dir = tmp_path / "in"
    bad_dir.mkdir()
    shutil.copy(DATA / "citygml4j/LOD2_Buildings_v100.gml", bad_dir / "a_good.gml")
    text = (DATA / "citygml4j/LOD2_Buildings_v100.gml").read_bytes()
    (bad_dir / "b_truncated.gml").write_bytes(text[: len(text) // 3])
    capsys.readouterr()
    assert main([str(bad_dir), "-o", str(out), "--points", "32", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "b_truncated.gml:" in err and "nothing written" in err
    assert ((out / "manifest.json").read_bytes(), _hashes(out)) == before
    assert not list(out.glob(".staging-*"))
    assert main([str(tmp_path / "missing"), "-o", str(out), "--quiet"]) == 2


def test_poisson_and_exports(tmp_path):
    out = tmp_path / "o"
    src = DATA / "CityGML-3.0Encodings/Building_and_garage_LOD2-EPSG25832.gml"
    assert main([str(src), "-o", str(out), "--points", "200", "--method", "poisson", "--quiet",
                 "--export", "obj,ply,cloud"]) == 0
    arrays = read_shard(out / read_manifest(out)["shards"][0]["file"])
    assert arrays["points"].shape == (1, 200, 3)
    pts = arrays["points"][0].astype(np.float64)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=2) + np.eye(200) * 1e9
    assert d.min() > 0.05  # blue noise: no two points on top of each other
    files = sorted(p.name for p in (out / "meshes").rglob("*") if p.is_file())
    assert any(f.endswith(".obj") for f in files) and any(f.endswith(".cloud.ply") for f in files)
    obj = next((out / "meshes").rglob("*.obj")).read_text()
    assert "g roof" in obj and "g wall" in obj
    import open3d as o3d
    cloud = o3d.io.read_point_cloud(str(next((out / "meshes").rglob("*.cloud.ply"))))
    assert len(cloud.points) == 200
    mesh = o3d.io.read_triangle_mesh(str(next((out / "meshes").rglob("*[!d].ply"))))
    assert len(mesh.triangles) == 30


@pytest.mark.mpi
def test_mpirun_same_bytes(tmp_path):
    mpirun = pathlib.Path(sys.executable).parent / "mpirun"
    if not mpirun.exists():
        pytest.skip("no mpirun in the venv")
    a, b = tmp_path / "a", tmp_path / "b"
    args = [*map(str, SMALL), "--points", "64", "--shard-size", "8", "--quiet"]
    assert main(args + ["-o", str(a)]) == 0
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run([str(mpirun), "-n", "2", sys.executable, "-m", "mpi4py", "-m", "deep_perception.citygml",
                           *args, "-o", str(b)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert _hashes(a) == _hashes(b)
    assert read_manifest(b)["ranks"] == 2
    assert not list(b.glob(".staging-*"))


# Rank 1 fails with an exception nobody foresaw, in a unit or around the units; rank 0 must not hang.
_RANK1_FAILS = """
import sys
from mpi4py import MPI
from deep_perception.citygml import convert
from deep_perception.citygml.__main__ import main
where = sys.argv[1]
if MPI.COMM_WORLD.Get_rank() == 1:
    def boom(*a, **k):
        raise RuntimeError("injected failure")
    setattr(convert, where, boom)
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.mpi
@pytest.mark.parametrize("where", ["triangulate_batch", "run_units"])
def test_mpirun_crash_on_one_rank_exits_2_everywhere(tmp_path, where):
    mpirun = pathlib.Path(sys.executable).parent / "mpirun"
    if not mpirun.exists():
        pytest.skip("no mpirun in the venv")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run([str(mpirun), "-n", "2", sys.executable, "-m", "mpi4py", "-c", _RANK1_FAILS, where,
                           *map(str, SMALL), "--points", "16", "--quiet", "-o", str(out)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "RuntimeError: injected failure" in proc.stderr and ".gml" in proc.stderr
    assert "nothing written" in proc.stderr
    assert not (out / "manifest.json").exists() and not list(out.glob(".staging-*"))


def test_unexpected_exception_in_a_unit_is_a_reported_error(tmp_path, capsys, monkeypatch):
    from deep_perception.citygml import convert
    out = tmp_path / "out"
    assert main([str(SMALL[0]), "-o", str(out), "--points", "16", "--quiet"]) == 0
    before = _hashes(out)

    def boom(*a, **k):
        raise RuntimeError("injected failure")
    monkeypatch.setattr(convert, "triangulate_batch", boom)
    assert main([str(SMALL[0]), "-o", str(out), "--points", "16", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "RuntimeError: injected failure" in err and "LoD2_32_" in err
    assert _hashes(out) == before and (out / "manifest.json").exists()
    assert not list(out.glob(".staging-*"))
    with pytest.raises(convert.ConversionError, match="RuntimeError: injected failure"):
        convert.convert_all([str(SMALL[0])], out, convert.Options(points=16))
    assert not list(out.glob(".staging-*"))


def test_crash_outside_the_units_still_removes_staging(tmp_path, monkeypatch):
    from deep_perception.citygml import convert

    def boom(*a, **k):
        raise MemoryError("injected")
    monkeypatch.setattr(convert, "build_manifest", boom)
    out = tmp_path / "out"
    assert main([str(SMALL[0]), "-o", str(out), "--points", "16", "--quiet"]) == 2
    assert not list(out.glob(".staging-*")) and not (out / "manifest.json").exists()
    with pytest.raises(MemoryError):
        convert.convert_all([str(SMALL[0])], out, convert.Options(points=16))
    assert not list(out.glob(".staging-*"))


def test_chunks_keep_the_file_crs(tmp_path):
    import gzip
    plain = tmp_path / "tile.gml"
    plain.write_bytes(gzip.open(DATA / "nrw/LoD2_32_363_5650_1_NW.gml.gz").read())
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([str(plain), "-o", str(a), "--points", "32", "--quiet"]) == 0
    assert main([str(plain), "-o", str(b), "--points", "32", "--quiet", "--chunk-mb", "0.02"]) == 0
    ma, mb = read_manifest(a), read_manifest(b)
    assert len(mb["shards"]) > 3
    assert ma["files"][0]["crs"] == mb["files"][0]["crs"] == ["EPSG:25832"]
    off_a = np.concatenate([read_shard(a / s["file"])["offsets"] for s in ma["shards"]])
    off_b = np.concatenate([read_shard(b / s["file"])["offsets"] for s in mb["shards"]])
    np.testing.assert_array_equal(off_a, off_b)
    attrs = [x for s in mb["shards"] for x in json.loads((b / s["attributes"]).read_text())]
    assert {x["crs"] for x in attrs} == {"EPSG:25832"}


def test_tile_png(tmp_path):
    from deep_perception.viz.citygml_png import main as png_main
    out = tmp_path / "o"
    assert main([str(DATA / "nrw"), "-o", str(out), "--points", "64", "--quiet"]) == 0
    png = tmp_path / "tile.png"
    assert png_main([str(out), "--file", "LoD2_32_326_5726", "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20000
