"""Helpers shared by the benchmarks: interleaved timing, results.json merging, machine load.

LoadMeter: how busy the rest of the machine was while a benchmark ran (Linux /proc/stat). On a shared 2-core machine another process's work slows a measurement several-fold (two torch
threads that spin-wait for each other suffer most), so every section records the average number of
cores that other processes kept busy while it ran. Above about 0.2 the numbers are not trustworthy.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"


def interleaved(fns: dict, repeats: int) -> dict:
    """{label: [(seconds, result), ...]}: one untimed warm-up each, then the contenders in turn."""
    for fn in fns.values():
        fn()
    runs = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            out = fn()
            runs[k].append((time.perf_counter() - t, out))
    return runs


def merge_results(new: dict) -> Path:
    """Add/replace `new`'s keys in benchmarks/results.json, keeping every other benchmark's entry."""
    merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    merged.update(new)
    RESULTS.write_text(json.dumps(merged, indent=2) + "\n")
    return RESULTS


def _busy_seconds() -> float | None:
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def _own_seconds() -> float:
    """CPU seconds of this process and of the children it has waited for (a benchmark's own subprocesses
    are its work, not other processes')."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class LoadMeter:
    """`with LoadMeter() as m: ...` then `m.other_cores`: cores used by other processes, on average."""

    def __enter__(self):
        self.t, self.busy, self.own = time.perf_counter(), _busy_seconds(), _own_seconds()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t
        busy = _busy_seconds()
        if busy is None or self.busy is None or wall <= 0:
            self.other_cores = None
        else:
            other = (busy - self.busy) - (_own_seconds() - self.own)
            self.other_cores = round(max(0.0, other) / wall, 2)
        return False
