"""Conv backends: the numpy tiled reference equals torch's conv2d over a shape grid, the launch plan
respects __constant__ memory, gradients pass gradcheck, and one switch moves a whole ResNet."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deep_perception.models.resnet import resnet18
from deep_perception.ops import (BackendConv2d, BackendUnavailable, KernelConfig, backend_availability,
                                 conv2d, launch_plan, set_conv_backend)
from deep_perception.ops.reference import tiled_conv2d_reference

SMALL = KernelConfig(tile_w=4, tile_h=4, cout_tile=4)
SPLIT = KernelConfig(tile_w=5, tile_h=3, cout_tile=2, const_floats=200)  # forces filter splitting

GRID = [(k, s, p) for k, s, p in itertools.product([1, 3, 5, 7], [1, 2], [0, 1, 3])]


@pytest.mark.parametrize("config", [SMALL, SPLIT, KernelConfig()], ids=["4x4", "split", "default"])
@pytest.mark.parametrize("k,stride,pad", GRID)
def test_reference_matches_torch(config, k, stride, pad, rng):
    x = rng.standard_normal((2, 5, 13, 11)).astype(np.float32)
    w = rng.standard_normal((6, 5, k, k)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride, pad).numpy()
    got = tiled_conv2d_reference(x, w, b, stride, pad, config)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4


def test_reference_many_channels(rng):
    x = rng.standard_normal((1, 67, 9, 15)).astype(np.float32)
    w = rng.standard_normal((70, 67, 3, 3)).astype(np.float32) * 0.1
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), None, 2, 1).numpy()
    for config in (KernelConfig(), SPLIT):
        assert np.abs(tiled_conv2d_reference(x, w, None, 2, 1, config) - want).max() <= 1e-4


@pytest.mark.parametrize("cin,cout,k", [(1, 1, 5), (3, 64, 7), (64, 64, 3), (256, 512, 3), (512, 512, 3),
                                        (1024, 2048, 1), (13, 7, 5)])
def test_plan_fits_constant_memory_and_covers_all_channels(cin, cout, k):
    config = KernelConfig()
    plan = launch_plan(cin, cout, k, k, 1, config)
    covered = np.zeros((cout, cin), dtype=int)
    for launch in plan:
        assert launch.cout_count * launch.cin_count * k * k <= config.const_floats
        assert launch.cin_chunk * np.prod(config.in_tile(k, k, 1)) <= config.smem_floats
        assert launch.accumulate == (launch.cin_begin > 0) and launch.add_bias == (launch.cin_begin == 0)
        covered[launch.cout_begin:launch.cout_begin + launch.cout_count,
                launch.cin_begin:launch.cin_begin + launch.cin_count] += 1
    assert (covered == 1).all()
    if cin * cout * k * k <= config.const_floats:
        assert len(plan) == 1


def test_plan_rejects_unsupported_kernel():
    with pytest.raises(ValueError, match="shared buffer"):
        launch_plan(3, 4, 31, 31, 4, KernelConfig())


@pytest.mark.parametrize("stride,pad,k", [(1, 1, 3), (2, 1, 3), (2, 0, 1), (2, 3, 5), (1, 0, 2)])
def test_gradcheck_tiled_reference(stride, pad, k):
    gen = torch.Generator().manual_seed(stride * 10 + pad + k)
    x = torch.randn(2, 2, 6, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(3, 2, k, k, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, generator=gen, requires_grad=True)
    fn = lambda x, w, b: conv2d(x, w, b, stride, pad, backend="tiled_reference")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b), eps=1e-6, atol=1e-5)
    # and the gradients equal torch's own
    out = fn(x, w, b)
    g = torch.randn_like(out)
    ours = torch.autograd.grad(out, (x, w, b), g)
    theirs = torch.autograd.grad(F.conv2d(x, w, b, stride, pad), (x, w, b), g)
    for a, t in zip(ours, theirs):
        assert torch.allclose(a, t, atol=1e-10)


def test_resnet18_forward_on_tiled_reference_matches_torch():
    torch.manual_seed(0)
    model = resnet18(num_classes=10).eval()
    x = torch.randn(1, 3, 33, 31)
    with torch.no_grad():
        want = model(x)
        set_conv_backend(model, "tiled_reference")
        assert all(m.conv_backend == "tiled_reference" for m in model.modules() if isinstance(m, BackendConv2d))
        got = model(x)
    set_conv_backend(model, "torch")
    assert (got - want).abs().max() <= 1e-4 * max(1.0, want.abs().max().item())


def test_training_step_on_reference_backend_matches_torch():
    torch.manual_seed(1)
    conv = BackendConv2d(2, 3, 3, stride=2, padding=1, backend="tiled_reference")
    ref = torch.nn.Conv2d(2, 3, 3, stride=2, padding=1)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(2, 2, 9, 9)
    conv(x).square().sum().backward()
    ref(x).square().sum().backward()
    assert torch.allclose(conv.weight.grad, ref.weight.grad, atol=1e-4)
    assert torch.allclose(conv.bias.grad, ref.bias.grad, atol=1e-4)


def test_tiled_backend_reports_unavailable_clearly():
    ok, why = backend_availability("tiled")
    if ok:
        pytest.skip("a GPU with pycuda is present: the tiled backend is available")
    assert why
    model = resnet18(num_classes=2)
    with pytest.raises(BackendUnavailable, match="tiled"):
        set_conv_backend(model, "tiled")
    with pytest.raises(BackendUnavailable, match="unavailable"):
        conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3), backend="tiled")


def test_unknown_backend_rejected():
    with pytest.raises(ValueError, match="unknown conv backend"):
        set_conv_backend(resnet18(num_classes=2), "cudnn")
    with pytest.raises(ValueError, match="unknown conv backend"):
        BackendConv2d(1, 1, 3, backend="nope")
