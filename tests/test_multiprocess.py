"""Training under `accelerate launch` with 2 CPU processes (DDP over gloo): the run store has the shape
of a single-process run's, one writer, and a 2-process checkpoint resumes in 1 process.
Also the pieces that make that work: shards, the metric reduction, the gradient normalisation."""
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from score_lib import distributed as dist
from score_lib.config import ConfigError, build_config
from score_lib.losses import reinforce_kl_loss
from score_lib.runs import read_config, read_metrics, read_status, read_traces

from .conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
# 4 steps (Stage I, then II), checkpoints at 2 and 4, an eval at 2 and at the end, every episode traced.
# Greedy training rollouts (temperature 0) give each episode the same tokens however the batch is split,
# so the 2-process run can be compared with the 1-process run value for value, not only in shape. The final
# evaluation scores the weights selected by training reward (windows of one Stage II step): saved by the
# main process, loaded by both.
SETTINGS = [o for o in TINY if not o.startswith(("steps", "stage1_steps", "batch_prompts", "checkpoint_every",
                                                 "eval_every"))] + [
    "steps=4", "stage1_steps=2", "batch_prompts=4", "checkpoint_every=2", "eval_every=2", "traces_per_step=8",
    "temperature=0", "select_by=train-reward", "select_window=1"]
VOLATILE = ("time", "t_generate", "t_score", "t_update")


def _launch_two_processes(run_dir: Path) -> subprocess.CompletedProcess:
    # `accelerate launch --cpu --num_processes 2` starts ONE process (without mpirun accelerate treats
    # --cpu as a single-process launch); the DDP config starts 2 torchrun workers, on CPU over gloo.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "configs/accelerate/ddp.yaml"), "--num_processes", "2", "-m", "score_lib.cli", "train",
           "--preset", "toy-score", *[a for s in SETTINGS for a in ("--set", s)], "--out", str(run_dir), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr[-4000:]}"
    return out


def _files(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())


def _trace_keys(run_dir: Path) -> Counter:
    return Counter((t["step"], t["split"], t["problem_id"], t["sample"]) for t in read_traces(run_dir))


def test_two_processes_write_one_single_process_shaped_run_store_and_resume_in_one(tiny_base, tmp_path):
    from score_lib.trainer import Trainer

    two, one = tmp_path / "two", tmp_path / "one"
    out = _launch_two_processes(two)
    assert out.stdout.count("Acc@t1") == 1  # one process reports
    cfg = build_config("toy-score", SETTINGS)
    Trainer(cfg, one, progress=False).run()

    assert _files(two) == _files(one)
    assert read_config(two) == read_config(one)
    s2, s1 = read_status(two), read_status(one)
    assert (s2["state"], s2["step"], s2["world_size"], s1["world_size"]) == ("finished", 4, 2, 1)
    assert set(s2) == set(s1)
    # the tiny base's rewards are all 0: the first candidate (step 3) stays the best, ties keep it
    assert s2["final"]["selected_step"] == s1["final"]["selected_step"] == 3
    m2, m1 = read_metrics(two), read_metrics(one)
    # one writer: one line per step (a second writer would double them), the same keys as one process
    assert [(m["step"], m["stage"]) for m in m2] == [(1, "stage1"), (2, "stage1"), (3, "stage2"),
                                                     (4, "stage2"), (4, "final")]
    assert [set(m) for m in m2] == [set(m) for m in m1]
    for a, b in zip(m2, m1):  # gradients averaged over shards and metrics combined = the full-batch ones
        for key in set(a) - set(VOLATILE) - {"stage"}:
            if b[key] is None:  # a conditional rate with nothing to condition on (no right first attempt)
                assert a[key] is None, (a["step"], key)
                continue
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-5), (a["step"], key)
    assert m2[0]["kl_t1"] == 0.0 and m2[2]["kl_t1"] > 0  # the policy moved away from the reference
    # the same problems and samples at every step, each traced once: the shards cover the batch exactly
    assert _trace_keys(two) == _trace_keys(one)
    assert max(_trace_keys(two).values()) == 1
    for step in (2, 4):
        e2, e1 = (json.loads((r / "evals" / f"{step:08d}.json").read_text()) for r in (two, one))
        assert set(e2) == set(e1) and e2["n_problems"] == e1["n_problems"] == 8
    state = json.loads((two / "checkpoints/step-00000002/state.json").read_text())
    assert state == {"step": 2, "method": "score", "world_size": 2}

    # resume in one process from the 2-process checkpoint at step 2 (as if it had stopped before step 4's)
    resumed = tmp_path / "resumed"
    shutil.copytree(two, resumed)
    shutil.rmtree(resumed / "checkpoints/step-00000004")
    trainer = Trainer(cfg, resumed, resume=True, progress=False)
    assert trainer.start_step == 2 and trainer.opt.state_dict()["state"]  # Adam moments restored
    from safetensors.torch import load_file

    saved = load_file(two / "checkpoints/step-00000002/model/model.safetensors")
    weights = trainer.policy.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in saved.items())
    trainer.run()
    mr = read_metrics(resumed)
    assert [(m["step"], m["stage"]) for m in mr] == [(m["step"], m["stage"]) for m in m2]
    assert mr[:2] == m2[:2]  # the 2-process lines before the checkpoint are kept, the rest written again
    assert mr[2]["kl_t1"] > 0  # step 3 starts from the trained weights, not the base (where the KL is 0)
    assert read_status(resumed)["state"] == "finished" and read_status(resumed)["world_size"] == 1
    assert max(_trace_keys(resumed).values()) == 1


def test_shards_cover_the_batch_in_order():
    items = list(range(12))
    for world in (1, 2, 3, 4):
        parts = [items[slice(*dist.shard_bounds(len(items), r, world))] for r in range(world)]
        assert sum(parts, []) == items
    assert dist.shard_seed(123, 0) == 123  # rank 0 samples exactly as a single process
    assert len({dist.shard_seed(123, r) for r in range(4)}) == 4


def test_configs_that_cannot_be_split_are_refused_naming_the_field():
    dist.check_world(build_config("toy-score", ["batch_prompts=3"]), 1)
    dist.check_world(build_config("toy-score", ["batch_prompts=4"]), 2)
    with pytest.raises(ConfigError, match="'batch_prompts': 3 .* 2 processes"):
        dist.check_world(build_config("toy-score", ["batch_prompts=3"]), 2)
    for preset, sets in (("toy-star", []), ("toy-pair-sft", []), ("toy-score", ["stage2=star"])):
        with pytest.raises(ConfigError, match="'method'.*one process only"):
            dist.check_world(build_config(preset, sets + ["batch_prompts=4"]), 2)


def _episodes(sizes, k=2, vocab=11, length=9, seed=0):
    """A batch of random episodes: logits, reference logits, tokens, attempt index, advantages."""
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    ids = torch.randint(0, vocab, (n, length), generator=g)
    index = torch.full((n, length), -1)
    for i in range(n):  # episodes of different lengths, so shards have different token counts
        cut = 2 + int(torch.randint(1, length - 3, (1,), generator=g))
        index[i, 2:cut], index[i, cut:length - i % 3] = 0, 1
    batch = {"input_ids": ids, "attempt_index": index}
    return batch, torch.randn(n, k, generator=g), torch.tensor([0.1, 0.01])


def test_shard_statistics_combine_into_the_full_batch_statistics():
    sizes = [1, 5]  # unequal shards: a mean of the shards' means would be wrong
    batch, adv, coef = _episodes(sizes)
    logits, ref = torch.randn(6, 9, 11), torch.randn(6, 9, 11)
    _, full = reinforce_kl_loss(logits, ref, batch, adv, coef)
    shard_stats, lo = [], 0
    for n in sizes:
        part = {k: v[lo:lo + n] for k, v in batch.items()}
        _, stats = reinforce_kl_loss(logits[lo:lo + n], ref[lo:lo + n], part, adv[lo:lo + n], coef)
        shard_stats.append(stats)
        lo += n
    combined = dist.combine([dist.loss_stat_weights(s, n) for s, n in zip(shard_stats, sizes)])
    assert combined.keys() == full.keys()
    for key in full:
        assert combined[key] == pytest.approx(full[key], rel=1e-5, abs=1e-6), key
    naive = sum(s["entropy_t2"] for s in shard_stats) / len(sizes)
    assert naive != pytest.approx(full["entropy_t2"], rel=1e-3)  # what the reduction must not do


def test_mean_of_equal_shard_gradients_is_the_full_batch_gradient():
    """DDP averages the processes' gradients; with equal shards that is the full-batch gradient."""
    batch, adv, coef = _episodes([3, 3], seed=1)
    feats = torch.randn(6, 9, 5)

    def grad(rows):
        w = torch.nn.Parameter(torch.randn(5, 11, generator=torch.Generator().manual_seed(2)))
        part = {k: v[rows] for k, v in batch.items()}
        loss, _ = reinforce_kl_loss(feats[rows] @ w, torch.zeros(feats[rows].shape[0], 9, 11), part, adv[rows], coef)
        loss.backward()
        return w.grad

    averaged = (grad(slice(0, 3)) + grad(slice(3, 6))) / 2
    torch.testing.assert_close(averaged, grad(slice(0, 6)))
