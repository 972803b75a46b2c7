"""Synchronous data-parallel SGD over MPI (mpi4py buffer collectives, no pickling of tensors).

Every rank holds the whole model and optimiser. Each step, rank r computes on its disjoint slice of
the global batch (engine.global_batches / rank_share: same seeded permutation everywhere), weights
its loss by its share of the global batch, and the gradient buckets (train.flat.GradBuckets: a few
contiguous float32 tensors that ``p.grad`` views into) are summed in place with ``Allreduce``. The
weighted sum is the mean over the global batch, so every rank applies the same update and K ranks ×
batch B follow 1 rank × batch K·B on the same samples (up to float rounding of the summation order).

Batch normalisation (the documented choice): the forward pass normalises with each rank's LOCAL
batch statistics (as torch DDP does without SyncBatchNorm), so with batch-norm layers K×B is not
bit-for-bit 1×K·B; the running statistics are averaged across ranks at the end of every epoch
(before validation and checkpoint). They are exponential moving averages, linear in the batch
statistics, so this equals averaging after every step; all ranks then hold identical buffers.
Dropout draws from per-rank seeds, so models with dropout also differ from the single-process run.

Overlap (``distributed.overlap``, default off): a post-accumulate-grad hook marks a bucket ready as
soon as backward has written all of its gradients, and a communication thread (on a duplicated
communicator, buckets always in the same order on every rank) all-reduces it while backward goes
on with the earlier layers, as DDP does. The arithmetic is the same as the blocking path. MPICH's
shared-memory transport busy-polls, so the thread competes with backward for a core: on the
2-core test machine the blocking path was faster (bench/distributed.py), hence off by default.
"""

import threading

import torch
from mpi4py import MPI

from deep_perception.train.flat import BufferVector


class SyncAllreduce:
    """The collectives the sync mode needs, over ``comm``."""

    def __init__(self, comm, model):
        self.comm = comm
        self.size = comm.Get_size()
        self.buffers = BufferVector(model)

    def broadcast_model(self, model):
        """Make every rank start from rank 0's parameters and buffers."""
        with torch.no_grad():
            for p in model.parameters():
                data = p.data if p.data.is_contiguous() else p.data.contiguous()
                self.comm.Bcast(data.numpy(), root=0)
                if data is not p.data:
                    p.data.copy_(data)
        if self.buffers.numel:
            vec = self.buffers.gather()
            self.comm.Bcast(vec.numpy(), root=0)
            self.buffers.scatter(vec)

    def allreduce(self, grads):
        """Sum each gradient bucket across ranks, in place."""
        for bucket in grads.buckets:
            self.comm.Allreduce(MPI.IN_PLACE, bucket.numpy(), op=MPI.SUM)

    def before_backward(self, grads):
        """Hook for the overlapped variant; the blocking one reduces after backward."""

    def average_buffers(self, model):
        """Average the running statistics across ranks (integer counters are equal everywhere)."""
        if not self.buffers.numel:
            return
        vec = self.buffers.gather()
        self.comm.Allreduce(MPI.IN_PLACE, vec.numpy(), op=MPI.SUM)
        vec /= self.size
        self.buffers.scatter(vec)

    def sum_stats(self, totals):
        """Sum small per-rank stat dicts (epoch totals: pickled, a few numbers once per epoch)."""
        merged = {}
        for part in self.comm.allgather(totals):
            for key, value in part.items():
                merged[key] = merged.get(key, 0) + value
        return merged


class OverlappedAllreduce(SyncAllreduce):
    """Buckets are all-reduced by a communication thread as soon as backward has filled them."""

    def __init__(self, comm, model, grads):
        super().__init__(comm, model)
        self.grads = grads
        self.comm_thread_comm = comm.Dup()
        self.bucket_of = {}
        for index, bucket in enumerate(grads.buckets):
            for p, view in grads._views:
                if bucket.data_ptr() <= view.data_ptr() < bucket.data_ptr() + bucket.numel() * 4:
                    self.bucket_of[p] = index
        sizes = [0] * len(grads.buckets)
        for index in self.bucket_of.values():
            sizes[index] += 1
        self.sizes = sizes
        self.views = dict(grads._views)
        self.active = False
        self.lock = threading.Lock()
        self.ready = [threading.Event() for _ in grads.buckets]
        self.go = threading.Event()
        self.done = threading.Event()
        self.error = None
        for p in self.bucket_of:
            p.register_post_accumulate_grad_hook(self._on_grad)
        threading.Thread(target=self._loop, name="allreduce", daemon=True).start()

    def _on_grad(self, p):
        if not self.active:
            return
        view = self.views[p]
        if p.grad.data_ptr() != view.data_ptr():  # autograd replaced the view: copy back into the bucket
            view.copy_(p.grad)
            p.grad = view
        with self.lock:
            if p in self.seen:
                raise RuntimeError("a parameter received its gradient twice in one backward "
                                   "(shared weights): not supported by the overlapped all-reduce; "
                                   "set distributed.overlap: false")
            self.seen.add(p)
            index = self.bucket_of[p]
            self.missing[index] -= 1
            if self.missing[index] == 0:
                self.ready[index].set()

    def _loop(self):
        while True:
            self.go.wait()
            self.go.clear()
            try:
                for index, bucket in enumerate(self.grads.buckets):
                    self.ready[index].wait()
                    self.comm_thread_comm.Allreduce(MPI.IN_PLACE, bucket.numpy(), op=MPI.SUM)
            except BaseException as exc:  # re-raised on the main thread
                self.error = exc
            self.done.set()

    def before_backward(self, grads):
        for event in self.ready:
            event.clear()
        self.done.clear()
        self.seen = set()
        self.missing = list(self.sizes)
        self.active = True
        self.go.set()

    def allreduce(self, grads):
        """Wait for the buckets (flushing those backward did not complete, e.g. an empty share)."""
        self.active = False
        for event in self.ready:
            event.set()
        self.done.wait()
        if self.error is not None:
            raise RuntimeError("gradient all-reduce failed") from self.error


def build_sync(comm, trainer):
    """The overlapped or the blocking all-reduce, per ``distributed.overlap``."""
    if trainer.config["distributed"].get("overlap", False):
        return OverlappedAllreduce(comm, trainer.model, trainer.grads)
    return SyncAllreduce(comm, trainer.model)


def run_sync(trainer, comm):
    """Train ``trainer`` with the synchronous all-reduce over ``comm``; rank 0 returns test metrics."""
    from deep_perception.train.engine import train_data_parallel

    sync = build_sync(comm, trainer)
    sync.broadcast_model(trainer.model)
    return train_data_parallel(trainer, sync)
