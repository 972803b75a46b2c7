"""The training engine shared by every mode: model, data order, optimiser, evaluation, checkpoints.

``Trainer`` holds the state of one process (task, model, optimiser, schedule, history) and the
rank-0 duties (validation each epoch, keeping the best model on the VALIDATION score, checkpoints,
metrics JSON, curves, final test evaluation). ``train_data_parallel`` is the epoch loop of the
single-process mode and of the synchronous MPI mode (``sync.py`` supplies the all-reduce); the
asynchronous parameter server (``async_ps.py``) drives the same ``Trainer`` from its own loop.

Data order is a function of (seed, epoch) only, and every epoch reseeds torch/numpy from
(seed, epoch, rank): a run resumed from an epoch checkpoint repeats an uninterrupted run exactly.
"""

import json
import logging
import math
import os
import random
import time

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data._utils.collate import default_collate

from deep_perception.fileio import write_json
from deep_perception.train.checkpoint import load_checkpoint, save_checkpoint
from deep_perception.train.flat import GradBuckets
from deep_perception.train.optim import build_optimizer, build_scheduler, current_lr
from deep_perception.train.task import build_task, eval_mode, register_task

log = logging.getLogger("deep_perception.train")


def epoch_seed(seed, epoch, rank=0):
    """A distinct, reproducible seed for (run seed, epoch, rank)."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(rank)]).generate_state(1)[0])


def seed_everything(seed):
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    random.seed(seed)


def epoch_order(n, seed, epoch):
    """The permutation of ``range(n)`` used by every rank in ``epoch``."""
    return np.random.default_rng([int(seed), int(epoch), 7919]).permutation(n)


def global_batches(n, global_batch, seed, epoch, drop_last=True, max_steps=None):
    """Index arrays of the epoch's global batches (the samples one optimiser step sees in total)."""
    order = epoch_order(n, seed, epoch)
    stop = (n // global_batch) * global_batch if drop_last else n
    batches = [order[i:i + global_batch] for i in range(0, stop, global_batch)]
    return batches[:max_steps] if max_steps else batches


def rank_share(batch, rank, per_rank):
    """Rank ``rank``'s disjoint slice of a global batch."""
    return batch[rank * per_rank:(rank + 1) * per_rank]


def collate(dataset, indices):
    return default_collate([dataset[int(i)] for i in indices])


def iterate_batches(dataset, index_lists, num_workers=0):
    """Yield collated batches for ``index_lists`` in order; an empty list yields ``None``."""
    if num_workers <= 0:
        for idx in index_lists:
            yield collate(dataset, idx) if len(idx) else None
        return
    nonempty = [list(map(int, idx)) for idx in index_lists if len(idx)]
    loader = DataLoader(dataset, batch_sampler=nonempty, num_workers=num_workers)
    it = iter(loader)
    for idx in index_lists:
        yield next(it) if len(idx) else None


def _progress(iterable, total, enabled, desc):
    if not enabled:
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


class Trainer:
    """State and rank-0 duties of one training process (see module docstring)."""

    def __init__(self, config, rank=0, world_size=1, mode="none"):
        self.config = config
        self.rank, self.world_size, self.mode = rank, world_size, mode
        self.train_cfg = config["train"]
        self.seed = int(config["seed"])
        self.output = config["output"]
        torch.set_num_threads(int(config["threads"]))
        seed_everything(self.seed)
        if config.get("task_target"):  # plugin tasks: "module:Class" registered under config['task']
            register_task(config["task"], config["task_target"])
        self.task = build_task(config)
        self.model = self.task.build_model()
        self.grads = GradBuckets(self.model, config["distributed"]["bucket_mb"])
        self.optimizer = build_optimizer(self.model.parameters(), config["optimizer"])
        self.scheduler = build_scheduler(self.optimizer, config["schedule"])
        self.datasets = self.task.datasets()
        if len(self.datasets.get("train", ())) == 0:
            raise ValueError(f"task {config['task']!r}: the training set is empty")
        self.epoch = 0          # completed epochs
        self.step = 0           # optimiser steps
        self.history = []
        self.best = {"epoch": None, "score": -math.inf}
        self.extra_metrics = {}
        self.is_chief = rank == 0

    # ---------------------------------------------------------------- checkpoints
    def _extra(self):
        return {
            "scheduler": self.scheduler.state_dict(),
            "history_json": json.dumps(self.history),
            "best_json": json.dumps(self.best),
            "run_metrics_json": json.dumps(self.extra_metrics.get("run", {})),
            "mode": self.mode,
            "world_size": self.world_size,
        }

    def metadata(self):
        meta = dict(self.task.metadata())
        meta.update({"config": self.config, "mode": self.mode, "world_size": self.world_size})
        return meta

    def save(self, name):
        path = os.path.join(self.output, name)
        save_checkpoint(path, self.model.state_dict(), self.metadata(),
                        optimizer=self.optimizer.state_dict(), epoch=self.epoch, step=self.step,
                        extra=self._extra())
        return path

    def resume(self, path):
        """Restore model, optimiser, schedule, history and counters from a checkpoint."""
        ckpt = load_checkpoint(path)
        self.model.load_state_dict(ckpt["state_dict"])
        if "optimizer" not in ckpt:
            raise ValueError(f"{path}: no optimiser state, cannot resume training from it")
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if "scheduler" in ckpt:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.history = json.loads(ckpt.get("history_json", "[]"))
        self.best = json.loads(ckpt.get("best_json", '{"epoch": null, "score": null}'))
        if self.best.get("score") is None:
            self.best["score"] = -math.inf
        self.extra_metrics["run"] = json.loads(ckpt.get("run_metrics_json", "{}"))
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        return ckpt

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, split):
        dataset = self.datasets.get(split)
        if dataset is None or len(dataset) == 0:
            return None
        loader = DataLoader(dataset, batch_size=int(self.train_cfg["eval_batch_size"]), shuffle=False,
                            num_workers=int(self.train_cfg["num_workers"]))
        with eval_mode(self.model):
            metrics = self.task.evaluate(self.model, loader)
        return {k: float(v) for k, v in metrics.items()}

    # ---------------------------------------------------------------- epoch bookkeeping (rank 0)
    def end_epoch(self, train_stats, seconds, samples):
        """Rank 0: validate, step the schedule, record, checkpoint (last + best), write metrics."""
        lr = current_lr(self.optimizer)
        self.epoch += 1
        self.scheduler.step()
        record = {"epoch": self.epoch, "step": self.step, "lr": lr, "seconds": seconds,
                  "samples_per_s": samples / seconds if seconds > 0 else None}
        count = train_stats.pop("_count", 0)
        loss_sum = train_stats.pop("_loss_sum", 0.0)
        record["train_loss"] = loss_sum / count if count else None
        for key, value in train_stats.items():
            record["train_" + key] = value
        if "correct" in train_stats and "count" in train_stats and train_stats["count"]:
            record["train_accuracy"] = train_stats["correct"] / train_stats["count"]
        val = self.evaluate("val")
        if val is not None:
            record.update({"val_" + k: v for k, v in val.items()})
        record.update(self.extra_metrics.pop("epoch", {}))
        self.history.append(record)
        score = None if val is None else val.get("score")
        improved = score is not None and score > self.best["score"]
        if improved:
            self.best = {"epoch": self.epoch, "score": score}
        self.save("last.pt")
        if improved:
            self.save("best.pt")
        self.write_metrics()
        return record

    def finish(self):
        """Rank 0: evaluate the best-on-validation model on the test split; final metrics + curves."""
        best_path = os.path.join(self.output, "best.pt")
        source = "last"
        if os.path.isfile(best_path):
            self.model.load_state_dict(load_checkpoint(best_path)["state_dict"])
            source = "best"
        test = self.evaluate("test")
        self.write_metrics(test=test, test_model=source)
        try:
            from deep_perception.viz.curves import plot_training_curves
            plot_training_curves(self.history, os.path.join(self.output, "curves.png"),
                                 title=f"{self.config['task']} ({self.mode}, {self.world_size} proc)")
        except Exception as exc:  # a plotting problem must not fail a finished training run
            log.warning("could not draw training curves: %s", exc)
        return test

    def write_metrics(self, test=None, test_model=None):
        best = dict(self.best)
        if best["score"] == -math.inf:
            best["score"] = None
        metrics = {"task": self.config["task"], "mode": self.mode, "world_size": self.world_size,
                   "epochs": self.history, "best": best, "steps": self.step,
                   "config": self.config}
        metrics.update(self.extra_metrics.get("run", {}))
        if test is not None:
            metrics["test"] = test
            metrics["test_model"] = test_model
        write_json(os.path.join(self.output, "metrics.json"), metrics)

    # ---------------------------------------------------------------- one optimiser step's work
    def forward_backward(self, batch, weight):
        """Loss × ``weight`` backward into the gradient buckets; returns (loss, stats)."""
        loss, stats = self.task.loss(self.model, batch)
        (loss * weight).backward()
        self.grads.ensure_views()
        return float(loss.detach()), stats


def _add_stats(total, stats, loss, n):
    total["_loss_sum"] = total.get("_loss_sum", 0.0) + loss * n
    total["_count"] = total.get("_count", 0) + n
    for key, value in stats.items():
        total[key] = total.get(key, 0) + float(value)


def data_parallel_step(trainer, batch, n_local, n_global, sync=None, totals=None):
    """One optimiser step on this rank's ``batch`` (``None`` if its share is empty) of a global batch
    of ``n_global`` samples; returns the local loss (None without a batch)."""
    trainer.grads.zero()
    if sync is not None:
        sync.before_backward(trainer.grads)
    loss = None
    if batch is not None:
        loss, stats = trainer.forward_backward(batch, n_local / n_global)
        if totals is not None:
            _add_stats(totals, stats, loss, n_local)
    if sync is not None:
        sync.allreduce(trainer.grads)
    trainer.optimizer.step()
    trainer.step += 1
    return loss


def train_data_parallel(trainer, sync=None):
    """Epoch loop of the single-process mode (``sync`` None) and of the MPI sync mode.

    Each optimiser step consumes one global batch of ``world_size × batch_size`` samples; rank r
    computes on its slice, its loss is weighted by its share of the global batch and the gradients
    are summed across ranks (``sync.allreduce``), which is exactly the mean over the global batch.
    """
    cfg = trainer.train_cfg
    rank, size = trainer.rank, trainer.world_size
    per_rank = int(cfg["batch_size"])
    dataset = trainer.datasets["train"]
    epochs = int(cfg["epochs"])
    trainer.model.train()
    while trainer.epoch < epochs:
        epoch = trainer.epoch
        seed_everything(epoch_seed(trainer.seed, epoch, rank))
        trainer.task.on_epoch_start(trainer.model, epoch)
        batches = global_batches(len(dataset), per_rank * size, trainer.seed, epoch,
                                 drop_last=bool(cfg.get("drop_last", True)),
                                 max_steps=cfg.get("max_steps_per_epoch"))
        if not batches:
            raise ValueError(f"training set of {len(dataset)} samples gives no batch of "
                             f"{per_rank * size} (lower train.batch_size or set train.drop_last: false)")
        mine = [rank_share(b, rank, per_rank) for b in batches]
        totals, samples, start = {}, 0, time.perf_counter()
        bar = _progress(zip(batches, iterate_batches(dataset, mine, int(cfg["num_workers"]))),
                        len(batches), trainer.is_chief and cfg.get("progress", True),
                        f"epoch {epoch + 1}/{epochs}")
        for global_batch, batch in bar:
            loss = data_parallel_step(trainer, batch, len(rank_share(global_batch, rank, per_rank)),
                                      len(global_batch), sync, totals)
            if loss is not None and trainer.is_chief and hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss:.4f}")
            samples += len(global_batch)
        seconds = time.perf_counter() - start
        if sync is not None:
            # running statistics are exponential moving averages, linear in the batch statistics:
            # averaging them once per epoch equals averaging after every step, one collective fewer
            sync.average_buffers(trainer.model)
            totals = sync.sum_stats(totals)
        if trainer.is_chief:
            record = trainer.end_epoch(totals, seconds, samples)
            log.info("epoch %d: %s", record["epoch"],
                     {k: v for k, v in record.items() if isinstance(v, (int, float))})
        else:
            trainer.epoch += 1
            trainer.scheduler.step()
    if trainer.is_chief:
        return trainer.finish()
    return None
