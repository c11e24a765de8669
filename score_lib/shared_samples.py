"""Samples that sibling SFT runs draw alike, drawn once (`shared_samples`).

STaR and STaR+ start their first round by sampling episodes from the starting model with the same
seeds, problems and settings; so do Pair-SFT and Pair-SFT+ for their one round. Only the filter
applied afterwards differs (`sft.star_dataset`, `sft.pair_dataset`), so the graded episodes are the
same, token for token. With `shared_samples=DIR` the first run to need them writes them to DIR and a
sibling that comes later reads them instead of sampling again: the same data, about 10-17 s less a
run in the toy ablation. Only collections from the run's starting model qualify; after an update
every run's model is its own.

The file's key is everything that decides the draw: every setting but the method (and the bookkeeping
ones below), the starting model as the run recorded it (model.json: path, and a toy base's weights
digest), and the collection's shape (round, steps, attempts). A file whose stored key differs is never
read.
"""
from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import fields
from pathlib import Path

from .config import BOOKKEEPING_SETTINGS
from .episodes import Attempt, Episode
from .tasks.base import Problem

NOTE_FILE = "shared_samples.json"  # in the run's folder: which file its first round came from, and who drew it
FILE_SUFFIX = ".samples.pkl"
# settings that do not decide what the starting model samples in a collection: the filter (method) and
# where runs keep or share their files
NOT_IN_KEY = ("method", "checkpoint_every", *BOOKKEEPING_SETTINGS)


def collection_key(settings: dict, model: dict | None, round_idx: int, steps: int, attempts: int) -> dict:
    """What decides a collection's episodes (see the module docstring). The stored objects' field names are
    part of it, so a file pickled by a version whose episodes had other fields is drawn again, not misread."""
    return {"settings": {k: v for k, v in sorted(settings.items()) if k not in NOT_IN_KEY},
            "model": model, "round": round_idx, "steps": steps, "attempts": attempts,
            "format": [sorted(f.name for f in fields(c)) for c in (Episode, Attempt, Problem)]}


def _path(folder: Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(folder) / f"{digest}{FILE_SUFFIX}"


def load(folder: str | Path, key: dict):
    """The episodes stored under `key`, or None when no run has written them (or a file holds another key)."""
    path = _path(Path(folder), key)
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            stored = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):  # not ours, or unreadable: draw again
        return None
    if not isinstance(stored, dict) or stored.get("key") != key:  # pickle keeps the key's values as they were
        return None
    return stored["episodes"]


def save(folder: str | Path, key: dict, episodes) -> Path:
    """Store `episodes` under `key` (atomically: a sibling never reads half a file)."""
    from .runs import _atomic_write_bytes

    path = _path(Path(folder), key)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(path, pickle.dumps({"key": key, "episodes": episodes}, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def note(run_dir: str | Path, folder: str | Path, key: dict, drawn_here: bool) -> None:
    """Say in the run's folder which file holds its first round and whether this run drew it."""
    from .runs import atomic_write_json

    atomic_write_json(Path(run_dir) / NOTE_FILE, {"file": str(_path(Path(folder), key).resolve()),
                                                   "drawn_here": drawn_here})
