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

# --- Parquet archive (docs/archive.md) ---
# The demo's readings through the job with --archive_dir, then the archived alerts as a table.
.PHONY: demo-archive
demo-archive: venv
	$(PY) runners/sample_readings.py --out .local/demo/readings.jsonl
	rm -rf .local/demo/out .local/demo/archive
	$(PY) -m pipeline --input_file=.local/demo/readings.jsonl --output_dir=.local/demo/out --archive_dir=.local/demo/archive
	$(PY) -m pipeline.archive_tool show .local/demo/archive --output alerts --limit 10

# ---------------------------------------------------------------------------
# Detection quality (docs/detection.md): backtests on labelled series (NAB layout).
#   make backtest DATA=<dir> OUT=<dir>  scores every <category>/<name>.csv under DATA with the
#                                       default detector (DETECTOR=... for another, ALL=1 for all)
#                                       into OUT/<detector>/<category>/<detector>_<name>.csv
#   make nab                            all detectors on ../shared/nab, scored with the reference
#                                       detectors; last line: "nab standard: <default's score>"
#   make report DATA=<dir> OUT=<dir>    one PNG per series (needs the report extra: matplotlib)
NAB ?= ../shared/nab
DATA ?= $(NAB)/data
OUT ?= .local/nab/results
DETECTOR ?=

.PHONY: backtest nab report

backtest: venv
	$(PY) -m backtest --data $(DATA) --out $(OUT) $(if $(ALL),--all) $(if $(DETECTOR),--detector $(DETECTOR))

nab: venv
	$(PY) -m backtest.nab --nab $(NAB) --out .local/nab/results

$(VENV)/.report-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[report]'
	touch $@

report: $(VENV)/.report-installed
	$(PY) -m backtest.report --data $(DATA) --out $(OUT)
