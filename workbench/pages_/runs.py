"""Runs: every run in the store, starting a new `score train` run, stopping a running one."""
from __future__ import annotations

import streamlit as st

from score_lib.config import METHODS, PRESETS, ConfigError
from score_lib.runs import list_runs
from workbench import launcher, ui

KEEP = "(the preset's)"


def render() -> None:
    st.title("Runs")
    root = ui.root()
    st.caption(f"Run store: `{root}` (set with `--runs-dir` or `SCORE_RUNS_DIR`)")
    any_running = any(r["state"] in ("running", "created") for r in list_runs(root))
    # Follow the table live only while something runs; a finished store needs no polling.
    (st.fragment(run_every=ui.REFRESH_S * 2)(_table) if any_running else _table)()
    st.divider()
    _launch_form(root)
    _launches()


def _table() -> None:
    root = ui.root()
    runs = list_runs(root)
    if not root.is_dir():
        st.info(f"There is no run store at `{root}` yet: start a run below and it will be created.")
        return
    if not runs:
        st.info(f"No runs under `{root}` yet. Start one below, or run `score train --preset toy-score`.")
    else:
        rows = [{"": ui.ICONS.get(r["state"], "?"), "run": r["run_id"], "state": r["state"], "method": r["method"],
                 "task": r["task"], "model": r["model"], "step": r["step"], "Acc@t1": r["acc_t1"],
                 "Acc@t2": r["acc_t2"], "Delta": r["delta"], "updated": ui.fmt_time(r["updated"]),
                 "error": r["error"]} for r in runs]
        pct = {k: st.column_config.NumberColumn(k, format="%.3f") for k in ("Acc@t1", "Acc@t2", "Delta")}
        st.dataframe(rows, hide_index=True, column_config=pct)
        for r in runs:
            if r["state"] == "corrupt":
                st.error(f"`{r['run_id']}` is corrupt: {r['error']}")
            elif r["state"] == "failed":
                st.error(f"`{r['run_id']}` failed: {r['error'] or 'no error recorded'}")
    starting = set(launcher.LAUNCHES)
    not_runs = sorted(d.name for d in root.iterdir()
                      if d.is_dir() and not (d / "config.json").exists() and d.name not in starting)
    if not_runs:
        st.info("Not runs (no config.json): " + ", ".join(f"`{n}`" for n in not_runs))
    running = [r for r in runs if r["state"] in ("running", "created")]
    if running:
        st.subheader("Running")
        for r in running:
            cols = st.columns([4, 1])
            cols[0].markdown(f"● `{r['run_id']}`: step {r['step'] or 0}, {r['method']}")
            if cols[1].button("Stop", key=f"stop-{r['run_id']}", help="SIGTERM the trainer; the run is kept"):
                with st.spinner(f"Stopping {r['run_id']}..."):
                    try:
                        state = launcher.stop_run(r["path"])
                    except (RuntimeError, OSError) as e:
                        st.error(f"Could not stop `{r['run_id']}`: {e}")
                    else:
                        st.success(f"`{r['run_id']}`: {state}")


def _launch_form(root) -> None:
    st.subheader("Start a run")
    with st.form("launch"):
        c = st.columns(4)
        preset = c[0].selectbox("Preset", list(PRESETS), index=0, key="ln-preset")
        method = c[1].selectbox("Method", [KEEP, *METHODS], index=0, key="ln-method")
        steps = c[2].number_input("Steps", min_value=0, value=200, step=10, key="ln-steps")
        seed = c[3].number_input("Seed", min_value=0, value=0, step=1, key="ln-seed")
        c = st.columns(3)
        alpha = c[0].number_input("alpha (Stage II bonus)", min_value=0.0, value=10.0, step=1.0, key="ln-alpha")
        beta1 = c[1].number_input("beta1 (KL, every attempt)", min_value=0.0, value=0.01, step=0.005, format="%.4f",
                                key="ln-beta1")
        beta2 = c[2].number_input("beta2 (Stage I KL, attempt 1)", min_value=0.0, value=0.1, step=0.05,
                                  format="%.3f", key="ln-beta2")
        submitted = st.form_submit_button("Start training", type="primary")
    if not submitted:
        return
    overrides = {"alpha": float(alpha), "beta1": float(beta1), "beta2": float(beta2), "steps": int(steps),
                 "seed": int(seed)}
    if method != KEEP:
        overrides["method"] = method
    effective = overrides.get("method", PRESETS[preset].get("method"))
    if effective == "score" and steps < 200:
        # keep the default Stage I share (80 of 200 steps) rather than refusing stage1_steps > steps
        overrides["stage1_steps"] = max(0, round(0.4 * steps))
    try:
        launch = launcher.start_run(root, preset, overrides)
    except (ConfigError, OSError) as e:
        st.error(f"Not started: {e}")
        return
    st.session_state[ui.PENDING_KEY] = launch.run_id  # the sidebar picks it on the next rerun
    st.success(f"Started `{launch.run_id}` (pid {launch.pid}). Log: `{launch.log_path}`. "
               "Open *Live training* to follow it.")
    st.code(" ".join(launch.command), language="bash")


def _launches() -> None:
    if not launcher.LAUNCHES:
        return
    st.subheader("Started from this app")
    for launch in sorted(launcher.LAUNCHES.values(), key=lambda la: -la.started):
        code = launch.returncode
        state = "running" if code is None else f"exited with code {code}"
        with st.expander(f"`{launch.run_id}`: pid {launch.pid}, {state}", expanded=code not in (None, 0)):
            if code not in (None, 0) and not (launch.run_dir / "status.json").exists():
                st.error(f"`score train` exited with code {code} before creating the run.")
            st.code(launcher.log_tail(launch.log_path) or "(no output yet)", language=None)


if __name__ == "__main__":
    render()
