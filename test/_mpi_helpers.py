"""Run the trainer under the venv's mpirun from tests, and tidy what an aborted MPICH job leaves."""

import glob
import os
import subprocess
import sys
import time

from conftest import REPO

MPIRUN = REPO / ".venv" / "bin" / "mpirun"
PYTHON = REPO / ".venv" / "bin" / "python"


def mpi_available():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return MPIRUN.exists()


def train_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO / "test")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _mapped_files():
    """Every file some live process has mapped (so we never delete another job's shared memory)."""
    mapped = set()
    for maps in glob.glob("/proc/[0-9]*/maps"):
        try:
            with open(maps) as f:
                for line in f:
                    if "/dev/shm/" in line:
                        mapped.add(line.split()[-1])
        except OSError:
            continue
    return mapped


def cleanup_shm(before):
    """Remove ``/dev/shm/mpich_shm_*`` files created since ``before`` and no longer mapped by anyone."""
    new = set(glob.glob("/dev/shm/mpich_shm_*")) - set(before)
    if not new:
        return []
    in_use = _mapped_files()
    removed = []
    for path in sorted(new - in_use):
        try:
            os.unlink(path)
            removed.append(path)
        except OSError:
            pass
    return removed


def run_trainer(config_path, np_, *args, timeout=240):
    """``mpirun -n np_ python -m mpi4py -m deep_perception.train --config ...``; returns
    (CompletedProcess, seconds). ``np_`` None runs a plain single process."""
    before = glob.glob("/dev/shm/mpich_shm_*")
    cmd = [str(PYTHON)]
    if np_ is not None:
        cmd = [str(MPIRUN), "-n", str(np_), str(PYTHON), "-m", "mpi4py"]
    cmd += ["-m", "deep_perception.train", "--config", str(config_path), *map(str, args)]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=train_env(), capture_output=True, text=True,
                              timeout=timeout)
    finally:
        cleanup_shm(before)
    return proc, time.monotonic() - start


def check(proc):
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
    assert proc.returncode == 0, f"trainer exited {proc.returncode}"
