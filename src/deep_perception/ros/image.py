"""sensor_msgs/Image ⇄ numpy without cv_bridge (Debian's is built for numpy 1.x).

``to_array`` returns ``(height, width)`` for one channel, ``(height, width, channels)`` otherwise, in the
message's channel order (rgb8 stays RGB, bgr8 stays BGR), as a read-only view of the data when the
byte order is native; row padding (``step``) is honoured. Malformed images raise MessageFormatError.
"""

import sys

import numpy as np
from sensor_msgs.msg import Image

from deep_perception.ros.errors import MessageFormatError

# encoding -> (numpy type, channels)
ENCODINGS = {
    "mono8": ("u1", 1), "mono16": ("u2", 1),
    "8UC1": ("u1", 1), "8UC3": ("u1", 3), "8UC4": ("u1", 4),
    "8SC1": ("i1", 1), "16UC1": ("u2", 1), "16SC1": ("i2", 1),
    "32SC1": ("i4", 1), "32FC1": ("f4", 1), "64FC1": ("f8", 1),
    "rgb8": ("u1", 3), "bgr8": ("u1", 3), "rgba8": ("u1", 4), "bgra8": ("u1", 4),
    "rgb16": ("u2", 3), "bgr16": ("u2", 3),
}
_NATIVE_BIG = sys.byteorder == "big"


def to_array(msg):
    """Image → numpy array (see module docstring). Validates sizes, step and encoding."""
    enc = msg.encoding
    if enc not in ENCODINGS:
        raise MessageFormatError(f"unsupported image encoding {enc!r}; supported: {sorted(ENCODINGS)}")
    type_char, channels = ENCODINGS[enc]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height < 0 or width < 0:
        raise MessageFormatError(f"negative image size {height}x{width}")
    base = np.dtype(type_char)
    big = bool(msg.is_bigendian)
    dtype = base.newbyteorder(">" if big else "<") if base.itemsize > 1 else base
    row_bytes = width * channels * base.itemsize
    if height * width == 0:
        raise MessageFormatError(f"empty image {height}x{width}")
    if step < row_bytes:
        raise MessageFormatError(f"step {step} < width*channels*bytes = {row_bytes} for {enc}")
    data = msg.data
    if not isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = np.asarray(data, dtype=np.uint8).tobytes()
        except (TypeError, ValueError, OverflowError) as exc:
            raise MessageFormatError(f"data is not a byte sequence: {exc}") from exc
    if len(data) != step * height:
        raise MessageFormatError(f"data has {len(data)} bytes, expected step*height = {step}*{height} = {step * height}")
    if step % base.itemsize:
        raise MessageFormatError(f"step {step} is not a multiple of the {base.itemsize}-byte element size")
    shape = (height, width, channels)
    arr = np.ndarray(shape, dtype=dtype, buffer=data,
                     strides=(step, channels * base.itemsize, base.itemsize))
    if base.itemsize > 1 and big != _NATIVE_BIG:
        arr = arr.astype(base.newbyteorder("="))
    return arr[:, :, 0] if channels == 1 else arr


def from_array(array, encoding, header=None):
    """numpy array → Image with the given encoding (dtype and channel count must match it)."""
    if encoding not in ENCODINGS:
        raise MessageFormatError(f"unsupported image encoding {encoding!r}")
    type_char, channels = ENCODINGS[encoding]
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] != channels:
        raise MessageFormatError(f"{encoding} needs {channels} channel(s), got array of shape {array.shape}")
    if arr.dtype.kind != np.dtype(type_char).kind or arr.dtype.itemsize != np.dtype(type_char).itemsize:
        raise MessageFormatError(f"{encoding} needs dtype {np.dtype(type_char)}, got {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.dtype(type_char).newbyteorder("="))
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = arr.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = int(_NATIVE_BIG and arr.dtype.itemsize > 1)
    msg.step = arr.shape[1] * channels * arr.dtype.itemsize
    msg.data = arr.tobytes()
    return msg
