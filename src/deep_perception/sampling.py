"""Mesh → labelled point clouds: area-weighted (exactly N, reproducible by seed) and Poisson disk.

``sample_points(mesh, n, seed)`` draws exactly ``n`` points, each on a triangle chosen with
probability proportional to its area (stratified: the n uniform draws are jittered strata of the
cumulative area, so every triangle gets its expected share within one point), uniformly inside it.
Point i takes stratum (i * m) mod n with m ~ n/golden ratio, so any prefix of the points is itself
spread over the whole surface (trainers may keep the first k points).
``sample_batch`` does the same for all buildings of a ``MeshBatch`` with one generator per batch.
Points come back float32 relative to ``mesh.offset`` with the triangle's unit normal and label.
The same (mesh, n, seed) always gives the same bytes.

``method="poisson"`` runs open3d's sample elimination on 5n of those area-weighted points (labels
and normals carried over), which spreads the points evenly (blue noise).
"""

import numpy as np

METHODS = ("uniform", "poisson")


class SamplingError(ValueError):
    """The mesh cannot be sampled (no triangle with area)."""


def _rng(seed):
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.Generator(np.random.PCG64(seed))


def sample_points(mesh, n, seed=0, method="uniform"):
    """Sample ``n`` points: returns (points float32 (n,3), normals float32 (n,3), labels uint8 (n,)).

    ``mesh`` needs ``vertices`` (V,3), ``faces`` (F,3) and ``face_labels`` (F,).
    ``seed``: int, sequence of ints or np.random.Generator.
    """
    if method == "uniform":
        if len(mesh.faces) == 0:
            raise SamplingError("mesh has no triangles")
        pts, nrm, lab, ok = sample_arrays(mesh.vertices, mesh.faces, mesh.face_labels,
                                          np.array([0, len(mesh.faces)]), n, _rng(seed))
        if not ok[0]:
            raise SamplingError("mesh has no triangle with area")
        return pts[0], nrm[0], lab[0]
    if method == "poisson":
        return _sample_poisson(mesh, n, _rng(seed))
    raise ValueError(f"unknown sampling method {method!r}; choose from {METHODS}")


def sample_batch(batch, n, seed=0):
    """Area-weighted sampling of every item of a ``citygml.geometry.MeshBatch`` in one pass.

    Returns points (B,n,3) float32 (relative to each item's offset), normals (B,n,3) float32,
    labels (B,n) uint8 and ok (B,) bool (False: item without area, its rows are zeros).
    """
    return sample_arrays(batch.vertices, batch.faces, batch.face_labels, batch.fstart, n, _rng(seed))


def _zeros(n_items, n):
    return (np.zeros((n_items, n, 3), np.float32), np.zeros((n_items, n, 3), np.float32),
            np.zeros((n_items, n), np.uint8))


def _stride(n):
    """A multiplier coprime with n near n/golden ratio: i*m mod n visits strata evenly spread."""
    m = max(1, int(round(n * 0.6180339887498949)))
    while np.gcd(m, n) != 1:
        m += 1
    return m


_BLOCK_POINTS = 1 << 16


def sample_arrays(vertices, faces, face_labels, fstart, n, rng):
    """Core of the area sampler over items whose faces are ``faces[fstart[i]:fstart[i+1]]``."""
    n_items = len(fstart) - 1
    if len(faces) == 0 or n == 0:
        return _zeros(n_items, n) + (np.zeros(n_items, bool),)
    v = np.asarray(vertices, dtype=np.float64)
    a = v.take(faces[:, 0], axis=0)
    ab = v.take(faces[:, 1], axis=0) - a
    ac = v.take(faces[:, 2], axis=0) - a
    cr = np.cross(ab, ac)
    area2 = np.sqrt(np.einsum("ij,ij->i", cr, cr))
    cum = np.cumsum(area2)
    ends = np.asarray(fstart[1:]) - 1
    starts = np.asarray(fstart[:-1])
    has_faces = ends >= starts
    total_end = np.where(has_faces, cum[np.maximum(ends, 0)], 0.0)
    base = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)
    base = np.where(has_faces, base, 0.0)
    totals = total_end - base
    ok = has_faces & (totals > 0)
    items = np.flatnonzero(ok)
    if len(items) == 0:
        return _zeros(n_items, n) + (ok,)
    # Corners component-major (9, F): the per-point arithmetic runs on contiguous 1-D rows, which
    # numpy vectorises far better than (N,3) rows. float32 relative to the item's offset keeps 0.1 mm
    # or better for buildings up to a few km.
    corners = np.empty((9, len(faces)), np.float32)
    corners[0:3] = a.T
    corners[3:6] = ab.T
    corners[6:9] = ac.T
    unit32 = (cr / np.maximum(area2, 1e-300)[:, None]).astype(np.float32)
    # Cumulative area rescaled so that item i spans [i*(n+1), i*(n+1)+n]: then the strata of item i
    # are simply i*(n+1) + j + jitter, with no per-point scaling.
    item_of_face = np.repeat(np.arange(n_items), np.diff(fstart))
    scale = np.divide(n, totals, out=np.zeros(n_items), where=totals > 0)
    cum_n = item_of_face * (n + 1.0) + (cum - base[item_of_face]) * scale[item_of_face]
    last = ends[has_faces]
    cum_n[last] = np.flatnonzero(has_faces) * (n + 1.0) + n  # exact item ends
    k = len(items)
    order = (np.arange(n) * _stride(n)) % n  # point j of an item takes stratum order[j]
    p = np.empty((k * n, 3), np.float32)
    normals = np.empty((k * n, 3), np.float32)
    labels = np.empty(k * n, np.uint8)
    face_labels = np.asarray(face_labels, np.uint8)
    arange_n = np.arange(n, dtype=np.float64)
    block = max(1, _BLOCK_POINTS // n)  # items per block: the per-point arrays stay in cache
    for b0 in range(0, k, block):
        b1 = min(k, b0 + block)
        sl = slice(b0 * n, b1 * n)
        # drawn per block: small temporaries are reused by malloc; big ones cost page faults
        u = rng.random((3, (b1 - b0) * n), dtype=np.float32)
        # Strata in increasing order: the face of each is found by locating the (few) face ends
        # among the (many) sorted strata and repeating face indices, not by a search per point.
        strata = (items[b0:b1, None] * (n + 1.0) + arange_n).ravel()
        strata += u[0]
        f0, f1 = fstart[items[b0]], fstart[items[b1 - 1] + 1]
        per_face = np.diff(np.searchsorted(strata, cum_n[f0:f1], side="left"), prepend=0)
        tri = np.repeat(np.arange(f0, f1), per_face).reshape(b1 - b0, n).take(order, axis=1).ravel()
        r1 = np.sqrt(u[1])
        w2 = r1 * u[2]
        r1 -= w2  # weight of b - a
        g = corners.take(tri, axis=1)
        g[3:6] *= r1
        g[6:9] *= w2
        g[3:6] += g[6:9]
        np.add(g[0:3], g[3:6], out=p[sl].T)  # the last sum writes the (m,3) rows directly
        unit32.take(tri, axis=0, out=normals[sl])
        face_labels.take(tri, out=labels[sl])
    if k == n_items:
        return p.reshape(k, n, 3), normals.reshape(k, n, 3), labels.reshape(k, n), ok
    pts, nrm, lab = _zeros(n_items, n)
    pts[items] = p.reshape(k, n, 3)
    nrm[items] = normals.reshape(k, n, 3)
    lab[items] = labels.reshape(k, n)
    return pts, nrm, lab, ok


def _sample_poisson(mesh, n, rng, init_factor=5):
    import open3d as o3d
    from scipy.spatial import cKDTree

    m = n * init_factor
    pts, nrm, lab, ok = sample_arrays(mesh.vertices, mesh.faces, mesh.face_labels,
                                      np.array([0, len(mesh.faces)]), m, rng)
    if not ok[0]:
        raise SamplingError("mesh has no triangle with area")
    pts, nrm, lab = pts[0], nrm[0], lab[0]
    o3_mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(mesh.vertices, np.float64)),
                                        o3d.utility.Vector3iVector(np.asarray(mesh.faces, np.int32)))
    pcl = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts.astype(np.float64)))
    pcl.normals = o3d.utility.Vector3dVector(nrm.astype(np.float64))
    out = o3_mesh.sample_points_poisson_disk(number_of_points=n, init_factor=init_factor, pcl=pcl)
    kept = np.asarray(out.points)
    _, idx = cKDTree(pts.astype(np.float64)).query(kept)
    if len(idx) != n:
        raise SamplingError(f"poisson sampling returned {len(idx)} points instead of {n}")
    return pts[idx], nrm[idx], lab[idx]
