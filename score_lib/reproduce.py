"""Did this machine reproduce a recorded table? Two ablation recordings compared seed by seed.

A table run again from the same base with the same settings should repeat every per-seed number: the runs
replay their seeds, and the recorded tables did repeat bit for bit on two CPU kinds (RESULTS.md). Where a
number moves (another base build, another torch, a changed default), the comparison says which rows and
metrics moved, by how much, and whether the move clears its standard error (paired by seed, as the findings
check pairs methods). Input: two `score ablate --json` recordings (findings.load reads either form).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .findings import paired_se, seeds_of
from .reevaluate import REEVALUATED


@dataclass
class Moved:
    method: str
    metric: str
    recorded: list[float]
    again: list[float]

    @property
    def diff(self) -> float:
        return (math.fsum(self.again) - math.fsum(self.recorded)) / len(self.again)

    @property
    def se(self) -> float:
        """Paired by seed over two or more seeds; one seed has no spread to measure (0)."""
        return paired_se(self.again, self.recorded) if len(self.again) > 1 else 0.0


def compare(recorded: dict, again: dict) -> tuple[int, list[Moved], list[str]]:
    """(per-seed lists equal, the lists that moved, notes on what the two did not share). Only the methods,
    metrics and seeds both recordings hold are compared; the notes name the rest and any difference in the
    base or the evaluation, which would explain a move."""
    notes = []
    meta_a, meta_b = recorded.get("_meta", {}), again.get("_meta", {})
    for key, what in (("eval", "evaluation"), ("model_weights", "base weights"), ("model_build", "base build"),
                      ("world", "world")):
        same = (lambda v: v.removesuffix(REEVALUATED)) if key == "eval" else (lambda v: v)  # one protocol either way
        if meta_a.get(key) and meta_b.get(key) and same(meta_a[key]) != same(meta_b[key]):
            notes.append(f"{what}: {meta_a[key]!r} recorded, {meta_b[key]!r} again")
    methods = [m for m in recorded if not m.startswith("_") and m in again]
    only = sorted(set(m for m in {**recorded, **again} if not m.startswith("_")) - set(methods))
    if only:
        notes.append(f"in one recording only (not compared): {', '.join(only)}")
    if not methods:
        raise ValueError("the two recordings share no method: nothing to compare")
    equal, moved = 0, []
    for m in methods:
        a, b = recorded[m], again[m]
        for key in [k for k, v in a.items() if isinstance(v, dict) and "per_seed" in v
                    and isinstance(b.get(k), dict) and "per_seed" in b[k]]:
            sa, sb = seeds_of(a, key), seeds_of(b, key)
            both = [s for s in sa if s in sb]
            xa = [a[key]["per_seed"][sa.index(s)] for s in both]
            xb = [b[key]["per_seed"][sb.index(s)] for s in both]
            if None in xa or None in xb or not both:  # a rate with no case in some seed: nothing to pair
                continue
            if xa == xb:
                equal += 1
            else:
                moved.append(Moved(m, key, xa, xb))
        if seeds_of(a, "delta") != seeds_of(b, "delta"):
            notes.append(f"{m}: seeds {seeds_of(a, 'delta')} recorded, {seeds_of(b, 'delta')} again; "
                         "compared on the seeds both hold")
    if not equal and not moved:
        raise ValueError(f"the two recordings share no seed of the methods both hold ({', '.join(methods)}): "
                         "nothing to compare")
    return equal, moved, notes


def markdown(recorded_name: str, again_name: str, equal: int, moved: list[Moved], notes: list[str]) -> str:
    """A verdict line, then one row per per-seed list that moved, largest move first."""
    total = equal + len(moved)
    if not moved:
        head = f"{again_name} repeats {recorded_name}: all {total} per-seed lists equal."
    else:
        # one seed of k moved: |diff| equals its SE in exact arithmetic, and rounding must not decide it
        clear = sum(abs(x.diff) > x.se * (1 + 1e-9) for x in moved)
        head = (f"{again_name} against {recorded_name}: {equal} of {total} per-seed lists equal; {len(moved)} moved, "
                f"{clear} of them by more than their standard error (paired by seed).")
    lines = [head] + [f"- {n}" for n in notes]
    if moved:
        lines += ["", "| method | metric | recorded (per seed) | again (per seed) | difference | SE |",
                  "|---|---|---|---|---|---|"]
        for x in sorted(moved, key=lambda x: -abs(x.diff)):
            lines.append(f"| {x.method} | {x.metric} | {', '.join(f'{v:.4f}' for v in x.recorded)} | "
                         f"{', '.join(f'{v:.4f}' for v in x.again)} | {x.diff:+.4f} | {x.se:.4f} |")
    return "\n".join(lines) + "\n"
