"""Timing shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_rate(n: float, fn: Callable[[], object], repeat: int = 3) -> float:
    """``n`` (items, FLOPs, ...) per second over the fastest of ``repeat`` calls of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best
