"""Sliding-window statistics per sensor, and the per-slot baseline side input built from them.

Time is cut into slots of `period` seconds (aligned with the windows' ends unless a
baseline lag shifts them, see BaselineShape). The sliding window [e - size, e)
closes at e; for a reading in slot [s, s + period), with no lag:
  trailing baseline   = the window ending at s          (excludes the reading)
  containing baseline = the window ending at s + period (includes the reading;
                        the original Java job's numbers)

With `trailing_windows` k > 1 the trailing baseline is the k consecutive
windows ending at s, s - size, ... merged (k x size of history, from one
window scale), and with a `season` a second baseline is added: the window
centred on the same slot one season earlier (see BaselineShape).

The side input holds ONE element per slot: a dict {sensor_id: SensorBaseline}
of every sensor's baselines. Each window's statistics are first copied to the
slots they judge; the dict is made by a CombineGlobally over all sensors in a
FixedWindows(period) window with the default trigger and no allowed
lateness, so it fires exactly once, when the watermark has passed the end of
the statistics window, i.e. after every sensor's statistics for that window
have been combined. A runner that releases a main-input element as soon as
its side-input window holds any data (the Flink runner does) can therefore
never see a partial baseline: the first and only data in that window is the
complete dict. Late statistics updates still reach the 'window_stats' output
but do not change a baseline that readings may already have been judged by.

The slot dicts are windowed with an early pane per element ('JudgedSlots'): the
portable Flink runner groups a side input by its windowing before the judging
step sees it, and with the default trigger that grouping fired only when the
watermark passed the END of the slot, so every reading waited for its slot to
be over (measured: 10 s of a 10 s slot, most of the alert latency). The first
pane already holds the one complete dict; ACCUMULATING keeps it in the later
panes, so no pane replaces it with an empty one.

A slot that no statistics window judges (the first slot of a stream, or the one
after a window in which every sensor was silent) gets no dict from the combine,
and Flink would hold its readings back, and with them the watermark of all that
follows, forever. So readings mark their slot, and ReleaseBaselinesFn releases
an empty dict for a marked slot once it is sure no real one is coming.
"""

from typing import Any, Dict, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.coders import PickleCoder
from apache_beam.transforms import trigger, window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (ReadModifyWriteStateSpec, TimerSpec,
                                              on_timer)
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from transforms.batch import ReadingBatch, slot_start_ms
from transforms.parse import METRICS_NAMESPACE
from transforms.records import iso_ms
from transforms.stats import (MergedSensorPartsFn, MergedStatsFn, StatsAccumulator, WindowStats,
                             accumulate, merge_window_stats)

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
  """Adds the window to a sensor's statistics; drops (and counts) empty panes.

  An empty pane carries no statistics (its mean is NaN); it was seen on the portable
  Flink runner for a sliding window that had no readings of the sensor.
  """

  def __init__(self):
    self._empty = Metrics.counter(METRICS_NAMESPACE, 'empty_window_panes')

  def process(self, kv, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
    sensor_id, stats = kv
    if stats.count == 0:
      self._empty.inc()
      return
    start_ms, end_ms = _window_ms(win)
    timing = {0: 'EARLY', 1: 'ON_TIME', 2: 'LATE'}.get(pane.timing, 'UNKNOWN')
    yield SensorWindowStats(sensor_id, start_ms, end_ms, stats, timing)


def _sensor_parts(element: Tuple[int, ReadingBatch]) -> Tuple[int, Dict[str, StatsAccumulator]]:
  """(shard, ReadingBatch) -> (shard, {sensor_id: StatsAccumulator of its values in the batch})."""
  shard, batch = element
  values: Dict[str, list] = {}
  for reading in batch.readings:
    values.setdefault(reading.sensor_id, []).append(reading.value)
  return shard, {sensor_id: accumulate(sensor_values)
                 for sensor_id, sensor_values in values.items()}


def _per_sensor(element: Tuple[int, Dict[str, StatsAccumulator]]):
  yield from element[1].items()


# AfterCount(1) twice under an AfterAll (Java's AfterAll wants two): the same firings as
# AfterCount(1), but Beam's portable runner lifts no combine under it (lift_combiners in
# its translations knows only simpler triggers). Lifted, the sliding windows'
# CombinePerKey turned each sensor's part of a period into size / period accumulators in
# the Python worker (6,000 elements for 1,000 sensors, all at the period's end); unlifted,
# the part goes to the runner once, with its windows. Lifting saves nothing there: a
# bundle never holds two parts of one sensor and window.
_UNLIFTED_AFTER_EACH_ELEMENT = trigger.AfterAll(trigger.AfterCount(1), trigger.AfterCount(1))


class SlidingWindowStats(beam.PTransform):
  """(shard, ReadingBatch) of one slot each -> SensorWindowStats per sensor per sliding
  window (with late updates).

  In two steps, so that a reading is grouped once, not once per sliding window it is in
  (size / period times: 6 with 60 s windows every 10 s). The runner's grouping with
  triggers costs per element and window (state, timers and a watermark hold each);
  measured on Flink, the sliding-window GroupByKey was more than half of the job server's
  CPU. First each sensor's readings are combined per period ('PeriodParts', fixed
  windows; a batch's readings of one sensor are combined before they leave the batch),
  then those partial statistics are merged per sliding window, each part being in size /
  period windows but there being one part per sensor and period, not one per reading.
  The per-period step is keyed by shard, a batch's parts travelling as one
  {sensor_id: part} element: keyed by sensor, each batch became one element per sensor
  (1,000 per bundle at 5,000 readings/s, each paying Beam's per-element cost in the
  Python worker), and at each period's end the grouping handed back every one of them at
  once while the new period's readings waited.
  Counts, minimum and maximum are exact; mean and variance are merged with Chan's
  formula, as when a runner lifts the combine, so they can differ from a one-pass
  computation in the last bits.

  Late readings: the parts fire once more per late batch (AfterCount(1)) with only what
  is new since their last firing (DISCARDING), and the sliding windows accumulate those
  like the readings themselves, so a late reading updates every sliding window it is in
  that is still within the allowed lateness (a LATE pane each). A part accepts a reading
  as long as the last sliding window it belongs to does: size - period more lateness.
  """

  def __init__(self, size_s: float, period_s: float, allowed_lateness_s: float):
    super().__init__()
    self._size_s = size_s
    self._period_s = period_s
    self._lateness_s = allowed_lateness_s

  def expand(self, batches):
    return (
        batches
        | 'PeriodParts' >> beam.WindowInto(
            window.FixedWindows(self._period_s),
            trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
            allowed_lateness=self._lateness_s + self._size_s - self._period_s)
        | 'PartsOfShard' >> beam.Map(_sensor_parts).with_output_types(
            Tuple[int, Dict[str, StatsAccumulator]])
        | 'CombinePerPeriod' >> beam.CombinePerKey(MergedSensorPartsFn())
        | 'PartPerSensor' >> beam.FlatMap(_per_sensor).with_output_types(
            Tuple[str, StatsAccumulator])
        | 'SlidingWindows' >> beam.WindowInto(
            window.SlidingWindows(self._size_s, self._period_s),
            trigger=trigger.AfterWatermark(late=_UNLIFTED_AFTER_EACH_ELEMENT),
            accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
            allowed_lateness=self._lateness_s)
        | 'CombinePerKey' >> beam.CombinePerKey(MergedStatsFn())
        | 'AttachWindow' >> beam.ParDo(_AttachWindowFn()))


TRAILING_ROLE = 'trailing'
SEASONAL_ROLE = 'seasonal'


class BaselineShape(NamedTuple):
  """Which sliding windows judge a slot, all in milliseconds.

  A slot is judged by the history up to its release time R: its start (trailing
  baseline) or its end (containing baseline), `lag_ms` earlier. Its baselines are
  the `trailing_windows` consecutive windows ending at R, R - size, ... (together
  the last trailing_windows x size of history before R), and, with a season, the
  window centred on R - season: [R - season + half - size, R - season + half),
  half being size / 2 rounded down to whole periods.

  A slot's baselines exist once the watermark has passed R and the statistics have
  travelled through their groupings. With no lag the first readings of a slot wait
  for that, and the judging step holds back the watermark of every reading while
  they wait; a lag longer than that travel makes the baselines ready before the slot's
  first reading comes.

  A lag that is not a whole number of periods shifts the slots, not the windows: slots
  start at lag_ms modulo the period (slot_offset_ms), so R stays a window's end. Either
  way a reading is judged by the newest windows that ended at least lag_ms before it
  (trailing baseline): with a lag of 3 s and 10 s periods, readings from 3 s to 13 s
  after a window's end are judged by it. A lag shorter than a period thus costs
  freshness only to the readings of the first lag_ms after each window end.
  """
  size_ms: int
  period_ms: int
  baseline: str = TRAILING
  trailing_windows: int = 1
  season_ms: int = 0
  lag_ms: int = 0

  @property
  def half_ms(self) -> int:
    return (self.size_ms // 2 // self.period_ms) * self.period_ms

  @property
  def slot_offset_ms(self) -> int:
    """Where the slots start within a period: a lag that is not a whole number of periods
    moves them, the windows staying where they are (see slot_start_ms)."""
    return self.lag_ms % self.period_ms

  def slot_start_ms(self, ts_ms):
    """The start of the slot of a reading at ts_ms (ints or numpy arrays)."""
    return slot_start_ms(ts_ms, self.period_ms, self.slot_offset_ms)

  @property
  def _slot_to_release_ms(self) -> int:
    return (0 if self.baseline == TRAILING else self.period_ms) - self.lag_ms

  def release_ms(self, slot_start_ms: int) -> int:
    return slot_start_ms + self._slot_to_release_ms

  def slot_ms(self, release_ms: int) -> int:
    """The start of the slot released at release_ms (release_ms's inverse)."""
    return release_ms - self._slot_to_release_ms

  def roles_of_window(self, end_ms: int):
    """(role, release time R of the slot it judges) for the window ending at end_ms."""
    for j in range(self.trailing_windows):
      yield (TRAILING_ROLE, j), end_ms + j * self.size_ms
    if self.season_ms:
      yield (SEASONAL_ROLE, 0), end_ms + self.season_ms - self.half_ms

  def trailing_range_ms(self, release_ms: int) -> Tuple[int, int]:
    return release_ms - self.trailing_windows * self.size_ms, release_ms

  def seasonal_range_ms(self, release_ms: int) -> Tuple[int, int]:
    end = release_ms - self.season_ms + self.half_ms
    return end - self.size_ms, end


class SensorBaseline(NamedTuple):
  """What one sensor's readings in one slot are judged against."""
  sensor_id: str
  trailing: Tuple[SensorWindowStats, ...]  # windows before the slot that had readings, oldest first
  seasonal: Optional[SensorWindowStats] = None

  @property
  def stats(self) -> Optional[WindowStats]:
    """The trailing windows' statistics merged (None without any)."""
    if len(self.trailing) == 1:
      return self.trailing[0].stats
    return merge_window_stats(w.stats for w in self.trailing) if self.trailing else None

  @property
  def seasonal_stats(self) -> Optional[WindowStats]:
    return self.seasonal.stats if self.seasonal else None

  @property
  def start_ms(self) -> int:
    return self.trailing[0].start_ms

  @property
  def end_ms(self) -> int:
    return self.trailing[-1].end_ms


class _ToReleaseSlotsFn(beam.DoFn):
  """Copies a window's statistics to the slot of every baseline it is part of.

  Each copy is timestamped just before the release time R of the slot it
  judges (never earlier than the window's own end), so FixedWindows(period)
  gathers into [R - period, R) all the statistics that one slot needs.
  """

  def __init__(self, shape: BaselineShape):
    self._shape = shape

  def process(self, stats: SensorWindowStats):
    for role, release_ms in self._shape.roles_of_window(stats.end_ms):
      yield TimestampedValue((role, stats), Timestamp(micros=release_ms * 1000 - 1))


class _ToBaselinesFn(beam.CombineFn):
  """(role, SensorWindowStats) of one release slot -> {sensor_id: SensorBaseline}."""

  def create_accumulator(self):
    return {}

  def add_input(self, acc, item):
    role, stats = item
    acc.setdefault(stats.sensor_id, {})[role] = stats
    return acc

  def merge_accumulators(self, accumulators):
    merged = {}
    for acc in accumulators:
      for sensor_id, roles in acc.items():
        merged.setdefault(sensor_id, {}).update(roles)
    return merged

  def extract_output(self, acc):
    out = {}
    for sensor_id, roles in acc.items():
      trailing = tuple(sorted(
          (s for (kind, _), s in roles.items() if kind == TRAILING_ROLE), key=lambda s: s.end_ms))
      out[sensor_id] = SensorBaseline(sensor_id, trailing, roles.get((SEASONAL_ROLE, 0)))
    return out


_ONE_KEY = ''  # the release tracker sees every slot, under one key


class _SlotMarkerFn(beam.DoFn):
  """Elements to be judged -> one marker (release time of the element's slot, from its
  timestamp) per slot and bundle."""

  def __init__(self, shape: BaselineShape):
    self._shape = shape

  def start_bundle(self):
    self._seen = set()

  def process(self, unused_element, timestamp=beam.DoFn.TimestampParam):
    release_ms = self._shape.release_ms(self._shape.slot_start_ms(timestamp.micros // 1000))
    if release_ms not in self._seen:
      self._seen.add(release_ms)
      yield _ONE_KEY, (release_ms, None)


def _keyed_by_release(baselines, win=beam.DoFn.WindowParam):
  # `win` is the release window [R - period, R).
  yield _ONE_KEY, (win.end.micros // 1000, baselines)


class ReleaseBaselinesFn(beam.DoFn):
  """Passes each slot's dict on, and an empty dict for a marked slot that gets none.

  Input, under one key: (R, dict) from the per-slot combine and (R, None) markers from
  readings, R being the slot's release time. A dict is passed on at once, stamped with the
  start of the slot it judges. A marker arms an event-time timer at R; the combine emits
  slot R's dict before the watermark passes R, so if none has come when the timer fires,
  none will, and an empty dict is released instead (late if the marker was late).
  """
  PENDING = ReadModifyWriteStateSpec('pending', PickleCoder())  # marked, not yet released
  RELEASED = ReadModifyWriteStateSpec('released', PickleCoder())  # recent released slots
  RELEASE = TimerSpec('release', TimeDomain.WATERMARK)

  def __init__(self, shape: BaselineShape, memory_ms: int):
    self._shape = shape
    self._memory_ms = memory_ms  # how long released slots are remembered
    self._empty = Metrics.counter(METRICS_NAMESPACE, 'slots_without_baselines')

  def _judged(self, release_ms: int, baselines: dict) -> TimestampedValue:
    return TimestampedValue(baselines, Timestamp(micros=self._shape.slot_ms(release_ms) * 1000))

  def process(self, element, pending=beam.DoFn.StateParam(PENDING),
              released=beam.DoFn.StateParam(RELEASED), timer=beam.DoFn.TimerParam(RELEASE)):
    release_ms, baselines = element[1]
    done = set(released.read() or ())
    if release_ms in done:
      return
    waiting = set(pending.read() or ())
    if baselines is not None:
      released.write(tuple(done | {release_ms}))
      waiting.discard(release_ms)
      pending.write(tuple(waiting))
      yield self._judged(release_ms, baselines)
    elif release_ms not in waiting:
      waiting.add(release_ms)
      pending.write(tuple(waiting))
      timer.set(Timestamp(micros=min(waiting) * 1000))

  @on_timer(RELEASE)
  def release(self, fired_at=beam.DoFn.TimestampParam,
              pending=beam.DoFn.StateParam(PENDING),
              released=beam.DoFn.StateParam(RELEASED),
              timer=beam.DoFn.TimerParam(RELEASE)):
    now_ms = fired_at.micros // 1000
    waiting = set(pending.read() or ())
    due = sorted(r for r in waiting if r <= now_ms)
    rest = waiting.difference(due)
    pending.write(tuple(rest))
    if rest:
      timer.set(Timestamp(micros=min(rest) * 1000))
    done = {r for r in (released.read() or ()) if r > now_ms - self._memory_ms}
    released.write(tuple(done | set(due)))
    for release_ms in due:
      self._empty.inc()
      yield self._judged(release_ms, {})


class BaselinesPerSlot(beam.PTransform):
  """(SensorWindowStats, what is to be judged: readings or batches, timestamped in their
  slot) -> one {sensor_id: SensorBaseline} dict per slot that has any, windowed
  FixedWindows(period); see the module docstring."""

  def __init__(self, shape: BaselineShape, allowed_lateness_s: float):
    super().__init__()
    if shape.baseline not in BASELINES:
      raise ValueError(f'baseline must be one of {BASELINES}')
    self._shape = shape
    self._lateness_s = allowed_lateness_s

  def expand(self, stats_and_to_judge):
    window_stats, to_judge = stats_and_to_judge
    shape = self._shape
    period_s = shape.period_ms / 1000.0
    per_slot = (
        window_stats
        | 'OnTimeOnly' >> beam.Filter(lambda s: s.pane != 'LATE')
        | 'ToReleaseSlots' >> beam.ParDo(_ToReleaseSlotsFn(shape))
        | 'ReleaseSlots' >> beam.WindowInto(window.FixedWindows(period_s))
        | 'AllSensorsOfSlot' >> beam.CombineGlobally(_ToBaselinesFn()).without_defaults()
        | 'KeyByRelease' >> beam.ParDo(_keyed_by_release)
        | 'InGlobalWindow' >> beam.WindowInto(window.GlobalWindows()))
    markers = to_judge | 'SlotMarkers' >> beam.ParDo(_SlotMarkerFn(shape))
    memory_ms = round(self._lateness_s * 1000) + shape.size_ms + 2 * shape.period_ms + shape.lag_ms
    return (
        (per_slot, markers)
        | 'WithMarkers' >> beam.Flatten()
        | 'ReleaseBaselines' >> beam.ParDo(ReleaseBaselinesFn(shape, memory_ms))
        # Kept (not garbage-collected) as long as late readings may still need it, and
        # available as soon as it arrives: an early pane (see the module docstring).
        | 'JudgedSlots' >> beam.WindowInto(
            window.FixedWindows(period_s, shape.slot_offset_ms / 1000.0),
            trigger=trigger.AfterWatermark(early=trigger.AfterCount(1)),
            accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
            allowed_lateness=self._lateness_s))
