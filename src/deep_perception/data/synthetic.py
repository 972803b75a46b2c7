"""Synthetic labelled buildings (box + flat/shed/gable/pyramid roof) for tests, benches and smoke runs.

Not training data for the shipped models (those come from real CityGML); this only writes shards in the
real format so the data, training and inference code can be exercised without ``/work/shared``.
"""

import os

import numpy as np

from deep_perception.data.shards import write_manifest, write_shard
from deep_perception.vocab import ROOF_INDEX, SURFACE_INDEX

SYNTH_ROOFS = ("flat", "shed", "gable", "pyramid")


def _house_triangles(w, d, h, ridge, roof):
    """Triangles (T,3,3) and surface labels (T,) of a box w×d×h centred at the origin with a roof."""
    x, y = w / 2, d / 2
    c = [(-x, -y), (x, -y), (x, y), (-x, y)]
    tris, labels = [], []

    def quad(a, b, cc, dd, lab):
        tris.extend([(a, b, cc), (a, cc, dd)])
        labels.extend([lab, lab])

    g, wl, rf = SURFACE_INDEX["ground"], SURFACE_INDEX["wall"], SURFACE_INDEX["roof"]
    quad(*[(px, py, 0.0) for px, py in reversed(c)], g)  # ground faces down
    eave = {i: h for i in range(4)}
    if roof == "shed":
        eave = {0: h, 1: h, 2: h + ridge, 3: h + ridge}
    for i in range(4):
        (ax, ay), (bx, by) = c[i], c[(i + 1) % 4]
        quad((ax, ay, 0.0), (bx, by, 0.0), (bx, by, eave[(i + 1) % 4]), (ax, ay, eave[i]), wl)
    top = [(px, py, eave[i]) for i, (px, py) in enumerate(c)]
    if roof in ("flat", "shed"):
        quad(*top, rf)
    elif roof == "gable":
        r0, r1 = (-x, 0.0, h + ridge), (x, 0.0, h + ridge)
        quad(top[0], top[1], r1, r0, rf)
        quad(top[2], top[3], r0, r1, rf)
        for a, b, r in ((top[1], top[2], r1), (top[3], top[0], r0)):  # gable-end wall triangles
            tris.append((a, b, r))
            labels.append(wl)
    elif roof == "pyramid":
        apex = (0.0, 0.0, h + ridge)
        for i in range(4):
            tris.append((top[i], top[(i + 1) % 4], apex))
            labels.append(rf)
    else:
        raise ValueError(f"unknown synthetic roof {roof!r}")
    return np.asarray(tris, dtype=np.float64), np.asarray(labels, dtype=np.uint8)


def sample_house(rng, n, roof=None):
    """One random house: (points (n,3) f32, normals (n,3) f32, labels (n,) u8, roof class index)."""
    roof = roof or SYNTH_ROOFS[rng.integers(len(SYNTH_ROOFS))]
    w, d = rng.uniform(6, 20), rng.uniform(6, 14)
    h, ridge = rng.uniform(3, 12), rng.uniform(2, 6)
    tris, labels = _house_triangles(w, d, h, ridge, roof)
    e1, e2 = tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]
    cross = np.cross(e1, e2)
    area = 0.5 * np.linalg.norm(cross, axis=1)
    normals = cross / np.maximum(2 * area[:, None], 1e-12)
    t = rng.choice(len(tris), n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    pts = tris[t, 0] + u[:, None] * e1[t] + v[:, None] * e2[t]
    theta = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    return ((pts @ rot.T).astype(np.float32), (normals[t] @ rot.T).astype(np.float32), labels[t],
            ROOF_INDEX[roof])


def write_synthetic_dataset(directory, cities=("alpha", "beta", "gamma"), buildings_per_file=16,
                            files_per_city=2, points=512, seed=0):
    """Write one shard per file and a manifest; returns the manifest path."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    files, shard_entries = [], []
    for city in cities:
        for j in range(files_per_city):
            fi = len(files)
            files.append({"path": f"{city}/tile_{j}.gml", "city": city, "sha256": "synthetic", "crs": "local"})
            houses = [sample_house(rng, points) for _ in range(buildings_per_file)]
            arrays = {
                "points": np.stack([h[0] for h in houses]),
                "normals": np.stack([h[1] for h in houses]),
                "labels": np.stack([h[2] for h in houses]),
                "roof_class": np.array([h[3] for h in houses], dtype=np.int16),
                "offsets": rng.uniform(0, 1000, (buildings_per_file, 3)),
                "building_ids": np.array([f"{city}_{j}_{k}" for k in range(buildings_per_file)]),
                "file_index": np.full(buildings_per_file, fi, dtype=np.int32),
            }
            name = f"shard_{fi:04d}.npz"
            write_shard(os.path.join(directory, name), arrays)
            shard_entries.append({"file": name, "count": buildings_per_file})
    write_manifest(directory, {"files": files, "shards": shard_entries, "points_per_building": points,
                               "synthetic": True})
    return os.path.join(directory, "manifest.json")
