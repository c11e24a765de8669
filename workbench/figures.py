"""Plotly figure builders: pure functions from run records (or derive.py summaries) to go.Figure.

Shared by the Streamlit pages and the notebooks; nothing here reads files or touches Streamlit.
Rates are fractions of all problems (score_lib.metrics); the comparison chart uses percent like the
paper's tables.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from score_lib.metrics import TRANSITIONS

from . import derive

HEIGHT = 330
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b")  # attempt 1, attempt 2, ...


def _layout(fig: go.Figure, title: str, ytitle: str = "", xtitle: str = "step", height: int = HEIGHT,
            boundaries: Sequence[tuple[float, str]] = ()) -> go.Figure:
    # One update_layout call and no named template: plotly deep-copies a template per figure, which
    # was most of a live refresh's time; Streamlit applies its own theme anyway.
    # Legend under the x-axis title, modebar vertical at the right: neither covers the title or axes.
    fig.update_layout(title={"text": title, "x": 0.01, "font": {"size": 15}}, height=height,
                      margin={"l": 50, "r": 40, "t": 45, "b": 40},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0, "traceorder": "normal"},
                      modebar={"orientation": "v"},
                      xaxis_title={"text": xtitle, "standoff": 4}, yaxis_title=ytitle, hovermode="x unified",
                      **_stage_marks(boundaries))
    return fig


def _stage_marks(boundaries: Sequence[tuple[float, str]]) -> dict:
    """Layout shapes/annotations: a dashed vertical line where each new stage starts (add_vline is slow)."""
    if not boundaries:
        return {}
    shapes = [{"type": "line", "x0": s - 0.5, "x1": s - 0.5, "y0": 0, "y1": 1, "yref": "paper",
               "line": {"dash": "dash", "color": "#555", "width": 1}} for s, _ in boundaries]
    notes = [{"x": s - 0.5, "y": 1, "yref": "paper", "text": stage, "showarrow": False, "xanchor": "left",
              "yanchor": "top", "font": {"size": 10, "color": "#555"}} for s, stage in boundaries]
    return {"shapes": shapes, "annotations": notes}


def add_stage_lines(fig: go.Figure, boundaries: Sequence[tuple[float, str]]) -> go.Figure:
    """Mark stage boundaries on an existing figure (for notebooks composing their own charts)."""
    marks = _stage_marks(boundaries)
    if marks:
        fig.update_layout(shapes=list(fig.layout.shapes) + marks["shapes"],
                          annotations=list(fig.layout.annotations) + marks["annotations"])
    return fig


def fig_lines(records: Sequence[dict], keys: Sequence[tuple[str, str]], title: str, ytitle: str = "",
              boundaries: Sequence[tuple[float, str]] = (), dashed: Sequence[str] = (),
              markers: Sequence[str] = (), log_y: bool = False, colors: Mapping[str, str] | None = None) -> go.Figure:
    """One line per (key, label) over steps; keys in ``markers`` (sparse, e.g. eval_*) as dots, keys in
    ``dashed`` as thin dashed lines; ``colors`` pins a key's colour (else the palette, in key order)."""
    fig = go.Figure()
    for n, (key, label) in enumerate(keys):
        xs, ys = derive.series(records, key)
        if not xs:
            continue
        xs, ys = np.asarray(xs), np.asarray(ys, dtype=float)  # plotly validates lists item by item
        color = (colors or {}).get(key, PALETTE[n % len(PALETTE)])
        if key in markers:
            fig.add_trace(go.Scatter(x=xs, y=ys, name=label, mode="lines+markers",
                                     line={"color": color, "dash": "dot"}, marker={"size": 7}))
        else:
            fig.add_trace(go.Scatter(x=xs, y=ys, name=label, mode="lines",
                                     line={"color": color, "dash": "dash" if key in dashed else "solid",
                                           "width": 1 if key in dashed else 2}))
    _layout(fig, title, ytitle, boundaries=boundaries)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


# Fig. 6b's rate, and the same rate among right and among wrong first attempts (dashed): collapse lowers
# both, learning to keep right answers lowers only the first
CHANGE_LINES = [("train_answer_change_rate", "train batch"), ("train_answer_change_if_right", "train, y1 right"),
                ("train_answer_change_if_wrong", "train, y1 wrong"), ("eval_answer_change_rate", "eval"),
                ("eval_answer_change_if_right", "eval, y1 right"), ("eval_answer_change_if_wrong", "eval, y1 wrong")]
CHANGE_SPLIT = [k for k, _ in CHANGE_LINES if k.startswith("train_answer_change_if_")]
CHANGE_MARKERS = [k for k, _ in CHANGE_LINES if k.startswith("eval_")]
# one colour per quantity, train (lines) and eval (dots) alike
CHANGE_COLORS = {f"{src}_answer_change_{q}": PALETTE[i] for src in ("train", "eval")
                 for i, q in enumerate(("rate", "if_right", "if_wrong"))}


def _per_attempt(records, prefix: str, label: str) -> list[tuple[str, str]]:
    return [(k, f"{label} t{k[len(prefix):]}") for k in derive.attempt_keys(records, prefix)]


def live_figures(records: Sequence[dict]) -> dict[str, go.Figure]:
    """Every chart of the live-training page, keyed by a short name, from metrics.jsonl records."""
    bounds = derive.stage_boundaries(records)
    rec = records
    evals = [("eval_acc_t1", "eval Acc@t1"), ("eval_acc_t2", "eval Acc@t2"), ("eval_delta", "eval Delta")]
    return {
        "reward": fig_lines(rec, _per_attempt(rec, "reward_t", "reward") + _per_attempt(rec, "shaped_t", "shaped"),
                            "Reward per attempt (mean; dashed: shaped)", "reward", bounds,
                            dashed=derive.attempt_keys(rec, "shaped_t")),
        "accuracy": fig_lines(rec, [("train_acc_t1", "Acc@t1"), ("train_acc_t2", "Acc@t2"),
                                    ("train_delta", "Delta")] + evals,
                              "Accuracy and Delta (train batch; dots: eval)", "fraction of problems", bounds,
                              markers=[k for k, _ in evals]),
        "transitions": fig_lines(rec, [("train_delta_i2c", "i->c"), ("train_delta_c2i", "c->i"),
                                       ("eval_delta_i2c", "eval i->c"), ("eval_delta_c2i", "eval c->i")],
                                 "Corrections (i->c) and breakages (c->i)", "fraction of problems", bounds,
                                 markers=["eval_delta_i2c", "eval_delta_c2i"]),
        "kl": fig_lines(rec, _per_attempt(rec, "kl_t", "KL"), "KL to the reference per attempt", "KL (nats)",
                        bounds),
        "answer_change": fig_lines(rec, CHANGE_LINES, "Answer-change rate (attempt 2 proposes a different answer)",
                                   "rate", bounds, dashed=CHANGE_SPLIT, markers=CHANGE_MARKERS,
                                   colors=CHANGE_COLORS),
        "entropy": fig_lines(rec, _per_attempt(rec, "entropy_t", "entropy"), "Entropy per token",
                             "nats", bounds),
        "length": fig_lines(rec, _per_attempt(rec, "len_t", "length"), "Attempt length", "tokens", bounds),
        "loss": fig_lines(rec, [("loss", "loss"), ("pg_loss", "policy-gradient term")], "Loss", "", bounds),
    }


def fig_edit_ratio_hist(hists: Mapping[str, dict], title: str = "Edit-distance ratio between attempts") -> go.Figure:
    """Grouped bars of metrics.histogram outputs, as shares so runs with different counts compare."""
    fig = go.Figure()
    for n, (label, h) in enumerate(hists.items()):
        total = sum(h["counts"]) or 1
        edges = h["edges"]
        centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
        fig.add_trace(go.Bar(x=centers, y=[c / total for c in h["counts"]], name=f"{label} (n={sum(h['counts'])})",
                             marker_color=PALETTE[n % len(PALETTE)],
                             hovertext=[f"[{a:.2f}, {b:.2f}]" for a, b in zip(edges[:-1], edges[1:])]))
    fig.update_layout(barmode="group")
    _layout(fig, title, "share of episodes", "edit distance / (len y1 + len y2)")
    fig.update_xaxes(range=[0, 1])
    return fig


def fig_transitions_stacked(summaries: Sequence[dict], title: str = "Transitions over training") -> go.Figure:
    """Stacked shares of c->c / i->c / c->i / i->i per step (derive.step_summaries)."""
    fig = go.Figure()
    steps = [s["step"] for s in summaries]
    for t in ("c2c", "i2c", "c2i", "i2i"):
        fig.add_trace(go.Bar(x=steps, y=[s["counts"][t] / s["n"] for s in summaries], name=derive.LABELS[t],
                             marker_color=derive.COLORS[t]))
    fig.update_layout(barmode="stack", bargap=0.1)
    return _layout(fig, title, "share of sampled episodes")


def fig_answer_change(records: Sequence[dict], summaries: Sequence[dict] = (),
                      boundaries: Sequence[tuple[float, str]] = ()) -> go.Figure:
    """Answer-change rate from metrics.jsonl (train batch, eval) and from the sampled traces."""
    fig = fig_lines(records, CHANGE_LINES, "Answer-change rate over training", "rate", boundaries,
                    dashed=CHANGE_SPLIT, markers=CHANGE_MARKERS, colors=CHANGE_COLORS)
    fig.update_yaxes(range=[0, 1.02])
    if summaries:
        fig.add_trace(go.Scatter(x=[s["step"] for s in summaries], y=[s["answer_change_rate"] for s in summaries],
                                 name="sampled traces", mode="markers", marker={"color": "#999", "size": 5}))
        fig.add_trace(go.Scatter(x=[s["step"] for s in summaries], y=[s["unchanged_share"] for s in summaries],
                                 name="traces: y2 identical to y1", mode="markers",
                                 marker={"color": "#d62728", "size": 5, "symbol": "x"}))
    return fig


def fig_transition_counts(counts: Mapping[str, int], title: str = "Episodes per transition") -> go.Figure:
    fig = go.Figure(go.Bar(x=[derive.LABELS[t] for t in TRANSITIONS], y=[counts.get(t, 0) for t in TRANSITIONS],
                           marker_color=[derive.COLORS[t] for t in TRANSITIONS]))
    return _layout(fig, title, "episodes", "transition", height=250)


def fig_shaping(alphas: Sequence[float]) -> go.Figure:
    """Stage II's attempt-2 reward per transition for several alphas (score_lib.objectives)."""
    fig = go.Figure()
    for n, alpha in enumerate(alphas):
        table = derive.shaping_table(alpha)
        fig.add_trace(go.Bar(x=[r["transition"] for r in table], y=[r["Stage II t2"] for r in table],
                             name=f"alpha={alpha:g}", marker_color=PALETTE[n % len(PALETTE)]))
    fig.update_layout(barmode="group")
    return _layout(fig, "Stage II: reward credited to attempt 2", "shaped reward", "transition")


def fig_advantage_mass(masses: Mapping[str, Mapping[str, dict]], attempt: int = 2) -> go.Figure:
    """Left: share of the total |advantage| each transition carries; right: its signed sum."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("share of |advantage|", "summed advantage"))
    for n, (label, mass) in enumerate(masses.items()):
        x = [derive.LABELS[t] for t in TRANSITIONS]
        color = PALETTE[n % len(PALETTE)]
        fig.add_trace(go.Bar(x=x, y=[mass[t]["share"] for t in TRANSITIONS], name=label, marker_color=color,
                             legendgroup=label), row=1, col=1)
        fig.add_trace(go.Bar(x=x, y=[mass[t]["sum"] for t in TRANSITIONS], name=label, marker_color=color,
                             legendgroup=label, showlegend=False), row=1, col=2)
    fig.update_layout(barmode="group")
    _layout(fig, f"Where the advantage of attempt {attempt} goes", "", "", height=330)
    fig.update_layout(hovermode="closest")
    return fig


def fig_compare(rows: Sequence[dict], metrics: Sequence[str] = ("Acc@t1", "Acc@t2", "Delta")) -> go.Figure:
    """Grouped bars of paper-style rows (percent): one group per row, one bar per metric."""
    fig = go.Figure()
    labels = [r["run"] for r in rows]
    for n, m in enumerate(metrics):
        fig.add_trace(go.Bar(x=labels, y=[r.get(m) for r in rows], name=m, marker_color=PALETTE[n % len(PALETTE)]))
    fig.update_layout(barmode="group")
    _layout(fig, "Self-correction: ours next to the paper", "percent of problems", "", height=420)
    # long row names: legend on top, slanted labels get their own margin
    fig.update_layout(hovermode="closest", legend={"yanchor": "bottom", "y": 1.0, "x": 0.5, "xanchor": "center"})
    fig.update_xaxes(tickangle=-25, automargin=True)
    return fig


def fig_runs_metric(runs: Mapping[str, Sequence[dict]], key: str, title: str) -> go.Figure:
    """One line per run of a metrics.jsonl key (e.g. eval_delta) over steps."""
    fig = go.Figure()
    for n, (label, records) in enumerate(runs.items()):
        xs, ys = derive.series(records, key)
        if xs:
            fig.add_trace(go.Scatter(x=np.asarray(xs), y=np.asarray(ys, dtype=float), name=label,
                                     mode="lines+markers", line={"color": PALETTE[n % len(PALETTE)]}))
    return _layout(fig, title, key)
