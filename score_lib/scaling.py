"""Inference-time scaling (Fig. 1 right): at an equal budget of 2K responses per problem, compare

    parallel:   2K independent first attempts, majority vote over their answers;
    sequential: K episodes of attempt + one self-correction, majority vote over the K revised answers.

One pool is sampled with the largest K and every smaller K votes over a prefix of it, so budgets are
nested and the curve costs one rollout per mode.
"""
from __future__ import annotations

from collections import Counter

from .rollout import grade, rollout


def majority_vote(answers: list[str | None]) -> str | None:
    """The most frequent answer; ties go to the one seen first; None wins only when all are None."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def voted_correct(attempts) -> bool:
    """Whether the majority answer of these graded attempts is correct. The answer is graded through
    one sample that gave it (every sample is already graded), so any task's oracle works unchanged."""
    voted = majority_vote([a.answer for a in attempts])
    return next(a for a in attempts if a.answer == voted).correct


def sample_pool(model, tok, task, problems, k_max: int, instruction: str, temperature: float = 0.7,
                max_new_tokens: int = 64, seed: int = 0) -> dict:
    """Graded episodes for the largest K: 2K single attempts and K two-attempt episodes per problem."""
    parallel = rollout(model, tok, problems, [], n=2 * k_max, temperature=temperature,
                       max_new_tokens=max_new_tokens, seed=seed)
    sequential = rollout(model, tok, problems, [instruction], n=k_max, temperature=temperature,
                         max_new_tokens=max_new_tokens, seed=seed + 1)
    return {"parallel": grade(task, parallel), "sequential": grade(task, sequential)}


def scaling_curve(model, tok, task, problems, ks: list[int], instruction: str, temperature: float = 0.7,
                  max_new_tokens: int = 64, seed: int = 0, pool: dict | None = None) -> dict:
    """Majority-vote accuracy of the parallel and sequential modes for each K (budget 2K responses).

    `pool` (from sample_pool with max(ks)) reuses already sampled episodes instead of sampling.
    """
    ks = sorted(set(ks))
    k_max = ks[-1]
    pool = pool or sample_pool(model, tok, task, problems, k_max, instruction, temperature, max_new_tokens, seed)
    # rollout lays out rows problem-major: problem i owns rows i*n .. i*n + n - 1
    par = [pool["parallel"][i * 2 * k_max:(i + 1) * 2 * k_max] for i in range(len(problems))]
    seq = [pool["sequential"][i * k_max:(i + 1) * k_max] for i in range(len(problems))]
    n = len(problems)
    return {
        "ks": ks,
        "parallel": [sum(voted_correct([ep.attempts[0] for ep in eps[:2 * k]]) for eps in par) / n for k in ks],
        "sequential": [sum(voted_correct([ep.attempts[1] for ep in eps[:k]]) for eps in seq) / n for k in ks],
        "single": sum(ep.attempts[0].correct for ep in pool["parallel"]) / len(pool["parallel"]),
        "budget": [2 * k for k in ks],
        "n_problems": n,
        "temperature": temperature,
    }
