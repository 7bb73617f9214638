# Quickstart: `make demo` runs the job end to end; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: venv jars test test-unit test-e2e test-fault test-soak soak demo clean bench

# The project-local virtual environment, rebuilt when setup.py changes.
$(VENV)/.installed: setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# The e2e tests also build a Dataflow job offline (apache-beam[gcp]).
$(VENV)/.e2e-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,dataflow]'
	touch $@

# Java services from Maven Central into .cache/jars (a no-op when up to date).
jars:
	runners/fetch_jars.sh

# DirectRunner tests: no Kafka, no Flink.
test-unit: venv
	$(PYTEST) -q -m 'not e2e and not fault and not soak' tests

# Real Kafka and Flink (embedded and standalone cluster); the tests start what is not
# running and stop what they started.
test-e2e: $(VENV)/.e2e-installed jars
	runners/fetch_flink.sh
	$(PYTEST) -q -m e2e tests

# Fault injection on the standalone cluster (tests/test_fault.py): kill -9 the TaskManager,
# kill the Python worker pool, restart the broker, stop with a savepoint and resume; each run
# prints its recovery time and duplicate counts.
test-fault: $(VENV)/.e2e-installed jars
	runners/fetch_flink.sh
	$(PYTEST) -q -s -m fault tests

# Soak (tests/test_soak.py, tests/soak_run.py): a week of event time, 103 sensors, read by the
# job on the standalone cluster as a paced backlog with checkpoints on, windows of 2 min every
# 1 min (the job's cost in compressed time is per slot: ~11 minutes here). Passes when the
# last day's checkpointed state, TaskManager heap after a full collection and SDK worker
# memory are at most 20 % above day 1's and the alerts and dead letters are exact; a day's
# figures are taken with the read paused and the job still. Prints the per-day table; the
# report goes to .local/soak/latest.json. SOAK_DAYS=<n> for another length.
test-soak: $(VENV)/.e2e-installed jars
	runners/fetch_flink.sh
	$(PYTEST) -q -s -m soak tests

# A soak of DAYS simulated days by hand (default 7) with the job's --window_period PERIOD
# seconds (default 60; PERIOD=5 is the job's default, a week takes ~40 minutes), on services
# that are already running (runners/kafka.sh, runners/expansion_service.sh,
# runners/flink_cluster.sh start).
DAYS ?= 7
PERIOD ?= 60
soak: $(VENV)/.e2e-installed jars
	runners/fetch_flink.sh
	$(PY) -m tests.soak_run --days $(DAYS) --period_s $(PERIOD)

# Every test, the soak included (about 40 minutes on a 2-core machine).
test: test-unit test-e2e test-fault test-soak

# Benchmark (bench/run.py; not part of `make test`): highest sustained rate, alert latency,
# memory and cost of the job, against the original Java job and Beam's ZScore, on embedded
# Flink and the standalone cluster; about 65 minutes. Starts the services that are not
# running and stops what it started; writes .local/bench/latest.json and the table in
# docs/performance.md; last line: "bench: max_rps=.. p99_ms=.. vs_java=.. vs_beam_zscore=..".
# BENCH_ARGS='--plan full' (about 4.5 hours), '--budget_min 30', '--no_table',
# '--redo ours_cluster' (those steps again, the others from the previous run).
bench: $(VENV)/.e2e-installed jars
	runners/fetch_flink.sh
	$(PY) -m bench.run $(BENCH_ARGS)

# The job end to end: Kafka, the job on Flink (FLINK=embedded or cluster), the simulator,
# live alerts; DURATION=<seconds> or Ctrl-C ends it. Extra job options: JOB_ARGS='...'.
FLINK ?= embedded
DURATION ?= 0
demo: venv jars
	$(PY) -m runners.demo --flink $(FLINK) --duration $(DURATION) -- $(JOB_ARGS)

clean:
	rm -rf .local/demo .local/nab

# docs/options.md, the table of every job option, from the argparse definitions
# (runners/options_table.py; tests/test_options_table.py fails while it is stale).
.PHONY: options-doc
options-doc: venv
	$(PY) -m runners.options_table

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
