"""Streamlit helpers shared by the pages: the runs root, the run picker, run-problem messages."""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

import streamlit as st

from score_lib.runs import list_runs

from . import launcher
from .data import RunCache

ROOT_KEY, RUN_KEY, PENDING_KEY = "wb_root", "wb_run", "wb_run_pending"
REFRESH_S = 2.0  # live pages re-read the run this often while it is running
# Plain symbols rather than emoji: they render in every font (headless browsers have no emoji font).
ICONS = {"running": "●", "created": "○", "finished": "✓", "failed": "✗", "stopped": "■", "crashed": "✗",
         "corrupt": "⚠", None: "?"}


def root() -> Path:
    return Path(st.session_state[ROOT_KEY])


def fmt_time(t) -> str:
    if not isinstance(t, (int, float)):
        return ""
    return _dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def run_choices(runs_root: Path) -> dict[str, str]:
    """run id -> label for the picker: every run list_runs sees, plus runs launched from this app
    that have no config.json yet and a ?run= from the URL (which may name an empty directory)."""
    choices = {r["run_id"]: f"{ICONS.get(r['state'], '?')} {r['run_id']}" for r in list_runs(runs_root)}
    for run_id in launcher.LAUNCHES:
        choices.setdefault(run_id, f"○ {run_id} (starting)")
    wanted = st.query_params.get("run")
    if wanted and "/" not in wanted and wanted not in (".", ".."):
        choices.setdefault(wanted, f"? {wanted}")
    return choices


def sidebar(runs_root: Path) -> None:
    """The run picker, shared by every page; the chosen run is mirrored in the URL (?run=...)."""
    choices = run_choices(runs_root)
    pending = st.session_state.pop(PENDING_KEY, None)
    if pending in choices:
        st.session_state[RUN_KEY] = pending
    elif st.session_state.get(RUN_KEY) not in choices:
        wanted = st.query_params.get("run")
        st.session_state[RUN_KEY] = wanted if wanted in choices else next(iter(choices), None)
    with st.sidebar:
        st.caption(f"Run store: `{runs_root}`")
        if not choices:
            st.info("No runs yet.")
            return
        st.selectbox("Run", list(choices), format_func=choices.get, key=RUN_KEY, on_change=_sync_url)
    _sync_url()


def _sync_url():
    run_id = st.session_state.get(RUN_KEY)
    if run_id and st.query_params.get("run") != run_id:
        st.query_params["run"] = run_id


def selected_run_dir() -> Path | None:
    run_id = st.session_state.get(RUN_KEY)
    return root() / run_id if run_id else None


def no_run_selected() -> None:
    st.info(f"No runs under `{root()}`. Start one on the Runs page, or point `--runs-dir` / "
            "`SCORE_RUNS_DIR` at a run store.")


def starting(cache: RunCache) -> bool:
    """No config.json yet, but a run is on its way (files appearing, or launched from this app)."""
    launch = launcher.LAUNCHES.get(cache.run_id)
    launched = launch is not None and launch.returncode is None
    return cache.problem_kind == "starting" or (cache.problem_kind in ("missing", "empty") and launched)


def show_problem(cache: RunCache) -> bool:
    """Tell the user what is wrong with a run; True when the page can still show its data."""
    if cache.problem_kind == "corrupt":
        st.error(cache.problem)
        return False
    launch = launcher.LAUNCHES.get(cache.run_id)
    if cache.problem_kind in ("missing", "empty") and launch is None:
        st.info(cache.problem)
        return False
    if cache.problem_kind is not None:  # starting, or launched from this app and not written yet
        st.info(f"`{cache.run_id}` is starting: no config.json yet." if starting(cache) else cache.problem)
        if launch is not None:
            if launch.returncode not in (None, 0):
                st.error(f"`score train` exited with code {launch.returncode} before creating the run.")
            st.code(launcher.log_tail(launch.log_path) or "(no output yet)", language=None)
        return False
    status = cache.status
    state = status.get("state")
    if state == "failed":
        st.error(f"Run failed: {status.get('error') or 'no error message recorded'}")
        if status.get("traceback"):
            with st.expander("Traceback"):
                st.code(status["traceback"], language=None)
    elif state == "crashed":
        st.warning(f"The run's process is gone without a final status ({status.get('error')}); "
                   "showing what it wrote.")
    elif state == "stopped":
        st.info(f"Run stopped at step {status.get('step')}: {status.get('error') or ''}")
    bad = {t.path.name: t.bad_lines for t in (cache.metrics, cache.traces) if t.bad_lines}
    if bad:
        st.warning("Skipped unreadable lines: " + ", ".join(f"{n} in {name}" for name, n in bad.items()))
    return True


def pick_runs(label: str, key: str, default_states=("finished", "stopped", "running"), limit: int = 6) -> list[dict]:
    """A multiselect over readable runs (corrupt ones are left out); returns their list_runs rows."""
    runs = [r for r in list_runs(root()) if r["state"] != "corrupt"]
    by_id = {r["run_id"]: r for r in runs}
    default = [r["run_id"] for r in runs if r["state"] in default_states][:limit]
    chosen = st.multiselect(label, list(by_id), default=default, key=key)
    return [by_id[c] for c in chosen]


def run_label(summary: dict, config: dict | None) -> str:
    alpha = (config or {}).get("alpha")
    a = f", α={alpha:g}" if isinstance(alpha, (int, float)) else ""
    return f"{summary['run_id']} ({summary.get('method')}{a})"
