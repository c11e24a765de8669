"""Tasks: problems plus an oracle. `make_task` picks one from a config."""
from __future__ import annotations

from .base import Problem, Task
from .toy import ToyTask, ToyWorld

TASKS = ("toy",)


def make_task(cfg) -> Task:
    """The task named by cfg.task, sized by the config's knobs."""
    if cfg.task == "toy":
        world = ToyWorld(digits=cfg.toy_digits, n_ops=cfg.toy_n_ops, ops=cfg.toy_ops)
        # one fixed problem set for every run seed, so runs are compared on the same test problems
        return ToyTask(world, seed=0, n_test=max(cfg.eval_problems, 256))
    raise ValueError(f"setting 'task': unknown task {cfg.task!r} (one of {', '.join(TASKS)})")


__all__ = ["Problem", "Task", "ToyTask", "ToyWorld", "make_task", "TASKS"]
