"""Conv2d backends and the autograd Function that lets every backend train.

Backends (all compute ``torch.nn.functional.conv2d`` for groups=1, dilation=1, zero padding):

- ``torch``: ``F.conv2d`` itself (cuDNN / oneDNN), the default.
- ``tiled``: cuda/tiled_conv2d.cu through pycuda, float32 CUDA tensors (see ``tiled_cuda``).
- ``tiled_reference``: numpy execution of the same kernel's blocks, tiles and halo (any float dtype, CPU).
- ``tiled_shim``: the same .cu compiled for the CPU with cuda/cpu_shim.h (float32, slow; for tests).

``Conv2dFunction`` runs the forward on the backend and, in backward, the input gradient on the backend
too (a stride-1 convolution of the zero-dilated output gradient with the flipped, transposed filters);
the weight gradient uses ``torch.nn.grad.conv2d_weight`` (its filter is as large as the output map, beyond
what a tiled kernel with a small halo is for).
"""

import numpy as np
import torch
import torch.nn.functional as F

from deep_perception.ops.tiled_cuda import BackendUnavailable, availability as tiled_availability

BACKENDS = ("torch", "tiled", "tiled_reference", "tiled_shim")


def backend_availability(name: str):
    """(available, reason) for a backend name."""
    if name not in BACKENDS:
        raise ValueError(f"unknown conv backend {name!r}; known: {BACKENDS}")
    if name == "tiled":
        return tiled_availability()
    if name == "tiled_shim":
        import shutil
        from deep_perception.ops.shim import CXX
        if shutil.which(CXX) is None:
            return False, f"no C++ compiler ({CXX}) to build the CPU shim"
    return True, ""


def check_backend(name: str) -> None:
    """Raise ``BackendUnavailable`` (or ValueError for an unknown name) when ``name`` cannot run here."""
    ok, why = backend_availability(name)
    if not ok:
        raise BackendUnavailable(f"conv backend {name!r} unavailable: {why}")


def _forward(backend: str, x: torch.Tensor, weight: torch.Tensor, bias, stride: int, pad: int) -> torch.Tensor:
    if backend == "torch":
        return F.conv2d(x, weight, bias, stride, pad)
    if backend == "tiled":
        from deep_perception.ops.tiled_cuda import tiled_kernel
        return tiled_kernel(device_index=x.device.index or 0).conv2d(x, weight, bias, stride, pad)
    if backend == "tiled_reference":
        from deep_perception.ops.reference import tiled_conv2d_reference
        fn = tiled_conv2d_reference
    elif backend == "tiled_shim":
        from deep_perception.ops.shim import default_shim
        fn = default_shim().conv2d
    else:
        raise ValueError(f"unknown conv backend {backend!r}; known: {BACKENDS}")
    to_np = lambda t: None if t is None else t.detach().cpu().numpy()  # noqa: E731
    y = fn(to_np(x), to_np(weight), to_np(bias), stride, pad)
    return torch.from_numpy(np.ascontiguousarray(y)).to(device=x.device, dtype=x.dtype)


class Conv2dFunction(torch.autograd.Function):
    """conv2d on a named backend, differentiable (see the module docstring for the backward)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, pad, backend):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, pad, backend, bias is not None)
        return _forward(backend, x, weight, bias, stride, pad)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        stride, pad, backend, has_bias = ctx.conf
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _input_grad(backend, grad_out, weight, x.shape, stride, pad)
        if ctx.needs_input_grad[1]:
            grad_w = torch.nn.grad.conv2d_weight(x, weight.shape, grad_out, stride, pad)
        if has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=(0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None


def _input_grad(backend, grad_out, weight, x_shape, stride, pad):
    """dL/dx as a stride-1, unpadded forward convolution on ``backend``."""
    n, cout, ho, wo = grad_out.shape
    _, _, kh, kw = weight.shape
    h, w = x_shape[2], x_shape[3]
    if stride > 1:  # put the gradient back on the input grid: zeros between the strided samples
        dil = grad_out.new_zeros((n, cout, (ho - 1) * stride + 1, (wo - 1) * stride + 1))
        dil[:, :, ::stride, ::stride] = grad_out
        grad_out = dil
    lh, lw = grad_out.shape[2], grad_out.shape[3]
    # Full correlation window: kh-1-pad before, the rest after (negative values crop).
    padded = F.pad(grad_out, (kw - 1 - pad, w + pad - lw, kh - 1 - pad, h + pad - lh))
    flipped = weight.flip(2, 3).transpose(0, 1).contiguous()
    return _forward(backend, padded.contiguous(), flipped, None, 1, 0)


def conv2d(x, weight, bias=None, stride: int = 1, padding: int = 0, backend: str = "torch"):
    """``F.conv2d(x, weight, bias, stride, padding)`` computed on ``backend``; differentiable."""
    if backend == "torch":
        return F.conv2d(x, weight, bias, stride, padding)
    check_backend(backend)
    return Conv2dFunction.apply(x, weight, bias, int(stride), int(padding), backend)
