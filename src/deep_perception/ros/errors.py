"""The one exception type malformed ROS messages raise (nodes count and log it, then carry on)."""


class MessageFormatError(ValueError):
    """A message violates its own layout (sizes, steps, fields, encodings); the text says how."""
