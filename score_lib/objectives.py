"""The objective of every RL method as data: per-attempt shaped rewards, baselines, KL coefficients.

Pure functions on [N, k] reward tensors (N episodes, k attempts); no model in sight. The loss
(losses.py) turns their output into REINFORCE + KL terms. Equation numbers are the paper's
(Kumar et al., 2024):

- Eq. 2, base RL:      max E[r(y, y*)] - beta1 KL(pi || pi_ref), each attempt credited with its own
                       reward (discount 0 across turns).
- Eq. 3, Stage I:      max E[r(y2, y*)] - beta2 KL(pi(.|x) || pi_ref(.|x)) on attempt 1, plus the
                       usual beta1 KL on attempt 2. Attempt 1 gets no reward term.
- Eq. 4, Stage II:     max E[r(y1) + r(y2)] - beta1 KL on both attempts, where attempt 2's reward
                       gets the bonus alpha * (r(y2) - r(y1)).

For k > 2 attempts the same rules apply pairwise: every later attempt is shaped against the one
before it (Stage II) and only the first attempt is pinned (Stage I).
"""
from __future__ import annotations

import torch

RL_METHODS = ("stage1", "stage2", "mt-rl", "st-rl")


def _check(method: str, rewards: torch.Tensor):
    if method not in RL_METHODS:
        raise ValueError(f"objective: unknown RL method {method!r} (one of {', '.join(RL_METHODS)})")
    if rewards.dim() != 2:
        raise ValueError(f"objective: rewards must be [episodes, attempts], got shape {tuple(rewards.shape)}")
    if method == "st-rl" and rewards.shape[1] != 1:
        raise ValueError("objective: st-rl trains a single attempt; set attempts=1")


def shaped_rewards(method: str, rewards: torch.Tensor, alpha: float = 0.0) -> torch.Tensor:
    """The reward each attempt's tokens are credited with, [N, k].

    With binary rewards Stage II gives attempt 2: i->c 1 + alpha, c->c 1, c->i -alpha, i->i 0.
    """
    _check(method, rewards)
    shaped = rewards.clone().float()
    if method == "stage1":
        shaped[:, 0] = 0.0  # Eq. 3: no reward term on attempt 1 (it carries reward_mask False too)
    if method == "stage2":
        # Eq. 4: bonus alpha * (r_j - r_{j-1}) on every later attempt
        shaped[:, 1:] = rewards[:, 1:] + alpha * (rewards[:, 1:] - rewards[:, :-1])
    return shaped


def reward_mask(method: str, k: int) -> torch.Tensor:
    """[k] booleans: which attempts carry a policy-gradient (reward) term."""
    mask = torch.ones(k, dtype=torch.bool)
    if method == "stage1":
        mask[0] = False  # Eq. 3: attempt 1 is only pinned by the KL
    return mask


def kl_coefficients(method: str, k: int, beta1: float, beta2: float) -> torch.Tensor:
    """[k] KL coefficients: beta2 on attempt 1 in Stage I (Eq. 3), beta1 everywhere else (Eq. 2, 4)."""
    coefs = torch.full((k,), float(beta1))
    if method == "stage1":
        coefs[0] = float(beta2)
    return coefs


def leave_one_out(shaped: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Per-prompt leave-one-out baseline, [N, k]: the mean shaped reward of the OTHER samples of the
    same prompt, per attempt. A prompt with one sample gets baseline 0 (plain REINFORCE)."""
    n_groups = int(group.max()) + 1
    sums = torch.zeros(n_groups, shaped.shape[1]).index_add_(0, group, shaped)
    counts = torch.zeros(n_groups).index_add_(0, group, torch.ones(len(group)))
    others = (counts[group] - 1).clamp(min=1)[:, None]
    baseline = (sums[group] - shaped) / others
    return torch.where((counts[group] > 1)[:, None], baseline, torch.zeros_like(baseline))


def _peers(ids: torch.Tensor) -> torch.Tensor:
    """For each row, how many OTHER rows share its id."""
    counts = torch.zeros(int(ids.max()) + 1).index_add_(0, ids, torch.ones(len(ids)))
    return counts[ids] - 1


def state_leave_one_out(shaped: torch.Tensor, rewards: torch.Tensor, group: torch.Tensor,
                        pooled: bool = False) -> torch.Tensor:
    """Leave-one-out baseline that also conditions attempt j > 1 on the previous attempt's reward, [N, k].

    Attempt j's baseline is the mean shaped reward of the other samples of the same prompt whose attempt
    j - 1 scored the same. The previous attempt is part of the state attempt j is written in, so this is
    still a baseline (it never depends on the sample's own attempt j) and the gradient stays unbiased;
    what it removes is the part of attempt 2's shaped reward that attempt 1 decided (the -alpha * r1
    of Eq. 4), which otherwise reaches attempt 2's tokens as noise. Where no other sample of the prompt
    shares the state, the plain per-prompt baseline stands in, or with `pooled` the mean over the batch's
    other samples in the same state (other prompts: still independent of the sample's own attempt j).
    With 4 samples at Acc@t1 0.7 a third of the wrong first attempts are alone in their prompt."""
    plain = leave_one_out(shaped, group)
    out = plain.clone()
    for j in range(1, shaped.shape[1]):
        prev = rewards[:, j - 1].float()
        _, state = torch.unique(torch.stack([group.float(), prev], dim=1), dim=0, return_inverse=True)
        fallback = plain[:, j]
        if pooled:
            _, level = torch.unique(prev, return_inverse=True)
            fallback = torch.where(_peers(level) > 0, leave_one_out(shaped[:, j:j + 1], level)[:, 0], fallback)
        same = leave_one_out(shaped[:, j:j + 1], state)[:, 0]
        out[:, j] = torch.where(_peers(state) > 0, same, fallback)
    return out


BASELINES = ("loo", "loo-state", "loo-state-pooled")


def advantages(method: str, rewards: torch.Tensor, group: torch.Tensor, alpha: float,
               baseline: str = "loo") -> torch.Tensor:
    """Shaped reward minus the baseline (BASELINES), zero where the method has no reward term."""
    shaped = shaped_rewards(method, rewards, alpha)
    if baseline == "loo":
        base = leave_one_out(shaped, group)
    elif baseline in ("loo-state", "loo-state-pooled"):
        base = state_leave_one_out(shaped, rewards, group, pooled=baseline == "loo-state-pooled")
    else:
        raise ValueError(f"objective: baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
    adv = shaped - base
    return adv * reward_mask(method, rewards.shape[1])[None, :]


def step_advantages(method: str, rewards: torch.Tensor, samples_per_prompt: int, alpha: float, baseline: str,
                    n_offline: int = 0, rows: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
    """A training step's shaped rewards and advantages for `rows` (one process's shard) of the whole batch's
    rewards [N, k], each problem's samples adjacent. The baselines see the whole batch, so a shard gets the
    single-process values: loo-state-pooled pools over problems, which the shards split.
    Section 5.3: the first n_offline problems' first attempts are the base model's, states rather than samples
    of the policy; they keep their reward (attempt 2's alpha * (r2 - r1) needs it) but train nothing. They
    are whole LOO groups, and attempt 1's baseline never looks outside its group, so no other row changes."""
    group = torch.arange(len(rewards)) // samples_per_prompt
    adv = advantages(method, rewards, group, alpha, baseline)
    adv[:n_offline * samples_per_prompt, 0] = 0.0
    return shaped_rewards(method, rewards, alpha)[rows], adv[rows]
