"""Sliding-window statistics per sensor, and the per-slot baseline side input built from them.

Time is cut into slots of `period` seconds. The sliding window [e - size, e)
closes at e; for a reading in slot [s, s + period):
  trailing baseline   = the window ending at s          (excludes the reading)
  containing baseline = the window ending at s + period (includes the reading;
                        the original Java job's numbers)

The side input holds ONE element per slot: a dict {sensor_id: stats} of every
sensor's window statistics. It is made by a CombineGlobally over all sensors
in a FixedWindows(period) window with the default trigger and no allowed
lateness, so it fires exactly once, when the watermark has passed the end of
the statistics window, i.e. after every sensor's statistics for that window
have been combined. A runner that releases a main-input element as soon as
its side-input window holds any data (the Flink runner does) can therefore
never see a partial baseline: the first and only data in that window is the
complete dict. Late statistics updates still reach the 'window_stats' output
but do not change a baseline that readings may already have been judged by.
"""

from typing import Any, Dict, NamedTuple

import apache_beam as beam
from apache_beam.transforms import trigger, window
from apache_beam.transforms.window import TimestampedValue

from transforms.records import iso_ms
from transforms.stats import WindowStats, WindowStatsFn

TRAILING = 'trailing'
CONTAINING = 'containing'
BASELINES = (TRAILING, CONTAINING)


class SensorWindowStats(NamedTuple):
  """One sensor's statistics in one sliding window [start_ms, end_ms)."""
  sensor_id: str
  start_ms: int
  end_ms: int
  stats: WindowStats
  pane: str  # ON_TIME, LATE or EARLY: late readings update a window's stats

  def to_json_dict(self) -> Dict[str, Any]:
    s = self.stats
    return {
        'sensor_id': self.sensor_id,
        'window_start': iso_ms(self.start_ms),
        'window_end': iso_ms(self.end_ms),
        'count': s.count,
        'mean': s.mean,
        'variance': s.variance,
        'stddev': s.stddev,
        'min': s.min,
        'max': s.max,
        'pane': self.pane,
    }


def _window_ms(win) -> tuple:
  return win.start.micros // 1000, win.end.micros // 1000


class _AttachWindowFn(beam.DoFn):

  def process(self, kv, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
    sensor_id, stats = kv
    start_ms, end_ms = _window_ms(win)
    timing = {0: 'EARLY', 1: 'ON_TIME', 2: 'LATE'}.get(pane.timing, 'UNKNOWN')
    yield SensorWindowStats(sensor_id, start_ms, end_ms, stats, timing)


class SlidingWindowStats(beam.PTransform):
  """Readings -> SensorWindowStats per sensor per sliding window (with late updates)."""

  def __init__(self, size_s: float, period_s: float, allowed_lateness_s: float):
    super().__init__()
    self._size_s = size_s
    self._period_s = period_s
    self._lateness_s = allowed_lateness_s

  def expand(self, readings):
    return (
        readings
        | 'SlidingWindows' >> beam.WindowInto(
            window.SlidingWindows(self._size_s, self._period_s),
            trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
            accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
            allowed_lateness=self._lateness_s)
        | 'KeyBySensor' >> beam.Map(lambda r: (r.sensor_id, r.value))
        | 'CombinePerKey' >> beam.CombinePerKey(WindowStatsFn())
        | 'AttachWindow' >> beam.ParDo(_AttachWindowFn()))


class _ToDictFn(beam.CombineFn):
  """All sensors' stats of one window -> {sensor_id: SensorWindowStats}."""

  def create_accumulator(self):
    return {}

  def add_input(self, acc, item):
    acc[item.sensor_id] = item
    return acc

  def merge_accumulators(self, accumulators):
    merged = {}
    for acc in accumulators:
      merged.update(acc)
    return merged

  def extract_output(self, acc):
    return acc


class _ToJudgedSlotFn(beam.DoFn):
  """Places a window's baseline dict in the slot whose readings it judges."""

  def __init__(self, baseline: str):
    self._baseline = baseline

  def process(self, baselines, win=beam.DoFn.WindowParam):
    # `win` is [end - period, end) for the statistics window ending at `end`:
    # the containing baseline of that slot, the trailing baseline of the next.
    if self._baseline == TRAILING:
      yield TimestampedValue(baselines, win.end)
    else:
      yield TimestampedValue(baselines, win.start)


class BaselinesPerSlot(beam.PTransform):
  """SensorWindowStats -> one {sensor_id: stats} dict per slot, windowed FixedWindows(period)."""

  def __init__(self, baseline: str, period_s: float, allowed_lateness_s: float):
    super().__init__()
    if baseline not in BASELINES:
      raise ValueError(f'baseline must be one of {BASELINES}')
    self._baseline = baseline
    self._period_s = period_s
    self._lateness_s = allowed_lateness_s

  def expand(self, window_stats):
    return (
        window_stats
        | 'OnTimeOnly' >> beam.Filter(lambda s: s.pane != 'LATE')
        # Statistics carry their window's max timestamp (end - 1 us), so this
        # puts the window ending at e into [e - period, e).
        | 'WindowEndSlots' >> beam.WindowInto(window.FixedWindows(self._period_s))
        | 'AllSensorsOfWindow' >> beam.CombineGlobally(_ToDictFn()).without_defaults()
        | 'ToJudgedSlot' >> beam.ParDo(_ToJudgedSlotFn(self._baseline))
        # Kept (not garbage-collected) as long as late readings may still need it.
        | 'JudgedSlots' >> beam.WindowInto(
            window.FixedWindows(self._period_s),
            allowed_lateness=self._lateness_s))
