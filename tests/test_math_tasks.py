"""Math tasks: loaders over the shared data, answer extraction, and the math-verify oracle."""
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from score_lib.tasks import math as mt
from score_lib.tasks.math import (GSM8KTask, MATH500Task, MATHTask, extract_answer, grade_details,
                                  is_correct, string_match)

DATA = Path(__file__).parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "math500" / "test.jsonl").exists(),
                                reason=f"shared benchmark data not found at {DATA}")
REGRESSION = [json.loads(line) for line in open(Path(__file__).with_name("math_regression.jsonl"))]


# ----------------------------------------------------------------------------- loaders

@needs_data
def test_gsm8k_loader():
    task = GSM8KTask(DATA)
    train, test = task.problems("train"), task.problems("test")
    assert (len(train), len(test)) == (7473, 1319)
    p = test[0]
    assert p.id == "gsm8k/test/0" and p.answer == "18"
    assert "\\boxed{}" in p.prompt and p.prompt.startswith("Janet")
    assert "<<" not in p.solution and p.solution.endswith("\\boxed{18}.")
    assert task.grade(p.solution, p) == 1.0  # the SFT reference is graded right by our own oracle
    assert all("," not in q.answer for q in train)  # "#### 1,000" -> "1000"
    assert len({q.id for q in train}) == 7473
    assert task.problems("test", limit=5) == test[:5]


@needs_data
def test_math500_loader():
    probs = MATH500Task(DATA).problems("test")
    assert len(probs) == 500 and len({p.id for p in probs}) == 500
    assert probs[0].id == "test/precalculus/807.json"
    assert probs[0].meta == {"level": 2, "subject": "Precalculus"}
    with pytest.raises(ValueError, match="test"):
        MATH500Task(DATA).problems("train")


@needs_data
def test_math_train_offline_is_math_test_minus_math500():
    task = MATHTask(DATA)
    train, test = task.problems("train"), task.problems("test")
    assert len(test) == 500 and len(train) == 4500
    assert len({p.id for p in train}) == 4500
    assert not {p.id for p in train} & {p.id for p in test}
    assert not {p.prompt for p in train} & {p.prompt for p in test}  # no evaluation problem leaks
    assert all(p.answer and isinstance(p.meta["level"], int) and p.meta["subject"] for p in train)


def test_hub_sources_and_their_composition(monkeypatch):
    """Without data_dir the tasks read the hub (faked here: no network): which datasets, which splits."""
    import datasets

    calls = []
    held = {"problem": "P500", "solution": "so \\boxed{1}", "answer": "1", "subject": "Algebra", "level": 1,
            "unique_id": "test/algebra/1.json"}

    def fake_load(name, *config, split):
        calls.append((name, config, split))
        if name == "HuggingFaceH4/MATH-500":
            return [held]
        if name == "openai/gsm8k":
            return [{"question": "Q?", "answer": "2 * 500 = <<2*500=1000>>1000\n#### 1,000"}]
        assert name == "EleutherAI/hendrycks_math" and config[0] in mt.MATH_SUBJECTS
        rows = [{"problem": f"{config[0]} {split}", "solution": "\\boxed{2}", "level": "Level 2",
                 "type": config[0]}]
        return rows + ([{**held, "level": "Level 1", "type": "Algebra"}] if split == "test" else [])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    train = MATHTask().problems("train")
    assert len(train) == 14 and all("P500" not in p.prompt for p in train)  # 7 train + 7 test rows
    assert {c[2] for c in calls if c[0] == "EleutherAI/hendrycks_math"} == {"train", "test"}
    assert [p.id for p in MATHTask().problems("test")] == ["test/algebra/1.json"]
    g = GSM8KTask().problems("test")[0]
    assert g.answer == "1000" and ("openai/gsm8k", ("main",), "test") in calls

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match="data_dir"):
        GSM8KTask().problems("train")


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="split"):
        GSM8KTask(DATA).problems("validation")


# ----------------------------------------------------------------------------- extraction

@pytest.mark.parametrize("response,answer", [
    ("so the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("\\boxed{1} then \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # last box; escaped braces are content
    ("\\boxed{\\frac{a}{b^{2}}}", "\\frac{a}{b^{2}}"),  # nested braces
    ("\\fbox{7}", "7"),
    ("\\boxed 5 is it", "5"),
    ("\\boxed{3} and an unclosed \\boxed{4", "3"),
    ("\\boxed{} no answer in the box, Final answer: 9", "9"),
    ("12 + 7 = 9\n\nThe answer is \\boxed{}.", None),  # SmolLM2's real reply: an empty box is no answer
    ("The final answer is $x = 3$.", "x = 3"),
    ("Final Answer: The final answer is $12$. I hope it is correct.", "12"),
    ("**Final Answer:** 42", "42"),
    ("Final answer:\n17", "17"),
    ("Answer: 2.5", "2.5"),
    ("The answer is 3.5 apples. Nice.", "3.5 apples"),
    ("Tom has 5.\n#### 1,234", "1,234"),
    ("No answer here, 3 + 4 = 7", None),
    ("", None),
])
def test_extract_answer(response, answer):
    assert extract_answer(response) == answer
    assert GSM8KTask().extract_answer(response) == answer


def test_string_match():
    assert string_match("\\dfrac{1}{2}", "\\frac12")
    assert string_match("$1,000$", "1000") and string_match("3.50", "3.5") and string_match(".5", "0.5")
    assert string_match("x = 3", "3") and string_match("5 \\text{ cm}", "5")
    assert string_match("\\left( 1, 2 \\right)", "(1,2)") and string_match("\\text{(C)}", "C")
    assert not string_match("0.5", "\\frac12")  # no arithmetic, by design
    assert not string_match("(1,2)", "(2,1)") and not string_match(None, "1")
    assert not string_match("3 or 5", "3")


# ----------------------------------------------------------------------------- the oracle

def _ids(cases):
    return [f"{i}-{c['note'][:30]}" for i, c in enumerate(cases)]


@pytest.mark.parametrize("case", [c for c in REGRESSION if not c.get("known_limitation")],
                         ids=_ids([c for c in REGRESSION if not c.get("known_limitation")]))
def test_regression(case):
    assert is_correct(case["response"], case["gold"]) == case["expected"], case["note"]


@pytest.mark.parametrize("case", [c for c in REGRESSION if c.get("known_limitation")],
                         ids=_ids([c for c in REGRESSION if c.get("known_limitation")]))
@pytest.mark.xfail(reason="known math-verify limitation recorded in math_regression.jsonl", strict=False)
def test_regression_known_limitations(case):
    """math-verify gets these wrong today; an XPASS here means a newer version fixed one."""
    assert is_correct(case["response"], case["gold"]) == case["expected"], case["note"]


def test_regression_file_is_broad():
    assert len(REGRESSION) >= 40
    assert sum(not c["expected"] for c in REGRESSION) >= 12  # wrong answers that must be rejected
    assert all(set(c) <= {"response", "gold", "expected", "note", "known_limitation"} for c in REGRESSION)


def test_grade_details():
    d = grade_details("so \\boxed{0.5}", "\\frac{1}{2}")
    assert d == {"answer": "0.5", "math_verify": True, "string_match": False}
    assert grade_details("nothing", "1") == {"answer": None, "math_verify": False, "string_match": False}


def test_is_correct_in_worker_threads():
    """math-verify's SIGALRM timeouts raise off the main thread; ours must not."""
    cases = REGRESSION[:24]
    here = [is_correct(c["response"], c["gold"]) for c in cases]
    with ThreadPoolExecutor(4) as pool:
        there = list(pool.map(lambda c: is_correct(c["response"], c["gold"]), cases))
    assert there == here
    assert any(here) and not all(here)


def test_slow_check_times_out_quickly(monkeypatch):
    stop = threading.Event()  # ends the abandoned checks once the test has seen them time out

    def spinning(pred, gold):  # a check that keeps computing
        while not stop.is_set():
            pass

    def waiting(pred, gold):  # a check that neither computes nor ends: the wall-clock cap
        stop.wait(30)

    try:
        monkeypatch.setattr(mt, "_verify", spinning)
        t = time.perf_counter()
        assert mt.answers_match("1", "1", timeout=0.2) is False
        assert time.perf_counter() - t < 2.0  # 0.2 CPU seconds, even on a busy machine
        t = time.perf_counter()
        assert mt._run_with_timeout(waiting, ("1", "1"), timeout=0.2, wall_limit=0.5) is None
        assert time.perf_counter() - t < 1.5
    finally:
        stop.set()


def test_giant_numbers_are_rejected_without_computing():
    for answer in ("10^{10^{10}}", "2^{2^{2^{100}}}", "(10^{100})!", "x^{10^{10^{10}}}"):
        t = time.perf_counter()
        assert not is_correct(f"\\boxed{{{answer}}}", "1")
        assert time.perf_counter() - t < 1.5, answer
    assert is_correct("\\boxed{2^{100}}", "1267650600228229401496703205376")  # big but sane


@needs_data
def test_every_math500_gold_grades_itself_correct():
    probs = MATH500Task(DATA).problems("test")
    misses = [(p.id, p.answer) for p in probs if not is_correct(f"\\boxed{{{p.answer}}}", p.answer)]
    rate = 1 - len(misses) / len(probs)
    print(f"\nMATH500 self-grading: {rate:.1%} ({len(misses)} exceptions: {misses})")
    assert rate >= 0.99, misses
    sm = sum(string_match(p.answer, p.answer) for p in probs) / len(probs)
    assert sm == 1.0
