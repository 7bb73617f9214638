"""DetectAnomalies: readings in, alerts, window statistics and late readings out.

    readings ─ GateLateReadings ─┬─ late ─────────────────────────────────────> late
                                 └─ on time ─┬─ SlidingWindowStats ─┬───────────> window_stats
                                             │                      └ BaselinesPerSlot ┐ (side input)
                                             └─ FixedWindows(period) ─ Judge <─────────┘ ──> alerts
"""

import apache_beam as beam
from apache_beam.transforms import window

from transforms.baseline import BaselinesPerSlot, SlidingWindowStats
from transforms.judge import JudgeReadingsFn
from transforms.late_gate import GateLateReadings
from transforms.rules import Rule


class DetectAnomalies(beam.PTransform):
  """Readings (timestamped at event time) -> {'alerts', 'window_stats', 'late'}."""

  def __init__(self, rule: Rule, window_size_s: float, window_period_s: float,
               allowed_lateness_s: float, baseline: str):
    super().__init__()
    self._rule = rule
    self._size_s = window_size_s
    self._period_s = window_period_s
    self._lateness_s = allowed_lateness_s
    # The gate's clock can lag the watermark by about one period (see late_gate).
    self._window_lateness_s = allowed_lateness_s + window_period_s
    self._baseline = baseline

  def expand(self, readings):
    gated = readings | 'GateLateReadings' >> GateLateReadings(
        self._lateness_s, self._period_s,
        horizon_s=self._lateness_s + self._size_s + self._period_s)
    on_time = gated['on_time']
    window_stats = on_time | 'SlidingWindowStats' >> SlidingWindowStats(
        self._size_s, self._period_s, self._window_lateness_s)
    baselines = window_stats | 'BaselinesPerSlot' >> BaselinesPerSlot(
        self._baseline, self._period_s, self._window_lateness_s)
    alerts = (
        on_time
        | 'Slots' >> beam.WindowInto(
            window.FixedWindows(self._period_s),
            allowed_lateness=self._window_lateness_s)
        | 'Judge' >> beam.ParDo(
            JudgeReadingsFn(self._rule),
            baselines=beam.pvalue.AsSingleton(baselines, default_value={})))
    return {'alerts': alerts, 'window_stats': window_stats, 'late': gated['late']}
