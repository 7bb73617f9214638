"""Judges every reading once against its sensor's baselines (the side input) and builds alerts."""

import hashlib
import math
import pickle
import time
from typing import Any, Dict, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam import coders
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
    BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer)

from transforms.baseline import SensorBaseline, SensorWindowStats
from transforms.detectors import NO_BASELINES
from transforms.parse import METRICS_NAMESPACE
from transforms.records import Reading, iso_ms
from transforms.rules import Rule, Verdict
from transforms.stats import WindowStats
from transforms.tail import TailScorer, TailState


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
  baselines: tuple  # (mean, stddev) of the trailing and seasonal baselines that judge it
  window: Optional[SensorWindowStats]  # the window an alert reports; None: no baseline
  seasonal: Optional[WindowStats] = None  # the seasonal baseline's statistics, if any


def judged_row(reading: Reading, baselines: tuple, window: Optional[SensorWindowStats],
               seasonal: Optional[WindowStats]) -> tuple:
  """A Judged as plain tuples: (reading fields, baselines, window fields or None, seasonal
  statistics or None); its reading's fields are (sensor_id, value, ts_ms, extra)."""
  if window is not None:
    window = (window.sensor_id, window.start_ms, window.end_ms, tuple(window.stats),
              window.pane)
  return tuple(reading), baselines, window, None if seasonal is None else tuple(seasonal)


def judged_of_row(row: tuple) -> Judged:
  reading, baselines, window, seasonal = row
  if window is not None:
    sensor_id, start_ms, end_ms, stats, pane = window
    window = SensorWindowStats(sensor_id, start_ms, end_ms, WindowStats._make(stats), pane)
  return Judged(Reading._make(reading), baselines, window,
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
               verdict: Verdict, rule: Rule, detected_at_ms: int,
               explained: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
  """win: the window the alert reports (_window_of the baseline); seasonal: the seasonal
  baseline's statistics, if the baseline has one; explained: the likelihood scorer's
  `explain` (expected, lower, upper, direction, fired). A stateless rule explains itself
  by its window: expected its mean, bounds mean +/- what the threshold allows."""
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
  alert.update(explained if explained is not None else _explain_stateless(reading, win, rule))
  if seasonal is not None:
    alert['seasonal_mean'] = seasonal.mean
    alert['seasonal_stddev'] = seasonal.stddev
  if reading.extra:
    alert['reading'] = reading.extra
  return alert


def _explain_stateless(reading: Reading, win: SensorWindowStats, rule: Rule) -> Dict[str, Any]:
  """expected, lower, upper, direction, fired of an absolute, relative or zscore alert."""
  mean = win.stats.mean
  if rule.name == 'absolute':
    reach = rule.threshold
  elif rule.name == 'relative':
    reach = rule.threshold * abs(mean)
  else:
    reach = rule.threshold * max(win.stats.stddev, rule.min_stddev)
  return {'expected': mean, 'lower': mean - reach, 'upper': mean + reach,
          'direction': 'above' if reading.value >= mean else 'below', 'fired': 'window'}


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
      return judged_row(reading, NO_BASELINES, None, None)
    seasonal = baseline.seasonal_stats
    return judged_row(reading, self._rule.baselines(baseline.stats, seasonal),
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


EVENT_TIME_ORDER = 'event_time'
ARRIVAL_ORDER = 'arrival'
SCORE_ORDERS = (ARRIVAL_ORDER, EVENT_TIME_ORDER)  # --score_order: ScoreOnArrivalFn, ScoreReadingsFn

SCORE_STEP_MS = 250  # event time that one flush timer of the scorer covers
SCORE_BAGS = 8  # a step's readings wait in bag (step % SCORE_BAGS)


class _SensorScoresFn(beam.DoFn):
  """What both scorers share: per shard a {sensor_id: TailState} cell, and the release of
  sensors that fell silent.

  A sensor whose newest reading is more than the rule's sensor_ttl_s behind the watermark
  is dropped from its shard's cell and counted (`expired_sensors`): sensors come and go in
  a plant, and without this every sensor ever seen would stay in state for the job's life.
  One watermark timer per shard, armed while its cell holds any sensor, fires at the
  earliest moment one of them can expire and re-arms itself for the next; a sensor that
  reports again after expiring starts afresh, as a new one.
  """
  STATES = ReadModifyWriteStateSpec('score_states', PickleCoder())  # {sensor_id: TailState}
  EXPIRE = TimerSpec('expire', TimeDomain.WATERMARK)

  def __init__(self, rule: Rule):
    self._rule = rule
    self._scorer = rule.scorer()
    self._ttl_ms = round(rule.sensor_ttl_s * 1000)
    self._alerts = Metrics.counter(METRICS_NAMESPACE, 'alerts')
    self._expired = Metrics.counter(METRICS_NAMESPACE, 'expired_sensors')

  def _arm_expiry(self, score_states: Dict[str, TailState], expire) -> None:
    """Sets the shard's expiry timer at the earliest moment one of its sensors can expire."""
    expire.set(min(state.last_ms for state in score_states.values()) / 1000.0
               + self._ttl_ms / 1000.0)

  @on_timer(EXPIRE)
  def on_expire(self, fired_at=beam.DoFn.TimestampParam,
                states=beam.DoFn.StateParam(STATES), expire=beam.DoFn.TimerParam(EXPIRE)):
    self._forget_cached_states()
    score_states = states.read() or {}
    silent = [sensor_id for sensor_id, state in score_states.items()
              if state.last_ms + self._ttl_ms <= fired_at.micros // 1000]
    for sensor_id in silent:
      del score_states[sensor_id]
    self._expired.inc(len(silent))
    if score_states:
      states.write(score_states)
      self._arm_expiry(score_states, expire)
    else:
      states.clear()

  def _forget_cached_states(self) -> None:
    """A scorer that keeps a shard's cell for its bundle reads it again after an expiry."""


class ScoreReadingsFn(_SensorScoresFn):
  """Per sensor, in event-time order: deviation -> likelihood score -> alert above the threshold.

  Input: (shard, JudgedBatch) in the global window, the shard being
  transforms.batch.shard_of(sensor_id). Readings wait in state until the watermark passes
  them (event-time timers), then they are scored sorted by event time, so the score does
  not depend on the order the runner delivers them in. A reading that arrives after later
  ones were scored (late data within the allowed lateness) is scored when it arrives.

  Keyed by a few shards of sensors, each holding a {sensor_id: TailState} dict, not by
  sensor: on Flink every key a bundle touches costs state requests to the runner when the
  bundle commits (and, with the SDK's state cache on, a deep-size measurement per state),
  and with 1,000 sensors a bundle touches nearly all of them (measured on embedded Flink
  with the cache on: two thirds of the Python worker's time went to those commits).

  Steps: event time is cut into steps of SCORE_STEP_MS. A reading waits in its step's bag
  and sets its step's timer, at the step's end, one dynamic timer per step (the tag), so
  it is scored within one step of the watermark passing it. Setting a timer that is
  already set, to the same time, changes nothing, so no state says which are armed. A
  step's flush reads only its own bag: the bags rotate (step % SCORE_BAGS), so the
  readings of the next SCORE_BAGS steps never wait in the bag being read; a reading
  further ahead shares a bag with an earlier step and stays in it when that step is
  flushed. One bag for every step (tried first) read and rewrote every waiting reading at
  every flush: at 20,000 readings/s a quarter of the Python worker's time. One timer per
  shard (before that) made readings that came after it was armed wait for a second flush.
  """
  PENDING = tuple(BagStateSpec(f'pending_{i}', JudgedBatchCoder()) for i in range(SCORE_BAGS))
  FLUSH = TimerSpec('flush', TimeDomain.WATERMARK)

  def __init__(self, rule: Rule):
    super().__init__(rule)
    self._armed = set()  # (shard, step) whose timer this bundle has set

  def start_bundle(self):
    self._armed = set()

  # One parameter per bag: Beam finds state cells by the DoFn's signature (SCORE_BAGS of them).
  def process(self, element,
              p0=beam.DoFn.StateParam(PENDING[0]), p1=beam.DoFn.StateParam(PENDING[1]),
              p2=beam.DoFn.StateParam(PENDING[2]), p3=beam.DoFn.StateParam(PENDING[3]),
              p4=beam.DoFn.StateParam(PENDING[4]), p5=beam.DoFn.StateParam(PENDING[5]),
              p6=beam.DoFn.StateParam(PENDING[6]), p7=beam.DoFn.StateParam(PENDING[7]),
              flush=beam.DoFn.TimerParam(FLUSH)):
    shard, batch = element
    bags = (p0, p1, p2, p3, p4, p5, p6, p7)
    for step, rows in _rows_by_step(batch.rows).items():
      bags[step % SCORE_BAGS].add(JudgedBatch(rows))
      if (shard, step) not in self._armed:
        self._armed.add((shard, step))
        flush.set(step * SCORE_STEP_MS / 1000.0, dynamic_timer_tag=str(step))

  @on_timer(FLUSH)
  def on_flush(self, fired_at=beam.DoFn.TimestampParam,
               p0=beam.DoFn.StateParam(PENDING[0]), p1=beam.DoFn.StateParam(PENDING[1]),
               p2=beam.DoFn.StateParam(PENDING[2]), p3=beam.DoFn.StateParam(PENDING[3]),
               p4=beam.DoFn.StateParam(PENDING[4]), p5=beam.DoFn.StateParam(PENDING[5]),
               p6=beam.DoFn.StateParam(PENDING[6]), p7=beam.DoFn.StateParam(PENDING[7]),
               states=beam.DoFn.StateParam(_SensorScoresFn.STATES),
               expire=beam.DoFn.TimerParam(_SensorScoresFn.EXPIRE)):
    now_ms = fired_at.micros // 1000
    pending = (p0, p1, p2, p3, p4, p5, p6, p7)[now_ms // SCORE_STEP_MS % SCORE_BAGS]
    waiting = sorted((row for batch in pending.read() for row in batch.rows), key=_row_ts_ms)
    due = [row for row in waiting if _row_ts_ms(row) <= now_ms]
    if not due:
      return
    rest = waiting[len(due):]
    pending.clear()
    if rest:
      pending.add(JudgedBatch(tuple(rest)))
    score_states = states.read() or {}
    newly_held = not score_states
    yield from _score_rows(self._scorer, self._rule, self._alerts, due, score_states)
    states.write(score_states)
    if newly_held:
      self._arm_expiry(score_states, expire)


def _score_rows(scorer: TailScorer, rule: Rule, alerts_counter, rows,
                score_states: Dict[str, TailState]):
  """Scores judged rows in the order given, updating score_states; yields the alerts."""
  for row in rows:
    (sensor_id, value, ts_ms, _), judged_by, window, _ = row
    before = score_states.get(sensor_id)
    if type(before) is not TailState:  # new, or an older detector's state from a savepoint
      before = scorer.new_state()
    score_state, score = scorer.update(before, ts_ms, value, judged_by)
    score_states[sensor_id] = score_state
    if score > rule.threshold and window is not None:
      alerts_counter.inc()
      judged = judged_of_row(row)
      verdict = Verdict(abs(value - judged.window.stats.mean), score, True)
      yield make_alert(judged.reading, judged.window, judged.seasonal, verdict, rule,
                       int(time.time() * 1000),
                       scorer.explain(before, value, judged_by, rule.threshold))


class ScoreOnArrivalFn(_SensorScoresFn):
  """Per sensor, in the order readings arrive (--score_order=arrival): deviation ->
  likelihood score -> alert, at once.

  Input as ScoreReadingsFn's. A batch's rows are scored sorted by event time, batches as
  they come: no reading waits for the watermark, which on Flink trails the readings by
  a bundle per step of the job (the watermark order cost about a second of alert latency
  at 5,000 readings/s). The scores equal ScoreReadingsFn's whenever each sensor's readings
  arrive here in event-time order. From one Kafka partition per sensor they do as long as
  the steps on the way keep a sensor's readings in order (FIFO channels, which Flink's
  are; not checked for every parallelism). A reading that arrives
  after later ones of its sensor is scored when it arrives, as late data is there.

  A shard's {sensor_id: TailState} is read once per bundle: in a bundle only this DoFn
  changes it (as in the late gate; an expiry makes it read again), and every state read is
  a request to the runner.
  """

  def __init__(self, rule: Rule):
    super().__init__(rule)
    self._known = {}

  def start_bundle(self):
    self._known = {}

  def _forget_cached_states(self) -> None:
    self._known = {}

  def process(self, element, states=beam.DoFn.StateParam(_SensorScoresFn.STATES),
              expire=beam.DoFn.TimerParam(_SensorScoresFn.EXPIRE)):
    shard, batch = element
    score_states = self._known.get(shard)
    if score_states is None:
      score_states = self._known[shard] = states.read() or {}
    newly_held = not score_states
    yield from _score_rows(self._scorer, self._rule, self._alerts,
                           sorted(batch.rows, key=_row_ts_ms), score_states)
    states.write(score_states)
    if newly_held:
      self._arm_expiry(score_states, expire)


def _rows_by_step(rows: Tuple[tuple, ...]) -> Dict[int, tuple]:
  """{step: the judged rows in it} for the scorer's steps: step k is the event time
  ((k - 1) x SCORE_STEP_MS, k x SCORE_STEP_MS], so a step's timer, at its end, passes
  every reading in it."""
  by_step: Dict[int, list] = {}
  for row in rows:
    by_step.setdefault(-(-row[0][2] // SCORE_STEP_MS), []).append(row)
  return {step: tuple(step_rows) for step, step_rows in by_step.items()}
