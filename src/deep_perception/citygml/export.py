"""Mesh and point-cloud files: OBJ (one group per semantic class), PLY meshes, labelled PLY clouds.

Coordinates are written absolute (offset added back, float64 / 3 decimals) so the files sit in their
CRS in CloudCompare and MeshLab. Every write is atomic.
"""

import numpy as np

from deep_perception.fileio import atomic_open
from deep_perception.vocab import SURFACE_CLASSES, SURFACE_COLOURS


def write_obj(mesh, path):
    """Wavefront OBJ with ``g <class>`` groups (roof, wall, ...); faces are 1-based."""
    v = mesh.vertices + mesh.offset
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(f"# building {mesh.building_id} crs {mesh.crs}\n")
        f.write("".join(f"v {x:.3f} {y:.3f} {z:.3f}\n" for x, y, z in v.tolist()))
        for cls in np.unique(mesh.face_labels).tolist():
            f.write(f"g {SURFACE_CLASSES[cls]}\n")
            faces = mesh.faces[mesh.face_labels == cls] + 1
            f.write("".join(f"f {a} {b} {c}\n" for a, b, c in faces.tolist()))


def _ply_header(kind_lines):
    return ("ply\nformat binary_little_endian 1.0\n" + "".join(kind_lines) + "end_header\n").encode("ascii")


def write_ply_mesh(mesh, path):
    """Binary PLY mesh; faces carry a ``label`` (uchar) and their class colour."""
    v = (mesh.vertices + mesh.offset).astype("<f8")
    nf = len(mesh.faces)
    header = _ply_header([
        f"comment building {mesh.building_id} crs {mesh.crs}\n",
        f"element vertex {len(v)}\n", "property double x\n", "property double y\n", "property double z\n",
        f"element face {nf}\n", "property list uchar int vertex_indices\n", "property uchar label\n",
        "property uchar red\n", "property uchar green\n", "property uchar blue\n"])
    face_dtype = np.dtype([("n", "u1"), ("idx", "<i4", 3), ("label", "u1"), ("rgb", "u1", 3)])
    faces = np.zeros(nf, face_dtype)
    faces["n"] = 3
    faces["idx"] = mesh.faces
    faces["label"] = mesh.face_labels
    faces["rgb"] = np.asarray(SURFACE_COLOURS, np.uint8)[mesh.face_labels]
    with atomic_open(path, "wb") as f:
        f.write(header)
        f.write(v.tobytes())
        f.write(faces.tobytes())


def write_ply_cloud(points, normals, labels, path, offset=(0.0, 0.0, 0.0), comment=""):
    """Binary PLY point cloud: x y z (double, absolute), nx ny nz, label (uchar), red green blue."""
    n = len(points)
    dtype = np.dtype([("xyz", "<f8", 3), ("nxyz", "<f4", 3), ("label", "u1"), ("rgb", "u1", 3)])
    arr = np.zeros(n, dtype)
    arr["xyz"] = np.asarray(points, np.float64) + np.asarray(offset, np.float64)
    arr["nxyz"] = normals
    arr["label"] = labels
    arr["rgb"] = np.asarray(SURFACE_COLOURS, np.uint8)[labels]
    header = _ply_header(
        ([f"comment {comment}\n"] if comment else []) +
        [f"comment label: {' '.join(f'{i}={c}' for i, c in enumerate(SURFACE_CLASSES))}\n",
         f"element vertex {n}\n", "property double x\n", "property double y\n", "property double z\n",
         "property float nx\n", "property float ny\n", "property float nz\n", "property uchar label\n",
         "property uchar red\n", "property uchar green\n", "property uchar blue\n"])
    with atomic_open(path, "wb") as f:
        f.write(header)
        f.write(arr.tobytes())
