"""Logits only from the position before the first attempt token: the same loss and gradient as full logits."""
import pytest
import torch

from score_lib.episodes import collate
from score_lib.losses import attempt_tail, reinforce_kl_loss
from score_lib.policy import toy_model, toy_tokenizer
from score_lib.rollout import rollout
from score_lib.tasks.toy import ToyTask


@pytest.mark.parametrize("estimator", ["full", "k3", "k1"])
def test_tail_logits_give_the_same_loss_and_gradient(estimator):
    tok = toy_tokenizer()
    model, ref = toy_model(tok, seed=0), toy_model(tok, seed=1)
    probs = ToyTask(n_train=64, n_test=64).problems("test", 3)
    eps = rollout(model, tok, probs, ["Check for a mistake."], n=2, max_new_tokens=8, seed=0)
    eps[0].prompt_ids = eps[0].prompt_ids + tok("  ", add_special_tokens=False)["input_ids"]  # prompts of unequal length
    batch = collate(eps, tok.pad_token_id)
    keep, tail = attempt_tail(batch)
    first = int((batch["attempt_index"] >= 0).any(0).float().argmax())
    assert keep == batch["input_ids"].shape[1] - first + 1 < batch["input_ids"].shape[1]
    adv, coef = torch.randn(len(eps), 2), torch.tensor([0.1, 0.01])
    fwd = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    results = []
    for logits_to_keep, b in ((0, batch), (keep, tail)):
        model.zero_grad()
        with torch.no_grad():
            ref_logits = ref(**fwd, logits_to_keep=logits_to_keep).logits
        loss, stats = reinforce_kl_loss(model(**fwd, logits_to_keep=logits_to_keep).logits, ref_logits, b, adv, coef,
                                        estimator)
        loss.backward()
        results.append((loss.detach(), stats, [p.grad.clone() for p in model.parameters()]))
    (l0, s0, g0), (l1, s1, g1) = results
    torch.testing.assert_close(l1, l0)
    assert s1.keys() == s0.keys() and all(abs(s1[k] - s0[k]) < 1e-5 for k in s0)
    for a, b in zip(g0, g1):
        torch.testing.assert_close(b, a)
    assert any(g.abs().sum() > 0 for g in g1)
