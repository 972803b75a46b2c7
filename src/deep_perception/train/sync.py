"""Synchronous data-parallel SGD over MPI (mpi4py buffer collectives, no pickling of tensors).

Every rank holds the whole model and optimiser. Each step, rank r computes on its disjoint slice of
the global batch (engine.global_batches / rank_share: same seeded permutation everywhere), weights
its loss by its share of the global batch, and the gradient buckets (train.flat.GradBuckets: a few
contiguous float32 tensors that ``p.grad`` views into) are summed in place with ``Allreduce``. The
weighted sum is the mean over the global batch, so every rank applies the same update and K ranks ×
batch B follow 1 rank × batch K·B on the same samples (up to float rounding of the summation order).

Batch normalisation (the documented choice): the forward pass normalises with each rank's LOCAL
batch statistics (as torch DDP does without SyncBatchNorm), so with batch-norm layers K×B is not
bit-for-bit 1×K·B; the running statistics are averaged across ranks after every step, so all ranks
keep identical buffers and the running mean equals the single-process one for equal shares.
Dropout draws from per-rank seeds, so models with dropout also differ from the single-process run.
"""

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


def run_sync(trainer, comm):
    """Train ``trainer`` with the synchronous all-reduce over ``comm``; rank 0 returns test metrics."""
    from deep_perception.train.engine import train_data_parallel

    sync = SyncAllreduce(comm, trainer.model)
    sync.broadcast_model(trainer.model)
    return train_data_parallel(trainer, sync)
