"""Asynchronous SGD with a parameter server over MPI (rank 0 = server, ranks 1..K-1 = workers).

Protocol (all tensors travel as raw buffers; only the small per-batch stat dict is pickled):

* worker → server ``HDR`` ``[HELLO]`` once at start (the server hands out work once all said hello);
* server → worker ``HDR`` ``[ASSIGN, version, epoch, batch]`` + ``PARAM`` (flat float32 parameters,
  received in place: the worker's parameters are views into that buffer) + ``PBUF`` (buffers, e.g.
  batch-norm running statistics, float64) — or ``HDR`` ``[STOP]``;
* worker → server ``HDR`` ``[GRAD, version used, epoch, batch, samples, loss]`` + ``GRAD`` (flat
  float32 gradient) + ``WBUF`` (the worker's buffers after its forward pass) + ``STATS``.

The server pre-posts one receive per worker and per message kind into that worker's own buffers and
serves whichever header completes (``Waitany``), so messages from different workers never mix and
no worker waits on another. A worker only ever waits for the server, which always answers a push
(next batch, "wait for the epoch to end" by holding the reply, or STOP): no cycle, hence no deadlock
at any speed ratio. Batches are handed out dynamically from the epoch's seeded order, so fast workers
do more of them and every sample is used once per epoch.

Staleness of a push = server version now − version the worker computed on (the server's version
counts applied updates). Pushes staler than ``max_staleness`` are dropped (``drop``) or applied
with the learning rate of that one step scaled by ``(max_staleness + 1) / (staleness + 1)``
(``downweight``; the update, not the gradient, is scaled, so it works for Adam too). The mean,
max, histogram and number dropped go into metrics.json. Batch-norm running statistics: the server adopts the buffers of each
applied push (the worker updated them from the server's own state, as a sequential run would).

At the end of an epoch (all batches handed out and returned) the server validates, steps the
schedule and checkpoints while the workers wait for their next assignment; after the last epoch it
sends STOP to every worker and evaluates the best model on the test split.
"""

import logging
import time

import numpy as np
import torch
from mpi4py import MPI

from deep_perception.train.engine import (collate, epoch_seed, global_batches, seed_everything,
                                          _add_stats)
from deep_perception.train.flat import BufferVector, FlatParams, GradBuckets
from deep_perception.train.optim import staleness_weight, weighted_step

log = logging.getLogger("deep_perception.train")

HELLO, ASSIGN, GRAD, STOP = 1, 2, 3, 4
TAG_HDR, TAG_GRAD, TAG_WBUF, TAG_STATS, TAG_PARAM, TAG_PBUF = 11, 12, 13, 14, 15, 16
HDR_LEN = 8


def _epoch_batches(trainer, epoch):
    cfg = trainer.train_cfg
    return global_batches(len(trainer.datasets["train"]), int(cfg["batch_size"]), trainer.seed, epoch,
                          drop_last=bool(cfg.get("drop_last", True)),
                          max_steps=cfg.get("max_steps_per_epoch"))


class _Flat:
    """Flat views shared by server and workers: params (in place), one gradient bucket, buffers."""

    def __init__(self, trainer):
        self.params = FlatParams(trainer.model)
        trainer.grads = GradBuckets(trainer.model, bucket_mb=1e12)  # one bucket
        self.grad = trainer.grads.buckets[0] if trainer.grads.buckets else torch.zeros(0)
        self.buffers = BufferVector(trainer.model)


def run_worker(trainer, comm):
    flat = _Flat(trainer)
    dataset = trainer.datasets["train"]
    hdr = np.zeros(HDR_LEN, dtype=np.float64)
    comm.Send(np.array([HELLO] + [0] * (HDR_LEN - 1), dtype=np.float64), dest=0, tag=TAG_HDR)
    current_epoch, batches = None, None
    trainer.model.train()
    while True:
        comm.Recv(hdr, source=0, tag=TAG_HDR)
        if int(hdr[0]) == STOP:
            return
        version, epoch, batch_no = int(hdr[1]), int(hdr[2]), int(hdr[3])
        comm.Recv(flat.params.flat.numpy(), source=0, tag=TAG_PARAM)
        if flat.buffers.numel:
            comm.Recv(flat.buffers.vector.numpy(), source=0, tag=TAG_PBUF)
            flat.buffers.scatter()
        if epoch != current_epoch:
            current_epoch = epoch
            seed_everything(epoch_seed(trainer.seed, epoch, trainer.rank))
            trainer.task.on_epoch_start(trainer.model, epoch)
            batches = _epoch_batches(trainer, epoch)
        indices = batches[batch_no]
        trainer.grads.zero()
        loss, stats = trainer.forward_backward(collate(dataset, indices), 1.0)
        out = np.array([GRAD, version, epoch, batch_no, len(indices), loss, 0, 0], dtype=np.float64)
        comm.Send(out, dest=0, tag=TAG_HDR)
        comm.Send(flat.grad.numpy(), dest=0, tag=TAG_GRAD)
        if flat.buffers.numel:
            comm.Send(flat.buffers.gather().numpy(), dest=0, tag=TAG_WBUF)
        comm.send({k: float(v) for k, v in stats.items()}, dest=0, tag=TAG_STATS)


class ParameterServer:
    """Rank 0's loop: apply pushes, hand out batches, end epochs, stop workers."""

    def __init__(self, trainer, comm):
        self.trainer, self.comm = trainer, comm
        self.flat = _Flat(trainer)
        self.workers = list(range(1, comm.Get_size()))
        dist = trainer.config["distributed"]
        self.max_staleness = int(dist["max_staleness"])
        self.policy = dist["staleness_policy"]
        n, nb = self.flat.params.numel, self.flat.buffers.numel
        self.hdr = {w: np.zeros(HDR_LEN, dtype=np.float64) for w in self.workers}
        self.grad = {w: np.zeros(n, dtype=np.float32) for w in self.workers}
        self.wbuf = {w: np.zeros(nb, dtype=np.float64) for w in self.workers}
        self.hdr_req = [comm.Irecv(self.hdr[w], source=w, tag=TAG_HDR) for w in self.workers]
        self.grad_req = {w: comm.Irecv(self.grad[w], source=w, tag=TAG_GRAD) for w in self.workers}
        self.wbuf_req = {w: comm.Irecv(self.wbuf[w], source=w, tag=TAG_WBUF)
                         for w in self.workers if nb}
        self.version = trainer.step
        # counters of the whole run, continued from the checkpoint when resuming
        previous = trainer.extra_metrics.get("run", {}).get("async", {})
        self.histogram = {int(k): v for k, v in previous.get("staleness_histogram", {}).items()}
        self.dropped_total = int(previous.get("pushes_dropped", 0))
        self.pushes_per_worker = {w: int(previous.get("pushes_per_worker", {}).get(str(w), 0))
                                  for w in self.workers}

    # -------------------------------------------------------------- messages to one worker
    def _assign(self, w, batch_no):
        hdr = np.array([ASSIGN, self.version, self.trainer.epoch, batch_no, 0, 0, 0, 0], dtype=np.float64)
        self.comm.Send(hdr, dest=w, tag=TAG_HDR)
        self.comm.Send(self.flat.params.flat.numpy(), dest=w, tag=TAG_PARAM)
        if self.flat.buffers.numel:
            self.comm.Send(self.flat.buffers.gather().numpy(), dest=w, tag=TAG_PBUF)

    def _stop(self, w):
        self.comm.Send(np.array([STOP] + [0] * (HDR_LEN - 1), dtype=np.float64), dest=w, tag=TAG_HDR)

    # -------------------------------------------------------------- one push
    def _apply(self, w, hdr):
        """Receive the rest of worker ``w``'s push and apply it (or drop it); returns stats."""
        self.grad_req[w].Wait()
        if w in self.wbuf_req:
            self.wbuf_req[w].Wait()
        stats = self.comm.recv(source=w, tag=TAG_STATS)
        self.pushes_per_worker[w] += 1
        staleness = self.version - int(hdr[1])
        self.histogram[staleness] = self.histogram.get(staleness, 0) + 1
        scale = staleness_weight(staleness, self.max_staleness, self.policy)
        if scale > 0:
            self.trainer.grads.buckets[0].copy_(torch.from_numpy(self.grad[w]))
            weighted_step(self.trainer.optimizer, scale)  # scales the update (lr), not the gradient
            if w in self.wbuf_req:
                self.flat.buffers.scatter(torch.from_numpy(self.wbuf[w]))
            self.version += 1
            self.trainer.step = self.version
        else:
            self.dropped_total += 1
        self.grad_req[w] = self.comm.Irecv(self.grad[w], source=w, tag=TAG_GRAD)
        if w in self.wbuf_req:
            self.wbuf_req[w] = self.comm.Irecv(self.wbuf[w], source=w, tag=TAG_WBUF)
        return staleness, scale, stats

    # -------------------------------------------------------------- main loop
    def run(self):
        trainer = self.trainer
        epochs = int(trainer.train_cfg["epochs"])
        waiting, stopped, greeted = [], set(), []
        batches, next_batch, returned = None, 0, 0
        epoch_state = None

        def start_epoch():
            nonlocal batches, next_batch, returned, epoch_state
            seed_everything(epoch_seed(trainer.seed, trainer.epoch, 0))
            trainer.task.on_epoch_start(trainer.model, trainer.epoch)
            batches = _epoch_batches(trainer, trainer.epoch)
            if not batches:
                raise ValueError(f"training set of {len(trainer.datasets['train'])} samples gives no "
                                 f"batch of {trainer.train_cfg['batch_size']}")
            next_batch, returned = 0, 0
            epoch_state = {"totals": {}, "samples": 0, "start": time.perf_counter(),
                           "staleness": [], "dropped": 0, "bar": self._bar(len(batches), epochs)}

        def hand_out(w):
            nonlocal next_batch
            if trainer.epoch >= epochs:
                self._stop(w)
                stopped.add(w)
            elif next_batch < len(batches):
                self._assign(w, next_batch)
                next_batch += 1
            else:
                waiting.append(w)

        if trainer.epoch < epochs:
            start_epoch()
        while len(stopped) < len(self.workers):
            index = MPI.Request.Waitany(self.hdr_req)
            w = self.workers[index]
            hdr = self.hdr[w].copy()
            self.hdr_req[index] = self.comm.Irecv(self.hdr[w], source=w, tag=TAG_HDR)
            kind = int(hdr[0])
            if kind == GRAD:
                staleness, scale, stats = self._apply(w, hdr)
                returned += 1
                n = int(hdr[4])
                _add_stats(epoch_state["totals"], stats, float(hdr[5]), n)
                epoch_state["samples"] += n
                epoch_state["staleness"].append(staleness)
                epoch_state["dropped"] += scale == 0.0
                if epoch_state["bar"] is not None:
                    epoch_state["bar"].update(1)
                    epoch_state["bar"].set_postfix(loss=f"{hdr[5]:.4f}", stale=staleness)
            elif kind == HELLO:
                # start only when every worker is up, so a slow starter is not left out of epoch 1
                greeted.append(w)
                if len(greeted) == len(self.workers):
                    for v in greeted:
                        hand_out(v)
                continue
            else:
                raise RuntimeError(f"parameter server: unexpected message kind {kind} from rank {w}")
            hand_out(w)
            if trainer.epoch < epochs and returned == len(batches):
                self._end_epoch(epoch_state)
                if trainer.epoch < epochs:
                    start_epoch()
                ready, waiting[:] = list(waiting), []
                for v in ready:
                    hand_out(v)
        for req in list(self.grad_req.values()) + list(self.wbuf_req.values()) + self.hdr_req:
            req.Cancel()
            req.Wait()
        trainer.extra_metrics["run"] = {"async": self.summary()}
        return trainer.finish()

    def _bar(self, total, epochs):
        if not self.trainer.train_cfg.get("progress", True):
            return None
        from tqdm import tqdm
        return tqdm(total=total, desc=f"epoch {self.trainer.epoch + 1}/{epochs} (async)", leave=False,
                    dynamic_ncols=True)

    def _end_epoch(self, state):
        if state["bar"] is not None:
            state["bar"].close()
        st = state["staleness"]
        self.trainer.extra_metrics["epoch"] = {
            "staleness_mean": float(np.mean(st)) if st else None,
            "staleness_max": int(max(st)) if st else None,
            "pushes_dropped": int(state["dropped"]),
            "pushes": len(st),
        }
        seconds = time.perf_counter() - state["start"]
        self.trainer.extra_metrics["run"] = {"async": self.summary()}  # saved in the checkpoint too
        record = self.trainer.end_epoch(state["totals"], seconds, state["samples"])
        log.info("epoch %d: %s", record["epoch"],
                 {k: v for k, v in record.items() if isinstance(v, (int, float))})

    def summary(self):
        hist = self.histogram
        pushes = sum(hist.values())
        return {"workers": len(self.workers), "max_staleness": self.max_staleness,
                "staleness_policy": self.policy, "pushes": pushes,
                "pushes_dropped": self.dropped_total,
                "pushes_per_worker": {str(w): n for w, n in self.pushes_per_worker.items()},
                "staleness_mean": sum(s * n for s, n in hist.items()) / pushes if pushes else None,
                "staleness_max": max(hist) if hist else None,
                "staleness_histogram": {str(k): v for k, v in sorted(hist.items())}}


def run_async(trainer, comm):
    """Rank 0 serves, the other ranks work; rank 0 returns the test metrics."""
    if comm.Get_size() < 2:
        raise ValueError("async mode needs at least 2 MPI ranks (1 parameter server + workers)")
    if comm.Get_rank() == 0:
        return ParameterServer(trainer, comm).run()
    run_worker(trainer, comm)
    return None
