"""The app's plain-Python parts: incremental reading, derivations, figures, HTML, launcher, serve."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from score_lib import objectives
from score_lib.config import ConfigError
from score_lib.runs import RunWriter, read_status
from tests import fixtures_runs as fx
from workbench import data, derive, figures, launcher, render, serve


def test_jsonl_tail_reads_only_what_was_appended(tmp_path):
    w = RunWriter(tmp_path / "r", {"method": "score"})
    tail = data.JsonlTail(tmp_path / "r" / "metrics.jsonl")
    assert tail.refresh() == []  # no file yet
    w.log_metrics({"step": 1})
    w.log_metrics({"step": 2})
    assert [r["step"] for r in tail.refresh()] == [1, 2]
    with open(tail.path, "ab") as f:
        f.write(b'{"step": 3}\n{"step": 4, "torn')  # a line being written
    assert [r["step"] for r in tail.refresh()] == [3]
    with open(tail.path, "ab") as f:
        f.write(b'": 1}\n')
    assert [r["step"] for r in tail.refresh()] == [4]
    assert tail.refresh() == [] and len(tail.records) == 4
    with open(tail.path, "ab") as f:
        f.write(b'not json\n[1, 2]\n{"step": 5}\n')
    assert [r["step"] for r in tail.refresh()] == [5] and tail.bad_lines == 2


def test_jsonl_tail_restarts_when_the_file_is_rewritten(tmp_path):
    w = RunWriter(tmp_path / "r", {"method": "score"})
    for s in range(1, 6):
        w.log_metrics({"step": s})
    tail = data.JsonlTail(tmp_path / "r" / "metrics.jsonl")
    tail.refresh()
    w.truncate_after(3)  # a resume: the file shrinks (and is replaced)
    tail.refresh()
    assert [r["step"] for r in tail.records] == [1, 2, 3] and tail.generation == 1
    w.log_metrics({"step": 4})
    w.truncate_after(10)  # replaced by a file of the same size: a new inode
    for s in (5, 6):
        w.log_metrics({"step": s})
    tail.refresh()
    assert [r["step"] for r in tail.records] == [1, 2, 3, 4, 5, 6]


def test_run_cache_names_the_problem(tmp_path):
    paths = {"missing": tmp_path / "nope", "empty": tmp_path / "empty", "corrupt": tmp_path / "bad"}
    paths["empty"].mkdir()
    paths["corrupt"].mkdir()
    (paths["corrupt"] / "config.json").write_text("{not json")
    for kind, path in paths.items():
        cache = data.RunCache(path).refresh()
        assert cache.problem_kind == kind and str(path) in cache.problem
    starting = tmp_path / "starting"
    starting.mkdir()
    (starting / "status.json").write_text("{}")
    assert data.RunCache(starting).refresh().problem_kind == "starting"


def test_run_cache_rows_follow_the_traces(tmp_path):
    run = fx.make_run(tmp_path / "r", steps=6, stage1_steps=3, eval_every=0, trace_every=1)
    cache = data.RunCache(run).refresh()
    assert cache.problem is None and len(cache.trace_rows) == len(cache.traces.records) > 0
    assert [r["i"] for r in cache.trace_rows] == list(range(len(cache.trace_rows)))
    RunWriter(run, resume=True).truncate_after(2)
    cache.refresh()
    assert {r["step"] for r in cache.trace_rows} <= {1, 2, 6}  # step 6: the final eval's test traces
    assert [r["i"] for r in cache.trace_rows] == list(range(len(cache.trace_rows)))


def test_stage_boundaries_and_series():
    recs = [{"step": 1, "stage": "stage1", "x": 1.0}, {"step": 2, "stage": "stage1", "x": float("nan")},
            {"step": 3, "stage": "stage2", "x": 3}, {"step": 3, "stage": "final", "eval_x": 0.5}]
    assert derive.stage_boundaries(recs) == [(3, "stage2")]
    assert derive.series(recs, "x") == ([1, 3], [1.0, 3])


def test_recomputed_advantages_are_the_objectives():
    rows = [{"i": i, "split": "train", "transition": "x", "step": 1, "problem_id": "p" if i < 3 else "q",
             "correct_t1": c1, "correct_t2": c2}
            for i, (c1, c2) in enumerate([(0, 1), (1, 0), (1, 1), (0, 0), (0, 1)])]
    adv = derive.recompute_advantages(rows, 10.0)
    expected = objectives.advantages("stage2", torch.tensor([[0., 1], [1, 0], [1, 1], [0, 0], [0, 1]]),
                                     torch.tensor([0, 0, 0, 1, 1]), 10.0)
    assert [adv[i] for i in range(5)] == [tuple(map(float, row)) for row in expected]


def test_advantage_mass_and_shaping_table():
    table = {r["transition"]: r for r in derive.shaping_table(10.0)}
    assert (table["i->c"]["Stage II t2"], table["c->c"]["Stage II t2"], table["c->i"]["Stage II t2"],
            table["i->i"]["Stage II t2"]) == (11.0, 1.0, -10.0, 0.0)
    assert table["i->c"]["Stage I t1"] == 0.0  # Eq. 3: no reward term on attempt 1
    rows = [{"i": 0, "transition": "i2c", "advantage_t2": 3.0}, {"i": 1, "transition": "c2i", "advantage_t2": -1.0},
            {"i": 2, "transition": "c2c", "advantage_t2": None}]
    mass = derive.advantage_mass(rows)
    assert mass["i2c"]["share"] == 0.75 and mass["c2i"]["sum"] == -1.0 and mass["c2c"]["n"] == 0


def test_figures_from_a_fixture_run(tmp_path):
    run = fx.make_run(tmp_path / "r", steps=30, stage1_steps=10)
    cache = data.RunCache(run).refresh()
    figs = figures.live_figures(cache.metrics.records)
    assert len(figs) == 8 and all(len(f.data) > 0 for f in figs.values())
    assert figs["kl"].layout.shapes[0].x0 == 10.5  # Stage II starts at step 11
    # Fig. 6b's rate with its split by the first attempt's correctness (dashed), from the same records
    lines = {t.name: t for t in figs["answer_change"].data}
    assert {"train batch", "train, y1 right", "train, y1 wrong"} <= set(lines)
    assert lines["train, y1 wrong"].line.dash == "dash" and lines["train batch"].line.dash == "solid"
    assert lines["train, y1 wrong"].line.color == lines["eval, y1 wrong"].line.color != lines["train batch"].line.color
    rec = [r for r in cache.metrics.records if r.get("train_answer_change_if_wrong") is not None]
    assert list(lines["train, y1 wrong"].y) == pytest.approx([r["train_answer_change_if_wrong"] for r in rec])
    summaries = cache.step_summaries("train")
    stacked = figures.fig_transitions_stacked(summaries)
    totals = [sum(t.y[i] for t in stacked.data) for i in range(len(summaries))]
    assert totals == pytest.approx([1.0] * len(summaries))
    hist = figures.fig_edit_ratio_hist({"a": derive.edit_ratio_hist(cache.trace_rows)})
    assert sum(hist.data[0].y) == pytest.approx(1.0)


def test_diff_html_marks_and_escapes():
    left, right = render.diff_html("1+2=3#3<b>", "1+2=4#4<b>")
    assert "line-through" in left and "#b2f2bb" in right
    assert "&lt;b&gt;" in left and "&lt;b&gt;" in right and "<b>" not in left + right


def test_serve_command_binds_localhost():
    cmd = serve.command("runs", port=8600)
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == "8600" and cmd[-2] == "--runs-dir"
    assert Path(cmd[-1]).is_absolute() and cmd[cmd.index("run") + 1].endswith("app.py")


def test_launcher_refuses_bad_settings_before_starting(tmp_path):
    with pytest.raises(ConfigError, match="stage1_steps"):
        launcher.start_run(tmp_path, "toy-score", {"steps": 10})
    assert not launcher.LAUNCHES and not list(tmp_path.iterdir())
    cmd = launcher.build_command("toy-score", {"alpha": 10.0, "beta1": 0.01, "lora": True}, tmp_path / "x")
    assert cmd[-12:] == ["train", "--preset", "toy-score", "--set", "alpha=10", "--set", "beta1=0.01",
                         "--set", "lora=true", "--out", str(tmp_path / "x"), "--quiet"]


def test_launcher_runs_real_score_train(tmp_path, tiny_base):
    """The command line the app builds is one `score train` accepts: a tiny run to the end."""
    from tests.conftest import TINY

    overrides = {**dict(o.split("=", 1) for o in TINY), "steps": 1, "stage1_steps": 1, "eval_every": 0,
                 "checkpoint_every": 0, "eval_problems": 4}  # the argv is under test, not training
    launch = launcher.start_run(tmp_path, "toy-score", overrides)
    try:
        deadline = time.time() + 300
        while launch.returncode is None and time.time() < deadline:
            time.sleep(0.5)
        log = launcher.log_tail(launch.log_path, 50)
        assert launch.returncode == 0, log
        assert read_status(launch.run_dir)["state"] == "finished"
        assert json.loads((launch.run_dir / "config.json").read_text())["steps"] == 1
        cache = data.RunCache(launch.run_dir).refresh()
        assert cache.metrics.records[-1]["stage"] == "final" and cache.trace_rows
    finally:
        if launch.returncode is None:
            launch.process.kill()
        launcher.LAUNCHES.pop(launch.run_id, None)
