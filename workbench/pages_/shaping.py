"""Reward shaping explorer: what each transition earns under Stage I / II, and where the advantage goes."""
from __future__ import annotations

import streamlit as st

from score_lib.metrics import TRANSITIONS
from workbench import data, derive, figures, ui


def render() -> None:
    st.title("Reward shaping explorer")
    st.caption("Stage II credits attempt 2 with r2 + alpha (r2 - r1): i->c earns 1 + alpha, c->c 1, "
               "c->i -alpha, i->i 0. Numbers below come from score_lib.objectives.")
    run_dir = ui.selected_run_dir()
    cache = data.get_run(run_dir) if run_dir is not None else None
    cfg = (cache.config or {}) if cache is not None else {}
    c = st.columns(3)
    alpha = c[0].slider("alpha", 0.0, 20.0, float(cfg.get("alpha", 10.0)) if _ok(cfg.get("alpha")) else 10.0,
                        0.5, key="sh-alpha")
    beta1 = c[1].number_input("beta1", 0.0, 10.0, float(cfg.get("beta1", 0.01)) if _ok(cfg.get("beta1")) else 0.01,
                              0.005, format="%.4f", key="sh-beta1")
    beta2 = c[2].number_input("beta2", 0.0, 10.0, float(cfg.get("beta2", 0.1)) if _ok(cfg.get("beta2")) else 0.1,
                              0.05, format="%.3f", key="sh-beta2")
    cols = st.columns([3, 2])
    with cols[0]:
        st.markdown("**Reward credited to each attempt, per transition**")
        st.dataframe(derive.shaping_table(alpha), hide_index=True)
        st.markdown("**KL coefficient per attempt**")
        st.dataframe(derive.kl_table(beta1, beta2), hide_index=True)
    cols[1].plotly_chart(figures.fig_shaping(sorted({0.0, alpha})), key="sh-table-fig")
    st.divider()
    if cache is None:
        ui.no_run_selected()
        return
    if ui.show_problem(cache):
        _on_run(cache, alpha)
    st.divider()
    _compare_runs()


def _ok(v) -> bool:
    return derive.is_number(v)


def _on_run(cache: data.RunCache, alpha: float) -> None:
    st.subheader(f"On the recorded episodes of `{cache.run_id}`")
    rows = [r for r in cache.trace_rows if r["split"] == "train" and r["transition"]]
    stages = sorted({r["stage"] for r in rows if r["stage"]})
    if not rows:
        st.info("No training traces with two attempts in this run.")
        return
    stage = st.radio("Episodes of", ["all", *stages], horizontal=True, key="sh-stage")
    if stage != "all":
        rows = [r for r in rows if r["stage"] == stage]
    baseline = (cache.config or {}).get("baseline", "loo")  # the run's own baseline
    recomputed = derive.recompute_advantages(rows, alpha, "stage2", baseline)
    masses = {}
    if any(derive.is_number(r.get("advantage_t2")) for r in rows):
        masses["recorded (as trained)"] = derive.advantage_mass(rows)
    masses[f"Stage II, alpha={alpha:g}"] = derive.advantage_mass(rows, recomputed)
    masses["Stage II, alpha=0"] = derive.advantage_mass(rows, derive.recompute_advantages(rows, 0.0, "stage2", baseline))
    st.plotly_chart(figures.fig_advantage_mass(masses), key="sh-mass")
    st.dataframe(_mass_table(masses), hide_index=True)
    st.caption(f"Advantages are recomputed with the run's baseline ({baseline}) over the samples of each "
               "problem that the traces hold (a subset of the training batch).")


def _mass_table(masses: dict) -> list[dict]:
    out = []
    for label, mass in masses.items():
        for t in TRANSITIONS:
            out.append({"advantages": label, "transition": derive.LABELS[t], "episodes": mass[t]["n"],
                        "summed advantage": round(mass[t]["sum"], 4), "share of |advantage|": round(mass[t]["share"], 4)})
    return out


def _compare_runs() -> None:
    st.subheader("Runs side by side (advantages as recorded)")
    chosen = ui.pick_runs("Runs", "sh-runs", default_states=("finished", "stopped", "running"))
    masses = {}
    for r in chosen:
        cache = data.get_run(r["path"])
        rows = [x for x in cache.trace_rows if x["split"] == "train" and x["transition"]]
        if any(derive.is_number(x.get("advantage_t2")) for x in rows):
            masses[ui.run_label(r, cache.config)] = derive.advantage_mass(rows)
    if masses:
        st.plotly_chart(figures.fig_advantage_mass(masses), key="sh-runs-mass")
        st.dataframe(_mass_table(masses), hide_index=True)
    else:
        st.info("None of the chosen runs recorded advantages in its training traces.")


if __name__ == "__main__":
    render()
