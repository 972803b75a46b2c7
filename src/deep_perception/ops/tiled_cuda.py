"""The ``tiled`` backend: cuda/tiled_conv2d.cu compiled by pycuda and run on torch's CUDA tensors.

Everything is lazy: importing this module needs neither pycuda nor a GPU. ``availability()`` says why the
backend cannot run (no pycuda, no CUDA device, torch without CUDA) instead of failing at import.
pycuda works in the device's primary context, the one torch uses, and launches on the legacy default
stream, the stream torch uses unless told otherwise; weights go to ``__constant__`` memory by a
device-to-device copy per launch of the plan (see ``plan.launch_plan``).
"""

import functools

import torch

from deep_perception.ops.plan import DEFAULT_CONFIG, KernelConfig, grid_for, launch_plan, output_size
from deep_perception.ops.sources import kernel_source


class BackendUnavailable(RuntimeError):
    """A conv backend cannot run here; the message says why and what would fix it."""


def availability():
    """(True, '') when the tiled CUDA backend can run, else (False, reason)."""
    try:
        import pycuda.driver as cuda  # noqa: F401
    except Exception as e:  # ImportError, or a pycuda built against a missing libcuda
        return False, (f"pycuda is not importable ({type(e).__name__}: {e}); install pycuda "
                       f"(wheels for Python 3.12: ../shared/wheels/pycuda-cp312/) on a machine with a GPU")
    if not torch.cuda.is_available():
        return False, "torch sees no CUDA device (torch.cuda.is_available() is False)"
    try:
        cuda.init()
        if cuda.Device.count() < 1:
            return False, "pycuda finds no CUDA device"
    except Exception as e:
        return False, f"the CUDA driver failed to initialise through pycuda: {e}"
    return True, ""


class TiledCudaKernel:
    """One compiled module (per KernelConfig and device) and the host loop over the launch plan."""

    _ARGS = "PPP" + "i" * 16

    def __init__(self, config: KernelConfig = DEFAULT_CONFIG, device_index: int = 0):
        ok, why = availability()
        if not ok:
            raise BackendUnavailable(f"conv backend 'tiled' unavailable: {why}")
        import pycuda.driver as cuda
        from pycuda.compiler import SourceModule

        self.cuda = cuda
        self.config = config
        self.context = cuda.Device(device_index).retain_primary_context()
        self.context.push()
        try:
            self.module = SourceModule(kernel_source(), no_extern_c=True,
                                       options=config.defines())
        finally:
            self.context.pop()
        self.func = self.module.get_function("tiled_conv2d_forward")
        self.func.prepare(self._ARGS)
        self.const_ptr, self.const_bytes = self.module.get_global("c_filter")

    def conv2d(self, x: torch.Tensor, weight: torch.Tensor, bias=None, stride: int = 1, pad: int = 0):
        if x.dtype != torch.float32 or not x.is_cuda:
            raise TypeError(f"the tiled CUDA kernel takes float32 CUDA tensors, got {x.dtype} on {x.device}")
        x = x.contiguous()
        weight = weight.to(x.dtype).contiguous()
        n, c, h, w = x.shape
        cout, _, kh, kw = weight.shape
        ho, wo = output_size(h, w, kh, kw, stride, pad)
        y = torch.empty((n, cout, ho, wo), dtype=x.dtype, device=x.device)
        b = None if bias is None else bias.to(x.dtype).contiguous()
        block = (self.config.tile_w, self.config.tile_h, 1)
        self.context.push()
        try:
            for launch in launch_plan(c, cout, kh, kw, stride, self.config):
                group = weight[launch.cout_begin:launch.cout_begin + launch.cout_count,
                               launch.cin_begin:launch.cin_begin + launch.cin_count].contiguous()
                self.cuda.memcpy_dtod(self.const_ptr, group.data_ptr(), group.numel() * 4)
                bias_ptr = b.data_ptr() if (b is not None and launch.add_bias) else 0
                self.func.prepared_call(grid_for(launch, n, ho, wo, self.config), block,
                                        x.data_ptr(), y.data_ptr(), bias_ptr, c, h, w, cout, ho, wo, kh, kw,
                                        stride, pad, launch.cin_begin, launch.cin_count, launch.cin_chunk,
                                        launch.cout_begin, launch.cout_count, int(launch.accumulate))
        finally:
            self.context.pop()
        return y


@functools.lru_cache(maxsize=None)
def tiled_kernel(config: KernelConfig = DEFAULT_CONFIG, device_index: int = 0) -> TiledCudaKernel:
    """The compiled kernel for ``config`` on a device (compiled once per process)."""
    return TiledCudaKernel(config, device_index)
