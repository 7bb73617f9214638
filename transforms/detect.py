"""DetectAnomalies: batches of readings in, alerts, window statistics and late readings out.

    batches ─ GateLateReadings ─┬─ late ─────────────────────────────────> late
                                └─ on time ─┬─ SlidingWindowStats ─┬───────> window_stats
                                            ├─ (slot markers) ─────┴ BaselinesPerSlot ┐
                                            └─ FixedWindows(period) ─ Judge <─────────┘ ─> alerts
                 (likelihood rule: Judge ─ GlobalWindows ─ ScorePerSensor ─> alerts)

Up to the alerts, an element is a batch: the readings of one shard of sensors (and, after
the gate, of one slot) from one bundle (transforms/batch.py), as ParseReadings(batched=True)
makes them.
"""

from typing import Any, Dict, Tuple

import apache_beam as beam
from apache_beam.transforms import window

from transforms.baseline import BaselineShape, BaselinesPerSlot, SlidingWindowStats
from transforms.judge import (ARRIVAL_ORDER, EVENT_TIME_ORDER, SCORE_ORDERS, JudgedBatch, JudgeReadingsFn,
                             ScoreOnArrivalFn, ScoreReadingsFn)
from transforms.late_gate import GateLateReadings
from transforms.rules import Rule


class DetectAnomalies(beam.PTransform):
  """(shard, ReadingBatch) pairs (transforms/batch.py) -> {'alerts', 'window_stats', 'late'}."""

  def __init__(self, rule: Rule, shape: BaselineShape, allowed_lateness_s: float,
               score_order: str = ARRIVAL_ORDER):
    super().__init__()
    if score_order not in SCORE_ORDERS:
      raise ValueError(f'score_order must be one of {SCORE_ORDERS}')
    self._score_fn = ScoreReadingsFn if score_order == EVENT_TIME_ORDER else ScoreOnArrivalFn
    self._rule = rule
    self._shape = shape
    self._size_s = shape.size_ms / 1000.0
    self._period_s = shape.period_ms / 1000.0
    self._lateness_s = allowed_lateness_s
    # The gate's clock can lag the watermark by about one period (see late_gate).
    self._window_lateness_s = allowed_lateness_s + self._period_s

  def expand(self, batches):
    gated = batches | 'GateLateReadings' >> GateLateReadings(
        self._lateness_s, self._period_s,
        horizon_s=self._lateness_s + self._size_s + self._period_s,
        slot_offset_s=self._shape.slot_offset_ms / 1000.0)
    on_time = gated['on_time']
    window_stats = on_time | 'SlidingWindowStats' >> SlidingWindowStats(
        self._size_s, self._period_s, self._window_lateness_s)
    baselines = (window_stats, on_time) | 'BaselinesPerSlot' >> BaselinesPerSlot(
        self._shape, self._window_lateness_s)
    judged = (
        on_time
        | 'Slots' >> beam.WindowInto(
            window.FixedWindows(self._period_s, self._shape.slot_offset_ms / 1000.0),
            allowed_lateness=self._window_lateness_s)
        | 'Judge' >> beam.ParDo(
            JudgeReadingsFn(self._rule),
            # One dict per slot by construction (BaselinesPerSlot); a list only because
            # the batch FnApiRunner repeats the outputs of a stage with timers.
            slot_baselines=beam.pvalue.AsList(baselines)).with_output_types(
                Tuple[int, JudgedBatch] if self._rule.is_stateful else Dict[str, Any]))
    alerts = judged
    if self._rule.is_stateful:
      alerts = (
          judged
          | 'SensorHistory' >> beam.WindowInto(window.GlobalWindows())
          | 'ScorePerSensor' >> beam.ParDo(self._score_fn(self._rule))
          .with_input_types(Tuple[int, JudgedBatch]))
    return {'alerts': alerts, 'window_stats': window_stats, 'late': gated['late']}
