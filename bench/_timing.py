"""Timing helpers of the benchmarks: interleaved medians, CPU pinning."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil


def timed(fn: Callable[[], Any], n: int) -> float:
    """Seconds per call over n calls."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def compare(cases: dict[str, Callable[[], Any]], n: int, repeats: int) -> dict[str, float]:
    """Median seconds per call of each case.

    The cases run interleaved in short slices (n/10 calls each, 10 x repeats rounds), so
    drift on a shared machine (autovacuum, checkpoints, the other tenant) hits them alike.
    """
    for fn in cases.values():
        timed(fn, max(5, n // 10))  # warm up: prepared statements, caches
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats * 10):
        for name, fn in cases.items():
            samples[name].append(timed(fn, max(1, n // 10)))
    return {name: statistics.median(values) for name, values in samples.items()}


def pin_apart(server_pid: int) -> None:
    """Run the server (and its children) on CPU 0 and this process on CPU 1."""
    server = psutil.Process(server_pid)
    for process in [server, *server.children(recursive=True)]:
        os.sched_setaffinity(process.pid, {0})
    os.sched_setaffinity(0, {1})


def publish(out: str, results: dict[str, Any], lines: list[str]) -> None:
    """Print the report and write it, with the results and the platform, as JSON."""
    print("\n".join(lines))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    platform_facts = {"python": sys.version.split()[0], "machine": platform.machine()}
    path.write_text(json.dumps(platform_facts | results | {"report": lines}, indent=2))
    print(f"\nwrote {path}")
