"""Inference-time scaling: the vote, and the curve on the toy world (budgets, nesting, a hand-checked K=1)."""
from score_lib.config import build_config
from score_lib.policy import load_policy
from score_lib.scaling import majority_vote, sample_pool, scaling_curve
from score_lib.tasks import make_task


def test_majority_vote():
    assert majority_vote(["3", "5", "5"]) == "5"
    assert majority_vote(["3", "5", "5", "3"]) == "3"  # tie: the first seen wins
    assert majority_vote([None, None, "7"]) == "7"  # None never wins over an answer
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None


def test_scaling_curve_on_toy_world(tiny_base):
    cfg = build_config(None, {"max_new_tokens": "12"})
    model, tok = load_policy(str(tiny_base))
    task = make_task(cfg)
    problems = task.problems("test", 4)
    pool = sample_pool(model, tok, task, problems, 2, cfg.instruction, max_new_tokens=12, seed=3)
    assert len(pool["parallel"]) == 4 * 4 and len(pool["sequential"]) == 4 * 2
    assert all(len(ep.attempts) == 1 for ep in pool["parallel"])
    assert all(len(ep.attempts) == 2 for ep in pool["sequential"])
    curve = scaling_curve(model, tok, task, problems, [2, 1], cfg.instruction, max_new_tokens=12, pool=pool)
    assert curve["ks"] == [1, 2] and curve["budget"] == [2, 4] and curve["n_problems"] == 4
    assert len(curve["parallel"]) == len(curve["sequential"]) == 2
    assert all(0 <= x <= 1 for x in curve["parallel"] + curve["sequential"] + [curve["single"]])
    # K=1 by hand: the first 2 of each problem's 4 parallel samples, voted, graded against the gold answer
    by_hand = 0
    for i, p in enumerate(problems):
        answers = [ep.attempts[0].answer for ep in pool["parallel"][4 * i:4 * i + 2]]
        assert all(ep.problem is p for ep in pool["parallel"][4 * i:4 * i + 4])
        by_hand += majority_vote(answers) == p.answer
    assert curve["parallel"][0] == by_hand / 4
    seq1 = sum(pool["sequential"][2 * i].attempts[1].answer == p.answer for i, p in enumerate(problems)) / 4
    assert curve["sequential"][0] == seq1  # K=1: the single revised answer
    assert curve["single"] == sum(ep.attempts[0].correct for ep in pool["parallel"]) / 16
    # sampling inside gives the same curve as the same pool sampled outside
    assert scaling_curve(model, tok, task, problems, [1, 2], cfg.instruction, max_new_tokens=12, seed=3) == curve


def test_eval_scaling_cli_writes_run_store(tiny_base, tmp_path, capsys):
    import json

    from score_lib.cli import main
    from score_lib.runs import list_runs, read_status

    from .conftest import TINY_BASE_SECONDS

    args = ["eval", "--limit", "2", "--runs-dir", str(tmp_path), "--set", f"toy_base_seconds={TINY_BASE_SECONDS}",
            "--set", "max_new_tokens=8"]
    assert main([*args, "--scaling", "1,x"]) == 2
    assert "--scaling" in capsys.readouterr().err
    assert main([*args, "--scaling", "2,1"]) == 0
    assert "parallel" in capsys.readouterr().out
    (run,) = [r for r in list_runs(tmp_path)]
    assert run["run_id"].startswith("scaling-toy-base-toy-") and run["state"] == "finished"
    curve = json.loads((tmp_path / run["run_id"] / "evals" / "scaling.json").read_text())
    assert curve["ks"] == [1, 2] and curve["budget"] == [2, 4] and curve["n_problems"] == 2
    assert read_status(tmp_path / run["run_id"])["state"] == "finished"
