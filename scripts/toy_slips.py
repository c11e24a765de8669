"""Write toy test problems with a planted one-slip first attempt, for `score eval --repair`.

Each line is {"id": problem id, "first": a solution with exactly one miscomputed step (later steps
carry on from it), the kind of mistake the toy base corpus shows with `p_wrong`}. Comparing the
repair rate on these with the base model's fix rate on its own wrong first attempts (`score eval`)
tells whether the model can correct mistakes in general but not its own (RESULTS.md, issue 3):

    python scripts/toy_slips.py --limit 256 --out slips.jsonl
    score eval --model toy-base --repair slips.jsonl --set eval_greedy=false   # one sampled attempt 2 each
    score eval --model toy-base --limit 256    # fix rate i->c / (1 - Acc@t1): its own wrong attempts
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from score_lib.config import build_config
from score_lib.tasks import make_task
from score_lib.tasks.toy import render_solution


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSONL file to write")
    ap.add_argument("--limit", type=int, default=256, help="test problems (the first N, as score eval takes them)")
    ap.add_argument("--n-ops", type=int, default=3, help="operations per problem (toy_n_ops)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the slip positions and sizes")
    args = ap.parse_args(argv)
    if args.limit < 1:
        ap.error(f"--limit must be at least 1, got {args.limit}")
    rng = random.Random(args.seed)
    # the task exactly as `score eval` builds it, so the ids name the problems it evaluates
    task = make_task(build_config(None, {"toy_n_ops": str(args.n_ops), "eval_problems": str(args.limit)}))
    lines = []
    for p in task.problems("test", args.limit):
        first, _ = render_solution(p.meta["start"], p.meta["steps"], 1.0, rng, one_slip=True)
        lines.append(json.dumps({"id": p.id, "first": first}))
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"{len(lines)} planted first attempts -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
