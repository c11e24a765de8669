"""Every page of the Streamlit app, run headless with AppTest against the synthetic run store."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests import fixtures_runs as fx  # noqa: E402
from workbench import data, launcher  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    paths = fx.make_fixture(root)  # status pids are this process: the running run reads as running
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCORE_RUNS_DIR", str(root))
        yield root, paths


def open_page(page: str | None = None, run: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    if run:
        at.query_params["run"] = run
    at.run()
    if page:
        at.switch_page(f"workbench/pages_/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at) -> list:
    return list(at.get("plotly_chart"))


def chart_spec(chart) -> dict:
    return json.loads(chart.proto.spec)


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


# ---------------------------------------------------------------- Runs


def test_runs_page_lists_every_run_and_its_problems(store):
    root, paths = store
    at = open_page()
    assert at.title[0].value == "Runs"
    table = at.dataframe[0].value
    assert set(table["run"]) == {fx.FINISHED, fx.MTRL, fx.RUNNING, fx.FAILED, fx.CORRUPT}
    states = dict(zip(table["run"], table["state"]))
    assert states[fx.RUNNING] == "running" and states[fx.FINISHED] == "finished" and states[fx.CORRUPT] == "corrupt"
    errors = texts(at.error)
    assert "CUDA out of memory" in errors and "not valid JSON" in errors
    assert "empty" in texts(at.info)  # the empty directory is named as not a run
    assert at.button(key=f"stop-{fx.RUNNING}")  # a stop button for the running run only
    assert not any(b.key == f"stop-{fx.FINISHED}" for b in at.button)
    assert at.get("form")  # the launch form


def test_runs_page_without_a_store(tmp_path, monkeypatch):
    monkeypatch.setenv("SCORE_RUNS_DIR", str(tmp_path / "nowhere"))
    at = open_page()
    assert "no run store" in texts(at.info)
    (tmp_path / "nowhere").mkdir()
    at = open_page("live")
    assert "No runs under" in texts(at.info)


# ---------------------------------------------------------------- Live training


def test_live_page_finished_run(store):
    at = open_page("live", fx.FINISHED)
    assert at.title[0].value == "Live training"
    figs = charts(at)
    assert len(figs) == 8
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Step"] == "60 / 60"
    # the Stage I -> Stage II boundary is drawn on the curves
    shapes = chart_spec(figs[0])["layout"]["shapes"]
    assert [s["x0"] for s in shapes] == [24.5]


def test_live_page_follows_a_running_run(store):
    root, paths = store
    at = open_page("live", fx.RUNNING)
    assert {m.label: m.value for m in at.metric}["Step"] == "12 / 200"
    cache = at.session_state[data.SESSION_KEY][str(paths[fx.RUNNING])]
    offset = cache.metrics.offset
    assert offset > 0 and len(cache.metrics.records) == 12
    fx.append_steps(paths[fx.RUNNING], 13, 3)  # the trainer appends three steps
    at.run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Step"] == "15 / 200"
    assert cache.metrics.offset > offset and len(cache.metrics.records) == 15  # read incrementally
    x = chart_spec(charts(at)[1])["data"][0]["x"]
    assert max(_decode(x)) == 15


def _decode(x):
    """Plotly JSON may carry numpy arrays as {"dtype", "bdata"} (base64)."""
    if isinstance(x, dict) and "bdata" in x:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"]).tolist()
    return x


def test_live_page_failed_run_shows_its_error(store):
    at = open_page("live", fx.FAILED)
    assert "CUDA out of memory" in texts(at.error)
    assert len(charts(at)) == 8  # what it logged before failing is still shown


@pytest.mark.parametrize("run,kind,message", [
    (fx.CORRUPT, "error", "not valid JSON"),
    (fx.EMPTY, "info", "empty directory"),
    ("no-such-run", "info", "does not exist"),
])
def test_bad_run_directories_show_a_message(store, run, kind, message):
    for page in ("live", "traces", "collapse"):
        at = open_page(page, run)
        assert message in texts(getattr(at, kind)), page
        assert page == "collapse" or not charts(at)


def test_live_page_names_the_selected_weights(tmp_path, monkeypatch):
    run = fx.make_run(tmp_path / "selected", steps=6, stage1_steps=3, eval_every=0)
    with open(run / "metrics.jsonl") as f:
        lines = [json.loads(line) for line in f]
    lines[-1]["eval_selected_step"] = 5  # select_by=train-reward evaluated the weights after step 5
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    monkeypatch.setenv("SCORE_RUNS_DIR", str(tmp_path))
    labels = [m.label for m in open_page("live", "selected").metric]
    assert "Delta (eval @ 6, weights of step 5)" in labels


def test_damaged_lines_are_skipped_with_a_warning(tmp_path, monkeypatch):
    run = fx.make_run(tmp_path / "damaged", steps=6, stage1_steps=3, eval_every=0, trace_every=1)
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(b'garbage\n{"step": "x", "stage": 3}\n{"step": 7, "reward_t1": ')  # torn last line
    with open(run / "traces.jsonl", "ab") as f:
        f.write(b'{"step": 7, "attempts": {"text": 1}}\n{"step": 8, "attempts": [1, {"text": null}]}\n[]\n')
    monkeypatch.setenv("SCORE_RUNS_DIR", str(tmp_path))
    for page in ("live", "traces", "collapse", "shaping"):
        at = open_page(page, "damaged")
        assert "Skipped unreadable lines" in texts(at.warning), page
        assert charts(at), page


# ---------------------------------------------------------------- Trace inspector


def test_trace_inspector_filters(store):
    root, paths = store
    at = open_page("traces", fx.FINISHED)
    assert at.title[0].value == "Trace inspector"
    assert len(at.dataframe[0].value) == 208 and charts(at)
    at.multiselect(key="tr-transition").set_value(["c2i"]).run()
    table = at.dataframe[0].value
    n_c2i = sum(1 for line in (paths[fx.FINISHED] / "traces.jsonl").read_text().splitlines()
                if (a := json.loads(line)["attempts"])[0]["correct"] and not a[1]["correct"])
    assert 0 < len(table) == n_c2i < 208
    assert set(table["transition"]) == {"c->i"}
    assert "c->i" in texts(at.markdown)  # the episode shown is a c->i one
    at.selectbox(key="tr-split").set_value("test").run()
    assert set(at.dataframe[0].value["split"]) == {"test"}
    at.multiselect(key="tr-transition").set_value(["c2c", "c2i", "i2c", "i2i"]).run()
    at.selectbox(key="tr-split").set_value("all").run()
    pid = at.dataframe[0].value["problem"].iloc[0]
    at.text_input(key="tr-problem").set_value(pid).run()
    assert set(at.dataframe[0].value["problem"]) == {pid}


def test_trace_inspector_filters_from_the_url(store):
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params.update({"run": fx.FINISHED, "transition": "i2c", "split": "test"})
    at.run().switch_page("workbench/pages_/traces.py").run()
    table = at.dataframe[0].value
    assert len(table) > 0 and set(table["transition"]) == {"i->c"} and set(table["split"]) == {"test"}


def test_trace_inspector_colours_tokens(store):
    at = open_page("traces", fx.FINISHED)
    at.selectbox(key="tr-split").set_value("train").run()
    at.multiselect(key="tr-transition").set_value(["i2c"]).run()  # the answers differ, so the texts do
    html = texts(at.markdown)
    assert "line-through" in html and "#b2f2bb" in html
    at.radio(key="tr-mode").set_value("logprob").run()
    assert 'title="logprob' in texts(at.markdown)
    at.radio(key="tr-mode").set_value("advantage").run()
    assert 'title="advantage' in texts(at.markdown)
    shown = texts(at.markdown)
    assert "shaped reward **" in shown and "advantage **" in shown


# ---------------------------------------------------------------- Behaviour collapse


def test_behaviour_collapse_page(store):
    at = open_page("collapse", fx.FINISHED)
    assert at.title[0].value == "Behaviour collapse"
    figs = charts(at)
    assert len(figs) == 4  # histogram by step, answer change, transitions, by run
    assert len(chart_spec(figs[0])["data"]) == 2  # first step vs chosen (last) step
    stacked = chart_spec(figs[2])
    assert [t["name"] for t in stacked["data"]] == ["c->c", "i->c", "c->i", "i->i"]
    slider = at.select_slider(key="col-step")
    slider.set_value(slider.options[0]).run()
    assert len(chart_spec(charts(at)[0])["data"]) == 1
    by_run = chart_spec(charts(at)[3])
    assert {t["name"].split(" ")[0] for t in by_run["data"]} == {fx.FINISHED, fx.MTRL}


# ---------------------------------------------------------------- Reward shaping


def test_reward_shaping_explorer(store):
    at = open_page("shaping", fx.FINISHED)
    table = at.dataframe[0].value.set_index("transition")
    assert table.loc["i->c", "Stage II t2"] == 11.0 and table.loc["c->i", "Stage II t2"] == -10.0
    assert table.loc["c->c", "Stage II t2"] == 1.0 and table.loc["i->i", "Stage II t2"] == 0.0
    at.slider(key="sh-alpha").set_value(2.0).run()
    table = at.dataframe[0].value.set_index("transition")
    assert table.loc["i->c", "Stage II t2"] == 3.0 and table.loc["c->i", "Stage II t2"] == -2.0
    kl = at.dataframe[1].value.set_index("objective")
    assert kl.loc["stage1", "KL coef t1"] == pytest.approx(0.1)
    assert len(charts(at)) == 3
    mass = at.dataframe[2].value
    assert set(mass["advantages"]) == {"recorded (as trained)", "Stage II, alpha=2", "Stage II, alpha=0"}


# ---------------------------------------------------------------- Compare runs


def test_compare_runs_next_to_the_paper(store):
    at = open_page("compare")
    table = at.dataframe[0].value
    names = list(table["run"])
    assert any(n.startswith(fx.FINISHED) for n in names) and any(n.startswith(fx.MTRL) for n in names)
    assert "paper: SCoRe" in names
    ours = table[table["run"].str.startswith(fx.FINISHED)].iloc[0]
    assert ours["Delta"] == pytest.approx(ours["i->c"] - ours["c->i"])
    # the answer-change split, weighted by Acc@t1, gives back the overall rate (all in percent)
    assert ours["answer change"] == pytest.approx((ours["Acc@t1"] * ours["changed if y1 right"] + (
        100 - ours["Acc@t1"]) * ours["changed if y1 wrong"]) / 100)
    assert ours["fix rate"] == pytest.approx(100 * ours["i->c"] / (100 - ours["Acc@t1"]))
    assert len(charts(at)) == 2
    at.multiselect(key="cmp-paper").set_value(["Table 4 (MATH ablations)"]).run()
    assert "paper: without reward shaping" in list(at.dataframe[0].value["run"])


# ---------------------------------------------------------------- Ablation


def _report(i2c: float, c2i: float, acc_t1: float = 0.6) -> dict:
    """A run's final `--json` report, as `score train` writes it."""
    return {"acc_t1": acc_t1, "acc_t2": acc_t1 + i2c - c2i, "delta": i2c - c2i, "delta_i2c": i2c, "delta_c2i": c2i,
            "answer_change_rate": 0.3, "edit_ratio_zero_share": 0.4, "n_problems": 256}


def test_ablation_page_tables_the_finished_runs_and_checks_the_findings(tmp_path, monkeypatch):
    from score_lib.ablate import PLAN_FILE

    folder = tmp_path / "ablate-toy"
    folder.mkdir()
    (folder / PLAN_FILE).write_text(json.dumps({"world": "toy", "seeds": 2, "methods": ["base", "score"]}))
    reports = {"base-s0": _report(0.04, 0.16), "base-s1": _report(0.05, 0.15), "score-s0": _report(0.09, 0.02)}
    for name, rep in reports.items():
        (folder / f"{name}.json").write_text(json.dumps(rep))
    monkeypatch.setenv("SCORE_RUNS_DIR", str(tmp_path))
    at = open_page("ablation")
    md = texts(at.markdown)
    assert "3 of 4 runs finished" in str(at.get("progress")[0].proto.text)
    assert "World `toy`" in md
    assert "| Base model | 0.600 ± 0.000 | 0.490 ± 0.014 | -0.110 ± 0.014" in md  # mean of -0.12 and -0.10
    assert "| SCoRe | 0.600 ± 0.000 | 0.670 ± 0.000 | +0.070" in md
    assert "| 1. Base model: Delta < 0 | **yes** |" in md
    assert "not run" in md  # no multi-turn RL, single-turn RL or SFT rows in this ablation
    assert "SCoRe 0" in texts(at.caption)  # SCoRe has seed 0 only so far: said, and compared unpaired
    # the second SCoRe seed lands: the table and the check follow on the next run of the page
    (folder / "score-s1.json").write_text(json.dumps(_report(0.08, 0.03)))
    at.run()
    assert "4 of 4 runs finished" in str(at.get("progress")[0].proto.text)
    assert "+0.060 ± 0.014" in texts(at.markdown)


def test_ablation_page_without_an_ablation_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv("SCORE_RUNS_DIR", str(tmp_path))
    at = open_page("ablation")
    assert "score ablate" in texts(at.info)


# ---------------------------------------------------------------- starting and stopping runs

FAKE_TRAINER = """
import sys, time
from score_lib.runs import RunWriter
args = sys.argv[1:]
out = args[args.index("--out") + 1]
w = RunWriter(out, {"method": "score", "task": "toy", "model": "fake", "argv": args})
w.set_status("running", step=0)
step = 0
while True:
    step += 1
    w.log_metrics({"step": step, "stage": "stage1", "reward_t1": 0.5, "reward_t2": 0.5})
    w.set_status("running", step=step)
    time.sleep(0.2)
"""


def test_a_launched_run_without_files_shows_as_starting(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setenv("SCORE_RUNS_DIR", str(tmp_path))
    log = tmp_path / "new-run.log"
    log.write_text("$ score train ...\nloading the toy base model\n")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    launcher.LAUNCHES["new-run"] = launcher.Launch("new-run", tmp_path / "new-run", log, ["score"], proc.pid,
                                                   process=proc)
    try:
        at = open_page("live", "new-run")
        assert "is starting" in texts(at.info) and "loading the toy base model" in texts(at.code)
        proc.kill()
        proc.wait()
        at.run()  # the launch died before writing anything: said so, no traceback
        assert not at.exception and "does not exist" in texts(at.info)
    finally:
        proc.kill()
        launcher.LAUNCHES.clear()


def test_start_and_stop_a_run_from_the_runs_page(tmp_path, monkeypatch):
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    monkeypatch.setattr(launcher, "score_command", lambda: [sys.executable, str(script)])
    root = tmp_path / "store"
    monkeypatch.setenv("SCORE_RUNS_DIR", str(root))
    at = open_page()
    at.selectbox(key="ln-preset").set_value("toy-mt-rl")
    at.number_input(key="ln-steps").set_value(40)
    at.number_input(key="ln-alpha").set_value(0.0)
    next(b for b in at.button if b.label == "Start training").click().run()  # the form's submit
    assert not at.exception
    assert "Started" in texts(at.success), texts(at.error)
    (run_id, launch), = launcher.LAUNCHES.items()
    try:
        cmd = " ".join(launch.command)
        assert "train --preset toy-mt-rl" in cmd and "--set steps=40" in cmd and "--set alpha=0" in cmd
        assert cmd.endswith(f"--out {launch.run_dir} --quiet")
        assert launch.log_path == root / f"{run_id}.log"
        deadline = time.time() + 30
        while not (launch.run_dir / "status.json").exists() and time.time() < deadline:
            time.sleep(0.1)
        at.run()
        at.button(key=f"stop-{run_id}").click().run()
        assert not at.exception
        status = json.loads((launch.run_dir / "status.json").read_text())
        assert status["state"] == "stopped" and launch.returncode is not None
    finally:
        if launch.returncode is None:
            launch.process.kill()
        launcher.LAUNCHES.clear()
