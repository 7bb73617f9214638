"""Readings travel through the detector in batches, one element per shard of sensors.

Why: on Flink every element that leaves a Python step crosses the Fn API to the runner and
back, and a keyed or side-input step keeps it in the runner's state on the way. Per reading
that cost several times what the detection itself costs (a profile at 1,500 readings/s put
most of the Python worker's time in Beam's per-element path: decoding, windowing, DoFn
invocation, encoding). So the readings of one bundle are grouped by shard as they are
parsed (ShardBatcher, in transforms/parse.py's ParseReadings) and stay grouped: the late
gate, the per-period statistics, the judge and the scorer each take one element per shard
and slot, not one per reading.

A shard is a stable hash of the sensor id (zlib.crc32, the same in every process, unlike
hash()); the gate and the scorer are keyed by it, so both see every reading of a sensor.
"""

import pickle
import zlib
from typing import Dict, NamedTuple, Tuple

from apache_beam import coders
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from transforms.records import Reading

SHARDS = 16


def shard_of(sensor_id: str) -> int:
  """The shard of a sensor: the key of the late gate and of the scorer."""
  return zlib.crc32(sensor_id.encode('utf-8')) % SHARDS


class ReadingBatch(NamedTuple):
  """Readings of one shard that travel as one element."""
  readings: Tuple[Reading, ...]


class ReadingBatchCoder(coders.Coder):
  """ReadingBatch <-> its readings as plain tuples, pickled in one call (a NamedTuple
  pickles through Python-level __reduce_ex__, several times slower; see records.py)."""

  def encode(self, batch: ReadingBatch) -> bytes:
    return pickle.dumps(tuple(map(tuple, batch.readings)), pickle.HIGHEST_PROTOCOL)

  def decode(self, encoded: bytes) -> ReadingBatch:
    return ReadingBatch(tuple(map(Reading._make, pickle.loads(encoded))))

  def is_deterministic(self) -> bool:
    return False  # readings carry an `extra` dict; batches are never keys

  def to_type_hint(self):
    return ReadingBatch


coders.registry.register_coder(ReadingBatch, ReadingBatchCoder)


class ShardBatcher:
  """The open batches of one bundle: readings -> one (shard, ReadingBatch) per shard and
  window, emitted when the bundle finishes (flush), each stamped with the event time of its
  earliest reading: never later than any reading in it, so a batch is late only if one of
  its readings is, and the runner holds the watermark until the bundle has finished."""

  def __init__(self):
    self._open: Dict[tuple, list] = {}  # (window, shard) -> [earliest ts_ms, readings]

  def add(self, reading: Reading, win) -> None:
    key = (win, shard_of(reading.sensor_id))
    batch = self._open.get(key)
    if batch is None:
      self._open[key] = [reading.ts_ms, [reading]]
    else:
      batch[1].append(reading)
      if reading.ts_ms < batch[0]:
        batch[0] = reading.ts_ms

  def flush(self):
    """WindowedValues of (shard, ReadingBatch), one per open batch; none are open after."""
    for (win, shard), (earliest_ms, readings) in self._open.items():
      yield WindowedValue((shard, ReadingBatch(tuple(readings))),
                          Timestamp(micros=earliest_ms * 1000), [win])
    self._open = {}


def slot_start_ms(ts_ms, period_ms: int, slot_offset_ms: int = 0):
  """The start of the slot of period_ms holding ts_ms, slots starting at slot_offset_ms
  within a period (ints or numpy arrays)."""
  return ts_ms - (ts_ms - slot_offset_ms) % period_ms


def batches_by_slot(readings, period_ms: int, slot_offset_ms: int = 0) -> Dict[int, list]:
  """{start ms: readings, in their order} for slots of period_ms, split where the windows'
  periods start too when the slots are shifted (slot_offset_ms, a baseline lag): each
  batch then lies in one statistics period and one slot, so both windowings, by its
  timestamp (the start), give it the windows that each of its readings would get."""
  slots: Dict[int, list] = {}
  for reading in readings:
    ts_ms = reading.ts_ms
    start_ms = max(slot_start_ms(ts_ms, period_ms), slot_start_ms(ts_ms, period_ms, slot_offset_ms))
    slots.setdefault(start_ms, []).append(reading)
  return slots

