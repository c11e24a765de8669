"""An ablation folder read back as the paper-style table: its runs' final reports aggregated over seeds
(mean, std, per seed, Delta's sampling error), the markdown table beside the paper's numbers, and the
findings check appended (findings.py). `score ablate` writes it when its runs finish; the app's Ablation
page and `score findings` read folders with it while runs still train.
"""
from __future__ import annotations

import json
from pathlib import Path

from .ablate import ABLATIONS, PLAN_FILE
from .findings import delta_se
from .metrics import mean_std

# the paper's numbers for the same rows (MATH500 Table 2 and MATH Table 4), for side-by-side tables
PAPER = {
    "base": (52.6, 41.4, -11.2, 4.6, 15.8), "self-refine": (52.8, 51.8, -1.0, 3.2, 4.2),
    "star": (55.4, 41.2, -14.2, 5.4, 19.6), "star-plus": (53.6, 54.0, 0.4, 2.6, 2.2),
    "pair-sft": (52.4, 54.2, 1.8, 5.4, 3.6), "pair-sft-plus": (55.0, 55.0, 0.0, 0.0, 0.0),
    "st-rl": (61.8, 59.4, -2.4, None, None), "no-stage1": (59.2, 61.4, 2.2, None, None),
    "no-shaping": (60.0, 62.6, 2.6, None, None), "star-stage2": (56.2, 58.4, 2.2, None, None),
    "score": (60.0, 64.4, 4.4, 5.8, 1.4),
}
KEYS = ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i", "answer_change_rate",
        "edit_ratio_zero_share", "n_problems")
# conditional rates: kept when every seed has them (absent from runs written before they existed, None
# when a run had no right, or no wrong, first attempt)
SPLIT_KEYS = ("fix_rate", "break_rate", "answer_change_if_right", "answer_change_if_wrong",
              "selected_step")  # the last: the step whose weights were scored, with select_by=train-reward


def eval_protocol(cfg: dict) -> str:
    """How a run (its config.json dict) evaluates, in words for the table's heading."""
    if cfg["eval_greedy"]:
        return f"greedy, {cfg['eval_problems']} test problems"
    return (f"{cfg['eval_samples']} samples per problem at temperature {cfg['eval_temperature']}, "
            f"{cfg['eval_problems']} test problems")


def finished_runs(out: Path) -> dict[str, list[int]]:
    """{method: [seeds]} of the runs in an ablation folder that wrote their final report (`<m>-s<s>.json`),
    methods in the tables' order: what can be aggregated now, even while the others still train."""
    done: dict[str, list[int]] = {}
    for f in Path(out).glob("*-s*.json"):
        m, _, s = f.stem.rpartition("-s")
        if m in ABLATIONS and s.isdigit():
            done.setdefault(m, []).append(int(s))
    return {m: sorted(done[m]) for m in ABLATIONS if m in done}


def find_ablations(root: Path) -> list[Path]:
    """`root` and its direct subfolders that hold an ablation's runs (a `<method>-s<seed>` run folder or
    its final report), newest first."""
    def holds_runs(d: Path) -> bool:
        return any(p.stem.rpartition("-s")[0] in ABLATIONS and p.stem.rpartition("-s")[2].isdigit()
                   for p in d.glob("*-s*") if p.suffix == ".json" or (p / "config.json").exists())
    root = Path(root)
    if not root.is_dir():
        return []
    found = [d for d in [root, *(d for d in root.iterdir() if d.is_dir())] if holds_runs(d)]
    return sorted(found, key=lambda d: d.stat().st_mtime, reverse=True)


def aggregate(out: Path, methods: list[str], seeds: int | dict[str, list[int]]) -> dict:
    """{method: {metric: {"mean", "std", "per_seed"}}} from the runs' final --json files, plus the
    sampling standard error of Delta and the final edit-ratio histogram of the first seed. `seeds`: a
    count (seeds 0..n-1 of every method) or each method's own seeds (finished_runs)."""
    results = {}
    for m in methods:
        mine = list(range(seeds)) if isinstance(seeds, int) else seeds[m]
        per_seed = [json.loads((out / f"{m}-s{s}.json").read_text()) for s in mine]
        row = {k: mean_std([r[k] for r in per_seed]) for k in KEYS if k != "n_problems"}
        row.update({k: mean_std([r[k] for r in per_seed]) for k in SPLIT_KEYS
                    if all(isinstance(r.get(k), (int, float)) for r in per_seed)})
        row["delta_stderr"] = delta_se(row, sum(r["n_problems"] for r in per_seed))
        row["n_problems"] = per_seed[0]["n_problems"]
        row["seeds"] = mine
        evals = sorted((out / f"{m}-s{mine[0]}" / "evals").glob("*.json"))
        if evals:
            row["edit_ratio_hist"] = json.loads(evals[-1].read_text()).get("edit_ratio_hist")
        results[m] = row
    return results


def folder_results(out: Path) -> dict:
    """The table of an ablation folder as it stands: every finished run, each method over its own seeds,
    `_meta` from the folder's plan (or its finished ablation.json) and its runs' evaluation protocol. Works
    while the ablation still runs; raises ValueError naming the folder when no run has finished."""
    out = Path(out)
    done = finished_runs(out)
    if not done:
        raise ValueError(f"{out}: no finished run of an ablation (no <method>-s<seed>.json report)")
    results = aggregate(out, list(done), done)
    meta = {}
    for name in (PLAN_FILE, "ablation.json"):
        try:
            doc = json.loads((out / name).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        meta = doc if name == PLAN_FILE else {**doc.get("_meta", {}), "methods": [m for m in doc if m[0] != "_"]}
        break
    first = out / f"{next(iter(done))}-s{done[next(iter(done))][0]}" / "config.json"
    results["_meta"] = {"world": meta.get("world", "not recorded"), "seeds": len({s for ss in done.values() for s in ss}),
                        "planned_runs": len(meta.get("methods", [])) * meta.get("seeds", 0) or None,
                        "finished_runs": sum(len(s) for s in done.values()), "runs": str(out),
                        "eval": eval_protocol(json.loads(first.read_text())) if first.exists() else "not recorded"}
    return results


def report(results: dict, rules=None) -> tuple[dict, str]:
    """An ablation's JSON (its results plus `_findings`) and markdown (the table, then the findings check)."""
    from . import findings

    found = findings.check(results, rules)
    return ({**results, "_findings": findings.as_json(found, rules)},
            markdown(results) + "\n" + findings.markdown(found, rules))


def save_report(folder: Path, doc: dict, md: str) -> None:
    """ablation.json and ablation.md beside the runs they aggregate, whether or not --json / --md were given:
    the app's Ablation page and a later `score findings` find them there."""
    from .runs import atomic_write_json, atomic_write_text

    atomic_write_json(Path(folder) / "ablation.json", doc)
    atomic_write_text(Path(folder) / "ablation.md", md)


def markdown(results: dict) -> str:
    """The paper-style table: mean ± std over seeds, with the paper's numbers beside ours."""
    meta = results.get("_meta", {})
    first = meta.get("first_seed")
    seeds = f"{meta.get('seeds')} seeds" + (f" ({first} to {first + meta['seeds'] - 1})" if first else "")
    if meta.get("pooled"):  # findings.pool: several recordings as one, a row's seeds from each that has it
        fewer = [f"{ABLATIONS[m][0]} {len(r['seeds'])}" for m, r in results.items()
                 if not m.startswith("_") and len(r["seeds"]) < meta["seeds"]]
        seeds += f" pooled from {', '.join(meta['pooled'])}" + (f" (fewer: {', '.join(fewer)})" if fewer else "")
    lines = [f"World `{meta.get('world')}`, {seeds}, evaluation: {meta.get('eval')}"
             + (f"; wall time {meta['wall_seconds']} s" if meta.get("wall_seconds") is not None else "")
             + (f" ({meta['runs_kept']} finished runs kept from an earlier invocation)" if meta.get("runs_kept") else "")
             + ". Values are fractions of all test episodes, except the split answer-change rates (of the "
             "episodes whose first attempt was right, and of those whose first attempt was wrong); "
             "SE is the sampling standard error of Delta over the pooled seeds.", "",
             "| method | Acc@t1 | Acc@t2 | Delta (SE) | i->c | c->i | answer changed | changed if y1 right / wrong "
             "| y2 unchanged | paper t1 / t2 / Delta |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key, row in results.items():
        if key.startswith("_"):
            continue
        f = lambda k: f"{row[k]['mean']:.3f} ± {row[k]['std']:.3f}" if k in row else "-"  # noqa: E731
        split = " / ".join(f"{row[k]['mean']:.3f}" if k in row else "-"
                           for k in ("answer_change_if_right", "answer_change_if_wrong"))
        paper = PAPER.get(key)
        ptxt = f"{paper[0]} / {paper[1]} / {paper[2]:+}" if paper else "-"
        lines.append(f"| {ABLATIONS[key][0]} | {f('acc_t1')} | {f('acc_t2')} | {row['delta']['mean']:+.3f} ± "
                     f"{row['delta']['std']:.3f} ({row['delta_stderr']:.3f}) | {f('delta_i2c')} | {f('delta_c2i')} | "
                     f"{f('answer_change_rate')} | {split} | {f('edit_ratio_zero_share')} | {ptxt} |")
    return "\n".join(lines) + "\n"
