"""Launch plan of the tiled convolution kernel (cuda/tiled_conv2d.cu), shared by all its executors.

The pycuda backend, the CPU shim and the numpy reference run the same list of launches, so a bug in
the plan shows up in all three. Filters go to ``__constant__`` memory, which holds at most
``const_floats`` (16,384 floats = 64 KiB) at a time: a convolution whose weights are larger is split into
launches over output-channel groups x input-channel groups; launches after the first input-channel
group of an output group add into the output (``accumulate``), and only the first adds the bias.
"""

from dataclasses import dataclass
from typing import List


@dataclass(frozen=True)
class KernelConfig:
    """Compile-time sizes of the kernel (passed as -D defines, so every build agrees with Python)."""

    tile_w: int = 16
    tile_h: int = 16
    cout_tile: int = 8        # output channels accumulated per thread (registers)
    const_floats: int = 16384  # __constant__ filter capacity: 64 KiB of float32
    max_k: int = 7            # with max_stride, sizes the static shared tile
    max_stride: int = 2

    @property
    def smem_floats(self) -> int:
        """Shared-memory tile capacity: four channel planes of the largest supported tile + halo."""
        return ((self.tile_h - 1) * self.max_stride + self.max_k) * \
               ((self.tile_w - 1) * self.max_stride + self.max_k) * 4

    def defines(self) -> List[str]:
        return [f"-DTILE_W={self.tile_w}", f"-DTILE_H={self.tile_h}", f"-DCOUT_TILE={self.cout_tile}",
                f"-DDP_CONST_FLOATS={self.const_floats}", f"-DMAX_K={self.max_k}",
                f"-DMAX_STRIDE={self.max_stride}", f"-DSMEM_FLOATS={self.smem_floats}"]

    def in_tile(self, kh: int, kw: int, stride: int):
        """(rows, cols) of one channel's input tile including the halo."""
        return (self.tile_h - 1) * stride + kh, (self.tile_w - 1) * stride + kw


DEFAULT_CONFIG = KernelConfig()


@dataclass(frozen=True)
class Launch:
    cin_begin: int
    cin_count: int
    cin_chunk: int   # input channels staged in shared memory per __syncthreads round
    cout_begin: int
    cout_count: int
    accumulate: bool
    add_bias: bool


def output_size(h: int, w: int, kh: int, kw: int, stride: int, pad: int):
    """Output (rows, cols) of a convolution, as torch computes it."""
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (w + 2 * pad - kw) // stride + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"input {h}x{w} with kernel {kh}x{kw}, pad {pad} gives an empty output")
    return ho, wo


def launch_plan(cin: int, cout: int, kh: int, kw: int, stride: int,
                config: KernelConfig = DEFAULT_CONFIG) -> List[Launch]:
    """Split a convolution into launches whose filter group fits ``__constant__`` memory."""
    if min(cin, cout, kh, kw, stride) < 1:
        raise ValueError(f"bad convolution shape cin={cin} cout={cout} k={kh}x{kw} stride={stride}")
    rows, cols = config.in_tile(kh, kw, stride)
    if rows * cols > config.smem_floats:
        raise ValueError(f"kernel {kh}x{kw} with stride {stride} needs a {rows}x{cols} input tile, more "
                         f"than the {config.smem_floats}-float shared buffer (built for k<={config.max_k}, "
                         f"stride<={config.max_stride})")
    taps = kh * kw
    if taps > config.const_floats:
        raise ValueError(f"one {kh}x{kw} filter tap set exceeds __constant__ memory")
    if cin * taps * min(cout, config.cout_tile) <= config.const_floats:
        cin_group = cin
        cout_group = min(cout, config.const_floats // (cin * taps))
        if cout_group > config.cout_tile:
            cout_group -= cout_group % config.cout_tile  # whole register tiles per launch
    else:
        cout_group = min(cout, config.cout_tile)
        cin_group = config.const_floats // (taps * cout_group)
    chunk_cap = config.smem_floats // (rows * cols)
    launches = []
    for cout_begin in range(0, cout, cout_group):
        cout_count = min(cout_group, cout - cout_begin)
        for cin_begin in range(0, cin, cin_group):
            cin_count = min(cin_group, cin - cin_begin)
            launches.append(Launch(cin_begin, cin_count, min(cin_count, chunk_cap), cout_begin, cout_count,
                                   accumulate=cin_begin > 0, add_bias=cin_begin == 0))
    return launches


def grid_for(launch: Launch, n: int, ho: int, wo: int, config: KernelConfig = DEFAULT_CONFIG):
    """CUDA grid (x, y, z) of one launch."""
    cout_tiles = -(-launch.cout_count // config.cout_tile)
    return (-(-wo // config.tile_w), -(-ho // config.tile_h), n * cout_tiles)
