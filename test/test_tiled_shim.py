"""cuda/tiled_conv2d.cu compiled for the CPU (cuda/cpu_shim.h): equals torch's conv2d over a shape grid,
runs clean under AddressSanitizer, catches planted bugs, and the same file compiles with nvcc."""

import itertools
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deep_perception.ops.plan import KernelConfig
from deep_perception.ops.shim import ShimKernel, asan_env, build_shim
from deep_perception.ops.sources import cuda_dir

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="no g++ to build the CPU shim")

SMALL = KernelConfig(tile_w=4, tile_h=4, cout_tile=4)                       # 16 threads per block
SPLIT = KernelConfig(tile_w=3, tile_h=5, cout_tile=2, const_floats=200)     # filters split across launches
TIGHT = KernelConfig(tile_w=4, tile_h=4, cout_tile=4, max_k=3, max_stride=1)  # shared tile sized exactly


FAST = "-O1"  # test builds: quick to compile, the kernels run on tiny inputs


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("shim")


@pytest.fixture(scope="module")
def kernels(build_dir):
    return {name: ShimKernel(build_shim(cfg, cache_dir=build_dir, opt=FAST), cfg)
            for name, cfg in (("small", SMALL), ("split", SPLIT))}


def _case(rng, n, c, h, w, cout, k):
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = (rng.standard_normal((cout, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    return x, wt, b


def _torch(x, w, b, stride, pad):
    bias = None if b is None else torch.from_numpy(b)
    return F.conv2d(torch.from_numpy(x), torch.from_numpy(w), bias, stride, pad).numpy()


@pytest.mark.parametrize("k,stride,pad", list(itertools.product([1, 3, 5, 7], [1, 2], [0, 1, 3])))
def test_shim_matches_torch_grid(kernels, k, stride, pad, rng):
    x, w, b = _case(rng, 2, 3, 11, 9, 5, k)
    for kernel in kernels.values():
        got = kernel.conv2d(x, w, b, stride, pad)
        assert np.abs(got - _torch(x, w, b, stride, pad)).max() <= 1e-4


def test_shim_many_channels(kernels, rng):
    x, w, b = _case(rng, 1, 37, 7, 9, 21, 3)
    for stride in (1, 2):
        for kernel in kernels.values():
            got = kernel.conv2d(x, w, None, stride, 1)
            assert np.abs(got - _torch(x, w, None, stride, 1)).max() <= 1e-4


def test_shim_rejects_mismatched_build(build_dir):
    with pytest.raises(RuntimeError, match="built for"):
        ShimKernel(build_shim(SMALL, cache_dir=build_dir, opt=FAST), SPLIT)


# Runs in a subprocess with libasan preloaded; compares with the numpy reference executor (itself
# checked against torch in test_conv_backends.py) so the sanitised process need not load torch.
ASAN_SCRIPT = r"""
import sys, numpy as np
from deep_perception.ops.plan import KernelConfig
from deep_perception.ops.reference import tiled_conv2d_reference
from deep_perception.ops.shim import ShimKernel
rng = np.random.default_rng(0)
for lib, conf in zip(sys.argv[1::2], sys.argv[2::2]):
    cfg = KernelConfig(**eval(conf))
    kernel = ShimKernel(lib, cfg)
    worst = 0.0
    for k, stride, pad, c in [(3, 1, 1, 4), (5, 2, 3, 3), (1, 2, 0, 6), (7, 2, 3, 2), (3, 1, 0, 4)]:
        if k > cfg.max_k or stride > cfg.max_stride:
            continue
        x = rng.standard_normal((2, c, 9, 7)).astype(np.float32)
        w = rng.standard_normal((5, c, k, k)).astype(np.float32)
        b = rng.standard_normal(5).astype(np.float32)
        got = kernel.conv2d(x, w, b, stride, pad)
        want = tiled_conv2d_reference(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                      stride, pad)
        worst = max(worst, float(np.abs(got - want).max()))
    print("MAXERR", worst)
"""


def _run_asan(*libs_and_configs):
    args = []
    for lib, config in libs_and_configs:
        fields = ("tile_w", "tile_h", "cout_tile", "const_floats", "max_k", "max_stride")
        args += [str(lib), repr({f: getattr(config, f) for f in fields})]
    src = str(pathlib.Path(__file__).resolve().parents[1] / "src")
    env = asan_env()
    env["PYTHONPATH"] = src + ":" + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", ASAN_SCRIPT, *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _mutant(tmp_path, old, new, count=1):
    """A copy of cuda/ with one planted bug in tiled_conv2d.cu."""
    d = tmp_path / "mutant"
    shutil.copytree(cuda_dir(), d)
    src = (d / "tiled_conv2d.cu").read_text()
    assert src.count(old) >= count, f"mutation target {old!r} not in the kernel"
    (d / "tiled_conv2d.cu").write_text(src.replace(old, new, count))
    return d


def test_asan_build_clean(build_dir):
    proc = _run_asan(*[(build_shim(cfg, sanitize="address", cache_dir=build_dir, opt=FAST), cfg)
                       for cfg in (SMALL, TIGHT)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    errors = [float(e) for e in re.findall(r"MAXERR (\S+)", proc.stdout)]
    assert len(errors) == 2 and max(errors) <= 1e-4, proc.stdout


def test_asan_catches_halo_read_past_the_image(tmp_path):
    d = _mutant(tmp_path, "iy >= 0 && iy < H", "iy >= 0 && iy <= H")
    proc = _run_asan((build_shim(SMALL, sanitize="address", source_dir=d, cache_dir=tmp_path, opt=FAST), SMALL))
    assert proc.returncode != 0
    assert "heap-buffer-overflow" in proc.stderr


def test_asan_catches_shared_tile_overflow(tmp_path):
    d = _mutant(tmp_path, "i < nc * plane;", "i <= nc * plane;")
    proc = _run_asan((build_shim(TIGHT, sanitize="address", source_dir=d, cache_dir=tmp_path, opt=FAST), TIGHT))
    assert proc.returncode != 0
    assert "global-buffer-overflow" in proc.stderr


def test_off_by_one_halo_width_is_caught(tmp_path, rng):
    d = _mutant(tmp_path, "const int in_w = (TILE_W - 1) * stride + KW;",
                "const int in_w = (TILE_W - 1) * stride + KW - 1;")
    kernel = ShimKernel(build_shim(SMALL, source_dir=d, cache_dir=tmp_path, opt=FAST), SMALL)
    x, w, b = _case(rng, 1, 3, 9, 10, 4, 3)
    assert np.abs(kernel.conv2d(x, w, b, 1, 1) - _torch(x, w, b, 1, 1)).max() > 1e-2


def test_missing_syncthreads_is_caught(tmp_path, rng):
    d = _mutant(tmp_path, "        __syncthreads();\n\n        for (int c = 0", "\n        for (int c = 0")
    kernel = ShimKernel(build_shim(SMALL, source_dir=d, cache_dir=tmp_path, opt=FAST), SMALL)
    x, w, b = _case(rng, 2, 5, 13, 11, 7, 3)
    assert np.abs(kernel.conv2d(x, w, b, 1, 1) - _torch(x, w, b, 1, 1)).max() > 1e-2


NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if pathlib.Path("/usr/local/bin/nvcc").exists() else None)


@pytest.mark.skipif(NVCC is None, reason="nvcc not installed")
@pytest.mark.parametrize("config", [KernelConfig(), KernelConfig(tile_w=32, tile_h=8, cout_tile=16)],
                         ids=["default", "32x8x16"])
def test_nvcc_compiles_kernel_with_resource_usage(tmp_path, config):
    proc = subprocess.run([NVCC, "-cubin", "-arch=sm_90", "--resource-usage", *config.defines(),
                           "-o", str(tmp_path / "k.cubin"), str(cuda_dir() / "tiled_conv2d.cu")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = proc.stdout + proc.stderr
    m = re.search(r"Used (\d+) registers.*?(\d+) bytes smem", report)
    assert m, report
    registers, smem = int(m.group(1)), int(m.group(2))
    assert smem == 4 * config.smem_floats <= 48 * 1024  # static shared memory limit per block
    assert registers <= 255
    assert "0 bytes spill stores" in report
    assert (tmp_path / "k.cubin").stat().st_size > 0


def test_tiled_shim_backend_forward_and_backward(tmp_path, monkeypatch):
    from deep_perception.ops import BackendConv2d
    from deep_perception.ops.shim import default_shim

    monkeypatch.setenv("DP_CACHE", str(tmp_path))
    default_shim.cache_clear()
    torch.manual_seed(0)
    conv = BackendConv2d(3, 5, 3, stride=2, padding=1, backend="tiled_shim")
    ref = torch.nn.Conv2d(3, 5, 3, stride=2, padding=1)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(2, 3, 9, 8, requires_grad=True)
    xr = x.detach().clone().requires_grad_(True)
    out, want = conv(x), ref(xr)
    assert (out - want).abs().max() <= 1e-4
    out.square().sum().backward()
    want.square().sum().backward()
    assert torch.allclose(x.grad, xr.grad, atol=1e-3)
    default_shim.cache_clear()
