# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. The same protocol on a real model
#
# **Question.** Everything so far ran on a toy model. What changes when the model is a real language
# model and the problems are real math?
#
# Nothing in the protocol: the same two attempts with an instruction between them, the same oracle
# reward, the same objectives and the same metrics. What changes is the instruction text (it now asks
# for the answer in `\boxed{}`), the length of the attempts, the grading (math-verify instead of an
# exact integer), greedy evaluation as in the paper, and a LoRA adapter instead of training all weights.
#
# - **full mode**: SmolLM2-135M-Instruct on GSM8K with the `gsm8k-smollm2` preset, cut to two steps
#   and four evaluation problems: enough to see every piece work on a CPU, far too little to learn anything.
#   It needs the model (`score models pull smollm2-135m`) and GSM8K under `$SCORE_DATA_DIR`
#   (default `../shared/data`); without them it says so and runs the toy world instead.
# - **smoke mode**: the very same cells on the toy world with a tiny model.
#
# At the end: the preset for a real run on a GPU, with the paper's hyperparameters.

# %% tags=["parameters"]
import os

MODE = os.environ.get("SCORE_NOTEBOOK_MODE", "smoke")  # "smoke": seconds (CI); "full": the lecture (< 10 min)

# %%
import nbcommon
from score_lib.models import registered

nbcommon.check_mode(MODE)
DATA = nbcommon.data_dir()
missing = []
if MODE == "full":
    if "smollm2-135m" not in registered():
        missing.append("the model: run `score models pull smollm2-135m`")
    if not (DATA / "gsm8k" / "test.jsonl").exists():
        missing.append(f"GSM8K: {DATA}/gsm8k/test.jsonl (set SCORE_DATA_DIR to the folder holding gsm8k/)")
REAL = MODE == "full" and not missing
if REAL:
    # the preset's own budget (4 steps of 2 problems, 8 evaluation problems) takes about 15 minutes on 2 busy
    # cores; one Stage I and one Stage II step on one problem (2 samples), evaluated on 4, fits in 10
    PRESET = "gsm8k-smollm2"
    SETTINGS = {"data_dir": str(DATA), "steps": 2, "stage1_steps": 1, "batch_prompts": 1, "eval_problems": 4}
else:
    if missing:
        print("SKIPPING the real model, missing:\n  " + "\n  ".join(missing) + "\nrunning the toy world instead.")
    PRESET = "toy-score"
    SETTINGS = {**nbcommon.SMOKE_RUN, "model": nbcommon.toy_base(MODE)} if MODE == "smoke" else \
        {"model": nbcommon.toy_base(MODE), "steps": 20, "stage1_steps": 10, "batch_prompts": 8,
         "eval_every": 0, "eval_problems": 128, "checkpoint_every": 0}
print(f"protocol: --preset {PRESET}", " ".join(f"--set {k}={v}" for k, v in SETTINGS.items()))

# %% [markdown]
# ## The run's settings
#
# One `TrainConfig` holds everything a run needs (`score train --help-settings` lists each field).
# These are the ones that differ between the toy world and the real model:

# %%
import pandas as pd

from score_lib.config import build_config

cfg = build_config(PRESET, SETTINGS)
KEYS = ["task", "model", "instruction", "lora", "lr", "steps", "stage1_steps", "batch_prompts",
        "samples_per_prompt", "max_new_tokens", "alpha", "beta1", "beta2", "eval_greedy", "eval_problems"]
pd.DataFrame({"value": {k: getattr(cfg, k) for k in KEYS}})

# %% [markdown]
# ## Step 1: the model as it is
#
# `method=eval` evaluates without training: the paper's first row (base model), on this model.

# %%
from workbench import derive

RUNS = nbcommon.runs_dir("06_real_models", MODE)
before = nbcommon.train(RUNS / "base", PRESET, **{**SETTINGS, "method": "eval", "steps": 0})
pd.DataFrame([derive.compare_row("before training", before, percent=False)]).set_index("run").round(3)

# %% [markdown]
# ## Step 2: SCoRe, Stage I then Stage II
#
# The same `Trainer` as every toy run: rollouts of two attempts, oracle rewards, Eq. 3 then Eq. 4,
# REINFORCE with the KL to the reference model, one optimiser step per batch.

# %%
after = nbcommon.train(RUNS / "score", PRESET, **SETTINGS)

# %%
from score_lib.runs import read_metrics, read_traces
from workbench import figures

live = figures.live_figures(read_metrics(RUNS / "score"))
live["reward"].show()
live["kl"].show()

# %% [markdown]
# One recorded training episode, as the Trace inspector page shows it: attempt 1, the instruction, attempt 2.

# %%
trace = read_traces(RUNS / "score", split="train")[-1]
print("PROBLEM:", trace["prompt"][:400], "\nGOLD:", trace["gold"])
for j, att in enumerate(trace["attempts"], 1):
    print(f"\n--- attempt {j}: answer {att['answer']!r}, reward {att['reward']}, "
          f"shaped {att.get('shaped_reward')}, advantage {att.get('advantage')}\n{att['text'][:600]}")

# %% [markdown]
# ## The paper-style rows

# %%
from score_lib.evaluate import JSON_KEYS, json_row

table = pd.DataFrame([{"run": "before training", **json_row(before)}, {"run": "SCoRe", **json_row(after)}])
table.set_index("run").round(3)

# %% [markdown]
# With two steps and four evaluation problems these numbers are anecdotes (one problem is 25 points),
# and a 135M-parameter model rarely finishes a GSM8K solution within the preset's 96 tokens. The point
# is that the same code produces the same row for a real model.
#
# ## A real run on a GPU
#
# The presets `math500-qwen2.5-1.5b-instruct` and `mbpp-humaneval-qwen2.5-coder-1.5b-instruct` carry
# the paper's hyperparameters where they apply (Table 5: alpha 10, beta1 0.01, beta2 0.1 for math and
# 0.25 for code, temperature 1.0, greedy evaluation). On a GPU machine:
#
# ```bash
# make setup TORCH="torch==2.13.0" PIP_EXTRA="--index-url https://<your-index>"
# score train --preset math500-qwen2.5-1.5b-instruct --out runs/math500-score
# streamlit run app.py -- --runs-dir runs
# ```
#
# and on this laptop, the real-model commands of this notebook:
#
# ```bash
# score models pull smollm2-135m
# score eval --model smollm2-135m --task gsm8k --data-dir ../shared/data --limit 50
# score train --preset gsm8k-smollm2 --out runs/gsm8k-smollm2
# ```

# %%
gpu = build_config("math500-qwen2.5-1.5b-instruct")
pd.DataFrame({"this notebook": {k: getattr(cfg, k) for k in KEYS},
              "GPU preset": {k: getattr(gpu, k) for k in KEYS}})

# %% [markdown]
# ## Checked in full mode
#
# Both rows are complete: every metric of the paper's tables was measured on the model this notebook ran.

# %%
print(f"model {cfg.model}, task {cfg.task}")
print(table.to_string(index=False))
if MODE == "full":
    for row in (before, after):
        assert all(row.get(k) is not None for k in JSON_KEYS), json_row(row)
    print("real model: yes" if REAL else "real model: NO (missing, see above)")
