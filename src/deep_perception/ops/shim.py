"""The CUDA kernel compiled for the CPU through cuda/cpu_shim.h and called with ctypes.

Used by the tests (and the ``tiled_shim`` backend) to run the very same ``tiled_conv2d.cu`` without a GPU:
blocks in turn, one std::thread per CUDA thread, std::barrier as ``__syncthreads``. ``build_shim`` compiles
``cpu_runner.cpp`` with g++ into a cache directory keyed by the sources and flags; keep tiles small
(e.g. 4x4 threads) for speed. ``sanitize='address'`` builds with AddressSanitizer (the process must then
have libasan preloaded; see ``asan_env``).
"""

import ctypes
import functools
import hashlib
import os
import pathlib
import subprocess

import numpy as np

from deep_perception.fileio import atomic_path
from deep_perception.ops.plan import KernelConfig, grid_for, launch_plan, output_size
from deep_perception.ops.sources import cuda_dir

CXX = os.environ.get("CXX", "g++")


def default_cache_dir() -> pathlib.Path:
    base = os.environ.get("DP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "deep_perception")
    return pathlib.Path(base) / "shim"


def build_shim(config: KernelConfig, sanitize: str = None, source_dir=None, cache_dir=None,
               opt: str = "-O2") -> pathlib.Path:
    """Compile the CPU shim library for ``config``; returns the .so path (cached)."""
    src = pathlib.Path(source_dir) if source_dir else cuda_dir()
    flags = ["-std=c++20", opt, "-g", "-shared", "-fPIC", "-pthread", *config.defines()]
    if sanitize:
        flags += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer"]
    h = hashlib.sha256(" ".join([CXX, *flags]).encode())
    for name in ("tiled_conv2d.cu", "cpu_shim.h", "cpu_runner.cpp"):
        h.update((src / name).read_bytes())
    out = pathlib.Path(cache_dir or default_cache_dir()) / f"tiled_shim_{h.hexdigest()[:16]}.so"
    if not out.exists():
        with atomic_path(out) as tmp:
            cmd = [CXX, *flags, "-I", str(src), "-o", tmp, str(src / "cpu_runner.cpp")]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"building the CPU shim failed: {' '.join(cmd)}\n{proc.stderr}")
    return out


def asan_env() -> dict:
    """Environment for a subprocess that loads an AddressSanitizer build into python."""
    libasan = subprocess.run([CXX, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    return {**os.environ, "LD_PRELOAD": libasan, "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1"}


_F = ctypes.POINTER(ctypes.c_float)


class ShimKernel:
    """A loaded shim library plus the host loop that runs the launch plan."""

    def __init__(self, lib_path, config: KernelConfig):
        self.config = config
        self.lib = ctypes.CDLL(str(lib_path))
        self.lib.shim_set_filter.argtypes = [_F, ctypes.c_int]
        self.lib.shim_launch.argtypes = [ctypes.c_uint] * 3 + [_F, _F, _F] + [ctypes.c_int] * 16
        self.lib.shim_launch.restype = None
        built = (self.lib.shim_tile_w(), self.lib.shim_tile_h(), self.lib.shim_cout_tile(),
                 self.lib.shim_const_floats(), self.lib.shim_smem_floats())
        want = (config.tile_w, config.tile_h, config.cout_tile, config.const_floats, config.smem_floats)
        if built != want:
            raise RuntimeError(f"{lib_path} was built for {built}, expected {want}")

    def conv2d(self, x: np.ndarray, weight: np.ndarray, bias=None, stride: int = 1, pad: int = 0):
        """float32 NCHW convolution through the shimmed kernel."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        weight = np.ascontiguousarray(weight, dtype=np.float32)
        n, c, h, w = x.shape
        cout, _, kh, kw = weight.shape
        ho, wo = output_size(h, w, kh, kw, stride, pad)
        y = np.empty((n, cout, ho, wo), dtype=np.float32)
        b = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        for launch in launch_plan(c, cout, kh, kw, stride, self.config):
            group = np.ascontiguousarray(weight[launch.cout_begin:launch.cout_begin + launch.cout_count,
                                                launch.cin_begin:launch.cin_begin + launch.cin_count])
            if self.lib.shim_set_filter(_ptr(group), group.size) != 0:
                raise RuntimeError(f"filter group of {group.size} floats does not fit __constant__ memory")
            gx, gy, gz = grid_for(launch, n, ho, wo, self.config)
            bias_ptr = _ptr(b) if (b is not None and launch.add_bias) else None
            self.lib.shim_launch(gx, gy, gz, _ptr(x), _ptr(y), bias_ptr, c, h, w, cout, ho, wo, kh, kw,
                                 stride, pad, launch.cin_begin, launch.cin_count, launch.cin_chunk,
                                 launch.cout_begin, launch.cout_count, int(launch.accumulate))
        return y


def _ptr(a: np.ndarray):
    return a.ctypes.data_as(_F)


@functools.lru_cache(maxsize=None)
def default_shim(config: KernelConfig = KernelConfig(tile_w=4, tile_h=4, cout_tile=4)) -> ShimKernel:
    """A cached shim with small blocks (16 threads), for the ``tiled_shim`` backend."""
    return ShimKernel(build_shim(config), config)
