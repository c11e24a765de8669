"""Our single-turn RL step against TRL's GRPOTrainer step, and our two-attempt rollout against a rollout_func.

a. One RL step, same work on both sides: the same model (loaded from the same folder), 4 prompts x
   4 samples (TRL: per_device_train_batch_size 16, num_generations 4), at most 32 new tokens,
   temperature 1 with no top-k/top-p, KL to the frozen initial model with beta 0.01 estimated by k3 on
   the sampled tokens (TRL's only estimator; ours with kl_estimator=k3 and beta1=0.01), Adam lr 1e-4,
   gradient clipping 1.0, fp32, no gradient checkpointing (TRL turns it on by default; we do not), one
   optimiser step per batch. Ours is `Trainer.rl_step` of method st-rl;
   TRL's is GRPOTrainer.train() timed per step by a callback, and one step of ours (and one of ours
   with the exact full-vocabulary KL, our default) runs between each two of TRL's, so a change in
   the shared machine's load hits all three alike. The first WARMUP steps of each are dropped, then
   the median. The toy-sized model is a randomly initialised 1.06M-parameter Llama over the toy
   world's 99-symbol vocabulary: it ends a completion with probability about 1/99 per token, so
   completions are ~28 of at most 32 tokens on both sides (same model, same distribution); step
   times and tokens/s are both reported. SmolLM2-135M-Instruct runs too when registered
   (`score models pull smollm2-135m`) and our first step on it takes under 30 s (else skipped, said).
b. Two attempts: `rollout(..., [instruction], n=4)` (one KV cache across attempts) against the
   function a user hands GRPOTrainer as `rollout_func` for the same episode (TRL 1.16 gives that
   hook no generator of its own under transformers): `model.generate` for attempt 1, then again
   on the re-encoded prompt + attempt 1 + instruction glue, returning prompt_ids, completion_ids,
   logprobs and env_mask (0 on the glue). Called through TRL's interface (prompts, trainer).

Merged into benchmarks/results.json under trl_step_<model> and trl_rollout_func.
Usage: python benchmarks/trl_compare.py [--steps N] [--skip-smollm] [--quick]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402

from _common import LoadMeter, interleaved, merge_results  # noqa: E402
from rollout_speed import left_pad  # noqa: E402
from score_lib.config import build_config  # noqa: E402
from score_lib.episodes import glue_ids, prompt_ids  # noqa: E402
from score_lib.policy import load_policy, save_policy, toy_model, toy_tokenizer  # noqa: E402
from score_lib.rollout import rollout  # noqa: E402
from score_lib.tasks.toy import ToyTask, extract_answer  # noqa: E402
from score_lib.toy_base import TOY_INSTRUCTION  # noqa: E402
from score_lib.trainer import Trainer  # noqa: E402

PROMPTS, GROUP, BETA, LR = 4, 4, 0.01, 1e-4
WARMUP = 2
MED = statistics.median


class OurSteps:
    """Our Trainer on the same work; `step()` times one rl_step."""

    def __init__(self, folder: Path, max_new: int, steps: int, kl: str, tmp: Path):
        cfg = build_config("toy-st-rl", {
            "model": str(folder), "batch_prompts": PROMPTS, "samples_per_prompt": GROUP, "max_new_tokens": max_new,
            "beta1": BETA, "kl_estimator": kl, "temperature": 1.0, "lr": LR, "max_grad_norm": 1.0,
            "dtype": "float32", "trace_every": 0, "checkpoint_every": 0, "eval_every": 0, "steps": steps})
        self.trainer = Trainer(cfg, tmp / f"ours-{kl}-{time.monotonic_ns()}", progress=False)
        self.train, self.runs = self.trainer.task.problems("train"), []

    def step(self) -> dict:
        t = time.perf_counter()
        rec = self.trainer.rl_step(len(self.runs), self.train)
        self.runs.append({"s": time.perf_counter() - t, "tokens": rec["len_t1"] * PROMPTS * GROUP,
                          "generate_s": rec["t_generate"], "update_s": rec["t_update"]})
        return self.runs[-1]


def trl_dataset(n: int = 512):
    from datasets import Dataset

    probs = ToyTask(n_train=n).problems("train")
    return Dataset.from_list([{"prompt": [{"role": "user", "content": p.prompt}], "answer": p.answer} for p in probs])


def toy_reward(completions, answer, **_):
    """The toy oracle, in TRL's reward-function shape."""
    return [float(extract_answer(c[0]["content"]) == a) for c, a in zip(completions, answer)]


def trl_trainer(folder: Path, max_new: int, steps: int, tmp: Path, rollout_func=None, between=None):
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times = []

        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self.t)
            if between is not None:  # our steps run here, between TRL's, under the same machine load
                between()

    args = GRPOConfig(output_dir=str(tmp / "trl"), per_device_train_batch_size=PROMPTS * GROUP,
                      num_generations=GROUP, max_completion_length=max_new, max_steps=steps, beta=BETA,
                      temperature=1.0, top_p=1.0, top_k=0, learning_rate=LR, max_grad_norm=1.0,
                      lr_scheduler_type="constant", optim="adamw_torch", weight_decay=0.0, bf16=False,
                      gradient_checkpointing=False,
                      use_cpu=True, report_to="none", logging_steps=1, save_strategy="no",
                      disable_tqdm=True, dataloader_num_workers=0, seed=0)
    model, tok = load_policy(str(folder))
    timer = StepTimer()
    trainer = GRPOTrainer(model=model, reward_funcs=toy_reward, args=args, train_dataset=trl_dataset(),
                          processing_class=tok, callbacks=[timer], rollout_func=rollout_func)
    return trainer, timer


def trl_steps(folder: Path, max_new: int, steps: int, tmp: Path, between=None) -> list[dict]:
    trainer, timer = trl_trainer(folder, max_new, steps, tmp, between=between)
    trainer.train()
    lens = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    return [{"s": s, "tokens": n * PROMPTS * GROUP} for s, n in zip(timer.times, lens)]


def summary(runs: list[dict]) -> dict:
    kept = runs[WARMUP:]
    s, tok = MED(r["s"] for r in kept), MED(r["tokens"] for r in kept)
    return {"median_step_s": round(s, 4), "tokens_per_step": tok, "tokens_per_s": round(tok / s, 1),
            "first_step_s": round(runs[0]["s"], 3), "steps_kept": len(kept),
            "per_step_s": [round(r["s"], 4) for r in runs]}


def step_compare(label: str, folder: Path, max_new: int, steps: int, tmp: Path, max_step_s: float = 1e9) -> dict:
    print(f"\n## RL step: ours (st-rl) vs TRL GRPOTrainer, {label}", flush=True)
    ours, exact = OurSteps(folder, max_new, steps, "k3", tmp), OurSteps(folder, max_new, steps, "full", tmp)
    with LoadMeter() as load:
        if ours.step()["s"] > max_step_s:  # a first step over budget: the model is skipped, and said
            print(f"{label}: our first step took {ours.runs[0]['s']:.1f} s (> {max_step_s:.0f} s): skipped to keep "
                  "make bench inside its budget", flush=True)
            return {"model": label, "skipped": f"our first step took {ours.runs[0]['s']:.1f} s"}
        ours.runs.clear()
        # step by step in turn (TRL, ours, ours with the exact KL), so a change in load hits all three alike
        trl = trl_steps(folder, max_new, steps, tmp, between=lambda: (ours.step(), exact.step()))
    blocks = {"ours": ours.runs, "ours_full_kl": exact.runs, "trl": trl}
    res = {k: summary(v) for k, v in blocks.items()}
    ours_runs = blocks["ours"][WARMUP:]
    res["ours"].update(generate_s=round(MED(r["generate_s"] for r in ours_runs), 4),
                       update_s=round(MED(r["update_s"] for r in ours_runs), 4))
    ours_s = res["ours"]["median_step_s"]
    trl_s = res["trl"]["median_step_s"]
    res["speedup_ours_over_trl"] = round(trl_s / ours_s, 2)
    res["speedup_ours_full_kl_over_trl"] = round(trl_s / res["ours_full_kl"]["median_step_s"], 2)
    res.update(model=label, batch=f"{PROMPTS} prompts x {GROUP} samples", max_new_tokens=max_new, beta=BETA,
               kl="k3 on sampled tokens (both)", steps=steps, warmup_dropped=WARMUP, order="interleaved per step",
               other_procs_cores=load.other_cores, date=time.strftime("%Y-%m-%d %H:%M"),
               torch_threads=torch.get_num_threads())
    print("| | median step s | tokens/s | first step s |\n|---|---|---|---|")
    for k in ("ours", "ours_full_kl", "trl"):
        r = res[k]
        print(f"| {k} | {r['median_step_s']} | {r['tokens_per_s']} | {r['first_step_s']} |")
    print(f"ours {ours_s:.4f} s/step (generate {res['ours']['generate_s']} s, update "
          f"{res['ours']['update_s']} s); TRL / ours = {res['speedup_ours_over_trl']}x "
          f"(ours with the exact KL: {res['speedup_ours_full_kl_over_trl']}x); other processes busy: "
          f"{load.other_cores} cores", flush=True)
    return res


def two_attempt_rollout_func(max_new: int, instruction: str):
    """A two-attempt rollout_func over TRL's own model, as TRL 1.16's hook expects it."""

    @torch.no_grad()
    def rollout_func(prompts, trainer):
        # TRL 1.16 passes each prompt num_generations times already (its sampler repeats them): one completion each
        model, tok = trainer.model, trainer.processing_class
        pad = tok.pad_token_id
        p_ids = [tok.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=False)
                 for p in prompts]
        glue = glue_ids(tok, instruction)
        kw = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=max_new, pad_token_id=pad,
                  return_dict_in_generate=True, output_logits=True)

        def attempt(contexts):
            ids, mask = left_pad(contexts, pad)
            out = model.generate(input_ids=ids, attention_mask=mask, **kw)
            new = out.sequences[:, ids.shape[1]:]
            logp = torch.stack(out.logits, 1).float().log_softmax(-1).gather(-1, new[..., None])[..., 0]
            rows, lps = [], []
            for r, lp in zip(new.tolist(), logp.tolist()):
                cut = next((i + 1 for i, t in enumerate(r) if t == tok.eos_token_id), len(r))
                rows.append(r[:cut])
                lps.append(lp[:cut])
            return rows, lps

        a1, l1 = attempt(p_ids)
        a2, l2 = attempt([p + a + glue for p, a in zip(p_ids, a1)])  # generate re-encodes the whole context
        return {"prompt_ids": p_ids, "completion_ids": [a + glue + b for a, b in zip(a1, a2)],
                "logprobs": [x + [0.0] * len(glue) + y for x, y in zip(l1, l2)],
                "env_mask": [[1] * len(a) + [0] * len(glue) + [1] * len(b) for a, b in zip(a1, a2)]}

    return rollout_func


def rollout_compare(folder: Path, max_new: int, repeats: int, tmp: Path) -> dict:
    print("\n## Two-attempt rollout: ours vs a TRL rollout_func (model.generate twice)", flush=True)
    func = two_attempt_rollout_func(max_new, TOY_INSTRUCTION)
    trainer, _ = trl_trainer(folder, max_new, 1, tmp, rollout_func=func)
    model, tok = trainer.model.eval(), trainer.processing_class
    problems = ToyTask(n_train=64).problems("train", PROMPTS)
    prompts = [[{"role": "user", "content": p.prompt}] for p in problems for _ in range(GROUP)]
    out = func(prompts, trainer)
    eps = rollout(model, tok, problems, [TOY_INSTRUCTION], n=GROUP, max_new_tokens=max_new, seed=0)
    assert [e.prompt_ids for e in eps] == out["prompt_ids"], "the two sides must see the same prompt tokens"
    with LoadMeter() as load:
        runs = interleaved({"ours": lambda: rollout(model, tok, problems, [TOY_INSTRUCTION], n=GROUP,
                                                    max_new_tokens=max_new),
                            "trl_rollout_func": lambda: func(prompts, trainer)}, repeats)
    tokens = {"ours": lambda eps: sum(len(a.ids) for e in eps for a in e.attempts),
              "trl_rollout_func": lambda o: sum(m.count(1) for m in o["env_mask"])}
    res = {}
    for k, rs in runs.items():
        s = MED(t for t, _ in rs)
        n = MED(tokens[k](o) for _, o in rs)
        res[k] = {"median_s": round(s, 4), "tokens": n, "tokens_per_s": round(n / s, 1)}
    res["speedup_ours_over_rollout_func"] = round(res["trl_rollout_func"]["median_s"] / res["ours"]["median_s"], 2)
    res.update(batch=f"{PROMPTS} prompts x {GROUP} samples x 2 attempts", max_new_tokens=max_new, repeats=repeats,
               other_procs_cores=load.other_cores, date=time.strftime("%Y-%m-%d %H:%M"))
    print(f"ours {res['ours']['median_s']} s ({res['ours']['tokens_per_s']} tok/s), rollout_func "
          f"{res['trl_rollout_func']['median_s']} s ({res['trl_rollout_func']['tokens_per_s']} tok/s): "
          f"{res['speedup_ours_over_rollout_func']}x; other processes busy: {load.other_cores} cores", flush=True)
    # the hook's output must also train: one GRPOTrainer step on it (its time is not part of the numbers)
    trainer.train()
    return res


def smollm_folder(tmp: Path) -> Path | None:
    from score_lib.models import resolve

    spec = resolve("smollm2-135m")
    if spec == "smollm2-135m" or not Path(spec).exists():
        print("SmolLM2-135M not registered (score models pull smollm2-135m): skipped", flush=True)
        return None
    model, tok = load_policy(spec)  # GGUF -> fp32; saved once so both trainers load the same folder
    save_policy(model, tok, tmp / "smollm2")
    return tmp / "smollm2"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10, help="steps per block, the first 2 dropped (toy model)")
    ap.add_argument("--skip-smollm", action="store_true", help="only the toy-sized model")
    ap.add_argument("--quick", action="store_true", help="smoke test: few steps, no SmolLM2, results.json untouched")
    args = ap.parse_args()
    steps = 3 if args.quick else args.steps
    if steps <= WARMUP:
        ap.error(f"--steps must exceed the {WARMUP} warm-up steps")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tok = toy_tokenizer()
        save_policy(toy_model(tok, seed=0), tok, tmp / "toy-random")
        n_params = sum(p.numel() for p in toy_model(tok).parameters())
        results["trl_step_toy"] = step_compare(f"random toy-sized Llama ({n_params / 1e6:.2f}M)", tmp / "toy-random",
                                               32, steps, tmp)
        results["trl_rollout_func"] = rollout_compare(tmp / "toy-random", 32, 1 if args.quick else 5, tmp)
        folder = None if (args.skip_smollm or args.quick) else smollm_folder(tmp)
        if folder is not None:
            results["trl_step_smollm2"] = step_compare("SmolLM2-135M-Instruct (fp32)", folder, 32, WARMUP + 3, tmp,
                                                       max_step_s=30.0)
    for r in results.values():
        r["command"] = " ".join(["python", "benchmarks/trl_compare.py", *sys.argv[1:]])
    if not args.quick:
        print(f"wrote {', '.join(results)} to {merge_results(results)}")


if __name__ == "__main__":
    main()
