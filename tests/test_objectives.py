"""The maths of the objectives: shaped rewards, baselines, and where the gradient flows.

Gradients are read at the logits: d loss / d logits[b, t] is non-zero exactly where the token
t + 1 is trained on. That tells, per token, which term of Eq. 2-4 reaches which attempt.
"""
import pytest
import torch

from score_lib import objectives as obj
from score_lib.episodes import collate, teacher_forced
from score_lib.losses import attempt_masks, kl_per_token, reinforce_kl_loss
from score_lib.policy import toy_model, toy_tokenizer
from score_lib.tasks.base import Problem

ALPHA = 10.0
OUTCOMES = {"i2c": (0.0, 1.0), "c2c": (1.0, 1.0), "c2i": (1.0, 0.0), "i2i": (0.0, 0.0)}


def test_stage2_shaped_reward_table():
    rewards = torch.tensor(list(OUTCOMES.values()))
    shaped = obj.shaped_rewards("stage2", rewards, ALPHA)
    expected = {"i2c": 1 + ALPHA, "c2c": 1.0, "c2i": -ALPHA, "i2i": 0.0}
    for row, name in enumerate(OUTCOMES):
        assert shaped[row, 1].item() == expected[name], name
        assert shaped[row, 0].item() == rewards[row, 0].item()  # attempt 1 keeps r1 (Eq. 4)


def test_per_attempt_credit_not_shared():
    # a c->i episode: attempt 1 rewarded, attempt 2 punished; one shared scalar could not do both
    shaped = obj.shaped_rewards("stage2", torch.tensor([[1.0, 0.0]]), ALPHA)
    assert shaped[0, 0] > 0 > shaped[0, 1]
    mt = obj.shaped_rewards("mt-rl", torch.tensor([[1.0, 0.0]]))
    assert mt.tolist() == [[1.0, 0.0]]


def test_stage1_reward_and_kl_assignment():
    rewards = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert obj.reward_mask("stage1", 2).tolist() == [False, True]
    assert obj.kl_coefficients("stage1", 2, 0.01, 0.1).tolist() == pytest.approx([0.1, 0.01])
    assert obj.kl_coefficients("stage2", 2, 0.01, 0.1).tolist() == pytest.approx([0.01, 0.01])
    adv = obj.advantages("stage1", rewards, torch.tensor([0, 1]), ALPHA)
    assert adv[:, 0].abs().sum() == 0 and adv[:, 1].tolist() == [0.0, 1.0]


def test_leave_one_out_baseline():
    shaped = torch.tensor([[1.0], [0.0], [0.0], [1.0], [5.0]])
    group = torch.tensor([0, 0, 0, 1, 2])
    base = obj.leave_one_out(shaped, group)
    assert base[:, 0].tolist() == pytest.approx([0.0, 0.5, 0.5, 0.0, 0.0])
    # n = 1 per prompt: no baseline at all
    assert obj.leave_one_out(shaped, torch.arange(5)).abs().sum() == 0


def test_state_baseline_conditions_attempt2_on_attempt1_outcome():
    # one prompt, the four outcomes: shaped attempt-2 rewards 11 (i->c), 1 (c->c), 0 (i->i), -10 (c->i)
    rewards = torch.tensor([OUTCOMES["i2c"], OUTCOMES["c2c"], OUTCOMES["i2i"], OUTCOMES["c2i"]])
    group = torch.zeros(4, dtype=torch.long)
    plain = obj.advantages("stage2", rewards, group, ALPHA, "loo")
    state = obj.advantages("stage2", rewards, group, ALPHA, "loo-state")
    # attempt 1 is unchanged; attempt 2 is compared only with samples whose attempt 1 scored the same
    assert state[:, 0].tolist() == pytest.approx(plain[:, 0].tolist())
    assert state[:, 1].tolist() == pytest.approx([11 - 0, 1 - (-10), 0 - 11, -10 - 1])
    # the plain baseline mixes in what attempt 1 decided: c->c is pushed down beside an i->c
    assert plain[1, 1] < 1 and state[1, 1] > 0
    # a state with no other sample falls back to the per-prompt baseline
    lone = torch.tensor([OUTCOMES["i2c"], OUTCOMES["c2c"], OUTCOMES["c2i"]])
    got = obj.advantages("stage2", lone, torch.zeros(3, dtype=torch.long), ALPHA, "loo-state")
    fallback = obj.advantages("stage2", lone, torch.zeros(3, dtype=torch.long), ALPHA, "loo")
    assert got[0, 1] == pytest.approx(fallback[0, 1]) and got[1, 1] == pytest.approx(1 - (-10))
    with pytest.raises(ValueError, match="baseline must be one of"):
        obj.advantages("stage2", lone, torch.zeros(3, dtype=torch.long), ALPHA, "mean")


def test_pooled_state_baseline_falls_back_to_the_batch_s_samples_in_the_same_state():
    # prompt 0: three right first attempts and one lone wrong one (fixed); prompt 1: two i->i, two c->c
    rewards = torch.tensor([OUTCOMES["c2c"]] * 3 + [OUTCOMES["i2c"]] + [OUTCOMES["i2i"]] * 2 + [OUTCOMES["c2c"]] * 2)
    group = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    state = obj.advantages("stage2", rewards, group, ALPHA, "loo-state")
    pooled = obj.advantages("stage2", rewards, group, ALPHA, "loo-state-pooled")
    # the lone i->c: loo-state compares it with its prompt's c->c (shaped 1), pooled with prompt 1's i->i (0)
    assert state[3, 1] == pytest.approx(11 - 1) and pooled[3, 1] == pytest.approx(11 - 0)
    # every sample with a peer in its own prompt and state keeps the loo-state advantage; attempt 1 too
    others = [0, 1, 2, 4, 5, 6, 7]
    assert torch.allclose(pooled[others], state[others])
    assert pooled[:, 0].tolist() == pytest.approx(state[:, 0].tolist())
    # a baseline: the lone sample's baseline does not move with its own attempt-2 reward
    broken = rewards.clone()
    broken[3, 1] = 0.0  # i->c becomes i->i
    again = obj.advantages("stage2", broken, group, ALPHA, "loo-state-pooled")
    shaped = obj.shaped_rewards("stage2", broken, ALPHA)
    assert shaped[3, 1] - again[3, 1] == pytest.approx(11 - pooled[3, 1])
    # alone in its state in the whole batch: the plain per-prompt baseline again
    lone = torch.tensor([OUTCOMES["i2c"], OUTCOMES["c2c"], OUTCOMES["c2i"], OUTCOMES["c2c"]])
    two = torch.tensor([0, 0, 1, 1])
    assert obj.advantages("stage2", lone, two, ALPHA, "loo-state-pooled")[0, 1] == pytest.approx(
        obj.advantages("stage2", lone, two, ALPHA, "loo")[0, 1])


def test_bad_method_and_shapes_are_named():
    with pytest.raises(ValueError, match="unknown RL method 'ppo'"):
        obj.shaped_rewards("ppo", torch.zeros(1, 2))
    with pytest.raises(ValueError, match="attempts=1"):
        obj.shaped_rewards("st-rl", torch.zeros(1, 2))


@pytest.fixture(scope="module")
def tiny():
    tok = toy_tokenizer()
    model = toy_model(tok, hidden=32, layers=2, heads=2, seed=1)
    ref = toy_model(tok, hidden=32, layers=2, heads=2, seed=2)  # differs, so the KL is non-zero
    texts = [("1+2", ["1+2=3#3", "1+2=4#4"]), ("7-5+1", ["7-5=2;2+1=3#3", "7-5=2#2"])]
    eps = [teacher_forced(tok, Problem(id=p, prompt=p, answer=""), t, "Check.") for p, t in texts]
    batch = collate(eps, tok.pad_token_id)
    return model, ref, batch


def _logit_grad(model, ref, batch, method, adv, beta1=0.01, beta2=0.1):
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = out.detach().requires_grad_(True)
    with torch.no_grad():
        ref_logits = ref(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    coef = obj.kl_coefficients(method, 2, beta1, beta2)
    loss, _ = reinforce_kl_loss(logits, ref_logits, batch, adv, coef)
    loss.backward()
    return logits.grad[:, :-1].abs().sum(-1)  # [B, L-1]: gradient reaching the prediction of token t+1


def test_masks_cover_exactly_the_attempt_tokens(tiny):
    _, _, batch = tiny
    masks = attempt_masks(batch["attempt_index"], 2)
    ids = batch["input_ids"][:, 1:]
    tok = toy_tokenizer()
    for b in range(ids.shape[0]):
        a1 = tok.decode(ids[b][masks[0, b].bool()])
        a2 = tok.decode(ids[b][masks[1, b].bool()])
        assert a1.endswith("<|end|>") and a2.endswith("<|end|>")
        assert "Check." not in a1 + a2 and "<|user|>" not in a1 + a2 and "<pad>" not in a1 + a2
    assert (masks[0] * masks[1]).sum() == 0


def test_stage1_gradients_flow_where_eq3_says(tiny):
    model, ref, batch = tiny
    masks = attempt_masks(batch["attempt_index"], 2)
    context = (masks.sum(0) == 0)
    # KL term alone (no reward): beta2 KL reaches attempt-1 tokens, beta1 KL attempt-2 tokens
    g_kl = _logit_grad(model, ref, batch, "stage1", torch.zeros(2, 2), beta1=0.0, beta2=0.1)
    assert (g_kl[masks[0].bool()] > 0).all(), "the beta2 KL term must have a gradient on attempt 1"
    assert g_kl[masks[1].bool()].sum() == 0 and g_kl[context].sum() == 0
    # reward term alone (betas 0): only attempt-2 tokens
    adv = obj.advantages("stage1", torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1]), ALPHA)
    g_pg = _logit_grad(model, ref, batch, "stage1", adv, beta1=0.0, beta2=0.0)
    assert (g_pg[masks[1].bool()] > 0).any() and g_pg[masks[0].bool()].sum() == 0
    assert g_pg[context].sum() == 0, "prompt, instruction and padding must get exactly zero gradient"
    g_all = _logit_grad(model, ref, batch, "stage1", adv)
    assert g_all[context].sum() == 0


def test_stage2_both_attempts_get_reward_gradient(tiny):
    model, ref, batch = tiny
    masks = attempt_masks(batch["attempt_index"], 2)
    adv = obj.advantages("stage2", torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([0, 1]), ALPHA)
    g = _logit_grad(model, ref, batch, "stage2", adv, beta1=0.0)
    for j in range(2):
        for b in range(2):
            assert g[b][masks[j, b].bool()].sum() > 0, (j, b)
    assert g[masks.sum(0) == 0].sum() == 0


def test_policy_gradient_is_reinforce(tiny):
    """d/dlogits of -A log softmax(z)[x] is -A (onehot(x) - softmax(z)) / N at every trained token."""
    model, ref, batch = tiny
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits.detach().requires_grad_(True)
    adv = torch.tensor([[0.5, -2.0], [1.5, 3.0]])
    loss, _ = reinforce_kl_loss(logits, logits.detach(), batch, adv, torch.zeros(2))
    loss.backward()
    masks = attempt_masks(batch["attempt_index"], 2)
    probs = torch.softmax(logits.detach()[:, :-1], -1)
    onehot = torch.nn.functional.one_hot(batch["input_ids"][:, 1:], probs.shape[-1]).float()
    weight = (adv.T[:, :, None] * masks).sum(0)  # [B, T]
    expected = -weight[..., None] * (onehot - probs) / 2
    torch.testing.assert_close(logits.grad[:, :-1], expected, atol=1e-6, rtol=1e-5)


def test_kl_has_gradient_and_is_exact(tiny):
    model, ref, batch = tiny
    ids = batch["input_ids"]
    logits = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits
    ref_logits = ref(input_ids=ids, attention_mask=batch["attention_mask"]).logits.detach()
    kl = kl_per_token(logits, ref_logits, ids, "full")
    expected = torch.nn.functional.kl_div(torch.log_softmax(ref_logits[:, :-1], -1),
                                          torch.log_softmax(logits[:, :-1], -1), log_target=True,
                                          reduction="none").sum(-1)
    torch.testing.assert_close(kl, expected, atol=1e-5, rtol=1e-4)
    assert kl.requires_grad and (kl > 0).all()
    kl.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    same = kl_per_token(ref_logits, ref_logits, ids, "k3")
    assert same.abs().max() < 1e-6


def test_a_shard_s_advantages_are_the_whole_batch_s_rows():
    # two problems a shard, one sample each: a shard never holds a problem's other samples, so every
    # attempt-2 baseline of loo-state-pooled comes from the batch's other problems, across the shard boundary
    rewards = torch.tensor([OUTCOMES["c2c"], OUTCOMES["i2c"], OUTCOMES["c2i"], OUTCOMES["i2c"]])
    shaped, adv = obj.step_advantages("stage2", rewards, 1, ALPHA, "loo-state-pooled")
    halves = [obj.step_advantages("stage2", rewards, 1, ALPHA, "loo-state-pooled", rows=slice(lo, lo + 2))
              for lo in (0, 2)]
    assert torch.equal(torch.cat([h[1] for h in halves]), adv) and torch.equal(torch.cat([h[0] for h in halves]), shaped)
    # row 1 (i->c) is measured against row 3 (also i->c), which lies in the other shard
    assert adv[1, 1] == pytest.approx(shaped[1, 1] - shaped[3, 1]) == 0
    alone = obj.step_advantages("stage2", rewards[:2], 1, ALPHA, "loo-state-pooled")[1]
    assert alone[1, 1] == pytest.approx(11)  # what a shard computing on its own rows would get wrong
    # Section 5.3: the first problem's first attempt is the base model's: attempt 1 trains nothing there,
    # and nothing else changes
    _, off = obj.step_advantages("stage2", rewards, 1, ALPHA, "loo-state-pooled", n_offline=1)
    assert off[0, 0] == 0 and adv[0, 0] != 0
    assert torch.equal(off[1:], adv[1:]) and off[0, 1] == adv[0, 1]
