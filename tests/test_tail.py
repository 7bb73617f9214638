"""The tail-probability score (transforms/tail.py)."""

import math
import pickle

import pytest

from transforms.detectors import DEVIATION_CAP
from transforms.tail import (EDGES, NBINS, PRIOR_WEIGHT, TailScorer, deviation_at_score,
                             tail_probability, tail_weight)


def fed(scorer, deviations, ts_ms=0, value=5.0):
  """A state that has seen these deviations, all at one instant (no fading)."""
  state = scorer.new_state()
  for dev in deviations:
    state, _ = scorer.update(state, ts_ms, value, dev)
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
  d = EDGES[14]  # 9.57, a bin's lower edge: the whole bin lies at or above it
  # 99 readings at deviation 0 and one at d: P(D >= d) = (1 + 1 x erfc(d / sqrt 2)) / (100 + 1)
  # = 0.0099, score = -log10(P) / 5 = 0.40
  state = fed(scorer, [0.0] * 99 + [d])
  expected = (1.0 + PRIOR_WEIGHT * math.erfc(d / math.sqrt(2))) / (100 + PRIOR_WEIGHT)
  assert tail_probability(state, d) == pytest.approx(expected)
  _, score = scorer.update(state, 0, 5.0, d)
  assert score == pytest.approx(-math.log10(expected) / 5)
  # beyond everything seen only the prior is left: erfc(4 / sqrt 2) = 6.3e-5 over 101,
  # P = 6.3e-7, score = 6.2 / 5, clipped to 1
  assert scorer.raw_score(state, 5.0, 4.0)[0] < 0.5  # 4 is below the reading at 9.57
  lone = fed(scorer, [0.0] * 100)
  assert tail_probability(lone, 4.0) == pytest.approx(math.erfc(4 / math.sqrt(2)) / 101)
  assert scorer.update(lone, 0, 5.0, 4.0)[1] == 1.0


def test_weights_fade_with_event_time():
  scorer = TailScorer(half_life_s=1.0, hold_s=0.0, range_warmup=10**9)
  state = fed(scorer, [20.0] * 10)
  # 10 readings at 20, then 10 at 0 three half-lives later: the old ones weigh 10 / 8
  for _ in range(10):
    state, _ = scorer.update(state, 3000, 5.0, 0.0)
  # P(D >= 19.5, the lower edge of 20's bin) = (1.25 + 1 x erfc(13.8)) / (11.25 + 1)
  assert EDGES[20] == pytest.approx(19.53, abs=0.01)
  assert tail_probability(state, EDGES[20]) == pytest.approx(1.25 / 12.25, rel=1e-6)


def test_a_flat_sensor_alerts_on_its_first_change():
  scorer = TailScorer(half_life_s=3600.0, hold_s=60.0)
  state = fed(scorer, [0.0] * 20)  # a flat baseline judges a flat sensor: deviation 0
  _, score = scorer.update(state, 1000, 5.001, DEVIATION_CAP)  # 0.001 off: capped at 50
  assert score == 1.0


def test_warm_up_scores_zero():
  scorer = TailScorer(half_life_s=3600.0, hold_s=0.0)
  state = scorer.new_state()
  for _ in range(10):
    state, score = scorer.update(state, 0, 5.0, DEVIATION_CAP)
    assert score == 0.0


def test_a_value_outside_everything_seen_scores_one():
  scorer = TailScorer(half_life_s=1.0, hold_s=0.0, range_warmup=10)
  state = fed(scorer, [0.0] * 10, value=5.0)
  state, _ = scorer.update(state, 0, 15.0, 0.0)  # seen range now [5, 15], margin 0.05 x 10 = 0.5
  assert scorer.update(state, 0, 15.4, 0.0)[1] == 0.0
  assert scorer.update(state, 0, 15.6, 0.0)[1] == 1.0
  assert scorer.update(state, 0, 4.4, 0.0)[1] == 1.0


def test_one_incident_one_high_score():
  scorer = TailScorer(half_life_s=1e9, hold_s=10.0, range_warmup=10**9)
  state = fed(scorer, [0.0] * 200)
  state, first = scorer.update(state, 0, 5.0, 2.5)
  raw_second, _ = scorer.raw_score(state, 5.0, 2.5)
  state, second = scorer.update(state, 1000, 5.0, 2.5)  # no rarer than the peak: halved
  state, third = scorer.update(state, 2000, 5.0, 6.0)  # rarer than the peak: in full
  raw_later, _ = scorer.raw_score(state, 5.0, 2.5)
  state, later = scorer.update(state, 20000, 5.0, 2.5)  # the hold (10 s) is over
  assert first > 0.5 and raw_second < first
  assert second == pytest.approx(raw_second / 2)
  assert third == 1.0 and later == pytest.approx(raw_later)


def test_bounds_at_the_threshold_invert_the_score():
  scorer = TailScorer(half_life_s=1e9, hold_s=0.0, range_warmup=10**9)
  state = fed(scorer, [0.1 * (k % 30) for k in range(2000)])
  d = deviation_at_score(state, 0.5)
  assert scorer.raw_score(state, 5.0, d * 1.001)[0] > 0.5 > scorer.raw_score(state, 5.0, d * 0.999)[0]
  assert 2.0 < d < DEVIATION_CAP


def test_state_is_small():
  scorer = TailScorer(half_life_s=3600.0, hold_s=60.0)
  state = fed(scorer, [0.1 * k for k in range(500)])
  assert len(pickle.dumps(tuple(state), pickle.HIGHEST_PROTOCOL)) < 450
