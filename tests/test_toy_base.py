"""The toy base model: its build (cache key, stopping rule, checks, clock), the shipped builds, and the
run that keeps the model it started from."""
import warnings

import pytest


def test_corpus_loss_mask_skips_only_shown_first_attempts():
    import torch

    from score_lib.toy_base import corpus_loss_mask

    # row 0 learns both attempts; row 1's attempt 1 is a shown mistake; -1 marks prompt, glue and padding
    idx = torch.tensor([[-1, -1, 0, 0, -1, 1, 1, -1],
                        [-1, -1, 0, 0, -1, 1, 1, 1]])
    mask = corpus_loss_mask(idx, [True, False])
    assert mask.tolist() == [[False, True, True, False, True, True, False],
                             [False, False, False, False, True, True, True]]


def test_base_with_shown_mistakes_builds_under_its_own_key(cache_dir):
    from score_lib.toy_base import ToyBaseConfig, build_toy_base

    plain = ToyBaseConfig(p_wrong=0.0)
    assert plain.key() == ToyBaseConfig(p_wrong=0.0, p_fix=0.9).key()  # p_fix does nothing without p_wrong
    assert plain.key() == ToyBaseConfig(p_wrong=0.0, check_slipped=0.9).key()  # nor check_slipped without p_check
    assert plain.key() != ToyBaseConfig(p_wrong=0.0, p_check=0.1).key()
    cfg = ToyBaseConfig(p_wrong=0.5, corpus_size=200, batch_size=8, max_steps=3)
    assert cfg.key() != ToyBaseConfig(p_wrong=0.0, corpus_size=200, batch_size=8, max_steps=3).key()
    path = build_toy_base(cfg, progress=False)
    assert path.name == cfg.key() and (path / "toy_base.json").exists() and (path / "config.json").exists()


def test_accuracy_checks_use_held_out_training_problems():
    from score_lib.tasks.toy import base_corpus, split_of
    from score_lib.toy_base import ToyBaseConfig, check_problems

    cfg = ToyBaseConfig(corpus_size=300, check_problems=50, target_acc=0.5)
    held = check_problems(cfg)
    corpus = {c.prompt for c in base_corpus(cfg.world(), cfg.corpus_size, cfg.seed)}
    assert len(held) == 50 and len({p.prompt for p in held}) == 50
    assert not corpus & {p.prompt for p in held}  # never trained on
    assert all(split_of(p.prompt, cfg.world().test_share) == "train" for p in held)  # never a test problem
    # the target's settings name a new model only when a target is set: old caches stay valid
    assert ToyBaseConfig(target_acc=0).key() == ToyBaseConfig(target_acc=0, check_every=7, check_problems=9).key()
    assert ToyBaseConfig().key() != ToyBaseConfig(check_every=7).key()


def test_base_build_stops_at_the_first_check_that_reaches_the_target(cache_dir, monkeypatch):
    import json

    from score_lib import toy_base

    curve = iter([0.1, 0.3, 0.5, 0.7, 0.9])
    seen = []

    def fake_acc(model, tok, problems, seed, world=None):
        seen.append(len(problems))
        return next(curve)

    monkeypatch.setattr(toy_base, "sampled_acc_t1", fake_acc)
    small = dict(corpus_size=200, batch_size=4, check_every=2, check_problems=16)
    path = toy_base.build_toy_base(toy_base.ToyBaseConfig(target_acc=0.45, max_steps=40, **small), progress=False)
    meta = json.loads((path / "toy_base.json").read_text())
    assert meta["steps"] == 6 and meta["reached_target"] and meta["stopped_by"] == "target" and seen == [16, 16, 16]
    from score_lib.ablate import missed_target

    assert missed_target(str(path)) is None  # score ablate warns only about a base that missed its target
    assert [c["step"] for c in meta["checks"]] == [2, 4, 6] and meta["checks"][-1]["acc_t1"] == 0.5
    # a target never reached: the build runs to max_steps and says so
    curve = iter([0.1] * 5)
    path = toy_base.build_toy_base(toy_base.ToyBaseConfig(target_acc=0.95, max_steps=9, **small), progress=False)
    meta = json.loads((path / "toy_base.json").read_text())
    assert meta["steps"] == 9 and not meta["reached_target"] and len(meta["checks"]) == 4
    assert meta["stopped_by"] == "max_steps"
    said = missed_target(str(path))
    assert "ran all its 9 steps without reaching its target" in said
    assert "held-out problems 0.100 at step 8: did NOT reach the target (Acc@t1 0.95)" in said
    assert "need not show the paper's findings" in said  # no check asked for: nothing said about one
    # fine checks: every 4 steps until a check comes within 0.1 of the target, then every step
    curve = iter([0.1, 0.3, 0.38, 0.41, 0.47])
    fine = dict(small, check_every=4, fine_check_every=1, fine_check_margin=0.1)
    cfg = toy_base.ToyBaseConfig(target_acc=0.45, max_steps=40, **fine)
    meta = json.loads((toy_base.build_toy_base(cfg, progress=False) / "toy_base.json").read_text())
    assert [c["step"] for c in meta["checks"]] == [4, 8, 12, 13, 14] and meta["steps"] == 14  # 0.38 >= 0.45 - 0.1
    assert cfg.key() != toy_base.ToyBaseConfig(target_acc=0.45, max_steps=40, **dict(small, check_every=4)).key()
    # off (the default), the fine settings do not name another model: old caches stay valid
    assert toy_base.ToyBaseConfig().key() == toy_base.ToyBaseConfig(fine_check_margin=0.3).key()


def test_fine_checks_run_below_the_target_only():
    from score_lib.toy_base import check_due, default_base

    cfg = default_base("pick")  # checks every 50 steps, every 10 within 0.1 below the 0.65 target

    def due(last_acc):
        return [s for s in range(1601, 1701) if check_due(s, [{"acc_t1": last_acc}], cfg)]

    assert due(0.5) == [1650, 1700]
    assert due(0.6) == [1610, 1620, 1630, 1640, 1650, 1660, 1670, 1680, 1690, 1700]
    # at or past the target without a stop (no working check yet): the coarse grid again
    assert due(0.65) == due(0.8) == [1650, 1700]


def test_a_longer_cap_with_the_old_warm_up_continues_the_shorter_build():
    from score_lib.toy_base import ToyBaseConfig, lr_schedule

    short = ToyBaseConfig(max_steps=3200)
    lrs = [lr_schedule(short)(s) for s in range(3200)]
    assert [lr_schedule(ToyBaseConfig(max_steps=6000, warmup_steps=160))(s) for s in range(3200)] == lrs
    assert [lr_schedule(ToyBaseConfig(max_steps=6000))(s) for s in range(3200)] != lrs  # 300 warm-up steps
    # the warm-up names a model only when set: every cache key before it stays valid
    assert ToyBaseConfig().key() == ToyBaseConfig(warmup_steps=0).key() != ToyBaseConfig(warmup_steps=80).key()


def test_a_build_its_clock_stops_says_so(cache_dir):
    """The wall-clock cap is the one stop a busy machine reaches sooner: the build records it and warns."""
    import json

    from score_lib import toy_base

    small = dict(corpus_size=200, batch_size=4, target_acc=0, max_seconds=0.0)
    with pytest.warns(toy_base.ClockStopped, match=r"wall-clock cap \(max_seconds=0\) stopped it at step 1 of 5"):
        path = toy_base.build_toy_base(toy_base.ToyBaseConfig(max_steps=5, **small), progress=False)
    assert json.loads((path / "toy_base.json").read_text())["stopped_by"] == "max_seconds"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its last step is no early stop: no warning
        path = toy_base.build_toy_base(toy_base.ToyBaseConfig(max_steps=1, **small), progress=False)
    assert json.loads((path / "toy_base.json").read_text())["stopped_by"] == "max_steps"


def test_a_run_keeps_the_model_it_started_from(tiny_base, tmp_path):
    """model.json: a resume or a re-evaluation uses the base the run started on, not today's default."""
    import hashlib
    import json

    from score_lib.config import build_config
    from score_lib.runs import RunStoreError
    from score_lib.trainer import model_record, start_model

    from .conftest import TINY_BASE_SECONDS

    cfg = build_config("toy-score", [f"toy_base_seconds={TINY_BASE_SECONDS}"])
    assert start_model(cfg) == str(tiny_base)  # a new run: its world's default base
    run, other = tmp_path / "run", tmp_path / "0123456789"
    run.mkdir(), other.mkdir()
    (run / "model.json").write_text(json.dumps(model_record("toy-base", str(other))))
    assert start_model(cfg, run) == str(other)
    other.rmdir()  # gone, and the default is another build: refused, naming the record
    with pytest.raises(RunStoreError, match="model.json.*0123456789, which is gone"):
        start_model(cfg, run)
    moved = tmp_path / "cleared-cache" / tiny_base.name  # gone, but the default is the same build
    (run / "model.json").write_text(json.dumps(model_record("toy-base", str(moved))))
    assert start_model(cfg, run) == str(tiny_base)
    record = model_record("toy-base", str(tiny_base))
    assert record["toy_base"]["key"] == tiny_base.name
    assert record["toy_base"]["weights"] == hashlib.sha256((tiny_base / "model.safetensors").read_bytes()).hexdigest()[:16]
    # gone, and the key now holds other weights (rebuilt on another CPU, or the shipped build): refused
    (run / "model.json").write_text(json.dumps({**record, "path": str(moved),
                                                "toy_base": {**record["toy_base"], "weights": "0" * 16}}))
    with pytest.raises(RunStoreError, match="weights 0000000000000000.*other weights"):
        start_model(cfg, run)


def test_a_shipped_build_is_installed_instead_of_built_and_force_builds_here(cache_dir, tmp_path, monkeypatch):
    import json

    from score_lib import toy_base
    from score_lib.runs import model_build

    cfg = toy_base.ToyBaseConfig(corpus_size=200, batch_size=4, max_steps=2)
    built = toy_base.build_toy_base(cfg, progress=False)  # a build of this machine, then "shipped"
    meta = json.loads((built / "toy_base.json").read_text())
    assert meta["built_on"]["torch"] and meta["built_on"]["cpu"] and "source" not in meta
    shipped_dir = tmp_path / "shipped"
    shipped_dir.mkdir()
    built.rename(shipped_dir / cfg.key())
    monkeypatch.setattr(toy_base, "SHIPPED_DIR", shipped_dir)
    weights = (shipped_dir / cfg.key() / "model.safetensors").read_bytes()

    def no_training(*args, **kwargs):
        raise AssertionError("a shipped build must not be trained again")

    monkeypatch.setattr(toy_base, "toy_model", no_training)
    stale = toy_base.toy_base_path(cfg)  # a folder a crashed copy left, without toy_base.json: replaced
    stale.mkdir(parents=True)
    (stale / "stray.txt").write_text("x")
    path = toy_base.build_toy_base(cfg, progress=False)
    assert not (path / "stray.txt").exists()
    assert path == toy_base.toy_base_path(cfg) and (path / "model.safetensors").read_bytes() == weights
    assert json.loads((path / "toy_base.json").read_text())["source"] == "shipped"
    assert model_build(str(path)) == f"{cfg.key()} (2 steps, shipped)"
    assert not list(path.parent.glob("*.tmp*"))  # installed atomically, nothing left beside it
    with pytest.raises(AssertionError, match="must not be trained"):  # --force builds on this machine
        toy_base.build_toy_base(cfg, force=True, progress=False)
    other = toy_base.ToyBaseConfig(corpus_size=200, batch_size=4, max_steps=3)
    assert toy_base.shipped_base(other) is None  # another recipe has no shipped build


def test_every_shipped_build_is_its_recipe_and_ran_to_its_own_end():
    import json

    from score_lib import toy_base

    shipped = [p for p in toy_base.SHIPPED_DIR.iterdir() if p.is_dir()] if toy_base.SHIPPED_DIR.exists() else []
    assert shipped, "the workbench ships the default pick world's base"
    assert toy_base.shipped_base(toy_base.default_base("pick")) is not None
    for path in shipped:
        meta = json.loads((path / "toy_base.json").read_text())
        cfg = toy_base.ToyBaseConfig(**meta["config"])
        assert cfg.key() == path.name  # a recipe change must ship a new build (or none), not a stale one
        assert "source" not in meta and meta["built_on"]["kernels"]
        # stopped by its rule or its step cap, never by the clock (which a busy machine reaches sooner)
        if meta["stopped_by"] == "target":
            assert toy_base.reached_target(meta["checks"][-1], cfg) and meta["checks"][-1]["step"] == meta["steps"]
        else:
            assert meta["stopped_by"] == "max_steps" and meta["steps"] == cfg.max_steps
        assert (path / "model.safetensors").stat().st_size > 4 * meta["parameters"] * 0.99  # fp32, whole
