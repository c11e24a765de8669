"""The optional vLLM rollout backend (config: rollout_backend=vllm): same Episodes, vLLM's engine.

What it produces is exactly what rollout.rollout produces for the same sampled tokens: the same
prompt and glue token ids, each attempt's ids with its stop token when it stopped, one sampled-token
logprob per id, the same text and truncation flag (both backends build attempts with
rollout.make_attempt), so collate, masks and losses cannot tell the backends apart. Attempt j + 1 is
requested on prompt + attempts so far + glue as token ids; vLLM's prefix cache keeps the shared part
of that context from being encoded twice (the job our KV reuse does on the transformers backend).

Logprobs: vLLM computes them with its own kernels, after temperature (logprobs_mode
"processed_logprobs", as TRL 1.16 asks for), so they match the transformers backend's up to kernel
numerics. The trainer does not use them for the loss: rl_step recomputes every token's logprob
with the training model's own forward pass (episodes.token_logprobs in losses.py); the rollout's
logprobs only reach traces.jsonl. So vLLM/HF numerical differences cannot bias the gradient.

Weights: the engine runs in this process next to the trainer ("colocate", as TRL 1.16's
GRPOTrainer does with vLLM 0.22-0.31: distributed_executor_backend="external_launcher" keeps the
worker in-process) and after every optimiser step each parameter is pushed with
`llm.llm_engine.model_executor.driver_worker.model_runner.model.load_weights([(name, tensor)])`,
then the prefix cache is reset (its entries hold the old weights' keys and values). LoRA adapters
are merged for the push and unmerged afterwards, with peft's names mapped back to the base model's.

Untested against a real vLLM here: the machines this was written on have no vllm (and no GPU);
tests/test_rollout_vllm.py checks the conversion and the weight sync against a fake `vllm` module.
Only the on-policy rollouts of RL steps use vLLM; evaluation, offline first attempts and SFT data
collection stay on transformers.
"""
from __future__ import annotations

import importlib
import os

import torch

from .config import ConfigError
from .episodes import Episode, glue_ids, prompt_ids
from .rollout import make_attempt, stop_ids

VLLM_HINT = "install it with `pip install vllm` (TRL 1.16 supports vLLM 0.22-0.31) on a CUDA machine"


def require_vllm():
    """The vllm module, or a ConfigError that names the setting and how to get it."""
    try:
        return importlib.import_module("vllm")
    except ImportError as e:
        raise ConfigError(f"setting 'rollout_backend': vllm selected but vllm cannot be imported ({e}); "
                          f"{VLLM_HINT}, or set rollout_backend=hf") from None


def vllm_weights(model):
    """(name, tensor) pairs under the names vLLM's load_weights expects, for a plain or a peft model.

    A peft model must have its adapter merged while these are read (VLLMRollout.sync_weights does)."""
    if not hasattr(model, "peft_config"):
        return [(n, p.data) for n, p in model.named_parameters()]
    out = []
    for name, p in model.named_parameters():
        name = name.removeprefix("base_model.model.").replace(".base_layer", "")
        if "lora_" in name or "original_module" in name:  # adapter factors: merged into the base weights
            continue
        out.append((name.replace("modules_to_save.default.", ""), p.data))
    return out


class VLLMRollout:
    """A colocated vLLM engine over the policy's weights; `rollout` mirrors rollout.rollout."""

    def __init__(self, model_path: str, tokenizer, model, dtype: torch.dtype, seed: int,
                 gpu_memory_utilization: float):
        vllm = require_vllm()
        self.vllm, self.tok = vllm, tokenizer
        self.stops = sorted(stop_ids(model, tokenizer))
        # external_launcher reads the torch.distributed environment even for one process; set process-wide as
        # TRL 1.16 does (after the trainer's Accelerator exists, so it does not mistake itself for a multi-process run)
        for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"),
                           ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29517")):
            os.environ.setdefault(key, value)
        # skip_tokenizer_init: requests are token ids and attempts are decoded by make_attempt with our own
        # tokenizer, so vLLM needs none (and cannot trip over ids a small tokenizer does not know)
        self.llm = vllm.LLM(model=model_path, skip_tokenizer_init=True, dtype=str(dtype).removeprefix("torch."),
                            seed=seed, gpu_memory_utilization=gpu_memory_utilization, enable_prefix_caching=True,
                            distributed_executor_backend="external_launcher",
                            logprobs_mode="processed_logprobs")

    def _params(self, temperature: float, greedy: bool, max_new_tokens: int, seed: int | None):
        # ignore_eos stays off and stop_token_ids lists every stop id the HF backend stops on; logprobs=0
        # returns the sampled token's logprob only; top-k/top-p off: plain temperature sampling as rollout.py
        return self.vllm.SamplingParams(n=1, temperature=0.0 if greedy else temperature, top_p=1.0, top_k=-1,
                                        max_tokens=max_new_tokens, stop_token_ids=self.stops, logprobs=0,
                                        seed=seed, detokenize=False)

    def _generate(self, contexts: list[list[int]], temperature, greedy, max_new_tokens, seed):
        # one request per row, each with its own seed (row i: seed + i), so a step's samples are reproducible
        params = [self._params(temperature, greedy, max_new_tokens, None if seed is None else seed + i)
                  for i in range(len(contexts))]
        outs = self.llm.generate([{"prompt_token_ids": c} for c in contexts], sampling_params=params, use_tqdm=False)
        rows = []
        for out in outs:
            o = out.outputs[0]
            ids = list(o.token_ids)
            if o.logprobs is None or len(o.logprobs) != len(ids):
                raise RuntimeError("vLLM returned no per-token logprobs; it must honour SamplingParams(logprobs=0)")
            if o.finish_reason == "stop" and not (ids and ids[-1] in self.stops):
                raise RuntimeError(f"vLLM stopped without its stop token in token_ids (stop_reason {o.stop_reason!r}); "
                                   "episodes need it to match the transformers backend")
            rows.append((ids, [float(lp[t].logprob) for t, lp in zip(ids, o.logprobs)]))
        return rows

    @torch.no_grad()
    def rollout(self, problems, instructions: list[str], n: int = 1, temperature: float = 1.0,
                greedy: bool = False, max_new_tokens: int = 64, seed: int | None = None,
                graded: list[bool] | None = None) -> list[Episode]:
        """Episodes of len(instructions) + 1 attempts for each problem, n samples each (rollout.rollout's contract)."""
        rows = [(p, s) for p in problems for s in range(n)]
        prompts = [prompt_ids(self.tok, p.prompt) for p, _ in rows]
        glues = [glue_ids(self.tok, text) for text in instructions]
        graded = graded or [True] * (len(instructions) + 1)
        contexts = [list(x) for x in prompts]
        attempts = [[] for _ in rows]
        for j in range(len(instructions) + 1):
            if j > 0:
                for c in contexts:
                    c.extend(glues[j - 1])
            step_seed = None if seed is None else seed + j * len(rows)
            for i, (ids, lps) in enumerate(self._generate(contexts, temperature, greedy, max_new_tokens, step_seed)):
                attempts[i].append(make_attempt(self.tok, ids, lps, self.stops, graded[j]))
                contexts[i].extend(ids)
        return [Episode(problem=p, prompt_ids=prompts[i], glue_ids=[[]] + glues, attempts=attempts[i], sample=s)
                for i, (p, s) in enumerate(rows)]

    @torch.no_grad()
    def sync_weights(self, model) -> None:
        """Push the policy's current weights into the engine (after every optimiser step)."""
        target = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        peft = hasattr(model, "peft_config")
        if peft:
            model.merge_adapter()
        try:
            for name, tensor in vllm_weights(model):  # one at a time, as TRL does: no second full copy
                target.load_weights([(name, tensor)])
        finally:
            if peft:
                model.unmerge_adapter()
        self.llm.reset_prefix_cache()
