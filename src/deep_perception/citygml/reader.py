"""Streaming CityGML reader: one top-level city object in memory at a time.

``iter_buildings(path)`` parses CityGML 1.0, 2.0 and 3.0 (GML 3.1.1 / 3.2), plain or gzip, with
lxml iterparse filtered on the city-object member tags; each member is turned into ``Building``
objects (coordinates already parsed into float64 metres) and then cleared from the tree, so memory
does not grow with the file.

Geometry rules:

* every ``gml:Polygon``, ``gml:PolygonPatch``, ``gml:Triangle`` and ``gml:Rectangle`` inside a
  Building is read once, wherever it sits; ``xlink:href`` references (solids made of xlinks) point
  at polygons already read, so a surface reached through a solid and through its semantic surface
  counts once. An xlink whose target is not in the same city object is looked up among recently
  read objects (a bounded cache) and otherwise counted as unresolved;
* the polygon's label is its nearest semantic ancestor (Window/Door win over the Wall holding
  them), its LoD the nearest ``lodN*`` property, its owner the nearest Building/BuildingPart;
* interior features (rooms, furniture, interior installations) and implicit geometries are skipped
  and counted;
* ``lod=None`` keeps the highest LoD present in each building; ``lod=N`` keeps LoD N only.

Parsing is hardened: no entity expansion, no DTD loading, no network, no huge-tree mode; documents
declaring entities are rejected before parsing. Fatal problems raise ``CityGMLError`` naming the file
and line (a non-integer ``srsDimension`` is one); recoverable ones (a ring without coordinates, nan/inf
coordinates, a coordinate count that does not match ``srsDimension``) skip the polygon and are counted
in ``ReadStats``.
"""

import collections
import dataclasses
import gzip
import io
import logging
import os
import re
import warnings
import zlib

import numpy as np
from lxml import etree

from deep_perception.citygml import crs as crsmod
from deep_perception.citygml.labels import INTERIOR_ELEMENTS, SURFACE_ID, aggregate_roof_class, roof_class_of
from deep_perception.vocab import ROOF_UNKNOWN

log = logging.getLogger(__name__)

GML_NAMESPACES = ("http://www.opengis.net/gml", "http://www.opengis.net/gml/3.2")
CITYGML_CORE = ("http://www.opengis.net/citygml/1.0", "http://www.opengis.net/citygml/2.0",
                "http://www.opengis.net/citygml/3.0")
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
MEMBER_TAGS = [f"{{{ns}}}cityObjectMember" for ns in CITYGML_CORE] + \
    [f"{{{ns}}}featureMember" for ns in GML_NAMESPACES] + \
    ["{http://www.opengis.net/wfs/2.0}member"]
POLYGON_LOCAL = ("Polygon", "PolygonPatch", "Triangle", "Rectangle")
POLYGON_TAGS = [f"{{{ns}}}{name}" for ns in GML_NAMESPACES for name in POLYGON_LOCAL]
HREF_PARENT_TAGS = [f"{{{ns}}}{name}" for ns in GML_NAMESPACES
                    for name in ("surfaceMember", "patches", "baseSurface", "exterior", "interior")]
GML_ID = {ns: f"{{{ns}}}id" for ns in GML_NAMESPACES}
_POLY_ID_ATTR = {f"{{{ns}}}{name}": f"{{{ns}}}id" for ns in GML_NAMESPACES for name in POLYGON_LOCAL}
_POSLIST_TAGS = {f"{{{ns}}}posList" for ns in GML_NAMESPACES}
_RING_PARENT_TAGS = {f"{{{ns}}}{name}" for ns in GML_NAMESPACES for name in ("exterior", "interior")}
_SOLID_TAGS = [f"{{{ns}}}Solid" for ns in GML_NAMESPACES]
# one traversal of a building finds its polygons, parts and geometry references (xlinks)
_WALK_TAGS = POLYGON_TAGS + _SOLID_TAGS + [t for t in HREF_PARENT_TAGS if t not in _RING_PARENT_TAGS] + \
    ["{*}BuildingPart"]
_POLYGON, _SOLID, _HREF_HOLDER = range(3)
_WALK_KIND = {**{t: _POLYGON for t in POLYGON_TAGS}, **{t: _SOLID for t in _SOLID_TAGS},
              **{t: _HREF_HOLDER for t in HREF_PARENT_TAGS if t not in _RING_PARENT_TAGS}}
_ATTRIBUTE_TAGS = ("{*}roofType", "{*}function", "{*}usage", "{*}measuredHeight")
_BOUNDED_BY = {f"{{{ns}}}boundedBy" for ns in GML_NAMESPACES}
_BOUNDED_BY_LIST = sorted(_BOUNDED_BY)

# tag classification kinds
_OTHER, _OWNER, _LABEL, _LOD, _SKIP = range(5)
_LOD_RE = re.compile(r"^lod(\d)")


class CityGMLError(ValueError):
    """A CityGML file cannot be read; the message names the file and, where known, the line."""


@dataclasses.dataclass
class ReadStats:
    """Counters of one read: objects by type, skipped polygons by reason, warnings."""
    objects: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    warnings: list = dataclasses.field(default_factory=list)
    crs: set = dataclasses.field(default_factory=set)

    def warn(self, message):
        if len(self.warnings) < 50:
            self.warnings.append(message)
        log.warning(message)


@dataclasses.dataclass
class Building:
    """A Building or BuildingPart with its own polygons; ``parts`` holds its BuildingParts.

    ``polygons`` is a list of (rings, label, lod): rings a list of (n,3) float64 arrays in metres
    (exterior first, then holes), label an index into ``vocab.SURFACE_CLASSES`` or -1 when the
    polygon has no semantic surface, lod an int (or -1 when unknown).
    """
    id: str
    source: str
    line: int
    is_part: bool = False
    roof_type_code: str = None
    function: str = None
    measured_height: float = None
    crs: str = crsmod.LOCAL
    polygons: list = dataclasses.field(default_factory=list)
    parts: list = dataclasses.field(default_factory=list)
    own_roof_class: int = ROOF_UNKNOWN

    @property
    def roof_class(self):
        """Own roofType class, else the parts' (see ``labels.aggregate_roof_class``)."""
        return aggregate_roof_class(self.own_roof_class, [p.roof_class for p in self.parts])

    @property
    def roof_type_codes(self):
        """Original roofType values of the building and its parts (for provenance)."""
        codes = [self.roof_type_code] if self.roof_type_code else []
        for p in self.parts:
            codes.extend(p.roof_type_codes)
        return codes

    def all_polygons(self):
        """Polygons of the building and all its parts."""
        out = list(self.polygons)
        for p in self.parts:
            out.extend(p.all_polygons())
        return out

    def lods(self):
        return sorted({lod for _, _, lod in self.all_polygons()})

    def count_parts(self):
        return sum(1 + p.count_parts() for p in self.parts)


_TAG_INFO = {}


def _classify(tag):
    """(kind, value) for an element tag; memoised, namespace-agnostic (by local name)."""
    info = _TAG_INFO.get(tag)
    if info is not None:
        return info
    local = tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""
    if local in ("Building", "BuildingPart"):
        info = (_OWNER, local)
    elif local in INTERIOR_ELEMENTS or "Implicit" in local:
        info = (_SKIP, "interior" if "Implicit" not in local else "implicit geometry")
    elif local in SURFACE_ID and not local.startswith("lod"):
        info = (_LABEL, SURFACE_ID[local])
    else:
        m = _LOD_RE.match(local)
        if m:
            info = (_LOD, (int(m.group(1)), SURFACE_ID.get(local, -1)))
        else:
            info = (_OTHER, None)
    _TAG_INFO[tag] = info
    return info


def open_binary(path):
    """Open a CityGML file for binary reading; gzip is detected by its magic bytes."""
    f = open(path, "rb")
    magic = f.read(2)
    f.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")
    return f


_ROOT_START = re.compile(rb"<([A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)[\s>/]")


def read_header(path, limit=1 << 20):
    """First bytes of a file up to and including the root element's start tag.

    Returns (header bytes, root qname bytes). Raises CityGMLError for DTD entity declarations.
    """
    chunks = []
    try:
        with open_binary(path) as f:
            got = 0
            while got < limit:
                block = f.read(min(1 << 16, limit - got))
                if not block:
                    break
                chunks.append(block)
                got += len(block)
    except (EOFError, OSError, zlib.error):
        if not chunks:  # a truncated stream still has its header; the parser reports the cut later
            raise CityGMLError(f"{path}: cannot read: not a readable (gzip) file") from None
    head = b"".join(chunks)
    pos = 0
    while True:
        m = _ROOT_START.search(head, pos)
        if m is None:
            raise CityGMLError(f"{path}: no XML root element in the first {limit} bytes")
        # skip <?xml ...?>, <!DOCTYPE ...>, <!-- --> (they do not match the element pattern's start)
        end = head.find(b">", m.end() - 1)
        if end < 0:
            raise CityGMLError(f"{path}: root start tag not closed within {limit} bytes")
        qname = (m.group(1) or b"") + m.group(2)
        header = head[: end + 1]
        break
    if b"<!ENTITY" in head[: m.start()]:
        line = head[: head.find(b"<!ENTITY")].count(b"\n") + 1
        raise CityGMLError(f"{path}:{line}: DTD entity declarations are refused (entity expansion / "
                           "external entities)")
    # chunks of the file are parsed behind everything before the first member (envelope, srsName)
    first = _MEMBER_START.search(head, end)
    if first is not None:
        header = head[: first.start()]
    return header, qname


_MEMBER_START = re.compile(rb"<([\w.\-]+:)?(cityObjectMember|featureMember|member)[\s>]")


def member_offsets(path, chunk_bytes):
    """Byte ranges [(start, end)] of a plain file cut into ~chunk_bytes pieces at member boundaries.

    Deterministic for a given file and chunk size; gzip files and small files give one range (None).
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if f.read(2) == b"\x1f\x8b" or size <= chunk_bytes:
            return [None]
    header, _ = read_header(path)
    m = _MEMBER_START.search(_read_at(path, 0, 1 << 22))
    if m is None:
        return [None]
    tag = b"<" + (m.group(1) or b"") + m.group(2)
    pattern = re.compile(re.escape(tag) + rb"[\s>]")
    window_size = 1 << 20
    cuts = [m.start()]
    with open(path, "rb") as f:
        pos = m.start() + chunk_bytes
        while pos < size:
            f.seek(pos)
            window = f.read(window_size)
            hit = pattern.search(window)
            if hit is not None:
                cuts.append(pos + hit.start())
                pos = pos + hit.start() + chunk_bytes
            elif len(window) < window_size:
                break
            else:
                pos += len(window) - len(tag)
    ranges = [(cuts[i], cuts[i + 1]) for i in range(len(cuts) - 1)] + [(cuts[-1], size)]
    return ranges


def _read_at(path, start, n):
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(n)


class _ChunkStream(io.RawIOBase):
    """Header + bytes [start, end) of a file + the root's closing tag, as one XML document."""

    def __init__(self, path, start, end, header, root_qname, last):
        self._pending = header
        self._f = open(path, "rb")
        self._f.seek(start)
        self._left = end - start
        self._tail = b"" if last else b"</" + root_qname + b">"

    def readable(self):
        return True

    def readinto(self, buf):
        n = len(buf)
        if not self._pending and self._left > 0:
            self._pending = self._f.read(min(n, self._left))
            self._left -= len(self._pending)
            if not self._pending:
                self._left = 0
        if not self._pending and self._tail:
            self._pending, self._tail = self._tail, b""
        data, self._pending = self._pending[:n], self._pending[n:]
        buf[:len(data)] = data
        return len(data)

    def close(self):
        self._f.close()
        super().close()


class _Context:
    """Per-file state: path, default srsName/srsDimension, cross-object polygon cache, stats."""

    def __init__(self, path, lod, stats, cache_size=4096):
        self.path = path
        self.lod = lod
        self.stats = stats
        self.srs = None
        self.srs_dim = 3
        self.cache = collections.OrderedDict()
        self.cache_size = cache_size
        self.header_done = False


def iter_buildings(path, lod=None, stats=None, byte_range=None, header=None):
    """Yield ``Building`` objects of a CityGML file (plain or gzip), streaming.

    ``lod``: None keeps the highest LoD of each building, an int keeps that LoD only.
    ``stats``: a ``ReadStats`` to fill (objects by type, skipped polygons by reason, warnings).
    ``byte_range``: (start, end) of member-aligned bytes (``member_offsets``) to read only a chunk.
    Raises ``CityGMLError`` (file:line) on malformed XML, truncation, encoding errors, entities.
    """
    path = os.fspath(path)
    stats = stats if stats is not None else ReadStats()
    ctx = _Context(path, lod, stats)
    hdr, root_qname = header or read_header(path)
    if byte_range is None:
        source = open_binary(path)
    else:
        size = os.path.getsize(path)
        source = io.BufferedReader(_ChunkStream(path, byte_range[0], byte_range[1], hdr, root_qname,
                                                byte_range[1] >= size), 1 << 20)
    # remove_blank_text: no whitespace text nodes between elements (15 % faster parse and tree
    # walks; whitespace-only element content such as an empty posList is kept by libxml2)
    parser_args = dict(events=("end",), tag=MEMBER_TAGS, resolve_entities=False, no_network=True,
                       huge_tree=False, load_dtd=False, remove_comments=True, recover=False,
                       remove_blank_text=True, collect_ids=False)
    elem = None
    try:
        with source:
            for _, elem in etree.iterparse(source, **parser_args):
                if not ctx.header_done:
                    _read_root_defaults(elem.getparent(), ctx)
                buildings = _read_member(elem, ctx)
                parent = elem.getparent()
                elem.clear(keep_tail=False)
                if parent is not None:
                    while elem.getprevious() is not None:
                        del parent[0]
                yield from buildings
    except etree.XMLSyntaxError as exc:
        line = exc.position[0] if exc.position else "?"
        if byte_range is not None:
            line = f"{line} of chunk at byte {byte_range[0]}"
        raise CityGMLError(f"{path}:{line}: malformed CityGML: {exc.msg}") from exc
    except (OSError, EOFError, zlib.error) as exc:
        line = elem.sourceline if elem is not None else "?"
        raise CityGMLError(f"{path}: cannot read after line {line}: {exc}") from exc


def _read_root_defaults(root, ctx):
    """srsName / srsDimension of the CityModel's envelope (before the first member)."""
    ctx.header_done = True
    if root is None:
        return
    for child in root:
        if child.tag in MEMBER_TAGS:
            break
        for el in child.iter():
            if not isinstance(el.tag, str):
                continue
            if el.get("srsName") is not None and ctx.srs is None:
                ctx.srs = el.get("srsName")
            dim = el.get("srsDimension")
            if dim is not None:
                ctx.srs_dim = _dim_int(dim, el, ctx)


def _owner_ancestor(el, stop):
    for anc in el.iterancestors():
        if anc is stop:
            return None
        if _classify(anc.tag)[0] == _OWNER:
            return anc
    return None


def _read_member(member, ctx):
    """Buildings of one city-object member (Buildings nested in groups included)."""
    first = None
    for child in member:
        if isinstance(child.tag, str):
            first = child
            break
    if first is None:
        href = member.get(XLINK_HREF)
        if href is None:
            return []
        ctx.stats.objects["xlink member"] += 1
        return []
    if _classify(first.tag) != (_OWNER, "Building"):
        ctx.stats.objects[first.tag.rsplit("}", 1)[-1]] += 1
    elif first.getnext() is None:  # the usual member: one Building (nested ones belong to it)
        ctx.stats.objects["Building"] += 1
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            return [_read_building(first, ctx)]
    out = []
    for b in member.iter("{*}Building"):
        if _owner_ancestor(b, member) is None:
            ctx.stats.objects["Building"] += 1
            with warnings.catch_warnings():
                warnings.simplefilter("error", DeprecationWarning)
                out.append(_read_building(b, ctx))
    return out


def _attributes(el, b):
    """Direct-child attributes of a Building/BuildingPart."""
    for child in el.iterchildren(*_ATTRIBUTE_TAGS):
        tag = child.tag
        local = tag[tag.rfind("}") + 1:]
        if local == "roofType" and b.roof_type_code is None:
            b.roof_type_code = (child.text or "").strip() or None
        elif local in ("function", "usage") and b.function is None:
            b.function = (child.text or "").strip() or None
        elif local == "measuredHeight":
            try:
                b.measured_height = float(child.text)
            except (TypeError, ValueError):
                pass
    b.own_roof_class = roof_class_of(b.roof_type_code)


def _gml_id(el):
    return el.get(GML_ID[GML_NAMESPACES[0]]) or el.get(GML_ID[GML_NAMESPACES[1]])


def _read_building(belem, ctx):
    path = ctx.path
    top = Building(id=_gml_id(belem) or f"line{belem.sourceline}", source=path, line=belem.sourceline)
    _attributes(belem, top)
    owners = {belem: top}
    srs = _building_srs(belem)
    srs_missing = srs is None
    rings_all = []          # flat list of arrays to convert CRS in one go
    polys = []              # (owner Building, ring count, label, lod, gml id)
    ids = {}
    hrefs = []              # (xlink:href, element holding it) of geometry references
    stop = belem.getparent()
    walks = {}              # grand-parent element of a polygon -> its ancestors' classification
    # one pass in document order: a part comes before its polygons, a polygon before its holder's
    # next sibling
    for el in belem.iter(_WALK_TAGS):
        tag = el.tag
        kind = _WALK_KIND.get(tag)
        if kind == _HREF_HOLDER:
            href = el.get(XLINK_HREF)
            if href is not None:
                hrefs.append((href, el))
            continue
        if kind is None:  # BuildingPart
            part = Building(id=_gml_id(el) or f"line{el.sourceline}", source=path,
                            line=el.sourceline, is_part=True)
            _attributes(el, part)
            owners[_owner_ancestor(el, stop)].parts.append(part)
            owners[el] = part
            ctx.stats.objects["BuildingPart"] += 1
            continue
        if kind == _SOLID:
            _ring_hrefs(el, hrefs)
            continue
        poly = el
        parent = poly.getparent()
        grand = parent.getparent()
        if _classify(parent.tag)[0] == _OTHER:
            found = walks.get(grand)
            if found is None:
                found = walks[grand] = _walk(grand, stop)
        else:
            found = _walk(parent, stop)
        if srs_missing:
            srs = _srs_upwards(poly, stop)
            srs_missing = False
        label, lod, owner, skip = found
        if skip is not None:
            ctx.stats.skipped[skip] += 1
            _ring_hrefs(poly, hrefs)
            continue
        rings = _polygon_rings(poly, ctx, hrefs)
        if rings is None:
            continue
        rings_all.extend(rings)
        gid = poly.get(_POLY_ID_ATTR[tag])
        polys.append((owners.get(owner, top), len(rings), label, lod, gid))
        if gid:
            ids[gid] = len(polys) - 1
    if srs is None:
        srs = ctx.srs
    # xlinks: targets in this object are already read (counted once); others come from the cache
    for href, ref_parent in hrefs:
        target = href[1:] if href.startswith("#") else href
        if target in ids or not target:
            continue
        if _href_target_in(belem, target):
            continue  # a reference to a non-polygon element we read
        cached = ctx.cache.get(target)
        if cached is None:
            ctx.stats.skipped["unresolved xlink"] += 1
            continue
        label, lod, rings = cached
        owner_el = _owner_ancestor(ref_parent, stop)
        rings_all.extend(r.copy() for r in rings)
        polys.append((owners.get(owner_el, top), len(rings), label, lod, None))
        ctx.stats.skipped["xlink resolved from another object"] += 1

    if rings_all:
        if srs is None:
            srs = ""
        info = crsmod.resolve(srs)
        if info.warning and srs not in ctx.stats.crs:
            ctx.stats.warn(f"{path}: {info.warning}")
        ctx.stats.crs.add(srs)
        crs_name = info.name
        if not info.identity:
            sizes = [len(r) for r in rings_all]
            xyz, crs_name, _ = crsmod.convert(np.concatenate(rings_all), srs)
            rings_all = np.split(xyz, np.cumsum(sizes)[:-1])
    else:
        crs_name = crsmod.resolve(srs or "").name if srs is not None else crsmod.LOCAL
    for b in owners.values():
        b.crs = crs_name

    k = 0
    for owner, n, label, lod, gid in polys:
        rings = rings_all[k:k + n]
        k += n
        owner.polygons.append((rings, label, lod))
        if gid is not None:
            ctx.cache[gid] = (label, lod, rings)
    while len(ctx.cache) > ctx.cache_size:
        ctx.cache.popitem(last=False)
    lods = {p[3] for p in polys}
    if len(lods) > 1 or (ctx.lod is not None and lods and ctx.lod not in lods):
        _select_lod(top, ctx)
    return top


def _walk(el, stop):
    """(label, lod, owner element, skip reason) from the classification of el and its ancestors."""
    label = -1
    lod = -1
    skip = None
    node = el
    while node is not None:
        kind, value = _classify(node.tag)
        if kind != _OTHER:
            if kind == _OWNER:
                return label, lod, node, skip
            if kind == _LABEL:
                if label < 0:
                    label = value
            elif kind == _LOD:
                if lod < 0:
                    lod = value[0]
                    if label < 0 and value[1] >= 0:
                        label = value[1]
            elif skip is None:
                skip = value
        if node is stop:
            break
        node = node.getparent()
    return label, lod, None, skip


def _building_srs(belem):
    """srsName of the building's own envelope (gml:boundedBy/gml:Envelope), if any."""
    found = [c for c in map(belem.find, _BOUNDED_BY_LIST) if c is not None]
    if found:
        child = found[0] if len(found) == 1 else min(found, key=belem.index)
        for env in child:
            name = env.get("srsName")
            if name is not None:
                return name
    return belem.get("srsName")


def _srs_upwards(el, stop):
    node = el
    while node is not None and node is not stop:
        name = node.get("srsName")
        if name is not None:
            return name
        node = node.getparent()
    return None


_NS = {"g1": GML_NAMESPACES[0], "g2": GML_NAMESPACES[1], "xl": "http://www.w3.org/1999/xlink"}


def _href_target_in(belem, target):
    """True if an element with gml:id == target exists in the building (e.g. a CompositeSurface)."""
    for ns in GML_NAMESPACES:
        if belem.xpath(f"boolean(.//*[@g:id=$t])", namespaces={"g": ns}, t=target):
            return True
    return False


def _select_lod(top, ctx):
    lods = top.lods()
    known = [x for x in lods if x >= 0]
    if ctx.lod is None:
        keep = max(known) if known else -1
    else:
        keep = ctx.lod

    def prune(b):
        kept = [p for p in b.polygons if p[2] == keep]
        dropped = len(b.polygons) - len(kept)
        if dropped:
            ctx.stats.skipped[f"other LoD than {keep}"] += dropped
        b.polygons = kept
        for p in b.parts:
            prune(p)
    prune(top)


def _srs_dimension(el, ctx):
    dim = el.get("srsDimension")
    if dim is not None:
        return _dim_int(dim, el, ctx)
    for anc in el.iterancestors():
        dim = anc.get("srsDimension")
        if dim is not None:
            return _dim_int(dim, anc, ctx)
    return ctx.srs_dim


def _dim_int(dim, el, ctx):
    """An srsDimension attribute as an int; CityGMLError naming file:line when it is not one."""
    try:
        return int(dim)
    except ValueError:
        raise CityGMLError(f"{ctx.path}:{el.sourceline}: srsDimension {dim!r} is not an integer") from None


# _ring_coords' answer for a ring with nan/inf (np.fromstring accepts them): its whole polygon is skipped
_NON_FINITE = object()


def _finite(values, text, ring, ctx):
    """``values`` if all finite, else _NON_FINITE with a counted skip and a file:line warning."""
    # nan, inf, infinity and overflowing exponents all need an n or an e: skip the array check without
    # them (it would cost ~15 % of reading; only a 309-digit literal without exponent slips through)
    if not ("n" in text or "e" in text or "N" in text or "E" in text) or np.isfinite(values).all():
        return values
    ctx.stats.skipped["bad coordinates"] += 1
    ctx.stats.warn(f"{ctx.path}:{ring.sourceline}: non-finite coordinates (nan/inf), polygon skipped")
    return _NON_FINITE


_LOCAL = {}


def _local(tag):
    name = _LOCAL.get(tag)
    if name is None:
        name = _LOCAL[tag] = tag[tag.rfind("}") + 1:] if isinstance(tag, str) else ""
    return name


def _ring_hrefs(el, hrefs):
    """Collect xlink:href of el's gml:exterior / gml:interior children."""
    for child in el:
        if child.tag in _RING_PARENT_TAGS:
            href = child.get(XLINK_HREF)
            if href is not None:
                hrefs.append((href, child))


def _polygon_rings(poly, ctx, hrefs=None):
    """List of (n,3) float64 rings (exterior first) or None (counted skip).

    xlink:href of the ring holders are added to ``hrefs`` (a list of (href, element)).
    """
    rings = []
    has_exterior = False
    children = [(child, child.tag) for child in poly]
    if hrefs is not None:
        for child, tag in children:
            if tag in _RING_PARENT_TAGS:
                href = child.get(XLINK_HREF)
                if href is not None:
                    hrefs.append((href, child))
    for child, tag in children:
        local = _local(tag)
        if local == "exterior" or local == "outerBoundaryIs":
            has_exterior = True
            ring = _ring_coords(child, ctx)
            if ring is None or ring is _NON_FINITE:
                return None
            rings.insert(0, ring)
        elif local == "interior" or local == "innerBoundaryIs":
            ring = _ring_coords(child, ctx)
            if ring is _NON_FINITE:
                return None
            if ring is None:
                ctx.stats.skipped["hole without coordinates"] += 1
                continue
            rings.append(ring)
    if not has_exterior:
        ctx.stats.skipped["polygon without exterior"] += 1
        return None
    return rings


def _ring_coords(boundary, ctx):
    ring = boundary[0] if len(boundary) else None
    if ring is not None and not isinstance(ring.tag, str):  # a processing instruction
        ring = next((child for child in boundary if isinstance(child.tag, str)), None)
    if ring is None:
        ctx.stats.skipped["missing coordinates"] += 1
        ctx.stats.warn(f"{ctx.path}:{boundary.sourceline}: ring without coordinates skipped")
        return None
    if len(ring) == 1:
        only = ring[0]
        if only.tag in _POSLIST_TAGS:
            text = only.text
            if text:
                dim = only.get("srsDimension")
                dim = _dim_int(dim, only, ctx) if dim is not None else _srs_dimension(only, ctx)
                try:
                    values = np.fromstring(text, dtype=np.float64, sep=" ")
                except (DeprecationWarning, ValueError):
                    values = None
                if values is not None and dim == 3 and values.size and values.size % 3 == 0:
                    return _finite(values.reshape(-1, 3), text, ring, ctx)
    texts = []
    dim = None
    for child in ring:
        local = _local(child.tag)
        if local == "posList":
            texts.append(child.text or "")
            dim = _srs_dimension(child, ctx)
        elif local == "pos":
            texts.append(child.text or "")
            if dim is None:
                d = child.get("srsDimension")
                dim = _dim_int(d, child, ctx) if d else None
        elif local == "coordinates":
            texts.append((child.text or "").replace(",", " "))
    if not texts:
        ctx.stats.skipped["missing coordinates"] += 1
        ctx.stats.warn(f"{ctx.path}:{ring.sourceline}: ring without coordinates skipped")
        return None
    text = " ".join(texts) if len(texts) > 1 else texts[0]
    try:
        values = np.fromstring(text, dtype=np.float64, sep=" ")
    except (DeprecationWarning, ValueError):
        ctx.stats.skipped["bad coordinates"] += 1
        ctx.stats.warn(f"{ctx.path}:{ring.sourceline}: unparsable coordinates, polygon skipped")
        return None
    if dim is None:
        dim = _srs_dimension(ring, ctx) if len(texts) == 1 else (
            values.size // len(texts) if values.size % len(texts) == 0 else ctx.srs_dim)
    if dim not in (2, 3) or values.size == 0 or values.size % dim:
        ctx.stats.skipped["missing coordinates"] += 1
        ctx.stats.warn(f"{ctx.path}:{ring.sourceline}: {values.size} values do not make "
                       f"{dim}-D points, polygon skipped")
        return None
    if _finite(values, text, ring, ctx) is _NON_FINITE:
        return _NON_FINITE
    if dim == 3:
        return values.reshape(-1, 3)
    pts = values.reshape(-1, 2)
    return np.column_stack([pts, np.zeros(len(pts))])
