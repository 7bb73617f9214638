"""Judges every reading once against its sensor's baselines (the side input) and builds alerts."""

import hashlib
import math
import pickle
import time
from typing import Any, Dict, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam import coders
from apache_beam.coders import PickleCoder, VarIntCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
    BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer)

from transforms.baseline import SensorBaseline, SensorWindowStats
from transforms.detectors import ScoreState
from transforms.parse import METRICS_NAMESPACE
from transforms.records import Reading, iso_ms
from transforms.rules import Rule, Verdict
from transforms.stats import WindowStats


def alert_id(reading: Reading) -> str:
  """Stable across retries and replays, so consumers can drop duplicate alerts."""
  key = f'{reading.sensor_id}\x1f{reading.ts_ms}\x1f{reading.value!r}'
  return hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]


def _finite_or_none(x: float) -> Optional[float]:
  return x if math.isfinite(x) else None


class Judged(NamedTuple):
  """A reading with its deviation and what an alert about it would report (only these
  numbers, not the whole SensorBaseline). On its way to the per-sensor scorer it travels as
  a judged_row inside a JudgedBatch."""
  reading: Reading
  deviation: float  # standard deviations from the nearer baseline
  window: Optional[SensorWindowStats]  # the window an alert reports; None: no baseline
  seasonal: Optional[WindowStats] = None  # the seasonal baseline's statistics, if any


def judged_row(reading: Reading, deviation: float, window: Optional[SensorWindowStats],
               seasonal: Optional[WindowStats]) -> tuple:
  """A Judged as plain tuples: (reading fields, deviation, window fields or None, seasonal
  statistics or None); its reading's fields are (sensor_id, value, ts_ms, extra)."""
  if window is not None:
    window = (window.sensor_id, window.start_ms, window.end_ms, tuple(window.stats),
              window.pane)
  return tuple(reading), deviation, window, None if seasonal is None else tuple(seasonal)


def judged_of_row(row: tuple) -> Judged:
  reading, deviation, window, seasonal = row
  if window is not None:
    sensor_id, start_ms, end_ms, stats, pane = window
    window = SensorWindowStats(sensor_id, start_ms, end_ms, WindowStats._make(stats), pane)
  return Judged(Reading._make(reading), deviation, window,
                None if seasonal is None else WindowStats._make(seasonal))


class JudgedBatch(NamedTuple):
  """The judged readings of one shard and slot, as one element (transforms/batch.py), each
  a judged_row: plain tuples, so that a batch pickles and unpickles in one call each way.
  Judged rows cross to the runner, wait in the scorer's bag and are read back at every
  flush; building NamedTuples for each there took a third of the Python worker's time at
  12,000 readings/s. Only an alert needs the Judged itself (judged_of_row)."""
  rows: Tuple[tuple, ...]


class JudgedBatchCoder(coders.Coder):
  """JudgedBatch <-> its rows pickled in one call."""

  def encode(self, batch: JudgedBatch) -> bytes:
    return pickle.dumps(batch.rows, pickle.HIGHEST_PROTOCOL)

  def decode(self, encoded: bytes) -> JudgedBatch:
    return JudgedBatch(pickle.loads(encoded))

  def is_deterministic(self) -> bool:
    return False

  def to_type_hint(self):
    return JudgedBatch


coders.registry.register_coder(JudgedBatch, JudgedBatchCoder)


def _row_ts_ms(row: tuple) -> int:
  return row[0][2]


def _window_of(baseline: SensorBaseline) -> SensorWindowStats:
  """The window an alert reports: the trailing windows merged, else the seasonal one."""
  if baseline.trailing:
    return SensorWindowStats(baseline.sensor_id, baseline.start_ms, baseline.end_ms,
                             baseline.stats, 'ON_TIME')
  return baseline.seasonal


def make_alert(reading: Reading, win: SensorWindowStats, seasonal: Optional[WindowStats],
               verdict: Verdict, rule: Rule, detected_at_ms: int) -> Dict[str, Any]:
  """win: the window the alert reports (_window_of the baseline); seasonal: the seasonal
  baseline's statistics, if the baseline has one."""
  alert = {
      'alert_id': alert_id(reading),
      'sensor_id': reading.sensor_id,
      'ts': iso_ms(reading.ts_ms),
      'value': reading.value,
      'window_start': iso_ms(win.start_ms),
      'window_end': iso_ms(win.end_ms),
      'window_mean': win.stats.mean,
      'window_stddev': win.stats.stddev,
      'window_count': win.stats.count,
      'deviation': verdict.deviation,
      'score': _finite_or_none(verdict.score),
      'rule': rule.name,
      'threshold': rule.threshold,
      'detected_at': iso_ms(detected_at_ms),
  }
  if seasonal is not None:
    alert['seasonal_mean'] = seasonal.mean
    alert['seasonal_stddev'] = seasonal.stddev
  if reading.extra:
    alert['reading'] = reading.extra
  return alert


def merge_dicts(dicts) -> dict:
  merged = {}
  for d in dicts:
    merged.update(d)
  return merged


class JudgeReadingsFn(beam.DoFn):
  """Main input: (shard, ReadingBatch) of one slot in FixedWindows(period); side input:
  that slot's baselines.

  Stateless rules alert here. For the likelihood rule the batch leaves as
  (shard, JudgedBatch) for ScoreReadingsFn, which needs each sensor's history.
  """

  def __init__(self, rule: Rule):
    self._rule = rule
    self._judged = Metrics.counter(METRICS_NAMESPACE, 'judged_readings')
    self._alerts = Metrics.counter(METRICS_NAMESPACE, 'alerts')
    self._no_baseline = Metrics.counter(METRICS_NAMESPACE, 'no_baseline')
    self._small_baseline = Metrics.counter(METRICS_NAMESPACE, 'baseline_below_min_count')

  def process(self, element, slot_baselines):
    """element: (shard, ReadingBatch); slot_baselines: [{sensor_id: SensorBaseline}] of its
    slot (one dict, or copies of it; none where no baseline exists)."""
    shard, batch = element
    baselines = slot_baselines[0] if len(slot_baselines) == 1 else merge_dicts(slot_baselines)
    baselines = baselines or {}
    self._judged.inc(len(batch.readings))
    if self._rule.is_stateful:
      yield shard, JudgedBatch(tuple(
          self._judge(reading, baselines.get(reading.sensor_id)) for reading in batch.readings))
    else:
      for reading in batch.readings:
        yield from self._judge_stateless(reading, baselines.get(reading.sensor_id))

  def _judge(self, reading: Reading, baseline: Optional[SensorBaseline]) -> tuple:
    """The judged_row of a reading."""
    if baseline is None:
      self._no_baseline.inc()
      return judged_row(reading, self._rule.deviation(reading.value, None, None), None, None)
    seasonal = baseline.seasonal_stats
    return judged_row(reading, self._rule.deviation(reading.value, baseline.stats, seasonal),
                      _window_of(baseline), seasonal)

  def _judge_stateless(self, reading, baseline):
    stats = baseline.stats if baseline else None
    verdict = self._rule.judge(reading.value, stats) if stats else None
    if stats is None:
      self._no_baseline.inc()
    elif verdict is None:
      self._small_baseline.inc()
    elif verdict.is_anomaly:
      self._alerts.inc()
      yield make_alert(reading, _window_of(baseline), baseline.seasonal_stats, verdict,
                       self._rule, int(time.time() * 1000))


class ScoreReadingsFn(beam.DoFn):
  """Per sensor, in event-time order: deviation -> likelihood score -> alert above the threshold.

  Input: (shard, JudgedBatch) in the global window, the shard being
  transforms.batch.shard_of(sensor_id). Batches wait in a bag until the watermark passes
  their readings (an event-time timer), then the readings are
  scored sorted by event time, so the score does not depend on the order the runner
  delivers them in. A reading that arrives after later ones were scored (late data
  within the allowed lateness) is scored when it arrives.

  Keyed by a few shards of sensors, each holding a {sensor_id: ScoreState} dict, not by
  sensor: on Flink every key a bundle touches costs state requests to the runner when the
  bundle commits (and, with the SDK's state cache on, a deep-size measurement per state),
  and with 1,000 sensors a bundle touches nearly all of them (measured on embedded Flink
  with the cache on: two thirds of the Python worker's time went to those commits).

  The flush timer: a shard with no timer arms one at the newest reading of the batch that
  comes; a flush scores every reading up to its time and arms the next at the newest
  reading still waiting. An armed timer is never moved (FLUSH_AT remembers it: Beam cannot
  read a timer back), so a reading waits at most for two flushes. Setting the timer again
  on every bundle, at the newest reading, pushed it later each time: under a steady stream
  the watermark never caught up with it, and readings waited for a lull to be scored. A
  timer at the earliest waiting reading instead would score one millisecond per flush (a
  timer tells its own time, not the watermark) and read the whole bag for each.
  """
  PENDING = BagStateSpec('pending', JudgedBatchCoder())
  STATES = ReadModifyWriteStateSpec('score_states', PickleCoder())  # {sensor_id: ScoreState}
  FLUSH_AT = ReadModifyWriteStateSpec('flush_at_ms', VarIntCoder())  # absent: not armed
  FLUSH = TimerSpec('flush', TimeDomain.WATERMARK)

  def __init__(self, rule: Rule):
    self._rule = rule
    self._scorer = rule.scorer()
    self._alerts = Metrics.counter(METRICS_NAMESPACE, 'alerts')
    self._armed = {}  # shard -> whether its timer is armed, read once per bundle

  def start_bundle(self):
    self._armed = {}

  def process(self, element, pending=beam.DoFn.StateParam(PENDING),
              flush_at=beam.DoFn.StateParam(FLUSH_AT), flush=beam.DoFn.TimerParam(FLUSH)):
    shard, batch = element
    pending.add(batch)
    armed = self._armed.get(shard)
    if armed is None:
      armed = flush_at.read() is not None
    if not armed:
      newest_ms = max(map(_row_ts_ms, batch.rows))
      flush.set(newest_ms / 1000.0)
      flush_at.write(newest_ms)
    self._armed[shard] = True

  @on_timer(FLUSH)
  def on_flush(self, fired_at=beam.DoFn.TimestampParam,
               pending=beam.DoFn.StateParam(PENDING),
               states=beam.DoFn.StateParam(STATES),
               flush_at=beam.DoFn.StateParam(FLUSH_AT),
               flush=beam.DoFn.TimerParam(FLUSH)):
    self._armed = {}  # this changes a shard's timer: the next batch reads FLUSH_AT again
    now_ms = fired_at.micros // 1000
    waiting = sorted((row for batch in pending.read() for row in batch.rows), key=_row_ts_ms)
    due = [row for row in waiting if _row_ts_ms(row) <= now_ms]
    rest = waiting[len(due):]
    pending.clear()
    if rest:
      pending.add(JudgedBatch(tuple(rest)))
      flush.set(_row_ts_ms(rest[-1]) / 1000.0)
      flush_at.write(_row_ts_ms(rest[-1]))
    else:
      flush_at.clear()
    if not due:
      return
    score_states = states.read() or {}
    for row in due:
      (sensor_id, value, ts_ms, _), deviation, window, _ = row
      score_state, score = self._scorer.update(
          score_states.get(sensor_id) or ScoreState(), ts_ms, value, deviation)
      score_states[sensor_id] = score_state
      if score > self._rule.threshold and window is not None:
        self._alerts.inc()
        judged = judged_of_row(row)
        verdict = Verdict(abs(value - judged.window.stats.mean), score, True)
        yield make_alert(judged.reading, judged.window, judged.seasonal, verdict, self._rule,
                         int(time.time() * 1000))
    states.write(score_states)
