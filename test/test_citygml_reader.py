"""Reader + geometry over every bundled CityGML file: counts, labels, CRS, units, versions."""

import collections
import pathlib

import numpy as np
import pytest

from deep_perception.citygml import ReadStats, building_to_mesh, iter_buildings
from deep_perception.sampling import sample_points
from deep_perception.vocab import ROOF_INDEX, SURFACE_INDEX

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "citygml"

# (Buildings, BuildingParts) per bundled file, from the upstream README tables / a grep of the files
EXPECTED = {
    "citygml4j/LOD2_Buildings_v100.gml": (100, 0),
    "citygml4j/lod2_buildings_v3.gml": (100, 0),
    "citygml4j/lod3_building_v2.gml.gz": (1, 0),
    "CityGML-3.0Encodings/Building_LOD3-EPSG25832.gml": (1, 0),
    "CityGML-3.0Encodings/Building_and_garage_LOD2-EPSG25832.gml": (1, 1),
    "CityGML-3.0Encodings/Opera-Lyon_CityGML3.0_LOD2_with_xAL3_FreeText.gml.gz": (1, 0),
    "citygml-to-3dtiles/zurich-lod2-citygml1.xml": (4, 6),
    "nyc-buildings/building-test.gml": (1, 0),
    "citygml-osm/53392547_bldg_6697_op2.gml": (25, 0),
    "citygml-change-detection/Polygon_Multi_Interior_1.gml": (1, 0),
    "nrw/LoD2_32_326_5726_1_NW.gml.gz": (15, 6),
    "nrw/LoD2_32_363_5650_1_NW.gml.gz": (18, 4),
    "vienna/johannesgasse.gml": (1, 10),
}


def _convert(path, **kw):
    stats = ReadStats()
    buildings = list(iter_buildings(path, stats=stats, **kw))
    meshes = [building_to_mesh(b) for b in buildings]
    return buildings, meshes, stats


def test_every_bundled_file_is_listed():
    found = {str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.name.endswith((".gml", ".xml", ".gml.gz"))}
    assert found == set(EXPECTED)


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_file_converts_with_counts(rel, capsys):
    buildings, meshes, stats = _convert(DATA / rel)
    parts = sum(b.count_parts() for b in buildings)
    tris = sum(len(m) for m in meshes)
    area = sum(m.area for m in meshes)
    hist = np.zeros(7, np.int64)
    for m in meshes:
        hist += np.bincount(m.face_labels, minlength=7)
    with capsys.disabled():
        print(f"\n  {rel}: {len(buildings)} buildings, {parts} parts, {tris} triangles, {area:.1f} m2, "
              f"face labels {hist.tolist()}, crs {sorted({b.crs for b in buildings})}, "
              f"skipped {dict(stats.skipped)}, repairs {dict(sum((m.stats for m in meshes), collections.Counter()))}")
    assert (len(buildings), parts) == EXPECTED[rel]
    assert tris > 0 and area > 0
    for m in meshes:
        assert m.vertices.dtype == np.float64 and m.faces.dtype == np.int32 and m.face_labels.dtype == np.uint8
        if len(m):
            assert m.faces.max() < len(m.vertices) and m.faces.min() >= 0
            # recentred: float32 keeps millimetres
            assert np.abs(m.vertices).max() < 5e4


def test_same_houses_citygml_1_and_3_give_same_triangles_and_areas():
    b1, m1, _ = _convert(DATA / "citygml4j/LOD2_Buildings_v100.gml")
    b3, m3, _ = _convert(DATA / "citygml4j/lod2_buildings_v3.gml")
    assert len(b1) == len(b3) == 100
    assert [b.id for b in b1] == [b.id for b in b3]  # same houses, same order: zip below pairs them
    for x, y in zip(m1, m3):
        assert len(x) == len(y) == 16
        np.testing.assert_allclose(x.face_areas.sum(), y.face_areas.sum(), rtol=1e-12)
        np.testing.assert_allclose(np.sort(x.face_areas), np.sort(y.face_areas), rtol=1e-9, atol=1e-9)
        assert np.bincount(x.face_labels, minlength=7).tolist() == np.bincount(y.face_labels, minlength=7).tolist()
        np.testing.assert_allclose(x.vertices[x.faces] + x.offset, y.vertices[y.faces] + y.offset, atol=1e-9)
    assert all(b.roof_class == ROOF_INDEX["gable"] for b in b1 + b3)


def test_surface_reached_by_solid_and_semantics_counted_once():
    # CityGML 3.0: lod2Solid of 700 xlinks + the semantic surfaces: 7 polygons per house, not 14
    buildings, _, stats = _convert(DATA / "citygml4j/lod2_buildings_v3.gml")
    assert all(len(b.polygons) == 7 for b in buildings)
    assert stats.skipped.get("unresolved xlink", 0) == 0


def test_nyc_building_in_metres():
    (b,), (m,), _ = _convert(DATA / "nyc-buildings/building-test.gml")
    assert "metres" in b.crs
    extent = m.vertices.max(0) - m.vertices.min(0)
    # a Manhattan block building: tens of metres wide, ~ 50-400 m tall once in metres (feet would be 3.28x)
    assert 10 < extent[0] < 200 and 10 < extent[1] < 200
    raw = next(iter_buildings(DATA / "nyc-buildings/building-test.gml")).polygons[0][0][0]
    assert 2.8e5 < raw[0, 0] < 3.2e5  # NY Long Island easting in metres (the file has ~ 9.9e5 ft)


def test_plateau_tile_reprojected_to_metric_utm():
    buildings, meshes, _ = _convert(DATA / "citygml-osm/53392547_bldg_6697_op2.gml")
    assert {b.crs for b in buildings} == {"EPSG:6691"}  # JGD2011 / UTM zone 54N
    xyz = np.concatenate([m.vertices + m.offset for m in meshes])
    assert 3.0e5 < xyz[:, 0].min() and xyz[:, 0].max() < 5.0e5       # easting
    assert 3.8e6 < xyz[:, 1].min() and xyz[:, 1].max() < 4.0e6       # northing (~35.3 N)
    extent = np.ptp(xyz, axis=0)
    assert extent[0] < 2000 and extent[1] < 2000                      # one ~1 km mesh tile
    # LoD1 blocks have no semantic surfaces: labelled from normals (roof on top, ground below)
    hist = sum(np.bincount(m.face_labels, minlength=7) for m in meshes)
    assert hist[SURFACE_INDEX["roof"]] > 0 and hist[SURFACE_INDEX["ground"]] > 0 and hist[SURFACE_INDEX["wall"]] > 0


def test_unknown_crs_is_local_metres_with_warning():
    buildings, _, stats = _convert(DATA / "citygml-to-3dtiles/zurich-lod2-citygml1.xml")
    assert {b.crs for b in buildings} == {"LOCAL"}
    assert any("CH1903" in w for w in stats.warnings)


def test_lod_selection():
    # PLATEAU tile: LoD0 footprints/roof edges + LoD1 solids
    lod1 = list(iter_buildings(DATA / "citygml-osm/53392547_bldg_6697_op2.gml"))
    lod0 = list(iter_buildings(DATA / "citygml-osm/53392547_bldg_6697_op2.gml", lod=0))
    assert {lod for b in lod1 for lod in b.lods()} == {1}
    assert {lod for b in lod0 for lod in b.lods()} == {0}
    lod3 = list(iter_buildings(DATA / "citygml4j/lod2_buildings_v3.gml", lod=3))
    assert all(not b.all_polygons() for b in lod3)


def test_lod3_windows_and_doors_labelled():
    (b,), (m,), _ = _convert(DATA / "citygml4j/lod3_building_v2.gml.gz")
    labels = set(np.unique(m.face_labels).tolist())
    assert {SURFACE_INDEX["window"], SURFACE_INDEX["door"], SURFACE_INDEX["roof"], SURFACE_INDEX["wall"]} <= labels


def test_building_parts_rule_and_roof_codes():
    (b,), _, _ = _convert(DATA / "CityGML-3.0Encodings/Building_and_garage_LOD2-EPSG25832.gml")
    assert b.roof_type_code == "1030" and b.roof_class == ROOF_INDEX["gable"]
    assert [p.roof_type_code for p in b.parts] == ["1010"]
    assert b.parts[0].roof_class == ROOF_INDEX["shed"]
    assert b.roof_type_codes == ["1030", "1010"]
    # NRW: split buildings keep roofType only on parts; the aggregate takes the parts' class
    for b in iter_buildings(DATA / "nrw/LoD2_32_326_5726_1_NW.gml.gz"):
        if b.parts and b.roof_type_code is None:
            classes = {p.roof_class for p in b.parts}
            assert b.roof_class == (classes.pop() if len(classes) == 1 else ROOF_INDEX["mixed"])


def test_vienna_without_semantic_surfaces_labelled_from_normals():
    (b,), (m,), _ = _convert(DATA / "vienna/johannesgasse.gml")
    assert m.stats["faces labelled from normals"] == len(m)
    normals = m.face_normals
    roof = m.face_labels == SURFACE_INDEX["roof"]
    wall = m.face_labels == SURFACE_INDEX["wall"]
    ground = m.face_labels == SURFACE_INDEX["ground"]
    assert roof.any() and wall.any() and ground.any()
    assert (normals[roof, 2] > 0.17).all() and (np.abs(normals[wall, 2]) < 0.17).all()
    assert (normals[ground, 2] < -0.17).all()
    assert {p.roof_type_code for p in b.parts} <= {"FLACHDACH", "SATTELDACH", "PULTDACH", "WALMDACH",
                                                    "KRUEPPELWALMDACH", "KUPPELDACH", "SPITZDACH"}
    assert all(p.roof_class >= 0 for p in b.parts)


def test_opera_lyon_ring_repairs_counted():
    (b,), (m,), _ = _convert(DATA / "CityGML-3.0Encodings/Opera-Lyon_CityGML3.0_LOD2_with_xAL3_FreeText.gml.gz")
    assert m.stats["unclosed rings closed"] == 8
    assert m.stats["degenerate polygons skipped"] == 3
    assert len(m) > 2200


def test_sampled_points_lie_on_mesh_and_keep_millimetres():
    b = next(iter_buildings(DATA / "nrw/LoD2_32_363_5650_1_NW.gml.gz"))
    m = building_to_mesh(b)
    pts, nrm, lab = sample_points(m, 4096, seed=3)
    absolute = pts.astype(np.float64) + m.offset
    assert absolute[:, 0].min() > 3.6e5 and absolute[:, 1].min() > 5.6e6
    # float32 relative coordinates round-trip to < 1 mm at UTM magnitudes
    assert np.abs(pts.astype(np.float64) - pts.astype(np.float64).round(3)).max() < 1e-3
    assert set(np.unique(lab).tolist()) <= set(np.unique(m.face_labels).tolist())
