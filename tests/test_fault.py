"""Fault tests on the standalone Flink cluster (make test-fault): no reading is lost.

Each run: 100,000 readings from 100 sensors (50 injected anomalies, 200 malformed records)
produced at a steady RATE while the job runs, and one fault at a random moment between 30%
and 60% of the stream. Afterwards: the job recovered by itself within 60 s, every injected
anomaly has an alert, the alerts are exactly the oracle's set once duplicates are dropped
by alert_id, and the dead letters are exactly the malformed records once duplicates are
dropped by their source partition and offset. Each run prints its recovery time and
duplicate counts (the figures quoted in README "Guarantees").

Recovery time: from the fault until the job emits the statistics of a window ending after
the fault moment, i.e. it has restarted, restored its checkpoint, replayed what followed
the checkpoint and processed data from after the fault.
"""

import random
import time

import pytest

from runners.services import Services
from runners.simulator import generate
from tests.fault_run import FAULTS, FaultRun
from transforms.judge import alert_id
from tests.e2e_job import readings_of

pytestmark = pytest.mark.fault

SENSORS, READINGS, ANOMALIES, MALFORMED = 100, 100_000, 50, 200
RATE = 1000.0  # readings/s: the stream lasts 100 s
RECOVERY_LIMIT_S = 60.0


@pytest.fixture(scope='module')
def cluster():
  started = Services()
  try:
    for script in ('kafka.sh', 'expansion_service.sh', 'flink_cluster.sh'):
      started.ensure(script)
    yield started
  finally:
    started.stop_started()


def make_records(start_ms: int):
  return list(generate(SENSORS, READINGS, RATE, start_ms, ANOMALIES, MALFORMED, seed=11,
                       shift_settle_s=15.0))


@pytest.mark.parametrize('fault', sorted(FAULTS))
def test_recovers_without_losing_a_reading(cluster, fault):
  run = FaultRun(make_records)
  try:
    run.start()
    stream_s = READINGS / RATE
    at = time.time() + stream_s * random.uniform(0.3, 0.6)
    run.inject(fault, at)
    run.finish()

    injected = [r for r in run.records if r.kind in ('spike', 'dip', 'level_shift')]
    assert len(injected) == ANOMALIES
    assert len(run.readings) == READINGS and len(run.malformed) == MALFORMED, (
        'the producer did not write exactly the generated records')
    alerts = run.job.read('alerts')
    ids = {a['alert_id'] for a in alerts}
    dead = run.dead_letter_keys()
    print(f'\nfault {fault}: recovery {run.recovery_s:.1f} s, duplicate alerts '
          f'{len(alerts) - len(ids)} of {len(alerts)}, duplicate dead letters '
          f'{sum(dead.values()) - len(dead)} of {sum(dead.values())}'
          + (f', savepoint {run.savepoint}' if run.savepoint else ''))
    missing = {alert_id(r) for r in readings_of(injected)} - ids
    assert not missing, f'injected anomalies without an alert: {sorted(missing)[:5]}'
    assert ids == run.expected, (f'missing {sorted(run.expected - ids)[:5]}, '
                                 f'unexpected {sorted(ids - run.expected)[:5]}')
    assert set(dead) == {(d.record.partition, d.record.offset, d.reason) for d in run.malformed}
    assert run.job.read('late') == []
    assert run.recovery_s <= RECOVERY_LIMIT_S, f'recovery took {run.recovery_s:.0f} s'
  finally:
    run.close()
