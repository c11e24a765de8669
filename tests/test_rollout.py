"""Rollouts: KV reuse gives the same episodes as re-encoding, logprobs match a teacher-forced pass."""
import pytest
import torch

from score_lib.episodes import collate, token_logprobs
from score_lib.policy import load_policy
from score_lib.rollout import grade, rollout
from score_lib.tasks.toy import ToyTask

INSTR = ["Check for a mistake."]


@pytest.fixture(scope="module")
def setup(tiny_base):
    model, tok = load_policy(str(tiny_base))
    task = ToyTask(n_train=64, n_test=64)
    return model, tok, task


def test_kv_reuse_equals_reencoding(setup):
    model, tok, task = setup
    probs = task.problems("test", 6)
    a = rollout(model, tok, probs, INSTR * 2, greedy=True, max_new_tokens=16)
    b = rollout(model, tok, probs, INSTR * 2, greedy=True, max_new_tokens=16, reuse_kv=False)
    for ea, eb in zip(a, b):
        assert len(ea.attempts) == 3
        for x, y in zip(ea.attempts, eb.attempts):
            assert x.ids == y.ids
            torch.testing.assert_close(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=1e-4, rtol=0)


def test_batch_equals_single_rows(setup):
    model, tok, task = setup
    probs = task.problems("test", 5)
    batch = rollout(model, tok, probs, INSTR, greedy=True, max_new_tokens=16)
    for p, ep in zip(probs, batch):
        one = rollout(model, tok, [p], INSTR, greedy=True, max_new_tokens=16)[0]
        assert [a.ids for a in one.attempts] == [a.ids for a in ep.attempts]


def test_sampled_logprobs_match_teacher_forcing(setup):
    """The logprobs kept during sampling equal a fresh forward pass over the collated episode, so
    the training layout (collate) and the generation layout (one cache with gaps) agree token by token."""
    model, tok, task = setup
    eps = rollout(model, tok, task.problems("train", 4), INSTR, n=2, temperature=1.0,
                  max_new_tokens=16, seed=0)
    batch = collate(eps, tok.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    lp = token_logprobs(logits, batch["input_ids"])
    idx = batch["attempt_index"][:, 1:]
    for i, ep in enumerate(eps):
        for j, att in enumerate(ep.attempts):
            torch.testing.assert_close(lp[i][idx[i] == j], torch.tensor(att.logprobs), atol=1e-4, rtol=0)


def test_decoding_the_running_rows_apart_samples_the_same_tokens(setup, monkeypatch):
    """Rows that keep running after most of the batch stopped decode in a stream of their own, merged back
    after the attempt: the episodes (three attempts, so a merged cache is decoded on) are the ones the
    whole batch gives, token for token, at temperature 1 from the same seed."""
    import score_lib.rollout as rollout_mod

    model, tok, task = setup
    probs = task.problems("train", 8)
    splits = []
    real_rows = rollout_mod._Stream.rows
    monkeypatch.setattr(rollout_mod._Stream, "rows", lambda self, index: splits.append(len(index))
                        or real_rows(self, index))
    monkeypatch.setattr(rollout_mod, "COMPACT_SHARE", 0.9)  # split as soon as a tenth of the rows stopped
    apart = rollout(model, tok, probs, INSTR * 2, n=4, temperature=1.0, max_new_tokens=24, seed=5)
    assert len(splits) >= 6  # splits of splits, in more than one attempt
    monkeypatch.setattr(rollout_mod, "COMPACT_SHARE", 0.0)  # never split: every row decodes to the end
    n_splits = len(splits)
    whole = rollout(model, tok, probs, INSTR * 2, n=4, temperature=1.0, max_new_tokens=24, seed=5)
    assert len(splits) == n_splits
    for ea, eb in zip(apart, whole):
        for x, y in zip(ea.attempts, eb.attempts):
            assert x.ids == y.ids
            torch.testing.assert_close(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=1e-4, rtol=0)
    lengths = {len(a.ids) for e in whole for a in e.attempts}
    assert min(lengths) < 12 and max(lengths) == 24  # short and truncated rows in the same batch


def test_seeded_sampling_is_reproducible_and_truncation_recorded(setup):
    model, tok, task = setup
    probs = task.problems("train", 4)
    a = rollout(model, tok, probs, INSTR, n=2, max_new_tokens=3, seed=7)
    b = rollout(model, tok, probs, INSTR, n=2, max_new_tokens=3, seed=7)
    assert [[x.ids for x in e.attempts] for e in a] == [[x.ids for x in e.attempts] for e in b]
    assert [e.sample for e in a] == [0, 1] * 4
    for e in a:
        for att in e.attempts:
            assert len(att.ids) <= 3
            assert att.truncated == (att.ids[-1] != tok.eos_token_id)
    grade(task, a)
    assert all(att.reward in (0.0, 1.0) for e in a for att in e.attempts)


def test_ungraded_turns_are_marked(setup):
    model, tok, task = setup
    eps = grade(task, rollout(model, tok, task.problems("test", 2), ["Review.", "Revise."], greedy=True,
                              max_new_tokens=8, graded=[True, False, True]))
    assert [a.graded for a in eps[0].attempts] == [True, False, True]
    assert len(eps[0].graded) == 2


class _Out(dict):
    __getattr__ = dict.__getitem__  # ModelOutput's two access styles


class _OldStyleModel(torch.nn.Module):
    """A model with transformers 5.17's forward signature (past_key_values in and out), as on the GPU
    images, wrapping the installed one; `calls` records whether the cache came back on every decode step."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.generation_config, self.calls = inner, inner.generation_config, []

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache=None, logits_to_keep=0, **kwargs):
        from score_lib.rollout import cache_kwarg

        self.calls.append(past_key_values is not None)
        name = cache_kwarg(self.inner)
        out = self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=use_cache, logits_to_keep=logits_to_keep, **{name: past_key_values})
        return _Out(logits=out.logits, past_key_values=out[name])


def test_old_transformers_cache_name_is_used(setup):
    from score_lib.rollout import cache_kwarg

    model, tok, task = setup
    old = _OldStyleModel(model)
    assert cache_kwarg(old) == "past_key_values"
    probs = task.problems("test", 3)
    a = rollout(model, tok, probs, INSTR, n=2, seed=5, max_new_tokens=12)
    b = rollout(old, tok, probs, INSTR, n=2, seed=5, max_new_tokens=12)
    assert [[x.ids for x in e.attempts] for e in a] == [[x.ids for x in e.attempts] for e in b]
    assert old.calls and all(old.calls)  # the cache goes in under the old name on every call (empty for the prefill)
