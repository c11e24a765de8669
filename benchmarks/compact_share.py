"""Would splitting off the still-running rows sooner make an evaluation faster? (rollout.COMPACT_SHARE)

A toy evaluation decodes 1024 rows at once; once at most COMPACT_SHARE of them still run, they go on in a
smaller stream of their own (rollout._Stream.rows). This scores the default toy base on the ablation's
pick world once per share given, one thread, and prints each one's seconds and ratio against the first,
and whether its tokens and log-probabilities are bit-equal to the first's: a share that changes a row's
logits (batch sizes round differently) may one day change a sampled token, and with it a recorded table.

    python benchmarks/compact_share.py [--problems 512] [--shares 0.5,0.75,0.9,0.5]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import merge_results  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=512)
    ap.add_argument("--shares", default="0.5,0.75,0.9,0.5", help="the first is the baseline (repeat it for noise)")
    a = ap.parse_args()
    import torch

    import score_lib.rollout as rollout
    from score_lib.ablate import WORLDS
    from score_lib.config import build_config
    from score_lib.evaluate import evaluate
    from score_lib.policy import load_policy
    from score_lib.tasks import make_task
    from score_lib.trainer import _resolve_model

    torch.set_num_threads(1)  # as each of the ablation's two workers
    cfg = build_config(None, {**WORLDS["toy"], "eval_problems": a.problems, "method": "score"})
    model, tok = load_policy(_resolve_model(cfg))
    shares = [float(x) for x in a.shares.split(",")]
    rows, first = [], None
    for share in shares:
        rollout.COMPACT_SHARE = share
        t0 = time.perf_counter()
        _, episodes = evaluate(model, tok, make_task(cfg), cfg, seed=0)
        wall = time.perf_counter() - t0
        attempts = [att for ep in episodes for att in ep.attempts]
        out = ([att.ids for att in attempts], [att.logprobs for att in attempts])
        first = first or (wall, out)
        row = {"share": share, "wall_s": round(wall, 2), "ratio": round(wall / first[0], 3),
               "tokens_equal": out[0] == first[1][0], "logprobs_bit_equal": out[1] == first[1][1]}
        rows.append(row)
        print(row, flush=True)
    merge_results({"compact_share": {"problems": a.problems, "rows": rows}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
