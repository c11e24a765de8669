"""Tests for the run store (score_lib.runs): layout, append-only logs, torn lines, atomic status."""
import itertools
import json
import os
import re
import subprocess
import sys
import types

import pytest

from score_lib import runs
from score_lib.runs import RunStoreError, RunWriter


def test_writer_creates_layout_and_config_round_trips(tmp_path):
    run_dir = tmp_path / "r1"
    config = {"method": "score", "model": "toy", "lr": 1e-5, "out": tmp_path, "nan": float("nan")}
    w = RunWriter(run_dir, config)
    assert (run_dir / "evals").is_dir() and (run_dir / "checkpoints").is_dir()
    assert w.evals_dir == run_dir / "evals" and w.checkpoints_dir == run_dir / "checkpoints"
    got = runs.read_config(run_dir)
    assert got["method"] == "score" and got["lr"] == 1e-5 and got["out"] == str(tmp_path)
    status = runs.read_status(run_dir)
    assert status["state"] == "created" and status["pid"] == os.getpid()
    with pytest.raises(RunStoreError, match="config.json"):
        RunWriter(run_dir, {"method": "other"})
    assert runs.read_config(run_dir)["method"] == "score"  # the failed writer did not overwrite it


def test_resume_requires_existing_run_and_keeps_config(tmp_path):
    with pytest.raises(RunStoreError, match="config.json"):
        RunWriter(tmp_path / "nope", resume=True)
    w = RunWriter(tmp_path / "r", {"method": "score"})
    w.set_status("running", step=7)
    w2 = RunWriter(tmp_path / "r", {"method": "changed"}, resume=True)
    w2.set_status("running")
    assert runs.read_config(tmp_path / "r")["method"] == "score"
    assert runs.read_status(tmp_path / "r")["step"] == 7  # step carried over, not reset to None


def test_log_metrics_appends_in_order(tmp_path):
    w = RunWriter(tmp_path / "r", {})
    for step in range(5):
        w.log_metrics({"step": step, "loss": 1.0 / (step + 1)})
    assert [m["step"] for m in runs.read_metrics(w.run_dir)] == [0, 1, 2, 3, 4]
    lines = (w.run_dir / "metrics.jsonl").read_text().split("\n")
    assert len(lines) == 6 and lines[-1] == ""  # one line per record, each newline-terminated


def test_log_traces_and_filters(tmp_path):
    w = RunWriter(tmp_path / "r", {})
    w.log_traces([{"step": 1, "split": "train", "id": "a"}, {"step": 1, "split": "eval", "id": "b"}])
    w.log_traces([{"step": 2, "split": "train", "id": "c", "text": "multi\nline"}])
    assert [t["id"] for t in runs.read_traces(w.run_dir)] == ["a", "b", "c"]
    assert [t["id"] for t in runs.read_traces(w.run_dir, step=1)] == ["a", "b"]
    assert [t["id"] for t in runs.read_traces(w.run_dir, split="train")] == ["a", "c"]
    assert [t["id"] for t in runs.read_traces(w.run_dir, step=1, split="eval")] == ["b"]


def test_torn_last_line_is_not_consumed(tmp_path):
    path = tmp_path / "m.jsonl"
    good = b'{"step":1}\n{"step":2}\n'
    path.write_bytes(good + b'{"step":3,"lo')
    records, offset = runs.read_jsonl(path)
    assert [r["step"] for r in records] == [1, 2]
    assert offset == len(good)
    with open(path, "ab") as f:
        f.write(b'ss":0.5}\n')
    records, offset2 = runs.read_jsonl(path, offset)
    assert records == [{"step": 3, "loss": 0.5}]
    assert offset2 == path.stat().st_size


def test_incremental_read_returns_only_appended(tmp_path):
    w = RunWriter(tmp_path / "r", {})
    path = w.run_dir / "metrics.jsonl"
    assert runs.read_jsonl(path) == ([], 0)  # missing file
    w.log_metrics({"step": 0})
    w.log_metrics({"step": 1})
    first, offset = runs.read_jsonl(path)
    assert len(first) == 2
    assert runs.read_jsonl(path, offset) == ([], offset)  # nothing new
    w.log_metrics({"step": 2})
    new, offset = runs.read_jsonl(path, offset)
    assert new == [{"step": 2}] and offset == path.stat().st_size


def test_garbage_line_is_skipped_and_counted(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"step":1}\nthis is not json\n[1, 2]\n\n{"step":2}\n')
    records, offset, bad = runs.read_jsonl_with_errors(path)
    assert [r["step"] for r in records] == [1, 2]
    assert bad == 2  # the garbage line and the non-object line; blank lines are not errors
    assert offset == path.stat().st_size


def test_status_stays_valid_when_replace_fails(tmp_path, monkeypatch):
    w = RunWriter(tmp_path / "r", {})
    w.set_status("running", step=3)
    before = (w.run_dir / "status.json").read_text()

    def boom(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(runs.os, "replace", boom)
    with pytest.raises(OSError, match="disk gone"):
        w.set_status("finished", step=4)
    monkeypatch.undo()
    assert (w.run_dir / "status.json").read_text() == before
    assert json.loads(before)["state"] == "running"
    assert not [p for p in w.run_dir.iterdir() if p.name.endswith(".tmp")]  # temp file cleaned up


def test_set_status_rejects_unknown_state(tmp_path):
    w = RunWriter(tmp_path / "r", {})
    with pytest.raises(ValueError, match="unknown state"):
        w.set_status("runing")


def test_running_run_with_dead_pid_is_crashed(tmp_path):
    w = RunWriter(tmp_path / "r", {})
    w.set_status("running", step=5)
    assert runs.read_status(w.run_dir)["state"] == "running"  # our own pid is alive
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    status = json.loads((w.run_dir / "status.json").read_text())
    status["pid"] = proc.pid
    runs.atomic_write_json(w.run_dir / "status.json", status)
    got = runs.read_status(w.run_dir)
    assert got["state"] == "crashed"
    assert got["error"] == f"process {proc.pid} is gone"
    assert got["step"] == 5


def test_read_config_errors_name_the_file(tmp_path):
    with pytest.raises(RunStoreError, match="config.json: missing"):
        runs.read_config(tmp_path)
    (tmp_path / "config.json").write_text('{"a": 1,\n oops}')
    with pytest.raises(RunStoreError, match=r"config.json: not valid JSON \(line 2"):
        runs.read_config(tmp_path)


def test_truncate_after_drops_later_steps_and_torn_line(tmp_path):
    w = RunWriter(tmp_path / "r", {})
    for step in range(1, 6):
        w.log_metrics({"step": step})
        w.log_traces([{"step": step, "id": "x"}])
    w.log_metrics({"note": "no step"})
    with open(w.run_dir / "metrics.jsonl", "ab") as f:
        f.write(b'{"step":6')  # crashed mid-write
    w.truncate_after(3)
    assert [m.get("step") for m in runs.read_metrics(w.run_dir)] == [1, 2, 3, None]
    assert [t["step"] for t in runs.read_traces(w.run_dir)] == [1, 2, 3]
    assert (w.run_dir / "metrics.jsonl").read_bytes().endswith(b"\n")


def test_evals_sorted_and_latest(tmp_path):
    w = RunWriter(tmp_path / "r", {})
    assert runs.latest_eval(w.run_dir) is None
    assert w.write_eval(12, {"acc_t1": 0.5}).name == "00000012.json"
    w.write_eval(3, {"acc_t1": 0.2})
    evals = runs.read_evals(w.run_dir)
    assert list(evals) == [3, 12]
    assert runs.latest_eval(w.run_dir) == {"acc_t1": 0.5}
    (w.evals_dir / "00000020.json").write_text("{broken")
    with pytest.raises(RunStoreError, match="00000020.json"):
        runs.read_evals(w.run_dir)


def test_list_runs(tmp_path, monkeypatch):
    assert runs.list_runs(tmp_path / "missing") == []
    # A fake clock inside runs only, so "updated" strictly increases: old run first, then the new one.
    clock = itertools.count(1000)
    monkeypatch.setattr(runs, "time", types.SimpleNamespace(time=lambda: float(next(clock))))
    RunWriter(tmp_path / "old", {"method": "stage1", "task": "toy"})
    new = RunWriter(tmp_path / "new", {"method": "score", "task": "math", "model": "m"})
    new.write_eval(10, {"acc_t1": 0.4, "acc_t2": 0.5, "delta": 0.1})
    new.set_status("running", step=10)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    (tmp_path / "no_config").mkdir()

    listed = runs.list_runs(tmp_path)
    assert [r["run_id"] for r in listed] == ["new", "old", "bad"]
    first = listed[0]
    assert (first["state"], first["method"], first["model"], first["step"]) == ("running", "score", "m", 10)
    assert (first["acc_t1"], first["acc_t2"], first["delta"]) == (0.4, 0.5, 0.1)
    assert listed[1]["model"] is None and listed[1]["acc_t1"] is None and listed[1]["state"] == "created"
    assert listed[2]["state"] == "corrupt" and "config.json" in listed[2]["error"]


def test_latest_checkpoint_ignores_incomplete(tmp_path):
    w = RunWriter(tmp_path / "r", {})
    assert runs.latest_checkpoint(w.run_dir) is None
    assert runs.checkpoint_dir(w.run_dir, 12) == w.checkpoints_dir / "step-00000012"
    for step in (4, 12):
        d = runs.checkpoint_dir(w.run_dir, step)
        d.mkdir()
        runs.mark_checkpoint_complete(d)
    runs.checkpoint_dir(w.run_dir, 20).mkdir()  # crashed mid-save: no COMPLETE
    assert runs.latest_checkpoint(w.run_dir) == w.checkpoints_dir / "step-00000012"


def test_runs_root_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCORE_RUNS_DIR", raising=False)
    assert runs.runs_root() == tmp_path / "runs"
    monkeypatch.setenv("SCORE_RUNS_DIR", str(tmp_path / "env"))
    assert runs.runs_root() == tmp_path / "env"
    assert runs.runs_root(str(tmp_path / "cli")) == tmp_path / "cli"


def test_new_run_id_format():
    assert re.fullmatch(r"toy-score-\d{8}-\d{6}-[0-9a-f]{4}", runs.new_run_id("toy-score"))
