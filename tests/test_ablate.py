"""`score ablate` end to end through the real command with tiny budgets: aggregation over seeds, the SCoRe
variants taking their seed's Stage I, resuming a stopped ablation, re-evaluation, and the runs' order."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from score_lib.runs import read_config, read_metrics, read_status, weights_digest

from .conftest import TINY
from .test_cli import _sets, _stable, score


def test_ablate_aggregates_seeds(tiny_base, tmp_path):
    out = score("ablate", "--preset", "toy-chain", "--methods", "base,st-rl,star-stage2", "--seeds", "2",
                *_sets(*TINY), "--out", str(tmp_path / "abl"), "--json", str(tmp_path / "abl.json"),
                "--md", str(tmp_path / "abl.md"))
    results = json.loads((tmp_path / "abl.json").read_text())
    assert set(results) == {"base", "st-rl", "star-stage2", "_meta", "_findings"}
    for key in ("base", "st-rl", "star-stage2"):
        row = results[key]
        for metric in ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i", "answer_change_rate",
                       "edit_ratio_zero_share"):
            assert len(row[metric]["per_seed"]) == 2
            assert row[metric]["mean"] == pytest.approx(sum(row[metric]["per_seed"]) / 2)
        assert row["delta"]["mean"] == pytest.approx(row["delta_i2c"]["mean"] - row["delta_c2i"]["mean"])
        # each run's answer-change rate splits by its first attempts' correctness (None: no first attempt
        # of that kind, which weighs nothing); the table keeps a split only when every seed has it
        for s in range(2):
            run = json.loads((tmp_path / "abl" / f"{key}-s{s}.json").read_text())
            parts = [(w, run[k]) for w, k in ((run["acc_t1"], "answer_change_if_right"),
                                              (1 - run["acc_t1"], "answer_change_if_wrong")) if run[k] is not None]
            assert parts and run["answer_change_rate"] == pytest.approx(sum(w * r for w, r in parts))
        for k in ("answer_change_if_right", "answer_change_if_wrong"):
            assert (k in row) == all(json.loads((tmp_path / "abl" / f"{key}-s{s}.json").read_text())[k] is not None
                                     for s in range(2))
    assert "changed if y1 right / wrong" in (tmp_path / "abl.md").read_text()
    # the findings check rides along: the same table from the run and, later, from its JSON file alone
    found = results["_findings"]["findings"]
    assert [f["number"] for f in found] == [1, 2, 3, 4, 5]
    assert found[0]["claims"][0]["numbers"].startswith(f"{results['base']['delta']['mean']:+.3f} (SE ")
    assert found[2]["verdict"] == "not run"  # no multi-turn RL in this ablation
    again = score("findings", str(tmp_path / "abl.json"))
    assert again.stdout.strip() and again.stdout.strip() in (tmp_path / "abl.md").read_text()
    assert score("findings", str(tmp_path / "abl")).stdout == again.stdout  # the folder's finished runs: the same
    card = score("findings", "--each", str(tmp_path / "abl.json"), str(tmp_path / "abl" / "ablation.json")).stdout
    rows = [ln.split(" | ") for ln in card.splitlines()[2:] if ln.strip()]
    assert [r[0] for r in rows] == ["| abl.json", "| ablation.json"] and rows[0][1:] == rows[1][1:]  # one ablation
    bad = score("findings", str(tmp_path / "abl.md"), check=False)
    assert bad.returncode == 2 and "abl.md: not JSON" in bad.stderr
    # one recording pooled with itself: the same means (tests/test_findings.py checks the pooling itself)
    twice = score("findings", "--pool", str(tmp_path / "abl.json"), str(tmp_path / "abl" / "ablation.json")).stdout
    base_line = next(ln for ln in twice.splitlines() if "Base model: Delta < 0 (" in ln)
    assert f"| {results['base']['delta']['mean']:+.3f} (SE " in base_line
    assert score("findings", "--each", "--pool", str(tmp_path / "abl.json"), check=False).returncode == 2
    # the folder keeps the plan it ran and the same report without --json / --md (the app reads them there)
    assert json.loads((tmp_path / "abl" / "ablation.json").read_text()) == results
    assert (tmp_path / "abl" / "ablation.md").read_text() == (tmp_path / "abl.md").read_text()
    # did a run reproduce a recording: seed by seed (tests/test_findings.py checks the comparison itself)
    same = score("findings", str(tmp_path / "abl" / "ablation.json"), "--against", str(tmp_path / "abl.json")).stdout
    assert same.startswith("ablation.json repeats abl.json: all ") and "per-seed lists equal" in same
    plan = json.loads((tmp_path / "abl" / "ablation_plan.json").read_text())
    assert (plan["world"], plan["seeds"], plan["methods"]) == ("toy-chain", 2, ["base", "st-rl", "star-stage2"])
    stages = {m["stage"] for m in read_metrics(tmp_path / "abl" / "star-stage2-s0")}
    assert "stage1" in stages and any(s.startswith("round") for s in stages)  # RL Stage I, then STaR
    assert "SCoRe, STaR in Stage II" in (tmp_path / "abl.md").read_text() and "Base model" in out.stdout
    cfgs = {k: json.loads((tmp_path / "abl" / f"{k}-s0" / "config.json").read_text()) for k in ("st-rl", "star-stage2")}
    assert (cfgs["st-rl"]["attempts"], cfgs["star-stage2"]["attempts"]) == (1, 2)
    # same sampled responses per problem: single-turn RL samples twice as many one-attempt episodes
    assert cfgs["st-rl"]["samples_per_prompt"] == 2 * cfgs["star-stage2"]["samples_per_prompt"]
    # more seeds later, into the same folder: seed 2 alone, the earlier runs untouched; pooled, three seeds
    before = (tmp_path / "abl" / "base-s0.json").stat().st_mtime
    score("ablate", "--preset", "toy-chain", "--methods", "base", "--seeds", "1", "--first-seed", "2", *_sets(*TINY),
          "--out", str(tmp_path / "abl"), "--json", str(tmp_path / "more.json"), "--md", str(tmp_path / "more.md"))
    more = json.loads((tmp_path / "more.json").read_text())
    assert more["base"]["seeds"] == [2] and more["_meta"]["first_seed"] == 2 and "1 seeds (2 to 2)" in (
        tmp_path / "more.md").read_text()
    assert (tmp_path / "abl" / "base-s0.json").stat().st_mtime == before
    pooled = score("findings", "--pool", str(tmp_path / "abl.json"), str(tmp_path / "more.json")).stdout
    base_line = next(ln for ln in pooled.splitlines() if "Base model: Delta < 0 (" in ln)
    three = [results["base"]["delta"]["mean"]] * 2 + [more["base"]["delta"]["mean"]]
    assert f"| {sum(three) / 3:+.3f} (SE " in base_line
    # seed 2 alone against seeds 0 and 1: nothing to compare, said so
    apart = score("findings", str(tmp_path / "more.json"), "--against", str(tmp_path / "abl.json"), check=False)
    assert apart.returncode == 2 and "share no seed" in apart.stderr
    assert score("findings", "--pool", str(tmp_path / "more.json"), "--against", str(tmp_path / "abl.json"),
                 check=False).returncode == 2


def test_ablate_runs_the_score_variants_from_the_seeds_stage1_with_the_same_numbers(tiny_base, tmp_path):
    sets = [o for o in TINY if not o.startswith(("steps", "stage1_steps"))] + ["steps=3", "stage1_steps=2"]
    args = ["ablate", "--preset", "toy-chain", "--seeds", "1", "--workers", "1", *_sets(*sets)]
    score(*args, "--methods", "no-shaping,score,star,star-plus", "--out", str(tmp_path / "shared"))
    score(*args, "--methods", "no-shaping", "--out", str(tmp_path / "alone"))
    # STaR+ read the first round STaR drew (tests above: the same numbers as drawing it)
    notes = {m: json.loads((tmp_path / "shared" / f"{m}-s0" / "shared_samples.json").read_text())
             for m in ("star", "star-plus")}
    assert notes["star"]["drawn_here"] and not notes["star-plus"]["drawn_here"]
    assert notes["star"]["file"] == notes["star-plus"]["file"]
    shared, alone = tmp_path / "shared" / "no-shaping-s0", tmp_path / "alone" / "no-shaping-s0"
    assert read_config(shared)["stage1_from"] == str(tmp_path / "shared" / "score-s0")
    assert read_config(tmp_path / "shared" / "score-s0")["keep_stage1"] and not read_config(alone)["stage1_from"]
    assert _stable(read_metrics(shared)) == _stable(read_metrics(alone))
    assert (json.loads((tmp_path / "shared" / "no-shaping-s0.json").read_text())
            == json.loads((tmp_path / "alone" / "no-shaping-s0.json").read_text()))
    # a run forked from the ablation's preloaded process ends as the same run in a fresh interpreter does
    from score_lib.ablate import _job_args

    score(*_job_args("toy-chain", "no-shaping", 0, tmp_path / "fresh", sets))
    assert (json.loads((tmp_path / "fresh" / "no-shaping-s0.json").read_text())
            == json.loads((tmp_path / "alone" / "no-shaping-s0.json").read_text()))
    assert _stable(read_metrics(tmp_path / "fresh" / "no-shaping-s0")) == _stable(read_metrics(alone))
    # the kept folder passes the settings check again (stage1_from / keep_stage1 / shared_samples change no number)
    again = score(*args, "--methods", "no-shaping,score,star,star-plus", "--out", str(tmp_path / "shared"))
    assert "4 finished runs kept" in again.stdout


def test_ablate_stops_its_forkserver_so_its_runs_count_to_it(tiny_base, tmp_path):
    """The runs are forked from a server process: once they end it is stopped and waited for, so it does not
    outlive the ablation and their CPU time reaches `time`/getrusage of the process that ran the ablation."""
    import resource
    from multiprocessing import forkserver

    from score_lib.ablate import run_ablation

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run_ablation("toy-chain", seeds=1, out=tmp_path / "abl", methods=["base"], extra=TINY, progress=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert forkserver._forkserver._forkserver_pid is None
    # the server imported torch and transformers, and the run evaluated: seconds, not the ~0 of an unreaped one
    assert after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime > 1.0
    assert json.loads((tmp_path / "abl" / "base-s0.json").read_text())["method"] == "eval"


def test_ablate_that_builds_a_clock_stopped_base_warns_once(tiny_base, tmp_path):
    """The build's own warning says it; ablate adds its warning only for a base it found cached."""
    sets = [s for s in TINY if not s.startswith("toy_base_seconds")] + ["toy_base_seconds=0.5"]
    out = score("ablate", "--preset", "toy-chain", "--methods", "base", "--seeds", "1", *_sets(*sets),
                "--out", str(tmp_path / "abl"))
    assert out.stderr.count("wall-clock cap") == 1, out.stderr[-2000:]
    assert "max_seconds=0.5) stopped it" in out.stderr and "ablate: warning" not in out.stderr


def test_ablate_again_keeps_finished_runs_and_redoes_only_the_missing(tiny_base, tmp_path):
    args = ["ablate", "--preset", "toy-chain", "--methods", "base", "--seeds", "2", *_sets(*TINY),
            "--out", str(tmp_path / "abl"), "--json", str(tmp_path / "abl.json"), "--md", str(tmp_path / "abl.md")]
    out = score(*args)
    assert f"the base {tiny_base} was stopped by its wall-clock cap" in out.stderr  # the tiny base is, on purpose
    first = json.loads((tmp_path / "abl.json").read_text())
    stamps = {s: (tmp_path / "abl" / f"base-s{s}" / "metrics.jsonl").stat().st_mtime_ns for s in (0, 1)}
    (tmp_path / "abl" / "base-s1.json").unlink()  # seed 1 "interrupted" before its final report
    score(*args)
    again = json.loads((tmp_path / "abl.json").read_text())
    assert again["_meta"]["runs_kept"] == 1 and "1 finished runs kept" in (tmp_path / "abl.md").read_text()
    assert (tmp_path / "abl" / "base-s0" / "metrics.jsonl").stat().st_mtime_ns == stamps[0]  # not rerun
    assert (tmp_path / "abl" / "base-s1" / "metrics.jsonl").stat().st_mtime_ns != stamps[1]  # rerun
    assert again["base"] == first["base"]  # the same numbers: a resumed run replays its seed
    # another budget in the same folder is refused before anything runs, naming the run and the setting
    out = score(*args[:-6], "--set", "eval_problems=5", *args[-6:], check=False)
    assert out.returncode != 0 and "base-s0" in out.stderr and "eval_problems" in out.stderr
    # so is a kept run that started from another base (a default that changed in between): one table, one base
    assert again["_meta"]["model"] == str(tiny_base)
    model_json = tmp_path / "abl" / "base-s0" / "model.json"
    model_json.write_text(json.dumps({**json.loads(model_json.read_text()), "path": "/elsewhere/0123456789"}))
    out = score(*args, check=False)
    assert out.returncode != 0 and "base-s0 (/elsewhere/0123456789)" in out.stderr
    # and one from another build under the same cache key: other weights (another CPU, the same steps) ...
    recorded = json.loads(model_json.read_text())
    recorded["path"] = str(tiny_base)
    assert recorded["toy_base"]["weights"] == again["_meta"]["model_weights"] == weights_digest(str(tiny_base))
    model_json.write_text(json.dumps({**recorded, "toy_base": {**recorded["toy_base"], "weights": "0" * 16}}))
    out = score(*args, check=False)
    assert out.returncode != 0 and f"base-s0 ({tiny_base}, weights {'0' * 16})" in out.stderr
    # ... or, recorded before runs kept the weights, a build that took other steps
    recorded["toy_base"]["steps"] += 1
    del recorded["toy_base"]["weights"]
    model_json.write_text(json.dumps(recorded))
    out = score(*args, check=False)
    assert out.returncode != 0 and f"base-s0 ({tiny_base}, {recorded['toy_base']['steps']} steps)" in out.stderr
    steps = json.loads((tiny_base / "toy_base.json").read_text())["steps"]
    assert again["_meta"]["model_build"] == f"{tiny_base.name} ({steps} steps)"


def test_ablate_reevaluate_scores_the_final_models_again_under_another_protocol(tiny_base, tmp_path):
    args = ["ablate", "--preset", "toy-chain", "--methods", "base,st-rl", "--seeds", "2", *_sets(*TINY),
            "--out", str(tmp_path / "abl")]
    score(*args, "--json", str(tmp_path / "abl.json"))
    trained = json.loads((tmp_path / "abl.json").read_text())
    # the runs' own protocol again (eval_samples=1 is TINY's): evaluation is seeded, so the same numbers
    same = score(*args, "--reevaluate", "eval_samples=1", "--json", str(tmp_path / "same.json"))
    again = json.loads((tmp_path / "same.json").read_text())
    for key in ("base", "st-rl"):
        for metric in ("acc_t1", "acc_t2", "delta", "delta_c2i", "answer_change_rate"):
            assert again[key][metric]["per_seed"] == trained[key][metric]["per_seed"], (key, metric)
    assert "evaluated again" in same.stdout
    # a later batch of seeds alone (--first-seed, as it was trained): only its runs, its seeds in the table
    assert args[5:7] == ["--seeds", "2"]
    score(*args[:5], "--seeds", "1", "--first-seed", "1", *args[7:], "--reevaluate", "eval_samples=2",
          "--json", str(tmp_path / "later.json"))
    later = json.loads((tmp_path / "later.json").read_text())
    assert sorted(p.name for p in (tmp_path / "abl" / "reeval-eval_samples-2").glob("*-s*.json")) == [
        "base-s1.json", "st-rl-s1.json"]
    assert later["st-rl"]["seeds"] == [1] and later["_meta"]["first_seed"] == 1
    # another protocol: 3 samples per problem on 4 problems, written to its own folder
    score(*args, "--reevaluate", "eval_samples=3", "--reevaluate", "eval_problems=4", "--json", str(tmp_path / "s3.json"))
    folder = tmp_path / "abl" / "reeval-eval_problems-4-eval_samples-3"
    assert sorted(p.name for p in folder.glob("*.json")) == ["ablation.json", "base-s0.json", "base-s1.json",
                                                              "st-rl-s0.json", "st-rl-s1.json"]
    # that protocol's table is kept beside its reports, not over the trained runs' one
    assert json.loads((folder / "ablation.json").read_text())["st-rl"] == json.loads((tmp_path / "s3.json").read_text())["st-rl"]
    assert json.loads((tmp_path / "abl" / "ablation.json").read_text())["st-rl"] == trained["st-rl"]
    row = json.loads((folder / "st-rl-s0.json").read_text())
    assert row["n_problems"] == 12 and row["model"].endswith("step-00000002/model")  # the final checkpoint
    assert json.loads((folder / "base-s0.json").read_text())["n_problems"] == 12
    # a second invocation keeps what is there (an interrupted re-evaluation continues)
    stamp = (folder / "st-rl-s0.json").stat().st_mtime_ns
    score(*args, "--reevaluate", "eval_problems=4", "--reevaluate", "eval_samples=3")
    assert (folder / "st-rl-s0.json").stat().st_mtime_ns == stamp
    # only the protocol may change, and only a finished ablation is evaluated again; each refusal names why
    out = score(*args, "--reevaluate", "toy_n_ops=4", check=False)
    assert out.returncode == 2 and "toy_n_ops" in out.stderr
    out = score("ablate", "--preset", "toy-chain", "--methods", "base,mt-rl", "--seeds", "2", *_sets(*TINY),
                "--out", str(tmp_path / "abl"),
                "--reevaluate", "eval_samples=1", check=False)
    assert out.returncode == 2 and "mt-rl-s0" in out.stderr and "not a finished run" in out.stderr


def test_a_stopped_ablation_stops_its_runs_and_starts_no_more(tiny_base, tmp_path):
    """SIGTERM (kill, a job scheduler; a terminal's Ctrl-C is SIGINT, handled alike) ends the running run as
    "stopped", resumable, and cancels the queued ones instead of running them all first."""
    import signal
    import time

    out_dir = tmp_path / "abl"
    long = [t for t in TINY if not t.startswith("steps=")] + ["steps=400"]
    cmd = [str(Path(sys.executable).with_name("score")), "ablate", "--preset", "toy-chain", "--methods", "mt-rl",
           "--seeds", "3", "--workers", "1", *_sets(*long), "--out", str(out_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.time() + 180
    while time.time() < deadline and not ((out_dir / "mt-rl-s0" / "status.json").exists()
                                          and read_status(out_dir / "mt-rl-s0")["state"] == "running"):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and f"--out {out_dir} resumes it" in err, err[-2000:]
    assert read_status(out_dir / "mt-rl-s0")["state"] == "stopped"
    assert not (out_dir / "mt-rl-s1").exists() and not (out_dir / "mt-rl-s2").exists()


def test_ablate_names_a_renamed_world_preset():
    out = score("ablate", "--preset", "toy-pick", "--methods", "base", check=False)
    assert out.returncode == 2 and "'toy-pick'" in out.stderr and "now called 'toy'" in out.stderr


def test_ablation_runs_training_jobs_before_evaluation_only_ones():
    from score_lib.ablate import jobs_to_run

    states = {(m, s): "new" for s in range(2)
              for m in ("base", "no-shaping", "star-plus", "mt-rl", "star", "self-refine", "score")}
    states["star", 0] = "done"
    states["score", 1] = "resume"
    # each seed's SCoRe run before the variant that takes its Stage I, STaR+ after the runs that may draw its
    # first round (STaR); the longer Self-Refine before the base
    assert jobs_to_run(states) == [
        ("score", 0), ("mt-rl", 0), ("star-plus", 0), ("no-shaping", 0),
        ("score", 1), ("star", 1), ("mt-rl", 1), ("star-plus", 1), ("no-shaping", 1),
        ("self-refine", 0), ("self-refine", 1), ("base", 0), ("base", 1)]


def test_ablation_budget_counts_responses():
    from score_lib.ablate import ABLATIONS, job_settings

    multi = {k: job_settings("toy", k, 0, ["samples_per_prompt=3"]) for k in ABLATIONS}
    assert multi["st-rl"]["samples_per_prompt"] == 6 and multi["st-rl"]["attempts"] == 1
    assert {multi[k]["samples_per_prompt"] for k in ABLATIONS if k != "st-rl"} == {"3"}
    assert job_settings("toy", "st-rl", 0, [])["samples_per_prompt"] == 8  # the toy world's 4 x 2 attempts
    three = job_settings("toy", "st-rl", 1, ["attempts=3"])  # a --set attempts reaches every method, st-rl too
    assert three["attempts"] == "3" and three["samples_per_prompt"] == 4 and three["seed"] == 1


def test_concurrent_runs_each_get_their_own_exit_code(tmp_path):
    """Two workers start and join runs at once: Process.start polls every other child, and an exit code read
    by that poll must not leave the run's own join reading EOF (multiprocessing's exit code 255)."""
    from concurrent.futures import ThreadPoolExecutor

    from score_lib.ablate import Children, ended_by

    children = Children()
    args = {0: ["runs", "--help"], 2: ["runs", "--no-such-flag"]}  # argparse: exit 0, and exit 2 on a bad flag
    jobs = [i % 2 * 2 for i in range(24)]
    try:
        with ThreadPoolExecutor(2) as pool:
            codes = list(pool.map(lambda i: children.run(args[jobs[i]], tmp_path / f"{i}.log", 1), range(24)))
    finally:
        children.close()
    assert codes == jobs, [ended_by(c) for c in codes]
    assert ended_by(2) == "exit code 2" and ended_by(-15) == "signal SIGTERM" and ended_by(-99) == "signal 99"
