"""SCoRe Workbench: `streamlit run app.py -- --runs-dir DIR` (or SCORE_RUNS_DIR; default ./runs)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import streamlit as st

from score_lib.runs import runs_root
from workbench import ui

HERE = Path(__file__).resolve().parent
PAGES = HERE / "workbench" / "pages_"
# (file, title, url path, icon); the first is the default page
PAGE_TABLE = [
    ("runs.py", "Runs", "runs", ":material/list:"),
    ("live.py", "Live training", "live", ":material/monitoring:"),
    ("traces.py", "Trace inspector", "traces", ":material/difference:"),
    ("collapse.py", "Behaviour collapse", "collapse", ":material/compress:"),
    ("shaping.py", "Reward shaping", "shaping", ":material/tune:"),
    ("compare.py", "Compare runs", "compare", ":material/table_chart:"),
    ("ablation.py", "Ablation", "ablation", ":material/fact_check:"),
]


def runs_dir_arg(argv: list[str]) -> str | None:
    # parse_known_args: under AppTest or `streamlit run` argv holds other programs' flags too;
    # allow_abbrev=False so e.g. pytest's flags never match --runs-dir by prefix.
    ap = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    ap.add_argument("--runs-dir")
    return ap.parse_known_args(argv)[0].runs_dir


def main() -> None:
    st.set_page_config(page_title="SCoRe Workbench", page_icon=":material/replay:", layout="wide")
    root = runs_root(runs_dir_arg(sys.argv[1:]))
    st.session_state[ui.ROOT_KEY] = str(root)
    pages = [st.Page(PAGES / f, title=t, url_path=u, icon=i, default=n == 0)
             for n, (f, t, u, i) in enumerate(PAGE_TABLE)]
    page = st.navigation(pages)
    ui.sidebar(root)
    page.run()


main()
