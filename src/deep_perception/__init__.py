"""deep_perception: point-cloud and image perception for ROS 1, with its offline data and training tools.

Only ``deep_perception.ros`` touches ROS; everything else works on numpy arrays and torch tensors.
"""

__version__ = "0.1.0"

# Let catkin's generated message package (devel/.../deep_perception/msg) join this package even when
# src/ is first on sys.path (pytest's pythonpath), so `deep_perception.msg` always resolves.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
