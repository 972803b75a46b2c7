"""The contract between the training engines (single process, MPI sync, MPI async) and a task.

A task knows its model, data, loss and metrics; the engines know optimisers, schedules, epochs,
distribution, checkpoints and progress. Tasks are registered by name in ``TASKS`` and built from the
training config (a dict loaded from ``config/<task>.yaml``) as ``TaskClass(config)``.
"""

import contextlib
import importlib
from typing import Dict, Tuple

import torch

# name -> "module:Class"; imported lazily so a task's heavy dependencies load only when used.
TASKS = {
    "pointnet_cls": "deep_perception.tasks.pointnet:PointNetClassificationTask",
    "pointnet_seg": "deep_perception.tasks.pointnet:PointNetSegmentationTask",
    "resnet_image": "deep_perception.tasks.image:ImageClassificationTask",
}


@contextlib.contextmanager
def eval_mode(model):
    """``model.eval()`` inside the block, the previous train/eval state restored afterwards (even on error)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


class Task:
    """Base class of training tasks. Subclasses override every method that raises."""

    name = "task"

    def __init__(self, config: dict):
        self.config = config

    def build_model(self) -> torch.nn.Module:
        """A freshly initialised model (same seed → same weights)."""
        raise NotImplementedError

    def datasets(self) -> Dict[str, torch.utils.data.Dataset]:
        """``{'train': ..., 'val': ..., 'test': ...}``; splits are by file/city, never by random building."""
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, batch) -> Tuple[torch.Tensor, Dict[str, float]]:
        """Forward a training batch; return the scalar loss and summable stats (e.g. correct, count)."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, loader) -> Dict[str, float]:
        """Metrics over a whole loader in eval mode (accuracy, mIoU, ...); larger ``score`` is better."""
        raise NotImplementedError

    def metadata(self) -> dict:
        """JSON-able facts a Predictor needs: task, classes, points, normalisation, input channels."""
        raise NotImplementedError

    def on_epoch_start(self, model: torch.nn.Module, epoch: int) -> None:
        """Hook for schedules that live in the model (e.g. PointNet's batch-norm momentum)."""


def register_task(name: str, target: str) -> None:
    """Register ``module:Class`` under ``name`` (plugins and tests)."""
    TASKS[name] = target


def build_task(config: dict) -> Task:
    """Instantiate the task named by ``config['task']``."""
    name = config.get("task")
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)(config)
