"""Virtual sensors: depth / shaded cameras by ray casting meshes (open3d RaycastingScene)."""

from deep_perception.sensors.camera import Camera, MeshRenderer, Rendering, box_mesh, orbit_cameras

__all__ = ["Camera", "MeshRenderer", "Rendering", "box_mesh", "orbit_cameras"]
