"""The likelihood detector's deviation (transforms/detectors.py), its baselines, and its
streaming wiring; its score is tested in tests/test_tail.py."""

import math

import pytest

from tests import streaming
from tests.streaming import json_record
from transforms.baseline import BaselineShape, SensorBaseline, SensorWindowStats
from transforms.detectors import DEVIATION_CAP, baselines, deviation, deviation_from
from transforms.rules import Rule
from transforms.stats import WindowStats, merge_window_stats


def stats(mean, stddev, count=10):
  return WindowStats(count, mean, stddev * stddev, math.nan, math.nan)


def test_deviation_in_floored_standard_deviations():
  assert deviation_from(16.0, 10.0, 2.0, 1e-6) == pytest.approx(3.0)  # |16 - 10| / 2
  # no floor relative to the mean: a precise instrument's 14-sigma spike stays 14 sigma
  # (50.000 Hz, stddev 0.001: |50.014 - 50| / 0.001 = 14)
  assert deviation_from(50.014, 50.0, 0.001, 1e-6) == pytest.approx(14.0)
  # flat baseline: stddev floored, here at 1e-6, so any change is capped at DEVIATION_CAP
  assert deviation_from(1000.001, 1000.0, 0.0, 1e-6) == DEVIATION_CAP
  # ... or at a larger floor: |1001 - 1000| / 4 = 0.25
  assert deviation_from(1001.0, 1000.0, 0.0, 4.0) == pytest.approx(0.25)
  assert deviation_from(1e9, 0.0, 1.0, 1e-6) == DEVIATION_CAP


def test_deviation_is_from_the_nearer_baseline():
  recent, yesterday = stats(10.0, 1.0), stats(20.0, 2.0)
  # |19 - 10| / 1 = 9 from the trailing baseline, |19 - 20| / 2 = 0.5 from yesterday's
  assert deviation(19.0, baselines(recent, yesterday), 1e-6) == (pytest.approx(0.5), 1)
  assert deviation(19.0, baselines(recent, None), 1e-6) == (pytest.approx(9.0), 0)
  assert deviation(19.0, baselines(None, None), 1e-6) == (0.0, -1)
  # a one-reading window has no spread to judge by: ignored
  assert baselines(stats(10.0, 0.0, count=1), yesterday) == (None, (20.0, 2.0))


def test_rule_ignores_a_trailing_baseline_below_min_count():
  rule = Rule('likelihood', min_count=5)
  assert rule.baselines(stats(10.0, 2.0, count=4), None) == (None, None)
  assert rule.baselines(stats(10.0, 2.0, count=5), None) == ((10.0, 2.0), None)


def test_merged_trailing_windows_equal_one_long_window():
  # windows {1, 2, 3} and {4, 5}: together mean 3, sample variance (4+1+0+1+4)/4 = 2.5
  a = WindowStats(3, 2.0, 1.0, 1.0, 3.0)
  b = WindowStats(2, 4.5, 0.5, 4.0, 5.0)
  assert merge_window_stats([a, b]) == WindowStats(5, 3.0, 2.5, 1.0, 5.0)
  baseline = SensorBaseline('s', (SensorWindowStats('s', 0, 10, a, 'ON_TIME'),
                                  SensorWindowStats('s', 10, 20, b, 'ON_TIME')))
  assert baseline.stats == WindowStats(5, 3.0, 2.5, 1.0, 5.0)
  assert (baseline.start_ms, baseline.end_ms) == (0, 20)


def test_baseline_shape_places_each_window_in_the_slots_it_judges():
  # 10 s windows every 5 s, two trailing windows, a 60 s season; half = 5 s
  shape = BaselineShape(10_000, 5_000, 'trailing', 2, 60_000)
  assert list(shape.roles_of_window(100_000)) == [
      (('trailing', 0), 100_000), (('trailing', 1), 110_000), (('seasonal', 0), 155_000)]
  # ... and, read backwards, a slot released at 155 s is judged by [135, 155) (two windows)
  # and by [90, 100), the window centred on 155 - 60 = 95 s, which ends at 100 s
  assert shape.trailing_range_ms(155_000) == (135_000, 155_000)
  assert shape.seasonal_range_ms(155_000) == (90_000, 100_000)


def test_a_baseline_lag_releases_each_slot_that_much_earlier():
  for baseline, slot_to_release in (('trailing', 0), ('containing', 5_000)):
    plain = BaselineShape(10_000, 5_000, baseline)
    lagged = plain._replace(lag_ms=5_000)
    for slot_ms in (0, 5_000, 120_000):
      assert plain.release_ms(slot_ms) == slot_ms + slot_to_release
      assert lagged.release_ms(slot_ms) == plain.release_ms(slot_ms) - 5_000
      assert lagged.slot_ms(lagged.release_ms(slot_ms)) == slot_ms
      assert plain.slot_ms(plain.release_ms(slot_ms)) == slot_ms


def test_a_lag_shorter_than_a_period_shifts_the_slots_and_keeps_the_windows():
  shape = BaselineShape(10_000, 5_000, 'trailing', lag_ms=2_000)
  assert shape.slot_offset_ms == 2_000
  # A reading 1.9 s after the window end at 10 s is judged by the window ending at 5 s,
  # one 2 s after it by the window ending at 10 s: the newest at least 2 s old.
  assert shape.release_ms(shape.slot_start_ms(11_900)) == 5_000
  assert shape.release_ms(shape.slot_start_ms(12_000)) == 10_000
  assert shape.release_ms(shape.slot_start_ms(16_999)) == 10_000
  for ts_ms in (-1, 0, 11_999, 12_000, 123_456):
    slot_ms = shape.slot_start_ms(ts_ms)
    assert slot_ms <= ts_ms < slot_ms + 5_000
    assert shape.release_ms(slot_ms) % 5_000 == 0  # a window's end
    assert shape.slot_ms(shape.release_ms(slot_ms)) == slot_ms
  containing = BaselineShape(10_000, 5_000, 'containing', lag_ms=7_000)
  # slot [12, 17) would be judged by the window ending at 17 s without the lag
  assert containing.release_ms(containing.slot_start_ms(12_500)) == 10_000


def test_the_streaming_job_alerts_with_its_score_and_threshold():
  # 5 s slots, 10 s windows: readings 10 at 0..145 s, then 10.5 at 151 s. Slot [150, 155) is
  # judged by [140, 150) = {10, 10}: stddev 0, floored at min_stddev (the sensor never
  # varied), so the deviation is capped at 50. The scorer has seen 30 readings, all at
  # deviation 0 (the first slot has no baseline, the others are flat): P(D >= 50) =
  # 5 C(50) / (30 + 5), with the Cauchy tail C(50) = 1 - 2 atan(50) / pi = 0.0127: 1.8e-3,
  # score 2.74 / 5 = 0.55 (the readings fade a little over 150 s of a 1-hour half-life).
  records = [json_record('s', 10.0, t) for t in range(0, 150, 5)] + [json_record('s', 10.5, 151)]
  outputs, _ = streaming.run_stream([('add', records)])
  alerts = outputs['alerts']
  assert [(a['value'], a['rule'], a['threshold']) for a in alerts] == [(10.5, 'likelihood', 0.5)]
  assert alerts[0]['score'] == pytest.approx(0.548, abs=2e-3)
  # it explains itself: expected the window's mean, bounds at the threshold (a flat window:
  # floored at min_stddev, 1e-6, times the deviation that scores 0.5), above, trailing
  alert = alerts[0]
  assert (alert['expected'], alert['direction'], alert['fired']) == (10.0, 'above', 'trailing')
  assert 10.0 - 1e-4 < alert['lower'] < 10.0 < alert['upper'] < 10.0 + 1e-4
  assert alert['window_count'] == 2 and alert['window_mean'] == 10.0
