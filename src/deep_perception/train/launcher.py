"""Start the trainer under the venv's mpirun from another program (the ROS node ``train_mpi``).

The command is ``MPIRUN -n NP [-f HOSTFILE] PYTHON -m mpi4py -m deep_perception.train --config ...``
with the mpirun and python that sit next to the running interpreter (the venv's MPICH), so a launch
file starts exactly what the docs show. The child's exit status is returned unchanged; SIGINT and
SIGTERM are forwarded so that a ``roslaunch`` shutdown stops the whole MPI job.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

from deep_perception.fileio import write_json


def find_mpirun(python=None):
    """The ``mpirun`` beside ``python`` (default: this interpreter), else the one on PATH."""
    python = python or sys.executable
    candidate = os.path.join(os.path.dirname(python), "mpirun")
    if os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("mpirun")
    if not found:
        raise FileNotFoundError(f"no mpirun beside {python} or on PATH (pip install mpich mpi4py)")
    return found


def train_command(config, np_=1, mode="sync", output=None, hostfile=None, extra=(), python=None,
                  mpirun=None):
    """The argv that trains ``config``; mode ``none`` (or np 1 without a hostfile) runs no mpirun."""
    python = python or sys.executable
    if mode not in ("none", "sync", "async"):
        raise ValueError(f"mode must be none, sync or async, got {mode!r}")
    if int(np_) < 1:
        raise ValueError(f"np must be >= 1, got {np_!r}")
    if mode == "async" and int(np_) < 2:
        raise ValueError("mode async needs np >= 2 (a parameter server and at least one worker)")
    if hostfile and not os.path.isfile(hostfile):
        raise FileNotFoundError(f"hostfile not found: {hostfile}")
    train = ["-m", "deep_perception.train", "--config", str(config), "--distributed", mode]
    if output:
        train += ["--output", str(output)]
    train += list(extra)
    if mode == "none":
        return [python] + train
    cmd = [mpirun or find_mpirun(python), "-n", str(int(np_))]
    if hostfile:
        cmd += ["-f", str(hostfile)]
    return cmd + [python, "-m", "mpi4py"] + train


def run_command(cmd, cwd=None, status_path=None, env=None):
    """Run ``cmd``, forwarding SIGINT/SIGTERM; return its exit status (also written to status_path)."""
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, start_new_session=True)

    def forward(signum, _frame):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        rc = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if status_path:
        write_json(status_path, {"command": cmd, "returncode": rc, "seconds": time.time() - start})
    return rc


def in_workdir(path, workdir):
    """``path`` made absolute against ``workdir`` (absolute paths and empty values pass through)."""
    if not path:
        return path
    return os.path.normpath(os.path.join(workdir, os.path.expanduser(str(path))))


def launch(config, np_=1, mode="sync", output=None, hostfile=None, extra=(), workdir=None,
           python=None, mpirun=None, env=None, announce=None):
    """Run the trainer with cwd ``workdir`` (default: this process's cwd) and return its exit status.

    Relative ``output`` and ``hostfile`` are resolved once against ``workdir``, the directory the
    trainer runs in, so ``OUTPUT/launch_status.json`` lands beside the trainer's own outputs (a ROS
    node's cwd is ROS_HOME, not the trainer's). ``announce(cmd)`` is called before the run.
    """
    workdir = os.path.abspath(os.path.expanduser(workdir or os.getcwd()))
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"workdir not found: {workdir}")
    output, hostfile = in_workdir(output, workdir), in_workdir(hostfile, workdir)
    cmd = train_command(config, np_, mode, output or None, hostfile or None, extra, python, mpirun)
    if announce:
        announce(cmd)
    status = os.path.join(output, "launch_status.json") if output else None
    return run_command(cmd, cwd=workdir, status_path=status, env=env)
