"""End to end through the real `score` command with tiny budgets, and exact resume."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from score_lib.config import EVAL_ONLY, PRESETS, build_config
from score_lib.evaluate import JSON_KEYS
from score_lib.runs import RunStoreError, read_config, read_metrics, read_model, read_status, read_traces

from .conftest import TINY


def score(*args, check=True):
    cmd = [str(Path(sys.executable).with_name("score")), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=600)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr[-3000:]}")
    return out


def _sets(*items):
    return [a for s in items for a in ("--set", s)]


TOY_PRESETS = [p for p in PRESETS if p.startswith("toy-")]  # the others need a real model (see RESULTS.md)


@pytest.mark.parametrize("preset", TOY_PRESETS)
def test_every_preset_end_to_end(preset, tiny_base, tmp_path):
    run = tmp_path / "run"
    out = score("train", "--preset", preset, *_sets(*TINY), "--out", str(run), "--json",
                str(tmp_path / "out.json"), "--quiet")
    final = json.loads((tmp_path / "out.json").read_text())
    assert set(final) == set(JSON_KEYS)
    assert final["delta"] == pytest.approx(final["delta_i2c"] - final["delta_c2i"])
    assert final["method"] == PRESETS[preset]["method"]
    assert "Acc@t1" in out.stdout and "(y1 right " in out.stdout
    assert read_config(run)["method"] == PRESETS[preset]["method"]
    assert read_status(run)["state"] == "finished"
    recorded = read_model(run)  # the base it started from, by folder and cache key
    assert recorded["path"] == str(tiny_base) and recorded["toy_base"]["key"] == tiny_base.name
    assert list((run / "evals").glob("*.json"))
    metrics = read_metrics(run)
    assert metrics[-1]["stage"] == "final" and "eval_acc_t1" in metrics[-1]
    if PRESETS[preset]["method"] not in EVAL_ONLY:
        # one line per optimiser step (an SFT step with no usable traces logs sft_examples 0)
        assert [m["step"] for m in metrics[:-1] if "loss" in m or "sft_examples" in m] == [1, 2]
        assert any(p.name.startswith("step-") for p in (run / "checkpoints").iterdir())
    assert read_traces(run, split="test")


def test_bad_input_gets_one_line_errors(tiny_base, tmp_path):
    for args, msg in [(["--preset", "toy-nope"], "unknown preset 'toy-nope'"),
                      (["--preset", "toy-score", "--set", "alpah=1"], "unknown setting 'alpah'"),
                      (["--preset", "toy-score", "--set", "lr=fast"], "setting 'lr'"),
                      (["--resume", str(tmp_path / "missing")], "missing")]:
        out = score("train", *args, check=False)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0], out.stderr


def test_a_negative_first_seed_is_refused_before_any_work(tmp_path):
    """Training and --reevaluate share one seed range (ablate.seed_range): both refuse -1 by name, before a
    base is built or a model loaded (--out is not even created)."""
    for extra in ([], ["--reevaluate", "eval_samples=1"]):
        out = score("ablate", "--preset", "toy-chain", "--methods", "base", "--first-seed", "-1",
                    "--out", str(tmp_path / "abl"), *extra, check=False)
        assert out.returncode == 2 and "--first-seed must be >= 0, got -1" in out.stderr, out.stderr
        assert not (tmp_path / "abl").exists()


def test_help_and_runs_listing(tiny_base, tmp_path):
    for sub in ("toy-base", "train", "eval", "runs"):
        assert "usage" in score(sub, "--help").stdout
    root = tmp_path / "runs"
    score("train", "--preset", "toy-st-rl", *_sets(*TINY), "--runs-dir", str(root), "--quiet")
    listing = score("runs", "--runs-dir", str(root)).stdout
    assert "toy-st-rl" in listing and "finished" in listing
    ev = score("eval", "--model", "toy-base", "--limit", "4", *_sets(f"toy_base_seconds={TINY[-2].split('=')[1]}",
                                                                  "max_new_tokens=8", "eval_samples=1")).stdout
    assert "Acc@t1" in ev and "n=4" in ev


def test_toy_base_command_reports_its_accuracy_checks(cache_dir):
    small = _sets("corpus_size=100", "batch_size=4", "max_steps=4", "check_every=2", "check_problems=8")
    out = score("toy-base", *small).stdout
    folder = Path(out.split("toy base model: ")[1].split(" (")[0])
    meta = json.loads((folder / "toy_base.json").read_text())
    assert meta["steps"] == 4 and [c["step"] for c in meta["checks"]] == [2, 4]  # a 4-step model never reaches 0.45
    assert not meta["reached_target"] and all(0 <= c["acc_t1"] <= 1 for c in meta["checks"])
    assert f"held-out problems {meta['checks'][-1]['acc_t1']:.3f} at step 4: did NOT reach the target (Acc@t1 0.45)" in out


VOLATILE = ("time", "t_generate", "t_score", "t_update")


def _stable(records):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def crash_run_at(monkeypatch, cfg, run_dir, step: int):
    """Run cfg into run_dir with its RL step `step` (1-based) raising before it starts: the run fails there."""
    from score_lib.trainer import Trainer

    real_step = Trainer.rl_step

    def crashing(self, index, train):
        if index == step - 1:
            raise RuntimeError("simulated crash")
        return real_step(self, index, train)

    monkeypatch.setattr(Trainer, "rl_step", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        Trainer(cfg, run_dir, progress=False).run()
    monkeypatch.setattr(Trainer, "rl_step", real_step)


def test_resume_matches_uninterrupted_run(tiny_base, tmp_path, monkeypatch):
    from score_lib.trainer import Trainer

    overrides = [o for o in TINY if not o.startswith(("steps", "eval_every", "checkpoint_every"))]
    cfg = build_config("toy-score", overrides + ["steps=4", "stage1_steps=2", "checkpoint_every=2",
                                                 "eval_every=0"])
    Trainer(cfg, tmp_path / "whole", progress=False).run()

    crashing = tmp_path / "crashed"
    crash_run_at(monkeypatch, cfg, crashing, step=4)
    assert read_status(crashing)["state"] == "failed"
    assert "simulated crash" in read_status(crashing)["error"]
    # the crashed run logged step 3 after its step-2 checkpoint; resume must replay it, not duplicate it
    score("train", "--resume", str(crashing), "--quiet")
    assert read_status(crashing)["state"] == "finished"
    assert _stable(read_metrics(crashing)) == _stable(read_metrics(tmp_path / "whole"))
    # crashed before its first checkpoint: the resume starts over, without the first try's step-1 line
    early = tmp_path / "early"
    crash_run_at(monkeypatch, cfg, early, step=2)
    assert [m["step"] for m in read_metrics(early)] == [1]
    score("train", "--resume", str(early), "--quiet")
    assert _stable(read_metrics(early)) == _stable(read_metrics(tmp_path / "whole"))


@pytest.mark.parametrize("stage2", ["alpha=0", "stage2=star"])
def test_a_score_run_that_takes_stage1_from_another_ends_as_one_that_trains_it(stage2, tiny_base, tmp_path):
    """stage1_from copies another score run's Stage I (its kept checkpoint and logs) and trains Stage II only:
    every logged step, trace, evaluation and the final numbers equal those of training Stage I again."""
    from score_lib.config import ConfigError
    from score_lib.runs import latest_checkpoint
    from score_lib.trainer import Trainer

    sets = [o for o in TINY if not o.startswith(("steps", "stage1_steps"))] + ["steps=4", "stage1_steps=2"]
    source = tmp_path / "score"
    Trainer(build_config("toy-score", sets + ["keep_stage1=true"]), source, progress=False).run()
    # kept beside the last two (steps 3 and 4), which every checkpoint_every=1 run keeps
    assert sorted(p.name for p in (source / "checkpoints").glob("step-*")) == [
        "step-00000002", "step-00000003", "step-00000004"]
    whole = tmp_path / "whole"
    final = Trainer(build_config("toy-score", sets + [stage2]), whole, progress=False).run()
    taken = tmp_path / "taken"
    again = Trainer(build_config("toy-score", sets + [stage2, f"stage1_from={source}"]), taken, progress=False).run()
    assert again == final
    assert _stable(read_metrics(taken)) == _stable(read_metrics(whole))
    assert [m["stage"] for m in read_metrics(taken)][:2] == ["stage1", "stage1"]
    assert read_traces(taken) == read_traces(whole)
    evals = sorted(p.name for p in (whole / "evals").glob("*.json"))
    assert evals == sorted(p.name for p in (taken / "evals").glob("*.json"))
    assert {"00000001.json", "00000002.json", "00000004.json"} <= set(evals)  # Stage I's two among them
    for name in evals:
        assert json.loads((taken / "evals" / name).read_text()) == json.loads((whole / "evals" / name).read_text())
    assert latest_checkpoint(taken).name == "step-00000004"
    assert read_config(taken)["stage1_from"] == str(source)
    # a source whose Stage I is not this run's, or that did not keep it, is refused by name
    with pytest.raises(ConfigError, match="that run has lr=.* and this one lr="):
        Trainer(build_config("toy-score", sets + ["lr=0.5", f"stage1_from={source}"]), tmp_path / "x", progress=False)
    with pytest.raises(RunStoreError, match="keep_stage1=true"):
        Trainer(build_config("toy-score", sets + [f"stage1_from={whole}"]), tmp_path / "y", progress=False)
    with pytest.raises(ConfigError, match="'keep_stage1': Stage I belongs to method score, not mt-rl"):
        build_config("toy-mt-rl", ["keep_stage1=true"])


@pytest.mark.parametrize("first,then", [("star", "star-plus"), ("pair-sft-plus", "pair-sft")])
def test_sft_runs_that_share_their_first_round_end_as_runs_that_draw_it(first, then, tiny_base, tmp_path,
                                                                         monkeypatch):
    """shared_samples: the second method reads the first round the first one drew from the same starting model
    (it samples nothing for it) and logs, traces and scores exactly as when it draws that round itself."""
    import score_lib.sft as sft
    from score_lib.config import ConfigError
    from score_lib.trainer import Trainer

    sets = TINY + ["steps=3", "sft_iterations=3"]  # STaR: three rounds of one step, only the first shared
    folder = tmp_path / "samples"
    Trainer(build_config(f"toy-{first}", sets + [f"shared_samples={folder}"]), tmp_path / first, progress=False).run()
    assert len(list(folder.glob("*.samples.pkl"))) == 1
    assert json.loads((tmp_path / first / "shared_samples.json").read_text())["drawn_here"]
    drawn = []  # sft's rollout calls: one per collected step, and the shift probe's (Pair-SFT, eval_every)
    real = sft.rollout
    monkeypatch.setattr(sft, "rollout", lambda *a, **k: drawn.append(1) or real(*a, **k))
    alone = Trainer(build_config(f"toy-{then}", sets), tmp_path / "alone", progress=False).run()
    calls_alone, drawn[:] = len(drawn), []
    shared = Trainer(build_config(f"toy-{then}", sets + [f"shared_samples={folder}"]), tmp_path / "shared",
                     progress=False).run()
    assert shared == alone
    assert _stable(read_metrics(tmp_path / "shared")) == _stable(read_metrics(tmp_path / "alone"))
    assert read_traces(tmp_path / "shared") == read_traces(tmp_path / "alone")
    note = json.loads((tmp_path / "shared" / "shared_samples.json").read_text())
    assert not note["drawn_here"] and Path(note["file"]).parent == folder.resolve()
    # the first round read, not sampled: STaR's is one step of three, Pair-SFT's all three
    first_round = 1 if then.startswith("star") else 3
    assert len(drawn) == calls_alone - first_round
    # a setting that decides the draw (the sampling temperature) makes it another draw, in a file of its own
    drawn.clear()
    Trainer(build_config(f"toy-{then}", sets + [f"shared_samples={folder}", "temperature=0.7"]), tmp_path / "hot",
            progress=False).run()
    assert len(drawn) == calls_alone and len(list(folder.glob("*.samples.pkl"))) == 2
    # an unreadable file is drawn again and replaced, to the same numbers
    drawn.clear()
    Path(note["file"]).write_bytes(b"not a pickle")
    again = Trainer(build_config(f"toy-{then}", sets + [f"shared_samples={folder}"]), tmp_path / "again",
                    progress=False).run()
    assert again == alone and len(drawn) == calls_alone
    assert json.loads((tmp_path / "again" / "shared_samples.json").read_text())["drawn_here"]
    with pytest.raises(ConfigError, match="'shared_samples': only the SFT baselines"):
        build_config("toy-mt-rl", [f"shared_samples={folder}"])


def test_a_run_that_cannot_start_says_why(tiny_base, tmp_path):
    run = tmp_path / "bad-model"
    out = score("train", "--preset", "toy-score", "--set", "model=/nonexistent/model", "--out", str(run), check=False)
    assert out.returncode == 2 and "/nonexistent/model" in out.stderr
    status = read_status(run)
    assert status["state"] == "failed" and "/nonexistent/model" in status["error"]


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`score findings FILE | head -1`: the pipe closes before the table is written; the command ends quietly."""
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-m", "score_lib.cli", "findings",
                             str(root / "docs" / "ablation_toy_default_eval1024_3seeds.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root)
    proc.stdout.close()  # before the command has imported anything, let alone printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err, err
