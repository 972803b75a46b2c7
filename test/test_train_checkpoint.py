"""Checkpoint .pt + .json sidecar: sidecar written first, .pt renamed into place last; verify=True
detects a sidecar that does not belong to the .pt (a save interrupted between the two renames)."""

import json
import os

import pytest
import torch

import deep_perception.fileio as fileio
from deep_perception.train.checkpoint import file_sha256, load_checkpoint, save_checkpoint


def _state(value):
    return {"w": torch.full((4,), float(value))}


def test_sidecar_matches_and_verify_passes(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, _state(1), {"task": "t"}, epoch=1, step=10)
    sidecar = json.loads((tmp_path / "last.pt.json").read_text())
    assert sidecar["sha256"] == file_sha256(path) and sidecar["epoch"] == 1 and sidecar["task"] == "t"
    ckpt = load_checkpoint(path, verify=True)
    assert ckpt["epoch"] == 1 and ckpt["metadata"] == {"task": "t"}
    os.unlink(tmp_path / "last.pt.json")
    assert load_checkpoint(path, verify=True)["step"] == 10  # no sidecar: nothing to check


def test_crash_before_pt_rename_is_detected(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, _state(1), {}, epoch=1)
    real_replace = os.replace
    order = []

    def crash_on_pt(src, dst):
        order.append(os.path.basename(dst))
        if str(dst).endswith(".pt"):
            raise OSError("simulated crash before the .pt rename")
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", crash_on_pt)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, _state(2), {}, epoch=2)
    monkeypatch.undo()
    assert order == ["last.pt.json", "last.pt"]  # sidecar first, then the .pt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "last.pt.json"]  # no temp left
    old = load_checkpoint(path)  # the previous complete checkpoint is intact
    assert old["epoch"] == 1 and torch.equal(old["state_dict"]["w"], _state(1)["w"])
    assert json.loads((tmp_path / "last.pt.json").read_text())["epoch"] == 2
    with pytest.raises(ValueError, match="does not match its sidecar"):
        load_checkpoint(path, verify=True)
    save_checkpoint(path, _state(3), {}, epoch=3)  # the next save makes the pair consistent again
    assert load_checkpoint(path, verify=True)["epoch"] == 3


def test_unreadable_sidecar_is_reported(tmp_path):
    path = tmp_path / "best.pt"
    save_checkpoint(path, _state(0), {})
    (tmp_path / "best.pt.json").write_text("{not json")
    with pytest.raises(ValueError, match="best.pt.json"):
        load_checkpoint(path, verify=True)
    assert load_checkpoint(path)["epoch"] == 0
