"""The soak test (make test-soak): a week of event time on the standalone cluster.

tests/soak_run.py does the run: 103 sensors, SOAK_DAYS (default 7) simulated days read as a
paced backlog with checkpoints on, each day's figures taken with the read paused and the job
still. It passes when the last day's checkpointed state, heap after a full collection and SDK
worker memory are at most 20 % above day 1's, and the alerts and dead letters are exactly the
expected ones once duplicates are dropped. It prints the per-day table; the whole report is
in .local/soak/latest.json.
"""

import os

import pytest

from tests.soak_run import SoakPlan, SoakRun, table, verdict
# The module fixture that starts Kafka, the expansion service and the cluster unless they run,
# and stops what it started.
from tests.test_e2e_flink_uber_jar import cluster  # pylint: disable=unused-import

pytestmark = pytest.mark.soak


def test_a_week_of_event_time_keeps_state_and_memory_bounded(cluster):
  run = SoakRun(SoakPlan(days=int(os.environ.get('SOAK_DAYS', SoakPlan().days))))
  try:
    report = run.run()
  finally:
    print('\n' + table(run.report))
    print(f"soak: {run.report.get('json')}, wall {run.report.get('wall_s')} s")
  problems = verdict(report)
  assert not problems, '; '.join(problems)
