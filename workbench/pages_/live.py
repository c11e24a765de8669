"""Live training: the per-step curves of one run, following it while it trains."""
from __future__ import annotations

import streamlit as st

from workbench import data, derive, figures, ui

ORDER = [("reward", "accuracy"), ("transitions", "answer_change"), ("kl", "entropy"), ("length", "loss")]


def render() -> None:
    st.title("Live training")
    run_dir = ui.selected_run_dir()
    if run_dir is None:
        ui.no_run_selected()
        return
    cache = data.get_run(run_dir, traces=False)
    if _follow(cache):
        # Only a live run polls; run_every re-executes just this fragment, not the whole page.
        st.fragment(run_every=ui.REFRESH_S)(_body)(str(run_dir), True)
    else:
        _body(str(run_dir), False)


def _follow(cache: data.RunCache) -> bool:
    """Poll while the run trains, or while a launched run has not written its config yet."""
    return cache.running or ui.starting(cache)


def _body(run_dir: str, was_live: bool) -> None:
    cache = data.get_run(run_dir, traces=False)  # reads only the lines appended since last time
    if was_live and not _follow(cache):
        st.rerun()  # finished, failed or stopped: redraw once without the timer
    if not ui.show_problem(cache):
        return
    cfg, status = cache.config or {}, cache.status
    records = cache.metrics.records
    train = derive.train_records(records)
    st.caption(f"`{cache.run_id}`: {cfg.get('method')} on {cfg.get('task')} with {cfg.get('model')}, "
               f"alpha={cfg.get('alpha')}, beta1={cfg.get('beta1')}, beta2={cfg.get('beta2')}; "
               f"state **{status.get('state')}**, updated {ui.fmt_time(status.get('updated'))}"
               + (" (refreshing)" if cache.running else ""))
    if not train and not records:
        st.info("No training step logged yet." if cache.running else "This run logged no training steps.")
        return
    _cards(cfg, status, records, train)
    figs = figures.live_figures(records)
    for left, right in ORDER:
        cols = st.columns(2)
        cols[0].plotly_chart(figs[left], key=f"live-{left}")
        cols[1].plotly_chart(figs[right], key=f"live-{right}")


def _cards(cfg: dict, status: dict, records: list, train: list) -> None:
    last = train[-1] if train else {}
    step = last.get("step", status.get("step"))
    cols = st.columns(6)
    cols[0].metric("Step", f"{step} / {cfg.get('steps', '?')}")
    cols[1].metric("Stage", str(last.get("stage", "-")))

    def pct(key):
        v = derive.last_value(train, key)
        return f"{v:.1%}" if v is not None else "-"

    cols[2].metric("Acc@t1 (train)", pct("train_acc_t1"))
    cols[3].metric("Acc@t2 (train)", pct("train_acc_t2"))
    cols[4].metric("Delta (train)", pct("train_delta"))
    ev = derive.last_value(records, "eval_delta")
    ev_step = next((r["step"] for r in reversed(records) if derive.is_number(r.get("eval_delta"))), None)
    label = f"Delta (eval @ {ev_step})" if ev_step else "Delta (eval)"
    chosen = derive.last_value(records, "eval_selected_step")  # select_by=train-reward scored other weights
    if chosen is not None and ev_step is not None and chosen != ev_step:
        label = f"Delta (eval @ {ev_step}, weights of step {chosen})"
    cols[5].metric(label, f"{ev:+.1%}" if ev is not None else "-")


if __name__ == "__main__":
    render()
