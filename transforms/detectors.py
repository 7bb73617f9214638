"""The likelihood detector's deviation: one module for the streaming judge and the backtest.

Scoring a reading takes two steps, both pure functions of their inputs so
that the streaming job (transforms/judge.py) and the batch backtest
(backtest/replay.py) compute the very same numbers:

1. `deviation(value, trailing, seasonal)`: how far the reading is from its
   sensor's baselines, in standard deviations. `trailing` is the statistics of
   the sliding windows just before the reading's slot; `seasonal` (optional)
   those of the window centred on the same slot one season (e.g. a day)
   earlier. A reading counts as far only when it is far from both, so a daily
   pattern's regular rise does not look like an anomaly. The standard deviation
   is floored at min_stddev (only so a flat baseline does not divide by zero: a
   relative floor, once 1/1000 of |mean|, hid a 14-sigma spike of a 50.000 Hz mains
   frequency) and the result is capped, so a flat baseline cannot give infinite scores.

2. The per-sensor score of that deviation (transforms/tail.py, `TailScorer`): its tail
   probability under the sensor's own recent deviations.
"""

from typing import Optional

from transforms.stats import WindowStats

DEVIATION_CAP = 50.0  # standard deviations; beyond this all readings are equally far


def deviation_from(value: float, stats: WindowStats, min_stddev: float) -> float:
  """|value - mean| / floored stddev, capped at DEVIATION_CAP."""
  scale = max(stats.stddev, min_stddev)
  return min(abs(value - stats.mean) / scale, DEVIATION_CAP)


def deviation(value: float, trailing: Optional[WindowStats], seasonal: Optional[WindowStats],
              min_stddev: float) -> float:
  """Deviation from the nearer of the two baselines; 0 without any baseline."""
  far = [deviation_from(value, s, min_stddev) for s in (trailing, seasonal)
         if s is not None and s.count >= 2]
  return min(far) if far else 0.0
