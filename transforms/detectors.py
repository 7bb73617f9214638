"""The likelihood detector's deviation: one module for the streaming judge and the backtest.

Scoring a reading takes two steps, both pure functions of their inputs so
that the streaming job (transforms/judge.py) and the batch backtest
(backtest/replay.py) compute the very same numbers:

1. `baselines(trailing, seasonal, min_count)`, in the judge: the (mean, stddev) of the
   reading's baselines. `trailing` is the statistics of the sliding windows just before
   the reading's slot; `seasonal` (optional) those of the window centred on the same slot
   one season (e.g. a day) earlier.
2. `deviation(value, baselines, floor)`, in the per-sensor scorer (transforms/tail.py):
   how far the reading is from its baselines, in standard deviations. A reading counts as
   far only when it is far from both, so a daily pattern's regular rise does not look
   like an anomaly. The standard deviation is floored (at `floor`, which the scorer
   derives from the sensor's usual spread, never from |mean|: a floor of 1/1000 of |mean|
   once hid a 14-sigma spike of a 50.000 Hz mains frequency) and the result is capped, so
   a flat baseline cannot give infinite scores.
"""

import math
from typing import NamedTuple, Optional, Tuple

from transforms.stats import WindowStats

DEVIATION_CAP = 50.0  # standard deviations; beyond this all readings are equally far

# (mean, stddev) of the trailing and of the seasonal baseline; None where there is none.
Baseline = Optional[Tuple[float, float]]
Baselines = Tuple[Baseline, Baseline]
NO_BASELINES: Baselines = (None, None)
TRAILING_PART, SEASONAL_PART = 'trailing', 'seasonal'
PARTS = (TRAILING_PART, SEASONAL_PART)  # by index in Baselines


def baselines(trailing: Optional[WindowStats], seasonal: Optional[WindowStats],
              min_count: int = 1) -> Baselines:
  """The (mean, stddev) of each baseline that can judge: a trailing one needs min_count
  readings, and either needs 2 (one reading has no spread to judge by)."""
  return (None if trailing is None or trailing.count < max(min_count, 2)
          else (trailing.mean, trailing.stddev),
          None if seasonal is None or seasonal.count < 2 else (seasonal.mean, seasonal.stddev))


def deviation_from(value: float, mean: float, stddev: float, floor: float) -> float:
  """|value - mean| / max(stddev, floor), capped at DEVIATION_CAP."""
  return min(abs(value - mean) / max(stddev, floor), DEVIATION_CAP)


def deviation(value: float, judged_by: Baselines, floor: float) -> Tuple[float, int]:
  """(deviation from the nearer baseline, its index in judged_by); (0, -1) without any."""
  best, nearer = 0.0, -1
  for i, baseline in enumerate(judged_by):
    if baseline is not None:
      d = deviation_from(value, baseline[0], baseline[1], floor)
      if nearer < 0 or d < best:
        best, nearer = d, i
  return best, nearer


class ScoreState(NamedTuple):
  """The scorer state of the detector before the tail score, kept only
  so that a job restored from an older savepoint can unpickle its state; the judge starts
  such a sensor afresh (transforms/judge.py, _score_rows)."""
  count: int = 0
  last_ms: Optional[int] = None
  mean: float = 0.0
  variance: float = 1.0
  low: float = math.inf
  high: float = -math.inf
  peak: float = 0.0
  peak_ms: int = -(2**62)
