"""Detection rules: how far a reading is from its baseline, and whether that is an anomaly.

Every rule yields a `score` that is compared with the threshold, so an alert
always says by how much it crossed the line:
  absolute: score = |value - mean|                       (the original job: > 50)
  relative: score = |value - mean| / |mean|
  zscore:   score = |value - mean| / max(stddev, min_stddev)
"""

import math
from typing import NamedTuple, Optional

from transforms.stats import WindowStats

RULES = ('absolute', 'relative', 'zscore')


class Verdict(NamedTuple):
  deviation: float  # |value - mean|
  score: float
  is_anomaly: bool


class Rule:
  """A configured rule; `judge` is pure so it is tested at and around each threshold."""

  def __init__(self, name: str, threshold: float, min_count: int = 1,
               min_stddev: float = 1e-6):
    if name not in RULES:
      raise ValueError(f'rule must be one of {RULES}, got {name!r}')
    self.name = name
    self.threshold = threshold
    self.min_count = min_count
    self.min_stddev = min_stddev

  def judge(self, value: float, baseline: WindowStats) -> Optional[Verdict]:
    """None when the baseline has fewer than min_count readings (never alerts)."""
    if baseline.count < self.min_count:
      return None
    deviation = abs(value - baseline.mean)
    if self.name == 'absolute':
      score = deviation
    elif self.name == 'relative':
      scale = abs(baseline.mean)
      score = deviation / scale if scale > 0 else (math.inf if deviation > 0 else 0.0)
    else:
      score = deviation / max(baseline.stddev, self.min_stddev)
    return Verdict(deviation, score, score > self.threshold)
