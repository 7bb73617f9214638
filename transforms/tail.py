"""The tail-probability score: how rare a reading's deviation is for its own sensor.

Per sensor, in event-time order, `TailScorer.update(state, ts_ms, value, judged_by)`
keeps a fading histogram of the sensor's own deviations (|value - expected| / scale,
transforms/detectors.py) in NBINS bins, and scores a reading by the probability, under
that histogram, of a deviation at least as large as the one observed:

    P = (H(>= d) + PRIOR_WEIGHT * C(d)) / (H + PRIOR_WEIGHT),  C(d) = 1 - 2 atan(d) / pi
    score = min(1, -log10(P) / DECADES)

H(>= d) is the histogram's weight at or above d (uniform inside a bin), H its total
weight; the prior, the two-sided tail C of a Cauchy distribution with the weight of
PRIOR_WEIGHT (5) readings, gives deviations beyond anything the sensor has shown a finite,
small probability, about 5 C(d) / H. A heavy tail and some weight because a young sensor's
baselines hold few readings, so deviations of 3 or 4 of their standard deviations are
common and its histogram is thin (a Gaussian prior of one reading made them alerts); an
unseen deviation still scores high once the sensor has some history: 6 standard
deviations reach the default threshold after about 160 readings, 10 after 95, a flat
sensor's first change after 15. With DECADES = 5 a score of 0.5 is P = 10^-2.5, whatever
the sensor's scale or noise, so one threshold serves every series. Weights fade with a
half-life in seconds of event time, so the histogram follows the sensor as it changes. Like Numenta's anomaly likelihood
(Ahmad et al. 2017), the score is a tail probability of the sensor's own recent
behaviour, here of its deviations rather than of an HTM's raw scores.

A second histogram, of the deviation from the seasonal baseline alone, scores readings
that are ordinary for the recent past but not for the time of day (a missing daily peak,
a night-time level in the afternoon), on a scale of SEASONAL_DECADES: one window of a
season ago is a thinner baseline than the trailing ones, so this part needs a rarer
deviation (P = 10^-3 at score 0.5). The score is the larger of the two.

Two more parts: once a sensor has RANGE_WARMUP_READINGS readings, a value outside
everything it has shown (its min/max widened by RANGE_MARGIN of the range) scores 1
(`range`); and after a high score, lower or equal scores are halved for `hold_s`
seconds, so one incident raises one alert (a range break is never held back).

A baseline's stddev is floored at SPREAD_FLOOR of the sensor's usual spread (a fading
mean of its trailing baselines' stddev), so a window that happens to be flat (a
quantised sensor's) does not make every change look 50 standard deviations off; a
sensor that never varied is floored at min_stddev, so its first change scores 1.

The state is a small NamedTuple (about 660 bytes pickled), kept in Beam state by the
streaming job (transforms/judge.py) and replayed by the backtest (backtest/replay.py).
"""

import bisect
import math
from typing import Any, Dict, NamedTuple, Optional, Tuple

from transforms.detectors import (DEVIATION_CAP, PARTS, SEASONAL_PART, Baselines, deviation,
                                  deviation_from)

NBINS = 32
# Bin edges in standard deviations: quadratic spacing, fine where ordinary deviations
# fall (0.05 wide near 0, 0.6 near 3 sigma) and coarse out to the cap.
EDGES = tuple(DEVIATION_CAP * (k / NBINS) ** 2 for k in range(NBINS + 1))
DECADES = 5.0  # score 1 at P = 1e-5, 0.5 at P = 10^-2.5
SEASONAL_DECADES = 6.0  # the seasonal part alone: score 0.5 at P = 1e-3
PRIOR_WEIGHT = 5.0  # readings' worth of Cauchy tail behind the histogram
WARMUP_READINGS = 10  # readings before the scorer trusts its own histogram
RANGE_MARGIN = 0.05  # of the seen range: a value this far outside it scores 1
RANGE_WARMUP_READINGS = 1000  # readings before a new extreme alone scores 1
MAX_SURPRISE = 300.0  # decades: where a tail probability underflows
SPREAD_FLOOR = 0.05  # of the sensor's usual spread: the least stddev a baseline is given
HOLD_FACTOR = 0.5  # scores not above the held peak are multiplied by this
_RESCALE = 1e100  # weights are kept inflated instead of decayed; rescaled past this

RANGE_PART = 'range'  # an alert's `fired` when the value left the seen range


class TailState(NamedTuple):
  """What the scorer remembers of one sensor. Weights are stored multiplied by `unit`, the
  weight a reading added now gets, so fading costs one multiplication per reading, not
  one per bin."""
  count: int = 0  # readings seen
  last_ms: Optional[int] = None  # event time of the previous reading
  weights: Tuple[float, ...] = (0.0,) * NBINS  # histogram of deviations, times unit
  total: float = 0.0  # sum of weights
  unit: float = 1.0  # the stored weight of one reading now
  low: float = math.inf  # smallest value seen
  high: float = -math.inf  # largest value seen
  peak: float = 0.0  # the held peak score
  peak_ms: int = -(2**62)  # when it was reached
  spread: float = 0.0  # fading mean of the trailing baseline's stddev; 0: none seen yet
  seasonal_weights: Tuple[float, ...] = (0.0,) * NBINS  # of the seasonal deviations alone
  seasonal_total: float = 0.0
  seasonal_count: int = 0  # readings with a seasonal baseline


def prior_tail(d: float) -> float:
  """P(|X| >= d) for a standard Cauchy X."""
  return 1.0 - math.atan(d) * (2.0 / math.pi)


def tail_weight(weights: Tuple[float, ...], d: float) -> float:
  """The histogram's weight at or above deviation d (uniform inside each bin)."""
  if d <= 0.0:
    return sum(weights)
  if d >= DEVIATION_CAP:  # capped deviations are all equally far: the last bin's share
    return weights[-1]
  k = bisect.bisect_right(EDGES, d) - 1
  lo, hi = EDGES[k], EDGES[k + 1]
  return sum(weights[k + 1:]) + weights[k] * (hi - d) / (hi - lo)


def tail_probability(weights: Tuple[float, ...], total: float, unit: float, d: float) -> float:
  """P(deviation >= d) under a histogram (weights and total stored times unit) and the
  Cauchy prior."""
  return ((tail_weight(weights, d) / unit + PRIOR_WEIGHT * prior_tail(d))
          / (total / unit + PRIOR_WEIGHT))


def surprise(p: float) -> float:
  """-log10 p in [0, MAX_SURPRISE] (p may underflow to 0; 0.0 - x: never -0.0)."""
  return min(max(0.0 - math.log10(p), 0.0), MAX_SURPRISE) if p > 0.0 else MAX_SURPRISE


def deviation_at_score(weights: Tuple[float, ...], total: float, unit: float, score: float,
                       decades: float = DECADES) -> float:
  """The smallest deviation whose tail score reaches `score` (< 1), by bisection; the
  bounds an alert reports are expected +/- this many scales. inf if none does (capped
  deviations are common for the sensor)."""
  target = 10.0 ** (-decades * score)
  if tail_probability(weights, total, unit, DEVIATION_CAP) > target:
    return math.inf
  lo, hi = 0.0, DEVIATION_CAP
  for _ in range(40):  # 50 / 2^40: far below any reading's precision
    mid = 0.5 * (lo + hi)
    if tail_probability(weights, total, unit, mid) > target:
      lo = mid
    else:
      hi = mid
  return hi


def _added(weights: Tuple[float, ...], d: float, unit: float) -> Tuple[float, ...]:
  k = min(bisect.bisect_right(EDGES, d) - 1, NBINS - 1)
  return weights[:k] + (weights[k] + unit,) + weights[k + 1:]


class TailScorer:
  """Turns a sensor's readings and baselines into tail-probability scores in [0, 1], one
  reading at a time, in event-time order."""

  def __init__(self, half_life_s: float, hold_s: float, min_stddev: float = 1e-6,
               range_warmup: int = RANGE_WARMUP_READINGS):
    if not (half_life_s > 0 and hold_s >= 0 and min_stddev > 0 and range_warmup >= 0):
      raise ValueError('half_life_s and min_stddev must be > 0, hold_s and range_warmup >= 0')
    self.half_life_ms = half_life_s * 1000.0
    self.hold_ms = hold_s * 1000.0
    self.min_stddev = min_stddev
    # A young sensor's seen range is narrow: ordinary noise keeps setting new extremes.
    self.range_warmup = range_warmup

  @staticmethod
  def new_state() -> TailState:
    return TailState()

  def floor(self, state: TailState) -> float:
    """The least stddev a baseline is given: SPREAD_FLOOR of the sensor's usual spread, so
    that a window that happens to be flat (a quantised sensor's) is not taken as
    infinitely precise; min_stddev for a sensor that has never varied (its first change
    is then far off)."""
    return max(self.min_stddev, SPREAD_FLOOR * state.spread)

  def _seasonal_deviation(self, state: TailState, value: float,
                          judged_by: Baselines) -> Optional[float]:
    seasonal = judged_by[1]
    if seasonal is None:
      return None
    return deviation_from(value, seasonal[0], seasonal[1], self.floor(state))

  def raw_score(self, state: TailState, value: float, dev: float,
                seasonal_dev: Optional[float] = None) -> Tuple[float, str]:
    """(score before the hold and before clipping at 1, the part that gave it) of a reading
    at deviation dev (and seasonal_dev from the seasonal baseline alone), given the state
    before it; the part is 'range', 'seasonal' (the seasonal part alone) or '' (the
    deviation from the nearer baseline)."""
    if state.count < WARMUP_READINGS:
      return 0.0, ''
    if state.count >= self.range_warmup:
      margin = RANGE_MARGIN * (state.high - state.low)
      if value > state.high + margin or value < state.low - margin:
        return 1.0, RANGE_PART
    score = surprise(tail_probability(state.weights, state.total, state.unit, dev)) / DECADES
    if seasonal_dev is not None and state.seasonal_count >= WARMUP_READINGS:
      seasonal_score = surprise(tail_probability(
          state.seasonal_weights, state.seasonal_total, state.unit,
          seasonal_dev)) / SEASONAL_DECADES
      if seasonal_score > score:
        return seasonal_score, SEASONAL_PART
    return score, ''

  def update(self, state: TailState, ts_ms: int, value: float,
             judged_by: Baselines) -> Tuple[TailState, float]:
    (count, last_ms, weights, total, unit, low, high, peak, peak_ms, spread,
     seasonal_weights, seasonal_total, seasonal_count) = state
    dev, _ = deviation(value, judged_by, self.floor(state))
    seasonal_dev = self._seasonal_deviation(state, value, judged_by)
    score, part = self.raw_score(state, value, dev, seasonal_dev)
    # Fading by elapsed event time, so irregular sampling is fair: older weights shrink
    # relative to new ones, i.e. the new reading's weight grows.
    grow = 1.0
    if last_ms is not None and ts_ms > last_ms:
      grow = 2.0 ** ((ts_ms - last_ms) / self.half_life_ms)
      unit *= grow
      if unit > _RESCALE:
        weights = tuple(w / unit for w in weights)
        seasonal_weights = tuple(w / unit for w in seasonal_weights)
        total /= unit
        seasonal_total /= unit
        unit = 1.0
    weights = _added(weights, dev, unit)
    total += unit
    if seasonal_dev is not None:
      seasonal_weights = _added(seasonal_weights, seasonal_dev, unit)
      seasonal_total += unit
      seasonal_count += 1
    trailing = judged_by[0]
    if trailing is not None and trailing[1] > 0.0:  # the sensor's usual spread, fading alike
      stddev = trailing[1]
      spread = stddev if spread == 0.0 else spread + (1.0 - 1.0 / grow) * (stddev - spread)
    # The hold compares unclipped scores, so a score of 1 still holds back a lesser one
    # beyond 1 (a tail probability of 1e-9 after one of 1e-7).
    held = peak if ts_ms - peak_ms < self.hold_ms else 0.0
    if score > held or part == RANGE_PART:  # a new peak, or outside the seen range
      peak, peak_ms = score, ts_ms
    else:
      score *= HOLD_FACTOR
    return TailState(count + 1, ts_ms if last_ms is None else max(ts_ms, last_ms), weights,
                     total, unit, min(low, value), max(high, value), peak, peak_ms, spread,
                     seasonal_weights, seasonal_total, seasonal_count), min(score, 1.0)

  def explain(self, state: TailState, value: float, judged_by: Baselines,
              threshold: float) -> Dict[str, Any]:
    """What an alert about this reading says of it, given the state before it: the
    expected value, the bounds at the threshold (expected +/- the deviation that scores
    the threshold, in the baseline's floored stddev), the direction, and the part that
    fired: 'trailing' or 'seasonal' (the nearer baseline, when the reading is far from
    both), 'seasonal' (far from the seasonal baseline alone) or 'range' (outside
    everything the sensor has shown). Expected and bounds are those of the nearer
    baseline, or of the seasonal one when its part fired; the bounds are None when no
    deviation scores the threshold (a sensor whose capped deviations are common)."""
    floor = self.floor(state)
    dev, nearer = deviation(value, judged_by, floor)
    if nearer < 0:
      return {}
    seasonal_dev = self._seasonal_deviation(state, value, judged_by)
    _, part = self.raw_score(state, value, dev, seasonal_dev)
    if part == SEASONAL_PART:
      mean, stddev = judged_by[1]
      reach = deviation_at_score(state.seasonal_weights, state.seasonal_total, state.unit,
                                 threshold, SEASONAL_DECADES)
    else:
      mean, stddev = judged_by[nearer]
      reach = deviation_at_score(state.weights, state.total, state.unit, threshold)
    reach *= max(stddev, floor)
    if math.isinf(reach):  # no value scores the threshold by this part: no bounds
      return {'expected': mean, 'lower': None, 'upper': None,
              'direction': 'above' if value >= mean else 'below', 'fired': part or PARTS[nearer]}
    return {'expected': mean, 'lower': mean - reach, 'upper': mean + reach,
            'direction': 'above' if value >= mean else 'below',
            'fired': part or PARTS[nearer]}
