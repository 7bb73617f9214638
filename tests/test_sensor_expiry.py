"""Sensors that fall silent leave no scorer state behind (--sensor_ttl).

Both scorers are driven directly, as the runner would over a week of event time: readings
every hour from two sensors, one of which stops on day 2; after each batch the watermark
moves to the batch's time and every expiry timer due by then fires.
"""

import pytest
from apache_beam.utils.timestamp import Timestamp

from pipeline.options import AnomalyOptions, InvalidOptionError, sensor_ttl_s, validate
from tests.fakes import Bag, Counter, State, Timer
from tests.streaming import T0
from transforms.detectors import NO_BASELINES
from transforms.judge import SCORE_BAGS, JudgedBatch, ScoreOnArrivalFn, ScoreReadingsFn, judged_row
from transforms.records import Reading
from transforms.rules import Rule

HOUR_MS = 3600_000
DAY_MS = 24 * HOUR_MS


def _week_of_hourly_batches():
  """(ts_ms, batch) every hour for 7 days; 'gone' reports until the end of day 2 only."""
  for hour in range(7 * 24):
    ts_ms = T0 + hour * HOUR_MS
    sensors = ('stays', 'gone') if ts_ms < T0 + 2 * DAY_MS else ('stays',)
    yield ts_ms, JudgedBatch(tuple(
        judged_row(Reading(sensor_id, 10.0, ts_ms), NO_BASELINES, None, None)
        for sensor_id in sensors))


class _Runner:
  """Fires the expiry timer whenever the watermark passes it, as Flink would."""

  def __init__(self, fn):
    self.fn, self.states, self.expire = fn, State(), Timer()
    fn._expired = self.expired = Counter()

  def advance_watermark(self, to_ms: int) -> None:
    while self.expire.at is not None and self.expire.at * 1000 <= to_ms:
      at, self.expire.at = self.expire.at, None
      self.fn.on_expire(Timestamp(micros=round(at * 1e6)), self.states, self.expire)


def _on_arrival(rule):
  runner = _Runner(ScoreOnArrivalFn(rule))
  for ts_ms, batch in _week_of_hourly_batches():
    runner.fn.start_bundle()
    list(runner.fn.process((0, batch), runner.states, runner.expire))
    yield ts_ms, runner


def _in_event_time_order(rule):
  runner = _Runner(ScoreReadingsFn(rule))
  bags, flush = [Bag() for _ in range(SCORE_BAGS)], Timer()
  for ts_ms, batch in _week_of_hourly_batches():
    runner.fn.start_bundle()
    runner.fn.process((0, batch), *bags, flush)
    list(runner.fn.on_flush(Timestamp(micros=flush.at * 1e6), *bags, runner.states,
                            runner.expire))
    yield ts_ms, runner


@pytest.mark.parametrize('scorer', [_on_arrival, _in_event_time_order])
def test_a_sensor_silent_since_day_2_leaves_no_state_by_day_7(scorer):
  rule = Rule('likelihood', sensor_ttl_s=DAY_MS / 1000)
  held_at = {}  # hour -> the sensors in state once the watermark has reached it
  for ts_ms, runner in scorer(rule):
    runner.advance_watermark(ts_ms)
    held_at[(ts_ms - T0) // HOUR_MS] = sorted(runner.states.read() or {})
  last_of_gone = 2 * 24 - 1
  assert held_at[last_of_gone] == ['gone', 'stays']
  assert held_at[last_of_gone + 23] == ['gone', 'stays']  # silent for less than the TTL
  assert held_at[last_of_gone + 24] == ['stays']
  assert held_at[7 * 24 - 1] == ['stays']
  assert runner.expired.count == 1
  # the one left is still watched: its timer stands at its newest reading plus the TTL
  assert runner.expire.at * 1000 == ts_ms + DAY_MS


def test_every_sensor_gone_clears_the_shard():
  runner = _Runner(ScoreOnArrivalFn(Rule('likelihood', sensor_ttl_s=60.0)))
  batch = JudgedBatch((judged_row(Reading('a', 1.0, T0), NO_BASELINES, None, None),))
  runner.fn.start_bundle()
  list(runner.fn.process((0, batch), runner.states, runner.expire))
  assert runner.expire.at * 1000 == T0 + 60_000
  runner.advance_watermark(T0 + 60_000)
  assert runner.states.read() is None and runner.expire.at is None
  assert runner.expired.count == 1
  # the sensor comes back: a new one, its timer armed again
  runner.fn.start_bundle()
  list(runner.fn.process((0, JudgedBatch((judged_row(Reading('a', 1.0, T0 + 90_000), NO_BASELINES,
                                                     None, None),))), runner.states,
                         runner.expire))
  assert sorted(runner.states.read()) == ['a'] and runner.states.read()['a'].count == 1
  assert runner.expire.at * 1000 == T0 + 150_000


def test_sensor_ttl_defaults_to_twice_the_longest_history_and_at_least_14_days():
  def ttl(*args):
    return sensor_ttl_s(validate(AnomalyOptions(list(args))))
  assert ttl() == 14 * 86400.0
  assert ttl('--season=604800') == 2 * (604800 + 10)
  assert ttl('--score_half_life=1000000') == 2000000.0
  assert ttl('--sensor_ttl=600') == 600.0
  with pytest.raises(InvalidOptionError, match='^--sensor_ttl: '):
    validate(AnomalyOptions(['--sensor_ttl=0']))
