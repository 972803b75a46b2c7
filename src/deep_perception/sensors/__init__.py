"""Virtual sensors: depth / shaded cameras by ray casting meshes (open3d RaycastingScene)."""

from deep_perception.sensors.camera import Camera, MeshRenderer, Rendering, box_mesh, orbit_cameras
from deep_perception.sensors.views import ViewSpec, render_views

__all__ = ["Camera", "MeshRenderer", "Rendering", "ViewSpec", "box_mesh", "orbit_cameras", "render_views"]
