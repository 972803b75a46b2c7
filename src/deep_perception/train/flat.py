"""Contiguous storage for a model's gradients, parameters and buffers, so MPI moves plain buffers.

``GradBuckets`` makes every ``p.grad`` a view into a few flat float32 tensors (buckets); backward
accumulates straight into them, so an all-reduce or a push needs no copy and no pickling.
``FlatParams`` does the same for the parameters themselves (the parameter server sends and receives
them in place). ``BufferVector`` copies the (small) module buffers, e.g. batch-norm running
statistics, in and out of one float64 vector (float64 keeps integer counters exact).
"""

import torch


def trainable(model):
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.dtype != torch.float32:
            raise TypeError(f"only float32 parameters are supported, got {p.dtype} {tuple(p.shape)}")
    return params


class GradBuckets:
    """Gradients as views into contiguous buckets of at least ``bucket_mb`` MiB each (the last may be
    smaller; a bucket is closed by the parameter that makes it reach the size).

    Buckets follow the reverse parameter order (the order backward produces gradients). Never call
    ``optimizer.zero_grad()`` (it would drop the views); call :meth:`zero`.
    """

    def __init__(self, model, bucket_mb=8.0):
        self.params = trainable(model)
        limit = max(1, int(bucket_mb * (1 << 20) / 4))
        groups, current, size = [], [], 0
        for p in reversed(self.params):
            current.append(p)
            size += p.numel()
            if size >= limit:  # close a bucket once it holds at least bucket_mb (as DDP does)
                groups.append(current)
                current, size = [], 0
        if current:
            groups.append(current)
        self.buckets = []
        self._views = []
        for group in groups:
            bucket = torch.zeros(sum(p.numel() for p in group), dtype=torch.float32)
            offset = 0
            for p in group:
                view = bucket[offset:offset + p.numel()].view_as(p)
                p.grad = view
                self._views.append((p, view))
                offset += p.numel()
            self.buckets.append(bucket)
        self.numel = sum(b.numel() for b in self.buckets)

    def zero(self):
        for bucket in self.buckets:
            bucket.zero_()

    def ensure_views(self):
        """Re-attach views if autograd replaced a ``.grad`` (copying its values into the bucket)."""
        for p, view in self._views:
            if p.grad is None:
                view.zero_()
                p.grad = view
            elif p.grad.data_ptr() != view.data_ptr():
                view.copy_(p.grad)
                p.grad = view

    def scale_(self, factor):
        for bucket in self.buckets:
            bucket.mul_(factor)

    def copy_from(self, flat):
        """Fill the buckets from one flat vector laid out like :meth:`flat_layout` (bucket order)."""
        offset = 0
        for bucket in self.buckets:
            bucket.copy_(flat[offset:offset + bucket.numel()])
            offset += bucket.numel()


class FlatParams:
    """Parameters as views into one contiguous float32 tensor ``self.flat`` (same order as the model)."""

    def __init__(self, model):
        self.params = trainable(model)
        self.flat = torch.zeros(sum(p.numel() for p in self.params), dtype=torch.float32)
        offset = 0
        with torch.no_grad():
            for p in self.params:
                n = p.numel()
                self.flat[offset:offset + n].copy_(p.reshape(-1))
                p.data = self.flat[offset:offset + n].view_as(p)
                offset += n
        self.numel = self.flat.numel()


class BufferVector:
    """Copy a model's buffers (running statistics, counters) to and from one float64 vector."""

    def __init__(self, model):
        self.buffers = [b for b in model.buffers()]
        self.numel = sum(b.numel() for b in self.buffers)
        self.vector = torch.zeros(self.numel, dtype=torch.float64)
        self.float_mask = torch.zeros(self.numel, dtype=torch.bool)
        offset = 0
        for b in self.buffers:
            if b.is_floating_point():
                self.float_mask[offset:offset + b.numel()] = True
            offset += b.numel()

    def gather(self):
        """Model buffers → ``self.vector`` (returned)."""
        offset = 0
        for b in self.buffers:
            self.vector[offset:offset + b.numel()].copy_(b.reshape(-1))
            offset += b.numel()
        return self.vector

    def scatter(self, vector=None):
        """``vector`` (default ``self.vector``) → model buffers."""
        vector = self.vector if vector is None else vector
        offset = 0
        with torch.no_grad():
            for b in self.buffers:
                b.copy_(vector[offset:offset + b.numel()].view_as(b).to(b.dtype))
                offset += b.numel()
