"""``BackendConv2d``: an ``nn.Conv2d`` (same parameters and state_dict names) whose convolution runs on a
selectable backend, and ``set_conv_backend`` — the one switch that moves a whole model to a backend."""

import torch
from torch import nn

from deep_perception.ops.backends import BACKENDS, check_backend, conv2d


def _single(v, what):
    a, b = (v, v) if isinstance(v, int) else tuple(v)
    if a != b:
        raise ValueError(f"BackendConv2d supports square {what} only, got {v}")
    return a


class BackendConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose forward uses ``self.conv_backend`` (``'torch'`` by default)."""

    def __init__(self, *args, backend: str = "torch", **kwargs):
        super().__init__(*args, **kwargs)
        if backend not in BACKENDS:
            raise ValueError(f"unknown conv backend {backend!r}; known: {BACKENDS}")
        self.conv_backend = backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv_backend == "torch":
            return super().forward(x)
        if self.groups != 1 or _single(self.dilation, "dilation") != 1 or self.padding_mode != "zeros":
            raise ValueError(f"backend {self.conv_backend!r} supports groups=1, dilation=1, zero padding")
        return conv2d(x, self.weight, self.bias, _single(self.stride, "stride"),
                      _single(self.padding, "padding"), self.conv_backend)

    def extra_repr(self):
        return super().extra_repr() + f", backend={self.conv_backend}"


def set_conv_backend(model: nn.Module, backend: str) -> nn.Module:
    """Run every ``BackendConv2d`` of ``model`` on ``backend``; raises if it cannot run here."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown conv backend {backend!r}; known: {BACKENDS}")
    if backend != "torch":
        check_backend(backend)
    for m in model.modules():
        if isinstance(m, BackendConv2d):
            m.conv_backend = backend
    return model
