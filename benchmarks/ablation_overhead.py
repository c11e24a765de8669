"""What `score ablate` saves by forking its runs from a preloaded process and sharing SCoRe's Stage I.

Since 2026-12-07 each run of an ablation is a fork of a process that imported torch and transformers
once (it used to be a fresh interpreter, about 5 s of imports a run), and SCoRe without shaping and
SCoRe with STaR in Stage II take the same seed's SCoRe Stage I (`stage1_from`) instead of training it
again. This runs one seed of SCoRe, its two variants and the base on the pick world, one run at a time,
both ways: as before (each run `python -m score_lib.cli train ...` in a fresh interpreter, each variant
training its own Stage I) and through `score_lib.ablate.run_ablation` (workers=1). It prints the wall
times, their ratio and whether every final metric is equal (neither change may touch the arithmetic).
The two ways alternate, `--repeats` times each.

    python benchmarks/ablation_overhead.py [--steps 30] [--eval-problems 256] [--repeats 1]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import LoadMeter, merge_results  # noqa: E402

METHODS = ["score", "no-shaping", "star-stage2", "base"]


def before(out: Path, extra: list[str], threads: int) -> None:
    """The ablation's runs as it started them until 2026-12-07: fresh interpreters, no Stage I taken."""
    from score_lib.ablate import _job_args

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    for key in METHODS:
        args = _job_args("toy", key, 0, out, extra)
        if any(a.startswith("stage1_from=") for a in args):  # the variant trains Stage I itself
            i = next(i for i, a in enumerate(args) if a.startswith("stage1_from="))
            args = args[:i - 1] + args[i + 1:]
        subprocess.run([sys.executable, "-m", "score_lib.cli", *args], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def after(out: Path, extra: list[str]) -> None:
    from score_lib.ablate import run_ablation

    run_ablation("toy", seeds=1, out=out, methods=METHODS, extra=extra, workers=1, progress=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="steps of each trained run (Stage I: a third)")
    ap.add_argument("--eval-problems", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    extra = [f"steps={a.steps}", f"stage1_steps={a.steps // 3}", f"eval_problems={a.eval_problems}"]
    threads = os.cpu_count() or 1  # run_ablation's with one worker
    rows: dict[str, list[dict]] = {"before": [], "after": []}
    finals: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for label in ("before", "after"):
                out = Path(tmp) / f"{label}-{r}"
                with LoadMeter() as load:
                    t0 = time.perf_counter()
                    before(out, extra, threads) if label == "before" else after(out, extra)
                    wall = time.perf_counter() - t0
                rows[label].append({"wall_s": round(wall, 1), "other_cores": load.other_cores})
                finals[label].append({k: json.loads((out / f"{k}-s0.json").read_text()) for k in METHODS})
                print(f"{label:>6}: {wall:.1f} s (other processes kept {load.other_cores} cores busy)", flush=True)
    same = all(f == finals["before"][0] for f in finals["before"] + finals["after"])
    wall = {k: sum(r["wall_s"] for r in v) for k, v in rows.items()}
    ratio = wall["after"] / wall["before"]
    print(f"wall ratio after / before: {ratio:.3f} ({', '.join(METHODS)}; {a.steps} steps, "
          f"{a.eval_problems} test problems); final metrics equal: {same}")
    merge_results({"ablation_overhead": {"runs": rows, "ratio": round(ratio, 3), "metrics_equal": same,
                                         "methods": METHODS, "settings": extra}})
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
