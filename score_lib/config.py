"""One training configuration for every method, its presets, and `--set key=value` overrides."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from .toy_base import TOY_INSTRUCTION

MATH_INSTRUCTION = ("Your answer above may contain a mistake. Check the reasoning; if you find an error, "
                    "fix it and write the whole solution again, ending with the final answer in \\boxed{}.")
CODE_INSTRUCTION = ("The program above may have a bug. Check it against the task; if it is wrong, "
                    "write the whole corrected Python program in one code block.")
METHODS = ("score", "stage1", "stage2", "mt-rl", "st-rl", "star", "star-plus", "pair-sft",
           "pair-sft-plus", "self-refine", "eval")
EVAL_ONLY = ("self-refine", "eval")
RL_FAMILY = ("score", "stage1", "stage2", "mt-rl", "st-rl")
SFT_FAMILY = ("star", "star-plus", "pair-sft", "pair-sft-plus")
# settings that say what a run keeps or takes from another run, never what it computes: a run may differ from
# another in them and still give the same numbers (ablate's kept-run check, shared_samples' key, stage1_from)
BOOKKEEPING_SETTINGS = ("keep_stage1", "stage1_from", "shared_samples")
# settings a score run's Stage I never reads: two runs that differ only in these train the same Stage I,
# step for step (Eq. 3 has no alpha; offline first attempts and the selection window start in Stage II), so
# one may take it from the other (stage1_from). Every other setting, evaluation's included, must match.
STAGE2_SETTINGS = ("alpha", "stage2", "steps", "sft_lr", "offline_first_attempts", "select_by", "select_window",
                   "checkpoint_every", *BOOKKEEPING_SETTINGS)


# settings runs of earlier versions recorded that no code reads any more: a resume drops them, a --set names why
RETIRED_SETTINGS = {
    "sft_problems": "an SFT round samples what its steps of RL would (batch_prompts x samples_per_prompt a step)",
    "sft_samples": "an SFT round samples what its steps of RL would (batch_prompts x samples_per_prompt a step)",
}


@dataclass
class TrainConfig:
    """Everything a run needs; written whole to the run's config.json."""

    method: str = "score"
    """score (Stage I then II), stage1, stage2, mt-rl, st-rl, star, star-plus, pair-sft, pair-sft-plus,
    self-refine (prompting only), eval (no training: evaluate the model as it is)."""
    task: str = "toy"
    """Task: toy, gsm8k, math, math500, humaneval, mbpp, mbpp-sanitized."""
    eval_task: str = ""
    """Task to evaluate on when it differs from the training task (mbpp -> humaneval, as the paper)."""
    data_dir: str = ""
    """Folder with gsm8k/, math/, math500/, humaneval/, mbpp/ files (e.g. ../shared/data); empty = the hub."""
    model: str = "toy-base"
    """Hub id, local folder, GGUF file, a registered name (smollm2-135m), or toy-base (built if missing)."""
    dtype: str = "auto"
    """auto (bf16 on GPU, fp32 on CPU and for the toy world everywhere), float32 or bfloat16."""
    seed: int = 0
    """Seed of problem order, sampling and initial weights."""
    steps: int = 200
    """Optimiser steps in total (for score: Stage I plus Stage II)."""
    stage1_steps: int = 80
    """Steps of Stage I when method is score; the rest is Stage II."""
    stage2: str = "rl"
    """Stage II of score: rl (Eq. 4) or star (the "STaR instead of REINFORCE in Stage II" ablation)."""
    keep_stage1: bool = False
    """score: keep the checkpoint at the end of Stage I (step stage1_steps), which stage1_from starts from."""
    stage1_from: str = ""
    """score: train Stage II only, from this score run's kept Stage I (same settings but Stage II's; same numbers)."""
    shared_samples: str = ""
    """SFT baselines: a folder where runs that differ only in method (STaR / STaR+, Pair-SFT / Pair-SFT+) draw
    their first round from the starting model once and share it (same numbers; shared_samples.py)."""
    batch_prompts: int = 16
    """Problems per step."""
    samples_per_prompt: int = 4
    """Samples per problem n (leave-one-out baseline over them; 1 = no baseline)."""
    attempts: int = 2
    """Attempts per episode k (1 for st-rl, 2 to 5 otherwise)."""
    lr: float = 1e-4
    """Adam learning rate."""
    max_grad_norm: float = 1.0
    """Gradient clipping threshold."""
    alpha: float = 10.0
    """Stage II bonus weight: attempt 2 reward += alpha * (r2 - r1) (Eq. 4; paper: 10)."""
    beta1: float = 0.01
    """KL coefficient on every attempt (Eq. 2; paper: 0.01)."""
    beta2: float = 0.1
    """Stage I KL coefficient on attempt 1 (Eq. 3; paper: 0.1 math, 0.25 code)."""
    baseline: str = "loo"
    """Policy-gradient baseline: loo (other samples of the prompt), loo-state (also the same previous-attempt
    reward), or loo-state-pooled (loo-state; a sample alone in its state uses the batch's others in that state)."""
    kl_estimator: str = "full"
    """Per-token KL: full (exact over the vocabulary), k3 or k1."""
    offline_first_attempts: float = 0.0
    """Stage II: share of each batch whose attempt 1 comes from the base (reference) model; 0 = off (Sec. 5.3)."""
    temperature: float = 1.0
    """Sampling temperature for training rollouts."""
    rollout_backend: str = "hf"
    """Engine of the RL steps' on-policy rollouts: hf (transformers) or vllm (GPU only; pip install vllm)."""
    vllm_gpu_memory: float = 0.3
    """rollout_backend=vllm: share of GPU memory the colocated vLLM engine may take (the rest is training's)."""
    max_new_tokens: int = 48
    """Length limit of each attempt."""
    instruction: str = TOY_INSTRUCTION
    """Self-correction instruction placed between attempts."""
    critique_instruction: str = "List any step that looks wrong."
    """Self-Refine: the request for a critique after attempt 1."""
    refine_instruction: str = "Use that review to write a corrected solution."
    """Self-Refine: the request for the revision after the critique."""
    lora: bool = False
    """Train a LoRA adapter (peft) instead of all weights."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator."""
    lora_targets: str = "all-linear"
    """LoRA target modules (comma-separated names or all-linear)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    eval_every: int = 50
    """Evaluate every this many steps (0: only at the end)."""
    eval_problems: int = 256
    """Held-out problems per evaluation."""
    eval_samples: int = 4
    """Samples per evaluation problem when eval_greedy is false."""
    eval_greedy: bool = False
    """Greedy evaluation (the paper's protocol). The toy world defaults to sampling: its base model
    copies its first attempt under greedy decoding, so its errors and corrections show only when sampled."""
    eval_temperature: float = 1.0
    """Temperature of sampled evaluation."""
    eval_batch: int = 256
    """Problems decoded together during evaluation (smaller keeps CPU decoding of long answers quick)."""
    trace_every: int = 5
    """Write sampled training episodes to traces.jsonl every this many steps."""
    traces_per_step: int = 8
    """Episodes written each time."""
    checkpoint_every: int = 25
    """Save a resumable checkpoint every this many steps (and at the end)."""
    select_by: str = "last"
    """Weights the final evaluation scores: last, or train-reward (Section 5.3: highest training reward)."""
    select_window: int = 10
    """select_by=train-reward: consecutive steps whose training rewards are averaged per candidate."""
    sft_iterations: int = 3
    """STaR: rounds of sample-filter-train (Pair-SFT uses one)."""
    sft_lr: float = 1e-4
    """SFT learning rate."""
    sft_batch: int = 32
    """SFT examples per optimiser step."""
    toy_digits: int = 1
    """Toy world: digits per operand."""
    toy_n_ops: int = 3
    """Toy world: operations per problem."""
    toy_ops: str = "+-"
    """Toy world: operators."""
    toy_kind: str = "chain"
    """Toy world: "chain" (arithmetic chains) or "pick" (which two numbers of a list reach a target)."""
    toy_numbers: int = 5
    """Pick world: numbers per list."""
    toy_base_seconds: float = 0.0
    """Toy world: wall-clock safety cap for building the base model if missing (0: the world's default
    base's own cap, so that this base is the one `score toy-base` builds)."""


PRESETS: dict[str, dict] = {
    "toy-score": {"method": "score"},
    "toy-stage1": {"method": "stage1", "steps": 80},
    "toy-stage2": {"method": "stage2"},
    "toy-mt-rl": {"method": "mt-rl"},
    "toy-st-rl": {"method": "st-rl", "attempts": 1},
    "toy-star": {"method": "star"},
    "toy-star-plus": {"method": "star-plus"},
    "toy-pair-sft": {"method": "pair-sft", "sft_iterations": 1},
    "toy-pair-sft-plus": {"method": "pair-sft-plus", "sft_iterations": 1},
    "toy-self-refine": {"method": "self-refine", "steps": 0},
    "toy-eval": {"method": "eval", "steps": 0},
    # real benchmarks: the paper's hyperparameters where they apply (alpha 10, beta1 0.01, beta2 0.1 math /
    # 0.25 code, temperature 1.0, greedy evaluation); lr, batch and lengths sized for the hardware
    "gsm8k-smollm2": {"method": "score", "task": "gsm8k", "model": "smollm2-135m", "data_dir": "../shared/data",
                      "instruction": MATH_INSTRUCTION, "lora": True, "lora_r": 16, "lr": 1e-5, "steps": 4,
                      "stage1_steps": 2, "batch_prompts": 2, "samples_per_prompt": 2, "max_new_tokens": 96,
                      "eval_greedy": True, "eval_problems": 8, "eval_every": 0, "checkpoint_every": 2,
                      "traces_per_step": 4, "beta2": 0.1},
    "math500-qwen2.5-1.5b-instruct": {
        "method": "score", "task": "math", "eval_task": "math500", "model": "Qwen/Qwen2.5-1.5B-Instruct",
        "instruction": MATH_INSTRUCTION, "lr": 5e-6, "steps": 3000, "stage1_steps": 1000, "batch_prompts": 64,
        "samples_per_prompt": 8, "max_new_tokens": 1024, "eval_greedy": True, "eval_problems": 500,
        "eval_every": 250, "checkpoint_every": 250, "beta2": 0.1, "gradient_checkpointing": True},
    "mbpp-humaneval-qwen2.5-coder-1.5b-instruct": {
        "method": "score", "task": "mbpp", "eval_task": "humaneval", "model": "Qwen/Qwen2.5-Coder-1.5B-Instruct",
        "instruction": CODE_INSTRUCTION, "lr": 1e-5, "steps": 1500, "stage1_steps": 500, "batch_prompts": 32,
        "samples_per_prompt": 4, "max_new_tokens": 768, "eval_greedy": True, "eval_problems": 164,
        "eval_every": 250, "checkpoint_every": 250, "beta2": 0.25, "gradient_checkpointing": True},
}


class ConfigError(ValueError):
    """A bad preset, key or value; the message names it."""


def _coerce(name: str, typ, raw: str):
    if typ in (bool, "bool"):
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"setting {name!r}: expected true or false, got {raw!r}")
    for t, label in ((int, "an integer"), (float, "a number")):
        if typ in (t, t.__name__):
            try:
                return t(raw)
            except ValueError:
                raise ConfigError(f"setting {name!r}: expected {label}, got {raw!r}") from None
    return raw


def validate(cfg: TrainConfig) -> TrainConfig:
    """Raise ConfigError naming the first inconsistent field."""
    if cfg.method not in METHODS:
        raise ConfigError(f"setting 'method': unknown method {cfg.method!r} (one of {', '.join(METHODS)})")
    if cfg.method == "st-rl" and cfg.attempts != 1:
        raise ConfigError("setting 'attempts': st-rl trains a single attempt, set attempts=1")
    if cfg.method != "st-rl" and not 2 <= cfg.attempts <= 5:
        raise ConfigError(f"setting 'attempts': must be 2..5 for {cfg.method}, got {cfg.attempts}")
    if cfg.dtype not in ("auto", "float32", "bfloat16"):
        raise ConfigError(f"setting 'dtype': auto, float32 or bfloat16, got {cfg.dtype!r}")
    if cfg.stage2 not in ("rl", "star"):
        raise ConfigError(f"setting 'stage2': rl or star, got {cfg.stage2!r}")
    if cfg.rollout_backend not in ("hf", "vllm"):
        raise ConfigError(f"setting 'rollout_backend': hf or vllm, got {cfg.rollout_backend!r}")
    if cfg.rollout_backend == "vllm" and cfg.method not in RL_FAMILY:
        raise ConfigError(f"setting 'rollout_backend': vllm serves the RL methods' rollouts, not {cfg.method}")
    if not 0 < cfg.vllm_gpu_memory < 1:
        raise ConfigError(f"setting 'vllm_gpu_memory': a share between 0 and 1, got {cfg.vllm_gpu_memory}")
    from .objectives import BASELINES

    if cfg.baseline not in BASELINES:
        raise ConfigError(f"setting 'baseline': one of {', '.join(BASELINES)}, got {cfg.baseline!r}")
    if cfg.kl_estimator not in ("full", "k3", "k1"):
        raise ConfigError(f"setting 'kl_estimator': one of full, k3, k1, got {cfg.kl_estimator!r}")
    for name in ("steps", "stage1_steps", "eval_every", "checkpoint_every", "trace_every"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"setting {name!r}: must be >= 0, got {getattr(cfg, name)}")
    for name in ("batch_prompts", "samples_per_prompt", "eval_problems", "eval_samples", "eval_batch", "max_new_tokens"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"setting {name!r}: must be >= 1, got {getattr(cfg, name)}")
    for name in ("keep_stage1", "stage1_from"):
        if getattr(cfg, name) and cfg.method != "score":
            raise ConfigError(f"setting {name!r}: Stage I belongs to method score, not {cfg.method}")
    if cfg.shared_samples and cfg.method not in SFT_FAMILY:
        raise ConfigError(f"setting 'shared_samples': only the SFT baselines ({', '.join(SFT_FAMILY)}) sample "
                          f"from their starting model before training, not {cfg.method}")
    if cfg.method == "score" and cfg.stage1_steps > cfg.steps:
        raise ConfigError(f"setting 'stage1_steps': {cfg.stage1_steps} exceeds steps={cfg.steps}")
    if cfg.select_by not in ("last", "train-reward"):
        raise ConfigError(f"setting 'select_by': last or train-reward, got {cfg.select_by!r}")
    if cfg.select_by == "train-reward":
        if cfg.method not in RL_FAMILY or (cfg.method == "score" and cfg.stage2 == "star"):
            raise ConfigError(f"setting 'select_by': train-reward selects among RL steps; {cfg.method}"
                              + (" with stage2=star" if cfg.method == "score" else "") + " ends with none")
        last_stage = cfg.steps - (cfg.stage1_steps if cfg.method == "score" else 0)
        if not 1 <= cfg.select_window <= last_stage:
            raise ConfigError(f"setting 'select_window': must be 1..{last_stage} (the steps of the run's last "
                              f"stage), got {cfg.select_window}")
    if cfg.lr <= 0 or cfg.sft_lr <= 0:
        raise ConfigError("setting 'lr'/'sft_lr': must be > 0")
    return cfg


def build_config(preset: str | None = None, overrides: list[str] | dict | None = None) -> TrainConfig:
    """A validated TrainConfig from a preset name and `key=value` overrides."""
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    values = dict(PRESETS.get(preset, {}))
    types = {f.name: f.type for f in fields(TrainConfig)}
    items = overrides.items() if isinstance(overrides, dict) else [
        tuple(o.split("=", 1)) if "=" in o else (o, None) for o in (overrides or [])]
    for key, raw in items:
        if raw is None:
            raise ConfigError(f"override {key!r}: expected key=value")
        if key in RETIRED_SETTINGS:
            raise ConfigError(f"setting {key!r} was removed: {RETIRED_SETTINGS[key]}")
        if key not in types:
            raise ConfigError(f"unknown setting {key!r} (see `score train --help-settings`)")
        values[key] = _coerce(key, types[key], raw) if isinstance(raw, str) else raw
    return validate(TrainConfig(**values))


def recorded_settings(config: dict) -> dict:
    """A run's config.json as build_config takes it back (a resume): without its library versions and the
    settings retired since it was written."""
    return {k: v for k, v in config.items() if k != "versions" and k not in RETIRED_SETTINGS}


def settings_help() -> str:
    """One line per field: name, default, and the field's docstring (read from the source)."""
    import inspect

    src = inspect.getsource(TrainConfig).splitlines()
    docs = {}
    for i, line in enumerate(src):
        s = line.strip()
        if ":" in s and "=" in s and not s.startswith(('"', "#")) and i + 1 < len(src):
            docs[s.split(":")[0]] = src[i + 1].strip().strip('"')
    return "\n".join(f"{f.name:24s} {str(f.default):>12s}  {docs.get(f.name, '')}"
                     for f in fields(TrainConfig))


def as_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def differing_setting(recorded: dict, want: dict, ignore: tuple = ()) -> tuple[str, object] | None:
    """(name, the run's value) of the first setting of `want` (JSON values) that a run's recorded config.json
    holds otherwise, or None; a setting newer than the run counts at its default, which is how it behaved."""
    import json

    have = {**json.loads(json.dumps(as_dict(TrainConfig()))), **recorded}
    return next(((name, have.get(name)) for name, value in want.items()
                 if name not in ignore and have.get(name) != value), None)
