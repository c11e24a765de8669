"""`score ablate --reevaluate`: a finished ablation's final models under another evaluation protocol.

Training an ablation takes half an hour; evaluating its final models takes seconds each. So the
question "does the table change if we evaluate greedily, as the paper does, or on more problems?"
is answered without retraining: every run's last complete checkpoint (the base model for the runs
that train nothing) is evaluated again with the run's own settings plus the given eval_* overrides.
Results go to `<ablation>/reeval-<overrides>/<method>-s<seed>.json`, one file per run, written
atomically; a file already there is kept, so an interrupted re-evaluation continues where it stopped.
Given the runs' own protocol the numbers are the runs' own (evaluation is seeded), which the tests check.
"""
from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

from .ablate import checked_request, job_state, seed_range
from .ablation_table import aggregate, eval_protocol
from .config import EVAL_ONLY, TrainConfig, as_dict, build_config

# what a re-evaluation may change: the protocol, never the world or the model
EVAL_KEYS = ("eval_greedy", "eval_problems", "eval_samples", "eval_temperature", "eval_batch")

# how a re-evaluated table's `_meta.eval` ends: the protocol is the same one a training run would have used
REEVALUATED = " (the runs' final models evaluated again)"


def reeval_dir(out: Path, overrides: list[str]) -> Path:
    """The folder of one protocol's results, named by its overrides (sorted, so order does not matter)."""
    tag = ",".join(sorted(overrides))
    return Path(out) / ("reeval-" + re.sub(r"[^A-Za-z0-9._-]+", "-", tag))


def _check_overrides(overrides: list[str]) -> dict:
    """{key: value} of the --reevaluate settings; anything but the evaluation protocol, a malformed
    item or a bad value is refused, named, before any model loads."""
    keys = [o.partition("=")[0] for o in overrides]
    for key in keys:
        if key not in EVAL_KEYS:
            raise ValueError(f"--reevaluate {key!r}: only the evaluation protocol can change "
                             f"({', '.join(EVAL_KEYS)}); the world and the models stay the run's")
    build_config(None, overrides)
    return {k: o.partition("=")[2] for k, o in zip(keys, overrides)}


def run_config(run: Path, overrides: dict) -> TrainConfig:
    """The run's own settings (config.json) with the evaluation overrides on top."""
    from .runs import read_config

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    saved = {k: v for k, v in read_config(run).items() if k in names}
    return build_config(None, {**saved, **overrides})


def run_model(run: Path, cfg: TrainConfig) -> str:
    """The model a run's final evaluation scored: its selected weights (select_by=train-reward), else its last
    complete checkpoint, or its starting model if it trained nothing."""
    from .runs import latest_checkpoint
    from .selection import read_best
    from .trainer import start_model

    if cfg.select_by == "train-reward":
        best, _ = read_best(run)
        if best is None:
            raise ValueError(f"reevaluate: {run} selects by training reward but saved no best weights")
        return str(best / "model")
    ckpt = latest_checkpoint(run)
    if ckpt is not None:
        return str(ckpt / "model")
    if cfg.steps > 0 and cfg.method not in EVAL_ONLY:
        raise ValueError(f"reevaluate: {run} trained {cfg.steps} steps but has no complete checkpoint")
    return start_model(cfg, run)  # the model it started from, not today's default


def reevaluate(world: str, out: Path, methods: list[str], seeds: int, extra: list[str], overrides: list[str],
               progress: bool = True, first_seed: int = 0) -> dict:
    """Evaluate every run of seeds first_seed .. first_seed + seeds - 1 of the finished ablation in `out` (world
    preset and --set `extra` as it was run) again; returns the aggregated table (ablation_table.aggregate's format),
    `_meta.reevaluated` naming the overrides."""
    from tqdm import tqdm

    from .evaluate import evaluate, json_row
    from .policy import load_for_eval
    from .runs import atomic_write_json
    from .tasks import make_eval_task

    start = time.time()
    methods = checked_request(world, methods)
    parsed = _check_overrides(overrides)
    out = Path(out)
    seed_list = seed_range(first_seed, seeds)
    runs = [(m, s) for s in seed_list for m in methods]
    for m, s in runs:  # refuse before evaluating anything: one table, every run this ablation's and finished
        if job_state(world, m, s, out, extra) != "done":
            raise ValueError(f"reevaluate: {out / f'{m}-s{s}'} is not a finished run of this ablation; finish it "
                             f"first (the same `score ablate` command without --reevaluate)")
    dest = reeval_dir(out, overrides)
    dest.mkdir(exist_ok=True)
    for m, s in tqdm(runs, desc=f"reevaluate {dest.name}", disable=not progress):
        target = dest / f"{m}-s{s}.json"
        if target.exists():
            continue
        run = out / f"{m}-s{s}"
        cfg = run_config(run, parsed)
        path = run_model(run, cfg)
        model, tok = load_for_eval(path, cfg)
        metrics, _ = evaluate(model, tok, make_eval_task(cfg), cfg, seed=cfg.seed)
        atomic_write_json(target, {**json_row(metrics), "model": path, "run": str(run), "overrides": parsed})
    results = aggregate(dest, methods, {m: seed_list for m in methods})
    results["_meta"] = {"world": world, "seeds": seeds, "extra": extra, "runs": str(out), "reevaluated": overrides,
                        "results": str(dest),
                        "eval": eval_protocol(as_dict(run_config(out / f"{methods[0]}-s{first_seed}", parsed)))
                        + REEVALUATED,
                        "wall_seconds": round(time.time() - start, 1)}
    if first_seed:  # as run_ablation records it, so `score findings --pool` lines the seeds up
        results["_meta"]["first_seed"] = first_seed
    return results

