"""Window statistics of a sensor's values: a mergeable, numerically stable CombineFn.

Welford's update for single values and Chan et al.'s pairwise formula for
merging partial accumulators, so combiner lifting (partial sums on many
workers, merged later) gives the same numbers as one pass, without the
catastrophic cancellation of sum-of-squares.
"""

import math
import pickle
from typing import Iterable, NamedTuple

import apache_beam as beam


class StatsAccumulator(NamedTuple):
  count: int
  mean: float
  m2: float  # sum of squared deviations from the mean
  min: float
  max: float


EMPTY = StatsAccumulator(0, 0.0, 0.0, math.inf, -math.inf)


class WindowStats(NamedTuple):
  """Summary of one sensor's values in one window; variance is the sample variance."""
  count: int
  mean: float
  variance: float
  min: float
  max: float

  @property
  def stddev(self) -> float:
    return math.sqrt(self.variance)


def merge_two(a: StatsAccumulator, b: StatsAccumulator) -> StatsAccumulator:
  if a.count == 0:
    return b
  if b.count == 0:
    return a
  count = a.count + b.count
  delta = b.mean - a.mean
  mean = a.mean + delta * b.count / count
  m2 = a.m2 + b.m2 + delta * delta * a.count * b.count / count
  return StatsAccumulator(count, mean, m2, min(a.min, b.min), max(a.max, b.max))


class WindowStatsFn(beam.CombineFn):
  """float values -> WindowStats(count, mean, variance, min, max)."""

  def create_accumulator(self) -> StatsAccumulator:
    return EMPTY

  def add_input(self, acc: StatsAccumulator, value: float) -> StatsAccumulator:
    count = acc.count + 1
    delta = value - acc.mean
    mean = acc.mean + delta / count
    m2 = acc.m2 + delta * (value - mean)
    return StatsAccumulator(count, mean, m2, min(acc.min, value), max(acc.max, value))

  def merge_accumulators(self, accumulators: Iterable[StatsAccumulator]) -> StatsAccumulator:
    merged = EMPTY
    for acc in accumulators:
      merged = merge_two(merged, acc)
    return merged

  def extract_output(self, acc: StatsAccumulator) -> WindowStats:
    if acc.count == 0:
      return WindowStats(0, math.nan, math.nan, math.nan, math.nan)
    variance = acc.m2 / (acc.count - 1) if acc.count > 1 else 0.0
    return WindowStats(acc.count, acc.mean, max(variance, 0.0), acc.min, acc.max)


_VALUES = WindowStatsFn()  # stateless: one instance serves every accumulate() call


def accumulate(values: Iterable[float]) -> StatsAccumulator:
  """The StatsAccumulator of some values (Welford), e.g. one sensor's in one batch."""
  acc = EMPTY
  for value in values:
    acc = _VALUES.add_input(acc, value)
  return acc


class MergedPartsFn(WindowStatsFn):
  """StatsAccumulators of disjoint parts -> the StatsAccumulator of their union (Chan's
  merge), not yet extracted: e.g. a sensor's batches of one period, for MergedStatsFn to
  merge with the other periods of a window."""

  def add_input(self, acc: StatsAccumulator, part: StatsAccumulator) -> StatsAccumulator:
    return merge_two(acc, part)

  def extract_output(self, acc: StatsAccumulator) -> StatsAccumulator:
    return acc


class MergedSensorPartsFn(beam.CombineFn):
  """{sensor_id: StatsAccumulator} of disjoint parts -> {sensor_id: the StatsAccumulator of
  its parts' union}: a MergedPartsFn for many sensors at once (one shard's, in
  transforms/baseline.py), so that a batch of readings is one element, not one per sensor."""

  def create_accumulator(self) -> dict:
    return {}

  def add_input(self, acc: dict, parts: dict) -> dict:
    for sensor_id, part in parts.items():
      acc[sensor_id] = merge_two(acc.get(sensor_id, EMPTY), part)
    return acc

  def merge_accumulators(self, accumulators: Iterable[dict]) -> dict:
    merged = {}
    for acc in accumulators:
      self.add_input(merged, acc)
    return merged

  def extract_output(self, acc: dict) -> dict:
    return acc

  def get_accumulator_coder(self):
    return SensorPartsCoder()


class SensorPartsCoder(beam.coders.Coder):
  """{sensor_id: StatsAccumulator} <-> the dict with plain tuples, pickled in one call (a
  NamedTuple pickles through Python-level __reduce_ex__, several times slower)."""

  def encode(self, parts: dict) -> bytes:
    return pickle.dumps({k: tuple(v) for k, v in parts.items()}, pickle.HIGHEST_PROTOCOL)

  def decode(self, encoded: bytes) -> dict:
    return {k: StatsAccumulator._make(v) for k, v in pickle.loads(encoded).items()}

  def is_deterministic(self) -> bool:
    return False


class MergedStatsFn(MergedPartsFn):
  """StatsAccumulators of disjoint parts -> WindowStats of their union: a WindowStatsFn
  whose inputs are parts instead of values."""

  extract_output = WindowStatsFn.extract_output


def to_accumulator(stats: WindowStats) -> StatsAccumulator:
  if stats.count == 0:
    return EMPTY
  return StatsAccumulator(stats.count, stats.mean, stats.variance * (stats.count - 1),
                          stats.min, stats.max)


def merge_window_stats(parts: Iterable[WindowStats]) -> WindowStats:
  """Statistics of the union of disjoint windows (Chan's merge), e.g. consecutive windows."""
  fn = WindowStatsFn()
  return fn.extract_output(fn.merge_accumulators(to_accumulator(s) for s in parts))
