"""Self-correction metrics for SCoRe Workbench: the single implementation used everywhere.

Every rate is a fraction of all N problems unless a function says otherwise, so that the
headline numbers line up with the paper's tables and with each other.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

from rapidfuzz.distance import Levenshtein

# Order matters only for display; the keys are the contract with the rest of the library.
TRANSITIONS = ("c2c", "c2i", "i2c", "i2i")


def edit_ratio(y1: str, y2: str) -> float:
    """Levenshtein distance between two attempts divided by their combined length.

    Normalising by len(y1) + len(y2) keeps the value in [0, 1] whatever the lengths: the
    distance can never exceed the longer string, which is at most the sum. Two empty
    strings are identical, so they score 0.0 rather than dividing by zero.
    """
    total = len(y1) + len(y2)
    if total == 0:
        return 0.0
    return Levenshtein.distance(y1, y2) / total


def transition(c1: bool, c2: bool) -> str:
    """Name the correctness change from one attempt to the next, e.g. (False, True) -> "i2c"."""
    return ("c" if c1 else "i") + "2" + ("c" if c2 else "i")


def _check_pair(name1: str, xs1: Sequence[Any], name2: str, xs2: Sequence[Any]) -> int:
    """Return the common length of two per-episode sequences, rejecting mismatch or emptiness."""
    if len(xs1) != len(xs2):
        raise ValueError(
            f"length mismatch: {name1} has {len(xs1)} episodes but {name2} has {len(xs2)}"
        )
    if len(xs1) == 0:
        raise ValueError(f"empty input: {name1} and {name2} have no episodes")
    return len(xs1)


def transition_counts(c1: Sequence[bool], c2: Sequence[bool]) -> dict[str, int]:
    """Count episodes per transition; all four keys are present even when a count is zero."""
    if len(c1) != len(c2):
        raise ValueError(f"length mismatch: c1 has {len(c1)} episodes but c2 has {len(c2)}")
    counts = {t: 0 for t in TRANSITIONS}
    for a, b in zip(c1, c2):
        counts[transition(bool(a), bool(b))] += 1
    return counts


def pair_metrics(
    c1: Sequence[bool],
    c2: Sequence[bool],
    y1: Sequence[str] | None = None,
    y2: Sequence[str] | None = None,
    a1: Sequence[str | None] | None = None,
    a2: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """Metrics comparing attempt j (c1, y1, a1) with attempt j+1 (c2, y2, a2) over N episodes.

    Always returns acc_t1, acc_t2, delta, delta_i2c, delta_c2i, fix_rate, break_rate,
    counts and n_problems. With texts it adds edit_ratio_mean, edit_ratio_zero_share and
    edit_ratios; with answers it adds answer_change_rate and its split by attempt j's correctness,
    answer_change_if_right and answer_change_if_wrong. Keys for missing inputs are absent.
    """
    n = _check_pair("c1", c1, "c2", c2)
    counts = transition_counts(c1, c2)
    n_c1 = counts["c2c"] + counts["c2i"]
    n_i1 = counts["i2c"] + counts["i2i"]
    n_c2 = counts["c2c"] + counts["i2c"]
    d_i2c = counts["i2c"] / n
    d_c2i = counts["c2i"] / n
    out: dict[str, Any] = {
        "acc_t1": n_c1 / n,
        "acc_t2": n_c2 / n,
        # Subtracting the two stored floats (not (i2c - c2i) / n) is what makes the table
        # identity delta == delta_i2c - delta_c2i hold bit-exactly; a/n - b/n and (a-b)/n can
        # differ in the last bit. It still equals acc_t2 - acc_t1 to rounding error.
        "delta": d_i2c - d_c2i,
        "delta_i2c": d_i2c,
        "delta_c2i": d_c2i,
        # Conditional rates: undefined (None) rather than 0 when nothing is conditioned on,
        # so callers cannot mistake "no opportunity" for "never happened".
        "fix_rate": counts["i2c"] / n_i1 if n_i1 else None,
        "break_rate": counts["c2i"] / n_c1 if n_c1 else None,
        "counts": counts,
        "n_problems": n,
    }
    if y1 is not None or y2 is not None:
        if y1 is None or y2 is None:
            raise ValueError("texts: give both y1 and y2, or neither")
        _check_pair("c1", c1, "y1", y1)
        _check_pair("y1", y1, "y2", y2)
        ratios = [edit_ratio(a, b) for a, b in zip(y1, y2)]
        out["edit_ratio_mean"] = math.fsum(ratios) / n
        out["edit_ratio_zero_share"] = sum(r == 0.0 for r in ratios) / n
        out["edit_ratios"] = ratios
    if a1 is not None or a2 is not None:
        if a1 is None or a2 is None:
            raise ValueError("answers: give both a1 and a2, or neither")
        _check_pair("c1", c1, "a1", a1)
        _check_pair("a1", a1, "a2", a2)
        # None (no extractable answer) is compared like any other value: None -> None is
        # "unchanged", None -> "3" is a change. Plain != gives exactly that.
        changed = [x != y for x, y in zip(a1, a2)]
        out["answer_change_rate"] = sum(changed) / n
        # The same rate among right and among wrong first attempts (None when there are none). Fig. 6b's
        # single rate can fall two ways: the model stops changing right answers (it learned to keep
        # them) or stops changing any answer (collapse); only the wrong-attempt rate tells them apart.
        # answer_change_rate = acc_t1 * if_right + (1 - acc_t1) * if_wrong.
        ch_right = sum(ch for ch, c in zip(changed, c1) if c)
        out["answer_change_if_right"] = ch_right / n_c1 if n_c1 else None
        out["answer_change_if_wrong"] = (sum(changed) - ch_right) / n_i1 if n_i1 else None
    return out


def _check_attempts(name: str, rows: Sequence[Sequence[Any]], k: int, n: int) -> None:
    """Require `rows` to be k attempts of n episodes each, naming what is wrong otherwise."""
    if len(rows) != k:
        raise ValueError(f"ragged input: {name} has {len(rows)} attempts, expected {k}")
    for j, row in enumerate(rows):
        if len(row) != n:
            raise ValueError(
                f"ragged input: {name}[{j}] has {len(row)} episodes, expected {n}"
            )


def attempt_metrics(
    correct: Sequence[Sequence[bool]],
    texts: Sequence[Sequence[str]] | None = None,
    answers: Sequence[Sequence[str | None]] | None = None,
) -> dict[str, Any]:
    """Metrics for k >= 2 sequential attempts; correct[j][i] is attempt j of episode i.

    Returns {"acc": per-attempt accuracy, "pairs": pair_metrics for each consecutive pair},
    and also copies the first pair's keys to the top level so two-attempt callers can read
    acc_t1, acc_t2, delta, ... directly.
    """
    k = len(correct)
    if k < 2:
        raise ValueError(f"need at least 2 attempts, got {k}")
    n = len(correct[0])
    if n == 0:
        raise ValueError("empty input: attempts have no episodes")
    _check_attempts("correct", correct, k, n)
    if texts is not None:
        _check_attempts("texts", texts, k, n)
    if answers is not None:
        _check_attempts("answers", answers, k, n)
    pairs = []
    for j in range(k - 1):
        pairs.append(
            pair_metrics(
                correct[j],
                correct[j + 1],
                texts[j] if texts is not None else None,
                texts[j + 1] if texts is not None else None,
                answers[j] if answers is not None else None,
                answers[j + 1] if answers is not None else None,
            )
        )
    out: dict[str, Any] = dict(pairs[0])
    out["acc"] = [sum(bool(c) for c in row) / n for row in correct]
    out["pairs"] = pairs
    return out


def histogram(
    values: Sequence[float], bins: int = 10, lo: float = 0.0, hi: float = 1.0
) -> dict[str, list]:
    """Equal-width histogram over [lo, hi]; hi itself lands in the last bin.

    Out-of-range values raise instead of being clipped, because for edit ratios they would
    signal a bug upstream rather than a real observation.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if not hi > lo:
        raise ValueError(f"need hi > lo, got lo={lo}, hi={hi}")
    width = (hi - lo) / bins
    edges = [lo + i * width for i in range(bins)] + [hi]
    counts = [0] * bins
    for v in values:
        if not lo <= v <= hi:  # also rejects NaN
            raise ValueError(f"value {v} outside histogram range [{lo}, {hi}]")
        # Bisect on the reported edges (not (v - lo) / width) so a value sitting on an
        # edge is binned exactly as the edges list says, free of division rounding.
        counts[min(bisect.bisect_right(edges, v) - 1, bins - 1)] += 1
    return {"edges": edges, "counts": counts}


def mean_std(xs: Sequence[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof=1) across seeds; std is 0.0 for one seed."""
    if len(xs) == 0:
        raise ValueError("empty input: mean_std needs at least one value")
    m = math.fsum(xs) / len(xs)
    std = math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return {"mean": m, "std": std, "per_seed": list(xs)}


def stderr(p: float, n: int) -> float:
    """Standard error of a proportion p estimated from n trials: sqrt(p(1-p)/n)."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    return math.sqrt(p * (1.0 - p) / n)
