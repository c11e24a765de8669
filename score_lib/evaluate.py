"""Evaluation: roll out on held-out problems, grade, and summarise with score_lib.metrics."""
from __future__ import annotations

from .metrics import attempt_metrics, histogram
from .rollout import grade, rollout

JSON_KEYS = ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i", "fix_rate", "break_rate",
             "edit_ratio_zero_share", "answer_change_rate", "answer_change_if_right", "answer_change_if_wrong",
             "n_problems", "method")


def json_row(metrics: dict) -> dict:
    """The metrics `score train --json` / `score eval --json` write (and ablate aggregates)."""
    row = {k: metrics.get(k) for k in JSON_KEYS}
    if metrics.get("selected_step") is not None:  # select_by=train-reward: the step whose weights were scored
        row["selected_step"] = metrics["selected_step"]
    return row


def instructions_for(cfg, attempts: int) -> tuple[list[str], list[bool]]:
    """The user turns between attempts and which turns are graded answers.

    Self-Refine is prompting only: attempt, a critique turn (not graded), then the revision.
    """
    if cfg.method == "self-refine":
        return [cfg.critique_instruction, cfg.refine_instruction], [True, False, True]
    return [cfg.instruction] * (attempts - 1), [True] * attempts


def summarize(episodes, method: str) -> dict:
    """The paper's metrics over graded attempts (first two at the top level, every pair in "pairs")."""
    graded = [ep.graded for ep in episodes]
    k = len(graded[0])
    correct = [[g[j].correct for g in graded] for j in range(k)]
    texts = [[g[j].text for g in graded] for j in range(k)]
    answers = [[g[j].answer for g in graded] for j in range(k)]
    m = attempt_metrics(correct, texts, answers)
    m["edit_ratio_hist"] = histogram(m.pop("edit_ratios"), bins=10)
    for pair in m["pairs"]:
        pair.pop("edit_ratios", None)
    m["truncated_share"] = sum(a.truncated for ep in episodes for a in ep.attempts) / max(
        1, sum(len(ep.attempts) for ep in episodes))
    m["method"] = method
    return m


def evaluate(model, tokenizer, task, cfg, split: str = "test", limit: int | None = None,
             seed: int = 0, progress: bool = False) -> tuple[dict, list]:
    """(metrics, episodes) of the policy on `split`, with at least two attempts.

    Greedy by default (the paper's protocol); with cfg.eval_greedy False, cfg.eval_samples samples
    per problem at cfg.eval_temperature, metrics taken over all samples.
    """
    problems = task.problems(split, limit or cfg.eval_problems)
    instr, graded = instructions_for(cfg, max(2, cfg.attempts))
    n = 1 if cfg.eval_greedy else cfg.eval_samples

    def step(chunk, offset):
        return rollout(model, tokenizer, chunk, instr, n=n, greedy=cfg.eval_greedy,
                       temperature=cfg.eval_temperature, max_new_tokens=cfg.max_new_tokens,
                       seed=seed + offset, graded=graded)

    episodes = grade(task, in_chunks(problems, cfg.eval_batch, step, f"eval {split}", progress))
    return summarize(episodes, cfg.method), episodes


def in_chunks(items: list, size: int, step, desc: str, progress: bool = False) -> list:
    """step(chunk, offset) over chunks of `size` items, results joined: bounded batches keep memory flat
    on real models, and the bar (with `progress`) moves per chunk."""
    from tqdm import tqdm

    out = []
    with tqdm(total=len(items), desc=desc, unit="problem", dynamic_ncols=True, disable=not progress) as bar:
        for i in range(0, len(items), size):
            out += step(items[i:i + size], i)
            bar.update(len(items[i:i + size]))
    return out


def outcomes(episodes) -> list[dict]:
    """Per-problem outcomes for evals/<step>.json (enough to rebuild every metric)."""
    return [{"id": ep.problem.id, "sample": ep.sample,
             "correct": [a.correct for a in ep.graded], "answers": [a.answer for a in ep.graded]}
            for ep in episodes]
