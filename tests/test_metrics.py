"""Tests for score_lib.metrics: hand cases, the paper's Table 2 rows, and error paths."""

import random

import pytest

from score_lib.metrics import (
    TRANSITIONS,
    attempt_metrics,
    edit_ratio,
    histogram,
    mean_std,
    pair_metrics,
    stderr,
    transition,
    transition_counts,
)


# ---------------------------------------------------------------- edit_ratio
@pytest.mark.parametrize(
    "y1, y2, expected",
    [
        ("same text", "same text", 0.0),
        ("abc", "xyz", 3 / 6),
        ("abc", "", 3 / 3),
        ("", "abc", 3 / 3),
        ("", "", 0.0),
        ("kitten", "sitting", 3 / 13),  # k->s, e->i, +g: distance 3, total length 13
        ("x = 4", "x = 5", 1 / 10),
    ],
)
def test_edit_ratio(y1, y2, expected):
    assert edit_ratio(y1, y2) == pytest.approx(expected, abs=1e-15)


def test_transition_names_and_counts():
    assert [transition(a, b) for a, b in [(1, 1), (1, 0), (0, 1), (0, 0)]] == list(TRANSITIONS)
    counts = transition_counts([True, True, False], [True, True, True])
    assert counts == {"c2c": 2, "c2i": 0, "i2c": 1, "i2i": 0}


# ---------------------------------------------------------------- identity
def test_delta_identity_random():
    rng = random.Random(1234)
    for _ in range(500):
        n = rng.randint(1, 300)
        p1, p2 = rng.random(), rng.random()
        c1 = [rng.random() < p1 for _ in range(n)]
        c2 = [rng.random() < p2 for _ in range(n)]
        m = pair_metrics(c1, c2)
        assert m["delta"] == m["delta_i2c"] - m["delta_c2i"]  # bit-exact
        assert abs((m["acc_t2"] - m["acc_t1"]) - m["delta"]) < 1e-12
        assert m["acc_t1"] == sum(c1) / n and m["acc_t2"] == sum(c2) / n
        assert sum(m["counts"].values()) == n == m["n_problems"]


# ---------------------------------------------------------------- Table 2
TABLE2 = {  # method: (t1, t2, delta, i->c, c->i) in percent of MATH500
    "base": (52.6, 41.4, -11.2, 4.6, 15.8),
    "self_refine": (52.8, 51.8, -1.0, 3.2, 4.2),
    "star": (55.4, 41.2, -14.2, 5.4, 19.6),
    "star_plus": (53.6, 54.0, 0.4, 2.6, 2.2),
    "pair_sft": (52.4, 54.2, 1.8, 5.4, 3.6),
    "pair_sft_plus": (55.0, 55.0, 0.0, 0.0, 0.0),
    "score": (60.0, 64.4, 4.4, 5.8, 1.4),
}


@pytest.mark.parametrize("method", sorted(TABLE2))
def test_table2_rows_rebuilt(method):
    t1, t2, delta, i2c, c2i = TABLE2[method]
    n = 500
    # Counts come from the first-attempt accuracy and the two transition shares only;
    # t2 and delta are then checked as outputs, so a wrong formula cannot pass.
    n_c1, n_i2c, n_c2i = round(t1 * 5), round(i2c * 5), round(c2i * 5)
    outcomes = (
        [(True, True)] * (n_c1 - n_c2i)
        + [(True, False)] * n_c2i
        + [(False, True)] * n_i2c
        + [(False, False)] * (n - n_c1 - n_i2c)
    )
    random.Random(method).shuffle(outcomes)  # str seeds are deterministic
    c1 = [a for a, _ in outcomes]
    c2 = [b for _, b in outcomes]
    m = pair_metrics(c1, c2)
    assert m["n_problems"] == n
    for key, want in [("acc_t1", t1), ("acc_t2", t2), ("delta", delta),
                      ("delta_i2c", i2c), ("delta_c2i", c2i)]:
        assert abs(100 * m[key] - want) < 1e-9, (method, key, 100 * m[key], want)
    assert m["delta"] == m["delta_i2c"] - m["delta_c2i"]


# ---------------------------------------------------------------- conditional rates
def test_fix_and_break_rate():
    # 4 wrong at t1 (1 fixed), 2 right at t1 (1 broken)
    c1 = [False, False, False, False, True, True]
    c2 = [True, False, False, False, True, False]
    m = pair_metrics(c1, c2)
    assert m["fix_rate"] == pytest.approx(1 / 4)
    assert m["break_rate"] == pytest.approx(1 / 2)
    assert m["delta_i2c"] == pytest.approx(1 / 6)  # fraction of all, not of wrong ones


def test_fix_and_break_rate_undefined():
    all_right = pair_metrics([True, True], [True, False])
    assert all_right["fix_rate"] is None and all_right["break_rate"] == 0.5
    all_wrong = pair_metrics([False, False], [False, True])
    assert all_wrong["break_rate"] is None and all_wrong["fix_rate"] == 0.5


# ---------------------------------------------------------------- texts and answers
def test_answer_change_rate_with_none():
    c = [False] * 5
    a1 = [None, None, "3", "3", "4"]
    a2 = [None, "3", None, "3", "5"]  # unchanged, changed, changed, unchanged, changed
    m = pair_metrics(c, c, a1=a1, a2=a2)
    assert m["answer_change_rate"] == pytest.approx(3 / 5)
    assert "edit_ratio_mean" not in m and "edit_ratios" not in m
    assert m["answer_change_if_right"] is None  # no right first attempt to condition on
    assert m["answer_change_if_wrong"] == pytest.approx(3 / 5)


def test_answer_change_split_by_first_attempt():
    c1 = [True, True, True, False, False]
    c2 = [True, False, True, True, False]
    a1 = ["1", "1", "2", "7", "8"]
    a2 = ["1", "9", "2", "3", "5"]  # right: kept, changed, kept; wrong: changed, changed
    m = pair_metrics(c1, c2, a1=a1, a2=a2)
    assert m["answer_change_if_right"] == pytest.approx(1 / 3)
    assert m["answer_change_if_wrong"] == 1.0
    # the overall rate is the two weighted by the first attempt's accuracy
    assert m["answer_change_rate"] == pytest.approx(
        m["acc_t1"] * m["answer_change_if_right"] + (1 - m["acc_t1"]) * m["answer_change_if_wrong"])


def test_edit_ratio_zero_share():
    y1 = ["abc", "same", "abc", "keep"]
    y2 = ["abc", "diff", "", "keep"]
    m = pair_metrics([True] * 4, [True] * 4, y1=y1, y2=y2)
    assert m["edit_ratio_zero_share"] == 0.5
    assert m["edit_ratios"] == [edit_ratio(a, b) for a, b in zip(y1, y2)]
    assert m["edit_ratios"][2] == 1.0
    assert m["edit_ratio_mean"] == pytest.approx(sum(m["edit_ratios"]) / 4)
    assert "answer_change_rate" not in m


# ---------------------------------------------------------------- k attempts
def test_attempt_metrics_three_attempts():
    rng = random.Random(7)
    n = 40
    correct = [[rng.random() < 0.5 for _ in range(n)] for _ in range(3)]
    texts = [[rng.choice(["a", "ab", "b", ""]) for _ in range(n)] for _ in range(3)]
    answers = [[rng.choice([None, "1", "2"]) for _ in range(n)] for _ in range(3)]
    m = attempt_metrics(correct, texts, answers)
    assert m["acc"] == [sum(row) / n for row in correct]
    assert len(m["pairs"]) == 2
    for j in range(2):
        want = pair_metrics(correct[j], correct[j + 1], texts[j], texts[j + 1],
                            answers[j], answers[j + 1])
        assert m["pairs"][j] == want
    for key, value in m["pairs"][0].items():
        assert m[key] == value
    assert m["acc_t2"] == m["acc"][1] and m["pairs"][1]["acc_t2"] == m["acc"][2]


# ---------------------------------------------------------------- errors
def test_pair_metrics_errors():
    with pytest.raises(ValueError, match="length mismatch"):
        pair_metrics([True, False], [True])
    with pytest.raises(ValueError, match="empty"):
        pair_metrics([], [])
    with pytest.raises(ValueError, match="length mismatch"):
        pair_metrics([True], [True], y1=["a"], y2=["a", "b"])
    with pytest.raises(ValueError, match="length mismatch"):
        pair_metrics([True], [True], a1=["1", "2"], a2=["1", "2"])


def test_attempt_metrics_errors():
    with pytest.raises(ValueError, match="at least 2 attempts"):
        attempt_metrics([[True, False]])
    with pytest.raises(ValueError, match="ragged"):
        attempt_metrics([[True, False], [True]])
    with pytest.raises(ValueError, match="ragged"):
        attempt_metrics([[True], [True]], texts=[["a"]])
    with pytest.raises(ValueError, match="empty"):
        attempt_metrics([[], []])


# ---------------------------------------------------------------- histogram / stats
def test_histogram():
    values = [0.0, 0.05, 0.1, 0.5, 0.99, 1.0, 1.0]
    h = histogram(values, bins=10)
    assert len(h["edges"]) == 11 and len(h["counts"]) == 10
    assert h["edges"][0] == 0.0 and h["edges"][-1] == 1.0
    assert sum(h["counts"]) == len(values)
    assert h["counts"][0] == 2 and h["counts"][1] == 1 and h["counts"][5] == 1
    assert h["counts"][-1] == 3  # 0.99 and both 1.0 values
    with pytest.raises(ValueError, match="outside"):
        histogram([0.5, 1.5])
    with pytest.raises(ValueError, match="outside"):
        histogram([-0.1])


def test_mean_std_and_stderr():
    assert mean_std([1, 2, 3]) == {"mean": 2.0, "std": 1.0, "per_seed": [1, 2, 3]}
    assert mean_std([0.7])["std"] == 0.0
    assert stderr(0.5, 100) == pytest.approx(0.05)
    assert stderr(0.0, 10) == 0.0
