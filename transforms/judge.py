"""Judges every reading once against its sensor's baseline (the side input) and builds alerts."""

import hashlib
import math
import time
from typing import Any, Dict, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.baseline import SensorWindowStats
from transforms.parse import METRICS_NAMESPACE
from transforms.records import Reading, iso_ms
from transforms.rules import Rule, Verdict


def alert_id(reading: Reading) -> str:
  """Stable across retries and replays, so consumers can drop duplicate alerts."""
  key = f'{reading.sensor_id}\x1f{reading.ts_ms}\x1f{reading.value!r}'
  return hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]


def _finite_or_none(x: float) -> Optional[float]:
  return x if math.isfinite(x) else None


def make_alert(reading: Reading, baseline: SensorWindowStats, verdict: Verdict,
               rule: Rule, detected_at_ms: int) -> Dict[str, Any]:
  alert = {
      'alert_id': alert_id(reading),
      'sensor_id': reading.sensor_id,
      'ts': iso_ms(reading.ts_ms),
      'value': reading.value,
      'window_start': iso_ms(baseline.start_ms),
      'window_end': iso_ms(baseline.end_ms),
      'window_mean': baseline.stats.mean,
      'window_stddev': baseline.stats.stddev,
      'window_count': baseline.stats.count,
      'deviation': verdict.deviation,
      'score': _finite_or_none(verdict.score),
      'rule': rule.name,
      'threshold': rule.threshold,
      'detected_at': iso_ms(detected_at_ms),
  }
  if reading.extra:
    alert['reading'] = reading.extra
  return alert


class JudgeReadingsFn(beam.DoFn):
  """Main input: readings in FixedWindows(period); side input: that slot's baselines."""

  def __init__(self, rule: Rule):
    self._rule = rule
    self._judged = Metrics.counter(METRICS_NAMESPACE, 'judged_readings')
    self._alerts = Metrics.counter(METRICS_NAMESPACE, 'alerts')
    self._no_baseline = Metrics.counter(METRICS_NAMESPACE, 'no_baseline')
    self._small_baseline = Metrics.counter(METRICS_NAMESPACE, 'baseline_below_min_count')

  def process(self, reading, baselines):
    """reading: a Reading; baselines: {sensor_id: SensorWindowStats} of its slot."""
    self._judged.inc()
    baseline = baselines.get(reading.sensor_id) if baselines else None
    verdict = self._rule.judge(reading.value, baseline.stats) if baseline else None
    if baseline is None:
      self._no_baseline.inc()
    elif verdict is None:
      self._small_baseline.inc()
    elif verdict.is_anomaly:
      self._alerts.inc()
      yield make_alert(reading, baseline, verdict, self._rule, int(time.time() * 1000))
