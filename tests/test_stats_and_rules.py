"""WindowStatsFn (including merge) and the detection rules, tested directly."""

import math
import random

import pytest

from transforms.rules import Rule
from transforms.stats import WindowStats, WindowStatsFn


def combine(values, fn=WindowStatsFn()):
  acc = fn.create_accumulator()
  for v in values:
    acc = fn.add_input(acc, v)
  return acc


def test_single_pass_statistics():
  out = WindowStatsFn().extract_output(combine([10.0, 12.0, 50.0]))
  # mean = (10 + 12 + 50) / 3 = 24; deviations -14, -12, 26 -> squares 196 + 144 + 676 = 1016
  # sample variance = 1016 / (3 - 1) = 508
  assert out == WindowStats(3, 24.0, 508.0, 10.0, 50.0)


def test_merge_equals_single_pass_in_any_split():
  fn = WindowStatsFn()
  rng = random.Random(7)
  values = [rng.gauss(100, 15) for _ in range(101)]
  whole = fn.extract_output(combine(values))
  for _ in range(20):
    cuts = sorted(rng.sample(range(1, 100), 3))
    parts = [values[:cuts[0]], values[cuts[0]:cuts[1]], values[cuts[1]:cuts[2]], values[cuts[2]:], []]
    merged = fn.extract_output(fn.merge_accumulators([combine(p) for p in parts]))
    assert merged.count == whole.count == 101
    assert merged.mean == pytest.approx(whole.mean, rel=1e-12)
    assert merged.variance == pytest.approx(whole.variance, rel=1e-9)
    assert (merged.min, merged.max) == (min(values), max(values))


def test_numerically_stable_with_a_large_offset():
  # Values 1e9 + {4, 7, 13, 16}: mean 1e9 + 10, sample variance (36+9+9+36)/3 = 30.
  # Sum-of-squares would lose all precision at this magnitude.
  fn = WindowStatsFn()
  left, right = combine([1e9 + 4, 1e9 + 7]), combine([1e9 + 13, 1e9 + 16])
  out = fn.extract_output(fn.merge_accumulators([left, right]))
  assert out.mean == 1e9 + 10
  assert out.variance == pytest.approx(30.0, rel=1e-9)


def test_one_value_has_zero_variance_and_empty_is_nan():
  assert WindowStatsFn().extract_output(combine([5.0])) == WindowStats(1, 5.0, 0.0, 5.0, 5.0)
  empty = WindowStatsFn().extract_output(combine([]))
  assert empty.count == 0 and math.isnan(empty.mean)


BASE = WindowStats(count=4, mean=100.0, variance=16.0, min=95.0, max=105.0)  # stddev 4


@pytest.mark.parametrize('value, anomaly', [(150.0, False), (150.001, True), (49.999, True), (50.0, False)])
def test_absolute_rule_at_and_around_threshold(value, anomaly):
  verdict = Rule('absolute', 50.0).judge(value, BASE)
  assert verdict.deviation == pytest.approx(abs(value - 100.0))
  assert verdict.score == verdict.deviation
  assert verdict.is_anomaly is anomaly


@pytest.mark.parametrize('value, anomaly', [(120.0, False), (120.01, True), (80.0, False), (79.99, True)])
def test_relative_rule(value, anomaly):
  # threshold 0.2 x |mean 100| = 20
  verdict = Rule('relative', 0.2).judge(value, BASE)
  assert verdict.score == pytest.approx(abs(value - 100.0) / 100.0)
  assert verdict.is_anomaly is anomaly


def test_relative_rule_with_zero_mean():
  zero = WindowStats(3, 0.0, 1.0, -1.0, 1.0)
  assert Rule('relative', 0.5).judge(0.0, zero).is_anomaly is False
  assert Rule('relative', 0.5).judge(0.1, zero).is_anomaly is True


@pytest.mark.parametrize('value, anomaly', [(112.0, False), (112.01, True), (88.0, False), (87.99, True)])
def test_zscore_rule(value, anomaly):
  # threshold 3 x stddev 4 = 12
  verdict = Rule('zscore', 3.0).judge(value, BASE)
  assert verdict.score == pytest.approx(abs(value - 100.0) / 4.0)
  assert verdict.is_anomaly is anomaly


def test_zscore_with_zero_variance_uses_the_floor():
  flat = WindowStats(5, 10.0, 0.0, 10.0, 10.0)
  rule = Rule('zscore', 4.0, min_stddev=0.25)
  assert rule.judge(10.0, flat).score == 0.0
  assert rule.judge(11.0, flat).is_anomaly is False  # 1.0 / 0.25 = 4.0, not > 4
  assert rule.judge(11.01, flat).is_anomaly is True
  assert math.isfinite(Rule('zscore', 3.0).judge(11.0, flat).score)


def test_min_count():
  assert Rule('absolute', 50.0, min_count=5).judge(1000.0, BASE) is None  # 4 readings < 5
  assert Rule('absolute', 50.0, min_count=4).judge(1000.0, BASE).is_anomaly


def test_unknown_rule():
  with pytest.raises(ValueError, match='rule'):
    Rule('median', 1.0)
