"""Plumbing shared by the guided notebooks: the two modes, the toy base model, run folders, one training call.

Nothing here computes a metric or draws a plot: numbers come from score_lib, figures from
workbench.figures. Each notebook sets MODE in its parameters cell and passes it in, so the value a
teacher types there is the one that counts.

- smoke: seconds per notebook, for CI (`make notebooks`). A tiny base model trained for a few steps
  stands in for the real one, so the numbers mean nothing; only the code paths are exercised.
- full: the lecture. The real toy base model (`score toy-base`, built once and cached) and budgets
  that finish within 10 minutes on 2 CPU cores.
"""
from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets: plain bars are fine
from transformers.utils import logging as hf_logging  # noqa: E402 (after the filter: it imports tqdm.auto)

hf_logging.disable_progress_bar()  # no "Loading weights" bar under every cell that loads a model

MODES = ("smoke", "full")
NOTEBOOKS = Path(__file__).resolve().parent
REPO = NOTEBOOKS.parent

# Settings that make any toy run finish in seconds (smoke mode only; see tests/conftest.py's TINY).
SMOKE_RUN = {"steps": 2, "stage1_steps": 1, "batch_prompts": 2, "samples_per_prompt": 2, "eval_problems": 8,
             "eval_samples": 1, "max_new_tokens": 16, "checkpoint_every": 0, "eval_every": 0, "trace_every": 1,
             "sft_batch": 4}
# A base model built in a few seconds: small corpus, small network, 20 steps. It barely writes the format.
SMOKE_BASE = {"max_steps": 20, "corpus_size": 500, "batch_size": 8, "hidden": 64, "layers": 2}


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"MODE must be one of {MODES}, got {mode!r} (set SCORE_NOTEBOOK_MODE or edit the cell)")
    return mode


def toy_base(mode: str, kind: str = "chain", **fields) -> str:
    """Folder of the toy base model of world `kind` ("chain" or "pick") for this mode, with `fields`
    (ToyBaseConfig settings) overriding the world's defaults; built on first use and cached
    (score_lib.toy_base). Smoke mode shrinks it whatever the fields say."""
    from score_lib.toy_base import build_toy_base, default_base

    sizes = SMOKE_BASE if check_mode(mode) == "smoke" else {}
    return str(build_toy_base(default_base(kind, **{**fields, **sizes}), progress=mode == "full"))


def runs_dir(name: str, mode: str) -> Path:
    """A fresh folder for this notebook's runs: notebooks/runs/<name>-<mode> (git ignores runs/).

    Open it in the app with `streamlit run app.py -- --runs-dir notebooks/runs/<name>-<mode>`.
    """
    root = Path(os.environ.get("SCORE_NOTEBOOK_RUNS", NOTEBOOKS / "runs")) / f"{name}-{check_mode(mode)}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root


def train(run_dir: Path, preset: str | None = None, **settings) -> dict:
    """One `score train` run in this process (score_lib.trainer.Trainer); returns its final evaluation."""
    from score_lib.config import build_config
    from score_lib.trainer import Trainer

    cfg = build_config(preset, settings)
    return Trainer(cfg, run_dir, progress=False).run()


def data_dir() -> Path:
    """Where GSM8K and friends live: $SCORE_DATA_DIR, else ../shared/data next to the repository."""
    return Path(os.environ.get("SCORE_DATA_DIR", REPO.parent / "shared" / "data")).expanduser().resolve()
