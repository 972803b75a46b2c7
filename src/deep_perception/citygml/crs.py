"""CRS and units: every coordinate leaves the reader in metres.

* metric projected CRSs (EPSG codes, OGC URNs/URLs, compound ``urn:ogc:def:crs,crs:EPSG::A,crs:EPSG::B``,
  AdV URNs such as ``urn:adv:crs:ETRS89_UTM32*DE_DHHN2016_NH*GCG2016``) pass through unchanged;
* feet CRSs (e.g. EPSG:2263, US survey feet) are scaled to metres (x, y and z);
* geographic CRSs (e.g. EPSG:6697, JGD2011 in lat, lon, h order) are reprojected to the UTM zone of
  the data (JGD2011 / UTM for JGD2011, WGS 84 / UTM otherwise); heights are kept;
* a missing, empty or unknown srsName ("CH1903") is treated as a local metric CRS, with a warning.
"""

import functools
import logging
import re

import numpy as np

log = logging.getLogger(__name__)

LOCAL = "LOCAL"  # crs string of data whose CRS is unknown (treated as metric)

_EPSG_RE = re.compile(r"EPSG(?::[\d.]*)?:+(\d+)|EPSG/\d+/(\d+)", re.IGNORECASE)
_ADV = {"ETRS89_UTM32": 25832, "ETRS89_UTM33": 25833, "DE_DHDN_3GK2": 31466,
        "DE_DHDN_3GK3": 31467, "DE_DHDN_3GK4": 31468, "ETRS89_3GK3": 5677}


class CRSInfo:
    """How to turn coordinates given in ``source`` into metres; ``name`` is the output CRS."""

    def __init__(self, source, name, scale=1.0, transformer=None, swap_xy=False, warning=None):
        self.source = source
        self.name = name
        self.scale = scale
        self.transformer = transformer
        self.swap_xy = swap_xy
        self.warning = warning

    @property
    def identity(self):
        return self.scale == 1.0 and self.transformer is None

    def to_metres(self, xyz):
        """Convert an (N,3) float64 array in place (and return it)."""
        if self.scale != 1.0:
            xyz *= self.scale
        if self.transformer is not None and len(xyz):
            # always_xy transformer: (lon, lat) in, (easting, northing) out
            lon, lat = (xyz[:, 1], xyz[:, 0]) if self.swap_xy else (xyz[:, 0], xyz[:, 1])
            e, n = self.transformer.transform(lon, lat)
            xyz[:, 0] = e
            xyz[:, 1] = n
        return xyz

    def __repr__(self):
        return f"CRSInfo({self.source!r} -> {self.name!r})"


def epsg_codes(srs_name):
    """EPSG codes named in an srsName (several for compound URNs), AdV URNs mapped to EPSG."""
    if not srs_name:
        return []
    codes = [int(a or b) for a, b in _EPSG_RE.findall(srs_name)]
    if not codes and srs_name.lower().startswith("urn:adv:crs:"):
        horizontal = srs_name[len("urn:adv:crs:"):].split("*")[0]
        if horizontal in _ADV:
            codes = [_ADV[horizontal]]
    return codes


@functools.lru_cache(maxsize=64)
def resolve(srs_name, lon_hint=None):
    """CRSInfo for an srsName. ``lon_hint`` (degrees) picks the UTM zone for geographic CRSs."""
    import pyproj

    codes = epsg_codes(srs_name)
    if not codes:
        return CRSInfo(srs_name, LOCAL,
                       warning=f"srsName {srs_name!r} is not a known CRS: treated as local metres")
    try:
        crs = pyproj.CRS.from_epsg(codes[0])
    except pyproj.exceptions.CRSError:
        return CRSInfo(srs_name, LOCAL, warning=f"EPSG:{codes[0]} unknown to pyproj: treated as local metres")
    horizontal = crs.sub_crs_list[0] if crs.is_compound else crs
    if horizontal.is_geographic:
        if lon_hint is None:
            lon_hint = 0.0
        zone = int((lon_hint + 180.0) // 6) + 1
        if "JGD2011" in horizontal.name and 51 <= zone <= 55:
            target = 6688 + zone - 51  # JGD2011 / UTM zone 51N..55N
        else:
            target = 32600 + zone
        first_axis = horizontal.axis_info[0].direction.lower() if horizontal.axis_info else "north"
        transformer = pyproj.Transformer.from_crs(horizontal, pyproj.CRS.from_epsg(target), always_xy=True)
        return CRSInfo(srs_name, f"EPSG:{target}", transformer=transformer, swap_xy=first_axis == "north")
    unit = horizontal.axis_info[0].unit_conversion_factor if horizontal.axis_info else 1.0
    if abs(unit - 1.0) > 1e-12:
        return CRSInfo(srs_name, f"EPSG:{codes[0]} scaled to metres (x{unit:.10g})", scale=unit)
    return CRSInfo(srs_name, f"EPSG:{codes[0]}")


def needs_lon_hint(srs_name):
    """True when the CRS is geographic (the UTM zone depends on the data)."""
    info = resolve(srs_name, 0.0)
    return info.transformer is not None


def lon_of(xyz, srs_name):
    """Longitude (degrees) of the first point of a geographic CRS's coordinates."""
    info = resolve(srs_name, 0.0)
    return float(xyz[0, 1] if info.swap_xy else xyz[0, 0])


def convert(xyz, srs_name):
    """Return (xyz in metres (float64, converted in place), output CRS name, warning or None)."""
    if needs_lon_hint(srs_name) and len(xyz):
        lon = lon_of(xyz, srs_name)
        info = resolve(srs_name, float(np.floor(lon / 6.0) * 6.0 + 3.0))
    else:
        info = resolve(srs_name)
    return info.to_metres(xyz), info.name, info.warning
