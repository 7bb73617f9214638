"""BaselinesPerSlot: one dict per slot with readings, also where no statistics window judges it."""

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from tests.streaming import T0
from transforms.baseline import BaselineShape, BaselinesPerSlot, SensorWindowStats
from transforms.records import Reading
from transforms.stats import WindowStats


def _slot_and_sensors(baselines, win=beam.DoFn.WindowParam):
  yield (win.start.micros // 1000 - T0) // 1000, sorted(baselines)


def test_a_slot_after_a_silent_window_still_gets_its_dict():
  # Readings at 1 s and 21 s; the statistics window [0, 10) of sensor a exists, the ones
  # around 21 s are left out, as if every sensor had been silent from 10 s to 20 s.
  stats = [SensorWindowStats('a', T0, T0 + 10_000, WindowStats(1, 5.0, 0.0, 5.0, 5.0), 'ON_TIME')]
  readings = [Reading('a', 5.0, T0 + 1_000), Reading('a', 7.0, T0 + 21_000)]
  shape = BaselineShape(size_ms=10_000, period_ms=5_000)
  with TestPipeline() as p:
    window_stats = p | 'Stats' >> beam.Create(
        [TimestampedValue(s, (s.end_ms - 1) / 1000.0) for s in stats])
    on_time = p | 'Readings' >> beam.Create(
        [TimestampedValue(r, r.ts_ms / 1000.0) for r in readings])
    slots = ((window_stats, on_time) | BaselinesPerSlot(shape, allowed_lateness_s=0)
             | beam.ParDo(_slot_and_sensors))
    # Trailing baseline: window [0, 10) judges slot [10, 15); the readings at 1 s and 21 s
    # mark their own slots [0, 5) and [20, 25), which no window judges: empty dicts, so
    # Flink does not hold those readings back forever.
    assert_that(slots, equal_to([(0, []), (10, ['a']), (20, [])]))
