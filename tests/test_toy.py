"""The toy world: deterministic, disjoint splits, an exact oracle, and the base corpus habits."""
import random

import pytest

from score_lib.tasks.toy import (ToyTask, ToyWorld, base_corpus, extract_answer, generate, render_solution,
                                 split_of)


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
    copies = sum(a1 == a2 for _, a1, a2 in corpus) / len(corpus)
    expected = 0.5 + 0.5 * 0.75 ** ToyWorld().n_ops  # copies, plus re-solves that happened not to slip
    assert abs(copies - expected) < 0.04
    assert all(extract_answer(a1) is not None for _, a1, _ in corpus)


@pytest.mark.parametrize("kwargs,msg", [({"digits": 0}, "digits"), ({"n_ops": 0}, "n_ops"),
                                        ({"ops": "+/"}, "ops")])
def test_bad_knobs_are_named(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        ToyWorld(**kwargs)
