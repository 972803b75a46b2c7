"""Geometry: areas against an independent shoelace computation, ring repair, orientation, labels."""

import pathlib

import numpy as np
import pytest

from citygml_snippets import box, building, document, polygon, surface
from deep_perception.citygml import building_to_mesh, iter_buildings, polygons_to_mesh
from deep_perception.citygml.labels import aggregate_roof_class, roof_class_of
from deep_perception.vocab import ROOF_INDEX, ROOF_UNKNOWN, SURFACE_INDEX

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "citygml"


def shoelace_area(rings):
    """Area of a planar polygon with holes: rings projected on the SVD best-fit plane, shoelace,
    holes subtracted. Independent of the Newell/earcut code under test."""
    pts = np.concatenate(rings)
    centre = pts.mean(0)
    _, _, vt = np.linalg.svd(pts - centre)
    basis = vt[:2]

    def area(r):
        uv = (r - centre) @ basis.T
        x, y = uv[:, 0], uv[:, 1]
        return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return area(rings[0]) - sum(area(h) for h in rings[1:])


@pytest.mark.parametrize("rel", ["CityGML-3.0Encodings/Building_LOD3-EPSG25832.gml",
                                 "citygml-change-detection/Polygon_Multi_Interior_1.gml",
                                 "citygml4j/LOD2_Buildings_v100.gml",
                                 "nrw/LoD2_32_326_5726_1_NW.gml.gz"])
def test_triangle_areas_match_shoelace_with_holes(rel):
    n_holes = 0
    n = 0
    for b in iter_buildings(DATA / rel):
        for rings, label, lod in b.all_polygons():
            expected = shoelace_area(rings)
            if expected < 1e-6:
                continue
            m = polygons_to_mesh([(rings, label, lod)])
            n += 1
            n_holes += len(rings) - 1
            # real LoD2 rings are non-planar by up to ~0.1 m: 0.5 % there, 1e-9 for planar samples
            rtol = 5e-3 if rel.startswith("nrw") else 1e-9
            assert m.area == pytest.approx(expected, rel=rtol), (b.id, len(rings))
    assert n > 0
    if "LOD3" in rel or "Multi_Interior" in rel:
        assert n_holes > 0


def _rings_mesh(rings, label=SURFACE_INDEX["wall"]):
    return polygons_to_mesh([([np.asarray(r, float) for r in rings], label, 2)])


def test_repair_unclosed_duplicates_collinear():
    square = [(0, 0, 0), (2, 0, 0), (2, 2, 0), (0, 2, 0)]
    closed = square + [square[0]]
    messy = [(0, 0, 0), (0, 0, 0), (1, 0, 0), (2, 0, 0), (2, 0, 0), (2, 2, 0), (0, 2, 0), (0, 0, 0)]
    for rings in ([square], [closed], [messy]):
        m = _rings_mesh(rings)
        assert m.area == pytest.approx(4.0)
        assert len(m) == 2
    assert _rings_mesh([square]).stats["unclosed rings closed"] == 1
    assert _rings_mesh([messy]).stats["collinear points removed"] == 1


def test_degenerate_rings_skipped_and_counted():
    m = polygons_to_mesh([
        ([np.array([(0, 0, 0), (1, 1, 1), (0, 0, 0)], float)], 1, 2),              # 2 distinct points
        ([np.array([(0, 0, 0), (1, 0, 0), (2, 0, 0), (0, 0, 0)], float)], 1, 2),    # collinear: no area
        ([np.array([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 0, 0)], float),
          np.array([(5, 5, 0), (5, 5, 0), (5, 5, 0)], float)], 1, 2),               # degenerate hole
    ])
    assert m.stats["degenerate polygons skipped"] == 2
    assert m.stats["degenerate holes dropped"] == 1
    assert m.area == pytest.approx(0.5)


def test_hole_area_subtracted_and_orientation_follows_ring():
    outer = [(0, 0, 0), (4, 0, 0), (4, 4, 0), (0, 4, 0)]
    hole = [(1, 1, 0), (1, 2, 0), (2, 2, 0), (2, 1, 0)]
    m = _rings_mesh([outer, hole])
    assert m.area == pytest.approx(15.0)
    assert np.allclose(m.face_normals, [0, 0, 1])
    m = _rings_mesh([outer[::-1], hole])
    assert np.allclose(m.face_normals, [0, 0, -1])


def test_concave_polygon_triangulated_correctly():
    ell = [(0, 0, 0), (4, 0, 0), (4, 1, 0), (1, 1, 0), (1, 3, 0), (0, 3, 0)]
    m = _rings_mesh([ell])
    assert m.area == pytest.approx(6.0)
    assert len(m) == 4


def test_offset_keeps_float32_millimetres():
    ring = np.array([(364123.4567, 5650123.4567, 55.123), (364133.4567, 5650123.4567, 55.123),
                     (364133.4567, 5650133.4567, 55.123), (364123.4567, 5650133.4567, 55.123)])
    m = polygons_to_mesh([([ring], 2, 2)])
    back = m.vertices.astype(np.float32).astype(np.float64) + m.offset
    assert np.abs(np.sort(back, 0) - np.sort(ring, 0)).max() < 1e-3
    assert (m.offset == np.floor(m.offset)).all()


def test_box_labels_and_solid(tmp_path):
    p = tmp_path / "box.gml"
    p.write_text(document(building("B1", box(), roof_type="1000")))
    (b,) = list(iter_buildings(p))
    m = building_to_mesh(b)
    assert b.roof_class == ROOF_INDEX["flat"] and b.crs == "EPSG:25832"
    assert m.area == pytest.approx(2 * 80 + 2 * 60 + 2 * 48)
    areas = np.bincount(m.face_labels, weights=m.face_areas, minlength=7)
    assert areas[SURFACE_INDEX["roof"]] == pytest.approx(80)
    assert areas[SURFACE_INDEX["ground"]] == pytest.approx(80)
    assert areas[SURFACE_INDEX["wall"]] == pytest.approx(216)
    # closed and outward: positive volume
    v = m.vertices[m.faces]
    volume = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6
    assert volume == pytest.approx(480)


def test_window_inside_wall_gets_window_label(tmp_path):
    win = polygon([(2, 0, 1), (4, 0, 1), (4, 0, 2), (2, 0, 2), (2, 0, 1)])
    wall = (f"<bldg:boundedBy><bldg:WallSurface><bldg:lod3MultiSurface><gml:MultiSurface><gml:surfaceMember>"
            + polygon([(0, 0, 0), (10, 0, 0), (10, 0, 5), (0, 0, 5), (0, 0, 0)],
                      holes=[[(2, 0, 1), (2, 0, 2), (4, 0, 2), (4, 0, 1), (2, 0, 1)]])
            + "</gml:surfaceMember></gml:MultiSurface></bldg:lod3MultiSurface>"
            + f"<bldg:opening><bldg:Window><bldg:lod3MultiSurface><gml:MultiSurface><gml:surfaceMember>{win}"
            + "</gml:surfaceMember></gml:MultiSurface></bldg:lod3MultiSurface></bldg:Window></bldg:opening>"
            + "</bldg:WallSurface></bldg:boundedBy>")
    p = tmp_path / "w.gml"
    p.write_text(document(building("W", wall)))
    m = building_to_mesh(next(iter_buildings(p)))
    areas = np.bincount(m.face_labels, weights=m.face_areas, minlength=7)
    assert areas[SURFACE_INDEX["wall"]] == pytest.approx(48)
    assert areas[SURFACE_INDEX["window"]] == pytest.approx(2)


def test_xlink_solid_counts_once_and_cross_object_fallback(tmp_path):
    roof = polygon([(0, 0, 5), (4, 0, 5), (4, 4, 5), (0, 4, 5), (0, 0, 5)], gml_id="R1")
    solid = ('<bldg:lod2Solid><gml:Solid><gml:exterior><gml:CompositeSurface>'
             '<gml:surfaceMember xlink:href="#R1"/></gml:CompositeSurface></gml:exterior></gml:Solid>'
             '</bldg:lod2Solid>')
    other = ('<bldg:lod2MultiSurface><gml:MultiSurface><gml:surfaceMember xlink:href="#R1"/>'
             '<gml:surfaceMember xlink:href="#NOPE"/></gml:MultiSurface></bldg:lod2MultiSurface>')
    p = tmp_path / "x.gml"
    p.write_text(document(building("A", solid + surface("RoofSurface", [roof])), building("B", other)))
    from deep_perception.citygml import ReadStats
    st = ReadStats()
    a, b = list(iter_buildings(p, stats=st))
    assert len(a.polygons) == 1 and building_to_mesh(a).area == pytest.approx(16)
    assert len(b.polygons) == 1 and building_to_mesh(b).area == pytest.approx(16)
    assert st.skipped["unresolved xlink"] == 1


def test_roof_code_lists():
    assert roof_class_of("3100") == ROOF_INDEX["gable"]          # AdV
    assert roof_class_of("1030") == ROOF_INDEX["gable"]          # SIG3D
    assert roof_class_of("1000") == ROOF_INDEX["flat"]
    assert roof_class_of("3300") == ROOF_INDEX["half_hip"]
    assert roof_class_of("1130") == ROOF_INDEX["mixed"]
    assert roof_class_of("5000") == ROOF_INDEX["mixed"]
    assert roof_class_of("3") == ROOF_INDEX["gable"]             # PLATEAU
    assert roof_class_of("KRUEPPELWALMDACH") == ROOF_INDEX["half_hip"]
    assert roof_class_of("2100;1000") == ROOF_INDEX["mixed"]
    assert roof_class_of("1000;1000") == ROOF_INDEX["flat"]
    assert roof_class_of("9999") == ROOF_INDEX["other"]
    assert roof_class_of("12345") == ROOF_INDEX["other"]
    assert roof_class_of(None) == ROOF_UNKNOWN
    assert aggregate_roof_class(ROOF_UNKNOWN, [ROOF_INDEX["flat"], ROOF_UNKNOWN]) == ROOF_INDEX["flat"]
    assert aggregate_roof_class(ROOF_UNKNOWN, [ROOF_INDEX["flat"], ROOF_INDEX["gable"]]) == ROOF_INDEX["mixed"]
    assert aggregate_roof_class(ROOF_INDEX["hip"], [ROOF_INDEX["flat"]]) == ROOF_INDEX["hip"]
