"""Bad input: clear errors naming file and line, or counted skips; no entity expansion."""

import pathlib

import pytest

from citygml_snippets import box, building, document, polygon, surface
from deep_perception.citygml import CityGMLError, ReadStats, building_to_mesh, iter_buildings

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "citygml"


def _read(path):
    st = ReadStats()
    return list(iter_buildings(path, stats=st)), st


def test_truncated_file_names_file_and_line(tmp_path):
    text = (DATA / "citygml4j/LOD2_Buildings_v100.gml").read_bytes()
    p = tmp_path / "truncated.gml"
    p.write_bytes(text[: len(text) // 2])
    with pytest.raises(CityGMLError) as err:
        _read(p)
    msg = str(err.value)
    assert str(p) in msg and ":" in msg.split(str(p))[1]
    line = int(msg.split(str(p) + ":")[1].split(":")[0])
    assert line > 100


def test_truncated_gzip(tmp_path):
    data = (DATA / "nrw/LoD2_32_326_5726_1_NW.gml.gz").read_bytes()
    p = tmp_path / "cut.gml.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CityGMLError, match="cut.gml.gz"):
        _read(p)


def test_bad_encoding(tmp_path):
    doc = document(building("B", box())).encode("utf-8")
    doc = doc.replace(b"<bldg:Building", b"<!-- \xff\xfe --><bldg:Building")
    p = tmp_path / "enc.gml"
    p.write_bytes(doc)
    with pytest.raises(CityGMLError, match=r"enc\.gml:\d+"):
        _read(p)


def test_not_xml(tmp_path):
    p = tmp_path / "junk.gml"
    p.write_bytes(b"\x00\x01 this is not xml")
    with pytest.raises(CityGMLError, match="junk.gml"):
        _read(p)


BOMB = """<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
"""
EXTERNAL = """<!DOCTYPE x [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
"""


@pytest.mark.parametrize("doctype,ref", [(BOMB, "&lol3;"), (EXTERNAL, "&xxe;")])
def test_entities_refused(tmp_path, doctype, ref):
    doc = document(building("B", box()), doctype=doctype).replace("<bldg:roofType>", "")
    doc = doc.replace('gml:id="B">', f'gml:id="B"><gml:name>{ref}</gml:name>')
    p = tmp_path / "ent.gml"
    p.write_text(doc)
    with pytest.raises(CityGMLError, match=r"ent\.gml:[23]: DTD entity declarations are refused"):
        _read(p)
    # defence in depth: even past the guard, the parser neither expands nor fetches entities
    text = p.read_bytes()
    root = text.index(b"<core:CityModel")
    header = (text[: text.index(b">", root) + 1], b"core:CityModel")
    (b,) = list(iter_buildings(p, header=header))
    assert b.id == "B"


def test_undeclared_entity_reference_is_an_error(tmp_path):
    doc = document(building("B", box())).replace('gml:id="B">', 'gml:id="B"><gml:name>&xxe;</gml:name>')
    p = tmp_path / "undeclared.gml"
    p.write_text(doc)
    with pytest.raises(CityGMLError, match=r"undeclared\.gml:\d+"):
        _read(p)


def test_missing_and_bad_coordinates_are_counted_skips(tmp_path):
    good = polygon([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 0, 0)])
    empty = "<gml:Polygon><gml:exterior><gml:LinearRing><gml:posList></gml:posList></gml:LinearRing></gml:exterior></gml:Polygon>"
    nolist = "<gml:Polygon><gml:exterior><gml:LinearRing></gml:LinearRing></gml:exterior></gml:Polygon>"
    odd = "<gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>0 0 0 1 0 0 1 1</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon>"
    text = "<gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>0 0 0 1 x 0 1 1 0</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon>"
    p = tmp_path / "coords.gml"
    p.write_text(document(building("B", surface("RoofSurface", [good, empty, nolist, odd, text]))))
    (b,), st = _read(p)
    assert len(b.polygons) == 1
    assert st.skipped["missing coordinates"] == 3
    assert st.skipped["bad coordinates"] == 1
    assert any("coords.gml:" in w for w in st.warnings)
    assert building_to_mesh(b).area == pytest.approx(0.5)


def test_degenerate_and_unclosed_rings_in_a_file(tmp_path):
    unclosed = "<gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>0 0 0 2 0 0 2 2 0 0 2 0</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon>"
    degenerate = polygon([(0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0)])
    p = tmp_path / "rings.gml"
    p.write_text(document(building("B", surface("GroundSurface", [unclosed, degenerate]))))
    (b,), _ = _read(p)
    m = building_to_mesh(b)
    assert m.area == pytest.approx(4.0)
    assert m.stats["unclosed rings closed"] == 1
    assert m.stats["degenerate polygons skipped"] == 1


def test_srs_dimension_inherited_from_ancestor(tmp_path):
    two_d = ('<gml:Polygon srsDimension="2"><gml:exterior><gml:LinearRing><gml:posList>0 0 3 0 3 3 0 0'
             '</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon>')
    p = tmp_path / "dim.gml"
    p.write_text(document(building("B", surface("GroundSurface", [two_d]))))
    (b,), _ = _read(p)
    assert building_to_mesh(b).area == pytest.approx(4.5)


def _ring_xml(coords_xml, attrs=""):
    return (f"<gml:Polygon{attrs}><gml:exterior><gml:LinearRing>{coords_xml}</gml:LinearRing></gml:exterior>"
            "</gml:Polygon>")


def test_non_finite_coordinates_skip_only_that_polygon(tmp_path):
    good = polygon([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 0, 0)])
    nan = _ring_xml("<gml:posList>0 0 0 1 0 nan 1 1 0 0 0 0</gml:posList>")
    inf = _ring_xml("<gml:pos>0 0 0</gml:pos><gml:pos>inf 0 0</gml:pos><gml:pos>1 1 0</gml:pos>"
                    "<gml:pos>0 0 0</gml:pos>")
    two_d = _ring_xml("<gml:posList>0 0 -inf 0 1 1 0 0</gml:posList>", ' srsDimension="2"')
    overflow = _ring_xml("<gml:posList>0 0 0 1 0 0 1 1E999 0 0 0 0</gml:posList>")
    bad_hole = polygon([(0, 0, 0), (4, 0, 0), (4, 4, 0), (0, 4, 0), (0, 0, 0)],
                       holes=[[(1, 1, 0), (2, 1, 0), (2, float("nan"), 0), (1, 1, 0)]])
    p = tmp_path / "nonfinite.gml"
    p.write_text(document(building("B", surface("RoofSurface", [good, nan, inf, two_d, bad_hole, overflow]))))
    (b,), st = _read(p)
    assert len(b.polygons) == 1, "only the polygons with non-finite coordinates are dropped"
    assert st.skipped["bad coordinates"] == 5
    assert sum("nonfinite.gml:" in w and "non-finite" in w for w in st.warnings) == 5
    assert building_to_mesh(b).area == pytest.approx(0.5)


def test_non_finite_coordinates_do_not_fail_the_conversion(tmp_path):
    from deep_perception.citygml.__main__ import main
    from deep_perception.data.shards import read_manifest
    nan = _ring_xml("<gml:posList>0 0 0 1 0 nan 1 1 0 0 0 0</gml:posList>")
    p = tmp_path / "nonfinite.gml"
    p.write_text(document(building("B", box() + surface("RoofSurface", [nan]))))
    assert main([str(p), "-o", str(tmp_path / "o"), "--points", "32", "--quiet"]) == 0
    man = read_manifest(tmp_path / "o")
    assert man["counts"]["samples"] == 1 and man["counts"]["skipped"]["bad coordinates"] == 1


@pytest.mark.parametrize("where", ["envelope", "polygon", "posList", "pos"])
def test_non_integer_srs_dimension_is_an_error_with_file_and_line(tmp_path, where):
    coords = "<gml:posList{a}>0 0 0 1 0 0 1 1 0 0 0 0</gml:posList>"
    poly = _ring_xml(coords.format(a=' srsDimension="three"' if where == "posList" else ""),
                     ' srsDimension="3.5"' if where == "polygon" else "")
    if where == "pos":
        poly = _ring_xml('<gml:pos srsDimension="x">0 0 0</gml:pos><gml:pos>1 0 0</gml:pos>'
                         '<gml:pos>1 1 0</gml:pos><gml:pos>0 0 0</gml:pos>')
    text = document(building("B", surface("RoofSurface", [poly])))
    if where == "envelope":
        text = text.replace('srsDimension="3"', 'srsDimension="3D"', 1)
    p = tmp_path / "dim.gml"
    p.write_text(text)
    with pytest.raises(CityGMLError, match=r"dim\.gml:\d+: .*srsDimension"):
        _read(p)
