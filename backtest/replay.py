"""The streaming job's per-sensor arithmetic, replayed over one recorded series in batch.

For each reading, in event-time order, the same baselines as the streaming
job (transforms/baseline.py, BaselineShape: the trailing windows before the
reading's slot, the seasonal window) and the same scoring (Rule and
transforms/detectors.py) give the score the streaming job would give it.
Window statistics come from prefix sums over the sorted series (numpy)
instead of one CombinePerKey per sliding window: the same count, mean and variance (to
rounding), at a cost independent of the window length. tests/test_backtest.py
checks the scores against build_pipeline on the DirectRunner.
"""

import math
from typing import List, Optional, Sequence

import numpy as np

from transforms.baseline import BaselineShape
from transforms.rules import Rule
from transforms.stats import WindowStats


def window_stats(ts_ms: np.ndarray, values: np.ndarray, lo_ms: np.ndarray,
                 hi_ms: np.ndarray) -> List[Optional[WindowStats]]:
  """WindowStats of the readings in [lo_ms[i], hi_ms[i]) of a time-sorted series, for every i.

  Prefix sums make each window O(log n) whatever its length. They are
  shifted by the first value so the running sums stay small (less
  cancellation). None for an empty window; min and max, used by no rule, are NaN.
  """
  shift = values[0] if len(values) else 0.0
  d = values - shift
  sums = np.concatenate(([0.0], np.cumsum(d)))
  sums2 = np.concatenate(([0.0], np.cumsum(d * d)))
  lo = np.searchsorted(ts_ms, lo_ms, 'left')
  hi = np.searchsorted(ts_ms, hi_ms, 'left')
  n = hi - lo
  s = sums[hi] - sums[lo]
  with np.errstate(divide='ignore', invalid='ignore'):
    mean = shift + s / n
    variance = np.where(n > 1, np.maximum((sums2[hi] - sums2[lo] - s * s / n) / (n - 1), 0.0), 0.0)
  return [WindowStats(c, m, v, math.nan, math.nan) if c else None
          for c, m, v in zip(n.tolist(), mean.tolist(), variance.tolist())]


def to_unit_interval(score: float) -> float:
  """A stateless rule's score (>= 0, unbounded) mapped monotonically into [0, 1) for NAB."""
  return score / (1.0 + score) if math.isfinite(score) else 1.0


def replay_series(ts_ms: Sequence[int], values: Sequence[float], rule: Rule,
                  shape: BaselineShape, explanations: Optional[list] = None) -> List[float]:
  """Scores in [0, 1] of one sensor's readings (sorted by ts_ms), as the streaming job computes them.

  likelihood: the score of transforms/tail.py, the sensor starting afresh after a
  gap of at least the rule's sensor_ttl_s (the streaming job forgets it then); stateless
  rules: their score mapped by to_unit_interval; 0 for a reading without any baseline
  (which the streaming job never alerts on). With `explanations` (a list; likelihood
  only), what an alert about each reading would explain (TailScorer.explain: expected,
  lower, upper, direction, fired; {} without a baseline) is appended to it, for reports.
  """
  ts = np.asarray(ts_ms, dtype=np.int64)
  vals = np.asarray(values, dtype=np.float64)
  release = shape.release_ms(shape.slot_start_ms(ts))  # numpy arrays through the same arithmetic
  trailings = window_stats(ts, vals, *shape.trailing_range_ms(release))
  if shape.season_ms and rule.is_stateful:
    seasonals = window_stats(ts, vals, *shape.seasonal_range_ms(release))
  else:
    seasonals = [None] * len(ts)
  scorer = rule.scorer() if rule.is_stateful else None
  ttl_ms = rule.sensor_ttl_s * 1000
  state = scorer.new_state() if scorer is not None else None
  scores = []
  for ts, value, trailing, seasonal in zip(ts_ms, values, trailings, seasonals):
    if scorer is not None:
      if state.last_ms is not None and ts - state.last_ms >= ttl_ms:
        state = scorer.new_state()
      judged_by = rule.baselines(trailing, seasonal)
      if explanations is not None:
        explanations.append(scorer.explain(state, value, judged_by, rule.threshold))
      state, score = scorer.update(state, ts, value, judged_by)
      if trailing is None and seasonal is None:
        score = 0.0  # the streaming job alerts only on readings with a baseline
    else:
      verdict = rule.judge(value, trailing) if trailing is not None else None
      score = to_unit_interval(verdict.score) if verdict is not None else 0.0
    scores.append(score)
  return scores
