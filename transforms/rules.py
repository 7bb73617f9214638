"""Detection rules: how far a reading is from its baseline, and whether that is an anomaly.

Every rule yields a `score` that is compared with the threshold, so an alert
always says by how much it crossed the line:
  likelihood: score in [0, 1], the tail probability (in decades / 5) of the
              deviation from the trailing and seasonal baselines among the
              sensor's own recent deviations, per sensor in the order of
              --score_order (transforms/detectors.py, transforms/tail.py,
              transforms/judge.py); the default
  absolute: score = |value - mean|                       (the original job: > 50)
  relative: score = |value - mean| / |mean|
  zscore:   score = |value - mean| / max(stddev, min_stddev)
"""

import math
from typing import NamedTuple, Optional

from transforms.detectors import Baselines, baselines
from transforms.stats import WindowStats
from transforms.tail import TailScorer

LIKELIHOOD = 'likelihood'
RULES = (LIKELIHOOD, 'absolute', 'relative', 'zscore')
DEFAULT_THRESHOLDS = {LIKELIHOOD: 0.5, 'absolute': 50.0, 'relative': 0.5, 'zscore': 3.0}


class Verdict(NamedTuple):
  deviation: float  # |value - mean|
  score: float
  is_anomaly: bool


class Rule:
  """A configured rule; `judge` is pure so it is tested at and around each threshold."""

  def __init__(self, name: str, threshold: Optional[float] = None, min_count: int = 1,
               min_stddev: float = 1e-6, half_life_s: float = 3600.0, hold_s: float = 60.0,
               sensor_ttl_s: float = 14 * 86400.0):
    if name not in RULES:
      raise ValueError(f'rule must be one of {RULES}, got {name!r}')
    self.name = name
    self.threshold = DEFAULT_THRESHOLDS[name] if threshold is None else threshold
    self.min_count = min_count
    self.min_stddev = min_stddev
    self.half_life_s = half_life_s  # likelihood only
    self.hold_s = hold_s  # likelihood only
    # likelihood only: a sensor silent this long (event time) loses its scorer state
    self.sensor_ttl_s = sensor_ttl_s

  @property
  def is_stateful(self) -> bool:
    """Whether scores need the sensor's history (a per-sensor step after the judge)."""
    return self.name == LIKELIHOOD

  def scorer(self) -> TailScorer:
    return TailScorer(self.half_life_s, self.hold_s, self.min_stddev)

  def baselines(self, trailing: Optional[WindowStats],
                seasonal: Optional[WindowStats]) -> Baselines:
    """likelihood: the (mean, stddev) of the baselines that judge a reading, for the
    scorer; a trailing baseline with fewer than min_count readings is not used."""
    return baselines(trailing, seasonal, self.min_count)

  def judge(self, value: float, baseline: WindowStats) -> Optional[Verdict]:
    """absolute, relative, zscore; None when the baseline has fewer than min_count readings."""
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
