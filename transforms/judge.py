"""Judges every reading once against its sensor's baselines (the side input) and builds alerts."""

import hashlib
import math
import time
from typing import Any, Dict, NamedTuple, Optional

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
    BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer)

from transforms.baseline import SensorBaseline, SensorWindowStats
from transforms.detectors import ScoreState
from transforms.parse import METRICS_NAMESPACE
from transforms.records import Reading, iso_ms
from transforms.rules import Rule, Verdict


def alert_id(reading: Reading) -> str:
  """Stable across retries and replays, so consumers can drop duplicate alerts."""
  key = f'{reading.sensor_id}\x1f{reading.ts_ms}\x1f{reading.value!r}'
  return hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]


def _finite_or_none(x: float) -> Optional[float]:
  return x if math.isfinite(x) else None


class Judged(NamedTuple):
  """A reading with its baseline and deviation, on its way to the per-sensor scorer."""
  reading: Reading
  baseline: Optional[SensorBaseline]
  deviation: float  # standard deviations from the nearer baseline


def _window_of(baseline: SensorBaseline) -> SensorWindowStats:
  """The window an alert reports: the trailing windows merged, else the seasonal one."""
  if baseline.trailing:
    return SensorWindowStats(baseline.sensor_id, baseline.start_ms, baseline.end_ms,
                             baseline.stats, 'ON_TIME')
  return baseline.seasonal


def make_alert(reading: Reading, baseline: SensorBaseline, verdict: Verdict,
               rule: Rule, detected_at_ms: int) -> Dict[str, Any]:
  win = _window_of(baseline)
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
  if baseline.seasonal is not None:
    alert['seasonal_mean'] = baseline.seasonal.stats.mean
    alert['seasonal_stddev'] = baseline.seasonal.stats.stddev
  if reading.extra:
    alert['reading'] = reading.extra
  return alert


def merge_dicts(dicts) -> dict:
  merged = {}
  for d in dicts:
    merged.update(d)
  return merged


class JudgeReadingsFn(beam.DoFn):
  """Main input: readings in FixedWindows(period); side input: that slot's baselines.

  Stateless rules alert here. For the likelihood rule every reading leaves as
  (sensor_id, Judged) for ScoreReadingsFn, which needs the sensor's history.
  """

  def __init__(self, rule: Rule):
    self._rule = rule
    self._judged = Metrics.counter(METRICS_NAMESPACE, 'judged_readings')
    self._alerts = Metrics.counter(METRICS_NAMESPACE, 'alerts')
    self._no_baseline = Metrics.counter(METRICS_NAMESPACE, 'no_baseline')
    self._small_baseline = Metrics.counter(METRICS_NAMESPACE, 'baseline_below_min_count')

  def process(self, reading, slot_baselines):
    """reading: a Reading; slot_baselines: [{sensor_id: SensorBaseline}] of its slot (one
    dict, or copies of it; none where no baseline exists)."""
    baselines = slot_baselines[0] if len(slot_baselines) == 1 else merge_dicts(slot_baselines)
    self._judged.inc()
    baseline = baselines.get(reading.sensor_id) if baselines else None
    if self._rule.is_stateful:
      if baseline is None:
        self._no_baseline.inc()
      trailing, seasonal = (baseline.stats, baseline.seasonal_stats) if baseline else (None, None)
      yield reading.sensor_id, Judged(
          reading, baseline, self._rule.deviation(reading.value, trailing, seasonal))
    else:
      yield from self._judge_stateless(reading, baseline)

  def _judge_stateless(self, reading, baseline):
    stats = baseline.stats if baseline else None
    verdict = self._rule.judge(reading.value, stats) if stats else None
    if stats is None:
      self._no_baseline.inc()
    elif verdict is None:
      self._small_baseline.inc()
    elif verdict.is_anomaly:
      self._alerts.inc()
      yield make_alert(reading, baseline, verdict, self._rule, int(time.time() * 1000))


class ScoreReadingsFn(beam.DoFn):
  """Per sensor, in event-time order: deviation -> likelihood score -> alert above the threshold.

  Input: (sensor_id, Judged) in the global window. Readings wait in a bag until
  the watermark passes them (an event-time timer), then are scored sorted by
  event time, so the score does not depend on the order the runner delivers
  them in. A reading that arrives after later ones were scored (late data
  within the allowed lateness) is scored when it arrives.
  """
  PENDING = BagStateSpec('pending', PickleCoder())
  STATE = ReadModifyWriteStateSpec('score_state', PickleCoder())
  FLUSH = TimerSpec('flush', TimeDomain.WATERMARK)

  def __init__(self, rule: Rule):
    self._rule = rule
    self._scorer = rule.scorer()
    self._alerts = Metrics.counter(METRICS_NAMESPACE, 'alerts')

  def process(self, element, pending=beam.DoFn.StateParam(PENDING),
              flush=beam.DoFn.TimerParam(FLUSH)):
    _, judged = element
    pending.add(judged)
    flush.set(judged.reading.ts_ms / 1000.0)

  @on_timer(FLUSH)
  def on_flush(self, fired_at=beam.DoFn.TimestampParam,
               pending=beam.DoFn.StateParam(PENDING),
               state=beam.DoFn.StateParam(STATE),
               flush=beam.DoFn.TimerParam(FLUSH)):
    now_ms = fired_at.micros // 1000
    waiting = sorted(pending.read(), key=lambda j: j.reading.ts_ms)
    due = [j for j in waiting if j.reading.ts_ms <= now_ms]
    rest = waiting[len(due):]
    pending.clear()
    for judged in rest:
      pending.add(judged)
    if rest:
      flush.set(rest[0].reading.ts_ms / 1000.0)
    score_state = state.read() or ScoreState()
    for judged in due:
      reading = judged.reading
      score_state, score = self._scorer.update(
          score_state, reading.ts_ms, reading.value, judged.deviation)
      if score > self._rule.threshold and judged.baseline is not None:
        self._alerts.inc()
        stats = _window_of(judged.baseline).stats
        verdict = Verdict(abs(reading.value - stats.mean), score, True)
        yield make_alert(reading, judged.baseline, verdict, self._rule, int(time.time() * 1000))
    state.write(score_state)
