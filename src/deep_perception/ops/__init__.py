"""Convolution backends: torch, the pycuda tiled kernel (cuda/tiled_conv2d.cu) and its CPU executors.

Names are imported lazily, so ``deep_perception.ops.shim`` / ``.reference`` / ``.plan`` load without torch.
"""

import importlib

_EXPORTS = {
    "BACKENDS": "backends", "Conv2dFunction": "backends", "backend_availability": "backends",
    "check_backend": "backends", "conv2d": "backends",
    "BackendConv2d": "conv", "set_conv_backend": "conv",
    "DEFAULT_CONFIG": "plan", "KernelConfig": "plan", "launch_plan": "plan",
    "BackendUnavailable": "tiled_cuda",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"deep_perception.ops.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'deep_perception.ops' has no attribute {name!r}")
