"""Virtual depth / shaded cameras: ray casting a triangle mesh with open3d's RaycastingScene.

``MeshRenderer(vertices, faces)`` builds the scene once; ``render(camera)`` casts one ray per pixel of
a pinhole ``Camera`` and returns a ``Rendering``: z-depth in metres (0 where the ray hits nothing, the
convention of depth cameras), the surface normal, a Lambert-shaded grey image, and which triangle
each pixel sees. ``orbit_cameras`` places cameras around an object's bounding sphere at a given
elevation so the whole object is in view.
"""

from dataclasses import dataclass
from typing import List

import numpy as np


@dataclass(frozen=True)
class Camera:
    """A pinhole camera looking from ``eye`` at ``target``; ``fov_deg`` is the vertical field of view."""

    eye: tuple
    target: tuple
    up: tuple = (0.0, 0.0, 1.0)
    width: int = 64
    height: int = 64
    fov_deg: float = 40.0

    def __post_init__(self):
        if self.width < 1 or self.height < 1:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        if not 0.0 < self.fov_deg < 180.0:
            raise ValueError(f"fov_deg must be in (0, 180), got {self.fov_deg}")
        if np.allclose(self.eye, self.target):
            raise ValueError("camera eye and target coincide")

    @property
    def forward(self) -> np.ndarray:
        f = np.asarray(self.target, float) - np.asarray(self.eye, float)
        return f / np.linalg.norm(f)

    def intrinsics(self) -> np.ndarray:
        """3x3 K matrix (pixels) of this camera (square pixels)."""
        fy = 0.5 * self.height / np.tan(np.radians(self.fov_deg) / 2)
        return np.array([[fy, 0, self.width / 2], [0, fy, self.height / 2], [0, 0, 1]])

    def rays(self) -> np.ndarray:
        """(H, W, 6) float32 rays (origin, direction) through pixel centres; row 0 is the top of the
        image, column 0 its left (OpenCV convention); each direction has unit component along
        ``forward``, so the hit distance is the z-depth."""
        f = self.forward
        right = np.cross(f, np.asarray(self.up, float))
        if np.linalg.norm(right) < 1e-9:
            raise ValueError(f"camera up {self.up} is parallel to the viewing direction")
        right /= np.linalg.norm(right)
        down = np.cross(f, right)
        k = self.intrinsics()
        u = (np.arange(self.width) + 0.5 - k[0, 2]) / k[0, 0]
        v = (np.arange(self.height) + 0.5 - k[1, 2]) / k[1, 1]
        d = f + u[None, :, None] * right + v[:, None, None] * down
        origin = np.broadcast_to(np.asarray(self.eye, float), d.shape)
        return np.concatenate([origin, d], axis=-1).astype(np.float32)


@dataclass
class Rendering:
    depth: np.ndarray         # float32 (H, W), z-depth in metres along the optical axis, 0 = no hit
    normals: np.ndarray       # float32 (H, W, 3), world-frame unit normals facing the camera, 0 = no hit
    shaded: np.ndarray        # float32 (H, W) in [0, 1]: Lambert shading with a light at the camera + ambient
    primitive_ids: np.ndarray  # int64 (H, W), triangle index, -1 = no hit

    @property
    def hit(self) -> np.ndarray:
        return self.primitive_ids >= 0


class MeshRenderer:
    """Ray-casting renderer of one triangle mesh (vertices (V,3) float, faces (F,3) int)."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray):
        import open3d as o3d  # heavy import: only when rendering

        vertices = np.asarray(vertices)
        faces = np.asarray(faces)
        if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"need vertices (V,3) and faces (F,3), got {vertices.shape} and {faces.shape}")
        if len(faces) == 0:
            raise ValueError("mesh has no faces")
        if faces.min() < 0 or faces.max() >= len(vertices):
            raise ValueError(f"face indices out of range [0, {len(vertices)})")
        if not np.isfinite(vertices).all():
            raise ValueError("mesh vertices contain NaN or inf")
        self.vertices = vertices.astype(np.float32)
        self.faces = faces.astype(np.uint32)
        self._o3d = o3d
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(o3d.core.Tensor(self.vertices), o3d.core.Tensor(self.faces))

    def bounding_sphere(self):
        """(centre, radius) of the axis-aligned bounding box's circumsphere."""
        lo, hi = self.vertices.min(axis=0), self.vertices.max(axis=0)
        centre = (lo + hi) / 2
        return centre.astype(np.float64), float(np.linalg.norm(hi - lo) / 2) or 1.0

    def render(self, camera: Camera) -> Rendering:
        r = camera.rays()
        ans = self.scene.cast_rays(self._o3d.core.Tensor(r))
        t = ans["t_hit"].numpy()
        hit = np.isfinite(t)
        depth = np.where(hit, t, 0)  # rays have unit forward component: t is the z-depth
        normals = ans["primitive_normals"].numpy()
        direction = r[..., 3:] / np.linalg.norm(r[..., 3:], axis=-1, keepdims=True)
        cos = np.sum(normals * direction, axis=-1)
        normals = np.where((cos > 0)[..., None], -normals, normals)  # face the camera
        normals = np.where(hit[..., None], normals, 0).astype(np.float32)
        shaded = np.where(hit, 0.2 + 0.8 * np.abs(cos), 0).astype(np.float32)
        prim = np.where(hit, ans["primitive_ids"].numpy().astype(np.int64), -1)
        return Rendering(depth.astype(np.float32), normals, shaded, prim)


def orbit_cameras(centre, radius: float, azimuths_deg, elevation_deg: float = 45.0, width: int = 64,
                  height: int = 64, fov_deg: float = 40.0, margin: float = 1.1) -> List[Camera]:
    """Cameras on a circle around ``centre`` at ``elevation_deg`` above the horizon, each far enough
    that the sphere of ``radius`` (times ``margin``) fills the field of view."""
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    half = np.radians(fov_deg / 2)
    if width < height:  # the narrower side limits the view
        half = np.arctan(np.tan(half) * width / height)
    distance = margin * radius / np.sin(half)
    el = np.radians(elevation_deg)
    centre = np.asarray(centre, float)
    cams = []
    for az in np.radians(np.asarray(azimuths_deg, float)):
        direction = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        up = (0.0, 0.0, 1.0) if elevation_deg < 89.0 else (float(-np.cos(az)), float(-np.sin(az)), 0.0)
        cams.append(Camera(tuple(centre + distance * direction), tuple(centre), up, width, height, fov_deg))
    return cams


def box_mesh(size=(1.0, 1.0, 1.0), centre=(0.0, 0.0, 0.0)):
    """A closed axis-aligned box: (vertices (8,3) float64, faces (12,3) int32), outward winding."""
    sx, sy, sz = np.asarray(size, float) / 2
    v = np.array([[x, y, z] for z in (-sz, sz) for y in (-sy, sy) for x in (-sx, sx)]) + np.asarray(centre, float)
    f = np.array([[0, 2, 1], [1, 2, 3], [4, 5, 6], [5, 7, 6], [0, 1, 4], [1, 5, 4],
                  [2, 6, 3], [3, 6, 7], [0, 4, 2], [2, 4, 6], [1, 3, 5], [3, 7, 5]], dtype=np.int32)
    return v, f
