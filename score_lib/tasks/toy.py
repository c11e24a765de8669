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
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import NamedTuple

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

    def __post_init__(self):
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


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


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
        value = _apply(value, op, b)
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
        right = result = _apply(value, op, b)
        slipped = k == slip_at if one_slip else bool(slip and rng is not None and rng.random() < slip)
        if slipped:
            result = max(0, result + rng.choice([-10, -2, -1, 1, 2, 10]))
            if one_slip and result == right:  # clamped at 0 back onto the answer: the one slip must stay wrong
                result += 1
        parts.append(f"{value}{op}{b}={result}")
        value = result
    return ";".join(parts) + f"#{value}", value


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
        start, steps = draw_chain(world, rng)
        text = render_prompt(start, steps)
        if text not in seen and split_of(text, world.test_share) == split:
            seen[text] = make_problem(world, start, steps)
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
        return extract_answer(response)

    def grade(self, response: str, problem: Problem) -> float:
        return float(extract_answer(response) == problem.answer)


class Conversation(NamedTuple):
    """One base-corpus conversation; `first_in_loss` False makes attempt 1 context the model reads
    but is never trained to write (a mistake shown so that its correction can be learned)."""

    prompt: str
    first: str
    second: str
    first_in_loss: bool = True


def base_corpus(world: ToyWorld, n: int, seed: int, p_copy: float = 0.5, slip1: float = 0.0,
                slip2: float = 0.25, p_wrong: float = 0.0, p_fix: float = 0.5) -> list[Conversation]:
    """The conversations (prompt, attempt 1, attempt 2) that teach the base model its habits.

    Attempt 1 is the reference solution (with `slip1` step noise); attempt 2 copies attempt 1 with
    probability `p_copy`, else re-solves the problem with the higher slip rate `slip2`. Nothing in
    attempt 2 ever looks at whether attempt 1 was right: that is what makes the habit unhelpful.
    With `p_wrong` > 0 that share of conversations instead shows a first attempt with one slipped step
    (marked first_in_loss=False: context, never trained on) and then, with probability `p_fix`, the
    correct solution, else a copy: a correction skill the base has but seldom gets to use.
    """
    rng = random.Random(f"toy-corpus-{seed}")
    out = []
    for p in generate(world, "train", n, seed):
        start, steps = p.meta["start"], p.meta["steps"]
        if p_wrong and rng.random() < p_wrong:
            a1 = render_solution(start, steps, 1.0, rng, one_slip=True)[0]
            a2 = p.solution if rng.random() < p_fix else a1
            out.append(Conversation(p.prompt, a1, a2, first_in_loss=False))
            continue
        a1, _ = render_solution(start, steps, slip1, rng)
        a2 = a1 if rng.random() < p_copy else render_solution(start, steps, slip2, rng)[0]
        out.append(Conversation(p.prompt, a1, a2))
    return out
