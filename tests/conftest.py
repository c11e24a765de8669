"""Shared fixtures: a quickly built (weak) toy base model in a private cache."""
import os
import warnings
from pathlib import Path

import pytest

TINY_BASE_SECONDS = 8.0  # a weak base model, enough to exercise every code path


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("score-cache")
    os.environ["SCORE_CACHE_DIR"] = str(path)  # subprocesses (the CLI) inherit it
    return path


@pytest.fixture(scope="session")
def tiny_base(cache_dir) -> Path:
    from score_lib.toy_base import ToyBaseConfig, build_toy_base

    with warnings.catch_warnings():  # stopped by its clock on purpose: the warning is for real builds
        warnings.simplefilter("ignore")
        return build_toy_base(ToyBaseConfig(max_seconds=TINY_BASE_SECONDS), progress=False)


# settings that make any preset finish in seconds
TINY = ["steps=2", "stage1_steps=1", "batch_prompts=2", "samples_per_prompt=2", "eval_problems=8",
        "eval_samples=1", "max_new_tokens=12", "checkpoint_every=1", "eval_every=1", "trace_every=1",
        f"toy_base_seconds={TINY_BASE_SECONDS}", "sft_batch=4"]
