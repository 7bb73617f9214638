"""The tail-probability score (transforms/tail.py)."""

import math
import pickle

import pytest

from transforms.detectors import DEVIATION_CAP, ScoreState
from transforms.judge import _score_rows, judged_row
from transforms.records import Reading
from transforms.rules import Rule
from transforms.tail import (EDGES, NBINS, PRIOR_WEIGHT, SEASONAL_DECADES, TailScorer,
                             deviation_at_score, prior_tail, tail_probability, tail_weight)


def at(dev, value=5.0):
  """Baselines that put `value` `dev` standard deviations off: a trailing one with stddev 1."""
  return (value - dev, 1.0), None


def histogram(state):
  """The deviation histogram's (weights, total, unit) of a state."""
  return state.weights, state.total, state.unit


def fed(scorer, deviations, ts_ms=0, value=5.0):
  """A state that has seen these deviations, all at one instant (no fading)."""
  state = scorer.new_state()
  for dev in deviations:
    state, _ = scorer.update(state, ts_ms, value, at(dev, value))
  return state


def test_tail_weight_is_uniform_inside_a_bin():
  weights = (0.0,) * (NBINS - 2) + (2.0, 1.0)
  lo, hi = EDGES[NBINS - 2], EDGES[NBINS - 1]
  # the whole last bin plus half of the one before
  assert tail_weight(weights, (lo + hi) / 2) == pytest.approx(1.0 + 1.0)
  assert tail_weight(weights, 0.0) == 3.0
  assert tail_weight(weights, DEVIATION_CAP) == 1.0  # capped readings are all equally far


def test_score_is_the_tail_probability_of_the_sensors_own_deviations_in_decades():
  scorer = TailScorer(half_life_s=1.0, hold_s=0.0, range_warmup=10**9)
  assert PRIOR_WEIGHT == 5.0  # the arithmetic below
  d = EDGES[14]  # 9.57, a bin's lower edge: the whole bin lies at or above it
  # 99 readings at deviation 0 and one at d: P(D >= d) = (1 + 5 C(d)) / (100 + 5), with the
  # Cauchy tail C(9.57) = 1 - 2 atan(9.57) / pi = 0.0663: P = 0.0127, score -log10(P) / 5 = 0.38
  state = fed(scorer, [0.0] * 99 + [d])
  expected = (1.0 + 5 * prior_tail(d)) / 105
  assert prior_tail(d) == pytest.approx(0.0663, abs=1e-4)
  assert tail_probability(*histogram(state), d) == pytest.approx(expected)
  _, score = scorer.update(state, 0, 5.0, at(d, 5.0))
  assert score == pytest.approx(-math.log10(expected) / 5)
  # 4, below the reading at 9.57: (1 + 5 x 0.156) / 105, score 0.35
  assert scorer.raw_score(state, 5.0, 4.0)[0] == pytest.approx(
      -math.log10((1 + 5 * prior_tail(4.0)) / 105) / 5)
  # beyond everything seen only the prior is left: 5 C(4) = 0.78 over 1005, P = 7.8e-4,
  # score 3.11 / 5 = 0.62
  lone = fed(scorer, [0.0] * 1000)
  assert tail_probability(*histogram(lone), 4.0) == pytest.approx(5 * prior_tail(4.0) / 1005)
  assert scorer.update(lone, 0, 5.0, at(4.0, 5.0))[1] == pytest.approx(0.622, abs=1e-3)


def test_weights_fade_with_event_time():
  scorer = TailScorer(half_life_s=1.0, hold_s=0.0, range_warmup=10**9)
  state = fed(scorer, [20.0] * 10)
  # 10 readings at 20, then 10 at 0 three half-lives later: the old ones weigh 10 / 8
  for _ in range(10):
    state, _ = scorer.update(state, 3000, 5.0, at(0.0, 5.0))
  # P(D >= 19.53, the lower edge of 20's bin) = (1.25 + 5 C(19.53)) / (11.25 + 5)
  assert EDGES[20] == pytest.approx(19.53, abs=0.01)
  assert tail_probability(*histogram(state), EDGES[20]) == pytest.approx(
      (1.25 + PRIOR_WEIGHT * prior_tail(EDGES[20])) / (11.25 + PRIOR_WEIGHT), rel=1e-6)


def test_a_flat_sensor_alerts_on_its_first_change():
  scorer = TailScorer(half_life_s=3600.0, hold_s=60.0)
  flat = (5.0, 0.0), None  # a flat trailing baseline
  state = scorer.new_state()
  for k in range(40):
    state, _ = scorer.update(state, k * 1000, 5.0, flat)  # deviation 0
  assert scorer.floor(state) == 1e-6  # never varied: min_stddev
  # 0.001 off: 0.001 / 1e-6 = 1000 standard deviations, capped at 50, never seen:
  # P = 5 C(50) / 45 = 5 x 0.0127 / 45 = 1.4e-3, score 2.85 / 5 = 0.57 (a little less: the
  # 40 readings have faded over 40 s of a 1-hour half-life)
  _, score = scorer.update(state, 40000, 5.001, flat)
  assert score == pytest.approx(-math.log10(5 * prior_tail(50.0) / 45) / 5, rel=1e-3)
  assert score > 0.5


def test_a_flat_window_of_a_noisy_sensor_is_floored_at_its_usual_spread():
  scorer = TailScorer(half_life_s=1e9, hold_s=0.0, range_warmup=10**9)
  state = fed(scorer, [0.5] * 100)  # baselines with stddev 1
  assert scorer.floor(state) == pytest.approx(0.05)  # SPREAD_FLOOR x 1
  # a window that happens to be flat judges a reading 0.01 off: 0.01 / 0.05 = 0.2 standard
  # deviations, not 0.01 / 1e-6 (capped at 50, an alert)
  _, score = scorer.update(state, 0, 5.01, ((5.0, 0.0), None))
  assert score < 0.001  # 0.2 is below every deviation seen: P ~ 1


def test_warm_up_scores_zero():
  scorer = TailScorer(half_life_s=3600.0, hold_s=0.0)
  state = scorer.new_state()
  for _ in range(10):
    state, score = scorer.update(state, 0, 5.0, at(DEVIATION_CAP, 5.0))
    assert score == 0.0


def test_a_reading_far_from_the_season_alone_scores_on_its_own_scale():
  scorer = TailScorer(half_life_s=1e9, hold_s=0.0, range_warmup=10**9)
  # the recent past and yesterday agree (deviation 0.5 from each) for 1000 readings
  state = scorer.new_state()
  for _ in range(1000):
    state, _ = scorer.update(state, 0, 5.0, ((4.5, 1.0), (5.5, 1.0)))
  # a missing daily peak: as the recent past (0 off), 20 below yesterday's (25, stddev 1):
  # near the trailing baseline, so the deviation part scores 0, but never that far from
  # yesterday: P = 5 C(20) / 1005 = 5 x 0.0318 / 1005 = 1.6e-4, 3.80 decades, score 3.80 / 6
  judged_by = ((5.0, 1.0), (25.0, 1.0))
  assert scorer.raw_score(state, 5.0, 0.0, 20.0) == (pytest.approx(3.80 / SEASONAL_DECADES,
                                                                    abs=1e-3), 'seasonal')
  assert scorer.update(state, 0, 5.0, judged_by)[1] > 0.5
  explained = scorer.explain(state, 5.0, judged_by, 0.5)
  assert (explained['fired'], explained['expected'], explained['direction']) == (
      'seasonal', 25.0, 'below')
  # yesterday's own usual deviation (0.5) scores nothing
  assert scorer.raw_score(state, 5.0, 0.0, 0.5)[0] < 0.5


def test_a_value_outside_everything_seen_scores_one():
  scorer = TailScorer(half_life_s=1.0, hold_s=0.0, range_warmup=10)
  state = fed(scorer, [0.0] * 10, value=5.0)
  state, _ = scorer.update(state, 0, 15.0, at(0.0, 15.0))  # seen [5, 15]: margin 0.05 x 10 = 0.5
  assert scorer.update(state, 0, 15.4, at(0.0, 15.4))[1] == 0.0
  assert scorer.update(state, 0, 15.6, at(0.0, 15.6))[1] == 1.0
  assert scorer.update(state, 0, 4.4, at(0.0, 4.4))[1] == 1.0


def test_one_incident_one_high_score():
  scorer = TailScorer(half_life_s=1e9, hold_s=10.0, range_warmup=10**9)
  state = fed(scorer, [0.0] * 2000)
  state, first = scorer.update(state, 0, 5.0, at(2.5, 5.0))
  raw_second, _ = scorer.raw_score(state, 5.0, 2.5)
  state, second = scorer.update(state, 1000, 5.0, at(2.5, 5.0))  # no rarer than the peak: halved
  raw_third, _ = scorer.raw_score(state, 5.0, 6.0)
  state, third = scorer.update(state, 2000, 5.0, at(6.0, 5.0))  # rarer than the peak: in full
  raw_later, _ = scorer.raw_score(state, 5.0, 2.5)
  state, later = scorer.update(state, 20000, 5.0, at(2.5, 5.0))  # the hold (10 s) is over
  assert first > 0.5 and raw_second < first
  assert second == pytest.approx(raw_second / 2)
  assert third == pytest.approx(raw_third) and third > first
  assert later == pytest.approx(raw_later)


def test_bounds_at_the_threshold_invert_the_score():
  scorer = TailScorer(half_life_s=1e9, hold_s=0.0, range_warmup=10**9)
  state = fed(scorer, [0.1 * (k % 30) for k in range(2000)])
  d = deviation_at_score(*histogram(state), 0.5)
  above, below = scorer.raw_score(state, 5.0, d * 1.001), scorer.raw_score(state, 5.0, d * 0.999)
  assert above[0] > 0.5 > below[0]
  assert 2.0 < d < DEVIATION_CAP


def test_an_alert_explains_itself():
  scorer = TailScorer(half_life_s=1e9, hold_s=0.0, range_warmup=10**9)
  state = fed(scorer, [0.1 * (k % 30) for k in range(2000)])  # usual deviations 0 to 2.9
  reach = deviation_at_score(*histogram(state), 0.5)
  trailing, seasonal = (100.0, 2.0), (40.0, 1.0)
  # 10 stddev below the trailing mean, 50 above the seasonal one: the trailing one is nearer
  explained = scorer.explain(state, 80.0, (trailing, seasonal), 0.5)
  assert explained == {'expected': 100.0, 'lower': pytest.approx(100.0 - 2.0 * reach),
                       'upper': pytest.approx(100.0 + 2.0 * reach), 'direction': 'below',
                       'fired': 'trailing'}
  assert explained['lower'] > 80.0  # the reading is outside the bounds it alerted on
  assert scorer.explain(state, 45.0, (None, seasonal), 0.5)['fired'] == 'seasonal'
  assert scorer.explain(state, 45.0, (None, None), 0.5) == {}
  ranged = TailScorer(half_life_s=1e9, hold_s=0.0, range_warmup=10)
  assert ranged.explain(fed(ranged, [0.0] * 20), 1e6, (trailing, None), 0.5)['fired'] == 'range'


def test_state_is_small():
  scorer = TailScorer(half_life_s=3600.0, hold_s=60.0)
  state = scorer.new_state()
  for k in range(500):  # both histograms filled: a trailing and a seasonal baseline
    state, _ = scorer.update(state, k * 1000, 5.0 + 0.01 * k, ((5.0, 1.0), (5.5, 2.0)))
  assert len(pickle.dumps(tuple(state), pickle.HIGHEST_PROTOCOL)) < 750


def test_an_older_detectors_state_from_a_savepoint_starts_the_sensor_afresh():
  class Counter:
    def inc(self, n=1):
      pass

  rule = Rule('likelihood')
  old = pickle.loads(pickle.dumps({'s': ScoreState(count=500, last_ms=0)}))
  rows = [judged_row(Reading('s', 5.0, 1000), ((5.0, 1.0), None), None, None)]
  assert list(_score_rows(rule.scorer(), rule, Counter(), rows, old)) == []
  assert type(old['s']).__name__ == 'TailState' and old['s'].count == 1
