"""CityGML → meshes → labelled point clouds (streaming reader, geometry, CRS, labels, export, CLI).

Public API::

    from deep_perception.citygml import iter_buildings, building_to_mesh
    for b in iter_buildings("tile.gml.gz"):          # Building: id, roof_class, parts, ...
        mesh = building_to_mesh(b)                   # Mesh: vertices, faces, face_labels, offset, crs
"""

from deep_perception.citygml.geometry import Mesh, building_to_mesh, polygons_to_mesh
from deep_perception.citygml.reader import Building, CityGMLError, ReadStats, iter_buildings

__all__ = ["Building", "CityGMLError", "Mesh", "ReadStats", "building_to_mesh", "iter_buildings",
           "polygons_to_mesh"]
