"""Compare runs: the paper-style table for any set of runs, next to the paper's numbers."""
from __future__ import annotations

import streamlit as st

from score_lib.runs import RunStoreError, latest_eval
from workbench import data, derive, figures, paper, ui

PCT = {name: st.column_config.NumberColumn(name, format="%.1f") for _, name in derive.COMPARE_KEYS}


def render() -> None:
    st.title("Compare runs")
    st.caption("Latest evaluation of each run, in percent of problems. Ours are toy-world numbers; the "
               "paper's are MATH500 / HumanEval with Gemini models: compare the shape (signs, which "
               "method corrects and which breaks), not the level.")
    chosen = ui.pick_runs("Runs", "cmp-runs", default_states=("finished", "stopped"), limit=10)
    tables = st.multiselect("Paper numbers", list(paper.TABLES), default=[next(iter(paper.TABLES))],
                            key="cmp-paper")
    ours, evals = [], {}
    for r in chosen:
        try:
            ev = latest_eval(r["path"])
        except RunStoreError as e:
            st.error(str(e))
            continue
        if ev is None:
            st.info(f"`{r['run_id']}` has no evaluation yet.")
            continue
        cache = data.get_run(r["path"], traces=False)
        label = ui.run_label(r, cache.config)
        ours.append(derive.compare_row(label, ev))
        evals[label] = cache.metrics.records
    theirs = [row for t in tables for row in paper.TABLES[t]]
    if not ours and not theirs:
        st.info("Pick runs (with an evaluation) or a paper table.")
        return
    st.dataframe(ours + theirs, hide_index=True, column_config=PCT)
    st.caption("unchanged: share of problems whose attempt 2 is identical to attempt 1 (edit ratio 0). "
               "changed if y1 right / wrong: answer-change rate among right / among wrong first attempts; "
               "fix rate: share of wrong first attempts made right. Every row satisfies Delta = i->c - c->i.")
    st.plotly_chart(figures.fig_compare(ours + theirs), key="cmp-bars")
    if evals:
        st.plotly_chart(figures.fig_runs_metric(evals, "eval_delta", "Delta over training (evaluations)"),
                        key="cmp-delta")


if __name__ == "__main__":
    render()
