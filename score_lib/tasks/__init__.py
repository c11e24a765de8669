"""Tasks: problems plus an oracle. `make_task` picks one from a config."""
from __future__ import annotations

from .base import Problem, Task
from .toy import ToyTask, ToyWorld

TASKS = ("toy", "gsm8k", "math", "math500", "humaneval", "mbpp", "mbpp-sanitized")
CODE_TASKS = ("humaneval", "mbpp", "mbpp-sanitized")  # graded by running programs in the sandbox


def make_task(cfg) -> Task:
    """The task named by cfg.task, sized by the config's knobs."""
    data_dir = getattr(cfg, "data_dir", "") or None
    if cfg.task == "toy":
        world = ToyWorld(digits=cfg.toy_digits, n_ops=cfg.toy_n_ops, ops=cfg.toy_ops, kind=cfg.toy_kind,
                         n_numbers=cfg.toy_numbers)
        # one fixed problem set for every run seed, so runs are compared on the same test problems
        return ToyTask(world, seed=0, n_test=max(cfg.eval_problems, 2000))
    if cfg.task in ("gsm8k", "math", "math500"):
        from .math import GSM8KTask, MATH500Task, MATHTask

        return {"gsm8k": GSM8KTask, "math": MATHTask, "math500": MATH500Task}[cfg.task](data_dir=data_dir)
    if cfg.task == "humaneval":
        from .code import HumanEvalTask

        return HumanEvalTask(data_dir=data_dir)
    if cfg.task in ("mbpp", "mbpp-sanitized"):
        from .code import MBPPTask

        return MBPPTask(data_dir=data_dir, variant="sanitized" if cfg.task.endswith("sanitized") else "full")
    raise ValueError(f"setting 'task': unknown task {cfg.task!r} (one of {', '.join(TASKS)})")


def make_eval_task(cfg, task: Task | None = None) -> Task:
    """The task a run is evaluated on: cfg.eval_task if set, else its training task (`task` when the
    caller already made it)."""
    if cfg.eval_task:
        import dataclasses

        return make_task(dataclasses.replace(cfg, task=cfg.eval_task))
    return task or make_task(cfg)


__all__ = ["Problem", "Task", "ToyTask", "ToyWorld", "make_task", "make_eval_task", "TASKS", "CODE_TASKS"]
