"""Where the time of one RL step goes: generate / score / update, on the toy-score preset.

Runs the real Trainer (toy-score preset, cached toy base model, default batch of 16 prompts x 4
samples x 2 attempts) for 12 steps (6 of Stage I, 6 of Stage II) with evaluation, traces and
intermediate checkpoints off, reads the per-step timings the trainer writes to metrics.jsonl
(t_generate: the rollout; t_score: the oracle; t_update: forward, reference forward, loss, backward,
Adam step), drops the first 2 steps as warm-up and reports the median of each part and its share.
This says which part of training is worth making faster. The final evaluation the Trainer always
runs is kept tiny (32 problems, 1 sample) and is not part of the numbers.

Merged into benchmarks/results.json under "rl_step".  Usage: python benchmarks/rl_step.py [--steps N]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from _common import LoadMeter, merge_results
from score_lib.config import build_config
from score_lib.toy_base import toy_base_path
from score_lib.trainer import Trainer

PARTS = ("t_generate", "t_score", "t_update")
WARMUP = 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12, help="steps in all (half Stage I, half Stage II)")
    args = ap.parse_args()
    if args.steps <= WARMUP:
        ap.error(f"--steps must exceed the {WARMUP} warm-up steps")
    if not (toy_base_path() / "toy_base.json").exists():
        print(f"toy base model not cached at {toy_base_path()}: building it first (about 2.5 min)", flush=True)
    cfg = build_config("toy-score", [f"steps={args.steps}", f"stage1_steps={args.steps // 2}",
                                     "eval_every=0", "checkpoint_every=0", "trace_every=0",
                                     "eval_problems=32", "eval_samples=1"])
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        t0 = time.time()
        trainer = Trainer(cfg, run_dir, progress=False)  # builds the toy base here if it is missing
        t_setup = time.time() - t0
        with LoadMeter() as load:
            trainer.run()
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    steps = [r for r in map(json.loads, lines) if "t_generate" in r]
    kept = steps[WARMUP:]
    med = {p: statistics.median(r[p] for r in kept) for p in PARTS}
    total = sum(med.values())
    step_med = statistics.median(sum(r[p] for p in PARTS) for r in kept)
    res = {
        "command": " ".join(["python", "benchmarks/rl_step.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"), "torch_threads": torch.get_num_threads(),
        "model": "toy base model (cached)", "preset": "toy-score",
        "batch": f"{cfg.batch_prompts} prompts x {cfg.samples_per_prompt} samples x {cfg.attempts} attempts",
        "max_new_tokens": cfg.max_new_tokens, "steps_run": len(steps), "steps_kept": len(kept),
        "median_seconds": {p[2:]: round(v, 4) for p, v in med.items()},
        "share": {p[2:]: round(v / total, 3) for p, v in med.items()},
        "median_step_seconds": round(step_med, 3),
        "first_step_seconds": round(sum(steps[0][p] for p in PARTS), 3),
        "setup_seconds": round(t_setup, 1), "other_procs_cores": load.other_cores,
        "per_step": [{"step": r["step"], "stage": r["stage"], **{p[2:]: round(r[p], 4) for p in PARTS}}
                     for r in steps],
    }
    print(f"\n## rl_step  (toy-score, {res['batch']}, max_new_tokens {res['max_new_tokens']}, "
          f"median of steps {WARMUP + 1}-{len(steps)})")
    print("| part | median s | share |\n|---|---|---|")
    for p in PARTS:
        print(f"| {p[2:]} | {med[p]:.3f} | {med[p] / total:.0%} |")
    print(f"| step (median of sums) | {step_med:.3f} | |")
    print(f"first step {res['first_step_seconds']} s; trainer set-up {res['setup_seconds']} s; "
          f"other processes busy: {load.other_cores} cores")
    if (load.other_cores or 0) > 0.2:
        print("WARNING: other processes were busy during the run; its numbers are not trustworthy")
    print(f"wrote rl_step to {merge_results({'rl_step': res})}")


if __name__ == "__main__":
    main()
