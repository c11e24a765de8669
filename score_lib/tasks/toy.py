"""The toy arithmetic world: multi-step integer arithmetic with an exact oracle.

A problem is a left-to-right chain such as ``7+5-3+8``; a solution writes one step per operation
and ends with the answer after ``#``::

    7+5=12;12-3=9;9+8=17#17

Everything is a pure function of the world's knobs and a seed, so every run sees the same
problems. Train and test problems are disjoint by construction: a problem's split is decided by a
hash of its text, not by the order in which it was drawn.

``base_corpus`` writes the two-attempt conversations the toy base model is trained on. Their second
attempt is the habit the paper's base models show: half the time a copy of the first attempt, else
a hurried re-solve that slips more often than the first attempt did. A model trained on it changes
its answer often, fixes few mistakes and breaks more correct answers than it fixes (Delta < 0);
see docs/toy_world.md.

``ToyWorld(kind="pick")`` is a second world with the same interface (tasks.toy_pick): which two
lettered digits reach a target, a world whose check is easier than its solution.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import NamedTuple

from . import toy_pick
from .base import Problem

ANSWER_RE = re.compile(r"#\s*(-?\d+)")


@dataclass(frozen=True)
class ToyWorld:
    """Knobs of the toy arithmetic world (every field changes which problems exist)."""

    digits: int = 1
    """Digits per operand (1 = operands 1..9)."""
    n_ops: int = 3
    """Operations per problem (the number of solution steps)."""
    ops: str = "+-"
    """Operators to draw from; '*' is allowed (then the prompt brackets the chain)."""
    test_share: int = 5
    """One problem in `test_share` (by hash of its text) belongs to the test split."""
    kind: str = "chain"
    """"chain" (arithmetic chains, this module) or "pick" (which two numbers of a list reach a
    target: tasks.toy_pick, a world whose check is easier than its solution)."""
    n_numbers: int = 5
    """Pick world: numbers per list (n_ops and ops are chain-world knobs)."""

    def __post_init__(self):
        if self.kind not in ("chain", "pick"):
            raise ValueError(f"toy world: kind must be 'chain' or 'pick', got {self.kind!r}")
        if self.kind == "pick" and not 3 <= self.n_numbers <= min(12, 10**self.digits - 1):
            raise ValueError(f"toy world: n_numbers must be 3..{min(12, 10**self.digits - 1)} for "
                             f"{self.digits}-digit numbers, got {self.n_numbers}")
        if not 1 <= self.digits <= 4:
            raise ValueError(f"toy world: digits must be 1..4, got {self.digits}")
        if not 1 <= self.n_ops <= 12:
            raise ValueError(f"toy world: n_ops must be 1..12, got {self.n_ops}")
        if not self.ops or set(self.ops) - set("+-*"):
            raise ValueError(f"toy world: ops must be a non-empty subset of '+-*', got {self.ops!r}")


def split_of(text: str, test_share: int) -> str:
    """'test' for one problem text in `test_share`, else 'train' (stable across runs and machines)."""
    h = int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big")
    return "test" if h % test_share == 0 else "train"


def _operand(rng: random.Random, digits: int) -> int:
    return rng.randint(1, 10**digits - 1)


def apply_op(a: int, op: str, b: int) -> int:
    """The result of one step, `a op b`."""
    return a + b if op == "+" else a - b if op == "-" else a * b


def slip_result(value: int, rng: random.Random) -> int:
    """A person's arithmetic slip on a step's result: off by a small amount, never below zero."""
    return max(0, value + rng.choice([-10, -2, -1, 1, 2, 10]))


def draw_chain(world: ToyWorld, rng: random.Random) -> tuple[int, list[tuple[str, int]]]:
    """A start value and (op, operand) pairs; subtraction never takes the running value below 0."""
    value = start = _operand(rng, world.digits)
    steps = []
    for _ in range(world.n_ops):
        op, b = rng.choice(world.ops), _operand(rng, world.digits)
        if op == "-" and b > value:
            op = "+"
        if op == "*":
            b = rng.randint(2, 9)  # keep products short enough to stay learnable
        steps.append((op, b))
        value = apply_op(value, op, b)
    return start, steps


def render_prompt(start: int, steps: list[tuple[str, int]]) -> str:
    text = str(start)
    for op, b in steps:
        text = f"({text}){op}{b}" if op == "*" and text != str(start) else f"{text}{op}{b}"
    return text


def render_solution(start: int, steps: list[tuple[str, int]], slip: float = 0.0,
                    rng: random.Random | None = None, one_slip: bool = False) -> tuple[str, int]:
    """Step-by-step solution; with `slip` > 0 each step's result is miscomputed with that probability.

    A slip shifts the result by a small amount and later steps carry on from the wrong value, as a
    person's arithmetic slip would. `one_slip` puts exactly one slip at a random step instead (a
    first attempt with one mistake in it). Returns the text and its final answer.
    """
    value, parts = start, []
    slip_at = rng.randrange(len(steps)) if one_slip else None
    for k, (op, b) in enumerate(steps):
        right = result = apply_op(value, op, b)
        slipped = k == slip_at if one_slip else bool(slip and rng is not None and rng.random() < slip)
        if slipped:
            result = slip_result(result, rng)
            if one_slip and result == right:  # clamped at 0 back onto the answer: the one slip must stay wrong
                result += 1
        parts.append(f"{value}{op}{b}={result}")
        value = result
    return ";".join(parts) + f"#{value}", value


def checked_solution(start: int, steps: list[tuple[str, int]], first: str) -> str:
    """A second attempt that checks the first step by step: each step of `first` is copied with a
    verdict after its result, 'v' (right) or 'x' (wrong); after the first 'x' it writes the right
    value and solves the rest from there. ``9+6=15v;15-8=6x7;7+4=11#11``. A mark only judges a result
    already on the page; even so the 1M-parameter toy base does not learn to set it by the truth of
    the step (RESULTS.md: "Can a base learn to check its own steps?")."""
    done = first.split("#")[0].split(";")
    value, parts = start, []
    for k, (op, b) in enumerate(steps):
        right = apply_op(value, op, b)
        if k < len(done) and done[k].endswith(f"={right}") and done[k].startswith(f"{value}{op}{b}="):
            parts.append(f"{done[k]}v")
        else:
            written = done[k].rpartition("=")[2] if k < len(done) else ""
            parts.append(f"{value}{op}{b}={written}x{right}")
            value = right
            for op2, b2 in steps[k + 1:]:
                nxt = apply_op(value, op2, b2)
                parts.append(f"{value}{op2}{b2}={nxt}")
                value = nxt
            return ";".join(parts) + f"#{value}"
        value = right
    return ";".join(parts) + f"#{value}"


def recheck_solution(start: int, steps: list[tuple[str, int]], first: str, slip: float,
                     rng: random.Random) -> str:
    """A second attempt that redoes each step of `first` and settles disagreements by a third try:
    ``15-8=7:7`` (copied, recomputed: agree), ``15-8=6:7:7`` (disagree; the third try decides). The
    recompute slips with probability `slip` (a hurried check), the deciding try never does. Once the
    decided value differs from `first`'s, the later steps of `first` are built on a wrong value, so
    the rest is solved afresh. Two independent tries and a tie-break would beat one try; the toy base's
    redo is neither independent of the copied value nor as good as its first try (RESULTS.md)."""
    done = first.split("#")[0].split(";")
    value, parts, following = start, [], True
    for k, (op, b) in enumerate(steps):
        right = apply_op(value, op, b)
        lhs = f"{value}{op}{b}="
        if not following:
            parts.append(f"{lhs}{right}")
        else:
            written = done[k].rpartition("=")[2] if k < len(done) and done[k].startswith(lhs) else ""
            again = right
            if slip and rng.random() < slip:
                again = slip_result(right, rng)
                if again == right or str(again) == written:  # a slip must not agree with a wrong step
                    again = right
            if str(again) == written:
                parts.append(f"{lhs}{written}:{again}")
            else:
                parts.append(f"{lhs}{written}:{again}:{right}")
                following = str(right) == written
        value = right
    return ";".join(parts) + f"#{value}"


def reverse_check_solution(start: int, steps: list[tuple[str, int]], first: str) -> str:
    """A second attempt that checks the answer of `first` by working the chain backwards from it:
    ``9+6-8+4`` answered 11 gives ``11-4=7;7+8=15;15-6=9#11`` (back at the start 9: keep 11), answered
    10 gives ``10-4=6;6+8=14;14-6=8|9+6=15;15-8=7;7+4=11#11`` (8 is not 9: solve again). The check uses
    the step arithmetic the model already has, on values that are not on the page, and its outcome is a
    comparison with the prompt's first number (docs/toy_world.md). Chains of + and - only."""
    if any(op not in "+-" for op, _ in steps):
        raise ValueError("reverse check: only chains of + and - can be worked backwards step by step")
    answer = extract_answer(first)
    value = int(answer) if answer is not None else 0
    parts = []
    for op, b in reversed(steps):
        back = value - b if op == "+" else value + b
        parts.append(f"{value}{'-' if op == '+' else '+'}{b}={back}")
        value = back
    if answer is not None and value == start:
        return ";".join(parts) + f"#{answer}"
    return ";".join(parts) + "|" + render_solution(start, steps)[0]


def make_problem(world: ToyWorld, start: int, steps: list[tuple[str, int]]) -> Problem:
    prompt = render_prompt(start, steps)
    solution, answer = render_solution(start, steps)
    return Problem(id=prompt, prompt=prompt, answer=str(answer), solution=solution,
                   meta={"start": start, "steps": steps})


def generate(world: ToyWorld, split: str, n: int, seed: int) -> list[Problem]:
    """`n` distinct problems of `split`, deterministic in (world, split, n, seed)."""
    if split not in ("train", "test"):
        raise ValueError(f"toy world: split must be 'train' or 'test', got {split!r}")
    rng = random.Random(f"toy-{seed}-{split}")
    seen: dict[str, Problem] = {}
    tries = 0
    while len(seen) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise ValueError(f"toy world {world}: cannot find {n} distinct {split} problems; "
                             "raise digits or n_ops, or ask for fewer")
        if world.kind == "pick":
            numbers, target = toy_pick.draw_pick(world, rng)
            text = toy_pick.pick_prompt(numbers, target)
        else:
            start, steps = draw_chain(world, rng)
            text = render_prompt(start, steps)
        if text not in seen and split_of(text, world.test_share) == split:
            seen[text] = (toy_pick.make_pick_problem(numbers, target) if world.kind == "pick"
                          else make_problem(world, start, steps))
    return list(seen.values())


def extract_answer(response: str) -> str | None:
    """The integer after the last '#', or None when the response gives no answer."""
    found = ANSWER_RE.findall(response)
    return found[-1] if found else None


class ToyTask:
    """Task interface over a ToyWorld: problems by split and the exact oracle."""

    name = "toy"

    def __init__(self, world: ToyWorld | None = None, seed: int = 0, n_train: int = 20000,
                 n_test: int = 2000):
        self.world = world or ToyWorld()
        self.seed, self.n_train, self.n_test = seed, n_train, n_test
        self._cache: dict[str, list[Problem]] = {}

    def problems(self, split: str, limit: int | None = None) -> list[Problem]:
        if split not in self._cache:
            n = self.n_train if split == "train" else self.n_test
            self._cache[split] = generate(self.world, split, n, self.seed)
        probs = self._cache[split]
        return probs if limit is None else probs[:limit]

    def extract_answer(self, response: str) -> str | None:
        return toy_pick.extract_pick(response) if self.world.kind == "pick" else extract_answer(response)

    def grade(self, response: str, problem: Problem) -> float:
        return float(self.extract_answer(response) == problem.answer)


class Conversation(NamedTuple):
    """One base-corpus conversation; `first_in_loss` False makes attempt 1 context the model reads
    but is never trained to write (a mistake shown so that its correction can be learned)."""

    prompt: str
    first: str
    second: str
    first_in_loss: bool = True


def base_corpus(world: ToyWorld, n: int, seed: int, p_copy: float = 0.5, slip1: float = 0.0,
                slip2: float = 0.25, p_wrong: float = 0.0, p_fix: float = 0.5,
                p_check: float = 0.0, check_slipped: float = 0.5, check_style: str = "verdict") -> list[Conversation]:
    """The conversations (prompt, attempt 1, attempt 2) that teach the base model its habits.

    Attempt 1 is the reference solution (with `slip1` step noise); attempt 2 copies attempt 1 with
    probability `p_copy`, else re-solves the problem with the higher slip rate `slip2`. Nothing in
    attempt 2 ever looks at whether attempt 1 was right: that is what makes the habit unhelpful.
    With `p_wrong` > 0 that share of conversations instead shows a first attempt with one slipped step
    (marked first_in_loss=False: context, never trained on) and then, with probability `p_fix`, the
    correct solution, else a copy: a correction skill the base has but seldom gets to use.
    With `p_check` > 0 that share of conversations has a checked second attempt (checked_solution)
    after a first attempt that has one slipped step with probability `check_slipped` (then context
    only) and is right otherwise: a verification habit the base has but seldom uses. `check_style`
    "recheck" writes recheck_solution instead (each step redone, with `slip2`, and disagreements
    settled by a third try), "reverse" reverse_check_solution (the answer worked backwards to the start).
    The pick world has the same recipe in its own attempts (tasks.toy_pick.corpus_attempts).
    """
    if world.kind == "pick":  # one check style there: the pick tested against the prompt (tasks.toy_pick)
        if p_check and check_style != "verdict":
            raise ValueError(f"toy corpus: the pick world checks with 'verdict' only, got {check_style!r}")
        rng = random.Random(f"toy-pick-corpus-{seed}")
        mistake, check, habit = toy_pick.corpus_attempts(rng, p_copy, slip2)
    else:
        if check_style not in ("verdict", "recheck", "reverse"):
            raise ValueError(f"toy corpus: check_style must be 'verdict', 'recheck' or 'reverse', got {check_style!r}")
        if p_check and check_style == "reverse" and set(world.ops) - set("+-"):
            raise ValueError(f"toy corpus: check_style 'reverse' needs ops of + and - only, got {world.ops!r}")
        rng = random.Random(f"toy-corpus-{seed}")

        def mistake(p):
            return render_solution(p.meta["start"], p.meta["steps"], 1.0, rng, one_slip=True)[0]

        def check(p, a1):
            start, steps = p.meta["start"], p.meta["steps"]
            return (checked_solution(start, steps, a1) if check_style == "verdict"
                    else recheck_solution(start, steps, a1, slip2, rng) if check_style == "recheck"
                    else reverse_check_solution(start, steps, a1))

        def habit(p):
            a1, _ = render_solution(p.meta["start"], p.meta["steps"], slip1, rng)
            return a1, a1 if rng.random() < p_copy else render_solution(p.meta["start"], p.meta["steps"], slip2, rng)[0]

    out = []
    for p in generate(world, "train", n, seed):
        if p_check and rng.random() < p_check:
            slipped = rng.random() < check_slipped
            a1 = mistake(p) if slipped else p.solution
            out.append(Conversation(p.prompt, a1, check(p, a1), first_in_loss=not slipped))
        elif p_wrong and rng.random() < p_wrong:
            a1 = mistake(p)
            out.append(Conversation(p.prompt, a1, p.solution if rng.random() < p_fix else a1, first_in_loss=False))
        else:
            out.append(Conversation(p.prompt, *habit(p)))
    return out
