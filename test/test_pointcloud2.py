"""PointCloud2 ⇄ numpy: round trips over random layouts (hypothesis), agreement with
sensor_msgs.point_cloud2.read_points, and 10,000 malformed messages raising only MessageFormatError."""

import copy


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pc2_ros = pytest.importorskip("sensor_msgs.point_cloud2")
from sensor_msgs.msg import PointCloud2, PointField  # noqa: E402

from deep_perception.ros import MessageFormatError  # noqa: E402
from deep_perception.ros import pointcloud2 as pc2  # noqa: E402

TYPES = ["i1", "u1", "i2", "u2", "i4", "u4", "f4", "f8"]


@st.composite
def clouds(draw):
    """A random structured cloud: x/y/z plus extra fields of any type/count, padding, byte order, shape."""
    n_extra = draw(st.integers(0, 4))
    xyz_type = draw(st.sampled_from(["f4", "f8"]))
    order = draw(st.sampled_from(["<", ">"]))
    fields = [("x", xyz_type, 1), ("y", xyz_type, 1), ("z", xyz_type, 1)]
    for i in range(n_extra):
        fields.append((f"f{i}", draw(st.sampled_from(TYPES)), draw(st.integers(1, 3))))
    draw(st.randoms()).shuffle(fields)
    names, formats, offsets, off = [], [], [], 0
    for name, t, count in fields:
        dt = np.dtype(order + t)
        off += draw(st.integers(0, 3))  # arbitrary gaps, unaligned on purpose
        names.append(name)
        formats.append(dt if count == 1 else (dt, (count,)))
        offsets.append(off)
        off += dt.itemsize * count
    itemsize = off + draw(st.integers(0, 8))
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})
    height = draw(st.integers(1, 4))
    width = draw(st.integers(1, 30))
    raw = draw(st.binary(min_size=itemsize * height * width, max_size=itemsize * height * width))
    arr = np.frombuffer(raw, dtype=dtype).copy()
    arr = arr.reshape(height, width) if height > 1 else arr
    return arr


@settings(max_examples=150, deadline=None)
@given(clouds())
def test_round_trip_is_exact(arr):
    msg = pc2.from_array(arr)
    back = pc2.to_array(msg)
    assert back.shape == arr.shape
    assert back.dtype == arr.dtype
    assert back.tobytes() == np.ascontiguousarray(arr).tobytes()
    assert bool(msg.is_bigendian) == (arr.dtype["x"].byteorder == ">")


@settings(max_examples=100, deadline=None)
@given(clouds())
def test_xyz_matches_read_points(arr):
    msg = pc2.from_array(arr)
    pts, idx = pc2.xyz(msg, remove_nans=False)
    # read_points yields the requested fields in byte-offset order, not in the order asked for.
    by_offset = sorted("xyz", key=lambda c: arr.dtype.fields[c][1])
    raw = np.array(list(pc2_ros.read_points(msg, field_names=("x", "y", "z"))), dtype=np.float64).reshape(-1, 3)
    ref = raw[:, [by_offset.index(c) for c in "xyz"]]
    np.testing.assert_array_equal(pts, ref.astype(np.float32))
    np.testing.assert_array_equal(idx, np.arange(arr.size))
    kept, kidx = pc2.xyz(msg)
    finite = np.isfinite(ref.astype(np.float32)).all(axis=1)
    np.testing.assert_array_equal(kidx, np.flatnonzero(finite))
    np.testing.assert_array_equal(kept, ref.astype(np.float32)[finite])


def test_row_step_padding_and_organised_view():
    dt = pc2.structured_dtype([("x", "f4"), ("y", "f4"), ("z", "f4"), ("intensity", "f4")])
    arr = np.zeros((3, 4), dt)
    arr["x"] = np.arange(12).reshape(3, 4)
    msg = pc2.from_array(arr)
    pad = 8
    rows = [msg.data[r * msg.row_step:(r + 1) * msg.row_step] + b"\xee" * pad for r in range(3)]
    msg.data, msg.row_step = b"".join(rows), msg.row_step + pad
    view = pc2.to_array(msg)
    assert view.shape == (3, 4)
    np.testing.assert_array_equal(view["x"], arr["x"])
    pts, idx = pc2.xyz(msg)
    np.testing.assert_array_equal(pts[:, 0], np.arange(12))


def test_to_array_is_zero_copy():
    arr = np.zeros(100, pc2.structured_dtype([("x", "f4"), ("y", "f4"), ("z", "f4")]))
    msg = pc2.from_array(arr)
    view = pc2.to_array(msg)
    assert not view.flags.writeable
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))


def test_nans_and_infs_removed_with_indices():
    arr = np.zeros((2, 3), pc2.structured_dtype([("x", "f4"), ("y", "f4"), ("z", "f4")]))
    arr["x"] = [[0, np.nan, 2], [3, 4, np.inf]]
    arr["y"][1, 1] = np.float32(3e38)  # finite but the x+y+z shortcut overflows: must be kept
    arr["z"][1, 1] = np.float32(3e38)
    pts, idx = pc2.xyz(pc2.from_array(arr))
    np.testing.assert_array_equal(idx, [0, 2, 3, 4])
    assert pts.dtype == np.float32 and pts.flags.c_contiguous


def test_with_fields_and_rgb():
    arr = np.zeros(5, pc2.structured_dtype([("x", "f4"), ("y", "f4"), ("z", "f4"), ("ring", "u2")]))
    arr["ring"] = np.arange(5)
    colours = np.array([[255, 0, 0]] * 5, np.uint8)
    out = pc2.with_fields(arr, [("label", np.uint8, 3), ("score", np.float32, 0.5), ("rgb", np.float32, pc2.pack_rgb(colours))])
    msg = pc2.from_array(out)
    back = pc2.to_array(msg)
    np.testing.assert_array_equal(back["ring"], arr["ring"])
    np.testing.assert_array_equal(back["label"], 3)
    np.testing.assert_array_equal(pc2.unpack_rgb(back["rgb"]), colours)
    assert msg.point_step % 4 == 0


def _valid_message(rng):
    dt = pc2.structured_dtype([("x", "f4"), ("y", "f4"), ("z", "f4"), ("intensity", "f4"), ("ring", "u2")])
    h, w = int(rng.integers(1, 4)), int(rng.integers(1, 20))
    arr = np.zeros((h, w) if h > 1 else (w,), dt)
    return pc2.from_array(arr)


def _mutate(msg, rng):
    """One random corruption of a valid message (some mutations may leave it valid)."""
    m = copy.deepcopy(msg)
    k = int(rng.integers(0, 12))
    if k == 0:
        m.data = m.data[: int(rng.integers(0, max(1, len(m.data))))]
    elif k == 1:
        m.data = m.data + bytes(int(rng.integers(1, 64)))
    elif k == 2:
        m.fields[int(rng.integers(len(m.fields)))].datatype = int(rng.choice([0, 9, 42, 255]))
    elif k == 3:
        m.fields[int(rng.integers(len(m.fields)))].offset = int(rng.integers(-8, 64))
    elif k == 4:
        m.fields[int(rng.integers(len(m.fields)))].count = int(rng.integers(-2, 20))
    elif k == 5:
        m.point_step = int(rng.integers(-4, 40))
    elif k == 6:
        m.row_step = int(rng.integers(-4, 400))
    elif k == 7:
        m.width, m.height = int(rng.integers(-2, 50)), int(rng.integers(-2, 5))
    elif k == 8:
        m.fields = [f for f in m.fields if f.name != rng.choice(["x", "y", "z"])]
    elif k == 9:
        m.fields = []
    elif k == 10:
        m.fields.append(PointField(name=m.fields[0].name, offset=0, datatype=7, count=1))
    else:
        m.data = list(rng.integers(-5, 300, size=len(m.data)))
    return m


def test_ten_thousand_malformed_messages_raise_only_the_documented_error():
    rng = np.random.default_rng(7)
    base = [_valid_message(rng) for _ in range(20)]
    rejected = 0
    for i in range(10_000):
        m = _mutate(base[i % len(base)], rng)
        try:
            arr = pc2.to_array(m)
            pc2.xyz(arr)
        except MessageFormatError:
            rejected += 1
    assert rejected > 8_000  # nearly every mutation is invalid; the rest decoded consistently


def test_from_array_rejects_unstructured():
    with pytest.raises(MessageFormatError):
        pc2.from_array(np.zeros((4, 3), np.float32))


def test_empty_cloud():
    msg = PointCloud2()
    msg.fields = [PointField("x", 0, 7, 1), PointField("y", 4, 7, 1), PointField("z", 8, 7, 1)]
    msg.point_step = 12
    pts, idx = pc2.xyz(msg)
    assert pts.shape == (0, 3) and idx.shape == (0,)
