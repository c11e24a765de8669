"""What every task gives the rest of the library: problems and an oracle.

A task is a loader (which problems, which split) plus an oracle (is this response right?). The
rollout never looks inside a task; the objectives only see the rewards the oracle returns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Problem:
    """One problem as the policy sees it, with what the oracle needs to grade it."""

    id: str
    """Stable identifier, unique within the task (used to group samples and to filter traces)."""
    prompt: str
    """The user message of the first turn."""
    answer: str
    """Gold final answer (math / toy) or the test code (code tasks)."""
    solution: str = ""
    """A reference solution written the way the policy should write one (used for SFT data)."""
    meta: dict = field(default_factory=dict, compare=False, hash=False)
    """Anything else the oracle needs (entry point, level, subject...)."""


class Task(Protocol):
    """A loader plus an oracle."""

    name: str

    def problems(self, split: str, limit: int | None = None) -> list[Problem]:
        """The problems of a split ("train" or "test"), in a fixed order."""

    def extract_answer(self, response: str) -> str | None:
        """The final answer a response commits to, or None when it commits to none."""

    def grade(self, response: str, problem: Problem) -> float:
        """Binary reward in {0.0, 1.0}: 1.0 when the response is right."""
