"""City (region) of an input file, recorded in the manifest so trainers can split by city.

Rules (first match on the path, case-insensitive); NRW tiles (``LoD2_32_EEE_NNNN``) are split by
their UTM northing: >= 5700 km → ``nrw-wesel``, below → ``nrw-koeln`` (Köln/Bonn). Anything else
falls back to the name of the file's folder.
"""

import os
import re

_NRW_TILE = re.compile(r"LoD2_32_(\d{3})_(\d{4})", re.IGNORECASE)
_RULES = (
    ("ar-gis", "berlin"), ("tecdem", "berlin"), ("citygml2gameobject", "berlin"),
    ("cesiumcitygmlexp", "helsinki"), ("mapping-austrofascism", "vienna"),
    ("plateau", "japan"), ("solarpotential", "japan"), ("citygml-osm", "japan"), ("_bldg_6697", "japan"),
    ("cut-prototype-citygml-geojson", "hamburg"), ("ud-sample-data", "lyon"), ("opera-lyon", "lyon"),
    ("nyc-buildings", "new-york"), ("zurich", "zurich"), ("citygml4j", "synthetic"),
    ("citygml-3.0encodings", "synthetic"), ("citygml-change-detection", "synthetic"),
)


def city_of(path):
    """Short city/region name for a CityGML file path."""
    p = os.fspath(path).replace("\\", "/")
    m = _NRW_TILE.search(os.path.basename(p))
    if m:
        north_km = int(m.group(2))
        if north_km >= 5700:
            return "nrw-wesel"
        if 5600 <= north_km < 5700 and int(m.group(1)) >= 340:
            return "nrw-koeln"
        return "nrw"
    low = p.lower()
    for key, city in _RULES:
        if key in low:
            return city
    return os.path.basename(os.path.dirname(os.path.abspath(p))) or "unknown"
