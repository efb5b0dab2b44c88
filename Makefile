# maildesk: `make run` sets up and starts the daemon; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config/maildesk.yaml
PYTEST_ARGS ?=

.PHONY: run test setup db check bench bench-quick clean

$(BIN)/maildesk: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/maildesk

db: setup
	$(BIN)/maildesk --config $(CONFIG) db upgrade

run: db
	$(BIN)/maildesk --config $(CONFIG) serve

check: setup
	$(BIN)/maildesk --config $(CONFIG) check

# In parallel (pytest-xdist), up to 4 processes: most tests wait on servers and subprocesses.
# `make test PYTEST_ARGS="-n 0"` runs them one by one.
test: setup
	$(BIN)/python -m pytest -n auto --maxprocesses 4 $(PYTEST_ARGS)

bench-quick: setup
	$(BIN)/python benchmarks/smtp_ingest.py --quick
	$(BIN)/python benchmarks/pipeline.py --quick
	$(BIN)/python benchmarks/outbox.py --quick
	$(BIN)/python benchmarks/imap_ingest.py --quick
	$(BIN)/python benchmarks/rules.py --quick
	$(BIN)/python benchmarks/sla.py --quick
	$(BIN)/python benchmarks/report.py --quick
	$(BIN)/python benchmarks/end_to_end.py --quick

bench: setup
	$(BIN)/python benchmarks/smtp_ingest.py
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/outbox.py
	$(BIN)/python benchmarks/imap_ingest.py
	$(BIN)/python benchmarks/rules.py
	$(BIN)/python benchmarks/sla.py
	$(BIN)/python benchmarks/report.py
	$(BIN)/python benchmarks/end_to_end.py

clean:
	rm -rf $(VENV) var .pytest_cache *.egg-info
