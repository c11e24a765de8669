"""The toy world: deterministic, disjoint splits, an exact oracle, and the base corpus habits."""
import random

import pytest

from score_lib.tasks.toy import (ToyTask, ToyWorld, base_corpus, checked_solution, extract_answer, generate,
                                 recheck_solution, render_solution, reverse_check_solution, split_of)


def test_deterministic_and_disjoint():
    w = ToyWorld()
    a, b = generate(w, "train", 300, seed=3), generate(w, "train", 300, seed=3)
    assert [p.prompt for p in a] == [p.prompt for p in b]
    test = generate(w, "test", 300, seed=3)
    assert not {p.prompt for p in a} & {p.prompt for p in test}
    assert all(split_of(p.prompt, w.test_share) == "test" for p in test)
    assert len({p.id for p in a}) == 300


def test_solution_is_right_and_oracle_exact():
    task = ToyTask(ToyWorld(digits=2, n_ops=4, ops="+-*"), n_train=50, n_test=50)
    for p in task.problems("test"):
        assert eval(p.prompt) == int(p.answer)  # the chain is evaluated left to right as written
        assert task.grade(p.solution, p) == 1.0
        assert p.solution.count("=") == 4
        wrong = p.solution.rsplit("#", 1)[0] + f"#{int(p.answer) + 1}"
        assert task.grade(wrong, p) == 0.0
        assert task.grade("no answer here", p) == 0.0


def test_extract_answer():
    assert extract_answer("1+2=3#3") == "3"
    assert extract_answer("#4;5+1=6#6") == "6"
    assert extract_answer("1+2=3") is None


def test_slips_change_the_answer():
    rng = random.Random(0)
    steps = [("+", 5), ("-", 3), ("+", 8)]
    clean, ans = render_solution(7, steps)
    assert clean == "7+5=12;12-3=9;9+8=17#17" and ans == 17
    slipped = [render_solution(7, steps, slip=1.0, rng=rng)[1] for _ in range(20)]
    assert all(s != 17 for s in slipped[:5]) or sum(s != 17 for s in slipped) > 10


def test_base_corpus_habits():
    corpus = base_corpus(ToyWorld(), 2000, seed=0, p_copy=0.5, slip1=0.0, slip2=0.25)
    copies = sum(a1 == a2 for _, a1, a2, _ in corpus) / len(corpus)
    expected = 0.5 + 0.5 * 0.75 ** ToyWorld().n_ops  # copies, plus re-solves that happened not to slip
    assert abs(copies - expected) < 0.04
    assert all(extract_answer(a1) is not None for _, a1, _, _ in corpus)


@pytest.mark.parametrize("kwargs,msg", [({"digits": 0}, "digits"), ({"n_ops": 0}, "n_ops"),
                                        ({"ops": "+/"}, "ops")])
def test_bad_knobs_are_named(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        ToyWorld(**kwargs)


def test_shown_mistakes_and_their_corrections():
    world = ToyWorld()
    corpus = base_corpus(world, 3000, seed=1, p_copy=0.5, slip2=0.25, p_wrong=0.2, p_fix=0.5)
    shown = [c for c in corpus if not c.first_in_loss]
    assert abs(len(shown) / len(corpus) - 0.2) < 0.03
    fixed = 0
    for c in shown:
        start, steps = _parse(c.prompt)
        right, _ = render_solution(start, steps)
        assert c.first != right and _wrong_steps(c.first) == 1  # exactly one miscomputed step
        assert c.second in (right, c.first)  # corrected, or the mistake copied
        fixed += c.second == right
    assert abs(fixed / len(shown) - 0.5) < 0.06
    assert all(c.first == render_solution(*_parse(c.prompt))[0] for c in corpus if c.first_in_loss)


def _careless_firsts(task, seed: int):
    """(problem, start, steps, a first attempt whose steps each slip with probability 0.3) per test problem."""
    rng = random.Random(seed)
    for p in task.problems("test"):
        start, steps = p.meta["start"], p.meta["steps"]
        yield p, start, steps, render_solution(start, steps, 0.3, rng)[0]


def test_checked_solution_marks_each_step_and_fixes_the_first_wrong_one():
    steps = [("+", 6), ("-", 8), ("+", 4)]
    right = "9+6=15;15-8=7;7+4=11#11"
    assert checked_solution(9, steps, right) == "9+6=15v;15-8=7v;7+4=11v#11"
    # step 2 slipped (6 for 7) and step 3 carried on from it: the check stops at step 2 and re-solves
    assert checked_solution(9, steps, "9+6=15;15-8=6;6+4=10#10") == "9+6=15v;15-8=6x7;7+4=11#11"
    # a wrong last step, and a first attempt that stops early: the missing step is written, marked wrong
    assert checked_solution(9, steps, "9+6=15;15-8=7;7+4=12#12") == "9+6=15v;15-8=7v;7+4=12x11#11"
    assert checked_solution(9, steps, "9+6=15#15") == "9+6=15v;15-8=x7;7+4=11#11"
    task = ToyTask(n_test=200)
    for p, start, steps, first in _careless_firsts(task, seed=0):
        checked = checked_solution(start, steps, first)
        assert task.grade(checked, p) == 1.0  # a check always ends with the right answer
        assert ("x" in checked) == (first != p.solution)  # and calls a wrong step wrong, only then
        assert checked.count("x") <= 1


def test_recheck_solution_redoes_each_step_and_a_third_try_settles_disagreements():
    steps = [("+", 6), ("-", 8), ("+", 4)]
    rng = random.Random(0)
    assert recheck_solution(9, steps, "9+6=15;15-8=7;7+4=11#11", 0.0, rng) == "9+6=15:15;15-8=7:7;7+4=11:11#11"
    # a slipped step 2: the redo disagrees, the third try decides, and the rest is solved afresh
    assert recheck_solution(9, steps, "9+6=15;15-8=6;6+4=10#10", 0.0, rng) == "9+6=15:15;15-8=6:7:7;7+4=11#11"
    task = ToyTask(n_test=300)
    seen = {"agree": 0, "slipped redo of a right step": 0}
    for p, start, steps, first in _careless_firsts(task, seed=2):
        second = recheck_solution(start, steps, first, 0.5, rng)
        assert task.grade(second, p) == 1.0  # the deciding try never slips
        for part in second.split("#")[0].split(";"):
            tries = part.split("=")[1].split(":")
            assert len(tries) in (1, 2, 3) and (len(tries) != 3 or tries[0] != tries[1])  # a third only on disagreement
            seen["agree"] += len(tries) == 2
            seen["slipped redo of a right step"] += len(tries) == 3 and tries[0] == tries[2]
        if first == p.solution:  # a right first attempt is followed to the end: every step redone
            assert second.count(";") == first.count(";") and all(":" in x for x in second.split(";"))
    assert all(seen.values())  # the corpus shows both: a redo that agrees, and one that slipped and lost


def test_reverse_check_works_the_answer_back_to_the_start():
    steps = [("+", 6), ("-", 8), ("+", 4)]
    assert reverse_check_solution(9, steps, "9+6=15;15-8=7;7+4=11#11") == "11-4=7;7+8=15;15-6=9#11"
    assert (reverse_check_solution(9, steps, "9+6=15;15-8=6;6+4=10#10")
            == "10-4=6;6+8=14;14-6=8|9+6=15;15-8=7;7+4=11#11")  # 8 is not 9: solved again
    assert reverse_check_solution(2, [("+", 1)], "2+1=3#1").startswith("1-1=0|")  # below zero is fine
    task = ToyTask(n_test=300)
    for p, start, steps, first in _careless_firsts(task, seed=1):
        second = reverse_check_solution(start, steps, first)
        assert ("|" in second) == (task.grade(first, p) == 0.0)  # flags exactly the wrong answers
        assert task.grade(second, p) == 1.0
    with pytest.raises(ValueError, match="reverse"):
        reverse_check_solution(2, [("*", 3)], "2*3=6#6")
    with pytest.raises(ValueError, match="reverse"):
        base_corpus(ToyWorld(ops="+*"), 10, seed=0, p_check=0.5, check_style="reverse")


def test_checked_second_attempts_in_the_corpus():
    corpus = base_corpus(ToyWorld(), 3000, seed=2, p_check=0.2, check_slipped=0.5)
    checked = [c for c in corpus if "v" in c.second or "x" in c.second]
    assert abs(len(checked) / len(corpus) - 0.2) < 0.03
    slipped = [c for c in checked if not c.first_in_loss]
    assert abs(len(slipped) / len(checked) - 0.5) < 0.07
    for c in checked:
        start, steps = _parse(c.prompt)
        right, answer = render_solution(start, steps)
        assert c.second == checked_solution(start, steps, c.first) and extract_answer(c.second) == str(answer)
        assert c.first_in_loss == (c.first == right)  # slipped first attempts are context only
        assert c.first_in_loss or _wrong_steps(c.first) == 1
    rechecked = [c for c in base_corpus(ToyWorld(), 3000, seed=2, p_check=0.2, check_style="recheck")
                 if ":" in c.second]
    assert abs(len(rechecked) / 3000 - 0.2) < 0.03 and all("v" not in c.second for c in rechecked)
    with pytest.raises(ValueError, match="check_style"):
        base_corpus(ToyWorld(), 10, seed=2, p_check=0.2, check_style="vote")


def _verdicts_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "toy_checks.py"
    spec = importlib.util.spec_from_file_location("toy_checks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, path


def test_verdicts_are_scored_against_the_steps_they_judge():
    script, _ = _verdicts_script()
    assert script.step_verdicts("9+6=15v;15-8=7v;7+4=11v#11") == [(True, "v")] * 3
    # a wrong step called right, then a right step called wrong: scoring stops at the first 'x'
    assert script.step_verdicts("9+6=14v;14-8=6x5;5+4=9#9") == [(False, "v"), (True, "x")]
    assert script.step_verdicts("9+6=15;15-8=7;7+4=11#11") is None  # a plain (unchecked) attempt
    # rechecks: a redo that agrees, one that disagrees and loses to the third try, one that wins
    assert script.step_verdicts("9+6=15:15;15-8=7:6:7;7+4=11:11#11") == [(True, "v"), (True, "x"), (True, "v")]
    assert script.step_verdicts("9+6=15:15;15-8=6:7:7;7+4=11#11") == [(True, "v"), (False, "x")]
    assert script.step_verdicts("9+6=14:14;14-8=6:6#6") == [(False, "v"), (True, "v")]
    pairs = [(True, True, "9+6=15v;15-8=7v;7+4=11v#11"),   # right, all called right
             (True, False, "9+6=15x14;14-8=6;6+4=10#10"),  # right, a false alarm that broke it
             (False, True, "9+6=15v;15-8=6x7;7+4=11#11"),  # wrong, detected and fixed
             (False, False, "9+6=15v;15-8=6v;6+4=10v#10"),  # wrong, missed
             (False, False, "9+6=15;15-8=6;6+4=10#10")]    # not checked
    s = script.verdict_summary(pairs)
    assert (s["episodes"], s["checked"], s["checked_share"]) == (5, 4, 0.8)
    assert (s["steps_right"], s["steps_wrong"]) == (7, 2)
    assert s["p_x_given_right_step"] == 0.143 and s["p_x_given_wrong_step"] == 0.5
    assert (s["false_alarm"], s["detection"], s["fix"]) == (0.5, 0.5, 0.5)
    rows = [(9, [("+", 6), ("-", 8), ("+", 4)], "9+6=15;15-8=7;7+4=11#11", True, True, "11-4=7;7+8=15;15-6=9#11"),
            (9, [("+", 6), ("-", 8), ("+", 4)], "9+6=15;15-8=7;7+4=11#11", True, False,
             "11-4=7;7+8=15;15-6=9|9+6=15;15-8=6;6+4=10#10"),  # back at 9, flagged anyway: a false alarm
            (9, [("+", 6), ("-", 8), ("+", 4)], "9+6=15;15-8=6;6+4=10#10", False, True,
             "10-4=6;6+8=14;14-6=8|9+6=15;15-8=7;7+4=11#11"),  # detected and fixed
            (9, [("+", 6), ("-", 8), ("+", 4)], "9+6=15;15-8=6;6+4=10#10", False, False,
             "10-4=6;6+8=14;14-6=9#10"),                       # a wrong step hides the mismatch
            (9, [("+", 6), ("-", 8), ("+", 4)], "9+6=15;15-8=6;6+4=10#10", False, False, "9+6=15;15-8=6;6+4=10#10")]
    back = script.reverse_checks(rows)
    assert (back["reverse_checked"], back["reverse_checked_share"]) == (4, 0.8)
    assert (back["p_flag_given_right_a1"], back["p_flag_given_wrong_a1"]) == (0.5, 0.5)
    assert (back["reverse_fix"], back["reverse_break"]) == (0.5, 0.5)
    assert back["back_step_right"] == round(11 / 12, 3) and back["flag_matches_chain"] == 0.75
    tries = script.recheck_tries(["9+6=15:15;15-8=7:6:7;7+4=11:11#11",  # 3 redos, 2 right; a third, right
                                  "9+6=14:14;14-8=6:6#6",               # a redo repeating a wrong copy
                                  "9+6=15:15;15-8=6:7:7;7+4=11#11",     # redo disagrees, third fixes; stop
                                  "9+6=15v;15-8=7v;7+4=11v#11"])        # verdicts: no redo
    assert (tries["rechecked_steps"], tries["redo_right"]) == (7, round(5 / 7, 3))
    assert tries["redo_repeats_wrong_copy"] == 0.5 and (tries["third_tries"], tries["third_right"]) == (2, 1.0)


def test_pick_checks_are_scored_against_the_first_pick():
    script, _ = _verdicts_script()
    rows = [("#b+c", "c=5;13-5=8;b=8v#b+c", True, True),                     # right, kept
            ("#b+c", "c=5;13-5=8;b=8x|13-3=10;13-8=6#a+e", True, False),     # right, a false alarm that broke it
            ("#b+e", "e=9;13-9=4;b=8x|13-3=10;13-8=5#b+c", False, True),     # wrong, caught and fixed
            ("#b+e", "e=9;13-9=8;b=8v#b+e", False, False),                   # wrong, a slipped subtraction hid it
            ("#a+e", "d=1;13-1=12;a=4x|13-3=10;13-1=9#d+e", False, False),   # another pick than the first, a wrong look-up
            ("13-3=10;13-8=5#a+e", "13-3=10#a+e", False, False)]             # not checked
    s = script.pick_checks(rows, [([3, 8, 5, 1, 9], 13)] * 6)
    assert (s["pick_checked"], s["pick_checked_share"]) == (5, round(5 / 6, 3))
    assert s["checked_pick_is_first"] == 0.8 and s["lookups_right"] == 0.8 and s["subtraction_right"] == 0.8
    assert (s["p_flag_given_right_a1"], s["p_flag_given_wrong_a1"]) == (0.5, round(2 / 3, 3))
    assert s["mark_matches_own_numbers"] == 0.8  # only the false alarm disagrees with the numbers it wrote
    assert (s["checked_fix"], s["checked_break"]) == (round(1 / 3, 3), 0.5)


def test_verdicts_script_runs_on_a_built_base(cache_dir, tmp_path):
    import json
    import subprocess
    import sys

    from score_lib.toy_base import ToyBaseConfig, build_toy_base

    base = build_toy_base(ToyBaseConfig(p_check=0.5, corpus_size=200, batch_size=8, max_steps=3, target_acc=0),
                          progress=False)
    _, script = _verdicts_script()
    out = tmp_path / "v.json"
    run = subprocess.run([sys.executable, str(script), "--model", str(base), "--limit", "6", "--samples", "2",
                          "--json", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(out.read_text())["episodes"] == 12
    bad = subprocess.run([sys.executable, str(script), "--model", str(base), "--limit", "0"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "--limit" in bad.stderr


def _parse(prompt: str):
    import re

    nums = [int(x) for x in re.findall(r"\d+", prompt)]
    ops = re.findall(r"[+\-*]", prompt)
    return nums[0], list(zip(ops, nums[1:]))


def _wrong_steps(solution: str) -> int:
    bad = 0
    for step in solution.split("#")[0].split(";"):
        lhs, rhs = step.split("=")
        bad += eval(lhs) != int(rhs)
    return bad


def test_planted_slips_script_writes_a_repair_file(tmp_path):
    """scripts/toy_slips.py: one line per test problem, each first attempt wrong in exactly one step,
    in the format `score eval --repair` reads (read through its own parser)."""
    import subprocess
    import sys
    from pathlib import Path

    from score_lib.repair import read_first_attempts

    out = tmp_path / "slips.jsonl"
    script = Path(__file__).resolve().parents[1] / "scripts" / "toy_slips.py"
    subprocess.run([sys.executable, str(script), "--limit", "40", "--out", str(out)], check=True, capture_output=True)
    task = ToyTask(ToyWorld(), seed=0, n_test=2000)  # score eval's test problems (tasks.make_task)
    pairs = read_first_attempts(out, task, split="test")
    assert [p.id for p, _ in pairs] == [p.id for p in task.problems("test", 40)]
    for problem, first in pairs:
        assert task.grade(first, problem) == 0.0
        steps, right = first.split("#")[0].split(";"), problem.solution.split("#")[0].split(";")
        assert len(steps) == len(right)
        assert _wrong_steps(first) == 1, first  # one miscomputed step; later steps carry on from it correctly
        departs = next(i for i, (a, b) in enumerate(zip(steps, right)) if a != b)
        assert _wrong_steps(steps[departs]) == 1, first  # every step before the slip is the solution's own
    bad = subprocess.run([sys.executable, str(script), "--limit", "0", "--out", str(out)], capture_output=True, text=True)
    assert bad.returncode != 0 and "--limit" in bad.stderr
