"""Allocator setting for conversion processes: reuse freed memory instead of faulting it back in.

Each batch of sampled points allocates megabytes of numpy arrays. glibc gives big freed blocks back
to the OS (munmap / heap trimming), so the next batch page-faults them in again: about 25 faults per
building at 2048 points, each a few microseconds on a busy virtual machine. ``keep_freed_memory()``
raises glibc's mmap threshold to 32 MB and its trim threshold to 256 MB for the calling process, so
freed blocks are reused (peak RSS is unchanged; the process just keeps what it peaked at).
A no-op returning False where the C library has no ``mallopt`` (musl, macOS, Windows).
"""

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

_applied = False


def keep_freed_memory(mmap_threshold=32 << 20, trim_threshold=256 << 20):
    """Set glibc's mmap / trim thresholds once per process; returns True if they are set."""
    global _applied
    if _applied:
        return True
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _applied = mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 and mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
    return _applied
