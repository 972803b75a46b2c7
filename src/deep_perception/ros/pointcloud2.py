"""sensor_msgs/PointCloud2 ⇄ numpy structured arrays, zero-copy where the layout allows.

``to_array`` returns a read-only view of the message's bytes with one structured field per PointField
(``count > 1`` becomes a sub-array), honouring ``point_step`` padding, ``row_step`` padding, byte order
and organised clouds: shape ``(width,)`` when ``height == 1``, else ``(height, width)``.
Every malformed message raises :class:`MessageFormatError` with the reason, nothing else.
"""

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField

from deep_perception.colours import pack_rgb, unpack_rgb  # noqa: F401  (public here too, pure numpy there)
from deep_perception.ros.errors import MessageFormatError

# PointField datatype constant -> numpy type character (size follows from it).
_DATATYPES = {
    PointField.INT8: "i1",
    PointField.UINT8: "u1",
    PointField.INT16: "i2",
    PointField.UINT16: "u2",
    PointField.INT32: "i4",
    PointField.UINT32: "u4",
    PointField.FLOAT32: "f4",
    PointField.FLOAT64: "f8",
}
_NUMPY_TO_DATATYPE = {np.dtype(v).char: k for k, v in _DATATYPES.items()}


def _as_buffer(data):
    """The message's ``data`` as a bytes-like object (rospy gives bytes; hand-built messages may give lists)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    try:
        return np.asarray(data, dtype=np.uint8).tobytes()
    except (TypeError, ValueError, OverflowError) as exc:
        raise MessageFormatError(f"data is not a byte sequence: {exc}") from exc


def fields_dtype(fields, point_step, is_bigendian):
    """The structured dtype described by a list of PointFields (validated)."""
    if not fields:
        raise MessageFormatError("cloud has no fields")
    if point_step <= 0:
        raise MessageFormatError(f"point_step must be positive, got {point_step}")
    order = ">" if is_bigendian else "<"
    names, formats, offsets, spans = [], [], [], []
    for f in fields:
        if not isinstance(f.name, str) or not f.name:
            raise MessageFormatError("field with an empty name")
        if f.name in names:
            raise MessageFormatError(f"duplicate field '{f.name}'")
        if f.datatype not in _DATATYPES:
            raise MessageFormatError(f"field '{f.name}' has unknown datatype {f.datatype}")
        if f.count < 1:
            raise MessageFormatError(f"field '{f.name}' has count {f.count} (must be >= 1)")
        base = np.dtype(order + _DATATYPES[f.datatype])
        end = f.offset + base.itemsize * f.count
        if f.offset < 0 or end > point_step:
            raise MessageFormatError(
                f"field '{f.name}' spans bytes {f.offset}..{end} outside point_step {point_step}")
        names.append(f.name)
        formats.append(base if f.count == 1 else (base, (f.count,)))
        offsets.append(f.offset)
        spans.append((f.offset, end, f.name))
    spans.sort()
    for (s0, e0, n0), (s1, _e1, n1) in zip(spans, spans[1:]):
        if s1 < e0:
            raise MessageFormatError(f"fields '{n0}' and '{n1}' overlap")
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})


def to_array(msg):
    """PointCloud2 → structured numpy array (read-only view of ``msg.data`` where possible)."""
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    if height < 0 or width < 0:
        raise MessageFormatError(f"negative size {height}x{width}")
    dtype = fields_dtype(msg.fields, point_step, bool(msg.is_bigendian))
    data = _as_buffer(msg.data)
    if height * width == 0:
        if len(data) not in (0, height * row_step):
            raise MessageFormatError(f"empty cloud carries {len(data)} bytes")
        return np.zeros((0,), dtype=dtype)
    if row_step < width * point_step:
        raise MessageFormatError(f"row_step {row_step} < width*point_step {width * point_step}")
    if len(data) != height * row_step:
        raise MessageFormatError(
            f"data has {len(data)} bytes, expected height*row_step = {height}*{row_step} = {height * row_step}")
    if row_step == width * point_step:
        arr = np.frombuffer(data, dtype=dtype, count=height * width)
        arr = arr.reshape((height, width)) if height > 1 else arr
    else:
        arr = np.ndarray((height, width), dtype=dtype, buffer=data, strides=(row_step, point_step))
        arr = arr if height > 1 else arr[0]
    return arr


def _xyz_packed(arr):
    """Contiguous (N,3) x, y, z copied as one 12- (or 24-) byte record per point, or None.

    Needs x, y, z adjacent, of one float type, in native byte order, in a C-contiguous cloud: then a
    single memcpy-like pass over the records beats three strided element copies by about 3x.
    """
    fields = arr.dtype.fields
    (tx, ox), (ty, oy), (tz, oz) = (fields[c][:2] for c in "xyz")
    if not (tx.kind == "f" and tx.shape == () and tx.isnative and ty == tx and tz == tx
            and oy == ox + tx.itemsize and oz == oy + tx.itemsize and arr.flags.c_contiguous):
        return None
    flat = arr.reshape(-1)
    n = flat.shape[0]
    if n == 0:
        return np.zeros((0, 3), dtype=np.float32)
    record = np.dtype((np.void, 3 * tx.itemsize))
    try:
        view = np.ndarray((n,), dtype=record, buffer=flat, offset=ox, strides=(flat.strides[0],))
    except (ValueError, TypeError, BufferError):
        return None
    pts = view.copy().view(tx).reshape(n, 3)
    return pts if tx == np.float32 else pts.astype(np.float32)


def xyz(cloud, remove_nans=True):
    """Points as contiguous float32 (N, 3) plus the flat indices of those kept.

    ``cloud`` is a PointCloud2 or a structured array from :func:`to_array`. Indices refer to the
    flattened (row-major) cloud, so results can be scattered back onto organised clouds.
    """
    arr = to_array(cloud) if isinstance(cloud, PointCloud2) else cloud
    names = arr.dtype.names or ()
    missing = [c for c in "xyz" if c not in names]
    if missing:
        raise MessageFormatError(f"cloud lacks field(s) {missing}; has {list(names)}")
    if any(arr.dtype.fields[c][0].shape != () for c in "xyz"):
        raise MessageFormatError("x, y and z must each have count 1")
    pts = _xyz_packed(arr)
    if pts is None:
        flat = arr.reshape(-1)
        pts = np.empty((flat.shape[0], 3), dtype=np.float32)
        for i, c in enumerate("xyz"):
            pts[:, i] = flat[c]
    n = pts.shape[0]
    if not remove_nans:
        return pts, np.arange(n, dtype=np.int64)
    # One sum flags any NaN/inf. A NaN sum always means a NaN or inf coordinate; an infinite sum can
    # also come from finite coordinates near float32's limit overflowing, so only those rows (almost
    # never any) are re-checked coordinate by coordinate.
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add(pts[:, 0], pts[:, 1])
        np.add(total, pts[:, 2], out=total)
    bad = ~np.isfinite(total)
    if not bad.any():
        return pts, np.arange(n, dtype=np.int64)
    overflowed = np.flatnonzero(np.isinf(total))
    if overflowed.size:
        bad[overflowed[np.isfinite(pts[overflowed]).all(axis=1)]] = False
    keep = ~bad
    # Compress whole 12-byte rows at once rather than element by element.
    kept = pts.view(np.dtype((np.void, 12))).reshape(n)[keep].view(np.float32).reshape(-1, 3)
    return kept, np.flatnonzero(keep)


def structured_dtype(fields, align=True):
    """Build an aligned structured dtype from ``[(name, numpy type[, count]), ...]``."""
    spec = [(f[0], f[1]) if len(f) == 2 or f[2] == 1 else (f[0], f[1], (f[2],)) for f in fields]
    return np.dtype(spec, align=align)


def from_array(array, header=None, frame_id=None, stamp=None):
    """Structured array → PointCloud2 (organised when 2-D). The byte layout is the array's own."""
    arr = np.asarray(array)
    if arr.dtype.names is None:
        raise MessageFormatError("from_array needs a structured array (named fields)")
    if arr.ndim not in (1, 2):
        raise MessageFormatError(f"cloud array must be 1-D or 2-D, got shape {arr.shape}")
    orders = {arr.dtype.fields[n][0].base.byteorder for n in arr.dtype.names} - {"|", "="}
    big = orders == {">"}
    if len(orders) > 1:
        arr = arr.astype(arr.dtype.newbyteorder("="))
        big = False
    fields = []
    for name in arr.dtype.names:
        ftype, offset = arr.dtype.fields[name][:2]
        base = ftype.base
        count = int(np.prod(ftype.shape)) if ftype.shape else 1
        char = base.char
        if char not in _NUMPY_TO_DATATYPE:
            raise MessageFormatError(f"field '{name}' has type {base} that PointField cannot carry")
        fields.append(PointField(name=name, offset=offset, datatype=_NUMPY_TO_DATATYPE[char], count=count))
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    if frame_id is not None:
        msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    msg.height, msg.width = (arr.shape[0], arr.shape[1]) if arr.ndim == 2 else (1, arr.shape[0])
    msg.fields = fields
    msg.is_bigendian = big
    msg.point_step = arr.dtype.itemsize
    msg.row_step = msg.point_step * msg.width
    msg.data = np.ascontiguousarray(arr).tobytes()
    msg.is_dense = bool(_is_dense(arr))
    return msg


def _is_dense(arr):
    if all(c in arr.dtype.names for c in "xyz"):
        try:
            return bool(np.isfinite(xyz(arr, remove_nans=False)[0]).all())
        except MessageFormatError:
            return False
    return True


def with_fields(array, extra):
    """A copy of ``array`` with more fields appended (aligned), e.g. ``label``, ``score``, ``rgb``.

    ``extra`` is a list of ``(name, dtype, values)``; values broadcast to the array's shape. The input's
    own fields, padding excluded, keep their names and values, so results stay aligned point for point.
    """
    arr = np.asarray(array)
    names, formats, offsets = [], [], []
    for n in arr.dtype.names:
        names.append(n)
        formats.append(arr.dtype.fields[n][0])
        offsets.append(arr.dtype.fields[n][1])
    end = arr.dtype.itemsize
    for name, dtype, _ in extra:
        if name in names:
            raise ValueError(f"field '{name}' already present")
        dt = np.dtype(dtype)
        end = -(-end // dt.alignment) * dt.alignment
        names.append(name)
        formats.append(dt)
        offsets.append(end)
        end += dt.itemsize
    itemsize = -(-end // 4) * 4
    out = np.zeros(arr.shape, dtype=np.dtype({"names": names, "formats": formats, "offsets": offsets,
                                              "itemsize": itemsize}))
    for n in arr.dtype.names:
        out[n] = arr[n]
    for name, _dtype, values in extra:
        out[name] = values
    return out
