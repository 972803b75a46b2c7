"""Checkpoints: one ``.pt`` file loadable with ``torch.load(weights_only=True)`` plus a JSON sidecar.

The ``.pt`` holds only tensors, numbers and strings: ``state_dict``, ``optimizer`` (optional),
``epoch``, ``step``, ``metadata_json`` (the metadata as a JSON string). The sidecar ``<path>.json``
repeats the metadata for people and tools that do not load torch. Both are written atomically.
"""

import json
import os

import torch

from deep_perception.fileio import atomic_path, file_sha256, write_json  # noqa: F401  (file_sha256 re-exported)


def save_checkpoint(path, state_dict, metadata, optimizer=None, epoch=0, step=0, extra=None):
    """Write a checkpoint atomically. ``metadata`` must be JSON-able; ``optimizer`` a state dict."""
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "metadata_json": json.dumps(metadata, sort_keys=True),
        "epoch": int(epoch),
        "step": int(step),
    }
    if optimizer is not None:
        payload["optimizer"] = optimizer
    if extra:
        payload.update(extra)
    # Sidecar first, .pt last: a crash in between leaves the old .pt beside a sidecar whose sha256
    # names the new one, which load_checkpoint(verify=True) detects; never a new .pt without sidecar.
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
        write_json(str(path) + ".json", {**metadata, "epoch": int(epoch), "step": int(step),
                                         "sha256": file_sha256(tmp)})


def load_checkpoint(path, map_location="cpu", verify=False):
    """Load a checkpoint safely; returns a dict with ``state_dict``, ``metadata`` and the rest.

    ``verify=True`` also checks the file against the sha256 of its ``.json`` sidecar when there is
    one (ValueError on a mismatch: a torn save or a file replaced by hand).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if verify:
        verify_sidecar(path)
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise ValueError(f"{path}: not a deep_perception checkpoint (no state_dict)")
    payload["metadata"] = json.loads(payload.pop("metadata_json", "{}"))
    return payload


def verify_sidecar(path):
    """Raise ValueError if ``<path>.json`` exists and its sha256 is not the file's; True if checked."""
    sidecar = str(path) + ".json"
    if not os.path.isfile(sidecar):
        return False
    try:
        with open(sidecar, encoding="utf-8") as f:
            expected = json.load(f).get("sha256")
    except (OSError, ValueError, AttributeError) as exc:
        raise ValueError(f"{sidecar}: unreadable checkpoint sidecar: {exc}") from exc
    if expected is None:
        return False
    actual = file_sha256(path)
    if actual != expected:
        raise ValueError(f"{path}: sha256 {actual} does not match its sidecar {sidecar} ({expected}); "
                         "the checkpoint and its sidecar are from different saves")
    return True
