"""Section 5.3: Stage II with first attempts sampled from the base (reference) model."""
import random

import torch

from score_lib.config import build_config
from score_lib.rollout import rollout
from score_lib.runs import read_metrics, read_traces
from score_lib.trainer import Trainer, step_seed

from .conftest import TINY


def _cfg(*extra):
    overrides = [o for o in TINY if not o.startswith(("eval_every", "checkpoint_every"))]
    return build_config("toy-stage2", overrides + ["eval_every=0", "checkpoint_every=0", *extra])


def test_stage2_with_offline_share_runs_and_logs(tiny_base, tmp_path):
    Trainer(_cfg("offline_first_attempts=0.5"), tmp_path / "run", progress=False).run()
    steps = [r for r in read_metrics(tmp_path / "run") if r["stage"] == "stage2"]
    assert len(steps) == 2 and all(r["offline_share"] == 0.5 for r in steps)


def test_offline_first_attempts_come_from_the_reference(tiny_base, tmp_path):
    cfg = _cfg("offline_first_attempts=1.0", "lr=1e-2")
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    train = trainer.task.problems("train")
    trainer.rl_step(0, train)  # after one update the policy differs from the reference
    assert any(not torch.equal(p, q) for p, q in zip(trainer.model.parameters(), trainer.reference.model.parameters()))
    record = trainer.rl_step(1, train)
    assert record["offline_share"] == 1.0
    problems = random.Random(step_seed(cfg, 1)).sample(train, cfg.batch_prompts)
    expected = rollout(trainer.reference.model, trainer.tok, problems, [], n=cfg.samples_per_prompt,
                       temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, seed=step_seed(cfg, 1))
    traces = read_traces(tmp_path / "run", step=2, split="train")
    assert len(traces) == len(expected) == 4
    for tr, ep in zip(traces, expected):
        assert tr["problem_id"] == ep.problem.id and len(tr["attempts"]) == 2
        assert tr["attempts"][0]["tokens"] == trainer.tok.convert_ids_to_tokens(ep.attempts[0].ids)


def test_offline_first_attempts_are_states_with_no_reinforce_term(tiny_base, tmp_path, monkeypatch):
    """The base model's first attempts condition attempt 2 but are not the policy's samples: their attempt-1
    advantage is 0, while the on-policy episodes' and every attempt 2 keep theirs."""
    import score_lib.trainer as trainer_mod

    def vary(task, episodes):  # rewards that differ inside every group, so no advantage is 0 by chance
        for i, ep in enumerate(episodes):
            ep.attempts[0].reward = float(i % 2)
            ep.attempts[1].reward = float((i // 2) % 2)

    seen = {}

    def capture(logits, ref_logits, batch, adv, kl_coef, estimator="full"):
        seen["adv"] = adv.clone()
        return loss_fn(logits, ref_logits, batch, adv, kl_coef, estimator)

    loss_fn = trainer_mod.reinforce_kl_loss
    monkeypatch.setattr(trainer_mod, "grade", vary)
    monkeypatch.setattr(trainer_mod, "reinforce_kl_loss", capture)
    cfg = _cfg("offline_first_attempts=0.5", "batch_prompts=2", "samples_per_prompt=4")
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    trainer.rl_step(0, trainer.task.problems("train"))
    adv = seen["adv"]
    assert adv.shape == (8, 2)
    assert torch.all(adv[:4, 0] == 0)  # problem 0: its first attempts came from the reference
    assert torch.all(adv[4:, 0] != 0) and torch.all(adv[:, 1] != 0)
