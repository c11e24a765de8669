"""select_by=train-reward (the paper's Section 5.3): which step wins, what is saved, what is evaluated."""
import json
import zlib

import pytest
import torch
from safetensors.torch import load_file

from score_lib.config import ConfigError, build_config
from score_lib.runs import latest_checkpoint, read_metrics, read_status, read_traces
from score_lib.selection import BestWindow, read_best, step_reward, write_best

from .test_cli import TINY, crash_run_at


def _record(step, stage, r1, r2=None):
    rec = {"step": step, "stage": stage, "reward_t1": r1}
    if r2 is not None:
        rec["reward_t2"] = r2
    return rec


def test_step_reward_is_the_unshaped_reward_the_stage_trains_on():
    assert step_reward(_record(1, "stage1", 0.25, 0.5), 2) == 0.5  # Eq. 3: attempt 2 only
    assert step_reward(_record(1, "stage2", 0.25, 0.5), 2) == 0.75  # Eq. 4 before the bonus
    assert step_reward(_record(1, "mt-rl", 0.25, 0.5), 2) == 0.75
    assert step_reward(_record(1, "st-rl", 0.25), 1) == 0.25


def test_windows_lie_in_stage2_and_the_best_mean_wins():
    # SCoRe with 3 Stage I steps and windows of 2: the first candidate is step 5 (steps 4 and 5 are Stage II)
    rewards = {1: 2.0, 2: 2.0, 3: 2.0, 4: 0.5, 5: 0.5, 6: 1.5, 7: 0.5, 8: 1.5, 9: 1.4}
    sel = BestWindow("score", 3, 2, 2)
    new_best = []
    for step, r in rewards.items():
        stage = "stage1" if step <= 3 else "stage2"
        if sel.update(_record(step, stage, 0.0, r)):
            new_best.append(step)
    # step 4's window would hold Stage I's step 3; 5: 0.5; 6: 1.0; 7: 1.0 (a tie keeps 6); 8: 1.0; 9: 1.45
    assert new_best == [5, 6, 9]
    assert sel.best == {"step": 9, "train_reward": pytest.approx(1.45), "window": 2}


def test_a_refilled_window_decides_as_the_uninterrupted_one():
    r1 = [0, 0, 0, 0, 0, 0, 0.9, 0.1, 0, 0]  # new bests at steps 7 and 8, whose windows reach back before 7
    records = [_record(s, "mt-rl", r, 0.0) for s, r in enumerate(r1, start=1)]
    whole = BestWindow("mt-rl", 0, 2, 3)
    decisions = [whole.update(r) for r in records]
    assert decisions[6:8] == [True, True]
    first = BestWindow("mt-rl", 0, 2, 3)  # the run up to its crash; best/state.json keeps first.best
    for r in records[:6]:
        first.update(r)
    resumed = BestWindow("mt-rl", 0, 2, 3, history=records[:6], best=first.best)
    assert [resumed.update(r) for r in records[6:]] == decisions[6:]
    assert resumed.best == whole.best == {"step": 8, "train_reward": pytest.approx(1 / 3), "window": 3}


def _weights(folder):
    return {k: v.clone() for k, v in load_file(folder / "model.safetensors").items()}


def test_write_best_swaps_in_whole_copies_only(tmp_path):
    def writer(tag):
        def write(folder):
            folder.mkdir(parents=True)
            (folder / "weights.txt").write_text(tag)
        return write

    write_best(tmp_path, {"step": 3, "train_reward": 0.5, "window": 1}, writer("three"))
    path, state = read_best(tmp_path)
    assert path == tmp_path / "best" and state["step"] == 3 and (path / "weights.txt").read_text() == "three"

    def crash(folder):
        folder.mkdir(parents=True)
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_best(tmp_path, {"step": 5, "train_reward": 0.9, "window": 1}, crash)
    assert read_best(tmp_path)[1]["step"] == 3  # the half-written copy is not COMPLETE: the old best stands
    # a crash between the two renames leaves best.old and a complete best.tmp: the newer (higher) one wins
    write_best(tmp_path, {"step": 5, "train_reward": 0.9, "window": 1}, writer("five"))
    (tmp_path / "best").rename(tmp_path / "best.tmp")
    path, state = read_best(tmp_path)
    assert state["step"] == 5 and (path / "weights.txt").read_text() == "five"


def test_selection_settings_are_checked():
    with pytest.raises(ConfigError, match="select_by"):
        build_config("toy-score", ["select_by=best"])
    with pytest.raises(ConfigError, match="star"):
        build_config("toy-star", ["select_by=train-reward"])
    with pytest.raises(ConfigError, match="stage2=star"):
        build_config("toy-score", ["select_by=train-reward", "stage2=star"])
    with pytest.raises(ConfigError, match=r"select_window.*1\.\.3"):
        build_config("toy-score", ["select_by=train-reward", "steps=5", "stage1_steps=2", "select_window=4"])


def _graded_by_hash(monkeypatch, all_right: set):
    """The tiny base never answers right, so its runs never move. Reward a fixed half of the attempts instead
    (a hash of the text), which gives the policy gradients, and every attempt of the steps in `all_right`
    (0-based), which makes the best window known in advance."""
    import score_lib.trainer as trainer

    real, calls = trainer.grade, []

    def grade(task, episodes):
        real(task, episodes)
        for ep in episodes:
            for a in ep.attempts:
                a.reward = 1.0 if len(calls) in all_right else float(zlib.crc32(a.text.encode()) % 2)
        calls.append(1)
    monkeypatch.setattr(trainer, "grade", grade)
    return calls  # clear it to start the next run's steps from 0


def test_the_final_evaluation_scores_the_selected_weights(tiny_base, tmp_path, monkeypatch):
    from score_lib.evaluate import evaluate
    from score_lib.policy import load_policy
    from score_lib.tasks import make_eval_task, make_task
    from score_lib.trainer import Trainer

    calls = _graded_by_hash(monkeypatch, all_right={2, 3})  # Stage II's first two steps: the window ending at step 4
    base = [o for o in TINY if not o.startswith(("steps", "stage1_steps", "eval_every"))]
    overrides = base + ["steps=6", "stage1_steps=2", "eval_every=0", "select_by=train-reward", "select_window=2",
                        "batch_prompts=4", "lr=1e-2"]
    cfg = build_config("toy-score", overrides)
    final = Trainer(cfg, tmp_path / "run", progress=False).run()

    metrics = [r for r in read_metrics(tmp_path / "run") if "reward_t1" in r]
    windows = {s: (step_reward(metrics[s - 1], 2) + step_reward(metrics[s - 2], 2)) / 2 for s in range(4, 7)}
    chosen = max(windows, key=lambda s: (windows[s], -s))  # the highest mean, the earliest of a tie
    path, state = read_best(tmp_path / "run")
    assert state["step"] == chosen == final["selected_step"]
    assert state["train_reward"] == pytest.approx(windows[chosen])
    status = read_status(tmp_path / "run")
    assert status["final"]["selected_step"] == chosen
    from score_lib.reevaluate import run_model

    assert run_model(tmp_path / "run", cfg) == str(path / "model")  # `score ablate --reevaluate` scores them too
    # the last weights stay the resumable checkpoint
    assert json.loads((latest_checkpoint(tmp_path / "run") / "state.json").read_text())["step"] == 6

    # the selected weights are those of the same run stopped at the chosen step ...
    short = build_config("toy-score", base + [f"steps={chosen}", "stage1_steps=2", "eval_every=0",
                                              "batch_prompts=4", "lr=1e-2"])
    calls.clear()
    Trainer(short, tmp_path / "short", progress=False).run()
    stopped = _weights(latest_checkpoint(tmp_path / "short") / "model")
    best = _weights(path / "model")
    assert all(torch.equal(best[k], stopped[k]) for k in best)
    assert chosen == 4  # a mean reward of 2 (every attempt right), which later windows do not reach
    last = _weights(latest_checkpoint(tmp_path / "run") / "model")
    assert any(not torch.equal(best[k], last[k]) for k in best)
    # ... and the final evaluation is theirs: the same sampled texts (its test traces; the tiny base's answers
    # are all None)
    recorded = [[a["text"] for a in t["attempts"]] for t in read_traces(tmp_path / "run", step=6, split="test")]

    def texts(folder):
        model, tok = load_policy(str(folder))
        _, episodes = evaluate(model, tok, make_eval_task(cfg, make_task(cfg)), cfg, seed=cfg.seed)
        return [[a.text for a in ep.attempts] for ep in episodes[:len(recorded)]]

    assert recorded and texts(path / "model") == recorded
    assert texts(latest_checkpoint(tmp_path / "run") / "model") != recorded


def test_a_resumed_run_selects_what_the_uninterrupted_one_does(tiny_base, tmp_path, monkeypatch):
    from score_lib.trainer import Trainer

    calls = _graded_by_hash(monkeypatch, all_right={2, 3})
    base = [o for o in TINY if not o.startswith(("steps", "stage1_steps", "eval_every", "checkpoint_every"))]
    cfg = build_config("toy-score", base + ["steps=6", "stage1_steps=2", "eval_every=0", "checkpoint_every=4",
                                            "select_by=train-reward", "select_window=2", "batch_prompts=4",
                                            "lr=1e-2"])
    whole = Trainer(cfg, tmp_path / "whole", progress=False).run()

    calls.clear()
    crash_run_at(monkeypatch, cfg, tmp_path / "crashed", step=6)
    # it restarts from the checkpoint of step 4; step 5's metrics line, written before the crash, is dropped and
    # the step replayed, its window (steps 4 and 5) refilled from metrics.jsonl; best/ (step 4) is kept
    assert read_best(tmp_path / "crashed")[1]["step"] == 4
    resumed = Trainer(cfg, tmp_path / "crashed", resume=True, progress=False).run()
    assert resumed["selected_step"] == whole["selected_step"] == 4
    assert (resumed["acc_t1"], resumed["acc_t2"]) == (whole["acc_t1"], whole["acc_t2"])
    same = [[a["text"] for a in t["attempts"]] for t in read_traces(tmp_path / "whole", step=6, split="test")]
    assert [[a["text"] for a in t["attempts"]] for t in read_traces(tmp_path / "crashed", step=6, split="test")] == same


def test_sharded_training_is_refused_before_it_starts(tiny_base, tmp_path, monkeypatch):
    import score_lib.trainer as trainer

    monkeypatch.setattr(trainer, "sharded_weights", lambda acc: True)  # as under FSDP / DeepSpeed
    base = [o for o in TINY if not o.startswith(("steps", "stage1_steps"))]
    cfg = build_config("toy-mt-rl", base + ["steps=2", "select_by=train-reward", "select_window=1"])
    with pytest.raises(ConfigError, match="FSDP"):
        trainer.Trainer(cfg, tmp_path / "run", progress=False)
    assert "select_by" in read_status(tmp_path / "run")["error"]
