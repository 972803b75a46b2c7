"""The only room that knows ROS: message ⇄ numpy conversion and node plumbing."""

from deep_perception.ros.errors import MessageFormatError  # noqa: F401
