"""The soak's load and verdict (tests/soak_run.py), without Kafka or Flink."""

from collections import defaultdict

from tests.oracle import expected_alert_ids
from tests.soak_run import DAY_MS, PARTITIONS, SoakPlan, soak_records, verdict
from transforms.judge import alert_id

START_MS = 1_796_000_000_000 - 1_796_000_000_000 % 60_000


def test_the_load_follows_the_plan():
  plan = SoakPlan(days=3, tail_ms=600_000)
  records = list(soak_records(plan, START_MS))
  newest = defaultdict(int)
  by_sensor = defaultdict(list)
  for record in records:
    assert record.ts_ms >= newest[record.partition], 'a partition out of event-time order'
    newest[record.partition] = record.ts_ms
    assert START_MS <= record.ts_ms < START_MS + plan.span_ms
    if record.reading:
      by_sensor[record.reading.sensor_id].append(record.reading.ts_ms)
  assert len(by_sensor) == plan.sensors == 103
  assert set(newest) == set(range(PARTITIONS))
  # sensor 0 stops on day 2, the last sensor starts on day 3, dense sensors every 10 s
  assert max(by_sensor['sensor-0000']) < plan.stop_ms(START_MS) <= max(
      by_sensor['sensor-0000']) + plan.dense_every_ms
  assert min(by_sensor['sensor-0102']) >= plan.late_start_ms(START_MS)
  assert len(by_sensor['sensor-0001']) == plan.span_ms // plan.dense_every_ms
  assert len(by_sensor['sensor-0012']) == plan.span_ms // plan.sparse_every_ms
  malformed = [r for r in records if r.reading is None]
  assert len(malformed) == plan.days * plan.malformed_per_day and all(r.reason for r in malformed)
  # every injected spike alerts, and alerts fall on every day
  readings = [r.reading for r in records if r.reading]
  expected = expected_alert_ids(readings, plan.size_ms, plan.period_ms, 50.0)
  alert_days = {(r.ts_ms - START_MS) // DAY_MS for r in readings if alert_id(r) in expected}
  assert alert_days == set(range(plan.days))
  assert len(expected) >= plan.days * plan.spikes_per_day


def report(first: float, last: float, **outputs) -> dict:
  exact = {'alerts_exact': True, 'dead_letters_exact': True, 'late_readings': 0,
           'missing_alerts': [], 'unexpected_alerts': []}
  exact.update(outputs)
  days = [{'day': 1, 'state_mb': first, 'heap_mb': first, 'worker_rss_mb': first},
          {'day': 2, 'state_mb': last, 'heap_mb': last, 'worker_rss_mb': last}]
  return {'plan': {'days': 2}, 'days': days, 'outputs': exact}


def test_the_verdict_allows_20_percent_of_growth_from_day_one():
  assert verdict(report(100.0, 119.0)) == []
  assert verdict(report(100.0, 50.0)) == []  # shrinking is no leak
  problems = verdict(report(100.0, 121.0))
  assert len(problems) == 3 and problems[0].startswith('state_mb grew +21% from day 1')


def test_the_verdict_wants_exact_outputs_and_every_day():
  assert verdict(report(1.0, 1.0, alerts_exact=False))
  assert verdict(report(1.0, 1.0, dead_letters_exact=False))
  assert verdict(report(1.0, 1.0, late_readings=3))
  short = report(1.0, 1.0)
  short['plan']['days'] = 3
  assert verdict(short) == ['2 of 3 days recorded']
