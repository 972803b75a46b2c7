"""Per-stage wall-clock timing with rolling statistics (nodes publish it; benches read it)."""

import collections
import threading
import time

import numpy as np


class StageTimer:
    """Collects durations per named stage over the last ``window`` measurements.

    >>> timer = StageTimer()
    >>> with timer.stage("inference"):
    ...     pass
    """

    def __init__(self, window=200):
        self._window = window
        self._samples = {}
        self._lock = threading.Lock()  # the worker records while the diagnostics timer summarises
        self.last = {}

    def stage(self, name):
        return _Stage(self, name)

    def record(self, name, seconds):
        with self._lock:
            if name not in self._samples:
                self._samples[name] = collections.deque(maxlen=self._window)
            self._samples[name].append(seconds)
            self.last[name] = seconds

    def summary(self):
        """``{stage: {"last_ms", "mean_ms", "p50_ms", "p95_ms", "count"}}``."""
        with self._lock:
            snapshot = {name: list(values) for name, values in self._samples.items()}
        out = {}
        for name, values in snapshot.items():
            a = np.asarray(values, dtype=np.float64) * 1e3
            out[name] = {"last_ms": float(a[-1]), "mean_ms": float(a.mean()), "p50_ms": float(np.median(a)),
                         "p95_ms": float(np.percentile(a, 95)), "count": int(a.size)}
        return out


class _Stage:
    __slots__ = ("timer", "name", "t0")

    def __init__(self, timer, name):
        self.timer, self.name = timer, name

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.timer.record(self.name, time.perf_counter() - self.t0)
        return False
