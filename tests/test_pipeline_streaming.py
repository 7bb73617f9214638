"""build_pipeline end to end on the DirectRunner in streaming mode, driven by TestStream.

Unless a test says otherwise: window_size 10 s, window_period 5 s, trailing
baseline, and the original job's rule (absolute, threshold 50), given
explicitly since the default rule is now likelihood (tests/test_detectors.py).
Times are seconds after T0.
"""

import pytest

from transforms.records import RawRecord
from tests import streaming
from tests.fakes import Counter, State, Timer
from tests.streaming import T0, csv_record, json_record, project
from transforms.records import iso_ms

# The original job's rule, slots aligned with the windows (no lag) as the hand-computed
# expectations below assume; tests with a lag say so.
ORIGINAL_RULE = ['--rule=absolute', '--threshold=50', '--baseline_lag=0']


def run_stream(events, args=()):
  return streaming.run_stream(events, ORIGINAL_RULE + list(args))


def run_batch(records, args=()):
  return streaming.run_batch(records, ORIGINAL_RULE + list(args))


def iso(t_s):
  return iso_ms(T0 + round(t_s * 1000))


def test_sliding_windows_overlap():
  outputs, _ = run_stream([
      ('add', [json_record('s1', 10.0, 1), json_record('s1', 20.0, 6), json_record('s1', 30.0, 11)]),
  ])
  stats = project(outputs['window_stats'], 'window_start', 'window_end', 'count', 'mean', 'variance', 'min', 'max')
  assert stats == sorted([
      (iso(-5), iso(5), 1, 10.0, 0.0, 10.0, 10.0),    # [-5, 5): 10
      (iso(0), iso(10), 2, 15.0, 50.0, 10.0, 20.0),   # [0, 10): (10 + 20) / 2 = 15; ((-5)^2 + 5^2) / 1 = 50
      (iso(5), iso(15), 2, 25.0, 50.0, 20.0, 30.0),   # [5, 15): (20 + 30) / 2 = 25
      (iso(10), iso(20), 1, 30.0, 0.0, 30.0, 30.0),   # [10, 20): 30
  ])
  assert {s['pane'] for s in outputs['window_stats']} == {'ON_TIME'}


BASELINE_EVENTS = [
    ('add', [json_record('s1', 10.0, 1), json_record('s1', 12.0, 2),
             json_record('s1', 14.0, 6), json_record('s1', 100.0, 7),
             json_record('s1', 11.0, 12),
             json_record('s2', 10.0, 1), json_record('s2', 80.0, 6)]),
    ('watermark', 30),
]


def test_trailing_baseline_excludes_the_reading():
  outputs, _ = run_stream(BASELINE_EVENTS)
  alerts = project(outputs['alerts'], 'sensor_id', 'ts', 'value', 'window_start', 'window_end', 'window_mean', 'window_count', 'deviation')
  assert alerts == [
      # s1 at 7 s, slot [5, 10): window [-5, 5) = {10, 12}, mean 11; |100 - 11| = 89 > 50
      ('s1', iso(7), 100.0, iso(-5), iso(5), 11.0, 2, 89.0),
      # s2 at 6 s, slot [5, 10): window [-5, 5) = {10}, mean 10; |80 - 10| = 70 > 50
      ('s2', iso(6), 80.0, iso(-5), iso(5), 10.0, 1, 70.0),
  ]
  # Not alerted: s1 at 6 s (|14 - 11| = 3); s1 at 12 s, slot [10, 15): window [0, 10) =
  # {10, 12, 14, 100}, mean 34, |11 - 34| = 23. The readings at 1 s and 2 s are in
  # slot [0, 5), whose trailing window [-10, 0) is empty: no baseline, counted.
  batch_outputs, counters = run_batch(BASELINE_EVENTS[0][1])
  assert project(batch_outputs['alerts'], 'alert_id') == project(outputs['alerts'], 'alert_id')
  assert counters['no_baseline'] == 3  # s1 at 1 s, 2 s; s2 at 1 s
  assert counters['judged_readings'] == 7
  assert counters['alerts'] == 2


LAG_EVENTS = [
    ('add', [json_record('s1', 10.0, 1), json_record('s1', 12.0, 2),
             json_record('s1', 200.0, 6), json_record('s1', 75.0, 12)]),
    ('watermark', 30),
]


def test_baseline_lag_judges_a_slot_by_an_older_window():
  # Without a lag: 200 at 6 s, slot [5, 10), window [-5, 5) = {10, 12}: alert; 75 at 12 s,
  # slot [10, 15), window [0, 10) = {10, 12, 200}, mean 74: none.
  plain, _ = run_stream(LAG_EVENTS)
  assert project(plain['alerts'], 'ts', 'window_start', 'window_end') == [(iso(6), iso(-5), iso(5))]
  # One period of lag: slot [5, 10) is judged by the window ending at 0 (empty: no
  # baseline), slot [10, 15) by [-5, 5), mean 11: |75 - 11| = 64 > 50.
  lagged, _ = run_stream(LAG_EVENTS, ['--baseline_lag=5'])
  assert project(lagged['alerts'], 'ts', 'value', 'window_start', 'window_end', 'window_mean') == [
      (iso(12), 75.0, iso(-5), iso(5), 11.0)]
  batch_outputs, counters = run_batch(LAG_EVENTS[0][1], ['--baseline_lag=5'])
  assert project(batch_outputs['alerts'], 'alert_id') == project(lagged['alerts'], 'alert_id')
  assert counters['no_baseline'] == 3  # 1 s, 2 s, 6 s


SHIFT_EVENTS = [
    ('add', [json_record('s1', 10.0, 1), json_record('s1', 12.0, 2), json_record('s1', 14.0, 3),
             json_record('s1', 100.0, 6), json_record('s1', 80.0, 11),
             json_record('s1', 80.0, 13)]),
    ('watermark', 30),
]


def test_a_lag_shorter_than_a_period_judges_by_the_newest_window_that_old():
  # Without a lag: 100 at 6 s, slot [5, 10), window [-5, 5) = {10, 12, 14}, mean 12: alert;
  # 80 at 11 s and 13 s, window [0, 10), mean 34: |80 - 34| = 46, none.
  plain, _ = run_stream(SHIFT_EVENTS)
  assert project(plain['alerts'], 'ts') == [(iso(6),)]
  # A 2 s lag: slots start 2 s after the windows end. 100 at 6 s, slot [2, 7), by the window
  # ending at 0 (empty: no baseline); 80 at 11 s, slot [7, 12), by [-5, 5): |80 - 12| = 68,
  # alert; 80 at 13 s, slot [12, 17), by [0, 10): none. The window statistics do not move.
  lagged, counters = run_stream(SHIFT_EVENTS, ['--baseline_lag=2'])
  assert project(lagged['alerts'], 'ts', 'window_start', 'window_end', 'window_mean') == [
      (iso(11), iso(-5), iso(5), 12.0)]
  assert (project(lagged['window_stats'], 'window_start', 'window_end', 'count')
          == project(plain['window_stats'], 'window_start', 'window_end', 'count'))
  batch_outputs, batch_counters = run_batch(SHIFT_EVENTS[0][1], ['--baseline_lag=2'])
  assert project(batch_outputs['alerts'], 'alert_id') == project(lagged['alerts'], 'alert_id')
  assert batch_counters['no_baseline'] == 4  # 1 s, 2 s, 3 s (slot [-3, 2) and [2, 7)), 6 s
  assert batch_counters['judged_readings'] == 6


def test_containing_baseline_matches_the_original_job():
  outputs, _ = run_stream(BASELINE_EVENTS, ['--baseline=containing'])
  alerts = project(outputs['alerts'], 'sensor_id', 'ts', 'window_start', 'window_end', 'window_mean', 'window_count', 'deviation')
  assert alerts == [
      # s1 at 7 s, slot [5, 10): window [0, 10) = {10, 12, 14, 100}, mean 136 / 4 = 34; |100 - 34| = 66
      ('s1', iso(7), iso(0), iso(10), 34.0, 4, 66.0),
  ]
  # s2 at 6 s: window [0, 10) = {10, 80}, mean 45, |80 - 45| = 35 <= 50: the
  # reading inflated its own baseline and hid itself, which trailing fixes.
  # s1 at 12 s: window [5, 15) = {14, 100, 11}, mean 41.67, |11 - 41.67| = 30.67.
  _, counters = run_batch(BASELINE_EVENTS[0][1], ['--baseline=containing'])
  assert counters.get('no_baseline', 0) == 0
  assert counters['judged_readings'] == 7


def test_each_reading_is_alerted_at_most_once():
  # The spike at 7 s lies in two sliding windows, [0, 10) and [5, 15); the
  # original job alerted once per window. Here: one alert per reading.
  outputs, _ = run_stream(BASELINE_EVENTS, ['--baseline=containing', '--threshold=20'])
  ids = [a['alert_id'] for a in outputs['alerts']]
  assert len(ids) == len(set(ids))
  spikes = [a for a in outputs['alerts'] if a['value'] == 100.0]
  assert len(spikes) == 1


def test_out_of_order_readings_give_the_same_result():
  # --score_order=event_time: the scores do not depend on the delivery order (the default,
  # arrival, gives the same scores only when each sensor's readings come in order)
  args = ['--score_order=event_time']
  in_order, _ = run_stream(BASELINE_EVENTS, args)
  shuffled = [('add', list(reversed(BASELINE_EVENTS[0][1]))), ('watermark', 30)]
  out_of_order, _ = run_stream(shuffled, args)
  fields = ('alert_id', 'window_mean', 'window_count', 'score')
  assert project(in_order['alerts'], *fields) == project(out_of_order['alerts'], *fields)
  assert len(in_order['alerts']) == 2


@pytest.mark.parametrize('rule, threshold, expected', [
    # baseline for slot [10, 15) is window [0, 10) = {10, 20}, mean 15, sample stddev 7.071
    ('absolute', 10.0, [16.0 + 10.0]),        # |26 - 15| = 11 > 10; |25 - 15| = 10 is not
    ('relative', 0.7, [26.0]),                # 11 / 15 = 0.733 > 0.7; 10 / 15 = 0.667
    ('zscore', 1.5, [26.0]),                  # 11 / 7.071 = 1.556 > 1.5; 10 / 7.071 = 1.414
])
def test_rules_at_their_thresholds_in_the_pipeline(rule, threshold, expected):
  events = [('add', [json_record('s', 10.0, 1), json_record('s', 20.0, 6),
                     json_record('s', 25.0, 11), json_record('s', 26.0, 12)])]
  outputs, _ = run_stream(events, [f'--rule={rule}', f'--threshold={threshold}'])
  assert [a['value'] for a in outputs['alerts'] if a['ts'] >= iso(10)] == expected
  assert all(a['rule'] == rule and a['threshold'] == threshold for a in outputs['alerts'])


def test_min_count_suppresses_small_baselines():
  # slot [5, 10) baseline is [-5, 5) = {10, 12}: 2 readings
  events = [('add', [json_record('s', 10.0, 1), json_record('s', 12.0, 2), json_record('s', 500.0, 7)])]
  outputs, _ = run_stream(events, ['--min_count=3'])
  assert outputs['alerts'] == []
  _, counters = run_batch(events[0][1], ['--min_count=3'])
  assert counters['baseline_below_min_count'] == 1
  outputs, _ = run_stream(events, ['--min_count=2'])
  assert [a['value'] for a in outputs['alerts']] == [500.0]


def test_zero_variance_baseline_with_zscore():
  # baseline [-5, 5) = {10, 10, 10}: stddev 0, floored at 0.5; |11 - 10| / 0.5 = 2 <= 3; |12 - 10| / 0.5 = 4 > 3
  events = [('add', [json_record('s', 10.0, t) for t in (1, 2, 3)] +
             [json_record('s', 11.0, 6), json_record('t', 10.0, 1), json_record('t', 10.0, 2),
              json_record('t', 10.0, 3), json_record('t', 12.0, 6)])]
  outputs, _ = run_stream(events, ['--rule=zscore', '--threshold=3', '--min_stddev=0.5'])
  assert project(outputs['alerts'], 'sensor_id', 'value', 'window_stddev', 'score') == [('t', 12.0, 0.0, 4.0)]


def test_late_readings_leave_through_the_late_output():
  events = [
      ('add', [json_record('s', 10.0, 1), json_record('s', 11.0, 6), json_record('s', 12.0, 11)]),
      ('watermark', 40),
      # allowed lateness 5 s: 3 s is 37 s behind the watermark -> late
      ('add', [json_record('s', 999.0, 3)]),
      # 38 s is 2 s behind the watermark: judged, baseline [25, 35) is empty
      ('add', [json_record('s', 13.0, 38)]),
  ]
  outputs, _ = run_stream(events, ['--allowed_lateness=5'])
  assert project(outputs['late'], 'sensor_id', 'value', 'ts') == [('s', 999.0, iso(3))]
  assert all(a['value'] != 999.0 for a in outputs['alerts'])
  # the late reading did not enter any statistics window
  assert all(s['max'] < 999.0 for s in outputs['window_stats'])


def test_reading_within_allowed_lateness_updates_statistics():
  events = [
      ('add', [json_record('s', 10.0, 1), json_record('s', 20.0, 6)]),
      ('watermark', 12),
      # 12 s - 4 s = 8 s behind, within the allowed 30 s: window [0, 10) fires again
      ('add', [json_record('s', 30.0, 4)]),
  ]
  outputs, _ = run_stream(events, ['--allowed_lateness=30'])
  late_panes = project([s for s in outputs['window_stats'] if s['pane'] == 'LATE'], 'window_start', 'count', 'mean')
  # [-5, 5): {10, 30} mean 20; [0, 10): {10, 20, 30} mean 20 (accumulating panes)
  assert late_panes == [(iso(-5), 2, 20.0), (iso(0), 3, 20.0)]
  assert outputs['late'] == []


def test_json_and_csv_mixed_with_dead_letters():
  events = [('add', [json_record('s', 10.0, 1), csv_record('s', 12.0, 2), csv_record('s', 90.0, 7)])]
  bad = [RawRecord(b'\xff\xfe', timestamp_ms=T0), RawRecord(b'{"sensor_id": "s"', timestamp_ms=T0),
         RawRecord(b'[1]', timestamp_ms=T0), RawRecord(b'{"value": 1, "ts": 1}', timestamp_ms=T0),
         RawRecord(b's,NaN', timestamp_ms=T0), RawRecord(b's,abc', timestamp_ms=T0),
         RawRecord(b'{"sensor_id": "s", "value": 1, "ts": "noon"}', timestamp_ms=T0),
         RawRecord(b'x' * 70000, timestamp_ms=T0)]
  events.append(('add', bad))
  outputs, _ = run_stream(events)
  # slot [5, 10): baseline [-5, 5) = {10, 12}, mean 11; |90 - 11| = 79 > 50
  assert project(outputs['alerts'], 'sensor_id', 'value', 'window_mean') == [('s', 90.0, 11.0)]
  reasons = sorted(d['reason'] for d in outputs['dead_letters'])
  assert reasons == sorted(['invalid_utf8', 'malformed_json', 'malformed_csv', 'missing_field',
                            'non_finite_value', 'non_numeric_value', 'bad_timestamp', 'record_too_large'])
  _, counters = run_batch([r for _, batch in events for r in batch])
  assert counters['dead_letters'] == 8 and counters['readings'] == 3
  for reason in reasons:
    assert counters[f'dead_letter_{reason}'] == 1
  assert counters['readings'] + counters['dead_letters'] == 3 + len(bad)


def test_many_sensors_interleaved():
  # 200 sensors, readings every second from 0 to 19 s; sensor k reads k % 7 + 20,
  # except one spike of +100 at 13 s on every tenth sensor.
  records = []
  for t in range(20):
    for k in range(200):
      spike = 100.0 if (k % 10 == 0 and t == 13) else 0.0
      records.append(json_record(f'sensor-{k:03d}', float(k % 7 + 20) + spike, t))
  outputs, _ = run_stream([('add', records[:2000]), ('watermark', 9), ('add', records[2000:])])
  alerts = project(outputs['alerts'], 'sensor_id', 'ts', 'deviation', 'window_count')
  # slot [10, 15): baseline [0, 10) has 10 flat readings at k % 7 + 20: deviation exactly 100
  assert alerts == [(f'sensor-{k:03d}', iso(13), 100.0, 10) for k in range(0, 200, 10)]
  _, counters = run_batch(records)
  assert counters['judged_readings'] == 4000
  # no baseline only for slot [0, 5): 5 readings x 200 sensors
  assert counters['no_baseline'] == 1000


def test_late_gate_counts_what_it_routes():
  # The gate DoFn directly: a clock at 40 s, allowed lateness 5 s.
  from apache_beam.utils.timestamp import Timestamp
  from transforms.batch import ReadingBatch
  from transforms.late_gate import _LateGateFn
  from transforms.records import Reading

  fn = _LateGateFn(allowed_lateness_ms=5000, period_ms=5000, horizon_ms=20000)
  fn._late = Counter()  # the streaming DirectRunner drops this DoFn's counters
  gate, timer = State((T0 + 40000, False, T0)), Timer()  # (clock, armed, newest)
  batch = ReadingBatch((Reading('s', 1.0, T0 + 34000), Reading('s', 2.0, T0 + 35000),
                        Reading('t', 3.0, T0 + 41000), Reading('s', 4.0, T0 + 36000)))
  late, *kept = fn.process((0, batch), gate, timer)
  # 34 s + 5 s < 40 s: late; 35 s + 5 s = 40 s: not later than allowed
  assert late.tag == 'late' and late.value.value.value == 1.0
  # on time: one batch per slot [35, 40) and [40, 45), stamped with the slot's start
  assert [(tv.timestamp.micros // 1000, tv.value) for tv in kept] == [
      (T0 + 35000, (0, ReadingBatch((batch.readings[1], batch.readings[3])))),
      (T0 + 40000, (0, ReadingBatch((batch.readings[2],))))]
  assert gate.read() == (T0 + 40000, True, T0 + 41000)  # newest reading, timer armed
  assert timer.at == (T0 + 45000) / 1000  # next boundary after the clock
  assert fn._late.count == 1
  # a tick within the horizon moves the clock and ticks again at the next boundary
  fn.on_tick(Timestamp.of((T0 + 45000) / 1000), gate, timer)
  assert gate.read() == (T0 + 45000, True, T0 + 41000) and timer.at == (T0 + 50000) / 1000
  # a tick more than the horizon past the newest reading stops the clock
  fn.on_tick(Timestamp.of((T0 + 60000) / 1000), gate, timer)
  assert gate.read() == (T0 + 60000, False, T0 + 41000)
  assert timer.at == (T0 + 50000) / 1000  # not set again


def test_late_gate_clock_jumps_to_the_newest_reading():
  # A shard whose first reading was a year old ticks at that old time; its next tick must
  # not be one period later (a year of 5 s ticks) but allowed_lateness before the newest
  # reading: newest T0 + 1000 s, lateness 5 s -> next boundary after T0 + 995 s = 1000 s.
  from apache_beam.utils.timestamp import Timestamp
  from transforms.late_gate import _LateGateFn

  fn = _LateGateFn(allowed_lateness_ms=5000, period_ms=5000, horizon_ms=20000)
  year_ago = T0 - 365 * 86_400_000
  gate, timer = State((-(2**62), True, T0 + 1_000_000)), Timer()
  fn.on_tick(Timestamp.of(year_ago / 1000), gate, timer)
  assert gate.read()[0] == year_ago
  assert timer.at == (T0 + 1_000_000) / 1000
