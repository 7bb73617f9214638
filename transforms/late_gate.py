"""Routes readings that are too late to a late output instead of letting a GroupByKey drop them.

A Python DoFn cannot ask the runner for the watermark, and a GroupByKey drops
data behind `window end + allowed lateness` without telling anyone. So the gate
keeps its own lower bound of the watermark: an event-time timer per shard that
ticks at every window_period boundary while readings flow. When the tick at T
fires, the watermark is >= T. A reading with `ts + allowed_lateness < clock`
is therefore certainly later than allowed_lateness behind the watermark, and
leaves through the 'late' output, counted. The clock can lag the true
watermark by about one period, so the statistics windows downstream allow
`allowed_lateness + window_period` of lateness: whatever passes the gate is
still accepted by them.

A shard's clock ticks while readings flow and for a horizon (allowed
lateness + window size + period of event time) after its newest reading. A
straggler arriving at a shard that has been quiet for longer than that may
pass the gate with a stale clock; the statistics windows then drop it if it is
beyond their lateness (the runner counts such drops). With many sensors per
shard this needs a whole shard to fall silent.

Keyed by the shard of the sensor (transforms/batch.py), not by sensor: few timers, each
shard's clock stays fresh because some sensor of it is active, and readings come in batches
per shard. On-time readings leave as one batch per slot (window_period), stamped with the
slot's start, so every step downstream windows a batch as it would each of its readings.
"""

from typing import Tuple

import apache_beam as beam
from apache_beam.coders import BooleanCoder, TupleCoder, VarIntCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
    ReadModifyWriteStateSpec, TimerSpec, on_timer)
from apache_beam.transforms.window import TimestampedValue

from transforms.batch import ReadingBatch, batches_by_slot
from transforms.parse import METRICS_NAMESPACE

_NO_CLOCK = -(2**62)


class _LateGateFn(beam.DoFn):
  LATE = 'late'
  # (clock_ms, armed, newest_ms) of a shard in one cell: without the SDK's state cache (off,
  # runners/worker_pool.py says why) every state read is a blocking request to the runner,
  # and three cells took three per shard and bundle (48 round trips per bundle with 16
  # shards).
  GATE = ReadModifyWriteStateSpec(
      'gate', TupleCoder((VarIntCoder(), BooleanCoder(), VarIntCoder())))
  TICK = TimerSpec('tick', TimeDomain.WATERMARK)
  _FRESH = (_NO_CLOCK, False, _NO_CLOCK)

  def __init__(self, allowed_lateness_ms: int, period_ms: int, horizon_ms: int,
               slot_offset_ms: int = 0):
    self._lateness_ms = allowed_lateness_ms
    self._period_ms = period_ms
    self._horizon_ms = horizon_ms
    self._slot_offset_ms = slot_offset_ms
    self._late = Metrics.counter(METRICS_NAMESPACE, 'late_readings')
    self._known = {}

  def start_bundle(self):
    # shard -> [clock_ms, armed, newest_ms] as in its state, read once per bundle: in a
    # bundle only this DoFn changes a shard's state, so the first read of each is enough.
    self._known = {}

  def process(self, element, gate=beam.DoFn.StateParam(GATE),
              tick=beam.DoFn.TimerParam(TICK)):
    shard, batch = element
    known = self._known.get(shard)
    if known is None:
      known = self._known[shard] = list(gate.read() or self._FRESH)
    now_ms = known[0]
    on_time = []
    for reading in batch.readings:
      if reading.ts_ms + self._lateness_ms < now_ms:
        self._late.inc()
        yield beam.pvalue.TaggedOutput(
            self.LATE, TimestampedValue(reading, reading.ts_ms / 1000.0))
      else:
        on_time.append(reading)
    if not on_time:
      return
    for slot_ms, readings in batches_by_slot(
        on_time, self._period_ms, self._slot_offset_ms).items():
      yield TimestampedValue((shard, ReadingBatch(tuple(readings))), slot_ms / 1000.0)
    before = tuple(known)
    known[2] = max(known[2], max(r.ts_ms for r in on_time))
    if not known[1]:
      earliest_ms = min(r.ts_ms for r in on_time)
      tick.set(self._next_boundary_ms(max(now_ms, earliest_ms)) / 1000.0)
      known[1] = True
    if tuple(known) != before:
      gate.write(tuple(known))

  @on_timer(TICK)
  def on_tick(self, fired_at=beam.DoFn.TimestampParam, gate=beam.DoFn.StateParam(GATE),
              tick=beam.DoFn.TimerParam(TICK)):
    self._known = {}  # a tick changes its shard's clock and armed flag
    now_ms = fired_at.micros // 1000
    newest_ms = (gate.read() or self._FRESH)[2]
    # The next tick at the next boundary, but no earlier than allowed_lateness before the
    # newest reading: a shard whose first reading was years old would otherwise crawl
    # through those years one period at a time, holding back the watermark of everything
    # downstream (seen with fuzzed timestamps). A later tick is still a lower bound.
    next_ms = self._next_boundary_ms(max(now_ms, newest_ms - self._lateness_ms))
    # Keep ticking for a horizon past the newest reading, so a shard that
    # went quiet still knows the watermark when a late straggler arrives;
    # then stop, so a finished stream (watermark at +inf) ends the loop.
    armed = next_ms <= newest_ms + self._horizon_ms
    if armed:
      tick.set(next_ms / 1000.0)
    gate.write((now_ms, armed, newest_ms))

  def _next_boundary_ms(self, ts_ms: int) -> int:
    return (ts_ms // self._period_ms + 1) * self._period_ms


class GateLateReadings(beam.PTransform):
  """(shard, ReadingBatch) -> {'on_time': (shard, ReadingBatch) of one slot each, stamped
  with the slot's start; 'late': Readings later than allowed_lateness}. Slots start at
  slot_offset_s within the period (a baseline lag, transforms/baseline.py)."""

  def __init__(self, allowed_lateness_s: float, period_s: float, horizon_s: float,
               slot_offset_s: float = 0.0):
    super().__init__()
    self._slot_offset_ms = round(slot_offset_s * 1000)
    self._lateness_ms = round(allowed_lateness_s * 1000)
    self._period_ms = round(period_s * 1000)
    self._horizon_ms = round(horizon_s * 1000)

  def expand(self, batches):
    results = (
        batches
        | 'Gate' >> beam.ParDo(_LateGateFn(
            self._lateness_ms, self._period_ms, self._horizon_ms, self._slot_offset_ms))
        .with_input_types(Tuple[int, ReadingBatch])
        .with_output_types(Tuple[int, ReadingBatch])
        .with_outputs(_LateGateFn.LATE, main='on_time'))
    return {'on_time': results.on_time, 'late': results[_LateGateFn.LATE]}
