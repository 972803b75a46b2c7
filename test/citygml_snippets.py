"""Tiny hand-written CityGML documents for tests (CityGML 2.0 namespaces)."""

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
{doctype}<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0"
  xmlns:bldg="http://www.opengis.net/citygml/building/2.0" xmlns:gml="http://www.opengis.net/gml"
  xmlns:xlink="http://www.w3.org/1999/xlink">
  <gml:boundedBy><gml:Envelope srsName="EPSG:25832" srsDimension="3">
    <gml:lowerCorner>0 0 0</gml:lowerCorner><gml:upperCorner>10 10 10</gml:upperCorner></gml:Envelope></gml:boundedBy>
"""
TAIL = "</core:CityModel>\n"


def polygon(exterior, holes=(), gml_id=None):
    def ring(pts):
        return "<gml:LinearRing><gml:posList>" + " ".join(f"{x} {y} {z}" for x, y, z in pts) + \
            "</gml:posList></gml:LinearRing>"
    ident = f' gml:id="{gml_id}"' if gml_id else ""
    inner = "".join(f"<gml:interior>{ring(h)}</gml:interior>" for h in holes)
    return f"<gml:Polygon{ident}><gml:exterior>{ring(exterior)}</gml:exterior>{inner}</gml:Polygon>"


def surface(kind, polygons_xml, lod=2):
    members = "".join(f"<gml:surfaceMember>{p}</gml:surfaceMember>" for p in polygons_xml)
    return (f"<bldg:boundedBy><bldg:{kind}><bldg:lod{lod}MultiSurface><gml:MultiSurface>{members}"
            f"</gml:MultiSurface></bldg:lod{lod}MultiSurface></bldg:{kind}></bldg:boundedBy>")


def building(bid, body, roof_type=None):
    rt = f"<bldg:roofType>{roof_type}</bldg:roofType>" if roof_type else ""
    return f'<core:cityObjectMember><bldg:Building gml:id="{bid}">{rt}{body}</bldg:Building></core:cityObjectMember>\n'


def document(*buildings, doctype=""):
    return HEAD.format(doctype=doctype) + "".join(buildings) + TAIL


def box(x0=0.0, y0=0.0, w=10.0, d=8.0, h=6.0):
    """Walls, flat roof and ground of a box as semantic surfaces (outward rings)."""
    a, b, c, e = (x0, y0), (x0 + w, y0), (x0 + w, y0 + d), (x0, y0 + d)
    ground = [(*a, 0), (*e, 0), (*c, 0), (*b, 0), (*a, 0)]
    roof = [(*a, h), (*b, h), (*c, h), (*e, h), (*a, h)]
    walls = []
    for p, q in ((a, b), (b, c), (c, e), (e, a)):
        walls.append(polygon([(*p, 0), (*q, 0), (*q, h), (*p, h), (*p, 0)]))
    return (surface("GroundSurface", [polygon(ground)]) + surface("RoofSurface", [polygon(roof)]) +
            surface("WallSurface", walls))
