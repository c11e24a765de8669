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
# # 4. Stage II: paying for the change, not just the answer
#
# **Question.** Stage II trains both attempts on their rewards. Left alone, that objective is content
# with a good first attempt copied twice. What does SCoRe's bonus change, and how strong must it be?
#
# Stage II (the paper's Eq. 4) maximises $r(y_1) + r(y_2)$ with the weak KL $\beta_1$ on both attempts,
# and adds to attempt 2's reward a bonus $b = \alpha\,(r(y_2) - r(y_1))$. With 0/1 rewards, attempt 2
# is credited with:
#
# | transition | i->c | c->c | c->i | i->i |
# |---|---|---|---|---|
# | attempt-2 reward | $1 + \alpha$ | $1$ | $-\alpha$ | $0$ |
#
# $\alpha = 0$ is plain multi-turn RL; the paper uses $\alpha = 10$ (Table 5). What to look for: as
# $\alpha$ grows, the advantage mass of attempt 2 moves onto the two transitions that *change*
# correctness (i->c and c->i), and the trained model breaks fewer right answers (c->i falls) so Delta
# rises.
#
# **The world.** This notebook trains on the *pick* world (`docs/toy_world.md`, "The pick world"):
# which two lettered digits reach a target, `a3 b8 c5 d1 e9?13` -> `13-3=10;13-8=5#b+c`. Its base
# sometimes checks its first pick against the prompt (`c=5;13-5=8;b=8v`) and that check tells right
# picks from wrong ones. The bonus can only reinforce a correction the model is able to make: on the
# chain world, whose bases flag right and wrong steps equally often, alpha = 10 did not beat alpha = 0
# (RESULTS.md).
#
# **The base.** This notebook uses the pick world's *first* base (`FIRST_PICK_BASE` below: half of its
# second attempts check), not the world's default. On the first base one seed of each alpha shows the
# lesson. On the bases where a third of the second attempts check and the rest re-scan carelessly (Delta
# negative, as in the paper) it holds only on average: on the fixed-step one SCoRe's Delta is +0.042
# against +0.030 without shaping over three seeds, but not in seed 0, the seed this notebook runs; on the
# world's default (stopped on accuracy and a working check) +0.002 against -0.013 over eleven seeds,
# higher in 10 of them, by only 0.005 in seed 0 (RESULTS.md, "Five more seeds"). The base is built on
# first use (about 12 minutes on 2 cores, then cached).

# %% tags=["parameters"]
import os

MODE = os.environ.get("SCORE_NOTEBOOK_MODE", "smoke")  # "smoke": seconds (CI); "full": the lecture (< 10 min)

# %%
import nbcommon

nbcommon.check_mode(MODE)
ALPHAS = (0.0, 1.0, 10.0)
if MODE == "smoke":
    BUDGET = {**nbcommon.SMOKE_RUN, "toy_kind": "pick"}
else:  # the ablation's budget on the pick world (score ablate --preset toy): Stage I 20 steps, then
    # Stage II 40, 8 problems x 4 samples, eval 256 x 4 at temperature 1; about 3 minutes a run
    from score_lib.ablate import WORLDS

    BUDGET = {**WORLDS["toy"], "trace_every": 2, "eval_problems": 256}  # 256 as notebooks 02, 03 and 05
BUDGET

# %% [markdown]
# ## The shaped reward table
#
# From `score_lib.objectives.shaped_rewards`, for each alpha (the app's Reward shaping page shows the same):

# %%
import pandas as pd

from workbench import derive, figures

pd.DataFrame({f"alpha={a:g}": {r["transition"]: r["Stage II t2"] for r in derive.shaping_table(a)}
              for a in ALPHAS})

# %%
figures.fig_shaping(ALPHAS).show()

# %% [markdown]
# A c->c episode earns the same 1 whatever alpha is, while i->c and c->i are pulled apart by $2\alpha$.
# After the leave-one-out baseline, copying a right answer is an unremarkable outcome; flipping an answer
# is where the signal is.

# %% [markdown]
# ## Three runs that differ only in alpha
#
# Each run is SCoRe (`--preset toy-score`): the same Stage I (same seed, same steps), then Stage II with
# its alpha. The runs land in `notebooks/runs/04_stage2_reward_shaping-<mode>/`, so the app can show
# them too.

# %%
FIRST_PICK_BASE = {"p_check": 0.5, "slip2": 0.25, "p_copy": 0.5, "target_acc": 0.45,  # RESULTS.md, "Which pick base"
                   "target_flag_gap": 0.0, "max_steps": 1600, "check_every": 20, "max_seconds": 1800.0}
BASE = nbcommon.toy_base(MODE, "pick", **FIRST_PICK_BASE)
RUNS = nbcommon.runs_dir("04_stage2_reward_shaping", MODE)
final = {a: nbcommon.train(RUNS / f"alpha-{a:g}", "toy-score", model=BASE, alpha=a, **BUDGET) for a in ALPHAS}
table = pd.DataFrame([derive.compare_row(f"alpha={a:g}", m, percent=False) for a, m in final.items()])
table.set_index("run").round(3)

# %% [markdown]
# ## Where the advantage mass goes
#
# Each run records its training episodes with the advantages they were trained with
# (`traces.jsonl`). Left: the share of the total |advantage| of attempt 2 that each transition carries
# during Stage II. Right: the summed (signed) advantage.

# %%
from score_lib.runs import read_metrics
from workbench.data import RunCache

stage2_rows = {}
for a in ALPHAS:
    cache = RunCache(RUNS / f"alpha-{a:g}").refresh()
    stage2_rows[a] = [r for r in cache.trace_rows
                      if r["split"] == "train" and r["stage"] == "stage2" and r["transition"]]
figures.fig_advantage_mass({f"alpha={a:g}": derive.advantage_mass(rows) for a, rows in stage2_rows.items()}).show()

# %% [markdown]
# The runs visited different episodes, so to isolate alpha we also take the *same* recorded episodes
# (those of the alpha = 10 run) and recompute their advantages under each alpha
# (`derive.recompute_advantages`, with the runs' baseline over the samples the traces hold):

# %%
same = stage2_rows[max(ALPHAS)]
BASELINE = BUDGET.get("baseline", "loo")  # full mode: the ablation's loo-state
masses = {f"alpha={a:g}": derive.advantage_mass(same, derive.recompute_advantages(same, a, baseline=BASELINE))
          for a in ALPHAS}
figures.fig_advantage_mass(masses).show()
pd.DataFrame({label: {derive.LABELS[t]: round(m[t]["share"], 3) for t in m} for label, m in masses.items()})

# %% [markdown]
# ## Which baseline
#
# With alpha = 10 the plain leave-one-out baseline (`loo`, the mean shaped reward of the problem's other
# samples) mixes in attempt 1's outcome: when one of four samples fixed its answer (shaped reward 11),
# a sibling that kept a right answer (1) sits below the mean and is pushed down, although its second attempt
# did nothing wrong: the $-\alpha r_1$ of Eq. 4 belongs to attempt 1. `loo-state` compares attempt 2 only
# with the samples whose attempt 1 scored the same, so it keeps that term off attempt 2's tokens. It is still
# a baseline (it never looks at the sample's own attempt 2), and the ablation presets use it. The mean
# attempt-2 advantage per transition of the same episodes under each:

# %%
by_baseline = {b: derive.advantage_mass(same, derive.recompute_advantages(same, max(ALPHAS), baseline=b))
               for b in ("loo", "loo-state")}
pd.DataFrame({b: {derive.LABELS[t]: round(m[t]["sum"] / m[t]["n"], 2) if m[t]["n"] else None for t in m}
              for b, m in by_baseline.items()})

# %% [markdown]
# ## Delta and c->i against alpha
#
# The evaluation after training. The bonus makes breaking a right answer costly ($-\alpha$) and fixing a
# wrong one valuable ($1 + \alpha$), so we expect c->i to fall and Delta to rise with alpha.

# %%
rows = [derive.compare_row(f"alpha={a:g}", m) for a, m in final.items()]
figures.fig_compare(rows, ("Delta", "i->c", "c->i")).update_layout(title_text="After training, by alpha").show()
records = {f"alpha={a:g}": read_metrics(RUNS / f"alpha-{a:g}") for a in ALPHAS}
figures.fig_runs_metric(records, "train_delta_c2i", "c->i on the training batches").show()

# %% [markdown]
# ## The finding (checked in full mode)
#
# Compared with alpha = 0 (multi-turn RL after Stage I), alpha = 10 ends with a higher Delta or a lower
# c->i on the test problems.

# %%
lo, hi = final[min(ALPHAS)], final[max(ALPHAS)]
print({f"alpha={a:g}": f"Delta {m['delta']:+.3f}, c->i {m['delta_c2i']:.3f}" for a, m in final.items()})
if MODE == "full":
    assert hi["delta"] > lo["delta"] or hi["delta_c2i"] < lo["delta_c2i"], (lo, hi)
