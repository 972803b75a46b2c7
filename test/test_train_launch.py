"""The trainer as a ROS node: command building, exit status propagation, launch/train.launch."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from _mpi_helpers import mpi_available, train_env
from conftest import REPO
from deep_perception.train.launcher import in_workdir, launch, run_command, train_command


def test_train_command_shapes(tmp_path):
    cmd = train_command("c.yaml", 3, "async", output="out", extra=["--epochs", "2"],
                        python="/venv/bin/python", mpirun="/venv/bin/mpirun")
    assert cmd == ["/venv/bin/mpirun", "-n", "3", "/venv/bin/python", "-m", "mpi4py", "-m",
                   "deep_perception.train", "--config", "c.yaml", "--distributed", "async",
                   "--output", "out", "--epochs", "2"]
    hosts = tmp_path / "hosts"
    hosts.write_text("node1:2\nnode2:2\n")
    cmd = train_command("c.yaml", 4, "sync", hostfile=str(hosts), python="p", mpirun="m")
    assert cmd[:5] == ["m", "-n", "4", "-f", str(hosts)]
    assert train_command("c.yaml", 1, "none", python="p")[:3] == ["p", "-m", "deep_perception.train"]
    with pytest.raises(ValueError, match="async needs np >= 2"):
        train_command("c.yaml", 1, "async")
    with pytest.raises(ValueError, match="mode"):
        train_command("c.yaml", 2, "ring")
    with pytest.raises(FileNotFoundError, match="hostfile"):
        train_command("c.yaml", 2, "sync", hostfile=str(tmp_path / "missing"))


@pytest.mark.skipif(not mpi_available(), reason="mpi4py/mpirun missing")
def test_exit_status_of_a_failed_mpi_training_is_returned(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("task: blobs\noptimizer: {name: sgd, lr: -1}\n")
    cmd = train_command(config, 2, "sync", output=str(tmp_path / "out"), python=sys.executable)
    rc = run_command(cmd, status_path=str(tmp_path / "status.json"), env=train_env())
    assert rc == 2
    assert json.loads((tmp_path / "status.json").read_text())["returncode"] == 2


def test_relative_paths_are_taken_against_the_workdir(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "hosts").write_text("localhost:2\n")
    monkeypatch.chdir(tmp_path)  # a hostfile in the launcher's cwd must not be taken
    assert in_workdir("out/run", work) == str(work / "out" / "run")
    assert in_workdir("/abs/out", work) == "/abs/out" and in_workdir("", work) == ""
    with pytest.raises(FileNotFoundError, match=re.escape(str(work / "hosts"))):
        launch("c.yaml", 2, "sync", hostfile="hosts", workdir=work, mpirun="m")  # not the cwd's
    with pytest.raises(FileNotFoundError, match="workdir"):
        launch("c.yaml", 1, "none", workdir=tmp_path / "missing")


def test_status_lands_beside_the_trainer_output_for_a_relative_output(tmp_path, monkeypatch):
    """The node's cwd (ROS_HOME) differs from the trainer's (workdir): a relative --output must
    put launch_status.json in the same folder as the trainer's metrics.json and checkpoints."""
    work, node_cwd = tmp_path / "work", tmp_path / "ros_home"
    work.mkdir()
    node_cwd.mkdir()
    (work / "cfg.yaml").write_text(
        "task: blobs\ntask_target: _train_tasks:BlobTask\n"
        "train: {epochs: 1, batch_size: 16, progress: false}\nblobs: {n_train: 32}\n")
    monkeypatch.chdir(node_cwd)
    announced = []
    rc = launch("cfg.yaml", 1, "none", output="runs/a", workdir=str(work), python=sys.executable,
                env=train_env(), announce=announced.append)
    out = work / "runs" / "a"
    assert rc == 0 and announced[0][announced[0].index("--output") + 1] == str(out)
    status = json.loads((out / "launch_status.json").read_text())
    assert status["returncode"] == 0 and status["command"] == announced[0]
    assert (out / "metrics.json").exists() and (out / "best.pt").exists()
    assert list(node_cwd.iterdir()) == []


ENV_SH = REPO / "scripts" / "env.sh"
WORKSPACE = REPO / "build" / "catkin_ws" / "devel" / "setup.bash"


@pytest.mark.mpi
@pytest.mark.skipif(not (shutil.which("roslaunch") and WORKSPACE.exists() and mpi_available()),
                    reason="needs roslaunch and the built catkin workspace")
def test_roslaunch_reports_the_trainer_exit_status(tmp_path):
    """A bad config makes the required train_mpi node exit 2: roslaunch prints the exit code and
    shuts the launch down; launch_status.json carries the number for scripts. The output is given
    relative: it is taken against workdir (where the trainer runs), not the node's cwd ROS_HOME."""
    config = tmp_path / "bad.yaml"
    config.write_text("task: blobs\ntrain: {epochs: 0}\n")
    out = tmp_path / "work" / "out"
    out.parent.mkdir()
    script = (f"source {ENV_SH} && export ROS_HOME={tmp_path / 'ros'} && "
              f"roslaunch --disable-title deep_perception train.launch np:=2 mode:=sync "
              f"config:={config} output:=out workdir:={out.parent}")
    env = train_env()
    env.pop("PYTHONPATH")
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, env=env)
    text = proc.stdout + proc.stderr
    assert "train.epochs must be >= 1" in text
    assert "exit code 2" in text and "REQUIRED process [train_mpi" in text
    assert json.loads((out / "launch_status.json").read_text())["returncode"] == 2
    assert not (tmp_path / "ros" / "out").exists()
