"""deep_perception: point-cloud and image perception for ROS 1, with its offline data and training tools.

Only ``deep_perception.ros`` touches ROS; everything else works on numpy arrays and torch tensors.
"""

__version__ = "0.1.0"
