"""REINFORCE + KL to a frozen reference, masked to the attempt tokens.

For a batch of episodes with attempt_index a_t (j for tokens of attempt j, -1 for context and
padding), advantages A[i, j] and KL coefficients beta[j] (objectives.py), the loss is

    L = 1/N * sum_i sum_t [a_t = j >= 0] * ( -A[i, j] * log pi(x_t | x_<t) + beta[j] * KL_t )

which is the negative of Eq. 2-4 per episode: the policy-gradient term is REINFORCE on each
attempt's own (shaped) reward, and the KL term is the sequence KL of each attempt, a sum of
per-token KLs, computed WITH gradient (a detached KL would leave attempt 1 unanchored). Context
tokens (prompt, instruction, padding) have a_t = -1 and contribute exactly nothing.
"""
from __future__ import annotations

import torch

from .episodes import token_logprobs

KL_ESTIMATORS = ("full", "k3", "k1")


def kl_per_token(logits: torch.Tensor, ref_logits: torch.Tensor, input_ids: torch.Tensor,
                 estimator: str = "full") -> torch.Tensor:
    """KL(pi || pi_ref) of the next-token distributions at every position, [B, L-1].

    full: exact sum over the vocabulary (low variance, costs a vocabulary-sized product);
    k3:   exp(q - p) - (q - p) - 1 on the sampled token (Schulman's unbiased, non-negative estimate);
    k1:   p - q on the sampled token.
    """
    logp_all = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    logq_all = torch.log_softmax(ref_logits[:, :-1].float(), dim=-1)
    if estimator == "full":
        return (logp_all.exp() * (logp_all - logq_all)).sum(-1)
    target = input_ids[:, 1:, None]
    logp = logp_all.gather(-1, target).squeeze(-1)
    logq = logq_all.gather(-1, target).squeeze(-1)
    if estimator == "k3":
        d = logq - logp
        return d.exp() - d - 1
    if estimator == "k1":
        return logp - logq
    raise ValueError(f"kl_estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")


def attempt_masks(attempt_index: torch.Tensor, k: int) -> torch.Tensor:
    """[k, B, L-1] float masks over TARGET tokens: mask[j, b, t] = 1 iff token t+1 belongs to attempt j."""
    target_attempt = attempt_index[:, 1:]
    return torch.stack([(target_attempt == j).float() for j in range(k)])


def attempt_tail(batch: dict[str, torch.Tensor]) -> tuple[int, dict[str, torch.Tensor]]:
    """(keep, the batch's last `keep` columns): the positions from the one before the first attempt token on.

    Logits at earlier positions predict prompt tokens, which every loss masks out, so the model is asked
    for logits_to_keep=keep and the loss gets the matching tail: the same loss and gradient without the
    vocabulary-sized logits, log-softmaxes and KL terms of the prompt (151,936 wide per token for Qwen2)."""
    is_attempt = (batch["attempt_index"] >= 0).any(dim=0)
    first = int(is_attempt.float().argmax()) if bool(is_attempt.any()) else batch["attempt_index"].shape[1] - 1
    keep = batch["attempt_index"].shape[1] - max(first - 1, 0)
    return keep, {k: v[:, -keep:] for k, v in batch.items()}


def reinforce_kl_loss(logits: torch.Tensor, ref_logits: torch.Tensor, batch: dict[str, torch.Tensor],
                      adv: torch.Tensor, kl_coef: torch.Tensor, estimator: str = "full"):
    """The loss above plus per-attempt statistics (detached floats) for logging."""
    k = adv.shape[1]
    masks = attempt_masks(batch["attempt_index"], k)  # [k, B, T]
    logp = token_logprobs(logits, batch["input_ids"])  # [B, T]
    kl = kl_per_token(logits, ref_logits, batch["input_ids"], estimator)  # [B, T]
    n = logits.shape[0]
    pg_terms = -(adv.T[:, :, None] * logp[None] * masks).sum(dim=(1, 2)) / n  # [k]; Eq. 2-4 reward term
    kl_terms = (kl[None] * masks).sum(dim=(1, 2)) / n  # [k]; sequence KL per attempt, with gradient
    loss = pg_terms.sum() + (kl_coef * kl_terms).sum()
    with torch.no_grad():
        probs = torch.softmax(logits[:, :-1].float(), dim=-1)
        entropy = -(probs * torch.log(probs.clamp_min(1e-30))).sum(-1)
        tokens = masks.sum(dim=(1, 2)).clamp(min=1)
        stats = {"loss": loss.item(), "pg_loss": pg_terms.sum().item()}
        for j in range(k):
            stats[f"kl_t{j + 1}"] = float(kl_terms[j])
            stats[f"entropy_t{j + 1}"] = float((entropy * masks[j]).sum() / tokens[j])
            stats[f"len_t{j + 1}"] = float(masks[j].sum() / n)
    return loss, stats


def sft_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor], attempts: list[int]) -> torch.Tensor:
    """Mean next-token cross-entropy over the tokens of the given attempts (SFT baselines)."""
    target_attempt = batch["attempt_index"][:, 1:]
    mask = torch.zeros_like(target_attempt, dtype=torch.bool)
    for j in attempts:
        mask |= target_attempt == j
    logp = token_logprobs(logits, batch["input_ids"])
    return -(logp * mask).sum() / mask.sum().clamp(min=1)
