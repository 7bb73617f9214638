"""Readings in batches per shard (transforms/batch.py) and the steps that take batches."""

import os
import subprocess
import sys

from apache_beam.transforms.window import GlobalWindow, IntervalWindow

from tests.fakes import Bag, State, Timer
from tests.streaming import T0
from transforms.baseline import SensorWindowStats, _sensor_parts
from transforms.batch import (SHARDS, ReadingBatch, ReadingBatchCoder, ShardBatcher,
                              batches_by_slot, shard_of)
from transforms.detectors import NO_BASELINES
from transforms.judge import (SCORE_BAGS, Judged, JudgedBatch, JudgedBatchCoder, ScoreOnArrivalFn,
                             ScoreReadingsFn, judged_of_row, judged_row)
from transforms.records import Reading, iso_ms
from transforms.rules import Rule
from transforms.stats import EMPTY, MergedPartsFn, MergedSensorPartsFn, WindowStatsFn, accumulate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_shard_is_the_same_in_every_process_and_in_range():
  # Workers must agree on a sensor's shard: a process with another hash seed computes the same.
  sensors = [f'sensor-{k}' for k in range(1000)]
  code = ('import sys; from transforms.batch import shard_of; '
          'print(",".join(str(shard_of(s)) for s in sys.argv[1:]))')
  other = subprocess.run([sys.executable, '-c', code, *sensors[:50]], check=True, text=True,
                         capture_output=True, cwd=ROOT, env={**os.environ, 'PYTHONHASHSEED': '7'})
  assert other.stdout.strip() == ','.join(str(shard_of(s)) for s in sensors[:50])
  assert {shard_of(s) for s in sensors} == set(range(SHARDS))


def test_a_bundle_becomes_one_batch_per_shard_and_window_at_its_earliest_reading():
  a, b = 'sensor-a', next(f'sensor-{k}' for k in range(100)
                          if shard_of(f'sensor-{k}') != shard_of('sensor-a'))
  glob, other = GlobalWindow(), IntervalWindow(0, 10)
  batcher = ShardBatcher()
  readings = [Reading(a, 1.0, T0 + 5000), Reading(b, 2.0, T0 + 1000),
              Reading(a, 3.0, T0 + 2000), Reading(a, 4.0, T0 + 9000)]
  for reading in readings:
    batcher.add(reading, glob)
  batcher.add(Reading(a, 5.0, T0), other)
  out = sorted(batcher.flush(), key=lambda wv: (wv.value[0], wv.timestamp))
  got = {(wv.value[0], wv.windows[0]): (wv.timestamp.micros // 1000, wv.value[1]) for wv in out}
  assert got == {
      # a's readings in the global window, in arrival order, stamped with the earliest: 2 s
      (shard_of(a), glob): (T0 + 2000, ReadingBatch((readings[0], readings[2], readings[3]))),
      (shard_of(b), glob): (T0 + 1000, ReadingBatch((readings[1],))),
      (shard_of(a), other): (T0, ReadingBatch((Reading(a, 5.0, T0),))),
  }
  assert list(batcher.flush()) == []  # flushed: the next bundle starts empty


def test_batches_by_slot():
  readings = [Reading('s', 1.0, T0 + 4999), Reading('s', 2.0, T0 + 5000),
              Reading('s', 3.0, T0 + 1)]
  assert batches_by_slot(readings, 5000) == {
      T0: [readings[0], readings[2]], T0 + 5000: [readings[1]]}


def test_shifted_slots_split_batches_where_a_slot_or_a_period_starts():
  # Periods start at T0 and T0 + 5 s, slots (shifted by 2 s) at T0 - 3 s and T0 + 2 s.
  readings = [Reading('s', float(i), T0 + ms) for i, ms in enumerate((0, 1999, 2000, 4999, 5000))]
  assert batches_by_slot(readings, 5000, slot_offset_ms=2000) == {
      T0: readings[0:2], T0 + 2000: readings[2:4], T0 + 5000: readings[4:]}


def test_batch_coders_round_trip():
  readings = (Reading('s', 1.5, T0, {'unit': 'C'}), Reading('t', -2.0, T0 + 1))
  coder = ReadingBatchCoder()
  assert coder.decode(coder.encode(ReadingBatch(readings))) == ReadingBatch(readings)
  window = SensorWindowStats('s', T0 - 10, T0, accumulate_stats([1.0, 3.0]), 'ON_TIME')
  judged = [Judged(readings[0], ((7.5, 1.0), None), window, window.stats),
            Judged(readings[1], NO_BASELINES, None)]
  batch = JudgedBatch(tuple(judged_row(*j) for j in judged))
  decoded = JudgedBatchCoder().decode(JudgedBatchCoder().encode(batch))
  assert [judged_of_row(row) for row in decoded.rows] == judged
  assert type(judged_of_row(decoded.rows[0]).window.stats).__name__ == 'WindowStats'


def accumulate_stats(values):
  return WindowStatsFn().extract_output(accumulate(values))


def test_sensor_parts_of_a_batch_merge_to_the_single_pass_statistics():
  batch = ReadingBatch((Reading('a', 10.0, T0), Reading('b', 7.0, T0), Reading('a', 20.0, T0),
                        Reading('a', 30.0, T0)))
  shard, parts = _sensor_parts((3, batch))
  assert shard == 3
  # a: {10, 20, 30}: mean 20, m2 = 100 + 0 + 100 = 200; b: {7}
  assert parts['a'] == (3, 20.0, 200.0, 10.0, 30.0)
  assert parts['b'] == (1, 7.0, 0.0, 7.0, 7.0)
  fn = MergedPartsFn()
  more = accumulate([40.0])
  merged = fn.extract_output(fn.add_input(fn.add_input(fn.create_accumulator(), parts['a']), more))
  # {10, 20, 30, 40}: mean 25, m2 = 225 + 25 + 25 + 225 = 500
  assert merged == (4, 25.0, 500.0, 10.0, 40.0)
  assert fn.merge_accumulators([EMPTY, parts['b']]) == parts['b']


def test_a_shards_parts_merge_per_sensor_and_survive_their_coder():
  first = ReadingBatch((Reading('a', 10.0, T0), Reading('b', 7.0, T0)))
  second = ReadingBatch((Reading('a', 20.0, T0), Reading('a', 30.0, T0), Reading('c', 1.0, T0)))
  third = ReadingBatch((Reading('b', 9.0, T0),))
  fn = MergedSensorPartsFn()
  coder = fn.get_accumulator_coder()
  # as a runner may: one batch added per bundle, the accumulators encoded, then merged
  accs = [coder.decode(coder.encode(fn.add_input(fn.create_accumulator(), _sensor_parts((3, b))[1])))
          for b in (first, second, third)]
  merged = fn.extract_output(fn.merge_accumulators(accs))
  assert merged == {'a': accumulate([10.0, 20.0, 30.0]), 'b': accumulate([7.0, 9.0]),
                    'c': accumulate([1.0])}
  assert all(type(part).__name__ == 'StatsAccumulator' for part in merged.values())


def test_scorer_scores_batches_in_event_time_order_and_keeps_the_rest():
  from apache_beam.utils.timestamp import Timestamp
  rule = Rule('likelihood', 0.99)
  fn = ScoreReadingsFn(rule)
  scored = []

  class Recording:
    """The rule's scorer, recording the order it is called in."""

    def __init__(self, inner):
      self._inner = inner

    def __getattr__(self, name):  # new_state, explain: the rule's scorer's
      return getattr(self._inner, name)

    def update(self, state, ts_ms, value, judged_by):
      scored.append(ts_ms - T0)
      return self._inner.update(state, ts_ms, value, judged_by)

  fn._scorer = Recording(fn._scorer)
  bags, states, timer, expire = [Bag() for _ in range(SCORE_BAGS)], State(), Timer(), Timer()

  def bag_of(ms):  # the bag of the 250 ms step ending at T0 + ms (T0 is a whole second)
    return bags[(T0 + ms) // 250 % SCORE_BAGS]

  def process(batch):
    return list(fn.process((0, batch), *bags, timer) or ())

  def flush(ms):
    return list(fn.on_flush(Timestamp(micros=(T0 + ms) * 1000), *bags, states, expire) or ())

  fn.start_bundle()
  first = JudgedBatch((judged_row(Reading('s', 1.0, T0 + 2500), NO_BASELINES, None, None),
                       judged_row(Reading('s', 1.0, T0 + 3000), NO_BASELINES, None, None)))
  older = JudgedBatch((judged_row(Reading('s', 1.0, T0 + 2000), NO_BASELINES, None, None),
                       judged_row(Reading('t', 1.0, T0 + 300), NO_BASELINES, None, None)))
  newer = JudgedBatch((judged_row(Reading('t', 1.0, T0 + 2900), NO_BASELINES, None, None),
                       judged_row(Reading('t', 1.0, T0 + 9000), NO_BASELINES, None, None)))
  for batch in (first, older, newer):
    process(batch)
  # one timer per 250 ms step that has readings, at the step's end, tagged with the step;
  # 2.9 s and 3 s share the step (2.75, 3], whose timer is set once in the bundle
  steps_ms = [500, 2000, 2500, 3000, 9000]
  assert sorted(timer.history) == [(T0 + ms) / 1000 for ms in steps_ms]
  assert timer.tags == {str((T0 + ms) // 250): (T0 + ms) / 1000 for ms in steps_ms}
  # each step's readings wait in its own bag; 9 s is 24 steps after 3 s: the same bag
  assert bag_of(3000).items == [JudgedBatch((first.rows[1],)), JudgedBatch((newer.rows[0],)),
                                JudgedBatch((newer.rows[1],))]
  assert bag_of(2000).items == [JudgedBatch((older.rows[0],))]
  fn.start_bundle()
  next_bundle = JudgedBatch((judged_row(Reading('t', 1.0, T0 + 5000), NO_BASELINES, None, None),))
  process(next_bundle)
  assert timer.tags[str((T0 + 5000) // 250)] == (T0 + 5000) / 1000
  for ms in (500, 2000, 2500, 3000):  # the watermark passes 3 s: timers fire in time order
    flush(ms)
  assert scored == [300, 2000, 2500, 2900, 3000]
  # 5 s and 9 s (8 and 24 steps after 3 s) shared the 3 s step's bag: they stay there,
  # as one batch, for their own timers
  assert bag_of(3000).items == [JudgedBatch((next_bundle.rows[0], newer.rows[1]))]
  assert sorted(states.read()) == ['s', 't']
  flush(2500)  # a step's timer again (a late reading set it): nothing there, nothing done
  assert len(scored) == 5
  flush(5000)
  flush(9000)
  assert scored[5:] == [5000, 9000] and all(not bag.items for bag in bags)
  # a late reading sets its step's timer again, behind the watermark: it fires at once
  fn.start_bundle()
  process(older)
  assert sorted(timer.history[-2:]) == [(T0 + 500) / 1000, (T0 + 2000) / 1000]


def test_scorer_on_arrival_scores_at_once_like_event_order_when_readings_come_in_order():
  rule = Rule('likelihood', 0.5)
  window = SensorWindowStats('s', T0 - 60000, T0, WindowStatsFn().extract_output(
      accumulate([10.0, 11.0, 12.0])), 'ON_TIME')
  # sensor s: 40 quiet readings, then one far off; sensor t: quiet throughout
  readings = [Reading('s', 10.5 + k % 3 * 0.5, T0 + 100 * k) for k in range(40)] + [
      Reading('s', 90.0, T0 + 4000)] + [
      Reading('t', 10.5 + k % 3 * 0.5, T0 + 100 * k + 50) for k in range(41)]
  rows = [judged_row(r, rule.baselines(window.stats, None), window, None)
          for r in readings]
  # the reference: every reading scored one by one in event-time order
  scorer, expected, alerting = rule.scorer(), {}, []
  for row in sorted(rows, key=lambda row: row[0][2]):
    (sensor_id, value, ts_ms, _), judged_by, _, _ = row
    expected[sensor_id], score = scorer.update(expected.get(sensor_id) or scorer.new_state(),
                                               ts_ms, value, judged_by)
    if score > rule.threshold:
      alerting.append(ts_ms)
  assert alerting == [T0 + 4000]  # the case can fail: the far reading must alert

  class Counting(State):
    reads = 0

    def read(self):
      Counting.reads += 1
      return super().read()

  fn, states, expire = ScoreOnArrivalFn(rule), Counting(), Timer()
  in_order = sorted(rows, key=lambda row: row[0][2])
  # batches as they would come: each in order of arrival, a batch's rows in any order
  batches = [JudgedBatch(tuple(reversed(in_order[i:i + 7]))) for i in range(0, len(rows), 7)]
  alerts = []
  fn.start_bundle()
  for batch in batches[:6]:
    alerts += list(fn.process((3, batch), states, expire))
  assert Counting.reads == 1  # the shard's states are read once per bundle
  fn.start_bundle()
  for batch in batches[6:]:
    alerts += list(fn.process((3, batch), states, expire))
  assert Counting.reads == 2
  assert [a['ts'] for a in alerts] == [iso_ms(T0 + 4000)] and alerts[0]['sensor_id'] == 's'
  assert states.read() == expected  # the same scores, at once, without any timer
