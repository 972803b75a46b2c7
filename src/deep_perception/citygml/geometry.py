"""Rings → triangles: ring repair, triangulation with holes, labels, per-building offset.

All rings of a building are repaired together with vectorised numpy:

* coordinates are recentred on a per-building offset in float64 (x, y: floor of the bounding-box
  centre; z: floor of the minimum), so float32 copies keep sub-millimetre precision;
* consecutive duplicate points (closer than 1e-7 m) and the closing point are dropped; unclosed
  rings are accepted (closed implicitly) and counted;
* collinear points (closer than 1e-6 m to the chord of their neighbours) and spikes are dropped;
* rings left with fewer than 3 points or no area are degenerate: an exterior skips its polygon,
  a hole is dropped (both counted).

Each polygon is projected on its plane (Newell normal; the dominant axis is dropped, an affine map
of the best-fit plane, so the triangulation is that of the plane) and triangulated with
mapbox-earcut, holes included. Triangles are oriented like the polygon's Newell normal.

Polygons without a semantic surface (Vienna solids, PLATEAU LoD1 blocks) are labelled from their
normal: |n_z| < 0.17 (within ~10 deg of vertical) → wall, upward → roof, downward → ground, after
flipping the unlabelled faces if they enclose a negative volume (inward-oriented solids).
``unlabeled="other"`` labels them ``other`` instead.
"""

import collections
import dataclasses

import mapbox_earcut
import numpy as np

from deep_perception.vocab import SURFACE_INDEX

DUP_TOL2 = 1e-14      # squared distance below which consecutive points are the same
COLLINEAR_TOL = 1e-6  # metres from the neighbours' chord below which a point is dropped
AREA_TOL = 1e-10      # m^2: polygons below this are degenerate
WALL_NZ = 0.17


@dataclasses.dataclass
class Mesh:
    """Triangle mesh of one building (and its parts).

    vertices float64 (V,3) relative to ``offset``; faces int32 (F,3); face_labels uint8 (F,)
    (index into ``vocab.SURFACE_CLASSES``); offset float64 (3,); crs: output CRS name.
    """
    vertices: np.ndarray
    faces: np.ndarray
    face_labels: np.ndarray
    offset: np.ndarray
    crs: str = "LOCAL"
    building_id: str = ""
    stats: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    @property
    def face_areas(self):
        v = self.vertices
        f = self.faces
        return 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)

    @property
    def face_normals(self):
        v = self.vertices
        f = self.faces
        n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        length = np.linalg.norm(n, axis=1, keepdims=True)
        return np.divide(n, length, out=np.zeros_like(n), where=length > 0)

    @property
    def area(self):
        return float(self.face_areas.sum())

    def __len__(self):
        return len(self.faces)


def building_to_mesh(building, include_parts=True, unlabeled="normals"):
    """Triangulate a ``Building`` (with its parts unless include_parts=False) into a ``Mesh``."""
    return buildings_to_meshes([building], include_parts, unlabeled)[0]


def buildings_to_meshes(buildings, include_parts=True, unlabeled="normals"):
    """Triangulate many buildings in one vectorised pass; returns one ``Mesh`` per building."""
    batch = triangulate_batch([b.all_polygons() if include_parts else list(b.polygons) for b in buildings],
                              unlabeled=unlabeled)
    meshes = batch.meshes()
    for mesh, b in zip(meshes, buildings):
        mesh.crs = b.crs
        mesh.building_id = b.id
    return meshes


def polygons_to_mesh(polygons, unlabeled="normals", offset=None):
    """Triangulate [(rings, label, lod)] (rings: exterior then holes, (n,3) float64) into a Mesh."""
    return triangulate_batch([polygons], unlabeled=unlabeled,
                             offsets=None if offset is None else [offset]).meshes()[0]


@dataclasses.dataclass
class MeshBatch:
    """Triangles of B items in shared arrays: ``vertices`` (V,3) relative to each item's offset,
    ``faces`` (F,3) global vertex indices, ``face_labels``, ``face_item``; item i owns vertices
    ``vstart[i]:vstart[i+1]`` and faces ``fstart[i]:fstart[i+1]``."""
    vertices: np.ndarray
    faces: np.ndarray
    face_labels: np.ndarray
    face_item: np.ndarray
    offsets: np.ndarray
    vstart: np.ndarray
    fstart: np.ndarray
    stats: list

    def __len__(self):
        return len(self.offsets)

    def meshes(self):
        out = []
        for i in range(len(self)):
            v0, v1 = self.vstart[i], self.vstart[i + 1]
            f0, f1 = self.fstart[i], self.fstart[i + 1]
            out.append(Mesh(self.vertices[v0:v1], (self.faces[f0:f1] - v0).astype(np.int32),
                            self.face_labels[f0:f1], self.offsets[i], stats=self.stats[i]))
        return out


_UV_AXES = np.array([[1, 2], [0, 2], [0, 1]])


def triangulate_batch(items, unlabeled="normals", offsets=None):
    """Repair and triangulate the polygons of several items (buildings) at once → ``MeshBatch``.

    ``items``: list (one per item) of lists of (rings, label, lod).
    """
    n_items = len(items)
    stats = [collections.Counter() for _ in range(n_items)]
    rings = []
    ring_counts = []     # rings per polygon
    poly_labels = []
    poly_item = []
    for i, polygons in enumerate(items):
        for rs, label, _ in polygons:
            rings.extend(rs)
            ring_counts.append(len(rs))
            poly_labels.append(label)
            poly_item.append(i)
    n_polys = len(ring_counts)
    n_rings = len(rings)
    if n_rings == 0:
        return _empty_batch(n_items, offsets, stats)
    lengths = np.fromiter(map(len, rings), np.int64, n_rings)
    P = np.concatenate(rings)
    ring_counts = np.asarray(ring_counts, np.int64)
    poly_item = np.asarray(poly_item, np.int64)
    ring_poly = np.repeat(np.arange(n_polys), ring_counts)
    ring_item = poly_item[ring_poly]
    first_ring = np.cumsum(ring_counts) - ring_counts
    point_item = np.repeat(ring_item, lengths)
    # per-item offsets: floor of the bbox centre (x, y) and of the minimum (z)
    if offsets is None:
        item_pts = np.bincount(point_item, minlength=n_items)
        has = item_pts > 0
        pstart = (np.cumsum(item_pts) - item_pts)[has]
        lo = np.minimum.reduceat(P, pstart, axis=0)
        hi = np.maximum.reduceat(P, pstart, axis=0)
        off = np.zeros((n_items, 3))
        off[has] = np.floor(np.column_stack([(lo[:, 0] + hi[:, 0]) / 2, (lo[:, 1] + hi[:, 1]) / 2, lo[:, 2]]))
    else:
        off = np.asarray(offsets, np.float64).reshape(n_items, 3)
    Q = P - off[point_item]

    Q, lengths, unclosed = _dedupe(Q, lengths)
    _add(stats, ring_item, unclosed, "unclosed rings closed")
    Q, lengths, removed = _drop_collinear(Q, lengths)
    _add(stats, ring_item, removed, "collinear points removed")
    starts = np.cumsum(lengths) - lengths
    ring_id = np.repeat(np.arange(n_rings), lengths)
    idx = np.arange(len(Q))
    nxt = idx + 1
    ne = lengths > 0
    nxt[(starts + lengths - 1)[ne]] = starts[ne]
    b = Q[nxt]
    nx = np.bincount(ring_id, (Q[:, 1] - b[:, 1]) * (Q[:, 2] + b[:, 2]), n_rings)
    ny = np.bincount(ring_id, (Q[:, 2] - b[:, 2]) * (Q[:, 0] + b[:, 0]), n_rings)
    nz = np.bincount(ring_id, (Q[:, 0] - b[:, 0]) * (Q[:, 1] + b[:, 1]), n_rings)
    normals = np.column_stack([nx, ny, nz])
    valid = (lengths >= 3) & (np.sqrt(nx * nx + ny * ny + nz * nz) > 2 * AREA_TOL)

    ext_valid = valid[first_ring]
    _add(stats, poly_item, ~ext_valid, "degenerate polygons skipped")
    hole = np.ones(n_rings, bool)
    hole[first_ring] = False
    bad_hole = hole & ~valid & ext_valid[ring_poly]
    _add(stats, ring_item, bad_hole, "degenerate holes dropped")
    good_holes = np.bincount(ring_poly, hole & valid, n_polys).astype(np.int64)
    bad_holes = np.bincount(ring_poly, bad_hole, n_polys).astype(np.int64)

    poly_normal = normals[first_ring]
    axis = np.argmax(np.abs(poly_normal), axis=1)
    point_poly = ring_poly[ring_id]
    uv = np.take_along_axis(Q, _UV_AXES[axis[point_poly]], axis=1)

    # convex polygons without holes: fan triangulation, vectorised
    prev = idx - 1
    prev[starts[ne]] = (starts + lengths - 1)[ne]
    e_in = uv - uv[prev]
    e_out = uv[nxt] - uv
    cross = e_in[:, 0] * e_out[:, 1] - e_in[:, 1] * e_out[:, 0]
    dot = np.einsum("ij,ij->i", e_in, e_out)
    turn = np.bincount(ring_id, np.arctan2(cross, dot), n_rings)
    pos = np.bincount(ring_id, cross > 0, n_rings)
    neg = np.bincount(ring_id, cross < 0, n_rings)
    ring_convex = ((pos == 0) | (neg == 0)) & (np.abs(np.abs(turn) - 2 * np.pi) < 1e-6)
    simple = ext_valid & (good_holes == 0) & (bad_holes == 0)
    fan = simple & ring_convex[first_ring]
    k = lengths[first_ring[fan]]
    ntri = k - 2
    s = np.repeat(starts[first_ring[fan]], ntri)
    step = np.arange(ntri.sum()) - np.repeat(np.cumsum(ntri) - ntri, ntri) + 1
    fan_faces = np.column_stack([s, s + step, s + step + 1])
    fan_poly = np.repeat(np.flatnonzero(fan), ntri)

    faces_list = [fan_faces]
    poly_list = [fan_poly]
    lengths_l = lengths.tolist()
    starts_l = starts.tolist()
    valid_l = valid.tolist()
    first_l = first_ring.tolist()
    counts_l = ring_counts.tolist()
    # earcut results (ring-local uint32 indices) are collected and offset in one go at the end
    cut_local, cut_offset, cut_poly, cut_count = [], [], [], []
    for pi in np.flatnonzero(ext_valid & ~fan).tolist():
        r0 = first_l[pi]
        nr = counts_l[pi]
        s0 = starts_l[r0]
        if bad_holes[pi]:
            keep = [r for r in range(r0, r0 + nr) if valid_l[r]]
            sel = np.concatenate([np.arange(starts_l[r], starts_l[r] + lengths_l[r]) for r in keep])
            ring_ends = np.cumsum([lengths_l[r] for r in keep]).astype(np.uint32)
            local = mapbox_earcut.triangulate_float64(uv[sel], ring_ends)
            tri = sel[local.reshape(-1, 3)]
            if len(tri) == 0:
                stats[int(poly_item[pi])]["polygons not triangulable"] += 1
                continue
            faces_list.append(tri)
            poly_list.append(np.full(len(tri), pi, np.int64))
            continue
        if nr == 1:
            e = s0 + lengths_l[r0]
            ring_ends = np.array([lengths_l[r0]], np.uint32)
        else:
            e = starts_l[r0 + nr - 1] + lengths_l[r0 + nr - 1]
            ring_ends = np.cumsum(lengths[r0:r0 + nr]).astype(np.uint32)
        local = mapbox_earcut.triangulate_float64(uv[s0:e], ring_ends)
        m = len(local) // 3
        if m == 0:
            stats[int(poly_item[pi])]["polygons not triangulable"] += 1
            continue
        cut_local.append(local)
        cut_offset.append(s0)
        cut_poly.append(pi)
        cut_count.append(m)
    if cut_local:
        counts = np.array(cut_count, np.int64)
        faces_list.append(np.concatenate(cut_local).reshape(-1, 3).astype(np.int64)
                          + np.repeat(np.array(cut_offset, np.int64), counts)[:, None])
        poly_list.append(np.repeat(np.array(cut_poly, np.int64), counts))
    faces = np.concatenate(faces_list)
    face_poly = np.concatenate(poly_list)
    order = np.argsort(face_poly, kind="stable")  # faces grouped by item, in polygon order
    faces = faces[order]
    face_poly = face_poly[order]
    face_item = poly_item[face_poly]
    labels = np.asarray(poly_labels, np.int16)[face_poly]
    v0 = Q[faces[:, 0]]
    cr = np.cross(Q[faces[:, 1]] - v0, Q[faces[:, 2]] - v0)
    flip = np.einsum("ij,ij->i", cr, poly_normal[face_poly]) < 0
    if flip.any():
        faces[flip] = faces[flip][:, ::-1]
        cr[flip] = -cr[flip]
    unl = labels < 0
    if unl.any():
        labels[unl] = _labels_from_normals(Q, faces[unl], cr[unl], face_item[unl], n_items, unlabeled)
        key = "faces labelled from normals" if unlabeled == "normals" else "faces without surface → other"
        _add(stats, face_item, unl, key)
    vcount = np.bincount(np.repeat(ring_item, lengths), minlength=n_items)
    fcount = np.bincount(face_item, minlength=n_items)
    vstart = np.concatenate([[0], np.cumsum(vcount)])
    fstart = np.concatenate([[0], np.cumsum(fcount)])
    return MeshBatch(Q, faces, labels.astype(np.uint8), face_item, off, vstart, fstart, stats)


def _add(stats, item_of, values, key):
    """Add per-element counts (bool or int array aligned with item_of) to each item's stats."""
    if not values.any():
        return
    per_item = np.bincount(item_of, values, len(stats))
    for i in np.flatnonzero(per_item):
        stats[int(i)][key] += int(per_item[i])


def _empty_batch(n_items, offsets, stats):
    off = np.zeros((n_items, 3)) if offsets is None else np.asarray(offsets, np.float64).reshape(n_items, 3)
    z = np.zeros(n_items + 1, np.int64)
    return MeshBatch(np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros(0, np.uint8),
                     np.zeros(0, np.int64), off, z, z, stats)


def _labels_from_normals(Q, faces, cr, item, n_items, mode):
    if mode != "normals":
        return SURFACE_INDEX["other"]
    v0 = Q[faces[:, 0]]
    volume = np.bincount(item, np.einsum("ij,ij->i", v0, cr), n_items)  # 6 x signed volume per item
    length = np.linalg.norm(cr, axis=1)
    nz = np.divide(cr[:, 2], length, out=np.zeros(len(cr)), where=length > 0)
    nz[volume[item] < 0] *= -1
    out = np.full(len(faces), SURFACE_INDEX["wall"], np.int16)
    out[nz >= WALL_NZ] = SURFACE_INDEX["roof"]
    out[nz <= -WALL_NZ] = SURFACE_INDEX["ground"]
    return out


def _dedupe(Q, lengths):
    """Drop consecutive duplicates and closing points. Returns (Q, lengths, n unclosed rings)."""
    n_rings = len(lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    ends = starts + lengths
    nonempty = lengths > 0
    unclosed = np.zeros(n_rings, bool)
    unclosed[nonempty] = np.any(Q[starts[nonempty]] != Q[ends[nonempty] - 1], axis=1) & (lengths[nonempty] > 1)
    d = np.einsum("ij,ij->i", np.diff(Q, axis=0), np.diff(Q, axis=0)) if len(Q) > 1 else np.zeros(0)
    keep = np.ones(len(Q), bool)
    keep[1:] = d > DUP_TOL2
    keep[starts[nonempty]] = True
    ring_id = np.repeat(np.arange(n_rings), lengths)
    Q = Q[keep]
    lengths = np.bincount(ring_id[keep], minlength=n_rings)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    last = starts + lengths - 1
    multi = lengths > 1
    diff = Q[last[multi]] - Q[starts[multi]]
    closing = np.zeros(n_rings, bool)
    closing[multi] = np.einsum("ij,ij->i", diff, diff) <= DUP_TOL2
    if closing.any():
        keep = np.ones(len(Q), bool)
        keep[last[closing]] = False
        Q = Q[keep]
        lengths = lengths - closing
    return Q, lengths, unclosed


def _drop_collinear(Q, lengths):
    """One pass dropping points on the chord of their neighbours (and spikes)."""
    if len(Q) == 0:
        return Q, lengths, np.zeros(len(lengths), np.int64)
    n_rings = len(lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    ends = starts + lengths
    idx = np.arange(len(Q))
    prev = idx - 1
    nxt = idx + 1
    ne = lengths > 0
    prev[starts[ne]] = ends[ne] - 1
    nxt[ends[ne] - 1] = starts[ne]
    a = Q[prev]
    c = Q[nxt]
    chord = c - a
    cross = np.cross(Q - a, chord)
    chord_len = np.linalg.norm(chord, axis=1)
    dist = np.linalg.norm(cross, axis=1)
    drop = dist <= COLLINEAR_TOL * np.maximum(chord_len, 1e-12)
    # rings of 3 points stay as they are (they are degenerate or not, decided by area)
    ring_id = np.repeat(np.arange(n_rings), lengths)
    drop &= lengths[ring_id] > 3
    if not drop.any():
        return Q, lengths, np.zeros(n_rings, np.int64)
    keep = ~drop
    return Q[keep], np.bincount(ring_id[keep], minlength=n_rings), np.bincount(ring_id[drop], minlength=n_rings)
