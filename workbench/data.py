"""Incremental loading of runs: read only what was appended since the last refresh.

``RunCache`` is plain Python (the notebooks and the benchmark use it directly). In the app one
RunCache per run lives in ``st.session_state`` (``get_run``), so each browser session keeps its
own byte offsets and a refresh costs what was appended, not the size of the run.
All reading goes through score_lib.runs (read_config, read_status, read_jsonl with an offset).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from score_lib.runs import RunStoreError, read_config, read_jsonl_with_errors, read_status

from . import derive

SESSION_KEY = "wb_run_caches"


@dataclass
class JsonlTail:
    """The records of one append-only JSONL file, extended by each ``refresh``."""

    path: Path
    offset: int = 0
    records: list = field(default_factory=list)
    generation: int = 0  # bumped when the file was rewritten and re-read from 0
    bad_lines: int = 0  # complete lines that were not a JSON object (skipped)
    _inode: int | None = None

    def refresh(self) -> list[dict]:
        """Read the lines appended since the last call; returns only those."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self.offset or self.records:
                self._reset()
            return []
        # A resumed run rewrites the file (RunWriter.truncate_after: temp file + rename). Then the
        # old offset is meaningless: it may be past the end (shrank) or inside a line (grew again),
        # so a size drop OR a new inode means start again from 0.
        if st.st_size < self.offset or (self._inode is not None and st.st_ino != self._inode):
            self._reset()
        self._inode = st.st_ino
        if st.st_size == self.offset:
            return []
        new, self.offset, bad = read_jsonl_with_errors(self.path, self.offset)
        self.records.extend(new)
        self.bad_lines += bad
        return new

    def _reset(self):
        self.offset, self.records, self._inode, self.bad_lines = 0, [], None, 0
        self.generation += 1


class RunCache:
    """Config, status, metrics and traces of one run directory, refreshed incrementally.

    ``problem`` says why the run cannot be shown (missing, empty, corrupt); None when it can.
    ``trace_rows`` are derive.trace_row summaries, computed once per trace as it is read.
    """

    def __init__(self, run_dir: Path | str):
        self.run_dir = Path(run_dir)
        self.run_id = self.run_dir.name
        self.config: dict | None = None
        self.status: dict = {}
        self.problem: str | None = None
        self.problem_kind: str | None = None  # "missing", "empty", "corrupt", "starting"
        self.metrics = JsonlTail(self.run_dir / "metrics.jsonl")
        self.traces = JsonlTail(self.run_dir / "traces.jsonl")
        self.trace_rows: list[dict] = []
        self._memo: dict = {}

    # -------------------------------------------------------------- refresh
    def refresh(self, traces: bool = True) -> RunCache:
        """Re-read status (small, atomic) and the appended metrics / traces lines."""
        self.problem = self.problem_kind = None
        if not self.run_dir.is_dir():
            return self._fail("missing", f"Run directory {self.run_dir} does not exist.")
        if self.config is None:  # written once, atomically: read it until it exists, then keep it
            if not (self.run_dir / "config.json").exists():
                if any(self.run_dir.iterdir()):
                    return self._fail("starting", f"{self.run_dir} has no config.json yet (a run starting?).")
                return self._fail("empty", f"{self.run_dir} is an empty directory, not a run.")
            try:
                self.config = read_config(self.run_dir)
            except RunStoreError as e:
                return self._fail("corrupt", f"This run cannot be read: {e}")
        try:
            self.status = read_status(self.run_dir)
        except RunStoreError as e:
            return self._fail("corrupt", f"This run's status cannot be read: {e}")
        self.metrics.refresh()
        if traces:
            self.refresh_traces()
        return self

    def refresh_traces(self) -> list[dict]:
        gen = self.traces.generation
        new = self.traces.refresh()
        if self.traces.generation != gen:  # file rewritten: rows of the old file are stale
            self.trace_rows = [derive.trace_row(t, i) for i, t in enumerate(self.traces.records)]
        else:
            start = len(self.trace_rows)
            self.trace_rows.extend(derive.trace_row(t, start + i) for i, t in enumerate(new))
        return new

    def _fail(self, kind: str, message: str) -> RunCache:
        self.problem_kind, self.problem = kind, message
        return self

    # -------------------------------------------------------------- views
    @property
    def state(self) -> str | None:
        return "corrupt" if self.problem_kind == "corrupt" else self.status.get("state")

    @property
    def running(self) -> bool:
        return self.state in ("running", "created")

    def label(self) -> str:
        cfg = self.config or {}
        return f"{self.run_id} ({cfg.get('method', '?')}, alpha={cfg.get('alpha', '?')})"

    def memo(self, name: str, fn, *args):
        """Cache a derived value until new traces or metrics arrive (keyed on what was read)."""
        key = (name, args, len(self.trace_rows), self.traces.generation, len(self.metrics.records),
               self.metrics.generation)
        if key not in self._memo:
            if len(self._memo) > 64:
                self._memo.clear()
            self._memo[key] = fn(*args)
        return self._memo[key]

    def step_summaries(self, split: str | None = "train") -> list[dict]:
        return self.memo("step_summaries", lambda s: derive.step_summaries(self.trace_rows, s), split)


def get_run(run_dir: Path | str, traces: bool = True) -> RunCache:
    """The session's RunCache for ``run_dir``, refreshed (Streamlit only)."""
    import streamlit as st

    caches = st.session_state.setdefault(SESSION_KEY, {})
    key = str(Path(run_dir).absolute())
    cache = caches.get(key)
    if cache is None:
        cache = caches[key] = RunCache(run_dir)
    return cache.refresh(traces=traces)
