"""One training loop for every method, writing the run store as it goes.

RL step, read top to bottom: sample problems -> roll out k attempts (n per problem) -> oracle
rewards -> objective (shaped rewards, leave-one-out advantages, KL coefficients) -> REINFORCE + KL
loss on the attempt tokens -> Adam step -> metrics, traces, evals, checkpoints.

Every step's randomness (which problems, which samples) is derived from (seed, step), so a run
resumed from a checkpoint replays exactly the steps an uninterrupted run would have taken (no RNG state
is saved: there is none to save).

Under `accelerate launch` with N processes each process rolls out its shard of the step's problems
(score_lib.distributed), the gradients are averaged by DDP, metrics are combined over the whole batch,
and only the main process writes the run store.
"""
from __future__ import annotations

import functools
import json
import random
import time
import traceback
from pathlib import Path

import torch

from . import objectives
from .checkpoints import Checkpoints
from .config import EVAL_ONLY, SFT_FAMILY, ConfigError, TrainConfig, as_dict
from .distributed import (MainWriter, broadcast, check_world, full_weights, gather_list, reduce_means,
                          shard_bounds, shard_seed, sharded_weights)
from .episodes import collate
from .evaluate import evaluate, instructions_for, json_row, outcomes
from .losses import attempt_tail, reinforce_kl_loss
from .metrics import pair_metrics
from .policy import Reference, add_lora, compute_dtype, load_policy
from .rollout import continue_episodes, grade, rollout
from .runs import MODEL_FILE, RunStoreError, model_key, read_metrics, read_model, weights_digest
from .selection import BestWindow, read_best
from .tasks import make_eval_task, make_task


# the pair_metrics of each training batch that metrics.jsonl keeps, as train_<key> (the app plots them)
TRAIN_PAIR_KEYS = ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i", "answer_change_rate",
                   "answer_change_if_right", "answer_change_if_wrong")


def stage_of(cfg: TrainConfig, step: int) -> str:
    """The objective in force at `step` (score switches from Stage I to Stage II)."""
    if cfg.method == "score":
        return "stage1" if step < cfg.stage1_steps else "stage2"
    return cfg.method


def step_seed(cfg: TrainConfig, step: int) -> int:
    return cfg.seed * 1_000_003 + step


def episode_record(ep, step: int, split: str, stage: str, tokenizer=None, adv=None, shaped=None) -> dict:
    """One traces.jsonl line: the problem, each attempt's text, answer, reward (and shaping)."""
    atts = []
    for j, a in enumerate(ep.attempts):
        rec = {"text": a.text, "answer": a.answer, "reward": a.reward, "correct": a.correct,
               "graded": a.graded, "truncated": a.truncated}
        if shaped is not None and j < len(shaped):
            rec["shaped_reward"], rec["advantage"] = float(shaped[j]), float(adv[j])
        if tokenizer is not None:
            rec["tokens"] = tokenizer.convert_ids_to_tokens(a.ids)
            rec["logprobs"] = [round(x, 4) for x in a.logprobs]
        atts.append(rec)
    return {"step": step, "split": split, "stage": stage, "problem_id": ep.problem.id,
            "prompt": ep.problem.prompt, "gold": ep.problem.answer, "sample": ep.sample, "attempts": atts}


class Trainer(Checkpoints):
    """Owns the policy, reference, optimiser and run writer of one run."""

    def __init__(self, cfg: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True):
        from accelerate import Accelerator

        self.accelerator = Accelerator(cpu=not torch.cuda.is_available())
        check_world(cfg, self.accelerator.num_processes)  # before the run directory exists
        self.cfg, self.progress = cfg, progress and self.accelerator.is_main_process
        self.writer = MainWriter(self.accelerator, run_dir, {**as_dict(cfg), "versions": _versions()}, resume)
        self.run_dir = Path(run_dir)
        try:
            self._setup(cfg, resume)
        except BaseException as e:  # a run that cannot start says why in its status, like one that fails later
            self.writer.set_status("failed", error=f"{type(e).__name__}: {e}")
            raise

    def _setup(self, cfg: TrainConfig, resume: bool):
        self.task = make_task(cfg)
        self.eval_task = make_eval_task(cfg, self.task)
        torch.manual_seed(cfg.seed)
        with self.accelerator.local_main_process_first():  # one process per machine builds or fetches the model
            self.model_path = start_model(cfg, self.run_dir if resume else None)
            model, self.tok = load_policy(self.model_path, dtype=compute_dtype(cfg))
        self.writer.write_model(model_record(cfg.model, self.model_path))
        if cfg.lora:
            model = add_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_targets)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        self.reference = Reference(model, lora=cfg.lora, device=self.accelerator.device)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.lr if cfg.method not in SFT_FAMILY else cfg.sft_lr)
        ds = getattr(self.accelerator.state, "deepspeed_plugin", None)
        if ds is not None and ds.is_auto("train_micro_batch_size_per_gpu"):
            ds.deepspeed_config["train_micro_batch_size_per_gpu"] = 1  # DeepSpeed insists; a step is one batch
        self.model, self.opt = self.accelerator.prepare(model, opt)
        # Sampling goes through the unwrapped module: each process decodes a different number of tokens, and
        # a DDP-wrapped forward may synchronise (buffers) with processes that are not there. Same object
        # as self.model in one process.
        self.policy = self.accelerator.unwrap_model(self.model)
        self.start_step, self.t0 = 0, time.time()
        if resume:
            self._load_checkpoint()
        elif cfg.stage1_from:
            self._take_stage1(Path(cfg.stage1_from))
        self.selector = None
        if cfg.select_by == "train-reward":  # a resumed run refills its window and keeps its best (selection.py)
            if sharded_weights(self.accelerator):  # refused now rather than when the run's end loads them
                raise ConfigError("setting 'select_by': train-reward loads the selected whole weights back into "
                                  "the policy, which FSDP / DeepSpeed shard; use DDP, or select_by=last")
            history = [r for r in read_metrics(self.run_dir) if "reward_t1" in r] if self.start_step else []
            self.selector = BestWindow(cfg.method, cfg.stage1_steps, cfg.attempts, cfg.select_window, history,
                                       read_best(self.run_dir)[1])
        self.vllm = None
        if cfg.rollout_backend == "vllm":  # started after a resume's load, then handed the weights in force
            from .models import resolve
            from .rollout_vllm import VLLMRollout

            self.vllm = VLLMRollout(resolve(self.model_path), self.tok, model, compute_dtype(cfg), cfg.seed,
                                    cfg.vllm_gpu_memory)
            if self.start_step:
                self.vllm.sync_weights(self.policy)

    # ---- the run -------------------------------------------------------------------------
    def run(self) -> dict:
        """Train (or only evaluate, for self-refine), then evaluate; returns the final eval metrics."""
        cfg = self.cfg
        self.writer.set_status("running", step=self.start_step)
        try:
            from .sft import train_sft

            if cfg.method in SFT_FAMILY:
                train_sft(self)
            elif cfg.method == "score" and cfg.stage2 == "star":
                self._train_rl(until=cfg.stage1_steps)  # Stage I as usual, then STaR instead of Eq. 4
                for group in self.opt.param_groups:
                    group["lr"] = cfg.sft_lr
                train_sft(self, "star", first_step=cfg.stage1_steps)
            elif cfg.method not in EVAL_ONLY:
                self._train_rl()
            if self.selector:  # the last weights stay the resumable checkpoint; the best ones are evaluated
                self.save_checkpoint(cfg.steps, final=True)
                path, best = read_best(self.run_dir)
                self._load_weights(path)
                final = self.eval_and_log(cfg.steps, final=True, extra={"selected_step": best["step"],
                                                                         "selected_train_reward": best["train_reward"]})
            else:
                final = self.eval_and_log(cfg.steps, final=True)
                if cfg.steps > 0 and cfg.method not in EVAL_ONLY:
                    self.save_checkpoint(cfg.steps, final=True)
            self.writer.set_status("finished", step=cfg.steps, final=json_row(final))
            return final
        except KeyboardInterrupt:
            self.writer.set_status("stopped", error="interrupted")
            raise
        except BaseException as e:
            self.writer.set_status("failed", error=f"{type(e).__name__}: {e}",
                                   traceback=traceback.format_exc()[-4000:])
            raise

    def _train_rl(self, until: int | None = None):
        from tqdm import tqdm

        cfg = self.cfg
        until = cfg.steps if until is None else until
        train = self.task.problems("train")
        bar = tqdm(range(self.start_step, until), desc=f"{cfg.method}", initial=self.start_step,
                   total=until, disable=not self.progress)
        for step in bar:
            record = self.rl_step(step, train)
            if self.selector and self.selector.update(record):  # saved before the step's metrics line: a
                self.save_best(self.selector.best)               # resumed run never lacks a best it logged
            if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
                record.update(self.eval_and_log(step + 1))
            self.writer.log_metrics(record)
            self.writer.set_status("running", step=step + 1)
            if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps \
                    or cfg.keep_stage1 and step + 1 == cfg.stage1_steps:  # the one stage1_from starts from
                self.save_checkpoint(step + 1)
            bar.set_postfix(r1=f"{record['reward_t1']:.2f}", r2=f"{record.get('reward_t2', 0):.2f}",
                            delta=f"{record.get('train_delta', 0):+.2f}",
                            eval_delta=f"{self.last_eval.get('delta', 0):+.3f}" if hasattr(self, "last_eval") else "-")

    def rl_step(self, step: int, train) -> dict:
        """One on-policy REINFORCE step; returns its metrics record."""
        cfg, stage, acc = self.cfg, stage_of(self.cfg, step), self.accelerator
        t0 = time.time()
        problems = random.Random(step_seed(cfg, step)).sample(train, cfg.batch_prompts)
        instr, _ = instructions_for(cfg, cfg.attempts)
        # Section 5.3: a share of the problems gets its first attempt from the base model (offline states)
        n_off_all = min(len(problems), round(cfg.offline_first_attempts * len(problems))) \
            if stage in ("stage2", "mt-rl") else 0
        # This process's shard (the whole list in one process); the offline problems lead the full list,
        # so a shard takes those of them that fall in its slice.
        lo, hi = shard_bounds(len(problems), acc.process_index, acc.num_processes)
        problems = problems[lo:hi]
        n_off = min(max(n_off_all - lo, 0), len(problems))
        seed = shard_seed(step_seed(cfg, step), acc.process_index)
        episodes = []
        with full_weights(acc, self.model):
            if n_off:
                # Attempt 1 is the reference's sample here: a state for the later attempts, which are the
                # policy's. It gets no REINFORCE term (below): the on-policy estimator does not apply to it.
                with self.reference._active() as ref:
                    episodes = rollout(ref, self.tok, problems[:n_off], [], n=cfg.samples_per_prompt,
                                       temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, seed=seed)
                for j, text in enumerate(instr):
                    episodes = continue_episodes(self.policy, self.tok, episodes, text, temperature=cfg.temperature,
                                                 max_new_tokens=cfg.max_new_tokens, seed=seed + 1 + j)
            if n_off < len(problems):  # on-policy episodes; each problem's samples stay adjacent (one LOO group)
                sample = self.vllm.rollout if self.vllm else functools.partial(rollout, self.policy, self.tok)
                episodes += sample(problems[n_off:], instr, n=cfg.samples_per_prompt, temperature=cfg.temperature,
                                   max_new_tokens=cfg.max_new_tokens, seed=seed)
        t1 = time.time()
        grade(self.task, episodes)
        # the whole batch's per-episode outcomes, in single-process order: the baselines (loo-state-pooled looks
        # across problems) and the metrics below are those of the full batch in every process
        rows = gather_list(acc, [([a.reward for a in ep.attempts], [a.answer for a in ep.attempts],
                                  sum(a.truncated for a in ep.attempts)) for ep in episodes])
        all_rewards = torch.tensor([r[0] for r in rows])
        first = lo * cfg.samples_per_prompt  # this shard's first episode in the whole batch
        t2 = time.time()
        # objective (Eq. 2-4): per-attempt shaped rewards and advantages (cfg.baseline, over the whole batch;
        # the base model's first attempts of Section 5.3 train nothing), KL coefficients
        shaped, adv = objectives.step_advantages(stage, all_rewards, cfg.samples_per_prompt, cfg.alpha, cfg.baseline,
                                                 n_off_all, slice(first, first + len(episodes)))
        kl_coef = objectives.kl_coefficients(stage, cfg.attempts, cfg.beta1, cfg.beta2)
        batch = collate(episodes, self.tok.pad_token_id)
        device = self.accelerator.device
        batch = {k: v.to(device) for k, v in batch.items()}
        keep, tail = attempt_tail(batch)  # logits only where they predict attempt tokens
        fwd = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "logits_to_keep": keep}
        self.model.train()
        # The reference before the policy: under FSDP with LoRA it is the policy's own base weights, gathered,
        # which FSDP allows only outside a forward-backward pass.
        with full_weights(acc, self.model, when=cfg.lora):
            ref_logits = self.reference.logits(**fwd)
        logits = self.model(**fwd).logits
        # The loss is a mean over this process's episodes and DDP averages the processes' gradients. Every
        # shard holds n/N of the n episodes (check_world), so the average is (1/N) sum_r (N/n) sum_{i in r}
        # grad l_i = (1/n) sum_i grad l_i: the single-process full-batch gradient, with no rescaling.
        loss, stats = reinforce_kl_loss(logits, ref_logits, tail, adv.to(device), kl_coef.to(device),
                                        cfg.kl_estimator)
        self.opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        grad_norm = acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)  # of the averaged gradient
        self.opt.step()
        if self.vllm:  # the next rollout must sample from the updated policy
            self.vllm.sync_weights(self.policy)
        t3 = time.time()
        stats = reduce_means(acc, stats, len(episodes))
        record = {"step": step + 1, "stage": stage, "time": round(time.time() - self.t0, 3), **stats,
                  "grad_norm": float(grad_norm) if grad_norm is not None else None,
                  "t_generate": t1 - t0, "t_score": t2 - t1, "t_update": t3 - t2,
                  "offline_share": n_off_all / cfg.batch_prompts,
                  "truncated_share": sum(r[2] for r in rows) / all_rewards.numel()}
        all_shaped = objectives.shaped_rewards(stage, all_rewards, cfg.alpha)
        for j in range(cfg.attempts):
            record[f"reward_t{j + 1}"] = float(all_rewards[:, j].mean())
            record[f"shaped_t{j + 1}"] = float(all_shaped[:, j].mean())
        if cfg.attempts >= 2:
            pm = pair_metrics(all_rewards[:, 0].bool().tolist(), all_rewards[:, 1].bool().tolist(),
                              a1=[r[1][0] for r in rows], a2=[r[1][1] for r in rows])
            record.update({f"train_{k}": pm[k] for k in TRAIN_PAIR_KEYS})
        if cfg.trace_every and step % cfg.trace_every == 0:
            mine = [episode_record(ep, step + 1, "train", stage, self.tok, adv[i], shaped[i])
                    for i, ep in enumerate(episodes[:max(0, cfg.traces_per_step - first)])]
            self.writer.log_traces(gather_list(acc, mine))
        return record

    # ---- evaluation (checkpoints: checkpoints.py) -----------------------------------------
    def eval_and_log(self, step: int, final: bool = False, extra: dict | None = None) -> dict:
        """Evaluate, write evals/<step>.json and test traces; returns eval_* keys for metrics.jsonl.

        Only the main process evaluates (the others wait), then shares the metrics: evaluation samples every
        problem from one seeded stream, which sharding would change, so this gives the single-process
        numbers for the same weights."""
        metrics = None
        with full_weights(self.accelerator, self.model):
            if self.accelerator.is_main_process:
                metrics, episodes = evaluate(self.policy, self.tok, self.eval_task, self.cfg, seed=self.cfg.seed)
                metrics.update(extra or {})
                self.writer.write_eval(step, {**metrics, "step": step, "outcomes": outcomes(episodes)})
                self.writer.log_traces([episode_record(ep, step, "test", "eval") for ep in episodes[:16]])
            self.accelerator.wait_for_everyone()
        metrics = self.last_eval = broadcast(self.accelerator, metrics)
        flat = {f"eval_{k}": v for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None}
        if final:
            self.writer.log_metrics({"step": step, "stage": "final", "time": round(time.time() - self.t0, 3),
                                     **flat})
            return metrics
        return flat



def _resolve_model(cfg: TrainConfig) -> str:
    """'toy-base' becomes the cached base model of this toy world (built on first use)."""
    if cfg.model != "toy-base":
        return cfg.model
    from .toy_base import build_toy_base, default_base

    cap = {"max_seconds": cfg.toy_base_seconds} if cfg.toy_base_seconds > 0 else {}  # the cap is in the key
    base = default_base(cfg.toy_kind, digits=cfg.toy_digits, n_ops=cfg.toy_n_ops, ops=cfg.toy_ops,
                        n_numbers=cfg.toy_numbers, instruction=cfg.instruction, **cap)
    return str(build_toy_base(base))


def model_record(requested: str, path: str) -> dict:
    """model.json of a run: the model it asked for, the folder that resolved to and, for a toy base, its
    cache key and how its build stopped. Tables that pool runs compare it (ablate.check_models)."""
    record = {"requested": requested, "path": path}
    built = Path(path) / "toy_base.json"
    if built.exists():
        info = json.loads(built.read_text())
        record["toy_base"] = {"key": model_key(path), **{k: info.get(k) for k in ("steps", "stopped_by", "source")},
                              "weights": weights_digest(path)}
    return record


def start_model(cfg: TrainConfig, run_dir: Path | None = None) -> str:
    """The model folder a run starts from. A run that recorded one (model.json) keeps it, so a resume or a
    re-evaluation after the default toy base changed uses the base the run started on (also its KL
    reference); a new run, or one written before runs recorded their model, resolves cfg.model."""
    recorded = read_model(run_dir) if run_dir is not None else None
    if recorded is None:
        return _resolve_model(cfg)
    if recorded["path"] == cfg.model or Path(recorded["path"]).exists():
        return recorded["path"]
    now = _resolve_model(cfg)  # the recorded folder is gone (a cleared cache): the same build will do
    if model_key(now) != model_key(recorded["path"]):
        raise RunStoreError(f"{Path(run_dir) / MODEL_FILE}: the run started from {recorded['path']}, which is "
                            f"gone, and {cfg.model!r} now resolves to another model ({now}); rebuild that "
                            "base or start a new run")
    was, is_now = recorded.get("toy_base", {}).get("weights"), weights_digest(now)
    if was and is_now and was != is_now:  # the key rebuilt into other weights (another CPU, or shipped vs local)
        raise RunStoreError(f"{Path(run_dir) / MODEL_FILE}: the run started from {recorded['path']} (weights "
                            f"{was}), which is gone, and its key now holds other weights ({now}, {is_now}); "
                            "start a new run")
    return now


def _versions() -> dict:
    import platform

    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}
