"""Ablation: a `score ablate` folder's paper-style table and its findings check, redrawn while it runs."""
from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from score_lib import ablate, findings
from score_lib.runs import list_runs
from workbench import figures, ui

POLL_S = 5 * ui.REFRESH_S  # an ablation run takes minutes: no need to re-read 36 reports every 2 s


def render() -> None:
    st.title("Ablation")
    st.caption("Every method of the paper's tables on one world, several seeds (`score ablate`): the table of "
               "the runs finished so far, and whether it shows the paper's five findings (issue 3), claim by "
               "claim with the numbers that decide it.")
    root = ui.root()
    folders = ablate.find_ablations(root)
    if not folders:
        st.info(f"No ablation under `{root}`. Run one into it, e.g. `score ablate --seeds 3 --out {root}/ablate-toy` "
                "(its default folder, runs/ablate-<world>-<time>, is there when the app opens ./runs).")
        return
    labels = {str(f): f"{f.name} (the run store itself)" if f == root else f.name for f in folders}
    folder = Path(st.selectbox("Ablation folder", list(labels), format_func=labels.get, key="abl-folder"))
    if _running(folder):
        st.fragment(run_every=POLL_S)(_body)(str(folder), True)
    else:
        _body(str(folder), False)


def _running(folder: Path) -> bool:
    return any(r["state"] == "running" for r in list_runs(folder))


def _plan(folder: Path) -> dict:
    for name in (ablate.PLAN_FILE, "ablation.json"):  # the plan, or the finished table's _meta
        try:
            doc = json.loads((folder / name).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        return doc if name == ablate.PLAN_FILE else {**doc.get("_meta", {}),
                                                      "methods": [m for m in doc if not m.startswith("_")]}
    return {}


def _body(folder_s: str, was_live: bool) -> None:
    folder = Path(folder_s)
    if was_live and not _running(folder):
        st.rerun()  # the last run ended: redraw once without the timer
    plan, done = _plan(folder), ablate.finished_runs(folder)
    n_done = sum(len(s) for s in done.values())
    planned = len(plan.get("methods", [])) * plan.get("seeds", 0)
    if planned:
        st.progress(min(1.0, n_done / planned), text=f"{n_done} of {planned} runs finished")
    else:
        st.caption(f"{n_done} runs finished")
    if not done:
        st.info("No run of this ablation has finished yet." + (" (refreshing)" if was_live else ""))
        return
    try:
        results = ablate.aggregate(folder, list(done), done)
    except (OSError, KeyError, json.JSONDecodeError) as e:
        st.error(f"{folder}: a run report could not be read: {e}")
        return
    config = folder / f"{next(iter(done))}-s{done[next(iter(done))][0]}" / "config.json"
    seeds = sorted({s for ss in done.values() for s in ss})
    results["_meta"] = {"world": plan.get("world", "not recorded"), "seeds": len(seeds),
                        "eval": ablate.eval_protocol(json.loads(config.read_text())) if config.exists() else "not recorded"}
    uneven = {m: s for m, s in done.items() if s != seeds}
    if uneven:
        st.caption("Not every method has every seed yet: " + "; ".join(
            f"{ablate.ABLATIONS[m][0]} {', '.join(map(str, s))}" for m, s in uneven.items())
            + ". Methods with different seeds are compared unpaired.")
    st.markdown(ablate.markdown(results))
    st.subheader("The paper's findings")
    st.markdown(findings.markdown(findings.check(results)))
    hists = {ablate.ABLATIONS[m][0]: results[m]["edit_ratio_hist"] for m in done if results[m].get("edit_ratio_hist")}
    if hists:
        st.plotly_chart(figures.fig_edit_ratio_hist(hists, "Edit-distance ratio between attempts (first seed)"),
                        key="abl-hist")
    st.caption(f"Each run is a normal run folder: open them one by one with `score app --runs-dir {folder}`.")


if __name__ == "__main__":
    render()
