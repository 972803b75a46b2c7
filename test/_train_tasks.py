"""Small tasks for the trainer's tests (registered through the config's ``task_target``).

``BlobTask`` is a mechanics fixture (equivalence, resume, faults, optimisers): an MLP on a fixed,
seeded Gaussian-blob classification set. It is not evidence of learning anything real; the
convergence test uses the PointNet task on converted CityGML buildings instead.
"""

import os
import time

import numpy as np
import torch
from torch.utils.data import TensorDataset

from deep_perception.train.task import Task


class FaultInjected(RuntimeError):
    pass


class BlobTask(Task):
    name = "blobs"

    def __init__(self, config):
        super().__init__(config)
        self.cfg = config.get("blobs", {})
        self.calls = 0
        self.evaluations = 0

    def _maybe_fail(self, where, count):
        """Raise FaultInjected when config ``blobs.fault`` = {rank, where: loss|evaluate, after}
        matches; the moment is written to ``blobs.fault.stamp`` (the test times the abort from it)."""
        fault = self.cfg.get("fault")
        rank = int(os.environ.get("PMI_RANK", "0"))
        if fault and rank == int(fault["rank"]) and fault.get("where", "loss") == where \
                and count >= int(fault["after"]):
            with open(fault["stamp"], "w") as f:
                f.write(repr(time.time()))
            raise FaultInjected(f"injected fault on rank {rank} in {where} after {count} calls")

    def build_model(self):
        layers = [torch.nn.Linear(8, 32)]
        if self.cfg.get("batchnorm"):
            layers.append(torch.nn.BatchNorm1d(32))
        layers += [torch.nn.Tanh(), torch.nn.Linear(32, 3)]
        return torch.nn.Sequential(*layers)

    def datasets(self):
        rng = np.random.default_rng(int(self.cfg.get("data_seed", 5)))
        centres = rng.normal(0, 2.0, (3, 8))

        def make(n):
            y = rng.integers(0, 3, n)
            x = centres[y] + rng.normal(0, 1.5, (n, 8))
            return TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y))

        n = int(self.cfg.get("n_train", 96))
        return {"train": make(n), "val": make(48), "test": make(48)}

    def loss(self, model, batch):
        self._maybe_fail("loss", self.calls)
        self.calls += 1
        delay = self.cfg.get("slow_ranks", {}).get(int(os.environ.get("PMI_RANK", "0")))
        if delay:
            time.sleep(float(delay))
        x, y = batch
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        correct = (logits.argmax(1) == y).sum().item()
        return loss, {"correct": correct, "count": len(y)}

    @torch.no_grad()
    def evaluate(self, model, loader):
        self._maybe_fail("evaluate", self.evaluations)
        self.evaluations += 1
        correct = total = 0
        loss = 0.0
        for x, y in loader:
            logits = model(x)
            loss += torch.nn.functional.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            total += len(y)
        return {"score": correct / total, "accuracy": correct / total, "loss": loss / total}

    def metadata(self):
        return {"task": "blobs", "classes": ["a", "b", "c"]}
