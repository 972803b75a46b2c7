"""StageTimer under concurrent record/summary, and atomic writes (mode, no leftovers on failure)."""

import os
import threading

import pytest

from deep_perception.fileio import atomic_open, write_json
from deep_perception.timing import StageTimer


def test_summary_while_recording_new_stages():
    timer = StageTimer(window=10)
    stop = threading.Event()
    errors = []

    def summarise():
        while not stop.is_set():
            try:
                timer.summary()
            except Exception as exc:  # noqa: BLE001 - the failure we are looking for
                errors.append(exc)

    t = threading.Thread(target=summarise)
    t.start()
    for i in range(20_000):
        timer.record(f"stage{i % 500}", 0.001)
    stop.set()
    t.join()
    assert not errors
    s = timer.summary()
    assert len(s) == 500 and s["stage0"]["count"] == 10


def test_atomic_write_mode_and_no_leftovers(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert (os.stat(target).st_mode & 0o777) == (0o666 & ~umask)
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as f:
            f.write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text().strip().startswith("{")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
