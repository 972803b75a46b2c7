"""Where the kernel sources live: ``cuda/`` in the repository, or ``$DP_CUDA_DIR`` (installed share dir)."""

import os
import pathlib

KERNEL_FILE = "tiled_conv2d.cu"


def cuda_dir() -> pathlib.Path:
    """Directory holding tiled_conv2d.cu, cpu_shim.h and cpu_runner.cpp."""
    candidates = []
    if os.environ.get("DP_CUDA_DIR"):
        candidates.append(pathlib.Path(os.environ["DP_CUDA_DIR"]))
    here = pathlib.Path(__file__).resolve()
    candidates.append(here.parents[3] / "cuda")  # source checkout: src/deep_perception/ops/ -> repo
    candidates.append(here.parents[2] / "cuda")
    for d in candidates:
        if (d / KERNEL_FILE).is_file():
            return d
    raise FileNotFoundError(f"{KERNEL_FILE} not found in {[str(c) for c in candidates]}; set DP_CUDA_DIR")


def kernel_source() -> str:
    return (cuda_dir() / KERNEL_FILE).read_text()
