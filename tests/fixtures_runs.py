"""Synthetic run directories for the app's tests, screenshots and benchmark.

Everything is written through score_lib.runs.RunWriter, and the per-step numbers, eval files and
shaped rewards / advantages come from score_lib.metrics and score_lib.objectives, so the fixture has
exactly the shape a real `score train` run has (only the values are made up). Toy-world texts
(``7+5=12;12-3=9;9+8=17#17``) keep the trace inspector's diffs realistic.

    python tests/fixtures_runs.py DIR     # writes the fixture set into DIR
"""
from __future__ import annotations

import json
import math
import random
import sys
import time
from pathlib import Path

import torch

from score_lib import objectives
from score_lib.config import as_dict, build_config
from score_lib.metrics import attempt_metrics, histogram, pair_metrics
from score_lib.runs import RunWriter
from score_lib.trainer import TRAIN_PAIR_KEYS

FINISHED, RUNNING, FAILED, CORRUPT, EMPTY = "score-finished", "score-running", "score-failed", "corrupt", "empty"
MTRL = "mt-rl-finished"


# ---------------------------------------------------------------- toy-world texts


def _problem(rng: random.Random):
    start, steps = rng.randint(1, 9), []
    value = start
    for _ in range(3):
        op, b = rng.choice("+-"), rng.randint(1, 9)
        if op == "-" and b > value:
            op = "+"
        steps.append((op, b))
        value = value + b if op == "+" else value - b
    prompt = str(start) + "".join(f"{op}{b}" for op, b in steps)
    return prompt, start, steps, value


def _solve(start, steps, rng: random.Random, slip: bool) -> str:
    """A toy solution; with ``slip`` one step's result is off by a small amount (and carried on)."""
    value, parts, bad = start, [], rng.randrange(len(steps)) if slip else -1
    for i, (op, b) in enumerate(steps):
        new = value + b if op == "+" else value - b
        if i == bad:
            new += rng.choice([-2, -1, 1, 2])
        parts.append(f"{value}{op}{b}={new}")
        value = new
    return ";".join(parts) + f"#{value}"


def _attempt(text: str, gold: int, rng: random.Random, tokens: bool) -> dict:
    answer = text.rsplit("#", 1)[1]
    ok = answer == str(gold)
    rec = {"text": text, "answer": answer, "reward": float(ok), "correct": ok, "graded": True,
           "truncated": False}
    if tokens:  # one token per character, like the toy tokenizer; confident on digits it got right
        rec["tokens"] = list(text)
        rec["logprobs"] = [round(-abs(rng.gauss(0.15 if ok else 0.9, 0.5)), 4) for _ in text]
    return rec


def _episode(rng, p1: float, p_fix: float, p_break: float, p_copy: float, tokens: bool, problem=None):
    """One two-attempt episode whose transition follows the given rates."""
    prompt, start, steps, gold = problem or _problem(rng)
    y1 = _solve(start, steps, rng, slip=rng.random() > p1)
    c1 = y1.endswith(f"#{gold}")
    if rng.random() < p_copy:
        y2 = y1
    elif c1:
        y2 = _solve(start, steps, rng, slip=rng.random() < p_break)
    else:
        y2 = _solve(start, steps, rng, slip=rng.random() > p_fix)
    return prompt, gold, [_attempt(y1, gold, rng, tokens), _attempt(y2, gold, rng, tokens)]


# ---------------------------------------------------------------- one run


def _curve(step: int, steps: int, a: float, b: float) -> float:
    return a + (b - a) * (1 - math.exp(-3 * step / max(steps, 1)))


def _rates(step: int, steps: int, stage: str, alpha: float):
    """(p1, p_fix, p_break, p_copy): the base model's habits fading, faster in Stage II with shaping."""
    p1 = _curve(step, steps, 0.45, 0.62)
    if stage in ("stage2", "score") and alpha > 0:
        return p1, _curve(step, steps, 0.2, 0.55), _curve(step, steps, 0.35, 0.05), _curve(step, steps, 0.45, 0.3)
    # without shaping (mt-rl): the second attempt learns to copy the first: behaviour collapse
    return p1, 0.2, _curve(step, steps, 0.35, 0.1), _curve(step, steps, 0.45, 0.95)


def _eval(step, steps, stage, alpha, rng, n=64):
    eps = [_episode(rng, *_rates(step, steps, stage, alpha), tokens=False) for _ in range(n)]
    correct = [[e[2][j]["correct"] for e in eps] for j in range(2)]
    texts = [[e[2][j]["text"] for e in eps] for j in range(2)]
    answers = [[e[2][j]["answer"] for e in eps] for j in range(2)]
    m = attempt_metrics(correct, texts, answers)  # the same summary evaluate.summarize writes
    m["edit_ratio_hist"] = histogram(m.pop("edit_ratios"), bins=10)
    for pair in m["pairs"]:
        pair.pop("edit_ratios", None)
    m["truncated_share"] = 0.0
    return m, eps


def make_run(run_dir: Path, preset: str = "toy-score", steps: int = 60, stage1_steps: int = 24,
             alpha: float = 10.0, seed: int = 0, upto: int | None = None, state: str = "finished",
             error: str | None = None, trace_every: int = 3, traces_per_step: int = 8,
             eval_every: int = 20, tokens: bool = True) -> Path:
    """Write one synthetic run; ``upto`` stops after that many steps (a running or failed run)."""
    run_dir = Path(run_dir)
    cfg = build_config(preset, {"steps": steps, "stage1_steps": min(stage1_steps, steps), "alpha": alpha,
                                "seed": seed, "eval_every": eval_every, "trace_every": trace_every,
                                "traces_per_step": traces_per_step})
    writer = RunWriter(run_dir, {**as_dict(cfg), "versions": {"torch": torch.__version__}})
    writer.set_status("running", step=0)
    rng, last = random.Random(seed), steps if upto is None else upto
    for step in range(1, last + 1):  # the trainer's order: step, its traces, an eval, then the line
        record = metrics_record(cfg, step, rng)
        if trace_every and (step - 1) % trace_every == 0:
            writer.log_traces(train_traces(cfg, step, rng, traces_per_step, tokens))
        if eval_every and step % eval_every == 0 and step < steps:
            record.update(_write_eval(writer, cfg, step, rng))
        writer.log_metrics(record)
    if upto is None:
        final = _write_eval(writer, cfg, steps, rng, final=True)
        writer.set_status("finished", step=steps, final={k: final[f"eval_{k}"] for k in ("acc_t1", "acc_t2", "delta")})
    elif state == "failed":
        writer.set_status("failed", step=last, error=error or "RuntimeError: loss is nan",
                          traceback=f"Traceback (most recent call last):\n  ...\n{error or 'RuntimeError: loss is nan'}")
    else:
        writer.set_status(state, step=last)
    return run_dir


def stage_of(cfg, step: int) -> str:
    if cfg.method == "score":
        return "stage1" if step <= cfg.stage1_steps else "stage2"
    return cfg.method


def metrics_record(cfg, step: int, rng: random.Random, n: int = 64) -> dict:
    """One metrics.jsonl line with the trainer's keys; train_* come from pair_metrics on a batch."""
    stage = stage_of(cfg, step)
    eps = [_episode(rng, *_rates(step, cfg.steps, stage, cfg.alpha), tokens=False) for _ in range(n)]
    c1 = [e[2][0]["correct"] for e in eps]
    c2 = [e[2][1]["correct"] for e in eps]
    pm = pair_metrics(c1, c2, a1=[e[2][0]["answer"] for e in eps], a2=[e[2][1]["answer"] for e in eps])
    rewards = torch.tensor([[float(a), float(b)] for a, b in zip(c1, c2)])
    shaped = objectives.shaped_rewards(stage if stage != "score" else "stage2", rewards, cfg.alpha)
    frac = step / cfg.steps
    rec = {"step": step, "stage": stage, "time": round(2.5 * step, 3), "loss": round(rng.gauss(0.5 - 0.3 * frac, 0.05), 4),
           "pg_loss": round(rng.gauss(0.3 - 0.2 * frac, 0.05), 4),
           "kl_t1": abs(rng.gauss(0.02 if stage == "stage1" else 0.05 + 0.2 * frac, 0.01)),
           "kl_t2": abs(rng.gauss(0.1 + 0.4 * frac, 0.03)),
           "entropy_t1": 0.9 - 0.4 * frac + rng.gauss(0, 0.02), "entropy_t2": 1.0 - 0.5 * frac + rng.gauss(0, 0.02),
           "len_t1": 22 + rng.gauss(0, 0.5), "len_t2": 22 - 3 * frac + rng.gauss(0, 0.5),
           "grad_norm": abs(rng.gauss(0.8, 0.2)), "t_generate": 1.2, "t_score": 0.01, "t_update": 0.6,
           "truncated_share": 0.0}
    for j in range(2):
        rec[f"reward_t{j + 1}"] = float(rewards[:, j].mean())
        rec[f"shaped_t{j + 1}"] = float(shaped[:, j].mean())
    rec.update({f"train_{k}": pm[k] for k in TRAIN_PAIR_KEYS})  # the keys the trainer writes
    return rec


def train_traces(cfg, step: int, rng: random.Random, count: int = 8, tokens: bool = True) -> list[dict]:
    """``count`` training episodes (groups of 4 samples per problem) with shaped rewards and advantages."""
    stage, per = stage_of(cfg, step), 4
    out = []
    for g in range(math.ceil(count / per)):
        problem = _problem(rng)  # the samples of one group share their problem (leave-one-out baseline)
        prompt, gold = problem[0], problem[3]
        group = [_episode(rng, *_rates(step, cfg.steps, stage, cfg.alpha), tokens=tokens, problem=problem)[2]
                 for _ in range(min(per, count - g * per))]
        pid = prompt
        rewards = torch.tensor([[a[0]["reward"], a[1]["reward"]] for a in group])
        gid = torch.zeros(len(group), dtype=torch.long)
        shaped = objectives.shaped_rewards(stage, rewards, cfg.alpha)
        adv = objectives.advantages(stage, rewards, gid, cfg.alpha)
        for s, atts in enumerate(group):
            for j, a in enumerate(atts):
                a["shaped_reward"], a["advantage"] = float(shaped[s, j]), float(adv[s, j])
            out.append({"step": step, "split": "train", "stage": stage, "problem_id": pid, "prompt": prompt,
                        "gold": str(gold), "sample": s, "attempts": atts})
    return out


def _write_eval(writer: RunWriter, cfg, step: int, rng: random.Random, final: bool = False) -> dict:
    m, eps = _eval(step, cfg.steps, stage_of(cfg, step), cfg.alpha, rng)
    outcomes = [{"id": e[0], "sample": 0, "correct": [a["correct"] for a in e[2]],
                 "answers": [a["answer"] for a in e[2]]} for e in eps]
    writer.write_eval(step, {**m, "method": cfg.method, "step": step, "outcomes": outcomes})
    writer.log_traces([{"step": step, "split": "test", "stage": "eval", "problem_id": e[0], "prompt": e[0],
                        "gold": str(e[1]), "sample": 0, "attempts": e[2]} for e in eps[:16]])
    flat = {f"eval_{k}": v for k, v in m.items() if isinstance(v, (int, float)) and v is not None}
    if final:  # the trainer's closing line; mid-run eval keys are merged into that step's line instead
        writer.log_metrics({"step": step, "stage": "final", "time": round(2.5 * step, 3), **flat})
    return flat


def append_steps(run_dir: Path, first: int, count: int) -> int:
    """Append ``count`` steps to a running fixture run (as the trainer would); returns the last step."""
    from score_lib.config import build_config as _bc
    from score_lib.runs import read_config

    cfg = _bc(None, {k: v for k, v in read_config(run_dir).items() if k != "versions"})
    writer = RunWriter(run_dir, resume=True)
    rng = random.Random(first)
    for step in range(first, first + count):
        writer.log_metrics(metrics_record(cfg, step, rng))
        writer.log_traces(train_traces(cfg, step, rng, 4, tokens=True))
    writer.set_status("running", step=first + count - 1)
    return first + count - 1


# ---------------------------------------------------------------- an ablation folder

ABLATION = "ablate-toy"  # a `score ablate` folder inside the store (not a run: the Ablation page reads it)
# method -> (stage, alpha, step) whose _rates its synthetic evaluation follows; base and Pair-SFT+ stay at step 0
ABLATION_METHODS = {"base": ("score", 10.0, 0), "pair-sft-plus": ("stage1", 0.0, 20), "st-rl": ("stage1", 0.0, 40),
                    "mt-rl": ("stage2", 0.0, 60), "score": ("stage2", 10.0, 60)}


def make_ablation(folder: Path, seeds: int = 2) -> Path:
    """Final reports (`<method>-s<seed>.json`) of a small ablation, its plan, and seed 0's evaluation files
    (where the page finds each method's edit-ratio histogram)."""
    from score_lib.ablate import PLAN_FILE
    from score_lib.evaluate import json_row

    folder.mkdir(parents=True, exist_ok=True)
    (folder / PLAN_FILE).write_text(json.dumps({"world": "toy", "seeds": seeds, "methods": list(ABLATION_METHODS)}))
    for n, (method, (stage, alpha, step)) in enumerate(ABLATION_METHODS.items()):
        for seed in range(seeds):
            m, _ = _eval(step, 60, stage, alpha, random.Random(100 * n + seed), n=256)
            (folder / f"{method}-s{seed}.json").write_text(json.dumps(json_row({**m, "method": method})))
            if seed == 0:
                (folder / f"{method}-s0" / "evals").mkdir(parents=True, exist_ok=True)
                (folder / f"{method}-s0" / "evals" / "00000060.json").write_text(json.dumps(m))
    return folder


# ---------------------------------------------------------------- the fixture set


def make_fixture(root: Path | str) -> dict[str, Path]:
    """The run directories the app tests use (keys: the module-level names' values)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = {
        MTRL: make_run(root / MTRL, preset="toy-mt-rl", steps=30, alpha=0.0, seed=2, trace_every=3),
        FINISHED: make_run(root / FINISHED, seed=1),
        FAILED: make_run(root / FAILED, upto=7, state="failed", seed=3,
                         error="RuntimeError: CUDA out of memory while sampling attempt 2"),
    }
    time.sleep(0.01)  # newest first in list_runs: the running run sorts on top
    paths[RUNNING] = make_run(root / RUNNING, steps=200, stage1_steps=80, upto=12, state="running", seed=4)
    (root / CORRUPT).mkdir(exist_ok=True)
    (root / CORRUPT / "config.json").write_text("{not json")
    (root / EMPTY).mkdir(exist_ok=True)
    paths[CORRUPT], paths[EMPTY] = root / CORRUPT, root / EMPTY
    paths[ABLATION] = make_ablation(root / ABLATION)
    return paths


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs-fixture")
    for name, path in make_fixture(out).items():
        print(f"{name:16s} {path}")
