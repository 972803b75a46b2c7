"""numpy executor of cuda/tiled_conv2d.cu: the same launches, blocks, input tile + halo and filter layout.

Each block is computed the way the kernel's threads compute it: the block's input tile (with halo, zero
outside the image) is staged ``cin_chunk`` channels at a time, and every thread (ty, tx) reads
``tile[c, ty*stride + ky, tx*stride + kx]``; here the threads of a block are numpy array lanes.
Works in the input's dtype (float64 for gradcheck).
"""

import numpy as np

from deep_perception.ops.plan import DEFAULT_CONFIG, KernelConfig, grid_for, launch_plan, output_size


def tiled_conv2d_reference(x: np.ndarray, weight: np.ndarray, bias=None, stride: int = 1, pad: int = 0,
                           config: KernelConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Cross-correlation of ``x`` (N, C, H, W) with ``weight`` (Cout, C, KH, KW), like torch's conv2d."""
    n, c, h, w = x.shape
    cout, cin_w, kh, kw = weight.shape
    if cin_w != c:
        raise ValueError(f"weight has {cin_w} input channels, input has {c}")
    ho, wo = output_size(h, w, kh, kw, stride, pad)
    y = np.zeros((n, cout, ho, wo), dtype=x.dtype)
    th, tw, ct = config.tile_h, config.tile_w, config.cout_tile
    in_h, in_w = config.in_tile(kh, kw, stride)
    taps = kh * kw
    constant = np.zeros(config.const_floats, dtype=x.dtype)
    for launch in launch_plan(c, cout, kh, kw, stride, config):
        group = weight[launch.cout_begin:launch.cout_begin + launch.cout_count,
                       launch.cin_begin:launch.cin_begin + launch.cin_count]
        constant[:group.size] = group.reshape(-1)  # the host's copy into __constant__ memory
        gx, gy, gz = grid_for(launch, n, ho, wo, config)
        cout_tiles = gz // n
        for bz in range(gz):
            b, co0 = bz // cout_tiles, (bz % cout_tiles) * ct
            lanes = min(ct, launch.cout_count - co0)  # the kernel's `co0 + j < cout_count`
            for by in range(gy):
                for bx in range(gx):
                    iy0, ix0 = by * th * stride - pad, bx * tw * stride - pad
                    acc = np.zeros((lanes, th, tw), dtype=x.dtype)
                    for c0 in range(0, launch.cin_count, launch.cin_chunk):
                        nc = min(launch.cin_chunk, launch.cin_count - c0)
                        tile = _load_tile(x[b, launch.cin_begin + c0:launch.cin_begin + c0 + nc],
                                          iy0, ix0, in_h, in_w)
                        # thread (ty, tx) reads tile[c, ty*stride + ky, tx*stride + kx]: all taps at once
                        win = np.lib.stride_tricks.sliding_window_view(tile, (kh, kw), axis=(1, 2))
                        v = win[:, 0:(th - 1) * stride + 1:stride, 0:(tw - 1) * stride + 1:stride]
                        # c_filter[(co0 + j) * cin_count * taps + (c0 + c) * taps + ky * kw + kx]
                        per_co = launch.cin_count * taps
                        f = constant[co0 * per_co:(co0 + lanes) * per_co]
                        f = f.reshape(lanes, launch.cin_count, kh, kw)[:, c0:c0 + nc]
                        acc += np.tensordot(f, v, axes=([1, 2, 3], [0, 3, 4]))  # sum over c, ky, kx
                    oy, ox = by * th, bx * tw
                    hh, ww = min(th, ho - oy), min(tw, wo - ox)
                    out = acc[:, :hh, :ww]
                    if bias is not None and launch.add_bias:
                        cb = launch.cout_begin + co0
                        out = out + bias[cb:cb + lanes, None, None]
                    cs = slice(launch.cout_begin + co0, launch.cout_begin + co0 + lanes)
                    if launch.accumulate:
                        y[b, cs, oy:oy + hh, ox:ox + ww] += out
                    else:
                        y[b, cs, oy:oy + hh, ox:ox + ww] = out
    return y


def _load_tile(planes: np.ndarray, iy0: int, ix0: int, in_h: int, in_w: int) -> np.ndarray:
    """The cooperative shared-memory load: a (nc, in_h, in_w) window at (iy0, ix0), zero outside."""
    nc, h, w = planes.shape
    tile = np.zeros((nc, in_h, in_w), dtype=planes.dtype)
    y0, y1 = max(iy0, 0), min(iy0 + in_h, h)
    x0, x1 = max(ix0, 0), min(ix0 + in_w, w)
    if y0 < y1 and x0 < x1:
        tile[:, y0 - iy0:y1 - iy0, x0 - ix0:x1 - ix0] = planes[:, y0:y1, x0:x1]
    return tile
