"""Does keeping freed memory in the process (glibc's malloc thresholds) speed up a toy ablation run?

`score ablate` runs two trainings at a time, one thread each. Its default table spent 422 of 4114
CPU-seconds in the kernel, mostly minor page faults (178 million in 35 min, RESULTS.md): glibc hands
freed blocks back to the OS and faults them in again on the next step. MALLOC_TRIM_THRESHOLD_ and
MALLOC_MMAP_THRESHOLD_ keep them (measured 2026-12-06: 1% faster, within noise, so `score ablate` does not
set them; BENCHMARKS.md). This runs the same toy RL run twice at once, one process with the
settings and one without (then swapped, so that neither core is favoured), and prints wall and system
seconds, page faults, peak RSS and the ratio; the two runs' final metrics must be equal (the setting
must not touch the arithmetic).

    python benchmarks/malloc_env.py [--model PATH] [--steps 30]
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
from benchmarks._common import merge_results  # noqa: E402

# keep freed memory in the process: no trim below 1 GiB, the mmap threshold at glibc's largest (32 MiB)
MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}


def start(args: list[str], out: Path, extra_env: dict) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra_env}
    return subprocess.Popen(args + ["--json", str(out / "final.json"), "--out", str(out / "run")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait(proc: subprocess.Popen, t0: float) -> dict:
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"malloc_env: a run failed (exit {proc.returncode}); run its command by hand to see why")
    return {"wall_s": round(time.perf_counter() - t0, 1), "sys_s": round(usage.ru_stime, 1),
            "user_s": round(usage.ru_utime, 1), "minor_faults": usage.ru_minflt, "max_rss_mib": usage.ru_maxrss // 1024}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="toy-base", help="model folder (default: the pick world's base)")
    ap.add_argument("--steps", type=int, default=30)
    a = ap.parse_args()
    cmd = [sys.executable, "-m", "score_lib.cli", "train", "--quiet", "--preset", "toy-score", "--set", "toy_kind=pick",
           "--set", "max_new_tokens=64", "--set", f"steps={a.steps}", "--set", f"stage1_steps={a.steps // 3}",
           "--set", "batch_prompts=8", "--set", "lr=2e-4", "--set", "beta2=1.0", "--set", "baseline=loo-state",
           "--set", "eval_every=0", "--set", "checkpoint_every=0", "--set", "eval_problems=256",
           "--set", f"model={a.model}"]
    rows = {"default": [], "malloc_env": []}
    finals = {}
    with tempfile.TemporaryDirectory() as tmp:
        for order in (("default", "malloc_env"), ("malloc_env", "default")):
            t0, procs = time.perf_counter(), {}
            for label in order:
                out = Path(tmp) / f"{label}-{len(rows[label])}"
                out.mkdir()
                procs[label] = (start(cmd, out, MALLOC_ENV if label == "malloc_env" else {}), out)
            for label, (proc, out) in procs.items():
                rows[label].append(wait(proc, t0))
                finals.setdefault(label, []).append(json.loads((out / "final.json").read_text()))
    same = all(f == finals["default"][0] for f in finals["default"] + finals["malloc_env"])
    wall = {k: sum(r["wall_s"] for r in v) for k, v in rows.items()}
    for k, v in rows.items():
        print(f"{k:>10}: " + "; ".join(", ".join(f"{n} {x}" for n, x in r.items()) for r in v))
    print(f"wall ratio malloc_env / default: {wall['malloc_env'] / wall['default']:.3f}; "
          f"final metrics equal: {same}")
    merge_results({"malloc_env": {"runs": rows, "ratio": round(wall["malloc_env"] / wall["default"], 3),
                                  "metrics_equal": same, "steps": a.steps, "env": MALLOC_ENV}})
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
