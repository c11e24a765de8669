"""Pure derivations from run records to what the pages show: no Streamlit, no file access.

Every number is computed by score_lib.metrics or score_lib.objectives; this module only selects,
groups and reshapes records, so the app, the notebooks and the benchmark agree by construction.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

import torch

from score_lib import objectives
from score_lib.metrics import TRANSITIONS, edit_ratio, histogram, pair_metrics, transition

LABELS = {"c2c": "c->c", "c2i": "c->i", "i2c": "i->c", "i2i": "i->i"}
# one colour per transition everywhere (tables, stacked bars, advantage mass): green = ends right
COLORS = {"c2c": "#2ca02c", "i2c": "#98df8a", "c2i": "#d62728", "i2i": "#7f7f7f"}


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---------------------------------------------------------------- metrics.jsonl


def train_records(records: Sequence[dict]) -> list[dict]:
    """Per-step lines only (the closing "final" line repeats the last step with eval keys only)."""
    return [r for r in records if r.get("stage") != "final" and is_number(r.get("step"))]


def series(records: Sequence[dict], key: str) -> tuple[list, list]:
    """(steps, values) of every record that has a finite number under ``key``."""
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if is_number(v) and is_number(r.get("step")):
            xs.append(r["step"])
            ys.append(v)
    return xs, ys


def attempt_keys(records: Sequence[dict], prefix: str) -> list[str]:
    """``prefix`` + t1, t2, ... present in any record, in attempt order (k is a run setting)."""
    found = set()
    for r in records[-50:] if len(records) > 50 else records:  # the keys are the same on every line
        found.update(k for k in r if k.startswith(prefix) and k[len(prefix):].isdigit())
    return sorted(found, key=lambda k: int(k[len(prefix):]))


def stage_boundaries(records: Sequence[dict]) -> list[tuple[float, str]]:
    """(step, new stage) wherever the stage changes: the first step trained under the new objective."""
    out, prev = [], None
    for r in train_records(records):
        stage = r.get("stage")
        if prev is not None and stage != prev:
            out.append((r["step"], str(stage)))
        prev = stage
    return out


def last_value(records: Sequence[dict], key: str):
    for r in reversed(records):
        if is_number(r.get(key)):
            return r[key]
    return None


# ---------------------------------------------------------------- traces.jsonl


def graded_attempts(trace: dict) -> list[dict]:
    """Attempts that carry an answer (Self-Refine's critique turn is not graded)."""
    atts = trace.get("attempts")
    if not isinstance(atts, list):
        return []
    return [a for a in atts if isinstance(a, dict) and a.get("graded", True)]


def trace_row(trace: dict, index: int) -> dict:
    """A flat summary of one trace, computed once when the trace is read (edit ratios are not free)."""
    atts = graded_attempts(trace)
    row = {"i": index, "step": trace.get("step"), "split": trace.get("split"), "stage": trace.get("stage"),
           "problem_id": str(trace.get("problem_id", "")), "sample": trace.get("sample"),
           "transition": None, "edit_ratio": None, "answer_changed": None}
    for j, a in enumerate(atts[:2]):
        t = f"_t{j + 1}"
        row["correct" + t] = bool(a.get("correct"))
        row["answer" + t] = a.get("answer")
        row["reward" + t] = a.get("reward")
        row["shaped" + t] = a.get("shaped_reward")
        row["advantage" + t] = a.get("advantage")
    if len(atts) >= 2:
        y1, y2 = atts[0].get("text") or "", atts[1].get("text") or ""
        row["transition"] = transition(row["correct_t1"], row["correct_t2"])
        row["edit_ratio"] = edit_ratio(str(y1), str(y2))
        row["answer_changed"] = row["answer_t1"] != row["answer_t2"]
    return row


def select(rows: Iterable[dict], transitions: Sequence[str] | None = None, step=None, split=None,
           problem: str | None = None) -> list[dict]:
    """Rows matching every given filter (None = no filter; problem is a substring match)."""
    tset = set(transitions) if transitions is not None else None
    needle = (problem or "").strip()
    return [r for r in rows
            if (tset is None or r["transition"] in tset)
            and (step is None or r["step"] == step)
            and (split is None or r["split"] == split)
            and (not needle or needle in r["problem_id"])]


def steps_with_traces(rows: Iterable[dict], split: str | None = None) -> list:
    return sorted({r["step"] for r in rows if r["transition"] and (split is None or r["split"] == split)
                   and is_number(r["step"])})


def _by_step(rows: Iterable[dict], split: str | None) -> dict:
    groups = defaultdict(list)
    for r in rows:
        if r["transition"] and (split is None or r["split"] == split) and is_number(r["step"]):
            groups[r["step"]].append(r)
    return dict(sorted(groups.items()))


def step_summaries(rows: Iterable[dict], split: str | None = "train") -> list[dict]:
    """pair_metrics of the sampled episodes of every step (traces are a sample, not the whole batch)."""
    out = []
    for step, group in _by_step(rows, split).items():
        pm = pair_metrics([r["correct_t1"] for r in group], [r["correct_t2"] for r in group],
                          a1=[r["answer_t1"] for r in group], a2=[r["answer_t2"] for r in group])
        ratios = [r["edit_ratio"] for r in group]
        out.append({"step": step, "n": pm["n_problems"], "counts": pm["counts"],
                    "answer_change_rate": pm["answer_change_rate"],
                    "edit_ratio_hist": histogram(ratios, bins=10),
                    # pair_metrics' edit_ratio_zero_share, from the ratios computed once per row
                    "unchanged_share": sum(x == 0.0 for x in ratios) / len(ratios)})
    return out


def valid_hist(h) -> bool:
    """A metrics.histogram result (as stored in an eval file, which might have been hand-edited)."""
    return (isinstance(h, dict) and isinstance(h.get("counts"), list) and isinstance(h.get("edges"), list)
            and len(h["edges"]) == len(h["counts"]) + 1 and all(is_number(v) for v in h["edges"] + h["counts"]))


def edit_ratio_hist(rows: Iterable[dict], bins: int = 10) -> dict:
    """metrics.histogram of the edit-distance ratios of the given rows."""
    return histogram([r["edit_ratio"] for r in rows if r["edit_ratio"] is not None], bins=bins)


# ---------------------------------------------------------------- reward shaping

# the four binary (r1, r2) outcomes, in TRANSITIONS order
OUTCOMES = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])


def shaping_table(alpha: float) -> list[dict]:
    """Per transition: the raw rewards and what score_lib.objectives credits each attempt with."""
    shaped = {m: objectives.shaped_rewards(m, OUTCOMES, alpha) for m in ("stage1", "stage2", "mt-rl")}
    rows = []
    for i, t in enumerate(TRANSITIONS):
        rows.append({"transition": LABELS[t], "r1": float(OUTCOMES[i, 0]), "r2": float(OUTCOMES[i, 1]),
                     "Stage I t1": float(shaped["stage1"][i, 0]), "Stage I t2": float(shaped["stage1"][i, 1]),
                     "Stage II t1": float(shaped["stage2"][i, 0]), "Stage II t2": float(shaped["stage2"][i, 1]),
                     "MT-RL t2": float(shaped["mt-rl"][i, 1])})
    return rows


def kl_table(beta1: float, beta2: float, k: int = 2) -> list[dict]:
    """KL coefficient per attempt for each RL objective (score_lib.objectives.kl_coefficients)."""
    rows = []
    for m in ("stage1", "stage2", "mt-rl"):
        coefs = objectives.kl_coefficients(m, k, beta1, beta2)
        rows.append({"objective": m, **{f"KL coef t{j + 1}": float(coefs[j]) for j in range(k)}})
    return rows


def recompute_advantages(rows: Sequence[dict], alpha: float, method: str = "stage2",
                         baseline: str = "loo") -> dict[int, tuple[float, float]]:
    """Advantages the recorded training episodes WOULD get under ``method`` with ``alpha``.

    Episodes are grouped by (step, problem) for the baseline (objectives.BASELINES), as in training. Traces
    hold only the first `traces_per_step` episodes of a batch, so a group may be smaller than it was.
    Returns {row index: (adv t1, adv t2)}.
    """
    picked = [r for r in rows if r["split"] == "train" and r["transition"]]
    if not picked:
        return {}
    keys = {}
    group = torch.tensor([keys.setdefault((r["step"], r["problem_id"]), len(keys)) for r in picked])
    rewards = torch.tensor([[float(r["correct_t1"]), float(r["correct_t2"])] for r in picked])
    # The oracle reward is binary; the correctness flags are that reward (1.0 right, 0.0 wrong).
    adv = objectives.advantages(method, rewards, group, alpha, baseline)
    return {r["i"]: (float(adv[n, 0]), float(adv[n, 1])) for n, r in enumerate(picked)}


def advantage_mass(rows: Iterable[dict], adv: dict[int, tuple[float, float]] | None = None,
                   attempt: int = 2) -> dict[str, dict]:
    """Per transition: episodes, summed advantage and share of the total |advantage| on one attempt.

    ``adv`` overrides the recorded advantages (see recompute_advantages); rows without either are skipped.
    """
    out = {t: {"n": 0, "sum": 0.0, "abs": 0.0} for t in TRANSITIONS}
    for r in rows:
        if not r["transition"]:
            continue
        a = adv[r["i"]][attempt - 1] if adv is not None and r["i"] in adv else r.get(f"advantage_t{attempt}")
        if not is_number(a) or (adv is not None and r["i"] not in adv):
            continue
        cell = out[r["transition"]]
        cell["n"] += 1
        cell["sum"] += a
        cell["abs"] += abs(a)
    total = math.fsum(c["abs"] for c in out.values())
    for c in out.values():
        c["share"] = c["abs"] / total if total > 0 else 0.0
    return out


# ---------------------------------------------------------------- evals / comparison

COMPARE_KEYS = (("acc_t1", "Acc@t1"), ("acc_t2", "Acc@t2"), ("delta", "Delta"), ("delta_i2c", "i->c"),
                ("delta_c2i", "c->i"), ("answer_change_rate", "answer change"),
                ("answer_change_if_right", "changed if y1 right"), ("answer_change_if_wrong", "changed if y1 wrong"),
                ("fix_rate", "fix rate"), ("edit_ratio_zero_share", "unchanged"))


def compare_row(label: str, ev: dict | None, percent: bool = True) -> dict:
    """A paper-style row from an eval dict (fractions -> percent, as the paper prints them)."""
    row = {"run": label}
    for key, name in COMPARE_KEYS:
        v = (ev or {}).get(key)
        row[name] = (100.0 * v if percent else v) if is_number(v) else None
    row["n"] = (ev or {}).get("n_problems")
    return row
