"""The SFT baselines of the paper: STaR (and STaR+) and Pair-SFT (and Pair-SFT+).

Both fine-tune the second attempt on self-generated traces (attempt 1 is context):
- STaR: rounds of sampling two-attempt episodes from the current model and training on the
  successful revisions (incorrect -> correct); STaR+ also keeps correct -> correct episodes.
- Pair-SFT: one round. First attempts are sampled from the base model; an incorrect first attempt
  is paired with a correct attempt sampled for the same problem as its "revision"; Pair-SFT+ also
  pairs correct first attempts with a correct attempt.

Budgets match the RL methods: each round samples as many episodes as `steps / rounds` RL steps
would (batch_prompts x samples_per_prompt per step) and then takes `steps / rounds` optimiser steps.
"""
from __future__ import annotations

import random
import time

from . import shared_samples
from .config import as_dict
from .episodes import Attempt, Episode
from .losses import sft_loss
from .rollout import continue_episodes, grade, rollout
from .runs import read_model
from .trainer import step_seed


def star_dataset(episodes: list[Episode], plus: bool) -> list[Episode]:
    """Successful revisions (i->c), plus c->c when `plus`."""
    keep = []
    for ep in episodes:
        c1, c2 = ep.attempts[0].correct, ep.attempts[1].correct
        if c2 and (not c1 or plus):
            keep.append(ep)
    return keep


def pair_dataset(first_attempts: list[Episode], plus: bool, glue: list[int], seed: int) -> list[Episode]:
    """Pair-SFT episodes built from single-attempt samples grouped by problem."""
    rng = random.Random(seed)
    by_problem: dict[str, list[Episode]] = {}
    for ep in first_attempts:
        by_problem.setdefault(ep.problem.id, []).append(ep)
    pairs = []
    for eps in by_problem.values():
        right = [e.attempts[0] for e in eps if e.attempts[0].correct]
        if not right:
            continue
        for e in eps:
            y1 = e.attempts[0]
            if y1.correct and not plus:
                continue
            y2 = rng.choice(right)
            pairs.append(Episode(problem=e.problem, prompt_ids=e.prompt_ids, glue_ids=[[], glue],
                                 attempts=[y1, Attempt(ids=y2.ids, text=y2.text, answer=y2.answer,
                                                       reward=y2.reward)]))
    return pairs


def _collect(trainer, round_idx: int, steps: int, attempts: int, first_step: int = 0) -> list[Episode]:
    """Sample `steps` batches of episodes, as RL would in the same number of steps. A first round drawn from
    the starting model is read from, or written to, cfg.shared_samples when set (shared_samples.py)."""
    cfg = trainer.cfg
    key = None
    if cfg.shared_samples and round_idx == 0 and first_step == 0 and trainer.accelerator.num_processes == 1:
        key = shared_samples.collection_key(as_dict(cfg), read_model(trainer.run_dir), round_idx, steps, attempts)
        if (stored := shared_samples.load(cfg.shared_samples, key)) is not None:
            shared_samples.note(trainer.run_dir, cfg.shared_samples, key, drawn_here=False)
            return stored
    train = trainer.task.problems("train")
    out = []
    for s in range(steps):
        seed = step_seed(cfg, first_step + round_idx * steps + s)
        problems = random.Random(seed).sample(train, cfg.batch_prompts)
        out += rollout(trainer.model, trainer.tok, problems, [cfg.instruction] * (attempts - 1),
                       n=cfg.samples_per_prompt, temperature=cfg.temperature,
                       max_new_tokens=cfg.max_new_tokens, seed=seed)
    out = grade(trainer.task, out)
    if key is not None:
        shared_samples.save(cfg.shared_samples, key, out)
        shared_samples.note(trainer.run_dir, cfg.shared_samples, key, drawn_here=True)
    return out


def fixed_first_attempts(trainer, n: int = 128) -> list[Episode]:
    """First attempts of the model as it is now (the base model, before Pair-SFT trains) on test
    problems; kept fixed for the distribution-shift probe."""
    cfg = trainer.cfg
    eps = rollout(trainer.model, trainer.tok, trainer.task.problems("test", n), [], n=1,
                  temperature=cfg.eval_temperature, greedy=cfg.eval_greedy,
                  max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    return grade(trainer.task, eps)


def shift_probe(trainer, fixed: list[Episode]) -> dict:
    """The paper's Fig. 5: second-attempt accuracy after FIXED base-model first attempts vs after
    the model's OWN first attempts, on the same problems. A gap means the SFT model learned to
    correct the base model's mistakes but not its own (distribution shift)."""
    cfg = trainer.cfg
    kw = dict(temperature=cfg.eval_temperature, greedy=cfg.eval_greedy, max_new_tokens=cfg.max_new_tokens,
              seed=cfg.seed)
    on_fixed = grade(trainer.task, continue_episodes(trainer.model, trainer.tok, fixed, cfg.instruction, **kw))
    own = grade(trainer.task, rollout(trainer.model, trainer.tok, [e.problem for e in fixed],
                                      [cfg.instruction], **kw))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return {"shift_fixed_acc_t1": mean([e.attempts[0].correct for e in fixed]),
            "shift_fixed_acc_t2": mean([e.attempts[1].correct for e in on_fixed]),
            "shift_own_acc_t1": mean([e.attempts[0].correct for e in own]),
            "shift_own_acc_t2": mean([e.attempts[1].correct for e in own])}


def train_sft(trainer, method: str | None = None, first_step: int = 0) -> None:
    """Run an SFT baseline over steps [first_step, cfg.steps), one metrics line per optimiser step.

    `first_step` > 0 runs STaR as Stage II after an RL Stage I (the "STaR in Stage II" ablation).
    """
    from tqdm import tqdm

    from .episodes import collate, glue_ids

    cfg = trainer.cfg
    method = method or cfg.method
    pair = method.startswith("pair-sft")
    plus = method.endswith("plus")
    budget = cfg.steps - first_step
    rounds = 1 if pair else max(1, min(cfg.sft_iterations, budget))
    per_round = max(1, budget // rounds)
    glue = glue_ids(trainer.tok, cfg.instruction)
    step = max(trainer.start_step, first_step)
    fixed = fixed_first_attempts(trainer) if pair and cfg.eval_every else None
    bar = tqdm(total=cfg.steps, initial=step, desc=method, disable=not trainer.progress)
    for r in range((step - first_step) // per_round, rounds):
        if pair:
            data = pair_dataset(_collect(trainer, r, per_round, 1, first_step), plus, glue, cfg.seed)
        else:
            data = star_dataset(_collect(trainer, r, per_round, 2, first_step), plus)
        rng = random.Random(step_seed(cfg, r))
        for _ in range(per_round if r < rounds - 1 else cfg.steps - step):  # last round takes the rest
            if not data:
                trainer.writer.log_metrics({"step": step + 1, "stage": f"round{r + 1}", "sft_examples": 0,
                                            "time": round(time.time() - trainer.t0, 3)})
                step += 1
                bar.update(1)
                continue
            batch = collate(rng.sample(data, min(cfg.sft_batch, len(data))), trainer.tok.pad_token_id)
            batch = {k: v.to(trainer.accelerator.device) for k, v in batch.items()}
            trainer.model.train()
            logits = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = sft_loss(logits, batch, attempts=[1])  # train the revision; attempt 1 is context
            trainer.opt.zero_grad(set_to_none=True)
            trainer.accelerator.backward(loss)
            trainer.accelerator.clip_grad_norm_(trainer.model.parameters(), cfg.max_grad_norm)
            trainer.opt.step()
            step += 1
            record = {"step": step, "stage": f"round{r + 1}", "loss": loss.item(), "sft_examples": len(data),
                      "time": round(time.time() - trainer.t0, 3)}
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
                record.update(trainer.eval_and_log(step))
            if pair and cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps):
                record.update(shift_probe(trainer, fixed))
            trainer.writer.log_metrics(record)
            trainer.writer.set_status("running", step=step)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", examples=len(data))
        if cfg.checkpoint_every and step < cfg.steps:
            trainer.save_checkpoint(step)
    bar.close()
