"""How long one refresh of the app takes on a big run: 1,000 metric steps and 10,000 traces.

Times (seconds, wall clock):
  - the live page's data path: incremental read of metrics.jsonl + building its 8 figures,
    cold (first read of the whole file) and warm (after the trainer appended one step);
  - the trace pages' data path: reading traces.jsonl and summarising every trace (edit ratios,
    transitions), cold and warm;
  - the AppTest run of the live page (the whole script, Streamlit included), cold and warm, and of
    the behaviour-collapse page (the heaviest trace page).

    .venv/bin/python benchmarks/app_refresh.py [--steps 1000] [--traces-per-step 10]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import fixtures_runs as fx  # noqa: E402
from workbench import data, figures  # noqa: E402


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def append_one_step(run_dir: Path, step: int, traces_per_step: int) -> None:
    from score_lib.config import build_config
    from score_lib.runs import RunWriter, read_config

    cfg = build_config(None, {k: v for k, v in read_config(run_dir).items() if k != "versions"})
    w = RunWriter(run_dir, resume=True)
    rng = random.Random(step)
    w.log_traces(fx.train_traces(cfg, step, rng, traces_per_step))
    w.log_metrics(fx.metrics_record(cfg, step, rng))
    w.set_status("running", step=step)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--traces-per-step", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="app-refresh-"))
    t_build, run = timed(lambda: fx.make_run(
        tmp / "big", steps=args.steps, stage1_steps=args.steps * 2 // 5, upto=args.steps, state="running",
        trace_every=1, traces_per_step=args.traces_per_step, eval_every=100))
    sizes = {p.name: p.stat().st_size / 1e6 for p in run.glob("*.jsonl")}
    print(f"synthetic run: {args.steps} steps, {args.steps * args.traces_per_step} training traces "
          f"(+ eval traces); metrics.jsonl {sizes['metrics.jsonl']:.1f} MB, traces.jsonl "
          f"{sizes['traces.jsonl']:.1f} MB; built in {t_build:.1f} s")
    print(f"cpu cores visible: {os.cpu_count()}")

    # ---- live page data path: metrics only
    cache = data.RunCache(run)
    t_read, _ = timed(lambda: cache.refresh(traces=False))
    t_figs, figs = timed(lambda: figures.live_figures(cache.metrics.records))
    print(f"live data path, cold:  read {t_read:.3f} s + figures {t_figs:.3f} s = {t_read + t_figs:.3f} s "
          f"({len(cache.metrics.records)} records, {len(figs)} figures)")
    step = args.steps + 1
    append_one_step(run, step, args.traces_per_step)
    t_read, _ = timed(lambda: cache.refresh(traces=False))
    t_figs, _ = timed(lambda: figures.live_figures(cache.metrics.records))
    print(f"live data path, warm:  read {t_read:.4f} s + figures {t_figs:.3f} s = {t_read + t_figs:.3f} s "
          f"(one appended step)")

    # ---- trace pages' data path
    t_cold, _ = timed(lambda: cache.refresh(traces=True))
    t_sum, _ = timed(lambda: cache.step_summaries("train"))
    print(f"traces, cold:          read + summarise {len(cache.trace_rows)} traces {t_cold:.3f} s, "
          f"per-step summaries {t_sum:.3f} s")
    step += 1
    append_one_step(run, step, args.traces_per_step)
    t_warm, _ = timed(lambda: cache.refresh(traces=True))
    t_sum, _ = timed(lambda: cache.step_summaries("train"))
    print(f"traces, warm:          read + summarise the appended step {t_warm:.4f} s, "
          f"per-step summaries {t_sum:.3f} s")

    # ---- the real page, through Streamlit's AppTest
    os.environ["SCORE_RUNS_DIR"] = str(tmp)
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["run"] = "big"
    t_first, _ = timed(at.run)  # the Runs page (imports, list_runs)
    at.switch_page("workbench/pages_/live.py")
    t_cold, _ = timed(at.run)
    assert not at.exception, at.exception
    step += 1
    append_one_step(run, step, args.traces_per_step)
    t_warm, _ = timed(at.run)
    assert not at.exception and at.metric[0].value.startswith(f"{step} /"), at.metric[0].value
    print(f"AppTest live page:     first script run (Runs page, imports) {t_first:.2f} s; "
          f"live cold {t_cold:.2f} s, warm {t_warm:.2f} s")
    at.switch_page("workbench/pages_/collapse.py")
    t_cold, _ = timed(at.run)
    step += 1
    append_one_step(run, step, args.traces_per_step)
    t_warm, _ = timed(at.run)
    assert not at.exception
    print(f"AppTest collapse page: cold {t_cold:.2f} s (reads all traces), warm {t_warm:.2f} s")


if __name__ == "__main__":
    main()
