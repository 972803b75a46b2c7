"""sensor_msgs/Image ⇄ numpy for every supported encoding, step padding, byte order, malformed fuzz."""

import copy

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg")
from deep_perception.ros import MessageFormatError  # noqa: E402
from deep_perception.ros import image  # noqa: E402

CASES = [("mono8", np.uint8, 1), ("mono16", np.uint16, 1), ("8UC1", np.uint8, 1), ("8UC3", np.uint8, 3),
         ("8UC4", np.uint8, 4), ("16UC1", np.uint16, 1), ("32FC1", np.float32, 1), ("rgb8", np.uint8, 3),
         ("bgr8", np.uint8, 3), ("rgba8", np.uint8, 4), ("bgra8", np.uint8, 4)]


def _random(rng, dtype, shape):
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)


@pytest.mark.parametrize("encoding,dtype,channels", CASES)
@pytest.mark.parametrize("pad", [0, 3, 8])
def test_round_trip_with_step_padding(encoding, dtype, channels, pad, rng):
    shape = (5, 7) if channels == 1 else (5, 7, channels)
    arr = _random(rng, dtype, shape)
    msg = image.from_array(arr, encoding)
    if pad:
        itemsize = np.dtype(dtype).itemsize
        pad = pad * itemsize
        rows = [msg.data[r * msg.step:(r + 1) * msg.step] + b"\x7f" * pad for r in range(msg.height)]
        msg.data, msg.step = b"".join(rows), msg.step + pad
    out = image.to_array(msg)
    assert out.shape == shape
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("encoding,dtype", [("16UC1", np.uint16), ("32FC1", np.float32), ("mono16", np.uint16)])
def test_big_endian_images(encoding, dtype, rng):
    arr = _random(rng, dtype, (4, 6))
    msg = image.from_array(arr, encoding)
    msg.data = arr.astype(np.dtype(dtype).newbyteorder(">")).tobytes()
    msg.is_bigendian = 1
    out = image.to_array(msg)
    np.testing.assert_array_equal(out, arr)
    assert out.dtype.isnative


def test_view_is_zero_copy_for_native_order(rng):
    arr = _random(rng, np.uint8, (4, 4, 3))
    msg = image.from_array(arr, "rgb8")
    out = image.to_array(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


def test_from_array_checks_encoding_against_array():
    with pytest.raises(MessageFormatError):
        image.from_array(np.zeros((2, 2), np.float32), "rgb8")
    with pytest.raises(MessageFormatError):
        image.from_array(np.zeros((2, 2, 3), np.uint16), "rgb8")


def test_malformed_images_raise_only_message_format_error():
    rng = np.random.default_rng(3)
    base = [image.from_array(_random(rng, d, (4, 5) if c == 1 else (4, 5, c)), e) for e, d, c in CASES]
    rejected = 0
    for i in range(10_000):
        m = copy.deepcopy(base[i % len(base)])
        k = i % 7
        if k == 0:
            m.data = m.data[: int(rng.integers(0, len(m.data)))]
        elif k == 1:
            m.step = int(rng.integers(-3, m.step))
        elif k == 2:
            m.encoding = str(rng.choice(["", "yuv422", "RGB8", "32FC3", "bayer_rggb8"]))
        elif k == 3:
            m.width, m.height = int(rng.integers(-2, 9)), int(rng.integers(-2, 9))
        elif k == 4:
            m.data = m.data + b"\x00" * int(rng.integers(1, 9))
        elif k == 5:
            m.height = 0
        else:
            m.step = m.step + 1 if "16" in m.encoding or "32" in m.encoding else m.step - 1
        try:
            image.to_array(m)
        except MessageFormatError:
            rejected += 1
    assert rejected > 9_000
