"""What `score ablate` saves by forking its runs from a preloaded process and sharing what runs draw alike.

Since 2026-12-07 each run of an ablation is a fork of a process that imported torch and transformers
once (it used to be a fresh interpreter, about 5 s of imports a run), and SCoRe without shaping and
SCoRe with STaR in Stage II take the same seed's SCoRe Stage I (`stage1_from`) instead of training it
again. This runs one seed of SCoRe, its two variants and the base on the pick world, one run at a time,
both ways: as before (each run `python -m score_lib.cli train ...` in a fresh interpreter, each variant
training its own Stage I) and through `score_lib.ablate.run_ablation` (workers=1). It prints the wall
times, their ratio and whether every final metric is equal (neither change may touch the arithmetic).
The two ways alternate, `--repeats` times each.

Since the twenty-fourth session STaR+ and Pair-SFT+ also read the first round of samples STaR and Pair-SFT
drew (`shared_samples`): `--methods star,star-plus,pair-sft,pair-sft-plus` measures that against drawing
every round afresh (the old way strips both settings). A third way, "unshared", is `run_ablation` with
both settings stripped from its runs' arguments: forked like "after", but taking nothing from a sibling, so
after / unshared is the sharing alone and unshared / before the start-up alone.

    python benchmarks/ablation_overhead.py [--steps 30] [--eval-problems 256] [--repeats 1] [--methods a,b,..]
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
SHARING = ("stage1_from=", "shared_samples=")  # what a run takes from another instead of computing it again


def strip_sharing(args: list[str]) -> list[str]:
    """A run's `score` arguments less every "--set" of a setting in SHARING."""
    while any(a.startswith(SHARING) for a in args):
        i = next(i for i, a in enumerate(args) if a.startswith(SHARING))
        args = args[:i - 1] + args[i + 1:]
    return args


def before(out: Path, extra: list[str], threads: int, methods: list[str]) -> None:
    """The ablation's runs as it started them until 2026-12-07: fresh interpreters, nothing taken from another."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    from score_lib.ablate import _job_args

    for key in methods:
        args = strip_sharing(_job_args("toy", key, 0, out, extra))
        subprocess.run([sys.executable, "-m", "score_lib.cli", *args], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def after(out: Path, extra: list[str], methods: list[str]) -> None:
    from score_lib.ablate import run_ablation

    run_ablation("toy", seeds=1, out=out, methods=methods, extra=extra, workers=1, progress=False)


def unshared(out: Path, extra: list[str], methods: list[str]) -> None:
    """Forked like `after`, its runs taking nothing from a sibling."""
    import score_lib.ablate as ablate

    real = ablate._job_args  # run_ablation builds every run's arguments through it
    ablate._job_args = lambda *job, **kw: strip_sharing(real(*job, **kw))
    try:
        ablate.run_ablation("toy", seeds=1, out=out, methods=methods, extra=extra, workers=1, progress=False)
    finally:
        ablate._job_args = real


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="steps of each trained run (Stage I: a third)")
    ap.add_argument("--eval-problems", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--methods", default=",".join(METHODS), help="ablation keys, comma-separated")
    a = ap.parse_args()
    methods = a.methods.split(",")
    extra = [f"steps={a.steps}", f"stage1_steps={a.steps // 3}", f"eval_problems={a.eval_problems}"]
    threads = os.cpu_count() or 1  # run_ablation's with one worker
    ways = {"before": lambda out: before(out, extra, threads, methods), "after": lambda out: after(out, extra, methods),
            "unshared": lambda out: unshared(out, extra, methods)}
    rows: dict[str, list[dict]] = {k: [] for k in ways}
    finals: dict[str, list[dict]] = {k: [] for k in ways}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for label in ways:
                out = Path(tmp) / f"{label}-{r}"
                with LoadMeter() as load:
                    t0 = time.perf_counter()
                    ways[label](out)
                    wall = time.perf_counter() - t0
                rows[label].append({"wall_s": round(wall, 1), "other_cores": load.other_cores})
                finals[label].append({k: json.loads((out / f"{k}-s0.json").read_text()) for k in methods})
                print(f"{label:>6}: {wall:.1f} s (other processes kept {load.other_cores} cores busy)", flush=True)
    same = all(f == finals["before"][0] for v in finals.values() for f in v)
    wall = {k: sum(r["wall_s"] for r in v) for k, v in rows.items()}
    ratio = wall["after"] / wall["before"]
    sharing = wall["after"] / wall["unshared"]
    print(f"wall ratio after / before: {ratio:.3f}, of it start-up (unshared / before) "
          f"{wall['unshared'] / wall['before']:.3f} and sharing (after / unshared) {sharing:.3f} "
          f"({', '.join(methods)}; {a.steps} steps, {a.eval_problems} test problems); final metrics equal: {same}")
    key = "ablation_overhead" + ("" if methods == METHODS else "_" + "_".join(methods))
    merge_results({key: {"runs": rows, "ratio": round(ratio, 3), "sharing_ratio": round(sharing, 3),
                         "metrics_equal": same, "methods": methods, "settings": extra}})
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
