# Quickstart: `make demo` runs the job end to end; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: venv test test-unit demo clean

# The project-local virtual environment, rebuilt when setup.py changes.
$(VENV)/.installed: setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# DirectRunner tests: no Kafka, no Flink.
test-unit: venv
	$(PYTEST) -q -m 'not e2e' tests

# Every test.
test: test-unit

# Replays generated readings through the job on the DirectRunner and prints the alerts.
demo: venv
	$(PY) runners/sample_readings.py --out .local/demo/readings.jsonl
	rm -rf .local/demo/out
	$(PY) -m pipeline --input_file=.local/demo/readings.jsonl --output_dir=.local/demo/out
	@cat .local/demo/out/alerts/*.jsonl
	@echo "demo: $$(cat .local/demo/out/alerts/*.jsonl | wc -l) alerts, $$(cat .local/demo/out/dead_letters/*.jsonl | wc -l) dead letters"

clean:
	rm -rf .local/demo
