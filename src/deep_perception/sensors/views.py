"""Views of one building for image datasets: oblique depth + shaded renderings from random azimuths."""

from dataclasses import dataclass

import numpy as np

from deep_perception.sensors.camera import MeshRenderer, orbit_cameras


@dataclass(frozen=True)
class ViewSpec:
    """How the views of an object are taken (defaults: small oblique images of a building)."""

    size: tuple = (64, 64)             # (height, width) pixels
    views: int = 4                     # per object, at evenly spread azimuths plus a random offset
    fov_deg: float = 40.0
    elevation_deg: tuple = (30.0, 65.0)  # uniform range above the horizon
    margin: float = 1.05               # bounding sphere x margin fills the view

    def to_dict(self):
        return {"size": list(self.size), "views": self.views, "fov_deg": self.fov_deg,
                "elevation_deg": list(self.elevation_deg), "margin": self.margin}


def render_views(vertices: np.ndarray, faces: np.ndarray, spec: ViewSpec, rng: np.random.Generator):
    """(depth (V,H,W) float32 metres, 0 = no hit; shaded (V,H,W) float32 in [0,1]; cameras) of one mesh."""
    renderer = MeshRenderer(vertices, faces)
    centre, radius = renderer.bounding_sphere()
    h, w = spec.size
    az0 = rng.uniform(0, 360)
    azimuths = az0 + np.arange(spec.views) * 360.0 / spec.views
    depth = np.zeros((spec.views, h, w), np.float32)
    shaded = np.zeros((spec.views, h, w), np.float32)
    cams = []
    for i, az in enumerate(azimuths):
        elevation = rng.uniform(*spec.elevation_deg)
        cam = orbit_cameras(centre, radius, [az], elevation, w, h, spec.fov_deg, spec.margin)[0]
        out = renderer.render(cam)
        depth[i], shaded[i] = out.depth, out.shaded
        cams.append(cam)
    return depth, shaded, cams
