"""End to end on real Kafka and Flink: the job's topics hold exactly what they must.

10 sensors x 2,000 readings (100 readings/s of event time, so 200 s), 20 injected
anomalies and 50 malformed records, pre-loaded into a readings topic of 5 partitions of
which partition 4 gets nothing: an idle partition must not hold the watermark back.
Expected alerts come from tests/oracle.py, a naive re-implementation of the rule.
"""

import json
import time
from collections import Counter

import pytest

from pipeline.options import DEFAULT_TRAILING_LAG_S
from runners.services import Services
from runners.simulator import Record, generate
from runners.topic_reader import wait_for
from tests import streaming
from tests.e2e_job import (DETECTION_ARGS, JobRun, dead_letter_signature, flink_job,
                           flink_user_counters, readings_of)
from tests.oracle import expected_alert_ids
from transforms.records import RawRecord, iso_ms
from transforms.rules import DEFAULT_THRESHOLDS, LIKELIHOOD

pytestmark = pytest.mark.e2e

SENSORS, PER_SENSOR, ANOMALIES, MALFORMED = 10, 2000, 20, 50
RATE = 100.0  # readings/s of event time, all sensors


@pytest.fixture(scope='module')
def services():
  started = Services()
  try:
    for script in ('kafka.sh', 'expansion_service.sh'):
      started.ensure(script)
    yield started
  finally:
    started.stop_started()


@pytest.fixture(scope='module')
def cluster(services):
  services.ensure('flink_cluster.sh')


def scenario():
  total = SENSORS * PER_SENSOR
  # Event times end 60 s ago, so every record is in the past of the watermark's `now`.
  start_ms = int(time.time() * 1000) - int(total / RATE * 1000) - 60_000
  start_ms -= start_ms % 5000  # slots and windows start with the data
  records = list(generate(SENSORS, total, RATE, start_ms, ANOMALIES, MALFORMED, seed=7,
                          shift_settle_s=15.0))
  return records


def check_run(mode: str) -> None:
  records = scenario()
  readings = readings_of(records)
  expected = expected_alert_ids(readings, 10_000, 5_000, 50.0)
  injected = [r for r in records if r.kind in ('spike', 'dip', 'level_shift')]
  malformed = [r for r in records if r.kind == 'malformed']
  assert len(readings) == SENSORS * PER_SENSOR and len(malformed) == MALFORMED
  # The oracle sees every injected anomaly (else the scenario, not the job, is wrong).
  from transforms.judge import alert_id  # pylint: disable=import-outside-toplevel
  assert {alert_id(r) for r in readings_of(injected)} <= expected

  last_ts = max(r.ts_ms for r in readings)
  last_window_end = iso_ms(last_ts - last_ts % 5000 + 10_000)
  job = JobRun(mode, readings_partitions=5)
  try:
    job.produce(records, partitions=4)  # partition 4 stays idle
    job.start()
    if mode == 'cluster':
      # The job shows in the REST API while INITIALIZING, then must reach RUNNING.
      wait_for(lambda: (flink_job(job.job_name) or {}).get('state') in
               ('RUNNING', 'FAILED', 'CANCELED', 'FINISHED'), 120, 'the job in Flink REST')
      running = flink_job(job.job_name)
      assert running['state'] == 'RUNNING', f'Flink REST: {running}'
    job.wait_for_outputs(len(expected), MALFORMED, last_window_end, SENSORS, timeout_s=300)

    alerts = job.read('alerts')
    ids = Counter(a['alert_id'] for a in alerts)
    assert set(ids) == expected, (
        f'missing {sorted(expected - set(ids))[:5]}, unexpected {sorted(set(ids) - expected)[:5]}')
    assert max(ids.values()) == 1, 'an alert was written twice'
    assert dead_letter_signature(job.read('dead')) == Counter(
        (r.payload.hex(), r.reason) for r in malformed)
    assert job.read('late') == []

    if mode == 'cluster':
      jid = flink_job(job.job_name)['jid']
      assert flink_job(job.job_name)['state'] == 'RUNNING'
      # Flink's REST metrics are refreshed every few seconds: poll until they have caught up.
      try:
        wait_for(lambda: flink_user_counters(jid).get('judged_readings') == len(readings), 60,
                 'Flink REST counters')
      except TimeoutError:
        pass  # the exact assertions below say what differs
      counters = flink_user_counters(jid)
      assert counters.get('readings') == SENSORS * PER_SENSOR, counters
      assert counters.get('dead_letters') == MALFORMED, counters
      assert counters.get('alerts') == len(expected), counters
      assert counters.get('late_readings', 0) == 0, counters
      # Every reading is judged, also those before the first window that ended at least the
      # default baseline lag before them (the first slots), for which no baseline exists
      # (Flink would hold them back without BaselinesPerSlot's markers).
      first_ts, lag_ms = min(r.ts_ms for r in readings), round(DEFAULT_TRAILING_LAG_S * 1000)
      assert counters.get('judged_readings') == len(readings), counters
      assert counters.get('no_baseline') == sum(
          1 for r in readings if (r.ts_ms - lag_ms) // 5000 * 5000 <= first_ts), counters
      reasons = Counter(r.reason for r in malformed)
      for reason, count in reasons.items():
        assert counters.get(f'dead_letter_{reason}') == count, counters
  finally:
    job.close()


def test_embedded_flink(services):
  check_run('embedded')


def test_cluster_flink(cluster):
  check_run('cluster')


def test_default_rule_alerts_on_flink_as_on_the_direct_runner(services):
  """The likelihood rule (the default) keeps per-sensor history in the scorer, whose flush
  timers only Flink drives for real: its alerts on embedded Flink must be exactly those of
  the same records on the DirectRunner, and must include the large injected anomalies."""
  records = scenario()
  rule_args = [f'--rule={LIKELIHOOD}', f'--threshold={DEFAULT_THRESHOLDS[LIKELIHOOD]}']
  outputs, _ = streaming.run_batch(
      [RawRecord(r.payload, timestamp_ms=r.ts_ms) for r in records], DETECTION_ARGS + rule_args)
  expected = {a['alert_id'] for a in outputs['alerts']}
  from transforms.judge import alert_id  # pylint: disable=import-outside-toplevel
  spikes = {alert_id(r) for r in readings_of([r for r in records if r.kind == 'spike'])}
  assert len(expected & spikes) >= len(spikes) // 2, 'the DirectRunner missed most spikes'

  readings = readings_of(records)
  last_ts = max(r.ts_ms for r in readings)
  job = JobRun('embedded', readings_partitions=5)
  try:
    job.produce(records, partitions=4)
    job.start(rule_args)
    job.wait_for_outputs(len(expected), MALFORMED, iso_ms(last_ts - last_ts % 5000 + 10_000),
                         SENSORS, timeout_s=300)
    ids = Counter(a['alert_id'] for a in job.read('alerts'))
    assert set(ids) == expected, (
        f'missing {sorted(expected - set(ids))[:5]}, unexpected {sorted(set(ids) - expected)[:5]}')
    assert max(ids.values()) == 1, 'an alert was written twice'
  finally:
    job.close()


def test_side_input_is_complete_for_1000_sensors(services):
  """1,000 sensors read every 2 s for 40 s; each has one spike of +100 in slot [30, 35).

  Every spike is judged by the slot's one dict of 1,000 sensors' statistics of [20, 30)
  (flat: deviation exactly 100 > 50). A reading judged against a partial dict would find
  no baseline for its sensor: a missing alert and a `no_baseline` count outside the
  stream's first slot. The oracle gives the exact expected set.
  """
  sensors, step_s = 1000, 2
  start_ms = int(time.time() * 1000) - 120_000
  start_ms -= start_ms % 5000
  records = []
  for t in range(0, 40, step_s):
    for k in range(sensors):
      spike = 100.0 if t == 30 + 2 * (k % 3) else 0.0
      ts_ms = start_ms + t * 1000
      payload = json.dumps({'sensor_id': f'sensor-{k:04d}', 'value': 20.0 + k % 7 + spike,
                            'ts': ts_ms}).encode()
      records.append(Record(f'sensor-{k:04d}'.encode(), payload, ts_ms, 'normal',
                            sensor_id=f'sensor-{k:04d}', value=20.0 + k % 7 + spike))
  readings = readings_of(records)
  expected = expected_alert_ids(readings, 10_000, 5_000, 50.0)
  assert len(expected) == sensors  # one spike each, nothing else
  job = JobRun('embedded', readings_partitions=4)
  try:
    job.produce(records, partitions=4)
    job.start()
    last_window_end = iso_ms(start_ms + 40_000 + 5_000)
    job.wait_for_outputs(len(expected), 0, last_window_end, sensors, timeout_s=420)
    ids = Counter(a['alert_id'] for a in job.read('alerts'))
    assert set(ids) == expected, (
        f'{len(expected - set(ids))} sensors without their alert, '
        f'{len(set(ids) - expected)} unexpected alerts')
    assert max(ids.values()) == 1
  finally:
    job.close()
