"""Trace inspector: find episodes by transition, step, split and problem; read both attempts side by side."""
from __future__ import annotations

import streamlit as st

from score_lib.metrics import TRANSITIONS
from workbench import data, derive, figures, render, ui

ALL = "all"
TABLE_LIMIT = 1000  # rows sent to the browser; the filters narrow down the rest


def render_page() -> None:
    st.title("Trace inspector")
    run_dir = ui.selected_run_dir()
    if run_dir is None:
        ui.no_run_selected()
        return
    cache = data.get_run(run_dir)
    if not ui.show_problem(cache):
        return
    rows = cache.trace_rows
    if not rows:
        st.info("This run has no traces yet (traces.jsonl is written every `trace_every` steps).")
        return
    picked = _filters(rows)
    st.markdown(f"**{len(picked)}** of {len(rows)} episodes match.")
    if not picked:
        st.info("No episode matches these filters.")
        return
    counts = {t: sum(r["transition"] == t for r in picked) for t in TRANSITIONS}
    cols = st.columns([1, 2])
    cols[0].plotly_chart(figures.fig_transition_counts(counts, "Matching episodes"), key="trace-counts")
    # one type per column (numbers or None, text or None): a hand-edited trace must not break Arrow
    table = [{"#": r["i"], "step": _f(r["step"]), "split": _s(r["split"]), "problem": r["problem_id"],
              "sample": _f(r["sample"]), "transition": derive.LABELS.get(r["transition"], "-"),
              "answer 1": _s(r.get("answer_t1")), "answer 2": _s(r.get("answer_t2")),
              "edit ratio": _f(r["edit_ratio"]), "adv t1": _f(r.get("advantage_t1")),
              "adv t2": _f(r.get("advantage_t2"))}
             for r in picked[:TABLE_LIMIT]]
    cols[1].dataframe(table, hide_index=True, height=250,
                      column_config={k: st.column_config.NumberColumn(format="%.3f")
                                     for k in ("edit ratio", "adv t1", "adv t2")})
    if len(picked) > TABLE_LIMIT:
        cols[1].caption(f"Showing the first {TABLE_LIMIT}; narrow the filters to see the rest.")
    _episode(cache, picked)


def _seed_from_url(steps: list) -> None:
    """Filters from the URL (?transition=c2i,i2c&split=train&step=12&problem=..&episode=..), so a link
    can point at an exact episode. Only seeds widgets the user has not touched in this session."""
    q, ss = st.query_params, st.session_state
    if "tr-transition" not in ss and q.get("transition"):
        ss["tr-transition"] = [t for t in q["transition"].split(",") if t in TRANSITIONS] or list(TRANSITIONS)
    if "tr-split" not in ss and q.get("split") in ("train", "test"):
        ss["tr-split"] = q["split"]
    if "tr-step" not in ss and q.get("step", "").lstrip("-").isdigit() and int(q["step"]) in steps:
        ss["tr-step"] = int(q["step"])
    if "tr-problem" not in ss and q.get("problem"):
        ss["tr-problem"] = q["problem"]


def _filters(rows: list[dict]) -> list[dict]:
    steps = sorted({r["step"] for r in rows if derive.is_number(r["step"])})
    _seed_from_url(steps)
    c = st.columns([3, 1, 1, 2])
    chosen = c[0].multiselect("Transition", list(TRANSITIONS), default=list(TRANSITIONS),
                              format_func=derive.LABELS.get, key="tr-transition")
    split = c[1].selectbox("Split", [ALL, "train", "test"], key="tr-split")
    step = c[2].selectbox("Step", [ALL, *steps], key="tr-step")
    problem = c[3].text_input("Problem id contains", key="tr-problem")
    transitions = None if set(chosen) == set(TRANSITIONS) else chosen  # all: keep 1-attempt traces too
    return derive.select(rows, transitions, None if step == ALL else step, None if split == ALL else split,
                         problem)


def _episode(cache, picked: list[dict]) -> None:
    st.subheader("Episode")
    c = st.columns([3, 2])
    options = [r["i"] for r in picked[:TABLE_LIMIT]]
    labels = {r["i"]: f"#{r['i']} step {r['step']} {r['split']} {r['problem_id']} "
                      f"{derive.LABELS.get(r['transition'], '')}" for r in picked[:TABLE_LIMIT]}
    wanted = st.query_params.get("episode", "")
    if "tr-episode" not in st.session_state and wanted.isdigit() and int(wanted) in labels:
        st.session_state["tr-episode"] = int(wanted)
    if st.session_state.get("tr-episode") not in labels:  # filtered away: fall back to the first
        st.session_state.pop("tr-episode", None)
    idx = c[0].selectbox("Episode", options, format_func=labels.get, key="tr-episode")
    mode = c[1].radio("Colour by", ["differences", "logprob", "advantage"], horizontal=True, key="tr-mode")
    trace, row = cache.traces.records[idx], cache.trace_rows[idx]
    st.markdown(f"**step {row['step']} · {row['split']} · problem `{row['problem_id']}` · "
                f"sample {row['sample']} · {derive.LABELS.get(row['transition'], 'single attempt')}**"
                f" · gold answer `{trace.get('gold')}`")
    with st.expander("Prompt"):
        st.code(str(trace.get("prompt", "")), language=None)
    atts = derive.graded_attempts(trace)
    if not atts:
        st.info("This trace holds no graded attempt.")
        return
    texts = [str(a.get("text") or "") for a in atts[:2]]
    html = list(render.diff_html(*texts)) if len(texts) == 2 else [render.plain_html(texts[0])]
    if mode == "logprob":
        for j, a in enumerate(atts[:2]):
            if a.get("tokens") and a.get("logprobs"):
                html[j] = render.logprob_html(a["tokens"], a["logprobs"])
    elif mode == "advantage":
        scale = max([abs(a["advantage"]) for a in atts[:2] if derive.is_number(a.get("advantage"))] + [1e-9])
        for j, a in enumerate(atts[:2]):
            if a.get("tokens") and derive.is_number(a.get("advantage")):
                html[j] = render.advantage_html(a["tokens"], a["advantage"], scale)
    if mode != "differences" and not any(a.get("tokens") for a in atts[:2]):
        st.caption("No per-token data recorded for this episode (eval traces carry none); showing differences.")
    cols = st.columns(len(html))
    for j, (col, a) in enumerate(zip(cols, atts[:2])):
        with col:
            mark = ":green[✓ right]" if a.get("correct") else ":red[✗ wrong]"
            st.markdown(f"**Attempt {j + 1}** {mark}, answer `{a.get('answer')}`"
                        + (" · truncated" if a.get("truncated") else ""))
            st.markdown(html[j], unsafe_allow_html=True)
            st.markdown(f"reward **{_num(a.get('reward'))}** · shaped reward **{_num(a.get('shaped_reward'))}**"
                        f" · advantage **{_num(a.get('advantage'))}**")
    if row["edit_ratio"] is not None:
        st.caption(f"edit-distance ratio {row['edit_ratio']:.3f} · answer changed: {row['answer_changed']}")


def _f(v):
    return v if derive.is_number(v) else None


def _s(v):
    return None if v is None else str(v)


def _num(v) -> str:
    return f"{v:+.3f}" if derive.is_number(v) else "-"


if __name__ == "__main__":
    render_page()
