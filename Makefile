# `make demo` and `make test` do all set-up on a fresh machine: they create .venv and install the
# pinned dependencies (requirements.lock) and Podium itself first. `make demo` then runs the
# whole flow end to end on SQLite (`registry demo`, see README.md) and serves until Ctrl-C;
# `make test` lints and runs the suite on every core (pytest-xdist; a module whose fixture is
# costly stays on one worker, its xdist_group) and names the slowest tests.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint lock clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/registry demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	WANDB_MODE=disabled $(BIN)/pytest -n auto --dist loadgroup --durations=25

lint: $(STAMP)
	$(BIN)/ruff check .

# Re-pin after changing pyproject.toml's ranges: installs the ranges into a throwaway venv and
# writes plain name==version lines (no URLs, no index addresses).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet ".[test]"
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v -E '^(podium|pip|setuptools)==' \
		| LC_ALL=C sort -f > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
