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
    polygons = building.all_polygons() if include_parts else list(building.polygons)
    mesh = polygons_to_mesh(polygons, unlabeled=unlabeled)
    mesh.crs = building.crs
    mesh.building_id = building.id
    return mesh


def polygons_to_mesh(polygons, unlabeled="normals", offset=None):
    """Triangulate [(rings, label, lod)] (rings: exterior then holes, (n,3) float64) into a Mesh."""
    stats = collections.Counter()
    rings = [r for rs, _, _ in polygons for r in rs]
    if not rings:
        return Mesh(np.zeros((0, 3)), np.zeros((0, 3), np.int32), np.zeros(0, np.uint8),
                    np.zeros(3) if offset is None else np.asarray(offset, float), stats=stats)
    P = np.concatenate(rings)
    if offset is None:
        lo = P.min(axis=0)
        hi = P.max(axis=0)
        offset = np.floor(np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]]))
    Q = P - offset
    n_rings = len(rings)
    lengths = np.fromiter((len(r) for r in rings), np.int64, n_rings)
    ring_poly = np.repeat(np.arange(len(polygons)), [len(rs) for rs, _, _ in polygons])
    is_hole = np.ones(n_rings, bool)
    first_ring = np.concatenate([[0], np.cumsum([len(rs) for rs, _, _ in polygons])[:-1]])
    is_hole[first_ring] = False

    Q, lengths, unclosed = _dedupe(Q, lengths)
    stats["unclosed rings closed"] += int(unclosed)
    Q, lengths, removed = _drop_collinear(Q, lengths)
    if removed:
        stats["collinear points removed"] += int(removed)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    ring_id = np.repeat(np.arange(n_rings), lengths)
    # Newell normals per ring
    nxt = np.arange(len(Q)) + 1
    ends = starts + lengths
    wrap = ends[lengths > 0] - 1
    nxt[wrap] = starts[lengths > 0]
    a = Q
    b = Q[nxt] if len(Q) else Q
    nx = np.bincount(ring_id, (a[:, 1] - b[:, 1]) * (a[:, 2] + b[:, 2]), n_rings)
    ny = np.bincount(ring_id, (a[:, 2] - b[:, 2]) * (a[:, 0] + b[:, 0]), n_rings)
    nz = np.bincount(ring_id, (a[:, 0] - b[:, 0]) * (a[:, 1] + b[:, 1]), n_rings)
    normals = np.column_stack([nx, ny, nz])
    norm = np.linalg.norm(normals, axis=1)
    valid = (lengths >= 3) & (norm > 2 * AREA_TOL)

    faces_list = []
    labels_list = []
    poly_normal_list = []
    unl_list = []
    for pi, (rs, label, _) in enumerate(polygons):
        r0 = first_ring[pi]
        if not valid[r0]:
            stats["degenerate polygons skipped"] += 1
            continue
        n = normals[r0]
        axis = int(np.argmax(np.abs(n)))
        keep = [k for k in range(r0 + 1, r0 + len(rs)) if valid[k]]
        dropped = len(rs) - 1 - len(keep)
        if dropped:
            stats["degenerate holes dropped"] += dropped
        s0 = starts[r0]
        if not keep and lengths[r0] == 3:
            tri = np.array([[s0, s0 + 1, s0 + 2]], np.int64)
        else:
            idx = np.concatenate([np.arange(starts[k], starts[k] + lengths[k]) for k in [r0] + keep]) \
                if keep else np.arange(s0, s0 + lengths[r0])
            uv = np.delete(Q[idx], axis, axis=1)
            ring_ends = np.cumsum([lengths[k] for k in [r0] + keep]).astype(np.uint32)
            local = mapbox_earcut.triangulate_float64(uv, ring_ends)
            if len(local) == 0:
                stats["polygons not triangulable"] += 1
                continue
            tri = idx[local.reshape(-1, 3)]
        faces_list.append(tri)
        labels_list.append(np.full(len(tri), label, np.int16))
        poly_normal_list.append(np.broadcast_to(n, (len(tri), 3)))
    if not faces_list:
        return Mesh(np.zeros((0, 3)), np.zeros((0, 3), np.int32), np.zeros(0, np.uint8), offset, stats=stats)
    faces = np.concatenate(faces_list)
    labels = np.concatenate(labels_list)
    pn = np.concatenate(poly_normal_list)
    v0 = Q[faces[:, 0]]
    cr = np.cross(Q[faces[:, 1]] - v0, Q[faces[:, 2]] - v0)
    flip = np.einsum("ij,ij->i", cr, pn) < 0
    if flip.any():
        faces[flip] = faces[flip][:, ::-1]
        cr[flip] = -cr[flip]
    unl = labels < 0
    if unl.any():
        labels[unl] = _labels_from_normals(Q, faces[unl], cr[unl], unlabeled)
        stats["faces labelled from normals" if unlabeled == "normals" else "faces unlabelled→other"] += int(unl.sum())
    # compact the vertex array to the used vertices
    used = np.unique(faces)
    remap = np.full(len(Q), -1, np.int64)
    remap[used] = np.arange(len(used))
    return Mesh(Q[used], remap[faces].astype(np.int32), labels.astype(np.uint8), offset, stats=stats)


def _labels_from_normals(Q, faces, cr, mode):
    if mode != "normals":
        return SURFACE_INDEX["other"]
    v0 = Q[faces[:, 0]]
    volume = np.einsum("ij,ij->", v0, cr)  # 6 x signed volume of the unlabelled faces
    length = np.linalg.norm(cr, axis=1)
    nz = np.divide(cr[:, 2], length, out=np.zeros(len(cr)), where=length > 0)
    if volume < 0:
        nz = -nz
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
    unclosed = int(np.count_nonzero(
        np.any(Q[starts[nonempty]] != Q[ends[nonempty] - 1], axis=1) & (lengths[nonempty] > 1)))
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
        return Q, lengths, 0
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
        return Q, lengths, 0
    keep = ~drop
    return Q[keep], np.bincount(ring_id[keep], minlength=n_rings), int(drop.sum())
