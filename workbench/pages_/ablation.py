"""Ablation: a `score ablate` folder's paper-style table and its findings check, redrawn while it runs."""
from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from score_lib import ablate, ablation_table, findings
from score_lib.runs import list_runs
from workbench import figures, ui

POLL_S = 5 * ui.REFRESH_S  # an ablation run takes minutes: no need to re-read 36 reports every 2 s


def render() -> None:
    st.title("Ablation")
    st.caption("Every method of the paper's tables on one world, several seeds (`score ablate`): the table of "
               "the runs finished so far, and whether it shows the paper's five findings (issue 3), claim by "
               "claim with the numbers that decide it.")
    root = ui.root()
    folders = ablation_table.find_ablations(root)
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


def _body(folder_s: str, was_live: bool) -> None:
    folder = Path(folder_s)
    if was_live and not _running(folder):
        st.rerun()  # the last run ended: redraw once without the timer
    try:
        results = ablation_table.folder_results(folder)
    except ValueError:
        st.info("No run of this ablation has finished yet." + (" (refreshing)" if was_live else ""))
        return
    except (OSError, KeyError, json.JSONDecodeError) as e:
        st.error(f"{folder}: a run report could not be read: {e}")
        return
    meta = results["_meta"]
    if meta["planned_runs"]:
        st.progress(min(1.0, meta["finished_runs"] / meta["planned_runs"]),
                    text=f"{meta['finished_runs']} of {meta['planned_runs']} runs finished")
    else:
        st.caption(f"{meta['finished_runs']} runs finished")
    seeds = sorted({s for m in results if m[0] != "_" for s in results[m]["seeds"]})
    uneven = {m: r["seeds"] for m, r in results.items() if m[0] != "_" and r["seeds"] != seeds}
    if uneven:
        st.caption("Not every method has every seed yet: " + "; ".join(
            f"{ablate.ABLATIONS[m][0]} {', '.join(map(str, s))}" for m, s in uneven.items())
            + ". Methods with different seeds are compared unpaired.")
    st.markdown(ablation_table.markdown(results))
    st.subheader("The paper's findings")
    st.markdown(findings.markdown(findings.check(results)))
    hists = {ablate.ABLATIONS[m][0]: r["edit_ratio_hist"] for m, r in results.items()
             if m[0] != "_" and r.get("edit_ratio_hist")}
    if hists:
        st.plotly_chart(figures.fig_edit_ratio_hist(hists, "Edit-distance ratio between attempts (first seed)"),
                        key="abl-hist")
    st.caption(f"Each run is a normal run folder: open them one by one with `score app --runs-dir {folder}`.")


if __name__ == "__main__":
    render()
