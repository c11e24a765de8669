# make setup: create or reuse .venv and install the project with what the tests need.
# torch is pinned to the CPU wheel this machine carries; GPU users: make setup TORCH="torch==2.13.0" PIP_EXTRA="--index-url ..."
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
PIP_EXTRA ?=
BIN    := $(VENV)/bin

.PHONY: setup test notebooks demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(PIP_EXTRA) "$(TORCH)"
	$(BIN)/pip install -q $(PIP_EXTRA) -e ".[test,data,notebooks]"
	touch $@

setup: $(VENV)/.installed

test: setup
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory notebooks

# notebooks: pair each notebooks/NN_*.py (jupytext percent, the source) with its .ipynb, then execute
# every notebook in smoke mode (tiny budgets, about 3 minutes in all); any error fails the target.
# Full mode (the lecture, < 10 min a notebook): SCORE_NOTEBOOK_MODE=full, see README "Notebooks".
NOTEBOOKS := $(wildcard notebooks/[0-9]*.py)

notebooks: setup
	$(BIN)/jupytext --sync $(NOTEBOOKS)
	SCORE_NOTEBOOK_MODE=smoke $(BIN)/python -m pytest -q -p no:cacheprovider --nbmake notebooks/

# demo: a live toy SCoRe run in the background, watched in the app (http://127.0.0.1:8501)
demo: setup
	$(BIN)/score toy-base
	$(BIN)/score train --preset toy-score --runs-dir runs --quiet > runs-demo.log 2>&1 &
	@echo "training in the background (log: runs-demo.log); opening the app on http://127.0.0.1:8501"
	$(BIN)/score app --runs-dir runs

bench: setup
	$(BIN)/pip install -q $(PIP_EXTRA) -e ".[bench]"
	$(BIN)/python benchmarks/rollout_speed.py
	$(BIN)/python benchmarks/rl_step.py
	$(BIN)/python benchmarks/trl_compare.py
	$(BIN)/python benchmarks/sandbox_speed.py
	$(BIN)/python benchmarks/math_check_speed.py
	$(BIN)/python benchmarks/app_refresh.py

clean:
	rm -rf $(VENV) .pytest_cache
