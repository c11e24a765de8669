"""The pick world: which two numbers of a list add up to the target? A toy world whose check is
easier than its solution.

A problem lists distinct numbers, each after a letter that names it, and a target after ``?``;
exactly one pair of them adds up to it. A solution scans the list for the first number whose
complement is also there, and names the pair by its letters after ``#``::

    a3 b8 c5 d1 e9?13      ->   13-3=10;13-8=5#b+c

The search costs a subtraction and a look through the list per number, and then finding which letter
holds the complement; a slip in the look stops the scan at a number that is not there, and the pick
names a wrong letter. A check of a pick reads the two numbers its letters name and tests them against
the target, ``c=5;13-5=8;b=8v``: two look-ups by letter, one subtraction and an equality, each a single
step, whatever went wrong in the search. In the chain world (tasks.toy) checking a step costs as much
as computing it, and a 1M-parameter base learns to check only after it has learned to solve
(RESULTS.md, "Can a base learn to check its own steps?"); here the check should come first
(docs/toy_world.md, "The pick world").

The base corpus has the chain world's habits in this world's terms: attempt 2 copies attempt 1 or
scans again carelessly; a shown wrong scan is sometimes fixed; with ``p_check`` a checked attempt 2
checks the pick of attempt 1 and keeps it ('v') or scans again ('x|...').
"""
from __future__ import annotations

import random
import re

from .base import Problem

LETTERS = "abcdefghijkl"
PAIR_RE = re.compile(r"#\s*([a-l])\s*\+\s*([a-l])")


def pairs_to(numbers: list[int], target: int) -> list[tuple[int, int]]:
    """Every pair (in list order) of distinct positions of `numbers` that adds up to `target`."""
    return [(a, b) for i, a in enumerate(numbers) for b in numbers[i + 1:] if a + b == target]


def draw_pick(world, rng: random.Random) -> tuple[list[int], int]:
    """`world.n_numbers` distinct numbers of `world.digits` digits and a target that exactly one pair
    of them reaches (two pairs would make a wrong-looking pick right)."""
    hi = 10**world.digits - 1
    while True:
        numbers = rng.sample(range(1, hi + 1), world.n_numbers)
        i, j = sorted(rng.sample(range(world.n_numbers), 2))
        target = numbers[i] + numbers[j]
        if len(pairs_to(numbers, target)) == 1:
            return numbers, target


def pick_prompt(numbers: list[int], target: int) -> str:
    return " ".join(f"{LETTERS[i]}{x}" for i, x in enumerate(numbers)) + f"?{target}"


def canonical(l1: str, l2: str) -> str:
    """The order-free form of a pick, letters in alphabetical order: c+b and b+c are the same answer."""
    return "+".join(sorted((l1, l2)))


def number_of(numbers: list[int], letter: str) -> int | None:
    """The number the letter names, or None for a letter past the end of the list."""
    i = LETTERS.index(letter)
    return numbers[i] if i < len(numbers) else None


def name(numbers: list[int], x: int, y: int) -> str:
    """The pick of the numbers x and y of the list, by their letters: ``b+c``."""
    return f"{LETTERS[numbers.index(x)]}+{LETTERS[numbers.index(y)]}"


def scan(numbers: list[int], target: int) -> str:
    """The reference solution: for each number in list order, what the target still needs; it stops
    at the first number whose complement is also in the list and names the two by their letters.
    ``a3 b8 c5 d1 e9?13`` gives ``13-3=10;13-8=5#b+c``."""
    parts = []
    for x in numbers:
        need = target - x
        parts.append(f"{target}-{x}={need}")
        if need != x and need in numbers:
            return ";".join(parts) + "#" + name(numbers, x, need)
    raise ValueError(f"pick world: no pair of {numbers} reaches {target}")


def slipped_scan(numbers: list[int], target: int, rng: random.Random) -> str:
    """A wrong first attempt as a person would write one: the scan is right up to one step, which
    either slips onto another number of the list (the pick names that number) or stops with its result
    right and names a letter that does not hold it. Both picks miss the target; only the second shows
    a check that the letters' numbers must be read from the prompt, not copied from the scan."""
    steps = scan(numbers, target).split("#")[0].split(";")
    k = rng.randrange(len(steps))
    x = numbers[k]
    wrong = rng.choice([y for y in numbers if y != x and y != target - x])
    written = wrong if rng.random() < 0.5 else target - x
    return ";".join(steps[:k] + [f"{target}-{x}={written}"]) + "#" + name(numbers, x, wrong)


def make_pick_problem(numbers: list[int], target: int) -> Problem:
    prompt = pick_prompt(numbers, target)
    (a, b), = pairs_to(numbers, target)
    return Problem(id=prompt, prompt=prompt, answer=canonical(*name(numbers, a, b).split("+")),
                   solution=scan(numbers, target), meta={"numbers": numbers, "target": target})


def extract_pick(response: str) -> str | None:
    """The pick after the last '#' in alphabetical order, or None when the response names none."""
    found = PAIR_RE.findall(response)
    return canonical(*found[-1]) if found else None


def checked_pick(numbers: list[int], target: int, first: str) -> str:
    """A second attempt that checks the pick of `first`: the second letter's number, what the target
    leaves after it, the first letter's number, and 'v' when the two agree (keep the pick) or 'x', '|'
    and the scan again. ``c=5;13-5=8;b=8v#b+c``, ``e=9;13-9=4;b=8x|13-3=10;13-8=5#b+c``. A first
    attempt with no pick (or a letter past the list, or one letter twice) gets the scan straight away."""
    found = PAIR_RE.findall(first)
    if not found or found[-1][0] == found[-1][1]:
        return scan(numbers, target)
    l1, l2 = found[-1]
    v1, v2 = number_of(numbers, l1), number_of(numbers, l2)
    if v1 is None or v2 is None:
        return scan(numbers, target)
    check = f"{l2}={v2};{target}-{v2}={target - v2};{l1}={v1}"
    if target - v2 == v1:
        return check + f"v#{l1}+{l2}"
    return check + "x|" + scan(numbers, target)


def corpus_attempts(rng: random.Random, p_copy: float, slip2: float):
    """The pick world's attempts for tasks.toy.base_corpus's recipe, drawing from `rng`: a mistake (a
    slipped scan, context only), a check of a first attempt (checked_pick), and the habit: attempt 1
    the right scan, attempt 2 a copy with probability `p_copy`, else a scan again that slips with
    probability `slip2`."""
    def mistake(p):
        return slipped_scan(p.meta["numbers"], p.meta["target"], rng)

    def check(p, a1):
        return checked_pick(p.meta["numbers"], p.meta["target"], a1)

    def habit(p):
        again = mistake(p) if rng.random() < slip2 else p.solution
        return p.solution, p.solution if rng.random() < p_copy else again

    return mistake, check, habit


CHECK_RE = re.compile(r"([a-l])=(\d*);(\d+)-(\d+)=(-?\d*);([a-l])=(\d*)([vx])")


def rate(hits: int, total: int) -> float | None:
    """hits / total to three places, None over nothing (the diagnostics' rates)."""
    return round(hits / total, 3) if total else None


def check_summary(rows: list[tuple[str, str, bool, bool]], problems: list[tuple[list[int], int]]) -> dict:
    """How well a model's checks (checked_pick) judge its own first attempts. rows: (attempt 1, attempt 2,
    attempt 1 right, attempt 2 right) per episode; problems: each episode's (numbers, target). A check
    counts when attempt 2 opens with ``c=5;13-5=8;b=8`` and a mark. Reports the checked share, whether the
    checked pick is attempt 1's, how often both look-ups and the subtraction are right, P('x' | attempt 1
    right) vs P('x' | attempt 1 wrong) (a check is useful when the second is far above the first), whether
    the mark agrees with the model's own numbers (v exactly when its difference equals its look-up), and
    fixes / breaks among checked episodes. Rates over nothing are None."""
    checked = same_pick = looked_up = subtracted = agrees = fixed = broke = 0
    flag = {True: 0, False: 0}
    seen = {True: 0, False: 0}
    for (y1, y2, c1, c2), (numbers, target) in zip(rows, problems):
        m = CHECK_RE.match(y2)
        if not m:
            continue
        checked += 1
        l2, w2, t, s, diff, l1, w1, mark = m.groups()
        same_pick += extract_pick(y1) == canonical(l1, l2)
        looked_up += w2 == str(number_of(numbers, l2)) and w1 == str(number_of(numbers, l1))
        subtracted += diff == str(int(t) - int(s))
        agrees += (mark == "v") == (diff == w1)
        seen[c1] += 1
        flag[c1] += mark == "x"
        fixed += (not c1) and c2
        broke += c1 and not c2
    return {"pick_checked": checked, "pick_checked_share": rate(checked, len(rows)),
            "checked_pick_is_first": rate(same_pick, checked), "lookups_right": rate(looked_up, checked),
            "subtraction_right": rate(subtracted, checked),
            "p_flag_given_right_a1": rate(flag[True], seen[True]), "p_flag_given_wrong_a1": rate(flag[False], seen[False]),
            "mark_matches_own_numbers": rate(agrees, checked),
            "checked_fix": rate(fixed, seen[False]), "checked_break": rate(broke, seen[True])}
