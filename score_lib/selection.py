"""Which weights a run's final evaluation scores (`select_by`).

`last`: the weights after the last step. `train-reward`: the paper's Section 5.3 picks the checkpoint with
the highest training reward. A step's training reward here is the unshaped reward its objective trains on
(Eq. 2 and 4 before the bonus: every attempt's reward summed; Eq. 3, Stage I: attempt 2's alone), averaged
over `select_window` consecutive steps, because one step's batch is a few dozen samples and its mean is
noisy. A window's candidate is the weights at its end. Windows lie inside the run's last stage: for SCoRe,
Stage II, whose checkpoints the paper's selection compares (Stage I maximises another reward).

Pure bookkeeping on metrics records; the trainer saves and loads the weights (run_dir/best).
"""
from __future__ import annotations

import json
import shutil
from collections import deque
from pathlib import Path
from typing import Callable

from .objectives import reward_mask
from .runs import mark_checkpoint_complete

BEST_DIR = "best"  # in a run's folder: model/ (save_pretrained), state.json, COMPLETE


def step_reward(record: dict, attempts: int) -> float:
    """The training reward of one metrics.jsonl record: its stage's rewarded attempts, unshaped, summed."""
    mask = reward_mask(record["stage"], attempts)
    return sum(float(record[f"reward_t{j + 1}"]) for j in range(attempts) if mask[j])


def first_candidate(method: str, stage1_steps: int, window: int) -> int:
    """The first step count whose window of `window` steps lies inside the run's last stage."""
    return (stage1_steps if method == "score" else 0) + window


class BestWindow:
    """The running best window of training rewards and the step count at its end.

    `history`: metrics records already written (a resumed run's), which refill the window; `best`: the state
    saved with the best weights ({"step", "train_reward"}), so a resumed run keeps what it selected."""

    def __init__(self, method: str, stage1_steps: int, attempts: int, window: int,
                 history: list[dict] = (), best: dict | None = None):
        self.attempts, self.window = attempts, window
        self.first = first_candidate(method, stage1_steps, window)
        self.recent: deque = deque(maxlen=window)  # (step, reward) of the latest steps
        self.best = best
        for record in history:
            self._push(record)

    def _push(self, record: dict) -> float | None:
        """Add a step; its window's mean reward when the window is full and inside the last stage."""
        self.recent.append((record["step"], step_reward(record, self.attempts)))
        steps = [s for s, _ in self.recent]
        if record["step"] < self.first or len(steps) < self.window or steps != list(range(steps[0], steps[-1] + 1)):
            return None
        return sum(r for _, r in self.recent) / self.window

    def update(self, record: dict) -> bool:
        """Add a finished step's record; True when the weights after it are the new best (save them)."""
        score = self._push(record)
        if score is None or (self.best is not None and score <= self.best["train_reward"]):
            return False
        self.best = {"step": record["step"], "train_reward": score, "window": self.window}
        return True


def _candidates(run_dir: Path) -> list[Path]:
    """best/, and the two names write_best passes it through (a crash can leave either)."""
    return [run_dir / name for name in (BEST_DIR, BEST_DIR + ".tmp", BEST_DIR + ".old")]


def read_best(run_dir) -> tuple[Path | None, dict | None]:
    """(folder, state) of the best weights a run saved, or (None, None). Of the complete copies a crash in
    write_best can leave, the one with the highest training reward (the newest best)."""
    found = [(json.loads((p / "state.json").read_text()), p) for p in _candidates(Path(run_dir))
             if (p / "COMPLETE").exists()]
    if not found:
        return None, None
    state, path = max(found, key=lambda f: f[0]["train_reward"])
    return path, state


def write_best(run_dir, best: dict, write_model: Callable[[Path], None]) -> Path:
    """Write a new best into run_dir/best: first whole into best.tmp (write_model(folder), state.json,
    COMPLETE), then swapped in, so a crash at any point leaves a complete best (read_best)."""
    final, tmp, old = _candidates(Path(run_dir))
    shutil.rmtree(tmp, ignore_errors=True)
    write_model(tmp)
    (tmp / "state.json").write_text(json.dumps(best))
    mark_checkpoint_complete(tmp)
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final
