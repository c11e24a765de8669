"""Behaviour collapse: does attempt 2 still differ from attempt 1, and does it change the answer?"""
from __future__ import annotations

import streamlit as st

from score_lib.runs import RunStoreError, latest_eval
from workbench import data, derive, figures, ui


def render() -> None:
    st.title("Behaviour collapse")
    st.caption("Naive multi-turn RL learns to copy attempt 1 (edit-distance ratio near 0, answers never "
               "change); SCoRe should keep attempt 2 different where it matters.")
    run_dir = ui.selected_run_dir()
    if run_dir is None:
        ui.no_run_selected()
        return
    cache = data.get_run(run_dir)
    if ui.show_problem(cache):
        _one_run(cache)
    st.divider()
    _across_runs()


def _one_run(cache: data.RunCache) -> None:
    st.subheader(f"Over training: `{cache.run_id}`")
    split = st.radio("Traces", ["train", "test"], horizontal=True, key="col-split",
                     help="train: episodes sampled during training; test: episodes of the evaluations")
    rows = cache.trace_rows
    steps = derive.steps_with_traces(rows, split)
    summaries = cache.step_summaries(split)
    bounds = derive.stage_boundaries(cache.metrics.records)
    if not steps:
        st.info(f"No {split} traces with two attempts in this run yet.")
    else:
        step = steps[-1] if len(steps) == 1 else st.select_slider(
            "Training step", options=steps, value=steps[-1], key="col-step")
        hists = {f"step {steps[0]} (first)": derive.edit_ratio_hist(derive.select(rows, step=steps[0], split=split))}
        if step != steps[0]:
            hists[f"step {step}"] = derive.edit_ratio_hist(derive.select(rows, step=step, split=split))
        st.plotly_chart(figures.fig_edit_ratio_hist(hists, f"Edit-distance ratio, {split} traces"), key="col-hist")
    cols = st.columns(2)
    cols[0].plotly_chart(figures.fig_answer_change(cache.metrics.records, summaries, bounds), key="col-change")
    if summaries:
        cols[1].plotly_chart(figures.fig_transitions_stacked(summaries, f"Transitions over training ({split} traces)"),
                             key="col-stack")
    else:
        cols[1].info("No traces to count transitions from.")


def _across_runs() -> None:
    st.subheader("By method, across runs (latest evaluation)")
    chosen = ui.pick_runs("Runs", "col-runs", default_states=("finished", "stopped"))
    hists, missing = {}, []
    for r in chosen:
        cache = data.get_run(r["path"])
        try:
            ev = latest_eval(r["path"])
        except RunStoreError as e:
            st.error(str(e))
            continue
        hist = (ev or {}).get("edit_ratio_hist")
        if not derive.valid_hist(hist):  # no eval yet: fall back to the test traces of the last evaluated step
            test_steps = derive.steps_with_traces(cache.trace_rows, "test")
            rows = derive.select(cache.trace_rows, step=test_steps[-1], split="test") if test_steps else []
            hist = derive.edit_ratio_hist(rows) if rows else None
        if hist:
            hists[ui.run_label(r, cache.config)] = hist
        else:
            missing.append(r["run_id"])
    if missing:
        st.info("No evaluation or test traces yet: " + ", ".join(f"`{m}`" for m in missing))
    if hists:
        st.plotly_chart(figures.fig_edit_ratio_hist(hists, "Edit-distance ratio by run"), key="col-methods")
    elif not chosen:
        st.info("Pick runs to compare their edit-distance histograms.")


if __name__ == "__main__":
    render()
