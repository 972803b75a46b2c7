"""The ``tiled`` backend on a real GPU (pycuda): equals cuDNN, trains, runs a whole ResNet-18.

Skipped cleanly where pycuda or a CUDA device is missing (the reason is the skip message).
"""

import itertools

import pytest
import torch
import torch.nn.functional as F

from deep_perception.ops import backend_availability, conv2d, set_conv_backend

OK, WHY = backend_availability("tiled")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not OK, reason=f"tiled CUDA backend unavailable: {WHY}")]


@pytest.fixture(autouse=True)
def _fp32_cudnn():
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # compare against true fp32
    yield
    torch.backends.cudnn.allow_tf32 = old


@pytest.mark.parametrize("k,stride,pad", list(itertools.product([1, 3, 5, 7], [1, 2], [0, 1, 3])))
def test_tiled_matches_cudnn(k, stride, pad):
    gen = torch.Generator(device="cuda").manual_seed(k * 100 + stride * 10 + pad)
    x = torch.randn(3, 37, 29, 23, device="cuda", generator=gen)
    w = torch.randn(70, 37, k, k, device="cuda", generator=gen) / (37 * k * k) ** 0.5
    b = torch.randn(70, device="cuda", generator=gen)
    got = conv2d(x, w, b, stride, pad, backend="tiled")
    assert (got - F.conv2d(x, w, b, stride, pad)).abs().max().item() <= 1e-4


def test_tiled_gradients_match_cudnn():
    x = torch.randn(2, 8, 15, 13, device="cuda", requires_grad=True)
    w = torch.randn(16, 8, 3, 3, device="cuda", requires_grad=True)
    g = torch.randn(2, 16, 8, 7, device="cuda")
    ours = torch.autograd.grad(conv2d(x, w, None, 2, 1, backend="tiled"), (x, w), g)
    theirs = torch.autograd.grad(F.conv2d(x, w, None, 2, 1), (x, w), g)
    for a, t in zip(ours, theirs):
        assert (a - t).abs().max().item() <= 1e-3


def test_resnet18_on_tiled_matches_torch():
    from deep_perception.models.resnet import resnet18
    torch.manual_seed(0)
    model = resnet18(num_classes=10).cuda().eval()
    x = torch.randn(4, 3, 96, 96, device="cuda")
    with torch.no_grad():
        want = model(x)
        got = set_conv_backend(model, "tiled")(x)
    assert (got - want).abs().max().item() <= 1e-3 * max(1.0, want.abs().max().item())
