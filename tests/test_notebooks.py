"""The guided notebooks (notebooks/): the .py / .ipynb pairs cannot drift, and each keeps its shape.

Executing them is `make notebooks` (pytest --nbmake, smoke mode); these checks are static and fast.
"""
from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
EXPECTED = ["01_self_correction_gap", "02_sft_failure_modes", "03_stage1", "04_stage2_reward_shaping",
            "05_ablations", "06_real_models"]


def test_the_six_notebooks_exist_as_pairs():
    assert [p.stem for p in SOURCES] == EXPECTED
    assert sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) == EXPECTED


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_ipynb_matches_its_py_and_has_no_outputs(source):
    jupytext = pytest.importorskip("jupytext")
    from_py = jupytext.read(source)
    ipynb = jupytext.read(source.with_suffix(".ipynb"))
    assert _cells(ipynb) == _cells(from_py), (
        f"{source.name} and its .ipynb differ: run `jupytext --sync {source}` (make notebooks does)")
    for cell in ipynb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{source.with_suffix('.ipynb').name} is committed with outputs: clear them "
                f"(jupytext --to ipynb {source})")
    tags = [c.metadata.get("tags", []) for c in from_py.cells]
    assert sum("parameters" in t for t in tags) == 1, "exactly one cell tagged 'parameters'"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_mode_comes_from_the_environment_and_the_last_cell_checks_the_finding(source):
    jupytext = pytest.importorskip("jupytext")
    cells = [c.source for c in jupytext.read(source).cells if c.cell_type == "code"]
    params = next(c for c in jupytext.read(source).cells if "parameters" in c.metadata.get("tags", []))
    assert 'os.environ.get("SCORE_NOTEBOOK_MODE", "smoke")' in params.source
    assert 'if MODE == "full":' in cells[-1] and "assert" in cells[-1], "the last cell checks the finding in full mode"
